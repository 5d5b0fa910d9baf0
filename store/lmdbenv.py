"""One LMDB environment per store directory per process, safe across fork and for months.

Rules this module keeps, each learned the hard way:

* **One handle per process.** lmdb refuses a second open of one environment in a process, so
  every ``Store``, dataset and writer of a process shares the ``Handle`` kept here.
* **Readers never wait for the writer.** A process that only reads opens the environment
  read-only and opens the named databases in a read transaction: it never begins a write
  transaction, so it never queues behind another process's writer. When a writer of the same
  process needs the environment, the read-only one is closed and reopened writable (the users
  of the handle notice through ``generation`` and begin again).
* **Nothing crosses a fork.** A child that used an environment it inherited would take reader
  slots in its parent's name (LMDB tags slots with the pid of the process that opened the
  environment), and one that closed it would abort its parent's transactions in the shared
  reader table — freeing a slot the parent still reads under, so the writer could reuse those
  pages and the parent read wrong tokens without any error. So before a fork
  (``os.register_at_fork``) every transaction begun here ends and every environment is closed;
  parent and child each reopen on next use. The parent pays one reopen per fork (about a
  millisecond); a child inherits nothing to touch.
* **Stale reader slots are cleared.** A process that dies while reading (a ``DataLoader``
  worker ends with ``os._exit``) leaves its slot taken; ``mdb_reader_check`` frees the slots of
  dead processes. Readers run it when they open, the writer when it opens and on every
  reconcile (``check_readers``), and anyone whose transaction finds the table full runs it and
  tries again before saying plainly who holds the slots.
* **Damage is said, not crashed on.** A ``data.mdb`` shorter than its header says (a truncated
  copy) would kill the process with SIGBUS at the first read of a missing page; it is refused
  at open. LMDB's own corruption errors, and values that do not parse, become ``StoreCorrupt``.
"""

from __future__ import annotations

import contextlib
import errno
import os
import threading
import time
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import lmdb

from .errors import StoreCorrupt, StoreError, StoreMissing
from .proclocks import lock_holders
from .schema import ALL_DBS, DB_META, FORMAT_NAME, K_FORMAT, K_SCHEMA, SCHEMA_VERSION, unpack

DEFAULT_MAP_SIZE = 1 << 36  # 64 GiB of address space; the file grows only as pages are used
MAX_DBS = 32  # named databases an environment may hold (schema.ALL_DBS, with room)
MAX_READERS = 1024

# Errors LMDB raises when pages are not what they should be.
CORRUPTION = (lmdb.CorruptedError, lmdb.PageNotFoundError, lmdb.InvalidError,
              lmdb.BadDbiError, lmdb.IncompatibleError)


def rebuild_hint(path: Path) -> str:
    return (f"The store is a cache of git: rebuild it with `repofeed init --force` and "
            f"`repofeed backfill` (or delete {path} first).")


def corrupt(path: Path, what: object) -> StoreCorrupt:
    return StoreCorrupt(f"the store at {path} is corrupt ({what}). {rebuild_hint(path)}")


