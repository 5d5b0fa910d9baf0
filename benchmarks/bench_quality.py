"""The whole quality stage of ingest against tokenizing the same texts, per language.

Issue 9's goal: the quality stage — filters (``filters.text_stats``), secret scan
(``secrets.redact``), MinHash (``dedup.signature``) and parsing (``complexity.analyze``) —
costs at most as much as tokenizing, which the ingest does to every text anyway.

The texts are every text file at the tip of the corpus histories (``../shared/corpus``), read
as the ingest reads a snapshot (``common.tip_files``) and grouped by the language the store
gives them (languages with fewer than ``--min-files`` files are one ``other`` row). The
tokenizer is a SentencePiece model trained on them the way the store trains one
(``common.train_sentencepiece``). Each work runs over a language's texts, one call per text,
in this process; best of ``--repeat`` rounds, round-robin (each round runs every work once),
so background load hits each alike:

* each stage alone, one thread (as the ingest runs them: the facts in the encode thread, the
  redaction in the blob reader, the signature in the snapshot's transaction), and
  *quality*, the sum of the four stages' times: every stage over every text, which is what a
  snapshot of new texts costs (an edit in a backfill scans only the lines it wrote, so the
  secret scan costs less there);
* ``encode``: SentencePiece, one text per call, one thread;
* ``encode_batch``: the ingest's way (``Encoder._encode_chunked``): chunks of
  ``ENCODE_CHUNK_BYTES`` of text per ``encode_batch`` call, on ``--threads`` threads.

Ratios are times, quality over tokenizing: 1.0 = the quality stage costs as much as
tokenizing; the goal is at most 1.0, against both tokenizing figures.

    python benchmarks/bench_quality.py [--repeat 5] [--vocab-size 8000] [--threads 2]
                                       [--corpus DIR] [--bundles a,b] [--min-files 5]
"""

from __future__ import annotations

import argparse
import os
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from common import (
    TipFile,
    add_corpus_option,
    add_scratch_options,
    best_seconds,
    corpus_bundles,
    corpus_tip_files,
    each,
    megabytes,
    table,
    train_sentencepiece,
    workspace,
)

from repofeed.daemon.encode import ENCODE_CHUNK_BYTES
from repofeed.store.complexity import analyze
from repofeed.store.config import Config
from repofeed.store.dedup import signature
from repofeed.store.filters import text_stats
from repofeed.store.secrets import redact
from repofeed.store.tokenizer.sentencepiece import SentencePieceTokenizer

GOAL = 1.0  # quality stage time / tokenizing time, at most
STAGES = ("text_stats", "redact", "signature", "analyze")
ALL_ROW = "all"


@dataclass
class Row:
    """Best seconds of every work over one language's texts."""

    language: str
    files: int
    mb: float
    seconds: dict[str, float]

    @property
    def quality(self) -> float:
        return sum(self.seconds[s] for s in STAGES)


def stage_works(files: Sequence[TipFile], timeout_ms: int) -> dict[str, Callable[[], None]]:
    """The four quality stages, each over every file's text, one call per text (``analyze``
    reads each text as its own language, as the ingest does)."""
    texts = [f.text for f in files]

    def parse_all() -> None:
        for f in files:
            analyze(f.text, f.language, timeout_ms=timeout_ms)

    return {"text_stats": each(text_stats, texts),
            "redact": each(redact, texts),
            "signature": each(signature, texts),
            "analyze": parse_all}


def batched(tok: SentencePieceTokenizer, texts: Sequence[str], threads: int
            ) -> Callable[[], None]:
    """``encode_batch`` the way the ingest calls it: about ``ENCODE_CHUNK_BYTES`` of text per
    call (``Encoder._encode_chunked``), on ``threads`` threads."""
    chunks: list[list[str]] = [[]]
    size = 0
    for text in texts:
        chunks[-1].append(text)
        size += len(text)
        if size >= ENCODE_CHUNK_BYTES:
            chunks.append([])
            size = 0

    def work() -> None:
        for chunk in chunks:
            if chunk:
                tok.encode_batch(chunk, threads=threads)

    return work


def measure(language: str, files: Sequence[TipFile], tok: SentencePieceTokenizer,
            threads: int, timeout_ms: int, repeat: int) -> Row:
    texts = [f.text for f in files]
    works = stage_works(files, timeout_ms)
    works["encode"] = each(tok.encode, texts)
    works["encode_batch"] = batched(tok, texts, threads)
    for work in works.values():  # warm: grammars loaded, permutations drawn, pages touched
        work()
    best = best_seconds(repeat, list(works.values()))
    return Row(language, len(texts), megabytes(texts), dict(zip(works, best)))


def total(rows: Sequence[Row]) -> Row:
    keys = rows[0].seconds
    return Row(ALL_ROW, sum(r.files for r in rows), sum(r.mb for r in rows),
               {k: sum(r.seconds[k] for r in rows) for k in keys})


