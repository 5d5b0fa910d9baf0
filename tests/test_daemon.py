"""`repofeed daemon`: a real subprocess, woken by real hooks and ref changes, keeps the store
equal to git through commits, rewrites, bursts, signals and kill -9."""

from __future__ import annotations

import json
import random
import re
import shutil
import signal
import subprocess
import sys
import threading
import time

import pygit2
import pytest

from helpers import (
    DaemonProcess,
    fast_history,
    run_cli,
    sample_files,
    store_dump,
    store_head,
    wait_for,
)
from repofeed.daemon.ingest import backfill
from repofeed.daemon.init import init_store
from repofeed.store import WindowDataset, open_store


def _at_head(repo) -> bool:
    return store_head(repo.path) == repo.head()


def test_commits_reach_the_store_and_status_says_so(live_repo, daemon):
    proc = daemon()
    with open_store(live_repo.path) as store:  # opened before the commits
        before = store.stats()["evolution_records"]
        live_repo.commit("Add two", {"two/a.py": "A = 1\n", "two/b.py": "B = 2\n"})
        # The records and the snapshot land in two transactions, one after the other.
        wait_for(lambda: store.stats()["evolution_records"] == before + 2
                 and _at_head(live_repo), "the commit's two records and the new head")
        assert {"two/a.py", "two/b.py"} <= {d["path"] for d in store.documents()}

    data = json.loads(run_cli("status", str(live_repo.path), "--json").stdout)
    assert data["running"] is True and data["pid"] == proc.proc.pid
    assert data["followed"] == ["HEAD"] and data["head"] == live_repo.head()
    assert data["lag"] == 0 and data["watches"] >= 4
    last = data["last_ingest"]
    assert last["commit"] == live_repo.head()
    assert (last["files"], last["windows"]) == (2, 2) and last["ms"] >= 0
    assert data["hooks"] == {name: "installed" for name in data["hooks"]}

    assert proc.stop(signal.SIGTERM) == 0
    assert "INFO stopped" in proc.log()
    data = json.loads(run_cli("status", str(live_repo.path), "--json").stdout)
    assert data["running"] is False and data["pid"] is None


def test_a_second_daemon_or_a_backfill_gets_a_clear_error(live_repo, daemon):
    proc = daemon()
    for args in (["daemon", str(live_repo.path)], ["backfill", str(live_repo.path)]):
        done = run_cli(*args, check=False, timeout=60)
        assert done.returncode == 1
        assert f"pid {proc.proc.pid}" in done.stderr and "only one writer" in done.stderr
        assert "Traceback" not in done.stderr


def test_ref_changes_without_hooks_are_seen(live_repo, daemon):
    # Without the worktree watcher the snapshot is the commit's tree, whose file the pygit2
    # commit below never writes to disk.
    daemon("--no-watch")
    # libgit2 runs no hooks: a commit made through pygit2
    repo = pygit2.Repository(str(live_repo.path))
    blob = repo.create_blob(b"MADE_BY_LIBGIT2 = True\n")
    builder = repo.TreeBuilder(repo.head.peel(pygit2.Commit).tree)
    builder.insert("libgit2.py", blob, pygit2.enums.FileMode.BLOB)
    sig = pygit2.Signature("Ada Tester", "ada@example.com", live_repo.EPOCH + 999, 0)
    repo.create_commit("HEAD", sig, sig, "Made without hooks\n", builder.write(),
                       [repo.head.target])
    wait_for(lambda: _at_head(live_repo), "the libgit2 commit")
    with open_store(live_repo.path) as store:
        assert "libgit2.py" in {d["path"] for d in store.documents()}

    # `git reset` runs no hook either; the commit it drops is superseded
    live_repo.git("reset", "-q", "--hard", "HEAD~1")
    wait_for(lambda: _at_head(live_repo), "the reset")
    with open_store(live_repo.path) as store:
        assert "libgit2.py" not in {d["path"] for d in store.documents()}
        assert store.stats()["superseded_records"] == 1


def test_amend_and_branch_switch_reach_the_store(live_repo, daemon):
    daemon()
    old = live_repo.commit("Add x", {"x.py": "X = 1\n"})
    wait_for(lambda: _at_head(live_repo), "the commit")
    live_repo.write("x.py", "X = 2\n")
    live_repo.git("add", "x.py")
    live_repo.tick += 1
    live_repo.git("commit", "-q", "--amend", "-m", "Add x, fixed")
    wait_for(lambda: _at_head(live_repo), "the amended commit")
    with open_store(live_repo.path) as store:
        commits = {r["commit"] for r in store.evolution_records()}
        assert old not in commits and live_repo.head() in commits

    live_repo.git("checkout", "-q", "-b", "side", "HEAD~1")
    wait_for(lambda: _at_head(live_repo), "the branch switch")
    with open_store(live_repo.path) as store:
        assert "x.py" not in {d["path"] for d in store.documents()}