class Handle:
    """This process's environment on one store, reopened as needed (after a fork, or to
    become writable). ``generation`` changes whenever the environment is replaced, which
    invalidates every transaction and database object of the old one."""

    def __init__(self, path: Path, map_size: int):
        self.path = path
        self.map_size = map_size
        self.creating = False  # ``init``: the environment's files do not exist yet
        self.lock = threading.RLock()  # held while a transaction of this handle is open
        self.users = 0
        self.writers = 0
        self.generation = 0
        self._env: lmdb.Environment | None = None
        self._dbs: dict[bytes, Any] = {}
        self._writable = False
        self._file: tuple[int, int] | None = None  # (device, inode) of the data file opened
        self._snapshots: weakref.WeakSet[Snapshot] = weakref.WeakSet()

    # -- the environment ------------------------------------------------------------------

    @property
    def env(self) -> lmdb.Environment:
        with self.lock:
            self._ensure()
            return self._env

    @property
    def dbs(self) -> dict[bytes, Any]:
        with self.lock:
            self._ensure()
            return self._dbs

    def _ensure(self, check_file: bool = False) -> None:
        want_write = self.writers > 0
        if self._env is not None and check_file and self._moved():
            self._close_env()  # ``gc --compact`` swapped new files in: read those
        if self._env is not None and (self._writable or not want_write):
            return
        if self._env is not None:  # read-only, and a writer of this process needs it now
            self._close_env()
        self._env, self._dbs, self._writable = _open(self.path, want_write, self.map_size,
                                                     create=self.creating)
        self._file = _file_id(self.path / "data.mdb")
        self.creating = False
        self.generation += 1

    def _moved(self) -> bool:
        found = _file_id(self.path / "data.mdb")
        return found is not None and found != self._file

    def reopen(self) -> None:
        """Close the environment; the next transaction opens the files now at the path."""
        with self.lock:
            self._close_env()

    def _close_env(self) -> None:
        for snapshot in list(self._snapshots):
            snapshot.drop()
        env, self._env, self._dbs = self._env, None, {}
        if env is not None:
            self.map_size = max(self.map_size, env.info()["map_size"])
            env.close()

    # -- transactions ---------------------------------------------------------------------

    @contextlib.contextmanager
    def begin(self, db: bytes | None = None, *, write: bool = False, buffers: bool = False
              ) -> Iterator[lmdb.Transaction]:
        """A transaction, with ``db`` as its default database; committed at the end of the
        block (aborted on an exception). LMDB's corruption errors become ``StoreCorrupt``."""
        with self.lock:
            self._ensure(check_file=not write)
            txn = _begin(self, db, write, buffers)
            try:
                yield txn
            except CORRUPTION as exc:
                txn.abort()
                raise corrupt(self.path, exc) from exc
            except BaseException:
                txn.abort()
                raise
            txn.commit()

    def adopt(self, snapshot: Snapshot) -> None:
        """Track ``snapshot``, so that it ends before a fork and when the environment goes."""
        with self.lock:
            self._snapshots.add(snapshot)

    def check_readers(self) -> int:
        """Free the reader slots of processes that died while reading; how many were."""
        with self.lock:
            self._ensure()
            try:
                return self._env.reader_check()
            except lmdb.Error:
                return 0  # a lockless (read-only file system) environment has no table

    def readers(self) -> list[dict[str, Any]]:
        with self.lock:
            self._ensure()
            try:
                table = self._env.readers()
            except lmdb.Error:
                return []
        rows = []
        for line in table.splitlines()[1:]:
            parts = line.split()
            if len(parts) == 3:
                rows.append({"pid": int(parts[0]), "thread": parts[1],
                             "txnid": None if parts[2] == "-" else int(parts[2])})
        return rows

    def grow(self) -> None:
        """Double the map size after ``MapFullError``; the caller retries its transaction."""
        with self.lock:
            for snapshot in list(self._snapshots):
                snapshot.drop()
            self._env.set_mapsize(self._env.info()["map_size"] * 2)
            self.map_size = self._env.info()["map_size"]

    def before_fork(self) -> None:
        self.lock.acquire()
        if self._env is not None:
            self._close_env()
            self.generation += 1

    def after_fork(self, child: bool) -> None:
        if child:
            self.writers = 0  # the parent writes; a child that reads opens read-only
        self.lock.release()


def _begin(handle: Handle, db: bytes | None, write: bool, buffers: bool) -> lmdb.Transaction:
    env = handle._env
    database = handle._dbs[db] if db is not None else None
    for attempt in range(2):
        try:
            return env.begin(db=database, write=write, buffers=buffers)
        except lmdb.MapResizedError:
            env.set_mapsize(0)  # the writer grew the map: adopt its size
        except lmdb.ReadersFullError:
            if attempt == 0 and env.reader_check() > 0:
                continue
            raise StoreError(_readers_full(handle.path)) from None
    return env.begin(db=database, write=write, buffers=buffers)


