"""The ingest pipeline: git changes → text filter → tokens → records and documents in the store.

``init_store`` makes a store (training or loading the tokenizer); ``backfill`` brings it up to
the followed tip: every unprocessed commit oldest first, one write transaction each, then the
snapshot documents. Both are safe to interrupt at any point and to run again.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pygit2

from repofeed.store.config import Config, load_config
from repofeed.store.errors import RepofeedError, TokenizerError
from repofeed.store.languages import language_of, weight_of
from repofeed.store.locate import (
    CONFIG_KEY,
    common_dir,
    is_under,
    open_repository,
    own_paths,
    store_dir_of,
)
from repofeed.store.schema import (
    K_FOLLOW,
    K_HEAD,
    K_PENDING,
    K_REPO,
    K_ROOTS,
    K_SHALLOW,
    K_SUPERSEDED,
    content_key,
    content_key_of,
)
from repofeed.store.tokenizer import Tokenizer, check_roundtrip, train_tokenizer
from repofeed.store.windows import window_count
from repofeed.store.writer import CommitWrite, Liveness, SnapshotChange, StoreWriter

from .history import (
    BlobReader,
    CommitChanges,
    author_of,
    commit_changes,
    describe_ref,
    followed_ref,
    live_roots,
    message_of,
    new_commits,
    reachable_only,
    ref_problem,
    shallow_boundaries,
    tip_of,
    tree_changes,
)

FIRST_BATCH_COMMITS = 8      # batches start small, so that short histories overlap too,
BATCH_COMMITS = 64           # and double up to this
ENCODE_CHUNK_BYTES = 256 << 10  # text per SentencePiece call: a fraction of a second
BATCH_BYTES = 8 << 20          # text gathered before one multi-threaded encode call
TRAIN_CORPUS_BYTES = 64 << 20  # tokenizer training reads at most this much of the tip


@dataclass
class InitResult:
    store_dir: Path
    follow: str
    tokenizer_source: str
    vocab_size: int
    notes: list[str] = field(default_factory=list)


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


# -- init ---------------------------------------------------------------------------------------

def _tip_texts(repo: pygit2.Repository, tip: pygit2.Commit, cfg: Config,
               max_files: int | None = None) -> list[str]:
    blobs = BlobReader(repo, cfg.max_file_bytes)
    texts: list[str] = []
    total = 0
    for _path, oid, mode in tree_changes(repo, None, tip.tree):
        text, _ = blobs.read(oid, mode)
        if text:
            texts.append(text)
            total += len(text)
            if total >= TRAIN_CORPUS_BYTES or len(texts) == max_files:
                break
    return texts


def init_store(repo_path: str | Path | None, *, tokenizer: str | Path | None = None,
               vocab_size: int | None = None, store: str | Path | None = None,
               force: bool = False, **overrides: Any) -> InitResult:
    repo = open_repository(repo_path)
    workdir = Path(repo.workdir) if repo.workdir else None
    cfg = load_config(workdir, vocab_size=vocab_size, **overrides)
    store_dir = Path(store).resolve() if store else store_dir_of(repo)
    follow = followed_ref(cfg.follow)
    notes: list[str] = []

    if tokenizer is not None:
        model_path = Path(tokenizer)
        if not model_path.is_file():
            raise TokenizerError(f"no tokenizer model at {model_path}")
        try:
            tok, missing = Tokenizer.for_user_model(model_path.read_bytes())
        except TokenizerError as exc:
            raise TokenizerError(f"{model_path} is {exc}: pass the `.model` file that "
                                 f"SentencePiece wrote for the base model.") from exc
        source = str(model_path.resolve())
        tip = tip_of(repo, follow)
        if tip is not None:
            texts = _tip_texts(repo, tip, cfg, max_files=200)  # a sample is enough to tell
            lossy = [t for t in texts if tok.decode(tok.encode(t)) != t]
            if lossy:
                notes.append(
                    f"the tokenizer does not reproduce {len(lossy)} of {len(texts)} text files "
                    f"exactly (decode(encode(text)) != text: its normalization changes "
                    f"whitespace or characters); stored text is what it decodes to."
                )
        if missing:
            first = tok.base_size
            # a sentinel the model has as an ordinary or user-defined piece is matched in text
            matched = [s for s in missing if tok.sp.piece_to_id(s) != tok.sp.unk_id()]
            lacking = [s for s in missing if s not in matched]
            why = []
            if lacking:
                why.append(f"lacks {len(lacking)} of the sentinels ({', '.join(lacking)})")
            if matched:
                why.append(f"has {', '.join(matched)} only as pieces that text encodes to "
                           f"(a file that spells one would forge it)")
            notes.append(
                f"the tokenizer {' and '.join(why)}; these {len(missing)} sentinels get new ids "
                f"{first}–{first + len(missing) - 1} after its vocabulary, which text never "
                f"encodes to. Resize the model's embeddings to {tok.vocab_size} before "
                f"training on this store."
            )
    else:
        tip = tip_of(repo, follow)
        if tip is None:
            raise TokenizerError(
                f"{describe_ref(repo, follow)} {ref_problem(repo, follow) or 'names no commit'},"
                f" so there is nothing to train a tokenizer on: commit some files first (or "
                f"follow a branch that has them), or pass `--tokenizer MODEL`."
            )
        trained = train_tokenizer(_tip_texts(repo, tip, cfg), cfg.vocab_size)
        tok = Tokenizer(trained.model)
        check_roundtrip(tok)
        source = "trained"
        if trained.reduced:
            notes.append(
                f"the repository's text supports a vocabulary of {trained.vocab_size}, not the "
                f"{trained.requested} asked for: the tokenizer was trained with "
                f"{trained.vocab_size}."
            )
    info = {"source": source, "requested_vocab": cfg.vocab_size}
    writer = StoreWriter.create(store_dir, config=cfg, tokenizer=tok, tokenizer_info=info,
                                repo=str(workdir or repo.path), follow=follow, force=force)
    writer.close()
    if store:
        repo.config[CONFIG_KEY] = str(store_dir)
    return InitResult(store_dir, describe_ref(repo, follow), source, tok.vocab_size, notes)


# -- backfill -----------------------------------------------------------------------------------

def _line_starts(data: bytes) -> np.ndarray:
    """Byte offset of every line start, plus the end of the text."""
    buf = np.frombuffer(data, dtype=np.uint8)
    starts = np.flatnonzero(buf == 0x0A) + 1
    return np.concatenate(([0], starts[starts < len(data)], [len(data)])).astype(np.int64)


class _TokenMap:
    """Maps byte ranges of a text to the token ranges covering them."""

    def __init__(self, text: str, ids: np.ndarray, lengths: np.ndarray):
        self.lines = _line_starts(text.encode("utf-8"))
        ends = np.cumsum(lengths[ids]) if len(ids) else np.zeros(0, dtype=np.int64)
        self.ends = ends
        self.starts = ends - lengths[ids] if len(ids) else ends

    def line_range(self, start: int, count: int) -> tuple[int, int]:
        """Token range of git's hunk lines ``start`` (1-based) .. ``start + count``."""
        last = len(self.lines) - 1
        if count == 0:  # an insertion point after line ``start``
            lo = hi = int(self.lines[min(start, last)])
        else:
            lo = int(self.lines[min(start - 1, last)])
            hi = int(self.lines[min(start - 1 + count, last)])
        first = int(np.searchsorted(self.ends, lo, side="right"))
        stop = int(np.searchsorted(self.starts, hi, side="left")) if hi > lo else first
        return first, max(first, stop)


