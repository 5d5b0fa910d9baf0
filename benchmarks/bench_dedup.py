"""Near-duplicate index cost: MinHash signatures and LSH inserts against SentencePiece.

Texts: the distinct text blobs of the corpus histories (``../shared/corpus/*.bundle``, each
cloned into scratch space), newest first, up to ``--mb`` megabytes per bundle: what an ingest
of those histories would see. A SentencePiece model is trained on them the way the store
trains one (``common.train_sentencepiece``).

Measured, in one process on one thread, best of ``--repeat`` rounds that run the three
round-robin:

* ``tokenize``: SentencePiece encoding of every text (the baseline: what ingest does anyway);
* ``signature``: ``dedup.signature`` of every text (shingles + MinHash, 256 permutations);
* ``signature + insert``: every text added to a real ``NearDupIndex`` in a fresh LMDB store
  environment, one write transaction per bundle (signature, band lookups, verification,
  cluster merges, the writes).

Then every content is removed again, one write transaction each, largest clusters first: a
removal re-splits what is left of its cluster, the index's costly operation (printed as
removals per second, with the largest cluster's size).

Then the band layouts: every pair of texts compared, how many of the pairs at estimated
similarity 0.7 or more share a bucket under 32 x 8 (the index's), 25 x 10 (datasketch's
optimum for 0.7 and 256, BigCode's) and 14 x 8 (datatrove's).

Last, the worst case: ``--big-cluster`` near copies of one corpus file (one line changed in
each) make one cluster; inserting them, removing a copy alone (the whole cluster is re-split)
and removing the rest at once are timed.

The scratch environments are opened without fsync (``sync=False``): what is timed is the
index's work, not the disk's (a store pays one fsync per write transaction whatever it holds).

The ratio printed is the dedup stage's throughput over tokenizing's: above 1, near-duplicate
indexing costs less than tokenizing the same text (issue 9's goal for the whole quality stage
is at most the cost of tokenizing). Also printed: how many contents fall in clusters of two
or more, per bundle.

    python benchmarks/bench_dedup.py [--mb 8] [--repeat 3] [--corpus DIR] [--bundles fd,attrs]
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import lmdb  # noqa: E402
import numpy as np  # noqa: E402
import pygit2  # noqa: E402
from common import (  # noqa: E402
    MAX_FILE_BYTES,
    Timer,
    add_corpus_option,
    add_scratch_options,
    best_seconds,
    clone_bundle,
    corpus_bundles,
    megabytes,
    table,
    train_sentencepiece,
    workspace,
)

from repofeed.store.dedup import NearDupIndex, signature  # noqa: E402
from repofeed.store.schema import ALL_DBS, DB_NEAR_CLUSTERS, content_key  # noqa: E402


def history_texts(repo: Path, budget: int) -> list[str]:
    """Distinct UTF-8 text blobs of the history, newest commits first, up to ``budget`` bytes."""
    r = pygit2.Repository(str(repo))
    seen: set[pygit2.Oid] = set()
    out: list[str] = []
    total = 0
    for commit in r.walk(r.head.target, pygit2.enums.SortMode.TIME):
        stack = [commit.tree]
        while stack:
            for entry in stack.pop():
                if entry.id in seen:
                    continue
                seen.add(entry.id)
                if entry.type_str == "tree":
                    stack.append(r[entry.id])
                    continue
                if entry.type_str != "blob":
                    continue
                data = r[entry.id].data
                if len(data) > MAX_FILE_BYTES or b"\0" in data:
                    continue
                try:
                    text = data.decode("utf-8")
                except UnicodeDecodeError:
                    continue
                out.append(text)
                total += len(data)
                if total >= budget:
                    return out
    return out


def index_all(path: Path, corpora: dict[str, list[str]]) -> dict[str, tuple[int, int]]:
    """Insert each bundle's texts into a fresh index of its own, in one write transaction;
    per bundle (contents, contents in clusters of two or more)."""
    out = {}
    for name, texts in corpora.items():
        (path / name).mkdir(parents=True)
        env = lmdb.open(str(path / name), map_size=1 << 34, max_dbs=32, sync=False)
        dbs = {db: env.open_db(db) for db in ALL_DBS}
        index = NearDupIndex(lambda dbs=dbs: dbs)
        by_hash = {content_key(t): t for t in texts}
        with env.begin(write=True) as txn:
            index.update(txn, dict.fromkeys(by_hash, 1), by_hash.__getitem__)
        sizes: dict[bytes, int] = {}
        with env.begin() as txn:
            for key in txn.cursor(db=dbs[DB_NEAR_CLUSTERS]).iternext(values=False):
                sizes[bytes(key[:16])] = sizes.get(bytes(key[:16]), 0) + 1
        env.close()
        out[name] = (len(by_hash), sum(n for n in sizes.values() if n > 1))
    return out


def remove_each(path: Path, corpora: dict[str, list[str]]) -> tuple[int, float, int]:
    """Remove every content of the indexes ``index_all`` built at ``path``, one write
    transaction each, largest clusters first (each removal re-splits what is left of its
    cluster: the costly case); (removals, seconds, largest cluster)."""
    removals, seconds, largest = 0, 0.0, 0
    for name in corpora:
        env = lmdb.open(str(path / name), map_size=1 << 34, max_dbs=32, sync=False)
        dbs = {db: env.open_db(db) for db in ALL_DBS}
        index = NearDupIndex(lambda dbs=dbs: dbs)
        members: dict[bytes, list[bytes]] = {}
        with env.begin() as txn:
            for key in txn.cursor(db=dbs[DB_NEAR_CLUSTERS]).iternext(values=False):
                members.setdefault(bytes(key[:16]), []).append(bytes(key[16:]))
        largest = max(largest, *map(len, members.values()))
        order = [h for group in sorted(members.values(), key=len, reverse=True) for h in group]
        with Timer() as t:
            for content in order:
                with env.begin(write=True) as txn:
                    index.remove(txn, content)
        env.close()
        removals, seconds = removals + len(order), seconds + t.seconds
    return removals, seconds, largest


def big_cluster(path: Path, base: str, copies: int) -> tuple[float, float, float]:
    """The index's worst case: ``copies`` near copies of ``base`` (each with one line
    changed), one cluster. Seconds to insert them all in one transaction, per removal of one
    copy in a transaction of its own (each re-splits the cluster), and to remove the rest in
    one transaction."""
    lines = base.split("\n")
    texts = []
    for n in range(copies):
        changed = list(lines)
        changed[n % len(lines)] = f"// near copy {n}"
        texts.append("\n".join(changed))
    by_hash = {content_key(t): t for t in texts}
    path.mkdir(parents=True)
    env = lmdb.open(str(path), map_size=1 << 34, max_dbs=32, sync=False)
    dbs = {db: env.open_db(db) for db in ALL_DBS}
    index = NearDupIndex(lambda: dbs)
    with Timer() as insert, env.begin(write=True) as txn:
        index.update(txn, dict.fromkeys(by_hash, 1), by_hash.__getitem__)
    order = sorted(by_hash)
    single = order[:20]
    with Timer() as one:
        for content in single:
            with env.begin(write=True) as txn:
                index.remove(txn, content)
    with Timer() as rest, env.begin(write=True) as txn:
        index.update(txn, dict.fromkeys(order[len(single):], -1), by_hash.__getitem__)
    env.close()
    return insert.seconds, one.seconds / len(single), rest.seconds


def recall(texts: list[str], layouts: tuple[tuple[int, int], ...] = ((32, 8), (25, 10), (14, 8))
           ) -> list[tuple[str, float, float, int]]:
    """How many of the pairs at estimated similarity >= 0.7 (all pairs compared) each band
    layout makes candidates: (layout, share of those pairs, share of those at 0.70-0.75,
    candidates below 0.7, which verification turns away)."""
    sigs = np.stack([s for s in map(signature, texts) if s is not None])
    n = len(sigs)
    upper = np.triu_indices(n, 1)
    sim = np.stack([(sigs == sigs[i]).mean(axis=1) for i in range(n)])[upper]
    similar, edge = sim >= 0.7, (sim >= 0.7) & (sim < 0.75)
    rows_out = []
    for bands, rows in layouts:
        keys = sigs[:, :bands * rows].reshape(n, bands, rows)
        shared = np.zeros((n, n), dtype=bool)
        for band in range(bands):
            shared |= (keys[:, None, band, :] == keys[None, :, band, :]).all(axis=2)
        found = shared[upper]
        rows_out.append((f"{bands} x {rows}", (found & similar).sum() / similar.sum(),
                         (found & edge).sum() / max(1, edge.sum()), int((found & ~similar).sum())))
    print(f"\n{n:,} signed texts, {similar.sum():,} pairs at >= 0.7 ({edge.sum():,} at 0.70-0.75)")
    return rows_out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=float, default=8.0, help="megabytes of text per bundle")
    parser.add_argument("--repeat", type=int, default=3)
    add_corpus_option(parser)
    parser.add_argument("--vocab-size", type=int, default=8000)
    parser.add_argument("--big-cluster", type=int, default=1000,
                        help="near copies in the worst-case cluster")
    add_scratch_options(parser)
    args = parser.parse_args()
    bundles = corpus_bundles(args.corpus, args.bundles)
    with workspace(args.workdir, args.keep) as scratch:
        corpora: dict[str, list[str]] = {}
        for bundle in bundles:
            corpora[bundle.stem] = history_texts(clone_bundle(bundle, scratch),
                                                 int(args.mb * 1e6))
        texts = [t for ts in corpora.values() for t in ts]
        size = megabytes(texts)
        print(f"{len(texts):,} distinct texts, {size:.1f} MB, from "
              f"{', '.join(corpora)}")
        sp, _trained, seconds = train_sentencepiece(texts, args.vocab_size)
        print(f"SentencePiece model ({sp.vocab_size:,} pieces) trained in {seconds:.1f} s")
        signature(texts[0])  # the permutations are drawn once per process

        runs = iter(range(args.repeat))
        counts: dict[str, tuple[int, int]] = {}

        def insert() -> None:
            counts.update(index_all(scratch / f"index{next(runs)}", corpora))

        tokenize, sign, indexed = best_seconds(args.repeat, [lambda: [sp.encode(t) for t in texts],
                                                     lambda: [signature(t) for t in texts],
                                                     insert])
        rows = [("tokenize (SentencePiece)", tokenize, size / tokenize, 1.0),
                ("signature", sign, size / sign, tokenize / sign),
                ("signature + insert", indexed, size / indexed, tokenize / indexed)]
        print()
        print(table(["one thread", "seconds", "MB/s", "x tokenize"], rows))
        print()
        print(table(["bundle", "contents", "in clusters of 2+", "share"],
                    [(name, n, grouped, f"{grouped / n:.0%}")
                     for name, (n, grouped) in counts.items()]))
        removals, seconds, largest = remove_each(scratch / f"index{args.repeat - 1}", corpora)
        print(f"\nremoving every content, one write transaction each: {removals:,} in "
              f"{seconds:.2f} s ({removals / seconds:,.0f}/s; largest cluster {largest:,})")
        base = max((t for t in texts if t.count("\n") < 2000), key=lambda t: t.count("\n"))
        inserted, each, rest = big_cluster(scratch / "big", base, args.big_cluster)
        print(f"one cluster of {args.big_cluster:,} near copies of a {base.count(chr(10)):,}-line "
              f"file: inserted in {inserted:.2f} s ({args.big_cluster / inserted:,.0f}/s); a "
              f"copy removed alone {each * 1000:.0f} ms; the rest removed at once "
              f"{rest:.2f} s")
        print(table(["bands x rows", "pairs >= 0.7 found", "at 0.70-0.75", "false candidates"],
                    [(name, f"{a:.1%}", f"{b:.1%}", c) for name, a, b, c in recall(texts)]))
        print(f"\nratio (signature + insert over tokenize, throughput): "
              f"{tokenize / indexed:.2f}")


if __name__ == "__main__":
    main()
