"""Taking commits in: git's changes → text filter → tokens → records, and the snapshot.

``Syncer.run`` brings a store up to the followed tip — what ``backfill`` does once and the
daemon on every nudge: every unprocessed commit oldest first, in a pipeline of two stages
(git is read for one batch while the previous one is encoded), each batch written in one
transaction with each commit whole; then which commits are live (liveness.py) and the snapshot
(snapshot.py), in one more. It is safe to interrupt at any point and to run again. Encoding
is encode.py's, token hunks hunks.py's, the store's creation init.py's.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pygit2

from repofeed.store.dedup import same_after_normalisation
from repofeed.store.errors import StoreError
from repofeed.store.locate import is_under, open_repository, own_paths, store_dir_of
from repofeed.store.schema import K_FOLLOW, K_HEAD, K_PIN, K_REPO, K_SHALLOW
from repofeed.store.writer import CommitWrite, StoreWriter

from .context import ContextDone, ContextMaker
from .encode import Encoder, TextBatch
from .history import (
    BlobReader,
    CommitChanges,
    FileChange,
    author_of,
    commit_changes,
    describe_ref,
    followed_repository,
    new_commits,
    ref_problem,
    resolve_commit,
    shallow_boundaries,
    tip_of,
)
from .hunks import token_hunks
from .liveness import liveness
from .snapshot import sync_snapshot
from .variants import Made, VariantMaker

FIRST_BATCH_COMMITS = 8      # batches start small, so that short histories overlap too,
BATCH_COMMITS = 64           # and double up to this
BATCH_BYTES = 8 << 20        # text gathered before one multi-threaded encode call


@dataclass
class BackfillResult:
    commits: int = 0
    records: int = 0
    bytes_read: int = 0
    documents_changed: int = 0
    windows_written: int = 0     # windows of the snapshot documents written
    changed_paths: list[str] = field(default_factory=list)  # snapshot paths written
    rebuilt: bool = False        # the snapshot was rebuilt whole (no earlier tree to diff)
    superseded: int = 0          # commits no longer reachable, marked superseded
    restored: int = 0            # superseded commits reachable again
    seconds: float = 0.0
    skipped: dict[str, int] = field(default_factory=dict)
    head: str | None = None
    last_commit: str | None = None  # the newest commit processed
    warnings: list[str] = field(default_factory=list)  # said to the user, not errors
    variants: Made | None = None  # the stored variants made after the snapshot
    context: ContextDone | None = None  # the import graph and context documents updated


ProgressFn = Callable[[int, int], None]

UNCHANGED = "unchanged_after_normalisation"  # a record skip reason (K_RECORD_SKIPS)


def unchanged(f: FileChange) -> bool:
    """A modification whose after is its before but for formatting noise
    (``same_after_normalisation``): no record. A rename keeps its record: the move is the
    change it records."""
    return f.change == "modified" and same_after_normalisation(f.before, f.after)


def record_changes(repo: pygit2.Repository, commit: pygit2.Commit, blobs: BlobReader, *,
                   own: tuple[str, ...] = (), include_merges: bool = False,
                   boundary: bool = False) -> CommitChanges:
    """What a commit gives evolution records from: its text files changed against its first
    parent, none for a shallow clone's boundary (its diff would claim every file added) or,
    unless ``include_merges``, for a merge; repofeed's own files (``own``) left out. The
    evaluation of held-out commits (repofeed.train.evaluate) forms its records the same way."""
    if boundary:
        return CommitChanges(commit, None, [], {}, boundary=True)
    if len(commit.parents) > 1 and not include_merges:
        return CommitChanges(commit, commit.parents[0], [], {})
    changes = commit_changes(repo, commit, blobs)
    changes.files = [f for f in changes.files if not is_under(f.path, own)]
    return changes


def pinned_tip(repo: pygit2.Repository, writer: StoreWriter, until: str | None
               ) -> pygit2.Commit | None:
    """The commit a pinned store ends at (``init --at``), checked against ``until``; None for
    a store that follows its branch. A pinned store is only ever brought up to its pin, and
    ``until`` only ever names a pinned store's pin: anything else is refused, clearly."""
    pin = writer.meta(K_PIN)
    where = writer.path
    if pin is None:
        if until is None:
            return None
        raise StoreError(
            f"the store at {where} follows its branch: it cannot stop at {until}. A store "
            f"for a temporal split is made apart, its tokenizer trained on that commit's tree: "
            f"`repofeed init --at {until} --store DIR`, then `repofeed backfill --until "
            f"{until} --store DIR`.")
    if until is None:
        raise StoreError(
            f"the store at {where} is pinned at {pin[:12]} (made by `init --at` for a temporal "
            f"split): it holds the history up to that commit and never follows the branch, so "
            f"neither the daemon nor a plain backfill runs on it. Complete it with `repofeed "
            f"backfill --until {pin[:12]} --store {where}`.")
    wanted = str(resolve_commit(repo, until).id)
    if wanted != pin:
        raise StoreError(
            f"the store at {where} is pinned at {pin[:12]}, not at {until} ({wanted[:12]}): "
            f"make another store for that cut (`repofeed init --at {until} --store DIR`).")
    try:
        return repo[pin].peel(pygit2.Commit)
    except (KeyError, ValueError) as exc:
        raise StoreError(f"the store at {where} is pinned at {pin}, which this repository "
                         f"does not hold.") from exc


