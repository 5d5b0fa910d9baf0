"""The training loop behind ``repofeed train``: a model, the training stream, AdamW, and
checkpoints that resume exactly.

- **Precision.** On CUDA the forward pass runs under fp16 autocast with a gradient scaler (the
  RTX 2060 has no bf16; fp16 overflows above 65,504, so the scaler's state is checkpointed
  too); attention is PyTorch SDPA, whose memory-efficient kernel runs on Turing. On CPU
  everything is fp32.
- **Loss.** Cross-entropy summed over the label tokens of all micro-batches of a step and
  divided by their number, so gradient accumulation gives the gradient of one large batch even
  when micro-batches hold different numbers of label tokens (padding, ``labels="new"``).
- **Schedule.** Linear warm-up, then cosine decay to a tenth of the peak at the last step; a
  run with no last step (``--follow``) keeps the peak after warm-up.
- **Memory preflight.** Before the first step the estimate of parameters, gradients, optimizer
  state and activations is set against the budget; a run that does not fit is refused with
  the numbers and what would fit. On CUDA the measured peak after the first steps is logged
  beside the estimate.
- **Checkpoints** every ``checkpoint_every`` steps, at the end, and on SIGTERM/SIGINT (after
  the step in progress), hold everything ``resume`` needs to continue exactly: on CPU a run
  stopped and resumed logs the same losses as one that never stopped.
- **Log.** A progress line every ``log_every`` steps (step, loss, tokens/s, lr) on stderr and
  one JSON line per step in ``metrics.jsonl``.
"""

from __future__ import annotations

import json
import math
import signal
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from repofeed.store.datasets import IGNORE_INDEX
from repofeed.store.errors import TrainError
from repofeed.store.policy import Policy
from repofeed.store.reader import Store
from repofeed.store.schema import K_PIN

from . import checkpoint
from .models import build_model, load_trained_state, model_spec, trained_state

GiB = 1 << 30

# Defaults. Fine-tuning a pretrained model: the mission's context 1,024, batch 8, lr 2e-5.
# From scratch (the built-in GPT) a small model needs a far larger step: lr 1e-3 with a short
# warm-up, the usual range for models of a few million parameters.
FINETUNE_LR = 2e-5
SCRATCH_LR = 1e-3
DEFAULT_BATCH = 8
UNTIL_STEPS = 1 << 62   # the stream's epochs when the steps decide where a run ends


@dataclass
class TrainOptions:
    """Everything that defines a run; recorded in each checkpoint's ``info.json``."""

    store: str
    out: str
    model: str = "tiny"                 # a built-in size, or a Hugging Face model directory
    lora: int | None = None
    device: str = "auto"                # auto | cpu | cuda
    batch_size: int = DEFAULT_BATCH
    grad_accum: int = 1
    context: int | None = None          # window length; default: the store's max_tokens
    overlap: int | None = None          # default: the store's
    labels: str = "all"                 # all | new (windows: loss only past the overlap)
    mix: dict[str, float] | list[str] | None = None   # a list: those sources, each item once
    # read-time data policy (weights, filters, dedup, curriculum: Config.read_time()) over the
    # repository's configuration, e.g. {"curriculum": "epochs"}
    policy: dict[str, Any] | None = None
    lr: float | None = None             # default: FINETUNE_LR for --model PATH, else SCRATCH_LR
    warmup: int | None = None           # steps; default 5% of max_steps, at most 200
    min_lr_ratio: float = 0.1
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    max_steps: int | None = None
    train_tokens: int | None = None     # alternative to max_steps: positions processed
    epochs: int | None = None
    follow: bool = False
    replay: float | None = None
    seed: int = 0
    checkpoint_every: int = 200
    activation_checkpointing: bool = False
    memory_budget: int = 6 * GiB
    preflight: bool = True
    log_every: int = 10
    poll_seconds: float = 2.0
    resume: bool = False
    extra: dict[str, Any] = field(default_factory=dict)   # recorded in info.json as is


@dataclass
class TrainResult:
    run_dir: Path
    steps: int
    tokens: int
    seconds: float
    last_loss: float | None
    stopped: bool                       # by a signal, with a checkpoint
    checkpoint: Path | None
    preflight: dict[str, Any] | None = None
    label_tokens: int = 0               # tokens the loss was taken on (tokens counts positions)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            built = torch.version.cuda
            why = ("this torch build has no CUDA (" + torch.__version__ + ")" if built is None
                   else "no CUDA device is visible")
            raise TrainError(f"--device {name}: {why}. Use --device cpu, or install a CUDA "
                             f"build of torch into the environment.")
        return torch.device(name)
    if name == "cpu":
        return torch.device("cpu")
    raise TrainError(f"--device {name!r}: use auto, cpu or cuda.")


