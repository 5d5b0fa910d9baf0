"""Garbage collection: what nothing live references leaves the store, and never under a reader.

A store that follows rebases, amends and worktree edits for months accumulates two kinds of
garbage: the records of superseded commits, and token arrays that no document, record or
commit message references any more (old versions of edited files). ``collect`` removes both,
in one write transaction, under these rules:

* A superseded commit's entry and records go once it has been superseded for
  ``grace`` seconds (``superseded_at`` is set when it is marked). If it becomes reachable
  again later, it is simply processed again.
* An unreferenced token array is first *marked* (the ``garbage`` database remembers when a
  collection first found it unreferenced) and removed by a later collection once it has been
  unreferenced for ``grace`` seconds. An array referenced again meanwhile (the same text
  came back) is unmarked.
* Both waits are skipped when nothing but the collector has the store open — no other
  process (read from the per-process locks on ``lock.mdb``) and no ``Store`` of its own
  process: then no reader can hold an index that names them.

So a dataset that calls ``refresh()`` at least every ``grace`` seconds (``gc_grace_seconds``,
an hour by default) never reads a removed array; one that does not gets an error naming
``refresh()``. LMDB reuses the freed pages, so the file stops growing; ``compact`` writes a
compacted copy and swaps it in, which gives the space back to the file system.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import shutil
import struct
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import lmdb

from .arrays import SUM_BYTES, chunk_key
from .errors import StoreError
from .lmdbenv import used_pages
from .proclocks import lock_holders
from .schema import (
    DB_COMMITS,
    DB_CONTEXT,
    DB_DOCS,
    DB_FACTS,
    DB_GARBAGE,
    DB_HASHES,
    DB_META,
    DB_RECORDS,
    DB_TOKENS,
    DB_VARIANTS,
    K_COMMITS_DONE,
    K_STORED_TOKENS,
    K_SUPERSEDED,
    pack,
    seq_key,
    seq_of,
    unpack,
)

DEFAULT_GRACE_SECONDS = 3600
AUTO_FRACTION = 0.10     # the daemon collects when garbage is this share of the used pages
AUTO_INTERVAL = 600.0    # ... checked at most this often (seconds), after an update


@dataclass
class Garbage:
    """What a collection would find; sizes in bytes (pages of 4 KiB for token chunks)."""

    file_bytes: int = 0        # data.mdb on disk
    used_bytes: int = 0        # pages in use; the rest of the file is free for LMDB to reuse
    superseded_commits: int = 0
    superseded_records: int = 0
    unreferenced_arrays: int = 0
    garbage_bytes: int = 0     # token chunks of unreferenced arrays and superseded records

    @property
    def free_bytes(self) -> int:
        return max(0, self.file_bytes - self.used_bytes)

    @property
    def live_bytes(self) -> int:
        return max(0, self.used_bytes - self.garbage_bytes)

    @property
    def reclaimable_bytes(self) -> int:
        return self.garbage_bytes + self.free_bytes

    def as_dict(self) -> dict[str, int]:
        return {**asdict(self), "free_bytes": self.free_bytes, "live_bytes": self.live_bytes,
                "reclaimable_bytes": self.reclaimable_bytes}


@dataclass
class Collected:
    commits: int = 0           # superseded commits removed, with their records
    records: int = 0
    arrays: int = 0            # token arrays removed
    tokens: int = 0
    marked: int = 0            # arrays found unreferenced, waiting out the grace period
    waiting_commits: int = 0   # superseded commits waiting out the grace period
    bytes_freed: int = 0       # token chunk bytes (values) removed
    index_entries: int = 0     # near-duplicate index entries of removed arrays (none, normally)
    variants: int = 0          # variant entries whose source content left the snapshot
    readers: int = 0           # other processes with the store open
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _references(txn, dbs) -> tuple[set[int], set[int], list[dict[str, Any]], list[bytes]]:
    """One pass over documents, records, commits, variants and context documents: the array
    ids that something live references, those that only superseded commits (their records,
    their messages) still hold, the superseded commits' entries, and the keys of the variant
    entries whose source no document holds any more (they go with it).

    A variant is live while some document holds its source's content; a context document
    while its target is in the snapshot (its entry goes with the target's document)."""
    live: set[int] = set()
    held: set[int] = set()
    superseded: list[dict[str, Any]] = []
    gone: set[bytes] = set()
    for key, raw in txn.cursor(db=dbs[DB_COMMITS]):
        entry = unpack(raw)
        if entry["superseded"]:
            superseded.append(entry)
            gone.add(bytes(key))
        if entry.get("message") is not None:
            (held if entry["superseded"] else live).add(entry["message"])
    for _, raw in txn.cursor(db=dbs[DB_RECORDS]):
        record = unpack(raw)
        refs = held if record["commit"] in gone else live
        refs.update(a for a in (record["before"], record["after"]) if a is not None)
    sources: set[bytes] = set()
    for _, raw in txn.cursor(db=dbs[DB_DOCS]):
        doc = unpack(raw)
        live.add(doc["array"])
        sources.add(doc["hash"])
    orphans: list[bytes] = []
    for key, raw in txn.cursor(db=dbs[DB_VARIANTS]):
        if bytes(key[:16]) not in sources:
            orphans.append(bytes(key))
        elif (array := unpack(raw).get("array")) is not None:
            live.add(array)
    for _, raw in txn.cursor(db=dbs[DB_CONTEXT]):
        live.add(unpack(raw)["array"])
    return live, held - live, superseded, orphans


def _arrays(txn, dbs) -> dict[int, bytes]:
    """Every stored array id and its content hash."""
    return {seq_of(v): bytes(k) for k, v in txn.cursor(db=dbs[DB_HASHES])}


def _chunk_bytes(txn, dbs, array_id: int) -> tuple[int, int]:
    """(chunks, token bytes) of one array."""
    cursor = txn.cursor(db=dbs[DB_TOKENS])
    prefix = struct.pack(">Q", array_id)
    chunks = size = 0
    if cursor.set_range(chunk_key(array_id, 0)):
        for key, value in cursor:
            if bytes(key[:8]) != prefix:
                break
            chunks += 1
            size += len(value) - SUM_BYTES
    return chunks, size


def survey(handle) -> Garbage:
    """What garbage the store holds, read in one read transaction (nothing is changed).
    Token chunks are counted as whole 4 KiB pages, which overestimates short arrays."""
    out = Garbage(file_bytes=(handle.path / "data.mdb").stat().st_size)
    with handle.begin(buffers=True) as txn:
        dbs = handle.dbs
        out.used_bytes = used_pages(txn, dbs) * txn.stat()["psize"]
        live, held, superseded, _ = _references(txn, dbs)
        out.superseded_commits = len(superseded)
        out.superseded_records = sum(e["count"] for e in superseded)
        gone = [a for a in _arrays(txn, dbs) if a not in live and a not in held]
        out.unreferenced_arrays = len(gone)
        # what superseded commits alone still hold goes with them
        out.garbage_bytes = sum(_chunk_bytes(txn, dbs, a)[0] for a in (*gone, *held)) * 4096
    return out


def other_readers(store_dir: Path) -> list[int]:
    """Processes other than this one that have the store's environment open."""
    return [pid for pid in lock_holders(store_dir / "lock.mdb", "POSIX") if pid != os.getpid()]


def collect(writer, grace: float | None = None, now: float | None = None) -> Collected:
    """Remove what nothing live references (see the module's docstring); one transaction."""
    started = time.perf_counter()
    grace = writer.config.gc_grace_seconds if grace is None else grace
    now = time.time() if now is None else now
    readers = len(other_readers(writer.path))
    readers += writer.handle.users > writer.handle.writers  # a Store of this very process
    if not readers:
        grace = 0.0  # nobody can hold an index that names what goes
    result = Collected(readers=readers)
    itemsize = 2 if writer.dtype == "<u2" else 4

    def body(txn) -> None:
        dbs = writer.db
        meta = dbs[DB_META]
        # 1. superseded commits, with their records, once superseded for ``grace``
        for key, raw in list(txn.cursor(db=dbs[DB_COMMITS])):
            entry = unpack(raw)
            if not entry["superseded"]:
                continue
            if now - entry.get("superseded_at", 0.0) < grace:
                result.waiting_commits += 1
                continue
            for seq in range(entry["first"], entry["first"] + entry["count"]):
                if txn.delete(seq_key(seq), db=dbs[DB_RECORDS]):
                    result.records += 1
            txn.delete(bytes(key), db=dbs[DB_COMMITS])
            result.commits += 1
        # 2. arrays nothing references: marked, then removed once marked for ``grace``
        live, held, _, orphans = _references(txn, dbs)
        for key in orphans:  # variants of contents no document holds: their arrays follow
            txn.delete(key, db=dbs[DB_VARIANTS])
        result.variants = len(orphans)
        live |= held  # the records of superseded commits still waiting out the grace period
        marks = {seq_of(k): unpack(v) for k, v in txn.cursor(db=dbs[DB_GARBAGE])}
        removed: list[bytes] = []
        for array_id, content_hash in _arrays(txn, dbs).items():
            if array_id in live:
                if array_id in marks:
                    txn.delete(seq_key(array_id), db=dbs[DB_GARBAGE])
                continue
            since = marks.get(array_id)
            if since is None and grace > 0:
                txn.put(seq_key(array_id), pack(now), db=dbs[DB_GARBAGE])
                result.marked += 1
                continue
            if since is not None and now - since < grace:
                result.marked += 1
                continue
            chunks, size = _chunk_bytes(txn, dbs, array_id)
            for n in range(chunks):
                txn.delete(chunk_key(array_id, n), db=dbs[DB_TOKENS])
            txn.delete(content_hash, db=dbs[DB_HASHES])
            txn.delete(seq_key(array_id), db=dbs[DB_FACTS])
            txn.delete(seq_key(array_id), db=dbs[DB_GARBAGE])
            removed.append(content_hash)
            result.arrays += 1
            result.tokens += size // itemsize
            result.bytes_freed += size
        # No document references what goes, so the near-duplicate index (which follows the
        # documents) holds none of it; should it, the entries go with their arrays.
        result.index_entries = writer.neardup.discard(txn, removed)
        for key, delta in ((K_COMMITS_DONE, result.commits), (K_SUPERSEDED, result.commits),
                           (K_STORED_TOKENS, result.tokens)):
            if delta:
                raw = txn.get(key, db=meta)
                txn.put(key, pack(max(0, (unpack(raw) if raw else 0) - delta)), db=meta)

    writer._write(body)
    writer.sync()
    result.seconds = time.perf_counter() - started
    return result


# -- compaction ---------------------------------------------------------------------------

_RENAME_EXCHANGE = 2


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (Linux renameat2); False where that is not available."""
    libc_name = ctypes.util.find_library("c")
    if not libc_name:
        return False
    libc = ctypes.CDLL(libc_name, use_errno=True)
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is None:
        return False
    at_fdcwd = -100
    done = renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), _RENAME_EXCHANGE)
    return done == 0


def compact(writer) -> tuple[int, int]:
    """Write a compacted copy of the store beside it and swap it in; (bytes before, after).

    The caller holds the writer lock (a ``StoreWriter``), so no write is lost. Readers that
    have the old files open keep reading them, consistent and unchanged, and move to the new
    ones when they next open a transaction (``Handle`` notices the new data file).
    """
    path = writer.path
    before = (path / "data.mdb").stat().st_size
    fresh = path.with_name(path.name + ".compact")
    shutil.rmtree(fresh, ignore_errors=True)
    fresh.mkdir()
    try:
        writer.sync()
        writer.handle.env.copy(str(fresh), compact=True)
        fd = os.open(fresh / "data.mdb", os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except lmdb.Error as exc:
        shutil.rmtree(fresh, ignore_errors=True)
        raise StoreError(f"compacting {path} failed ({exc}); the store is unchanged. Free "
                         f"space for a copy of it and run `repofeed gc --compact` again.") \
            from exc
    writer.release_environment()
    if not _exchange(fresh, path):
        old = path.with_name(path.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        os.rename(path, old)
        os.rename(fresh, path)
        fresh = old
    shutil.rmtree(fresh, ignore_errors=True)  # readers still mapping it keep their pages
    return before, (path / "data.mdb").stat().st_size
