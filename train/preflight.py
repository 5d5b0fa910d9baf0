"""Memory preflight: will a training run fit before its first step, and if not, what would?

The estimate adds up, in bytes:

- **weights**: 4 B per parameter (fp32 master weights); with fp16 autocast (CUDA) also a 2 B
  fp16 copy of every weight a matmul uses, which autocast keeps for the forward pass;
- **gradients**: 4 B per *trainable* parameter;
- **optimizer**: AdamW's two fp32 moments, 8 B per trainable parameter (with LoRA only the
  adapters train, so both shrink to the adapters' size);
- **activations**: the tensors autograd saves for the backward pass at batch B and context T.
  For the built-in GPT they are counted exactly from its code, per layer and token (d = d_model,
  h = heads): norm inputs and outputs 4d, the fused qkv 3d, the rotated q and k 2d, the
  attention output d, the MLP's 4d hidden before and after GELU 8d, and
  a few per-token statistics (norms' mean and rstd, attention's log-sum-exp per head). PyTorch's
  SDPA saves no T×T matrix: the memory-efficient kernel (CUDA, Turing fp16) and the flash
  kernel PyTorch uses on CPU keep only the log-sum-exp; the *math* fallback (an explicit mask,
  an unsupported dtype) would allocate B×h×T×T and is not counted. With activation
  checkpointing a layer keeps only its input, plus one layer's full set while it is recomputed;
- **logits**: B×T×V at the head and the loss, usually the largest activation of a small model
  with a large vocabulary: the logits themselves, the log-softmax the loss saves, and during
  the backward pass the gradients of both (4 × 4 B in fp32; with fp16 autocast the logits are
  fp16 and the loss works on an fp32 copy: 2 + 4 + 4 + 4 B);
- **reserve**: on CUDA 512 MiB for the CUDA context, cuBLAS workspaces and allocator
  fragmentation, none of which ``torch.cuda.max_memory_allocated`` reports; on CPU the
  ~100 MiB PyTorch's runtime takes at the first step whatever the model.

For a Hugging Face model the same terms come from its config (layers, hidden size, heads,
intermediate size, vocabulary) with a generic transformer layer (gated MLPs such as Llama's
save 4 intermediate-sized tensors, plain ones 2); it is an estimate, not exact. Attention is
assumed to run through SDPA, which :func:`repofeed.train.hf.load_hf_model` asks for.

Calibration on CPU against measured peak RSS growth: ``benchmarks/preflight_memory.py`` and
docs/benchmarks.md. :class:`PeakMemory` measures a run's own peak.
"""

from __future__ import annotations

import os
import resource
import sys
from dataclasses import dataclass, field, replace
from typing import Any

from repofeed.store.errors import ConfigError

MiB = 1024**2
GiB = 1024**3
DEFAULT_BUDGET = 6 * GiB
CUDA_RESERVE = 512 * MiB
# What PyTorch's CPU runtime takes at the first training step whatever the model (thread pools,
# kernels' scratch space, allocator slack): 95–110 MiB measured here (docs/benchmarks.md).
CPU_RUNTIME = 100 * MiB
PRECISIONS = ("fp32", "fp16")


def fmt_bytes(n: float) -> str:
    """Bytes as MiB below 1 GiB, GiB above: '812 MiB', '5.43 GiB'."""
    return f"{n / GiB:.2f} GiB" if abs(n) >= GiB else f"{n / MiB:.0f} MiB"


def parse_bytes(text: str) -> int:
    """'6GiB', '6G', '5.5 GiB', '800MiB', '800M' or a plain number of bytes."""
    units = {"gib": GiB, "gb": GiB, "g": GiB, "mib": MiB, "mb": MiB, "m": MiB, "b": 1, "": 1}
    cleaned = text.strip().lower().replace(" ", "")
    number = cleaned.rstrip("gimb")
    unit = cleaned[len(number):]
    try:
        value = float(number) * units[unit]
    except (ValueError, KeyError):
        raise ConfigError(f"cannot read memory size {text!r}; write it like 6GiB or 800MiB") \
            from None
    if value <= 0:
        raise ConfigError(f"memory size {text!r} must be positive")
    return int(value)


