"""How complex a document is: nesting depth, branches, functions and size, by tree-sitter.

Facts the daemon computes once per content (and language) and stores; the curriculum sampler
orders documents by :attr:`Complexity.score`, simple before complex.

Nine grammars (:mod:`repofeed.store.parsing`: ``python``, ``rust``, ``javascript``,
``typescript``, ``tsx``, ``go``, ``java``, ``c``, ``cpp``). What each number counts, per
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

Counting: one tree-sitter query per grammar captures what each measure counts, so the count
runs in C. ``measure`` also measures an edit of a text it measured before from that text's
tree: an incremental parse, then a count around the changed ranges alone (see
:func:`_edited`); the facts are the same as measuring the edited text whole.

Bounds: ``analyze(..., timeout_ms)`` bounds the parse (:func:`parsing.parse_with`) and the
count together; a query runs over a chunk of the text at a time, with the clock read between.

Threads: :func:`analyze` may be called from several threads at once: grammars and queries
are shared, read-only, parsers are per thread (:mod:`repofeed.store.parsing`), and the
counters are under a lock.
"""

from __future__ import annotations

import logging
import math
import re
import threading
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields

import numpy as np
import tree_sitter

from repofeed.store import parsing
from repofeed.store.errors import ConfigError
from repofeed.store.languages import PROSE_AND_DATA
from repofeed.store.lines import Edit, Hunk, byte_edits, describes, line_starts

log = logging.getLogger(__name__)

COMPLEXITY_VERSION = 1
"""Bumped whenever what a field counts changes, so stored facts can be recomputed."""
DEFAULT_TIMEOUT_MS = 1000
"""The bound on one document's parse and count (tree-sitter parses 5-10 MB/s on one core)."""

HOW_TREE_SITTER, HOW_TEXT, HOW_TIMEOUT = "tree-sitter", "text", "timeout"

_LOGICAL = frozenset({"&&", "||"})


@dataclass(frozen=True)
class Spec:
    """One grammar and the node kinds each measure counts. Kinds a grammar version lacks
    are ignored (Python's ``except_group_clause`` is in the 0.23 wheel, folded into
    ``except_clause`` in 0.25)."""

    scopes: frozenset[str]
    branches: frozenset[str]
    functions: frozenset[str]
    operators: frozenset[str] = _LOGICAL
    # case kinds that are not a decision when their first child is the keyword ``default``
    defaults: frozenset[str] = frozenset()