def _readers_full(path: Path) -> str:
    """Who holds the slots, from the per-process locks on lock.mdb (no transaction needed:
    there is no slot left to begin one)."""
    pids = [str(p) for p in lock_holders(path / "lock.mdb", "POSIX") if p != os.getpid()]
    who = (f"; processes that have it open: {', '.join(pids[:10])}"
           f"{', …' if len(pids) > 10 else ''}") if pids else ""
    return (f"all {MAX_READERS} reader slots of the store at {path} are taken by live "
            f"readers{who}. Each open read transaction takes one: stop some of those "
            f"processes. The store itself is fine.")


class Snapshot:
    """A read transaction kept across several reads, for the hot path of the datasets.

    Beginning a transaction per item cost as much as reading the item. A snapshot is kept for
    at most ``RENEW_EVERY`` reads or ``RENEW_SECONDS``, so it never pins old pages for long
    (a long-lived reader stops LMDB from reusing pages, and the file grows); ``renew()``
    begins a new one at once (after a refresh the index may name newer arrays). It ends
    before a fork, and whenever the environment is replaced.
    """

    RENEW_EVERY = 64
    RENEW_SECONDS = 1.0

    def __init__(self, handle: Handle, db: bytes):
        self.handle, self.db = handle, db
        self._txn: lmdb.Transaction | None = None
        self._generation = -1
        self._uses = 0
        self._since = 0.0

    def __enter__(self) -> lmdb.Transaction:
        handle = self.handle
        handle.lock.acquire()
        try:
            self._uses += 1
            # A snapshot of the current environment is still open: closing or replacing the
            # environment drops it, and a fork or reopen changes the generation.
            if self._txn is None or self._generation != handle.generation or \
                    self._uses > self.RENEW_EVERY or \
                    time.monotonic() - self._since > self.RENEW_SECONDS:
                self.drop()
                handle._ensure(check_file=True)
                self._txn = _begin(handle, self.db, False, True)
                self._generation = handle.generation
                self._uses, self._since = 1, time.monotonic()
            return self._txn
        except BaseException:
            handle.lock.release()
            raise

    def __exit__(self, exc_type, exc: BaseException | None, tb: object) -> None:
        try:
            if exc_type is not None and issubclass(exc_type, CORRUPTION):
                self.drop()
                raise corrupt(self.handle.path, exc) from exc
        finally:
            self.handle.lock.release()

    def renew(self) -> None:
        with self.handle.lock:
            self.drop()

    def drop(self) -> None:
        """End the transaction (its pages become reusable by the writer)."""
        txn, self._txn = self._txn, None
        if txn is not None and self._generation == self.handle.generation:
            with contextlib.suppress(lmdb.Error):
                txn.abort()

    close = renew


# -- opening ------------------------------------------------------------------------------

