"""A document's language and sampling weight, from its path.

The weight is a fact the store records and readers may use: core code 1.0, tests 0.5,
configuration, data and documentation 0.3. (A first cut; later work measures better ones.)
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
_DOC_LANGS = {"markdown", "restructuredtext", "text", "latex"}
_CONFIG_LANGS = {"toml", "yaml", "json", "ini", "xml", "make", "cmake", "dockerfile"}

WEIGHT_CORE, WEIGHT_TEST, WEIGHT_AUX = 1.0, 0.5, 0.3


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


def _is_test(path: str) -> bool:
    p = PurePosixPath(path.lower())
    test_dirs = ("test", "tests", "testing", "spec", "specs", "__tests__")
    if any(part in test_dirs for part in p.parts[:-1]):
        return True
    stem = p.stem
    return stem.startswith("test_") or stem.endswith(("_test", "_spec", ".test", ".spec"))


def weight_of(path: str, language: str) -> float:
    if language in _DOC_LANGS or language in _CONFIG_LANGS or language == "other":
        return WEIGHT_AUX
    if _is_test(path):
        return WEIGHT_TEST
    return WEIGHT_CORE
