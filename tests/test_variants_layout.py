"""Comment removal and reformatting variants (issue 10): in the nine languages, on real code
(the standard library's own modules), with real formatters (ruff, rustfmt where installed)
and fake ones that are real processes (scripts that hang, fail or write broken code)."""

from __future__ import annotations

import ast
import heapq
import importlib.util
import inspect
import os
import re
import shlex
import shutil
import stat
import subprocess
import textwrap
import time
from pathlib import Path

import pytest

from repofeed.store import parsing
from repofeed.store.variants import NEW_ERRORS, NO_GRAMMAR, TIMEOUT, UNCHANGED, UNPARSED, Outcome
from repofeed.store.variants.comments import (
    COMMENT_TYPES,
    KEEP,
    NO_COMMENTS,
    ONLY_COMMENTS,
    decomment,
)
from repofeed.store.variants.reformat import (
    FORMATTER_FAILED,
    find_program,
    formatter_version,
    reformat,
    relayout,
    shape,
    tokens,
)

SAMPLES = {
    "python": '''#!/usr/bin/env python
# -*- coding: utf-8 -*-
"""A module docstring."""
import os  # noqa: F401

# A comment alone on its line.
def area(width, height):
    """The area."""
    text = """a multi-line string
    # not a comment
        keeps its lines"""
    return width * height  # trailing


class Shape:
    """Only a docstring."""


def one_line(): "doc"
''',
    "rust": '''//! Crate documentation.

/// Adds one.
fn add_one(x: i32) -> i32 {
    // a comment
    let s = "a // not a comment
        second line";
    x /* inline */ + 1 + s.len() as i32 // trailing
}
''',
    "javascript": '''// Header comment.
function total(items) {
    /* block
       comment */
    let sum = 0; // trailing
    for (const item of items) {
        sum += item.price/*x*/*2;
    }
    const note = `template // not a comment
        line`;
    return sum;
}
''',
    "typescript": '''// A comment.
export function greet(name: string): string {
    /** Doc block. */
    const message: string = "hi /* not a comment */ " + name; // trailing
    return message;
}
''',
    "tsx": '''// A component.
export function Badge(props: { label: string }) {
    return (
        <span className="badge" title="// not a comment">
            {/* inside JSX */}
            {props.label}
        </span>
    );
}
''',
    "go": '''// Package demo says hello.
package demo

// Greet returns a greeting.
func Greet(name string) string {
\t// a comment
\ttext := `raw // not a comment
\t  line`
\treturn "hello " + name + text // trailing
}
''',
    "java": '''/** A class comment. */
public class Counter {
    // a comment
    private int count; /* trailing block */
    private String name = "// not a comment";

    /** Increments. */
    public void increment() {
        count += 1; // trailing
    }
}
''',
    "c": '''/* License header. */
#include <stdio.h> // for printf
#define LIMIT 10 /* the limit */
#define SQUARE(x) ((x) * (x)) // squares

int main(void) {
    // a comment
    int total = SQUARE(LIMIT);/*x*/printf("%d // not a comment\\n", total);
    return 0;
}
''',
    "cpp": '''// A C++ comment.
#include <vector>

namespace demo {
/* block */
int sum(const std::vector<int>& values) {
    int total = 0; // trailing
    const char* s = R"(// not a comment
        line)";
    for (int v : values) {
        total += v;
    }
    return total;
}
}  // namespace demo
''',
}

LANGUAGES = sorted(SAMPLES)

# rustup's rustfmt finds its toolchain through the home directory, which conftest replaces
_TOOLCHAIN_HOMES = {name: os.environ.get(name, str(Path.home() / folder))
                    for name, folder in (("RUSTUP_HOME", ".rustup"), ("CARGO_HOME", ".cargo"))}


@pytest.fixture(autouse=True)
def toolchain_homes(isolated_home, monkeypatch):
    for name, path in _TOOLCHAIN_HOMES.items():
        if Path(path).is_dir():
            monkeypatch.setenv(name, path)


