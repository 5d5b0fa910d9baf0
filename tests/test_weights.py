"""Sampling weights as read-time policy: class defaults, user glob rules (first match wins),
validation, unmatched globs, and ``copies`` keeping fractional weights in expectation."""

from __future__ import annotations

import math
import subprocess

import numpy as np
import pytest

from helpers import CORPUS
from repofeed.store.errors import ConfigError
from repofeed.store.globs import Glob, GlobError
from repofeed.store.weights import DEFAULT_CLASS_WEIGHTS, DEFAULT_RULES, WeightRules, copies


@pytest.mark.parametrize("path, weight, cls", [
    ("src/repofeed/cli.py", 3.0, "core"), ("lib/daemon/history.rb", 3.0, "core"),
    ("crates/foo/src/x.rs", 3.0, "core"), ("crates/store/src/lib.rs", 3.0, "core"),
    ("core/loop.go", 3.0, "core"), ("pkg/core/state.go", 3.0, "core"), ("core.py", 3.0, "core"),
    ("tests/test_cli.py", 0.3, "test"), ("src/app/tests/helpers.py", 0.3, "test"),
    ("crates/foo/tests/walk.rs", 0.3, "test"), ("server/handler_test.go", 0.3, "test"),
    ("web/button.spec.ts", 0.3, "test"), ("spec/models/user_spec.rb", 0.3, "test"),
    ("README.md", 0.5, "docs"), ("docs/conf.py", 0.5, "docs"), ("CHANGELOG", 0.5, "docs"),
    ("core/README.md", 0.5, "docs"), ("notes.txt", 0.5, "docs"),
    ("pyproject.toml", 0.5, "config"), ("src/settings.json", 0.5, "config"),
    (".github/workflows/ci.yml", 0.5, "config"), ("Makefile", 0.5, "config"),
    ("config/app.yaml", 0.5, "config"),
    ("main.go", 1.0, "other"), ("scripts/release.sh", 1.0, "other"),
    ("cmd/fd/main.rs", 1.0, "other"), ("crates/foo/build.rs", 1.0, "other"),
])
def test_class_defaults(path, weight, cls):
    assert DEFAULT_RULES.decide(path) == (weight, f"class {cls}")


def test_every_real_path_gets_a_default_weight(tmp_path):
    """Over a real repository's files every class weight is used and core code weighs most."""
    bundle = CORPUS / "fd.bundle"
    if not bundle.exists():
        pytest.skip(f"{bundle} is missing: the corpus lives in ../shared beside the checkout")
    subprocess.run(["git", "clone", "-q", str(bundle), str(tmp_path / "fd")], check=True)
    paths = subprocess.run(["git", "ls-files"], cwd=tmp_path / "fd", check=True,
                           capture_output=True, text=True).stdout.split()
    decided = {p: DEFAULT_RULES.decide(p) for p in paths}
    assert decided["src/main.rs"] == (3.0, "class core")
    assert {w for w, _ in decided.values()} <= set(DEFAULT_CLASS_WEIGHTS.values())
    by_class = {which for _, which in decided.values()}
    assert {"class core", "class test", "class docs", "class config"} <= by_class
    assert WeightRules([("src/**/*.rs", 2.0), ("nothing/here/**", 1.0), ("*.md", 0.1)]) \
        .unmatched(paths) == ["nothing/here/**"]


def test_rules_first_match_wins_then_classes():
    rules = WeightRules([
        ("tests/fixtures/**", 0),             # excluded
        ("tests/**/test_*.py", 1.5),
        ("**/generated/*.rs", 0.1),
        ("*.md", 0.2),                         # any depth: no '/' in the glob
        ("/setup.py", 0.4),                    # the root's only
        ("docs/", 0.05),                       # a directory and everything below
    ], {"test": 0.7})
    assert rules.decide("tests/fixtures/big.json") == (0.0, "rule tests/fixtures/**")
    assert rules.decide("tests/unit/test_x.py") == (1.5, "rule tests/**/test_*.py")
    assert rules.decide("tests/test_x.py") == (1.5, "rule tests/**/test_*.py")  # ** is 0 dirs
    assert rules.decide("tests/helpers.py") == (0.7, "class test")
    assert rules.decide("src/generated/ast.rs") == (0.1, "rule **/generated/*.rs")
    assert rules.decide("generated/ast.rs") == (0.1, "rule **/generated/*.rs")
    assert rules.weight("src/generated/deep/ast.rs") == 3.0  # * stays within a directory
    assert rules.which("docs/guide/intro.md") == "rule *.md"  # the earlier rule wins
    assert rules.which("docs/conf.py") == "rule docs/"
    assert rules.weight("setup.py") == 0.4 and rules.weight("pkg/setup.py") == 0.5
    assert rules.which("src/lib.rs") == "class core"


