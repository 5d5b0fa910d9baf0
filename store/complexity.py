"""How complex a document is: nesting depth, branches, functions and size, by tree-sitter.

Facts the daemon computes once per content (and language) and stores; the curriculum sampler
orders documents by :attr:`Complexity.score`, simple before complex.

Nine grammars from the per-language wheels (``python``, ``rust``, ``javascript``,
``typescript``, ``tsx``, ``go``, ``java``, ``c``, ``cpp``: the names
:func:`repofeed.store.languages.detect_language` gives). What each number counts, per
grammar, is the table :data:`SPECS`:

- ``depth``: the deepest nesting of block nodes (function, class and control-flow bodies:
  Python ``block``, C ``compound_statement``, Rust ``block``/``declaration_list``/
  ``match_block``, ...). Module level is 0, a function body 1, an ``if`` in it 2.
- ``branches``: decision points, as McCabe counts them: each ``if``, ``elif``/``else if``,
  loop, ``case`` or match arm (a ``default:`` label is not a decision; Python's ``case _``
  and Rust's ``_ =>`` are patterns and count), ternary, ``catch``/``except`` handler,
  comprehension ``for``/``if``, and each ``&&``, ``||``, ``??``, ``and``, ``or``. An
  ``else`` is the other side of its ``if``'s decision and adds nothing.
- ``functions``: function, method, constructor, lambda and closure definitions with a body.
- ``lines``, ``bytes``: the size (UTF-8).
- ``errors``: ERROR and MISSING nodes (the grammar did not fully understand the text).
- ``score``: ``depth + log2(1 + branches) + 0.5 * log2(1 + lines)``. Depth is linear since
  every level is one more scope to keep in mind; branches and size are logarithmic since the
  hundredth branch or line adds less than the first, and so a long flat file (a table, a
  list of constants) does not outrank a short intricate one. A flat 20-line script scores
  about 2.2; a 10-line function with three nested ``if``s about 7.7.

Where no grammar applies (``how == "text"``), or a parse runs past its time bound
(``how == "timeout"``), the same fields come from the text: depth is the deeper of the
indentation levels and the ``{}`` nesting, branches and functions are keyword counts
(``if``, ``for``, ``case``, ``&&``, ...; ``def``, ``fn``, ``func``, ``function``, ...), zero
for prose and data (Markdown, JSON, ...).

Bounds: ``analyze(..., timeout_ms)`` bounds the parse and the walk over the tree together.
tree-sitter 0.26 cancels a parse through the progress callback of ``Parser.parse``; 0.25
through ``Parser.timeout_micros`` (its progress callback crashes the interpreter in 0.25.2).

Threads: :func:`analyze` may be called from several threads at once. Grammars are loaded
once per process (under a lock) and shared, read-only; parsers are per thread (created on
first use in a thread for each language, then reused), so no parser is ever used by two
threads; the counters are under a lock.
"""

from __future__ import annotations

import importlib
import logging
import math
import re
import threading
import time
import warnings
from collections import Counter
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields

import numpy as np
import tree_sitter

from repofeed.store.errors import ConfigError
from repofeed.store.languages import PROSE_AND_DATA

log = logging.getLogger(__name__)

COMPLEXITY_VERSION = 1
"""Bumped whenever what a field counts changes, so stored facts can be recomputed."""
DEFAULT_TIMEOUT_MS = 1000
"""The bound on one document's parse and walk (tree-sitter parses 5-10 MB/s on one core)."""

HOW_TREE_SITTER, HOW_TEXT, HOW_TIMEOUT = "tree-sitter", "text", "timeout"

_LOGICAL = frozenset({"&&", "||"})


@dataclass(frozen=True)
class Spec:
    """One grammar and the node kinds each measure counts. Kinds a grammar version lacks
    are ignored (Python's ``except_group_clause`` is in the 0.23 wheel, folded into
    ``except_clause`` in 0.25)."""

    module: str
    function: str
    scopes: frozenset[str]
    branches: frozenset[str]
    functions: frozenset[str]
    operators: frozenset[str] = _LOGICAL
    # case kinds that are not a decision when their first child is the keyword ``default``
    defaults: frozenset[str] = frozenset()