def _tree(text: str, language: str):
    tree = parsing.parse(text.encode("utf-8", "surrogatepass"), language, 5.0)
    assert tree is not None
    return tree


def _comments(text: str, language: str) -> list[str]:
    tree = _tree(text, language)
    data = text.encode("utf-8", "surrogatepass")
    found = []
    stack = [tree.root_node]
    while stack:
        node = stack.pop()
        if node.type in COMMENT_TYPES:
            found.append(data[node.start_byte:node.end_byte].decode().rstrip("\n"))
        stack.extend(reversed(node.children))
    return found


def _code_tokens(text: str, language: str) -> list[tuple[str, bytes]]:
    """The tokens that are not comments (a preprocessor value read without its comments)."""
    data = text.encode("utf-8", "surrogatepass")
    found, _ = tokens(_tree(text, language), data)
    code = []
    for kind, token in found:
        if kind in COMMENT_TYPES:
            continue
        if kind == "preproc_arg":
            token = re.sub(rb"/\*.*?\*/|//.*", b"", token, flags=re.S).strip()
        code.append((kind, token))
    return code


def _valid(outcome: Outcome, source: str, language: str) -> str:
    assert outcome.reason is None, outcome.reason
    assert outcome.text is not None and outcome.text != source
    assert parsing.error_count(_tree(outcome.text, language)) == 0
    return outcome.text


# --- comment removal ----------------------------------------------------------------------------

KEPT = {"python": ["#!/usr/bin/env python", "# -*- coding: utf-8 -*-", "# noqa: F401"]}


@pytest.mark.parametrize("language", LANGUAGES)
def test_decomment_removes_every_comment_and_keeps_the_code(language):
    source = SAMPLES[language]
    variant = _valid(decomment(source, language, seed=1), source, language)
    assert _comments(variant, language) == KEPT.get(language, [])
    assert "not a comment" in variant  # strings that look like comments stay whole
    if language != "python":  # Python's docstrings go too: see the AST tests below
        assert _code_tokens(variant, language) == _code_tokens(source, language)
    # a comment alone on its line takes the line with it: no line holds only blanks now
    # where the source had a comment
    assert not any(line.strip() == "" and line for line in variant.splitlines())


def test_decomment_python_docstrings_leave_valid_bodies():
    variant = decomment(SAMPLES["python"], "python", seed=1).text
    assert variant is not None
    assert "class Shape:\n    pass\n" in variant
    assert "def one_line(): pass\n" in variant
    assert '"""The area."""' not in variant and "A module docstring" not in variant
    assert "    # not a comment\n" in variant  # inside a string: untouched
    module = ast.parse(variant)
    assert ast.get_docstring(module) is None


@pytest.mark.parametrize("source, language, expected", [
    ("int a/*x*/=b/*y*/;\n", "c", "int a =b ;\n"),
    ("int f() { return a/*x*/-b; }\n", "cpp", "int f() { return a -b; }\n"),
    ("class A { int a = b/*x*/+c; }\n", "java", "class A { int a = b +c; }\n"),
    ("let x = 1;\n    // gone\nlet y = 2;\n", "javascript", "let x = 1;\nlet y = 2;\n"),
    ("let x = 1;   // gone\n", "typescript", "let x = 1;\n"),
    ("x = 1\n'''not first'''\n", "python", None),  # a string that is no docstring stays
    ('"""d"""; x = 1\n', "python", "x = 1\n"),
    ('def f():\n    f"""{x} is no docstring"""\n', "python", None),
    ("#define X 1 \\\n// c\nint y;\n", "c", "#define X 1 \\\n\nint y;\n"),
    ("#define X 1 \\\n/* c */\nint y;\n", "c", "#define X 1 \\\n\nint y;\n"),
    ('#define S "a//b" /* c */\n', "c", '#define S "a//b"\n'),
    ("x = 1  # c\r\n# alone\r\ny = 2\r\n", "python", "x = 1\r\ny = 2\r\n"),  # CRLF stays
    # a // comment that ends in a backslash goes on over the next line, in C: that line goes too
    ("int a; // comment \\\nint x = 1;\nint b;\n", "c", "int a;\nint b;\n"),
    ("#define A 1 // c \\\nint x = 1;\nint b;\n", "cpp", "#define A 1\nint b;\n"),
    ("/// d\r\nfn f() {}\r\n", "rust", "fn f() {}\r\n"),
])
def test_decomment_layout_rules(source, language, expected):
    outcome = decomment(source, language, seed=0)
    if expected is None:
        assert outcome.reason == NO_COMMENTS
    else:
        assert outcome.text == expected


