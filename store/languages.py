"""A document's language, from its path, its first line and ``.gitattributes``.

Detection follows GitHub Linguist's order of strategies, cut down to what a path, a first
line and the repository's attributes can say: an explicit ``linguist-language`` attribute
wins; then a known file name (``Makefile``, ``Dockerfile``); then the interpreter of a
``#!`` line (so ``bin/tool`` with ``#!/usr/bin/env python3`` is Python); then the extension.
What none of them names is ``other``. Names are lower case identifiers (``python``, ``cpp``,
``tsx``, ``shell``); :func:`normalize_language` turns Linguist's names (``C++``,
``Shell``, ``TSX``) into them. The attributes themselves are read by
``store/attributes.py``; sampling weights are read-time policy (``store/weights.py``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import PurePosixPath

_EXTENSIONS = {
    ".py": "python", ".pyi": "python", ".pyw": "python", ".rs": "rust", ".go": "go",
    ".js": "javascript", ".mjs": "javascript", ".cjs": "javascript", ".jsx": "javascript",
    ".ts": "typescript", ".mts": "typescript", ".cts": "typescript", ".tsx": "tsx",
    ".java": "java", ".kt": "kotlin", ".kts": "kotlin", ".scala": "scala",
    ".c": "c", ".h": "c", ".cc": "cpp", ".cpp": "cpp", ".cxx": "cpp", ".c++": "cpp",
    ".hpp": "cpp", ".hh": "cpp", ".hxx": "cpp", ".h++": "cpp", ".ipp": "cpp",
    ".cs": "csharp", ".rb": "ruby", ".php": "php", ".swift": "swift",
    ".m": "objective-c", ".sh": "shell", ".bash": "shell", ".zsh": "shell", ".ksh": "shell",
    ".fish": "fish", ".lua": "lua", ".pl": "perl", ".pm": "perl", ".r": "r", ".jl": "julia",
    ".hs": "haskell", ".ml": "ocaml", ".ex": "elixir", ".exs": "elixir", ".erl": "erlang",
    ".clj": "clojure", ".dart": "dart", ".zig": "zig", ".sql": "sql", ".html": "html",
    ".css": "css", ".scss": "css", ".vue": "vue", ".svelte": "svelte", ".md": "markdown",
    ".rst": "restructuredtext", ".txt": "text", ".toml": "toml", ".yaml": "yaml",
    ".yml": "yaml", ".json": "json", ".ini": "ini", ".cfg": "ini", ".xml": "xml",
    ".proto": "protobuf", ".tex": "latex",
}
_FILENAMES = {
    "makefile": "make", "gnumakefile": "make", "dockerfile": "dockerfile",
    "cmakelists.txt": "cmake", "cargo.lock": "toml", "license": "text", "readme": "text",
}
_DOC_LANGS = {"markdown", "restructuredtext", "text", "latex"}
_CONFIG_LANGS = {"toml", "yaml", "json", "ini", "xml", "make", "cmake", "dockerfile"}
PROSE_AND_DATA = frozenset(_DOC_LANGS | _CONFIG_LANGS | {"other"})
"""Languages whose text is prose or data rather than code (no branches, no functions)."""

# The interpreter a ``#!`` line runs (its base name, version digits stripped) -> language.
_INTERPRETERS = {
    "python": "python", "pypy": "python", "sh": "shell", "bash": "shell", "dash": "shell",
    "ash": "shell", "ksh": "shell", "mksh": "shell", "zsh": "shell", "fish": "fish",
    "node": "javascript", "nodejs": "javascript", "deno": "typescript", "bun": "javascript",
    "ts-node": "typescript", "tsx": "typescript", "perl": "perl", "ruby": "ruby",
    "php": "php", "lua": "lua", "luajit": "lua", "rscript": "r", "julia": "julia",
    "runghc": "haskell", "runhaskell": "haskell", "ocaml": "ocaml", "elixir": "elixir",
    "escript": "erlang", "scala": "scala", "swift": "swift", "make": "make",
    "rust-script": "rust", "java": "java", "kotlin": "kotlin", "dart": "dart",
}
_SHEBANG = re.compile(r"#![ \t]*(\S+)(.*)")
_VERSION = re.compile(r"[\d.]+$")

# Linguist's language names (as written in linguist-language=...) that are not simply our
# name in another case.
_LINGUIST_NAMES = {
    "c++": "cpp", "c#": "csharp", "objective-c++": "cpp",
    "shell": "shell", "bash": "shell", "sh": "shell", "zsh": "shell", "golang": "go",
    "js": "javascript", "node": "javascript", "ts": "typescript", "py": "python",
    "python3": "python", "rs": "rust", "rst": "restructuredtext", "md": "markdown",
    "tex": "latex", "makefile": "make", "yml": "yaml",
    "plain-text": "text", "plain text": "text", "text": "text",
}

def language_of(path: str) -> str:
    """The language a path's file name or extension says, or ``other``."""
    p = PurePosixPath(path)
    name = p.name.lower()
    if name in _FILENAMES:
        return _FILENAMES[name]
    return _EXTENSIONS.get(p.suffix.lower(), "other")


def shebang_language(text: str | bytes | None) -> str | None:
    """The language of the interpreter a ``#!`` first line names (``#!/usr/bin/env
    python3``, ``#!/bin/bash``, ``#!/usr/bin/env -S node --flags``), or None."""
    if not text:
        return None
    head = text[:256]
    if isinstance(head, bytes):
        head = head.decode("utf-8", "replace")
    m = _SHEBANG.match(head.split("\n", 1)[0])
    if m is None:
        return None
    program = m.group(1).rsplit("/", 1)[-1]
    if program == "env":  # the interpreter is the first argument that is not an option
        args = [a for a in m.group(2).split() if not a.startswith("-") and "=" not in a]
        if not args:
            return None
        program = args[0].rsplit("/", 1)[-1]
    program = program.lower()
    return _INTERPRETERS.get(program) or _INTERPRETERS.get(_VERSION.sub("", program))


def normalize_language(name: str) -> str:
    """Our identifier for a language name as Linguist writes it (``C++`` -> ``cpp``,
    ``Shell`` -> ``shell``, ``TSX`` -> ``tsx``, ``Emacs-Lisp`` -> ``emacs-lisp``)."""
    key = name.strip().lower()
    return _LINGUIST_NAMES.get(key, key.replace(" ", "-"))


def detect_language(path: str, text: str | bytes | None = None,
                    attr: str | Mapping[str, object] | None = None) -> str:
    """The document's language: ``attr`` (a ``linguist-language`` value, or the mapping
    ``attributes.linguist_attrs`` returns) wins; then a known file name; then the ``#!`` line of
    ``text``; then the extension; else ``other``."""
    if isinstance(attr, Mapping):
        attr = attr.get("linguist-language")
    if isinstance(attr, str) and attr.strip():
        return normalize_language(attr)
    p = PurePosixPath(path)
    name = p.name.lower()
    if name in _FILENAMES:
        return _FILENAMES[name]
    return shebang_language(text) or _EXTENSIONS.get(p.suffix.lower(), "other")
