"""SentencePiece tokenizers for code: trained on the repository, or brought by the user.

With its defaults SentencePiece destroys newlines and indentation; the options in
``CODE_TRAINER_OPTIONS`` keep every byte so that ``decode(encode(text)) == text``.

SentencePiece uses U+2581 ("▁") as its whitespace marker, so a literal U+2581 in the text would
decode as a space. ``Tokenizer.encode`` spells that character with its three byte-fallback
pieces instead, which decode to the character itself.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import sentencepiece as spm
import xxhash

from .errors import TokenizerError

SENTINELS = (
    "<fim_prefix>",
    "<fim_middle>",
    "<fim_suffix>",
    "<fim_pad>",
    "<commit_before>",
    "<commit_msg>",
    "<commit_after>",
    "<file_sep>",
    "<mask>",
)

CODE_TRAINER_OPTIONS = dict(
    model_type="bpe",
    normalization_rule_name="identity",
    remove_extra_whitespaces=False,
    allow_whitespace_only_pieces=True,
    byte_fallback=True,
    split_digits=True,
    add_dummy_prefix=False,
    max_sentence_length=1 << 22,  # the default (4,192 bytes) silently skips long inputs
    character_coverage=0.9999,
    input_sentence_size=2_000_000,
    shuffle_input_sentence=True,
    unk_id=0,
    bos_id=1,
    eos_id=2,
    pad_id=3,
    user_defined_symbols=list(SENTINELS),
    minloglevel=2,
)

_MARKER = "\u2581"  # SentencePiece's whitespace marker
_TOO_HIGH = re.compile(r"Vocabulary size too high \((\d+)\)\. Please set it to a value <= (\d+)")
_CHUNK_CHARS = 1 << 16


@dataclass
class TrainResult:
    model: bytes
    vocab_size: int
    requested: int

    @property
    def reduced(self) -> bool:
        return self.vocab_size < self.requested


def _chunks(texts: Iterable[str]) -> Iterable[str]:
    """Split files into line-aligned pieces: sampling and memory then work per piece."""
    for text in texts:
        if len(text) <= _CHUNK_CHARS:
            if text:
                yield text
            continue
        start = 0
        while start < len(text):
            end = text.find("\n", start + _CHUNK_CHARS)
            end = len(text) if end < 0 else end + 1
            yield text[start:end]
            start = end


def train_tokenizer(texts: Sequence[str], vocab_size: int) -> TrainResult:
    """Train a BPE model on ``texts``; the vocabulary is capped to what the corpus supports."""
    corpus = list(_chunks(texts))
    if not corpus:
        raise TokenizerError(
            "there is no text to train a tokenizer on: commit some text files first, or pass "
            "`--tokenizer MODEL` to use an existing SentencePiece model."
        )

    def run(size: int) -> bytes:
        out = io.BytesIO()
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(corpus), model_writer=out, vocab_size=size,
            num_threads=2, **CODE_TRAINER_OPTIONS,
        )
        return out.getvalue()

    try:
        return TrainResult(run(vocab_size), vocab_size, vocab_size)
    except RuntimeError as exc:
        match = _TOO_HIGH.search(str(exc))
        if not match:
            raise TokenizerError(f"SentencePiece could not train a tokenizer: {exc}") from exc
        supported = int(match.group(2))
    minimum = 256 + len(SENTINELS) + 4
    if supported < minimum:
        raise TokenizerError(
            f"the repository's text supports only {supported} vocabulary entries, fewer than "
            f"the {minimum} that byte fallback and the sentinels need; pass `--tokenizer MODEL`."
        )
    return TrainResult(run(supported), supported, vocab_size)


@dataclass
class Tokenizer:
    """A SentencePiece model plus the sentinel ids repofeed needs.

    Sentinels the model lacks get ids after its vocabulary (``extra``); text never encodes to
    them, and a model trained on such data needs its embeddings resized to ``vocab_size``.
    """

    model: bytes
    extra: dict[str, int] = field(default_factory=dict)
    # True for models trained by repofeed (identity normalization, no dummy prefix, pieces
    # split at spaces): then an edited text can be re-encoded around its change only.
    spliceable: bool = False

    def __post_init__(self) -> None:
        self.sp = spm.SentencePieceProcessor(model_proto=self.model)
        self.id = xxhash.xxh3_64_hexdigest(self.model + repr(sorted(self.extra.items())).encode())
        self.base_size = self.sp.get_piece_size()
        self.vocab_size = self.base_size + len(self.extra)
        self._extra_text = {i: name for name, i in self.extra.items()}
        self._byte_lengths: np.ndarray | None = None
        marker = [self.sp.piece_to_id(f"<0x{b:02X}>") for b in _MARKER.encode()]
        self._marker_ids = marker if all(self.sp.is_byte(i) for i in marker) else None

    @classmethod
    def for_user_model(cls, model: bytes) -> tuple[Tokenizer, list[str]]:
        """Wrap a user's model; returns it and the sentinels given new ids."""
        try:
            sp = spm.SentencePieceProcessor(model_proto=model)
        except RuntimeError as exc:
            raise TokenizerError(f"not a SentencePiece model: {exc}") from exc
        size = sp.get_piece_size()
        missing = [s for s in SENTINELS if sp.piece_to_id(s) == sp.unk_id()]
        return cls(model, {s: size + i for i, s in enumerate(missing)}), missing

    def sentinel(self, name: str) -> int:
        if name in self.extra:
            return self.extra[name]
        return self.sp.piece_to_id(name)

    @property
    def eos_id(self) -> int:
        return self.sp.eos_id()

    @property
    def pad_id(self) -> int:
        for candidate in (self.sp.pad_id(), self.sp.eos_id(), self.sp.unk_id()):
            if candidate >= 0:
                return candidate
        return 0

    def encode(self, text: str) -> list[int]:
        if _MARKER in text and self._marker_ids:
            return self._encode_with_marker(text)
        return self.sp.encode(text)

    def encode_batch(self, texts: list[str], threads: int = 2) -> list[list[int]]:
        out = self.sp.encode(texts, num_threads=threads)
        if self._marker_ids:
            for i, text in enumerate(texts):
                if _MARKER in text:
                    out[i] = self._encode_with_marker(text)
        return out

    def _encode_with_marker(self, text: str) -> list[int]:
        ids: list[int] = []
        for n, part in enumerate(text.split(_MARKER)):
            if n:
                ids.extend(self._marker_ids)
            ids.extend(self.sp.encode(part))
        return ids

    def decode(self, ids: Sequence[int]) -> str:
        ids = [int(i) for i in ids]
        if not self._extra_text:
            return self.sp.decode(ids)
        parts, run = [], []
        for i in ids:
            if i in self._extra_text:
                parts.append(self.sp.decode(run))
                parts.append(self._extra_text[i])
                run = []
            else:
                run.append(i)
        parts.append(self.sp.decode(run))
        return "".join(parts)

    def encode_edit(self, before: str, before_ids: np.ndarray, after: str) -> list[int]:
        """``encode(after)``, computed by re-encoding only the span that differs from ``before``.

        With a repofeed-trained model no piece holds a space except at its start, so every
        space that follows a non-space is a token boundary, and tokens on either side of one
        never depend on the other side. The changed span is widened to such boundaries inside
        the text both versions share; the tokens outside it are taken from ``before_ids``.
        Falls back to a full encode whenever that does not apply.
        """
        if not self.spliceable or _MARKER in after or _MARKER in before:
            return self.encode(after)
        prefix = _common_prefix(before, after)
        suffix = _common_suffix(before, after, min(len(before), len(after)) - prefix)
        left = _cut_before(after, prefix)
        right = _cut_after(after, len(after) - suffix)
        if right - left > len(after) // 2:
            return self.encode(after)  # most of the text changed: splicing saves little
        ends = np.cumsum(self.byte_lengths[before_ids])
        left_bytes = len(after[:left].encode("utf-8"))
        right_bytes = len(before.encode("utf-8")) - len(after[right:].encode("utf-8"))
        i, k = _token_at(ends, left_bytes), _token_at(ends, right_bytes)
        if i is None or k is None:
            return self.encode(after)
        middle = self.sp.encode(after[left:right]) if right > left else []
        return [*before_ids[:i].tolist(), *middle, *before_ids[k:].tolist()]

    @property
    def byte_lengths(self) -> np.ndarray:
        """UTF-8 bytes each id decodes to: a cumulative sum maps tokens to text offsets."""
        if self._byte_lengths is None:
            sp = self.sp
            pieces = sp.id_to_piece(list(range(self.base_size)))
            lengths = np.zeros(self.vocab_size, dtype=np.int64)
            lengths[: self.base_size] = [len(p.replace(_MARKER, " ").encode()) for p in pieces]
            for i, piece in enumerate(pieces):
                # only "<0x..>" and "<...>" pieces can be byte, control or unknown pieces
                if piece.startswith("<") and (sp.is_byte(i) or sp.is_control(i)
                                              or sp.is_unknown(i)):
                    lengths[i] = 1 if sp.is_byte(i) else 0
            self._byte_lengths = lengths
        return self._byte_lengths


def _common_prefix(a: str, b: str) -> int:
    lo, hi = 0, min(len(a), len(b))
    while lo < hi:  # binary search: slice comparisons run in C
        mid = (lo + hi + 1) // 2
        if a[:mid] == b[:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _common_suffix(a: str, b: str, limit: int) -> int:
    lo, hi = 0, limit
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[len(a) - mid:] == b[len(b) - mid:]:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _cut_before(text: str, limit: int) -> int:
    """The last token boundary strictly inside ``text[:limit]``: a space run's start."""
    p = text.rfind(" ", 0, limit)
    while p > 0 and text[p - 1] == " ":
        p -= 1
    return max(p, 0)


def _cut_after(text: str, start: int) -> int:
    """The first space run starting after ``start`` (its preceding character shared too)."""
    q = text.find(" ", start + 1)
    while q > 0 and text[q - 1] == " ":
        q = text.find(" ", q + 1)
    return len(text) if q < 0 else q


def _token_at(ends: np.ndarray, offset: int) -> int | None:
    """The number of tokens that cover exactly the first ``offset`` bytes, if any do."""
    if offset == 0:
        return 0
    i = int(np.searchsorted(ends, offset, side="right"))
    return i if i > 0 and ends[i - 1] == offset else None
