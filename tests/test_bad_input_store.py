"""Bad input on the reading side: damaged, truncated, foreign and read-only stores, and
datasets asked for what does not exist. Each case ends in one clear message (or correct
data), never a traceback, a SIGBUS or silently wrong tokens."""

from __future__ import annotations

import pickle
import random
import shutil
import subprocess
import sys

import lmdb
import numpy as np
import pytest

from helpers import fast_history, run_cli, sample_files
from repofeed.daemon.ingest import backfill
from repofeed.daemon.init import init_store
from repofeed.store import (
    EvolutionDataset,
    RepofeedError,
    StoreError,
    WindowDataset,
    open_store,
)
from repofeed.store.arrays import chunk_key
from repofeed.store.errors import StoreCorrupt
from repofeed.store.gc import collect
from repofeed.store.schema import DB_DOCS, DB_TOKENS
from repofeed.store.writer import StoreWriter


@pytest.fixture
def store_copy(make_repo, tmp_path):
    """A backfilled store, and a fresh copy of it to damage; returns (repo, copy dir)."""
    repo = make_repo()
    repo.commit("Sources", sample_files())
    init_store(repo.path, max_tokens=128, overlap=0)
    backfill(repo.path)
    with open_store(repo.path) as store:
        source = store.path
    copy = tmp_path / "copy"
    copy.mkdir()
    shutil.copy(source / "data.mdb", copy / "data.mdb")
    return repo, copy


def _one_line_error(done, *words):
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), done.stderr
    for word in words:
        assert word in lines[0], lines[0]


def _raw_value(store_dir, db_name, key):
    env = lmdb.open(str(store_dir), max_dbs=16, readonly=True, lock=False)
    with env.begin(db=env.open_db(db_name, create=False)) as txn:
        value = bytes(txn.get(key))
    env.close()
    return value


def _flip(path, needle, offset):
    data = bytearray(path.read_bytes())
    at = data.find(needle)
    assert at >= 0, "value not found in data.mdb"
    data[at + offset] ^= 0x5A
    path.write_bytes(bytes(data))


