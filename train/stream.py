"""The training stream: items from a live store, epoch after epoch, resumable exactly.

``TrainStream`` is a ``torch.utils.data.IterableDataset`` of the same items as
``repofeed.store.WindowDataset`` and ``EvolutionDataset`` (dicts of 1-D long tensors
``input_ids``, ``attention_mask``, ``labels`` of length ``max_tokens``; the item functions of
``repofeed.store.datasets`` make them), drawn from several *sources* by ratio, over a store a
daemon keeps writing.

**Sources.** ``"windows"``: the snapshot documents' windows (``max_tokens`` and ``overlap``
default to the store's). ``"evolution"``: the views of the evolution records, superseded
records left out. ``"variants"``: the windows of the stored variants of the snapshot documents
(renamed, without comments, reformatted: ``store/variants``; those of the ``variant_recipes``
option where it names any), each weighing what its source document weighs. ``"context"``: the
windows of the context documents (a file after the files it imports, ``store/context.py``),
each weighing what its file weighs. Variants and context are drawn only where the mix names
them. A source is an entry of ``SOURCES`` (a ``Source`` subclass: how to take its item set
from the store, how to encode it compactly, how to read an item).

**Labels.** ``labels="all"``: loss on every real token. ``labels="new"``: a window takes loss
only on the tokens it adds beyond its predecessor (``WindowDataset(labels_on="new")``), so that
each token of a document is a label once per pass; at the default 768 overlap ``"all"`` trains
every token about four times per pass. For evolution records ``"new"`` is the same as
``"all"``: a record's views are sequences of their own, not overlapping windows of a document.

**Mix.** ``mix=None``: the ``mix`` option of the configuration (``repofeed.toml``), and where
that is empty, natural proportions of windows and evolution records, every item of each
exactly once per epoch. ``mix=["windows", "context"]`` (a list of sources): natural
proportions of those.
``mix={"windows": 3, "evolution": 1}``: each source gets that share of the epoch's draws
(ratios are normalised; a source at 0 is left out; a source with no items in an epoch is left
out of that epoch and the others' shares renormalised). An epoch is as many draws as the mixed
sources hold together; a source that runs out within an epoch starts another pass of itself,
freshly shuffled; a source with more items than its share sees only part of them that epoch.
The sources' draws are interleaved evenly (draw j of a source with d draws sits at (j+½)/d of
the epoch), so every stretch of the stream holds the sources near their ratio. Mixing fresh
and old data at a set ratio is what users of Levanter asked for (marin-community/levanter #698).

**Weights and curricula.** What is drawn is read-time policy (``store/policy.py``, the
``policy`` argument; default: the repository's configuration now, ``Policy.for_store``): each
document and record has a weight — path rules and classes, 0 for what is left out (vendored,
generated, lock files, a failed filter, an exact duplicate, a dropped near-duplicate) — and
its windows or views share it. An epoch draws an item ``floor(w)`` times plus once more with
probability ``frac(w)``, decided by a keyed hash of (seed, epoch, item), so a weight is a
sampling rate (0.3: in about 3 epochs of 10), never rounded to zero, and the same seed gives
the same epochs. The curriculum multiplies in: ``epochs`` keeps, in epoch e < P - 1 of P
phases, the items within the simplest (e + 1) / P of the epoch's complexity (later epochs
keep all); ``proportional`` weighs each item by its complexity over the mean (clipped to
[0.1, 10]). Both are computed over each epoch's watermark, so new data takes its place in the
next epoch. The weights and complexities are columns of the watermark, so a resume draws
exactly what the uninterrupted run would, and a stream under another policy refuses the state.

**Identity.** Every item has a 64-bit key from its content, never from its position in path
order: a window from (path, the document's git blob id, start, window length), a record view
from (commit, path, view number, max_tokens). The key survives refreshes: a document that did
not change keeps its windows' keys when others are added, changed or deleted.

**Epochs and the watermark.** Each epoch reads a frozen *watermark*: the item set of the store
when the epoch starts. Within a source, the epoch's order is the items sorted by a keyed hash
of (seed, epoch, pass, key): the same (seed, epoch) gives the same order, another seed
another, and new items never move old ones relative to each other. What the daemon writes
during an epoch joins at the next one. ``epochs=N`` stops after N epochs in all (counted from
epoch 0, across iterators and resumes); ``follow=True`` never stops by itself; with neither,
each ``iter()`` runs to the end of the current epoch (one epoch per ``for`` loop). With
DataLoader workers, pass ``epochs`` or ``follow``: a new DataLoader iterator restarts its
workers from the main process's copy of the stream.

**Replay.** With ``replay=F`` (0 < F <= 1), each epoch after the first holds every item new
since the previous epoch's watermark plus old items drawn deterministically per (seed, epoch),
as many as make the new ones a fraction F of the epoch's item set (all old ones, if there are
too few). Re-warming the learning rate with replay of old data matched full retraining
(arXiv 2403.08763). With no new items an epoch is a full pass, except with ``follow=True``:
then the stream waits, polling the store every ``poll_seconds`` (one empty read transaction:
``Store.version()``, the id of the last write), until new items arrive; it takes the new
watermark once the store has been quiet for one poll (a commit lands in more than one
transaction). The first shard to take it decides for all: the others read it (see Sharding),
at once if it is already published. With an explicit mix
the fraction F holds for the item set; the mix then sets each source's draws.

**State.** ``state_dict()`` is a small dict of ints, bytes and lists (msgpack/pickle-able): the
epoch, the position (items this shard consumed in the epoch), the count of skipped items, the
settings it was made with, and the epoch's watermark (and, with replay, the previous one) as
compact uint64 bytes: 40 bytes per document for windows (key, token array, length, weight,
complexity: the windows follow from window arithmetic) and 40 per record for evolution
(sequence number, key, view count, weight, complexity). ``load_state_dict()`` rebuilds the
epoch's order from these alone and skips the consumed positions without reading them
(skipping by reading cost a user of transformers 28 h for 660k batches:
huggingface/transformers #11284). So a resume after the daemon wrote new
commits or changed files continues with exactly the items that would have come: token arrays
are content-addressed and never rewritten, and superseded records stay readable. Items whose
tokens or record were garbage-collected in the meantime (``repofeed gc``, after its grace
period) cannot be read: they are skipped, and counted in ``skipped``.

**Sharding.** The epoch's draws are cut in blocks of ``batch_size`` (default 1). Block b goes
to rank ``b % world_size``, and within the rank to DataLoader worker
``(b // world_size) % num_workers`` (``torch.utils.data.get_worker_info()``): the shards are
disjoint and together the epoch. With ``batch_size`` equal to the DataLoader's, the batches of
a rank are the same whatever the number of workers, since the loader takes one batch from each
worker in turn (determinism independent of the worker count: mosaicml/composer #1356).
torchdata's ``StatefulDataLoader`` (0.11) calls ``state_dict()`` in each worker after every
batch by default (``snapshot_every_n_steps=1``; so the encoded watermark is made once per
epoch and reused), keeps each worker's state with the batches it sent, and on resume calls
``load_state_dict()`` on each worker's copy before that worker calls ``iter()``. A state saved
mid-epoch belongs to its shard, and loading it into another is refused; one at the start of an
epoch (position 0) fits any shard. Ranks may differ by one block at the end of an epoch.

All shards of a stream use one watermark per epoch, decided once: the first shard to need
epoch e's publishes it in ``shared_dir``, and the others read it, so that the shards' draws
partition one order even when they cross the boundary on either side of a write. A
published file holds what the state holds for the epoch (the encoded watermark, and with
replay the previous one), tagged with a key of (store path, seed, settings, world size, run)
and the epoch; it appears whole (written to a temporary file, synced, then linked to its
name, which only one writer can do: a losing writer reads the winner's). Publishing epoch e
removes the files of epochs before e - 1. ``shared_dir`` defaults to ``<store>.train/epochs``
beside the store directory (``repofeed.train`` never writes inside the store); ranks on
several machines need a directory on a filesystem they all see. Epoch 0's watermark is taken
when the stream is made (DataLoader workers inherit it); with ``world_size`` > 1 it is
published too, so a rank made later, after the daemon wrote, reads the first rank's rather
than take a newer one. The DataLoader workers of one stream share a random run id (kept in
the state, so that a resumed run reads its own files; a resumed shard also publishes the
epoch its state holds, for shards not there yet). Ranks are made apart and cannot share a
random id: their key is the same for every run with the same store, seed and settings, so a
new multi-rank run on an unchanged key reads the previous run's epoch-0 watermark if its file
is still there (a consistent but older item set): give each run its own ``shared_dir`` (say,
in its output directory). A single shard (one rank, no workers) shares nothing and never
touches the directory. Where the directory cannot be written, a stream with several shards
logs a warning and each shard takes its own watermarks, as a single one would; shards that
cross a boundary while the store is written may then repeat or miss items in that epoch.

**Lightness.** Index building is numpy-vectorised (window spans, keys, hashes, orders); items
are read through the store's ``TokenReader``; the LMDB handle is opened lazily in each process
(never pickled to a worker).
"""

