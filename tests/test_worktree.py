"""The worktree watcher: uncommitted edits reach the snapshot, ignored trees are never watched
or read, bursts settle, git's index lock is respected, the kernel's limits are survived."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import sample_files, wait_for
from repofeed.daemon.ingest import backfill
from repofeed.daemon.init import init_store
from repofeed.store import open_store


def _doc(repo, path: str) -> tuple[str, str] | None:
    """(source, text) of the snapshot document at ``path``, None if there is none."""
    with open_store(repo.path) as store:
        for d in store.documents():
            if d["path"] == path:
                return d["source"], store.tokenizer.decode(store.tokens(d["array"]))
    return None


def _state(repo) -> dict:
    return json.loads((repo.path / ".git" / "repofeed" / "daemon.json").read_text())


def test_an_edit_is_a_worktree_document_until_committed(live_repo, daemon):
    daemon()
    target = "cmd/greet.go"
    edited = (live_repo.path / target).read_text() + "// not committed yet\n"
    (live_repo.path / target).write_text(edited)
    wait_for(lambda: _doc(live_repo, target) == ("worktree", edited), "the edit")
    with open_store(live_repo.path) as store:
        assert store.stats()["commits_processed"] == 1  # nothing committed meanwhile
    live_repo.commit("Commit the edit")
    wait_for(lambda: _doc(live_repo, target) == ("commit", edited), "the committed version")


def test_untracked_files_and_deletions_reach_the_snapshot(live_repo, daemon):
    daemon()
    (live_repo.path / "scratch").mkdir()
    (live_repo.path / "scratch" / "idea.py").write_text("IDEA = 42\n")
    wait_for(lambda: _doc(live_repo, "scratch/idea.py") == ("worktree", "IDEA = 42\n"),
             "the untracked file in a new directory")
    (live_repo.path / "scratch" / "idea.py").unlink()
    wait_for(lambda: _doc(live_repo, "scratch/idea.py") is None, "its deletion")

    tracked = "web/cart.js"
    original = (live_repo.path / tracked).read_text()
    (live_repo.path / tracked).unlink()
    wait_for(lambda: _doc(live_repo, tracked) is None, "the tracked file's deletion")
    live_repo.git("checkout", "--", tracked)
    wait_for(lambda: _doc(live_repo, tracked) == ("commit", original), "the restored file")


def test_ignored_trees_are_never_watched_nor_read(make_repo, daemon_for):
    repo = make_repo()
    repo.commit("Sources", {**sample_files(), ".gitignore": "build/\nnode_modules/\n*.log\n"})
    init_store(repo.path)
    backfill(repo.path)
    for n in range(50):
        (repo.path / "node_modules" / f"pkg{n}" / "lib").mkdir(parents=True)
        (repo.path / "node_modules" / f"pkg{n}" / "lib" / "index.js").write_text("x = 1\n")
    (repo.path / "build").mkdir()
    # A named pipe: opening it for reading would block the daemon for ever.
    os.mkfifo(repo.path / "build" / "trap")
    os.mkfifo(repo.path / "node_modules" / "trap")
    tracked_dirs = {"", *(str(Path(p).parent) for p in sample_files())}
    tracked_dirs |= {str(Path(d).parent) for d in tracked_dirs if d}
    proc = daemon_for(repo)
    assert _state(repo)["worktree_watches"] == len({d if d != "." else "" for d in tracked_dirs})

    (repo.path / "build" / "out.py").write_text("OUT = 1\n")
    (repo.path / "debug.log").write_text("noise\n")
    (repo.path / "node_modules" / "new").mkdir()
    (repo.path / "visible.py").write_text("SEEN = 1\n")
    wait_for(lambda: _doc(repo, "visible.py") is not None, "a file that is not ignored")
    with open_store(repo.path) as store:
        paths = {d["path"] for d in store.documents()}
    assert not {p for p in paths if p.startswith(("build/", "node_modules/")) or
                p.endswith(".log")}
    assert _state(repo)["worktree_watches"] == len(
        {d if d != "." else "" for d in tracked_dirs})  # node_modules/new: not watched
    assert "Traceback" not in proc.log()


def test_a_checkout_of_a_thousand_files_is_one_batch(live_repo, daemon):
    live_repo.git("checkout", "-q", "-b", "big")
    live_repo.commit("A thousand files", {f"gen/m{n // 100}/f{n}.py": f"N = {n}\n"
                                          for n in range(1000)})
    live_repo.git("checkout", "-q", "main")
    backfill(live_repo.path)
    proc = daemon()
    live_repo.git("checkout", "-q", "big")
    wait_for(lambda: _state(live_repo).get("head") == live_repo.head(), "the checkout")
    wait_for(lambda: _doc(live_repo, "gen/m9/f999.py") is not None, "the checked-out files")
    with open_store(live_repo.path) as store:
        docs = {d["path"]: d for d in store.documents()}
    assert sum(p.startswith("gen/") for p in docs) == 1000
    assert all(docs[p]["source"] == "commit" for p in docs if p.startswith("gen/"))
    # However slow git is, the daemon reads nothing while git holds the index lock: the files
    # are taken in by one update, two when it falls between git writing the index and moving
    # HEAD (worktree documents first, then the commit's) -- never one per file or per pass.
    assert 1 <= proc.log().count("INFO nudge:") <= 2


def test_nothing_is_read_while_git_holds_the_index_lock(live_repo, daemon):
    proc = daemon()
    lock = live_repo.path / ".git" / "index.lock"
    lock.write_text("")
    (live_repo.path / "locked.py").write_text("LOCKED = 1\n")
    wait_for(lambda: "git holds the index lock" in proc.log(), "the daemon to wait for git")
    assert _doc(live_repo, "locked.py") is None
    lock.unlink()
    wait_for(lambda: _doc(live_repo, "locked.py") == ("worktree", "LOCKED = 1\n"),
             "the file, once git let go of the index")


def test_no_watch_leaves_the_worktree_alone(live_repo, daemon):
    daemon("--no-watch")
    assert _state(live_repo)["worktree_watches"] == 0
    (live_repo.path / "unseen.py").write_text("UNSEEN = 1\n")
    live_repo.commit("A commit after it", {"seen.py": "SEEN = 1\n"})  # git add -A takes both
    wait_for(lambda: _doc(live_repo, "seen.py") is not None, "the commit")
    assert _doc(live_repo, "unseen.py")[0] == "commit"


def _inotify_watches_in_use() -> int:
    """inotify watches held by all processes (this test runs as the only user that matters)."""
    total = 0
    for fdinfo in Path("/proc").glob("[0-9]*/fdinfo/*"):
        try:
            total += fdinfo.read_text().count("inotify wd:")
        except OSError:
            continue
    return total


@pytest.fixture
def sysctl():
    """Set /proc/sys values for one test and put them back (needs root, as in CI)."""
    saved: dict[Path, str] = {}

    def put(name: str, value: int) -> None:
        path = Path("/proc/sys") / name.replace(".", "/")
        try:
            saved.setdefault(path, path.read_text())
            path.write_text(f"{value}\n")
        except OSError as exc:
            pytest.skip(f"cannot set {name} here: {exc}")

    yield put
    for path, value in saved.items():
        path.write_text(value)


def test_the_watch_limit_gives_a_clear_warning_and_a_fallback(make_repo, daemon_for, sysctl):
    repo = make_repo()
    files = {f"d{n:02d}/f.py": f"D = {n}\n" for n in range(40)}
    repo.commit("Forty directories", {**sample_files(), **files})
    init_store(repo.path)
    backfill(repo.path)
    # the refs watcher needs about six watches; leave the worktree about ten of its 47
    sysctl("fs.inotify.max_user_watches", _inotify_watches_in_use() + 16)
    proc = daemon_for(repo, "--rescan-seconds", "0.5")
    assert "fs.inotify.max_user_watches" in proc.log() and "WARNING" in proc.log()
    state = _state(repo)
    assert state["watch_limit_reached"] and 0 < state["worktree_watches"] < 47
    (repo.path / "d39" / "f.py").write_text("D = 'changed'\n")  # a directory left unwatched
    wait_for(lambda: _doc(repo, "d39/f.py") == ("worktree", "D = 'changed'\n"),
             "the fallback rescan to find the edit")


def test_lost_events_are_repaired_by_a_rescan(live_repo, daemon, sysctl):
    sysctl("fs.inotify.max_queued_events", 16)  # read when the daemon makes its inotify
    proc = daemon()
    proc.proc.send_signal(signal.SIGSTOP)  # it reads nothing while stopped: the queue fills
    try:
        for n in range(100):
            (live_repo.path / "web" / f"burst{n}.js").write_text(f"const n = {n};\n")
    finally:
        proc.proc.send_signal(signal.SIGCONT)
    wait_for(lambda: "queue overflow" in proc.log(), "the overflow to be noticed")
    wait_for(lambda: all(_doc(live_repo, f"web/burst{n}.js") for n in (0, 50, 99)),
             "the rescan to take in every file")
    with open_store(live_repo.path) as store:
        assert sum(d["path"].startswith("web/burst") for d in store.documents()) == 100


def test_the_daemon_never_loads_torch(live_repo, daemon):
    proc = daemon()
    maps = Path(f"/proc/{proc.proc.pid}/maps").read_text()
    assert "torch" not in maps
    done = subprocess.run(
        [sys.executable, "-c", "import sys, repofeed.daemon.live, repofeed.daemon.cli, "
                         "repofeed.daemon.status; print('torch' in sys.modules)"],
        capture_output=True, text=True, env={**os.environ})
    assert done.stdout.strip() == "False", done.stderr


def test_an_editor_save_dance_is_one_update(live_repo, daemon):
    proc = daemon()
    before = _state(live_repo).get("reconciles", 0)
    target = live_repo.path / "src" / "inventory.py"
    new_text = target.read_text() + "# saved\n"
    # What vim does on :w, in microseconds: a probe file, a backup by rename, the new file, the
    # backup gone. This test's Python is slower, and slower still on a loaded machine, so the
    # daemon is stopped meanwhile: its events then arrive in one burst, as vim's do.
    proc.proc.send_signal(signal.SIGSTOP)
    try:
        probe = target.parent / "4913"
        probe.write_text("")
        probe.unlink()
        backup = target.parent / "inventory.py~"
        os.rename(target, backup)
        target.write_text(new_text)
        backup.unlink()
    finally:
        proc.proc.send_signal(signal.SIGCONT)
    wait_for(lambda: _doc(live_repo, "src/inventory.py") == ("worktree", new_text), "the save")
    wait_for(lambda: _state(live_repo).get("reconciles", 0) > before, "the update to be counted")
    assert _state(live_repo).get("reconciles", 0) - before == 1
    assert _doc(live_repo, "src/inventory.py~") is None and _doc(live_repo, "src/4913") is None
