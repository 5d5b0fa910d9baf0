"""Garbage collection: superseded records and unreferenced token arrays leave the store, no
reader's index ever breaks inside the grace period, and compaction gives the space back."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import textwrap
import time

import pytest

from helpers import fast_history, run_cli, sample_files, wait_for
from repofeed.daemon.ingest import backfill
from repofeed.daemon.init import init_store
from repofeed.store import EvolutionDataset, StoreError, WindowDataset, open_store
from repofeed.store.gc import AUTO_FRACTION, collect, other_readers
from repofeed.store.writer import StoreWriter


def _store_dir(repo):
    return repo.path / ".git" / "repofeed" / "store"


def _texts(repo):
    with open_store(repo.path) as store:
        records = sorted((r["commit"], r["path"], r["before"] or "", r["after"] or "")
                         for r in store.evolution_records())
        docs = {d["path"]: store.tokens(d["array"]).tolist() for d in store.documents()}
    return records, docs


HOLD_OPEN = textwrap.dedent("""
    import sys
    from repofeed.store import open_store
    store = open_store(sys.argv[1])
    store.stats()
    print("open", flush=True)
    sys.stdin.read()
""")


def _holder(repo):
    proc = subprocess.Popen([sys.executable, "-c", HOLD_OPEN, str(repo.path)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "open"
    return proc


def _rewritten(make_repo):
    """A history whose last commit was amended with other content: garbage to collect."""
    repo = make_repo()
    repo.commit("Sources", sample_files())
    fast_history(repo, 30, files=10)
    repo.commit("Add a module", {"extra/mod.py": "def old_version():\n    return 1\n" * 50})
    init_store(repo.path)
    backfill(repo.path)
    repo.write("extra/mod.py", "def new_version():\n    return 2\n" * 50)
    repo.git("add", "-A")
    repo.tick += 1
    repo.git("commit", "-q", "--amend", "-m", "Add a module, amended")
    backfill(repo.path)
    return repo


def test_superseded_commits_and_what_only_they_reference_are_removed(make_repo):
    repo = _rewritten(make_repo)
    with open_store(repo.path) as store:
        before = store.stats()
        assert before["superseded_records"] == 1
        assert before["garbage"]["superseded_commits"] == 1
        assert before["reclaimable_bytes"] > 0
    live = _texts(repo)
    with StoreWriter(_store_dir(repo)) as writer:
        done = collect(writer)
    assert done.readers == 0 and done.commits == 1 and done.records == 1
    assert done.arrays >= 1  # the old version of extra/mod.py (and its message)
    with open_store(repo.path) as store:
        after = store.stats()
        assert after["superseded_records"] == 0
        assert list(store.evolution_records(include_superseded=True)) == \
            list(store.evolution_records())
        assert after["stored_tokens"] < before["stored_tokens"]
        assert after["garbage"]["unreferenced_arrays"] == 0
    assert _texts(repo) == live  # what training reads is unchanged
    windows, evolution = WindowDataset(repo.path), EvolutionDataset(repo.path)
    assert [windows[i]["input_ids"].tolist() for i in range(len(windows))]
    assert [evolution[i]["input_ids"].tolist() for i in range(len(evolution))]
    windows.close()
    evolution.close()


def test_a_reset_back_after_collection_takes_the_commit_in_again(make_repo):
    repo = _rewritten(make_repo)
    old = repo.git("rev-parse", "HEAD@{1}").strip()
    with StoreWriter(_store_dir(repo)) as writer:
        collect(writer)
    repo.git("reset", "-q", "--hard", old)
    backfill(repo.path)
    with open_store(repo.path) as store:
        paths = [(r["commit"], r["path"]) for r in store.evolution_records()]
        assert (old, "extra/mod.py") in paths
        doc = next(d for d in store.documents() if d["path"] == "extra/mod.py")
        assert "old_version" in store.tokenizer.decode(store.tokens(doc["array"]))


def test_garbage_waits_out_the_grace_period_while_another_process_reads(make_repo):
    repo = _rewritten(make_repo)
    windows = WindowDataset(repo.path)  # this process reads; its index names the old arrays
    holder = _holder(repo)
    try:
        assert holder.pid in other_readers(_store_dir(repo))
        with StoreWriter(_store_dir(repo)) as writer:
            first = collect(writer, grace=3600)
            assert first.commits == 0 and first.arrays == 0
            assert first.waiting_commits == 1
            later = collect(writer, grace=3600, now=time.time() + 3601)
            assert later.commits == 1 and later.arrays == 0 and later.marked >= 1
            last = collect(writer, grace=3600, now=time.time() + 7300)
            assert last.arrays >= 1
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    # an index older than the grace period names arrays that are gone: said plainly
    evolution_items = EvolutionDataset(repo.path)
    assert len(evolution_items) > 0
    windows.refresh()
    assert all(windows[i]["input_ids"].shape[0] == 1024 for i in range(len(windows)))
    windows.close()
    evolution_items.close()


def test_an_index_older_than_the_grace_period_gets_an_error_naming_refresh(make_repo):
    repo = make_repo()
    repo.commit("Sources", sample_files())
    repo.commit("Add a module", {"extra/mod.py": "def old_version():\n    return 1\n" * 50})
    init_store(repo.path, max_tokens=64, overlap=0)
    backfill(repo.path)
    windows = WindowDataset(repo.path)
    stale = [i for i in range(len(windows))
             if windows.paths[windows.locate(i)[0]] == "extra/mod.py"]
    repo.write("extra/mod.py", "def new_version():\n    return 2\n")
    repo.git("commit", "-qa", "--amend", "-m", "Add a module, amended")
    backfill(repo.path)
    with StoreWriter(_store_dir(repo)) as writer:
        assert collect(writer, grace=0).arrays >= 1
    windows._tokens.renew()  # its read snapshot would still see the array; a new one does not
    with pytest.raises(StoreError, match="refresh"):
        windows[stale[0]]
    windows.refresh()
    assert windows[0]["input_ids"].shape[0] == 64
    windows.close()


def test_compact_gives_space_back_and_open_readers_move_to_the_new_files(make_repo):
    repo = _rewritten(make_repo)
    for n in range(40):  # documents replaced again and again: garbage arrays
        repo.commit(f"Grow {n}", {"extra/big.py": f"VALUE_{n} = {n}\n" * (200 + n)})
    backfill(repo.path)
    store = open_store(repo.path)  # open across the compaction
    expected = store.stats()["windows"]
    done = run_cli("gc", str(repo.path), "--compact", "--json")
    assert '"bytes_after"' in done.stdout
    import json

    report = json.loads(done.stdout)
    assert report["compacted"]["bytes_after"] < report["compacted"]["bytes_before"]
    assert store.stats()["windows"] == expected  # the open Store reads the new files
    assert (_store_dir(repo) / "data.mdb").stat().st_size == \
        report["compacted"]["bytes_after"]
    store.close()
    assert not _store_dir(repo).with_name("store.compact").exists()


def test_the_daemon_collects_on_its_own(make_repo, daemon_for):
    repo = make_repo()
    repo.commit("Sources", sample_files())
    (repo.path / "repofeed.toml").write_text("gc_grace_seconds = 0\n")
    repo.commit("Config", {})
    init_store(repo.path)
    backfill(repo.path)
    proc = daemon_for(repo, "--gc-seconds", "1")
    for n in range(30):  # worktree edits: each replaces the file's document
        repo.write("scratch.py", f"def scratch_{n}():\n    return {n}\n" * 800)
        wait_for(lambda n=n: _doc_text(repo, "scratch.py").startswith(f"def scratch_{n}"),
                 f"edit {n} to reach the store")
    repo.commit("Touch", {"touch.py": "X = 1\n"})  # an update after the last edit
    wait_for(lambda: "garbage collection:" in proc.log(), "the daemon to collect")
    # the daemon collects when garbage passes AUTO_FRACTION of the used pages, so what is
    # left below that share stays until more comes: wait for it to be under the share
    wait_for(lambda: _garbage_share(repo) < AUTO_FRACTION, "the garbage to be collected")
    proc.stop()


def _doc_text(repo, path):
    with open_store(repo.path) as store:
        doc = next((d for d in store.documents(weighed=False) if d["path"] == path), None)
        try:
            return "" if doc is None else store.tokenizer.decode(store.tokens(doc["array"]))
        except StoreError:
            # with gc_grace_seconds = 0 the daemon may replace the document and collect its
            # old array between the two reads: read again (the caller waits on a condition)
            return ""


def _garbage_share(repo):
    with open_store(repo.path) as store:
        stats = store.stats()
        return stats["garbage"]["garbage_bytes"] / max(stats["live_bytes"], 1)


TRAINING_READER = textwrap.dedent("""
    import pathlib, sys, traceback
    from repofeed.store import EvolutionDataset, WindowDataset
    repo, stop = sys.argv[1], pathlib.Path(sys.argv[2])
    windows, evolution = WindowDataset(repo), EvolutionDataset(repo)
    reads = epochs = 0
    try:
        while not stop.exists():
            windows.refresh()
            evolution.refresh()
            for ds in (windows, evolution):
                for i in range(len(ds)):
                    ds[i]
                    reads += 1
            epochs += 1
    except Exception:
        traceback.print_exc()
        sys.exit(1)
    print(f"{reads} reads in {epochs} epochs", flush=True)
