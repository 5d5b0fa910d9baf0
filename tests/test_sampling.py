"""Weights as sampling probabilities, applied by the training stream at read time; curricula.

A document of weight w is drawn floor(w) times per epoch plus once more with probability
frac(w) (store/policy.py, weights.copies): 0.3 means 0.3× as often, never zero copies.
Changing a rule needs no re-ingest: the store is only read.
"""

from __future__ import annotations

import hashlib
from collections import Counter

import pytest
import torch

from helpers import run_cli
from repofeed.daemon.ingest import backfill
from repofeed.daemon.init import init_store
from repofeed.store import WindowDataset, open_store
from repofeed.store.config import Config
from repofeed.store.errors import ConfigError
from repofeed.store.locate import resolve_store_dir
from repofeed.store.policy import Policy
from repofeed.train.stream import TrainStream


def _module(name: str, n: int) -> str:
    return "".join(f"def {name}_{k}(value_{k}):\n    return value_{k} * {k + n} - {n}\n"
                   for k in range(4))


def _nested(name: str, depth: int) -> str:
    lines, pad = [f"def {name}(items, limit):"], "    "
    for level in range(depth):
        lines.append(f"{pad * (level + 1)}for item_{level} in items:")
        lines.append(f"{pad * (level + 2)}if item_{level} > limit and limit % {level + 2}:")
    lines.append(f"{pad * (depth + 2)}return item_{depth - 1}")
    lines.append(f"{pad}return None")
    return "\n".join(lines) + "\n"


FILES = {
    "src/engine.py": _module("engine", 1),          # core: 3.0
    "tests/test_engine.py": _module("check", 2),    # test: 0.3
    "docs/guide.md": "# Guide\n\nHow the engine turns values into results, step by step.\n",
    "tools/helper.py": _module("helper", 3),         # other: 1.0
}


@pytest.fixture(autouse=True)
def windows_as_stored(monkeypatch):
    """These tests tell windows apart by their tokens: no fill-in-the-middle (tested in
    test_augment.py), set through the environment as a user would."""
    monkeypatch.setenv("REPOFEED_FIM_RATE", "0")


@pytest.fixture
def weighted_repo(make_repo):
    repo = make_repo("weighted")
    repo.commit("Four kinds of file", FILES)
    init_store(repo.path, max_tokens=64, overlap=0, vocab_size=400)
    backfill(repo.path)
    return repo


def _provenance(path) -> dict[bytes, str]:
    """Each window's fingerprint -> the path it comes from (WindowDataset's order is the
    store's window order)."""
    data = WindowDataset(path)
    with open_store(path) as store:
        paths = [w["path"] for w in store.windows()]
    out = {_fingerprint(data[i]): paths[i] for i in range(len(data))}
    data.close()
    return out


def _fingerprint(item: dict[str, torch.Tensor]) -> bytes:
    return item["input_ids"].numpy().tobytes()


def _windows_per_path(path) -> Counter:
    with open_store(path) as store:
        return Counter(w["path"] for w in store.windows())


def test_weights_are_sampling_rates_never_rounded_to_zero(weighted_repo):
    epochs = 300
    where = _provenance(weighted_repo.path)
    per_path = _windows_per_path(weighted_repo.path)
    stream = TrainStream(weighted_repo.path, seed=11, epochs=epochs, mix={"windows": 1})
    draws: Counter = Counter()
    epochs_with: Counter = Counter()
    seen_this_epoch: set[str] = set()
    epoch = 0
    for item in stream:
        if stream.epoch != epoch:
            epochs_with.update(seen_this_epoch)
            seen_this_epoch, epoch = set(), stream.epoch
        path = where[_fingerprint(item)]
        draws[path] += 1
        seen_this_epoch.add(path)
    epochs_with.update(seen_this_epoch)
    expected = {"src/engine.py": 3.0, "tests/test_engine.py": 0.3, "docs/guide.md": 0.5,
                "tools/helper.py": 1.0}
    for path, weight in expected.items():
        trials = per_path[path] * epochs
        rate = draws[path] / trials
        # each window's extra copy is a Bernoulli(frac(w)) per epoch: 4.5 standard deviations
        frac = weight - int(weight)
        tolerance = 4.5 * (frac * (1 - frac) / trials) ** 0.5 + 1e-9
        assert abs(rate - weight) <= tolerance, (path, rate, weight)
    # 0.3 is sampled in some epochs and not in others: never rounded to zero copies
    assert 0 < epochs_with["tests/test_engine.py"] < epochs


