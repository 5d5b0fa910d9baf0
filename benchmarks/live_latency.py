"""Live path: what the hooks add to a commit, commit-to-visible latency, incremental cost.

Three measurements, each against a baseline in the same run:

1. **Hook cost.** Two copies of one repository, one with repofeed's hooks installed and one
   without; ``git commit`` of a one-line edit in each, interleaved, ``--commits`` times. The
   figure is the difference of the medians. Goal (issue 3): at most 2 ms added.
2. **Commit to visible.** A real ``repofeed daemon`` subprocess on a generated repository;
   commits of 1–10 files; the time from ``git commit`` returning to the commit being the
   store's head as read through ``Store`` (its records are written before the head moves).
   Goal: p50 ≤ 50 ms, p95 ≤ 150 ms. Twice: with stored variants and context documents off
   (issue 3's setting) and on (issue 10's goal: p50 within 2× of off; the variants land
   later, in transactions of their own).
3. **Incremental cost.** In one process, the pipeline run that follows a one-file commit
   (``Syncer.run``: diff, tokenize, write records and the changed document) in a 100-file and
   in a 10,000-file repository, alternately. Goal: ratio of medians ≤ 1.5. Twice: with about
   40 files a directory, as source trees are, and with the flat layout of the generated
   history (24 directories), where one edit means reading a 420-entry directory.

    python benchmarks/live_latency.py [--commits 40] [--only hooks|visible|incremental]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from common import Timer, add_scratch_options, git, table, workspace
from synthetic_repo import make_repo

from repofeed.daemon.ingest import Syncer, backfill
from repofeed.daemon.init import init_store
from repofeed.hooks.install import install
from repofeed.store import open_store
from repofeed.store.locate import open_repository, store_dir_of
from repofeed.store.schema import K_HEAD
from repofeed.store.writer import StoreWriter

ENV = {**os.environ, "GIT_AUTHOR_NAME": "Bench", "GIT_AUTHOR_EMAIL": "bench@example.com",
       "GIT_COMMITTER_NAME": "Bench", "GIT_COMMITTER_EMAIL": "bench@example.com"}


def _commit(repo: Path, message: str) -> float:
    """``git commit -q -a`` in ``repo``; returns its wall time in seconds."""
    start = time.perf_counter()
    subprocess.run(["git", "commit", "-q", "-a", "-m", message], cwd=repo, env=ENV, check=True)
    return time.perf_counter() - start


def _edit(repo: Path, rel: str, n: int) -> None:
    path = repo / rel
    with open(path, "a") as fh:
        fh.write(f"# edit {n}\n")


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def bench_hooks(work: Path, commits: int) -> None:
    print(f"\n== hook cost: git commit with and without repofeed's hooks, {commits} each ==")
    plain = make_repo(work / "plain", commits=1, files=50)
    hooked = work / "hooked"
    shutil.copytree(plain, hooked)
    install(hooked)
    first = sorted(p.relative_to(plain).as_posix() for p in plain.rglob("*.py"))[0]
    times: dict[str, list[float]] = {"without hooks": [], "with hooks": []}
    for n in range(commits + 3):  # interleaved, so that background load hits both alike
        for name, repo in (("without hooks", plain), ("with hooks", hooked)):
            _edit(repo, first, n)
            seconds = _commit(repo, f"Edit {n}")
            if n >= 3:  # the first commits warm the page cache
                times[name].append(seconds)
    spool = hooked / ".git" / "repofeed" / "spool"
    lines = len(spool.read_text().splitlines())
    rows = [[name, statistics.median(v) * 1000, _pct(v, 0.9) * 1000, min(v) * 1000]
            for name, v in times.items()]
    print(table(["git commit", "median ms", "p90 ms", "min ms"], rows))
    added = (statistics.median(times["with hooks"]) - statistics.median(times["without hooks"]))
    print(f"added by the hooks: {added * 1000:.2f} ms per commit (goal <= 2 ms: "
          f"{'met' if added <= 0.002 else 'NOT met'}); spool lines written: {lines}")

    hook = hooked / ".git" / "hooks" / "post-commit"
    runs = 200
    with Timer() as t:
        for _ in range(runs):
            subprocess.run([str(hook)], cwd=hooked, check=True)
    with Timer() as t_sh:
        for _ in range(runs):
            subprocess.run(["sh", "-c", ":"], check=True)
    print(f"the post-commit hook run alone: {t.seconds / runs * 1000:.2f} ms; an empty sh: "
          f"{t_sh.seconds / runs * 1000:.2f} ms (both include starting the process)")


def bench_visible(work: Path, commits: int) -> None:
    """Twice: with stored variants and context documents off (issue 3's setting, the
    baseline) and on (the defaults since issue 10), in the same process."""
    results = {}
    for setting in ("off", "on"):
        results[setting] = _visible(work / f"visible-{setting}", commits, setting == "on")
    rows = [[f"variants and context {s}", _pct(ms, 0.5), _pct(ms, 0.95), max(ms)]
            for s, ms in results.items()]
    print(table(["commit to visible", "p50 ms", "p95 ms", "max ms"], rows))
    ratio = _pct(results["on"], 0.5) / _pct(results["off"], 0.5)
    print(f"p50 with variants and context on / off: {ratio:.2f} (goal <= 2: "
          f"{'met' if ratio <= 2 else 'NOT met'})")


def _visible(work: Path, commits: int, variants: bool) -> list[float]:
    """Commit-to-visible latencies in ms (see the module's docstring), with stored variants
    and context documents on or off."""
    print(f"\n== commit to visible: daemon running, {commits} commits of 1-10 files, "
          f"variants and context {'on' if variants else 'off'} ==")
    work.mkdir(parents=True, exist_ok=True)
    repo = make_repo(work / "visible", commits=200, files=300)
    with Timer() as t:
        init_store(repo, **({} if variants else {"variants": [], "context_documents": False}))
        done = backfill(repo)
    print(f"  initialised and backfilled in {t.seconds:.1f} s"
          + (f" ({done.variants.variants} variants)" if done.variants else ""))
    install(repo)
    log = open(work / "daemon.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "repofeed.daemon", "daemon", str(repo)],
                            stderr=log, stdout=subprocess.DEVNULL)
    store = open_store(repo)
    try:
        deadline = time.monotonic() + 60
        while b"watching" not in (work / "daemon.log").read_bytes():
            if time.monotonic() > deadline or proc.poll() is not None:
                raise SystemExit("the daemon did not start; see " + str(work / "daemon.log"))
            time.sleep(0.01)
        paths = sorted(p.relative_to(repo).as_posix() for p in repo.rglob("*.py"))
        latencies: list[float] = []
        for n in range(commits):
            k = 1 + n % 10
            for rel in paths[n * 7 % len(paths):][:k]:
                _edit(repo, rel, n)
            subprocess.run(["git", "commit", "-q", "-a", "-m", f"Edit {k} files"], cwd=repo,
                           env=ENV, check=True)
            returned = time.perf_counter()
            head = git(repo, "rev-parse", "HEAD")
            while store.meta(K_HEAD) != head:
                if time.perf_counter() - returned > 10:
                    raise SystemExit(f"commit {n} did not become visible within 10 s")
                time.sleep(0.0005)
            latencies.append(time.perf_counter() - returned)
            time.sleep(0.05)  # commits a person makes are apart; a burst is another test
    finally:
        store.close()
        proc.terminate()
        proc.wait(30)
        log.close()
    ms = [v * 1000 for v in latencies]
    p50, p95 = _pct(ms, 0.5), _pct(ms, 0.95)
    print(f"  git commit returns → Store sees the head: p50 {p50:.1f} ms, p95 {p95:.1f} ms, "
          f"max {max(ms):.1f} ms; goal p50 <= 50 ms and p95 <= 150 ms: "
          f"{'met' if p50 <= 50 and p95 <= 150 else 'NOT met'} (settle delay 10 ms included)")
    with open_store(repo) as store:
        print(f"  variants pending at the end: {store.variant_summary().pending}")
    return ms


def bench_incremental(work: Path, commits: int, fanout: int | None) -> None:
    sizes = (100, 10_000)
    layout = (f"about {fanout} files a directory" if fanout else
              "24 directories, so about 420 files a directory at 10,000")
    print(f"\n== incremental cost: a one-file commit in repositories of {sizes[0]:,} and "
          f"{sizes[1]:,} files ({layout}), {commits} each ==")
    repos = {}
    for files in sizes:
        with Timer() as t:
            repo = make_repo(work / f"inc{files}-{fanout}", commits=1, files=files,
                             min_lines=20, max_lines=80, fanout=fanout)
            init_store(repo)
            backfill(repo)
        print(f"  {files:,} files: generated, initialised and backfilled in {t.seconds:.1f} s")
        repos[files] = repo
    writers = {f: StoreWriter(store_dir_of(open_repository(r))) for f, r in repos.items()}
    syncers = {f: Syncer(open_repository(r), writers[f]) for f, r in repos.items()}
    # The same kind of edit in both: a file of about 2 kB (the sizes are random), so that the
    # ratio measures the repository's size, not the file's.
    firsts = {f: min(sorted(p.relative_to(r).as_posix() for p in r.rglob("*.py")),
                     key=lambda rel, r=r: abs((r / rel).stat().st_size - 2000))
              for f, r in repos.items()}
    times: dict[int, list[float]] = {f: [] for f in sizes}
    try:
        for n in range(commits + 2):
            for files, repo in repos.items():
                _edit(repo, firsts[files], n)
                _commit(repo, f"Edit {n}")
                with Timer() as t:
                    result = syncers[files].run()
                assert result.commits == 1 and result.documents_changed == 1, result
                if n >= 2:
                    times[files].append(t.seconds)
    finally:
        for writer in writers.values():
            writer.close()
    rows = [[f"{files:,} files", statistics.median(v) * 1000, _pct(v, 0.9) * 1000]
            for files, v in times.items()]
    print(table(["repository", "median ms", "p90 ms"], rows))
    ratio = statistics.median(times[sizes[1]]) / statistics.median(times[sizes[0]])
    print(f"ratio {sizes[1]:,} / {sizes[0]:,} files: {ratio:.2f} (goal <= 1.5: "
          f"{'met' if ratio <= 1.5 else 'NOT met'})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--commits", type=int, default=40, help="commits per measurement")
    parser.add_argument("--only", choices=("hooks", "visible", "incremental"))
    add_scratch_options(parser)
    args = parser.parse_args()
    with workspace(args.workdir, args.keep) as work:
        if args.only in (None, "hooks"):
            bench_hooks(work, args.commits)
        if args.only in (None, "visible"):
            bench_visible(work, args.commits)
        if args.only in (None, "incremental"):
            bench_incremental(work, args.commits, fanout=40)
            bench_incremental(work, args.commits, fanout=None)


if __name__ == "__main__":
    main()
