"""Random window access: ``WindowDataset`` against a numpy memmap of the same tokens.

The baseline is what Megatron-LM and nanoGPT do: every snapshot document's tokens written,
concatenated, to one flat ``.bin`` in the store's token dtype, read through ``np.memmap``,
with a per-window index (document offset in the file, window offset in the document, length)
built from the same windows the dataset serves. Both produce the same item: a dict of 1-D
``torch.long`` tensors ``input_ids``, ``attention_mask``, ``labels``, padded to
``max_tokens`` for short windows (checked on a sample before timing).

Measured, in one process on one core: windows/s for random single-index access
(``ds[i]``) and for batches of 32 through ``__getitems__`` (what a ``DataLoader`` with
automatic batching calls), best of ``--repeat`` rounds, with both readers warmed first.

Goal (issue 2): WindowDataset at least 0.7x the memmap baseline and at least 50,000
windows/s.

    python benchmarks/window_access.py [--accesses 50000] [--repo PATH]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
from pathlib import Path

import numpy as np
import torch
from common import Timer, add_scratch_options, table, workspace
from synthetic_repo import make_repo

from repofeed.daemon.ingest import backfill
from repofeed.daemon.init import init_store
from repofeed.store import WindowDataset, open_store
from repofeed.store.datasets import pad_item

GOAL_RATIO = 0.7
GOAL_RATE = 50_000
MIN_WINDOWS = 5_000


def window_item(ids: np.ndarray, length: int, pad_id: int) -> dict[str, torch.Tensor]:
    """The dataset's item from a window's int64 tokens: padded, masked, labels -100 on pads
    (the datasets' own item maker, so both readers hand out the same thing)."""
    return pad_item(ids, None, length, pad_id)


class MemmapWindows:
    """The baseline: one flat token file and a (doc offset, window offset, length) index."""

    def __init__(self, bin_path: Path, dtype: str, doc_offset: list[int], win_offset: list[int],
                 lengths: list[int], max_tokens: int, pad_id: int):
        self.tokens = np.memmap(bin_path, dtype=dtype, mode="r")
        self.doc_offset, self.win_offset, self.lengths = doc_offset, win_offset, lengths
        self.max_tokens, self.pad_id = max_tokens, pad_id

    @classmethod
    def build(cls, repo: Path, bin_path: Path, max_tokens: int, overlap: int) -> MemmapWindows:
        """Write the snapshot documents' tokens to ``bin_path`` and index the same windows."""
        offsets: dict[int, int] = {}   # token array id -> offset in the file
        doc_offset, win_offset, lengths = [], [], []
        with open_store(repo) as store, open(bin_path, "wb") as out:
            dtype, pad_id, written = store.dtype, store.tokenizer.pad_id, 0
            for w in store.windows(max_tokens, overlap):
                if w["array"] not in offsets:
                    tokens = store.tokens(w["array"])
                    out.write(tokens.astype(dtype).tobytes())
                    offsets[w["array"]] = written
                    written += len(tokens)
                doc_offset.append(offsets[w["array"]])
                win_offset.append(w["start"])
                lengths.append(w["end"] - w["start"])
        return cls(bin_path, dtype, doc_offset, win_offset, lengths, max_tokens, pad_id)

    def __len__(self) -> int:
        return len(self.lengths)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        start = self.doc_offset[index] + self.win_offset[index]
        ids = self.tokens[start:start + self.lengths[index]].astype(np.int64)
        return window_item(ids, self.max_tokens, self.pad_id)

    def __getitems__(self, indices: list[int]) -> list[dict[str, torch.Tensor]]:
        return [self[i] for i in indices]


def make_store(work: Path, files: int, seed: int) -> Path:
    """A one-commit generated repository, initialised and backfilled."""
    repo = make_repo(work / "windows-repo", commits=1, files=files, seed=seed)
    init_store(repo)
    backfill(repo)
    return repo


def check_same(ds: WindowDataset, mm: MemmapWindows, indices: list[int]) -> None:
    if len(ds) != len(mm):
        raise SystemExit(f"window counts differ: dataset {len(ds)}, memmap {len(mm)}")
    for i in indices:
        a, b = ds[i], mm[i]
        for key in ("input_ids", "attention_mask", "labels"):
            if a[key].dtype != torch.long or not torch.equal(a[key], b[key]):
                raise SystemExit(f"window {i}: {key} differs between dataset and memmap")


def rate_single(reader, indices: list[int]) -> float:
    with Timer() as t:
        for i in indices:
            reader[i]
    return len(indices) / t.seconds


def rate_batched(reader, batches: list[list[int]]) -> float:
    with Timer() as t:
        for batch in batches:
            reader.__getitems__(batch)
    return sum(len(b) for b in batches) / t.seconds


def measure(ds: WindowDataset, mm: MemmapWindows, indices: list[int], batch: int,
            repeat: int) -> dict[str, tuple[float, float]]:
    """Best windows/s over ``repeat`` rounds, per mode: (dataset, memmap)."""
    batches = [indices[i:i + batch] for i in range(0, len(indices), batch)]
    modes = {"random single index": (rate_single, indices),
             f"__getitems__, batches of {batch}": (rate_batched, batches)}
    best: dict[str, list[float]] = {m: [0.0, 0.0] for m in modes}
    for round_ in range(repeat):
        for mode, (fn, work) in modes.items():
            readers = (ds, mm) if round_ % 2 == 0 else (mm, ds)  # alternate who goes first
            for reader in readers:
                slot = 0 if reader is ds else 1
                best[mode][slot] = max(best[mode][slot], fn(reader, work))
    return {m: (r[0], r[1]) for m, r in best.items()}


def print_profile(ds: WindowDataset, indices: list[int], top: int) -> None:
    profiler = cProfile.Profile()
    profiler.enable()
    for i in indices:
        ds[i]
    profiler.disable()
    buf = io.StringIO()
    pstats.Stats(profiler, stream=buf).strip_dirs().sort_stats("tottime").print_stats(top)
    body = buf.getvalue()
    print(f"\n-- WindowDataset[i] profile, {len(indices):,} accesses, top {top} by tottime --")
    print(body[body.find("   ncalls"):].rstrip())


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Random window access of WindowDataset against a numpy memmap.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--repo", type=Path, default=None,
                        help="an initialised and backfilled repository to read (default: "
                             "generate one)")
    parser.add_argument("--files", type=int, default=800,
                        help="files in the generated repository (800 give ~7k windows)")
    parser.add_argument("--accesses", type=int, default=50_000, help="random indices per run")
    parser.add_argument("--batch", type=int, default=32, help="indices per __getitems__ call")
    parser.add_argument("--repeat", type=int, default=3, help="rounds; best is kept")
    parser.add_argument("--max-tokens", type=int, default=None, help="default: the store's")
    parser.add_argument("--overlap", type=int, default=None, help="default: the store's")
    parser.add_argument("--seed", type=int, default=1, help="generator and index seed")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--profile", type=int, nargs="?", const=20, default=0, metavar="TOP",
                        help="also profile WindowDataset[i] and print its TOP functions")
    add_scratch_options(parser)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    with workspace(args.workdir, args.keep) as work:
        if args.repo is None:
            with Timer() as t:
                repo = make_store(work, args.files, args.seed)
            print(f"generated, initialised and backfilled {args.files} files in "
                  f"{t.seconds:.1f} s")
        else:
            repo = args.repo
        ds = WindowDataset(repo, max_tokens=args.max_tokens, overlap=args.overlap)
        mm = MemmapWindows.build(repo, work / "tokens.bin", ds.max_tokens, ds.overlap)
        short = sum(n < ds.max_tokens for n in mm.lengths)
        print(f"{len(ds):,} windows of {ds.max_tokens} tokens, overlap {ds.overlap} "
              f"({short:,} short, padded); memmap {mm.tokens.nbytes / 1e6:,.1f} MB "
              f"({mm.tokens.dtype})")
        if len(ds) < MIN_WINDOWS:
            print(f"warning: fewer than {MIN_WINDOWS:,} windows: generate more --files or "
                  f"use a bigger --repo")
        rng = np.random.default_rng(args.seed)
        check_same(ds, mm, rng.integers(0, len(ds), 2_000).tolist() + [0, len(ds) - 1])
        indices = rng.integers(0, len(ds), args.accesses).tolist()
        warm = indices[: min(len(indices), 5_000)]
        rate_single(ds, warm), rate_single(mm, warm)
        results = measure(ds, mm, indices, args.batch, args.repeat)
        rows = []
        for mode, (ours, base) in results.items():
            ratio = ours / base
            met = ratio >= GOAL_RATIO and ours >= GOAL_RATE
            rows.append([mode, round(ours), round(base), f"{ratio:.2f}x",
                         "met" if met else "NOT met"])
        print(f"\n{args.accesses:,} random accesses, best of {args.repeat}, one process, "
              f"{torch.get_num_threads()} torch thread(s)")
        print(table(["access", "WindowDataset windows/s", "memmap windows/s", "ratio",
                     f"goal >= {GOAL_RATIO}x and >= {GOAL_RATE:,}/s"], rows))
        if args.profile:
            print_profile(ds, indices[:20_000], args.profile)
        ds.close()


if __name__ == "__main__":
    main()
