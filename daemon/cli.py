"""The ``repofeed`` command line. One function per verb; errors map to exit codes in ``main``."""

from __future__ import annotations

import json
import math
import os
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from repofeed.store.errors import RepofeedError
from repofeed.train import cli as train_cli

app = typer.Typer(
    name="repofeed",
    help="Turn a living git repository into training data for code models, and keep it current.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

MIN_RESCAN_SECONDS = 0.5

RepoArg = Annotated[
    Path | None,
    typer.Argument(help="The repository (any path inside it); default: the current directory.",
                   show_default=False),
]


class _RateColumn(ProgressColumn):
    """Commits (or files) per second over the whole run so far (rich's own estimate needs
    many samples)."""

    def render(self, task) -> Text:  # type: ignore[override]
        elapsed = task.elapsed or 0.0
        unit = "files/s" if task.description == "variants" else "commits/s"
        if not task.completed or elapsed <= 0:
            return Text(f"… {unit}", style="cyan")
        return Text(f"{task.completed / elapsed:,.0f} {unit}", style="cyan")


_KIND_NAMES = {"sentencepiece": "SentencePiece, ", "huggingface": "Hugging Face, "}


@app.command()
def init(
    repo: RepoArg = None,
    tokenizer: Annotated[Path | None, typer.Option(
        help="Use the base model's tokenizer instead of training one: a SentencePiece `.model` "
             "file, a Hugging Face `tokenizer.json`, or a model directory holding one.",
        show_default=False)] = None,
    vocab_size: Annotated[int | None, typer.Option(
        help="Vocabulary size when training (default 16384; capped to what the text supports).",
        show_default=False)] = None,
    store: Annotated[Path | None, typer.Option(
        help="Store directory (default: <git common dir>/repofeed/store).")] = None,
    max_tokens: Annotated[int | None, typer.Option(
        help="Window length in tokens (default 1024).", show_default=False)] = None,
    overlap: Annotated[int | None, typer.Option(
        help="Tokens shared by consecutive windows (default 768).", show_default=False)] = None,
    include_merges: Annotated[bool | None, typer.Option(
        "--include-merges/--no-merges",
        help="Give merge commits evolution records against their first parent.",
        show_default=False)] = None,
    at: Annotated[str | None, typer.Option(
        metavar="REV",
        help="Make a store for a temporal split, pinned at commit REV: the tokenizer is "
             "trained on REV's tree (not the tip's, which holds the held-out text), "
             "`backfill --until REV --store DIR` fills it, the daemon never runs on it. "
             "Needs --store; DIR does not become the repository's default store.",
        show_default=False)] = None,
    force: Annotated[bool, typer.Option(help="Replace an existing store.")] = False,
) -> None:
    """Create the store and its tokenizer (trained on the tip's text files unless given)."""
    from repofeed.store.locate import open_repository, store_dir_of

    from .init import init_store

    existing = Path(store) if store else store_dir_of(open_repository(repo))
    if (existing / "data.mdb").exists() and not force:
        out.print(f"A store already exists at {existing}; nothing to do "
                  f"(`--force` replaces it).")
        return
    with err.status("Training the tokenizer…" if tokenizer is None else "Loading the tokenizer…"):
        result = init_store(repo, tokenizer=tokenizer, vocab_size=vocab_size, store=store,
                            force=force, max_tokens=max_tokens, overlap=overlap,
                            include_merges=include_merges, at=at)
    for note in result.notes:
        err.print(f"[yellow]note:[/] {note}")
    if at is not None:
        out.print(f"Initialised {result.store_dir}: pinned at {at}, tokenizer "
                  f"{result.tokenizer_source} ({result.vocab_size:,} ids). Next: `repofeed "
                  f"backfill --until {at} --store {result.store_dir}`.", highlight=False)
        return
    out.print(f"Initialised {result.store_dir}: following {result.follow}, tokenizer "
              f"{result.tokenizer_source} ({_KIND_NAMES.get(result.tokenizer_kind, '')}"
              f"{result.vocab_size:,} ids). "
              f"Next: `repofeed backfill`.")


@app.command()
def backfill(
    repo: RepoArg = None,
    until: Annotated[str | None, typer.Option(
        metavar="REV",
        help="Ingest the history up to commit REV and the snapshot at REV, into a store "
             "pinned there (`init --at REV --store DIR`), for a temporal split.",
        show_default=False)] = None,
    store: Annotated[Path | None, typer.Option(
        help="Store directory (default: the repository's store).", show_default=False)] = None,
) -> None:
    """Ingest the followed branch's history and tip (resumes where a previous run stopped)."""
    from .ingest import backfill as run_backfill

    progress = Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), _RateColumn(),
        TextColumn("{task.fields[mb]:.1f} MB"), TimeElapsedColumn(), TimeRemainingColumn(),
        console=err, transient=False,
    )

    def start(total: int):
        task = progress.add_task("backfill", total=total, mb=0.0)

        def tick(done: int, nbytes: int) -> None:
            progress.update(task, completed=done, mb=nbytes / 1e6)

        return tick

    def start_variants(total: int):
        task = progress.add_task("variants", total=total, mb=0.0)

        def tick(done: int, _nbytes: int) -> None:
            progress.update(task, completed=done)

        return tick

    try:
        with progress:
            result = run_backfill(repo, progress=start, store=store, until=until,
                                  variant_progress=start_variants)
    except KeyboardInterrupt:
        again = "repofeed backfill" + (f" --until {until}" if until else "") + \
            (f" --store {store}" if store else "")
        err.print(f"[yellow]Interrupted.[/] Every commit stored so far is complete; run "
                  f"`{again}` again to go on.")
        raise typer.Exit(130) from None
    for warning in result.warnings:
        err.print(f"[yellow]warning:[/] {warning}", highlight=False)
    rate = result.commits / result.seconds if result.seconds else 0.0
    out.print(
        f"Backfilled {result.commits:,} commits ({rate:,.0f} commits/s, "
        f"{result.bytes_read / 1e6 / max(result.seconds, 1e-9):,.1f} MB/s): "
        f"{result.records:,} evolution records, {result.documents_changed:,} documents "
        f"updated, head {result.head[:12] if result.head else 'none (no commits yet)'}."
    )
    if result.skipped:
        out.print("Skipped files in history: " + ", ".join(
            f"{reason} {n:,}" for reason, n in sorted(result.skipped.items())))
    made = result.variants
    if made is not None and made.contents:
        none = ", ".join(f"{reason} {n:,}" for reason, n in sorted(made.reasons.items()))
        out.print(f"Variants: {made.variants:,} made for {made.contents:,} files in "
                  f"{made.seconds:.1f} s ({made.variants / max(made.seconds, 1e-9):,.1f}/s)"
                  + (f"; none for: {none}" if none else "") + ".")


