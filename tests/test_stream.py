"""TrainStream: epochs over a frozen watermark of a live store, mixing, replay, exact resume
(also through torchdata's StatefulDataLoader with workers), sharding and bad input."""

from __future__ import annotations

import threading
from collections import Counter

import msgpack
import numpy as np
import pytest
import torch
from torchdata.stateful_dataloader import StatefulDataLoader

from helpers import sample_files, wait_for
from repofeed.daemon.ingest import backfill
from repofeed.daemon.init import init_store
from repofeed.store import EvolutionDataset, RepofeedError, WindowDataset, open_store
from repofeed.store.errors import ConfigError, StoreError
from repofeed.store.gc import collect
from repofeed.store.locate import resolve_store_dir
from repofeed.store.policy import UNWEIGHTED
from repofeed.store.writer import StoreWriter
from repofeed.train.stream import TrainStream


def _fingerprint(item: dict[str, torch.Tensor]) -> bytes:
    return item["input_ids"].numpy().tobytes() + item["labels"].numpy().tobytes()


def _bag(items) -> Counter:
    return Counter(map(_fingerprint, items))


def _dataset_bag(path, labels_on="all") -> Counter:
    windows = WindowDataset(path, labels_on=labels_on)
    records = EvolutionDataset(path)
    bag = _bag(windows[i] for i in range(len(windows)))
    bag.update(_bag(records[i] for i in range(len(records))))
    windows.close()
    records.close()
    return bag


def _new_module(n: int) -> str:
    return "".join(f"def added_{n}_{k}(value):\n    return value * {k} + {n}  # {n}\n"
                   for k in range(12))


def _write_more(repo, n: int, change: str | None = None) -> None:
    """New data, as the daemon writes it: a commit with a new file (and a changed one), then
    the store brought up to date."""
    files = {f"added/mod{n}.py": _new_module(n)}
    if change is not None:
        files[change] = (repo.path / change).read_text() + f"\n# changed in round {n}\n"
    repo.commit(f"Add module {n}", files)
    backfill(repo.path)


@pytest.fixture(autouse=True)
def every_item_once(monkeypatch):
    """These tests check the stream's mechanics with every item once (the unweighted policy,
    through the environment, as a user would set it); weighted sampling and curricula have
    tests of their own (test_sampling.py)."""
    for key, value in UNWEIGHTED.items():
        monkeypatch.setenv(f"REPOFEED_{key.upper()}", str(value).lower())


@pytest.fixture
def store_repo(sample_repo):
    init_store(sample_repo.path, max_tokens=64, overlap=32)
    backfill(sample_repo.path)
    return sample_repo


def test_an_epoch_is_every_item_once_in_an_order_fixed_by_the_seed(store_repo):
    first = list(TrainStream(store_repo.path, seed=1))
    again = list(TrainStream(store_repo.path, seed=1))
    other = list(TrainStream(store_repo.path, seed=2))
    assert [_fingerprint(i) for i in first] == [_fingerprint(i) for i in again]
    assert [_fingerprint(i) for i in first] != [_fingerprint(i) for i in other]
    # every window and record view of the store, each exactly once, as the datasets make it
    assert _bag(first) == _dataset_bag(store_repo.path) == _bag(other)
    item = first[0]
    assert set(item) == {"input_ids", "attention_mask", "labels"}
    assert all(t.dtype == torch.long and t.shape == (64,) for t in item.values())


def test_the_next_epoch_has_another_order(store_repo):
    stream = TrainStream(store_repo.path, seed=3, epochs=2)
    items = list(stream)
    half = len(items) // 2
    assert _bag(items[:half]) == _bag(items[half:])
    assert [_fingerprint(i) for i in items[:half]] != [_fingerprint(i) for i in items[half:]]
    assert stream.epoch == 2 and list(stream) == []  # epochs counts in all