def _open(path: Path, writable: bool, map_size: int, create: bool = False
          ) -> tuple[lmdb.Environment, dict[bytes, Any], bool]:
    data = path / "data.mdb"
    if not create and not data.is_file():
        raise StoreMissing(f"no repofeed store at {path}: run `repofeed init` in the "
                           f"repository first.")
    if writable and not os.access(path, os.W_OK):
        raise StoreError(f"the store at {path} is read-only for this user: it can be read "
                         f"but not updated.")
    options = dict(map_size=map_size, max_dbs=MAX_DBS, subdir=True, create=create,
                   readonly=not writable, readahead=False,
                   # meminit (LMDB's default): pages are zeroed before use. Without it, LMDB
                   # writes whatever the heap held into a page's unused space, and the heap
                   # holds the texts read from git before they were redacted: a secret could
                   # reach the data file outside any record (tests/test_secrets.py).
                   meminit=True,
                   max_readers=MAX_READERS,
                   # MDB_NOMETASYNC: one fsync per write transaction, of its data pages, before
                   # its meta page is written; the meta page itself is flushed by the next
                   # commit or StoreWriter.sync. LMDB: "maintains database integrity, but a
                   # system crash may undo the last committed transaction" (ACI, not D).
                   # sync=False (MDB_NOSYNC) cost no fsync at all, but then a power cut on a
                   # file system that reorders writes can leave a meta page pointing at pages
                   # never written: a corrupt store (docs/store.md#durability; the cost is
                   # measured by benchmarks/backfill_throughput.py).
                   sync=True, metasync=False)
    lock = True
    try:
        env = lmdb.open(str(path), lock=True, **options)
    except lmdb.ReadersFullError:
        # Opening begins a transaction. Slots of dead processes are cleared by every opener
        # and by the writer on each reconcile, so a table this full holds live readers.
        raise StoreError(_readers_full(path)) from None
    except lmdb.Error as exc:
        if writable or not _cannot_lock(exc):
            raise _open_error(path, exc) from exc
        # A read-only file system or lock file: no writer can be at work, so read lockless.
        lock = False
        try:
            env = lmdb.open(str(path), lock=False, **options)
        except lmdb.Error as again:
            raise _open_error(path, again) from again
    try:
        _check_header_size(env, data)
        dbs: dict[bytes, Any] = {}
        if writable:
            with env.begin(write=True) as txn:
                for name in ALL_DBS:
                    dbs[name] = env.open_db(name, txn=txn, create=True)
        else:
            if lock:
                env.reader_check()
            # Without a transaction of ours, py-lmdb opens each database in a read transaction
            # of its own on a read-only environment (one passed in would not keep the handle).
            try:
                for name in ALL_DBS:
                    try:
                        dbs[name] = env.open_db(name, create=False)
                    except lmdb.NotFoundError:
                        # A store of an older schema lacks a newer database: leave it out, so
                        # that check_schema says what is wrong instead of "not a store".
                        if name == DB_META:
                            raise
            except lmdb.ReadersFullError:
                raise StoreError(_readers_full(path)) from None
        _check_size(env, dbs, data)
    except BaseException as exc:
        env.close()
        if isinstance(exc, StoreError):
            raise
        if isinstance(exc, lmdb.Error):
            raise StoreCorrupt(
                f"{path} is not a repofeed store, or it is corrupt ({exc}). "
                f"{rebuild_hint(path)}") from exc
        raise
    return env, dbs, writable