@dataclass(frozen=True)
class Settings:
    """What a run chooses that the memory depends on."""

    batch: int
    context: int
    precision: str = "fp32"  # "fp32" (CPU) or "fp16" (CUDA autocast with fp32 master weights)
    checkpointing: bool = False
    lora_rank: int | None = None
    accumulation: int = 1  # gradient accumulation steps: no memory, keeps the effective batch

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ConfigError(f"precision must be one of {PRECISIONS}, not {self.precision!r}")
        if self.batch < 1 or self.context < 1 or self.accumulation < 1:
            raise ConfigError("batch, context and accumulation must be at least 1")

    @property
    def effective_batch(self) -> int:
        return self.batch * self.accumulation


@dataclass(frozen=True)
class Architecture:
    """What the estimate needs to know of a model."""

    name: str
    n_layer: int
    d_model: int
    n_head: int
    intermediate: int
    vocab_size: int
    params: int
    kind: str = "gpt"  # "gpt": the built-in GPT, exact; "hf": a generic transformer layer
    gated: bool = False
    dropout: bool = False
    # (in, out) of every linear layer LoRA would adapt ("all-linear": all but the head)
    lora_linears: tuple[tuple[int, int], ...] = ()
    lora_targets: int | None = None  # trainable parameters per LoRA rank, when measured

    def lora_params(self, rank: int) -> int:
        if self.lora_targets is not None:
            return self.lora_targets * rank
        return rank * sum(i + o for i, o in self.lora_linears)


@dataclass
class Advice:
    """An alternative that changes one thing, and what it would cost."""

    change: str
    settings: Settings
    total: int
    fits: bool


@dataclass
class MemoryEstimate:
    """Each term in bytes; ``total`` against ``budget``."""

    model: str
    settings: Settings
    params: int
    trainable: int
    weights: int
    gradients: int
    optimizer: int
    activations: int
    logits: int
    reserve: int
    budget: int
    advice: list[Advice] = field(default_factory=list)

    @property
    def allocated(self) -> int:
        """What the tensors need: the figure to compare with a measured peak."""
        return self.weights + self.gradients + self.optimizer + self.activations + self.logits

    @property
    def measurable(self) -> int:
        """The figure to compare with :class:`PeakMemory`: on CPU the RSS growth includes the
        runtime's own memory; CUDA's allocator statistics do not include the reserve."""
        return self.allocated + (0 if self.settings.precision == "fp16" else self.reserve)

    @property
    def total(self) -> int:
        return self.allocated + self.reserve

    @property
    def fits(self) -> bool:
        return self.total <= self.budget

    def terms(self) -> dict[str, int]:
        return {"weights": self.weights, "gradients": self.gradients,
                "optimizer": self.optimizer, "activations": self.activations,
                "logits": self.logits, "reserve": self.reserve}

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "params": self.params, "trainable": self.trainable,
                **vars(self.settings), **self.terms(), "total": self.total,
                "budget": self.budget, "fits": self.fits,
                "advice": [{"change": a.change, "total": a.total, "fits": a.fits,
                            **vars(a.settings)} for a in self.advice]}

    def summary(self) -> str:
        s = self.settings
        what = (f"{self.model}, batch {s.batch} × context {s.context}, {s.precision}"
                + (", checkpointing" if s.checkpointing else "")
                + (f", LoRA rank {s.lora_rank}" if s.lora_rank else ""))
        terms = ", ".join(f"{k} {fmt_bytes(v)}" for k, v in self.terms().items() if v)
        verdict = "fits" if self.fits else "does not fit"
        return (f"memory estimate for {what}: {fmt_bytes(self.total)} ({terms}); "
                f"{verdict} the budget of {fmt_bytes(self.budget)}")

    def message(self) -> str:
        """The summary, and when it does not fit, the alternatives (those that fit first)."""
        lines = [self.summary()]
        if not self.fits:
            if self.advice:
                lines.append("alternatives:")
                lines += [f"  {a.change}: {fmt_bytes(a.total)}"
                          + ("" if a.fits else " (still too much)") for a in self.advice]
            else:
                lines.append("no smaller setting fits; choose a smaller model")
        return "\n".join(lines)


