"""The built-in small GPT: a decoder-only transformer one can read top to bottom.

    token ids ─ embedding ─┬─ block × n_layer ─ final norm ─ output head (tied) ─ logits
                           └ each block (pre-norm):
                               x = x + attention(norm(x))     causal, rotary positions, SDPA
                               x = x + mlp(norm(x))           d → 4d → GELU → d

It follows the Hugging Face causal-LM convention, so the training loop and the evaluation treat
it and a Hugging Face model alike: ``forward(input_ids, attention_mask=None, labels=None)``
returns ``.logits`` (B, T, V) and ``.loss``, the mean cross-entropy of each position's logits
against the *next* label (labels come unshifted, -100 is ignored).

Choices, and why:

- **Rotary positions** (RoFormer, arXiv 2104.09864) rather than learned ones: they cost no
  parameters (at 16,384 tokens of vocabulary and d=128 a learned table for 1,024 positions
  would be 6% of the tiny model), they encode relative offsets, which suits windows cut at
  arbitrary offsets of a file, and they are what current code models use (Llama, StarCoder2,
  DeepSeek-Coder), so small-model ablations run on the same kind of model as the ones they
  stand in for.
- **Attention through** ``torch.nn.functional.scaled_dot_product_attention(is_causal=True)``:
  on a Turing GPU (RTX 2060, fp16) PyTorch picks its memory-efficient kernel, which never
  materialises the T×T score matrix; the flash kernel needs sm80+.
- **No biases, LayerNorm without bias**: fewer tensors, no measurable loss at these sizes, and
  the parameter count is a clean formula (:func:`param_count`).
- **Tied output head**: the head is the embedding matrix; at a 16k vocabulary that halves the
  largest block of parameters of a small model.
- **GPT-2 initialisation**: normal(0, 0.02) everywhere, the two projections that write into the
  residual stream scaled by 1/sqrt(2·n_layer).

``attention_mask``: the datasets pad on the right only, so every real token precedes every pad
and causal attention alone is exact for the real tokens: a real token never sees a pad. The
pads' own logits are garbage and their labels are -100, so the mask is accepted and checked for
right padding, but not applied (applying it would force SDPA off its fused kernels).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from repofeed.store.errors import ConfigError

DEFAULT_VOCAB = 16_384


@dataclass
class GPTConfig:
    vocab_size: int
    n_layer: int
    n_head: int
    d_model: int
    context: int
    dropout: float = 0.0
    checkpointing: bool = False

    def __post_init__(self) -> None:
        for name in ("vocab_size", "n_layer", "n_head", "d_model", "context"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"GPTConfig.{name} must be at least 1, not {getattr(self, name)}")
        if self.d_model % self.n_head or (self.d_model // self.n_head) % 2:
            raise ConfigError(
                f"GPTConfig: d_model {self.d_model} must split into {self.n_head} heads of an "
                "even size (rotary positions rotate pairs); make d_model n_head × an even number"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"GPTConfig.dropout must be in [0, 1), not {self.dropout}")

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_head

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GPTConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"GPTConfig: unknown field(s) {', '.join(unknown)}")
        return cls(**data)


# Named sizes. "tiny" trains in minutes on 2 CPU cores at context 512–1,024 (tests, CPU
# ablations); "large" is about the most that full fine-tuning in fp16 with AdamW fits on a 6 GB
# RTX 2060 at context 1,024 (~16 B per parameter before activations; ANCHORS.md). Parameter
# counts depend on the vocabulary: see param_count() and the table in docs/models.md.
SIZES: dict[str, dict[str, int]] = {
    "tiny": {"n_layer": 4, "n_head": 4, "d_model": 128},
    "mini": {"n_layer": 6, "n_head": 4, "d_model": 256},
    "small": {"n_layer": 6, "n_head": 6, "d_model": 384},
    "medium": {"n_layer": 12, "n_head": 12, "d_model": 768},
    "large": {"n_layer": 14, "n_head": 14, "d_model": 896},
}


def size_config(name: str, vocab_size: int, context: int, **options: Any) -> GPTConfig:
    """The :class:`GPTConfig` of a named size."""
    if name not in SIZES:
        raise ConfigError(f"unknown model size {name!r}; choose one of {', '.join(SIZES)}")
    return GPTConfig(vocab_size=vocab_size, context=context, **SIZES[name], **options)


def param_count(size: str | GPTConfig, vocab_size: int = DEFAULT_VOCAB) -> int:
    """Parameters of a named size (or a config) for a vocabulary: V·d for the tied embedding,
    per block 12·d² (qkv 3d², output d², MLP 8d²) + 2·d (two norms), + d (final norm)."""
    if isinstance(size, GPTConfig):
        layers, d, vocab_size = size.n_layer, size.d_model, size.vocab_size
    else:
        if size not in SIZES:
            raise ConfigError(f"unknown model size {size!r}; choose one of {', '.join(SIZES)}")
        layers, d = SIZES[size]["n_layer"], SIZES[size]["d_model"]
    return vocab_size * d + layers * (12 * d * d + 2 * d) + d


@dataclass
class CausalLMOutput:
    """What ``forward`` returns; the field names are Hugging Face's."""

    logits: torch.Tensor
    loss: torch.Tensor | None = None


