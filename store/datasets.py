"""Map-style PyTorch datasets over a store. This is the only module that imports torch.

An item is a dict of 1-D ``torch.long`` tensors of length ``max_tokens``: ``input_ids``,
``attention_mask`` and ``labels`` (-100 where no loss is taken: padding, and with
``labels_on="after"`` everything but the after part of a commit, with windows'
``labels_on="new"`` the tokens a window shares with its predecessor). Labels are not shifted;
a causal LM shifts them itself, as Hugging Face models do.

Items are made by the module functions ``pad_item``, ``window_item`` and ``record_item``, which
the training stream (``repofeed.train.stream``) calls too: an item is the same whichever reads it.

Each dataset indexes the store when it is made and on ``refresh()``; call ``refresh()`` at an
epoch boundary to take in what the writer committed since. Token arrays are content-addressed
and never rewritten, so an index stays valid while the writer works. The LMDB handle is opened
lazily in each process, so ``DataLoader`` workers open their own after fork.
"""

from __future__ import annotations

from array import array
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .evolution import View, plan_views
from .locate import resolve_store_dir
from .reader import ProcessLocalStore
from .windows import new_label_starts, window_spans

IGNORE_INDEX = -100


def pad_item(ids: np.ndarray, label_mask: np.ndarray | None, length: int, pad_id: int,
             targets: np.ndarray | None = None) -> dict[str, torch.Tensor]:
    """The item of token ids (at most ``length``): padded, with labels where ``label_mask``
    (every real token when None) and -100 elsewhere. The labels are ``targets`` where given
    (masking changes the inputs, not what is to be predicted), else the ids themselves."""
    n = len(ids)
    if targets is not None:
        padded = np.full(length, IGNORE_INDEX, dtype=np.int64)
        padded[:n] = targets if label_mask is None else \
            np.where(label_mask, targets, IGNORE_INDEX)
        item = pad_item(ids, None, length, pad_id)
        item["labels"] = torch.from_numpy(padded)
        return item
    if n == length and label_mask is None:
        input_ids = torch.from_numpy(np.asarray(ids, dtype=np.int64))
        return {"input_ids": input_ids,
                "attention_mask": torch.ones(length, dtype=torch.long),
                "labels": input_ids.clone()}
    padded = np.full(length, pad_id, dtype=np.int64)
    padded[:n] = ids
    mask = np.zeros(length, dtype=np.int64)
    mask[:n] = 1
    labels = np.full(length, IGNORE_INDEX, dtype=np.int64)
    labels[:n] = ids if label_mask is None else np.where(label_mask, ids, IGNORE_INDEX)
    return {"input_ids": torch.from_numpy(padded),
            "attention_mask": torch.from_numpy(mask),
            "labels": torch.from_numpy(labels)}


def window_item(read, array: int, start: int, stop: int, new_from: int, length: int,
                pad_id: int, vary=None) -> dict[str, torch.Tensor]:
    """Window ``start:stop`` of token array ``array``; loss from offset ``new_from`` on (0:
    on every token; see ``windows.new_label_starts``). ``vary(ids, label_mask)`` gives the
    (ids, label mask, label ids) of a variation of the window (``store/augment.py``)."""
    ids = read(array, start, stop)
    mask = None
    if new_from > 0:
        mask = np.arange(len(ids)) >= new_from
    if vary is not None:
        ids, mask, targets = vary(ids, mask)
        return pad_item(ids, mask, length, pad_id, targets)
    return pad_item(ids, mask, length, pad_id)


def record_item(read, rec: dict[str, Any], view: View, special: tuple[int, int, int, int],
                labels_on: str, length: int, pad_id: int) -> dict[str, torch.Tensor]:
    """One view of an evolution record in the CommitPack layout; ``special`` holds the ids
    of ``<commit_before>``, ``<commit_msg>``, ``<commit_after>`` and eos (-1: none)."""
    before_id, msg_id, after_id, eos = special
    empty = np.zeros(0, dtype=np.int64)
    before = read(rec["before"], *view.before) if rec["before"] is not None else empty
    message = read(rec["message"], 0, view.message) if view.message else empty
    after = read(rec["after"], *view.after) if rec["after"] is not None else empty
    tail = [eos] if view.after[1] == rec["n_after"] and eos >= 0 else []
    parts = [np.array([before_id]), before, np.array([msg_id]), message,
             np.array([after_id]), after, np.array(tail, dtype=np.int64)]
    ids = np.concatenate(parts).astype(np.int64)
    mask = None
    if labels_on == "after":
        mask = np.zeros(len(ids), dtype=bool)
        mask[len(ids) - len(after) - len(tail):] = True
    return pad_item(ids, mask, length, pad_id)


