"""The ``train``, ``eval`` and ``ablate`` verbs of the command line.

``repofeed.daemon.cli`` registers these functions on its app. Nothing here imports torch at
import time: ``repofeed status`` and the other light verbs must not pay for it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from repofeed.store.errors import ConfigError

RepoArg = Annotated[
    Path | None,
    typer.Argument(help="The repository (any path inside it); default: the current directory.",
                   show_default=False),
]


def parse_mix(text: str | None) -> dict[str, float] | list[str] | None:
    """``windows=3,evolution=1`` → {"windows": 3.0, "evolution": 1.0}; ``windows,context``
    (no ratios) → ["windows", "context"]: natural proportions of those sources."""
    if not text:
        return None
    if "=" not in text:
        return [name.strip() for name in text.split(",") if name.strip()]
    mix: dict[str, float] = {}
    for part in text.split(","):
        name, sep, value = part.partition("=")
        try:
            if not sep:
                raise ValueError
            mix[name.strip()] = float(value)
        except ValueError:
            raise ConfigError(f"--mix {text!r}: write source=ratio pairs separated by commas, "
                              f"e.g. windows=3,evolution=1") from None
    return mix


def _default_run_dir(store_dir: Path) -> Path:
    return store_dir.parent / "train"


def split_store(repo: Path | None, holdout: int | None, since: str | None
                ) -> tuple[Path, dict]:
    """The store at a temporal split's cut (made once per cut), and what the checkpoint
    records of the split so that `repofeed eval` scores the same held-out commits."""
    from repofeed.daemon.split import cut_store, find_cut
    from repofeed.store.locate import open_repository, repofeed_dir

    git = open_repository(repo)
    cut = find_cut(git, holdout=holdout, since=since)
    typer.echo(f"Temporal split: training on the history up to {cut.cut[:12]}; "
               f"{len(cut.held_out):,} newer commit(s) held out.", err=True)
    store_dir = cut_store(git, cut, repofeed_dir(git) / "cuts" / cut.cut[:12] / "store")
    return store_dir, {"split": cut.to_dict(), "holdout": holdout, "since": since}


def evaluate(
    run: Annotated[Path, typer.Argument(
        help="A run directory that `repofeed train` wrote, or a checkpoint directory in it.")],
    repo: RepoArg = None,
    holdout: Annotated[int | None, typer.Option(
        help="Score the N newest non-merge commits (default: the split the run trained on).",
        show_default=False)] = None,
    since: Annotated[str | None, typer.Option(
        help="Or score what was committed since this date.", show_default=False)] = None,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    context: Annotated[int | None, typer.Option(
        help="Tokens per scored window (default: the model's training context).",
        show_default=False)] = None,
    stride: Annotated[int | None, typer.Option(
        help="Tokens between windows; each token is scored once, with at least context − "
             "stride tokens before it (default: half the context).", show_default=False)
    ] = None,
    limit_bytes: Annotated[int | None, typer.Option(
        help="Score at most this many bytes per part (a fixed selection), for a CPU budget.",
        show_default=False)] = None,
    parts: Annotated[str, typer.Option(
        help="Comma-separated parts to score: files and records (left to right), infill "
             "(spans the commits wrote, filled in given prefix and suffix) and lr_middle (the "
             "same spans left to right).")] = "files,records,infill,lr_middle",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Held-out bits per byte of a trained model on the newest commits (a temporal split)."""
    import json

    from rich.console import Console

    from repofeed.store.reader import Store
    from repofeed.store.schema import K_REPO

    from .checkpoint import load_model
    from .evaluate import evaluate_checkpoint, report_table
    from .loop import resolve_device

    target = resolve_device(device)
    model, info = load_model(run, device=target)
    if repo is None:
        with Store(Path(info["store"])) as store:
            repo = Path(store.meta(K_REPO))
    report = evaluate_checkpoint(model, info, repo, holdout=holdout, since=since,
                                 device=target, context=context, stride=stride,
                                 limit_bytes=limit_bytes,
                                 parts=[p.strip() for p in parts.split(",") if p.strip()])
    if as_json:
        print(json.dumps(report.as_dict(), indent=2))
        return
    console = Console(soft_wrap=True)
    console.print(report_table(report))
    for note in report.notes:
        console.print(f"[yellow]note:[/] {note}", highlight=False)


# CLI parameter → TrainOptions field, where the names differ
OPTION_OF = {"steps": "max_steps", "tokens": "train_tokens"}