def estimate(arch: Architecture, settings: Settings, budget: int = DEFAULT_BUDGET, *,
             advise: bool = True) -> MemoryEstimate:
    """The memory a training step needs, and when it does not fit, advice."""
    s = settings
    fp16 = s.precision == "fp16"
    trainable = arch.lora_params(s.lora_rank) if s.lora_rank else arch.params
    weights = 4 * arch.params + (4 * trainable if s.lora_rank else 0)
    if fp16:
        weights += 2 * arch.params  # autocast's fp16 copies of the weights
    tokens = s.batch * s.context
    est = MemoryEstimate(
        model=arch.name, settings=s, params=arch.params, trainable=trainable,
        weights=weights, gradients=4 * trainable, optimizer=8 * trainable,
        activations=_activations(arch, s), logits=tokens * arch.vocab_size * (14 if fp16 else 16),
        reserve=CUDA_RESERVE if fp16 else CPU_RUNTIME, budget=budget)
    if advise and not est.fits:
        est.advice = _advice(arch, s, budget)
    return est


def _layer_bytes(arch: Architecture, fp16: bool) -> tuple[int, int]:
    """Bytes one layer saves per token: (all of them, the layer's input alone)."""
    d, h, i = arch.d_model, arch.n_head, arch.intermediate
    act = 2 if fp16 else 4
    # The residual stream stays fp32 under autocast (the weights and the embedding are fp32).
    residual = 2 * d * 4  # the inputs of the two norms
    stats = (4 + h) * 4  # norms' mean and rstd, attention's log-sum-exp per head, fp32
    # norm outputs 2d, qkv 3d, rotated q and k 2d, attention output d (SDPA lays it out as
    # (B, T, heads, head_dim), so the reshape back to (B, T, d) is a view, not a copy)
    attention = 8 * d
    mlp = (4 if arch.gated else 2) * i
    dropout = 2 * d if arch.dropout else 0  # two bool masks
    return residual + stats + (attention + mlp) * act + dropout, d * 4


def _activations(arch: Architecture, s: Settings) -> int:
    fp16 = s.precision == "fp16"
    tokens = s.batch * s.context
    full, kept = _layer_bytes(arch, fp16)
    # The backward pass holds, beside what is saved, the gradients flowing back through one
    # layer: tensors of the same shapes as that layer's saved ones (measured: without this term
    # an activation-heavy run peaks ~25% above the estimate).
    backward = full
    if s.checkpointing:
        layers = arch.n_layer * kept + full + backward  # inputs + one layer recomputed
    else:
        layers = arch.n_layer * full + backward
    # the final norm's input (fp32), its statistics, its output (the head's input), the ids
    final = arch.d_model * 4 + 8 + arch.d_model * (2 if fp16 else 4) + 8
    return tokens * (layers + final)


