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
import os
import random
import re
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


# ---------------------------------------------------------------------------------------------
# The other languages


def tool(name: str, *extra: str) -> str | None:
    import shutil

    return shutil.which(name) or next((p for p in extra if Path(p).is_file()), None)


def diff_words(before: str, after: str) -> int:
    return sum(1 for a, b in zip(before.split(), after.split(), strict=False) if a != b)


NPM_PACKAGES = Path("/usr/lib/node_modules/npm/node_modules")

JS_DRIVER = r'''
const which = process.argv[2];
const semver = require(`./${which}/semver`);
const diff = require(`./${which}/diff/libcjs/index.js`);
const out = [];
const vs = ['1.2.3', '1.2.3-beta.1', '2.0.0', '0.0.1', 'v1.2', '1.x', '=1.0.0',
            '3.1.4-rc.2+build.5', 'junk'];
const ranges = ['^1.2.0', '~1.2', '>=1.0.0 <2.0.0 || 3.x', '1.2.3 - 2.3.4', '*', '<0.0.1',
                'x || 1.2.3-beta'];
for (const v of vs) {
  out.push([v, semver.valid(v), semver.clean(v), semver.coerce(v) && semver.coerce(v).version,
            semver.inc(v, 'minor'), semver.inc(v, 'prerelease', 'alpha'),
            semver.parse(v) && semver.parse(v).prerelease]);
  for (const r of ranges) out.push([v, r, semver.satisfies(v, r), semver.validRange(r)]);
}
out.push(semver.sort(['1.2.3', '1.2.3-beta', '0.9.0', '10.0.0']),
         semver.maxSatisfying(vs.filter(v => semver.valid(v)), '^1.0.0'),
         semver.minVersion('>=1.2.3 <2'), semver.intersects('^1.2', '~1.5'),
         semver.subset('~1.2.3', '^1.0.0'),
         semver.simplifyRange(['1.0.0', '1.1.0', '1.2.0', '2.0.0'], '1.0.0 || 1.1.0 || 1.2.0'),
         semver.diff('1.2.3', '1.3.0-beta'));
try { new semver.SemVer('nope') } catch (e) { out.push(String(e)) }
const a = 'the quick brown fox\njumps over\nthe lazy dog\n';
const b = 'the quick red fox\njumps over\nthe dog\nand more\n';
out.push(diff.diffChars('kitten', 'sitting'), diff.diffWords(a, b), diff.diffLines(a, b),
         diff.createTwoFilesPatch('a', 'b', a, b), diff.applyPatch(a, diff.createPatch('x', a, b)),
         diff.diffJson({a: 1, b: [1, 2]}, {a: 2, b: [1, 3]}), diff.diffArrays([1, 2, 3], [1, 3, 4]),
         diff.parsePatch(diff.createPatch('x', a, b)),
         diff.structuredPatch('a', 'b', a, b, '', '', {context: 1}));
console.log(JSON.stringify(out));
'''


def test_javascript_renaming_keeps_the_behaviour_of_real_packages(tmp_path):
    """semver and jsdiff (the copies npm ships), every file renamed, called before and after."""
    import shutil

    node = tool("node")
    packages = [NPM_PACKAGES / "semver", NPM_PACKAGES / "diff" / "libcjs"]
    if node is None or not all(p.is_dir() for p in packages):
        pytest.skip("needs node and the semver and diff packages npm ships")
    for version in ("orig", "renamed"):
        shutil.copytree(NPM_PACKAGES / "semver", tmp_path / version / "semver")
        shutil.copytree(NPM_PACKAGES / "diff", tmp_path / version / "diff")
    files = sorted([*(tmp_path / "renamed" / "semver").rglob("*.js"),
                    *(tmp_path / "renamed" / "diff" / "libcjs").rglob("*.js")])
    texts = {path: path.read_text(encoding="utf-8") for path in files}
    names = vocabulary(*texts.values(), language="javascript")
    changed_files, changed = 0, 0
    for path, text in texts.items():
        outcome = rename(text, "javascript", seed=2, names=names)
        assert outcome.reason in (None, NO_LOCALS), (path, outcome.reason)
        if outcome.text is not None:
            path.write_text(outcome.text, encoding="utf-8")
            changed_files += 1
            changed += diff_words(text, outcome.text)
    assert changed_files > 40 and changed > 1000, (changed_files, changed)
    (tmp_path / "drive.js").write_text(JS_DRIVER, encoding="utf-8")
    outputs = [subprocess.run([node, "drive.js", version], cwd=tmp_path, capture_output=True,
                              text=True, timeout=60, check=True).stdout
               for version in ("orig", "renamed")]
    assert len(outputs[0]) > 5000
    assert outputs[0] == outputs[1]


