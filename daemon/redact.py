"""``repofeed redact``: purge secrets from a store built before redaction (or before a rule was
added to store/secrets.py).

Every stored token array is decoded with the store's own tokenizer and scanned again; a text
that redaction changes is encoded anew and stored under its new content hash, and whatever
pointed at the old array — snapshot documents, evolution records (before, after, with their
token hunks taken again), commit messages — is repointed, in one write transaction with the
authors and paths (documents, records, skipped entries) redacted too, and any snapshot
document of a file of credentials (``.env``: ``is_secret_file``) dropped and listed as
skipped. The old arrays then go at once (``gc.collect`` with no grace period) and the store
file is compacted, since LMDB leaves freed pages' old bytes in the file; both only when no
other process has the store open, which is said plainly otherwise. It holds the writer lock,
so the daemon must be stopped first.

A SentencePiece model trained by ``repofeed init`` decodes every array to exactly the text
that was encoded (byte fallback, identity normalization: checked at ``init``), so the scan
sees the stored text itself. The tokenizer's own vocabulary is not rewritten: a model trained
on text with secrets before this existed may hold pieces of them; the result says so
(``tokenizer_trained_unredacted``), and ``repofeed init --force`` with a backfill rebuilds it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pygit2

from repofeed.store.arrays import read_all
from repofeed.store.facts import facts_of
from repofeed.store.gc import collect, compact, other_readers
from repofeed.store.locate import resolve_store_dir
from repofeed.store.schema import (
    DB_COMMITS,
    DB_DOCS,
    DB_FACTS,
    DB_HASHES,
    DB_RECORDS,
    DB_SKIPPED,
    DB_TOKENS,
    K_REDACTIONS,
    K_STORED_TOKENS,
    K_TOKENIZER_INFO,
    content_key,
    is_hashed_key,
    pack,
    path_bytes,
    path_key,
    path_str,
    seq_key,
    seq_of,
    unpack,
)
from repofeed.store.secrets import is_secret_file, redact, redact_path
from repofeed.store.writer import StoreWriter

from .hunks import token_hunks

# The tokenizer_info flag init sets once its training text is redacted (daemon/init.py).
REDACTED_TRAINING = "trained_on_redacted_text"

ProgressFn = Callable[[int, int], None]   # (arrays scanned, total)


@dataclass
class RedactResult:
    arrays_scanned: int = 0
    arrays_rewritten: int = 0
    documents: int = 0             # documents repointed or renamed
    records: int = 0               # records repointed or renamed
    commits: int = 0               # commit entries whose message or author changed
    paths: int = 0                 # paths redacted (documents, records, skipped entries)
    secret_files: int = 0          # documents of .env-like files dropped
    redactions: dict[str, int] = field(default_factory=dict)
    arrays_removed: int = 0
    waiting_for_readers: list[int] = field(default_factory=list)  # pids that hold the store
    compacted: tuple[int, int] | None = None  # data.mdb bytes before and after
    tokenizer_trained_unredacted: bool = False
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _count(into: dict[str, int], counts: dict[str, int]) -> None:
    for kind, n in counts.items():
        into[kind] = into.get(kind, 0) + n


def _scan_arrays(writer: StoreWriter, result: RedactResult, progress: ProgressFn | None
                 ) -> dict[int, str]:
    """Array id -> redacted text, for the stored arrays that redaction changes."""
    tok = writer.tokenizer
    with writer.handle.begin(DB_HASHES) as txn:
        arrays = [(bytes(k), seq_of(v)) for k, v in txn.cursor()]
    changed: dict[int, str] = {}
    for n, (content_hash, array_id) in enumerate(arrays, 1):
        text = tok.decode(writer.read_array(content_hash).tolist())
        redacted, counts = redact(text)
        if counts:
            changed[array_id] = redacted
            _count(result.redactions, counts)
        if progress is not None and (n % 64 == 0 or n == len(arrays)):
            progress(n, len(arrays))
    result.arrays_scanned = len(arrays)
    return changed


def _text_of(writer: StoreWriter, txn, array_id: int | None, texts: dict[int, str],
             ids_of: Callable[[int], np.ndarray]) -> str:
    if array_id is None:
        return ""
    if array_id in texts:
        return texts[array_id]
    return writer.tokenizer.decode(ids_of(array_id).tolist())


def purge(store_dir: Path, progress: ProgressFn | None = None) -> RedactResult:
    """Redact every stored text, author and path of the store at ``store_dir`` (see above)."""
    started = time.perf_counter()
    result = RedactResult()
    with StoreWriter(store_dir) as writer:
        info = writer.meta(K_TOKENIZER_INFO) or {}
        result.tokenizer_trained_unredacted = info.get("source") == "trained" and \
            not info.get(REDACTED_TRAINING)
        changed = _scan_arrays(writer, result, progress)
        tok = writer.tokenizer
        new_keys = {old: content_key(text) for old, text in changed.items()}
        encoded = tok.encode_batch(list(changed.values())) if changed else []
        fresh = {new_keys[old]: np.asarray(ids, dtype=np.int64)
                 for old, ids in zip(changed, encoded)}
        # the redacted texts' facts, measured as the old texts' were (a message has none)
        with writer.handle.begin(DB_FACTS) as txn:
            old_facts = {old: unpack(raw) for old in changed
                         if (raw := txn.get(seq_key(old))) is not None}
        timeout = writer.config.parse_timeout_ms
        facts = {new_keys[old]: facts_of(changed[old], fact["lang"], timeout)
                 for old, fact in old_facts.items()}
        lengths = tok.byte_lengths
        dtype = np.dtype(writer.dtype)
        found = dict(result.redactions)   # of the arrays; authors are added in the transaction

        def body(txn) -> None:
            dbs = writer.db
            result.redactions = dict(found)  # a transaction retried (map grown) starts again
            result.documents = result.records = result.commits = result.paths = 0
            result.secret_files = 0
            writer._bump(txn, K_STORED_TOKENS, writer._put_arrays(txn, fresh, facts))
            new_id = {old: writer._array_id(txn, key) for old, key in new_keys.items()}

            def ids_of(array_id: int) -> np.ndarray:  # read in this transaction: it sees the new
                return read_all(txn, dbs[DB_TOKENS], array_id, dtype).astype(np.int64)

            def n_of(array_id: int | None) -> int:
                return 0 if array_id is None else len(ids_of(array_id))

            _rewrite_docs(txn, dbs, new_id, n_of, result, tuple(writer.config.secret_files))
            _rewrite_skipped(txn, dbs, result)
            _rewrite_records(writer, txn, dbs, new_id, changed, ids_of, lengths, result)
            _rewrite_commits(txn, dbs, new_id, n_of, result)
            if result.redactions:
                writer._bump(txn, K_REDACTIONS, result.redactions)

        writer._write(body)
        writer.sync()
        result.arrays_rewritten = len(changed)
        readers = other_readers(writer.path)
        done = collect(writer, grace=0.0 if not readers else None)
        result.arrays_removed = done.arrays
        if readers:
            result.waiting_for_readers = readers
        else:
            result.compacted = compact(writer)
    result.seconds = time.perf_counter() - started
    return result


def _rewrite_docs(txn, dbs, new_id: dict[int, int], n_of, result: RedactResult,
                  secret_files: tuple[str, ...]) -> None:
    for key, raw in list(txn.cursor(db=dbs[DB_DOCS])):
        doc = unpack(raw)
        path = redact_path(doc["path"])
        if is_secret_file(doc["path"], secret_files):
            txn.delete(bytes(key), db=dbs[DB_DOCS])
            reason = b"secret_file"
            new_key = path_key(path)
            if is_hashed_key(new_key):
                reason += b"\0" + path_bytes(path)
            txn.put(new_key, reason, db=dbs[DB_SKIPPED])
            result.secret_files += 1
            continue
        if doc["array"] not in new_id and path == doc["path"]:
            continue
        if doc["array"] in new_id:
            doc["array"] = new_id[doc["array"]]
            doc["n_tokens"] = n_of(doc["array"])
        if path != doc["path"]:
            txn.delete(bytes(key), db=dbs[DB_DOCS])
            doc["path"] = path
            result.paths += 1
        txn.put(path_key(path), pack(doc), db=dbs[DB_DOCS])
        result.documents += 1


def _rewrite_skipped(txn, dbs, result: RedactResult) -> None:
    for key, raw in list(txn.cursor(db=dbs[DB_SKIPPED])):
        key, raw = bytes(key), bytes(raw)
        reason, _, full = raw.partition(b"\0")
        path = path_str(full if is_hashed_key(key) and full else key)
        clean = redact_path(path)
        if clean == path:
            continue
        txn.delete(key, db=dbs[DB_SKIPPED])
        new_key = path_key(clean)
        txn.put(new_key, reason + (b"\0" + path_bytes(clean) if is_hashed_key(new_key) else b""),
                db=dbs[DB_SKIPPED])
        result.paths += 1


def _rewrite_records(writer, txn, dbs, new_id: dict[int, int], changed: dict[int, str],
                     ids_of, lengths: np.ndarray, result: RedactResult) -> None:
    for key, raw in list(txn.cursor(db=dbs[DB_RECORDS])):
        rec = unpack(raw)
        before, after = rec["before"], rec["after"]
        moved = before in new_id or after in new_id
        path = redact_path(rec["path"])
        old_path = redact_path(rec["old_path"]) if rec.get("old_path") else rec.get("old_path")
        if not moved and path == rec["path"] and old_path == rec.get("old_path"):
            continue
        if path != rec["path"] or old_path != rec.get("old_path"):
            result.paths += 1
        rec["path"], rec["old_path"] = path, old_path
        if moved:
            rec["before"] = new_id.get(before, before)
            rec["after"] = new_id.get(after, after)
            b_ids = ids_of(rec["before"]) if rec["before"] is not None else np.zeros(0, np.int64)
            a_ids = ids_of(rec["after"]) if rec["after"] is not None else np.zeros(0, np.int64)
            rec["n_before"], rec["n_after"] = len(b_ids), len(a_ids)
            rec["hunks"] = _hunks(writer, txn, rec, before, after, b_ids, a_ids, changed,
                                  ids_of, lengths)
        txn.put(bytes(key), pack(rec), db=dbs[DB_RECORDS])
        result.records += 1


def _hunks(writer, txn, rec: dict[str, Any], before: int | None, after: int | None,
           b_ids: np.ndarray, a_ids: np.ndarray, changed: dict[int, str], ids_of,
           lengths: np.ndarray) -> list[list[int]]:
    """A record's token hunks, taken again from the line hunks of its redacted texts."""
    if after is None:
        return [[0, len(b_ids), 0, 0]]
    if before is None:
        return [[0, 0, 0, len(a_ids)]]
    b_text = _text_of(writer, txn, before, changed, ids_of)
    a_text = _text_of(writer, txn, after, changed, ids_of)
    if b_text == a_text:
        return []
    lines = [(h.old_start, h.old_lines, h.new_start, h.new_lines)
             for h in pygit2.Patch.create_from(b_text, a_text, context_lines=0).hunks]
    return token_hunks(b_text, b_ids, a_text, a_ids, lines, lengths)


def _rewrite_commits(txn, dbs, new_id: dict[int, int], n_of, result: RedactResult) -> None:
    for key, raw in list(txn.cursor(db=dbs[DB_COMMITS])):
        entry = unpack(raw)
        author = entry.get("author")
        clean_author, counts = redact(author) if author else (author, {})
        if entry.get("message") not in new_id and not counts:
            continue
        if entry.get("message") in new_id:
            entry["message"] = new_id[entry["message"]]
            entry["n_msg"] = n_of(entry["message"])
        if counts:
            entry["author"] = clean_author
            _count(result.redactions, counts)
        txn.put(bytes(key), pack(entry), db=dbs[DB_COMMITS])
        result.commits += 1


def redact_store(repo: str | Path | None, progress: ProgressFn | None = None) -> RedactResult:
    """``repofeed redact [REPO]``: purge the store of the repository at ``repo``."""
    return purge(resolve_store_dir(repo), progress)