def _token_hunks(before: str, b_ids: np.ndarray, after: str, a_ids: np.ndarray,
                 hunks: Iterable[tuple[int, int, int, int]], lengths: np.ndarray
                 ) -> list[list[int]]:
    bmap, amap = _TokenMap(before, b_ids, lengths), _TokenMap(after, a_ids, lengths)
    out = []
    for old_start, old_lines, new_start, new_lines in hunks:
        b0, b1 = bmap.line_range(old_start, old_lines)
        a0, a1 = amap.line_range(new_start, new_lines)
        out.append([b0, b1, a0, a1])
    return out


class _Batch:
    """Commits whose texts are tokenized together (one multi-threaded encode call)."""

    def __init__(self) -> None:
        self.items: list[CommitChanges] = []
        self.texts: dict[bytes, str] = {}
        # edited text -> (the text it was edited from, git's line hunks between them)
        self.bases: dict[bytes, tuple[bytes, list[tuple[int, int, int, int]]]] = {}
        self.bytes = 0

    def add(self, changes: CommitChanges) -> None:
        """Queue a commit; hash each of its texts once and keep the new ones for encoding."""
        self.items.append(changes)
        if changes.files:
            changes.message_key = self._key(message_of(changes.commit))
        for f in changes.files:
            f.before_key = self._key(f.before) if f.before is not None else None
            if f.after is None:
                continue
            first_seen = len(self.texts)
            f.after_key = self._key(f.after)
            # A text first met as the result of this edit is encoded from its base, which
            # then comes earlier in the batch's order.
            if f.before_key is not None and f.hunks and len(self.texts) > first_seen:
                self.bases[f.after_key] = (f.before_key, f.hunks)

    def _key(self, text: str) -> bytes:
        data = text.encode("utf-8")
        key = content_key_of(data)
        if key not in self.texts:
            self.texts[key] = text
            self.bytes += len(data)
        return key