def test_c_renaming_keeps_cjson_utils_passing_its_own_tests(tmp_path):
    """cJSON_Utils.c (the cJSON history's tip) renamed; its unit tests (the JSON patch test
    cases, the pointer/merge/sort ones) built against both versions print the same."""
    gcc = tool("gcc", "/usr/bin/cc")
    bundle = CORPUS / "cJSON.bundle"
    if gcc is None or not bundle.is_file():
        pytest.skip(f"needs gcc and the corpus bundle {bundle} (set REPOFEED_CORPUS)")
    checkout = tmp_path / "cJSON"
    subprocess.run(["git", "clone", "-q", str(bundle), str(checkout)], check=True,
                   capture_output=True)
    text = (checkout / "cJSON_Utils.c").read_text(encoding="utf-8")
    variant = renamed(text, "c", seed=5)
    assert diff_words(text, variant) > 300
    (tmp_path / "renamed_utils.c").write_text(variant, encoding="utf-8")
    outputs: dict[str, list[str]] = {"orig": [], "renamed": []}
    for version, source in (("orig", checkout / "cJSON_Utils.c"),
                            ("renamed", tmp_path / "renamed_utils.c")):
        for suite in ("json_patch_tests", "old_utils_tests"):
            binary = tmp_path / f"{suite}_{version}"
            subprocess.run([gcc, "-std=c89", "-w", f"-I{checkout}", f"-I{checkout / 'tests'}",
                            str(checkout / "tests" / f"{suite}.c"), str(source),
                            str(checkout / "tests" / "unity" / "src" / "unity.c"),
                            "-o", str(binary), "-lm"], check=True, capture_output=True)
            done = subprocess.run([str(binary)], cwd=checkout / "tests", capture_output=True,
                                  text=True, timeout=60, check=False)
            outputs[version].append(f"{done.returncode}\n{done.stdout}")
    assert all("0 Failures" in out for out in outputs["orig"])
    assert outputs["orig"] == outputs["renamed"]


# rustup's rustc finds its toolchain through the home the tests replace
RUSTUP_HOME = os.environ.get("RUSTUP_HOME") or str(Path.home() / ".rustup")

