"""Context documents: a file after the files it depends on, cut to a budget, and the
documents a change touches; on hand-made graphs (chains, a diamond, cycles, self-imports),
random graphs checked against their definition, and the attrs history's tip."""

from __future__ import annotations

import random
import subprocess

import pytest

from helpers import CORPUS
from repofeed.daemon.history import text_of
from repofeed.store.context import (
    FILE_SEP,
    affected,
    changed_edges,
    closure,
    context_document,
    dependents,
    order,
    piece,
    reverse,
    with_edges,
)
from repofeed.store.imports import import_graph

# ---- order ---------------------------------------------------------------------------------


def test_a_chain_comes_dependencies_first_and_the_target_last():
    graph = {"app.py": ["service.py"], "service.py": ["model.py"], "model.py": []}
    assert order("app.py", graph) == ["model.py", "service.py", "app.py"]
    assert order("model.py", graph) == ["model.py"]
    assert order("unknown.py", graph) == ["unknown.py"]


def test_a_diamond_places_the_shared_base_once_before_both_sides():
    graph = {"top": ["left", "right"], "left": ["base"], "right": ["base"], "base": []}
    assert order("top", graph) == ["base", "left", "right", "top"]


def test_ties_go_to_the_smallest_in_degree_then_the_path():
    # Ready at once: a_popular (imported by target, x and y) and z_lonely (by target only).
    graph = {"target": ["x", "y", "z_lonely", "a_popular"],
             "x": ["a_popular"], "y": ["a_popular"]}
    assert order("target", graph) == ["z_lonely", "a_popular", "x", "y", "target"]
    # The target's own imports count: b_direct (imported by the target) ties with a_other
    # (imported by p), so the path decides; not counted, b_direct would come first.
    graph = {"target": ["p", "b_direct"], "p": ["a_other"]}
    assert order("target", graph) == ["a_other", "b_direct", "p", "target"]


def test_order_is_deterministic_whatever_the_graph_s_order():
    rng = random.Random(3)
    names = [f"m{i:02d}.py" for i in range(30)]
    graph = {n: rng.sample(names, rng.randint(0, 4)) for n in names}
    shuffled = {n: list(reversed(graph[n])) for n in reversed(names)}
    for target in names:
        assert order(target, graph) == order(target, shuffled)


def test_self_imports_and_imports_of_the_target_are_ignored():
    assert order("a", {"a": ["a", "b"], "b": ["b"]}) == ["b", "a"]
    assert order("b", {"b": ["b"]}) == ["b"]
    assert order("t", {"t": ["a"], "a": ["t"]}) == ["a", "t"]  # a cycle through the target


def test_a_50_file_import_cycle_is_broken_deterministically_and_wholly_included():
    ring = [f"f{i:02d}.py" for i in range(50)]
    graph = {f: [ring[(i + 1) % 50]] for i, f in enumerate(ring)}
    # From inside the ring: its imports of the target are ignored, so the ring unrolls.
    assert order("f00.py", graph) == ring[::-1][:-1] + ["f00.py"]
    # From outside: the cycle is broken at the file with the fewest files pending.
    outside = {**graph, "main.py": ["f10.py"]}
    placed = order("main.py", outside)
    assert placed[-1] == "main.py" and sorted(placed[:-1]) == ring
    assert placed == order("main.py", dict(reversed(outside.items())))
    texts = {f: f"def {f[:-3]}():\n    pass\n" for f in [*ring, "main.py"]}
    text, paths = context_document("main.py", outside, texts, budget=10_000)
    assert paths == placed and len(text) <= 10_000
    text, paths = context_document("main.py", outside, texts, budget=300)
    assert len(text) <= 300 and paths[-1] == "main.py" and paths == placed[-len(paths):]


def test_a_dense_cycle_of_50_files_importing_each_other_terminates_with_all():
    names = [f"d{i:02d}" for i in range(50)]
    graph = {n: [m for m in names if m != n] for n in names}
    placed = order("d00", graph)
    assert placed[-1] == "d00" and sorted(placed) == names


