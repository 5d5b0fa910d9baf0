"""Test helpers: real git repositories with a pinned identity and clock, the sample files,
and the real command line in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SAMPLES = Path(__file__).parent / "samples"
PROJECT = Path(__file__).resolve().parents[1]
# The real histories (../shared/corpus beside the checkout, as CI has it; REPOFEED_CORPUS
# names another place). Tests that need them skip, saying so, where they are absent.
CORPUS = Path(os.environ.get("REPOFEED_CORPUS") or PROJECT.parent / "shared" / "corpus")


class GitRepo:
    """A real git repository in a temporary directory, with a deterministic clock."""

    EPOCH = 1_700_000_000

    def __init__(self, path: Path):
        self.path = path
        self.tick = 0
        path.mkdir(parents=True, exist_ok=True)
        self.git("init", "-q", "-b", "main")

    def env(self) -> dict[str, str]:
        date = f"{self.EPOCH + 60 * self.tick} +0000"
        return {
            **os.environ,
            "GIT_AUTHOR_NAME": "Ada Tester", "GIT_AUTHOR_EMAIL": "ada@example.com",
            "GIT_COMMITTER_NAME": "Ada Tester", "GIT_COMMITTER_EMAIL": "ada@example.com",
            "GIT_AUTHOR_DATE": date, "GIT_COMMITTER_DATE": date,
        }

    def git(self, *args: str, input: bytes | None = None) -> str:
        done = subprocess.run(["git", *args], cwd=self.path, env=self.env(), input=input,
                              capture_output=True, check=False)
        if done.returncode != 0:
            raise AssertionError(f"git {' '.join(args)} failed: {done.stderr.decode()}")
        return done.stdout.decode()

    def write(self, rel: str, content: str | bytes) -> Path:
        target = self.path / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, str):
            target.write_bytes(content.encode("utf-8"))
        else:
            target.write_bytes(content)
        return target

    def commit(self, message: str, files: dict[str, str | bytes] | None = None,
               remove: list[str] = ()) -> str:
        for rel, content in (files or {}).items():
            self.write(rel, content)
        for rel in remove:
            self.git("rm", "-q", "--", rel)
        self.git("add", "-A")
        self.tick += 1
        self.git("commit", "-q", "--allow-empty", "-m", message)
        return self.head()

    def commit_in(self, worktree: Path, message: str, files: dict[str, str]) -> None:
        """Write ``files`` in a linked worktree and commit them there, with this clock."""
        for rel, content in files.items():
            (worktree / rel).write_text(content)
        for args in (["add", "-A"], ["commit", "-q", "-m", message]):
            subprocess.run(["git", *args], cwd=worktree, env=self.env(), check=True,
                           capture_output=True)

    def head(self) -> str:
        return self.git("rev-parse", "HEAD").strip()


def sample_files() -> dict[str, str]:
    """Real source text in several languages: indentation, tabs, blank lines, non-ASCII."""
    files = {p.relative_to(SAMPLES).as_posix(): p.read_bytes().decode("utf-8")
             for p in sorted(SAMPLES.rglob("*")) if p.is_file()}
    for room in ("store", "daemon"):  # this project's own code: more real text to train on
        for p in sorted((PROJECT / room).glob("*.py")):
            files[f"lib/{room}/{p.name}"] = p.read_text("utf-8")
    return files


def run_cli(*args: str, cwd: Path | None = None, check: bool = True, timeout: float = 120
            ) -> subprocess.CompletedProcess:
    """Run the real `repofeed` console entry point in a subprocess."""
    done = subprocess.run([sys.executable, "-m", "repofeed.daemon", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)
    if check and done.returncode != 0:
        raise AssertionError(f"repofeed {' '.join(args)} exited {done.returncode}:\n"
                             f"{done.stdout}\n{done.stderr}")
    return done


def store_dump(path) -> dict:
    """Everything a store holds that a user could observe, for comparing two stores."""
    from repofeed.store import open_store
    from repofeed.store.schema import (
        DB_COMMITS,
        DB_DOCS,
        DB_META,
        DB_RECORDS,
        DB_SKIPPED,
        DB_TOKENS,
    )

    with open_store(path) as store:
        dump = {}
        with store._handle.begin() as txn:
            for name in (DB_META, DB_TOKENS, DB_DOCS, DB_RECORDS, DB_COMMITS, DB_SKIPPED):
                dump[name.decode()] = {bytes(k): bytes(v)
                                       for k, v in txn.cursor(db=store._handle.dbs[name])}
        return dump


def fast_history(repo: GitRepo, commits: int, files: int = 40, seed: int = 7) -> None:
    """Append ``commits`` commits to ``repo`` quickly with git fast-import.

    Each commit edits one to three of ``files`` Python-like files; contents are deterministic.
    """
    import random

    rng = random.Random(seed)
    bodies = {f"pkg/mod{i:03d}.py": [f"def f{i}_{j}(x):\n    return x * {j} + {i}\n"
                                     for j in range(30)] for i in range(files)}
    out = []
    base = GitRepo.EPOCH + 10_000_000
    parent = repo.git("rev-parse", "--verify", "-q", "HEAD").strip() if \
        subprocess.run(["git", "rev-parse", "--verify", "-q", "HEAD"], cwd=repo.path,
                       capture_output=True).returncode == 0 else None
    for n in range(commits):
        touched = sorted(rng.sample(sorted(bodies), rng.randint(1, 3))) if n else sorted(bodies)
        ops = []
        for path in touched:
            lines = bodies[path]
            k = rng.randrange(len(lines))
            lines[k] = f"def g{n}_{k}(y):\n    return y - {n * k}\n"
            data = "".join(lines).encode()
            ops.append(f"M 100644 inline {path}\ndata {len(data)}\n".encode() + data + b"\n")
        msg = f"Change {len(touched)} file(s), step {n}\n".encode()
        header = (f"commit refs/heads/main\n"
                  f"author Ada Tester <ada@example.com> {base + 60 * n} +0000\n"
                  f"committer Ada Tester <ada@example.com> {base + 60 * n} +0000\n"
                  f"data {len(msg)}\n").encode() + msg
        if n == 0 and parent:
            header += f"from {parent}\n".encode()
        out.append(header + b"".join(ops) + b"\n")
    repo.git("fast-import", "--quiet", input=b"".join(out))
    repo.git("reset", "-q", "--hard", "main")


def wait_for(condition, what: str, timeout: float = 30.0, interval: float = 0.01):
    """Poll ``condition`` until it returns a truthy value; fail with ``what`` at the deadline."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