def find_run(repo: Path | None, holdout: int | None, since: str | None,
             store: Path | None) -> Path:
    """The run directory ``--resume`` continues when ``--out`` is not given: ``train/`` beside
    the store, or for a temporal split the newest run made with the same ``--holdout`` or
    ``--since`` (new commits may have moved the cut since; the run keeps its own)."""
    from repofeed.store.locate import open_repository, repofeed_dir, resolve_store_dir

    from .checkpoint import latest, read_info

    if holdout is None and since is None:
        return _default_run_dir(resolve_store_dir(store or repo))
    runs = []
    for candidate in (repofeed_dir(open_repository(repo)) / "cuts").glob("*/train"):
        found = latest(candidate)
        if found is not None:
            info = read_info(found)
            if info.get("holdout") == holdout and info.get("since") == since:
                runs.append((found.stat().st_mtime, candidate))
    if not runs:
        raise ConfigError("--resume: no run trained with "
                          + (f"--holdout {holdout}" if holdout is not None else f"--since {since}")
                          + "; pass its --out.")
    return max(runs)[1]


def train(
    ctx: typer.Context,
    repo: RepoArg = None,
    store: Annotated[Path | None, typer.Option(
        help="Store directory (default: the repository's).", show_default=False)] = None,
    out: Annotated[Path | None, typer.Option(
        help="Run directory for checkpoints and metrics.jsonl (default: train/ beside the "
             "store).", show_default=False)] = None,
    model: Annotated[str, typer.Option(
        help="A built-in GPT size (trained from scratch), or a Hugging Face model directory "
             "saved with save_pretrained (needs repofeed\\[hf]).")] = "tiny",
    lora: Annotated[int | None, typer.Option(
        help="Train LoRA adapters of this rank instead of every weight (Hugging Face models).",
        show_default=False)] = None,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    batch_size: Annotated[int, typer.Option(min=1, help="Sequences per micro-batch.")] = 8,
    grad_accum: Annotated[int, typer.Option(
        min=1, help="Micro-batches per optimizer step.")] = 1,
    context: Annotated[int | None, typer.Option(
        help="Window length in tokens (default: the store's, 1024).", show_default=False)] = None,
    overlap: Annotated[int | None, typer.Option(
        help="Window overlap (default: the store's, 768).", show_default=False)] = None,
    labels: Annotated[str, typer.Option(
        help="all: loss on every token of a window; new: only on tokens past its "
             "overlap.")] = "all",
    mix: Annotated[str | None, typer.Option(
        help="Sources by ratio: windows, evolution, variants (the stored variants), context "
             "(the context documents), e.g. windows=3,evolution=1,variants=1; names alone "
             "(windows,context): each item of those once per epoch (default: the "
             "configuration's mix, else windows and evolution, every item once per epoch).",
        show_default=False)] = None,
    lr: Annotated[float | None, typer.Option(
        help="Peak learning rate (default 2e-5 fine-tuning a model, 1e-3 from scratch).",
        show_default=False)] = None,
    warmup: Annotated[int | None, typer.Option(
        help="Warm-up steps (default 5% of the run, at most 200).", show_default=False)] = None,
    steps: Annotated[int | None, typer.Option(
        min=1, help="Optimizer steps to run.", show_default=False)] = None,
    tokens: Annotated[int | None, typer.Option(
        min=1, help="Or: token positions to train on (steps = tokens / (batch × accum × "
                    "context)).", show_default=False)] = None,
    epochs: Annotated[int | None, typer.Option(
        min=1, help="Passes over the data (default 1 unless --steps, --tokens or --follow).",
        show_default=False)] = None,
    follow: Annotated[bool, typer.Option(
        "--follow",
        help="Keep training as the store grows; new data joins at epoch boundaries.")] = False,
    replay: Annotated[float | None, typer.Option(
        help="After the first epoch, each epoch is the new items plus replayed old ones, the "
             "new making up this fraction.", show_default=False)] = None,
    poll_seconds: Annotated[float, typer.Option(
        min=0.01, help="With --follow --replay: how often to look for new data when there "
                       "is none.")] = 2.0,
    seed: Annotated[int, typer.Option(help="Seed for initialisation and data order.")] = 0,
    checkpoint_every: Annotated[int, typer.Option(
        min=0, help="Steps between checkpoints (0: only at the end and on a signal).")] = 200,
    activation_checkpointing: Annotated[bool, typer.Option(
        "--activation-checkpointing",
        help="Recompute activations in the backward pass: less memory, one more forward pass "
             "of compute.")
    ] = False,
    memory_budget: Annotated[float, typer.Option(
        help="GiB the run may use on the device; the preflight refuses what does not fit.")
    ] = 6.0,
    resume: Annotated[bool, typer.Option(
        "--resume",
        help="Continue the run in --out exactly where its last checkpoint stopped.")] = False,
    log_every: Annotated[int, typer.Option(min=1, help="Steps between progress lines.")] = 10,
    holdout: Annotated[int | None, typer.Option(
        help="Train on a temporal split: a store of the history before the N newest non-merge "
             "commits (made, or reused, under <git dir>/repofeed/cuts/), for `repofeed eval`.",
        show_default=False)] = None,
    since: Annotated[str | None, typer.Option(
        help="Or split at a date: train on what was committed before it.", show_default=False)
    ] = None,
) -> None:
    """Train a model on the store: from scratch, or fine-tune a Hugging Face model."""
    from dataclasses import fields

    from repofeed.store.locate import resolve_store_dir

    from .loop import GiB, Trainer, TrainOptions

    values = dict(
        model=model, lora=lora, device=device, batch_size=batch_size, grad_accum=grad_accum,
        context=context, overlap=overlap, labels=labels, mix=parse_mix(mix), lr=lr,
        warmup=warmup, max_steps=steps, train_tokens=tokens,
        epochs=epochs if epochs or steps or tokens or follow else 1, follow=follow,
        replay=replay, poll_seconds=poll_seconds, seed=seed, checkpoint_every=checkpoint_every,
        activation_checkpointing=activation_checkpointing,
        memory_budget=int(memory_budget * GiB), log_every=log_every)
    if resume:
        # the run's own options, but for those given on this command line
        run_dir = out or find_run(repo, holdout, since, store)
        from .checkpoint import read_info

        info = read_info(run_dir)
        given = {OPTION_OF.get(name, name) for name, source in
                 ((n, ctx.get_parameter_source(n)) for n in ctx.params)
                 if source is not None and source.name in ("COMMANDLINE", "ENVIRONMENT")}
        known = {f.name for f in fields(TrainOptions)}
        saved = {k: v for k, v in info.get("options", {}).items() if k in known}
        values = {**values, **{k: v for k, v in saved.items() if k in values and k not in given}}
        if "max_steps" in given or "train_tokens" in given:   # a new length, in one unit
            values["max_steps"] = steps
            values["train_tokens"] = tokens
        options = TrainOptions(store=saved.get("store") or info["store"], out=str(run_dir),
                               resume=True, extra=saved.get("extra") or {}, **values)
    else:
        extra = {}
        if holdout is not None or since is not None:
            if store is not None:
                raise ConfigError("--holdout/--since make their own store at the cut; leave "
                                  "out --store.")
            store_dir, extra = split_store(repo, holdout, since)
        else:
            store_dir = resolve_store_dir(store or repo)
        options = TrainOptions(store=str(store_dir), out=str(out or _default_run_dir(store_dir)),
                               extra=extra, **values)
    result = Trainer(options).run()
    loss = f", last loss {result.last_loss:.4f}" if result.last_loss is not None else ""
    typer.echo(f"Trained {result.steps:,} steps on {result.tokens:,} token positions in "
               f"{result.seconds:,.1f} s{loss}; checkpoint in {result.checkpoint}.")