RUST_PROGRAM = '''
use std::collections::HashMap;

#[derive(Debug, Clone)]
struct Point { x: i64, y: i64 }

fn centroid(points: &[Point]) -> Point {
    let count = points.len() as i64;
    let mut x = 0;
    let mut y = 0;
    for p in points {
        x += p.x;
        y += p.y;
    }
    Point { x: x / count.max(1), y }
}

fn histogram(text: &str) -> Vec<(char, usize)> {
    let mut counts: HashMap<char, usize> = HashMap::new();
    for ch in text.chars().filter(|c| c.is_alphabetic()) {
        *counts.entry(ch).or_insert(0) += 1;
    }
    let mut pairs: Vec<(char, usize)> = counts.into_iter().collect();
    pairs.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    pairs
}

fn collatz(start: u64) -> (u64, u64) {
    let mut n = start;
    let mut steps = 0;
    let mut peak = n;
    while n != 1 {
        n = if n % 2 == 0 { n / 2 } else { 3 * n + 1 };
        let n2 = n;
        peak = peak.max(n2);
        steps += 1;
    }
    (steps, peak)
}

fn shadowing(v: i32) -> String {
    let v = v * 2;
    let v = format!("{}-{}", v, v + 1);
    let label = |suffix: &str| -> String { let joined = v.clone() + suffix; joined };
    label("!")
}

#[allow(non_upper_case_globals)]
const limit: u64 = 27;

fn classify(values: &[Option<u64>]) -> Vec<String> {
    let mut out = Vec::new();
    let mut iter = values.iter();
    while let Some(item) = iter.next() {
        if let Some(v) = item {
            let label = match *v {
                limit => "limit".to_string(),
                small if small < 10 => format!("small {}", small),
                other => format!("other {}", other),
            };
            out.push(label);
        } else {
            out.push("none".to_string());
        }
    }
    out
}

fn captures(word: &str) -> String {
    let upper = word.to_uppercase();
    format!("{upper}/{word}")
}

fn main() {
    let points = vec![Point { x: 1, y: 2 }, Point { x: 5, y: -3 }, Point { x: 9, y: 4 }];
    let c = centroid(&points);
    println!("{:?}", c);
    println!("{:?}", histogram("The quick brown fox jumps over the lazy dog"));
    for start in [1u64, 7, 27, 97] {
        println!("{:?}", collatz(start));
    }
    println!("{} {}", shadowing(20), captures("rust"));
    println!("{:?}", classify(&[Some(3), None, Some(27), Some(40)]));
}
'''

JAVA_PROGRAM = '''
import java.util.*;

public class Main {
    private int total = 0;

    static List<Integer> primes(int limit) {
        boolean[] sieve = new boolean[limit + 1];
        List<Integer> found = new ArrayList<>();
        for (int candidate = 2; candidate <= limit; candidate++) {
            if (sieve[candidate]) continue;
            found.add(candidate);
            for (int multiple = candidate * 2; multiple <= limit; multiple += candidate) {
                sieve[multiple] = true;
            }
        }
        return found;
    }

    int add(int amount) {
        int total = this.total + amount;
        this.total = total;
        return total;
    }

    static String words(String text) {
        Map<String, Integer> counts = new TreeMap<>();
        for (String word : text.toLowerCase().split("\\\\W+")) {
            if (word.isEmpty()) continue;
            counts.merge(word, 1, Integer::sum);
        }
        StringBuilder out = new StringBuilder();
        counts.forEach((key, value) -> out.append(key).append('=').append(value).append(' '));
        return out.toString().trim();
    }

    public static void main(String[] args) {
        System.out.println(primes(60));
        Main m = new Main();
        int last = 0;
        for (int i = 1; i < 5; i++) last = m.add(i * i);
        System.out.println(last);
        System.out.println(words("the cat and the hat and THE bat"));
    }
}
'''


def compiled_outputs(tmp_path: Path, text: str, language: str, build, name: str):
    variant = renamed(text, language, seed=9, names=vocabulary(text, language=language))
    outputs = []
    for version, source in (("orig", text), ("renamed", variant)):
        folder = tmp_path / version
        folder.mkdir()
        path = folder / name
        path.write_text(source, encoding="utf-8")
        run = build(folder, path)
        outputs.append(subprocess.run(run, cwd=folder, capture_output=True, text=True,
                                      timeout=60, check=True).stdout)
    return variant, outputs


