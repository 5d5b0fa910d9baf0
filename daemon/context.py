"""Repository context (issue 10): the import graph of the snapshot, and a context document per
file that imports others — the file after the files it depends on (``store/context.py``).

The graph is stored per file (``DB_IMPORTS``: what the file imports as written, from which
content, and the repository files that resolves to), so a commit reads the imports of the
files it changed alone. Resolution depends on which files exist, so the whole graph is
resolved again on every change (cheap: no parsing), and a file whose resolved dependencies
differ from the stored ones counts as changed too. Then exactly the context documents that
hold a changed file (``context.dependents``, over the old graph and the new) are written
again, and no other; a target that no longer imports anything loses its document.

Like the variants, context documents land in a transaction after the commit's own; an entry
that disagrees with its document's content is what is pending, so a daemon killed in between
picks the work up at its next start.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from repofeed.store.context import FILE_SEP, affected, changed_edges, order, piece, plan
from repofeed.store.imports import (
    IMPORTS_VERSION,
    LANGUAGES,
    Import,
    from_records,
    imports_of,
    to_records,
)
from repofeed.store.resolvers import Resolver
from repofeed.store.schema import DB_CONTEXT, DB_DOCS, DB_IMPORTS, content_key, unpack

from .encode import Encoder

log = logging.getLogger(__name__)


@dataclass
class ContextDone:
    """What one pass did."""

    files_read: int = 0          # files whose imports were read (new or changed content)
    edges: int = 0               # resolved dependencies in the whole graph
    written: int = 0             # context documents written
    removed: int = 0             # context documents removed
    seconds: float = 0.0


def stale(docs: dict[str, dict], entries: dict[str, dict]) -> tuple[list[str], list[str]]:
    """(files whose imports are to read: new, changed or read by another version; graph
    entries whose file left the snapshot), from the documents and the graph entries."""
    changed = sorted(p for p, d in docs.items() if d.get("language") in LANGUAGES and (
        (e := entries.get(p)) is None or e["hash"] != d["hash"]
        or e["v"] != IMPORTS_VERSION))
    removed = sorted(p for p in entries
                     if p not in docs or docs[p].get("language") not in LANGUAGES)
    return changed, removed


class ContextMaker:
    """Keeps one store's import graph and context documents up to date with its snapshot."""

    def __init__(self, encoder: Encoder):
        self.encoder = encoder
        self.writer = encoder.writer
        cfg = self.writer.config
        self.enabled = cfg.context_documents
        self.budget = cfg.max_tokens   # one window
        self.timeout_s = cfg.parse_timeout_ms / 1000
        self.sep_id = self.writer.tokenizer.sentinel(FILE_SEP)

    def _read(self) -> tuple[dict[str, dict], dict[str, dict], set[str]]:
        """The snapshot's documents, the stored graph entries and the context targets."""
        with self.writer.handle.begin(buffers=True) as txn:
            db = self.writer.db
            docs = {d["path"]: d for d in map(unpack, txn.cursor(db=db[DB_DOCS]).iternext(
                keys=False, values=True))}
            entries = {e["path"]: e for e in map(unpack, txn.cursor(db=db[DB_IMPORTS]).iternext(
                keys=False, values=True))}
            targets = {unpack(v)["path"] for v in txn.cursor(db=db[DB_CONTEXT]).iternext(
                keys=False, values=True)}
        return docs, entries, targets

    def pending(self) -> int:
        """Files whose imports (and so, maybe, context documents) are still to update."""
        if not self.enabled:
            return 0
        docs, entries, _ = self._read()
        changed, removed = stale(docs, entries)
        return len(changed) + len(removed)

    def run(self) -> ContextDone:
        """Bring the graph and the context documents up to the snapshot, in one transaction."""
        started = time.perf_counter()
        done = ContextDone()
        if not self.enabled:
            return done
        docs, entries, targets = self._read()
        changed, removed = stale(docs, entries)
        if not changed and not removed:
            return done
        texts: dict[str, str] = {}

        def text(path: str) -> str | None:
            doc = docs.get(path)
            if doc is None:
                return None
            if path not in texts:
                texts[path] = self.writer.text_of(doc["hash"])
            return texts[path]

        imports: dict[str, list[Import]] = {
            p: from_records(e["imports"]) for p, e in entries.items() if p not in removed}
        for path in changed:
            imports[path] = imports_of(path, text(path), docs[path]["language"], self.timeout_s)
            self.encoder.heartbeat()
        done.files_read = len(changed)
        resolver = Resolver(list(docs), text)
        graph = {p: resolver.resolve(p, found) for p, found in imports.items()}
        done.edges = sum(map(len, graph.values()))
        old = {p: e["deps"] for p, e in entries.items()}
        rewired = set(changed) | changed_edges(old, graph)
        redo = affected(set(changed) | set(removed), old, graph)
        graph_puts = {p: {"path": p, "v": IMPORTS_VERSION, "hash": docs[p]["hash"],
                          "imports": to_records(imports[p]), "deps": graph[p]}
                      for p in rewired if p in graph}
        context_puts: dict[str, dict] = {}
        arrays: dict[bytes, list[int]] = {}
        gone = []
        pieces = _Pieces(self.encoder.tok, text)
        for target in sorted(redo):
            made = self._document(target, graph, pieces) if target in graph else None
            if made is None:
                if target in targets:
                    gone.append(target)
                continue
            key, ids, files = made
            arrays[key] = ids
            context_puts[target] = {"path": target, "hash": key, "n_tokens": len(ids),
                                    "files": files}
            self.encoder.heartbeat()
        self.writer.put_context(graph_puts, removed, context_puts, gone, arrays)
        done.written, done.removed = len(context_puts), len(gone)
        done.seconds = time.perf_counter() - started
        return done

    def _document(self, target: str, graph: dict[str, list[str]], pieces: _Pieces
                  ) -> tuple[bytes, list[int], list[str]] | None:
        """(content key, token ids, paths) of ``target``'s context document, or None where
        no dependency fits beside it. ``context.plan`` chooses what it holds, in tokens:
        each file's piece is encoded alone, a dependency that does not fit whole gives its
        start (at least ``MIN_PART`` tokens), and the pieces are joined by the
        ``<file_sep>`` sentinel, which text cannot spell."""
        files = [p for p in order(target, graph) if p in pieces]
        if len(files) < 2:
            return None
        chosen = plan(files, lambda p: len(pieces.ids(p)), self.budget, 1, MIN_PART)
        if len(chosen) < 2 or chosen[-1][1] is not None:
            return None   # the target alone fills the window
        ids: list[int] = []
        for n, (path, cut) in enumerate(chosen):
            if n:
                ids.append(self.sep_id)
            ids.extend(pieces.ids(path)[:cut])
        key = content_key(CONTEXT_MARK + self.writer.tokenizer.decode(ids))
        return key, ids, [p for p, _ in chosen]


MIN_PART = 64
"""Tokens of a dependency's start worth keeping where the whole does not fit."""
CONTEXT_MARK = "\0context\0"
"""Prefixed to a context document's text for its content hash, so that no file's text (which
would spell ``<file_sep>`` as text) can share its hash and its token array."""


class _Pieces:
    """The snapshot files' pieces (``context.piece``: path line and text) and their token
    ids, read and encoded on first use: a file is encoded once per pass, however many
    documents hold it."""

    def __init__(self, tok, read: Callable[[str], str | None]):
        self.tok, self.read = tok, read
        self._ids: dict[str, list[int]] = {}

    def __getitem__(self, path: str) -> str:
        found = self.read(path)
        if found is None:
            raise KeyError(path)
        return found

    def __contains__(self, path: object) -> bool:
        return isinstance(path, str) and self.read(path) is not None

    def ids(self, path: str) -> list[int]:
        if path not in self._ids:
            self._ids[path] = self.tok.encode(piece(path, self[path]))
        return self._ids[path]
