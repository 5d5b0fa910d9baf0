"""One LMDB environment per store directory per process, opened lazily after fork.

lmdb refuses a second open of the same environment in one process, so a ``Store``, the
datasets and the writer share the handle kept here. A handle inherited across ``fork`` (a
DataLoader worker) must not be used in the child. lmdb 3 still counts it as open there, so the
child closes its copy first — which leaves the parent's untouched: LMDB's reader slots are
tagged by pid and fcntl locks are not inherited — and then opens its own.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path

import lmdb

from .errors import StoreError, StoreMissing
from .schema import ALL_DBS, DB_META, FORMAT_NAME, K_FORMAT, K_SCHEMA, SCHEMA_VERSION, unpack

DEFAULT_MAP_SIZE = 1 << 36  # 64 GiB of address space; the file grows only as pages are used
MAX_DBS = 16


@dataclass
class Handle:
    env: lmdb.Environment
    dbs: dict[bytes, object]
    pid: int
    writable: bool
    refs: int = 0


_lock = threading.Lock()
_handles: dict[str, Handle] = {}


def _open(path: Path, create: bool, map_size: int) -> Handle:
    writable = create or os.access(path, os.W_OK)
    try:
        env = lmdb.open(
            str(path),
            map_size=map_size,
            max_dbs=MAX_DBS,
            subdir=True,
            create=create,
            readonly=not writable,
            lock=True,
            readahead=False,  # random window access: readahead only pollutes the page cache
            # MDB_NOMETASYNC: one fsync per write transaction, of its data pages, before its
            # meta page is written; the meta page itself is flushed by the next commit or
            # StoreWriter.sync. LMDB: "maintains database integrity, but a system crash may
            # undo the last committed transaction" (ACI, not D). sync=False (MDB_NOSYNC) cost
            # no fsync at all, but then a power cut on a file system that reorders writes can
            # leave a meta page pointing at pages never written: a corrupt store
            # (docs/store.md#durability; cost measured by benchmarks/backfill_throughput.py).
            sync=True,
            metasync=False,
            meminit=False,
            max_readers=512,
        )
    except lmdb.Error as exc:
        raise StoreError(
            f"the store at {path} cannot be opened ({exc}). It is a cache rebuildable from git: "
            f"delete it and run `repofeed init` and `repofeed backfill`."
        ) from exc
    dbs = {}
    try:
        if writable:
            with env.begin(write=True) as txn:
                for name in ALL_DBS:
                    dbs[name] = env.open_db(name, txn=txn, create=create)
        else:
            with env.begin() as txn:
                for name in ALL_DBS:
                    dbs[name] = env.open_db(name, txn=txn, create=False)
    except lmdb.Error as exc:
        env.close()
        raise StoreError(
            f"{path} is not a repofeed store, or it is corrupt ({exc}). Delete it and run "
            f"`repofeed init` and `repofeed backfill` to rebuild it from git."
        ) from exc
    return Handle(env, dbs, os.getpid(), writable)


def _check_schema(handle: Handle, path: Path) -> None:
    with handle.env.begin(db=handle.dbs[DB_META]) as txn:
        fmt = txn.get(K_FORMAT)
        version = txn.get(K_SCHEMA)
    if fmt is None or version is None:
        raise StoreError(f"{path} is not an initialised repofeed store: run `repofeed init`.")
    if unpack(fmt) != FORMAT_NAME:
        raise StoreError(f"{path} holds {unpack(fmt)!r}, not a repofeed store.")
    version = unpack(version)
    if version != SCHEMA_VERSION:
        raise StoreError(
            f"the store at {path} has schema version {version}; this repofeed reads version "
            f"{SCHEMA_VERSION}. Nothing was changed. Rebuild it with `repofeed init --force` "
            f"and `repofeed backfill`, or use the repofeed release that wrote it."
        )


def get_handle(path: Path, *, create: bool = False, check: bool = True,
               map_size: int = DEFAULT_MAP_SIZE) -> Handle:
    """Return this process's handle on the store at ``path``, opening it if needed."""
    key = str(path.resolve())
    with _lock:
        handle = _handles.get(key)
        if handle is not None and handle.pid != os.getpid():
            del _handles[key]
            handle.env.close()  # this process's copy of the parent's handle
            handle = None
        if handle is None:
            if not create and not (path / "data.mdb").is_file():
                raise StoreMissing(
                    f"no repofeed store at {path}: run `repofeed init` in the repository first."
                )
            handle = _open(path, create, map_size)
            _handles[key] = handle
        if create and not handle.writable:
            raise StoreError(f"the store at {path} is read-only for this user.")
        handle.refs += 1
    if check:
        try:
            _check_schema(handle, path)
        except StoreError:
            release(path)
            raise
    return handle


def release(path: Path) -> None:
    """Drop one user of this process's handle on ``path``; the last one closes it."""
    key = str(path.resolve())
    with _lock:
        handle = _handles.get(key)
        if handle is None or handle.pid != os.getpid():
            return
        handle.refs -= 1
        if handle.refs > 0:
            return
        del _handles[key]
    handle.env.close()


def grow(handle: Handle) -> None:
    """Double the map size after ``MapFullError``; the caller retries its transaction."""
    handle.env.set_mapsize(handle.env.info()["map_size"] * 2)
