"""Bad input at the command line: each case exits with a status, says in one line what is
wrong and what to do, prints no traceback, and loses nothing (issue 7, items 8 and 15).

Every case runs the real `repofeed` entry point in a subprocess against real repositories and
real stores. Read-only file systems are real too: a read-only bind mount (as root, as in CI),
else a directory without write permission.
"""

from __future__ import annotations

import fcntl
import os
import subprocess

import pytest

from helpers import run_cli, store_dump, wait_for
from repofeed.store.writer import lock_path

FILES = {
    "app/main.py": "import sys\n\n\ndef main(argv):\n    for arg in argv:\n"
                   "        print(arg.upper())\n    return 0\n",
    "app/util.py": "def clamp(x, lo, hi):\n    \"\"\"Keep x between lo and hi.\"\"\"\n"
                   "    return max(lo, min(hi, x))\n",
    "README.md": "# demo\n\nA small program that shouts its arguments.\n",
}


def assert_clear_error(done: subprocess.CompletedProcess, *needles: str, status: int = 1
                       ) -> str:
    """Exit ``status``; exactly one `error:` line, holding ``needles``; no traceback."""
    both = done.stdout + done.stderr
    assert done.returncode == status, both
    assert "Traceback" not in both, both
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, done.stderr
    for needle in needles:
        assert needle in errors[0], errors[0]
    return errors[0]


@pytest.fixture
def small_repo(make_repo):
    repo = make_repo("small")
    repo.commit("Initial", FILES)
    repo.commit("Clamp docs", {"app/util.py": FILES["app/util.py"] + "\n\nLIMIT = 10\n"})
    return repo


@pytest.fixture
def stored_repo(small_repo):
    """``small_repo`` with a backfilled store at the default place."""
    run_cli("init", str(small_repo.path))
    run_cli("backfill", str(small_repo.path))
    return small_repo


def _store_dir(repo):
    return repo.path / ".git" / "repofeed" / "store"


def _tree_bytes(root) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


@pytest.fixture
def read_only():
    """``read_only(path)``: make a directory unwritable for the rest of the test — a read-only
    bind mount where we may mount (root ignores permission bits), else chmod 555."""
    mounted, chmodded = [], []

    def make(path):
        if os.geteuid() != 0:
            path.chmod(0o555)
            chmodded.append(path)
            return
        for args in (["mount", "--bind", str(path), str(path)],
                     ["mount", "-o", "remount,bind,ro", str(path)]):
            done = subprocess.run(args, capture_output=True, text=True)
            if done.returncode != 0:
                if mounted and mounted[-1] == path:
                    subprocess.run(["umount", str(path)], check=False)
                    mounted.pop()
                pytest.skip(f"cannot make a read-only mount here: {done.stderr.strip()}")
            if args[1] == "--bind":
                mounted.append(path)

    yield make
    for path in reversed(mounted):
        subprocess.run(["umount", "-l", str(path)], check=False)
    for path in chmodded:
        path.chmod(0o755)


# -- where the store goes ----------------------------------------------------------------------

def test_init_store_at_a_file(small_repo, tmp_path):
    target = tmp_path / "notes.txt"
    target.write_text("not a directory\n")
    done = run_cli("init", str(small_repo.path), "--store", str(target), check=False)
    assert_clear_error(done, str(target), "is a file", "give `--store` a directory")
    assert target.read_text() == "not a directory\n"


def test_init_store_under_a_file(small_repo, tmp_path):
    target = tmp_path / "notes.txt"
    target.write_text("x")
    done = run_cli("init", str(small_repo.path), "--store", str(target / "store"), check=False)
    assert_clear_error(done, "cannot create the writer lock", "writable directory")


def test_init_store_on_a_read_only_directory(small_repo, tmp_path, read_only):
    target = tmp_path / "ro-store"
    target.mkdir()
    read_only(target)
    done = run_cli("init", str(small_repo.path), "--store", str(target), check=False)
    assert_clear_error(done, str(target), "not writable", "another directory")
    assert list(target.iterdir()) == []


def test_init_store_in_a_read_only_parent(small_repo, tmp_path, read_only):
    parent = tmp_path / "ro-parent"
    parent.mkdir()
    read_only(parent)
    done = run_cli("init", str(small_repo.path), "--store", str(parent / "store"), check=False)
    assert_clear_error(done, "cannot create the writer lock", "writable directory")
    assert list(parent.iterdir()) == []


def test_backfill_into_a_read_only_store(small_repo, read_only):
    run_cli("init", str(small_repo.path))
    data = _store_dir(small_repo) / "data.mdb"
    before = data.read_bytes()
    read_only(_store_dir(small_repo))
    done = run_cli("backfill", str(small_repo.path), check=False)
    assert_clear_error(done, "not writable", "make it writable")
    assert data.read_bytes() == before


