"""``repofeed ablate``: which data makes the smarter model, measured.

Named data configurations are trained on one repository at equal compute — the same model,
the same number of token positions (a 512-token configuration takes twice the sequences per
step of a 1,024-token one, so both take the same steps) — over several seeds, each evaluated
on held-out bits per byte of a temporal split (``evaluate.py``): the model trains on a store
pinned at the cut and is scored on what the newest commits wrote. Every model is scored with
the same context (the smallest training context of the configurations compared), so a row
differs from another only by the data it trained on. Seeds pair runs: seed s gives every
configuration the same initialisation and the same data-order seed.

The rows (``CONFIGS``):

- ``mission``: the mission's starting point — 512-token windows with 128 overlap, snapshot
  only, every file equal;
- ``default``: 1,024-token windows with 768 overlap, plus evolution records;
- ``no-overlap``: 1,024-token windows with no overlap, plus evolution records;
- ``no-evolution``: the default windows without evolution records;
- ``new-labels``: the default, loss only on the tokens a window adds beyond its overlap
  (at 768 overlap every token is otherwise trained about four times per pass);
- ``proposed``: what docs/quality.md proposes from the rows above — the mission's 512/128
  windows, with evolution records as one in four draws.

Every row fixes the read-time data policy (``Config.read_time()``) in full, so that a
repository's own repofeed.toml never changes what a row means. The rows above read every
item once (``UNWEIGHTED``: the issue-6 data). The data-quality rows (issue 9) each turn one
feature on over ``default``:

- ``weighting``: path weights as sampling probabilities (core 3.0, tests 0.3, docs and
  configuration 0.5), vendored, generated and lock files left out;
- ``filters``: StarCoder2's filters;
- ``near-dedup``: exact duplicates once, near-duplicate clusters down-weighted;
- ``complexity``: windows and records sampled in proportion to their complexity;
- ``curriculum``: simplest third first, by epoch (at a budget under one epoch, the run never
  leaves the first phase: docs/quality.md says what that measures);
- ``quality``: weighting, filters and dedup together (the new defaults).

The variations made on the fly (issue 10, ``store/augment.py``), each over ``default``:

- ``fim``: fill-in-the-middle on half the windows, PSM and SPM alike (the default now);
- ``masking``: BERT-style masking of one token in ten, loss on the masked ones;
- ``fim-windows``: ``no-evolution`` (windows only) with fill-in-the-middle on half of them:
  in the default mix evolution records are most of the draws and are never made FIM, so
  ``fim`` makes about one item in 13 FIM; here one in two is (compare with ``no-evolution``).

Every run is also scored on infilling (``evaluate.py``'s ``infill`` and ``lr_middle`` parts:
spans the held-out commits wrote, filled in given prefix and suffix, and the same middles left
to right after the prefix alone); ``all`` stays the left-to-right figure (files and records),
and a run scored before the infilling parts existed is scored on them from its checkpoint, not
trained again.

The stored variants and the repository context (issue 10), each over ``no-evolution`` (the
windows alone, so that records do not dilute them), as half the draws:

- ``variants``: every stored variant; ``rename``, ``decomment``, ``reformat``: one transform's;
- ``context``: the context documents (a file after the files it imports), each item once;
  ``context-half``: the context documents as half the draws (a repository has far fewer
  context documents than windows, so each is drawn many times an epoch).

Later data features add a switch (a field of ``DataConfig``) and a row.
"""

from __future__ import annotations

import json
import math
import statistics
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from repofeed.store.errors import TrainError
from repofeed.store.paths import CLASSES
from repofeed.store.policy import UNWEIGHTED


@dataclass(frozen=True)
class DataConfig:
    """What a training run reads; everything else about the run is held equal."""

    context: int = 1024
    overlap: int = 768
    mix: dict[str, float] | list[str] | None = None  # None: windows and evolution, each once;
    #                                                 a list: those sources, each item once
    labels: str = "all"
    note: str = ""
    policy: dict[str, Any] = field(default_factory=lambda: dict(UNWEIGHTED))  # read-time



def _with(**changes: Any) -> dict[str, Any]:
    return {**UNWEIGHTED, **changes}