def _no_heartbeat() -> None:
    pass


class _Ingest:
    def __init__(self, repo: pygit2.Repository, writer: StoreWriter):
        self.repo = repo
        self.writer = writer
        self.cfg = writer.config
        self.tok = writer.tokenizer
        self.lengths = self.tok.byte_lengths
        self.blobs = BlobReader(repo, self.cfg.max_file_bytes)
        self.heartbeat: Callable[[], None] = _no_heartbeat
        self.own = own_paths(repo, writer.path)  # never documents nor records

    def set_heartbeat(self, heartbeat: Callable[[], None]) -> None:
        """Call ``heartbeat`` at each step of long work: a blob read, a chunk of text encoded
        (in the encoding thread too). The daemon feeds systemd's watchdog from it, so a single
        commit of hundreds of MB does not get it killed, while a step that hangs still does."""
        self.heartbeat = self.blobs.heartbeat = heartbeat

    def encode_missing(self, texts: dict[bytes, str],
                       bases: dict[bytes, tuple[bytes, list]] | None = None
                       ) -> dict[bytes, np.ndarray]:
        """Token ids of the texts the store lacks.

        A text edited from a known one (``bases``) is re-encoded around its hunks only
        (``Tokenizer.plan_edit``). Everything SentencePiece must see — whole texts and the
        edited spans — goes to it in one multi-threaded call per wave; a wave handles the
        edits whose base is known, so an edit of a text new in this batch waits one wave.
        """
        bases = bases or {}
        absent = self.writer.missing_arrays(texts)
        pending = [k for k in texts if k in absent]
        fresh: dict[bytes, np.ndarray] = {}
        while pending:
            whole: list[bytes] = []
            edits: list[tuple[bytes, np.ndarray, list]] = []
            waiting: list[bytes] = []
            for key in pending:
                base = bases.get(key) if self.tok.spliceable else None
                if base is None:
                    whole.append(key)
                    continue
                if base[0] in absent and base[0] not in fresh:
                    waiting.append(key)
                    continue
                base_ids = self.ids(base[0], fresh)
                plan = self.tok.plan_edit(texts[base[0]], base_ids, texts[key], base[1])
                if plan is None:
                    whole.append(key)
                else:
                    edits.append((key, base_ids, plan))
            if not whole and not edits:   # cannot happen (bases come first); be safe
                whole, waiting = waiting, []
            spans = [step for _, _, plan in edits for step in plan if isinstance(step, str)]
            encoded = self._encode_chunked([texts[k] for k in whole] + spans)
            for key, ids in zip(whole, encoded):
                fresh[key] = np.asarray(ids, dtype=np.int64)
                self.heartbeat()  # tens of MB of ids take a while to convert, too
            rest = iter(encoded[len(whole):])
            for key, base_ids, plan in edits:
                fresh[key] = np.asarray(self.tok.assemble(base_ids, plan, rest), dtype=np.int64)
                self.heartbeat()
            pending = waiting
        return fresh

    def _encode_chunked(self, texts: list[str]) -> list[list[int]]:
        """``encode_batch`` over chunks of about ``ENCODE_CHUNK_BYTES``, with a heartbeat after
        each: one call over hundreds of MB would say nothing for minutes."""
        encoded: list[list[int]] = []
        start, size = 0, 0
        for end, text in enumerate(texts, 1):
            size += len(text)
            if size >= ENCODE_CHUNK_BYTES or end == len(texts):
                encoded.extend(self.tok.encode_batch(texts[start:end]))
                self.heartbeat()
                start, size = end, 0
        return encoded

    def ids(self, key: bytes, fresh: dict[bytes, np.ndarray]) -> np.ndarray:
        found = fresh.get(key)
        return found if found is not None else self.writer.read_array(key).astype(np.int64)

    def commit_write(self, changes: CommitChanges, fresh: dict[bytes, np.ndarray]) -> CommitWrite:
        commit = changes.commit
        write = CommitWrite(commit.id.raw, skips=dict(changes.skips),
                            boundary=changes.boundary)
        if not changes.files:
            return write
        msg_key = changes.message_key
        referenced = [msg_key]  # a list: array ids are given in this order, identically each run
        write.info = {
            "parent": str(changes.parent.id) if changes.parent else None,
            "message": msg_key,
            "n_msg": len(self.ids(msg_key, fresh)),
            "author": author_of(commit),
            "timestamp": commit.author.time,
        }
        for f in changes.files:
            b_key, a_key = f.before_key, f.after_key
            b_ids = self.ids(b_key, fresh) if b_key else np.zeros(0, dtype=np.int64)
            a_ids = self.ids(a_key, fresh) if a_key else np.zeros(0, dtype=np.int64)
            referenced.extend(k for k in (b_key, a_key) if k)
            if f.change == "added":
                hunks = [[0, 0, 0, len(a_ids)]]
            elif f.change == "deleted":
                hunks = [[0, len(b_ids), 0, 0]]
            elif f.hunks:
                hunks = _token_hunks(f.before, b_ids, f.after, a_ids, f.hunks, self.lengths)
            else:
                hunks = []
            write.records.append({
                "path": f.path, "old_path": f.old_path, "change": f.change,
                "before": b_key, "after": a_key, "n_before": len(b_ids),
                "n_after": len(a_ids), "hunks": hunks,
            })
        write.arrays = {k: fresh[k] for k in dict.fromkeys(referenced) if k in fresh}
        return write

    def write_batch(self, batch: _Batch, fresh: dict[bytes, np.ndarray],
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

    def liveness(self, follow: str, tip: pygit2.Commit | None) -> Liveness:
        """Which processed commits the roots no longer reach, or reach again.

        Only the difference between the roots of the last run and now is walked, so the cost
        follows the size of a rewrite, not of the history. If an old tip is gone from the
        object database (pruned), every live commit is checked against the new roots instead.
        """
        writer, repo = self.writer, self.repo
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

    def sync_snapshot(self, tip: pygit2.Commit | None, liveness: Liveness | None = None,
                      result: BackfillResult | None = None) -> tuple[int, int]:
        """Bring the snapshot documents to ``tip``'s tree and apply ``liveness``, in one
        transaction; returns (documents changed, windows written)."""
        old_head = self.writer.meta(K_HEAD)
        new_head = str(tip.id) if tip is not None else None
        unchanged_roots = liveness is None or (
            not liveness.superseded and not liveness.restored
            and liveness.roots == self.writer.meta(K_ROOTS)
            and not self.writer.meta(K_PENDING))
        if old_head == new_head and old_head is not None and unchanged_roots:
            return 0, 0
        old_tree = None
        if old_head is not None:
            try:
                old_tree = self.repo[old_head].peel(pygit2.Tree)
            except (KeyError, ValueError):
                old_tree = None  # the old head is gone (history rewritten and pruned)
        new_tree = tip.tree if tip is not None else None
        pending: list[tuple[str, bytes, str, pygit2.Oid]] = []
        changes: list[SnapshotChange] = []
        texts: dict[bytes, str] = {}
        seen: set[str] = set()
        for path, oid, mode in tree_changes(self.repo, old_tree, new_tree):
            if is_under(path, self.own):
                continue  # repofeed's own files, committed by a `git add -A`
            seen.add(path)
            if oid is None:
                changes.append(SnapshotChange(path))
                continue
            text, reason = self.blobs.read(oid, mode)
            if text is None:
                changes.append(SnapshotChange(path, None, reason))
                continue
            key = content_key(text)
            texts[key] = text
            pending.append((path, key, text, oid))
        if old_tree is None:  # no base to diff from: also drop what the new tree lacks
            known = set(self.writer.documents())
            changes.extend(SnapshotChange(p) for p in sorted(known - seen))
        fresh = self.encode_missing(texts)
        windows = 0
        for path, key, _text, oid in pending:
            n_tokens = len(fresh[key]) if key in fresh else len(self.writer.read_array(key))
            language = language_of(path)
            windows += window_count(n_tokens, self.cfg.max_tokens, self.cfg.stride)
            changes.append(SnapshotChange(path, {
                "path": path, "hash": key, "n_tokens": n_tokens, "language": language,
                "weight": weight_of(path, language), "blob": str(oid), "source": "commit",
            }))
        self.writer.sync_snapshot(new_head, changes, fresh, liveness)
        if result is not None:
            result.changed_paths = [c.path for c in changes]
            result.rebuilt = old_tree is None
        return len(changes), windows

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
        tip = tip_of(repo, follow)
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
        pending: tuple[_Batch, Future] | None = None
        done = 0

        def finish(pending: tuple[_Batch, Future]) -> None:
            nonlocal done
            self.write_batch(pending[0], pending[1].result(), result)
            done += len(pending[0].items)
            if tick:
                tick(done, result.bytes_read)

        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="repofeed-encode") as pool:
            try:
                batch, limit = _Batch(), FIRST_BATCH_COMMITS
                for commit in todo:
                    if str(commit.id) in shallow:  # its diff would claim every file added
                        changes = CommitChanges(commit, None, [], {}, boundary=True)
                    elif len(commit.parents) > 1 and not self.cfg.include_merges:
                        changes = CommitChanges(commit, commit.parents[0], [], {})
                    else:
                        changes = commit_changes(repo, commit, self.blobs)
                        changes.files = [f for f in changes.files
                                         if not is_under(f.path, self.own)]
                    batch.add(changes)
                    if len(batch.items) >= limit or batch.bytes >= BATCH_BYTES:
                        if pending:
                            finish(pending)
                        pending = (batch, pool.submit(self.encode_missing, batch.texts,
                                                      batch.bases))
                        batch, limit = _Batch(), min(limit * 2, BATCH_COMMITS)
                if pending:
                    finish(pending)
                if batch.items:
                    finish((batch, pool.submit(self.encode_missing, batch.texts, batch.bases)))
            except BaseException:
                pool.shutdown(wait=True, cancel_futures=True)
                raise
        if todo:
            result.last_commit = str(todo[-1].id)
        if not stopping_early:
            liveness = self.liveness(follow, tip)
            result.superseded, result.restored = len(liveness.superseded), len(liveness.restored)
            result.documents_changed, result.windows_written = self.sync_snapshot(
                tip, liveness, result)
        result.head = str(tip.id) if tip is not None else None
        result.seconds = time.perf_counter() - started
        return result


