"""Map-style PyTorch datasets over a store. This is the only module that imports torch.

An item is a dict of 1-D ``torch.long`` tensors of length ``max_tokens``: ``input_ids``,
``attention_mask`` and ``labels`` (-100 where no loss is taken: padding, and with
``labels_on="after"`` everything but the after part of a commit). Labels are not shifted; a
causal LM shifts them itself, as Hugging Face models do.

Each dataset indexes the store when it is made and on ``refresh()``; call ``refresh()`` at an
epoch boundary to take in what the writer committed since. Token arrays are content-addressed
and never rewritten, so an index stays valid while the writer works. The LMDB handle is opened
lazily in each process, so ``DataLoader`` workers open their own after fork.
"""

from __future__ import annotations

import os
import time
from array import array
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .arrays import CHUNK_BYTES, chunk_key, read_slice
from .errors import StoreError
from .evolution import plan_views
from .locate import resolve_store_dir
from .reader import Store
from .schema import DB_TOKENS
from .windows import window_counts

IGNORE_INDEX = -100


class _Reader:
    """A read transaction reused for a few items, then renewed.

    Beginning a transaction per item cost as much as reading the item. A snapshot is kept for
    at most ``RENEW_EVERY`` items or ``RENEW_SECONDS``, so it never pins old pages for long
    while training reads; a refresh drops it, since the new index may name newer arrays.
    """

    RENEW_EVERY = 64
    RENEW_SECONDS = 1.0

    def __init__(self, env, db) -> None:
        self.pid = os.getpid()
        self.env, self.db = env, db
        self.txn = env.begin(db=db, buffers=True)
        self.uses = 0
        self.since = time.monotonic()

    def __enter__(self):
        self.uses += 1
        if self.uses > self.RENEW_EVERY or time.monotonic() - self.since > self.RENEW_SECONDS:
            self.txn.abort()
            self.txn = self.env.begin(db=self.db, buffers=True)
            self.uses, self.since = 1, time.monotonic()
        return self.txn

    def __exit__(self, *exc: object) -> None:
        pass  # buffers were copied out; the snapshot stays open for the next item

    def close(self) -> None:
        self.txn.abort()


class _StoreDataset(torch.utils.data.Dataset):
    def __init__(self, path: str | Path | None):
        self.store_dir = resolve_store_dir(path)
        self._store: Store | None = None
        store = self.store
        self.tokenizer = store.tokenizer
        self.pad_id = self.tokenizer.pad_id
        self._dtype = np.dtype(store.dtype)
        self._per_chunk = CHUNK_BYTES // self._dtype.itemsize
        self._reader: _Reader | None = None

    @property
    def store(self) -> Store:
        if self._store is None:
            self._store = Store(self.store_dir)
        return self._store

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_store"] = None  # an LMDB handle never crosses a process boundary
        state["_reader"] = None
        return state

    def _tokens_txn(self) -> _Reader:
        reader = self._reader
        if reader is None or reader.pid != os.getpid():
            handle = self.store._env()
            reader = self._reader = _Reader(handle.env, handle.dbs[DB_TOKENS])
        return reader

    def _array(self, txn, array: int, start: int, stop: int) -> np.ndarray:
        # The two cases of a window (within one chunk, or across two) inlined: this is the
        # hot path of every training step.
        per_chunk, dtype = self._per_chunk, self._dtype
        first = start // per_chunk
        split = (first + 1) * per_chunk
        found = None
        if stop <= split:
            raw = txn.get(chunk_key(array, first))
            if raw is not None:
                return np.frombuffer(raw, dtype, stop - start,
                                     (start - first * per_chunk) * dtype.itemsize
                                     ).astype(np.int64)
        elif stop <= split + per_chunk:
            head, tail = txn.get(chunk_key(array, first)), txn.get(chunk_key(array, first + 1))
            if head is not None and tail is not None:
                out = np.empty(stop - start, dtype=np.int64)
                out[:split - start] = np.frombuffer(head, dtype, split - start,
                                                    (start - first * per_chunk) * dtype.itemsize)
                out[split - start:] = np.frombuffer(tail, dtype, stop - split)
                return out
        else:
            found = read_slice(txn, None, array, start, stop, dtype)
        if found is None:
            raise StoreError(f"token array {array} is missing from {self.store_dir}")
        return found

    def _item(self, ids: np.ndarray, label_mask: np.ndarray | None = None
              ) -> dict[str, torch.Tensor]:
        n = len(ids)
        length = self.max_tokens
        if n == length and label_mask is None:
            input_ids = torch.from_numpy(ids)
            return {"input_ids": input_ids,
                    "attention_mask": torch.ones(length, dtype=torch.long),
                    "labels": input_ids.clone()}
        padded = np.full(length, self.pad_id, dtype=np.int64)
        padded[:n] = ids
        mask = np.zeros(length, dtype=np.int64)
        mask[:n] = 1
        labels = np.full(length, IGNORE_INDEX, dtype=np.int64)
        labels[:n] = ids if label_mask is None else np.where(label_mask, ids, IGNORE_INDEX)
        return {"input_ids": torch.from_numpy(padded),
                "attention_mask": torch.from_numpy(mask),
                "labels": torch.from_numpy(labels)}

    def _drop_reader(self) -> None:
        if self._reader is not None and self._reader.pid == os.getpid():
            self._reader.close()
        self._reader = None

    def close(self) -> None:
        self._drop_reader()
        if self._store is not None:
            self._store.close()
            self._store = None