CONFIGS: dict[str, DataConfig] = {
    "mission": DataConfig(512, 128, {"windows": 1.0},
                          note="512/128 windows, snapshot only, every file equal"),
    "default": DataConfig(1024, 768, None, note="1,024/768 windows + evolution records"),
    "no-overlap": DataConfig(1024, 0, None, note="1,024 windows, no overlap, + evolution"),
    "no-evolution": DataConfig(1024, 768, {"windows": 1.0}, note="1,024/768 windows only"),
    "new-labels": DataConfig(1024, 768, None, labels="new",
                             note="default, loss only on tokens past the overlap"),
    # the change docs/quality.md proposes: the mission's windows, records a quarter of draws
    "proposed": DataConfig(512, 128, {"windows": 3.0, "evolution": 1.0},
                           note="512/128 windows + evolution records as 1 in 4 draws"),
    # data quality (issue 9): one feature each over the default
    "weighting": DataConfig(1024, 768, None, note="default + path weights, vendored out",
                            policy=_with(weighting=True, exclude_vendored=True)),
    "filters": DataConfig(1024, 768, None, note="default + StarCoder2 filters",
                          policy=_with(filters=True)),
    "near-dedup": DataConfig(1024, 768, None, note="default + exact and near dedup",
                             policy=_with(dedup_exact=True, near_dedup="downweight")),
    "complexity": DataConfig(1024, 768, None, note="default + complexity-proportional",
                             policy=_with(curriculum="proportional")),
    "curriculum": DataConfig(1024, 768, None, note="default + curriculum by epoch",
                             policy=_with(curriculum="epochs")),
    "quality": DataConfig(1024, 768, None, note="default + weights, filters, dedup",
                          policy=_with(weighting=True, exclude_vendored=True, filters=True,
                                       dedup_exact=True, near_dedup="downweight")),
    # variations made on the fly (issue 10)
    "fim": DataConfig(1024, 768, None, note="default + fill-in-the-middle, half the windows",
                      policy=_with(fim_rate=0.5)),
    "masking": DataConfig(1024, 768, None, note="default + masking 1 token in 10",
                          policy=_with(mask_rate=0.1)),
    # FIM where every draw is a window, so half the items are FIM: compare with no-evolution
    "fim-windows": DataConfig(1024, 768, {"windows": 1.0},
                              note="1,024/768 windows only + fill-in-the-middle on half",
                              policy=_with(fim_rate=0.5)),
    # stored variants and repository context (issue 10), over windows only (no-evolution):
    # half the draws originals, half the new source
    "variants": DataConfig(1024, 768, {"windows": 1.0, "variants": 1.0},
                           note="windows + every stored variant, half the draws"),
    "rename": DataConfig(1024, 768, {"windows": 1.0, "variants": 1.0},
                         note="windows + renamed variants, half the draws",
                         policy=_with(variant_recipes=["rename"])),
    "decomment": DataConfig(1024, 768, {"windows": 1.0, "variants": 1.0},
                            note="windows + variants without comments, half the draws",
                            policy=_with(variant_recipes=["decomment"])),
    "reformat": DataConfig(1024, 768, {"windows": 1.0, "variants": 1.0},
                           note="windows + reformatted variants, half the draws",
                           policy=_with(variant_recipes=["reformat"])),
    "context": DataConfig(1024, 768, ["windows", "context"],
                          note="windows + context documents, each once"),
    "context-half": DataConfig(1024, 768, {"windows": 1.0, "context": 1.0},
                               note="windows + context documents, half the draws"),
}


BASELINE = "default"   # the row others are compared with, seed by seed
MEASURES = ("files", "records", "all", "infill", "lr_middle")   # per run, bits per byte


@dataclass(frozen=True)
class Scale:
    """How big one run is: the model, the training tokens, and the tokens per step."""

    model: str
    train_tokens: int
    step_tokens: int
    eval_max_bytes: int | None     # per part (files, records): a fixed selection
    device: str
    vocab_size: int | None = None  # of the tokenizer trained at the cut (None: the default)