def _advice(arch: Architecture, s: Settings, budget: int) -> list[Advice]:
    """One change at a time, then combined: a smaller batch with gradient accumulation (the
    same effective batch), checkpointing, LoRA (Hugging Face models)."""
    options: list[tuple[str, Settings]] = []
    batch = s.batch
    while batch > 1:
        batch //= 2
        steps = -(-s.effective_batch // batch)
        options.append((f"--batch {batch} --accumulate {steps}",
                        replace(s, batch=batch, accumulation=steps)))
    if not s.checkpointing:
        options.append(("--checkpointing", replace(s, checkpointing=True)))
        batch = s.batch
        while batch > 1:
            batch //= 2
            steps = -(-s.effective_batch // batch)
            options.append((f"--checkpointing --batch {batch} --accumulate {steps}",
                            replace(s, checkpointing=True, batch=batch, accumulation=steps)))
    if arch.kind == "hf" and not s.lora_rank:
        for rank in (16, 8):
            options.append((f"--lora {rank}", replace(s, lora_rank=rank)))
            options.append((f"--lora {rank} --checkpointing",
                            replace(s, lora_rank=rank, checkpointing=True)))
    advice = []
    for change, settings in options:
        e = estimate(arch, settings, budget, advise=False)
        advice.append(Advice(change, settings, e.total, e.fits))
    # The ones that fit first, and of those the largest batch (the fastest), then the cheapest.
    fitting = [a for a in advice if a.fits]
    fitting.sort(key=lambda a: (-a.settings.batch, a.settings.checkpointing,
                                a.settings.lora_rank is not None, a.total))
    if fitting:
        return fitting[:4]
    return sorted(advice, key=lambda a: a.total)[:1]


# --- the models --------------------------------------------------------------------------------

def gpt_architecture(config: Any) -> Architecture:
    """The built-in GPT's architecture from its :class:`~repofeed.train.model.GPTConfig`."""
    from repofeed.train.model import param_count

    d = config.d_model
    return Architecture(
        name=f"GPT {config.n_layer}×{d}", n_layer=config.n_layer, d_model=d,
        n_head=config.n_head, intermediate=4 * d, vocab_size=config.vocab_size,
        params=param_count(config), kind="gpt", dropout=config.dropout > 0,
        lora_linears=tuple([(d, 3 * d), (d, d), (d, 4 * d), (4 * d, d)] * config.n_layer))


_GATED_TYPES = {"llama", "mistral", "mixtral", "qwen2", "qwen3", "gemma", "gemma2", "gemma3",
                "olmo", "olmo2", "deepseek_v2", "deepseek_v3", "granite", "cohere", "phi3"}


def _first(config: Any, names: tuple[str, ...], default: Any = None) -> Any:
    for name in names:
        value = getattr(config, name, None)
        if value is not None:
            return value
    return default


def hf_architecture(config: Any, model: Any = None) -> Architecture:
    """A Hugging Face model's architecture from its config (a ``PretrainedConfig`` or anything
    with the same attributes); with ``model``, the parameter counts are the model's own."""
    n_layer = _first(config, ("num_hidden_layers", "n_layer", "num_layers"))
    d = _first(config, ("hidden_size", "n_embd", "d_model"))
    heads = _first(config, ("num_attention_heads", "n_head"))
    vocab = _first(config, ("vocab_size",))
    if None in (n_layer, d, heads, vocab):
        raise ConfigError("the model's config lacks the layer count, hidden size, heads or "
                          "vocabulary size the memory preflight needs")
    inter = _first(config, ("intermediate_size", "n_inner", "ffn_dim"), 4 * d)
    kv = _first(config, ("num_key_value_heads",), heads) * (d // heads)
    model_type = getattr(config, "model_type", "")
    gated = model_type in _GATED_TYPES
    dropout = any(float(_first(config, (n,), 0) or 0) > 0
                  for n in ("resid_pdrop", "hidden_dropout", "dropout", "hidden_dropout_prob"))
    linears = [(d, d), (d, kv), (d, kv), (d, d), (d, inter), (inter, d)]
    if gated:
        linears.append((d, inter))
    lora_targets = None
    if model is not None:
        # the base model's own parameters, without adapters peft may have added
        params = sum(p.numel() for n, p in model.named_parameters() if "lora_" not in n)
        lora_targets = _lora_targets(model)
    else:
        tied = getattr(config, "tie_word_embeddings", True)
        positions = (_first(config, ("n_positions",), 0) or 0) * d  # learned positions (GPT-2)
        per_layer = sum(i * o for i, o in linears) + 4 * d
        params = vocab * d * (1 if tied else 2) + positions + n_layer * per_layer + 2 * d
    return Architecture(
        name=f"{model_type or 'model'} {n_layer}×{d}", n_layer=n_layer, d_model=d, n_head=heads,
        intermediate=inter, vocab_size=vocab, params=params, kind="hf", gated=gated,
        dropout=dropout, lora_linears=tuple(linears * n_layer), lora_targets=lora_targets)


def _lora_targets(model: Any) -> int:
    """Σ (in + out) over the linear layers LoRA's "all-linear" adapts: LoRA rank r adds
    r × this many trainable parameters."""
    from repofeed.train.hf import lora_linear_dims

    return sum(i + o for i, o in lora_linear_dims(model))


def estimate_gpt(config: Any, *, batch: int, context: int | None = None, precision: str = "fp32",
                 checkpointing: bool | None = None, budget: int = DEFAULT_BUDGET
                 ) -> MemoryEstimate:
    """The estimate for the built-in GPT (exact activations, from its config)."""
    settings = Settings(batch=batch, context=context or config.context, precision=precision,
                        checkpointing=config.checkpointing if checkpointing is None
                        else checkpointing)
    return estimate(gpt_architecture(config), settings, budget)


def estimate_hf(config: Any, *, batch: int, context: int, precision: str = "fp32",
                checkpointing: bool = False, lora_rank: int | None = None,
                budget: int = DEFAULT_BUDGET, model: Any = None) -> MemoryEstimate:
    """The estimate for a Hugging Face causal LM, from its config (and the model if loaded)."""
    settings = Settings(batch=batch, context=context, precision=precision,
                        checkpointing=checkpointing, lora_rank=lora_rank)
    return estimate(hf_architecture(config, model), settings, budget)


def precision_for(device: str) -> str:
    """The precision a training run uses on a device: fp16 autocast on CUDA, fp32 elsewhere."""
    return "fp16" if str(device).startswith("cuda") else "fp32"


# --- measuring ---------------------------------------------------------------------------------

class PeakMemory:
    """The peak memory growth of a span of work, to log beside the estimate.

    On CUDA: ``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats``, less what
    was allocated at the start. On CPU: the growth of the resident set's high-water mark
    (VmHWM) over the resident set at the start. Linux resets the mark when 5 is written to
    /proc/self/clear_refs; where that fails (other systems, some sandboxes) the mark cannot be
    reset, so start measuring before the model is created, in a fresh process, or the peak of
    earlier work hides this one. Then ``resource.getrusage`` stands in for /proc.
    """

    def __init__(self, device: str = "cpu") -> None:
        self.cuda = str(device).startswith("cuda")
        if self.cuda:
            import torch

            self._torch = torch
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.start = torch.cuda.memory_allocated()
            self.reset = True
        else:
            self.reset = _reset_hwm()
            self.start = _rss()

    def peak_growth(self) -> int:
        """Bytes of peak growth since construction."""
        if self.cuda:
            self._torch.cuda.synchronize()
            return self._torch.cuda.max_memory_allocated() - self.start
        return max(0, _hwm() - self.start)


def _proc_status(key: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _rss() -> int:
    value = _proc_status("VmRSS")
    return value if value is not None else _hwm()


def _hwm() -> int:
    value = _proc_status("VmHWM")
    if value is not None:
        return value
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # bytes on macOS, KiB on Linux


def _reset_hwm() -> bool:
    try:
        with open(f"/proc/{os.getpid()}/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def measure_gpt(config: Any, *, batch: int, context: int, steps: int = 3, seed: int = 0,
                device: str = "cpu") -> int:
    """Peak memory growth of ``steps`` real AdamW steps of the built-in GPT on random tokens,
    measured from before the model is created; run it in a fresh process (see PeakMemory)."""
    import torch

    from repofeed.train.model import GPT

    torch.manual_seed(seed)
    ids = torch.randint(0, config.vocab_size, (batch, context), device=device)
    peak = PeakMemory(device)
    model = GPT(config).to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    fp16 = device.startswith("cuda")
    scaler = torch.amp.GradScaler("cuda", enabled=fp16)
    for _ in range(steps):
        with torch.autocast("cuda", dtype=torch.float16, enabled=fp16):
            out = model(ids, labels=ids)
        scaler.scale(out.loss).backward()
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)
        del out
    return peak.peak_growth()


def main(argv: list[str] | None = None) -> int:
    """``python -m repofeed.train.preflight``: the estimate for a built-in size, optionally
    beside a measurement of real steps (in this process, so run it fresh)."""
    import argparse
    import json

    from repofeed.train.model import DEFAULT_VOCAB, SIZES, GPTConfig, size_config

    parser = argparse.ArgumentParser(prog="python -m repofeed.train.preflight")
    parser.add_argument("--size", default="tiny", help=f"one of {', '.join(SIZES)}")
    parser.add_argument("--layers", type=int, help="instead of --size: n_layer …")
    parser.add_argument("--d-model", type=int)
    parser.add_argument("--heads", type=int)
    parser.add_argument("--vocab", type=int, default=DEFAULT_VOCAB)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--context", type=int, default=1024)
    parser.add_argument("--checkpointing", action="store_true")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--memory-budget", default="6GiB")
    parser.add_argument("--measure", type=int, default=0, metavar="STEPS",
                        help="also run this many real steps and measure their peak")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.layers:
        config = GPTConfig(vocab_size=args.vocab, n_layer=args.layers, n_head=args.heads,
                           d_model=args.d_model, context=args.context,
                           checkpointing=args.checkpointing)
    else:
        config = size_config(args.size, args.vocab, args.context,
                             checkpointing=args.checkpointing)
    est = estimate_gpt(config, batch=args.batch, precision=precision_for(args.device),
                       budget=parse_bytes(args.memory_budget))
    result = est.to_dict() | {"allocated": est.allocated, "measurable": est.measurable}
    if args.measure:
        result["measured"] = measure_gpt(config, batch=args.batch, context=args.context,
                                         steps=args.measure, device=args.device)
    if args.json:
        print(json.dumps(result))
    else:
        print(est.message())
        if args.measure:
            print(f"measured peak growth: {fmt_bytes(result['measured'])} "
                  f"(estimated {fmt_bytes(est.measurable)}, "
                  f"ratio {result['measured'] / est.measurable:.2f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
