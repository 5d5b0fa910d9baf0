"""Backfill throughput: repofeed against PyDriller and `git log -p` on the same history.

For each history — (a) a generated one (``synthetic_repo.py``, 2,000 commits by default) and
(b) this project's own, cloned into scratch space so that nothing is written into the real
``.git`` — it times, in one process:

- ``git log -p -M --reverse``, output read through a pipe: the floor, git alone;
- PyDriller walking the branch oldest first and reading each modified file's
  ``source_code_before``, ``source_code`` and ``diff``: the baseline;
- ``repofeed`` ``init`` (tokenizer training on the tip) and ``backfill`` (diff, tokenize,
  write every commit), timed apart.

Rates are commits/s and MB/s, where MB is the before + after text of every changed file (as
PyDriller read it), the same figure for every tool. The ratio is repofeed / PyDriller.

It then prints the store's bytes per stored token (``Store.stats()``) and backfills the
generated history again with overlaps 0, 512 and 768 (same tokenizer) to check that overlap
costs no storage: windows are views.

Last (``--sync-modes``), it backfills the generated history under three write settings,
round-robin in this process: the store's own (``MDB_NOMETASYNC``: an fsync per write
transaction, consistent after a power cut; one transaction per batch of commits), the same
with one transaction per commit, and what the store did before (``MDB_NOSYNC``, a transaction
per commit, a flush per batch, which a power cut can leave corrupt): the price of the fsyncs
in commits/s.

With ``--repo PATH`` (a repository or a ``.bundle``, e.g. ``../shared/corpus/attrs.bundle``;
repeatable), it measures those histories instead, each cloned into scratch space, with
everything on, and adds the quality stage's share (issue 9): a backfill without it
(``quality_off``: no secret scan, no facts, no near-duplicate index) joins the round-robin,
and the repofeed runs time the calls inside each stage (``stage_timers``). ``--quality`` adds
the same to the generated and own histories.

Goals (issue 2): store at most 3 bytes per stored token with uint16 tokens; the same store
size for every overlap.

    python benchmarks/backfill_throughput.py [--commits 2000] [--profile] [--sync-modes]
    python benchmarks/backfill_throughput.py --repo ../shared/corpus/attrs.bundle --repeat 3
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import os
import pstats
import subprocess
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lmdb
from common import PROJECT, Timer, add_scratch_options, git, table, workspace
from synthetic_repo import make_repo

from repofeed.daemon.encode import Encoder
from repofeed.daemon.ingest import BackfillResult, backfill
from repofeed.daemon.init import init_store
from repofeed.store import dedup, facts, open_store, secrets
from repofeed.store.dedup import NearDupIndex, Updated
from repofeed.store.facts import FactMeter
from repofeed.store.writer import StoreWriter

BYTES_PER_TOKEN_GOAL = 3.0
MB = 1e6


@dataclass
class Baseline:
    seconds: float
    commits: int = 0
    files: int = 0
    text_bytes: int = 0   # before + after of every modified file
    output_bytes: int = 0


@dataclass
class RepofeedRun:
    init_seconds: float
    backfill_seconds: float
    result: BackfillResult
    stats: dict
    stages: dict[str, float] = field(default_factory=dict)  # seconds inside each (stage_timers)


# What ``stage_timers`` times inside a backfill: (module or class, attribute, label). The
# quality stage is the facts (text_stats + analyze), the secret scan and the near-duplicate
# index; tokenizing is the encoder's encode_batch calls.
TIMED: list[tuple[Any, str, str]] = [
    (FactMeter, "facts", "facts (text_stats + analyze)"),
    (facts, "measure_text", "  text stats (filters.measure_text)"),
    (facts, "measure", "  analyze (complexity.measure)"),
    (secrets, "find_secrets", "secret scan (find_secrets)"),
    (NearDupIndex, "update", "near-dup index update"),
    (dedup, "signature", "  signature (MinHash)"),
    (Encoder, "_encode_chunked", "tokenizing (encode_batch)"),
    (Encoder, "encode_missing", "encode_missing (facts + tokenizing + splicing)"),
]
QUALITY = ("facts (text_stats + analyze)", "secret scan (find_secrets)",
           "near-dup index update")


@contextlib.contextmanager
def stage_timers() -> Iterator[dict[str, float]]:
    """Seconds spent inside each function of ``TIMED`` while the block runs, summed over the
    threads that call it (the encode thread computes the facts, the main thread reads and
    redacts). Benchmark only: the functions are wrapped, module attributes that their
    callers look up at call time."""
    spent: dict[str, float] = defaultdict(float)
    lock = threading.Lock()
    saved = [(owner, name, getattr(owner, name)) for owner, name, _ in TIMED]

    def timed(fn: Callable, label: str) -> Callable:
        def wrapper(*args, **kwargs):
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                elapsed = time.perf_counter() - start
                with lock:
                    spent[label] += elapsed
        return wrapper

    for (owner, name, label), (_, _, fn) in zip(TIMED, saved):
        setattr(owner, name, timed(fn, label))
    try:
        yield spent
    finally:
        for owner, name, fn in saved:
            setattr(owner, name, fn)


@contextlib.contextmanager
def quality_off() -> Iterator[None]:
    """A backfill without the quality stage, for what it costs (benchmark only): no secret
    scan (``secrets.ENABLED``), facts without measurements, no near-duplicate index."""
    saved_facts, saved_update = FactMeter.facts, NearDupIndex.update
    FactMeter.facts = lambda self, key, text, language, base=None: {
        "v": facts.FACTS_VERSION, "lang": language}
    NearDupIndex.update = lambda self, txn, deltas, text_of: Updated()
    secrets.ENABLED = False
    try:
        yield
    finally:
        FactMeter.facts, NearDupIndex.update = saved_facts, saved_update
        secrets.ENABLED = True


def time_git_log(repo: Path) -> Baseline:
    """``git log -p -M --reverse`` with its output read (and counted) through a pipe."""
    cmd = ["git", "log", "-p", "-M", "--reverse", "--no-color", "--no-ext-diff"]
    total = 0
    with Timer() as t:
        proc = subprocess.Popen(cmd, cwd=repo, stdout=subprocess.PIPE)
        while chunk := proc.stdout.read(1 << 20):
            total += len(chunk)
        if proc.wait() != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed in {repo}")
    return Baseline(t.seconds, output_bytes=total)


def time_pydriller(repo: Path, branch: str) -> Baseline:
    """PyDriller extracting before, after and diff of every modified file, oldest first."""
    try:
        from pydriller import Repository
    except ImportError:
        raise SystemExit("PyDriller is the baseline: pip install -e '.[bench]'") from None
    out = Baseline(0.0)
    with Timer() as t:
        for commit in Repository(str(repo), only_in_branch=branch).traverse_commits():
            out.commits += 1
            for m in commit.modified_files:
                before, after, diff = m.source_code_before, m.source_code, m.diff
                out.files += 1
                out.text_bytes += sum(len(s.encode()) for s in (before, after) if s)
                out.output_bytes += len(diff)
    out.seconds = t.seconds
    return out


def run_repofeed(repo: Path, profile_top: int = 0, timed: bool = False,
                 **init_options) -> RepofeedRun:
    """A fresh store: ``init`` then ``backfill``, each timed; optionally under cProfile, or
    with the time inside each stage of ``TIMED`` measured (``timed``)."""
    with Timer() as t_init:
        init_store(repo, force=True, **init_options)
    profiler = cProfile.Profile() if profile_top else None
    timers = stage_timers() if timed else contextlib.nullcontext({})
    with timers as stages, Timer() as t_fill:
        if profiler:
            profiler.enable()
        result = backfill(repo)
        if profiler:
            profiler.disable()
    if profiler:
        print_profile(profiler, profile_top)
    with open_store(repo) as store:
        stats = store.stats()
    return RepofeedRun(t_init.seconds, t_fill.seconds, result, stats, dict(stages))


def print_profile(profiler: cProfile.Profile, top: int) -> None:
    for order in ("tottime", "cumulative"):
        buf = io.StringIO()
        pstats.Stats(profiler, stream=buf).strip_dirs().sort_stats(order).print_stats(top)
        body = buf.getvalue()
        print(f"\n-- backfill profile, top {top} by {order} --")
        print(body[body.find("   ncalls"):].rstrip())


def bench_history(name: str, repo: Path, args: argparse.Namespace,
                  quality: bool = False) -> None:
    """Time the three tools on one history and print the comparison. With ``quality``, the
    repofeed runs also measure the time inside each quality stage (``stage_timers``), and a
    backfill without the quality stage (``quality_off``) joins the round-robin."""
    branch = git(repo, "symbolic-ref", "--short", "HEAD")
    n_commits = int(git(repo, "rev-list", "--count", "HEAD"))
    print(f"\n== {name}: {n_commits:,} commits on {branch} "
          f"(load average {', '.join(f'{x:.1f}' for x in os.getloadavg())}) ==")
    logs, drills, feeds, bare = [], [], [], []
    for _ in range(args.repeat):  # round-robin, so that background load hits all three alike
        logs.append(time_git_log(repo))
        drills.append(time_pydriller(repo, branch))
        feeds.append(run_repofeed(repo, timed=quality))
        if quality:
            with quality_off():
                bare.append(run_repofeed(repo))
    log = min(logs, key=lambda b: b.seconds)
    drill = min(drills, key=lambda b: b.seconds)
    feed = min(feeds, key=lambda r: r.backfill_seconds)
    init_s = min(r.init_seconds for r in feeds)
    text_mb = drill.text_bytes / MB

    def row(tool: str, seconds: float) -> list:
        return [tool, seconds, n_commits / seconds, text_mb / seconds,
                f"{drill.seconds / seconds:.2f}x"]

    print(f"{drill.files:,} changed files, {text_mb:,.1f} MB of before/after text; "
          f"best of {args.repeat}")
    print(table(["tool", "seconds", "commits/s", "MB/s", "vs PyDriller"], [
        row("git log -p -M --reverse (floor)", log.seconds),
        row("PyDriller before+after+diff", drill.seconds),
        row("repofeed backfill", feed.backfill_seconds),
        [f"repofeed init (tokenizer, vocab {feed.stats['vocab_size']:,})", init_s,
         None, None, None],
        row("repofeed init + backfill", init_s + feed.backfill_seconds),
    ]))
    ratio = drill.seconds / feed.backfill_seconds
    print(f"repofeed / PyDriller: {ratio:.2f}x  (repofeed tokenized "
          f"{feed.result.bytes_read / MB:,.1f} MB of distinct text into "
          f"{feed.result.records:,} records)")
    if quality:
        print_quality(feed, min(bare, key=lambda r: r.backfill_seconds), drill, text_mb)
    print(f"load average after: {', '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print_storage(repo, feed.stats)
    if args.profile:
        run_repofeed(repo, profile_top=args.profile)  # a separate run: profiling slows it
    elif ratio < 1:
        print("repofeed is slower than PyDriller here: run with --profile to see where.")


def print_quality(feed: RepofeedRun, bare: RepofeedRun, drill: Baseline, text_mb: float
                  ) -> None:
    """What the quality stage costs the backfill: the same backfill without it, and the
    seconds inside each stage of the fastest run with it."""
    cost = feed.backfill_seconds / bare.backfill_seconds - 1
    print(f"\nwithout the quality stage (no secret scan, no facts, no near-dup index): "
          f"{bare.backfill_seconds:.2f} s, {text_mb / bare.backfill_seconds:,.1f} MB/s, "
          f"{drill.seconds / bare.backfill_seconds:.2f}x PyDriller; the quality stage adds "
          f"{cost:+.0%} to the backfill")
    stages = dict(feed.stages)
    tokenizing = stages.get("tokenizing (encode_batch)", 0.0)
    quality = sum(stages.get(k, 0.0) for k in QUALITY)
    spliced = stages.get("encode_missing (facts + tokenizing + splicing)", 0.0) - \
        stages.get("facts (text_stats + analyze)", 0.0)
    print(f"inside the fastest backfill with it ({feed.backfill_seconds:.2f} s; the facts and "
          f"the tokenizing run in the encode thread, the secret scan in the reading thread, "
          f"the index at the snapshot):")
    rows = [[label, stages.get(label, 0.0), stages.get(label, 0.0) / feed.backfill_seconds,
             stages.get(label, 0.0) / tokenizing if tokenizing else None]
            for _, _, label in TIMED]
    rows.append(["tokenizing + splicing (encode_missing - facts)", spliced,
                 spliced / feed.backfill_seconds, spliced / tokenizing if tokenizing else None])
    rows.append(["quality stage (facts + secret scan + index)", quality,
                 quality / feed.backfill_seconds, quality / tokenizing if tokenizing else None])
    print(table(["stage", "seconds", "of backfill", "x tokenizing"], rows))
    if spliced > 0:
        print(f"quality stage / (tokenizing + splicing): {quality / spliced:.2f}x "
              f"(goal <= 1: {'met' if quality <= spliced else 'NOT met'})")


def print_storage(repo: Path, stats: dict) -> None:
    per_token = stats["bytes_per_stored_token"]
    met = per_token is not None and per_token <= BYTES_PER_TOKEN_GOAL
    print(f"store: {stats['store_bytes'] / MB:,.1f} MB for {stats['stored_tokens']:,} stored "
          f"tokens ({stats['token_dtype']}) = {per_token} bytes/stored token "
          f"(goal <= {BYTES_PER_TOKEN_GOAL:g}: {'met' if met else 'NOT met'}); "
          f"{stats['documents']:,} documents, {stats['windows']:,} windows, "
          f"{stats['evolution_records']:,} records")
    with open_store(repo) as store:
        model = len(store.tokenizer.model)
    lock = (Path(stats["store_path"]) / "lock.mdb").stat().st_blocks * 512
    if stats["stored_tokens"]:
        rest = (stats["store_bytes"] - model - lock) / stats["stored_tokens"]
        print(f"  fixed part: tokenizer model {model / 1e3:,.0f} kB, lock.mdb "
              f"{lock / 1e3:,.0f} kB; without them {rest:.2f} bytes/stored token")


def check_overlaps(repo: Path, overlaps: list[int], work: Path) -> None:
    """Backfill ``repo`` once per overlap with one tokenizer; the store should not change."""
    model = work / "tokenizer.model"
    with open_store(repo) as store:
        model.write_bytes(store.tokenizer.model)
    rows = []
    for overlap in overlaps:
        run = run_repofeed(repo, tokenizer=model, overlap=overlap)
        rows.append({"overlap": overlap, **{k: run.stats[k] for k in (
            "windows", "stored_tokens", "store_bytes", "bytes_per_stored_token")}})
    sizes = {r["store_bytes"] for r in rows}
    print("\n== storage by overlap (same history, same tokenizer) ==")
    print(table(["overlap", "windows", "stored tokens", "store bytes", "bytes/stored token"],
                [list(r.values()) for r in rows]))
    spread = (max(sizes) - min(sizes)) / min(sizes)
    verdict = "the same" if spread == 0 else f"within {spread:.2%}"
    print(f"store size across overlaps: {verdict} "
          f"({'met' if spread <= 0.01 else 'NOT met'}: windows are views)")


@contextlib.contextmanager
def write_setting(name: str) -> Iterator[None]:
    """Write stores as setting ``name`` does, for the duration (benchmark only).

    ``batch`` is what repofeed does: MDB_NOMETASYNC (``store/lmdbenv.py``), one write
    transaction per batch of commits. The others are forced by wrapping ``lmdb.open`` (to the
    ``sync=False`` the store had before) and ``StoreWriter.write_commits`` (back to one
    transaction per commit).
    """
    real_open, real_write = lmdb.open, StoreWriter.write_commits

    def open_nosync(*args, **kwargs):
        return real_open(*args, **{**kwargs, "sync": False, "metasync": True})

    def one_per_commit(self: StoreWriter, writes: list) -> list[bool]:
        written = [real_write(self, [write])[0] for write in writes]
        self.sync()  # the flush per batch that went with a transaction per commit
        return written

    if name != "batch":
        StoreWriter.write_commits = one_per_commit
    if name == "nosync":
        lmdb.open = open_nosync
    try:
        yield
    finally:
        lmdb.open, StoreWriter.write_commits = real_open, real_write


WRITE_SETTINGS = {
    "nosync": "MDB_NOSYNC, a transaction per commit (before: a power cut can corrupt)",
    "commit": "MDB_NOMETASYNC, a transaction (an fsync) per commit",
    "batch": "MDB_NOMETASYNC, a transaction (an fsync) per batch (now)",
}


def compare_write_settings(repo: Path, repeat: int) -> None:
    """Backfill ``repo`` on a fresh store under each write setting, round-robin; best of
    ``repeat`` each, and the ratio to the setting of before."""
    n_commits = int(git(repo, "rev-list", "--count", "HEAD"))
    times: dict[str, list[float]] = {name: [] for name in WRITE_SETTINGS}
    for _ in range(repeat):
        for name in WRITE_SETTINGS:
            with write_setting(name):
                times[name].append(run_repofeed(repo).backfill_seconds)
    best = {name: min(ts) for name, ts in times.items()}
    print(f"\n== backfill by LMDB sync and transaction setting ({n_commits:,} commits; "
          f"best of {repeat}) ==")
    print(table(["setting", "seconds", "commits/s", "vs before"], [
        [f"{name}: {what}", best[name], n_commits / best[name],
         f"{best['nosync'] / best[name]:.2f}x"] for name, what in WRITE_SETTINGS.items()]))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Backfill throughput of repofeed against PyDriller and git log -p.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--commits", type=int, default=2000,
                        help="generated history length (0: skip it)")
    parser.add_argument("--files", type=int, default=200, help="files in the generated tree")
    parser.add_argument("--seed", type=int, default=1, help="generator seed")
    parser.add_argument("--own-repo", type=Path, default=PROJECT,
                        help="repository whose history is cloned for the second run")
    parser.add_argument("--skip-own", action="store_true", help="only the generated history")
    parser.add_argument("--repo", type=lambda p: Path(p).resolve(), action="append",
                        default=[], metavar="PATH",
                        help="a history to measure instead of the generated and own ones: a "
                             "git repository or a .bundle (cloned into scratch space), with "
                             "the quality stage's share of the backfill; may be repeated")
    parser.add_argument("--quality", action="store_true",
                        help="the quality stage's share on the generated and own histories too")
    parser.add_argument("--overlaps", default="0,512,768",
                        help="overlaps for the storage check ('' to skip it)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per tool; best is kept")
    parser.add_argument("--profile", type=int, nargs="?", const=25, default=0, metavar="TOP",
                        help="profile one more repofeed backfill (untimed) and print its TOP "
                             "functions by own and by cumulative time")
    parser.add_argument("--sync-modes", action="store_true",
                        help="also backfill the generated history under the old and the new "
                             "LMDB sync and transaction settings and compare them")
    parser.add_argument("--sync-only", action="store_true",
                        help="only the sync-setting comparison (implies --sync-modes)")
    add_scratch_options(parser)
    return parser.parse_args()


def bench_repos(paths: list[Path], work: Path, args: argparse.Namespace) -> None:
    """``bench_history`` with the quality stage's share, on a clone of each of ``paths``."""
    for path in paths:
        name = path.name.removesuffix(".bundle")
        clone = work / f"repo-{name}"
        source = path if path.suffix == ".bundle" else path.resolve()
        git(work, "clone", "-q", *([] if path.suffix == ".bundle" else ["--no-local"]),
            str(source), str(clone))
        bench_history(f"{name} history", clone, args, quality=True)


def main() -> None:
    args = parse_args()
    with workspace(args.workdir, args.keep) as work:
        if args.repo:
            bench_repos(args.repo, work, args)
            return
        if args.commits > 0:
            with Timer() as t:
                synth = make_repo(work / "synthetic", args.commits, args.files, args.seed)
            print(f"generated {args.commits:,} commits with git fast-import in "
                  f"{t.seconds:.1f} s")
            if not args.sync_only:
                bench_history("generated history", synth, args, quality=args.quality)
                if args.overlaps.strip():
                    check_overlaps(synth, [int(x) for x in args.overlaps.split(",")], work)
            if args.sync_modes or args.sync_only:
                compare_write_settings(synth, args.repeat)
        if not args.skip_own and not args.sync_only:
            own = work / "own"
            git(work, "clone", "-q", "--no-local", str(args.own_repo.resolve()), str(own))
            bench_history(f"own history ({args.own_repo.resolve().name})", own, args,
                          quality=args.quality)


if __name__ == "__main__":
    main()
