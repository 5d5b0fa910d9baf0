"""The data path's share of a training step: ``repofeed train`` reading the store against the
same model fed from tensors already in memory, in the same process.

Both runs are the real training loop (``Trainer``) with the same options, model, seed and
number of steps; only where batches come from differs. The baseline takes the first
``--steps`` batches the store-fed run would read, materialised as tensors before timing, so
both train on identical data. Throughput is token positions per second over the steps after
``--warmup`` (start-up, compilation and the first allocations left out), best of
``--repeat`` alternating rounds.

A small model makes the data path's share the largest it gets (the step itself is short), so
the tiny size is the honest worst case; larger sizes only shrink the share.

Both runs log the same losses (checked: the same batches, the same model). Goal (issue 8): the
store costs at most 5% (ratio ≥ 0.95).

    python benchmarks/train_data_path.py [--sizes tiny,small] [--steps 40] [--repo PATH]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from common import PROJECT, add_scratch_options, table, workspace

from repofeed.daemon.ingest import backfill
from repofeed.daemon.init import init_store
from repofeed.train.loop import UNTIL_STEPS, Trainer, TrainOptions, batches_from
from repofeed.train.stream import TrainStream

GOAL_RATIO = 0.95


def rate(run_dir: Path, warmup: int) -> float:
    """Token positions per second over the steps after ``warmup``."""
    records = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    first, last = records[warmup - 1], records[-1]
    return (last["tokens"] - first["tokens"]) / (last["elapsed"] - first["elapsed"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repo", type=Path, default=PROJECT,
                        help="repository whose history makes the store (default: this one)")
    parser.add_argument("--sizes", default="tiny", help="built-in model sizes, comma-separated")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--context", type=int, default=512)
    parser.add_argument("--repeat", type=int, default=2)
    add_scratch_options(parser)
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))

    with workspace(args.workdir, args.keep) as scratch:
        store = scratch / "store"
        init_store(args.repo, store=store, register=False)
        backfill(args.repo, store=store)
        rows = []
        overlap = args.context * 3 // 4          # the default's proportion (768 of 1,024)
        for size in args.sizes.split(","):
            def options(out: Path, size=size) -> TrainOptions:
                return TrainOptions(store=str(store), out=str(out), model=size, device="cpu",
                                    batch_size=args.batch_size, context=args.context,
                                    overlap=overlap,
                                    max_steps=args.steps, checkpoint_every=0,
                                    log_every=10 ** 9, preflight=False)

            # the stream the store-fed run reads: same windows, seed, epochs and batch blocks
            stream = TrainStream(store, max_tokens=args.context, overlap=overlap,
                                 epochs=UNTIL_STEPS, batch_size=args.batch_size)
            held = [b for _, (b, _s) in zip(range(args.steps),
                                            batches_from(stream, args.batch_size))]
            state = stream.state_dict()

            def from_memory(stream, batch_size, held=held, state=state):
                for batch in held:
                    yield batch, state

            best = {"store": 0.0, "memory": 0.0}
            for round_no in range(args.repeat):
                for name in ("store", "memory"):
                    out = scratch / f"{size}-{name}-{round_no}"
                    Trainer(options(out),
                            batch_source=from_memory if name == "memory" else None).run()
                    best[name] = max(best[name], rate(out, args.warmup))
            losses = {name: [json.loads(x)["loss"] for x in
                             (scratch / f"{size}-{name}-0" / "metrics.jsonl").read_text()
                             .splitlines()] for name in ("store", "memory")}
            if losses["store"] != losses["memory"]:
                raise SystemExit("the two runs did not train on the same batches")
            ratio = best["store"] / best["memory"]
            rows.append((size, best["store"], best["memory"], f"{ratio:.3f}",
                         "yes" if ratio >= GOAL_RATIO else "no"))
        print(table(["size", "store tok/s", "memory tok/s", "ratio", f"≥ {GOAL_RATIO}"], rows))


if __name__ == "__main__":
    main()
