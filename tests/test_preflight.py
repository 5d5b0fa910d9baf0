"""Memory preflight: the estimate's structure, its advice, its activations counted against
what autograd really saves, and one honest measurement in a fresh process."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from repofeed.store.errors import ConfigError
from repofeed.train.model import GPT, GPTConfig, size_config
from repofeed.train.preflight import (
    GiB,
    MiB,
    Settings,
    estimate,
    estimate_gpt,
    estimate_hf,
    fmt_bytes,
    gpt_architecture,
    parse_bytes,
)

transformers = pytest.importorskip("transformers")


def tiny(**options) -> GPTConfig:
    return size_config("tiny", 16_384, 1024, **options)


def test_more_batch_or_context_needs_more_memory_and_checkpointing_less():
    base = estimate_gpt(tiny(), batch=4, context=512)
    assert estimate_gpt(tiny(), batch=8, context=512).total > base.total
    assert estimate_gpt(tiny(), batch=4, context=1024).total > base.total
    ckpt = estimate_gpt(tiny(), batch=4, context=512, checkpointing=True)
    assert ckpt.activations < base.activations
    assert ckpt.weights == base.weights and ckpt.optimizer == base.optimizer
    # at 16k vocabulary the logits are the largest activation of the tiny model
    assert base.logits > base.activations
    assert base.total == sum(base.terms().values())


def test_fp16_keeps_fp32_master_weights_and_halves_activations():
    fp32 = estimate_gpt(tiny(), batch=4, context=512, precision="fp32")
    fp16 = estimate_gpt(tiny(), batch=4, context=512, precision="fp16")
    params = fp32.params
    assert fp32.weights == 4 * params and fp16.weights == 6 * params
    assert fp32.gradients == fp16.gradients == 4 * params
    assert fp32.optimizer == fp16.optimizer == 8 * params
    assert fp16.activations < fp32.activations
    with pytest.raises(ConfigError, match="precision"):
        Settings(batch=1, context=8, precision="bf16")


def test_lora_shrinks_gradients_and_optimizer_state():
    config = transformers.GPT2Config(n_layer=12, n_head=12, n_embd=768, vocab_size=16_384)
    full = estimate_hf(config, batch=4, context=1024, precision="fp16")
    lora = estimate_hf(config, batch=4, context=1024, precision="fp16", lora_rank=8)
    assert lora.trainable < full.trainable / 50
    assert lora.optimizer == 8 * lora.trainable < full.optimizer / 50
    assert lora.gradients < full.gradients / 50
    assert lora.params == full.params


def test_what_does_not_fit_gets_advice_whose_alternatives_fit():
    config = size_config("medium", 16_384, 1024)
    est = estimate_gpt(config, batch=16, precision="fp16", budget=6 * GiB)
    assert not est.fits and est.advice
    arch = gpt_architecture(config)
    for advice in est.advice:
        assert advice.fits
        again = estimate(arch, advice.settings, 6 * GiB)
        assert again.fits and again.total == advice.total
        assert advice.settings.effective_batch >= 16  # accumulation keeps the effective batch
    message = est.message()
    assert "does not fit the budget of 6.00 GiB" in message
    assert "--accumulate" in message and "GiB" in message
    # an HF model too large to fully fine-tune is told about LoRA
    big = transformers.GPT2Config(n_layer=24, n_head=16, n_embd=1024, vocab_size=32_000)
    hf = estimate_hf(big, batch=1, context=1024, precision="fp16")
    assert not hf.fits and any("--lora" in a.change for a in hf.advice)
    assert all(a.fits for a in hf.advice)


def test_memory_sizes_read_and_print_in_mib_and_gib():
    assert parse_bytes("6GiB") == 6 * GiB == parse_bytes("6 G")
    assert parse_bytes("800MiB") == 800 * MiB
    assert fmt_bytes(5.5 * GiB) == "5.50 GiB" and fmt_bytes(812 * MiB) == "812 MiB"
    with pytest.raises(ConfigError, match="6GiB"):
        parse_bytes("lots")


def test_activations_are_what_autograd_saves():
    """The estimate's activations, less its backward working set (one layer), plus the
    log-softmax the loss saves (counted under logits), are the bytes autograd saves."""
    config = GPTConfig(vocab_size=512, n_layer=3, n_head=4, d_model=64, context=128)
    tokens = 2 * 128
    layer = (estimate_gpt(GPTConfig(**(config.to_dict() | {"n_layer": 4})), batch=2).activations
             - estimate_gpt(config, batch=2).activations)
    for checkpointing in (False, True):
        torch.manual_seed(0)
        model = GPT(GPTConfig(**(config.to_dict() | {"checkpointing": checkpointing})))
        est = estimate_gpt(config, batch=2, checkpointing=checkpointing)
        expected = est.activations - layer + tokens * 512 * 4
        if checkpointing:  # and the one layer the estimate holds for the recompute
            expected -= layer
        assert saved_bytes(model, torch.randint(0, 512, (2, 128))) == pytest.approx(
            expected, rel=0.01)


def saved_bytes(model: GPT, x: torch.Tensor) -> int:
    """Bytes of the distinct tensors autograd saves in a forward pass, parameters aside."""
    params = {t.untyped_storage().data_ptr() for t in [*model.parameters(), *model.buffers()]}
    saved: dict[int, int] = {}

    def pack(t):
        storage = t.untyped_storage()
        if storage.data_ptr() not in params:
            saved[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(x, labels=x)
    return sum(saved.values())


def test_estimate_is_within_a_quarter_of_the_measured_peak():
    """Three real AdamW steps in a fresh process, peak RSS growth from before the model."""
    done = subprocess.run(
        [sys.executable, "-m", "repofeed.train.preflight", "--size", "tiny", "--batch", "4",
         "--context", "512", "--measure", "3", "--json"],
        capture_output=True, text=True, check=True, timeout=300)
    result = json.loads(done.stdout)
    assert 0.75 <= result["measured"] / result["measurable"] <= 1.25, result
