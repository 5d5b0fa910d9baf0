"""Soak: a training reader and the daemon for ``--minutes`` under commits, rebases and edits.

What a store must survive for months, compressed: a real ``repofeed daemon`` (worktree watcher
on, garbage collection on its own) follows a generated repository while this script

* commits every ``--commit-every`` seconds, cycling one file through a few versions (so new
  content stops arriving after the first cycle and growth would be garbage, not data),
* rewrites the last 20 commits every ``--rebase-every`` seconds (``rebase --force-rebase``:
  every one gets a new id, the old ones are superseded),
* edits a worktree file several times a second,

and a training process iterates a ``DataLoader`` with 2 workers over ``WindowDataset`` and
``EvolutionDataset``, calling ``refresh()`` each epoch (its workers are forked anew each
epoch and end with ``os._exit``: the reader-slot test of real life).

Every ``--sample-every`` seconds it records the reader slots in use (LMDB's reader table), the
size of ``data.mdb`` and the reclaimable bytes ``stats`` reports, and prints them as a table.
Goal (issue 7): all three flat after the first minute, and no read fails. The grace period for
garbage is ``--grace`` seconds (the default configuration keeps garbage an hour; a soak of ten
minutes would only show it piling up). Every commit adds a record and a message, so the live
data grows with the stream; the table shows live bytes beside the file, and at the end the
store is collected and compacted to show what of the file was data.

    python benchmarks/soak.py [--minutes 10] [--grace 60]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from common import add_scratch_options, git, table, workspace
from synthetic_repo import make_repo

from repofeed.daemon.ingest import backfill
from repofeed.daemon.init import init_store
from repofeed.store import open_store
from repofeed.store.gc import collect, compact
from repofeed.store.locate import open_repository, store_dir_of
from repofeed.store.writer import StoreWriter

READER = textwrap.dedent("""
    import pathlib, sys, traceback
    from torch.utils.data import DataLoader
    from repofeed.store import EvolutionDataset, WindowDataset
    repo, stop, report = sys.argv[1], pathlib.Path(sys.argv[2]), pathlib.Path(sys.argv[3])
    windows, evolution = WindowDataset(repo), EvolutionDataset(repo)
    items = epochs = 0
    try:
        while not stop.exists():
            for ds in (windows, evolution):
                ds.refresh()
                for batch in DataLoader(ds, batch_size=32, num_workers=2, shuffle=True):
                    items += len(batch["input_ids"])
            epochs += 1
            report.write_text(f"{items} {epochs}")
    except Exception:
        traceback.print_exc()
        sys.exit(1)
    report.write_text(f"{items} {epochs}")