def _commit_updates(proc) -> list[int]:
    """The commits each of the daemon's updates took in, for those that took in any."""
    return [int(n) for n in re.findall(r"INFO nudge: (\d+) commit", proc.log()) if int(n)]


def _state_at_head(repo) -> bool:
    """The daemon's state file, written after each update, names the repository's head."""
    state = json.loads((repo.path / ".git" / "repofeed" / "daemon.json").read_text())
    return state.get("head") == repo.head()


def _two_branches(repo, commits: int) -> None:
    """main gains one commit; topic, from main's old tip, has ``commits`` of its own."""
    base = repo.head()
    fast_history(repo, commits, files=20)  # written on main, then moved to topic
    repo.git("branch", "-q", "topic")
    repo.git("reset", "-q", "--hard", base)
    repo.commit("Main moves", {"moves.py": "MOVES = 1\n"})


def test_a_long_rebase_is_settled_into_few_updates(live_repo, daemon):
    _two_branches(live_repo, 200)
    live_repo.git("checkout", "-q", "topic")
    backfill(live_repo.path)
    proc = daemon()
    live_repo.tick += 1
    live_repo.git("rebase", "-q", "main")  # runs post-commit and moves HEAD 200 times
    wait_for(lambda: _state_at_head(live_repo), "the rebased branch", timeout=60)
    with open_store(live_repo.path) as store:
        assert store.stats()["superseded_records"] > 0
        assert "moves.py" in {d["path"] for d in store.documents()}
    # However fast or slow git is: nothing is taken in while the rebase's state directory
    # exists, so the 201 new commits come in one update, or two when one began just before
    # the directory appeared -- never one per moved HEAD.
    assert sum(_commit_updates(proc)) == 201 and len(_commit_updates(proc)) <= 2


def test_a_cherry_picked_range_is_settled_into_few_updates(live_repo, daemon):
    _two_branches(live_repo, 100)
    backfill(live_repo.path)
    proc = daemon()
    live_repo.tick += 1
    live_repo.git("cherry-pick", "main..topic")  # 100 commits, one after another
    wait_for(lambda: _state_at_head(live_repo), "the picked commits", timeout=60)
    # as for a rebase: the sequencer's directory holds the daemon back until the end
    assert sum(_commit_updates(proc)) == 100 and len(_commit_updates(proc)) <= 2
    with open_store(live_repo.path) as store:
        picked = set(live_repo.git("rev-list", "HEAD~100..HEAD").split())
        assert picked <= {r["commit"] for r in store.evolution_records()}


def test_commits_made_while_it_was_down_are_taken_in_at_start(live_repo, daemon):
    live_repo.commit("While down", {"down.py": "DOWN = 1\n"})
    proc = daemon()
    assert "INFO start: 1 commit(s)" in proc.log()
    assert _at_head(live_repo)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signals_stop_it_cleanly(live_repo, daemon, sig):
    proc = daemon()
    assert proc.stop(sig) == 0
    assert f"{signal.Signals(sig).name} received" in proc.log()
    run_cli("backfill", str(live_repo.path))  # the lock is free again


def _history_with_clean_copy(make_repo, tmp_path, commits: int):
    """A repository with ``commits`` commits, its store made (not filled) and its hooks
    installed, and a copy of that empty store (same tokenizer) for a clean backfill later."""
    repo = make_repo()
    repo.commit("Sources", sample_files())
    fast_history(repo, commits, files=30)
    init_store(repo.path)
    clean = tmp_path / "clean-store"
    shutil.copytree(repo.path / ".git" / "repofeed" / "store", clean)
    run_cli("install", str(repo.path))
    return repo, clean


@pytest.mark.slow
def test_kill_9_while_commits_stream_in_loses_nothing(make_repo, tmp_path):
    repo, clean = _history_with_clean_copy(make_repo, tmp_path, 300)
    backfill(repo.path, stop_after=100)

    stop = threading.Event()

    def stream() -> None:
        # until the three rounds are done: the daemon takes ~50 commits per update, so a
        # small cap could end the stream before the last round saw its updates
        n = 0
        while not stop.is_set() and n < 5000:
            repo.commit(f"Stream {n}", {f"stream/s{n % 7}.py": f"S = {n}\n"})
            n += 1

    writer = threading.Thread(target=stream)
    writer.start()
    try:
        for round_ in range(3):  # killed three times, at different points of its work
            # the commit path alone: the store must equal a backfill's to the byte (worktree
            # documents would store texts in another order; a test below covers them)
            proc = DaemonProcess(repo, tmp_path / f"run{round_}.log", "--no-watch")
            updates = 2 + 2 * round_
            wait_for(lambda proc=proc, updates=updates: proc.log().count("INFO nudge:")
                     >= updates, "the daemon to ingest streamed commits", timeout=60)
            proc.stop(signal.SIGKILL)
            assert proc.proc.returncode == -signal.SIGKILL
    finally:
        stop.set()
        writer.join()
    repo.commit("After the kills", {"after.py": "AFTER = 1\n"})

    again = DaemonProcess(repo, tmp_path / "last.log", "--no-watch")
    wait_for(lambda: _at_head(repo), "the restarted daemon to catch up", timeout=60)
    assert again.stop() == 0

    backfill(repo.path, store=clean)
    assert store_dump(repo.path) == store_dump(clean)