def test_new_files_do_not_move_the_old_items_order(store_repo):
    before = [_fingerprint(i) for i in TrainStream(store_repo.path, seed=2, mix={"windows": 1})]
    store_repo.commit("A file first in path order", {"aaa/first.py": _new_module(0)})
    backfill(store_repo.path)
    after = [_fingerprint(i) for i in TrainStream(store_repo.path, seed=2, mix={"windows": 1})]
    old = set(before)
    assert len(after) > len(before)
    assert [f for f in after if f in old] == before


def test_new_commits_join_at_the_next_epoch(store_repo):
    before = _dataset_bag(store_repo.path)
    stream = TrainStream(store_repo.path, seed=0, epochs=2)
    length = stream.epoch_length()
    it = iter(stream)
    head = [next(it) for _ in range(length // 3)]
    _write_more(store_repo, 1, change="src/inventory.py")
    rest = list(it)
    after = _dataset_bag(store_repo.path)
    assert after != before
    assert _bag(head + rest[:length - len(head)]) == before   # epoch 0: the old watermark
    assert _bag(rest[length - len(head):]) == after          # epoch 1: the new data in it


@pytest.mark.parametrize("replay, in_epoch", [(None, 0), (0.5, 1)])
def test_resume_after_new_data_gives_the_rest_of_the_run(store_repo, replay, in_epoch):
    changed = sorted(d["path"] for d in open_store(store_repo.path).documents())[0]
    uninterrupted = TrainStream(store_repo.path, seed=5, epochs=3, replay=replay)
    stopped = TrainStream(store_repo.path, seed=5, epochs=3, replay=replay)
    a, b = iter(uninterrupted), iter(stopped)
    seen = []
    if in_epoch == 1:  # new data for a replay epoch, which the state then holds
        for _ in range(stopped.epoch_length()):
            seen.append(_fingerprint(next(a)))
            next(b)
        _write_more(store_repo, 6)
    next(a), next(b)
    length = stopped.epoch_length()
    cut = int(np.random.default_rng(in_epoch).integers(1, length - 1))
    for _ in range(cut):
        seen.append(_fingerprint(next(a)))
        next(b)
    assert stopped.epoch == in_epoch
    state = stopped.state_dict()
    assert isinstance(state["watermark"]["windows"]["array"], bytes)
    assert (state["previous"] is not None) == (in_epoch == 1)
    state = msgpack.unpackb(msgpack.packb(state), strict_map_key=False)  # small and portable
    _write_more(store_repo, 2, change=changed)   # a new file, and a file changed under it
    resumed = TrainStream(store_repo.path, seed=5, epochs=3, replay=replay)
    resumed.load_state_dict(state)
    expected = [_fingerprint(i) for i in a]
    got = [_fingerprint(i) for i in resumed]
    assert got == expected and len(got) > length
    assert resumed.skipped == 0 and resumed.epoch == 3


def test_items_garbage_collected_meanwhile_are_skipped_and_counted(sample_repo):
    init_store(sample_repo.path, max_tokens=64, overlap=32)
    backfill(sample_repo.path)
    tweaked = sorted(sample_files())[0]  # the file the last commit of sample_repo changed
    uninterrupted = TrainStream(sample_repo.path, seed=9)
    stopped = TrainStream(sample_repo.path, seed=9)
    a, b = iter(uninterrupted), iter(stopped)
    for _ in range(3):
        next(a), next(b)
    state = stopped.state_dict()
    # amend the last commit: its record is superseded, and the version of the file it made
    # is referenced by nothing any more; a collection with no grace removes both
    sample_repo.write(tweaked, sample_files()[tweaked] + "\n# amended\n")
    sample_repo.git("commit", "-q", "-a", "--amend", "-m", "Tweak, amended")
    backfill(sample_repo.path)
    with StoreWriter(resolve_store_dir(sample_repo.path)) as writer:
        done = collect(writer, grace=0)
    assert done.records >= 1 and done.arrays >= 1
    resumed = TrainStream(sample_repo.path, seed=9)
    resumed.load_state_dict(state)
    expected = [_fingerprint(i) for i in a]
    assert [_fingerprint(i) for i in resumed] == expected
    assert resumed.skipped == uninterrupted.skipped > 0
    assert len(expected) + resumed.skipped + 3 == stopped.epoch_length()


@pytest.mark.parametrize("workers", [2, 0])
def test_stateful_dataloader_resumes_exactly(store_repo, workers):
    def loader(stream):
        return StatefulDataLoader(stream, batch_size=4, num_workers=workers)

    def make():
        return TrainStream(store_repo.path, seed=7, epochs=1, batch_size=4)

    whole = [b["input_ids"] for b in loader(make())]
    # the batches do not depend on the number of workers (mosaicml/composer #1356)
    single = [b["input_ids"] for b in StatefulDataLoader(make(), batch_size=4, num_workers=0)]
    assert len(whole) == len(single) and all(map(torch.equal, whole, single))

    first = loader(make())
    it = iter(first)
    for _ in range(5):
        next(it)
    state = first.state_dict()
    del it, first
    _write_more(store_repo, 3)
    second = loader(make())
    second.load_state_dict(state)
    rest = [b["input_ids"] for b in second]
    assert len(rest) == len(whole) - 5
    assert all(map(torch.equal, rest, whole[5:]))


def test_ranks_are_disjoint_and_together_the_epoch(store_repo):
    full = list(TrainStream(store_repo.path, seed=4, batch_size=3))
    shards = [list(TrainStream(store_repo.path, seed=4, batch_size=3, rank=r, world_size=2))
              for r in (0, 1)]
    assert abs(len(shards[0]) - len(shards[1])) <= 3
    assert len(shards[0]) + len(shards[1]) == len(full)
    assert _bag(shards[0]) + _bag(shards[1]) == _bag(full)
    # a state from the start of an epoch fits any shard: rank 0's shares its watermark
    late = TrainStream(store_repo.path, seed=4, batch_size=3, rank=1, world_size=2)
    late.load_state_dict(TrainStream(store_repo.path, seed=4, batch_size=3, rank=0,
                                     world_size=2).state_dict())
    assert _bag(late) == _bag(shards[1])
    # block b of the epoch goes to rank b % 2
    blocks = [full[i:i + 3] for i in range(0, len(full), 3)]
    assert [_fingerprint(i) for b in blocks[0::2] for i in b] == list(map(_fingerprint,
                                                                         shards[0]))


def test_replay_holds_every_new_item_and_its_share_of_old_ones(store_repo):
    before = _dataset_bag(store_repo.path)
    stream = TrainStream(store_repo.path, seed=0, epochs=2, replay=0.25)
    length = stream.epoch_length()
    it = iter(stream)
    first = [next(it) for _ in range(length)]
    _write_more(store_repo, 4)
    second = list(it)
    new = _dataset_bag(store_repo.path) - before
    assert _bag(first) == before
    assert sum(new.values()) > 0
    got = _bag(second)
    assert got & new == new                                       # every new item
    old = got - new
    assert not old - before                                       # the rest is old data
    assert sum(old.values()) == round(sum(new.values()) * 0.75 / 0.25)


def test_follow_with_replay_waits_for_new_data(store_repo):
    stream = TrainStream(store_repo.path, seed=0, follow=True, replay=0.5, poll_seconds=0.05)
    length = stream.epoch_length()
    before = _dataset_bag(store_repo.path)
    it = iter(stream)
    for _ in range(length):
        next(it)
    got = []
    consumer = threading.Thread(target=lambda: got.append(next(it)), daemon=True)
    consumer.start()
    wait_for(lambda: stream.waiting, "the stream waiting for new data")
    assert not got
    _write_more(store_repo, 5)
    consumer.join(timeout=60)
    assert got and stream.epoch == 1
    new = _dataset_bag(store_repo.path) - before
    rest = [next(it) for _ in range(2 * sum(new.values()) - 1)]
    assert _bag(got + rest) & new == new


def test_workers_waiting_for_new_data_take_the_same_watermark(store_repo):
    stream = TrainStream(store_repo.path, seed=0, follow=True, replay=0.5, epochs=2,
                         poll_seconds=0.05)
    length = stream.epoch_length()
    before = _dataset_bag(store_repo.path)
    loader = StatefulDataLoader(stream, batch_size=1, num_workers=2)
    it = iter(loader)

    def unbatched(batch):
        # a copy in this process's memory: a batch from a worker holds a file descriptor per
        # tensor while it lives, and an epoch of them passes the limit on open files
        return {k: v[0].clone() for k, v in batch.items()}

    first = [unbatched(next(it)) for _ in range(length)]
    rest = []
    consumer = threading.Thread(target=lambda: rest.extend(map(unbatched, it)), daemon=True)
    consumer.start()
    _write_more(store_repo, 7)
    consumer.join(timeout=120)
    assert not consumer.is_alive()

    new = _dataset_bag(store_repo.path) - before
    assert _bag(first) == before
    got = _bag(rest)
    assert sum(got.values()) == 2 * sum(new.values())
    assert got & new == new and not (got - new) - before     # each new item once, and old ones


def test_mix_ratios_share_the_draws(store_repo):
    stream = TrainStream(store_repo.path, seed=0, mix={"windows": 1, "evolution": 3})
    n_windows = len(WindowDataset(store_repo.path))
    n_views = len(EvolutionDataset(store_repo.path))
    items = list(stream)
    assert len(items) == n_windows + n_views
    marker = open_store(store_repo.path).tokenizer.sentinel("<commit_before>")
    records = sum(1 for i in items if int(i["input_ids"][0]) == marker)
    assert abs(records - 0.75 * len(items)) <= 1
    # a source short of its share makes another pass; the stretch of the stream is mixed
    assert records > n_views
    quarter = items[: len(items) // 4]
    share = sum(1 for i in quarter if int(i["input_ids"][0]) == marker) / len(quarter)
    assert abs(share - 0.75) < 0.02
    only = list(TrainStream(store_repo.path, mix={"windows": 1, "evolution": 0}))
    windows = WindowDataset(store_repo.path)
    assert _bag(only) == _bag(windows[i] for i in range(n_windows))


def test_new_labels_take_each_token_once_per_pass(store_repo):
    ds = WindowDataset(store_repo.path, labels_on="new")
    docs = {d["path"]: d for d in open_store(store_repo.path).documents()}
    counts = {p: np.zeros(d["n_tokens"], dtype=np.int64) for p, d in docs.items()}
    overlapped = 0
    for i in range(len(ds)):
        doc, start = ds.locate(i)
        labels = ds[i]["labels"].numpy()
        taken = np.flatnonzero(labels != -100)
        counts[ds.paths[doc]][start + taken] += 1
        overlapped += int((ds[i]["attention_mask"].numpy() == 1).sum()) - len(taken)
    assert overlapped > 0                          # the windows do overlap
    assert all((c == 1).all() for c in counts.values())
    stream = TrainStream(store_repo.path, labels="new", mix={"windows": 1})
    assert _bag(stream) == _bag(ds[i] for i in range(len(ds)))
    # for evolution records "new" is "all": a record's views are sequences of their own
    records = list(TrainStream(store_repo.path, labels="new", mix={"evolution": 1}))
    views = EvolutionDataset(store_repo.path)
    assert _bag(records) == _bag(views[i] for i in range(len(views)))


BAD_SETTINGS = [
    ({"mix": {"windows": 1, "vectors": 1}}, "unknown source 'vectors'"),
    ({"mix": {"windows": -1}}, "must be a number >= 0"),
    ({"mix": {"windows": 0, "evolution": 0}}, "every ratio"),
    ({"replay": 0}, "in (0, 1]"),
    ({"replay": 1.5}, "in (0, 1]"),
    ({"labels": "after"}, 'labels must be "all" or "new"'),
    ({"rank": 2, "world_size": 2}, "rank must be in [0, world_size)"),
    ({"epochs": 0}, "epochs must be"),
]


def test_bad_settings_are_refused(store_repo):
    for kwargs, words in BAD_SETTINGS:
        with pytest.raises(ConfigError) as info:
            TrainStream(store_repo.path, **kwargs)
        assert words in str(info.value) and "\n" not in str(info.value), kwargs


def test_a_store_without_items_says_to_backfill(make_repo):
    repo = make_repo()
    repo.commit("Sources", sample_files())
    init_store(repo.path)
    with pytest.raises(StoreError, match="repofeed backfill"):
        TrainStream(repo.path)


def test_a_state_of_other_settings_is_refused(store_repo):
    state = TrainStream(store_repo.path, seed=1).state_dict()
    other = TrainStream(store_repo.path, seed=1, max_tokens=32, overlap=0)
    with pytest.raises(RepofeedError, match="max_tokens=64"):
        other.load_state_dict(state)
    with pytest.raises(ConfigError, match="not a TrainStream state"):
        other.load_state_dict({"epoch": 3})
    rank0 = TrainStream(store_repo.path, seed=1, rank=0, world_size=2)
    it = iter(rank0)
    next(it), next(it)
    rank1 = TrainStream(store_repo.path, seed=1, rank=1, world_size=2)
    rank1.load_state_dict(rank0.state_dict())
    with pytest.raises(ConfigError, match="belongs to shard"):
        next(iter(rank1))


def test_ranks_crossing_a_boundary_around_a_write_share_one_watermark(store_repo):
    ranks = [TrainStream(store_repo.path, seed=6, epochs=2, rank=r, world_size=2)
             for r in (0, 1)]
    its = [iter(s) for s in ranks]
    sizes = [len(ranks[0]._plan(ranks[0]._current, (r, 2, 0, 1))[0]) for r in (0, 1)]
    before = _dataset_bag(store_repo.path)
    epoch0 = [[next(its[r]) for _ in range(sizes[r])] for r in (0, 1)]
    assert _bag(epoch0[0]) + _bag(epoch0[1]) == before
    first = next(its[0])                       # rank 0 crosses the boundary: epoch 1 starts
    assert ranks[0].epoch == 1
    _write_more(store_repo, 8, change="src/inventory.py")   # the daemon writes meanwhile
    assert _dataset_bag(store_repo.path) != before
    rest0 = [first] + list(its[0])
    rest1 = list(its[1])                       # rank 1 crosses after the write
    # the epoch is one watermark's items (the one rank 0 took), each exactly once
    assert _bag(rest0) + _bag(rest1) == before
    assert ranks[0].epoch == ranks[1].epoch == 2


def test_a_rank_made_after_a_write_reads_rank_0s_first_watermark(store_repo):
    before = _dataset_bag(store_repo.path)
    rank0 = TrainStream(store_repo.path, seed=6, rank=0, world_size=2)
    _write_more(store_repo, 9)
    rank1 = TrainStream(store_repo.path, seed=6, rank=1, world_size=2)
    assert _bag(rank0) + _bag(rank1) == before
    # a single stream made now takes the store as it is
    assert _bag(TrainStream(store_repo.path, seed=6)) == _dataset_bag(store_repo.path)


def test_dataloader_workers_crossing_a_boundary_around_a_write_share_one_watermark(
        store_repo):
    settings = {"seed": 2, "mix": {"windows": 1}, "max_tokens": 256, "overlap": 0}

    def items_now() -> Counter:  # a tiny epoch: few batches through the workers
        return _bag(TrainStream(store_repo.path, **settings))

    before = items_now()
    length = sum(before.values())
    # blocks of b draws go to the workers in turn; an odd number of blocks with a last one of
    # at least 2 gives worker 0 at least 2 draws more than worker 1 in epoch 0, so that
    # worker 1 crosses the boundary (and its first item of epoch 1 is consumed here) before
    # worker 0 is even asked for its first item of epoch 1
    block = next(b for b in range(2, length) if -(-length // b) % 2 == 1 and
                 length - b * (-(-length // b) - 1) >= 2)
    n1 = block * ((-(-length // block) - 1) // 2)     # worker 1's draws in epoch 0
    stream = TrainStream(store_repo.path, epochs=2, batch_size=block, **settings)
    loader = StatefulDataLoader(stream, batch_size=1, num_workers=2, prefetch_factor=1)
    it = iter(loader)

    def fingerprint(batch):  # kept as bytes: a tensor from a worker holds a file open
        return _fingerprint({k: v[0] for k, v in batch.items()})

    # batch j comes from worker j % 2; with one request in flight per worker, taking batch j
    # asks for batch j + 2. Worker 1's first batch of epoch 1 is batch 2 * n1 + 1.
    got = [fingerprint(next(it)) for _ in range(2 * n1 + 2)]
    _write_more(store_repo, 10, change="src/inventory.py")  # before worker 0 crosses
    assert items_now() != before
    got += map(fingerprint, it)
    assert len(got) == 2 * length
    assert Counter(got) == before + before     # each epoch: one watermark, every item once


def test_a_shared_dir_that_cannot_be_written_falls_back_with_a_warning(store_repo, tmp_path,
                                                                        caplog):
    blocked = tmp_path / "a-file"
    blocked.write_text("not a directory\n")
    shared = blocked / "epochs"             # cannot be made, whoever runs the test
    whole = _dataset_bag(store_repo.path)
    with caplog.at_level("WARNING", logger="repofeed.train"):
        single = TrainStream(store_repo.path, seed=3, epochs=2, shared_dir=shared)
        assert _bag(single) == whole + whole  # one shard: nothing to agree on, no warning
        assert not caplog.records
        ranks = [TrainStream(store_repo.path, seed=3, rank=r, world_size=2, shared_dir=shared)
                 for r in (0, 1)]
        assert _bag(ranks[0]) + _bag(ranks[1]) == whole  # each takes its own: the same here
    warned = [r.getMessage() for r in caplog.records]
    assert len(warned) == 2 and all("cannot share" in m and str(shared) in m for m in warned)
    assert not shared.exists()


def test_following_ranks_take_the_watermark_the_first_one_decided(store_repo):
    before = _dataset_bag(store_repo.path)
    ranks = [TrainStream(store_repo.path, seed=0, follow=True, replay=0.5, rank=r,
                         world_size=2, poll_seconds=0.05) for r in (0, 1)]
    its = [iter(s) for s in ranks]

    def shard_size(r):
        return len(ranks[r]._plan(ranks[r]._current, (r, 2, 0, 1))[0])

    for r in (0, 1):
        for _ in range(shard_size(r)):
            next(its[r])
    got = []
    waiter = threading.Thread(target=lambda: got.append(next(its[0])), daemon=True)
    waiter.start()
    wait_for(lambda: ranks[0].waiting, "rank 0 waiting for new data")
    _write_more(store_repo, 11)
    waiter.join(timeout=60)
    assert got and ranks[0].epoch == 1
    new = _dataset_bag(store_repo.path) - before
    got += [next(its[0]) for _ in range(shard_size(0) - 1)]
    _write_more(store_repo, 12)              # more data before rank 1 reaches the boundary
    late = []                                # it takes rank 0's watermark, without waiting
    reader = threading.Thread(target=lambda: late.append(next(its[1])), daemon=True)
    reader.start()
    reader.join(timeout=60)
    assert late and ranks[1].epoch == 1
    late += [next(its[1]) for _ in range(shard_size(1) - 1)]
    epoch = _bag(got) + _bag(late)
    # epoch 1: the items new in the first write (none of the second), each once, and as
    # many old ones
    assert epoch & new == new and not (epoch - new) - before
    assert sum(epoch.values()) == 2 * sum(new.values())


def test_shared_watermarks_lie_beside_the_store_and_only_the_last_epochs_stay(store_repo):
    whole = _dataset_bag(store_repo.path)
    ranks = [TrainStream(store_repo.path, seed=1, epochs=3, rank=r, world_size=2)
             for r in (0, 1)]
    first = list(ranks[0])                    # rank 0 runs ahead through all three epochs
    second = list(ranks[1])
    assert _bag(first) + _bag(second) == whole + whole + whole
    store_dir = resolve_store_dir(store_repo.path)
    folders = list((store_dir.parent / f"{store_dir.name}.train" / "epochs").iterdir())
    assert len(folders) == 1
    assert sorted(p.name for p in folders[0].iterdir()) == ["epoch-1.msgpack",
                                                            "epoch-2.msgpack"]
