"""Reformatting: the same program laid out another way (issue 10).

A real formatter where one is installed, with settings drawn from the seed so that the variant
differs from a source that formatter already laid out:

- Python: ``ruff format`` (a dependency of repofeed, so always there): line length 80/100/120,
  indent width 2/4 or tabs, double or single quotes;
- Rust: ``rustfmt --edition 2024`` (or 2021 where 2024 fails): ``max_width`` 80/100/120,
  ``tab_spaces`` 2/4, hard tabs;
- Go: ``gofmt`` (it has no settings);
- C, C++, Java: ``clang-format``: LLVM/Google/Mozilla/WebKit style, indent width 2/4/8, column
  limit 80/100/120, attached or Allman braces; include sorting off (the order of includes can
  matter in C);
- JavaScript, TypeScript, TSX: ``prettier``: print width 80/100/120, tab width 2/4, tabs, single
  quotes.

Formatters are looked up next to this interpreter (the ``ruff`` wheel's binary), then on
``PATH``, then in ``~/.cargo/bin`` and ``~/go/bin``. Each runs without a shell, in an empty
temporary directory (so that no project configuration file applies), text on stdin, variant on
stdout, within what is left of ``timeout_s``; on timeout its whole process group is killed
(reason :data:`~repofeed.store.variants.TIMEOUT`). A formatter that exits non-zero or writes
bytes that are not UTF-8 (rustfmt: under both editions) drops the variant (:data:`FORMATTER_FAILED`;
there is no fallback, since a formatter that rejects the file may know better than a
tree-sitter grammar that it is no valid code); one whose output does not
parse is dropped by :func:`~repofeed.store.variants.checked`
(:data:`~repofeed.store.variants.NEW_ERRORS`).

Where no formatter is found for the language (a missing formatter is no error), where the
text is not valid UTF-8 (lone surrogates from ``surrogateescape`` decoding: no formatter
would take it), or where every setting tried leaves the layout as it was, the variant is a
layout change that tree-sitter shows to be safe (:func:`relayout`):

- every line's indentation is rewritten in another unit (2, 4 or 8 spaces, or tabs, drawn from
  the seed), leaving untouched the lines that start inside a token (a multi-line string,
  comment, template, preprocessor value). The new unit must keep every pair of indentations in
  order (equal stays equal, deeper stays deeper: Python's blocks), and Python never gets tabs
  after which spaces follow (Python compares tabs as 8 columns and as 1);
- in brace languages but Go, with even odds from the seed (or always, where the indentation
  cannot change), opening braces of blocks, bodies and lists that follow a token on their line
  move to a line of their own (:data:`BRACE_BLOCKS`).

The proof: the variant's tokens (type and text of every leaf, a string or comment counting as
one token, in order) and the tree's shape (every node's type and number of children, in order)
equal the source's; a variant that fails it is dropped (:data:`LAYOUT_UNSAFE`). The ordering
rule is checked on the indentations themselves, since tree-sitter-python accepts some dedents
Python rejects.

``names`` is part of the transform interface; reformatting uses none.
"""

from __future__ import annotations

import bisect
import functools
import os
import random
import re
import shutil
import signal
import subprocess
import sysconfig
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence

import tree_sitter

from repofeed.store import parsing
from repofeed.store.variants import TIMEOUT, UNCHANGED, Outcome, checked, source_errors

REFORMAT_VERSION = 1
"""Bumped whenever the formatter settings or the layout rules change."""

FORMATTER_FAILED = "formatter-failed"  # the formatter exited non-zero or wrote no UTF-8
LAYOUT_UNSAFE = "layout-unsafe"        # the tree-sitter layout change failed its proof

SETTINGS_TRIED = 3
"""How many settings (drawn from the seed) a formatter is run with before the layout change is
used instead, when each leaves the layout as it was."""

ATOMIC = re.compile(r"string|comment|char_literal|character_literal|rune_literal|^regex$"
                    r"|preproc_arg|jsx_text|heredoc|^template_string$|^template_literal_type$"
                    r"|text_block")
"""Node types read as one token: their text is never touched, and a line that starts inside
one keeps its indentation."""

INDENT_UNITS = ("  ", "    ", "        ", "\t")
"""The indentation units the layout change draws from."""

_EXTRA_DIRS = ("~/.cargo/bin", "~/go/bin", "/usr/local/go/bin")

Command = list[str]


