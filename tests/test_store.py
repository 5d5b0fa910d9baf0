"""The store: clear errors for missing, corrupt and foreign stores; one writer; fresh reads."""

from __future__ import annotations

import subprocess
import sys

import lmdb
import pytest
import torch

from helpers import run_cli
from repofeed.daemon.ingest import backfill
from repofeed.daemon.init import init_store
from repofeed.store import EvolutionDataset, WindowDataset, open_store
from repofeed.store.errors import StoreError, StoreMissing, WriterBusy
from repofeed.store.schema import DB_META, K_SCHEMA, pack
from repofeed.store.writer import CommitWrite, StoreWriter


def _store_dir(repo):
    return repo.path / ".git" / "repofeed" / "store"


def test_missing_store_is_a_clear_error(sample_repo):
    with pytest.raises(StoreMissing, match="run `repofeed init`"):
        open_store(sample_repo.path)
    done = run_cli("stats", str(sample_repo.path), check=False)
    assert done.returncode == 1
    assert "no repofeed store" in done.stderr and "Traceback" not in done.stderr


def test_not_a_repository_is_a_clear_error(tmp_path):
    done = run_cli("stats", str(tmp_path), check=False)
    assert done.returncode == 1 and "not inside a git repository" in done.stderr


def test_corrupt_store_is_a_clear_error(sample_repo):
    init_store(sample_repo.path)
    data = _store_dir(sample_repo) / "data.mdb"
    data.write_bytes(b"\x00garbage" * 1000)
    done = run_cli("stats", str(sample_repo.path), check=False)
    assert done.returncode == 1
    assert "corrupt" in done.stderr or "cannot be opened" in done.stderr
    assert "repofeed init" in done.stderr and "Traceback" not in done.stderr


def test_store_of_another_schema_version_is_refused_untouched(sample_repo):
    init_store(sample_repo.path)
    backfill(sample_repo.path)
    path = _store_dir(sample_repo)
    env = lmdb.open(str(path), max_dbs=16)
    with env.begin(write=True) as txn:
        txn.put(K_SCHEMA, pack(99), db=env.open_db(DB_META, txn=txn))
    env.close()
    snapshot = (path / "data.mdb").read_bytes()
    for args in (["stats"], ["backfill"], ["show", "window", "0"]):
        done = run_cli(*args, str(sample_repo.path), check=False)
        assert done.returncode == 1, args
        assert "schema version 99" in done.stderr and "Nothing was changed" in done.stderr
    assert (path / "data.mdb").read_bytes() == snapshot


def test_a_second_writer_gets_a_clear_error(sample_repo):
    init_store(sample_repo.path)
    with StoreWriter(_store_dir(sample_repo)):
        done = run_cli("backfill", str(sample_repo.path), check=False)
        assert done.returncode == 1
        assert "only one writer at a time" in done.stderr
        with pytest.raises(WriterBusy):
            StoreWriter(_store_dir(sample_repo))
    backfill(sample_repo.path)  # free again once the first writer is gone


def test_store_and_datasets_share_one_environment(sample_repo):
    init_store(sample_repo.path)
    backfill(sample_repo.path)
    store = open_store(sample_repo.path)
    windows = WindowDataset(sample_repo.path)
    records = EvolutionDataset(sample_repo.path)
    second = open_store(sample_repo.path)
    assert len(windows) == store.stats()["windows"] > 0
    assert len(records) >= store.stats()["evolution_records"] > 0
    assert windows[0]["input_ids"].shape == records[0]["input_ids"].shape
    store.close()
    # closing one user leaves the others working
    assert second.stats()["documents"] == len(second.documents())
    assert windows[len(windows) - 1]["input_ids"].dtype == torch.long
    second.close()
    windows.close()
    records.close()
    with pytest.raises(StoreError, match="closed"):
        store.stats()


