"""Comment and docstring removal: the variant of a document without its comments (issue 10).

The stored document is the commented original; this transform gives the variant without
comments, so a file that has none has no variant (:data:`NO_COMMENTS`).

What goes (the comment nodes of each grammar in :data:`repofeed.store.parsing.GRAMMARS`):

- ``comment`` (Python, JavaScript, TypeScript, TSX, Go, C, C++), ``line_comment`` and
  ``block_comment`` (Rust, Java; Rust's ``///`` and ``//!`` doc comments are line comments in
  its grammar and go too; ``#![doc = ...]`` attributes are code and stay), ``html_comment``
  (JavaScript's ``<!--`` line comments);
- comments inside C and C++ preprocessor lines: tree-sitter-c keeps ``// x`` inside a
  ``#define``'s value (``preproc_arg``) as text, so those values are scanned for comments
  outside string and character literals;
- Python docstrings: a string expression statement (not an f-string or bytes) first in a
  module, class or function body. A body left with no statement gets ``pass``.

What stays, because it changes what a tool does with the file (the pragma rule: a comment
that a compiler, type checker, linter, formatter or bundler reads is code):

- Python: the shebang and the encoding cookie (lines 1-2), ``# type:`` comments, and
  ``noqa``, ``pragma:``, ``pylint:``, ``mypy:``, ``pyright:``, ``fmt:``, ``isort:``,
  ``ruff:``, ``nosec``, ``yapf:`` pragmas;
- Go: ``//go:`` directives (``build``, ``generate``, ``embed``, ...), ``// +build``,
  ``//line``, ``//export``, ``//extern``, ``//nolint``, ``//lint:``, and the cgo preamble
  (the comments right before ``import "C"``, which are C code);
- JavaScript and TypeScript: ``eslint``, ``global``, ``jshint``, ``@ts-...``, ``prettier-ignore``,
  coverage (``istanbul``, ``c8``), ``@jsx``, ``@flow``, bundler annotations (``#__PURE__``,
  ``webpack...``, ``@vite-ignore``) and TypeScript's ``/// <reference ...>`` directives;
- Java: ``NOSONAR``, ``noinspection``, ``CHECKSTYLE``, ``@formatter:``, ``NOPMD``;
- C and C++: ``NOLINT``, ``clang-format on/off``, ``IWYU pragma``, fall-through markers (GCC's
  ``-Wimplicit-fallthrough`` reads them), ``NOTREACHED``, ``LINTED``, ``ARGSUSED``.

License headers are comments like any other and go (the original keeps them).

Layout rules, so the variant stays valid code and reads like code written without comments:
a comment alone on its line(s) takes its whole line(s) with it (unless the line before ends
in a backslash, whose continuation the newline ends); a trailing comment takes the spaces
before it; a block comment between tokens leaves one space (``a/*x*/b`` -> ``a b``), or one
newline where it held one in a language whose newlines end statements (Go, JavaScript,
TypeScript: ``return /*\\n*/ x`` keeps its automatic semicolon).

``seed`` and ``names`` are part of the transform interface; the removal draws nothing.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence

import tree_sitter

from repofeed.store import parsing
from repofeed.store.variants import TIMEOUT, Outcome, checked, source_errors

DECOMMENT_VERSION = 1
"""Bumped whenever the removal rules change (stored variants of an older version are
recomputed)."""

NO_COMMENTS = "no-comments"  # nothing to remove (or only pragmas): the original is comment-free
ONLY_COMMENTS = "only-comments"  # nothing but comments (and docstrings): no code would be left

COMMENT_TYPES = frozenset({"comment", "line_comment", "block_comment", "html_comment"})
"""The comment node types across the nine grammars."""

NEWLINE_SENSITIVE = frozenset({"go", "javascript", "typescript", "tsx"})
"""Languages where a newline can end a statement (automatic semicolons)."""

_JS_KEEP = re.compile(
    r"^(?://|/\*)\s*(?:eslint|global\b|globals\b|jshint|@ts-|prettier-ignore|istanbul\b|c8\b"
    r"|@jsx|@flow|#__PURE__|@__PURE__|#__NO_SIDE_EFFECTS__|webpack|@vite-ignore)"
    r"|^///\s*<(?:reference|amd-module|amd-dependency)\b")
_C_KEEP = re.compile(r"NOLINT|clang-format\s+(?:on|off)|IWYU\s+pragma|fall[\s-]*thr(?:ough|u)"
                     r"|NOTREACHED|LINTED|ARGSUSED", re.IGNORECASE)
KEEP: dict[str, re.Pattern[str]] = {
    "python": re.compile(r"^#\s*(?:type:|pragma:|pylint:|mypy:|pyright:|fmt:|isort:|ruff:"
                         r"|yapf:|nosec\b)|#\s*noqa\b", re.IGNORECASE),
    "go": re.compile(r"^//(?:go:|line |export |extern |nolint|lint:)|^//\s*\+build\b"),
    "javascript": _JS_KEEP,
    "typescript": _JS_KEEP,
    "tsx": _JS_KEEP,
    "java": re.compile(r"NOSONAR|noinspection|CHECKSTYLE|@formatter:|NOPMD"),
    "c": _C_KEEP,
    "cpp": _C_KEEP,
}
"""Per language: the comments kept (see the module docstring's pragma rule)."""

_CODING = re.compile(rb"^[ \t\f]*#.*?coding[:=][ \t]*[-\w.]+")
_BLANK = b" \t"

# A cut: (start, end, replacement); a removal has replacement None (the layout rules decide).
_Cut = tuple[int, int, "bytes | None"]


def decomment(text: str, language: str, *, seed: int, names: Sequence[str] = (),
              timeout_s: float = 2.0) -> Outcome:
    """``text`` without its comments (and, in Python, its docstrings), or the reason there is
    no such variant: :data:`NO_COMMENTS`, :data:`ONLY_COMMENTS`, or one of the interface's
    reasons."""
    del seed, names  # the removal draws nothing
    deadline = time.perf_counter() + timeout_s
    errors = source_errors(text, language, timeout_s)
    if isinstance(errors, Outcome):
        return errors
    data = text.encode("utf-8", "surrogatepass")
    tree = parsing.parse(data, language, _left(deadline))
    if tree is None:
        return Outcome(reason=TIMEOUT)
    cuts = comment_cuts(tree, data, language)
    if not cuts:
        return Outcome(reason=NO_COMMENTS)
    cut_starts = {start for start, _, _ in cuts}
    if all(child.type in COMMENT_TYPES or child.start_byte in cut_starts
           for child in tree.root_node.named_children):
        return Outcome(reason=ONLY_COMMENTS)
    variant = apply_cuts(data, cuts, language).decode("utf-8", "surrogatepass")
    return checked(text, variant, language, _left(deadline), errors)


def _left(deadline: float) -> float:
    return max(0.001, deadline - time.perf_counter())


def comment_cuts(tree: tree_sitter.Tree, data: bytes, language: str) -> list[_Cut]:
    """Every span to remove from ``data`` (sorted, not overlapping): its comments, the
    comments in C preprocessor values, and Python docstrings."""
    keep = KEEP.get(language)
    kept_before = _cgo_preamble(tree) if language == "go" else set()
    cuts: list[_Cut] = []
    stack = [tree.root_node]
    while stack:
        node = stack.pop()
        kind = node.type
        if kind in COMMENT_TYPES:
            if node.start_byte not in kept_before and not _kept(node, data, language, keep):
                # (Rust's doc comments hold their newline: _removal leaves it)
                cuts.append((node.start_byte, node.end_byte, None))
            continue
        if kind == "preproc_arg":
            cuts.extend(_preproc_comments(data, node.start_byte, node.end_byte, keep))
            continue
        if language == "python" and kind in ("module", "block"):
            cut = _docstring_cut(node, data)
            if cut is not None:
                cuts.append(cut)
        stack.extend(reversed(node.children))
    cuts.sort()
    return cuts


def _kept(node: tree_sitter.Node, data: bytes, language: str,
          keep: re.Pattern[str] | None) -> bool:
    """Whether the comment ``node`` is a pragma, a shebang or an encoding cookie."""
    body = data[node.start_byte:node.end_byte]
    if language == "python":
        if node.start_byte == 0 and body.startswith(b"#!"):
            return True
        if node.start_point[0] <= 1 and _CODING.match(body):
            return True
    return keep is not None and keep.search(body.decode("utf-8", "replace")) is not None


def _cgo_preamble(tree: tree_sitter.Tree) -> set[int]:
    """Start offsets of the comments right before ``import "C"`` (cgo reads them as C)."""
    kept: set[int] = set()
    for node in tree.root_node.children:
        if node.type != "import_declaration" or b'"C"' not in (node.text or b""):
            continue
        previous = node.prev_sibling
        while previous is not None and previous.type == "comment":
            kept.add(previous.start_byte)
            previous = previous.prev_sibling
    return kept


def _preproc_comments(data: bytes, start: int, end: int,
                      keep: re.Pattern[str] | None) -> list[_Cut]:
    """Comments in a C preprocessor value (``#define X 1 // one``), which tree-sitter-c leaves
    inside the ``preproc_arg`` text: a scan that skips string and character literals."""
    cuts: list[_Cut] = []
    i = start
    while i < end:
        char = data[i:i + 1]
        if char in (b'"', b"'"):
            i += 1
            while i < end and data[i:i + 1] != char:
                i += 2 if data[i:i + 1] == b"\\" else 1
            i += 1
        elif data.startswith(b"/*", i):
            close = data.find(b"*/", i + 2, end)
            stop = end if close < 0 else close + 2
            cuts.append((i, stop, None))
            i = stop
        elif data.startswith(b"//", i):
            cuts.append((i, end, None))
            i = end
        else:
            i += 1
    if keep is not None:
        cuts = [cut for cut in cuts
                if keep.search(data[cut[0]:cut[1]].decode("utf-8", "replace")) is None]
    return cuts


def _docstring_cut(body: tree_sitter.Node, data: bytes) -> _Cut | None:
    """The cut that removes the docstring of a Python module, class or function ``body``."""
    if body.type == "block":
        parent = body.parent
        if parent is None or parent.type not in ("function_definition", "class_definition"):
            return None
    statements = [child for child in body.named_children if child.type not in COMMENT_TYPES]
    if not statements or not _is_docstring(statements[0], data):
        return None
    first = statements[0]
    following = first.next_sibling
    if following is not None and following.type == ";":
        end = following.end_byte
        while data[end:end + 1] in (b" ", b"\t"):
            end += 1
        return (first.start_byte, end, b"")
    if len(statements) == 1 and body.type == "block":
        return (first.start_byte, first.end_byte, b"pass")
    return (first.start_byte, first.end_byte, None)


def _is_docstring(statement: tree_sitter.Node, data: bytes) -> bool:
    if statement.type != "expression_statement" or statement.named_child_count != 1:
        return False
    value = statement.named_children[0]
    while value.type == "parenthesized_expression" and value.named_child_count == 1:
        value = value.named_children[0]
    if value.type == "concatenated_string":
        parts = value.named_children
    elif value.type == "string":
        parts = [value]
    else:
        return False
    for part in parts:
        prefix = data[part.start_byte:part.end_byte].split(b'"', 1)[0].split(b"'", 1)[0]
        if re.search(rb"[fFbBtT]", prefix):  # f-strings, bytes, templates: no docstring
            return False
    return True


def apply_cuts(data: bytes, cuts: list[_Cut], language: str) -> bytes:
    """``data`` with ``cuts`` applied by the layout rules of the module docstring."""
    out: list[bytes] = []
    position = 0
    for start, end, replacement in _merged(data, cuts):
        if replacement is not None:
            out.append(data[position:start])
            out.append(replacement)
            position = end
            continue
        start, end, replacement = _removal(data, start, end, language)
        start = max(start, position)
        out.append(data[position:start])
        out.append(replacement)
        position = end
    out.append(data[position:])
    return b"".join(out)


def _merged(data: bytes, cuts: list[_Cut]) -> list[_Cut]:
    """Removals that only blanks on one line separate (``/* a */ /* b */``) become one."""
    merged: list[_Cut] = []
    for cut in cuts:
        if (merged and cut[2] is None and merged[-1][2] is None
                and not data[merged[-1][1]:cut[0]].strip(_BLANK)):
            merged[-1] = (merged[-1][0], cut[1], None)
        else:
            merged.append(cut)
    return merged


def _removal(data: bytes, start: int, end: int, language: str) -> tuple[int, int, bytes]:
    """The span a comment at ``[start, end)`` really takes, and what replaces it."""
    while end > start and data[end - 1:end] in (b"\n", b"\r"):  # the line's end is no comment
        end -= 1
    line_start = data.rfind(b"\n", 0, start) + 1
    line_end = data.find(b"\n", end)
    if line_end < 0:
        line_end = len(data)
    eol = line_end - 1 if data[line_end - 1:line_end] == b"\r" and line_end > end else line_end
    before = data[line_start:start]
    after = data[end:eol]
    alone_before = not before.strip(_BLANK)
    alone_after = not after.strip(_BLANK)
    if alone_before and alone_after:
        if _continued(data, line_start) or line_end == len(data):
            # keep the newline that ends the continued line (or the file's last newline)
            return line_start, eol, b""
        return line_start, line_end + 1, b""
    if alone_after:  # a trailing comment, with the blanks before it
        return line_start + len(before.rstrip(_BLANK)), eol, b""
    held_newline = b"\n" in data[start:end] and language in NEWLINE_SENSITIVE
    if alone_before:  # a block comment before code on its line: the code keeps its place
        return start, end + len(after) - len(after.lstrip(_BLANK)), b""
    if held_newline:
        return line_start + len(before.rstrip(_BLANK)), end, b"\n"
    if data[start - 1:start] in (b" ", b"\t") or data[end:end + 1] in (b" ", b"\t"):
        return start, end, b""
    return start, end, b" "


def _continued(data: bytes, line_start: int) -> bool:
    """Whether the line before the one at ``line_start`` ends in a backslash (a line
    continuation: C macros, Python)."""
    last = line_start - 2
    if last >= 0 and data[last:last + 1] == b"\r":
        last -= 1
    return last >= 0 and data[last:last + 1] == b"\\"
