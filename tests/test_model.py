"""The built-in GPT: shapes, the causal-LM loss convention, causality, checkpointing, seeds,
parameter counts, saving and loading, and that it learns."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from repofeed.store.errors import ConfigError
from repofeed.train.model import GPT, SIZES, GPTConfig, param_count, size_config

V = 97


def small_config(**options) -> GPTConfig:
    return GPTConfig(vocab_size=V, n_layer=2, n_head=2, d_model=32, context=64, **options)


def make(seed: int = 0, **options) -> GPT:
    torch.manual_seed(seed)
    return GPT(small_config(**options))


def ids(batch: int = 3, length: int = 20, seed: int = 1) -> torch.Tensor:
    return torch.randint(0, V, (batch, length), generator=torch.Generator().manual_seed(seed))


def test_forward_shapes_and_no_loss_without_labels():
    out = make()(ids(3, 20))
    assert out.logits.shape == (3, 20, V)
    assert out.logits.dtype == torch.float32
    assert out.loss is None


def test_loss_is_next_token_cross_entropy_ignoring_minus_100():
    model, x = make(), ids(2, 12)
    labels = x.clone()
    labels[0, 5:] = -100  # right padding of row 0
    labels[1, 3] = -100
    out = model(x, labels=labels)
    total, count = 0.0, 0
    for b in range(2):
        for t in range(11):  # position t predicts label t + 1
            if labels[b, t + 1] != -100:
                total += -F.log_softmax(out.logits[b, t], dim=-1)[labels[b, t + 1]].item()
                count += 1
    assert out.loss.item() == pytest.approx(total / count, rel=1e-5)


def test_a_later_token_never_changes_earlier_logits():
    model, x = make().eval(), ids(1, 16)
    changed = x.clone()
    changed[0, 10] = (changed[0, 10] + 1) % V
    before, after = model(x).logits, model(changed).logits
    assert torch.allclose(before[0, :10], after[0, :10], atol=1e-6)
    assert not torch.allclose(before[0, 10:], after[0, 10:], atol=1e-4)


def test_right_padding_mask_is_accepted_and_left_padding_refused():
    model, x = make(), ids(2, 8)
    mask = torch.ones_like(x)
    mask[1, 5:] = 0
    assert torch.equal(model(x, attention_mask=mask).logits, model(x).logits)
    mask[1, 0] = 0
    with pytest.raises(ConfigError, match="right padding"):
        model(x, attention_mask=mask)


def test_checkpointing_gives_the_same_loss_and_gradients():
    x = ids(2, 24)
    results = []
    for checkpointing in (False, True):
        model = make(checkpointing=checkpointing)
        loss = model(x, labels=x).loss
        loss.backward()
        results.append((loss.detach(), {n: p.grad for n, p in model.named_parameters()}))
    (loss_a, grads_a), (loss_b, grads_b) = results
    assert torch.allclose(loss_a, loss_b)
    assert grads_a.keys() == grads_b.keys()
    for name in grads_a:
        assert torch.allclose(grads_a[name], grads_b[name], atol=1e-6), name


def test_same_seed_same_model_other_seed_another():
    a, b, c = make(seed=3), make(seed=3), make(seed=4)
    x = ids()
    assert torch.equal(a(x).logits, b(x).logits)
    assert not torch.allclose(a(x).logits, c(x).logits)


def test_output_head_is_tied_and_residual_projections_are_scaled():
    model = GPT(size_config("tiny", 1000, 128))
    assert model.head.weight is model.embed.weight
    assert model.blocks[0].attn.qkv.weight.std().item() == pytest.approx(0.02, rel=0.05)
    # 0.02 / sqrt(2 × 4 layers)
    assert model.blocks[0].mlp.proj.weight.std().item() == pytest.approx(0.00707, rel=0.05)


@pytest.mark.parametrize("size", list(SIZES))
def test_param_count_is_the_real_modules_count(size):
    vocab = 16_384 if size in ("tiny", "mini") else 1_000  # the large ones: keep the test light
    with torch.device("meta"):  # no memory, no init time
        model = GPT(size_config(size, vocab, 256))
    assert model.num_parameters() == param_count(size, vocab)
    assert param_count(size, vocab + 10) == param_count(size, vocab) + 10 * SIZES[size]["d_model"]


def test_config_round_trips_and_bad_configs_are_refused(tmp_path):
    model = make(dropout=0.1)
    saved = {"config": model.config.to_dict(), "state": model.state_dict()}
    torch.save(saved, tmp_path / "m.pt")
    loaded = torch.load(tmp_path / "m.pt")
    again = GPT(GPTConfig.from_dict(loaded["config"]))
    again.load_state_dict(loaded["state"])
    x = ids()
    assert torch.equal(model.eval()(x).logits, again.eval()(x).logits)
    with pytest.raises(ConfigError, match="heads"):
        GPTConfig(vocab_size=10, n_layer=1, n_head=3, d_model=32, context=8)
    with pytest.raises(ConfigError, match="unknown field"):
        GPTConfig.from_dict(small_config().to_dict() | {"bias": True})
    with pytest.raises(ConfigError, match="exceeds the model's context"):
        make()(torch.zeros(1, 65, dtype=torch.long))


def test_a_few_adamw_steps_learn_a_repeated_text():
    torch.manual_seed(0)
    text = torch.arange(16).repeat(4)[None]  # 0..15 four times: predictable after one period
    model = GPT(GPTConfig(vocab_size=V, n_layer=2, n_head=2, d_model=32, context=64))
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(40):
        loss = model(text, labels=text).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    assert losses[0] > 4.0  # about ln 97 at the start
    assert losses[-1] < losses[0] / 4