# -- init --force ------------------------------------------------------------------------------

def test_init_force_leaves_a_foreign_directory_alone(small_repo, tmp_path):
    """A directory that merely holds some data.mdb (and other files) survives byte for byte."""
    foreign = tmp_path / "somebody-elses"
    (foreign / "sub").mkdir(parents=True)
    (foreign / "data.mdb").write_bytes(b"\x00\x01 not ours " * 500)
    (foreign / "thesis.tex").write_text("\\chapter{Results}\n")
    (foreign / "sub" / "figure.csv").write_text("x,y\n1,2\n")
    before = _tree_bytes(foreign)
    done = run_cli("init", str(small_repo.path), "--store", str(foreign), "--force", check=False)
    assert_clear_error(done, "holds other files", "thesis.tex", "Nothing was changed")
    assert _tree_bytes(foreign) == before


def test_init_force_leaves_a_foreign_data_mdb_alone(small_repo, tmp_path):
    """Only data.mdb, but not a repofeed store (another program's LMDB): left untouched."""
    import lmdb

    foreign = tmp_path / "other-lmdb"
    env = lmdb.open(str(foreign), max_dbs=4)
    with env.begin(write=True) as txn:
        txn.put(b"format", b"someone-elses", db=env.open_db(b"meta", txn=txn))
    env.close()
    before = _tree_bytes(foreign)
    done = run_cli("init", str(small_repo.path), "--store", str(foreign), "--force", check=False)
    assert_clear_error(done, "is not a repofeed store", "Nothing was changed")
    assert _tree_bytes(foreign) == before


@pytest.mark.parametrize("how", ["env", "toml"])
def test_init_force_with_a_bad_setting_keeps_the_old_store(stored_repo, how, monkeypatch):
    before = store_dump(stored_repo.path)
    if how == "env":
        monkeypatch.setenv("REPOFEED_MAP_SIZE", "4096")
        needles = ("map_size must be between",)
    else:
        stored_repo.write("repofeed.toml", "max_file_bytes = 99999999999999999999\n")
        needles = ("max_file_bytes must be between",)
    done = run_cli("init", str(stored_repo.path), "--force", check=False)
    assert_clear_error(done, *needles)
    assert store_dump(stored_repo.path) == before
    assert run_cli("stats", str(stored_repo.path)).returncode == 0


def test_init_force_replaces_a_store_in_place(stored_repo):
    """The good path: the new store takes the old one's place; nothing is left beside it."""
    store = _store_dir(stored_repo)
    run_cli("init", str(stored_repo.path), "--force", "--max-tokens", "256", "--overlap", "64")
    assert sorted(p.name for p in store.iterdir()) == ["data.mdb", "lock.mdb"]
    assert sorted(p.name for p in store.parent.iterdir() if p.name.startswith(".store")) == []
    stats = run_cli("stats", "--json", str(stored_repo.path)).stdout
    assert '"max_tokens": 256' in stats and '"commits_processed": 0' in stats


