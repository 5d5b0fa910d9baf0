"""What wakes the daemon: the hooks' spool, and (as a backstop) HEAD, refs and packed-refs.

libgit2 and so many GUI clients run no hooks, and neither does ``git reset``, so the refs are
watched too. Events are only nudges: the daemon never reads anything from them but the fact
that something happened, and reconciles the refs against the store. Reads (opens, closes
without writing) and ``*.lock`` files are ignored, so that git's — and the daemon's own —
reading of refs wakes nothing.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

from watchdog.events import (
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer

from repofeed.store.errors import RepofeedError

log = logging.getLogger("repofeed.daemon")

# Names directly in a git directory whose change can move what the store follows. The rebase
# directories go away when a rebase ends, which is when its result is ready to read; a shallow
# clone's ``shallow`` changes (or goes) when a fetch gives its boundary commits their parents.
GIT_DIR_NAMES = frozenset({"HEAD", "packed-refs", "rebase-merge", "rebase-apply", "shallow"})
WRITE_EVENTS = [FileCreatedEvent, FileModifiedEvent, FileMovedEvent, FileDeletedEvent,
                FileClosedEvent, DirCreatedEvent, DirDeletedEvent, DirMovedEvent]


class _Handler(FileSystemEventHandler):
    def __init__(self, relevant: Callable[[str], str | None], nudge: Callable[[str], None]):
        self.relevant = relevant
        self.nudge = nudge

    def on_any_event(self, event: FileSystemEvent) -> None:
        for path in (event.src_path, getattr(event, "dest_path", "")):
            if not path:
                continue
            why = self.relevant(os.fsdecode(path), event.event_type)
            if why is not None:
                self.nudge(why)
                return


class RefWatcher:
    """Watches the spool directory and the git directories; calls ``nudge(why)`` from its
    own thread for every relevant change."""

    def __init__(self, git_dirs: list[Path], spool: Path, nudge: Callable[[str], None]):
        self.git_dirs = [d.resolve() for d in dict.fromkeys(git_dirs)]
        self.common = self.git_dirs[0]
        self.refs = self.common / "refs"
        self.spool = spool.resolve()
        self._dirs = {str(d) for d in self.git_dirs}
        self._refs_prefix = str(self.refs) + os.sep
        self._spool = str(self.spool)
        self._refs_dirs: int | None = None
        self._counted = 0.0
        self.observer = Observer()
        handler = _Handler(self.relevant, nudge)
        self.spool.parent.mkdir(parents=True, exist_ok=True)
        for directory in self.git_dirs:
            self.observer.schedule(handler, str(directory), recursive=False,
                                   event_filter=WRITE_EVENTS)
        self.observer.schedule(handler, str(self.refs), recursive=True,
                               event_filter=WRITE_EVENTS)
        if str(self.spool.parent) not in self._dirs:
            self.observer.schedule(handler, str(self.spool.parent), recursive=False,
                                   event_filter=WRITE_EVENTS)

    def relevant(self, path: str, kind: str = "modified") -> str | None:
        """Why a change of ``path`` matters, or None."""
        if path == self._spool:
            # Hooks only append; a move or removal of the spool is the daemon taking it.
            return "hook" if kind in ("created", "modified", "closed") else None
        if path.endswith(".lock"):
            head, name = os.path.split(path)
            # git let go of the index: worktree files may be read again
            if name == "index.lock" and kind in ("deleted", "moved") and head in self._dirs:
                return "index"
            return None
        if path.startswith(self._refs_prefix):
            return "refs"
        head, name = os.path.split(path)
        if name in GIT_DIR_NAMES and head in self._dirs:
            return name
        return None

    @property
    def watches(self) -> int:
        """Directory watches held: one per git directory, the spool's, and each under refs/
        (counted again at most once a minute: refs/tags may hold many files)."""
        now = time.monotonic()
        if self._refs_dirs is None or now - self._counted > 60:
            self._refs_dirs = sum(1 for _ in os.walk(self.refs))
            self._counted = now
        fixed = len(self.git_dirs) + (0 if str(self.spool.parent) in self._dirs else 1)
        return fixed + self._refs_dirs

    def start(self) -> None:
        try:
            self.observer.start()
        except OSError as exc:
            raise RepofeedError(
                f"cannot watch {self.common} for changes ({exc}). The kernel's inotify limits "
                f"may be reached: raise fs.inotify.max_user_watches or "
                f"fs.inotify.max_user_instances (sysctl), or stop other watchers."
            ) from exc

    @property
    def alive(self) -> bool:
        return self.observer.is_alive() and all(e.is_alive() for e in self.observer.emitters)

    def stop(self) -> None:
        if self.observer.is_alive():
            self.observer.stop()
            self.observer.join(timeout=5)