ProgressFn = Callable[[int, int], None]


def followed_repository(repo: pygit2.Repository, recorded: str | None) -> pygit2.Repository:
    """The repository (worktree) whose refs the store follows: the one ``init`` ran in.

    ``HEAD`` differs between worktrees, so a backfill started in another worktree of the same
    repository still follows the HEAD the store was made for. A store whose repository has
    moved follows the one it was opened from.
    """
    here = str(Path(repo.workdir or repo.path).resolve())
    if not recorded or str(Path(recorded).resolve()) == here or not Path(recorded).exists():
        return repo
    try:
        other = open_repository(recorded)
    except RepofeedError:
        return repo
    return other if common_dir(other) == common_dir(repo) else repo


class Syncer(_Ingest):
    """Keeps one store up to date with one repository: what ``backfill`` runs once and the
    daemon on every nudge."""

    def __init__(self, repo: pygit2.Repository, writer: StoreWriter):
        super().__init__(followed_repository(repo, writer.meta(K_REPO)), writer)


def backfill(repo_path: str | Path | None, *, store: str | Path | None = None,
             progress: Callable[[int], ProgressFn] | None = None,
             stop_after: int | None = None) -> BackfillResult:
    """Process every commit of the followed ref not yet in the store, then the snapshot.

    ``progress(total)`` returns a callback ``(done, bytes)`` called after each commit.
    ``stop_after`` ends after that many commits (tests of interrupted runs use it).
    """
    repo = open_repository(repo_path)
    store_dir = Path(store) if store else store_dir_of(repo)
    with StoreWriter(store_dir) as writer:
        return Syncer(repo, writer).run(progress, stop_after)
