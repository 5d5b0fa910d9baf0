"""The single writer of a store: creation, the writer lock, and atomic per-commit writes.

Everything one commit changes — its token arrays, its evolution records, the counters and the
cursor that says it is done — lands in one LMDB write transaction, and writing a commit that is
already there changes nothing. A crash at any point leaves the store as of the last committed
transaction; the next run picks up from there.
"""

from __future__ import annotations

import errno
import fcntl
import os
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import lmdb
import numpy as np

from . import lmdbenv
from .arrays import ChunkMissing, chunk_key, chunks_of, read_all
from .config import Config
from .dedup import NearDupIndex
from .errors import StoreError, WriterBusy
from .locate import lock_path
from .schema import (
    DB_COMMITS,
    DB_CONTEXT,
    DB_DOCS,
    DB_FACTS,
    DB_HASHES,
    DB_IMPORTS,
    DB_META,
    DB_RECORDS,
    DB_SKIPPED,
    DB_TOKENS,
    DB_VARIANTS,
    FORMAT_NAME,
    K_COMMITS_DONE,
    K_CONFIG,
    K_FOLLOW,
    K_FORMAT,
    K_HEAD,
    K_NEXT_ARRAY,
    K_NEXT_SEQ,
    K_PENDING,
    K_PIN,
    K_RECORD_SKIPS,
    K_REDACTIONS,
    K_REPO,
    K_ROOTS,
    K_SCHEMA,
    K_SHALLOW,
    K_STORED_TOKENS,
    K_SUPERSEDED,
    K_TOKENIZER_INFO,
    K_TOKENIZER_MODEL,
    SCHEMA_VERSION,
    is_hashed_key,
    pack,
    path_bytes,
    path_key,
    seq_key,
    seq_of,
    token_dtype,
    unpack,
)
from .tokenizer import Tokenizer, stored_tokenizer

T = TypeVar("T")


@dataclass
class CommitWrite:
    """What one commit adds: its records and the token arrays they reference."""

    oid: bytes                                   # raw 20-byte commit id
    info: dict[str, Any] = field(default_factory=dict)  # parent, message, author, timestamp
    records: list[dict[str, Any]] = field(default_factory=list)
    arrays: dict[bytes, list[int] | np.ndarray] = field(default_factory=dict)
    skips: dict[str, int] = field(default_factory=dict)
    boundary: bool = False  # a shallow clone's boundary, processed without records
    facts: dict[bytes, dict[str, Any]] = field(default_factory=dict)  # of new arrays' texts


@dataclass
class Liveness:
    """Which processed commits stopped, or started again, being reachable from the roots."""

    roots: dict[str, str]                       # ref -> commit id, as of this reconcile
    superseded: list[bytes] = field(default_factory=list)   # raw commit ids
    restored: list[bytes] = field(default_factory=list)


@dataclass
class SnapshotChange:
    path: str
    doc: dict[str, Any] | None = None   # None with reason None: the file is gone
    skip_reason: str | None = None


def acquire_lock(store_dir: Path) -> int:
    """Take the store's writer lock (flock, released by the kernel if the holder dies)."""
    lock = lock_path(store_dir)
    try:
        lock.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:  # a read-only file system, no permission, a file in the way
        raise StoreError(
            f"cannot create the writer lock {lock} ({exc.strerror}): writing a store needs "
            f"a writable directory; give `repofeed init --store` one, or fix the permissions."
        ) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        if exc.errno in (errno.EAGAIN, errno.EACCES):
            raise WriterBusy(
                f"another repofeed process (pid {holder}) is writing to the store at "
                f"{store_dir}; only one writer at a time. Wait for it or stop it."
            ) from None
        raise
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)
    return fd


STORE_FILES = ("data.mdb", "lock.mdb")  # all that LMDB keeps in a store directory