SCALES: dict[str, Scale] = {
    # about two minutes per run on two CPU cores: a 4,096-token vocabulary (with 16,384 the
    # output layer is most of a tiny model's compute), 60 steps of 4,096 token positions
    "cpu": Scale(model="tiny", train_tokens=245_760, step_tokens=4 * 1024,
                 eval_max_bytes=150_000, device="cpu", vocab_size=4096),
    # a 6 GB GPU: the mission's batch of 8 × 1,024
    "gpu": Scale(model="small", train_tokens=50_000_000, step_tokens=8 * 1024,
                 eval_max_bytes=None, device="cuda"),
}


@dataclass
class RunResult:
    config: str
    seed: int
    bpb: dict[str, float]           # "files", "records", "all"; "infill", "lr_middle"
    train_seconds: float
    eval_seconds: float
    steps: int
    tokens: int                     # positions trained on: equal across rows (equal compute)
    final_loss: float | None
    label_tokens: int = 0           # tokens the loss was taken on: differs (padding, labels)
    settings: dict[str, Any] = field(default_factory=dict)   # what made it, to reuse it safely
    by_class: dict[str, float] = field(default_factory=dict)  # bits/byte by path class


@dataclass
class AblationReport:
    repo: str
    cut: str
    holdout: int | None
    since: str | None
    scale: dict[str, Any]
    eval_context: int
    runs: list[RunResult] = field(default_factory=list)

    def summary(self) -> list[dict[str, Any]]:
        """One row per configuration: mean and spread over seeds of each measure."""
        rows = []
        for name in dict.fromkeys(r.config for r in self.runs):
            runs = [r for r in self.runs if r.config == name]
            row: dict[str, Any] = {"config": name, "note": CONFIGS[name].note
                                   if name in CONFIGS else "", "seeds": len(runs)}
            for measure in MEASURES:
                values = [r.bpb[measure] for r in runs if r.bpb.get(measure) is not None]
                row[measure] = _spread(values)
            # what the suffix is worth, run by run: left to right minus infilling
            row["suffix_gain"] = _spread([r.bpb["lr_middle"] - r.bpb["infill"] for r in runs
                                          if r.bpb.get("lr_middle") is not None
                                          and r.bpb.get("infill") is not None])
            row["wall_seconds"] = round(statistics.fmean(
                r.train_seconds + r.eval_seconds for r in runs), 1)
            row["vs_baseline"] = self._paired(runs)
            row["infill_vs_baseline"] = self._paired(runs, "infill")
            row["label_tokens"] = round(statistics.fmean(r.label_tokens for r in runs))
            row["by_class"] = {cls: _spread([r.by_class[cls] for r in runs if cls in r.by_class])
                               for cls in dict.fromkeys(c for r in runs for c in r.by_class)}
            rows.append(row)
        return rows

    def _paired(self, runs: list[RunResult], measure: str = "all"
                ) -> dict[str, float] | None:
        """This row minus the baseline row, seed by seed (runs of one seed share their
        initialisation and data-order seed), in ``measure`` (default: all the held-out
        bytes scored left to right)."""
        base = {r.seed: r.bpb.get(measure) for r in self.runs if r.config == BASELINE}
        deltas = [r.bpb[measure] - base[r.seed] for r in runs
                  if r.bpb.get(measure) is not None and base.get(r.seed) is not None]
        if not deltas or runs[0].config == BASELINE:
            return None
        return _spread(deltas)

    def as_dict(self) -> dict[str, Any]:
        return {"repo": self.repo, "cut": self.cut, "holdout": self.holdout,
                "since": self.since, "scale": self.scale, "eval_context": self.eval_context,
                "summary": self.summary(), "runs": [asdict(r) for r in self.runs]}

    def markdown(self) -> str:
        lines = [f"Held-out bits per byte (lower is better), mean ± sample std over seeds; "
                 f"cut {self.cut[:12]}, eval context {self.eval_context}; every run trains on "
                 f"the same number of token positions.", "",
                 f"| config | data | files bpb | records bpb | all bpb | all − {BASELINE}, "
                 f"paired | label tokens/run | seeds | wall s/run |",
                 "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
        for row in self.summary():
            delta = row["vs_baseline"]
            paired = "—" if delta is None else f"{delta['mean']:+.4f} ± {delta['std']:.4f}"
            labels = f"{row['label_tokens']:,}" if row["label_tokens"] else "—"
            lines.append(f"| {row['config']} | {row['note']} | {_fmt(row['files'])} | "
                         f"{_fmt(row['records'])} | {_fmt(row['all'])} | {paired} | {labels} | "
                         f"{row['seeds']} | {row['wall_seconds']:,} |")
        if any(row["infill"] is not None for row in self.summary()):
            lines += ["", "Infilling (held-out spans of the newest commits, PSM; only the "
                      "middle's bytes scored), bits per byte, mean ± sample std over seeds; "
                      "lr middle: the same middles left to right after the same prefix, no "
                      "suffix:", "",
                      f"| config | infill bpb | lr middle bpb | lr middle − infill | infill − "
                      f"{BASELINE}, paired |", "|---|---:|---:|---:|---:|"]
            for row in self.summary():
                delta = row["infill_vs_baseline"]
                paired = "—" if delta is None else f"{delta['mean']:+.4f} ± {delta['std']:.4f}"
                gain = row["suffix_gain"]
                gain_cell = "—" if gain is None else f"{gain['mean']:+.4f} ± {gain['std']:.4f}"
                lines.append(f"| {row['config']} | {_fmt(row['infill'])} | "
                             f"{_fmt(row['lr_middle'])} | {gain_cell} | {paired} |")
        classes = [c for c in CLASSES if any(c in row["by_class"] for row in self.summary())]
        if classes:  # where a data choice gains and where it loses
            lines += ["", "By path class (files and records pooled), bits per byte, mean ± "
                      "sample std over seeds:", "",
                      "| config | " + " | ".join(classes) + " |",
                      "|---|" + "---:|" * len(classes)]
            for row in self.summary():
                lines.append(f"| {row['config']} | " + " | ".join(
                    _fmt(row["by_class"].get(c)) for c in classes) + " |")
        return "\n".join(lines) + "\n"


def _spread(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    return {"mean": statistics.fmean(values),
            "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "min": min(values), "max": max(values)}


def _fmt(cell: dict[str, float] | None) -> str:
    if cell is None:
        return "—"
    return f"{cell['mean']:.4f} ± {cell['std']:.4f}"


def run_options(config: DataConfig, scale: Scale, *, store: Path, out: Path, seed: int,
                device: str | None = None):
    """The ``TrainOptions`` of one run: equal tokens per step and in all, whatever the context."""
    from .loop import TrainOptions

    if scale.step_tokens % config.context:
        raise TrainError(f"a step of {scale.step_tokens} tokens is not a whole number of "
                         f"{config.context}-token sequences")
    return TrainOptions(
        store=str(store), out=str(out), model=scale.model, device=device or scale.device,
        batch_size=scale.step_tokens // config.context, context=config.context,
        overlap=config.overlap, mix=config.mix, labels=config.labels, seed=seed,
        policy=dict(config.policy),
        max_steps=max(1, math.ceil(scale.train_tokens / scale.step_tokens)),
        checkpoint_every=0, log_every=50)


def ablate(repo: str | Path, *, configs: list[str], seeds: int, scale: Scale, out: Path,
           holdout: int | None = None, since: str | None = None, device: str | None = None,
           progress=print) -> AblationReport:
    """Train every configuration with every seed on the cut store and score it."""
    from repofeed.daemon.split import cut_store, find_cut
    from repofeed.store.locate import open_repository
    from repofeed.store.reader import Store

    from .checkpoint import load_model
    from .evaluate import PARTS, evaluate, held_out
    from .loop import Trainer

    unknown = [c for c in configs if c not in CONFIGS]
    if unknown:
        raise TrainError(f"unknown configuration(s) {', '.join(unknown)}; known: "
                         f"{', '.join(CONFIGS)}")
    if seeds < 1:
        raise TrainError("--seeds must be at least 1 (3 or more to see the spread).")
    git = open_repository(repo)
    cut = find_cut(git, holdout=holdout, since=since)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    store = cut_store(git, cut, out / "store", vocab_size=scale.vocab_size)
    with Store(store) as opened:
        tokenizer = opened.tokenizer
    eval_context = min(CONFIGS[c].context for c in configs)
    held = held_out(git, cut, store_dir=store)     # read and tokenized once, for every run
    report = AblationReport(str(repo), cut.cut, holdout, since, asdict(scale), eval_context)
    for seed in range(seeds):
        for name in configs:
            run_dir = out / "runs" / f"{name}-seed{seed}"
            options = run_options(CONFIGS[name], scale, store=store, out=run_dir, seed=seed,
                                  device=device)
            options.extra = {"split": cut.to_dict(), "holdout": holdout}
            settings = {"config": asdict(CONFIGS[name]), "scale": asdict(scale),
                        "cut": cut.cut, "eval_context": eval_context, "device": options.device}
            if (run_dir / "result.json").is_file():       # finished before: keep it
                result = RunResult(**json.loads((run_dir / "result.json").read_text()))
                if result.settings != settings:
                    raise TrainError(
                        f"{run_dir} holds a run made with other settings (scale, cut, "
                        f"configuration or evaluation context); give another --out.")
                missing = [p for p in PARTS if p not in result.bpb]
                if missing:   # scored before a part existed: score its checkpoint on it now
                    started = time.perf_counter()
                    model, _ = load_model(run_dir, device=options.device)
                    scored = evaluate(model, tokenizer, git, cut, context=eval_context,
                                      limit_bytes=scale.eval_max_bytes, device=options.device,
                                      held=held, parts=missing)
                    result.bpb.update({k: v for k, v in bits_per_byte(scored).items()
                                       if k in missing})
                    result.eval_seconds = round(result.eval_seconds + time.perf_counter()
                                                - started, 2)
                    (run_dir / "result.json").write_text(json.dumps(asdict(result)))
            else:
                if run_dir.exists():
                    import shutil

                    shutil.rmtree(run_dir)                # an interrupted run: start it over
                started = time.perf_counter()
                trained = Trainer(options).run()
                train_seconds = time.perf_counter() - started
                started = time.perf_counter()
                model, _ = load_model(run_dir, device=options.device)
                scored = evaluate(model, tokenizer, git, cut, context=eval_context,
                                  limit_bytes=scale.eval_max_bytes, device=options.device,
                                  held=held)
                result = RunResult(name, seed, bits_per_byte(scored), round(train_seconds, 2),
                                   round(time.perf_counter() - started, 2), trained.steps,
                                   trained.tokens, trained.last_loss, trained.label_tokens,
                                   settings, class_bits_per_byte(scored))
                (run_dir / "result.json").write_text(json.dumps(asdict(result)))
            report.runs.append(result)
            progress(f"{name} seed {seed}: " + ", ".join(
                f"{k} {result.bpb[k]:.4f}" for k in MEASURES if result.bpb.get(k) is not None)
                + " bits/byte")
    (out / "ablation.json").write_text(json.dumps(report.as_dict(), indent=2))
    (out / "ablation.md").write_text(report.markdown())
    return report


def class_bits_per_byte(report) -> dict[str, float]:
    """Held-out bits per byte of each path class, the left-to-right parts pooled."""
    from .evaluate import LEFT_TO_RIGHT

    nats: dict[str, float] = {}
    nbytes: dict[str, int] = {}
    for name, part in report.parts.items():
        if name not in LEFT_TO_RIGHT:
            continue
        for cls, tally in part.by_class.items():
            nats[cls] = nats.get(cls, 0.0) + tally.nats
            nbytes[cls] = nbytes.get(cls, 0) + tally.bytes
    return {cls: nats[cls] / math.log(2) / nbytes[cls] for cls in nats if nbytes[cls]}


def bits_per_byte(report) -> dict[str, float | None]:
    """Held-out bits per byte of each part, and ``all``: the left-to-right parts (files and
    records) together. The infilling parts score the same text twice, in another task: they
    stay apart."""
    from .evaluate import LEFT_TO_RIGHT

    out = {name: part.total.bits_per_byte for name, part in report.parts.items()}
    pooled = [part for name, part in report.parts.items() if name in LEFT_TO_RIGHT]
    nats = sum(part.total.nats for part in pooled)
    nbytes = sum(part.total.bytes for part in pooled)
    out["all"] = nats / math.log(2) / nbytes if nbytes else None
    return out


def with_overrides(scale: Scale, **changes: Any) -> Scale:
    return replace(scale, **{k: v for k, v in changes.items() if v is not None})