def ablate(
    repo: RepoArg = None,
    holdout: Annotated[int | None, typer.Option(
        help="Hold out the N newest non-merge commits (over everything the tip reaches, by "
             "commit date).", show_default=False)] = None,
    since: Annotated[str | None, typer.Option(
        help="Or hold out what was committed since this date (the cut is the newest "
             "first-parent commit before it).", show_default=False)] = None,
    configs: Annotated[str, typer.Option(
        help="Comma-separated configurations to compare.")] =
        "mission,default,no-overlap,no-evolution,new-labels",
    seeds: Annotated[int, typer.Option(min=1, help="Seeds per configuration.")] = 3,
    scale: Annotated[str, typer.Option(
        help="cpu: a tiny model, minutes per run on two cores; gpu: a small model on a 6 GB "
             "GPU.")] = "cpu",
    tokens: Annotated[int | None, typer.Option(
        help="Training token positions per run (default: the scale's).", show_default=False)
    ] = None,
    model: Annotated[str | None, typer.Option(
        help="Built-in model size (default: the scale's).", show_default=False)] = None,
    device: Annotated[str | None, typer.Option(
        help="auto, cpu or cuda (default: the scale's).", show_default=False)] = None,
    out: Annotated[Path | None, typer.Option(
        help="Where runs, ablation.json and ablation.md go (default: ablate/ beside the "
             "store).", show_default=False)] = None,
) -> None:
    """Train named data configurations at equal compute and compare held-out bits per byte."""
    from repofeed.store.locate import open_repository, repofeed_dir

    from .ablate import SCALES, with_overrides
    from .ablate import ablate as run_ablation

    if (holdout is None) == (since is None):
        raise ConfigError("give --holdout N or --since DATE (one of them).")
    if scale not in SCALES:
        raise ConfigError(f"--scale {scale!r}: use one of {', '.join(SCALES)}.")
    chosen = with_overrides(SCALES[scale], train_tokens=tokens, model=model)
    names = [c.strip() for c in configs.split(",") if c.strip()]
    target = out or repofeed_dir(open_repository(repo)) / "ablate"
    report = run_ablation(repo or Path("."), configs=names, seeds=seeds, scale=chosen,
                          out=target, holdout=holdout, since=since, device=device,
                          progress=lambda line: typer.echo(line, err=True))
    typer.echo(report.markdown())
    typer.echo(f"Written: {target / 'ablation.md'} and {target / 'ablation.json'}")