def test_dependencies_come_before_dependents_wherever_no_cycle_joins_them():
    rng = random.Random(11)
    names = [f"r{i:02d}" for i in range(40)]
    graph = {n: rng.sample(names, rng.randint(0, 3)) for n in names}
    for target in names:
        placed = order(target, graph)
        assert placed[-1] == target and len(set(placed)) == len(placed)
        assert set(placed[:-1]) == closure(target, graph)
        at = {p: i for i, p in enumerate(placed)}
        for a in placed[:-1]:
            for b in graph.get(a, ()):
                if b in at and b != target and a not in closure(b, graph):
                    assert at[b] < at[a], (target, a, b)


# ---- the document and its cut ---------------------------------------------------------------

CHAIN = {"t.py": ["d1.py"], "d1.py": ["d2.py"], "d2.py": ["d3.py"], "d3.py": []}
TEXTS = {"t.py": "T" * 100, "d1.py": "1" * 100, "d2.py": "2" * 100, "d3.py": "3" * 100}


def test_the_layout_is_path_lines_and_texts_joined_by_the_separator():
    text, paths = context_document("t.py", {"t.py": ["u.py"]}, {"t.py": "A\n", "u.py": "B"},
                                   budget=1000)
    assert text == "u.py\nB<file_sep>t.py\nA\n" and paths == ["u.py", "t.py"]
    assert piece("u.py", "B") == "u.py\nB" and FILE_SEP == "<file_sep>"
    text, _ = context_document("t.py", {"t.py": ["u.py"]}, {"t.py": "A", "u.py": "B"}, 99,
                               sep="|")
    assert text == "u.py\nB|t.py\nA"


def test_a_target_without_dependencies_has_no_document():
    assert context_document("d3.py", CHAIN, TEXTS, 10_000) is None
    assert context_document("t.py", {"t.py": ["gone.py"]}, TEXTS, 10_000) is None
    assert context_document("missing.py", CHAIN, TEXTS, 10_000) is None


def test_the_cut_keeps_the_target_and_drops_the_farthest_dependencies_first():
    whole, paths = context_document("t.py", CHAIN, TEXTS, 10_000)
    assert paths == ["d3.py", "d2.py", "d1.py", "t.py"]
    sizes = [len(piece(p, TEXTS[p])) for p in paths]
    assert len(whole) == sum(sizes) + 3 * len(FILE_SEP)
    for budget, kept in [(len(whole), paths), (len(whole) - 1, paths[1:]),
                         (sizes[3] + sizes[2] + len(FILE_SEP), ["d1.py", "t.py"]),
                         (sizes[3], ["t.py"])]:
        text, got = context_document("t.py", CHAIN, TEXTS, budget)
        assert got == kept and len(text) <= budget
        assert text.endswith(piece("t.py", TEXTS["t.py"]))


def test_a_target_alone_over_the_budget_keeps_its_start():
    text, paths = context_document("t.py", CHAIN, TEXTS, 50)
    assert paths == ["t.py"] and text == piece("t.py", TEXTS["t.py"])[:50]
    assert context_document("t.py", CHAIN, TEXTS, 0) == ("", ["t.py"])


def test_every_budget_and_size_function_is_respected():
    rng = random.Random(5)
    names = [f"p{i}.py" for i in range(12)]
    graph = {n: rng.sample(names, 3) for n in names}
    texts = {n: "".join(rng.choice("ab c\n") for _ in range(rng.randint(0, 200)))
             for n in names}

    def tokens(text: str) -> int:  # a size that is not additive over the pieces
        return len(text.replace("<file_sep>", "\x00").split()) + text.count("\x00")

    for size in (len, tokens):
        for budget in range(0, 600, 7):
            for target in names[:4]:
                found = context_document(target, graph, texts, budget, size)
                if found is None:
                    continue
                text, paths = found
                assert size(text) <= budget and paths[-1] == target
                full = order(target, graph)
                assert paths == full[len(full) - len(paths):]  # a suffix: nearest kept


# ---- the documents a change touches ---------------------------------------------------------

