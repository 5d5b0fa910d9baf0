"""Fixtures. The user's home is replaced by an empty directory so that no personal git
configuration (hooks, rename settings, identity) or repofeed setting leaks into a test."""

from __future__ import annotations

import os
import signal
import subprocess

import pytest

from helpers import DaemonProcess, GitRepo, run_cli, sample_files
from repofeed.daemon.ingest import backfill
from repofeed.daemon.init import init_store

# Stored variants and context documents cost a transform per file and recipe at every
# backfill; the tests of other features go without them. The environment is below init's
# flags, so the tests of variants and context turn them on (helpers.VARIANTS_ON). Set here too,
# for the fixtures made once per module, outside any test's environment.
WITHOUT_VARIANTS = {"REPOFEED_VARIANTS": "[]", "REPOFEED_CONTEXT_DOCUMENTS": "false"}
os.environ.update(WITHOUT_VARIANTS)


@pytest.fixture(autouse=True)
def isolated_home(tmp_path_factory, monkeypatch):
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.delenv("GIT_DIR", raising=False)
    monkeypatch.delenv("GIT_WORK_TREE", raising=False)
    for key in list(os.environ):
        if key.startswith("REPOFEED_"):
            monkeypatch.delenv(key)
    for key, value in WITHOUT_VARIANTS.items():
        monkeypatch.setenv(key, value)
    return home


@pytest.fixture
def make_repo(tmp_path):
    counter = iter(range(1000))

    def make(name: str | None = None) -> GitRepo:
        return GitRepo(tmp_path / (name or f"repo{next(counter)}"))

    return make


@pytest.fixture
def sample_repo(make_repo) -> GitRepo:
    """A small history over the sample files: adds, edits, a rename and a deletion."""
    repo = make_repo("sample")
    files = sample_files()
    names = sorted(files)
    half = len(names) // 2
    repo.commit("Initial import of the first half", {n: files[n] for n in names[:half]})
    repo.commit("Add the rest of the sources", {n: files[n] for n in names[half:]})
    first = names[0]
    repo.commit("Tweak a constant in the first file",
                {first: files[first].replace("\n", "\n# tuned\n", 1)})
    return repo


@pytest.fixture
def tiny_disk(tmp_path):
    """A 1 MiB tmpfs: a real full disk. Needs the right to mount (root, as in CI)."""
    mount_point = tmp_path / "tiny"
    mount_point.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount_point)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    yield mount_point
    subprocess.run(["umount", "-l", str(mount_point)], check=False)


@pytest.fixture
def live_repo(make_repo):
    """A repository with a store, its hooks installed, backfilled."""
    repo = make_repo()
    repo.commit("Sources", sample_files())
    init_store(repo.path)
    backfill(repo.path)
    run_cli("install", str(repo.path))
    return repo


@pytest.fixture
def daemon_for(tmp_path):
    """Start real `repofeed daemon` subprocesses; each is killed at the end of the test."""
    procs = []

    def start(repo, *args: str) -> DaemonProcess:
        proc = DaemonProcess(repo, tmp_path / f"daemon{len(procs)}.log", *args)
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        proc.stop(signal.SIGKILL)


@pytest.fixture
def daemon(live_repo, daemon_for):
    """``daemon(*args)`` starts one on ``live_repo``."""
    return lambda *args: daemon_for(live_repo, *args)


@pytest.fixture
def one_torch_thread():
    """Torch on one intra-op thread: on a loaded 2-core machine two spinning OpenMP threads
    made 40 steps of a tiny model take 8 s instead of 0.06 s. Restored afterwards."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
