"""``repofeed status``: is a daemon running, what does the store follow, how far behind is it.

Read-only and light: it opens the store for reading, git, and the daemon's state file
(``<git common dir>/repofeed/daemon.json``), and takes no lock.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pygit2

from repofeed.hooks.install import hook_states
from repofeed.store.locate import open_repository, repofeed_dir, store_dir_of
from repofeed.store.proclocks import lock_holders
from repofeed.store.reader import Store
from repofeed.store.schema import K_FOLLOW, K_HEAD, K_PIN, K_REPO
from repofeed.store.writer import lock_path

from .context import stale
from .history import (
    describe_ref,
    describe_tip,
    followed_repository,
    new_commits,
    ref_problem,
    tip_of,
)

STATE_NAME = "daemon.json"


def state_path(repo: pygit2.Repository) -> Path:
    """Where the daemon says what it is doing: beside the spool, shared by all worktrees."""
    return repofeed_dir(repo) / STATE_NAME


def read_state(repo: pygit2.Repository) -> dict[str, Any]:
    try:
        return json.loads(state_path(repo).read_text("utf-8"))
    except (OSError, ValueError):
        return {}


def lock_holder(lock: Path) -> int | None:
    """The pid holding the flock on ``lock``: no lock is taken, so a daemon starting meanwhile
    never finds the store busy because of ``status``."""
    holders = lock_holders(lock, "FLOCK")
    return holders[0] if holders else None


def _alive(pid: Any) -> bool:
    """Whether ``pid`` is a live process (only used where /proc/locks cannot say)."""
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _follow_warning(repo: pygit2.Repository, follow: str, tip: pygit2.Commit | None,
                    head: str | None) -> str | None:
    """Why the followed ref names no commit, and what the store keeps meanwhile."""
    if tip is not None:
        return None
    problem = ref_problem(repo, follow) or "names no commit"
    kept = f"; the store keeps its snapshot of {head[:12]}" if head and follow != "HEAD" else ""
    return f"{describe_ref(repo, follow)} {problem}{kept}"


def daemon_status(repo_path: str | Path | None, store: str | Path | None = None
                  ) -> dict[str, Any]:
    """The daemon and the repository's store, or the store at ``store`` (a pinned one, say)."""
    repo = open_repository(repo_path)
    state = read_state(repo)
    store_dir = Path(store).resolve() if store else store_dir_of(repo)
    holder = lock_holder(lock_path(store_dir))
    if Path("/proc/locks").exists():
        running = holder is not None and holder == state.get("pid") and \
            state.get("state") == "running"
    else:
        running = state.get("state") == "running" and _alive(state.get("pid"))
    with Store(store_dir) as store:
        follow = store.meta(K_FOLLOW)
        head = store.meta(K_HEAD)
        pin = store.meta(K_PIN)
        followed = followed_repository(repo, store.meta(K_REPO))
        tip = tip_of(followed, follow) if pin is None else followed.get(pin)
        todo = new_commits(followed, tip, head)
        lag = len(store.unprocessed([c.id.raw for c in todo]))
        store_path = str(store.path)
        variants = store.variant_summary()
        changed, removed = stale({d["path"]: d for d in store.documents(weighed=False)},
                                 store.import_entries())
        context_pending = len(changed) + len(removed) if store.config.context_documents else 0
    return {
        "running": running,
        "pid": state.get("pid") if running else None,
        "followed": [follow],
        "checked_out": describe_ref(followed, follow),
        "following": describe_tip(followed, follow, tip) if pin is None else
        f"commit {pin[:12]} (pinned: a store for a temporal split)",
        "pinned_at": pin,
        "warning": _follow_warning(followed, follow, tip, head),
        "head": head,
        "tip": str(tip.id) if tip is not None else None,
        "lag": lag,
        "up_to_date": lag == 0 and head == (str(tip.id) if tip is not None else None),
        # (content, recipe) pairs whose variant is still to be made: they land after the
        # commit that brought the content, in transactions of their own
        "variants_pending": variants.pending,
        "variants_made": sum(variants.made.values()),
        "context_pending": context_pending,  # files whose import graph entry is stale
        "last_ingest": state.get("last_ingest"),
        "watches": state.get("watches", 0) if running else 0,
        "reconciles": state.get("reconciles", 0) if running else 0,
        "writer_pid": holder,  # the daemon's, or a backfill's
        "store_path": store_path,
        "hooks": {h.name: h.state for h in hook_states(repo_path)},
    }