def _format_of(store_dir: Path) -> str | None:
    """The format name recorded in the LMDB environment at ``store_dir``; None if it is not
    an LMDB environment with repofeed's meta database. Opened read-only without a lock file,
    so a directory that is not a store is not written to."""
    try:
        env = lmdb.open(str(store_dir), readonly=True, lock=False, max_dbs=lmdbenv.MAX_DBS,
                        subdir=True, create=False)
    except lmdb.Error as exc:
        if "already open in this process" not in str(exc):
            return None
        # lmdb refuses a second open in one process: read through the handle held here.
        handle = lmdbenv.get_handle(store_dir, check=False)
        try:
            with handle.begin(DB_META) as txn:
                raw = txn.get(K_FORMAT)
            return unpack(raw) if raw is not None else None
        finally:
            lmdbenv.release(handle)
    try:
        with env.begin() as txn:
            raw = txn.get(K_FORMAT, db=env.open_db(DB_META, txn=txn, create=False))
        return unpack(raw) if raw is not None else None
    except (lmdb.Error, StoreError, ValueError, TypeError):  # not a repofeed store
        return None
    finally:
        env.close()


def _existing_store(store_dir: Path, force: bool) -> str | None:
    """What ``store_dir`` holds: None (nothing), ``"empty"``, or ``"store"`` (a repofeed store
    that ``force`` may replace). Anything else is refused with an error; nothing is changed."""
    if not store_dir.exists():
        return None
    if not store_dir.is_dir():
        raise StoreError(f"{store_dir} is a file, not a directory: give `--store` a directory "
                         f"(a new one is created).")
    _check_writable(store_dir)
    entries = set(os.listdir(store_dir))
    if not entries - {"lock.mdb"}:
        return "empty"  # (a lone lock.mdb is what a store's removal can leave)
    if "data.mdb" not in entries:
        raise StoreError(
            f"{store_dir} is not empty and holds no repofeed store: give `--store` a new or "
            f"empty directory. Nothing was changed.")
    if not force:
        raise StoreError(f"a store already exists at {store_dir}; `--force` replaces it.")
    others = sorted(entries - set(STORE_FILES))
    if others:
        shown = ", ".join(others[:3]) + (", …" if len(others) > 3 else "")
        raise StoreError(
            f"{store_dir} holds other files besides data.mdb ({shown}), so `--force` leaves it "
            f"alone: it replaces only a store repofeed made. Nothing was changed; give "
            f"`--store` another directory.")
    found = _format_of(store_dir)
    if found != FORMAT_NAME:
        what = "not an LMDB environment of repofeed's" if found is None else f"{found!r}"
        raise StoreError(
            f"{store_dir / 'data.mdb'} is not a repofeed store ({what}), so `--force` leaves "
            f"it alone. Nothing was changed; give `--store` another directory, or remove it "
            f"yourself if it is yours to delete.")
    return "store"


def _check_writable(store_dir: Path) -> None:
    """Refuse a store directory (or store file) this process cannot write, with the reason."""
    for path in (store_dir, store_dir / "data.mdb"):
        if path.exists() and not os.access(path, os.W_OK):
            try:
                read_only = bool(os.statvfs(path).f_flag & os.ST_RDONLY)
            except OSError:
                read_only = False
            why = "a read-only file system" if read_only else "no write permission"
            raise StoreError(
                f"the store at {store_dir} is not writable ({why}); writing needs write "
                f"access: make it writable, or give `repofeed init --store` another directory.")


def _build_dir(store_dir: Path) -> Path:
    """A new, empty directory beside ``store_dir`` (the same file system, so that renaming
    it into place is atomic)."""
    build = store_dir.with_name(f".{store_dir.name}.new-{os.getpid()}-{secrets.token_hex(4)}")
    try:
        build.mkdir()
    except OSError as exc:
        raise StoreError(f"cannot create {build} ({exc.strerror}): the directory that holds "
                         f"the store must be writable.") from None
    return build