def _spec(module: str, function: str, *, scopes: str, branches: str, functions: str,
          operators: frozenset[str] = _LOGICAL, defaults: str = "") -> Spec:
    return Spec(module, function, frozenset(scopes.split()), frozenset(branches.split()),
                frozenset(functions.split()), operators, frozenset(defaults.split()))


_JS_SCOPES = "statement_block class_body switch_body class_static_block"
_JS_BRANCHES = ("if_statement for_statement for_in_statement while_statement do_statement "
                "switch_case ternary_expression catch_clause")
_JS_FUNCTIONS = ("function_declaration function_expression generator_function "
                 "generator_function_declaration arrow_function method_definition")
_C_BRANCHES = ("if_statement for_statement while_statement do_statement case_statement "
               "conditional_expression")

SPECS: dict[str, Spec] = {
    "python": _spec(
        "tree_sitter_python", "language", scopes="block",
        branches="if_statement elif_clause for_statement while_statement case_clause "
                 "conditional_expression except_clause except_group_clause for_in_clause "
                 "if_clause",
        functions="function_definition lambda", operators=frozenset({"and", "or"})),
    "rust": _spec(
        "tree_sitter_rust", "language", scopes="block declaration_list match_block",
        branches="if_expression for_expression while_expression loop_expression match_arm",
        functions="function_item closure_expression"),
    "javascript": _spec(
        "tree_sitter_javascript", "language", scopes=_JS_SCOPES, branches=_JS_BRANCHES,
        functions=_JS_FUNCTIONS, operators=_LOGICAL | {"??"}),
    "typescript": _spec(
        "tree_sitter_typescript", "language_typescript", scopes=_JS_SCOPES,
        branches=_JS_BRANCHES, functions=_JS_FUNCTIONS, operators=_LOGICAL | {"??"}),
    "tsx": _spec(
        "tree_sitter_typescript", "language_tsx", scopes=_JS_SCOPES,
        branches=_JS_BRANCHES, functions=_JS_FUNCTIONS, operators=_LOGICAL | {"??"}),
    "go": _spec(
        "tree_sitter_go", "language", scopes="block",
        branches="if_statement for_statement expression_case type_case communication_case",
        functions="function_declaration method_declaration func_literal"),
    "java": _spec(
        "tree_sitter_java", "language",
        scopes="block constructor_body class_body interface_body enum_body switch_block "
               "annotation_type_body",
        branches="if_statement for_statement enhanced_for_statement while_statement "
                 "do_statement switch_label ternary_expression catch_clause",
        functions="method_declaration constructor_declaration compact_constructor_declaration "
                  "lambda_expression",
        defaults="switch_label"),
    "c": _spec(
        "tree_sitter_c", "language", scopes="compound_statement", branches=_C_BRANCHES,
        functions="function_definition", defaults="case_statement"),
    "cpp": _spec(
        "tree_sitter_cpp", "language",
        scopes="compound_statement field_declaration_list declaration_list",
        branches=_C_BRANCHES + " for_range_loop catch_clause",
        functions="function_definition lambda_expression", defaults="case_statement"),
}


@dataclass(frozen=True)
class Complexity:
    """The measures of one document (see the module's docstring for what each counts)."""

    language: str
    how: str
    lines: int
    bytes: int
    depth: int
    branches: int
    functions: int
    errors: int
    score: float
    version: int = field(default=COMPLEXITY_VERSION)

    def to_dict(self) -> dict[str, str | int | float]:
        """Plain values (msgpack, JSON)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> Complexity:
        """The inverse of :meth:`to_dict`; keys it does not know are ignored."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})  # type: ignore[arg-type]


def score_of(depth: int, branches: int, lines: int) -> float:
    """The curriculum's scalar: ``depth + log2(1 + branches) + 0.5 * log2(1 + lines)``."""
    return round(depth + math.log2(1 + branches) + 0.5 * math.log2(1 + lines), 3)


@dataclass(frozen=True)
class _Grammar:
    """A loaded grammar and its :class:`Spec` as sets of node kind ids."""

    language: tree_sitter.Language
    scopes: frozenset[int]
    branches: frozenset[int]
    functions: frozenset[int]
    operators: frozenset[int]
    defaults: frozenset[int]
    operator_field: int | None