def test_rust_renaming_compiles_and_prints_the_same(tmp_path):
    rustc = tool("rustc", "/root/.cargo/bin/rustc")
    if rustc is None:
        pytest.skip("needs rustc")

    def build(folder: Path, path: Path) -> list[str]:
        subprocess.run([rustc, "-O", "-o", str(folder / "main"), str(path)], check=True,
                       capture_output=True, timeout=120,
                       env={**os.environ, "RUSTUP_HOME": RUSTUP_HOME})
        return [str(folder / "main")]

    variant, outputs = compiled_outputs(tmp_path, RUST_PROGRAM, "rust", build, "main.rs")
    assert outputs[0] == outputs[1] and outputs[0].count("\n") == 8
    assert '"limit"' in outputs[0]  # the pattern that names a constant still matches it
    assert diff_words(RUST_PROGRAM, variant) > 35
    assert "limit =>" in variant and "small if small" not in variant  # arm bindings renamed
    # a format string that captures names by text keeps the function as it is
    assert 'let upper = word.to_uppercase();\n    format!("{upper}/{word}")' in variant
    # fields stay; the shorthand field `y` is spelled out
    assert re.search(r"\+= \w+\.x;\n\s+\w+ \+= \w+\.y;", variant)
    assert re.search(r"Point \{ x: \w+ / \w+\.max\(1\), y: \w+ \}", variant)


def test_java_renaming_compiles_and_prints_the_same(tmp_path):
    javac, java = tool("javac"), tool("java")
    if javac is None or java is None:
        pytest.skip("needs javac and java")

    def build(folder: Path, path: Path) -> list[str]:
        subprocess.run([javac, str(path)], check=True, capture_output=True, timeout=120)
        return [java, "-cp", str(folder), "Main"]

    variant, outputs = compiled_outputs(tmp_path, JAVA_PROGRAM, "java", build, "Main.java")
    assert outputs[0] == outputs[1] and "2, 3, 5, 7" in outputs[0]
    assert diff_words(JAVA_PROGRAM, variant) > 15
    assert "this.total = " in variant and "private int total" in variant


SAMPLES = {
    "go": ('''package shapes

type Point struct{ X, Y int }

func Scale(points []Point, factor int) (out []Point) {
	scaled := make([]Point, 0, len(points))
	for _, point := range points {
		next := Point{X: point.X * factor, Y: point.Y * factor}
		scaled = append(scaled, next)
	}
	return scaled
}
''', {"scaled", "point", "next", "factor"}, {"Scale", "Point", "X", "Y", "out", "append"}),
    "typescript": ('''export function summarize(items: Item[], limit = 3): string {
  const counts = new Map<string, number>();
  for (const item of items) {
    counts.set(item.kind, (counts.get(item.kind) ?? 0) + 1);
  }
  const top = [...counts.entries()].slice(0, limit);
  return top.map(([kind, count]) => `${kind}:${count}`).join(", ");
}
export class Box {
  constructor(private size: number) {}
  area(scale: number) { return this.size * scale; }
}
''', {"counts", "item", "top", "limit", "kind", "count", "scale"},
        {"summarize", "Item", "Box", "size", "set", "get", "entries", "map"}),
    "tsx": ('''export function List({ items }: Props) {
  const visible = items.filter((entry) => entry.shown);
  const Row = RowView;
  return <ul>{visible.map((entry) => <Row key={entry.id} entry={entry} />)}</ul>;
}
''', {"visible", "entry", "items"}, {"List", "Row", "RowView", "shown", "id", "key", "ul"}),
    "cpp": ('''#include <vector>
struct Acc { int sum = 0; };
int total(const std::vector<int>& values, int bias) {
    Acc acc;
    for (int value : values) { acc.sum += value + bias; }
    auto twice = [&](int n) { return n * 2; };
    return twice(acc.sum);
}
''', {"values", "bias", "acc", "value", "twice", "n"}, {"total", "Acc", "sum", "vector", "std"}),
}


@pytest.mark.parametrize("language", sorted(SAMPLES))
def test_other_languages_rename_locals_and_keep_public_names(language):
    text, expected, kept = SAMPLES[language]
    variant = renamed(text, language, names=["value_list", "entryCount", "node", "tally"])
    tree = parsing.parse(variant.encode(), language, 5)
    assert parsing.error_count(tree) == 0
    before = identifiers(text, language)
    after = identifiers(variant, language)
    fewer = {name for name in before if after[name] < before[name]}  # keys of shorthands stay
    assert expected <= fewer, expected - fewer
    assert all(after[name] == before[name] for name in kept), kept & fewer