class _Stop(Exception):
    """Raised by the signal handler while the stream waits for new data."""


class Trainer:
    def __init__(self, options: TrainOptions,
                 on_step: Callable[[dict[str, Any]], None] | None = None,
                 batch_source: Callable[..., Iterator] | None = None):
        """``on_step(record)`` is called after each step with its log record;
        ``batch_source(stream, batch_size)`` replaces reading batches from the stream (the
        data-path benchmark feeds the same model from memory through it)."""
        self.opt = options
        self.run_dir = Path(options.out)
        self.on_step = on_step
        self.batch_source = batch_source
        self._stop_requested = False
        self._waiting = False

    # -- set-up ---------------------------------------------------------------------------------

    def _open_store(self) -> Store:
        from repofeed.store.locate import resolve_store_dir

        return Store(resolve_store_dir(self.opt.store))

    def _info(self, store: Store, spec: dict[str, Any], context: int) -> dict[str, Any]:
        tok = store.tokenizer
        info = {
            "format": 1,
            "model": spec,
            "store": str(store.path),
            "tokenizer_id": tok.id,
            "vocab_size": tok.vocab_size,
            "context": context,
            "options": {k: v for k, v in asdict(self.opt).items() if k != "extra"},
        }
        pin = store.meta(K_PIN)             # a store made at a temporal split's cut
        if pin:
            info["cut"] = pin
        info.update(self.opt.extra)
        return info

    def _check_resume(self, info: dict[str, Any], store: Store) -> None:
        tok = store.tokenizer
        if info["tokenizer_id"] != tok.id or info["vocab_size"] != tok.vocab_size:
            raise TrainError(
                f"the checkpoint in {self.run_dir} was trained with tokenizer "
                f"{info['tokenizer_id']} ({info['vocab_size']:,} ids); the store at {store.path} "
                f"has {tok.id} ({tok.vocab_size:,} ids). Resume on the store it was trained on, "
                f"or start a new run in another --out directory.")

    # -- the run --------------------------------------------------------------------------------

    def run(self) -> TrainResult:
        opt = self.opt
        from .stream import TrainStream

        device = resolve_device(opt.device)
        cuda = device.type == "cuda"
        store = self._open_store()
        context = opt.context or store.config.max_tokens
        saved = checkpoint.latest(self.run_dir) if opt.resume else None
        if opt.resume and saved is None:
            raise TrainError(f"--resume: no checkpoint in {self.run_dir}.")
        if not opt.resume and checkpoint.latest(self.run_dir) is not None:
            raise TrainError(f"{self.run_dir} already holds a checkpoint: pass --resume to "
                             f"continue it, or another --out directory.")
        if saved is not None:
            info = checkpoint.read_info(saved)
            self._check_resume(info, store)
            opt = self.opt = _resumed_options(info.get("options", {}), opt)
            spec = info["model"]
            context = info["context"]
        else:
            spec = model_spec(opt.model, vocab_size=store.tokenizer.vocab_size, context=context,
                              lora=opt.lora, checkpointing=opt.activation_checkpointing)
            if spec["kind"] == "hf":
                # the ids the store gave sentinels after the tokenizer's vocabulary: under LoRA
                # their embedding rows train too (a model's spare rows included)
                spec["new_ids_from"] = store.tokenizer.base_size
            info = self._info(store, spec, context)

        torch.manual_seed(opt.seed)
        model = build_model(spec, vocab_size=store.tokenizer.vocab_size,
                            tokenizer=store.tokenizer)
        per_step = opt.batch_size * opt.grad_accum * context
        max_steps = self._max_steps(per_step)
        # a run sized in steps or tokens passes over the data as often as that takes
        epochs = opt.epochs or (None if max_steps is None else UNTIL_STEPS)
        policy = Policy.for_store(store, **(opt.policy or {}))
        for glob in policy.rules.unmatched(d["path"] for d in store.documents(weighed=False)):
            _say(f"warning: the weight rule {glob!r} matches no document of the store")
        info["data_policy"] = policy.settings()   # how the data this run reads was chosen
        stream = TrainStream(store.path, mix=opt.mix, max_tokens=context, overlap=opt.overlap,
                             labels=opt.labels, seed=opt.seed, replay=opt.replay,
                             follow=opt.follow, epochs=epochs,
                             poll_seconds=opt.poll_seconds, batch_size=opt.batch_size,
                             policy=policy)
        info["data_augment"] = stream.augment.settings()   # how it is varied on the fly
        preflight = self._preflight(model, spec, context, device) if opt.preflight else None

        model.to(device)
        model.train()
        params = [p for p in model.parameters() if p.requires_grad]
        lr = opt.lr if opt.lr is not None else (FINETUNE_LR if spec["kind"] == "hf"
                                                else SCRATCH_LR)
        decay = [p for p in params if p.dim() >= 2]
        no_decay = [p for p in params if p.dim() < 2]
        optimizer = torch.optim.AdamW(
            [{"params": decay, "weight_decay": opt.weight_decay},
             {"params": no_decay, "weight_decay": 0.0}],
            lr=lr, betas=(0.9, 0.95), eps=1e-8, fused=cuda or None)
        # the schedule's length: the steps asked for, or those of the epochs asked for; a
        # resumed run keeps its own (the store may have grown since), unless given more steps
        schedule = info.get("schedule")
        if schedule is None or schedule["max_steps"] != max_steps:
            schedule_steps = max_steps
            if schedule_steps is None and opt.epochs and not opt.follow:
                per_step_items = opt.batch_size * opt.grad_accum
                schedule_steps = max(1, math.ceil(stream.epoch_length() * opt.epochs
                                                  / per_step_items))
            warmup = opt.warmup if opt.warmup is not None else (
                min(200, max(1, (schedule_steps or 2000) // 20)))
            if schedule is not None:
                warmup = schedule["warmup"]
            schedule = {"max_steps": max_steps, "steps": schedule_steps, "warmup": warmup}
        info["schedule"] = schedule
        schedule_steps, warmup = schedule["steps"], schedule["warmup"]
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, _schedule(warmup, schedule_steps, opt.min_lr_ratio))
        scaler = torch.amp.GradScaler("cuda", enabled=cuda)

        step, tokens, label_tokens = 0, 0, 0
        if saved is not None:
            state = checkpoint.read_state(saved)
            load_trained_state(model, spec, state["model"])
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            if state["scaler"]:                # empty when the run was on CPU
                scaler.load_state_dict(state["scaler"])
            stream.load_state_dict(state["stream"])
            checkpoint.set_rng_state(state["rng"])
            step, tokens = state["step"], state["tokens"]
            label_tokens = state.get("label_tokens", 0)
            _truncate_log(self.run_dir / "metrics.jsonl", step)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        info["parameters"] = sum(p.numel() for p in model.parameters())
        info["trainable_parameters"] = sum(p.numel() for p in params)

        # the stream's state as of the last batch trained on (the stream may have read ahead)
        stream_state = stream.state_dict()

        def save() -> Path:
            info.update(step=step, tokens=tokens, label_tokens=label_tokens)
            return checkpoint.save(self.run_dir, {
                "model": trained_state(model, spec), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict(),
                "stream": stream_state, "rng": checkpoint.rng_state(cuda),
                "step": step, "tokens": tokens, "label_tokens": label_tokens}, info)

        batches = (self.batch_source(stream, opt.batch_size) if self.batch_source
                   else batches_from(stream, opt.batch_size))
        log = open(self.run_dir / "metrics.jsonl", "a")
        previous = self._install_signals()
        started = time.perf_counter()
        window_start, window_tokens = started, 0
        last_loss, stopped, saved_at, saved_step = None, False, None, -1
        steps_here = 0
        if cuda:
            torch.cuda.reset_peak_memory_stats(device)
        try:
            while max_steps is None or step < max_steps:
                try:
                    micro = self._next_micro_batches(batches, opt.grad_accum)
                except _Stop:
                    stopped = True
                    break
                if micro is None:
                    break                                    # the stream ended (epochs done)
                stream_state = micro[-1][1]
                loss, n_tokens, n_labels = self._step(model, optimizer, scaler,
                                                      [b for b, _ in micro], device, params)
                label_tokens += n_labels
                scheduler.step()
                step += 1
                tokens += n_tokens
                window_tokens += n_tokens
                last_loss = loss
                now = time.perf_counter()
                record = {"step": step, "epoch": stream.epoch, "loss": loss,
                          "lr": optimizer.param_groups[0]["lr"], "tokens": tokens,
                          "label_tokens": label_tokens,
                          "tokens_per_s": round(window_tokens / max(now - window_start, 1e-9)),
                          "elapsed": round(now - started, 3)}
                steps_here += 1
                if cuda:
                    record["scale"] = scaler.get_scale()
                    record["peak_bytes"] = torch.cuda.max_memory_allocated(device)
                    if steps_here == 3 and preflight is not None:
                        # the tensors' estimate: allocator statistics hold no CUDA reserve
                        record["preflight_bytes"] = preflight["allocated"]
                        _say(f"memory: measured peak {_gib(record['peak_bytes'])} after 3 steps, "
                             f"estimated {_gib(preflight['allocated'])}")
                log.write(json.dumps(record) + "\n")
                log.flush()
                if self.on_step is not None:
                    self.on_step(record)
                if step % opt.log_every == 0 or step == 1 or step == max_steps:
                    total = f"/{max_steps:,}" if max_steps else ""
                    _say(f"step {step:,}{total} | epoch {stream.epoch} | loss {loss:.4f} | "
                         f"{record['tokens_per_s']:,} tok/s | lr {record['lr']:.2e}")
                    window_start, window_tokens = now, 0
                if self._stop_requested:
                    stopped = True
                    break
                if opt.checkpoint_every and step % opt.checkpoint_every == 0:
                    saved_at, saved_step = save(), step
            if step and saved_step != step:
                saved_at = save()
        finally:
            self._restore_signals(previous)
            log.close()
            store.close()
            stream_close = getattr(stream, "close", None)
            if stream_close:
                stream_close()
        if stopped:
            where = f"checkpoint in {saved_at}" if saved_at else "no step was taken"
            _say(f"stopped at step {step:,}; {where}. Continue with --resume.")
        return TrainResult(self.run_dir, step, tokens, time.perf_counter() - started,
                           last_loss, stopped, saved_at, preflight, label_tokens)

    # -- pieces ---------------------------------------------------------------------------------

    def _max_steps(self, per_step: int) -> int | None:
        opt = self.opt
        if opt.max_steps is not None and opt.train_tokens is not None:
            raise TrainError("give --steps or --tokens, not both.")
        if opt.max_steps is not None:
            return opt.max_steps
        if opt.train_tokens is not None:
            return max(1, math.ceil(opt.train_tokens / per_step))
        return None   # until the stream ends (its epochs), or forever with --follow

    def _preflight(self, model, spec, context: int, device: torch.device) -> dict[str, Any]:
        from .preflight import estimate_gpt, estimate_hf, fmt_bytes, precision_for

        common = dict(batch=self.opt.batch_size, context=context,
                      precision=precision_for(device.type), budget=self.opt.memory_budget)
        def estimate(checkpointing: bool):
            if spec["kind"] == "gpt":
                return estimate_gpt(model.config, checkpointing=checkpointing, **common)
            return estimate_hf(model.config, checkpointing=checkpointing,
                               lora_rank=spec.get("lora"), model=model, **common)

        chosen = (spec["config"]["checkpointing"] if spec["kind"] == "gpt"
                  else bool(spec.get("checkpointing")))
        result, other = estimate(chosen), estimate(not chosen)
        if not result.fits:
            raise TrainError(f"{result.message()}\n(--memory-budget sets the budget; "
                             f"--grad-accum keeps the effective batch with a smaller --batch-size)")
        _say(f"{result.summary()}; {'without' if chosen else 'with'} activation checkpointing "
             f"{fmt_bytes(other.total)}")
        return {**result.to_dict(), "other_checkpointing_total": other.total}

    def _next_micro_batches(self, batches: Iterator, n: int) -> list[tuple[dict, dict]] | None:
        micro = []
        self._waiting = True
        try:
            if self._stop_requested:
                raise _Stop
            for _ in range(n):
                batch = next(batches, None)
                if batch is None:
                    break
                micro.append(batch)
        finally:
            self._waiting = False
        return micro or None

    def _step(self, model, optimizer, scaler, micro, device, params
              ) -> tuple[float, int, int]:
        """One optimizer step; returns the mean loss, the positions and the label tokens."""
        n_labels = sum(int((b["labels"][:, 1:] != IGNORE_INDEX).sum()) for b in micro)
        total, positions = 0.0, 0
        cuda = device.type == "cuda"
        for batch in micro:
            ids = batch["input_ids"].to(device, non_blocking=True)
            mask = batch["attention_mask"].to(device, non_blocking=True)
            labels = batch["labels"].to(device, non_blocking=True)
            positions += ids.numel()
            with torch.autocast(device_type="cuda", dtype=torch.float16, enabled=cuda):
                logits = model(input_ids=ids, attention_mask=mask).logits
            loss_sum = F.cross_entropy(logits[:, :-1].float().reshape(-1, logits.size(-1)),
                                       labels[:, 1:].reshape(-1), ignore_index=IGNORE_INDEX,
                                       reduction="sum")
            loss = loss_sum / max(n_labels, 1)
            scaler.scale(loss).backward()
            total += float(loss_sum.detach())
        scaler.unscale_(optimizer)
        if self.opt.grad_clip:
            torch.nn.utils.clip_grad_norm_(params, self.opt.grad_clip)
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)
        return total / max(n_labels, 1), positions, n_labels

    def _install_signals(self) -> dict[int, Any]:
        def handler(signum, frame):
            if self._stop_requested:        # a second signal: stop at once
                raise KeyboardInterrupt
            self._stop_requested = True
            _say(f"{signal.Signals(signum).name}: stopping after this step, with a checkpoint")
            if self._waiting:
                raise _Stop

        previous = {}
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                previous[sig] = signal.signal(sig, handler)
            except ValueError:              # not the main thread: no handlers
                pass
        return previous

    @staticmethod
    def _restore_signals(previous: dict[int, Any]) -> None:
        for sig, old in previous.items():
            signal.signal(sig, old)


# What defines a run: a resume takes these from the checkpoint, and refuses other values.
RUN_DEFINING = ("model", "lora", "batch_size", "grad_accum", "context", "overlap", "labels",
                "mix", "policy", "lr", "warmup", "min_lr_ratio", "weight_decay", "grad_clip",
                "seed", "replay", "activation_checkpointing")


def _resumed_options(saved: dict[str, Any], given: TrainOptions) -> TrainOptions:
    """Check that a resuming run is the run it resumes: what defines it (``RUN_DEFINING``)
    must be what the checkpoint recorded. How far and how it runs (steps, epochs, follow,
    device, memory budget, logging) may change. ``repofeed train --resume`` fills every option
    not given on its command line from the checkpoint, so only a deliberate change differs."""
    differs = [f"{name} {getattr(given, name)!r} (the run has {saved[name]!r})"
               for name in RUN_DEFINING if name in saved and getattr(given, name) != saved[name]]
    if differs:
        raise TrainError("--resume continues a run with its own settings; these differ: "
                         + "; ".join(differs) + ". Start a new run in another --out instead.")
    return given


def _schedule(warmup: int, max_steps: int | None, min_ratio: float) -> Callable[[int], float]:
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        if max_steps is None or max_steps <= warmup:
            return 1.0
        progress = min(1.0, (step - warmup) / (max_steps - warmup))
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return factor


def batches_from(stream, batch_size: int
                 ) -> Iterator[tuple[dict[str, torch.Tensor], dict[str, Any]]]:
    """Batches from the stream, read in this process (the store reads far faster than a step
    trains: benchmarks/train_data_path.py), each with the stream's state just after it: the
    state to checkpoint once the batch has been trained on."""
    items: list[dict[str, torch.Tensor]] = []
    for item in stream:
        items.append(item)
        if len(items) == batch_size:
            yield {k: torch.stack([it[k] for it in items]) for k in items[0]}, stream.state_dict()
            items = []
    if items:
        yield {k: torch.stack([it[k] for it in items]) for k in items[0]}, stream.state_dict()


def _truncate_log(path: Path, step: int) -> None:
    """Drop log lines of steps after the checkpoint: a resumed run logs them again."""
    if not path.is_file():
        return
    kept = []
    for line in path.read_text().splitlines():
        try:
            if json.loads(line).get("step", 0) <= step:
                kept.append(line)
        except ValueError:          # a line cut short by a crash: past the checkpoint
            continue
    path.write_text("".join(line + "\n" for line in kept))


def _gib(n: int) -> str:
    return f"{n / GiB:.2f} GiB"


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