def test_changing_a_leaf_affects_its_transitive_dependents_and_nothing_else():
    graph = {"t1": ["mid"], "mid": ["leaf"], "t2": ["leaf", "other"], "t3": ["other"],
             "leaf": [], "other": [], "alone": []}
    assert dependents({"leaf"}, graph) == {"t1", "mid", "t2"}
    assert dependents({"mid"}, graph) == {"t1", "mid"}
    assert dependents({"alone"}, graph) == set()
    assert dependents({"leaf"}, graph, reverse(graph)) == {"t1", "mid", "t2"}


def test_dependents_are_exactly_the_documents_that_include_the_change():
    rng = random.Random(17)
    names = [f"q{i:02d}" for i in range(40)]
    graph = {n: rng.sample(names, rng.choice([0, 0, 1, 2, 3])) for n in names}
    texts = {n: f"# {n}\n" for n in names}
    documents = {n: context_document(n, graph, texts, 10**9) for n in names}
    for changed in names:
        including = {n for n, found in documents.items()
                     if found is not None and changed in found[1]}
        assert dependents({changed}, graph) == including, changed


def test_graph_updates_and_the_files_whose_edges_changed():
    old = {"a": ["b"], "b": [], "c": ["a"]}
    new = with_edges(old, "b", ["c", "c", "b"])
    assert new["b"] == ["c"] and old["b"] == []
    assert changed_edges(old, new) == {"b"}
    assert changed_edges(new, with_edges(new, "c", None)) == {"c"}
    assert dependents(changed_edges(old, new), new) == {"a", "b", "c"}


def test_a_commit_affects_the_documents_of_its_files_and_of_imports_it_rewired():
    texts = {"app.py": "import util\nimport plugin\n", "util.py": "import base\n",
             "base.py": "", "other.py": "import base\n", "lone.py": "import os\n",
             "cli.py": "import app\n"}
    old = import_graph(texts)
    assert old["app.py"] == ["util.py"]  # plugin.py does not exist yet
    # The commit edits base.py and adds plugin.py, which app.py's import now finds.
    after = {**texts, "base.py": "X = 1\n", "plugin.py": ""}
    new = import_graph(after)
    touched = affected({"base.py", "plugin.py"}, old, new)
    assert touched == {"app.py", "util.py", "other.py", "cli.py"}
    before = {t: context_document(t, old, texts, 10**6) for t in old}
    now = {t: context_document(t, new, after, 10**6) for t in new}
    assert {t for t in before.keys() | now.keys() if before.get(t) != now.get(t)} == touched
    # Deleting util.py: its importers lose an edge, util.py's own document goes.
    gone = {k: v for k, v in texts.items() if k != "util.py"}
    assert affected({"util.py"}, old, import_graph(gone)) == {"app.py", "util.py", "cli.py"}


# ---- a real history ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def attrs(tmp_path_factory) -> dict[str, str]:
    bundle = CORPUS / "attrs.bundle"
    if not bundle.is_file():
        pytest.skip(f"corpus bundle missing: {bundle} (set REPOFEED_CORPUS)")
    clone = tmp_path_factory.mktemp("attrs") / "attrs"
    subprocess.run(["git", "clone", "-q", str(bundle), str(clone)], check=True)
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=clone, capture_output=True,
                            check=True).stdout.decode().split("\0")
    texts = {}
    for path in filter(None, listed):
        if (clone / path).is_file():
            text, _ = text_of((clone / path).read_bytes())
            if text is not None:
                texts[path] = text
    return texts


def test_attrs_context_documents_fit_the_window_and_order_dependencies_first(attrs):
    graph = import_graph(attrs)
    budget = 16_000
    documents = {t: context_document(t, graph, attrs, budget) for t in graph}
    made = {t: d for t, d in documents.items() if d is not None}
    assert len(made) > 30
    for target, (text, paths) in made.items():
        assert len(text) <= budget and paths[-1] == target
        assert text.endswith(piece(target, attrs[target])) or paths == [target]
    placed = order("src/attr/_funcs.py", graph)
    assert placed.index("src/attr/_compat.py") < placed.index("src/attr/_make.py")
    print(f"attrs: {len(made)} context documents, "
          f"{sum(len(p) for _, p in made.values()) / len(made):.1f} files each on average")