def test_a_long_lived_store_sees_later_commits(sample_repo):
    init_store(sample_repo.path)
    backfill(sample_repo.path)
    with open_store(sample_repo.path) as store:
        n = store.stats()["commits_processed"]
        sample_repo.commit("More", {"more.py": "MORE = 2\n"})
        # another process writes; this Store sees it on its next call
        run_cli("backfill", str(sample_repo.path))
        assert store.stats()["commits_processed"] == n + 1
        assert "more.py" in {d["path"] for d in store.documents()}


def test_init_twice_keeps_the_store_and_force_replaces_it(sample_repo):
    run_cli("init", str(sample_repo.path))
    run_cli("backfill", str(sample_repo.path))
    again = run_cli("init", str(sample_repo.path))
    assert "already exists" in again.stdout
    with open_store(sample_repo.path) as store:
        assert store.stats()["commits_processed"] == 3
    run_cli("init", str(sample_repo.path), "--force", "--max-tokens", "256", "--overlap", "64")
    with open_store(sample_repo.path) as store:
        stats = store.stats()
        assert (stats["commits_processed"], stats["max_tokens"], stats["overlap"]) == (0, 256, 64)


def test_custom_store_directory_is_remembered(sample_repo, tmp_path):
    target = tmp_path / "elsewhere" / "store"
    run_cli("init", str(sample_repo.path), "--store", str(target))
    run_cli("backfill", str(sample_repo.path))
    assert (target / "data.mdb").is_file()
    assert not (_store_dir(sample_repo) / "data.mdb").exists()
    with open_store(sample_repo.path) as store:
        assert store.stats()["store_path"] == str(target)
    with open_store(target) as store:  # a store directory opens directly too
        assert store.stats()["commits_processed"] == 3


def test_bad_configuration_is_a_clear_error(sample_repo):
    sample_repo.write("repofeed.toml", "overlap = 2000\n")
    done = run_cli("init", str(sample_repo.path), check=False)
    assert done.returncode == 1 and "overlap must be" in done.stderr
    sample_repo.write("repofeed.toml", "windw = 3\n")
    done = run_cli("init", str(sample_repo.path), check=False)
    assert done.returncode == 1 and "unknown config key 'windw'" in done.stderr


def test_store_import_stays_light():
    code = ("import sys, repofeed.store, repofeed.daemon.ingest; "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "False", out.stderr



def test_records_read_in_short_chunks_are_the_same(sample_repo):
    init_store(sample_repo.path)
    backfill(sample_repo.path)
    with open_store(sample_repo.path) as store:
        whole = list(store._raw_records(False))
        assert len(whole) > 5
        assert list(store._raw_records(False, chunk=2)) == whole
        assert [seq for seq, _ in whole] == list(range(len(whole)))


def test_writer_fsyncs_each_transaction_but_not_its_meta_page(sample_repo):
    """MDB_NOMETASYNC (docs/store.md#durability): consistent after a power cut, at most the
    last transaction undone; MDB_NOSYNC, as before, could leave a corrupt store."""
    init_store(sample_repo.path)
    with StoreWriter(_store_dir(sample_repo)) as writer:
        flags = writer.handle.env.flags()
    assert flags["sync"] is True and flags["metasync"] is False


def test_a_batch_of_commits_lands_whole_or_not_at_all(sample_repo):
    """The backfill writes a batch of commits in one transaction: if one of them fails, none
    of the batch is stored, and the store is as before."""
    init_store(sample_repo.path)
    good = CommitWrite(b"\x01" * 20, info={"parent": None}, records=[])
    broken = CommitWrite(b"\x02" * 20, records=[{"path": "a.py", "before": None,
                                                 "after": b"\xff" * 16}])  # no such array
    with StoreWriter(_store_dir(sample_repo)) as writer:
        with pytest.raises(TypeError):
            writer.write_commits([good, broken])
        assert writer.unprocessed([good.oid, broken.oid]) == [good.oid, broken.oid]
        assert writer.write_commits([good]) == [True]
        assert writer.write_commits([good]) == [False]   # writing it again changes nothing
