"""One way to name a model, for the loop, checkpoints and ablations.

A model spec is a small dict that ``info.json`` records:

- ``{"kind": "gpt", "size": "tiny", "config": {...}}`` — the built-in GPT (``model.py``),
  trained from scratch; ``config`` is its full ``GPTConfig``;
- ``{"kind": "hf", "path": "/models/x", "lora": 8 | None}`` — a Hugging Face causal LM saved
  with ``save_pretrained`` (``hf.py``), fully fine-tuned or with LoRA adapters.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from repofeed.store.errors import TrainError


def model_spec(name: str, *, vocab_size: int, context: int, lora: int | None = None,
               checkpointing: bool = False) -> dict[str, Any]:
    """The spec for ``--model NAME``: a built-in size name, or a path to a model directory."""
    from .model import SIZES, size_config

    if name in SIZES:
        if lora:
            raise TrainError("--lora applies to Hugging Face models (--model PATH); the built-in "
                             "GPT trains from scratch, every parameter.")
        config = size_config(name, vocab_size, context, checkpointing=checkpointing)
        return {"kind": "gpt", "size": name, "config": config.to_dict()}
    path = Path(name).expanduser()
    if not path.exists():
        raise TrainError(f"--model {name}: neither a built-in size ({', '.join(SIZES)}) nor a "
                         f"model directory.")
    return {"kind": "hf", "path": str(path.resolve()), "lora": lora,
            "checkpointing": checkpointing}


def build_model(spec: dict[str, Any], *, vocab_size: int, tokenizer=None) -> torch.nn.Module:
    """A model from its spec, freshly initialised (GPT, from the torch RNG) or loaded (HF).

    A Hugging Face model is checked against the store's ``tokenizer`` when given (a new run):
    its tokenizer must be the store's, and its embeddings grow to ``vocab_size`` when the store
    gave sentinels ids after the tokenizer's vocabulary — before LoRA wraps it, so that a
    checkpoint's adapters load onto the same shapes.
    """
    if spec["kind"] == "gpt":
        from .model import GPT, GPTConfig

        return GPT(GPTConfig.from_dict(spec["config"]))
    if spec["kind"] == "hf":
        from .hf import load_hf_model

        return load_hf_model(spec["path"], lora_rank=spec.get("lora"), store_tokenizer=tokenizer,
                             vocab_size=vocab_size, new_ids_from=spec.get("new_ids_from"),
                             checkpointing=bool(spec.get("checkpointing")))
    raise TrainError(f"unknown model kind {spec['kind']!r} in a checkpoint: it was written by a "
                     f"newer repofeed.")


def trained_state(model: torch.nn.Module, spec: dict[str, Any]) -> dict[str, torch.Tensor]:
    """What a checkpoint keeps of the weights: all of them, or only LoRA's (the rest is the
    base model on disk, unchanged)."""
    state = model.state_dict()
    if spec["kind"] == "hf" and spec.get("lora"):
        trainable = {n for n, p in model.named_parameters() if p.requires_grad}
        return {k: v for k, v in state.items() if k in trainable}
    return state


def load_trained_state(model: torch.nn.Module, spec: dict[str, Any],
                       state: dict[str, torch.Tensor]) -> None:
    """Load what ``trained_state`` kept. For LoRA that is part of the model, so the load is not
    strict; but every weight that trains must be in it, and nothing else may be."""
    if not (spec["kind"] == "hf" and spec.get("lora")):
        model.load_state_dict(state)
        return
    result = model.load_state_dict(state, strict=False)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    missing = sorted(trainable - set(state))
    if result.unexpected_keys or missing:
        raise TrainError(
            f"the checkpoint's adapters do not fit this model ({len(missing)} trained weight(s) "
            f"missing, e.g. {missing[:2]}; {len(result.unexpected_keys)} unexpected, e.g. "
            f"{result.unexpected_keys[:2]}): it was written with other versions of peft or "
            f"transformers, or for another model.")