""")


def _env(tick: int) -> dict[str, str]:
    date = f"{1_700_000_000 + 60 * tick} +0000"
    return {**os.environ, "GIT_AUTHOR_NAME": "Soak", "GIT_AUTHOR_EMAIL": "soak@example.com",
            "GIT_COMMITTER_NAME": "Soak", "GIT_COMMITTER_EMAIL": "soak@example.com",
            "GIT_AUTHOR_DATE": date, "GIT_COMMITTER_DATE": date}


def _git(repo: Path, tick: int, *args: str) -> None:
    subprocess.run(["git", *args], cwd=repo, env=_env(tick), check=True, capture_output=True)


def _sample(repo: Path, started: float, report: Path) -> list[object]:
    with open_store(repo) as store:
        stats = store.stats()
        slots = len(store.readers())
    items, epochs = (report.read_text().split() + ["0", "0"])[:2] if report.exists() \
        else ("0", "0")
    return [f"{(time.monotonic() - started) / 60:.1f}", slots,
            (Path(stats["store_path"]) / "data.mdb").stat().st_size / 1e6,
            stats["reclaimable_bytes"] / 1e6, stats["live_bytes"] / 1e6,
            stats["commits_processed"], stats["superseded_records"], int(items), int(epochs)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--grace", type=int, default=60, help="gc_grace_seconds of the store")
    parser.add_argument("--gc-seconds", type=float, default=30.0,
                        help="the daemon's --gc-seconds")
    parser.add_argument("--commit-every", type=float, default=1.0)
    parser.add_argument("--rebase-every", type=float, default=60.0)
    parser.add_argument("--sample-every", type=float, default=30.0)
    parser.add_argument("--amend", action="store_true",
                        help="each commit amends the tip instead of adding one, so that the "
                             "live data stays the same size and any growth is overhead")
    add_scratch_options(parser)
    args = parser.parse_args()

    with workspace(args.workdir, args.keep) as work:
        repo = make_repo(work / "repo", commits=300, files=100, min_lines=20, max_lines=200)
        (repo / "repofeed.toml").write_text(f"gc_grace_seconds = {args.grace}\n")
        git(repo, "add", "repofeed.toml")
        _git(repo, 0, "commit", "-qm", "Soak settings")
        init_store(repo)
        backfill(repo)
        log = work / "daemon.log"
        daemon = subprocess.Popen([sys.executable, "-m", "repofeed.daemon", "daemon", str(repo),
                                   "--gc-seconds", str(args.gc_seconds)],
                                  stderr=open(log, "wb"), stdout=subprocess.DEVNULL)
        stop, report = work / "stop", work / "reader.txt"
        reader = subprocess.Popen([sys.executable, "-c", READER, str(repo), str(stop),
                                   str(report)], stderr=open(work / "reader.log", "wb"))
        versions = [f"def soak_{v}(x):\n    return x + {v}\n" * (40 + v) for v in range(8)]
        started = time.monotonic()
        deadline = started + args.minutes * 60
        next_commit = next_rebase = next_sample = started
        next_rebase += args.rebase_every
        tick, edits, commits, rebases = 10, 0, 0, 0
        rows: list[list[object]] = []
        print(f"soak: {args.minutes:.0f} min, a commit every {args.commit_every:.0f} s"
              f"{' (each amending the tip)' if args.amend else ''}, a "
              f"20-commit rebase every {args.rebase_every:.0f} s, worktree edits several "
              f"times a second; gc_grace_seconds={args.grace}, --gc-seconds "
              f"{args.gc_seconds:.0f}", flush=True)
        try:
            while time.monotonic() < deadline:
                now = time.monotonic()
                if reader.poll() is not None:
                    raise SystemExit(f"the reader failed; see {work / 'reader.log'}")
                if daemon.poll() is not None:
                    raise SystemExit(f"the daemon exited; see {log}")
                (repo / "scratch.py").write_text(f"EDIT = {edits}\n" * (20 + edits % 50))
                edits += 1
                if now >= next_commit:
                    tick += 1
                    (repo / "cycle.py").write_text(versions[commits % len(versions)])
                    _git(repo, tick, "add", "cycle.py")
                    _git(repo, tick, "commit", "-qm", f"Cycle {commits}",
                         *(["--amend"] if args.amend and commits else []))
                    commits += 1
                    next_commit += args.commit_every
                if now >= next_rebase:
                    tick += 1
                    _git(repo, tick, "stash", "-q", "--include-untracked")
                    _git(repo, tick, "rebase", "-q", "--force-rebase", "HEAD~20")
                    _git(repo, tick, "stash", "pop", "-q")
                    rebases += 1
                    next_rebase += args.rebase_every
                if now >= next_sample:
                    rows.append(_sample(repo, started, report))
                    print("  ".join(str(c) for c in rows[-1]), flush=True)
                    next_sample += args.sample_every
                time.sleep(0.2)
            rows.append(_sample(repo, started, report))
        finally:
            stop.touch()
            reader.wait(300)
            daemon.terminate()
            daemon.wait(60)
        print(f"\n{commits} commits, {rebases} rebases of 20 commits, {edits} worktree "
              f"edits; the reader's exit status: {reader.returncode}")
        print(table(["minute", "reader slots", "data.mdb MB", "reclaimable MB", "live MB",
                     "commits", "superseded records", "items read", "epochs"], rows))
        after = [r for r in rows if float(r[0]) >= 1.0]
        if after:
            first = after[0]
            for col, name in ((1, "reader slots"), (2, "data.mdb MB"), (3, "reclaimable MB")):
                values = [float(r[col]) for r in after]
                # a small count (reader slots come and go with the workers) may move by two
                flat = max(values) <= max(1.25 * float(first[col]), float(first[col]) + 2
                                          if col == 1 else float(first[col]) + 0.5)
                print(f"{name}: {float(first[col]):.2f} at minute {first[0]}, at most "
                      f"{max(values):.2f} after, {values[-1]:.2f} at the end: "
                      f"{'flat' if flat else 'NOT flat'}")
        gc_lines = [line for line in log.read_text(errors="replace").splitlines()
                    if "garbage collection:" in line]
        print(f"the daemon collected {len(gc_lines)} time(s); last: "
              f"{gc_lines[-1] if gc_lines else '-'}")
        # What of the file is data: everything collected (no reader is left), then compacted.
        with StoreWriter(store_dir_of(open_repository(repo))) as writer:
            done = collect(writer, grace=0)
            before, after = compact(writer)
        print(f"after the run: {done.commits} superseded commit(s) and {done.arrays} array(s) "
              f"collected; data.mdb {before / 1e6:.2f} MB, compacted {after / 1e6:.2f} MB")
        print(json.dumps({"reader_exit": reader.returncode}))


if __name__ == "__main__":
    main()
