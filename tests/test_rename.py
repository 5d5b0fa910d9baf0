"""Identifier renaming (issue 10, point 1): Python keeps its behaviour on real code (standard
library modules renamed whole, their functions called before and after on the same inputs,
and the standard library's own test suites run against the renamed modules where Python
ships them); never keywords, builtins, attributes, imports, public names, keyword
arguments; no collisions; deterministic per seed; the other languages rename a local, parse,
and (C, Rust, JavaScript, Go where a compiler is installed) print the same after renaming."""

from __future__ import annotations

import importlib
import importlib.util
import io
import random
import subprocess
import sys
import textwrap
import tokenize
from collections import Counter
from pathlib import Path

import pytest

from helpers import CORPUS
from repofeed.store import parsing
from repofeed.store.variants import NO_GRAMMAR, TIMEOUT, UNPARSED, Outcome
from repofeed.store.variants.rename import (
    NO_LOCALS,
    identifiers,
    name_style,
    rename,
)

STDLIB = ("textwrap", "shlex", "colorsys", "heapq", "difflib", "statistics", "string",
          "fnmatch", "fractions", "calendar")


def stdlib_source(module: str) -> str:
    return Path(importlib.import_module(module).__file__).read_text(encoding="utf-8")


def vocabulary(*texts: str, language: str = "python") -> list[str]:
    names: Counter[str] = Counter()
    for text in texts:
        names.update(identifiers(text, language))
    return sorted(names)


def renamed(text: str, language: str = "python", seed: int = 1,
            names: list[str] | None = None) -> str:
    outcome = rename(text, language, seed=seed,
                     names=vocabulary(text, language=language) if names is None else names)
    assert outcome.text is not None, outcome.reason
    return outcome.text


def python_names(text: str) -> list[str]:
    return [tok.string for tok in tokenize.generate_tokens(io.StringIO(text).readline)
            if tok.type == tokenize.NAME]


def changed_names(before: str, after: str) -> list[tuple[str, str]]:
    """The (old, new) pairs of the NAME tokens renaming changed (it changes nothing else)."""
    old, new = python_names(before), python_names(after)
    assert len(old) == len(new)
    return [(a, b) for a, b in zip(old, new, strict=True) if a != b]


