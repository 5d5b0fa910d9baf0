"""Memory preflight: the estimate against the measured peak of real training steps.

For each setting (model size, batch, context, activation checkpointing) a fresh Python process
runs ``python -m repofeed.train.preflight --measure STEPS``: it creates the built-in GPT, runs
real AdamW steps (fp32 on CPU; fp16 autocast with a gradient scaler on CUDA) on random tokens,
and reports the peak memory growth from before the model was created, beside the estimate.
On CPU the peak is the resident set's high-water mark (VmHWM, reset through
/proc/self/clear_refs); on CUDA ``torch.cuda.max_memory_allocated``.

On CPU each setting runs twice: with glibc's default allocator, whose dynamic mmap threshold
keeps freed buffers of up to 32 MiB on the heap (the resident set then holds more than the live
tensors), and with ``MALLOC_MMAP_THRESHOLD_=131072``, which returns every large buffer to the
system when it is freed, so that the resident set follows the live tensors, as CUDA's
statistics do.

Goal (issue 8): the estimate within 25% of the measured peak.

    python benchmarks/preflight_memory.py [--steps 3] [--device cpu] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

from common import table

GOAL = 0.25
# (label, arguments of python -m repofeed.train.preflight)
SETTINGS = [
    ("tiny b4 t512", "--size tiny --batch 4 --context 512"),
    ("tiny b8 t1024", "--size tiny --batch 8 --context 1024"),
    ("tiny b8 t1024 ckpt", "--size tiny --batch 8 --context 1024 --checkpointing"),
    ("mini b4 t1024", "--size mini --batch 4 --context 1024"),
    ("mini b4 t1024 ckpt", "--size mini --batch 4 --context 1024 --checkpointing"),
    ("small b2 t1024", "--size small --batch 2 --context 1024"),
    ("8×128 V256 b16 t512", "--layers 8 --heads 4 --d-model 128 --vocab 256 --batch 16 "
                            "--context 512"),
    ("8×128 V256 b16 t512 ckpt", "--layers 8 --heads 4 --d-model 128 --vocab 256 --batch 16 "
                                 "--context 512 --checkpointing"),
]
QUICK = SETTINGS[:1] + SETTINGS[6:7]
ALLOCATORS = {"default": {}, "mmap 128K": {"MALLOC_MMAP_THRESHOLD_": "131072"}}


def measure(args: str, steps: int, device: str, env: dict[str, str]) -> dict:
    command = [sys.executable, "-m", "repofeed.train.preflight", *args.split(),
               "--device", device, "--measure", str(steps), "--json"]
    done = subprocess.run(command, capture_output=True, text=True, check=True,
                          env=os.environ | env)
    return json.loads(done.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--quick", action="store_true", help="two settings only")
    args = parser.parse_args()
    allocators = ALLOCATORS if args.device == "cpu" else {"cuda": {}}
    rows, ratios = [], []
    for label, options in QUICK if args.quick else SETTINGS:
        for allocator, env in allocators.items():
            r = measure(options, args.steps, args.device, env)
            ratio = r["measured"] / r["measurable"]
            ratios.append(ratio)
            mib = 2**20
            rows.append([label, allocator, f"{r['params'] / 1e6:.1f}M",
                         round(r["activations"] / mib), round(r["logits"] / mib),
                         round(r["measurable"] / mib), round(r["measured"] / mib),
                         f"{ratio:.2f}", "yes" if abs(ratio - 1) <= GOAL else "no"])
            print(" | ".join(map(str, rows[-1])), file=sys.stderr, flush=True)
    print(table(["setting", "allocator", "params", "activations MiB", "logits MiB",
                 "estimate MiB", "measured MiB", "measured/estimate", "within 25%"], rows))
    print(f"\nmeasured/estimate from {min(ratios):.2f} to {max(ratios):.2f} "
          f"(goal: within {GOAL:.0%})")


if __name__ == "__main__":
    main()
