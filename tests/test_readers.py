"""Readers that never break: stale reader slots, refresh, fork, a busy writer, empty ranges.

Training reads a store for weeks while the daemon writes. These tests run real forks, real
DataLoader workers and real writer processes against a real LMDB store.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from helpers import fast_history, run_cli, sample_files, wait_for
from repofeed.daemon.ingest import backfill
from repofeed.daemon.init import init_store
from repofeed.store import EvolutionDataset, WindowDataset, open_store
from repofeed.store.arrays import tokens_per_chunk
from repofeed.store.evolution import plan_views
from repofeed.store.schema import content_key_of
from repofeed.store.writer import CommitWrite, SnapshotChange, StoreWriter


def _ready(repo, **kw):
    init_store(repo.path, **kw)
    backfill(repo.path)
    return open_store(repo.path)


def _expected_window(store, ds, index):
    """Window ``index`` as the tokenizer encodes the document's text (decoded in full)."""
    number, start = ds.locate(index)
    doc = next(d for d in store.documents() if d["path"] == ds.paths[number])
    ids = store.tokenizer.encode(store.tokenizer.decode(store.tokens(doc["array"])))
    return ids[start:start + ds.max_tokens]


def _assert_item(item, ids):
    n = len(ids)
    assert item["input_ids"][:n].tolist() == list(ids)
    assert int(item["attention_mask"].sum()) == n


# -- 1. reader slots never run out --------------------------------------------------------

FORKING_READER = textwrap.dedent("""
    import os, sys
    from repofeed.store import WindowDataset
    ds = WindowDataset(sys.argv[1], max_tokens=64, overlap=0)
    children = int(sys.argv[2])             # the parent holds the dataset; its workers read
    for n in range(children):
        pid = os.fork()
        if pid == 0:                        # a DataLoader worker's life, in short
            ds[n % len(ds)]
            os._exit(0)
        _, status = os.waitpid(pid, 0)
        if status != 0:
            print(f"child {n} failed with status {status}", flush=True)
            sys.exit(1)
    print(f"{children} children read", flush=True)
""")