def test_typescript_files_of_the_ky_history_rename_and_parse(tmp_path):
    bundle = CORPUS / "ky.bundle"
    if not bundle.is_file():
        pytest.skip(f"corpus bundle missing: {bundle} (set REPOFEED_CORPUS)")
    checkout = tmp_path / "ky"
    subprocess.run(["git", "clone", "-q", str(bundle), str(checkout)], check=True,
                   capture_output=True)
    files = sorted(checkout.glob("source/**/*.ts"))
    texts = [path.read_text(encoding="utf-8") for path in files]
    names = vocabulary(*texts, language="typescript")
    reasons: Counter[str] = Counter()
    for text in texts:
        reasons[rename(text, "typescript", seed=1, names=names).reason or "renamed"] += 1
    assert reasons["renamed"] > len(texts) // 2, reasons
    assert set(reasons) <= {"renamed", NO_LOCALS}, reasons


def test_c_leaves_names_macros_can_see():
    text = textwrap.dedent('''\
        #define CHECK if (err) return err
        #define MAX(a, b) ((a) > (b) ? (a) : (b))
        int first(int n) {
            int err = n - 1;
            int widest = MAX(n, 3);
            int plain = n * 2;
            CHECK;
            return widest + plain;
        }
        int second(int n) {
            int kept = n;
        #ifdef DEBUG
            kept += 1;
        #endif
            return kept;
        }
        ''')
    variant = renamed(text, "c", names=["total", "count"])
    before, after = identifiers(text, "c"), identifiers(variant, "c")
    assert after["plain"] == 0  # an ordinary local
    assert after["err"] == before["err"]  # a #define body names it
    assert after["widest"] == 0
    assert after["n"] == before["n"] and "MAX(n, 3)" in variant  # a macro's argument stays
    assert after["kept"] == before["kept"]  # preprocessor lines inside: function skipped


def test_javascript_skips_eval_and_keeps_properties():
    text = textwrap.dedent('''\
        export function risky(input) { const hidden = input; return eval("hidden"); }
        export function plain(input) {
          const total = input.total + 1;
          return { total, input };
        }
        ''')
    variant = renamed(text, "javascript", names=["amount", "source"])
    assert 'const hidden = input; return eval("hidden");' in variant
    assert "input.total" not in variant and ".total + 1" in variant
    assert re.search(r"return \{ total: \w+, input: \w+ \};", variant)


def test_output_does_not_depend_on_the_hash_seed(tmp_path):
    script = ("import sys; from repofeed.store.variants.rename import rename, identifiers; "
              "t = open(sys.argv[1]).read(); "
              "print(rename(t, 'python', seed=3, names=list(identifiers(t, 'python'))).text)")
    path = Path(importlib.import_module("difflib").__file__)
    outputs = {subprocess.run([sys.executable, "-c", script, str(path)], check=True,
                              capture_output=True, text=True,
                              env={**os.environ, "PYTHONHASHSEED": seed}).stdout
               for seed in ("1", "2", "3")}
    assert len(outputs) == 1 and len(next(iter(outputs))) > 1000


def test_text_that_is_not_valid_utf8_keeps_its_bytes():
    text = "def f(a):\n    x = '\udcff'\n    return x + a\n"
    variant = renamed(text, names=["value"])
    assert variant == "def f(a):\n    value = '\udcff'\n    return value + a\n"