""")


@pytest.mark.slow
def test_a_reader_survives_months_of_rewrites_and_gc_keeps_the_store_small(make_repo, tmp_path,
                                                                          daemon_for):
    repo = make_repo()
    repo.commit("Sources", {k: v for k, v in sample_files().items() if k.startswith("lib/")})
    (repo.path / "repofeed.toml").write_text("gc_grace_seconds = 5\n")
    fast_history(repo, 200, files=40)
    init_store(repo.path, max_tokens=256, overlap=64)
    clean = tmp_path / "clean-store"
    shutil.copytree(_store_dir(repo), clean)  # same tokenizer, for the reference backfill
    backfill(repo.path)
    proc = daemon_for(repo, "--gc-seconds", "1")
    stop = tmp_path / "stop"
    reader = subprocess.Popen([sys.executable, "-c", TRAINING_READER, str(repo.path),
                               str(stop)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)
    try:
        for round_ in range(5):  # rebase the 200 commits: every one gets a new id
            repo.tick += 1
            repo.git("rebase", "-q", "--force-rebase", "--root")
            for n in range(100):  # and edit the worktree, 500 times in all; every tenth
                repo.write("pkg/mod000.py", f"def edit_{round_}_{n}(x):\n    return x\n" * 30)
                if n % 10 == 9:  # edit is waited for, so that garbage builds up for sure
                    wait_for(lambda mark=f"def edit_{round_}_{n}(": _doc_text(
                        repo, "pkg/mod000.py").startswith(mark), "an edit to reach the store",
                        timeout=120)
            repo.git("checkout", "--", "pkg/mod000.py")
            wait_for(lambda: _is_commit_doc(repo, "pkg/mod000.py"), "the worktree to be clean")
            assert reader.poll() is None, reader.communicate()
        # the daemon removes the garbage while the reader goes on reading: once the grace
        # period has passed, at its next collection
        wait_for(lambda: all(n >= floor for n, floor in zip(_removed(proc.log()), (800, 10))),
                 "the daemon to remove garbage", timeout=120)
        assert reader.poll() is None, reader.communicate()
    finally:
        stop.touch()
        out, err = reader.communicate(timeout=300)
    assert reader.returncode == 0, err
    assert " reads in " in out
    proc.stop()
    with open_store(repo.path) as store:
        assert store.stats()["reclaimable_bytes"] > 0
    run_cli("gc", str(repo.path), "--compact")
    backfill(repo.path, store=clean)
    size, reference = ((_store_dir(repo) / "data.mdb").stat().st_size,
                       (clean / "data.mdb").stat().st_size)
    assert size <= 1.25 * reference, (size, reference)
    with open_store(repo.path) as store:
        assert store.stats()["superseded_records"] == 0


def _removed(log: str) -> tuple[int, int]:
    """(superseded commits, token arrays) the daemon's collections removed, from its log."""
    found = [tuple(map(int, m)) for m in re.findall(
        r"(\d+) superseded commit\(s\) and (\d+) token array\(s\) removed", log)]
    return sum(c for c, _ in found), sum(a for _, a in found)


def _is_commit_doc(repo, path):
    with open_store(repo.path) as store:
        doc = next((d for d in store.documents() if d["path"] == path), None)
        return doc is not None and doc["source"] == "commit"
