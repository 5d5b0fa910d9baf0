"""The daemon: nudged by hooks and ref changes, it keeps the store equal to git.

It holds the store's writer lock for its whole life (a second daemon, or a backfill, gets a
clear error), reconciles once at start — so commits made while it was down are taken in — and
again after every burst of nudges has settled. A reconcile is the same ``Syncer.run`` that a
backfill does: new commits, one transaction each; then the snapshot, the superseded marks and
the head, in one. A kill at any moment loses nothing committed, and the next reconcile finishes
the job. Between nudges it sleeps on an event: no timer, no polling.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path
from typing import Any

from repofeed.hooks.install import hook_states, spool_path
from repofeed.store.errors import RepofeedError
from repofeed.store.gc import AUTO_FRACTION, AUTO_INTERVAL, collect, survey
from repofeed.store.locate import common_dir, open_repository, store_dir_of
from repofeed.store.schema import K_FOLLOW
from repofeed.store.secrets import redact
from repofeed.store.variants.stored import Pending
from repofeed.store.writer import StoreWriter

from .context import ContextMaker
from .ingest import BackfillResult, Syncer
from .notify import Notifier
from .status import STATE_NAME, read_state, state_path
from .variants import (
    BATCH_CONTENTS,
    VariantMaker,
    identifier_counts,
    transform_batch,
    worker_pool,
)
from .watch import RefWatcher
from .worktree import (
    FALLBACK_RESCAN_SECONDS,
    RESCAN_SECONDS,
    WorktreeOverlay,
    WorktreeWatcher,
)

log = logging.getLogger("repofeed.daemon")

SETTLE_SECONDS = 0.01     # quiet time after the last nudge before a reconcile
MAX_SETTLE_SECONDS = 0.5  # a steady stream of nudges still gets a reconcile this often
VARIANT_POLL_SECONDS = 0.05  # how often a batch of variants in flight is looked at
RETRY_SECONDS = (1, 2, 5, 10, 30, 60)  # after a failed reconcile (a full disk, a locked ref)


class _Stopping(BaseException):
    """Raised in the main thread by SIGTERM/SIGINT during a reconcile. Every transaction
    either committed or was aborted, so the store stays whole."""


# While git replays many commits (rebase, am, a cherry-pick or revert of a range), HEAD moves
# once per commit; the store waits for the end, when these directories go away. A sequence
# stopped on a conflict is not waited out for ever.
SEQUENCE_DIRS = ("rebase-merge", "rebase-apply", "sequencer")
SEQUENCE_WAIT_SECONDS = 30.0


def sequence_in_progress(git_dir: Path) -> str | None:
    for name in SEQUENCE_DIRS:
        if (git_dir / name).is_dir():
            return name
    return None


class Daemon:
    def __init__(self, repo_path: str | Path | None, *, settle: float = SETTLE_SECONDS,
                 max_settle: float = MAX_SETTLE_SECONDS, watch_worktree: bool | None = None,
                 rescan_seconds: float | None = None, gc_seconds: float = AUTO_INTERVAL):
        repo = open_repository(repo_path)
        self.settle, self.max_settle = settle, max_settle
        self.store_dir = store_dir_of(repo)
        self.writer = StoreWriter(self.store_dir)  # the lock: one daemon per store
        try:
            self.syncer = Syncer(repo, self.writer)
        except BaseException:
            self.writer.close()
            raise
        self.repo = self.syncer.repo  # the worktree whose HEAD the store follows
        self.git_dir = Path(self.repo.path)
        self.state_file = state_path(repo)
        self.spool = spool_path(repo)
        self.watcher = RefWatcher([common_dir(repo), self.git_dir], self.spool, self.nudge)
        if watch_worktree is None:
            watch_worktree = self.syncer.cfg.watch_worktree
        self.worktree: WorktreeWatcher | None = None
        self.overlay: WorktreeOverlay | None = None
        if watch_worktree and self.repo.workdir:
            root = Path(self.repo.workdir)
            self.overlay = WorktreeOverlay(self.repo, self.syncer, root)
            self.worktree = WorktreeWatcher(root, self.nudge)
        self.rescan_seconds = rescan_seconds
        self.variants = VariantMaker(self.syncer.encoder)
        self._variants_due = bool(self.variants.recipes)  # the store may lack some
        self._variant_pool: ProcessPoolExecutor | None = None
        self._variant_job: tuple[str, Future] | None = None
        self._variant_todo: list[Pending] = []
        self.context = ContextMaker(self.syncer.encoder)
        self._context_due = self.context.enabled
        self.gc_seconds = gc_seconds
        self._next_gc = 0.0
        self._gc_due = True  # the store changed since garbage was last looked for
        self._gc_waiting = False  # garbage waits out its grace period
        self._next_rescan = 0.0
        self.notifier = Notifier()
        self.syncer.set_heartbeat(self.notifier.progress)
        self._wake = threading.Event()
        self._last_nudge = 0.0
        self._stop = False
        self._in_reconcile = False
        self._failures = 0
        self._warned: set[str] = set()
        self._busy_since: float | None = None
        self._busy_overdue = False
        previous = read_state(repo)
        self.last_ingest: dict[str, Any] | None = previous.get("last_ingest")
        self.state: dict[str, Any] = {
            "pid": os.getpid(), "state": "starting", "started": time.time(),
            "repo": str(self.repo.workdir or self.repo.path), "store": str(self.store_dir),
            "reconciles": 0,
        }

    # -- events -------------------------------------------------------------------------------

    def nudge(self, why: str) -> None:
        """Called from the watcher's thread: something may have changed."""
        self._last_nudge = time.monotonic()
        log.debug("nudge: %s", why)
        self._wake.set()

    def _on_signal(self, signum: int, _frame: object) -> None:
        log.info("%s received, stopping", signal.Signals(signum).name)
        self._stop = True
        self._wake.set()
        if self._in_reconcile:
            raise _Stopping

    def _settle_burst(self) -> None:
        """Wait until nudges have been quiet for ``settle`` seconds, at most ``max_settle``."""
        deadline = time.monotonic() + self.max_settle
        while not self._stop:
            now = time.monotonic()
            remaining = min(self._last_nudge + self.settle, deadline) - now
            if remaining <= 0:
                return
            time.sleep(remaining)

    def _take_spool(self) -> None:
        """Empty the spool; its lines are logged, never trusted (git is the truth)."""
        taken = self.spool.with_name(self.spool.name + ".taken")
        try:
            os.replace(self.spool, taken)
        except FileNotFoundError:
            return
        except OSError as exc:
            log.warning("cannot take the spool %s: %s", self.spool, exc)
            return
        try:
            for line in taken.read_text("utf-8", "replace").splitlines()[:1000]:
                log.debug("hook: %s", redact(line)[0])  # a ref's name could hold anything
            taken.unlink()
        except OSError:
            pass

    # -- work ---------------------------------------------------------------------------------

    def _check_watchers(self) -> None:
        """A watcher thread that died would leave the store silently stale: stop instead, with
        an error, so that systemd (Restart=on-failure) or the user starts a fresh daemon."""
        dead = [name for name, alive in (
            ("refs", self.watcher.alive),
            ("worktree", self.worktree is None or self.worktree.alive),
        ) if not alive]
        if dead:
            raise RepofeedError(f"the {' and '.join(dead)} watcher stopped unexpectedly; the "
                                f"daemon exits so that it can be started afresh")

    def _rescan_interval(self) -> float:
        if self.rescan_seconds is not None:
            return self.rescan_seconds
        limited = self.worktree is not None and self.worktree.limit_reached
        return FALLBACK_RESCAN_SECONDS if limited else RESCAN_SECONDS

    def _apply_worktree(self, result: BackfillResult) -> tuple[int, int]:
        """Bring the worktree's documents up to date after the commits; (docs, windows)."""
        watcher, overlay = self.worktree, self.overlay
        if watcher is None or overlay is None:
            return 0, 0
        dirty, new_dirs, rescan = watcher.take()
        dirty |= set(result.changed_paths)
        rescan = rescan or result.rebuilt
        if (self.git_dir / "index.lock").exists():  # git is writing the index: read nothing
            watcher.put_back(dirty, new_dirs, rescan)
            log.debug("git holds the index lock; the worktree waits for it")
            return 0, 0
        try:
            overlay.refresh_index()
            for directory in sorted(new_dirs):
                if not overlay.is_ignored(directory + "/"):
                    dirty.update(watcher.watch_tree(directory, overlay.is_ignored))
            now = time.monotonic()
            if now >= self._next_rescan:
                rescan = True
            if rescan:
                self._next_rescan = now + self._rescan_interval()
            if not dirty and not rescan:
                return 0, 0
            return overlay.apply(dirty, full=rescan)
        except BaseException:  # a full disk, a stop: the retry (or the next start) takes them
            watcher.put_back(dirty, new_dirs, rescan)
            raise

    def reconcile(self, why: str) -> BackfillResult | None:
        started = time.perf_counter()
        self._in_reconcile = True
        try:
            result = self.syncer.run(self._progress)
            worktree_docs, worktree_windows = self._apply_worktree(result)
        except Exception as exc:  # a service retries; the message says why
            self._failures += 1
            wait = RETRY_SECONDS[min(self._failures, len(RETRY_SECONDS)) - 1]
            kind = "" if isinstance(exc, RepofeedError) else f"{type(exc).__name__}: "
            log.error("updating the store failed (%s%s); retrying in %d s", kind, exc, wait)
            return None
        finally:
            self._in_reconcile = False
        self._failures = 0
        for warning in result.warnings:  # each once while it lasts, not on every nudge
            if warning not in self._warned:
                log.warning("%s", warning)
        self._warned = set(result.warnings)
        self.state["reconciles"] = self.state.get("reconciles", 0) + 1
        ms = (time.perf_counter() - started) * 1000
        changed = result.commits or result.documents_changed or result.superseded or \
            result.restored or worktree_docs
        if changed:
            self.last_ingest = {
                "commit": result.last_commit or result.head, "commits": result.commits,
                "records": result.records, "files": result.documents_changed + worktree_docs,
                "windows": result.windows_written + worktree_windows,
                "worktree_files": worktree_docs, "superseded": result.superseded,
                "restored": result.restored, "ms": round(ms, 1), "at": time.time(),
            }
            log.info("%s: %d commit(s), %d record(s), %d document(s), %d window(s), "
                     "%d superseded, %d restored, %d worktree document(s) in %.0f ms; head %s",
                     why, result.commits, result.records, result.documents_changed,
                     result.windows_written, result.superseded, result.restored,
                     worktree_docs, ms, (result.head or "none")[:12])
        else:
            log.debug("%s: up to date (%.1f ms)", why, ms)
        self._gc_due = self._gc_due or bool(changed)
        self._variants_due = bool(self.variants.recipes) and (self._variants_due or bool(changed))
        if changed:
            self._variant_todo = []  # read the pending variants again
            self._context_due = self.context.enabled
        self._maybe_collect()
        self._write_state(head=result.head)
        self.notifier.status(f"up to date at {(result.head or 'no commit')[:12]}; "
                             f"{self.state['watches']} directories watched")
        return result

    def _tend_variants(self) -> None:
        """Store the variants of a finished batch and start the next one (never waits): the
        transforms run in a worker process, so a commit's variants land in transactions
        after its own, and a nudge never waits for them. The store's first batch is the
        repository's vocabulary of identifiers (``daemon/variants.py``)."""
        if self._variant_job is not None:
            kind, job = self._variant_job
            if not job.done():
                return
            self._variant_job = None
            try:
                if kind == "vocabulary":
                    self.variants.keep_names(job.result())
                else:
                    made = self.variants.store(job.result())
                    self._gc_due = True  # remade variants leave their old arrays behind
                    log.info("variants: %d made for %d file(s)%s", made.variants,
                             made.contents, "".join(f", none for {n} ({r})" for r, n in
                                                    sorted(made.reasons.items())))
            except Exception as exc:  # a worker that died, a full disk: the next change retries
                log.error("making variants failed (%s: %s); they are retried after the next "
                          "change", type(exc).__name__, exc)
                self._stop_variant_pool()
                self._variants_due = False
                return
        if self._context_due:
            self._context_due = False
            try:
                done = self.context.run()
            except Exception as exc:  # a full disk: the next change retries
                log.error("updating the context documents failed (%s: %s); retried after "
                          "the next change", type(exc).__name__, exc)
            else:
                if done.files_read or done.written or done.removed:
                    log.info("context: imports of %d file(s) read, %d context document(s) "
                             "written, %d removed in %.0f ms", done.files_read, done.written,
                             done.removed, done.seconds * 1000)
            return  # the next look starts the variants: a nudge that came meanwhile first
        if not self._variants_due:
            return
        if not self._variant_todo:  # read again after each change, and when used up
            self._variant_todo = self.variants.pending()
        todo = self._variant_todo
        if not todo:
            self._variants_due = False
            return
        if self._variant_pool is None:
            self._variant_pool = worker_pool(1)
        names = self.variants.stored_names()
        timeout_s = self.variants.timeout_s
        if names is None:
            texts = [(self.writer.text_of(p.content), p.language) for p in todo]
            self._variant_job = ("vocabulary", self._variant_pool.submit(
                identifier_counts, texts, timeout_s))
        else:
            batch, self._variant_todo = todo[:BATCH_CONTENTS], todo[BATCH_CONTENTS:]
            self._variant_job = ("variants", self._variant_pool.submit(
                transform_batch, self.variants.jobs(batch), names, timeout_s))

    def _stop_variant_pool(self) -> None:
        if self._variant_pool is not None:
            self._variant_pool.shutdown(wait=False, cancel_futures=True)
            self._variant_pool = None
        self._variant_job = None

    def _maybe_collect(self) -> None:
        """Collect garbage when it passes AUTO_FRACTION of the store's used pages, looking at
        most every ``gc_seconds``, and only after the store changed (an idle store makes no
        new garbage), or while garbage waits out its grace period."""
        now = time.monotonic()
        if not self._gc_due or now < self._next_gc:
            return
        self._next_gc = now + self.gc_seconds
        self._gc_due = False
        try:
            if not self._gc_waiting:  # garbage marked earlier is swept whatever its share
                garbage = survey(self.writer.handle)
                if garbage.garbage_bytes < AUTO_FRACTION * max(garbage.used_bytes, 1) and \
                        not garbage.superseded_commits:
                    return
            done = collect(self.writer)
            self._gc_waiting = self._gc_due = bool(done.marked or done.waiting_commits)
        except RepofeedError as exc:
            log.error("garbage collection failed (%s); the next one is in %.0f s", exc,
                      self.gc_seconds)
            return
        if done.commits or done.arrays or done.marked:
            log.info("garbage collection: %d superseded commit(s) and %d token array(s) "
                     "removed (%.1f MB), %d array(s) and %d commit(s) wait out the grace "
                     "period (%d other reader(s)) in %.0f ms", done.commits, done.arrays,
                     done.bytes_freed / 1e6, done.marked, done.waiting_commits, done.readers,
                     done.seconds * 1000)

    def _progress(self, total: int):
        """Syncer progress: keeps systemd's watchdog fed and its status told during a long
        catch-up, when the main loop is busy."""
        last = [0.0]

        def tick(done: int, _bytes: int) -> None:
            self.notifier.ping_if_due()
            now = time.monotonic()
            if total > 1 and now - last[0] > 1.0:
                last[0] = now
                self.notifier.status(f"catching up: {done:,} of {total:,} commits")

        return tick

    def _timeout(self) -> float | None:
        """How long to sleep without a nudge: until a retry or the end of a sequence's grace,
        else for ever (no polling)."""
        waits = []
        if self._variant_job is not None:
            waits.append(VARIANT_POLL_SECONDS)
        elif self._variants_due or self._context_due:
            waits.append(0.0)
        if self._failures:
            waits.append(RETRY_SECONDS[min(self._failures, len(RETRY_SECONDS)) - 1])
        if self._busy_since is not None:
            waits.append(max(0.0, self._busy_since + SEQUENCE_WAIT_SECONDS - time.monotonic()))
        if self.worktree is not None:
            waits.append(max(0.0, self._next_rescan - time.monotonic()))
        if self._gc_due:
            waits.append(max(0.0, self._next_gc - time.monotonic()))
        ping = self.notifier.seconds_to_ping()
        if ping is not None:
            waits.append(ping)
        return min(waits) if waits else None

    def _git_busy(self) -> bool:
        """Whether to wait for a rebase, am or multi-commit cherry-pick to end."""
        name = sequence_in_progress(self.git_dir)
        if name is None:
            self._busy_since, self._busy_overdue = None, False
            return False
        now = time.monotonic()
        if self._busy_since is None:
            self._busy_since = now
            log.info("git is replaying commits (%s); the store waits for the end, at most "
                     "%.0f s", name, SEQUENCE_WAIT_SECONDS)
            return True
        if now - self._busy_since < SEQUENCE_WAIT_SECONDS:
            return True
        if not self._busy_overdue:
            self._busy_overdue = True
            log.info("%s still in progress after %.0f s (stopped on a conflict?); updating the "
                     "store anyway", name, SEQUENCE_WAIT_SECONDS)
        return False

    def _write_state(self, **updates: Any) -> None:
        worktree = self.worktree.watches if self.worktree is not None else 0
        self.state.update(updates, last_ingest=self.last_ingest,
                          watches=self.watcher.watches + worktree, worktree_watches=worktree,
                          watch_limit_reached=bool(self.worktree and self.worktree.limit_reached))
        tmp = self.state_file.with_name(f".{STATE_NAME}.{os.getpid()}")
        try:
            tmp.write_text(json.dumps(self.state), "utf-8")
            os.replace(tmp, self.state_file)
        except OSError as exc:
            log.warning("cannot write %s: %s", self.state_file, exc)

    def run(self) -> int:
        """Serve until SIGTERM or SIGINT; returns the exit status (0 on a clean stop)."""
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            self.watcher.start()  # before the first reconcile, so nothing falls in between
            log.info("watching %s (store %s, following %s)", self.state["repo"],
                     self.store_dir, self.writer.meta(K_FOLLOW))
            missing = [h.name for h in hook_states(self.repo.workdir or self.repo.path)
                       if h.state != "installed"]
            if missing:
                log.info("hooks not installed (%s): watching refs only; `repofeed install` "
                         "adds them", ", ".join(missing))
            if self.worktree is not None and self.overlay is not None:
                self.worktree.start(self.overlay.is_ignored)
                log.info("watching the worktree: %d directories (ignored ones left out)",
                         self.worktree.watches)
            self._write_state(state="running")
            self.notifier.ready("store open; catching up")
            self._take_spool()
            self.reconcile("start")  # with a full comparison of the worktree: _next_rescan is 0
            while not self._stop:
                nudged = self._wake.wait(self._timeout())
                self.notifier.ping_if_due()
                if self._stop:
                    break
                self._check_watchers()
                self._tend_variants()
                if not nudged:
                    self._maybe_collect()
                if not (nudged or self._failures or self._busy_since is not None
                        or (self.worktree is not None
                            and time.monotonic() >= self._next_rescan)):
                    continue  # woken only to feed systemd's watchdog
                self._settle_burst()
                self._wake.clear()
                if self._git_busy():
                    continue
                self._take_spool()
                self.reconcile("nudge")
        except _Stopping:
            pass
        finally:
            self.notifier.stopping()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self.watcher.stop()
            self._stop_variant_pool()
            if self.worktree is not None:
                self.worktree.stop()
            self._write_state(state="stopped", stopped=time.time())
            self.writer.close()
            self.notifier.close()
            log.info("stopped")
        return 0