def test_a_truncated_data_file_is_refused_with_a_message_not_a_sigbus(store_copy):
    _repo, copy = store_copy
    data = copy / "data.mdb"
    with open(data, "r+b") as fh:
        fh.truncate(data.stat().st_size // 2)
    done = run_cli("stats", str(copy), check=False)
    _one_line_error(done, "damaged", "init --force")
    with pytest.raises(StoreCorrupt, match="truncated"):
        open_store(copy)


def test_an_empty_data_file_is_refused(store_copy):
    _repo, copy = store_copy
    (copy / "data.mdb").write_bytes(b"")
    _one_line_error(run_cli("stats", str(copy), check=False), "init --force")


def test_random_bytes_for_a_data_file_are_refused(store_copy):
    _repo, copy = store_copy
    (copy / "data.mdb").write_bytes(random.Random(3).randbytes(64 * 4096))
    _one_line_error(run_cli("stats", str(copy), check=False), "init --force")


def test_a_flipped_byte_in_a_token_chunk_is_caught_by_its_checksum(store_copy):
    _repo, copy = store_copy
    with open_store(copy) as store:
        doc = max(store.documents(), key=lambda d: d["n_tokens"])
    chunk = _raw_value(copy, DB_TOKENS, chunk_key(doc["array"], 0))
    _flip(copy / "data.mdb", chunk[:256], 100)
    ds = WindowDataset(copy)
    hit = [i for i in range(len(ds)) if ds.paths[ds.locate(i)[0]] == doc["path"]][0]
    with pytest.raises(StoreCorrupt, match="checksum"):
        ds[hit]
    others = [i for i in range(len(ds)) if ds.paths[ds.locate(i)[0]] != doc["path"]]
    assert ds[others[0]]["input_ids"].shape[0] == 128  # the rest still reads
    ds.close()
    _one_line_error(run_cli("show", "window", str(hit), str(copy), check=False),
                    "checksum", "init --force")


def test_a_damaged_document_entry_says_the_store_is_corrupt(store_copy):
    _repo, copy = store_copy
    with open_store(copy) as store:
        path = store.documents()[0]["path"]
    value = _raw_value(copy, DB_DOCS, path.encode())
    _flip(copy / "data.mdb", value, 0)  # the msgpack map header: it no longer parses
    _one_line_error(run_cli("stats", str(copy), check=False), "corrupt")


@pytest.mark.parametrize("seed", range(4))
def test_random_damage_to_data_pages_never_passes_silently(store_copy, seed):
    """Bytes overwritten at random in token pages: every read either gives the clean store's
    tokens or says the store is corrupt."""
    repo, copy = store_copy
    with open_store(repo.path) as clean:
        arrays = {d["array"]: clean.tokens(d["array"]) for d in clean.documents()}
    rng = random.Random(seed)
    data = bytearray((copy / "data.mdb").read_bytes())
    hits = 0
    for array in rng.sample(sorted(arrays), 3):
        chunk = _raw_value(copy, DB_TOKENS, chunk_key(array, 0))
        at = bytes(data).find(chunk[:64])
        if at >= 0 and len(chunk) > 64:
            pos = at + rng.randrange(8, len(chunk))
            data[pos] ^= rng.randrange(1, 256)
            hits += 1
    assert hits
    (copy / "data.mdb").write_bytes(bytes(data))
    caught = 0
    with open_store(copy) as damaged:
        for array, tokens in arrays.items():
            try:
                got = damaged.tokens(array)
            except StoreCorrupt as exc:
                assert "init --force" in str(exc)
                caught += 1
                continue
            assert np.array_equal(got, tokens)
    assert caught == hits


def test_a_read_only_file_system_store_is_readable(store_copy, tmp_path):
    repo, _copy = store_copy
    mount_point = tmp_path / "ro"
    mount_point.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs",
                           str(mount_point)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        with open_store(repo.path) as store:
            shutil.copytree(store.path, mount_point / "store")
            expected = store.stats()["windows"]
        subprocess.run(["mount", "-o", "remount,ro", str(mount_point)], check=True)
        with open_store(mount_point / "store") as store:
            assert store.stats()["windows"] == expected
        ds = WindowDataset(mount_point / "store")
        assert len(ds) == expected and ds[len(ds) - 1]["input_ids"].shape[0] == 128
        ds.close()
        assert run_cli("stats", str(mount_point / "store")).returncode == 0
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def test_a_directory_that_is_not_a_store(tmp_path):
    _one_line_error(run_cli("stats", str(tmp_path), check=False), "not inside a git")
    with pytest.raises(RepofeedError, match="not inside a git repository"):
        WindowDataset(tmp_path)


def test_dataset_arguments_that_make_no_sense_are_refused(store_copy):
    repo, _copy = store_copy
    for bad in (0, 8, -1):
        with pytest.raises(ValueError, match="max_tokens must be at least 16"):
            WindowDataset(repo.path, max_tokens=bad)
        with pytest.raises(ValueError, match="max_tokens must be at least 16"):
            EvolutionDataset(repo.path, max_tokens=bad)
    with pytest.raises(ValueError, match="overlap"):
        WindowDataset(repo.path, max_tokens=64, overlap=64)
    with pytest.raises(ValueError, match="labels_on"):
        EvolutionDataset(repo.path, labels_on="before")


def test_items_out_of_range_say_how_many_there_are(store_copy):
    repo, _copy = store_copy
    for ds in (WindowDataset(repo.path), EvolutionDataset(repo.path)):
        n = len(ds)
        for bad in ([n], [0, n + 5], [-1]):
            with pytest.raises(IndexError, match=f"has {n} items"):
                ds.__getitems__(bad)
        with pytest.raises(IndexError, match=f"has {n} items"):
            ds[n]
        ds.close()


def test_records_that_do_not_exist(store_copy):
    repo, _copy = store_copy
    with open_store(repo.path) as store:
        for bad in (-1, 10**6, 10**20):
            with pytest.raises(StoreError, match="there is no record"):
                store.record(bad)


def test_a_closed_store_says_so(store_copy):
    repo, _copy = store_copy
    store = open_store(repo.path)
    store.close()
    with pytest.raises(StoreError, match="closed"):
        store.stats()


def test_a_pickled_dataset_reads_in_a_spawned_process(store_copy, tmp_path):
    repo, _copy = store_copy
    ds = WindowDataset(repo.path)
    first = ds[0]["input_ids"].tolist()
    (tmp_path / "ds.pickle").write_bytes(pickle.dumps(ds))
    ds.close()
    script = ("import pickle, sys; ds = pickle.loads(open(sys.argv[1], 'rb').read()); "
              "print(ds[0]['input_ids'].tolist())")
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path / "ds.pickle")],
                          capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.strip() == str(first)


def test_a_store_in_use_is_never_taken_for_a_truncated_one(make_repo):
    """Pages a transaction took at the end of the file and freed again are counted by the
    header but never written; the writer extends the file over them, so that the check for a
    truncated copy never refuses a sound store. It once did, two minutes into the soak
    benchmark; this churn does not reproduce that gap, so it guards the invariant rather than
    proving the fix (the soak does)."""
    repo = make_repo()
    repo.commit("Sources", sample_files())
    fast_history(repo, 120, files=20)
    init_store(repo.path, max_tokens=128, overlap=0)
    backfill(repo.path)
    for n in range(20):  # rewrites and collections free and reuse pages at the end
        repo.git("commit", "-q", "--amend", "-m", f"Amended {n}")
        backfill(repo.path)
        with StoreWriter(_store_of(repo)) as writer:
            collect(writer, grace=0)
        env = lmdb.open(str(_store_of(repo)), max_dbs=16, readonly=True, lock=False)
        pages = env.info()["last_pgno"] + 1
        psize = env.stat()["psize"]
        env.close()
        assert (_store_of(repo) / "data.mdb").stat().st_size >= pages * psize
        done = run_cli("stats", str(repo.path), check=False)
        assert done.returncode == 0, done.stderr


def _store_of(repo):
    with open_store(repo.path) as store:
        return store.path