def reformat(text: str, language: str, *, seed: int, names: Sequence[str] = (),
             timeout_s: float = 2.0,
             formatters: Mapping[str, Sequence[str]] | None = None) -> Outcome:
    """``text`` laid out another way, or the reason there is no such variant.

    ``formatters`` maps a language to a formatter command (``argv``, run as given: text on
    stdin, result on stdout) that replaces the default one; an empty command means no
    formatter (the tree-sitter layout change)."""
    del names
    deadline = time.perf_counter() + timeout_s
    errors = source_errors(text, language, timeout_s)
    if isinstance(errors, Outcome):
        return errors
    if _is_utf8(text):
        for alternatives in formatter_commands(language, seed, formatters):
            result = _first_taker(alternatives, text, deadline)
            if isinstance(result, Outcome):
                return result
            if result is not None and not same_layout(result, text):
                return checked(text, result, language, _left(deadline), errors)
    return relayout(text, language, seed=seed, timeout_s=_left(deadline),
                    source_error_count=errors)


def _first_taker(alternatives: list[Command], text: str, deadline: float
                 ) -> str | Outcome | None:
    """The output of the first of ``alternatives`` that takes ``text`` (exits 0); the failure
    where none does; None where none could be started."""
    failure = None
    for argv in alternatives:
        result = run_formatter(argv, text, _left(deadline))
        if not isinstance(result, Outcome) or result.reason != FORMATTER_FAILED:
            if result is not None:
                return result
        else:
            failure = result
    return failure


def _left(deadline: float) -> float:
    return max(0.001, deadline - time.perf_counter())


def _is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def same_layout(a: str, b: str) -> bool:
    """Whether ``a`` and ``b`` differ at most in trailing blanks and the final newlines (a
    formatter that only adds a final newline made no variant worth storing)."""
    return [line.rstrip() for line in a.rstrip().splitlines()] == \
        [line.rstrip() for line in b.rstrip().splitlines()]


# --- formatters -------------------------------------------------------------------------------

def find_program(program: str) -> str | None:
    """The path of ``program`` (a name looked up next to this interpreter first, so that the
    ``ruff`` repofeed depends on wins over an older one on PATH; then on PATH; then in the
    usual toolchain directories; or a path), or None where it is not there."""
    if os.sep in program:
        return program if os.access(program, os.X_OK) else None
    return (shutil.which(program, path=sysconfig.get_path("scripts"))
            or shutil.which(program)
            or shutil.which(program, path=os.pathsep.join(os.path.expanduser(d)
                                                          for d in _EXTRA_DIRS)))


def _ruff(language: str, rng: random.Random) -> list[list[Command]]:
    combos = [(width, indent, quote) for width in (80, 100, 120) for indent in ("2", "4", "tab")
              for quote in ("double", "single")]
    rng.shuffle(combos)
    commands = []
    for width, indent, quote in combos[:SETTINGS_TRIED]:
        style = ("format.indent-style='tab'" if indent == "tab" else f"indent-width={indent}")
        commands.append([["ruff", "format", "--isolated", "--stdin-filename", "x.py",
                          "--line-length", str(width), "--config", style,
                          "--config", f"format.quote-style='{quote}'", "-"]])
    return commands


def _rustfmt(language: str, rng: random.Random) -> list[list[Command]]:
    combos = [(width, spaces, tabs) for width in (80, 100, 120) for spaces in (2, 4)
              for tabs in ("false", "true")]
    rng.shuffle(combos)
    # the crate's edition is unknown: 2024 first (let chains), 2021 where that fails (`gen`
    # was no keyword before 2024)
    return [[["rustfmt", "--emit", "stdout", "--edition", edition, "--config",
              f"max_width={width},tab_spaces={spaces},hard_tabs={tabs}"]
             for edition in ("2024", "2021")]
            for width, spaces, tabs in combos[:SETTINGS_TRIED]]


def _gofmt(language: str, rng: random.Random) -> list[list[Command]]:
    return [[["gofmt"]]]


def _clang_format(language: str, rng: random.Random) -> list[list[Command]]:
    extension = {"c": "c", "cpp": "cpp", "java": "java"}[language]
    combos = [(base, indent, width, braces)
              for base in ("LLVM", "Google", "Mozilla", "WebKit") for indent in (2, 4, 8)
              for width in (80, 100, 120) for braces in ("Attach", "Allman")]
    rng.shuffle(combos)
    return [[["clang-format", f"--assume-filename=x.{extension}",
              f"--style={{BasedOnStyle: {base}, IndentWidth: {indent}, ColumnLimit: {width}, "
              f"BreakBeforeBraces: {braces}, SortIncludes: false}}"]]
            for base, indent, width, braces in combos[:SETTINGS_TRIED]]


