"""Tree-sitter, once for every part of repofeed that reads code: the grammars, a parser per
thread, and a parse bounded in time.

Nine grammars come from the per-language wheels (``tree-sitter-python``, ...), under the
names :func:`repofeed.store.languages.detect_language` gives. Complexity
(:mod:`repofeed.store.complexity`), the stored variants (:mod:`repofeed.store.variants`) and
the import graph read code through this module.

Bounds: tree-sitter 0.26 cancels a parse through the progress callback of ``Parser.parse``;
0.25 through ``Parser.timeout_micros`` (its progress callback crashes the interpreter in
0.25.2).

Threads: grammars are loaded once per process (under a lock) and shared, read-only; parsers
are per thread (created on first use in a thread for each language, then reused), so no
parser is ever used by two threads.
"""

from __future__ import annotations

import importlib
import logging
import threading
import time
import warnings

import tree_sitter

log = logging.getLogger(__name__)

GRAMMARS: dict[str, tuple[str, str]] = {
    "python": ("tree_sitter_python", "language"),
    "rust": ("tree_sitter_rust", "language"),
    "javascript": ("tree_sitter_javascript", "language"),
    "typescript": ("tree_sitter_typescript", "language_typescript"),
    "tsx": ("tree_sitter_typescript", "language_tsx"),
    "go": ("tree_sitter_go", "language"),
    "java": ("tree_sitter_java", "language"),
    "c": ("tree_sitter_c", "language"),
    "cpp": ("tree_sitter_cpp", "language"),
}
"""Language name -> (grammar wheel's module, the function in it that gives the grammar)."""

LEGACY_TIMEOUT = hasattr(tree_sitter.Parser, "timeout_micros")  # tree-sitter 0.25
_CHUNK = 1 << 16  # bytes handed to the parser per read

_languages: dict[str, tree_sitter.Language | None] = {}
_languages_lock = threading.Lock()
_local = threading.local()


def grammar(language: str) -> tree_sitter.Language | None:
    """The tree-sitter grammar of ``language``, or None where there is none (or its wheel
    does not load: then a warning, once)."""
    if language not in GRAMMARS:
        return None
    if language not in _languages:
        with _languages_lock:
            if language not in _languages:
                module, function = GRAMMARS[language]
                try:
                    _languages[language] = tree_sitter.Language(
                        getattr(importlib.import_module(module), function)())
                except (ImportError, AttributeError, ValueError) as exc:
                    log.warning("no tree-sitter grammar for %s (%s): reinstall repofeed's "
                                "dependencies", language, exc)
                    _languages[language] = None
    return _languages[language]


def parser(language: str) -> tree_sitter.Parser | None:
    """This thread's parser for ``language`` (None where there is no grammar)."""
    parsers = getattr(_local, "parsers", None)
    if parsers is None:
        parsers = _local.parsers = {}
    found = parsers.get(language)
    if found is None:
        lang = grammar(language)
        if lang is None:
            return None
        found = parsers[language] = tree_sitter.Parser(lang)
    return found


def _set_timeout(parser: tree_sitter.Parser, micros: int) -> None:
    """tree-sitter 0.25's bound (deprecated there, gone in 0.26; reading it warns too, so
    each thread remembers what it set)."""
    timeouts = getattr(_local, "timeouts", None)
    if timeouts is None:
        timeouts = _local.timeouts = {}
    if timeouts.get(id(parser)) != micros:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            parser.timeout_micros = micros
        timeouts[id(parser)] = micros


def _remaining_micros(deadline: float) -> int:
    return max(1, int((deadline - time.perf_counter()) * 1e6))


def parse_with(parser: tree_sitter.Parser, data: bytes, deadline: float,
               old: tree_sitter.Tree | None = None) -> tree_sitter.Tree | None:
    """The tree of ``data`` (reusing ``old``, an edited tree of an earlier version, where
    given), or None when the parse ran past ``deadline`` (a ``time.perf_counter`` time)."""
    try:
        if LEGACY_TIMEOUT:
            _set_timeout(parser, _remaining_micros(deadline))
            tree = parser.parse(data) if old is None else parser.parse(data, old)
        else:
            def read(offset: int, _point: object) -> bytes:
                return data[offset:offset + _CHUNK]

            def cancel(_offset: int, _has_error: bool) -> bool:
                return time.perf_counter() > deadline

            tree = (parser.parse(read, progress_callback=cancel) if old is None else
                    parser.parse(read, old, progress_callback=cancel))
    except ValueError:  # "Parsing failed": cancelled
        tree = None
    if tree is None:
        parser.reset()  # else the next parse would resume this one
    return tree


def parse(data: bytes, language: str, timeout_s: float) -> tree_sitter.Tree | None:
    """The tree of ``data`` in ``language``, or None where there is no grammar or the parse
    takes longer than ``timeout_s`` seconds."""
    found = parser(language)
    if found is None:
        return None
    return parse_with(found, data, time.perf_counter() + timeout_s)


def error_count(tree: tree_sitter.Tree) -> int:
    """How many ERROR and MISSING nodes ``tree`` holds (a walk; 0 at once for a tree
    without any)."""
    if not tree.root_node.has_error:
        return 0
    count = 0
    cursor = tree.walk()
    while True:
        node = cursor.node
        if node.is_error or node.is_missing:
            count += 1
        if node.has_error and cursor.goto_first_child():
            continue
        while not cursor.goto_next_sibling():
            if not cursor.goto_parent():
                return count
