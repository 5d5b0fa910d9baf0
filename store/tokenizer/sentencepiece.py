"""SentencePiece tokenizers for code: trained on the repository, or brought by the user.

With its defaults SentencePiece destroys newlines and indentation; the options in
``CODE_TRAINER_OPTIONS`` keep every byte so that ``decode(encode(text)) == text``.

SentencePiece uses U+2581 ("▁") as its whitespace marker, so a literal U+2581 in the text would
decode as a space. ``SentencePieceTokenizer.encode`` spells that character with its three
byte-fallback pieces instead, which decode to the character itself.

Sentinels: a trained model has them as control symbols (SentencePiece matches user-defined
symbols in text, never control symbols), and a user's model that lacks them, or has one as a
piece text can encode to, gets new ids after its vocabulary.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import sentencepiece as spm

from ..errors import TokenizerError
from ..lines import hunk_span, line_starts
from .base import SENTINELS, Tokenizer

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
    control_symbols=list(SENTINELS),  # never produced from text, unlike user_defined_symbols
    # The whitespace marker is a piece even when the corpus has no space (a tip of only
    # "x=1"): without it a space falls back to the marker's UTF-8 bytes, which decode to "▁".
    required_chars="\u2581",
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
class SentencePieceTokenizer(Tokenizer):
    """A SentencePiece model plus the sentinel ids repofeed needs.

    Sentinels the model lacks, or has only as pieces that text encodes to, get ids after its
    vocabulary (``extra``); text never encodes to them, and a model trained on such data needs
    its embeddings resized to ``vocab_size``. The others are the model's control symbols.
    """

    kind: ClassVar[str] = "sentencepiece"
    model: bytes
    extra: dict[str, int] = field(default_factory=dict)
    # True for models trained by repofeed (identity normalization, no dummy prefix, pieces
    # split at spaces): then an edited text can be re-encoded around its change only.
    spliceable: bool = False

    def __post_init__(self) -> None:
        self.sp = spm.SentencePieceProcessor(model_proto=self.model)
        # SentencePiece decodes a control id to "", so sentinels are named here to decode as text
        self._identify(self.sp.get_piece_size(),
                       {self.sp.piece_to_id(name): name for name in SENTINELS
                        if name not in self.extra and _is_control(self.sp, name)})
        self._byte_lengths: np.ndarray | None = None
        marker = [self.sp.piece_to_id(f"<0x{b:02X}>") for b in _MARKER.encode()]
        self._marker_ids = marker if all(self.sp.is_byte(i) for i in marker) else None

    @classmethod
    def for_user_model(cls, model: bytes) -> tuple[SentencePieceTokenizer, list[str]]:
        """Wrap a user's model; returns it and the sentinels given new ids.

        Only a control symbol of the model serves as a sentinel: a user-defined symbol (or any
        other piece) is matched in text, so a file spelling it would forge the structural
        token. Such a sentinel gets a new id too; the model's piece stays ordinary text.
        """
        if not model:  # SentencePiece would take it as a model without pieces
            raise TokenizerError("not a SentencePiece model (the file is empty)")
        try:
            sp = spm.SentencePieceProcessor(model_proto=model)
        except RuntimeError as exc:
            raise TokenizerError("not a SentencePiece model (it cannot be parsed)") from exc
        size = sp.get_piece_size()
        if size == 0:
            raise TokenizerError("not a SentencePiece model (it has no pieces)")
        missing = [s for s in SENTINELS if not _is_control(sp, s)]
        return cls(model, {s: size + i for i, s in enumerate(missing)}), missing

    @property
    def eos_id(self) -> int:
        return self.sp.eos_id()

    @property
    def pad_id(self) -> int:
        for candidate in (self.sp.pad_id(), self.sp.eos_id(), self.sp.unk_id()):
            if candidate >= 0:
                return candidate
        return 0

    def piece_id(self, text: str) -> int | None:
        i = self.sp.piece_to_id(text)
        return None if i == self.sp.unk_id() and text != self.sp.id_to_piece(i) else i

    def base_vocabulary(self) -> dict[str, int]:
        return {piece: i for i, piece in
                enumerate(self.sp.id_to_piece(list(range(self.base_size))))}

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

    def _decode_run(self, ids: list[int]) -> str:
        return self.sp.decode(ids)

    def plan_edit(self, before: str, before_ids: np.ndarray, after: str,
                  hunks: Sequence[Sequence[int]]) -> list[tuple[int, int] | str] | None:
        """How to get ``encode(after)`` from the tokens of ``before`` and git's line hunks.

        With a repofeed-trained model no piece holds a space except at its start, so every
        space that follows a non-space is a token boundary, and the tokens on either side of
        one never depend on the other side. Each hunk is widened to such boundaries inside the
        unchanged lines around it; between hunks the tokens of ``before`` are kept. The plan
        lists ``(start, stop)`` slices of ``before_ids`` and texts still to encode, in order;
        None means "encode the whole text" (a model that does not qualify, a change covering
        most of the file, or boundaries that do not line up).
        """
        if not self.spliceable or not hunks or _MARKER in after or _MARKER in before:
            return None
        a, b = after.encode("utf-8"), before.encode("utf-8")
        a_arr = np.frombuffer(a, dtype=np.uint8)
        cuts = np.flatnonzero((a_arr[1:] == 0x20) & (a_arr[:-1] != 0x20)) + 1
        a_lines, b_lines = line_starts(a_arr), line_starts(np.frombuffer(b, dtype=np.uint8))
        ends = np.cumsum(self.byte_lengths[before_ids])
        plan: list[tuple[int, int] | str] = []
        region_start = 0   # where, in ``after``, the text still to encode begins
        new_bytes = 0
        lo_a = lo_b = 0    # start of the unchanged stretch being walked, in after and before
        for hunk in [*hunks, None]:
            if hunk is None:                  # the stretch after the last hunk
                hi_a = len(a)
            else:
                old_start, old_lines, new_start, new_lines = hunk
                hi_a = hunk_span(a_lines, new_start, new_lines)[0]
            # after[lo_a:hi_a] == before[lo_b:lo_b + hi_a - lo_a]: keep the tokens between the
            # first and the last boundary inside it (the text's start and end are boundaries).
            first = 0 if lo_a == 0 else _first_cut(cuts, lo_a + 1, hi_a)
            last = len(a) if hunk is None else _last_cut(cuts, lo_a + 1, hi_a)
            if first is not None and last is not None and first <= last:
                if first > region_start:
                    plan.append(a[region_start:first].decode("utf-8"))
                    new_bytes += first - region_start
                shift = lo_b - lo_a
                i, k = _token_at(ends, first + shift), _token_at(ends, last + shift)
                if i is None or k is None:
                    return None
                if k > i:
                    plan.append((i, k))
                region_start = last
            if hunk is not None:
                lo_a = hunk_span(a_lines, new_start, new_lines)[1]
                lo_b = hunk_span(b_lines, old_start, old_lines)[1]
        if region_start < len(a):
            plan.append(a[region_start:].decode("utf-8"))
            new_bytes += len(a) - region_start
        if new_bytes > len(a) // 2:
            return None                 # most of the file changed: splicing saves little
        return plan

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


def _is_control(sp: spm.SentencePieceProcessor, piece: str) -> bool:
    i = sp.piece_to_id(piece)
    return i != sp.unk_id() and sp.is_control(i)


def _first_cut(cuts: np.ndarray, lo: int, hi: int) -> int | None:
    """The first boundary in [lo, hi), if any."""
    i = int(np.searchsorted(cuts, lo, side="left"))
    return int(cuts[i]) if i < len(cuts) and cuts[i] < hi else None


def _last_cut(cuts: np.ndarray, lo: int, hi: int) -> int | None:
    """The last boundary in [lo, hi), if any."""
    i = int(np.searchsorted(cuts, hi, side="left")) - 1
    return int(cuts[i]) if i >= 0 and cuts[i] >= lo else None


def _token_at(ends: np.ndarray, offset: int) -> int | None:
    """The number of tokens that cover exactly the first ``offset`` bytes, if any do."""
    if offset == 0:
        return 0
    i = int(np.searchsorted(ends, offset, side="right"))
    return i if i > 0 and ends[i - 1] == offset else None