def test_rules_from_a_mapping_keep_their_order():
    rules = WeightRules({"src/legacy/**": 0.5, "src/**": 2.0})
    assert rules.weight("src/legacy/old.c") == 0.5 and rules.weight("src/new.c") == 2.0


def test_unmatched_globs():
    rules = WeightRules([("src/**", 1), ("vendor/**", 0), ("**/*.proto", 0.5)])
    paths = ["src/a.c", "lib/b.c", "api/v1/svc.proto"]
    assert rules.unmatched(paths) == ["vendor/**"]
    assert rules.unmatched([]) == ["src/**", "vendor/**", "**/*.proto"]


@pytest.mark.parametrize("rules, classes, message", [
    ([("src/**", -1)], None, r"rule 'src/\*\*' must be a finite number >= 0"),
    ([("src/**", "high")], None, "must be a number"),
    ([("src/**", True)], None, "must be a number"),
    ([("src/**", math.nan)], None, "finite number"),
    ([("src/**", math.inf)], None, "finite number"),
    ([("src/***", 1)], None, "'\\*\\*' must be a whole path component"),
    ([("src/[ab", 1)], None, "has no closing"),
    ([("", 1)], None, "non-empty"),
    ([("!src/**", 1)], None, "negation is not supported"),
    ([("src/**",)], None, r"a \(glob, weight\) pair"),
    ([], {"tests": 0.3}, "unknown path class.*'tests'.*core, test, docs, config, other"),
    ([], {"core": -3}, "class 'core' must be a finite number >= 0"),
])
def test_bad_rules_are_clear_errors(rules, classes, message):
    with pytest.raises(ConfigError, match=message):
        WeightRules(rules, classes)


def test_glob_errors_are_config_errors():
    with pytest.raises(GlobError, match="empty path component"):
        Glob("src//a.py")
    assert issubclass(GlobError, ConfigError)


@pytest.mark.parametrize("pattern, path, matches", [
    ("*.md", "README.md", True), ("*.md", "docs/a/b.md", True),
    ("src/*.py", "src/a.py", True), ("src/*.py", "src/x/a.py", False),
    ("src/*.py", "lib/src/a.py", False), ("/Makefile", "Makefile", True),
    ("/Makefile", "sub/Makefile", False), ("fixtures", "a/fixtures/x.json", True),
    ("build/", "build", False), ("build/", "x/build/out.o", True),
    ("src/gen", "src/gen/x.py", True), ("src/gen", "src/generator.py", False),
    ("[!a]*.py", "b.py", True), ("[!a]*.py", "a.py", False),
    ("file[0-9].txt", "file3.txt", True), ("file?.txt", "file/.txt", False),
    ("docs/**", "docs/a/b.md", True), ("docs/**", "docs", False),
    ("a/**/b", "a/b", True), ("a/**/b", "a/x/y/b", True), ("a/**/b", "ab", False),
    (r"weird\*name", "weird*name", True), (r"weird\*name", "weirdXname", False),
    ("*.MD", "README.md", False),
])
def test_glob_semantics(pattern, path, matches):
    assert Glob(pattern).matches(path) is matches


def test_copies_is_floor_plus_a_fractional_draw():
    assert [copies(0.3, u) for u in (0.0, 0.2999, 0.3, 0.9999)] == [1, 1, 0, 0]
    assert [copies(2.5, u) for u in (0.0, 0.49, 0.5, 0.99)] == [3, 3, 2, 2]
    assert {copies(0.0, u) for u in (0.0, 0.5, 0.999)} == {0}
    assert {copies(3.0, u) for u in (0.0, 0.5, 0.999)} == {3}
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        copies(1.0, 1.0)
    with pytest.raises(ValueError, match="weight"):
        copies(-0.5, 0.5)


@pytest.mark.parametrize("weight", [0.3, 0.05, 0.5, 1.0, 2.5, 3.0, 0.999])
def test_copies_average_to_the_weight(weight):
    """Over n uniform draws the mean number of copies is the weight: the extra copy is a
    Bernoulli(frac) draw, so the mean's standard deviation is sqrt(frac (1 - frac) / n); the
    tolerance is 5 of them (a fixed seed: the test is deterministic, and it fails for any
    rounding rule, since rounding 0.3 down is off by 0.3, hundreds of deviations)."""
    n = 40_000
    draws = np.random.default_rng(20240901).random(n)
    mean = sum(copies(weight, float(u)) for u in draws) / n
    frac = weight - math.floor(weight)
    sigma = math.sqrt(frac * (1 - frac) / n)
    assert abs(mean - weight) <= 5 * sigma + 1e-12
