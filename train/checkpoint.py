"""Checkpoints of a training run: everything an exact resume needs, written atomically.

A run directory holds ``checkpoint/`` (the latest one) and ``metrics.jsonl`` (the log). A
checkpoint is two files:

- ``state.pt`` — model weights (for LoRA only the adapter, which is all that trains),
  optimizer, gradient scaler, scheduler, the RNG states (Python, numpy, torch, CUDA), the
  training stream's state, and the step and token counters;
- ``info.json`` — what the checkpoint is, readable without torch: the model (a built-in size
  and its configuration, or a Hugging Face directory and LoRA rank), the store and its
  tokenizer id and vocabulary size, the context, the options of the run, and the temporal cut
  when the store is pinned at one (``repofeed eval`` reads it from here).

It is written to ``checkpoint.tmp/`` and swapped in by renames, so a crash (``kill -9``, a
full disk) at any moment leaves the previous checkpoint whole: ``latest`` finds it under
``checkpoint/`` or, between the two renames, under ``checkpoint.old/``.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from repofeed.store.errors import TrainError

CURRENT, TMP, OLD = "checkpoint", "checkpoint.tmp", "checkpoint.old"
STATE, INFO = "state.pt", "info.json"


def rng_state(cuda: bool = False) -> dict[str, Any]:
    state = {"python": random.getstate(), "numpy": np.random.get_state(),
             "torch": torch.get_rng_state()}
    if cuda:
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save(run_dir: Path, state: dict[str, Any], info: dict[str, Any]) -> Path:
    """Write a checkpoint and make it the latest; returns its directory."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    tmp, current, old = run_dir / TMP, run_dir / CURRENT, run_dir / OLD
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        with open(tmp / STATE, "wb") as fh:
            torch.save(state, fh)
            fh.flush()
            os.fsync(fh.fileno())
        with open(tmp / INFO, "w") as fh:
            json.dump(info, fh, indent=2, sort_keys=True)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        _fsync_dir(tmp)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise TrainError(f"cannot write a checkpoint in {run_dir} ({exc.strerror or exc}); "
                         f"the previous checkpoint is kept.") from exc
    if current.exists():
        if old.exists():
            shutil.rmtree(old)
        current.rename(old)
    tmp.rename(current)
    _fsync_dir(run_dir)
    if old.exists():
        shutil.rmtree(old)
    return current


def latest(run_dir: Path) -> Path | None:
    """The newest complete checkpoint of a run directory, or None."""
    run_dir = Path(run_dir)
    for name in (CURRENT, OLD):
        candidate = run_dir / name
        if (candidate / STATE).is_file() and (candidate / INFO).is_file():
            return candidate
    return None


def locate(path: str | Path) -> Path:
    """A checkpoint directory, given it or the run directory that holds it."""
    path = Path(path)
    if (path / INFO).is_file() and (path / STATE).is_file():
        return path
    found = latest(path) if path.is_dir() else None
    if found is None:
        raise TrainError(f"no checkpoint at {path}: pass a run directory that `repofeed train` "
                         f"wrote (it holds checkpoint/info.json and checkpoint/state.pt).")
    return found


def read_info(path: str | Path) -> dict[str, Any]:
    directory = locate(path)
    try:
        return json.loads((directory / INFO).read_text())
    except (OSError, ValueError) as exc:
        raise TrainError(f"the checkpoint at {directory} is unreadable ({exc}); train again "
                         f"or resume from an earlier run directory.") from exc


def read_state(path: str | Path) -> dict[str, Any]:
    """The checkpoint's state, on the CPU: the RNG states must stay CPU byte tensors, and the
    model's and optimizer's ``load_state_dict`` move the rest to where the model is."""
    directory = locate(path)
    try:
        # the RNG and stream states are plain Python and numpy objects, not only tensors
        return torch.load(directory / STATE, map_location="cpu", weights_only=False)
    except (OSError, RuntimeError, EOFError, ValueError) as exc:
        raise TrainError(f"the checkpoint at {directory} is unreadable ({exc}); train again "
                         f"or resume from an earlier run directory.") from exc


def load_model(path: str | Path, device: str | torch.device = "cpu"
               ) -> tuple[torch.nn.Module, dict[str, Any]]:
    """The trained model of a checkpoint, in eval mode on ``device``, with its info."""
    from .models import build_model, load_trained_state

    info = read_info(path)
    state = read_state(path)
    spec = info["model"]
    model = build_model(spec, vocab_size=info["vocab_size"])
    load_trained_state(model, spec, state["model"])
    model.to(device)
    model.eval()
    return model, info
