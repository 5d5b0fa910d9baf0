"""A document's language, from its path.

(Sampling weights are decided at read time by ``repofeed.store.weights``.)
"""

from __future__ import annotations

from pathlib import PurePosixPath

from .weights import DEFAULT_RULES

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


def weight_of(path: str, language: str) -> float:
    """The default sampling weight of ``path`` (``language`` is not used). Kept for the
    ingest code that still records a weight; weights are read-time policy in
    ``repofeed.store.weights``, the one place that decides them."""
    return DEFAULT_RULES.weight(path)