from __future__ import annotations

import logging
import math
import os
import secrets
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import msgpack
import numpy as np
import torch
import xxhash

from repofeed.store.augment import Augment, Augmenter
from repofeed.store.config import NATURAL_SOURCES, check_mix, check_sources
from repofeed.store.datasets import record_item, window_item
from repofeed.store.errors import ArrayMissing, ConfigError, StoreError
from repofeed.store.evolution import View, plan_views
from repofeed.store.locate import resolve_store_dir, train_dir
from repofeed.store.policy import Policy
from repofeed.store.reader import ProcessLocalStore, Store
from repofeed.store.schema import path_bytes
from repofeed.store.windows import new_label_starts, window_spans

STATE_VERSION = 1
BOARD_VERSION = 1
_U64 = np.dtype("<u8")
log = logging.getLogger("repofeed.train")


# -- hashing ------------------------------------------------------------------------------

def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser, over uint64 arrays (wrapping arithmetic)."""
    x = np.asarray(x, dtype=np.uint64)
    with np.errstate(over="ignore"):
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def _combine(a: np.ndarray, b: np.ndarray | int) -> np.ndarray:
    """A 64-bit hash of the pairs (a, b)."""
    b = np.asarray(b, dtype=np.int64).astype(np.uint64)
    with np.errstate(over="ignore"):
        return _mix(np.asarray(a, dtype=np.uint64) ^ (_mix(b) + np.uint64(0x9E3779B97F4A7C15)))


def _salt(*parts: int | str) -> int:
    """A 64-bit value standing for ``parts`` (seed, epoch, a tag...), as a signed int."""
    data = b"\0".join(str(p).encode() for p in parts)
    return struct.unpack("<q", xxhash.xxh3_64_digest(data))[0]


def _text_key(*parts: str) -> int:
    raw = b"\0".join(path_bytes(p) for p in parts)
    return xxhash.xxh3_64_intdigest(raw)


def _floats(values: list[float]) -> np.ndarray:
    """Floats as a uint64 column (their IEEE bits): the watermark's columns are all uint64."""
    return np.asarray(values, dtype=np.float64).view(np.uint64)