def test_decomment_keeps_a_newline_that_ends_a_statement():
    """``return /* ... */ x`` with a newline in the comment returns undefined in JavaScript
    (an automatic semicolon): the variant keeps the newline, so it means the same."""
    source = "function f(x) {\n  return /* a\n  */ x;\n}\n"
    variant = decomment(source, "javascript", seed=0).text
    assert variant is not None
    assert re.search(r"return\s*\n\s*x;", variant)
    go = "package p\n\nfunc f() int {\n\tx := 1 /* a\n\t*/ + 2\n\treturn x\n}\n"
    assert "x := 1\n" in (decomment(go, "go", seed=0).text or "")


@pytest.mark.parametrize("language, source, kept, gone", [
    ("python", "# type: ignore\nimport os  # pylint: disable=unused-import\n# plain\n"
     "x = []  # type: list[int]\n",
     ["# type: ignore", "# pylint: disable", "# type: list[int]"], ["# plain"]),
    ("go", "//go:build linux\n// +build linux\n\n// Package p.\npackage p\n\n"
     "/*\n#include <stdio.h>\n*/\nimport \"C\"\n\n"
     "//go:generate stringer -type=T\n//go:embed x.txt\nvar s string // plain\n",
     ["//go:build linux", "// +build linux", "#include <stdio.h>", "//go:generate",
      "//go:embed"], ["// Package p.", "// plain"]),
    ("javascript", "/* eslint-disable no-console */\n// plain\nconst x = /*#__PURE__*/ f();\n",
     ["eslint-disable", "#__PURE__"], ["// plain"]),
    ("typescript", '/// <reference types="node" />\n// @ts-ignore\nlet x: number = y; // plain\n',
     ["/// <reference", "// @ts-ignore"], ["// plain"]),
    ("c", "int f(int a) {\n  switch (a) {\n  case 1: a++; /* fall through */\n  case 2: return a;"
     " // NOLINT\n  }\n  return 0; /* plain */\n}\n",
     ["/* fall through */", "// NOLINT"], ["/* plain */"]),
    ("rust", '#![doc = "Crate."]\n//! inner doc\n/// outer doc\nfn f() {} // plain\n',
     ['#![doc = "Crate."]'], ["//! inner doc", "/// outer doc", "// plain"]),
    ("java", "class A {\n  int a; // NOSONAR\n  int b; // plain\n}\n", ["// NOSONAR"],
     ["// plain"]),
])
def test_decomment_keeps_pragmas(language, source, kept, gone):
    variant = decomment(source, language, seed=0).text
    assert variant is not None
    for text in kept:
        assert text in variant
    for text in gone:
        assert text not in variant


def test_decomment_without_comments():
    assert decomment("x = 1\n", "python", seed=0).reason == NO_COMMENTS
    assert decomment("", "python", seed=0).reason == NO_COMMENTS
    assert decomment("# only\n'''a docstring'''\n", "python", seed=0).reason == ONLY_COMMENTS
    assert decomment("/* licence */\n// nothing else\n", "c", seed=0).reason == ONLY_COMMENTS
    assert decomment("#!/usr/bin/env python\n'Doc.'\n", "python", seed=0).reason == \
        ONLY_COMMENTS
    assert decomment("//go:build linux\n\npackage p\n", "go", seed=0).reason == NO_COMMENTS
    # the original with comments is the stored document; its variant has none, and the
    # variant of that variant is nothing
    variant = decomment(SAMPLES["rust"], "rust", seed=0).text
    assert decomment(variant, "rust", seed=0).reason == NO_COMMENTS