def _kind_ids(lang: tree_sitter.Language, names: frozenset[str], named: bool) -> frozenset[int]:
    return frozenset(i for i in range(lang.node_kind_count)
                     if lang.node_kind_is_named(i) == named
                     and lang.node_kind_for_id(i) in names)


def _load(spec: Spec) -> _Grammar:
    lang = tree_sitter.Language(getattr(importlib.import_module(spec.module), spec.function)())
    return _Grammar(
        language=lang,
        scopes=_kind_ids(lang, spec.scopes, True),
        branches=_kind_ids(lang, spec.branches, True),
        functions=_kind_ids(lang, spec.functions, True),
        operators=_kind_ids(lang, spec.operators, False),
        defaults=_kind_ids(lang, spec.defaults, True),
        operator_field=lang.field_id_for_name("operator"),
    )


_grammars: dict[str, _Grammar | None] = {}
_grammars_lock = threading.Lock()
_local = threading.local()
_counts: Counter[str] = Counter()
_counts_lock = threading.Lock()


def _grammar(language: str) -> _Grammar | None:
    """The loaded grammar for ``language``, or None where there is none (or its wheel does
    not load: then a warning, once, and the text measures)."""
    if language not in SPECS:
        return None
    grammar = _grammars.get(language)
    if grammar is None and language not in _grammars:
        with _grammars_lock:
            if language not in _grammars:
                try:
                    _grammars[language] = _load(SPECS[language])
                except (ImportError, AttributeError, ValueError) as exc:
                    log.warning("no tree-sitter grammar for %s (%s): measuring it as text; "
                                "reinstall repofeed's dependencies", language, exc)
                    _grammars[language] = None
            grammar = _grammars[language]
    return grammar


def grammars() -> tuple[str, ...]:
    """The languages this installation parses with tree-sitter."""
    return tuple(lang for lang in SPECS if _grammar(lang) is not None)


_LEGACY_TIMEOUT = hasattr(tree_sitter.Parser, "timeout_micros")  # tree-sitter 0.25
_CHUNK = 1 << 16


def _parser(language: str, grammar: _Grammar) -> tree_sitter.Parser:
    parsers = getattr(_local, "parsers", None)
    if parsers is None:
        parsers = _local.parsers = {}
    parser = parsers.get(language)
    if parser is None:
        parser = parsers[language] = tree_sitter.Parser(grammar.language)
    return parser


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


def _parse(parser: tree_sitter.Parser, data: bytes, deadline: float,
           timeout_ms: int) -> tree_sitter.Tree | None:
    """The tree, or None when the parse ran past ``deadline``."""
    try:
        if _LEGACY_TIMEOUT:
            _set_timeout(parser, max(1, timeout_ms * 1000))
            tree = parser.parse(data)
        else:
            def read(offset: int, _point: object) -> bytes:
                return data[offset:offset + _CHUNK]

            def cancel(_offset: int, _has_error: bool) -> bool:
                return time.perf_counter() > deadline

            tree = parser.parse(read, progress_callback=cancel)
    except ValueError:  # "Parsing failed": cancelled
        tree = None
    if tree is None:
        parser.reset()  # else the next parse would resume this one
    return tree


def _walk(tree: tree_sitter.Tree, g: _Grammar,
          deadline: float) -> tuple[int, int, int, int] | None:
    """(depth, branches, functions, errors) of ``tree``, or None past ``deadline``."""
    cursor = tree.walk()
    check_errors = tree.root_node.has_error
    scopes, branches_k, functions_k = g.scopes, g.branches, g.functions
    operators, defaults, op_field = g.operators, g.defaults, g.operator_field
    depth = max_depth = branches = functions = errors = visited = 0
    stack: list[bool] = []
    while True:
        node = cursor.node
        kind = node.kind_id
        if kind in branches_k:
            first = node.child(0) if kind in defaults else None
            if first is None or first.type != "default":
                branches += 1
        elif kind in operators:
            if cursor.field_id == op_field:
                branches += 1
        elif kind in functions_k:
            functions += 1
        if check_errors and (node.is_error or node.is_missing):
            errors += 1
        visited += 1
        if not visited & 4095 and time.perf_counter() > deadline:
            return None
        if cursor.goto_first_child():
            scope = kind in scopes
            stack.append(scope)
            if scope:
                depth += 1
                max_depth = max(max_depth, depth)
            continue
        while not cursor.goto_next_sibling():
            if not cursor.goto_parent():
                return max_depth, branches, functions, errors
            depth -= stack.pop()