def _encode(columns: dict[str, np.ndarray]) -> dict[str, bytes]:
    return {name: np.ascontiguousarray(col, dtype=_U64).tobytes()
            for name, col in columns.items()}


def _decode(blob: dict[str, bytes], names: tuple[str, ...]) -> dict[str, np.ndarray]:
    try:
        cols = {name: np.frombuffer(blob[name], dtype=_U64) for name in names}
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"a stream state's watermark is damaged ({exc}): it was not made "
                          f"by TrainStream.state_dict()") from None
    if len({len(c) for c in cols.values()}) > 1:
        raise ConfigError("a stream state's watermark is damaged (columns of unequal length)")
    return cols


# -- sources ------------------------------------------------------------------------------

@dataclass
class Watermark:
    """A source's item set at one moment: ``keys`` (one uint64 per item) and the compact
    ``columns`` the state holds, from which everything else is derived."""

    keys: np.ndarray
    columns: dict[str, np.ndarray]
    extra: dict[str, Any] = field(default_factory=dict)  # derived, never encoded

    def __len__(self) -> int:
        return len(self.keys)


class Source:
    """One kind of training item. Subclasses set ``name`` and ``columns`` and implement:

    * ``take(store)``: the watermark of the store now;
    * ``rebuild(columns)``: the same watermark from its encoded columns, without the store;
    * ``attach(store, mark)``: whatever reading needs beyond the columns (once per process);
    * ``read(read, mark, index)``: item ``index`` of the watermark; raises ``ArrayMissing``
      (or returns None) when its content is gone.
    """

    name: ClassVar[str]
    columns: ClassVar[tuple[str, ...]]

    def __init__(self, stream: TrainStream):
        self.stream = stream

    def take(self, store: Store) -> Watermark:
        raise NotImplementedError

    def rebuild(self, columns: dict[str, np.ndarray]) -> Watermark:
        raise NotImplementedError

    def attach(self, store: Store, mark: Watermark) -> None:
        pass

    def read(self, read, mark: Watermark, index: int) -> dict[str, torch.Tensor] | None:
        raise NotImplementedError


class WindowSource(Source):
    """Windows over the snapshot documents, as ``WindowDataset`` makes them."""

    name = "windows"
    columns = ("doc_key", "array", "n_tokens", "weight", "score")

    def take(self, store: Store) -> Watermark:
        weighed = [w for w in self.stream.policy.documents(store) if w.weight > 0]
        docs = [w.doc for w in weighed]
        keys = np.fromiter((_text_key(d["path"], str(d.get("blob") or d["array"]))
                            for d in docs), dtype=np.uint64, count=len(docs))
        return self.rebuild({
            "doc_key": keys,
            "array": np.fromiter((d["array"] for d in docs), dtype=np.uint64, count=len(docs)),
            "n_tokens": np.fromiter((d["n_tokens"] for d in docs), dtype=np.uint64,
                                    count=len(docs)),
            "weight": _floats([w.weight for w in weighed]),
            "score": _floats([w.score for w in weighed]),
        })

    def rebuild(self, columns: dict[str, np.ndarray]) -> Watermark:
        s = self.stream
        n_tokens = columns["n_tokens"].astype(np.int64)
        doc, start, stop = window_spans(n_tokens, s.max_tokens, s.max_tokens - s.overlap)
        new_from = new_label_starts(doc, start, stop) if s.labels == "new" else \
            np.zeros(len(doc), dtype=np.int64)
        keys = _combine(_combine(columns["doc_key"][doc], start), s.max_tokens)
        arrays = columns["array"].astype(np.int64)[doc]
        return Watermark(keys, columns, {"rows": np.stack([arrays, start, stop, new_from], 1),
                                         "weight": columns["weight"].view(np.float64)[doc],
                                         "score": columns["score"].view(np.float64)[doc]})

    def read(self, read, mark: Watermark, index: int) -> dict[str, torch.Tensor]:
        array, start, stop, new_from = mark.extra["rows"][index].tolist()
        s = self.stream
        vary = None
        if s.augmenter is not None:
            key = int(mark.keys[index])

            def vary(ids, mask):
                return s.augmenter(ids, s.max_tokens, key, s.seed, s.epoch, mask)
        return window_item(read, array, start, stop, new_from, s.max_tokens, s.pad_id, vary)


class _DerivedSource(WindowSource):
    """Windows over documents made from the snapshot's (``documents``): each weighs what the
    snapshot document at its path weighs (0 leaves it out with that document) and has its
    complexity."""

    def documents(self, store: Store) -> list[dict[str, Any]]:
        raise NotImplementedError

    def key(self, doc: dict[str, Any]) -> int:
        raise NotImplementedError

    def take(self, store: Store) -> Watermark:
        weighed = {w.path: w for w in self.stream.policy.documents(store) if w.weight > 0}
        docs = [d for d in self.documents(store) if d["path"] in weighed and d["n_tokens"]]
        count = len(docs)
        return self.rebuild({
            "doc_key": np.fromiter(map(self.key, docs), dtype=np.uint64, count=count),
            "array": np.fromiter((d["array"] for d in docs), dtype=np.uint64, count=count),
            "n_tokens": np.fromiter((d["n_tokens"] for d in docs), dtype=np.uint64,
                                    count=count),
            "weight": _floats([weighed[d["path"]].weight for d in docs]),
            "score": _floats([weighed[d["path"]].score for d in docs]),
        })