class _StoreDataset(ProcessLocalStore, torch.utils.data.Dataset):
    def __init__(self, path: str | Path | None, max_tokens: int | None):
        if max_tokens is not None and (isinstance(max_tokens, bool) or max_tokens < 16):
            raise ValueError(f"max_tokens must be at least 16, got {max_tokens!r} "
                             f"(None takes the store's own)")
        self.store_dir = resolve_store_dir(path)
        self._no_handles()
        store = self.store
        self.max_tokens = max_tokens or store.config.max_tokens
        self.tokenizer = store.tokenizer
        self.pad_id = self.tokenizer.pad_id

    def _check(self, index: int) -> None:
        if not 0 <= index < self.__len__():
            raise IndexError(f"item {index} out of range: {type(self).__name__} has "
                             f"{len(self)} items (call refresh() to take in new data)")

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        self._check(index)
        tokens = self._tokens
        with tokens:
            return self._get(tokens.read, index)

    def __getitems__(self, indices: list[int]) -> list[dict[str, torch.Tensor]]:
        for index in indices:
            self._check(index)
        tokens = self._tokens
        with tokens:
            read = tokens.read
            return [self._get(read, i) for i in indices]

    def _renew(self) -> None:
        """A rebuilt index may name arrays newer than the snapshot being read: take a new
        snapshot, at least as new as the index."""
        if self._reader is not None:
            self._reader.renew()

    def _item(self, ids: np.ndarray, label_mask: np.ndarray | None = None
              ) -> dict[str, torch.Tensor]:
        return pad_item(ids, label_mask, self.max_tokens, self.pad_id)


class WindowDataset(_StoreDataset):
    """Windows over the snapshot documents, in path order.

    ``max_tokens`` and ``overlap`` default to the store's (1,024 and 768). ``labels_on="all"``
    takes loss on every real token of a window; ``"new"`` only on the tokens it adds beyond
    its predecessor (the first window of a document on all of its tokens), so that each token
    of a document is a label exactly once per pass, however much the windows overlap.
    """

    def __init__(self, path: str | Path | None = None, max_tokens: int | None = None,
                 overlap: int | None = None, labels_on: str = "all"):
        if labels_on not in ("all", "new"):
            raise ValueError(f'labels_on must be "all" or "new", got {labels_on!r}')
        super().__init__(path, max_tokens)
        self.labels_on = labels_on
        cfg = self.store.config
        self.overlap = cfg.overlap if overlap is None else overlap
        if not 0 <= self.overlap < self.max_tokens:
            raise ValueError(f"overlap must be in [0, {self.max_tokens}), got {self.overlap}")
        self.stride = self.max_tokens - self.overlap
        self.refresh()

    def refresh(self) -> WindowDataset:
        docs = [d for d in self.store.documents(weighed=False) if d["n_tokens"] > 0]
        self.paths = [d["path"] for d in docs]
        self._arrays = [d["array"] for d in docs]
        # One entry per window, computed once: (document, start, stop, first labelled
        # offset). Compact arrays whose items come out as plain ints, so an access does no
        # search.
        spans = window_spans([d["n_tokens"] for d in docs], self.max_tokens, self.stride)
        new_from = new_label_starts(*spans) if self.labels_on == "new" else \
            np.zeros(len(spans[0]), dtype=np.int64)
        self._doc, self._start, self._stop, self._new = (
            array("q", a.tobytes()) for a in (*spans, new_from))
        self._renew()
        return self

    def __len__(self) -> int:
        return len(self._doc)

    def locate(self, index: int) -> tuple[int, int]:
        """(document number, token offset) of window ``index``."""
        self._check(index)
        return self._doc[index], self._start[index]

    def _get(self, read, index: int) -> dict[str, torch.Tensor]:
        return window_item(read, self._arrays[self._doc[index]], self._start[index],
                           self._stop[index], self._new[index], self.max_tokens, self.pad_id)


class EvolutionDataset(_StoreDataset):
    """Evolution records as CommitPack-layout sequences; long records give several views.

    ``labels_on="all"`` takes loss on every real token, ``"after"`` on the after part only
    (instruction-style tuning). Superseded records are left out unless asked for.
    """

    def __init__(self, path: str | Path | None = None, max_tokens: int | None = None,
                 labels_on: str = "all", include_superseded: bool = False):
        if labels_on not in ("all", "after"):
            raise ValueError(f'labels_on must be "all" or "after", got {labels_on!r}')
        super().__init__(path, max_tokens)
        self.labels_on = labels_on
        self.include_superseded = include_superseded
        tok = self.tokenizer
        self.special = (tok.sentinel("<commit_before>"), tok.sentinel("<commit_msg>"),
                        tok.sentinel("<commit_after>"), tok.eos_id)
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
        self._renew()
        return self

    def __len__(self) -> int:
        return len(self._views)

    def record_of(self, index: int) -> dict[str, Any]:
        """The stored record (array ids, not text) behind item ``index``."""
        return self._records[self._views[index][0]]

    def _get(self, read, index: int) -> dict[str, torch.Tensor]:
        number, view = self._views[index]
        return record_item(read, self._records[number], view, self.special, self.labels_on,
                           self.max_tokens, self.pad_id)