def test_the_same_seed_gives_the_same_weighted_epochs_and_a_resume_continues_exactly(
        weighted_repo):
    def run(seed):
        return [_fingerprint(i) for i in TrainStream(weighted_repo.path, seed=seed, epochs=4)]

    assert run(5) == run(5) and run(5) != run(6)
    whole = run(5)
    stopped = TrainStream(weighted_repo.path, seed=5, epochs=4)
    it = iter(stopped)
    head = [_fingerprint(next(it)) for _ in range(len(whole) // 2 + 1)]
    state = stopped.state_dict()
    resumed = TrainStream(weighted_repo.path, seed=5, epochs=4)
    resumed.load_state_dict(state)
    assert head + [_fingerprint(i) for i in resumed] == whole


def test_ranks_partition_a_weighted_epoch(weighted_repo):
    single = Counter(_fingerprint(i) for i in TrainStream(weighted_repo.path, seed=2,
                                                         batch_size=2))
    ranks = Counter()
    for rank in range(2):
        ranks.update(_fingerprint(i) for i in TrainStream(weighted_repo.path, seed=2,
                                                          batch_size=2, rank=rank,
                                                          world_size=2))
    assert ranks == single and sum(single.values()) > len(_provenance(weighted_repo.path))


def _store_bytes(path) -> str:
    return hashlib.sha256((resolve_store_dir(path) / "data.mdb").read_bytes()).hexdigest()


def test_changing_a_rule_needs_no_reingest(weighted_repo):
    before = _store_bytes(weighted_repo.path)
    where = _provenance(weighted_repo.path)
    weighted_repo.write("repofeed.toml", '[weights]\n"tools/**" = 0\n"docs/*.md" = 2\n')
    drawn = Counter(where[_fingerprint(i)] for i in TrainStream(
        weighted_repo.path, seed=1, epochs=20, mix={"windows": 1}))
    assert drawn["tools/helper.py"] == 0
    assert drawn["docs/guide.md"] == 2 * 20 * _windows_per_path(weighted_repo.path)[
        "docs/guide.md"]
    assert _store_bytes(weighted_repo.path) == before          # read, never rewritten
    shown = run_cli("show", "path", "tools/helper.py", str(weighted_repo.path)).stdout
    assert "weight_zero" in shown
    shown = run_cli("show", "path", "docs/guide.md", str(weighted_repo.path)).stdout
    assert "weight 2 (set by rule docs/*.md)" in shown


def test_a_resume_under_other_rules_is_refused(weighted_repo):
    stream = TrainStream(weighted_repo.path, seed=1)
    next(iter(stream))
    state = stream.state_dict()
    weighted_repo.write("repofeed.toml", 'weight_core = 1.5\n')
    with pytest.raises(ConfigError, match="policy"):
        TrainStream(weighted_repo.path, seed=1).load_state_dict(state)


@pytest.fixture
def graded_repo(make_repo):
    """Documents from flat to deeply nested, all of one class (weight 1)."""
    repo = make_repo("graded")
    repo.commit("Code of growing complexity",
                {f"pkg/level{d}.py": _nested(f"walk{d}", d) for d in range(1, 7)})
    init_store(repo.path, max_tokens=64, overlap=0, vocab_size=400)
    backfill(repo.path)
    return repo


def _scores(path) -> dict[str, float]:
    with open_store(path) as store:
        return {w.path: w.score for w in Policy.unweighted().documents(store)}


def test_the_curriculum_goes_from_simple_to_complex_by_epoch(graded_repo):
    scores = _scores(graded_repo.path)
    assert scores["pkg/level1.py"] < scores["pkg/level6.py"]
    where = _provenance(graded_repo.path)
    policy = Policy(Config(fim_rate=0, curriculum="epochs", curriculum_phases=3,
                           weighting=False,
                           near_dedup="off"))
    stream = TrainStream(graded_repo.path, seed=0, epochs=3, mix={"windows": 1}, policy=policy)
    by_epoch: dict[int, set[str]] = {}
    for item in stream:
        by_epoch.setdefault(stream.epoch, set()).add(where[_fingerprint(item)])
    first, second, third = by_epoch[0], by_epoch[1], by_epoch[2]
    assert first < second < third == set(scores)
    # every document of a phase is simpler than every document it leaves out
    for phase in (first, second):
        assert max(scores[p] for p in phase) < min(scores[p] for p in set(scores) - phase)


def test_complexity_proportional_sampling_draws_complex_code_more(graded_repo):
    where = _provenance(graded_repo.path)
    per_path = _windows_per_path(graded_repo.path)
    policy = Policy(Config(fim_rate=0, curriculum="proportional", weighting=False,
                           near_dedup="off"))
    drawn = Counter(where[_fingerprint(i)] for i in TrainStream(
        graded_repo.path, seed=0, epochs=60, mix={"windows": 1}, policy=policy))
    rate = {p: drawn[p] / per_path[p] for p in per_path}
    assert rate["pkg/level6.py"] > 2 * rate["pkg/level1.py"] > 0


def test_a_new_document_joins_the_next_epoch_with_its_weight(weighted_repo):
    stream = TrainStream(weighted_repo.path, seed=3, epochs=2, mix={"windows": 1})
    first = stream.epoch_length()
    it = iter(stream)
    for _ in range(first):
        next(it)
    weighted_repo.commit("A second core module", {"src/extra.py": _module("extra", 9)})
    backfill(weighted_repo.path)
    where = _provenance(weighted_repo.path)
    rest = Counter(where[_fingerprint(i)] for i in it)
    assert rest["src/extra.py"] == 3 * _windows_per_path(weighted_repo.path)["src/extra.py"]