class VariantSource(_DerivedSource):
    """Windows over the stored variants of the snapshot documents (``store/variants``; those
    of the ``variant_recipes`` option where it names any); a variant's key is its source's
    (path, blob) and its recipe."""

    name = "variants"

    def documents(self, store: Store) -> list[dict[str, Any]]:
        drawn = set(self.stream.policy.cfg.variant_recipes)
        return [d for d in store.variant_documents() if not drawn or d["recipe"] in drawn]

    def key(self, doc: dict[str, Any]) -> int:
        return _text_key(doc["path"], str(doc.get("blob") or doc["source_array"]),
                         doc["recipe"])


class ContextSource(_DerivedSource):
    """Windows over the context documents (a file after the files it imports,
    ``store/context.py``), each under its target's path; its key is the target's path and
    the document's content, so it changes whenever a file in it changes."""

    name = "context"

    def documents(self, store: Store) -> list[dict[str, Any]]:
        return store.context_documents()

    def key(self, doc: dict[str, Any]) -> int:
        return _text_key(doc["path"], "context", doc["hash"].hex())


class EvolutionSource(Source):
    """Views of the evolution records, as ``EvolutionDataset`` makes them (loss on every
    token: ``labels="new"`` concerns overlapping windows; a record's views are sequences of
    their own, so for them "new" is the same as "all")."""

    name = "evolution"
    columns = ("seq", "rec_key", "n_views", "weight", "score")

    def _views(self, rec: dict[str, Any]) -> list[View]:
        return plan_views(rec["n_before"], rec["n_after"], rec["n_msg"], rec["hunks"],
                          self.stream.max_tokens)

    def take(self, store: Store) -> Watermark:
        numbered = store.numbered_records()
        weighed = self.stream.policy.records(store, numbered)
        numbered = [(seq, rec) for seq, rec in numbered if weighed[seq].weight > 0]
        views = [self._views(rec) for _, rec in numbered]
        count = len(numbered)
        mark = self.rebuild({
            "seq": np.fromiter((seq for seq, _ in numbered), dtype=np.uint64, count=count),
            "rec_key": np.fromiter((_text_key(r["commit"], r["path"]) for _, r in numbered),
                                   dtype=np.uint64, count=count),
            "n_views": np.fromiter(map(len, views), dtype=np.uint64, count=count),
            "weight": _floats([weighed[seq].weight for seq, _ in numbered]),
            "score": _floats([weighed[seq].score for seq, _ in numbered]),
        })
        mark.extra["records"] = {seq: (rec, v) for (seq, rec), v in zip(numbered, views)}
        return mark

    def rebuild(self, columns: dict[str, np.ndarray]) -> Watermark:
        n_views = columns["n_views"].astype(np.int64)
        row = np.repeat(np.arange(len(n_views), dtype=np.int64), n_views)
        view = np.arange(len(row), dtype=np.int64) - np.repeat(np.cumsum(n_views) - n_views,
                                                               n_views)
        keys = _combine(_combine(columns["rec_key"][row], view), self.stream.max_tokens)
        return Watermark(keys, columns, {"row": row, "view": view,
                                         "weight": columns["weight"].view(np.float64)[row],
                                         "score": columns["score"].view(np.float64)[row]})

    def attach(self, store: Store, mark: Watermark) -> None:
        if "records" in mark.extra:
            return
        wanted = set(mark.columns["seq"].tolist())
        found = {}
        for seq, rec in store.numbered_records(include_superseded=True):
            if seq in wanted:
                found[seq] = (rec, self._views(rec))
        mark.extra["records"] = found

    def read(self, read, mark: Watermark, index: int) -> dict[str, torch.Tensor] | None:
        row, view = int(mark.extra["row"][index]), int(mark.extra["view"][index])
        seq = int(mark.columns["seq"][row])
        entry = mark.extra["records"].get(seq)
        if entry is None or len(entry[1]) != int(mark.columns["n_views"][row]):
            return None  # the record was garbage-collected since the watermark
        s = self.stream
        rec, views = entry
        return record_item(read, rec, views[view], s.special, "all", s.max_tokens, s.pad_id)


SOURCES: dict[str, type[Source]] = {cls.name: cls for cls in (
    WindowSource, EvolutionSource, VariantSource, ContextSource)}


# -- shared watermarks --------------------------------------------------------------------