class Syncer:
    """Keeps one store up to date with one repository: what ``backfill`` runs once and the
    daemon on every nudge."""

    def __init__(self, repo: pygit2.Repository, writer: StoreWriter, until: str | None = None):
        self.repo = repo = followed_repository(repo, writer.meta(K_REPO))
        self.writer = writer
        # A pinned store (init --at) is brought to its pin, never to the branch's tip.
        self.pin = pinned_tip(repo, writer, until)
        self.cfg = writer.config
        self.encoder = Encoder(writer)
        self.lengths = writer.tokenizer.byte_lengths
        self.blobs = BlobReader(repo, self.cfg.max_file_bytes,
                                 secret_files=tuple(self.cfg.secret_files))
        self.own = own_paths(repo, writer.path)  # never documents nor records

    def set_heartbeat(self, heartbeat: Callable[[], None]) -> None:
        """Call ``heartbeat`` at each step of long work: a blob read, a chunk of text encoded
        (in the encoding thread too). The daemon feeds systemd's watchdog from it, so a single
        commit of hundreds of MB does not get it killed, while a step that hangs still does."""
        self.encoder.heartbeat = self.blobs.heartbeat = heartbeat

    @property
    def heartbeat(self) -> Callable[[], None]:
        return self.encoder.heartbeat

    def encode_missing(self, texts: dict[bytes, str], languages: dict[bytes, str] | None = None
                       ) -> dict[bytes, np.ndarray]:
        """Token ids of the texts the store lacks (``Encoder.encode_missing``); the facts of
        those with a language wait in ``encoder.facts`` for the write."""
        return self.encoder.encode_missing(texts, languages=languages)

    def commit_write(self, changes: CommitChanges, fresh: dict[bytes, np.ndarray]) -> CommitWrite:
        commit = changes.commit
        write = CommitWrite(commit.id.raw, skips=dict(changes.skips),
                            boundary=changes.boundary)
        files = [f for f in changes.files if not unchanged(f)]
        if len(files) < len(changes.files):
            write.skips[UNCHANGED] = write.skips.get(UNCHANGED, 0) + \
                len(changes.files) - len(files)
        if not files:
            return write
        msg_key = changes.message_key
        referenced = [msg_key]  # a list: array ids are given in this order, identically each run
        write.info = {
            "parent": str(changes.parent.id) if changes.parent else None,
            "message": msg_key,
            "n_msg": len(self.encoder.ids(msg_key, fresh)),
            "author": author_of(commit),
            "timestamp": commit.author.time,
        }
        for f in files:
            b_key, a_key = f.before_key, f.after_key
            b_ids = self.encoder.ids(b_key, fresh) if b_key else np.zeros(0, dtype=np.int64)
            a_ids = self.encoder.ids(a_key, fresh) if a_key else np.zeros(0, dtype=np.int64)
            referenced.extend(k for k in (b_key, a_key) if k)
            if f.change == "added":
                hunks = [[0, 0, 0, len(a_ids)]]
            elif f.change == "deleted":
                hunks = [[0, len(b_ids), 0, 0]]
            elif f.hunks:
                hunks = token_hunks(f.before, b_ids, f.after, a_ids, f.hunks, self.lengths)
            else:
                hunks = []
            write.records.append({
                "path": f.path, "old_path": f.old_path, "change": f.change,
                "before": b_key, "after": a_key, "n_before": len(b_ids),
                "n_after": len(a_ids), "hunks": hunks,
            })
        write.arrays = {k: fresh[k] for k in dict.fromkeys(referenced) if k in fresh}
        write.facts = self.encoder.take_facts(write.arrays)
        return write

    def write_batch(self, batch: TextBatch, fresh: dict[bytes, np.ndarray],
                    result: BackfillResult) -> None:
        """Write a batch's commits in one transaction (each commit whole, with its cursor
        entry). No flush after it: its fsync (MDB_NOMETASYNC) already keeps the store
        consistent, and the next transaction's fsync or the snapshot's flush makes it durable."""
        writes = [self.commit_write(changes, fresh) for changes in batch.items]
        for write, written in zip(writes, self.writer.write_commits(writes)):
            if written:
                result.commits += 1
                result.records += len(write.records)
                for reason, n in write.skips.items():
                    result.skipped[reason] = result.skipped.get(reason, 0) + n
        result.bytes_read += batch.bytes

    def missing_tip(self, follow: str, result: BackfillResult) -> bool:
        """Say why the followed ref names no commit; True if the store is to be kept as it is.

        ``HEAD`` on an unborn branch (``git switch --orphan``) is the checkout the store
        follows: its snapshot empties, and the records of other branches stay. A configured
        branch that is gone (deleted, renamed) keeps the snapshot and everything else
        unchanged until it is back: emptying training data because a ref vanished, maybe for
        a moment, would be the worse surprise.
        """
        repo, head = self.repo, self.writer.meta(K_HEAD)
        problem = ref_problem(repo, follow) or "names no commit"
        name = describe_ref(repo, follow)
        if follow == "HEAD" or (problem == "has no commits yet" and head is None):
            result.warnings.append(
                f"{name} {problem}: the snapshot stays empty until its first commit.")
            return False
        if head is None:
            result.warnings.append(
                f"the followed branch {name} {problem}: nothing to take in. Create it, or "
                f"follow another branch (`follow` in repofeed.toml, then `repofeed init "
                f"--force`).")
            return True
        result.head = head
        result.warnings.append(
            f"the followed branch {name} {problem} (deleted or renamed?): the store keeps "
            f"its snapshot of {head[:12]} and takes nothing in until the branch is back. "
            f"Recreate it, or follow another branch (`follow` in repofeed.toml, then "
            f"`repofeed init --force`).")
        return True

    def run(self, progress: Callable[[int], ProgressFn] | None = None,
            stop_after: int | None = None) -> BackfillResult:
        """Process every commit of the followed ref not yet in the store, then the snapshot
        and which commits are superseded. Safe to stop at any point and to run again."""
        started = time.perf_counter()
        result = BackfillResult()
        writer, repo = self.writer, self.repo
        writer.check_readers()  # slots of readers that died: a full table stops every reader
        follow = writer.meta(K_FOLLOW)
        shallow = shallow_boundaries(repo)
        # Boundaries that have parents now (`git fetch --unshallow`) are processed again, and
        # the history behind the stored head, which hiding it would skip, is walked whole.
        regained = [b for b in writer.meta(K_SHALLOW) or [] if b not in shallow]
        if regained:
            writer.forget_boundaries(regained)
            # libgit2 reads .git/shallow once per Repository: a fresh one sees the parents.
            self.repo = repo = pygit2.Repository(repo.path)
        tip = self.pin if self.pin is not None else tip_of(repo, follow)
        if tip is None:
            kept = self.missing_tip(follow, result)
            if kept:
                result.seconds = time.perf_counter() - started
                return result
        todo = new_commits(repo, tip, None if regained else writer.meta(K_HEAD))
        fresh_ids = set(writer.unprocessed(c.id.raw for c in todo))
        todo = [c for c in todo if c.id.raw in fresh_ids]
        stopping_early = stop_after is not None and len(todo) > stop_after
        if stopping_early:
            todo = todo[:stop_after]
        if todo:
            writer.note_pending_tip(str(tip.id))
        tick = progress(len(todo)) if progress else None
        # A pipeline of two stages: while SentencePiece encodes one batch (in a worker thread,
        # without the GIL), the main thread reads the next batch from git. A batch is encoded
        # only after the one before it is written, so no text is encoded twice.
        pending: tuple[TextBatch, Future] | None = None
        done = 0

        def finish(pending: tuple[TextBatch, Future]) -> None:
            nonlocal done
            self.write_batch(pending[0], pending[1].result(), result)
            done += len(pending[0].items)
            if tick:
                tick(done, result.bytes_read)

        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="repofeed-encode") as pool:
            try:
                batch, limit = TextBatch(), FIRST_BATCH_COMMITS
                for commit in todo:
                    changes = record_changes(repo, commit, self.blobs, own=self.own,
                                             include_merges=self.cfg.include_merges,
                                             boundary=str(commit.id) in shallow)
                    batch.add(changes)
                    if len(batch.items) >= limit or batch.bytes >= BATCH_BYTES:
                        if pending:
                            finish(pending)
                        pending = (batch, pool.submit(self.encoder.encode_missing, batch.texts,
                                                      batch.bases, batch.languages))
                        batch, limit = TextBatch(), min(limit * 2, BATCH_COMMITS)
                if pending:
                    finish(pending)
                if batch.items:
                    finish((batch, pool.submit(self.encoder.encode_missing, batch.texts,
                                               batch.bases, batch.languages)))
            except BaseException:
                pool.shutdown(wait=True, cancel_futures=True)
                raise
        if todo:
            result.last_commit = str(todo[-1].id)
        if not stopping_early:
            live = liveness(repo, writer, follow, tip)
            result.superseded, result.restored = len(live.superseded), len(live.restored)
            result.documents_changed, result.windows_written = sync_snapshot(
                self, tip, live, result)
        result.head = str(tip.id) if tip is not None else None
        result.seconds = time.perf_counter() - started
        return result


