"""The worktree: uncommitted edits, new untracked files and deletions reach the snapshot.

``WorktreeWatcher`` holds one inotify instance (watchdog's ``InotifyFD``, read by one thread
that blocks on it: no polling) with one watch per directory that git does not ignore, so
``node_modules/``, ``.venv/``, build trees and ``.git`` are never watched, and never read. Its
callbacks only note paths and nudge the daemon; everything that reads files or asks git runs in
the daemon's thread (a pygit2 repository is not shared between threads).

``WorktreeOverlay`` turns noted paths into documents: a text file whose content, passed through
git's clean filters as ``git add`` would, equals the followed tip's blob is the committed
document (``source`` ``commit``); one that differs, or that git does not track, is a
``worktree`` document of that filtered text; a file gone from disk has no document.
When a commit lands, the committed version replaces a worktree document of the same content.
A full rescan (at start, after a lost-event overflow, and every ``RESCAN_SECONDS``) compares
every file by content hash, reading only files whose size or mtime changed.
"""

from __future__ import annotations

import errno
import logging
import os
import shlex
import stat
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pygit2
from watchdog.observers.inotify_c import InotifyConstants as IN
from watchdog.observers.inotify_c import InotifyEvent, InotifyFD

from repofeed.store.attributes import linguist_attrs
from repofeed.store.languages import detect_language
from repofeed.store.locate import is_under
from repofeed.store.schema import K_HEAD, content_key, content_key_of, path_bytes, path_str
from repofeed.store.secrets import is_secret_file, redact, redact_path
from repofeed.store.windows import window_count
from repofeed.store.writer import SnapshotChange

from .history import text_of

log = logging.getLogger("repofeed.daemon")

MASK = (IN.IN_CREATE | IN.IN_DELETE | IN.IN_MODIFY | IN.IN_CLOSE_WRITE | IN.IN_MOVED_FROM
        | IN.IN_MOVED_TO | IN.IN_DELETE_SELF | IN.IN_MOVE_SELF | IN.IN_ONLYDIR
        | IN.IN_DONT_FOLLOW | IN.IN_EXCL_UNLINK)
RESCAN_SECONDS = 600.0          # a full comparison by content hash, for events the kernel lost
FALLBACK_RESCAN_SECONDS = 30.0  # ... and how often when the watch limit left some unwatched
CLEAN_TIMEOUT_SECONDS = 60.0   # a clean filter driver that hangs must not stop the daemon
LIMIT_HINT = ("raise it with `sysctl fs.inotify.max_user_watches=524288` (and a file in "
              "/etc/sysctl.d/ to keep it)")