def _publish(path: Path, payload: bytes) -> bool:
    """Write ``payload`` at ``path`` unless a file is there already; True if this call wrote
    it. Readers never see a partial file: the bytes go to a temporary file, are synced, and
    are then linked to ``path``, which fails where the name exists (one writer wins)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
    finally:
        try:
            tmp.unlink()
        except FileNotFoundError:
            pass
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)  # the new name survives a crash
    finally:
        os.close(fd)
    return True


def _prune(folder: Path, before: int) -> None:
    """Remove the published watermarks of epochs before ``before`` (no shard reads them)."""
    for path in folder.glob("epoch-*.msgpack"):
        try:
            if int(path.name[len("epoch-"):-len(".msgpack")]) < before:
                path.unlink()
        except (ValueError, OSError):
            pass


# -- the stream ---------------------------------------------------------------------------

@dataclass
class _Epoch:
    """One epoch's watermark (and the previous one, for replay), its encoded form for the
    state, and the order of each shard, computed once."""

    marks: dict[str, Watermark]
    previous: dict[str, Watermark] | None
    encoded: dict[str, dict[str, bytes]]
    encoded_previous: dict[str, dict[str, bytes]] | None
    attached: bool = False
    plans: dict[tuple[int, ...], tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)


class TrainStream(ProcessLocalStore, torch.utils.data.IterableDataset):
    """Training items over a live store: see the module's docstring for the semantics.

    ``store``: a repository, a store directory, or a ``Store``. ``batch_size``: the block in
    which draws are sharded among ranks and workers (pass the DataLoader's batch size so that
    batches do not depend on the number of workers). ``shared_dir``: where the shards publish
    each epoch's watermark (default ``<store>.train/epochs`` beside the store directory; ranks
    on several machines need a directory on a filesystem they share).

    Attributes: ``epoch`` (the epoch being read, from 0), ``position`` (items of this shard
    consumed in it), ``skipped`` (items whose content was garbage-collected, in all),
    ``waiting`` (True while ``follow=True`` waits for the writer). ``epoch_length()`` gives the
    draws of the current epoch over all shards.
    """

    def __init__(self, store: str | Path | Store | None, *, mix: dict[str, float] | None = None,
                 max_tokens: int | None = None, overlap: int | None = None,
                 labels: str = "all", seed: int = 0, replay: float | None = None,
                 follow: bool = False, epochs: int | None = None, rank: int = 0,
                 world_size: int = 1, poll_seconds: float = 2.0, batch_size: int = 1,
                 shared_dir: str | Path | None = None, policy: Policy | None = None,
                 augment: Augment | None = None):
        super().__init__()
        self.store_dir = store.path if isinstance(store, Store) else resolve_store_dir(store)
        self._no_handles()
        self.policy = policy if policy is not None else Policy.for_store(self.store)
        natural = NATURAL_SOURCES
        if isinstance(mix, (list, tuple)):  # natural proportions over these sources
            natural, mix = check_sources(mix), None
        else:
            mix = check_mix(mix if mix is not None else (self.policy.cfg.mix or None))
        self.mix = mix
        self.sources = {name: SOURCES[name](self) for name in
                        (natural if self.mix is None else self.mix)}
        _check_settings(labels, replay, epochs, rank, world_size, poll_seconds, batch_size)
        self.labels, self.replay, self.follow, self.epochs = labels, replay, follow, epochs
        self.rank, self.world_size, self.block = rank, world_size, batch_size
        self.seed, self.poll_seconds = int(seed), float(poll_seconds)
        cfg = self.store.config
        self.max_tokens = max_tokens or cfg.max_tokens
        if isinstance(self.max_tokens, bool) or self.max_tokens < 16:
            raise ConfigError(f"max_tokens must be at least 16, got {max_tokens!r}")
        self.overlap = cfg.overlap if overlap is None else overlap
        if not 0 <= self.overlap < self.max_tokens:
            raise ConfigError(f"overlap must be in [0, {self.max_tokens}), got {self.overlap}")
        tok = self.store.tokenizer
        self.pad_id = tok.pad_id
        self.augment = augment if augment is not None else Augment.from_config(self.policy.cfg)
        self.augmenter = Augmenter(self.augment, tok) if self.augment.active else None
        self.special = (tok.sentinel("<commit_before>"), tok.sentinel("<commit_msg>"),
                        tok.sentinel("<commit_after>"), tok.eos_id)
        self.epoch = 0
        self.position = 0
        self.skipped = 0
        self.waiting = False  # True while follow=True waits for the writer
        self._shard_loaded: tuple[int, ...] | None = None
        self._previous: dict[str, Watermark] | None = None
        self._current: _Epoch | None = None
        self.shared_dir = Path(shared_dir) if shared_dir is not None else \
            train_dir(self.store_dir) / "epochs"
        # one run's shards share a key: the DataLoader workers of one stream inherit its
        # random run id (and a resume takes it from the state); ranks, made apart, share
        # the key of their store, seed and settings
        self._run = secrets.token_hex(8) if world_size == 1 else "ranks"
        self._shared = True  # False once the shared directory failed us
        self._current = self._read_agreed(0)  # ranks: another rank's first watermark
        if self._current is None:
            marks = self._take()
            if sum(map(len, marks.values())) == 0:
                if not follow:
                    raise StoreError(self._empty_message())
            else:
                self._current = self._agree(0, self._epoch_of(marks, None))

    # -- plumbing -------------------------------------------------------------------------

    def _empty_message(self) -> str:
        return (f"the store at {self.store_dir} holds no training items for "
                f"{', '.join(self.sources)}: run `repofeed backfill` first (or follow=True "
                f"to wait for the daemon).")

    def _settings(self) -> dict[str, Any]:
        return {"sources": list(self.sources),
                "mix": (None if tuple(self.sources) == NATURAL_SOURCES else list(self.sources))
                if self.mix is None else [[k, v] for k, v in self.mix.items()],
                "policy": self.policy.settings(), "augment": self.augment.settings(),
                "replay": self.replay, "max_tokens": self.max_tokens,
                "overlap": self.overlap, "labels": self.labels, "batch_size": self.block}

    def _shard(self) -> tuple[int, int, int, int]:
        info = torch.utils.data.get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        return self.rank, self.world_size, worker, workers

    # -- one watermark per epoch for all shards -------------------------------------------

    def _coordinated(self) -> bool:
        """Whether this stream has other shards to agree with (and a place to do it)."""
        _, world, _, workers = self._shard()
        return self._shared and world * workers > 1

    def _board(self) -> tuple[Path, str]:
        """The folder of this stream's published watermarks, and its key."""
        ident = msgpack.packb([str(self.store_dir), self.seed, self._settings(),
                               self.world_size, self._run])
        key = xxhash.xxh3_128_hexdigest(ident)
        return self.shared_dir / key, key

    def _give_up_sharing(self, exc: OSError) -> None:
        self._shared = False
        log.warning("cannot share the training stream's watermarks in %s (%s): each shard "
                    "takes its own, so ranks or DataLoader workers that cross an epoch "
                    "boundary while the store is written may repeat or miss items in that "
                    "epoch; pass shared_dir= a writable directory", self.shared_dir, exc)

    def _read_agreed(self, epoch: int) -> _Epoch | None:
        """The watermark another shard published for ``epoch``, if there is one."""
        if not self._coordinated():
            return None
        folder, key = self._board()
        path = folder / f"epoch-{epoch}.msgpack"
        try:
            data = msgpack.unpackb(path.read_bytes(), strict_map_key=False)
        except FileNotFoundError:
            return None
        except OSError as exc:
            self._give_up_sharing(exc)
            return None
        except (ValueError, msgpack.ExtraData) as exc:
            raise ConfigError(f"the shared watermark {path} is damaged ({exc}): delete it "
                              f"and restart the stream's shards") from None
        if not isinstance(data, dict) or data.get("key") != key or \
                data.get("epoch") != epoch or data.get("version") != BOARD_VERSION:
            raise ConfigError(f"{path} is not this stream's watermark of epoch {epoch}: "
                              f"delete it, or pass another shared_dir")

        def rebuild(encoded):
            return None if encoded is None else {
                name: self.sources[name].rebuild(_decode(blob, self.sources[name].columns))
                for name, blob in encoded.items()}

        return _Epoch(rebuild(data["watermark"]), rebuild(data["previous"]),
                      data["watermark"], data["previous"])

    def _agree(self, epoch: int, ep: _Epoch) -> _Epoch:
        """Publish ``ep`` as the watermark of ``epoch`` unless a shard was first; return the
        one published (``ep`` where there is nothing to agree with, or no place to)."""
        if not self._coordinated():
            return ep
        folder, key = self._board()
        payload = msgpack.packb({"version": BOARD_VERSION, "key": key, "epoch": epoch,
                                 "seed": self.seed, "settings": self._settings(),
                                 "world_size": self.world_size, "watermark": ep.encoded,
                                 "previous": ep.encoded_previous})
        try:
            won = _publish(folder / f"epoch-{epoch}.msgpack", payload)
        except OSError as exc:
            self._give_up_sharing(exc)
            return ep
        if won:
            _prune(folder, epoch - 1)  # shards may lag by one epoch: keep epochs e-1 and e
            return ep
        return self._read_agreed(epoch) or ep

    def _published(self) -> bool:
        """Whether a shard published the watermark of the epoch about to start."""
        if not self._coordinated():
            return False
        return (self._board()[0] / f"epoch-{self.epoch}.msgpack").exists()

    # -- watermarks -----------------------------------------------------------------------

    def _take(self) -> dict[str, Watermark]:
        store = self.store
        return {name: src.take(store) for name, src in self.sources.items()}

    def _epoch_of(self, marks: dict[str, Watermark], previous: dict[str, Watermark] | None
                  ) -> _Epoch:
        encoded = {name: _encode(m.columns) for name, m in marks.items()}
        encoded_previous = None if previous is None else \
            {name: _encode(m.columns) for name, m in previous.items()}
        return _Epoch(marks, previous, encoded, encoded_previous, attached=True)

    def _new_items(self, marks: dict[str, Watermark], previous: dict[str, Watermark] | None
                   ) -> dict[str, np.ndarray]:
        """For each source, which items of ``marks`` are not in ``previous``."""
        out = {}
        for name, mark in marks.items():
            if previous is None or name not in previous:
                out[name] = np.ones(len(mark), dtype=bool)
            else:
                out[name] = ~np.isin(mark.keys, previous[name].keys)
        return out

    def _next_epoch(self) -> _Epoch:
        """The watermark of the epoch about to start: the one another shard published, or
        one taken now (and published), waiting for data where asked to."""
        previous = self._previous if self.replay is not None else None
        seen = self.store.version()
        while True:
            ep = self._read_agreed(self.epoch)
            if ep is None:
                marks = self._take()
                total = sum(map(len, marks.values()))
                if total and not (self.follow and previous is not None and not any(
                        n.any() for n in self._new_items(marks, previous).values())):
                    ep = self._agree(self.epoch, self._epoch_of(marks, previous))
            if ep is not None:
                if self._reader is not None:
                    self._reader.renew()  # the index may name arrays newer than the snapshot
                return ep
            if not self.follow:
                raise StoreError(self._empty_message())
            self.waiting = True
            try:
                seen = self._settled(seen)
            finally:
                self.waiting = False

    def _settled(self, seen: int) -> int:
        """Wait until the store's version differs from ``seen`` and then stays the same for
        one poll: the writer is done with its burst (a commit lands in more than one
        transaction). Returns at once when another shard published the epoch's watermark:
        the first to decide decides for all."""
        store = self.store
        while store.version() == seen:  # wait, cheaply, for the writer
            if self._published():
                return seen
            time.sleep(self.poll_seconds)
        while True:
            current = store.version()
            time.sleep(self.poll_seconds)
            if self._published() or store.version() == current:
                return current

    # -- the order ------------------------------------------------------------------------

    def _item_sets(self, ep: _Epoch) -> dict[str, np.ndarray]:
        """The items (indices into each watermark) of the epoch, before mixing."""
        sets = {name: np.arange(len(m), dtype=np.int64) for name, m in ep.marks.items()}
        if self.replay is None or ep.previous is None:
            return sets
        new = self._new_items(ep.marks, ep.previous)
        n_new = sum(int(n.sum()) for n in new.values())
        if n_new == 0:
            return sets  # nothing new: a full pass
        old_idx = {name: np.flatnonzero(~new[name]) for name in sets}
        n_old = sum(len(i) for i in old_idx.values())
        quota = min(n_old, round(n_new * (1 - self.replay) / self.replay))
        names = list(sets)
        tags = np.concatenate([np.full(len(old_idx[n]), k, dtype=np.int64)
                               for k, n in enumerate(names)])
        idx = np.concatenate([old_idx[n] for n in names])
        keys = np.concatenate([ep.marks[n].keys[old_idx[n]] for n in names])
        rank = _combine(keys, _salt("replay", self.seed, self.epoch))
        chosen = np.lexsort((tags, rank))[:quota]
        for k, name in enumerate(names):
            picked = idx[chosen[tags[chosen] == k]]
            sets[name] = np.sort(np.concatenate([np.flatnonzero(new[name]), picked]))
        return sets

    def _sampled(self, ep: _Epoch, sets: dict[str, np.ndarray]
                 ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """The epoch's items after weighting: item i drawn ``floor(w)`` times plus once more
        with probability ``frac(w)`` (a keyed hash of seed, epoch and item decides), where
        w is its weight (store/policy.py) times the curriculum's factor. Returns the items
        (indices, repeated) and each draw's copy number. All weights 1: every item once."""
        out, copies = {}, {}
        for name, items in sets.items():
            mark = ep.marks[name]
            weight = self._curriculum(mark.extra["weight"][items], mark.extra["score"][items])
            u = (_combine(mark.keys[items], _salt("copies", self.seed, self.epoch))
                 >> np.uint64(11)).astype(np.float64) * 2.0 ** -53
            whole = np.floor(weight)
            count = (whole + (u < weight - whole)).astype(np.int64)
            out[name] = np.repeat(items, count)
            starts = np.repeat(np.cumsum(count) - count, count)
            copies[name] = np.arange(len(out[name]), dtype=np.int64) - starts
        return out, copies

    def _curriculum(self, weight: np.ndarray, score: np.ndarray) -> np.ndarray:
        """``weight`` under the curriculum: ``epochs`` — of P phases, epoch e < P - 1 keeps
        the items whose complexity is within the simplest (e + 1) / P of the epoch's items
        (later epochs keep all); ``proportional`` — times the item's complexity over the
        mean complexity, clipped to [0.1, 10] so that no item is never drawn."""
        mode = self.policy.cfg.curriculum
        if mode == "off" or len(score) == 0 or not np.ptp(score) > 0:
            return weight
        if mode == "epochs":
            phases = self.policy.cfg.curriculum_phases
            if self.epoch >= phases - 1:
                return weight
            cutoff = np.quantile(score, (self.epoch + 1) / phases)
            return np.where(score <= cutoff, weight, 0.0)
        mean = float(score.mean())
        return weight * np.clip(score / mean, 0.1, 10.0)

    def _draws(self, sets: dict[str, np.ndarray]) -> dict[str, int]:
        sizes = {name: len(s) for name, s in sets.items()}
        total = sum(sizes.values())
        if self.mix is None:
            return sizes
        ratios = {name: self.mix[name] for name in sets if sizes[name] > 0}
        weight = sum(ratios.values())
        exact = {name: total * r / weight for name, r in ratios.items()}
        draws = {name: math.floor(x) for name, x in exact.items()}
        left = total - sum(draws.values())
        by_remainder = sorted(exact, key=lambda n: -(exact[n] - draws[n]))
        for name in by_remainder[:left]:
            draws[name] += 1
        return {name: draws.get(name, 0) for name in sets}

    def _global_order(self, ep: _Epoch) -> tuple[np.ndarray, np.ndarray]:
        """(source number, index into its watermark) of every draw of the epoch, in order."""
        sets, copies = self._sampled(ep, self._item_sets(ep))
        draws = self._draws(sets)
        names = list(sets)
        src_parts, idx_parts, pos_parts = [], [], []
        for k, name in enumerate(names):
            want, items = draws[name], sets[name]
            if want == 0 or len(items) == 0:
                continue
            keys = ep.marks[name].keys[items]
            again = copies[name] > 0  # a second copy of an item sorts apart from the first
            keys = np.where(again, _combine(keys, copies[name]), keys)
            passes, taken = [], 0
            for n_pass in range(-(-want // len(items))):
                salt = _salt("order", self.seed, self.epoch, name, n_pass)
                order = np.argsort(_combine(keys, salt), kind="stable")
                passes.append(items[order[:want - taken]])
                taken += len(passes[-1])
            seq = np.concatenate(passes)
            src_parts.append(np.full(want, k, dtype=np.int64))
            idx_parts.append(seq)
            pos_parts.append((np.arange(want, dtype=np.float64) + 0.5) / want)
        if not src_parts:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        src, idx, pos = (np.concatenate(p) for p in (src_parts, idx_parts, pos_parts))
        order = np.lexsort((src, pos))
        return src[order], idx[order]

    def _plan(self, ep: _Epoch, shard: tuple[int, int, int, int]
              ) -> tuple[np.ndarray, np.ndarray]:
        if shard not in ep.plans:
            src, idx = self._global_order(ep)
            rank, world, worker, workers = shard
            block = np.arange(len(src), dtype=np.int64) // self.block
            mine = (block % world == rank) & ((block // world) % workers == worker)
            ep.plans[shard] = (src[mine], idx[mine])
        return ep.plans[shard]

    def epoch_length(self) -> int:
        """Draws of the current epoch in all shards together (0 before its watermark)."""
        return 0 if self._current is None else len(self._global_order(self._current)[0])

    # -- iteration ------------------------------------------------------------------------

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        shard = self._shard()
        if self._shard_loaded is not None and self._shard_loaded != shard:
            raise ConfigError(f"this stream state belongs to shard (rank, world_size, worker, "
                              f"workers) = {self._shard_loaded}, not {shard}: resume with the "
                              f"same world size and number of DataLoader workers")
        stop = self.epochs if self.epochs is not None else \
            (None if self.follow else self.epoch + 1)
        names = list(self.sources)
        while stop is None or self.epoch < stop:
            if self._current is None:
                self._current = self._next_epoch()
            ep = self._current
            if not ep.attached:
                for name, src in self.sources.items():
                    src.attach(self.store, ep.marks[name])
                ep.attached = True
            src_no, idx = self._plan(ep, shard)
            sources = [self.sources[n] for n in names]
            marks = [ep.marks[n] for n in names]
            tokens = self._tokens
            while self.position < len(src_no):
                p = self.position
                self.position += 1
                k = int(src_no[p])
                try:
                    with tokens:
                        item = sources[k].read(tokens.read, marks[k], int(idx[p]))
                except ArrayMissing:
                    item = None
                if item is None:
                    self.skipped += 1
                    continue
                yield item
            self._previous = ep.marks
            self._current = None
            self.epoch += 1
            self.position = 0

    # -- state ----------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        ep = self._current
        if ep is not None:
            watermark, previous = ep.encoded, ep.encoded_previous
        else:  # between epochs: the next watermark is not taken yet
            watermark = None
            previous = None if self._previous is None or self.replay is None else \
                {name: _encode(m.columns) for name, m in self._previous.items()}
        return {"version": STATE_VERSION, "seed": self.seed, "epoch": self.epoch,
                "position": self.position, "skipped": self.skipped,
                "shard": list(self._shard()), "settings": self._settings(),
                "run": self._run, "watermark": watermark, "previous": previous}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if not isinstance(state, dict) or state.get("version") != STATE_VERSION:
            raise ConfigError("not a TrainStream state (or one of another version): pass what "
                              "TrainStream.state_dict() returned")
        settings = self._settings()
        saved = state["settings"]
        for key, value in settings.items():
            if saved.get(key) != value:
                raise ConfigError(f"the stream state was saved with {key}={saved.get(key)!r}, "
                                  f"this stream has {value!r}: make the stream with the same "
                                  f"settings to resume it exactly")
        self.seed = int(state["seed"])
        self.epoch, self.position = int(state["epoch"]), int(state["position"])
        self.skipped = int(state["skipped"])
        self._run = str(state.get("run", self._run))  # the run's shared watermarks
        self._shard_loaded = tuple(state["shard"]) if self.position else None
        previous = None
        if state["previous"] is not None:
            previous = {name: self.sources[name].rebuild(
                _decode(blob, self.sources[name].columns))
                for name, blob in state["previous"].items()}
        if state["watermark"] is None:
            self._current, self._previous = None, previous
            return
        marks = {name: self.sources[name].rebuild(_decode(blob, self.sources[name].columns))
                 for name, blob in state["watermark"].items()}
        self._previous = None
        self._current = _Epoch(marks, previous, state["watermark"], state["previous"])
        self._agree(self.epoch, self._current)  # for shards that have not reached it yet


def _check_settings(labels: str, replay: float | None, epochs: int | None, rank: int,
                    world_size: int, poll_seconds: float, batch_size: int) -> None:
    if labels not in ("all", "new"):
        raise ConfigError(f'labels must be "all" or "new", got {labels!r}')
    if replay is not None and (isinstance(replay, bool) or
                               not isinstance(replay, (int, float)) or not 0 < replay <= 1):
        raise ConfigError(f"replay is the fraction of new items in an epoch, in (0, 1]; "
                          f"got {replay!r}")
    if epochs is not None and (isinstance(epochs, bool) or not isinstance(epochs, int) or
                               epochs < 1):
        raise ConfigError(f"epochs must be a whole number >= 1 (or None), got {epochs!r}")
    if isinstance(world_size, bool) or not isinstance(world_size, int) or world_size < 1 or \
            isinstance(rank, bool) or not isinstance(rank, int) or not 0 <= rank < world_size:
        raise ConfigError(f"rank must be in [0, world_size) and world_size >= 1, got rank="
                          f"{rank!r}, world_size={world_size!r}")
    if not poll_seconds > 0:
        raise ConfigError(f"poll_seconds must be > 0, got {poll_seconds!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"batch_size must be a whole number >= 1, got {batch_size!r}")