def test_a_commit_rewrites_only_its_files(live_repo, daemon):
    daemon()
    with open_store(live_repo.path) as store:
        before = {d["path"]: d for d in store.documents()}
    live_repo.commit("One file", {"cmd/greet.go": "package main\n\nfunc main() {}\n"})
    wait_for(lambda: _at_head(live_repo), "the commit")
    with open_store(live_repo.path) as store:
        after = {d["path"]: d for d in store.documents()}
    assert set(after) == set(before)
    assert [p for p in after if after[p] != before[p]] == ["cmd/greet.go"]


def test_datasets_take_in_new_windows_on_refresh(live_repo, daemon):
    daemon()
    windows = WindowDataset(live_repo.path)
    n = len(windows)
    live_repo.commit("New file", {"fresh.py": "FRESH = 1\n"})
    wait_for(lambda: _at_head(live_repo), "the commit")
    assert len(windows) == n  # an index is stable until refreshed
    assert len(windows.refresh()) == n + 1
    assert "fresh.py" in windows.paths


def test_status_without_a_daemon_reports_the_lag(live_repo):
    live_repo.commit("One", {"one.py": "ONE = 1\n"})
    live_repo.commit("Two", {"two.py": "TWO = 2\n"})
    data = json.loads(run_cli("status", str(live_repo.path), "--json").stdout)
    assert (data["running"], data["lag"], data["up_to_date"]) == (False, 2, False)
    human = run_cli("status", str(live_repo.path)).stdout
    assert "not running" in human and "lag 2 commit(s)" in human


def test_hooks_nudge_the_daemon_from_a_linked_worktree(live_repo, daemon, tmp_path):
    proc = daemon()
    linked = tmp_path / "linked"
    live_repo.git("worktree", "add", "-q", "-b", "feature", str(linked))
    live_repo.commit_in(linked, "In the linked tree", {"feature.py": "FEATURE = 1\n"})
    wait_for(lambda: "hook: post-commit" in proc.log(), "the worktree's hook to nudge")
    live_repo.tick += 1
    live_repo.git("merge", "-q", "--no-edit", "feature")  # fast-forward main to it
    wait_for(lambda: _at_head(live_repo), "the merge")
    with open_store(live_repo.path) as store:
        assert any(r["path"] == "feature.py" for r in store.evolution_records())


def _live_view(path) -> tuple:
    """What training reads: live records (texts) and documents, and the head."""
    with open_store(path) as store:
        records = sorted((r["commit"], r["path"], r["change"], r["message"], r["before"] or "",
                          r["after"] or "") for r in store.evolution_records())
        docs = {d["path"]: store.tokenizer.decode(store.tokens(d["array"]))
                for d in store.documents()}
        return records, docs, store.stats()["head"]


@pytest.mark.slow
def test_kill_9_at_random_moments_across_rewrites_keeps_what_training_reads(make_repo,
                                                                           tmp_path):
    repo, clean = _history_with_clean_copy(make_repo, tmp_path, 400)
    rng = random.Random(11)
    rewrites = [
        lambda: repo.git("commit", "-q", "--amend", "-m", "Amended"),
        lambda: repo.git("reset", "-q", "--hard", "HEAD~3"),
        lambda: repo.git("checkout", "-q", "-b", "elsewhere", "HEAD~5"),
        # Back, and the side branch deleted: its commits were ingested while it was checked
        # out, and only now, reachable from no branch, are they superseded. (Kept, they would
        # stay live, which a backfill of main alone cannot show.)
        lambda: (repo.git("checkout", "-q", "main"), repo.git("branch", "-q", "-D", "elsewhere")),
    ]
    for n, rewrite in enumerate(rewrites):
        log = open(tmp_path / f"run{n}.log", "wb")
        proc = subprocess.Popen([sys.executable, "-m", "repofeed.daemon", "daemon",
                                 str(repo.path)], stderr=log, stdout=subprocess.DEVNULL)
        wait_for(lambda n=n: b"watching" in (tmp_path / f"run{n}.log").read_bytes(),
                 "the daemon to start watching", timeout=60)
        for k in range(5):
            repo.commit(f"Round {n} commit {k}", {f"r{n}.py": f"K = {k}\n"})
        # A random moment, not a wait for a condition: the first round falls in the catch-up
        # of 400 commits, later ones anywhere in the handling of the commits above.
        time.sleep(rng.uniform(0.0, 0.15))
        proc.kill()
        proc.wait()
        log.close()
        repo.tick += 1
        rewrite()
    last = DaemonProcess(repo, tmp_path / "last.log")
    wait_for(lambda: _at_head(repo), "the restarted daemon to catch up", timeout=60)
    assert last.stop() == 0
    backfill(repo.path, store=clean)
    assert _live_view(repo.path) == _live_view(clean)