class WorktreeWatcher:
    """Watches the directories of a worktree that git does not ignore."""

    def __init__(self, root: Path, nudge: Callable[[str], None]):
        self.root = root.resolve()
        self.nudge = nudge
        self._fd = InotifyFD()  # an instance of our own, apart from the refs watcher's
        self._lock = threading.Lock()
        self._dirs: dict[int, str] = {}   # watch descriptor -> directory, relative ("" = root)
        self._dirty: set[str] = set()     # files (relative) that changed
        self._new_dirs: set[str] = set()  # directories created or moved in: to watch and scan
        self._rescan = False
        self.limit_reached = False

    # -- the inotify thread's side: note, nudge, nothing else ---------------------------------

    def on_event(self, event: InotifyEvent) -> None:
        with self._lock:
            directory = self._dirs.get(event.wd)
            if directory is None:
                return
            name = os.fsdecode(event.name)
            rel = f"{directory}/{name}" if directory and name else (name or directory)
            if not name:  # the watched directory itself went away or moved
                if event.is_delete_self or event.is_move_self:
                    self._rescan = True
                else:
                    return
            elif event.is_directory:
                if event.is_create or event.is_moved_to:
                    self._new_dirs.add(rel)
                elif event.is_moved_from or event.is_delete:
                    self._rescan = True  # what was under it is gone from here
                else:
                    return
            else:
                self._dirty.add(rel)
        self.nudge("worktree")

    def on_watch_deleted(self, wd: int) -> None:
        with self._lock:
            self._dirs.pop(wd, None)

    def on_queue_overflow(self) -> None:
        with self._lock:
            self._rescan = True
        log.warning("the kernel dropped file events (inotify queue overflow); rescanning the "
                    "worktree")
        self.nudge("overflow")

    # -- the daemon's side -------------------------------------------------------------------

    def start(self, is_ignored: Callable[[str], bool]) -> None:
        self._fd.start()
        self.watch_tree("", is_ignored)

    def stop(self) -> None:
        self._fd.stop()
        self._fd.join(timeout=5)

    @property
    def alive(self) -> bool:
        return self._fd.is_alive()

    @property
    def watches(self) -> int:
        with self._lock:
            return len(self._dirs)

    def watch_tree(self, rel: str, is_ignored: Callable[[str], bool]) -> list[str]:
        """Watch ``rel`` and every directory under it that is not ignored; returns the files
        found there (relative), which may have been written before their watch existed."""
        files: list[str] = []
        for directory, names in walk(self.root, rel, is_ignored):
            files.extend(names)
            if self.limit_reached:
                continue
            try:
                wd = self._fd.add_callback(os.fsencode(self.root / directory) if directory
                                           else os.fsencode(self.root), MASK, self, id(self))
            except OSError as exc:
                if exc.errno == errno.ENOSPC:
                    self.limit_reached = True
                    log.warning(
                        "the kernel's inotify watch limit (fs.inotify.max_user_watches) is "
                        "reached: %d directories of %s are watched and the rest are rescanned "
                        "every %.0f s; %s", len(self._dirs), self.root,
                        FALLBACK_RESCAN_SECONDS, LIMIT_HINT)
                    continue
                if exc.errno in (errno.ENOENT, errno.ENOTDIR):
                    continue  # gone meanwhile
                raise
            with self._lock:
                self._dirs[wd] = directory
        return files

    def take(self) -> tuple[set[str], set[str], bool]:
        """The changed files, new directories and whether a full rescan is due; then clear."""
        with self._lock:
            dirty, new_dirs, rescan = self._dirty, self._new_dirs, self._rescan
            self._dirty, self._new_dirs, self._rescan = set(), set(), False
        return dirty, new_dirs, rescan

    def put_back(self, dirty: set[str], new_dirs: set[str], rescan: bool) -> None:
        """Keep what could not be handled yet (git holds the index lock)."""
        with self._lock:
            self._dirty |= dirty
            self._new_dirs |= new_dirs
            self._rescan |= rescan


def walk(root: Path, start: str, is_ignored: Callable[[str], bool]
         ) -> Iterator[tuple[str, list[str]]]:
    """(directory, its files) for ``start`` and every directory under it that git does not
    ignore, relative to ``root``; ``.git`` and nested repositories (submodules) left out."""
    stack = [start]
    while stack:
        directory = stack.pop()
        try:
            entries = list(os.scandir(root / directory if directory else root))
        except OSError:
            continue
        if directory and any(e.name == ".git" for e in entries):
            continue  # a submodule or a nested repository: its own business
        files: list[str] = []
        for entry in entries:
            if entry.name == ".git":
                continue
            rel = f"{directory}/{entry.name}" if directory else entry.name
            try:
                is_dir = entry.is_dir(follow_symlinks=False)
            except OSError:
                continue
            if is_dir:
                if not is_ignored(rel + "/"):
                    stack.append(rel)
            else:
                files.append(rel)
        yield directory, files


@dataclass
class _Seen:
    """A file's size, mtime and inode when its document was last decided."""

    size: int
    mtime_ns: int
    inode: int


