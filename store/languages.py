"""A document's language: from .gitattributes, its name or extension, or its shebang.

(Sampling weights are decided at read time by ``repofeed.store.weights``.)
"""

from __future__ import annotations

from pathlib import PurePosixPath


_EXTENSIONS = {
    ".py": "python", ".pyi": "python", ".rs": "rust", ".go": "go", ".js": "javascript",
    ".mjs": "javascript", ".cjs": "javascript", ".jsx": "javascript", ".ts": "typescript",
    ".tsx": "typescript", ".java": "java", ".kt": "kotlin", ".kts": "kotlin", ".scala": "scala",
    ".c": "c", ".h": "c", ".cc": "cpp", ".cpp": "cpp", ".cxx": "cpp", ".hpp": "cpp",
    ".hh": "cpp", ".cs": "csharp", ".rb": "ruby", ".php": "php", ".swift": "swift",
    ".m": "objective-c", ".sh": "shell", ".bash": "shell", ".zsh": "shell", ".lua": "lua",
    ".pl": "perl", ".r": "r", ".jl": "julia", ".hs": "haskell", ".ml": "ocaml",
    ".ex": "elixir", ".exs": "elixir", ".erl": "erlang", ".clj": "clojure", ".dart": "dart",
    ".zig": "zig", ".sql": "sql", ".html": "html", ".css": "css", ".scss": "css",
    ".vue": "vue", ".svelte": "svelte", ".md": "markdown", ".rst": "restructuredtext",
    ".txt": "text", ".toml": "toml", ".yaml": "yaml", ".yml": "yaml", ".json": "json",
    ".ini": "ini", ".cfg": "ini", ".xml": "xml", ".proto": "protobuf", ".tex": "latex",
}
_FILENAMES = {
    "makefile": "make", "dockerfile": "dockerfile", "cmakelists.txt": "cmake",
    "cargo.lock": "toml", "license": "text", "readme": "text",
}


def language_of(path: str) -> str:
    p = PurePosixPath(path)
    name = p.name.lower()
    if name in _FILENAMES:
        return _FILENAMES[name]
    return _EXTENSIONS.get(p.suffix.lower(), "other")


_SHEBANGS = {"python": "python", "python3": "python", "python2": "python", "sh": "shell",
             "bash": "shell", "zsh": "shell", "dash": "shell", "node": "javascript",
             "deno": "typescript", "ts-node": "typescript", "ruby": "ruby", "perl": "perl",
             "lua": "lua", "php": "php", "Rscript": "r"}


def detect_language(path: str, text: str | None = None, attr: str | None = None) -> str:
    """A file's language: ``linguist-language`` from .gitattributes (``attr``) first, then
    the name or extension, then a shebang on the first line of ``text``."""
    if attr:
        return attr.lower()
    language = language_of(path)
    if language == "other" and text and text.startswith("#!"):
        words = text[2:text.find("\n") if "\n" in text else 200].split()
        if words:
            program = words[0].rsplit("/", 1)[-1]
            if program == "env" and len(words) > 1:
                program = words[2] if words[1] == "-S" and len(words) > 2 else words[1]
            program = program.rstrip("0123456789.") if program.startswith("python") else \
                program
            return _SHEBANGS.get(program, language)
    return language