_INDENT = re.compile(r"^([ \t]*)\S", re.MULTILINE)
_BRANCH_WORDS = re.compile(
    rb"\b(?:if|elif|elsif|elseif|unless|for|foreach|while|until|case|when|catch|except|"
    rb"rescue)\b|&&|\|\|")
_FUNCTION_WORDS = re.compile(rb"\b(?:def|fn|func|fun|function|sub|proc|lambda)\b")
_NOT_BRACES = bytes(b for b in range(256) if b not in b"{}")


def _indent_depth(text: str) -> int:
    indents = _INDENT.findall(text)
    spaces = [len(i) for i in indents if i and "\t" not in i]
    unit = min(max(min(spaces, default=4), 2), 8)
    return max((i.count("\t") + i.count(" ") // unit for i in indents), default=0)


def _brace_depth(data: bytes) -> int:
    braces = np.frombuffer(data.translate(None, _NOT_BRACES), dtype=np.uint8)
    if not braces.size:
        return 0
    steps = np.where(braces == ord("{"), 1, -1)
    return max(0, int(np.cumsum(steps).max()))


def _text_measures(text: str, data: bytes, language: str) -> tuple[int, int, int]:
    """(depth, branches, functions) read off the text."""
    depth = max(_indent_depth(text), _brace_depth(data))
    if language in PROSE_AND_DATA:
        return depth, 0, 0
    return depth, len(_BRANCH_WORDS.findall(data)), len(_FUNCTION_WORDS.findall(data))


def _line_count(text: str) -> int:
    return text.count("\n") + (1 if text and not text.endswith("\n") else 0)


def _encode(text: str) -> bytes:
    """UTF-8; undecodable bytes kept by ``surrogateescape`` come back as they were."""
    for errors in ("strict", "surrogateescape"):
        try:
            return text.encode("utf-8", errors)
        except UnicodeEncodeError:
            pass
    return text.encode("utf-8", "replace")


def analyze(text: str, language: str, timeout_ms: int = DEFAULT_TIMEOUT_MS) -> Complexity:
    """The :class:`Complexity` of ``text`` in ``language`` (a name from
    :func:`repofeed.store.languages.detect_language`): by tree-sitter where a grammar
    exists and the parse and walk end within ``timeout_ms``; else from the text, with
    ``how`` saying which (``tree-sitter``, ``text``, ``timeout``)."""
    if timeout_ms <= 0:
        raise ConfigError(f"the complexity timeout must be a positive number of milliseconds "
                          f"(got {timeout_ms}); the default is {DEFAULT_TIMEOUT_MS}")
    start = time.perf_counter()
    data = _encode(text)
    lines = _line_count(text)
    grammar = _grammar(language)
    measured = None
    how = HOW_TEXT
    if grammar is not None:
        deadline = start + timeout_ms / 1000
        tree = _parse(_parser(language, grammar), data, deadline, timeout_ms)
        measured = _walk(tree, grammar, deadline) if tree is not None else None
        how = HOW_TREE_SITTER if measured is not None else HOW_TIMEOUT
    if measured is None:
        measured = (*_text_measures(text, data, language), 0)
    depth, branches, functions, errors = measured
    with _counts_lock:
        _counts[how] += 1
    return Complexity(language=language, how=how, lines=lines, bytes=len(data), depth=depth,
                      branches=branches, functions=functions, errors=errors,
                      score=score_of(depth, branches, lines))


def analysis_counts() -> dict[str, int]:
    """How many documents this process measured, by ``how`` (``timeout`` counts the parses
    that ran past their bound)."""
    with _counts_lock:
        return {how: _counts[how] for how in (HOW_TREE_SITTER, HOW_TEXT, HOW_TIMEOUT)}