def _file_id(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _cannot_lock(exc: lmdb.Error) -> bool:
    return getattr(exc, "errno", None) in (errno.EACCES, errno.EROFS, errno.EPERM) or \
        "Permission denied" in str(exc) or "Read-only file system" in str(exc)


def _open_error(path: Path, exc: lmdb.Error) -> StoreError:
    if isinstance(exc, lmdb.InvalidError) or "Invalid argument" in str(exc):
        return corrupt(path, exc)
    return StoreError(f"the store at {path} cannot be opened ({exc}). {rebuild_hint(path)}")


def used_pages(txn: lmdb.Transaction, dbs: dict[bytes, Any]) -> int:
    """Pages in use by every database, the main one and the two meta pages (LMDB's free list
    not counted)."""
    pages = 2
    for db in [None, *dbs.values()]:
        st = txn.stat(db) if db is not None else txn.stat()
        pages += st["branch_pages"] + st["leaf_pages"] + st["overflow_pages"]
    return pages


# Pages a transaction allocated at the end of the file and freed again before it committed
# are counted by the header's last page number but never written. The writer extends the file
# over them after each transaction (StoreWriter._cover_last_page); a writer killed between its
# commit and that leaves the file this many pages short at most, in practice.
UNWRITTEN_TAIL_PAGES = 8


def _check_header_size(env: lmdb.Environment, data: Path) -> None:
    """Before any page but the meta pages is read: refuse a data file far shorter than its
    header's last page. Reading a page past the end of a mapped file kills the process with
    SIGBUS, without a message."""
    info, psize = env.info(), env.stat()["psize"]
    pages, size = info["last_pgno"] + 1, data.stat().st_size
    if size < (pages - UNWRITTEN_TAIL_PAGES) * psize:
        raise StoreCorrupt(
            f"the store at {data.parent} is damaged: data.mdb is {size:,} bytes but its header "
            f"says {pages * psize:,} (a truncated copy, or a disk error). "
            f"{rebuild_hint(data.parent)}")


def _check_size(env: lmdb.Environment, dbs: dict[bytes, Any], data: Path) -> None:
    """Then a sound test: every page in use has a distinct number inside the file, so a file
    of fewer pages than are in use is damaged for certain. A cut of a few pages that holds
    pages in use beyond free ones can still go unseen: LMDB keeps no page checksums."""
    with env.begin() as txn:
        psize = txn.stat()["psize"]
        needed = used_pages(txn, dbs) * psize
    size = data.stat().st_size
    if size < needed:
        raise StoreCorrupt(
            f"the store at {data.parent} is damaged: data.mdb is {size:,} bytes, fewer than "
            f"the {needed:,} bytes of pages in use (a truncated copy, or a disk error). "
            f"{rebuild_hint(data.parent)}")


def check_schema(handle: Handle) -> None:
    path = handle.path
    with handle.begin(DB_META) as txn:
        fmt = txn.get(K_FORMAT)
        version = txn.get(K_SCHEMA)
    if fmt is None or version is None:
        raise StoreError(f"{path} is not an initialised repofeed store: run `repofeed init`.")
    try:
        fmt, version = unpack(fmt), unpack(version)
    except Exception as exc:
        raise corrupt(path, f"its format key does not parse: {exc}") from exc
    if fmt != FORMAT_NAME:
        raise StoreError(f"{path} holds {fmt!r}, not a repofeed store.")
    if version != SCHEMA_VERSION:
        raise StoreError(
            f"the store at {path} has schema version {version}; this repofeed reads version "
            f"{SCHEMA_VERSION}. Nothing was changed. Rebuild it with `repofeed init --force` "
            f"and `repofeed backfill`, or use the repofeed release that wrote it."
        )


# -- the registry -------------------------------------------------------------------------

_lock = threading.Lock()
_handles: dict[str, Handle] = {}


def get_handle(path: Path, *, write: bool = False, create: bool = False, check: bool = True,
               map_size: int = DEFAULT_MAP_SIZE) -> Handle:
    """This process's handle on the store at ``path``; ``write`` for the writer's, ``create``
    to make a new store's files."""
    key = str(Path(path).resolve())
    write = write or create
    with _lock:
        handle = _handles.get(key)
        if handle is None:
            handle = _handles[key] = Handle(Path(key), map_size)
        handle.users += 1
        handle.writers += write
        handle.creating = handle.creating or create
    try:
        with handle.lock:
            handle._ensure()
            if write:
                handle.check_readers()
        if check:
            check_schema(handle)
    except BaseException:
        release(handle, write=write)
        raise
    return handle


def release(handle: Handle, *, write: bool = False) -> None:
    """Drop one user of ``handle``; the last one closes the environment."""
    with _lock:
        handle.users -= 1
        handle.writers -= write
        if handle.users > 0:
            return
        _handles.pop(str(handle.path), None)
    with handle.lock:
        handle._close_env()


# -- fork ---------------------------------------------------------------------------------

def _before_fork() -> None:
    _lock.acquire()
    for handle in _handles.values():
        handle.before_fork()


def _after_fork(child: bool) -> None:
    for handle in _handles.values():
        handle.after_fork(child)
    _lock.release()


os.register_at_fork(before=_before_fork, after_in_parent=lambda: _after_fork(False),
                    after_in_child=lambda: _after_fork(True))
