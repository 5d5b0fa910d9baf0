"""Reading a store: ``open_store`` → ``Store``.

Every call runs in its own short read transaction, so a long-lived ``Store`` sees what the
writer committed since, never a half-written commit, and never holds pages the writer could
reuse.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from . import lmdbenv
from .arrays import ChunkMissing, read_all, read_slice
from .config import Config
from .dedup import near_duplicates
from .errors import ArrayMissing, StoreCorrupt, StoreError
from .evolution import View, plan_views
from .gc import survey
from .locate import resolve_store_dir
from .schema import (
    DB_COMMITS,
    DB_CONTEXT,
    DB_DOCS,
    DB_FACTS,
    DB_IMPORTS,
    DB_META,
    DB_RECORDS,
    DB_SKIPPED,
    DB_TOKENS,
    K_COMMITS_DONE,
    K_CONFIG,
    K_FOLLOW,
    K_HEAD,
    K_NEXT_SEQ,
    K_PIN,
    K_RECORD_SKIPS,
    K_REDACTIONS,
    K_REPO,
    K_STORED_TOKENS,
    K_TOKENIZER_INFO,
    K_TOKENIZER_MODEL,
    seq_key,
    seq_of,
    token_dtype,
    unpack,
)
from .tokenizer import Tokenizer, kind_of, stored_tokenizer
from .windows import window_counts, window_spans


def _disk_bytes(path: Path) -> int:
    total = 0
    for entry in os.scandir(path):
        if entry.is_file(follow_symlinks=False):
            total += entry.stat(follow_symlinks=False).st_blocks * 512
    return total


class TokenReader(lmdbenv.Snapshot):
    """Reads token slices through one reused read snapshot: the datasets' hot path.

    ``with reader:`` holds the snapshot for a batch of reads; ``reader.read(array, start,
    stop)`` returns tokens as int64. The snapshot is renewed every few reads (so it never pins
    old pages for long), on ``renew()`` (after an index is rebuilt, so that the snapshot is at
    least as new as the index), before a fork and whenever the environment is reopened.
    """

    def __init__(self, store: Store):
        super().__init__(store._handle, DB_TOKENS)
        store._handle.adopt(self)
        self.path = store.path
        self.dtype = np.dtype(store.dtype)
        self._verified: set[int] = set()  # chunks whose checksum this reader has checked

    def read(self, array: int, start: int, stop: int) -> np.ndarray:
        """Tokens ``start:stop`` of ``array``, inside ``with reader:``."""
        try:
            return read_slice(self._txn, None, array, start, stop, self.dtype, self._verified)
        except ChunkMissing:
            raise ArrayMissing(f"token array {array} is missing from the store at {self.path}: "
                             f"the index that names it is older than the store's last "
                             f"garbage collection; call refresh().") from None
        except ValueError as exc:  # fewer tokens stored than the index says
            raise StoreCorrupt(f"token array {array} is shorter than its index says ({exc}); "
                               f"the store at {self.path} is corrupt. Rebuild it with "
                               f"`repofeed init --force` and `repofeed backfill`.") from exc


class Store:
    """A read view of a store. Safe to keep open while a writer works, and across fork."""

    def __init__(self, store_dir: Path):
        self.path = Path(store_dir)
        self._handle = lmdbenv.get_handle(self.path)
        self._tokenizer: Tokenizer | None = None
        self._closed = False

    # -- plumbing -----------------------------------------------------------------------------

    def _txn(self, db: bytes | None = None, buffers: bool = False):
        if self._closed:
            raise StoreError("this Store is closed")
        return self._handle.begin(db, buffers=buffers)

    def meta(self, key: bytes, default: Any = None) -> Any:
        with self._txn(DB_META) as txn:
            raw = txn.get(key)
        return default if raw is None else unpack(raw)

    def redactions(self) -> dict[str, int]:
        """Secrets replaced by placeholders, per kind (``<SECRET:aws>`` ...), counted once per
        distinct stored text (store/secrets.py)."""
        return dict(sorted(self.meta(K_REDACTIONS, {}).items()))

    def version(self) -> int:
        """The id of the store's last write transaction: it changes whenever anything is
        written, and reading it costs one empty read transaction (for polling)."""
        with self._txn() as txn:
            return txn.id()

    def token_reader(self) -> TokenReader:
        """A reader of token slices for many small reads (see ``TokenReader``)."""
        return TokenReader(self)

    def readers(self) -> list[dict[str, Any]]:
        """The reader table: a slot per open read transaction of any process, with its
        ``pid`` and ``txnid`` (None for a slot kept between transactions)."""
        return self._handle.readers()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            lmdbenv.release(self._handle)

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- facts --------------------------------------------------------------------------------

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
        return token_dtype(self.meta(K_TOKENIZER_INFO)["vocab_size"])

    def tokens(self, array: int) -> np.ndarray:
        """Token array ``array`` (a document's ``array``, a record's ``before``...), copied."""
        with self._txn(DB_TOKENS, buffers=True) as txn:
            try:
                return read_all(txn, None, array, np.dtype(self.dtype))
            except ChunkMissing:
                raise StoreError(f"token array {array} is missing from the store at "
                                 f"{self.path}") from None

    def documents(self, weighed: bool = True) -> list[dict[str, Any]]:
        """Snapshot documents, sorted by path. With ``weighed``, each also has ``weight``, its
        sampling weight under the repository's configuration now, and ``excluded``, why it
        is left out (weight 0) or None (store/policy.py)."""
        with self._txn(DB_DOCS) as txn:
            docs = [unpack(v) for _, v in txn.cursor()]
        if not weighed:
            return docs
        from .policy import Policy

        weighed_docs = {w.path: w for w in Policy.for_store(self).documents(self, docs)}
        for doc in docs:
            w = weighed_docs.get(doc["path"])
            doc["weight"] = w.weight if w is not None else 0.0
            doc["excluded"] = w.reason if w is not None else "empty"
        return docs

    def variant_summary(self):
        """What the store holds of the variants of its ``variants`` option: made, none (by
        reason) and pending, per recipe (``store/variants/stored.py``)."""
        from .variants.stored import summary
        with self._txn(buffers=True) as txn:
            return summary(txn, self._handle.dbs, self.config.variants)

    def variant_documents(self) -> list[dict[str, Any]]:
        """Each stored variant of a snapshot document, as a document: the source's fields
        with the variant's ``hash``, ``array``, ``n_tokens`` and ``recipe``."""
        from .variants.stored import variant_documents
        with self._txn(buffers=True) as txn:
            return variant_documents(txn, self._handle.dbs, self.config.variants)

    def context_documents(self) -> list[dict[str, Any]]:
        """The context documents (each snapshot file that imports others, after the files
        it depends on: ``store/context.py``), by target path: ``path``, ``hash``,
        ``array``, ``n_tokens`` and ``files`` (the paths it holds, in order)."""
        with self._txn(DB_CONTEXT) as txn:
            return [unpack(v) for _, v in txn.cursor()]

    def import_entries(self) -> dict[str, dict[str, Any]]:
        """The import graph as stored (``daemon/context.py``): path -> its imports as
        written, the content they were read from, and the files they resolve to."""
        with self._txn(DB_IMPORTS) as txn:
            return {e["path"]: e for e in map(unpack, txn.cursor().iternext(keys=False,
                                                                           values=True))}

    def facts(self, arrays: list[int] | None = None) -> dict[int, dict[str, Any]]:
        """The facts of the texts of ``arrays`` (array ids; None: of every array), by array
        id (store/facts.py); an array without facts (a message) is absent."""
        out: dict[int, dict[str, Any]] = {}
        with self._txn(DB_FACTS) as txn:
            if arrays is None:
                for key, value in txn.cursor():
                    out[seq_of(key)] = unpack(value)
                return out
            for array in dict.fromkeys(arrays):
                raw = txn.get(seq_key(array))
                if raw is not None:
                    out[array] = unpack(raw)
        return out

    def near_duplicates(self) -> dict[bytes, bytes]:
        """Content hash (a document's ``hash``) → near-duplicate cluster id, for every live
        document's content, from one pass over the index (dedup.py). Contents of one cluster
        share its id; a content similar to no other has its own hash as its id."""
        with self._txn() as txn:
            return near_duplicates(txn, self._handle.dbs)

    def skipped_files(self) -> dict[str, str]:
        """Files at the tip left out of the snapshot, with the reason."""
        with self._txn(DB_SKIPPED) as txn:
            found = {}
            for key, value in txn.cursor():
                reason, _, path = bytes(value).partition(b"\0")  # a hashed key: path_key
                found[(path or bytes(key)).decode("utf-8", "surrogateescape")] = reason.decode()
            return found

    def _raw_records(self, include_superseded: bool, chunk: int = 1024
                     ) -> Iterator[tuple[int, dict[str, Any]]]:
        """Records joined with their commit's facts, read ``chunk`` at a time.

        Each chunk is one short read transaction, so a slow consumer never pins old pages.
        """
        start = 0
        while True:
            rows: list[tuple[int, dict[str, Any]]] = []
            with self._txn() as txn:
                dbs = self._handle.dbs  # the environment may have been reopened meanwhile
                cursor = txn.cursor(db=dbs[DB_RECORDS])
                if not cursor.set_range(seq_key(start)):
                    return
                last_oid, info = None, {}
                for key, value in cursor:
                    record = unpack(value)
                    if record["commit"] != last_oid:  # a commit's records are contiguous
                        last_oid = record["commit"]
                        entry = unpack(txn.get(last_oid, db=dbs[DB_COMMITS]))
                        info = _commit_fields(entry)
                    if include_superseded or not info["superseded"]:
                        rows.append((seq_of(key), {**record, **info, "commit": last_oid.hex()}))
                    start = seq_of(key) + 1
                    if len(rows) >= chunk:
                        break
            yield from rows
            if len(rows) < chunk:
                return

    def raw_records(self, include_superseded: bool = False) -> list[dict[str, Any]]:
        """Records as stored: token-array ids instead of text."""
        return [r for _, r in self._raw_records(include_superseded)]

    def numbered_records(self, include_superseded: bool = False
                         ) -> list[tuple[int, dict[str, Any]]]:
        """``raw_records`` with each record's sequence number (stable until garbage
        collection removes the record), as ``(number, record)`` pairs."""
        return list(self._raw_records(include_superseded))

    def _text(self, array: int | None) -> str | None:
        if array is None:
            return None
        return self.tokenizer.decode(self.tokens(array))

    def evolution_records(self, include_superseded: bool = False) -> Iterator[dict[str, Any]]:
        """Evolution records, oldest first, with ``message``, ``before`` and ``after`` as text."""
        for seq, record in self._raw_records(include_superseded):
            yield self._decoded(seq, record)

    def _decoded(self, seq: int, record: dict[str, Any]) -> dict[str, Any]:
        out = {k: v for k, v in record.items() if k not in ("message", "before", "after")}
        out["index"] = seq
        out["message"] = self._text(record["message"]) or ""
        out["before"] = self._text(record["before"])
        out["after"] = self._text(record["after"])
        return out

    def record(self, index: int) -> dict[str, Any]:
        """Record ``index`` (superseded or not), with its texts decoded."""
        return self._decoded(index, self.record_raw(index))

    def record_views(self, index: int, max_tokens: int | None = None) -> list[View]:
        rec = self.record_raw(index)
        return plan_views(rec["n_before"], rec["n_after"], rec["n_msg"], rec["hunks"],
                          max_tokens or self.config.max_tokens)

    def record_raw(self, index: int) -> dict[str, Any]:
        with self._txn() as txn:
            dbs = self._handle.dbs
            raw = txn.get(seq_key(index), db=dbs[DB_RECORDS]) if 0 <= index < 1 << 64 else None
            if raw is None:
                raise StoreError(f"there is no record {index} (the store holds "
                                 f"{self.meta(K_NEXT_SEQ, 0)} evolution records).")
            record = unpack(raw)
            entry = unpack(txn.get(record["commit"], db=dbs[DB_COMMITS]))
        return {**record, **_commit_fields(entry), "commit": record["commit"].hex()}

    def unprocessed(self, oids: list[bytes]) -> list[bytes]:
        """The commits of ``oids`` (raw ids) not processed yet, in order."""
        with self._txn(DB_COMMITS) as txn:
            return [oid for oid in oids if txn.get(oid) is None]

    def windows(self, max_tokens: int | None = None, overlap: int | None = None
                ) -> Iterator[dict[str, Any]]:
        """Every window's provenance: path, commit, token offsets."""
        cfg = self.config
        length = max_tokens or cfg.max_tokens
        stride = length - (cfg.overlap if overlap is None else overlap)
        head = self.meta(K_HEAD)  # the commit the snapshot reflects
        docs = [d for d in self.documents(weighed=False) if d["n_tokens"] > 0]
        spans = window_spans([d["n_tokens"] for d in docs], length, stride)
        for index, (number, start, stop) in enumerate(zip(*(a.tolist() for a in spans))):
            doc = docs[number]
            yield {"index": index, "path": doc["path"], "commit": head, "blob": doc["blob"],
                   "array": doc["array"], "start": start, "end": stop}

    def window(self, index: int) -> dict[str, Any]:
        """Window ``index`` (the order of ``WindowDataset``) with its decoded text."""
        if index >= 0:
            for w in self.windows():
                if w["index"] == index:
                    ids = self.tokens(w["array"])[w["start"]:w["end"]]
                    return {**w, "text": self.tokenizer.decode(ids)}
        raise StoreError(f"there is no window {index} (the store holds "
                         f"{self.stats()['windows']} windows).")

    def stats(self) -> dict[str, Any]:
        cfg = self.config
        docs = self.documents(weighed=False)
        n_tokens = np.array([d["n_tokens"] for d in docs], dtype=np.int64)
        info = self.meta(K_TOKENIZER_INFO)
        with self._txn(DB_RECORDS) as txn:
            n_records = txn.stat()["entries"]
        with self._txn(DB_COMMITS) as txn:
            superseded = sum(entry["count"] for entry in map(unpack, txn.cursor().iternext(
                keys=False, values=True)) if entry["superseded"])
        skipped: dict[str, int] = {}
        for reason in self.skipped_files().values():
            skipped[reason] = skipped.get(reason, 0) + 1
        quality = self.composition(docs)
        stored = self.meta(K_STORED_TOKENS, 0)
        store_bytes = _disk_bytes(self.path)
        garbage = survey(self._handle)
        variants = self.variant_summary()
        none: dict[str, int] = {}
        for reasons in variants.reasons.values():
            for reason, n in reasons.items():
                none[reason] = none.get(reason, 0) + n
        return {
            "store_path": str(self.path),
            "repo": self.meta(K_REPO),
            "followed": self.meta(K_FOLLOW),
            "tokenizer_id": info["id"],
            "tokenizer_kind": kind_of(info),
            "tokenizer_source": info.get("source"),
            "vocab_size": info["vocab_size"],
            "token_dtype": self.dtype,
            "max_tokens": cfg.max_tokens,
            "overlap": cfg.overlap,
            "head": self.meta(K_HEAD),
            "pinned_at": self.meta(K_PIN),
            "commits_processed": self.meta(K_COMMITS_DONE, 0),
            "evolution_records": n_records - superseded,
            "superseded_records": superseded,
            "documents": len(docs),
            "windows": int(window_counts(n_tokens, cfg.max_tokens, cfg.stride).sum()),
            "tokens": int(n_tokens.sum()),
            "stored_tokens": stored,
            "store_bytes": store_bytes,
            "bytes_per_stored_token": round(store_bytes / stored, 3) if stored else None,
            "live_bytes": garbage.live_bytes,
            "reclaimable_bytes": garbage.reclaimable_bytes,
            "garbage": garbage.as_dict(),
            "skipped_at_head": skipped,
            "skipped_in_history": self.meta(K_RECORD_SKIPS, {}),
            # stored variants, per recipe; the (file, recipe) pairs that have none, by reason;
            # those not made yet (the daemon makes them after the commit's own write)
            "variants": dict(variants.made),
            "variant_tokens": sum(variants.tokens.values()),
            "variants_none": dict(sorted(none.items())),
            "variants_pending": variants.pending,
            **quality,
        }

    def composition(self, docs: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        """What training reads from this store under the repository's configuration now
        (store/policy.py): documents by language and weight class (with each class's share
        of the sampling weight), documents and records left out by reason, near-duplicate
        clusters, the secrets redacted at ingest by kind, how the documents were parsed for
        their complexity (``tree-sitter``, ``text``, ``timeout``: a grammar over its time
        bound), and the weight rules whose glob matches no document."""
        from .policy import Policy, composition

        policy = Policy.for_store(self)
        weighed = policy.documents(self, docs)
        numbered = self.numbered_records()
        records = list(policy.records(self, numbered).values())
        found = composition(weighed)
        clusters: dict[str, int] = {}
        for item in weighed:
            if item.cluster is not None:
                clusters[item.cluster] = clusters.get(item.cluster, 0) + 1
        shared = [n for n in clusters.values() if n > 1]
        parsed: dict[str, int] = {}
        for fact in {w.doc["array"]: w.facts for w in weighed}.values():  # distinct texts
            how = (fact.get("cx") or {}).get("how", "none")
            parsed[how] = parsed.get(how, 0) + 1
        return {
            "languages": found["languages"],
            "weight_classes": found["weight_classes"],
            "excluded_documents": found["excluded"],
            "excluded_records": composition(records)["excluded"],
            "duplicate_clusters": {"clusters": len(shared),
                                   "documents_in_clusters": sum(shared),
                                   "exact_duplicates": found["excluded"].get(
                                       "exact_duplicate", 0)},
            "redactions": self.redactions(),
            "parsed": parsed,
            "unmatched_weight_rules": policy.rules.unmatched(w.path for w in weighed),
        }


class ProcessLocalStore:
    """A ``Store`` and ``TokenReader`` opened lazily, in each process on its own.

    The datasets and the training stream read through it. Pickling (a ``DataLoader`` worker's
    copy) drops both handles — an LMDB handle never crosses a process boundary — so every
    process opens its own on first use. Subclasses set ``store_dir`` and call ``_no_handles()``
    in ``__init__``.
    """

    store_dir: Path

    def _no_handles(self) -> None:
        self._store: Store | None = None
        self._reader: TokenReader | None = None

    @property
    def store(self) -> Store:
        if self._store is None:
            self._store = Store(self.store_dir)
        return self._store

    @property
    def _tokens(self) -> TokenReader:
        if self._reader is None:
            self._reader = self.store.token_reader()
        return self._reader

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_store"] = None
        state["_reader"] = None
        return state

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        if self._store is not None:
            self._store.close()
            self._store = None


def _commit_fields(entry: dict[str, Any]) -> dict[str, Any]:
    return {k: entry[k] for k in ("parent", "message", "n_msg", "author", "timestamp",
                                  "superseded")}


def open_store(path: str | Path | None = None) -> Store:
    """Open the store of a repository (any path inside it) or a store directory."""
    return Store(resolve_store_dir(path))