def test_python_renames_the_parameters_of_helpers_only_called_positionally():
    text = textwrap.dedent('''\
        def outer(items):
            def square(v, bias=0):
                return v * v + bias
            def by_keyword(w):
                return w
            def escapes(u):
                return u
            total = [square(i) for i in items] + [square(i, 1) for i in items]
            return total, by_keyword(w=1), escapes
        ''')
    changes = dict(changed_names(text, renamed(text, names=["value", "offset", "entry"])))
    assert {"v", "bias", "total", "i"} <= set(changes)
    assert not {"w", "u", "items", "square", "by_keyword", "escapes"} & set(changes)


CPP_PROGRAM = r"""
#include <algorithm>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

class Ledger {
  public:
    explicit Ledger(int limit) : limit(limit) {}
    int add(const std::string& who, int amount) {
        int capped = std::min(amount, limit);
        totals[who] += capped;
        return capped;
    }
    std::vector<std::pair<std::string, int>> ranked() const {
        std::vector<std::pair<std::string, int>> rows(totals.begin(), totals.end());
        std::sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) {
            return a.second != b.second ? a.second > b.second : a.first < b.first;
        });
        return rows;
    }
  private:
    int limit;
    std::map<std::string, int> totals;
};

template <typename T>
T sum_squares(const std::vector<T>& values) {
    T total = 0;
    for (const T& value : values) { total += value * value; }
    return total;
}

int main() {
    Ledger ledger(50);
    const char* names[] = {"ann", "bob", "cy", "ann", "bob", "ann"};
    int step = 7;
    for (int i = 0; i < 6; ++i) { ledger.add(names[i], step * (i + 3)); }
    for (const auto& [who, total] : ledger.ranked()) { std::printf("%s=%d\n", who.c_str(), total); }
    std::vector<double> xs{1.5, 2.0, -3.25};
    std::printf("%.4f %d\n", sum_squares(xs), sum_squares(std::vector<int>{1, 2, 3}));
    return 0;
}
"""


def test_cpp_renaming_compiles_and_prints_the_same(tmp_path):
    gxx = tool("g++")
    if gxx is None:
        pytest.skip("needs g++")

    def build(folder: Path, path: Path) -> list[str]:
        subprocess.run([gxx, "-std=c++17", "-O1", "-o", str(folder / "main"), str(path)],
                       check=True, capture_output=True, timeout=120)
        return [str(folder / "main")]

    variant, outputs = compiled_outputs(tmp_path, CPP_PROGRAM, "cpp", build, "main.cpp")
    assert outputs[0] == outputs[1] and outputs[0].startswith("ann=")
    assert diff_words(CPP_PROGRAM, variant) > 15
    assert "limit(limit)" not in variant and ": limit(" in variant  # the member keeps its name
    assert "int limit;" in variant and "totals[" in variant


def test_go_keeps_composite_literal_keys_and_named_results():
    text = textwrap.dedent('''\
        package kv

        type pair struct{ key, val int }

        func build(n int) (total int) {
            key := n * 2
            extra := n + 1
            p := pair{key: key, val: 3}
            total = p.key + extra
            return
        }
        ''')
    variant = renamed(text, "go", names=["count", "entry", "width"])
    assert "pair{key: key, val: 3}" in variant  # key: a field or a variable, cannot tell
    assert "(total int)" in variant and "    total = " in variant  # a named result
    assert "extra" not in variant and ".key + " in variant  # a local renamed, a field kept


JDK_CLASSES = ("java/util/TreeMap.java", "java/util/ArrayDeque.java",
               "java/util/StringJoiner.java", "java/util/Base64.java")