@pytest.mark.slow
def test_a_thousand_forked_readers_that_exit_hard_leave_the_store_usable(live_repo, daemon,
                                                                         tmp_path):
    proc = daemon("--no-watch")
    script = tmp_path / "forking_reader.py"
    script.write_text(FORKING_READER)
    reader = subprocess.Popen([sys.executable, str(script), str(live_repo.path), "1000"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    commits = 0
    while reader.poll() is None:  # the daemon ingests commits all the while
        commits += 1
        live_repo.commit(f"Edit {commits}", {"notes.py": f"VALUE = {commits}\n"})
    out, err = reader.communicate()
    assert reader.returncode == 0, out + err
    assert "1000 children read" in out
    assert commits > 0
    with open_store(live_repo.path) as store:
        # no slot is left to a dead process: opening cleared them
        assert all(_alive(r["pid"]) for r in store.readers()), store.readers()
        assert store.stats()["commits_processed"] >= 1
    windows = WindowDataset(live_repo.path)
    assert len(windows) > 0 and windows[len(windows) - 1]["input_ids"].shape[0] == 1024
    windows.close()
    # and the daemon still takes commits in
    head = live_repo.commit("After the readers", {"after.py": "DONE = True\n"})
    wait_for(lambda: _store_head(live_repo) == head, "the daemon to take in a commit")
    assert proc.proc.poll() is None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _store_head(repo):
    with open_store(repo.path) as store:
        return store.meta(b"head")


def test_a_full_reader_table_is_said_plainly(sample_repo):
    store = _ready(sample_repo)
    # a live process takes every slot (each open read transaction holds one)
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import lmdb, sys
        env = lmdb.open({str(store.path)!r}, max_dbs=16, readonly=True, max_readers=1024)
        txns = []
        try:
            while True:
                txns.append(env.begin())
        except lmdb.ReadersFullError:
            pass
        print(len(txns), flush=True)
        sys.stdin.read()
    """)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        taken = int(holder.stdout.readline())
        assert taken > 0
        done = run_cli("stats", str(sample_repo.path), check=False)
        assert done.returncode == 1
        assert "reader slots" in done.stderr and str(holder.pid) in done.stderr
        assert "Traceback" not in done.stderr
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    store.close()


# -- 2. refresh() reads the store it indexed ----------------------------------------------

@pytest.mark.parametrize("workers", [0, 2])
def test_refresh_reads_the_new_file_written_by_another_process(sample_repo, workers):
    store = _ready(sample_repo, max_tokens=128, overlap=0)
    ds = WindowDataset(sample_repo.path)
    before = len(ds)
    ds[0]                                      # a read snapshot is open from here
    sample_repo.commit("A new module", {"fresh/new_module.py": "def fresh(x):\n"
                                        "    return [x * k for k in range(10)]\n" * 40})
    run_cli("backfill", str(sample_repo.path))  # another process writes
    ds.refresh()
    assert len(ds) > before
    new = [i for i in range(len(ds)) if ds.paths[ds.locate(i)[0]] == "fresh/new_module.py"]
    assert new
    if workers == 0:
        for i in new:
            _assert_item(ds[i], _expected_window(store, ds, i))
    else:
        loader = DataLoader(torch.utils.data.Subset(ds, new), batch_size=2,
                            num_workers=workers)
        got = [row for batch in loader for row in batch["input_ids"]]
        for i, row in zip(new, got):
            ids = _expected_window(store, ds, i)
            assert row[:len(ids)].tolist() == ids
    ds.close()
    store.close()


# -- 3. fork safety ------------------------------------------------------------------------

WRITER = textwrap.dedent("""
    import subprocess, sys
    from repofeed.daemon.ingest import backfill
    repo, n = sys.argv[1], int(sys.argv[2])
    env = {"GIT_AUTHOR_NAME": "W", "GIT_AUTHOR_EMAIL": "w@example.com",
           "GIT_COMMITTER_NAME": "W", "GIT_COMMITTER_EMAIL": "w@example.com",
           "PATH": "/usr/bin:/bin"}
    print("writing", flush=True)
    for k in range(n):
        with open(f"{repo}/churn.py", "w") as fh:
            fh.write("".join(f"def churn_{k}_{j}(): return {j}\\n" for j in range(k % 50 + 1)))
        subprocess.run(["git", "add", "-A"], cwd=repo, env=env, check=True)
        subprocess.run(["git", "commit", "-qm", f"churn {k}"], cwd=repo, env=env, check=True)
        backfill(repo)
    print("done", flush=True)
""")


def test_forked_workers_never_disturb_the_parents_reads(make_repo, tmp_path):
    repo = make_repo()
    repo.commit("Sources", sample_files())
    fast_history(repo, 50, files=30)
    store = _ready(repo, max_tokens=64, overlap=0)
    ds = WindowDataset(repo.path)
    expected = {i: _expected_window(store, ds, i) for i in range(len(ds))}
    by_length: dict[int, list[list[int]]] = {}
    for ids in expected.values():
        by_length.setdefault(len(ids), []).append(ids)
    _assert_item(ds[0], expected[0])  # the parent holds a read snapshot from here
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    writer = subprocess.Popen([sys.executable, str(script), str(repo.path), "200"],
                              stdout=subprocess.PIPE, text=True)
    assert writer.stdout.readline().strip() == "writing"
    try:
        loader = DataLoader(ds, batch_size=16, num_workers=2, shuffle=True,
                            generator=torch.Generator().manual_seed(0))
        epochs = 0
        while writer.poll() is None or epochs == 0:
            seen = 0
            for batch in loader:
                # while the workers read, the parent reads as well, and its reads are
                # protected: its open transaction holds a slot in the reader table
                k = random.randrange(len(ds))
                _assert_item(ds[k], expected[k])
                mine = [r for r in store.readers() if r["pid"] == os.getpid()]
                assert any(r["txnid"] is not None for r in mine), store.readers()
                for ids, mask in zip(batch["input_ids"], batch["attention_mask"]):
                    seen += 1
                    n = int(mask.sum())
                    assert ids[:n].tolist() in by_length[n]
            assert seen == len(ds)
            epochs += 1
    finally:
        writer.wait(timeout=600)
    assert writer.returncode == 0
    for i in range(len(ds)):  # and after all that writing, every window is still right
        _assert_item(ds[i], expected[i])
    ds.close()
    store.close()


# -- 4. readers never wait for the writer --------------------------------------------------

HOLDER = textwrap.dedent("""
    import lmdb, sys
    env = lmdb.open(sys.argv[1], max_dbs=16)
    txn = env.begin(write=True)          # the writer's lock, held until told
    print("holding", flush=True)
    sys.stdin.read()
    txn.abort()
""")


READ_ALL = textwrap.dedent("""
    import sys
    from repofeed.store import EvolutionDataset, WindowDataset, open_store
    with open_store(sys.argv[1]) as store:
        windows = store.stats()["windows"]
    ds, ev = WindowDataset(sys.argv[1]), EvolutionDataset(sys.argv[1])
    print(windows, ds[len(ds) - 1]["input_ids"].shape[0], ev[0]["input_ids"].shape[0])
""")


def test_readers_return_while_another_process_holds_a_write_transaction(sample_repo):
    _ready(sample_repo).close()
    with open_store(sample_repo.path) as store:
        path = store.path
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(path)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "holding"
    try:
        # a training process starting now, in a process of its own; the timeout is a
        # deadline, not a timing: a reader that waited for the writer would wait for ever
        done = subprocess.run([sys.executable, "-c", READ_ALL, str(sample_repo.path)],
                              capture_output=True, text=True, timeout=60)
        assert holder.poll() is None  # the write transaction was held all along
        assert done.returncode == 0, done.stderr
        windows, item, record = map(int, done.stdout.split())
        assert windows > 0 and item == record == 1024
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)


# -- 6. empty ranges read as empty: a property test around chunk boundaries ----------------

def _random_store(repo, seed):
    """A store whose arrays have lengths around multiples of the chunk size, written through
    the writer with token ids chosen at random, and records whose hunks sit at the ends."""
    rng = random.Random(seed)
    init_store(repo.path, max_tokens=256, overlap=64)
    backfill(repo.path)
    store = open_store(repo.path)
    vocab, per_chunk = store.tokenizer.vocab_size, tokens_per_chunk(store.dtype)
    store.close()

    def array(n):
        ids = np.array([rng.randrange(4, vocab) for _ in range(n)], dtype=np.int64)
        return content_key_of(ids.tobytes() + bytes([seed % 256])), ids

    arrays, docs, records = {}, [], []
    lengths = [k * per_chunk + d for k in range(1, 4) for d in (-1, 0, 1)] + \
        [1, 255, 256, 257, rng.randrange(1, 4 * per_chunk)]
    for n, length in enumerate(lengths):
        key, ids = array(length)
        arrays[key] = ids
        docs.append((f"doc{n:02d}.txt", key, length))
        extra = rng.choice([0, 1, 300, 3000])
        after_key, after = array(length + extra)
        arrays[after_key] = after
        # an append at the end: the before range of the change is empty, at a chunk boundary
        records.append({"path": f"doc{n:02d}.txt", "old_path": None, "change": "modified",
                        "before": key, "after": after_key, "n_before": length,
                        "n_after": length + extra,
                        "hunks": [[length, length, length, length + extra]]})
    msg_key, msg = array(rng.randrange(1, 80))
    arrays[msg_key] = msg
    with StoreWriter(open_store(repo.path).path) as writer:
        oid = bytes(rng.randrange(256) for _ in range(20))
        writer.write_commit(CommitWrite(oid, {"parent": None, "message": msg_key,
                                              "n_msg": len(msg), "author": "R",
                                              "timestamp": 0}, records, arrays))
        writer.sync_snapshot(None, [SnapshotChange(p, {"path": p, "hash": k, "n_tokens": n,
                                                       "language": "text", "weight": 1.0,
                                                       "blob": "0" * 40, "source": "commit"})
                                    for p, k, n in docs], {}, move_head=False)
    return arrays, msg


@pytest.mark.parametrize("seed", range(3))
def test_every_item_reads_equal_to_its_full_array_around_chunk_boundaries(make_repo, seed):
    repo = make_repo()
    repo.commit("Sources", sample_files())
    arrays, msg = _random_store(repo, seed)
    store = open_store(repo.path)
    windows = WindowDataset(repo.path)
    docs = {d["path"]: d for d in store.documents()}
    for i in range(len(windows)):
        number, start = windows.locate(i)
        full = store.tokens(docs[windows.paths[number]]["array"])
        _assert_item(windows[i], full[start:start + windows.max_tokens].tolist())
    assert len(windows.__getitems__(list(range(len(windows))))) == len(windows)

    tok = store.tokenizer
    evolution = EvolutionDataset(repo.path)
    items = [it["input_ids"][:int(it["attention_mask"].sum())].tolist()
             for it in evolution.__getitems__(list(range(len(evolution))))]
    views = 0
    for rec_index, rec in enumerate(r for r in store.raw_records() if r["author"] == "R"):
        before, after = store.tokens(rec["before"]), store.tokens(rec["after"])
        for view in plan_views(rec["n_before"], rec["n_after"], rec["n_msg"], rec["hunks"],
                               evolution.max_tokens):
            views += 1
            ids = [tok.sentinel("<commit_before>"), *before[slice(*view.before)].tolist(),
                   tok.sentinel("<commit_msg>"), *msg[:view.message].tolist(),
                   tok.sentinel("<commit_after>"), *after[slice(*view.after)].tolist()]
            if view.after[1] == rec["n_after"]:
                ids.append(tok.eos_id)
            assert ids in items, (rec_index, view)
    assert views > len(arrays) // 2
    windows.close()
    evolution.close()
    store.close()