def _prettier(language: str, rng: random.Random) -> list[list[Command]]:
    extension = {"javascript": "js", "typescript": "ts", "tsx": "tsx"}[language]
    combos = [(width, tab, tabs, single) for width in (80, 100, 120) for tab in (2, 4)
              for tabs in (False, True) for single in (False, True)]
    rng.shuffle(combos)
    commands = []
    for width, tab, tabs, single in combos[:SETTINGS_TRIED]:
        command = ["prettier", "--stdin-filepath", f"x.{extension}", "--print-width",
                   str(width), "--tab-width", str(tab)]
        command += ["--use-tabs"] * tabs + ["--single-quote"] * single
        commands.append([command])
    return commands


FORMATTERS: dict[str, Callable[[str, random.Random], list[list[Command]]]] = {
    "python": _ruff,
    "rust": _rustfmt,
    "go": _gofmt,
    "c": _clang_format,
    "cpp": _clang_format,
    "java": _clang_format,
    "javascript": _prettier,
    "typescript": _prettier,
    "tsx": _prettier,
}
"""Language -> the default formatter's commands, settings drawn from the seed: one group per
setting, tried in turn until the layout changes; within a group, alternatives tried where the
one before fails (rustfmt's editions)."""


def formatter_commands(language: str, seed: int,
                       formatters: Mapping[str, Sequence[str]] | None = None
                       ) -> list[list[Command]]:
    """The formatter commands to try for ``language`` (as :data:`FORMATTERS` gives them,
    programs resolved to paths), or none where no formatter is installed."""
    if formatters is not None and language in formatters:
        groups = [[list(formatters[language])]] if formatters[language] else []
    elif language in FORMATTERS:
        groups = FORMATTERS[language](language, random.Random(f"reformat:{seed}"))
    else:
        groups = []
    found = []
    for group in groups:
        commands = []
        for argv in group:
            program = find_program(argv[0])
            if program is not None:
                commands.append([program, *argv[1:]])
        if commands:
            found.append(commands)
    return found


def formatter_version(language: str,
                      formatters: Mapping[str, Sequence[str]] | None = None) -> str | None:
    """What ``<formatter> --version`` says for the formatter ``reformat`` would run on
    ``language`` (the first line), ``"none"`` where there is none (the layout change), or None
    where it says nothing. Stored variants depend on it as much as on
    :data:`REFORMAT_VERSION`: a store can keep it beside the version, to redo the variants
    when the formatter changes."""
    commands = formatter_commands(language, 0, formatters)
    return _version(commands[0][0][0]) if commands else "none"


@functools.lru_cache(maxsize=32)
def _version(program: str) -> str | None:
    try:
        done = subprocess.run([program, "--version"], capture_output=True, timeout=10,
                              stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired):
        return None
    lines = done.stdout.decode("utf-8", "replace").strip().splitlines()
    return lines[0] if done.returncode == 0 and lines else None


def run_formatter(argv: Sequence[str], text: str, timeout_s: float) -> str | Outcome | None:
    """The formatter's output for ``text``; an Outcome where it timed out (its process group
    killed) or failed; None where it could not be started (a missing formatter)."""
    with tempfile.TemporaryDirectory(prefix="repofeed-format-") as cwd:
        try:
            process = subprocess.Popen(list(argv), stdin=subprocess.PIPE,
                                       stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                       cwd=cwd, start_new_session=True)
        except OSError:
            return None
        try:
            output, _ = process.communicate(text.encode("utf-8"), timeout=timeout_s)
        except subprocess.TimeoutExpired:
            _kill(process)
            return Outcome(reason=TIMEOUT)
        except BaseException:
            _kill(process)
            raise
    if process.returncode != 0:
        return Outcome(reason=FORMATTER_FAILED)
    try:
        return output.decode("utf-8")
    except UnicodeDecodeError:
        return Outcome(reason=FORMATTER_FAILED)


def _kill(process: subprocess.Popen[bytes]) -> None:
    """Kill ``process`` and everything it started (its own session's process group)."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    for stream in (process.stdin, process.stdout):
        if stream is not None:
            stream.close()
    process.wait()


# --- the tree-sitter layout change ------------------------------------------------------------

def tokens(tree: tree_sitter.Tree, data: bytes) -> tuple[list[tuple[str, bytes]],
                                                         list[tuple[int, int]]]:
    """The tokens of ``tree`` over ``data``: (type, text) of every leaf and atomic node (see
    :data:`ATOMIC`) with text, in order, plus the text between two of them that is not blank
    (stripped, as type ``""``: a line continuation, or text inside a node that no leaf holds);
    and the tokens' spans."""
    found, spans, _ = _walk(tree, data)
    return found, spans


