"""The snapshot: the documents of the followed tip's tree, moved from the old tip's tree by
their difference alone, in one transaction with the liveness marks and the new head.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pygit2

from repofeed.store.attributes import linguist_attrs
from repofeed.store.languages import detect_language
from repofeed.store.locate import is_under
from repofeed.store.schema import K_HEAD, K_PENDING, K_ROOTS, content_key
from repofeed.store.secrets import redact_path
from repofeed.store.windows import window_count
from repofeed.store.writer import Liveness, SnapshotChange

from .history import tree_changes

if TYPE_CHECKING:
    from .ingest import BackfillResult, Syncer


def sync_snapshot(syncer: Syncer, tip: pygit2.Commit | None, liveness: Liveness | None = None,
                  result: BackfillResult | None = None) -> tuple[int, int]:
    """Bring the snapshot documents to ``tip``'s tree and apply ``liveness``, in one
    transaction; returns (documents changed, windows written)."""
    old_head = syncer.writer.meta(K_HEAD)
    new_head = str(tip.id) if tip is not None else None
    unchanged_roots = liveness is None or (
        not liveness.superseded and not liveness.restored
        and liveness.roots == syncer.writer.meta(K_ROOTS)
        and not syncer.writer.meta(K_PENDING))
    if old_head == new_head and old_head is not None and unchanged_roots:
        return 0, 0
    old_tree = None
    if old_head is not None:
        try:
            old_tree = syncer.repo[old_head].peel(pygit2.Tree)
        except (KeyError, ValueError):
            old_tree = None  # the old head is gone (history rewritten and pruned)
    new_tree = tip.tree if tip is not None else None
    pending: list[tuple[str, bytes, str, pygit2.Oid]] = []
    changes: list[SnapshotChange] = []
    texts: dict[bytes, str] = {}
    described: dict[str, tuple[dict, str]] = {}   # path -> (linguist attributes, language)
    seen: set[str] = set()
    for git_path, oid, mode in tree_changes(syncer.repo, old_tree, new_tree):
        if is_under(git_path, syncer.own):
            continue  # repofeed's own files, committed by a `git add -A`
        path = redact_path(git_path)  # a secret in a file name is not stored either
        seen.add(path)
        if oid is None:
            changes.append(SnapshotChange(path))
            continue
        text, reason = syncer.blobs.read(oid, mode, git_path)  # redacted; .env left out
        if text is None:
            changes.append(SnapshotChange(path, None, reason))
            continue
        key = content_key(text)
        texts[key] = text
        pending.append((path, key, text, oid))
        attrs = linguist_attrs(syncer.repo, git_path, tip)
        described[path] = attrs, detect_language(path, text, attrs.get("linguist-language"))
    if old_tree is None:  # no base to diff from: also drop what the new tree lacks
        known = set(syncer.writer.documents())
        changes.extend(SnapshotChange(p) for p in sorted(known - seen))
    fresh = syncer.encoder.encode_missing(
        texts, languages={key: described[path][1] for path, key, _, _ in pending})
    windows = 0
    for path, key, _text, oid in pending:
        n_tokens = len(fresh[key]) if key in fresh else len(syncer.writer.read_array(key))
        attrs, language = described[path]
        windows += window_count(n_tokens, syncer.cfg.max_tokens, syncer.cfg.stride)
        doc = {"path": path, "hash": key, "n_tokens": n_tokens, "language": language,
               "blob": str(oid), "source": "commit"}
        if attrs:
            doc["attrs"] = attrs
        changes.append(SnapshotChange(path, doc))
    syncer.writer.sync_snapshot(new_head, changes, fresh, liveness,
                                facts=syncer.encoder.take_facts(fresh), texts=texts)
    if result is not None:
        result.changed_paths = [c.path for c in changes]
        result.rebuilt = old_tree is None
    return len(changes), windows