def shifted_cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of position t's logits against label t+1, ignoring -100.

    The labels are shifted (not the logits), so no copy of the B×T×V logits is made.
    """
    targets = torch.full_like(labels, -100)
    targets[:, :-1] = labels[:, 1:]
    return F.cross_entropy(logits.float().view(-1, logits.size(-1)), targets.view(-1),
                           ignore_index=-100)


class Rotary(nn.Module):
    """Rotary position embedding: rotates each (even, odd) half-pair of a head's channels by an
    angle proportional to the position, so q·k depends on the offset between positions."""

    def __init__(self, head_dim: int, context: int, base: float = 10_000.0) -> None:
        super().__init__()
        inv_freq = 1.0 / base ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)
        angles = torch.outer(torch.arange(context, dtype=torch.float32), inv_freq)
        angles = torch.cat([angles, angles], dim=-1)  # (context, head_dim)
        # Not saved with the model: recomputed from the config.
        self.register_buffer("cos", angles.cos(), persistent=False)
        self.register_buffer("sin", angles.sin(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (B, heads, T, head_dim)
        t = x.size(-2)
        cos, sin = self.cos[:t].to(x.dtype), self.sin[:t].to(x.dtype)
        half = x.size(-1) // 2
        rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
        return x * cos + rotated * sin


class Attention(nn.Module):
    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.n_head, self.dropout = config.n_head, config.dropout
        self.qkv = nn.Linear(config.d_model, 3 * config.d_model, bias=False)
        self.proj = nn.Linear(config.d_model, config.d_model, bias=False)
        self.rotary = Rotary(config.head_dim, config.context)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.n_head, d // self.n_head).unbind(dim=2)
        q, k, v = (y.transpose(1, 2) for y in (q, k, v))  # (B, heads, T, head_dim)
        q, k = self.rotary(q), self.rotary(k)
        y = F.scaled_dot_product_attention(
            q, k, v, is_causal=True, dropout_p=self.dropout if self.training else 0.0)
        return self.proj(y.transpose(1, 2).reshape(b, t, d))


class MLP(nn.Module):
    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.fc = nn.Linear(config.d_model, 4 * config.d_model, bias=False)
        self.proj = nn.Linear(4 * config.d_model, config.d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(F.gelu(self.fc(x)))


class Block(nn.Module):
    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(config.d_model, bias=False)
        self.attn = Attention(config)
        self.norm2 = nn.LayerNorm(config.d_model, bias=False)
        self.mlp = MLP(config)
        # Dropout only where asked: a p=0 dropout still costs a pass over the activations.
        self.drop = nn.Dropout(config.dropout) if config.dropout > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop(self.attn(self.norm1(x)))
        return x + self.drop(self.mlp(self.norm2(x)))


class GPT(nn.Module):
    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.config = config
        self.embed = nn.Embedding(config.vocab_size, config.d_model)
        self.drop = nn.Dropout(config.dropout) if config.dropout > 0 else nn.Identity()
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.norm = nn.LayerNorm(config.d_model, bias=False)
        self.head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        self.head.weight = self.embed.weight  # tied
        self.apply(self._init)
        residual_std = 0.02 / math.sqrt(2 * config.n_layer)
        for block in self.blocks:
            nn.init.normal_(block.attn.proj.weight, std=residual_std)
            nn.init.normal_(block.mlp.proj.weight, std=residual_std)

    @staticmethod
    def _init(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=0.02)
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())  # parameters() counts the tied one once

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                labels: torch.Tensor | None = None) -> CausalLMOutput:
        b, t = input_ids.shape
        if t > self.config.context:
            raise ConfigError(f"a sequence of {t} tokens exceeds the model's context of "
                              f"{self.config.context}; cut the windows to --context or less")
        if attention_mask is not None:
            _check_right_padded(attention_mask)
        x = self.drop(self.embed(input_ids))
        for block in self.blocks:
            if self.config.checkpointing and self.training and torch.is_grad_enabled():
                x = checkpoint(block, x, use_reentrant=False)
            else:
                x = block(x)
        logits = self.head(self.norm(x))
        loss = shifted_cross_entropy(logits, labels) if labels is not None else None
        return CausalLMOutput(logits=logits, loss=loss)


def _check_right_padded(mask: torch.Tensor) -> None:
    """Refuse a mask with a 0 before a 1 in any row: causal attention is exact only for right
    padding (see the module docstring)."""
    mask = mask.bool()
    if mask.size(1) > 1 and bool((mask[:, 1:] & ~mask[:, :-1]).any()):
        raise ConfigError("attention_mask has padding before real tokens; the built-in GPT "
                          "supports right padding only (pad at the end of each row)")