@app.command()
def stats(
    repo: RepoArg = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """What the store holds."""
    from repofeed.store import open_store

    with open_store(repo) as store:
        data = store.stats()
    _warn_unmatched(data["unmatched_weight_rules"])
    if as_json:
        print(json.dumps(data, indent=2))
        return
    table = Table(show_header=False, box=None, pad_edge=False)
    for key, value in data.items():
        table.add_row(f"[bold]{key}", escape(_stat_text(key, value)))
    out.print(table)


def _warn_unmatched(globs: list[str]) -> None:
    for glob in globs:
        err.print(f"[yellow]warning:[/] the weight rule {escape(repr(glob))} matches no "
                  f"document of the store (see `repofeed config show`)", highlight=False)


def _stat_text(key: str, value: Any) -> str:
    """One line of `repofeed stats`: counts with separators, a dict as "name count, …"."""
    if key == "weight_classes":
        return ", ".join(f"{cls} {entry['items']:,} ({entry['share']:.0%} of draws)"
                         for cls, entry in value.items()) or "—"
    if isinstance(value, dict):
        return ", ".join(f"{k} {str(v).lower()}" if isinstance(v, bool) else
                         f"{k} {v:,}" if isinstance(v, (int, float)) else f"{k} {v}"
                         for k, v in value.items()) or "—"
    if isinstance(value, list):
        return ", ".join(map(str, value)) or "—"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


@app.command("gc")
def gc_command(
    repo: RepoArg = None,
    grace: Annotated[float | None, typer.Option(
        min=0, help="Seconds garbage is kept for readers whose index is older (default: the "
                    "store's gc_grace_seconds, 3600). Skipped when no other process has the "
                    "store open.", show_default=False)] = None,
    compact: Annotated[bool, typer.Option(
        help="Then write a compacted copy and swap it in, giving free pages back to the "
             "disk.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Remove superseded records and token arrays that nothing live references."""
    from repofeed.store.gc import collect
    from repofeed.store.gc import compact as compact_store
    from repofeed.store.locate import resolve_store_dir
    from repofeed.store.writer import StoreWriter

    with StoreWriter(resolve_store_dir(repo)) as writer:
        done = collect(writer, grace)
        sizes = compact_store(writer) if compact else None
    report = {**done.as_dict(), "compacted": None if sizes is None else
              {"bytes_before": sizes[0], "bytes_after": sizes[1]}}
    if as_json:
        print(json.dumps(report, indent=2))
        return
    out.print(f"Removed {done.commits:,} superseded commit(s) ({done.records:,} records) and "
              f"{done.arrays:,} token array(s) ({done.bytes_freed / 1e6:,.1f} MB) in "
              f"{done.seconds * 1000:,.0f} ms.", highlight=False)
    if done.marked or done.waiting_commits:
        out.print(f"{done.marked:,} array(s) and {done.waiting_commits:,} commit(s) wait out "
                  f"the grace period: {done.readers} other process(es) have the store open.",
                  highlight=False)
    if sizes is not None:
        out.print(f"Compacted: {sizes[0] / 1e6:,.1f} MB → {sizes[1] / 1e6:,.1f} MB.",
                  highlight=False)


@app.command("redact")
def redact_command(
    repo: RepoArg = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Purge secrets from a store built before redaction (or before a rule was added): every
    stored text, author and path is scanned again, what changes is rewritten, and the old
    arrays are removed at once. Stop the daemon first (it holds the store)."""
    from .redact import redact_store

    progress = Progress(
        TextColumn("[bold]redact"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        TimeRemainingColumn(), console=err, transient=False, disable=as_json,
    )
    with progress:
        task = progress.add_task("arrays", total=None)
        result = redact_store(repo, lambda done, total: progress.update(
            task, completed=done, total=total))
    if as_json:
        print(json.dumps(result.as_dict(), indent=2))
        return
    found = ", ".join(f"{k} {n:,}" for k, n in sorted(result.redactions.items())) or "none"
    out.print(f"Scanned {result.arrays_scanned:,} stored texts in {result.seconds:,.1f} s: "
              f"secrets found: {found}.", highlight=False)
    out.print(f"Rewrote {result.arrays_rewritten:,} text(s); repointed {result.documents:,} "
              f"document(s), {result.records:,} record(s), {result.commits:,} commit(s); "
              f"redacted {result.paths:,} path(s); dropped {result.secret_files:,} document(s) "
              f"of credential files; removed {result.arrays_removed:,} old array(s).",
              highlight=False)
    if result.compacted:
        out.print(f"Compacted: {result.compacted[0] / 1e6:,.1f} MB → "
                  f"{result.compacted[1] / 1e6:,.1f} MB (LMDB leaves old bytes in freed pages).",
                  highlight=False)
    if result.waiting_for_readers:
        err.print(f"[yellow]warning:[/] processes {', '.join(map(str, result.waiting_for_readers))}"
                  f" have the store open: the old arrays wait out the grace period and the "
                  f"file is not compacted, so old bytes stay in it. Stop them and run "
                  f"`repofeed redact` again.", highlight=False)
    if result.tokenizer_trained_unredacted:
        err.print("[yellow]warning:[/] the store's tokenizer was trained before redaction: its "
                  "vocabulary may hold pieces of secrets. Rebuild the store to be sure: "
                  "`repofeed init --force`, then `repofeed backfill`.", highlight=False)


@app.command()
def install(repo: RepoArg = None) -> None:
    """Install the git hooks that nudge the daemon (post-commit, -merge, -rewrite, -checkout)."""
    from repofeed.hooks.install import hooks_dir
    from repofeed.hooks.install import install as install_hooks
    from repofeed.store.locate import open_repository

    directory, custom = hooks_dir(open_repository(repo))
    for line in install_hooks(repo):
        out.print(line, highlight=False)
    where = f"{directory} (core.hooksPath)" if custom else str(directory)
    out.print(f"Hooks in {where}. They only append to the spool; run `repofeed daemon` to act "
              f"on it.", highlight=False)


@app.command()
def uninstall(repo: RepoArg = None) -> None:
    """Remove repofeed's git hooks and put back the hooks they replaced."""
    from repofeed.hooks.install import uninstall as uninstall_hooks

    for line in uninstall_hooks(repo):
        out.print(line, highlight=False)


@app.command()
def daemon(
    repo: RepoArg = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v",
                                          help="Also log every nudge and no-op.")] = False,
    settle_ms: Annotated[int, typer.Option(
        help="Quiet time after the last nudge before the store is updated.")] = 10,
    watch: Annotated[bool | None, typer.Option(
        "--watch/--no-watch",
        help="Also take in uncommitted edits of the worktree (default: the store's "
             "watch_worktree setting, on).", show_default=False)] = None,
    rescan_seconds: Annotated[float | None, typer.Option(
        help=f"How often to compare the whole worktree by content, for events the kernel lost "
             f"(default 600; 30 when the inotify watch limit is reached; at least "
             f"{MIN_RESCAN_SECONDS:g}).",
        show_default=False)] = None,
    gc_seconds: Annotated[float, typer.Option(
        min=1, help="How often, at most, to look for garbage after an update and collect it "
                    "when it passes 10% of the store.")] = 600,
) -> None:
    """Keep the store current, in the foreground: woken by the hooks, ref changes and edits."""
    from repofeed.store.errors import ConfigError

    from .live import Daemon

    # A comparison reads every file of the worktree: 0 was a busy loop, and NaN or infinity
    # would be a timer that always or never fires. Half a second is what the tests use.
    if rescan_seconds is not None and not (
            math.isfinite(rescan_seconds) and rescan_seconds >= MIN_RESCAN_SECONDS):
        raise ConfigError(f"--rescan-seconds must be a number of seconds, at least "
                          f"{MIN_RESCAN_SECONDS:g} (got {rescan_seconds:g}); the default is 600.")
    if settle_ms < 0:
        raise ConfigError(f"--settle-ms must be 0 or more (got {settle_ms}).")

    _configure_logging(verbose)
    server = Daemon(repo, settle=settle_ms / 1000, watch_worktree=watch,
                    rescan_seconds=rescan_seconds, gc_seconds=gc_seconds)
    raise typer.Exit(server.run())


@app.command()
def status(
    repo: RepoArg = None,
    store: Annotated[Path | None, typer.Option(
        help="Store directory (default: the repository's store).", show_default=False)] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Whether the daemon runs, what it follows, and how far behind the store is."""
    from .status import daemon_status

    data = daemon_status(repo, store)
    if as_json:
        print(json.dumps(data, indent=2))
        return
    if data["running"]:
        out.print(f"daemon: running (pid {data['pid']}), {data['watches']} directory watches")
    else:
        out.print("daemon: not running — start it with `repofeed daemon`")
    head = str(data["head"])[:12] if data["head"] else "none (nothing taken in yet)"
    out.print(f"following: {data['following']}; store head {head}; lag {data['lag']} "
              f"commit(s)", highlight=False)
    if data["warning"]:
        out.print(f"[yellow]warning:[/] {data['warning']}", highlight=False)
    out.print(f"variants: {data['variants_made']:,} stored, {data['variants_pending']:,} "
              f"pending; context: {data['context_pending']:,} file(s) pending",
              highlight=False)
    last = data["last_ingest"]
    if last:
        out.print(f"last ingest: {last['commits']} commit(s) up to {str(last['commit'])[:12]}, "
                  f"{last['files']} file(s), {last['windows']} window(s) in {last['ms']:.0f} ms",
                  highlight=False)
    hooks = data["hooks"]
    missing = [name for name, state in hooks.items() if state != "installed"]
    out.print("hooks: installed" if not missing else
              f"hooks: {', '.join(f'{n} {hooks[n]}' for n in missing)} — run `repofeed install`",
              highlight=False)


config_app = typer.Typer(help="The configuration a store is made with, and where each value "
                                "comes from.", no_args_is_help=True)
app.add_typer(config_app, name="config")


@config_app.command("show")
def config_show(
    repo: RepoArg = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """The effective configuration (defaults → repofeed.toml or [tool.repofeed] → REPOFEED_*
    variables) and where each value came from; beside it, what the store was made with."""
    from repofeed.store.config import READ, Config, resolve_config
    from repofeed.store.locate import open_repository, store_dir_of
    from repofeed.store.reader import Store

    git = open_repository(repo)
    cfg, where = resolve_config(Path(git.workdir) if git.workdir else None)
    effective = {k: v for k, v in cfg.to_dict().items() if k != "extra"}
    store_dir = store_dir_of(git)
    stored = None
    if (store_dir / "data.mdb").is_file():
        with Store(store_dir) as store:
            stored = {k: v for k, v in store.config.to_dict().items() if k != "extra"}
    if as_json:
        print(json.dumps({"effective": effective, "source": where, "store": stored,
                          "store_path": str(store_dir) if stored is not None else None,
                          "read_time": list(Config.read_time())}, indent=2))
        return
    when = {name: f.metadata["when"] for name, f in Config.options().items()}
    table = Table(box=None, pad_edge=False)
    for column in ("key", "value", "from", "applies") + (
            ("store",) if stored is not None else ()):
        table.add_column(column, overflow="fold", no_wrap=column != "value")
    root = f"{git.workdir.rstrip('/')}/" if git.workdir else None
    for key, value in effective.items():
        source = where.get(key, "default")
        if root and source.startswith(root):
            source = source[len(root):]            # repofeed.toml:3, at the repository's root
        row = [f"[bold]{key}", escape(str(value)), escape(source), when[key]]
        if stored is not None:
            kept = stored.get(key)
            row.append("" if kept == value or when[key] == READ
                       else f"[yellow]{escape(str(kept))}")
        table.add_row(*row)
    out.print(table)
    out.print("applies: ingest — shapes what is written; read — policy applied when training "
              "reads, so a change needs no re-ingest.", highlight=False)
    if stored is not None and any(stored.get(k) != v for k, v in effective.items()
                                  if when[k] != READ):
        out.print(f"The store at {store_dir} was made with the values in the store column; "
                  f"`repofeed init --force` makes it anew with the effective ones.",
                  highlight=False)


service_app = typer.Typer(help="Run the daemon as a systemd user service, one per repository.",
                          no_args_is_help=True)
app.add_typer(service_app, name="service")


@service_app.command("install")
def service_install(repo: RepoArg = None) -> None:
    """Write the user unit and start it (or say how, where no user manager runs)."""
    from . import service

    report = service.install(repo)
    _print_service_report(report, "installed")


@service_app.command("uninstall")
def service_uninstall(repo: RepoArg = None) -> None:
    """Stop and disable the repository's service and remove what `install` wrote."""
    from . import service

    report = service.uninstall(repo)
    _print_service_report(report, "removed")


@service_app.command("status")
def service_status(
    repo: RepoArg = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """The unit's name, whether it is installed, and what systemd says of it."""
    from . import service

    data = service.status(repo)
    if as_json:
        print(json.dumps(data, indent=2))
        return
    for key, value in data.items():
        out.print(f"[bold]{key}[/] {value}", highlight=False)


def _print_service_report(report, verb: str) -> None:
    out.print(f"{report.unit}: {verb}", highlight=False)
    for path in report.files:
        out.print(f"  {path}", highlight=False)
    for line in report.ran:
        out.print(f"  ran {line}", highlight=False)
    if report.todo:
        out.print("Then run:" if not report.ran else "Also:", highlight=False)
        for line in report.todo:
            out.print(f"  {line}", highlight=False)


class _JournalFormatter:
    """``<priority>LEVEL message``: journald reads the syslog priority from the prefix."""

    PRIORITY = {"DEBUG": 7, "INFO": 6, "WARNING": 4, "ERROR": 3, "CRITICAL": 2}

    def __init__(self, inner) -> None:
        self.inner = inner

    def format(self, record) -> str:
        return f"<{self.PRIORITY.get(record.levelname, 6)}>{self.inner.format(record)}"


def _stderr_is_journal() -> bool:
    """Whether stderr is journald's stream (systemd sets JOURNAL_STREAM to its dev:inode)."""
    stream = os.environ.get("JOURNAL_STREAM", "")
    try:
        st = os.fstat(sys.stderr.fileno())
    except (OSError, ValueError):
        return False
    return stream == f"{st.st_dev}:{st.st_ino}"


def _configure_logging(verbose: bool) -> None:
    """One line per event on stderr, with its level; under journald with its priority prefix
    (journald adds the time)."""
    import logging

    handler = logging.StreamHandler(sys.stderr)
    formatter = logging.Formatter("%(levelname)s %(message)s")
    handler.setFormatter(_JournalFormatter(formatter) if _stderr_is_journal() else formatter)
    root = logging.getLogger("repofeed")
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    root.propagate = False


class ShowKind(StrEnum):
    window = "window"
    record = "record"
    path = "path"


# ``ignore_unknown_options``: ``-1`` reaches NUMBER as an argument (and gets a clear "there
# is no window -1") instead of click's "No such option: -1".
@app.command(context_settings={"ignore_unknown_options": True})
def show(
    kind: Annotated[ShowKind, typer.Argument(help="window, record or path")],
    which: Annotated[str, typer.Argument(
        metavar="N|PATH",
        help="A window's index, from 0, in WindowDataset's order; a record's sequence number "
             "in the store, from 0, in the order records were written (superseded ones "
             "included and marked); for `path`, a file's path in the repository.")],
    repo: RepoArg = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Print one window or evolution record, decoded, with where it comes from; or how a
    path is sampled: its weight and what set it, or why it is left out."""
    from repofeed.store import open_store
    from repofeed.store.errors import StoreError
    from repofeed.store.schema import K_COMMITS_DONE, K_HEAD

    if kind is ShowKind.path:
        _show_path(which, repo, as_json)
        return
    try:
        number = int(which)
    except ValueError:
        raise StoreError(f"{kind.value}s are numbered: give a number, not {which!r}") from None
    if number < 0:
        raise StoreError(f"there is no {kind.value} {number}: {kind.value}s are numbered from 0 "
                         f"(`repofeed stats` says how many the store holds).")
    with open_store(repo) as store:
        if store.meta(K_COMMITS_DONE, 0) == 0 and store.meta(K_HEAD) is None:
            raise StoreError(f"there is no {kind.value} {number}: the store holds nothing yet; "
                             f"run `repofeed backfill` first.")
        if kind is ShowKind.window:
            item = store.window(number)
            item.pop("array")
            header = (f"window {number}: {_shown(item['path'])} tokens "
                      f"{item['start']}–{item['end']} (blob {item['blob'][:12]}, "
                      f"commit {str(item['commit'])[:12]})")
            body = item["text"]
        else:
            item = store.record(number)
            header = (f"record {number}"
                      + (" (superseded: its commit is no longer reachable from the followed "
                         "ref or a local branch; datasets leave it out)"
                         if item["superseded"] else "")
                      + f": {item['change']} {_shown(item['path'])}"
                      + (f" (from {_shown(item['old_path'])})" if item["old_path"] else "")
                      + f" in commit {item['commit'][:12]} by {item['author']}, "
                      f"parent {str(item['parent'])[:12]}, {item['n_before']} → "
                      f"{item['n_after']} tokens, {len(store.record_views(number))} view(s)")
            body = (f"<commit_before>{item['before'] or ''}<commit_msg>{item['message']}"
                    f"<commit_after>{item['after'] or ''}")
    if as_json:
        print(json.dumps(item, indent=2, default=str))
        return
    out.print(header, style="bold", highlight=False, markup=False)
    sys.stdout.flush()
    sys.stdout.write(body if body.endswith("\n") else body + "\n")


def _show_path(path: str, repo: str | None, as_json: bool) -> None:
    from repofeed.store import open_store
    from repofeed.store.policy import Policy

    with open_store(repo) as store:
        rel = path.replace(os.sep, "/")
        found = Policy.for_store(store).explain(store, rel[2:] if rel.startswith("./") else rel)
    if as_json:
        print(json.dumps(found, indent=2, default=str))
        return
    out.print(f"{_shown(found['path'])}: {found['why']}", style="bold", highlight=False,
              markup=False)
    if not found["in_store"]:
        return
    table = Table(show_header=False, box=None, pad_edge=False)
    for key in ("class", "language", "n_tokens", "attrs", "cluster", "cluster_members",
                "complexity", "stats"):
        value = found.get(key)
        if value:
            table.add_row(f"[bold]{key}", escape(_stat_text(key, value)))
    out.print(table)


# Training verbs live with the training room; their module imports no torch until they run.
app.command("train")(train_cli.train)
app.command("eval")(train_cli.evaluate)
app.command("ablate")(train_cli.ablate)


def _shown(path: str) -> str:
    """A path for the terminal: a name that is not UTF-8 shows its odd bytes as ``\\xe9``
    (stdout's strict UTF-8 cannot write the surrogates that keep them; schema.path_str)."""
    from repofeed.store.schema import path_bytes

    return path_bytes(path).decode("utf-8", "backslashreplace")


def main() -> None:
    try:
        app()
    except RepofeedError as exc:
        err.print(f"[red]error:[/] {escape(str(exc))}", highlight=False)
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    main()
