"""Which processed commits are live: reachable from the followed ref or a local branch.

After an amend, a rebase, a reset or a deleted branch, the commits the old roots reached and
the new ones do not are superseded; superseded commits a new root reaches again are restored.
Only the difference between the two sets of roots is walked. The writer applies the result
(``StoreWriter.sync_snapshot``) in the same transaction as the snapshot it goes with.
"""

from __future__ import annotations

import pygit2

from repofeed.store.schema import K_HEAD, K_PENDING, K_ROOTS, K_SUPERSEDED
from repofeed.store.writer import Liveness, StoreWriter

from .history import live_roots, reachable_only


def liveness(repo: pygit2.Repository, writer: StoreWriter, follow: str,
             tip: pygit2.Commit | None) -> Liveness:
    """Which processed commits the roots no longer reach, or reach again.

    Only the difference between the roots of the last run and now is walked, so the cost
    follows the size of a rewrite, not of the history. If an old tip is gone from the
    object database (pruned), every live commit is checked against the new roots instead.
    """
    old_head = writer.meta(K_HEAD)
    old_roots = writer.meta(K_ROOTS) or ({follow: old_head} if old_head else {})
    live = Liveness(live_roots(repo, follow, tip))
    old_tips = set(old_roots.values()) | set(writer.meta(K_PENDING) or [])
    new_tips = set(live.roots.values())
    lost = old_tips - new_tips
    if lost and all(t in repo for t in lost):
        flags = writer.superseded_flags(reachable_only(repo, lost, new_tips))
        live.superseded = [oid for oid, superseded in flags.items() if not superseded]
    elif lost:
        reachable = set(reachable_only(repo, new_tips, ()))
        live.superseded = [oid for oid in writer.live_commits() if oid not in reachable]
    gained = new_tips - old_tips
    if gained and writer.meta(K_SUPERSEDED, 0) > 0:
        # A superset is right here: all it gives is reachable from a new root, so live.
        flags = writer.superseded_flags(reachable_only(repo, gained, old_tips, exact=False))
        live.restored = [oid for oid, superseded in flags.items() if superseded]
    return live