def load(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickling look modules up by name
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[name]
    return module


def outcome_of(call):
    try:
        result = call()
        if hasattr(result, "__next__"):  # generators: compare what they yield
            result = list(result)
        return ("ok", repr(result))
    except Exception as exc:  # noqa: BLE001 - the same exception is the expected behaviour
        return ("raised", type(exc).__name__, str(exc))


def calls(m) -> list[tuple[str, object]]:
    """Calls on the standard library's own functions, the same for both versions of each."""
    rng = random.Random(5)
    numbers = [rng.randint(-50, 50) for _ in range(40)]
    floats = [rng.uniform(-10, 10) for _ in range(30)]
    text = ("The quick brown fox jumps over the lazy dog; " * 6 +
            "supercalifragilisticexpialidocious words\tand\ttabs. " * 3)
    lines_a = ["one", "two", "three", "four", "five", "six"]
    lines_b = ["zero", "one", "three", "four", "5ive", "six", "seven"]
    return [
        ("textwrap.wrap", lambda: m["textwrap"].wrap(text, 23)),
        ("textwrap.fill", lambda: m["textwrap"].fill(text, width=31, initial_indent="> ",
                                                     subsequent_indent="  ")),
        ("textwrap.shorten", lambda: m["textwrap"].shorten(text, 40, placeholder=" [..]")),
        ("textwrap.dedent", lambda: m["textwrap"].dedent("    a\n      b\n    c\n")),
        ("textwrap.indent", lambda: m["textwrap"].indent("a\n\nb\n", "+ ")),
        ("textwrap.wrap tabs", lambda: m["textwrap"].wrap(text, 12, expand_tabs=False,
                                                          break_long_words=False)),
        ("textwrap.wrap bad", lambda: m["textwrap"].wrap(text, 0)),
        ("shlex.split", lambda: m["shlex"].split("a 'b c' \"d e\" f\\ g # no", comments=True)),
        ("shlex.quote", lambda: m["shlex"].quote("it's a test")),
        ("shlex.join", lambda: m["shlex"].join(["a b", "c", "d'e"])),
        ("shlex.split bad", lambda: m["shlex"].split("a 'unterminated")),
        ("shlex.tokens", lambda: list(m["shlex"].shlex("x = 1 + y; z=(2)",
                                                        punctuation_chars=True))),
        ("colorsys.rgb_to_hsv", lambda: [m["colorsys"].rgb_to_hsv(r / 7, g / 5, 0.3)
                                         for r in range(8) for g in range(6)]),
        ("colorsys.hls", lambda: [m["colorsys"].hls_to_rgb(*m["colorsys"].rgb_to_hls(
            r / 9, 0.5, b / 4)) for r in range(10) for b in range(5)]),
        ("colorsys.yiq", lambda: [m["colorsys"].yiq_to_rgb(*m["colorsys"].rgb_to_yiq(
            0.1 * r, 0.2, 0.3)) for r in range(10)]),
        ("heapq.nlargest", lambda: m["heapq"].nlargest(7, numbers, key=abs)),
        ("heapq.nsmallest", lambda: m["heapq"].nsmallest(5, numbers)),
        ("heapq.merge", lambda: list(m["heapq"].merge(sorted(numbers[:20]), sorted(numbers[20:]),
                                                       reverse=False))),
        ("heapq.merge key", lambda: list(m["heapq"].merge(["a", "ccc"], ["bb", "dddd"],
                                                           key=len))),
        ("difflib.unified_diff", lambda: list(m["difflib"].unified_diff(lines_a, lines_b,
                                                                          "a", "b", n=1))),
        ("difflib.ndiff", lambda: list(m["difflib"].ndiff(lines_a, lines_b))),
        ("difflib.context_diff", lambda: list(m["difflib"].context_diff(lines_a, lines_b))),
        ("difflib.get_close_matches", lambda: m["difflib"].get_close_matches(
            "appel", ["ape", "apple", "peach", "puppy"], n=3, cutoff=0.4)),
        ("difflib.ratio", lambda: m["difflib"].SequenceMatcher(None, text[:80], text[5:90])
         .get_opcodes()),
        ("difflib.html", lambda: m["difflib"].HtmlDiff(wrapcolumn=20).make_table(
            lines_a, lines_b, context=True, numlines=1).count("<td")),
        ("statistics.mean", lambda: m["statistics"].mean(numbers)),
        ("statistics.median", lambda: m["statistics"].median_grouped(numbers, interval=2)),
        ("statistics.stdev", lambda: m["statistics"].stdev(floats)),
        ("statistics.quantiles", lambda: m["statistics"].quantiles(floats, n=7,
                                                                   method="inclusive")),
        ("statistics.mode", lambda: m["statistics"].multimode(numbers)),
        ("statistics.harmonic", lambda: m["statistics"].harmonic_mean([abs(x) + 1
                                                                       for x in numbers])),
        ("statistics.correlation", lambda: m["statistics"].correlation(floats, floats[::-1])),
        ("statistics.regression", lambda: m["statistics"].linear_regression(floats,
                                                                           floats[::-1])),
        ("statistics.NormalDist", lambda: m["statistics"].NormalDist.from_samples(floats)
         .overlap(m["statistics"].NormalDist(1, 3))),
        ("statistics.empty", lambda: m["statistics"].mean([])),
        ("string.capwords", lambda: m["string"].capwords(" hello   big world ")),
        ("string.Template", lambda: m["string"].Template("$who likes ${what}").substitute(
            who="tim", what="kung pao")),
        ("string.Formatter", lambda: m["string"].Formatter().format("{0:>8}|{x!r}", 3.5,
                                                                    x="y")),
        ("fnmatch.filter", lambda: m["fnmatch"].filter(["a.py", "b.txt", "c.py", "[x]"],
                                                       "*.py")),
        ("fnmatch.translate", lambda: m["fnmatch"].translate("a*b?[!c-e]**[]x]")),
        ("fractions.ops", lambda: (m["fractions"].Fraction(3, 7) ** 2
                                   + m["fractions"].Fraction("1.25")).limit_denominator(9)),
        ("fractions.float", lambda: m["fractions"].Fraction(0.1).as_integer_ratio()),
        ("fractions.bad", lambda: m["fractions"].Fraction("1/0x")),
        ("calendar.month", lambda: m["calendar"].month(2024, 2)),
        ("calendar.calendar", lambda: m["calendar"].TextCalendar(6).formatyear(2023, 2, 1, 2)),
        ("calendar.html", lambda: m["calendar"].HTMLCalendar().formatmonth(2021, 7)),
        ("calendar.monthrange", lambda: [m["calendar"].monthrange(1900 + y, 2)
                                         for y in range(0, 200, 7)]),
    ]


def test_python_renaming_keeps_the_behaviour_of_standard_library_modules(tmp_path):
    sources = {name: stdlib_source(name) for name in STDLIB}
    names = vocabulary(*sources.values())
    before, after, total = {}, {}, 0
    for module, text in sources.items():
        variant = renamed(text, names=names, seed=3)
        changes = changed_names(text, variant)
        assert len(changes) > 20, f"{module}: only {len(changes)} names renamed"
        total += len(changes)
        (tmp_path / f"orig_{module}.py").write_text(text, encoding="utf-8")
        (tmp_path / f"renamed_{module}.py").write_text(variant, encoding="utf-8")
        before[module] = load(tmp_path / f"orig_{module}.py", f"orig_{module}")
        after[module] = load(tmp_path / f"renamed_{module}.py", f"renamed_{module}")
    assert total > 1500, total
    compared = 0
    for (label, call_before), (_, call_after) in zip(calls(before), calls(after), strict=True):
        assert outcome_of(call_before) == outcome_of(call_after), label
        compared += 1
    assert compared >= 45


SUITES = {"textwrap": "test.test_textwrap", "shlex": "test.test_shlex",
          "heapq": "test.test_heapq", "difflib": "test.test_difflib",
          "colorsys": "test.test_colorsys", "string": "test.test_string",
          "fractions": "test.test_fractions", "fnmatch": "test.test_fnmatch"}

SUITE_RUNNER = '''
import importlib, io, sys, types, unittest
module, suite, path = sys.argv[1:4]
original = importlib.import_module(module)
replacement = types.ModuleType(module)
replacement.__file__ = original.__file__
sys.modules[module] = replacement
exec(compile(open(path, encoding="utf-8").read(), original.__file__, "exec"),
     replacement.__dict__)
tests = unittest.defaultTestLoader.loadTestsFromModule(importlib.import_module(suite))
result = unittest.TextTestRunner(stream=io.StringIO(), verbosity=0).run(tests)
print(result.testsRun, len(result.failures) + len(result.errors))
for _, trace in result.failures + result.errors:
    print(trace[-1500:])
'''


def test_python_renamed_modules_pass_the_standard_librarys_own_tests(tmp_path):
    if importlib.util.find_spec("test.test_textwrap") is None:
        pytest.skip("this Python ships without its test package (python3-test)")
    runner = tmp_path / "runner.py"
    runner.write_text(SUITE_RUNNER, encoding="utf-8")
    ran = 0
    for module, suite in SUITES.items():
        text = stdlib_source(module)
        variant = tmp_path / f"{module}.py"
        variant.write_text(renamed(text, seed=11), encoding="utf-8")
        done = subprocess.run([sys.executable, str(runner), module, suite, str(variant)],
                              capture_output=True, text=True, timeout=300, check=False,
                              cwd=tmp_path)
        assert done.returncode == 0, done.stderr[-3000:]
        count, failed, *traces = done.stdout.split("\n", 2)[0].split() + [done.stdout]
        assert int(failed) == 0, f"{module}: {traces[-1][-3000:]}"
        ran += int(count)
    assert ran > 250


def test_the_same_seed_gives_the_same_names_and_another_seed_others():
    text = stdlib_source("textwrap")
    names = vocabulary(text, stdlib_source("difflib"))
    first = renamed(text, seed=1, names=names)
    assert renamed(text, seed=1, names=names) == first
    other = renamed(text, seed=2, names=names)
    assert other != first
    assert changed_names(text, first) != changed_names(text, other)


def test_names_come_from_the_repository_vocabulary_in_the_same_style():
    text = textwrap.dedent('''\
        def area(width, height):
            scaled_width = width * 2
            scaledHeight = height * 2
            k = 1
            return scaled_width * scaledHeight * k
        ''')
    vocab = ["line_count", "fileName", "Parser", "MAX", "q", "node_list", "itemIndex"]
    changes = dict(changed_names(text, renamed(text, names=vocab)))
    assert changes["scaled_width"] in {"line_count", "node_list"}
    assert changes["scaledHeight"] in {"fileName", "itemIndex"}
    assert changes["k"] == "q"
    assert "width" not in changes and "height" not in changes  # keyword-passable
    # no vocabulary at all: natural fallback words, never var_1
    fallback = dict(changed_names(text, renamed(text, names=[])))
    assert all(new.isidentifier() and not new.startswith("var") for new in fallback.values())
    assert name_style(fallback["scaledHeight"]) in ("camel", "lower")


NEVER = textwrap.dedent('''\
    import os
    from json import dumps as to_json

    LIMIT = 10
    __all__ = ["public"]


    def public(path, *rest, flag=False, **options):
        total = len(rest)
        parts = os.path.split(path)
        for part in parts:
            total += len(part)
        options.update(flag=flag)
        record = {"total": total}
        record_obj = type("R", (), {})()
        record_obj.total = total
        print(to_json(record), sorted(rest, key=len, reverse=flag))
        return public_helper(total=total, limit=LIMIT)


    def public_helper(total, limit):
        global LIMIT
        LIMIT = limit
        return total


    class Shape:
        sides = 3

        def scale(self, factor, /):
            import math
            scaled = math.sqrt(self.sides * factor)
            return scaled
    ''')


def test_python_never_renames_keywords_builtins_attributes_imports_or_public_names():
    variant = renamed(NEVER, names=["value", "amount", "field_name", "entries", "other_name"])
    changes = dict(changed_names(NEVER, variant))
    # locals are renamed ...
    assert {"total", "parts", "part", "record", "record_obj", "rest", "options",
            "scaled"} <= set(changes)
    # ... and nothing else: parameters callers may name, imports, module names, builtins,
    # attributes and keyword-argument names at call sites
    for kept in ("path", "flag", "os", "to_json", "dumps", "LIMIT", "public", "public_helper",
                 "Shape", "sides", "scale", "self", "factor", "math", "sqrt", "len",
                 "sorted", "print", "type", "key", "reverse", "limit", "update", "split"):
        assert kept not in changes, kept
    assert "record_obj." + changes["total"] not in variant  # the attribute stays .total
    assert "record_obj" not in variant and ".total = " in variant
    assert "public_helper(total=" in variant  # keyword argument name kept
    assert "options.update(flag=flag)" not in variant and ".update(flag=flag)" in variant
    assert compile(variant, "<variant>", "exec")


def test_python_new_names_never_collide():
    text = textwrap.dedent('''\
        value = 1

        def f(items):
            result = []
            for item in items:
                result.append(item + value)
            return result
        ''')
    # every vocabulary name already occurs in the file: nothing usable but the fallback,
    # and the fallback must not reuse value/result/item either
    variant = renamed(text, names=["value", "result", "item", "items", "f"])
    changes = dict(changed_names(text, variant))
    assert set(changes) == {"result", "item"}
    file_names = set(python_names(text))
    assert not set(changes.values()) & file_names
    assert len(set(changes.values())) == 2
    namespace: dict = {}
    exec(compile(variant, "<variant>", "exec"), namespace)
    assert namespace["f"]([1, 2]) == [2, 3]


def test_python_skips_functions_that_read_names_at_run_time():
    text = textwrap.dedent('''\
        def a(x):
            first = x
            return "%(first)s" % locals()

        def b(x):
            second = x
            return eval("second")

        def c(x):
            third = x
            return f"{third=}"

        def d(x):
            fourth = x
            def inner():
                return vars()
            return fourth

        def e(x):
            fifth = x
            return fifth
        ''')
    changes = dict(changed_names(text, renamed(text, names=["item"])))
    assert set(changes) == {"fifth"}


def test_python_scopes_nested_functions_comprehensions_and_nonlocal():
    text = textwrap.dedent('''\
        x = "global"

        def outer(data):
            count = 0
            def bump(*args):
                nonlocal count
                count += len(args)
                return count
            squares = [x * x for x in data]
            first = data[0] if data else None
            label = [x for x in x]  # the first iterable is the global x
            pairs = {k: v for k, v in zip(data, squares)}
            total = sum(y for y in squares if (last := y) > 1)
            return bump(1, 2), squares, first, label, pairs, total, last, x
        ''')
    variant = renamed(text, names=["item", "entry", "value", "element", "key_name"])
    changes = changed_names(text, variant)
    renamed_names = {old for old, _ in changes}
    assert "count" not in renamed_names  # nonlocal
    assert {"squares", "first", "label", "pairs", "total", "last", "k", "v", "y"} <= \
        renamed_names
    assert "for x in x]" not in variant and " in x]" in variant
    before, after = {}, {}
    exec(compile(text, "<a>", "exec"), before)
    exec(compile(variant, "<b>", "exec"), after)
    assert before["outer"]([3, 1, 2]) == after["outer"]([3, 1, 2])


def test_python_files_of_the_attrs_history_rename_and_parse(tmp_path):
    bundle = CORPUS / "attrs.bundle"
    if not bundle.is_file():
        pytest.skip(f"corpus bundle missing: {bundle} (set REPOFEED_CORPUS)")
    checkout = tmp_path / "attrs"
    subprocess.run(["git", "clone", "-q", str(bundle), str(checkout)], check=True,
                   capture_output=True)
    files = sorted(checkout.glob("src/**/*.py"))
    assert len(files) > 10
    texts = [path.read_text(encoding="utf-8") for path in files]
    names = vocabulary(*texts)
    reasons: Counter[str] = Counter()
    renamed_count = 0
    for text in texts:
        outcome = rename(text, "python", seed=4, names=names)
        reasons[outcome.reason or "renamed"] += 1
        if outcome.text is not None:
            renamed_count += len(changed_names(text, outcome.text))
            compile(outcome.text, "<variant>", "exec")
    assert reasons["renamed"] >= len(texts) // 2, reasons
    assert set(reasons) <= {"renamed", NO_LOCALS}, reasons
    assert renamed_count > 500


# ---------------------------------------------------------------------------------------------
# Bad input


def test_code_that_does_not_parse_has_no_variant():
    assert rename("def f(:\n    x = 1\n", "python", seed=1) == Outcome(reason=UNPARSED)


def test_a_language_without_a_grammar_or_rules():
    assert rename("x = 1", "ruby", seed=1) == Outcome(reason=NO_GRAMMAR)
    assert identifiers("x = 1", "ruby") == Counter()


def test_nothing_to_rename():
    assert rename("X = 1\nprint(X)\n", "python", seed=1) == Outcome(reason=NO_LOCALS)


def test_a_20000_line_file_is_bounded_by_the_timeout():
    body = "".join(f"    v{i} = a + {i}\n    a = v{i} * 2\n" for i in range(4999))
    text = "def big(a):\n" + body + "    return a\n" + "\n" * 10_000
    assert text.count("\n") >= 20_000
    quick = rename(text, "python", seed=1, names=[], timeout_s=0.001)
    assert quick == Outcome(reason=TIMEOUT)
    full = rename(text, "python", seed=1, names=["value"], timeout_s=30)
    assert full.text is not None  # a variant (fallback names run out only past ~100 names)
    assert parsing.error_count(parsing.parse(full.text.encode(), "python", 30)) == 0


def test_identifiers_counts_every_identifier():
    counts = identifiers("def f(a):\n    return a.b + a\n", "python")
    assert counts == Counter({"a": 3, "f": 1, "b": 1})