class WorktreeOverlay:
    """Decides and writes the worktree's documents; runs in the daemon's thread."""

    def __init__(self, repo: pygit2.Repository, ingest, root: Path):
        self.repo = repo
        self.ingest = ingest  # the daemon's Syncer: its writer, tokenizer and config
        self.root = root.resolve()
        self.max_bytes = ingest.cfg.max_file_bytes
        self._seen: dict[str, _Seen] = {}
        self._index: pygit2.Index | set[str] = set()
        self._index_stale = True
        self._skip_worktree: set[str] | None = None
        self.excluded = ingest.own  # the store, its lock, the spool and logs, if in here
        self.refresh_index()

    def is_ignored(self, rel: str) -> bool:
        """Ignored by git and not tracked (git ignores only untracked files), inside ``.git``,
        or one of repofeed's own files (when a store lives in the worktree)."""
        if rel == ".git" or rel.startswith(".git/") or is_under(rel.rstrip("/"), self.excluded):
            return True
        try:
            if not self.repo.path_is_ignored(rel):
                return False
        except UnicodeEncodeError:  # a name that is not UTF-8, which pygit2 cannot pass on
            return self._git_ignores(rel)
        except pygit2.GitError:
            return False
        if self._index_stale:  # read git's index only when an ignored path needs it
            self._index_stale = False
            try:
                self.repo.index.read(False)  # re-parsed only if the file changed
                self._index = self.repo.index
            except (pygit2.GitError, OSError):
                self._index = set()
        return path_bytes(rel.rstrip("/")) not in self._index

    def _git_ignores(self, rel: str) -> bool:
        """``git check-ignore`` for a path pygit2 cannot take (its bytes are not UTF-8); like
        the check above, a tracked file is never ignored. Such names are rare."""
        done = subprocess.run(["git", "check-ignore", "-q", "--", path_bytes(rel)],
                              cwd=self.root, capture_output=True, check=False)
        return done.returncode == 0

    def skip_worktree(self) -> set[str]:
        """Tracked files that a sparse checkout leaves off disk (skip-worktree in the index):
        absent, yet not deleted. pygit2 does not expose index flags, so git lists them; read
        once per pass, and only when a committed document's file is missing."""
        if self._skip_worktree is None:
            done = subprocess.run(["git", "ls-files", "-t", "-z"], cwd=self.root,
                                  capture_output=True, check=False)
            self._skip_worktree = {
                path_str(entry[2:]) for entry in done.stdout.split(b"\0")
                if entry.startswith(b"S ")} if done.returncode == 0 else set()
        return self._skip_worktree

    def refresh_index(self) -> None:
        """Forget which files are tracked; the index is read again when next needed."""
        self._index_stale = True
        self._skip_worktree = None

    def all_files(self) -> set[str]:
        return {f for _d, files in walk(self.root, "", self.is_ignored) for f in files}

    def _head_blobs(self) -> pygit2.Tree | None:
        head = self.ingest.writer.meta(K_HEAD)
        if head is None:
            return None
        try:
            return self.repo[head].peel(pygit2.Tree)
        except (KeyError, ValueError):
            return None

    def _read(self, rel: str) -> tuple[bytes | None, str | None, os.stat_result | None]:
        """(data, None, stat) for a regular file, (None, reason, stat) for one left out, and
        (None, None, None) for one that is gone (or ignored)."""
        path = self.root / rel
        try:
            st = os.lstat(path)
        except OSError:
            return None, None, None
        if not stat.S_ISREG(st.st_mode):
            return None, "symlink" if stat.S_ISLNK(st.st_mode) else "not_a_file", st
        if st.st_size > self.max_bytes:
            return None, "too_large", st
        try:
            with open(path, "rb") as fh:
                data = fh.read(self.max_bytes + 1)
        except OSError:
            return None, None, None
        return data, None, st

    def apply(self, paths: set[str], full: bool = False) -> tuple[int, int]:
        """Bring the documents of ``paths`` (or of every file, with ``full``) to the worktree;
        returns (documents changed, windows written). A full pass reads only files whose
        size, mtime or inode changed since it last looked."""
        writer = self.ingest.writer
        self.refresh_index()
        if full:
            docs = writer.documents()
            paths = set(paths) | self.all_files() | set(docs)
        else:  # only the documents of these paths: the cost follows the change
            docs = writer.documents_of({redact_path(p) for p in paths})
        # A secret in a file name is stored redacted: that stored name is not a file of its
        # own, the file is handled under its real name.
        aliases = {stored for p in paths if (stored := redact_path(p)) != p}
        tree = self._head_blobs()
        changes: list[SnapshotChange] = []
        texts: dict[bytes, str] = {}
        pending: list[tuple[str, bytes, str, str]] = []
        for rel in sorted(paths):
            self.ingest.heartbeat()  # a checkout of thousands of files is long work
            if rel in aliases:
                continue
            stored = redact_path(rel)
            current = docs.get(stored)
            if self.is_ignored(rel):
                if current is not None and current.get("source") == "worktree":
                    changes.append(SnapshotChange(stored))  # newly ignored: out of the snapshot
                continue
            try:
                st = os.lstat(self.root / rel)
            except OSError:
                st = None
            seen = self._seen.get(rel)
            if full and st is not None and seen is not None and \
                    (seen.size, seen.mtime_ns, seen.inode) == \
                    (st.st_size, st.st_mtime_ns, st.st_ino):
                continue  # unchanged since it was last decided
            data, reason, st = self._read(rel)
            if st is None:  # gone from the worktree
                self._seen.pop(rel, None)
                if current is not None and current.get("source", "commit") == "commit" and \
                        rel in self.skip_worktree():
                    continue  # left out by a sparse checkout: still the tip's document
                if current is not None:
                    changes.append(SnapshotChange(stored))
                continue
            if data is not None:  # what `git add` would store: the hash and text git sees
                data = self.cleaned(rel, data)
            text, reason = text_of(data) if data is not None else (None, reason)
            if text is not None and is_secret_file(rel, self.ingest.blobs.secret_files):
                text, reason = None, "secret_file"  # .env and its kin: left out whole
            self._seen[rel] = _Seen(st.st_size, st.st_mtime_ns, st.st_ino)
            if text is None:
                if current is not None:
                    changes.append(SnapshotChange(stored, None, reason))
                continue
            blob = pygit2.hash(data)
            source = "commit" if _blob_at(tree, rel) == blob else "worktree"
            if current is not None and current.get("source", "commit") == source and \
                    current.get("blob") == str(blob):
                continue
            text, counts = redact(text)  # before it is hashed or tokenized
            key = content_key(text) if counts else content_key_of(data)
            texts[key] = text
            attrs = linguist_attrs(self.repo, rel)
            language = detect_language(rel, text, attrs.get("linguist-language"))
            pending.append((stored, key, source, str(blob), attrs, language))
        fresh = self.ingest.encode_missing(
            texts, {key: language for _, key, _, _, _, language in pending}) if texts else {}
        windows = 0
        cfg = self.ingest.cfg
        for rel, key, source, blob, attrs, language in pending:
            n_tokens = len(fresh[key]) if key in fresh else len(writer.read_array(key))
            windows += window_count(n_tokens, cfg.max_tokens, cfg.stride)
            doc = {"path": rel, "hash": key, "n_tokens": n_tokens, "language": language,
                   "blob": blob, "source": source}
            if attrs:
                doc["attrs"] = attrs
            changes.append(SnapshotChange(rel, doc))
        if changes:
            writer.put_documents(changes, fresh, self.ingest.encoder.take_facts(fresh), texts)
        return len(changes), windows


    def cleaned(self, rel: str, data: bytes) -> bytes:
        """The file's content as git would store it: its clean filter driver
        (``filter.<name>.clean``), ``working-tree-encoding``, then libgit2's own filters (CRLF
        conversion by ``core.autocrlf`` or ``text``/``eol`` attributes, ``ident``), in git's
        order (convert.c: ``convert_to_git``). Without this a clean checkout of a CRLF
        repository would hash unlike its blobs and become worktree documents with CRLF text."""
        data = self._run_clean_driver(rel, data)
        encoding = self._attr(rel, "working-tree-encoding")
        if isinstance(encoding, str):
            try:
                data = data.decode(encoding).encode("utf-8")
            except (LookupError, UnicodeError):
                pass  # git refuses to add it; left as it is, it is not text
        if b"\0" in data:  # binary: git converts nothing (and libgit2 returns a C string)
            return data
        try:
            filters = self.repo.load_filter_list(path_bytes(rel))  # a path may not be UTF-8
            return filters.apply_to_buffer(data) if filters is not None else data
        except pygit2.GitError as exc:  # core.safecrlf=true refuses a mixed file
            log.debug("git's filters refuse %s: %s", redact_path(rel), redact(str(exc))[0])
            return data

    def _attr(self, rel: str, name: str) -> str | bool | None:
        try:
            return self.repo.get_attr(path_bytes(rel), name)
        except pygit2.GitError:
            return None

    def _run_clean_driver(self, rel: str, data: bytes) -> bytes:
        """Run ``filter.<name>.clean`` (libgit2 runs no external driver) as git does: through
        the shell, in the worktree, ``%f`` replaced by the quoted path, the file on stdin."""
        name = self._attr(rel, "filter")
        if not isinstance(name, str):
            return data
        try:
            command = self.repo.config[f"filter.{name}.clean"]
        except (KeyError, pygit2.GitError):
            return data  # no clean command: git stores the file as it is
        command = command.replace("%f", shlex.quote(rel))
        try:
            done = subprocess.run(["sh", "-c", command], input=data, cwd=self.root,
                                  capture_output=True, timeout=CLEAN_TIMEOUT_SECONDS)
        except (OSError, subprocess.TimeoutExpired) as exc:
            log.warning("the clean filter %r failed on %s (%s); its raw content is used",
                        name, redact_path(rel), redact(str(exc))[0])
            return data
        if done.returncode != 0:
            log.warning("the clean filter %r exited %d on %s; its raw content is used",
                        name, done.returncode, redact_path(rel))
            return data
        return done.stdout


def _blob_at(tree: pygit2.Tree | None, rel: str) -> pygit2.Oid | None:
    if tree is None:
        return None
    try:
        entry = tree[rel]
    except KeyError:
        return None
    return entry.id