class DaemonProcess:
    """A real `repofeed daemon` subprocess; its stderr (the log) is kept in a file."""

    def __init__(self, repo: GitRepo, log: Path, *args: str):
        self.repo = repo
        self.log_path = log
        self._log = open(log, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "repofeed.daemon", "daemon", str(repo.path), "-v", *args],
            stdout=subprocess.DEVNULL, stderr=self._log, env={**os.environ})
        wait_for(lambda: self.ready() or self.proc.poll() is not None,
                 "the daemon to start", timeout=60)
        if self.proc.poll() is not None:
            raise AssertionError(f"the daemon exited {self.proc.returncode}:\n{self.log()}")

    def ready(self) -> bool:
        """The state file, written after each update, says this process did its first."""
        import json

        try:
            state = json.loads((self.repo.path / ".git" / "repofeed" / "daemon.json")
                               .read_text())
        except (OSError, ValueError):
            return False
        return state.get("pid") == self.proc.pid and state.get("reconciles", 0) >= 1

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: int = 15, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError(f"the daemon ignored signal {sig}:\n{self.log()}") from None
        self._log.close()
        return self.proc.returncode


def store_head(path) -> str | None:
    from repofeed.store import open_store

    with open_store(path) as store:
        return store.meta(b"head")  # one key: stats() surveys the whole store


# init_store flags that turn on what the test environment turns off (conftest.py): the
# stored variants and the context documents, as repofeed makes them by default
VARIANTS_ON = {"variants": ["rename", "decomment", "reformat", "rename+decomment"],
               "context_documents": True}
