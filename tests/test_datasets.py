"""WindowDataset: views over stored tokens, the contract's items, and DataLoader workers."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from helpers import fast_history, sample_files, wait_for
from repofeed.daemon.ingest import backfill
from repofeed.daemon.init import init_store
from repofeed.store import WindowDataset, open_store
from repofeed.store.windows import new_label_starts, window_count, window_spans


@pytest.mark.parametrize("n", [1, 100, 1024, 1025, 1280, 1281, 5000])
def test_window_arithmetic(n):
    length, stride = 1024, 256
    count = window_count(n, length, stride)
    docs, starts, stops = (a.tolist() for a in window_spans([n], length, stride))
    assert len(starts) == count and docs == [0] * count
    assert stops == [min(s + length, n) for s in starts]
    assert starts[0] == 0
    assert min(starts[-1] + length, n) == n                    # the last window ends at the end
    assert all(b - a <= stride for a, b in zip(starts, starts[1:]))  # nothing skipped
    assert all(b > a for a, b in zip(starts, starts[1:]))      # no duplicates
    if n <= length:
        assert count == 1
    assert window_count(0, length, stride) == 0


@pytest.mark.parametrize("n, length, overlap", [(1, 1024, 768), (1025, 1024, 768),
                                                (1281, 1024, 768), (5000, 1024, 768),
                                                (5000, 1024, 0), (777, 64, 63)])
def test_new_labels_cover_each_token_once(n, length, overlap):
    doc, start, stop = window_spans([n], length, length - overlap)
    labelled = np.zeros(n, dtype=np.int64)
    for s, e, f in zip(start, stop, new_label_starts(doc, start, stop)):
        labelled[s + f:e] += 1
    assert (labelled == 1).all()


def _ready(repo, **kw):
    init_store(repo.path, **kw)
    backfill(repo.path)
    return open_store(repo.path)


def test_items_follow_the_contract(sample_repo):
    store = _ready(sample_repo, max_tokens=256, overlap=192)
    ds = WindowDataset(sample_repo.path)
    assert len(ds) == store.stats()["windows"]
    docs = {d["path"]: d for d in store.documents()}
    seen_last = set()
    for i in range(len(ds)):
        item = ds[i]
        assert set(item) == {"input_ids", "attention_mask", "labels"}
        for t in item.values():
            assert t.dtype == torch.long and t.shape == (256,)
        doc_no, start = ds.locate(i)
        path = ds.paths[doc_no]
        tokens = store.tokens(docs[path]["array"])
        real = int(item["attention_mask"].sum())
        assert item["input_ids"][:real].tolist() == tokens[start:start + real].tolist()
        assert (item["labels"][:real] == item["input_ids"][:real]).all()
        assert (item["labels"][real:] == -100).all()
        if start + real == len(tokens):
            seen_last.add(path)
    assert seen_last == {p for p, d in docs.items() if d["n_tokens"] > 0}
    store.close()


def test_a_short_document_is_one_padded_window(make_repo):
    repo = make_repo()
    repo.commit("Sources", {**sample_files(), "tiny.py": "x = 1\n"})
    store = _ready(repo)
    ds = WindowDataset(repo.path)
    index = next(i for i in range(len(ds)) if ds.paths[ds.locate(i)[0]] == "tiny.py")
    item = ds[index]
    n = int(item["attention_mask"].sum())
    assert store.tokenizer.decode(item["input_ids"][:n].tolist()) == "x = 1\n"
    assert (item["input_ids"][n:] == store.tokenizer.pad_id).all()
    assert (item["labels"][n:] == -100).all() and (item["attention_mask"][n:] == 0).all()
    assert sum(1 for i in range(len(ds)) if ds.paths[ds.locate(i)[0]] == "tiny.py") == 1


def test_windows_are_views_not_copies(sample_repo):
    sizes = {}
    for overlap in (0, 192, 240):
        with _ready(sample_repo, max_tokens=256, overlap=overlap, force=True) as store:
            stats = store.stats()
            sizes[overlap] = (stats["windows"], stats["stored_tokens"])
    windows = [w for w, _ in sizes.values()]
    stored = {s for _, s in sizes.values()}
    assert windows[0] < windows[1] < windows[2]     # more overlap, more windows
    assert len(stored) == 1                          # the same tokens stored either way
    # a dataset may choose its own window shape over the same store
    ds = WindowDataset(sample_repo.path, max_tokens=128, overlap=0)
    assert len(ds) > 0 and ds[0]["input_ids"].shape == (128,)


def test_order_is_deterministic(sample_repo):
    _ready(sample_repo).close()
    a, b = WindowDataset(sample_repo.path), WindowDataset(sample_repo.path)
    assert a.paths == sorted(a.paths)
    picks = [0, len(a) // 2, len(a) - 1]
    for i in picks:
        assert torch.equal(a[i]["input_ids"], b[i]["input_ids"])


def _expected(store, ds, index):
    doc, start = ds.locate(index)
    key = {d["path"]: d["array"] for d in store.documents()}[ds.paths[doc]]
    tokens = store.tokens(key)[start:start + ds.max_tokens]
    return torch.from_numpy(tokens.astype(np.int64))


@pytest.mark.slow
def test_dataloader_workers_read_while_a_writer_is_active(make_repo):
    repo = make_repo()
    repo.commit("Sources", sample_files())
    store = _ready(repo, max_tokens=128, overlap=64)
    fast_history(repo, 2500, files=60)
    ds = WindowDataset(repo.path)
    reference = [_expected(store, ds, i) for i in range(len(ds))]
    loader = DataLoader(ds, batch_size=8, num_workers=2, shuffle=False)
    assert len(loader) > 10  # batches enough to read on both sides of the writes below
    got, writer = [], None
    try:
        for n, batch in enumerate(loader):
            for ids, mask in zip(batch["input_ids"], batch["attention_mask"]):
                got.append(ids[: int(mask.sum())])
            if n == 0:
                # The workers are mid-epoch, their environments open: a real writer appends
                # commits now, and the rest of the epoch is read after (and while) it wrote,
                # on any machine: no race between the writer's speed and the readers'.
                writer = subprocess.Popen([sys.executable, "-m", "repofeed.daemon", "backfill",
                                           str(repo.path)], stdout=subprocess.DEVNULL,
                                          stderr=subprocess.DEVNULL)
                wait_for(lambda: store.meta(b"commits_processed", 0) >= 100,
                         "the writer to store 100 commits", timeout=120)
        assert len(got) == len(reference)
        assert all(torch.equal(g, r) for g, r in zip(got, reference))
    finally:
        if writer is not None:
            writer.wait(timeout=300)
    assert writer.returncode == 0
    # after the writer is done, refresh() takes in the new snapshot
    ds.refresh()
    with open_store(repo.path) as fresh:
        assert len(ds) == fresh.stats()["windows"]
        assert any(p.startswith("pkg/") for p in ds.paths)
    store.close()


def test_evolution_items_are_the_same_in_dataloader_workers(sample_repo):
    from repofeed.store import EvolutionDataset

    _ready(sample_repo, max_tokens=256, overlap=128).close()
    ds = EvolutionDataset(sample_repo.path)
    direct = [ds[i]["input_ids"] for i in range(len(ds))]
    loaded = [ids for batch in DataLoader(ds, batch_size=4, num_workers=2)
              for ids in batch["input_ids"]]
    assert len(loaded) == len(direct) > 10
    assert all(torch.equal(a, b) for a, b in zip(loaded, direct))


def test_windows_across_chunk_boundaries(sample_repo):
    """Arrays are stored in page-sized chunks; a window may straddle two of them."""
    from repofeed.store.arrays import CHUNK_BYTES

    store = _ready(sample_repo, max_tokens=300, overlap=0)
    per_chunk = CHUNK_BYTES // 2
    ds = WindowDataset(sample_repo.path)
    arrays = {d["path"]: d["array"] for d in store.documents()}
    straddling = 0
    for i in range(len(ds)):
        doc, start = ds.locate(i)
        n = int(ds[i]["attention_mask"].sum())
        if start // per_chunk != (start + n - 1) // per_chunk:
            straddling += 1
            expected = store.tokens(arrays[ds.paths[doc]])[start:start + n]
            assert ds[i]["input_ids"][:n].tolist() == expected.tolist()
    assert straddling >= 3
    store.close()
