"""A document's language (from its path, its first line and ``.gitattributes``) and its
sampling weight (from its path).

Detection follows GitHub Linguist's order of strategies, cut down to what a path, a first
line and the repository's attributes can say: an explicit ``linguist-language`` attribute
wins; then a known file name (``Makefile``, ``Dockerfile``); then the interpreter of a
``#!`` line (so ``bin/tool`` with ``#!/usr/bin/env python3`` is Python); then the extension.
What none of them names is ``other``. Names are lower case identifiers (``python``, ``cpp``,
``tsx``, ``shell``); :func:`normalize_language` turns Linguist's names (``C++``,
``Shell``, ``TSX``) into them.

The weight is a fact the store records and readers may use: core code 1.0, tests 0.5,
configuration, data and documentation 0.3. (A first cut; issue 9 moves weights to the
reader.)
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from pathlib import Path, PurePosixPath

import pygit2
from pygit2.enums import AttrCheck

from repofeed.store.errors import RepoError

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

LINGUIST_ATTRIBUTES = ("linguist-language", "linguist-vendored", "linguist-generated",
                       "linguist-documentation")

WEIGHT_CORE, WEIGHT_TEST, WEIGHT_AUX = 1.0, 0.5, 0.3


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
    :func:`linguist_attrs` returns) wins; then a known file name; then the ``#!`` line of
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


_tree_views = threading.local()


def _tree_view(repo: pygit2.Repository) -> pygit2.Repository:
    """An in-memory repository over ``repo``'s object database, with no index, worktree
    or config: libgit2 then reads attributes from the given commit's tree alone (on
    ``repo`` itself the index's ``.gitattributes`` take precedence over the commit's).
    One per repository per thread, since pygit2 objects are not shared between threads."""
    views = getattr(_tree_views, "views", None)
    if views is None:
        views = _tree_views.views = {}
    key = repo.path
    view = views.get(key)
    if view is None:
        view = pygit2.Repository()
        view.set_odb(repo.odb)
        views[key] = view
    return view


def _attr_value(name: str, value: bool | str | None) -> bool | str | None:
    if name == "linguist-language":
        return value if isinstance(value, str) else None
    if isinstance(value, str):  # linguist-vendored=false / =true
        return value.strip().lower() not in ("false", "0", "no", "")
    return value


def _commit_id(repo: pygit2.Repository, commit: str | pygit2.Oid) -> pygit2.Oid:
    """The id of the commit ``commit`` names (an id, a short id, a ref, ``HEAD~2``)."""
    try:
        return repo.revparse_single(str(commit)).peel(pygit2.Commit).id
    except (KeyError, ValueError, pygit2.GitError) as exc:
        raise RepoError(f"{commit}: not a commit of {repo.path} ({exc}); give a commit id, "
                        "or none for the worktree's attributes") from None


def linguist_attrs(repo: pygit2.Repository | str | Path, path: str,
                   commit: str | pygit2.Oid | None = None) -> dict[str, bool | str | None]:
    """The Linguist attributes ``.gitattributes`` sets for ``path``: ``linguist-language``
    (a name as written, or None) and ``linguist-vendored``, ``linguist-generated``,
    ``linguist-documentation`` (True when set, False when unset with ``-attr`` or ``=false``,
    None when unspecified).

    With ``commit``, only the ``.gitattributes`` files of that commit's tree count (what
    Linguist sees; neither the index, the worktree nor ``info/attributes``). Without it, the
    worktree's view as git has it (worktree files, then the index, and
    ``$GIT_DIR/info/attributes``); the system-wide attributes file is never read, so the
    facts do not depend on the machine."""
    if not isinstance(repo, pygit2.Repository):
        try:
            repo = pygit2.Repository(str(repo))
        except pygit2.GitError as exc:
            raise RepoError(f"{repo}: not a git repository ({exc})") from None
    if commit is None:
        source, flags, oid = repo, AttrCheck.FILE_THEN_INDEX | AttrCheck.NO_SYSTEM, None
    else:
        source = _tree_view(repo)
        flags = AttrCheck.INDEX_ONLY | AttrCheck.INCLUDE_COMMIT | AttrCheck.NO_SYSTEM
        oid = _commit_id(repo, commit)
    return {name: _attr_value(name, source.get_attr(path, name, flags, oid))
            for name in LINGUIST_ATTRIBUTES}


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