def _spec(*, scopes: str, branches: str, functions: str,
          operators: frozenset[str] = _LOGICAL, defaults: str = "") -> Spec:
    return Spec(frozenset(scopes.split()), frozenset(branches.split()),
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
        scopes="block",
        branches="if_statement elif_clause for_statement while_statement case_clause "
                 "conditional_expression except_clause except_group_clause for_in_clause "
                 "if_clause",
        functions="function_definition lambda", operators=frozenset({"and", "or"})),
    "rust": _spec(
        scopes="block declaration_list match_block",
        branches="if_expression for_expression while_expression loop_expression match_arm",
        functions="function_item closure_expression"),
    "javascript": _spec(
        scopes=_JS_SCOPES, branches=_JS_BRANCHES,
        functions=_JS_FUNCTIONS, operators=_LOGICAL | {"??"}),
    "typescript": _spec(
        scopes=_JS_SCOPES,
        branches=_JS_BRANCHES, functions=_JS_FUNCTIONS, operators=_LOGICAL | {"??"}),
    "tsx": _spec(
        scopes=_JS_SCOPES,
        branches=_JS_BRANCHES, functions=_JS_FUNCTIONS, operators=_LOGICAL | {"??"}),
    "go": _spec(
        scopes="block",
        branches="if_statement for_statement expression_case type_case communication_case",
        functions="function_declaration method_declaration func_literal"),
    "java": _spec(
        scopes="block constructor_body class_body interface_body enum_body switch_block "
               "annotation_type_body",
        branches="if_statement for_statement enhanced_for_statement while_statement "
                 "do_statement switch_label ternary_expression catch_clause",
        functions="method_declaration constructor_declaration compact_constructor_declaration "
                  "lambda_expression",
        defaults="switch_label"),
    "c": _spec(
        scopes="compound_statement", branches=_C_BRANCHES,
        functions="function_definition", defaults="case_statement"),
    "cpp": _spec(
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
        return {name: getattr(self, name) for name in _COMPLEXITY_FIELDS}

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> Complexity:
        """The inverse of :meth:`to_dict`; keys it does not know are ignored."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})  # type: ignore[arg-type]


_COMPLEXITY_FIELDS = tuple(f.name for f in fields(Complexity))


def score_of(depth: int, branches: int, lines: int) -> float:
    """The curriculum's scalar: ``depth + log2(1 + branches) + 0.5 * log2(1 + lines)``."""
    return round(depth + math.log2(1 + branches) + 0.5 * math.log2(1 + lines), 3)


@dataclass(frozen=True)
class _Grammar:
    """A loaded grammar, and its :class:`Spec` as one query (captures ``b`` branches, ``d``
    case kinds that are no decision when they start with ``default``, ``o`` logical
    operators, ``f`` functions, ``s`` scopes) and a query of the error nodes."""

    language: tree_sitter.Language
    query: tree_sitter.Query
    errors: tree_sitter.Query


def _kind_names(lang: tree_sitter.Language, names: frozenset[str], named: bool) -> list[str]:
    """The names of ``names`` this grammar version has (a query naming a kind the grammar
    lacks does not compile)."""
    return sorted({lang.node_kind_for_id(i) for i in range(lang.node_kind_count)
                   if lang.node_kind_is_named(i) == named
                   and lang.node_kind_for_id(i) in names})


def _alternatives(kinds: list[str], capture: str) -> str:
    return "[" + " ".join(f"({kind})" for kind in kinds) + f"] @{capture}" if kinds else ""


def _load(language: str, spec: Spec) -> _Grammar | None:
    lang = parsing.grammar(language)
    if lang is None:
        return None
    defaults = _kind_names(lang, spec.defaults, True)
    operators = _kind_names(lang, spec.operators, False)
    patterns = [
        _alternatives([k for k in _kind_names(lang, spec.branches, True) if k not in defaults],
                      "b"),
        _alternatives(defaults, "d"),
        _alternatives(_kind_names(lang, spec.functions, True), "f"),
        _alternatives(_kind_names(lang, spec.scopes, True), "s"),
        # a logical operator is the ``operator`` field of its expression (Rust's ``&&`` is
        # also a reference's sigil, which is no decision)
        ("(_ operator: [" + " ".join(f'"{op}"' for op in operators) + "] @o)"
         if operators and lang.field_id_for_name("operator") is not None else ""),
    ]
    return _Grammar(language=lang,
                    query=tree_sitter.Query(lang, "\n".join(p for p in patterns if p)),
                    errors=tree_sitter.Query(lang, "(ERROR) @e (MISSING) @e"))


_grammars: dict[str, _Grammar | None] = {}
_grammars_lock = threading.Lock()
_counts: Counter[str] = Counter()
_counts_lock = threading.Lock()


def _grammar(language: str) -> _Grammar | None:
    """The loaded grammar and queries for ``language``, or None where there is none (then
    the text measures)."""
    if language not in SPECS:
        return None
    if language not in _grammars:
        with _grammars_lock:
            if language not in _grammars:
                _grammars[language] = _load(language, SPECS[language])
    return _grammars[language]


def grammars() -> tuple[str, ...]:
    """The languages this installation parses with tree-sitter."""
    return tuple(lang for lang in SPECS if _grammar(lang) is not None)


@dataclass
class _Tally:
    """What the query counts over a set of nodes. Every field adds up over disjoint sets of
    nodes, depth included: ``levels`` counts the scope nodes (with children) at each nesting
    level, and the depth is the deepest level with any."""

    branches: int = 0
    functions: int = 0
    errors: int = 0
    levels: Counter[int] = field(default_factory=Counter)

    @property
    def depth(self) -> int:
        return max((level for level, n in self.levels.items() if n), default=0)

    def changed(self, removed: _Tally, added: _Tally) -> _Tally | None:
        """This tally less ``removed`` plus ``added``, for a text without errors (one with
        errors is measured whole); None if some count would fall below zero (the edit was not
        what the trees say)."""
        levels = Counter(self.levels)
        levels.subtract(removed.levels)
        levels.update(added.levels)
        out = _Tally(self.branches - removed.branches + added.branches,
                     self.functions - removed.functions + added.functions,
                     0, Counter({k: n for k, n in levels.items() if n}))
        if min(out.branches, out.functions, *out.levels.values(), 0) < 0:
            return None
        return out


_QUERY_CHUNK = 1 << 16  # bytes of text a query runs over between two looks at the clock


def _captures(query: tree_sitter.Query, root: tree_sitter.Node, deadline: float,
              spans: list[tuple[int, int]] | None) -> dict[str, set] | None:
    """The nodes each capture of ``query`` finds under ``root`` that intersect ``spans``
    (byte ranges; the whole text where None), each node once, or None past ``deadline``.

    The query runs over one ``_QUERY_CHUNK`` of the text at a time, and the clock is read
    between them: the query's own progress callback crashes tree-sitter 0.26.1 when it is
    called, and 0.25's time limit is gone from 0.26. Chunks overlap by a byte on each side:
    tree-sitter finds a zero-width node only strictly inside a range. A node that several
    chunks find is kept once."""
    out: dict[str, set] = {}
    cursor = tree_sitter.QueryCursor(query)
    for lo, hi in spans if spans is not None else [(0, root.end_byte + 1)]:
        for at in range(lo, max(hi, lo + 1), _QUERY_CHUNK):
            cursor.set_byte_range(max(lo, at - 1), min(hi, at + _QUERY_CHUNK + 1))
            for name, nodes in cursor.captures(root).items():
                out.setdefault(name, set()).update(nodes)
            if time.perf_counter() > deadline:
                return None
    return out


def _errors(tree: tree_sitter.Tree, g: _Grammar, deadline: float) -> int | None:
    """How many ERROR and MISSING nodes ``tree`` has, or None past ``deadline``. Over the
    whole tree, and only for a tree that has any: they are rare, and a byte range would miss
    a MISSING node at its edge."""
    if not tree.root_node.has_error:
        return 0
    found = tree_sitter.QueryCursor(g.errors).captures(tree.root_node)
    return len(found.get("e", ())) if time.perf_counter() <= deadline else None


def _levels_by_ranges(scopes: list[tree_sitter.Node]) -> Counter[int]:
    """How many of ``scopes`` (every scope around each of them included) sit at each nesting
    level, read off their byte ranges: a node's range holds its descendants'."""
    levels: Counter[int] = Counter()
    stack: list[int] = []   # ends of the scopes around the one being placed
    for start, end in sorted((n.start_byte, -n.end_byte) for n in scopes):
        while stack and stack[-1] <= start:
            stack.pop()
        stack.append(-end)
        levels[len(stack)] += 1
    return levels


def _levels_by_parents(scopes: list[tree_sitter.Node]) -> Counter[int]:
    """:func:`_levels_by_ranges` for a tree whose ranges no longer nest (one edited with
    ``Tree.edit``: the nodes of a removed stretch collapse onto its edge), by counting the
    scopes among each node's parents."""
    inside = set(scopes)
    levels: Counter[int] = Counter()
    for node in scopes:
        level, parent = 1, node.parent
        while parent is not None:
            level += parent in inside
            parent = parent.parent
        levels[level] += 1
    return levels


def _tally(tree: tree_sitter.Tree, g: _Grammar, deadline: float,
           spans: list[tuple[int, int]] | None = None, edited: bool = False
           ) -> _Tally | None:
    """The tally of ``tree``'s nodes (those intersecting ``spans`` where given; errors
    aside, see :func:`_errors`), or None past ``deadline``. ``edited``: the tree was edited
    (``Tree.edit``) and its ranges do not nest.
    Counting runs in tree-sitter's query engine: a walk over every node in Python took 40% of
    the whole measurement (``benchmarks/bench_parse.py``)."""
    found = _captures(g.query, tree.root_node, deadline, spans)
    if found is None:
        return None
    branches = len(found.get("b", ())) + len(found.get("o", ()))
    for node in found.get("d", ()):
        first = node.child(0)
        if first is None or first.type != "default":
            branches += 1
    scopes = [n for n in found.get("s", ()) if n.child_count]
    levels = _levels_by_parents(scopes) if edited else _levels_by_ranges(scopes)
    return _Tally(branches, len(found.get("f", ())), 0, levels)


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


@dataclass(frozen=True)
class Parsed:
    """A text as tree-sitter read it, with its tally: what :func:`measure` needs to measure
    an edit of the text from it rather than from scratch."""

    language: str
    data: bytes
    line_starts: np.ndarray
    tree: tree_sitter.Tree
    tally: _Tally
    from_base: bool = False  # parsed and counted incrementally, from an earlier version


def _advance(point: tuple[int, int], text: bytes) -> tuple[int, int]:
    """Where ``point`` moves to past ``text``."""
    lines = text.count(b"\n")
    if not lines:
        return point[0], point[1] + len(text)
    return point[0] + lines, len(text) - (text.rfind(b"\n") + 1)


_SPAN_GAP = 2048  # ranges closer than this are counted as one (a query per range costs more)


def _spans(ranges: list[tuple[int, int]], size: int) -> list[tuple[int, int]]:
    """Byte ranges widened by a byte on each side (so that a zero-width node at an edge is
    inside), clipped to the text (and a byte past its end) and merged where they come within
    ``_SPAN_GAP`` of each other."""
    out: list[tuple[int, int]] = []
    for lo, hi in sorted((max(0, lo - 1), min(size + 1, hi + 1)) for lo, hi in ranges):
        if out and lo <= out[-1][1] + _SPAN_GAP:
            out[-1] = (out[-1][0], max(hi, out[-1][1]))
        else:
            out.append((lo, hi))
    return out


def _edited(base: Parsed, data: bytes, edits: list[Edit], g: _Grammar,
            parser: tree_sitter.Parser, deadline: float
            ) -> tuple[tree_sitter.Tree, _Tally] | None | bool:
    """The tree and tally of ``data``, an edit of ``base``: tree-sitter's incremental parse,
    then a count over what changed alone. The tally adds over disjoint node sets, so it is
    the base's, less what the nodes around the changes counted in the base's tree, plus what
    they count in the new one; a node that did not change intersects those ranges in both
    trees or in neither. False: measure the text whole (the edits do not describe the
    change, or the new text has syntax errors); None: past ``deadline``."""
    if not describes(base.data, data, edits):
        return False
    old = base.tree.copy()
    row = col = at = 0
    for lo_b, hi_b, lo_a, hi_a in edits:
        # positions before this edit are the new text's already (the earlier edits are in)
        start = _advance((row, col), data[at:lo_a])
        end = _advance(start, data[lo_a:hi_a])
        old.edit(start_byte=lo_a, old_end_byte=lo_a + hi_b - lo_b, new_end_byte=hi_a,
                 start_point=start, old_end_point=_advance(start, base.data[lo_b:hi_b]),
                 new_end_point=end)
        (row, col), at = end, hi_a
    tree = parsing.parse_with(parser, data, deadline, old)
    if tree is None:
        return None
    if tree.root_node.has_error:
        # tree-sitter's error recovery depends on the path taken: an incremental parse of
        # text with errors can read it otherwise than a parse from scratch (tested), so
        # such a text is measured whole; a text without errors has one reading
        return False
    spans = _spans([(r.start_byte, r.end_byte) for r in old.changed_ranges(tree)]
                   + [(lo_a, hi_a) for _, _, lo_a, hi_a in edits], len(data))
    if spans and spans[0][0] == 0:
        # a change at the very start: the nodes of a stretch removed there collapse to zero
        # width at byte 0, where no byte range reaches them; count the new tree whole
        tally = _tally(tree, g, deadline)
        return (tree, tally) if tally is not None else None
    removed = _tally(old, g, deadline, spans, edited=True)
    added = _tally(tree, g, deadline, spans)
    if removed is None or added is None:
        return None
    tally = base.tally.changed(removed, added)
    return (tree, tally) if tally is not None else False


def measure(text: str, language: str, timeout_ms: int = DEFAULT_TIMEOUT_MS,
            base: Parsed | None = None, hunks: Sequence[Hunk] | None = None
            ) -> tuple[Complexity, Parsed | None]:
    """The :class:`Complexity` of ``text`` (:func:`analyze`), and, where tree-sitter read it,
    the :class:`Parsed` text to measure its edits from.

    With ``base`` (an earlier version, in the same language) and ``hunks`` (git's line hunks
    from it to ``text``), the text is parsed incrementally and only the nodes around the changes are
    counted: the cost follows the size of the edit, as tokenizing does, not of the file.
    The result is the same as measuring the text whole (``tests/test_complexity.py``
    checks it over every edit of the corpus histories); edits that do not describe the
    change are found out (the unchanged bytes are compared) and the text is measured whole.
    """
    if timeout_ms <= 0:
        raise ConfigError(f"the complexity timeout must be a positive number of milliseconds "
                          f"(got {timeout_ms}); the default is {DEFAULT_TIMEOUT_MS}")
    start = time.perf_counter()
    data = _encode(text)
    lines = _line_count(text)
    grammar = _grammar(language)
    tally = None
    parsed = None
    how = HOW_TEXT
    if grammar is not None:
        deadline = start + timeout_ms / 1000
        parser = parsing.parser(language)
        result: tuple[tree_sitter.Tree, _Tally] | None | bool = False
        starts = line_starts(data)
        if base is not None and hunks and base.language == language:
            result = _edited(base, data, byte_edits(base.line_starts, starts, hunks), grammar,
                             parser, deadline)
        from_base = bool(result)
        if result is False:
            tree = parsing.parse_with(parser, data, deadline)
            counted = _tally(tree, grammar, deadline) if tree is not None else None
            errors = _errors(tree, grammar, deadline) if counted is not None else None
            if counted is not None and errors is not None:
                counted.errors = errors
                result = (tree, counted)
            else:
                result = None
        if result:
            tree, tally = result
            parsed = Parsed(language, data, starts, tree, tally, from_base)
        how = HOW_TREE_SITTER if tally is not None else HOW_TIMEOUT
    if tally is not None:
        depth, branches, functions, errors = (tally.depth, tally.branches, tally.functions,
                                              tally.errors)
    else:
        depth, branches, functions = _text_measures(text, data, language)
        errors = 0
    with _counts_lock:
        _counts[how] += 1
    return (Complexity(language=language, how=how, lines=lines, bytes=len(data), depth=depth,
                       branches=branches, functions=functions, errors=errors,
                       score=score_of(depth, branches, lines)), parsed)


def analyze(text: str, language: str, timeout_ms: int = DEFAULT_TIMEOUT_MS) -> Complexity:
    """The :class:`Complexity` of ``text`` in ``language`` (a name from
    :func:`repofeed.store.languages.detect_language`): by tree-sitter where a grammar
    exists and the parse and count end within ``timeout_ms``; else from the text, with
    ``how`` saying which (``tree-sitter``, ``text``, ``timeout``)."""
    return measure(text, language, timeout_ms)[0]


def analysis_counts() -> dict[str, int]:
    """How many documents this process measured, by ``how`` (``timeout`` counts the parses
    that ran past their bound)."""
    with _counts_lock:
        return {how: _counts[how] for how in (HOW_TREE_SITTER, HOW_TEXT, HOW_TIMEOUT)}