def _remove_store_files(store_dir: Path) -> None:
    """Remove a store's own files and then its directory, if that leaves it empty."""
    for name in STORE_FILES:
        (store_dir / name).unlink(missing_ok=True)
    try:
        store_dir.rmdir()
    except OSError:
        pass  # not empty: something else lives there, and it is not ours to delete


def _swap_in(build: Path, store_dir: Path, old: str | None) -> None:
    """Put the complete store at ``build`` in ``store_dir``'s place; remove the old store's
    own files afterwards. rename(2) replaces an empty directory atomically."""
    if old == "empty":
        (store_dir / "lock.mdb").unlink(missing_ok=True)
    if old != "store":
        os.rename(build, store_dir)
        return
    aside = store_dir.with_name(f".{store_dir.name}.old-{os.getpid()}-{secrets.token_hex(4)}")
    os.rename(store_dir, aside)
    try:
        os.rename(build, store_dir)
    except BaseException:
        os.rename(aside, store_dir)
        raise
    _remove_store_files(aside)  # readers that still map it keep their pages until they close


class StoreWriter:
    """Holds the writer lock for its lifetime; use as a context manager."""

    def __init__(self, store_dir: Path, *, _create: bool = False, map_size: int | None = None,
                 _lock_fd: int | None = None):
        self.path = Path(store_dir)
        self._lock_fd = _lock_fd if _lock_fd is not None else acquire_lock(self.path)
        try:
            _check_writable(self.path)
            self.handle = lmdbenv.get_handle(
                self.path, write=True, create=_create, check=not _create,
                map_size=map_size or lmdbenv.DEFAULT_MAP_SIZE,
            )
        except BaseException:
            self._release_lock()
            raise
        self._tokenizer: Tokenizer | None = None
        self._dtype: str | None = None
        # texts with placeholders, by content hash (only those: a few small dicts)
        self.pending_redactions: dict[bytes, dict[str, int]] = {}
        self.neardup = NearDupIndex(lambda: self.db)

    @property
    def db(self) -> dict[bytes, Any]:
        """The named databases of the current environment (it is reopened after a fork)."""
        return self.handle.dbs

    # -- lifecycle ---------------------------------------------------------------------------

    def _release_lock(self) -> None:
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1

    def sync(self) -> None:
        """Flush the last transaction's meta page too (each transaction fsyncs its data, not
        its meta page: MDB_NOMETASYNC), so everything committed so far survives a power cut."""
        self.handle.env.sync(True)

    def release_environment(self) -> None:
        """Close this process's environment; the next transaction opens the store's files
        afresh (after ``gc.compact`` swapped new ones in)."""
        self.handle.reopen()

    def check_readers(self) -> int:
        """Free reader slots left taken by processes that died while reading (a DataLoader
        worker ends with ``os._exit``); run at open and on every reconcile."""
        return self.handle.check_readers()

    def close(self) -> None:
        if getattr(self, "handle", None) is not None:
            try:
                self.sync()
            except lmdb.Error:
                pass  # the disk failed; the error that led here has been raised already
            lmdbenv.release(self.handle, write=True)
            self.handle = None
        self._release_lock()

    def __enter__(self) -> StoreWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @classmethod
    def create(cls, store_dir: Path, *, config: Config, tokenizer: Tokenizer,
               tokenizer_info: dict[str, Any], repo: str, follow: str, force: bool = False,
               pin: str | None = None) -> StoreWriter:
        """Make a store at ``store_dir`` and return its writer.

        The new store is built in a sibling directory and renamed into place only when it is
        complete, so a failure (a bad ``map_size``, a full disk) leaves an old store as it
        was. ``force`` replaces an existing store, and only a repofeed store: its own files
        are removed, never a directory holding anything else (see ``_existing_store``).
        ``pin`` (a commit hash) makes a store for a temporal split: it takes in the history
        up to that commit and never moves past it (``ingest.pinned_tip``).
        """
        store_dir = Path(store_dir)
        config.validate()
        _existing_store(store_dir, force)  # refuse before the lock file is created beside it
        fd = acquire_lock(store_dir)  # held before anything is removed or created
        try:
            old = _existing_store(store_dir, force)  # again, now that no writer can change it
            build = _build_dir(store_dir)
            try:
                # The builder gets its own descriptor of the lock: closing it leaves ``fd``
                # holding the flock (flock(2): released when the last duplicate is closed).
                with cls(build, _create=True, map_size=config.map_size,
                         _lock_fd=os.dup(fd)) as builder:
                    builder._write_meta(config, tokenizer, tokenizer_info, repo, follow, pin)
                _swap_in(build, store_dir, old)
            except (MemoryError, OverflowError, lmdb.Error) as exc:
                _remove_store_files(build)
                raise StoreError(
                    f"cannot create a store with map_size={config.map_size:,} ({exc}); nothing "
                    f"was changed. Use a smaller map_size (the default is "
                    f"{lmdbenv.DEFAULT_MAP_SIZE:,})."
                ) from None
            except BaseException:
                _remove_store_files(build)
                raise
        except BaseException:
            os.close(fd)
            raise
        return cls(store_dir, map_size=config.map_size, _lock_fd=fd)

    def _write_meta(self, config: Config, tokenizer: Tokenizer, tokenizer_info: dict[str, Any],
                    repo: str, follow: str, pin: str | None = None) -> None:
        meta = {
            K_FORMAT: FORMAT_NAME,
            K_SCHEMA: SCHEMA_VERSION,
            K_CONFIG: config.to_dict(),
            K_TOKENIZER_MODEL: tokenizer.model,
            K_TOKENIZER_INFO: {**tokenizer_info, **tokenizer.stored_info()},
            K_REPO: repo,
            K_FOLLOW: follow,
            K_HEAD: None,
            K_NEXT_SEQ: 0,
            K_NEXT_ARRAY: 0,
            K_COMMITS_DONE: 0,
            K_STORED_TOKENS: 0,
            K_RECORD_SKIPS: {},
            K_REDACTIONS: {},
        }
        if pin is not None:
            meta[K_PIN] = pin

        def put(txn: lmdb.Transaction) -> None:
            for key, value in meta.items():
                txn.put(key, pack(value), db=self.db[DB_META])

        self._write(put)

    # -- reading what the writer needs --------------------------------------------------------

    def meta(self, key: bytes, default: Any = None) -> Any:
        with self.handle.begin(DB_META) as txn:
            raw = txn.get(key)
        return default if raw is None else unpack(raw)

    def set_meta(self, key: bytes, value: Any) -> None:
        """Write one meta key, in a transaction of its own."""
        self._write(lambda txn: txn.put(key, pack(value), db=self.db[DB_META]))

    @property
    def config(self) -> Config:
        return Config.from_dict(self.meta(K_CONFIG))

    @property
    def tokenizer(self) -> Tokenizer:
        if self._tokenizer is None:
            self._tokenizer = stored_tokenizer(self.meta(K_TOKENIZER_MODEL),
                                               self.meta(K_TOKENIZER_INFO))
        return self._tokenizer

    @property
    def dtype(self) -> str:
        if self._dtype is None:
            self._dtype = token_dtype(self.tokenizer.vocab_size)
        return self._dtype

    def missing_arrays(self, hashes: Iterable[bytes]) -> set[bytes]:
        """The content hashes that have no token array yet."""
        with self.handle.begin(DB_HASHES) as txn:
            return {h for h in hashes if txn.get(h) is None}

    def read_array(self, content_hash: bytes) -> np.ndarray:
        with self.handle.begin(buffers=True) as txn:
            array_id = txn.get(content_hash, db=self.db[DB_HASHES])
            try:
                if array_id is not None:
                    return read_all(txn, self.db[DB_TOKENS], seq_of(array_id),
                                    np.dtype(self.dtype))
            except ChunkMissing:
                pass
        raise StoreError(f"token array {content_hash.hex()} is missing from the store")

    def unprocessed(self, oids: Iterable[bytes]) -> list[bytes]:
        """The commits of ``oids`` (raw ids) that the store has not processed, in order."""
        with self.handle.begin(DB_COMMITS) as txn:
            return [oid for oid in oids if txn.get(oid) is None]

    def superseded_flags(self, oids: Iterable[bytes]) -> dict[bytes, bool]:
        """For each processed commit of ``oids``: whether it is marked superseded."""
        out = {}
        with self.handle.begin(DB_COMMITS) as txn:
            for oid in oids:
                raw = txn.get(oid)
                if raw is not None:
                    out[oid] = unpack(raw)["superseded"]
        return out

    def live_commits(self) -> list[bytes]:
        """Every processed commit not marked superseded (a full scan; used after a gc)."""
        with self.handle.begin(DB_COMMITS) as txn:
            return [bytes(k) for k, v in txn.cursor() if not unpack(v)["superseded"]]

    def documents_of(self, paths: Iterable[str]) -> dict[str, dict[str, Any]]:
        """The snapshot documents of ``paths`` that exist."""
        out = {}
        with self.handle.begin(DB_DOCS) as txn:
            for path in paths:
                raw = txn.get(path_key(path))
                if raw is not None:
                    out[path] = unpack(raw)
        return out

    def documents(self) -> dict[str, dict[str, Any]]:
        with self.handle.begin(DB_DOCS) as txn:
            return {doc["path"]: doc for doc in (unpack(v) for _, v in txn.cursor())}

    # -- writing ------------------------------------------------------------------------------

    def _write(self, body: Callable[[lmdb.Transaction], T]) -> T:
        """Run ``body`` in one write transaction, growing the map when it is full."""
        while True:
            try:
                with self.handle.begin(write=True) as txn:
                    done = body(txn)
                self._cover_last_page()
                return done
            except lmdb.MapFullError:
                self.handle.grow()
            except lmdb.BadValsizeError as exc:  # not the disk: keep it from saying so
                raise StoreError(
                    f"writing to {self.path} failed ({exc}): a key is longer than LMDB takes "
                    f"(schema.path_key keeps paths under it). Nothing was written; please "
                    f"report this as a repofeed bug."
                ) from exc
            except lmdb.Error as exc:
                # A full disk surfaces as ENOSPC or, when LMDB's page write fails part-way, as
                # EIO; either way the transaction is aborted and the last commit is intact.
                raise StoreError(
                    f"writing to {self.path} failed ({exc}): the disk is full or failing. "
                    f"Nothing of the transaction was written; free space and run the "
                    f"command again."
                ) from exc

    def _cover_last_page(self) -> None:
        """Extend the data file to the last page the header counts. Pages a transaction took
        at the end and freed again are counted but never written; covered, the file is never
        shorter than its header says, which is how readers tell a truncated copy at open
        (lmdbenv._check_header_size). The extension is sparse: it costs no disk."""
        env = self.handle.env
        needed = (env.info()["last_pgno"] + 1) * env.stat()["psize"]
        data = self.path / "data.mdb"
        try:
            if data.stat().st_size < needed:
                os.truncate(data, needed)
        except OSError:
            pass  # a full disk cannot even extend a sparse file; readers allow a short tail

    def note_redactions(self, counts: dict[bytes, dict[str, int]]) -> None:
        """Placeholders per kind in texts about to be stored (content hash -> counts): added
        to the store's redaction counts when (and only when) their array is first written."""
        self.pending_redactions.update(counts)

    def _put_arrays(self, txn: lmdb.Transaction, arrays: dict[bytes, Any],
                    facts: dict[bytes, dict[str, Any]] | None = None) -> int:
        """Store the arrays whose content hash is new, under the next array ids, in order,
        each with the facts of its text (``facts``, by content hash) where given."""
        added = 0
        redactions: dict[str, int] = {}
        meta_db, hashes_db, tokens_db = self.db[DB_META], self.db[DB_HASHES], self.db[DB_TOKENS]
        facts_db, facts = self.db[DB_FACTS], facts or {}
        next_id = unpack(txn.get(K_NEXT_ARRAY, db=meta_db))
        for content_hash, ids in arrays.items():
            if txn.get(content_hash, db=hashes_db) is not None:
                continue
            txn.put(content_hash, seq_key(next_id), db=hashes_db)
            data = np.asarray(ids, dtype=self.dtype).tobytes()
            for n, chunk in enumerate(chunks_of(data)):
                txn.put(chunk_key(next_id, n), chunk, db=tokens_db, append=True)
            if content_hash in facts:
                txn.put(seq_key(next_id), pack(facts[content_hash]), db=facts_db, append=True)
            next_id += 1
            added += len(ids)
            # read, not popped: a transaction retried after growing the map counts again
            for kind, n in self.pending_redactions.get(content_hash, {}).items():
                redactions[kind] = redactions.get(kind, 0) + n
        txn.put(K_NEXT_ARRAY, pack(next_id), db=meta_db)
        if redactions:
            self._bump(txn, K_REDACTIONS, redactions)
        return added

    def _array_id(self, txn: lmdb.Transaction, content_hash: bytes | None) -> int | None:
        if content_hash is None:
            return None
        return seq_of(txn.get(content_hash, db=self.db[DB_HASHES]))

    def _bump(self, txn: lmdb.Transaction, key: bytes, delta: Any) -> None:
        meta_db = self.db[DB_META]
        raw = txn.get(key, db=meta_db)
        current = unpack(raw) if raw is not None else type(delta)()  # a key older stores lack
        if isinstance(delta, dict):
            for reason, count in delta.items():
                current[reason] = current.get(reason, 0) + count
        else:
            current += delta
        txn.put(key, pack(current), db=meta_db)

    def note_pending_tip(self, tip: str) -> None:
        """Remember, before a run writes its first commit, the tip it ingests from.

        Commits land one transaction each, but the roots move only when the run completes; if
        it is cut short and the tip is then rewritten away, this is what tells the next run
        that those commits were reachable, so that they can be superseded.
        """

        def body(txn: lmdb.Transaction) -> None:
            raw = txn.get(K_PENDING, db=self.db[DB_META])
            tips = unpack(raw) if raw else []
            if tip not in tips:
                txn.put(K_PENDING, pack([*tips, tip]), db=self.db[DB_META])

        self._write(body)

    def write_commit(self, write: CommitWrite) -> bool:
        """Store one processed commit atomically; False if it was already there."""
        return self.write_commits([write])[0]

    def write_commits(self, writes: list[CommitWrite]) -> list[bool]:
        """Store processed commits in one transaction, each whole with its cursor entry (a
        batch lands entirely or not at all); for each, False if it was already there.

        One transaction per batch rather than per commit: each costs an fsync (MDB_NOMETASYNC,
        lmdbenv.py), and per commit that was a tenth of the backfill (docs/benchmarks.md).
        """
        return self._write(lambda txn: [self._put_commit(txn, write) for write in writes])

    def _put_commit(self, txn: lmdb.Transaction, write: CommitWrite) -> bool:
        """Write one commit, its records, arrays and cursor entry in ``txn``."""
        if txn.get(write.oid, db=self.db[DB_COMMITS]) is not None:
            return False
        meta_db = self.db[DB_META]
        seq = unpack(txn.get(K_NEXT_SEQ, db=meta_db))
        first = seq
        self._bump(txn, K_STORED_TOKENS, self._put_arrays(txn, write.arrays, write.facts))
        # Commit-level facts live once, in the commit's entry; records point at it.
        for record in write.records:
            stored = {"commit": write.oid, **record,
                      "before": self._array_id(txn, record["before"]),
                      "after": self._array_id(txn, record["after"])}
            txn.put(seq_key(seq), pack(stored), db=self.db[DB_RECORDS], append=True)
            seq += 1
        info = {**write.info, "first": first, "count": seq - first, "superseded": False}
        if "message" in info:
            info["message"] = self._array_id(txn, info["message"])
        txn.put(write.oid, pack(info), db=self.db[DB_COMMITS])
        txn.put(K_NEXT_SEQ, pack(seq), db=meta_db)
        self._bump(txn, K_COMMITS_DONE, 1)
        if write.skips:
            self._bump(txn, K_RECORD_SKIPS, write.skips)
        if write.boundary:
            raw = txn.get(K_SHALLOW, db=meta_db)
            boundaries = unpack(raw) if raw else []
            txn.put(K_SHALLOW, pack([*boundaries, write.oid.hex()]), db=meta_db)
        return True

    def forget_boundaries(self, oids: list[str]) -> None:
        """Unprocess shallow boundaries that have parents now (``git fetch --unshallow``), so
        that they are processed again, with their records, along with the older history."""

        def body(txn: lmdb.Transaction) -> None:
            meta_db, commits = self.db[DB_META], self.db[DB_COMMITS]
            for oid in oids:
                raw = txn.get(bytes.fromhex(oid), db=commits)
                entry = unpack(raw) if raw is not None else None
                if entry is not None and entry["count"] == 0:  # it has no records
                    txn.delete(bytes.fromhex(oid), db=commits)
                    self._bump(txn, K_COMMITS_DONE, -1)
                    if entry["superseded"]:
                        self._bump(txn, K_SUPERSEDED, -1)
            left = [b for b in unpack(txn.get(K_SHALLOW, db=meta_db)) if b not in oids]
            txn.put(K_SHALLOW, pack(left), db=meta_db)

        self._write(body)

    def put_documents(self, changes: list[SnapshotChange], arrays: dict[bytes, Any],
                      facts: dict[bytes, dict[str, Any]] | None = None,
                      texts: dict[bytes, str] | None = None) -> None:
        """Apply document changes alone (the worktree's), in one transaction."""
        self.sync_snapshot(None, changes, arrays, move_head=False, facts=facts, texts=texts)

    def sync_snapshot(self, head: str | None, changes: list[SnapshotChange],
                      arrays: dict[bytes, Any], liveness: Liveness | None = None,
                      move_head: bool = True,
                      facts: dict[bytes, dict[str, Any]] | None = None,
                      texts: dict[bytes, str] | None = None) -> None:
        """Apply snapshot changes, mark superseded commits and move the head, atomically.

        ``facts`` (content hash → facts) go with the new arrays. The near-duplicate index
        follows the documents in the same transaction: a content enters it with the first
        document that holds it and leaves with the last. ``texts`` (content hash → text)
        spares decoding the token arrays of contents new to it."""

        def body(txn: lmdb.Transaction) -> None:
            if liveness is not None:
                self._set_liveness(txn, liveness)
            self._bump(txn, K_STORED_TOKENS, self._put_arrays(txn, arrays, facts))
            docs, skipped = self.db[DB_DOCS], self.db[DB_SKIPPED]
            references: dict[bytes, int] = {}  # content hash → documents gained minus lost
            for change in changes:
                key = path_key(change.path)
                old = txn.get(key, db=docs)
                if old is not None and (gone := unpack(old).get("hash")) is not None:
                    references[gone] = references.get(gone, 0) - 1
                if change.doc is not None:
                    doc = dict(change.doc)
                    doc["array"] = self._array_id(txn, doc["hash"])
                    references[doc["hash"]] = references.get(doc["hash"], 0) + 1
                    txn.put(key, pack(doc), db=docs)
                else:
                    txn.delete(key, db=docs)
                if change.skip_reason is not None:
                    reason = change.skip_reason.encode()
                    if is_hashed_key(key):  # the key alone no longer gives the path
                        reason += b"\0" + path_bytes(change.path)
                    txn.put(key, reason, db=skipped)
                else:
                    txn.delete(key, db=skipped)
            if move_head:
                txn.put(K_HEAD, pack(head), db=self.db[DB_META])
            self.neardup.update(txn, references,
                                lambda h: texts[h] if texts and h in texts else
                                self._text_in(txn, h))

        self._write(body)
        self.sync()

    def put_variants(self, entries: dict[bytes, dict[str, Any]],
                     arrays: dict[bytes, Any]) -> None:
        """Store variant entries (key: source content hash + recipe name) and the new arrays
        of their texts, in one transaction; an entry with a ``hash`` gets its array id."""

        def body(txn: lmdb.Transaction) -> None:
            self._bump(txn, K_STORED_TOKENS, self._put_arrays(txn, arrays))
            for key, entry in entries.items():
                entry = dict(entry)
                if entry.get("hash") is not None:
                    entry["array"] = self._array_id(txn, entry["hash"])
                txn.put(key, pack(entry), db=self.db[DB_VARIANTS])

        self._write(body)
        self.sync()

    def put_context(self, graph: dict[str, dict[str, Any]], graph_gone: list[str],
                    context: dict[str, dict[str, Any]], context_gone: list[str],
                    arrays: dict[bytes, Any]) -> None:
        """Update the import graph (entries by path, and paths to drop) and the context
        documents (entries by target path, and targets to drop) with the new arrays of the
        documents, in one transaction (daemon/context.py)."""

        def body(txn: lmdb.Transaction) -> None:
            self._bump(txn, K_STORED_TOKENS, self._put_arrays(txn, arrays))
            for path, entry in graph.items():
                txn.put(path_key(path), pack(entry), db=self.db[DB_IMPORTS])
            for path in graph_gone:
                txn.delete(path_key(path), db=self.db[DB_IMPORTS])
            for path, entry in context.items():
                entry = {**entry, "array": self._array_id(txn, entry["hash"])}
                txn.put(path_key(path), pack(entry), db=self.db[DB_CONTEXT])
            for path in context_gone:
                txn.delete(path_key(path), db=self.db[DB_CONTEXT])

        self._write(body)
        self.sync()

    def text_of(self, content_hash: bytes) -> str:
        """The text of a stored content, decoded from its token array."""
        with self.handle.begin(buffers=True) as txn:
            return self._text_in(txn, content_hash)

    def _text_in(self, txn: lmdb.Transaction, content_hash: bytes) -> str:
        """The text of a stored content, decoded from its token array inside ``txn``."""
        raw = txn.get(content_hash, db=self.db[DB_HASHES])
        try:
            if raw is None:
                raise ChunkMissing
            ids = read_all(txn, self.db[DB_TOKENS], seq_of(raw), np.dtype(self.dtype))
        except ChunkMissing:
            raise StoreError(f"token array {content_hash.hex()} is missing from the store") \
                from None
        return self.tokenizer.decode(ids.tolist())

    def _set_liveness(self, txn: lmdb.Transaction, liveness: Liveness) -> None:
        commits, meta_db = self.db[DB_COMMITS], self.db[DB_META]
        delta = 0
        for oids, flag in ((liveness.superseded, True), (liveness.restored, False)):
            for oid in oids:
                raw = txn.get(oid, db=commits)
                if raw is None:
                    continue
                entry = unpack(raw)
                if entry["superseded"] != flag:
                    entry["superseded"] = flag
                    if flag:  # garbage collection waits a grace period from here (gc.py)
                        entry["superseded_at"] = time.time()
                    else:
                        entry.pop("superseded_at", None)
                    txn.put(oid, pack(entry), db=commits)
                    delta += 1 if flag else -1
        count = txn.get(K_SUPERSEDED, db=meta_db)
        txn.put(K_SUPERSEDED, pack((unpack(count) if count else 0) + delta), db=meta_db)
        txn.put(K_ROOTS, pack(liveness.roots), db=meta_db)
        txn.delete(K_PENDING, db=meta_db)