def report(rows: Sequence[Row], threads: int) -> None:
    def line(r: Row) -> list[object]:
        s = r.seconds
        return [r.language, r.files, round(r.mb, 2),
                *(r.mb / s[k] for k in STAGES), r.mb / r.quality,
                r.mb / s["encode"], r.mb / s["encode_batch"],
                r.quality / s["encode"], r.quality / s["encode_batch"]]

    print(table(["language", "files", "MB", "text_stats", "redact", "signature", "analyze",
                 "quality", "encode", f"batch x{threads}", "q/encode", f"q/batch x{threads}"],
                [line(r) for r in rows]))
    print("\nMB/s of UTF-8 text; quality = the four stages' times summed; q/...: the quality "
          "stage's time over tokenizing's (goal <= 1.0)")
    overall = rows[-1]
    print(f"\nshare of the quality stage's time ({overall.language}): " + ", ".join(
        f"{k} {overall.seconds[k] / overall.quality:.0%}" for k in STAGES))
    for name, key in (("encode, one thread", "encode"),
                      (f"encode_batch, {threads} threads (the ingest's way)", "encode_batch")):
        ratio = overall.quality / overall.seconds[key]
        verdict = "met" if ratio <= GOAL else "NOT met"
        print(f"goal: quality stage <= {GOAL:g}x tokenizing ({name}): {ratio:.2f}x, {verdict}")
        if ratio > GOAL:
            worst = max(STAGES, key=lambda k: overall.seconds[k])
            rest = overall.quality - overall.seconds[worst]
            print(f"  the largest stage is {worst} ({overall.seconds[worst] / overall.quality:.0%}"
                  f" of it, {overall.seconds[worst] / overall.seconds[key]:.2f}x tokenizing "
                  f"alone); without it the rest is {rest / overall.seconds[key]:.2f}x")


def cpu_cost(files: Sequence[TipFile], tok: SentencePieceTokenizer, threads: int,
             timeout_ms: int, repeat: int) -> None:
    """What each side costs in CPU time (``time.process_time``, all threads), over every
    text: the goal compares costs, and ``encode_batch`` spends its speed-up on a second core."""
    texts = [f.text for f in files]
    stages = stage_works(files, timeout_ms)
    works = {"quality": lambda: [work() for work in stages.values()],
             "encode": each(tok.encode, texts),
             f"encode_batch x{threads}": batched(tok, texts, threads)}
    cpu = {name: float("inf") for name in works}
    for _ in range(repeat):
        for name, work in works.items():
            start = time.process_time()
            work()
            cpu[name] = min(cpu[name], time.process_time() - start)
    print("\nCPU seconds over every text (all threads, best of "
          f"{repeat}): " + ", ".join(f"{name} {seconds:.2f}" for name, seconds in cpu.items()))
    for name in list(works)[1:]:
        ratio = cpu["quality"] / cpu[name]
        print(f"goal by CPU cost: quality stage <= 1x {name}: {ratio:.2f}x, "
              f"{'met' if ratio <= GOAL else 'NOT met'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--vocab-size", type=int, default=8000)
    parser.add_argument("--threads", type=int, default=2,
                        help="encode_batch threads (the ingest's default is 2)")
    parser.add_argument("--min-files", type=int, default=5,
                        help="languages with fewer files are folded into 'other'")
    add_corpus_option(parser)
    add_scratch_options(parser)
    args = parser.parse_args()
    bundles = corpus_bundles(args.corpus, args.bundles)
    with workspace(args.workdir, args.keep) as scratch:
        files = corpus_tip_files(bundles, scratch)
    by_language: dict[str, list[TipFile]] = defaultdict(list)
    for f in files:
        by_language[f.language].append(f)
    groups: dict[str, list[TipFile]] = defaultdict(list)
    for language, found in by_language.items():
        groups[language if len(found) >= args.min_files else "other"].extend(found)
    texts = [f.text for f in files]
    tok, trained, seconds = train_sentencepiece(texts, args.vocab_size)
    timeout_ms = Config().parse_timeout_ms
    print(f"{len(files)} files, {megabytes(texts):.2f} MB at the tips of "
          f"{', '.join(b.stem for b in bundles)}; SentencePiece {trained.vocab_size} pieces "
          f"trained in {seconds:.1f} s; best of {args.repeat} round-robin rounds; "
          f"{os.cpu_count()} CPUs, load average {', '.join(f'{x:.1f}' for x in os.getloadavg())}"
          "\n")
    rows = [measure(language, groups[language], tok, args.threads, timeout_ms, args.repeat)
            for language in sorted(groups, key=lambda k: (k == "other", k))]
    rows.append(total(rows))
    report(rows, args.threads)
    cpu_cost(files, tok, args.threads, timeout_ms, args.repeat)
    print(f"\nload average after: {', '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
