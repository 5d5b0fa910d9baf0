"""Held-out bits per byte on a temporal split (``repofeed eval``).

Given a model, the store's tokenizer, the repository and a ``Cut`` (repofeed.daemon.split),
four parts are scored, two left to right and two of infilling:

* ``files`` — the tip versions of the text files the held-out commits added or changed (those
  still at the tip), each from its start: the file's tokens follow one start token (the
  tokenizer's end-of-sequence id, or ``<file_sep>`` when it has none), which is not scored.
* ``records`` — the held-out commits' evolution records, formed as the ingest forms them (one
  per changed text file of each non-merge commit; binary, too large, symlinks... left out
  alike), in the CommitPack layout the datasets use: ``<commit_before> B <commit_msg> M
  <commit_after> A``, the message cut to a quarter of the context as in training. Only the
  after tokens A are scored; a deletion has none and gives no record.
* ``infill`` — fill-in-the-middle as a task: spans the held-out commits wrote, filled in
  given the text around them. Of each held-out record whose file existed before the commit
  (a new file has no text of its own around what was written), the after version is cut
  around the lines one of git's hunks added (``infill_span``): the middle is those whole
  lines, the prefix everything before them, the suffix everything after. Of a file's hunks
  the one with the smallest hash is taken (one span per changed file, so a commit touching
  one file in fifty places does not outweigh fifty files); a hunk that only deletes, adds
  only blank lines, or adds more than ``MAX_MIDDLE_BYTES`` (2,048) bytes gives none. The
  three parts are encoded apart and laid out PSM with training's own layout
  (store/augment.py ``fim_layout``): ``<fim_prefix>`` prefix ``<fim_suffix>`` suffix
  ``<fim_middle>`` middle; prefix and suffix are cut to the room the middle and the three
  sentinels leave in the context, keeping the text nearest the middle, half each (what one
  side does not need goes to the other). Only the middle's tokens are scored: bits per byte
  over the middle's UTF-8 bytes. No end-of-middle token is scored: training emits none after
  its middles (an item simply ends), so its loss would measure nothing the model was taught.
* ``lr_middle`` — the baseline: the same middles, scored left to right after the same
  prefix tokens and no suffix (after the start token where the prefix is the file's whole
  start). ``lr_middle`` − ``infill`` is what seeing the suffix is worth to the model. A
  model trained without FIM has never seen the sentinels: set beside a row trained with FIM
  (``repofeed ablate``), its ``infill`` says what FIM training bought.

Every scored token is scored exactly once: a sequence is cut into windows of the model's
context advancing by ``stride`` (default half the context), each window scoring the tokens
the previous one did not, so every token but the first window's has at least ``context -
stride`` tokens of left context. Bits per byte is the sum of the token losses in nats / ln 2 /
the UTF-8 bytes of the scored text, which is what the scored tokens decode to (a tokenizer
that does not give a text back exactly is counted as ``lossy``; special tokens decode to no
bytes). That measure does not depend on the tokenizer, so models with different ones compare.

For a CPU budget, ``limit_bytes`` caps the scored bytes of each part and ``max_files`` the
files (the records, the spans) of each part: items are taken in an order fixed by a hash of
their path (and commit), skipping any that would pass the limit, so the selection is the same
on every run and not biased to the first directories; ``infill`` and ``lr_middle`` select the
same spans.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pygit2
import torch
import xxhash

from repofeed.daemon.history import BlobReader, message_of, shallow_boundaries
from repofeed.daemon.ingest import record_changes
from repofeed.daemon.split import Cut, SplitError, find_cut, split_at
from repofeed.store.augment import fim_layout, fim_sentinels
from repofeed.store.errors import RepofeedError
from repofeed.store.evolution import message_budget
from repofeed.store.languages import language_of
from repofeed.store.lines import hunk_span, line_starts
from repofeed.store.locate import open_repository, own_paths
from repofeed.store.paths import path_class

PARTS = ("files", "records", "infill", "lr_middle")
LEFT_TO_RIGHT = ("files", "records")    # the parts pooled into an "all" left-to-right figure
SPAN_PARTS = ("infill", "lr_middle")    # the same middles, with and without their suffix
DEFAULT_MAX_FILE_BYTES = 1 << 20  # the store's default max_file_bytes
MAX_MIDDLE_BYTES = 2048  # an infill span's middle: at most this many UTF-8 bytes


class EvalError(RepofeedError):
    """An evaluation that cannot run as asked."""


@dataclass
class Tally:
    """Scored items, tokens, bytes and summed loss (nats) of a group."""

    items: int = 0
    tokens: int = 0
    bytes: int = 0
    nats: float = 0.0

    def add(self, tokens: int, nbytes: int, nats: float) -> None:
        self.items += 1
        self.tokens += tokens
        self.bytes += nbytes
        self.nats += nats

    @property
    def bits_per_byte(self) -> float | None:
        return self.nats / math.log(2) / self.bytes if self.bytes else None

    @property
    def bits_per_token(self) -> float | None:
        return self.nats / math.log(2) / self.tokens if self.tokens else None

    def as_dict(self) -> dict[str, Any]:
        return {"items": self.items, "tokens": self.tokens, "bytes": self.bytes,
                "nats": self.nats, "bits_per_byte": self.bits_per_byte,
                "bits_per_token": self.bits_per_token}


@dataclass
class PartResult:
    """One part (``files`` or ``records``): overall, by language and by path class."""

    total: Tally = field(default_factory=Tally)
    by_language: dict[str, Tally] = field(default_factory=dict)
    by_class: dict[str, Tally] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> items left out
    lossy: int = 0  # texts the tokenizer does not give back exactly (scored as decoded)
    selected_from: int = 0  # items there were before limit_bytes / max_files

    def as_dict(self) -> dict[str, Any]:
        return {**self.total.as_dict(),
                "by_language": {k: v.as_dict() for k, v in sorted(self.by_language.items())},
                "by_class": {k: v.as_dict() for k, v in sorted(self.by_class.items())},
                "skipped": dict(sorted(self.skipped.items())), "lossy": self.lossy,
                "selected_from": self.selected_from}


@dataclass
class EvalReport:
    cut: Cut
    parts: dict[str, PartResult]
    settings: dict[str, Any]
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """JSON-able."""
        return {"cut": self.cut.to_dict(), "settings": self.settings,
                "parts": {k: v.as_dict() for k, v in self.parts.items()},
                "notes": self.notes}


@dataclass
class Item:
    """One scored text: ``context`` tokens, then the ``scored`` ones."""

    part: str
    path: str
    context: list[int]
    scored: list[int]
    nbytes: int        # UTF-8 bytes the scored tokens decode to
    lossless: bool

    @property
    def language(self) -> str:
        return language_of(self.path)

    @property
    def cls(self) -> str:
        return path_class(self.path)


# -- what is scored -------------------------------------------------------------------------


@dataclass
class _Text:
    part: str
    path: str
    text: str                               # what is scored (a span's middle)
    key: int                                # selection order
    prefix: tuple[str, str] | None = None   # records: (before, message)
    span: tuple[str, str] | None = None     # infill, lr_middle: (text before, text after)


def _count(skips: dict[str, int], reason: str, n: int = 1) -> None:
    skips[reason] = skips.get(reason, 0) + n


def infill_span(after: str, hunks: Iterable[tuple[int, int, int, int]], key: str, *,
                max_middle_bytes: int = MAX_MIDDLE_BYTES
                ) -> tuple[tuple[str, str, str] | None, str | None]:
    """``((prefix, middle, suffix), None)``: the after text of a changed file cut around the
    lines one of git's hunks added, or ``(None, reason)`` where no hunk gives a span.

    The middle is a hunk's added lines, whole (from a line's start to the next line's
    start); the prefix is all the text before it and the suffix all the text after it. A hunk
    that adds no line (a deletion), only blank lines, or more than ``max_middle_bytes`` bytes
    gives none. Of the hunks that do, the one whose hash of ``key`` and its first line is the
    smallest is taken: one span per changed file, the same on every run."""
    data = after.encode("utf-8", "surrogatepass")
    lines = line_starts(data)
    best: tuple[int, int, int] | None = None
    reason = "no_added_lines"
    for _old_start, _old_lines, new_start, new_lines in hunks:
        if new_lines == 0:
            continue
        lo, hi = hunk_span(lines, new_start, new_lines)
        if not data[lo:hi].strip():
            reason = "blank_middle" if reason == "no_added_lines" else reason
            continue
        if hi - lo > max_middle_bytes:
            reason = "long_middle"
            continue
        rank = _order(f"{key}\0{new_start}")
        if best is None or rank < best[0]:
            best = (rank, lo, hi)
    if best is None:
        return None, reason
    _, lo, hi = best
    prefix, middle, suffix = (part.decode("utf-8", "surrogatepass")
                              for part in (data[:lo], data[lo:hi], data[hi:]))
    return (prefix, middle, suffix), None


def _held_out_texts(repo: pygit2.Repository, cut: Cut, max_file_bytes: int,
                    own: tuple[str, ...]) -> tuple[dict[str, list[_Text]],
                                                   dict[str, dict[str, int]]]:
    """The texts of every part, and what was left out of each, by reason."""
    blobs = BlobReader(repo, max_file_bytes)
    shallow = shallow_boundaries(repo)
    changed: dict[str, None] = {}
    records: list[_Text] = []
    spans: list[_Text] = []
    record_skips: dict[str, int] = {}
    span_skips: dict[str, int] = {}
    for oid in cut.held_out:
        commit = repo[oid].peel(pygit2.Commit)
        changes = record_changes(repo, commit, blobs, own=own, boundary=oid in shallow)
        for reason, n in changes.skips.items():
            _count(record_skips, reason, n)
            _count(span_skips, reason, n)
        message = message_of(commit)
        for f in changes.files:
            if f.after is None:
                _count(record_skips, "deleted")
                _count(span_skips, "deleted")
                continue
            changed[f.path] = None
            if not f.after:
                _count(record_skips, "empty")
                _count(span_skips, "empty")
                continue
            key = f"{oid}\0{f.path}"
            records.append(_Text("records", f.path, f.after, _order(key),
                                 (f.before or "", message)))
            if f.before is None:   # a new file: no text of its own around what was written
                _count(span_skips, "added")
                continue
            span, reason = infill_span(f.after, f.hunks, key)
            if span is None:
                _count(span_skips, reason or "no_span")
                continue
            spans.append(_Text("infill", f.path, span[1], _order(key), span=(span[0], span[2])))
    tip = repo[cut.tip].peel(pygit2.Commit)
    files: list[_Text] = []
    file_skips: dict[str, int] = {}
    for path in sorted(changed):
        try:
            entry = tip.tree[path]
        except (KeyError, UnicodeError):
            file_skips["gone_at_tip"] = file_skips.get("gone_at_tip", 0) + 1
            continue
        # redacted, and .env-like files left out, as the store's own texts are
        text, reason = blobs.read(entry.id, entry.filemode, path) \
            if entry.type_str == "blob" else (None, "not_a_file")
        if text is None or not text:
            reason = reason or "empty"
            file_skips[reason] = file_skips.get(reason, 0) + 1
            continue
        files.append(_Text("files", path, text, _order(path)))
    texts = {"files": files, "records": records, "infill": spans,
             "lr_middle": [replace(t, part="lr_middle") for t in spans]}
    skips = {"files": file_skips, "records": record_skips, "infill": span_skips,
             "lr_middle": dict(span_skips)}
    return texts, skips


def _order(name: str) -> int:
    """A fixed pseudo-random rank: the selection order under the limits."""
    return xxhash.xxh64_intdigest(name.encode("utf-8", "surrogateescape"))


def select(texts: list[_Text], limit_bytes: int | None, max_files: int | None) -> list[_Text]:
    """The texts to score under the limits: in hash order, skipping any that would pass
    ``limit_bytes``, at most ``max_files``; returned in their original order."""
    if limit_bytes is None and max_files is None:
        return list(texts)
    chosen: list[int] = []
    total = 0
    for index in sorted(range(len(texts)), key=lambda i: (texts[i].key, i)):
        if max_files is not None and len(chosen) >= max_files:
            break
        size = len(texts[index].text.encode("utf-8"))
        if limit_bytes is not None and total + size > limit_bytes:
            continue
        chosen.append(index)
        total += size
    return [texts[i] for i in sorted(chosen)]


def start_token(tokenizer) -> int:
    """The unscored token a file's text follows."""
    eos = getattr(tokenizer, "eos_id", -1)
    return eos if eos is not None and eos >= 0 else tokenizer.sentinel("<file_sep>")