JDK_DRIVER = r'''
import java.util.*;
public class Drive {
  public static void main(String[] args) {
    TreeMap<String, Integer> t = new TreeMap<>();
    String[] words = "the quick brown fox jumps over the lazy dog again and again".split(" ");
    for (int i = 0; i < words.length; i++) t.merge(words[i], i, Integer::sum);
    System.out.println(t + " " + t.headMap("fox") + " " + t.descendingMap() + " "
        + t.ceilingKey("m") + " " + t.subMap("b", true, "l", false) + " " + t.pollFirstEntry());
    ArrayDeque<Integer> d = new ArrayDeque<>();
    for (int i = 0; i < 40; i++) {
      if (i % 3 == 0) d.addFirst(i); else d.addLast(i);
      if (i % 7 == 0) d.pollFirst();
    }
    d.removeIf(x -> x % 5 == 0);
    System.out.println(d + " " + d.peekLast());
    StringJoiner j = new StringJoiner(", ", "[", "]");
    j.setEmptyValue("EMPTY");
    System.out.println(j);
    for (String w : words) j.add(w);
    System.out.println(j.length() + " " + j);
    byte[] data = "hello, base64 world! \u00e9\u00e8".getBytes();
    String e = Base64.getEncoder().encodeToString(data);
    String u = Base64.getUrlEncoder().withoutPadding().encodeToString(data);
    String m = Base64.getMimeEncoder(8, "|".getBytes()).encodeToString(data);
    System.out.println(e + " " + u + " " + m + " " + new String(Base64.getDecoder().decode(e))
        + " " + Arrays.toString(Base64.getUrlDecoder().decode(u)));
    try { Base64.getDecoder().decode("@@@"); }
    catch (IllegalArgumentException ex) { System.out.println(ex.getMessage()); }
  }
}
'''


def jdk_with_sources() -> Path | None:
    """A JDK whose ``lib/src.zip`` holds its own sources (None where none is installed)."""
    for home in sorted(Path("/usr/lib/jvm").glob("*")):
        if (home / "lib" / "src.zip").is_file() and (home / "bin" / "javac").is_file():
            return home
    return None


@pytest.mark.slow
def test_java_renamed_jdk_classes_run_inside_the_jdk_the_same(tmp_path):
    """TreeMap, ArrayDeque, StringJoiner and Base64 from the JDK's own sources, renamed,
    compiled into java.base (--patch-module) and driven: the same output as the JDK's."""
    import zipfile

    home = jdk_with_sources()
    if home is None:
        pytest.skip("needs a JDK with its sources (lib/src.zip)")
    with zipfile.ZipFile(home / "lib" / "src.zip") as archive:
        texts = {name: archive.read(f"java.base/{name}").decode("utf-8")
                 for name in JDK_CLASSES}
    names = vocabulary(*texts.values(), language="java")
    changed = 0
    for name, text in texts.items():
        variant = renamed(text, "java", seed=3, names=names)
        changed += diff_words(text, variant)
        (tmp_path / "src" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "src" / name).write_text(variant, encoding="utf-8")
    assert changed > 2000
    javac, java = str(home / "bin" / "javac"), str(home / "bin" / "java")
    subprocess.run([javac, "-nowarn", "--patch-module", f"java.base={tmp_path / 'src'}",
                    "-d", str(tmp_path / "patch"),
                    *(str(tmp_path / "src" / name) for name in JDK_CLASSES)],
                   check=True, capture_output=True, timeout=300)
    (tmp_path / "Drive.java").write_text(JDK_DRIVER, encoding="utf-8")
    subprocess.run([javac, "-d", str(tmp_path), str(tmp_path / "Drive.java")], check=True,
                   capture_output=True, timeout=120)
    runs = [subprocess.run([java, *patch, "-Xlog:class+load=info", "-cp", str(tmp_path),
                            "Drive"], capture_output=True, text=True, timeout=120, check=True)
            for patch in ([], ["--patch-module", f"java.base={tmp_path / 'patch'}"])]
    loaded = [line for line in runs[1].stdout.splitlines() if "java.util.TreeMap source" in line]
    assert loaded and "patch" in loaded[0]  # the renamed class ran, not the JDK's own
    outputs = ["\n".join(line for line in run.stdout.splitlines() if "[class,load]" not in line)
               for run in runs]
    assert outputs[0] == outputs[1] and "EMPTY" in outputs[0]