def backfill(repo_path: str | Path | None, *, store: str | Path | None = None,
             progress: Callable[[int], ProgressFn] | None = None,
             stop_after: int | None = None, until: str | None = None,
             variant_progress: Callable[[int], ProgressFn] | None = None) -> BackfillResult:
    """Process every commit of the followed ref not yet in the store, then the snapshot,
    then the snapshot's stored variants (``daemon/variants.py``; not after ``stop_after``).

    ``progress(total)`` returns a callback ``(done, bytes)`` called after each commit.
    ``stop_after`` ends after that many commits (tests of interrupted runs use it).
    ``until`` (a commit, for a store pinned there by ``init --at``) takes in the history up to
    that commit and the snapshot at it; a pinned store needs it, and only its own pin.
    """
    repo = open_repository(repo_path)
    store_dir = Path(store) if store else store_dir_of(repo)
    with StoreWriter(store_dir) as writer:
        syncer = Syncer(repo, writer, until)
        result = syncer.run(progress, stop_after)
        if stop_after is None:
            result.context = ContextMaker(syncer.encoder).run()
            result.variants = make_all_variants(syncer.encoder, variant_progress)
        return result


def make_all_variants(encoder: Encoder, progress: Callable[[int], ProgressFn] | None = None
                      ) -> Made:
    """Every pending variant of the store, with ``progress(total)`` as ``backfill``'s."""
    maker = VariantMaker(encoder)
    ticks: list[ProgressFn] = []

    def tick(done: int, total: int) -> None:
        if progress is not None and not ticks:
            ticks.append(progress(total))
        if ticks:
            ticks[0](done, 0)

    return maker.run(progress=tick)