def make_item(text: _Text, tokenizer, context: int) -> Item:
    if text.span is not None:
        return make_span_item(text, tokenizer, context)
    ids = list(tokenizer.encode(text.text))
    decoded = tokenizer.decode(ids)
    nbytes = len(decoded.encode("utf-8", "surrogatepass"))
    if text.prefix is None:
        prefix = [start_token(tokenizer)]
    else:
        before, message = text.prefix
        msg_ids = list(tokenizer.encode(message))
        msg_ids = msg_ids[:message_budget(len(msg_ids), context)]
        prefix = ([tokenizer.sentinel("<commit_before>"), *tokenizer.encode(before),
                   tokenizer.sentinel("<commit_msg>"), *msg_ids,
                   tokenizer.sentinel("<commit_after>")])
    return Item(text.part, text.path, prefix, ids, nbytes, decoded == text.text)


def around(n_prefix: int, n_suffix: int, room: int) -> tuple[int, int]:
    """Tokens kept of a prefix and of a suffix in ``room`` tokens: half each (the prefix
    the odd one), and what one side does not need goes to the other."""
    room = max(0, room)
    keep_suffix = min(n_suffix, max(room // 2, room - n_prefix))
    return min(n_prefix, room - keep_suffix), keep_suffix


def make_span_item(text: _Text, tokenizer, context: int) -> Item:
    """An ``infill`` or ``lr_middle`` item: the middle's tokens are scored.

    The prefix, middle and suffix are encoded apart, as training encodes a FIM item's parts.
    Prefix and suffix are cut to the room the middle and the three sentinels leave in
    ``context``, keeping the text nearest the middle (``around``). ``infill`` lays them out
    PSM with the layout training uses (``fim_layout``): ``<fim_prefix>`` prefix
    ``<fim_suffix>`` suffix ``<fim_middle>``, then the middle. ``lr_middle`` is the same
    prefix tokens, then the middle, left to right with no suffix (after the start token
    where the prefix is the file's whole start)."""
    assert text.span is not None
    before, after = text.span
    middle = list(tokenizer.encode(text.text))
    decoded = tokenizer.decode(middle)
    nbytes = len(decoded.encode("utf-8", "surrogatepass"))
    prefix = list(tokenizer.encode(before)) if before else []
    suffix = list(tokenizer.encode(after)) if after else []
    keep_prefix, keep_suffix = around(len(prefix), len(suffix), context - len(middle) - 3)
    kept = prefix[len(prefix) - keep_prefix:]
    if text.part == "infill":
        laid = fim_layout(kept, middle, suffix[:keep_suffix], fim_sentinels(tokenizer))
        head = laid[:len(laid) - len(middle)].tolist()
    elif 0 < keep_prefix < len(prefix):   # a cut prefix begins inside the file
        head = kept
    else:
        head = [start_token(tokenizer), *kept]
    return Item(text.part, text.path, head, middle, nbytes, decoded == text.text)


# -- scoring ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    item: int      # index of the item
    begin: int     # first input position in the item's sequence
    lo: int        # first target position scored
    hi: int        # one past the last (and the window's end)


def windows_of(n_context: int, length: int, context: int, stride: int, item: int = 0
               ) -> list[Window]:
    """Windows scoring targets ``[n_context, length)`` of a sequence, each exactly once.

    The first window starts ``context - stride`` tokens before the first target (or at 0);
    each next one ``stride`` further, scoring the targets the previous one did not. A target
    is predicted from the tokens before it in its window: at least ``context - stride`` of
    them, except where the sequence itself has fewer.
    """
    if not 1 <= stride < context:
        raise EvalError(f"the stride must be at least 1 and below the context ({context}); "
                        f"got {stride}")
    if n_context < 1:
        raise EvalError("a scored token needs at least one token before it")
    out: list[Window] = []
    begin = max(0, n_context - (context - stride))
    lo = n_context
    while lo < length:
        hi = min(length, begin + context)
        if hi > lo:
            out.append(Window(item, begin, lo, hi))
            lo = hi
        begin += stride
    return out


def model_context(model: torch.nn.Module) -> int | None:
    """The context a model was made for: the built-in GPT's ``context``, a Hugging Face
    model's ``n_positions`` / ``max_position_embeddings``."""
    config = getattr(model, "config", None)
    for name in ("context", "n_positions", "max_position_embeddings", "n_ctx"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 1:
            return value
    return None


def _device_of(model: torch.nn.Module, device: str | torch.device | None) -> torch.device:
    if device is not None:
        device = torch.device(device)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise EvalError("--device cuda, but torch sees no CUDA device here; use --device "
                            "cpu.")
        model.to(device)
        return device
    first = next(model.parameters(), None)
    return first.device if first is not None else torch.device("cpu")


def score_items(model: torch.nn.Module, items: Sequence[Item], *, context: int, stride: int,
                batch_size: int = 8, pad_id: int = 0, device: str | torch.device | None = None,
                vocab_size: int | None = None) -> list[tuple[int, float]]:
    """(tokens scored, nats) of each item, in order."""
    if batch_size < 1:
        raise EvalError(f"the batch size must be at least 1 (got {batch_size})")
    dev = _device_of(model, device)
    sequences = [item.context + item.scored for item in items]
    windows = [w for i, item in enumerate(items)
               for w in windows_of(len(item.context), len(sequences[i]), context, stride, i)]
    # Longest first: a batch pads little. Sorting is stable, so the order is fixed.
    windows.sort(key=lambda w: w.hi - w.begin, reverse=True)
    tokens = [0] * len(items)
    nats = [0.0] * len(items)
    was_training = model.training
    model.eval()
    autocast = torch.autocast("cuda", dtype=torch.float16) if dev.type == "cuda" else None
    try:
        with torch.no_grad():
            for start in range(0, len(windows), batch_size):
                batch = windows[start:start + batch_size]
                width = max(w.hi - w.begin for w in batch)
                ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
                for row, w in enumerate(batch):
                    ids[row, :w.hi - w.begin] = torch.tensor(sequences[w.item][w.begin:w.hi])
                ids = ids.to(dev)
                if autocast is not None:
                    with autocast:
                        logits = model(ids).logits
                else:
                    logits = model(ids).logits
                if vocab_size is not None and logits.shape[-1] < vocab_size:
                    raise EvalError(
                        f"the model gives {logits.shape[-1]:,} logits per token, fewer than "
                        f"the store's tokenizer has ids ({vocab_size:,}): it was not made for "
                        f"this tokenizer.")
                for row, w in enumerate(batch):
                    rows = logits[row, w.lo - 1 - w.begin:w.hi - 1 - w.begin].double()
                    target = ids[row, w.lo - w.begin:w.hi - w.begin]
                    loss = torch.nn.functional.cross_entropy(rows, target, reduction="sum")
                    tokens[w.item] += w.hi - w.lo
                    nats[w.item] += float(loss)
    finally:
        model.train(was_training)
    return list(zip(tokens, nats))


@dataclass
class HeldOut:
    """A cut's held-out texts, read from git once, and their scored items, made once per
    (tokenizer, context, limits)."""

    texts: dict[str, list[_Text]]
    skips: dict[str, dict[str, int]]
    _items: dict[tuple, list[Item]] = field(default_factory=dict)

    def items(self, part: str, tokenizer, context: int, limit_bytes: int | None,
              max_files: int | None) -> list[Item]:
        key = (part, getattr(tokenizer, "id", id(tokenizer)), context, limit_bytes, max_files)
        if key not in self._items:
            chosen = select(self.texts[part], limit_bytes, max_files)
            self._items[key] = [make_item(t, tokenizer, context) for t in chosen]
        return self._items[key]


def held_out(repo: pygit2.Repository, cut: Cut, *, max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
             store_dir: str | Path | None = None) -> HeldOut:
    """What ``evaluate`` scores for ``cut``, read once (see ``HeldOut``)."""
    own = own_paths(repo, Path(store_dir)) if store_dir is not None else ()
    texts, skips = _held_out_texts(repo, cut, max_file_bytes, own)
    return HeldOut(texts, skips)


def evaluate(model: torch.nn.Module, tokenizer, repo: pygit2.Repository | str | Path | None,
             cut: Cut, *, context: int | None = None, stride: int | None = None,
             batch_size: int = 8, device: str | torch.device | None = None,
             limit_bytes: int | None = None, max_files: int | None = None,
             max_file_bytes: int = DEFAULT_MAX_FILE_BYTES, parts: Iterable[str] = PARTS,
             store_dir: str | Path | None = None, held: HeldOut | None = None) -> EvalReport:
    """Score the held-out text of ``cut`` (see the module's text). ``context`` defaults to
    the model's, ``stride`` to half of it; ``store_dir`` only keeps the store's own files
    (a store inside the worktree) out. ``held`` (from ``held_out``) reuses texts read, and
    items tokenized, for an earlier model: an ablation scores many on the same split."""
    git = repo if isinstance(repo, pygit2.Repository) else open_repository(repo)
    parts = tuple(parts)
    unknown = [p for p in parts if p not in PARTS]
    if unknown:
        raise EvalError(f"unknown part(s) {', '.join(unknown)}: the parts are "
                        f"{', '.join(PARTS)}")
    context = context or model_context(model)
    if context is None:
        raise EvalError("the model does not say its context length: pass context=N.")
    stride = stride or max(1, context // 2)
    for name, value in (("limit_bytes", limit_bytes), ("max_files", max_files)):
        if value is not None and (isinstance(value, bool) or value < 1):
            raise EvalError(f"{name} must be a positive number (got {value!r})")
    if held is None:
        held = held_out(git, cut, max_file_bytes=max_file_bytes, store_dir=store_dir)
    results: dict[str, PartResult] = {}
    notes: list[str] = []
    for part in parts:
        texts, skips = held.texts[part], held.skips[part]
        items = held.items(part, tokenizer, context, limit_bytes, max_files)
        scores = score_items(model, items, context=context, stride=stride,
                             batch_size=batch_size, pad_id=tokenizer.pad_id, device=device,
                             vocab_size=tokenizer.vocab_size)
        result = PartResult(skipped=dict(sorted(skips.items())), selected_from=len(texts))
        for item, (n_tokens, n_nats) in zip(items, scores):
            for group in (result.total,
                          result.by_language.setdefault(item.language, Tally()),
                          result.by_class.setdefault(item.cls, Tally())):
                group.add(n_tokens, item.nbytes, n_nats)
            result.lossy += not item.lossless
        results[part] = result
        if not items and part in SPAN_PARTS and not texts:
            notes.append(f"{part}: no infill spans: no held-out commit adds lines (not only "
                         f"blank ones, at most {MAX_MIDDLE_BYTES:,} bytes in a hunk) to a text "
                         f"file that existed before it.")
        elif not items:
            notes.append(f"{part}: nothing to score"
                         + (" under the limits" if texts else "") + ".")
        if result.lossy:
            notes.append(f"{part}: the tokenizer does not give {result.lossy} text(s) back "
                         f"exactly; they are scored as they decode.")
    infill, lr = results.get("infill"), results.get("lr_middle")
    if infill is not None and lr is not None and infill.total.bytes and lr.total.bytes:
        notes.append(f"infill: {infill.total.bits_per_byte:.4f} bits/byte on "
                     f"{infill.total.items:,} middle(s) given prefix and suffix; "
                     f"{lr.total.bits_per_byte:.4f} left to right after the same prefix "
                     f"(lr_middle): the suffix is worth "
                     f"{lr.total.bits_per_byte - infill.total.bits_per_byte:+.4f}.")
    settings = {"context": context, "stride": stride, "batch_size": batch_size,
                "limit_bytes": limit_bytes, "max_files": max_files,
                "max_file_bytes": max_file_bytes, "tokenizer_id": getattr(tokenizer, "id", None),
                "vocab_size": tokenizer.vocab_size}
    return EvalReport(cut, results, settings, notes)


def evaluate_checkpoint(model: torch.nn.Module, info: dict[str, Any],
                        repo: pygit2.Repository | str | Path | None, *,
                        holdout: int | None = None, since: str | None = None,
                        tip: str | None = None, store: str | Path | None = None,
                        **options: Any) -> EvalReport:
    """What ``repofeed eval`` runs on a loaded checkpoint (``info`` from ``load_model``).

    The split is ``holdout`` or ``since`` if given, else the checkpoint's: ``info["split"]``
    (a ``Cut.to_dict()``), or ``info["cut"]`` with ``info["holdout"]`` (recounted from
    ``info["tip"]`` or ``tip``), or ``info["cut"]`` alone (everything the tip reaches and the
    cut does not). A checkpoint trained up to another cut is refused: its training data would
    hold held-out commits, or the split would not be the one it was trained for. The
    tokenizer is the store's (``store`` or ``info["store"]``), checked against the
    checkpoint's ``tokenizer_id``. ``options`` go to ``evaluate``.
    """
    from repofeed.store.reader import Store
    from repofeed.store.schema import K_PIN

    git = repo if isinstance(repo, pygit2.Repository) else open_repository(repo)
    trained_cut = info.get("cut")
    notes: list[str] = []
    if holdout is not None or since is not None:
        cut = find_cut(git, holdout=holdout, since=since, tip=tip or info.get("tip"))
    elif isinstance(info.get("split"), dict):
        cut = Cut.from_dict(info["split"])
    elif trained_cut and info.get("holdout"):
        cut = find_cut(git, holdout=int(info["holdout"]), tip=tip or info.get("tip"))
    elif trained_cut:
        cut = split_at(git, trained_cut, tip or info.get("tip"))
    else:
        raise SplitError("the checkpoint was not trained on a temporal split (it names no "
                         "cut): pass --holdout N or --since DATE, and evaluate a model trained "
                         "on a store made at that cut (`repofeed init --at REV --store DIR`).")
    if trained_cut is None:
        notes.append("the checkpoint does not say where its training data ends: if it was "
                     "trained on a store past the cut, the held-out commits leaked into "
                     "training.")
    elif trained_cut != cut.cut:
        raise SplitError(
            f"the checkpoint was trained up to {trained_cut[:12]}, but this split cuts at "
            f"{cut.cut[:12]}: evaluate it with the split it was trained for (the same "
            f"--holdout or --since, and the same tip).")
    store_dir = store or info.get("store")
    if store_dir is None:
        raise EvalError("no store to take the tokenizer from: the checkpoint names none; pass "
                        "the store directory.")
    with Store(Path(store_dir)) as opened:
        tokenizer = opened.tokenizer
        pin = opened.meta(K_PIN)
        options.setdefault("max_file_bytes", opened.config.max_file_bytes)  # the ingest's
    wanted = info.get("tokenizer_id")
    if wanted is not None and wanted != tokenizer.id:
        raise EvalError(f"the checkpoint's tokenizer ({wanted}) is not the store's "
                        f"({tokenizer.id}) at {store_dir}: evaluate with the store it was "
                        f"trained on.")
    if pin is not None and pin != cut.cut:
        raise SplitError(f"the store at {store_dir} is pinned at {pin[:12]}, not at the cut "
                         f"{cut.cut[:12]}: its tokenizer was trained on another tree.")
    options.setdefault("context", info.get("context"))
    report = evaluate(model, tokenizer, git, cut, store_dir=store_dir, **options)
    report.notes[:0] = notes
    return report


def report_table(report: EvalReport):
    """The report as a rich Table: each part overall, then by path class and by language."""
    from rich.table import Table

    cut = report.cut
    table = Table(title=f"held-out bits per byte: cut {cut.cut[:12]} → tip {cut.tip[:12]}, "
                        f"{len(cut.held_out)} commit(s)")
    for name, justify in (("part", "left"), ("group", "left"), ("items", "right"),
                          ("tokens", "right"), ("bytes", "right"), ("bits/byte", "right")):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]

    def row(part: str, group: str, tally: Tally, style: str | None = None) -> None:
        bpb = tally.bits_per_byte
        table.add_row(part, group, f"{tally.items:,}", f"{tally.tokens:,}", f"{tally.bytes:,}",
                      "—" if bpb is None else f"{bpb:.4f}", style=style)

    for part, result in report.parts.items():
        row(part, "all", result.total, "bold")
        for cls, tally in sorted(result.by_class.items()):
            row("", f"class {cls}", tally)
        for language, tally in sorted(result.by_language.items()):
            row("", language, tally)
    return table


def report_text(report: EvalReport) -> str:
    """The table as plain text (no colours), for logs and docs."""
    from rich.console import Console

    console = Console(width=100, record=True, color_system=None, file=_Null())
    console.print(report_table(report))
    return console.export_text()


class _Null:
    def write(self, _text: str) -> int:
        return 0

    def flush(self) -> None:
        pass