def _strip_docstrings(tree: ast.AST) -> ast.AST:
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if (body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
                    and isinstance(body[0].value.value, str)):
                body.pop(0)
                if not body and not isinstance(node, ast.Module):
                    body.append(ast.Pass())
    return tree


def _import(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


STDLIB_CALLS = {
    textwrap: lambda m: (m.wrap("The quick brown fox jumps over the lazy dog " * 5, 23),
                         m.dedent("    a\n      b\n    c\n"), m.shorten("Hello  world, again", 12),
                         m.indent("a\n\nb\n", "> "), m.fill("x " * 40, width=17)),
    shlex: lambda m: (m.split("a 'b c' \"d e\" f\\ g # h", comments=True),
                      m.quote("it's here"), m.join(["a b", "c"]),
                      list(m.shlex("x=1 && y", punctuation_chars=True))),
    heapq: lambda m: (m.nlargest(3, [5, 1, 8, 3, 9, 2]), m.nsmallest(2, "heapq"),
                      list(m.merge([1, 4, 7], [2, 5, 8], [3, 6, 9])),
                      m.nlargest(2, ["aa", "b", "cccc"], key=len)),
}


@pytest.mark.parametrize("module", list(STDLIB_CALLS), ids=lambda m: m.__name__)
def test_decomment_keeps_the_behaviour_of_real_python(module, tmp_path):
    source = Path(inspect.getsourcefile(module)).read_text(encoding="utf-8")
    variant = _valid(decomment(source, "python", seed=0, timeout_s=10.0), source, "python")
    left = _comments(variant, "python")
    assert len(left) < len(_comments(source, "python"))
    assert all(KEEP["python"].search(comment) for comment in left)
    assert ast.dump(ast.parse(variant)) == ast.dump(_strip_docstrings(ast.parse(source)))
    path = tmp_path / f"decommented_{module.__name__}.py"
    path.write_text(variant, encoding="utf-8")
    copy = _import(path, path.stem)
    assert STDLIB_CALLS[module](copy) == STDLIB_CALLS[module](module)


# --- reformatting ------------------------------------------------------------------------------

NO_FORMATTER = {language: () for language in LANGUAGES}


@pytest.mark.parametrize("language", LANGUAGES)
def test_relayout_changes_only_whitespace(language):
    source = SAMPLES[language]
    outcome = reformat(source, language, seed=5, formatters=NO_FORMATTER)
    variant = _valid(outcome, source, language)
    assert outcome == relayout(source, language, seed=5)
    data, new = source.encode(), variant.encode()
    assert tokens(_tree(variant, language), new)[0] == tokens(_tree(source, language), data)[0]
    assert shape(_tree(variant, language)) == shape(_tree(source, language))
    assert re.sub(r"\s+", "", variant) == re.sub(r"\s+", "", source)
    # lines inside multi-line strings keep their exact text
    for line in source.splitlines():
        if re.match(r"\s*(# not a comment|keeps its lines|line|second line|comment \*/)\b",
                    line):
            assert line in variant.splitlines()


@pytest.mark.parametrize("language, source, safe, unsafe", [
    ("rust", 'fn f() {\n    let s = "a\n    b";\n}\n', 'fn f() {\n  let s = "a\n    b";\n}\n',
     'fn f() {\n    let s = "a\n  b";\n}\n'),
    ("python", "if x:\n    a()\n    b()\n", "if x:\n  a()\n  b()\n", "if x:\n    a()\nb()\n"),
    ("c", "#define F(a, \\\n    b) a\n", "#define F(a, \\\n  b) a\n", "#define F(a, \\\n  c) a\n"),
])
def test_the_layout_proof_tells_safe_from_unsafe(language, source, safe, unsafe):
    """The proof the layout change passes: same tokens and same tree shape. Whitespace inside
    a string, or a line that leaves its block, fails it."""
    def proof(text: str) -> tuple[object, object]:
        return tokens(_tree(text, language), text.encode())[0], shape(_tree(text, language))

    assert proof(safe) == proof(source)
    assert proof(unsafe) != proof(source)


def test_relayout_draws_its_unit_from_the_seed():
    source = SAMPLES["java"]
    variants = {reformat(source, "java", seed=seed, formatters=NO_FORMATTER).text
                for seed in range(12)}
    assert len(variants) >= 2 and source not in variants
    again = reformat(source, "java", seed=3, formatters=NO_FORMATTER)
    assert again == reformat(source, "java", seed=3, formatters=NO_FORMATTER)


@pytest.mark.parametrize("language", ["java", "c", "cpp", "rust", "javascript", "typescript"])
def test_relayout_moves_opening_braces_where_that_is_safe(language):
    source = {"java": "class A {\n    int f() {\n        return 1;\n    }\n}\n",
              "c": "int f(void) {\n    if (x) {\n        return 1;\n    }\n    return 0;\n}\n",
              "cpp": "namespace n {\nint f() {\n    return 1;\n}\n}\n",
              "rust": "fn f() -> i32 {\n    match x {\n        _ => 1,\n    }\n}\n",
              "javascript": "function f() {\n    return {\n        a: 1,\n    };\n}\n",
              "typescript": "function f(): object {\n    return {\n        a: 1,\n    };\n}\n",
              }[language]
    variants = [reformat(source, language, seed=seed, formatters=NO_FORMATTER).text
                for seed in range(10)]
    moved = [v for v in variants if v is not None and re.search(r"\)[^\n]*\n\s*\{", v)]
    assert moved, "no seed put an opening brace on its own line"
    for variant in moved:
        assert parsing.error_count(_tree(variant, language)) == 0
        if "return {" in source:  # an object literal stays after its return
            assert "return {" in variant


def test_relayout_never_moves_go_braces():
    source = SAMPLES["go"]
    for seed in range(10):
        variant = reformat(source, "go", seed=seed, formatters=NO_FORMATTER).text
        assert variant is not None and "string {\n" in variant


def test_relayout_keeps_python_behaviour(tmp_path):
    source = Path(inspect.getsourcefile(textwrap)).read_text(encoding="utf-8")
    variant = _valid(relayout(source, "python", seed=1, timeout_s=10.0), source, "python")
    assert ast.dump(ast.parse(variant)) == ast.dump(ast.parse(source))
    path = tmp_path / "relaid_textwrap.py"
    path.write_text(variant, encoding="utf-8")
    assert STDLIB_CALLS[textwrap](_import(path, path.stem)) == STDLIB_CALLS[textwrap](textwrap)


def test_relayout_of_flat_code_is_unchanged():
    assert reformat("x = 1\ny = 2\n", "python", seed=0, formatters=NO_FORMATTER).reason == \
        UNCHANGED
    assert reformat("", "python", seed=0).reason == UNCHANGED
    assert reformat("", "rust", seed=0, formatters=NO_FORMATTER).reason == UNCHANGED


def _normalised(tree: ast.AST) -> str:
    """The AST with every docstring's whitespace collapsed (a formatter re-indents them) and
    no ``u`` string prefixes (ruff drops them; they mean nothing in Python 3)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant):
            node.kind = None
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if (body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
                    and isinstance(body[0].value.value, str)):
                body[0].value.value = " ".join(body[0].value.value.split())
    return ast.dump(tree)


needs_ruff = pytest.mark.skipif(find_program("ruff") is None, reason="ruff is not installed")
needs_rustfmt = pytest.mark.skipif(find_program("rustfmt") is None,
                                   reason="rustfmt is not installed")


@needs_ruff
@pytest.mark.parametrize("module", list(STDLIB_CALLS), ids=lambda m: m.__name__)
def test_ruff_format_keeps_the_ast_of_real_python(module, tmp_path):
    source = Path(inspect.getsourcefile(module)).read_text(encoding="utf-8")
    for seed in (0, 1):
        variant = _valid(reformat(source, "python", seed=seed, timeout_s=20.0), source,
                         "python")
        assert _normalised(ast.parse(variant)) == _normalised(ast.parse(source))
    path = tmp_path / f"formatted_{module.__name__}.py"
    path.write_text(variant, encoding="utf-8")
    assert STDLIB_CALLS[module](_import(path, path.stem)) == STDLIB_CALLS[module](module)


@needs_ruff
def test_ruff_settings_follow_the_seed():
    source = SAMPLES["python"]
    outputs = {reformat(source, "python", seed=seed).text for seed in range(6)}
    assert None not in outputs and len(outputs) >= 2
    assert reformat(source, "python", seed=4) == reformat(source, "python", seed=4)
    # ruff's own output (already formatted) still gets a variant
    formatted = reformat(source, "python", seed=0).text
    _valid(reformat(formatted, "python", seed=0), formatted, "python")


@needs_rustfmt
def test_rustfmt_formats_rust():
    source = "fn add(a:i32,b:i32)->i32{a+b}\nfn main(){let x=add(1,2);println!(\"{}\",x);}\n"
    variant = _valid(reformat(source, "rust", seed=2, timeout_s=20.0), source, "rust")
    assert "fn add(a: i32, b: i32) -> i32" in variant
    assert re.sub(r"\s", "", variant) == re.sub(r"\s", "", source)


@pytest.mark.parametrize("language", LANGUAGES)
def test_reformat_with_the_installed_formatters(language):
    """Whatever is installed (a formatter or none: the layout change), each sample gets a
    variant that parses without errors, keeps its comments and is the same per seed."""
    source = SAMPLES[language]
    outcome = reformat(source, language, seed=7, timeout_s=20.0)
    variant = _valid(outcome, source, language)
    assert len(_comments(variant, language)) == len(_comments(source, language))
    assert reformat(source, language, seed=7, timeout_s=20.0) == outcome


# --- formatters that misbehave ------------------------------------------------------------------

def _script(tmp_path: Path, name: str, body: str) -> str:
    path = tmp_path / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state in ("Z", "X")


def test_a_formatter_that_hangs_is_killed(tmp_path):
    pid_file = tmp_path / "pid"
    hang = _script(tmp_path, "hang", f"sleep 600 &\necho $! > {pid_file}\nwait\n")
    outcome = reformat(SAMPLES["python"], "python", seed=0, timeout_s=1.5,
                       formatters={"python": [hang]})
    assert outcome.reason == TIMEOUT
    assert pid_file.exists(), "the fake formatter did not even start within the bound"
    pid = int(pid_file.read_text())
    deadline = time.monotonic() + 10
    while not _gone(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _gone(pid), "the formatter's child process outlived the timeout"


def test_a_formatter_that_fails_drops_the_variant(tmp_path):
    failing = _script(tmp_path, "fail", "cat >/dev/null\necho broken >&2\nexit 3\n")
    outcome = reformat(SAMPLES["go"], "go", seed=0, formatters={"go": [failing]})
    assert outcome.reason == FORMATTER_FAILED


def test_a_formatter_that_breaks_the_code_drops_the_variant(tmp_path):
    breaking = _script(tmp_path, "break", "cat\necho 'def broken(:'\n")
    outcome = reformat(SAMPLES["python"], "python", seed=0, formatters={"python": [breaking]})
    assert outcome.reason == NEW_ERRORS


def test_a_missing_formatter_falls_back_to_the_layout_change(tmp_path):
    source = SAMPLES["c"]
    for missing in (["no-such-formatter-anywhere"], [str(tmp_path / "absent")]):
        outcome = reformat(source, "c", seed=4, formatters={"c": missing})
        assert outcome == relayout(source, "c", seed=4)
        _valid(outcome, source, "c")


def test_a_formatter_that_changes_nothing_falls_back_to_the_layout_change(tmp_path):
    identity = _script(tmp_path, "same", "cat\n")
    source = SAMPLES["rust"]
    outcome = reformat(source, "rust", seed=4, formatters={"rust": [identity]})
    assert outcome == relayout(source, "rust", seed=4)


def test_a_formatter_gets_the_text_and_its_output_is_the_variant(tmp_path):
    upper = _script(tmp_path, "spaces", "sed 's/^    /  /'\n")
    source = SAMPLES["java"]
    outcome = reformat(source, "java", seed=0, formatters={"java": [upper]})
    assert outcome.text == re.sub(r"(?m)^    ", "  ", source)


def test_formatter_version_names_what_makes_the_variants(tmp_path):
    fake = _script(tmp_path, "fake", 'if [ "$1" = --version ]; then echo "fake 1.2"; fi\n')
    assert formatter_version("c", {"c": [fake]}) == "fake 1.2"
    assert formatter_version("c", {"c": []}) == "none"
    if find_program("ruff") is not None:
        assert (formatter_version("python") or "").startswith("ruff ")


# --- bad input ---------------------------------------------------------------------------------

@pytest.mark.parametrize("transform", [decomment, reformat])
def test_unparsed_source_has_no_variant(transform):
    assert transform("def broken(:\n    # c\n    pass\n", "python", seed=0).reason == UNPARSED
    assert transform("fn main( { // c\n", "rust", seed=0).reason == UNPARSED
    assert transform("# Title\n", "markdown", seed=0).reason == NO_GRAMMAR


@pytest.mark.parametrize("transform", [decomment, reformat])
def test_a_20000_line_file_is_bounded(transform):
    block = "def f{0}(x):\n    # step {0}\n    if x:\n        return x + {0}\n    return {0}\n\n"
    source = "".join(block.format(i) for i in range(4000))
    assert source.count("\n") == 24000
    outcome = transform(source, "python", seed=0, timeout_s=2.0)
    assert outcome.reason in (None, TIMEOUT)
    if outcome.text is not None:
        assert parsing.error_count(_tree(outcome.text, "python")) == 0
    tiny = transform(source, "python", seed=0, timeout_s=0.001)
    assert tiny.reason == TIMEOUT


@pytest.mark.parametrize("transform", [decomment, reformat])
def test_mixed_encodings_round_trip(transform):
    """Latin-1 bytes in a UTF-8 file, read with surrogateescape: lone surrogates in the text.
    The variant keeps them where they were (its bytes come back unchanged)."""
    raw = ("def f(x):\n    # caf\xe9 \u2014 note\n    s = 'na\xefve'\n    return s  # end\n"
           .encode("utf-8").replace("é".encode(), b"\xe9").replace("ï".encode(), b"\xef"))
    text = raw.decode("utf-8", "surrogateescape")
    assert any(0xDC80 <= ord(c) <= 0xDCFF for c in text)
    outcome = transform(text, "python", seed=0, formatters=None) \
        if transform is reformat else transform(text, "python", seed=0)
    assert outcome.text is not None, outcome.reason
    data = outcome.text.encode("utf-8", "surrogateescape")
    assert b"s = 'na\xefve'" in data


# --- behaviour under real compilers and interpreters (where installed) -------------------------

SAMPLE_DIR = Path(__file__).parent / "samples"


def _variants(source: str, language: str) -> list[str]:
    """The comment-free variant and layout variants under a few seeds (every one valid)."""
    found = [_valid(decomment(source, language, seed=0), source, language)]
    for seed in range(3):
        outcome = reformat(source, language, seed=seed, formatters=NO_FORMATTER)
        found.append(_valid(outcome, source, language))
    return found


def _run(argv: list[str], cwd: Path) -> str:
    done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc is not installed")
def test_c_variants_compile_to_the_same_behaviour(tmp_path):
    main = ('\n#include <stdio.h>\nint main(void) {\n  static struct ring r;\n'
            '  unsigned char out[8];\n  ring_init(&r);\n'
            '  size_t n = ring_write(&r, (const unsigned char *)"abcdef", 6);\n'
            '  size_t m = ring_read(&r, out, 4);\n'
            '  printf("%zu %zu %.4s %zu\\n", n, m, out, r.len);\n  return 0;\n}\n')
    source = (SAMPLE_DIR / "native" / "ringbuf.c").read_text() + main
    outputs = set()
    for index, variant in enumerate([source, *_variants(source, "c")]):
        path = tmp_path / f"v{index}.c"
        path.write_text(variant)
        _run(["gcc", "-std=c11", "-Wall", "-Werror", "-o", f"v{index}", path.name], tmp_path)
        outputs.add(_run([f"./v{index}"], tmp_path))
        # the preprocessor drops comments itself: its output is the same up to whitespace
        expanded = _run(["gcc", "-E", "-P", path.name], tmp_path)
        outputs.add("expanded:" + re.sub(r"\s+", "", expanded))
    assert len(outputs) == 2, outputs


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_javascript_variants_behave_the_same(tmp_path):
    source = (SAMPLE_DIR / "web" / "cart.js").read_text()
    script = ("const { Cart } = require(process.argv[2]);\n"
              "const cart = new Cart().add('a', 250, 2).add('b', 99).remove('c');\n"
              "let error = '';\ntry { cart.add('x', -1); } catch (e) { error = e.message; }\n"
              "console.log(cart.totalCents(), cart.format(), error);\n")
    (tmp_path / "run.js").write_text(script)
    outputs = set()
    for index, variant in enumerate([source, *_variants(source, "javascript")]):
        (tmp_path / f"v{index}.js").write_text(variant)
        outputs.add(_run(["node", "run.js", f"./v{index}.js"], tmp_path))
    assert len(outputs) == 1, outputs
    assert "599 5.99 EUR" in outputs.pop()


@pytest.mark.skipif(find_program("rustc") is None, reason="rustc is not installed")
def test_rust_variants_compile_to_the_same_behaviour(tmp_path):
    main = ('\nfn main() {\n    let square = [Point::new(0.0, 0.0), Point::new(1.0, 0.0),'
            ' Point::new(1.0, 1.0), Point::new(0.0, 1.0)];\n'
            '    println!("{} {}", perimeter(&square), square[2]);\n}\n')
    source = (SAMPLE_DIR / "src" / "geometry.rs").read_text() + main
    outputs = set()
    variants = [source, decomment(source, "rust", seed=0).text,
                reformat(source, "rust", seed=1, formatters=NO_FORMATTER).text,
                reformat(source, "rust", seed=1, timeout_s=20.0).text]
    for index, variant in enumerate(variants):
        assert variant is not None
        (tmp_path / f"v{index}.rs").write_text(variant)
        _run([find_program("rustc"), "--edition", "2021", "-o", f"v{index}", f"v{index}.rs"],
             tmp_path)
        outputs.add(_run([f"./v{index}"], tmp_path))
    assert len(outputs) == 1 and outputs.pop().startswith("4 "), outputs


JAVA_PROGRAM = '''/* A small program. */
public class Tally {
    // counts per word
    private final java.util.Map<String, Integer> counts = new java.util.TreeMap<>();

    /** Adds the words of a line. */
    void add(String line) {
        for (String word : line.split("\\\\s+")) { // split on blanks
            counts.merge(word, 1, Integer::sum);
        }
    }

    public static void main(String[] args) {
        Tally tally = new Tally();
        tally.add("a b a /* not a comment */");
        String block = """
            kept   as
              it is""";
        System.out.println(tally.counts + " " + block);
    }
}
'''


@pytest.mark.skipif(shutil.which("javac") is None or shutil.which("java") is None,
                    reason="javac is not installed")
def test_java_variants_compile_to_the_same_behaviour(tmp_path):
    variants = [JAVA_PROGRAM, *_variants(JAVA_PROGRAM, "java")]
    paths = []
    for index, variant in enumerate(variants):
        folder = tmp_path / f"v{index}"
        folder.mkdir()
        (folder / "Tally.java").write_text(f"package v{index};\n" + variant)
        paths.append(f"v{index}/Tally.java")
    _run(["javac", "-d", "out", *paths], tmp_path)
    outputs = {_run(["java", "-cp", "out", f"v{index}.Tally"], tmp_path)
               for index in range(len(variants))}
    assert len(outputs) == 1, outputs
    assert "kept   as\n  it is" in outputs.pop()