def test_init_force_while_a_writer_holds_the_lock(stored_repo):
    before = store_dump(stored_repo.path)
    fd = os.open(lock_path(_store_dir(stored_repo)), os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        done = run_cli("init", str(stored_repo.path), "--force", check=False)
    finally:
        os.close(fd)
    assert_clear_error(done, "only one writer at a time")
    assert store_dump(stored_repo.path) == before


# -- settings ----------------------------------------------------------------------------------

@pytest.mark.parametrize("args, needle", [
    (["--max-tokens", "8"], "max_tokens must be at least 16"),
    (["--max-tokens", "64", "--overlap", "64"], "overlap must be at least 0 and below"),
    (["--vocab-size", "10"], "vocab_size must be at least 300"),
])
def test_init_with_bad_window_settings(small_repo, args, needle):
    done = run_cli("init", str(small_repo.path), *args, check=False)
    assert_clear_error(done, needle)
    assert not _store_dir(small_repo).exists()


def test_init_with_a_non_numeric_environment_setting(small_repo, monkeypatch):
    monkeypatch.setenv("REPOFEED_MAX_TOKENS", "lots")
    done = run_cli("init", str(small_repo.path), check=False)
    assert_clear_error(done, "'max_tokens'", "REPOFEED_MAX_TOKENS", "must be int")


def test_init_with_a_broken_repofeed_toml(small_repo):
    small_repo.write("repofeed.toml", "max_tokens = [unclosed\n")
    done = run_cli("init", str(small_repo.path), check=False)
    assert_clear_error(done, "repofeed.toml is not valid TOML")


def test_init_outside_a_repository(tmp_path):
    done = run_cli("init", str(tmp_path), check=False)
    assert_clear_error(done, "is not inside a git repository")


@pytest.mark.parametrize("value", ["0", "-1", "0.1", "nan"])
def test_daemon_rescan_seconds_below_half_a_second(stored_repo, value):
    """0 was a busy loop and negative values were taken; the daemon does not start."""
    done = run_cli("daemon", str(stored_repo.path), "--rescan-seconds", value, check=False,
                   timeout=60)
    assert_clear_error(done, "--rescan-seconds must be", "at least 0.5")


def test_daemon_negative_settle(stored_repo):
    done = run_cli("daemon", str(stored_repo.path), "--settle-ms", "-5", check=False,
                   timeout=60)
    assert_clear_error(done, "--settle-ms must be 0 or more")


# -- show --------------------------------------------------------------------------------------

def test_show_record_beyond_uint64(stored_repo):
    done = run_cli("show", "record", "99999999999999999999", str(stored_repo.path), check=False)
    assert_clear_error(done, "there is no record 99999999999999999999")


@pytest.mark.parametrize("kind", ["window", "record"])
def test_show_negative_number(stored_repo, kind):
    done = run_cli("show", kind, "-1", str(stored_repo.path), check=False)
    assert_clear_error(done, f"there is no {kind} -1", "numbered from 0")


def test_show_on_an_empty_store(small_repo):
    run_cli("init", str(small_repo.path))
    done = run_cli("show", "window", "0", str(small_repo.path), check=False)
    assert_clear_error(done, "there is no window 0", "run `repofeed backfill`")


def test_show_without_a_store(small_repo):
    done = run_cli("show", "record", "0", str(small_repo.path), check=False)
    assert_clear_error(done, "no repofeed store", "run `repofeed init`")


# -- refs that name no commit ------------------------------------------------------------------

def test_init_following_a_branch_that_does_not_exist(small_repo):
    small_repo.write("repofeed.toml", 'follow = "release"\n')
    done = run_cli("init", str(small_repo.path), check=False)
    assert_clear_error(done, "refs/heads/release does not exist", "--tokenizer MODEL")


def test_deleted_followed_branch_keeps_the_snapshot(small_repo):
    """The followed branch is deleted: backfill warns and the snapshot stays; recreated, it
    is followed again."""
    small_repo.write("repofeed.toml", 'follow = "release"\n')
    small_repo.commit("Follow the release branch")
    small_repo.git("branch", "release")
    run_cli("init", str(small_repo.path))
    run_cli("backfill", str(small_repo.path))
    before = store_dump(small_repo.path)
    assert before["docs"]

    small_repo.git("branch", "-D", "release")
    done = run_cli("backfill", str(small_repo.path))
    assert "Traceback" not in done.stderr
    warning = [line for line in done.stderr.splitlines() if line.startswith("warning:")]
    assert len(warning) == 1 and "refs/heads/release does not exist" in warning[0]
    assert "keeps its snapshot" in warning[0]
    assert store_dump(small_repo.path)["docs"] == before["docs"]
    status = run_cli("status", str(small_repo.path)).stdout
    assert "refs/heads/release, which does not exist" in status and "None" not in status

    small_repo.git("branch", "release", "main")
    done = run_cli("backfill", str(small_repo.path))
    assert "warning:" not in done.stderr


def test_orphan_checkout_is_said_not_none(stored_repo):
    stored_repo.git("switch", "-q", "--orphan", "gh-pages")
    status = run_cli("status", str(stored_repo.path)).stdout
    assert "HEAD (gh-pages), which has no commits yet" in status
    assert "None" not in status
    done = run_cli("backfill", str(stored_repo.path))
    assert "HEAD (gh-pages) has no commits yet" in done.stderr and "Traceback" not in done.stderr


def test_daemon_warns_once_when_the_followed_branch_is_deleted(small_repo, daemon_for):
    small_repo.write("repofeed.toml", 'follow = "release"\nwatch_worktree = false\n')
    small_repo.commit("Follow the release branch")
    small_repo.git("branch", "release")
    run_cli("init", str(small_repo.path))
    run_cli("backfill", str(small_repo.path))
    docs = store_dump(small_repo.path)["docs"]
    proc = daemon_for(small_repo)
    small_repo.git("branch", "-D", "release")
    wait_for(lambda: "WARNING the followed branch refs/heads/release does not exist"
             in proc.log(), "the daemon to warn about the deleted branch")
    small_repo.commit("More work on main", {"app/extra.py": "X = 1\n"})  # another nudge
    wait_for(lambda: _reconciles(small_repo) >= 3, "two more reconciles")
    assert proc.log().count("does not exist") == 1
    assert store_dump(small_repo.path)["docs"] == docs
    assert proc.stop() == 0


def _reconciles(repo) -> int:
    import json

    state = json.loads((repo.path / ".git" / "repofeed" / "daemon.json").read_text())
    return state.get("reconciles", 0)