def shape(tree: tree_sitter.Tree) -> list[tuple[str, int]]:
    """Every node's type and number of children, in order (which fixes the tree), an atomic
    node's inside left out: a tree-sitter tree's structure."""
    return _walk(tree, b"")[2]


_atomic: dict[str, bool] = {}


def _walk(tree: tree_sitter.Tree, data: bytes) -> tuple[list[tuple[str, bytes]],
                                                        list[tuple[int, int]],
                                                        list[tuple[str, int]]]:
    """:func:`tokens` and :func:`shape` in one walk (a cursor: no child lists)."""
    found: list[tuple[str, bytes]] = []
    spans: list[tuple[int, int]] = []
    types: list[tuple[str, int]] = []
    last = -1
    cursor = tree.walk()
    while True:
        node = cursor.node
        kind = node.type
        atomic = _atomic.get(kind)
        if atomic is None:
            atomic = _atomic[kind] = ATOMIC.search(kind) is not None
        types.append((kind, 0 if atomic else node.child_count))
        if atomic or not cursor.goto_first_child():
            start, end = node.start_byte, node.end_byte
            if end > start:
                if 0 <= last < start:
                    gap = data[last:start].strip()
                    if gap:  # text no leaf holds: compared as it is, blanks inside it too
                        found.append(("", gap))
                found.append((kind, data[start:end]))
                spans.append((start, end))
                last = end
            while not cursor.goto_next_sibling():
                if not cursor.goto_parent():
                    return found, spans, types


def relayout(text: str, language: str, *, seed: int, timeout_s: float = 2.0,
             source_error_count: int = 0) -> Outcome:
    """``text`` laid out another way (re-indented in another unit, and in brace languages
    other than Go, JavaScript and TypeScript's restricted spots, opening braces on a line of
    their own), choices drawn from ``seed``, if tree-sitter shows the change to be safe (same
    tokens, same tree shape); else the reason there is none."""
    deadline = time.perf_counter() + timeout_s
    data = text.encode("utf-8", "surrogatepass")
    tree = parsing.parse(data, language, _left(deadline))
    if tree is None:
        return Outcome(reason=TIMEOUT)
    source_tokens, spans, source_shape = _walk(tree, data)
    rng = random.Random(f"relayout:{seed}")
    lines = _indented_lines(data, spans)
    new_indents = _reindent(lines, rng, language)
    edits = [(start, start + len(blanks), new)
             for (start, blanks), new in zip(lines, new_indents or ())]
    if language in BRACE_BLOCKS and (rng.random() < 0.5 or not edits):
        indents = {start: new for (start, _), new in zip(lines, new_indents or ())}
        edits += _brace_edits(tree, data, spans, BRACE_BLOCKS[language], indents)
    if not edits:
        return Outcome(reason=LAYOUT_UNSAFE if lines else UNCHANGED)
    variant = _applied(data, edits)
    if time.perf_counter() > deadline:
        return Outcome(reason=TIMEOUT)
    new_tree = parsing.parse(variant, language, _left(deadline))
    if new_tree is None:
        return Outcome(reason=TIMEOUT)
    new_tokens, _, new_shape = _walk(new_tree, variant)
    if new_tokens != source_tokens or new_shape != source_shape:
        return Outcome(reason=LAYOUT_UNSAFE)
    return checked(text, variant.decode("utf-8", "surrogatepass"), language, _left(deadline),
                   source_error_count)


BRACE_BLOCKS: dict[str, frozenset[str]] = {
    "c": frozenset({"compound_statement", "field_declaration_list", "declaration_list"}),
    "cpp": frozenset({"compound_statement", "field_declaration_list", "declaration_list"}),
    "java": frozenset({"block", "class_body", "constructor_body", "interface_body",
                       "enum_body"}),
    "rust": frozenset({"block", "declaration_list", "field_declaration_list", "match_block"}),
    "javascript": frozenset({"statement_block", "class_body"}),
    "typescript": frozenset({"statement_block", "class_body", "interface_body"}),
    "tsx": frozenset({"statement_block", "class_body", "interface_body"}),
}
"""Per language, the nodes whose opening brace may move to a line of its own. None in Go (a
newline after ``)`` ends the statement); in JavaScript and TypeScript only statement blocks and
class bodies (an object literal after ``return`` would become an empty return)."""


