"""Secret redaction throughput against SentencePiece tokenizing, on real code.

Every text file at the tip of each corpus history (``../shared/corpus/*.bundle``) is read once,
as the ingest reads it (``common.tip_files``); then, in one process on one thread, ``redact``
runs over all of them, and a SentencePiece model trained on the same texts the way the store
trains one (``common.train_sentencepiece``) encodes them. Best of ``--repeat`` rounds each,
run round-robin. The goal (issue 9): the whole quality stage costs at
most as much as tokenizing, so redaction alone must be well under it (ratio > 1 is good:
redaction is that many times faster than tokenizing).

Also printed: what redaction found in these repositories (kinds and counts), which should be
nothing or test fixtures: every hit in ordinary code is a false positive to look at
(``--show`` prints them).

With ``--backfill``, also a whole backfill of each history with redaction on and off
(``secrets.ENABLED``), alternated, best of ``--repeat``: what redaction costs the ingest,
where an edit is scanned only around the lines it wrote (``edit_is_clean``).

    python benchmarks/bench_secrets.py [--corpus DIR] [--bundles a,b] [--repeat 3] [--show]
                                       [--backfill]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from common import (
    add_corpus_option,
    add_scratch_options,
    best_seconds,
    clone_bundle,
    corpus_bundles,
    each,
    megabytes,
    table,
    tip_files,
    train_sentencepiece,
    workspace,
)

from repofeed.daemon.ingest import backfill
from repofeed.daemon.init import init_store
from repofeed.store import secrets
from repofeed.store.secrets import find_secrets, redact


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_corpus_option(parser)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--vocab-size", type=int, default=8000)
    parser.add_argument("--show", action="store_true", help="print every hit")
    parser.add_argument("--backfill", action="store_true",
                        help="also time backfills with redaction on and off")
    add_scratch_options(parser)
    args = parser.parse_args()
    bundles = corpus_bundles(args.corpus, args.bundles)
    rows = []
    with workspace(args.workdir, args.keep) as scratch:
        for bundle in bundles:
            files = tip_files(clone_bundle(bundle, scratch))
            texts = [f.text for f in files]
            mb = megabytes(texts)
            tok, _trained, _seconds = train_sentencepiece(texts, args.vocab_size)
            t_redact, t_tok = best_seconds(args.repeat, [each(redact, texts),
                                                         each(tok.encode, texts)])
            found: dict[str, int] = {}
            for f in files:
                for start, end, kind in find_secrets(f.text):
                    found[kind] = found.get(kind, 0) + 1
                    if args.show:
                        print(f"{bundle.stem}:{f.path}: {kind}: {f.text[start:end][:60]!r}")
            hits = ", ".join(f"{k} {n}" for k, n in sorted(found.items())) or "none"
            rows.append([bundle.stem, len(texts), round(mb, 2), round(mb / t_redact, 1),
                         round(mb / t_tok, 1), round(t_tok / t_redact, 1), hits])
    print(table(["history", "files", "MB", "redact MB/s", "tokenize MB/s", "ratio", "found"],
                rows))
    print("\nratio: tokenizing time / redaction time, same texts, same process, one thread")
    if args.backfill:
        with workspace(args.workdir, args.keep) as scratch:
            print()
            print(table(["history", "commits", "backfill s (off)", "backfill s (on)", "cost"],
                        [backfill_row(b, scratch, args.repeat) for b in bundles]))


def backfill_row(bundle: Path, scratch: Path, repeat: int) -> list[object]:
    """Backfill seconds with redaction off and on (best of ``repeat``, alternated)."""
    clone = clone_bundle(bundle, scratch)
    best = {False: float("inf"), True: float("inf")}
    commits = 0
    for n in range(repeat):
        for enabled in (False, True):
            secrets.ENABLED = enabled
            store = scratch / f"{bundle.stem}-{n}-{enabled}"
            init_store(clone, store=store, register=False)
            start = time.perf_counter()
            commits = backfill(clone, store=store).commits
            best[enabled] = min(best[enabled], time.perf_counter() - start)
    secrets.ENABLED = True
    return [bundle.stem, commits, round(best[False], 2), round(best[True], 2),
            f"{(best[True] / best[False] - 1) * 100:+.0f}%"]


if __name__ == "__main__":
    main()