class WindowDataset(_StoreDataset):
    """Windows over the snapshot documents, in path order.

    ``max_tokens`` and ``overlap`` default to the store's (1,024 and 768).
    """

    def __init__(self, path: str | Path | None = None, max_tokens: int | None = None,
                 overlap: int | None = None):
        super().__init__(path)
        cfg = self.store.config
        self.max_tokens = max_tokens or cfg.max_tokens
        self.overlap = cfg.overlap if overlap is None else overlap
        if not 0 <= self.overlap < self.max_tokens:
            raise ValueError(f"overlap must be in [0, {self.max_tokens}), got {self.overlap}")
        self.stride = self.max_tokens - self.overlap
        self.refresh()

    def refresh(self) -> WindowDataset:
        docs = [d for d in self.store.documents() if d["n_tokens"] > 0]
        self.paths = [d["path"] for d in docs]
        self._arrays = [d["array"] for d in docs]
        n = np.array([d["n_tokens"] for d in docs], dtype=np.int64)
        counts = window_counts(n, self.max_tokens, self.stride)
        # One entry per window, computed once: (document, start, stop). 24 bytes a window in
        # compact arrays whose items come out as plain ints, so an access does no search.
        doc = np.repeat(np.arange(len(docs), dtype=np.int64), counts)
        first = np.repeat(np.cumsum(counts) - counts, counts)
        j = np.arange(len(doc), dtype=np.int64) - first
        start = np.maximum(0, np.minimum(j * self.stride, n[doc] - self.max_tokens))
        stop = np.minimum(start + self.max_tokens, n[doc])
        self._doc, self._start, self._stop = (array("q", a.tobytes()) for a in (doc, start, stop))
        return self

    def __len__(self) -> int:
        return len(self._doc)

    def locate(self, index: int) -> tuple[int, int]:
        """(document number, token offset) of window ``index``."""
        if not 0 <= index < len(self._doc):
            raise IndexError(f"window {index} out of range ({len(self)} windows)")
        return self._doc[index], self._start[index]

    def _get(self, txn, index: int) -> dict[str, torch.Tensor]:
        if not 0 <= index < len(self._doc):
            raise IndexError(f"window {index} out of range ({len(self)} windows)")
        return self._item(self._array(txn, self._arrays[self._doc[index]], self._start[index],
                                      self._stop[index]))

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        with self._tokens_txn() as txn:
            return self._get(txn, index)

    def __getitems__(self, indices: list[int]) -> list[dict[str, torch.Tensor]]:
        with self._tokens_txn() as txn:
            return [self._get(txn, i) for i in indices]


class EvolutionDataset(_StoreDataset):
    """Evolution records as CommitPack-layout sequences; long records give several views.

    ``labels_on="all"`` takes loss on every real token, ``"after"`` on the after part only
    (instruction-style tuning). Superseded records are left out unless asked for.
    """

    def __init__(self, path: str | Path | None = None, max_tokens: int | None = None,
                 labels_on: str = "all", include_superseded: bool = False):
        super().__init__(path)
        if labels_on not in ("all", "after"):
            raise ValueError(f'labels_on must be "all" or "after", got {labels_on!r}')
        self.max_tokens = max_tokens or self.store.config.max_tokens
        self.labels_on = labels_on
        self.include_superseded = include_superseded
        tok = self.tokenizer
        self._before, self._msg, self._after = (
            tok.sentinel("<commit_before>"), tok.sentinel("<commit_msg>"),
            tok.sentinel("<commit_after>"))
        self._eos = tok.eos_id
        self.refresh()

    def refresh(self) -> EvolutionDataset:
        self._records: list[dict[str, Any]] = []
        self._views: list[tuple[int, Any]] = []
        for record in self.store.raw_records(self.include_superseded):
            number = len(self._records)
            self._records.append(record)
            for view in plan_views(record["n_before"], record["n_after"], record["n_msg"],
                                   record["hunks"], self.max_tokens):
                self._views.append((number, view))
        return self

    def __len__(self) -> int:
        return len(self._views)

    def record_of(self, index: int) -> dict[str, Any]:
        """The stored record (array ids, not text) behind item ``index``."""
        return self._records[self._views[index][0]]

    def _get(self, txn, index: int) -> dict[str, torch.Tensor]:
        number, view = self._views[index]
        rec = self._records[number]
        empty = np.zeros(0, dtype=np.int64)
        has_before, has_after = rec["before"] is not None, rec["after"] is not None
        before = self._array(txn, rec["before"], *view.before) if has_before else empty
        message = self._array(txn, rec["message"], 0, view.message) if view.message else empty
        after = self._array(txn, rec["after"], *view.after) if has_after else empty
        tail = [self._eos] if view.after[1] == rec["n_after"] and self._eos >= 0 else []
        parts = [np.array([self._before]), before, np.array([self._msg]), message,
                 np.array([self._after]), after, np.array(tail, dtype=np.int64)]
        ids = np.concatenate(parts).astype(np.int64)
        mask = None
        if self.labels_on == "after":
            mask = np.zeros(len(ids), dtype=bool)
            mask[len(ids) - len(after) - len(tail):] = True
        return self._item(ids, mask)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if not 0 <= index < len(self):
            raise IndexError(f"item {index} out of range ({len(self)} items)")
        with self._tokens_txn() as txn:
            return self._get(txn, index)

    def __getitems__(self, indices: list[int]) -> list[dict[str, torch.Tensor]]:
        with self._tokens_txn() as txn:
            return [self._get(txn, i) for i in indices]