def _indented_lines(data: bytes, spans: list[tuple[int, int]]) -> list[tuple[int, bytes]]:
    """(line start, leading blanks) of every line with code after its indentation that does
    not start inside a token."""
    starts = [start for start, _ in spans]
    lines = []
    position = 0
    while position < len(data):
        end = data.find(b"\n", position)
        end = len(data) if end < 0 else end
        line = data[position:end]
        blanks = line[:len(line) - len(line.lstrip(b" \t"))]
        if blanks and len(blanks) < len(line.rstrip(b"\r")):
            index = bisect.bisect_left(starts, position) - 1
            if index < 0 or spans[index][1] <= position:
                lines.append((position, blanks))
        position = end + 1
    return lines


def _reindent(lines: list[tuple[int, bytes]], rng: random.Random,
              language: str) -> list[bytes] | None:
    """The new indentation of each of ``lines``, in a unit other than the file's own, or None
    where no unit keeps the order of indentations (or the file mixes tabs and spaces, or has
    no indentation)."""
    if not lines or any(b"\f" in blanks for _, blanks in lines):
        return None
    tabbed = sum(blanks.startswith(b"\t") for _, blanks in lines)
    if 0 < tabbed < len(lines):
        return None
    if tabbed:
        unit = b"\t"
        split = [(len(b) - len(b.lstrip(b"\t")), b.lstrip(b"\t")) for _, b in lines]
        if language == "python" and any(b"\t" in rest for _, rest in split):
            return None
    else:
        if any(b"\t" in blanks for _, blanks in lines):
            return None
        widths = [len(blanks) for _, blanks in lines]
        unit = b" " * _space_unit(widths)
        split = [(width // len(unit), b" " * (width % len(unit))) for width in widths]
    choices = [u.encode() for u in INDENT_UNITS if u.encode() != unit]
    rng.shuffle(choices)
    for new_unit in choices:
        if _keeps_order(split, unit, new_unit, language):
            return [new_unit * level + rest for level, rest in split]
    return None


def _brace_edits(tree: tree_sitter.Tree, data: bytes, spans: list[tuple[int, int]],
                 blocks: frozenset[str], indents: dict[int, bytes]) -> list[tuple[int, int, bytes]]:
    """Edits that put the opening brace of each of ``blocks`` that follows a token on its own
    line onto the next line, indented as the line it was on (``indents``: the new indentation
    of re-indented lines, by line start)."""
    starts = [start for start, _ in spans]
    edits = []
    stack = [tree.root_node]
    while stack:
        node = stack.pop()
        if ATOMIC.search(node.type):
            continue
        stack.extend(node.children)
        if node.type not in blocks or not node.children or node.children[0].type != "{":
            continue
        brace = node.children[0].start_byte
        index = bisect.bisect_left(starts, brace) - 1
        if index < 0:
            continue
        before = spans[index][1]
        if data[before:brace].strip(b" \t") or data[spans[index][0]:before].startswith(b"//"):
            continue
        line_start = data.rfind(b"\n", 0, brace) + 1
        indent = indents.get(line_start)
        if indent is None:
            line = data[line_start:brace]
            indent = line[:len(line) - len(line.lstrip(b" \t"))]
        edits.append((before, brace, b"\n" + indent))
    return edits


def _applied(data: bytes, edits: list[tuple[int, int, bytes]]) -> bytes:
    out = []
    position = 0
    for start, end, replacement in sorted(edits):
        out.append(data[position:start])
        out.append(replacement)
        position = end
    out.append(data[position:])
    return b"".join(out)


def _keeps_order(split: list[tuple[int, bytes]], unit: bytes, new_unit: bytes,
                 language: str) -> bool:
    """Whether indenting with ``new_unit`` keeps every pair of indentations in the same order
    (equal ones equal, deeper ones deeper), as Python's blocks need. Python compares
    indentations with tabs as 8 columns and as 1, and both must agree: with tabs, no
    indentation may end in spaces."""
    if new_unit == b"\t" and language == "python" and any(rest for _, rest in split):
        return False

    def width(indent: bytes) -> int:
        return len(indent.expandtabs(8))

    old = sorted({(width(unit * level + rest), width(new_unit * level + rest))
                  for level, rest in split})
    return all(a[1] < b[1] for a, b in zip(old, old[1:]))


def _space_unit(widths: list[int]) -> int:
    """The indentation unit of space-indented lines: the largest of 8, 4, 3 and 2 that
    divides 90% of their widths, else 1 (every column a level: still a consistent change)."""
    for unit in (8, 4, 3, 2):
        if sum(width % unit == 0 for width in widths) >= 0.9 * len(widths):
            return unit
    return 1
