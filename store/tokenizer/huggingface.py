"""Hugging Face tokenizers — a ``tokenizer.json``, as most current code models ship them —
read with the ``tokenizers`` library.

The store keeps the tokenizer's canonical JSON (``tokenizers.Tokenizer.to_str()``, with any
truncation or padding it was saved with switched off, since a document is encoded whole).

Hugging Face tokenizers match their added tokens in raw text, so by default a file that spells
``<|endoftext|>`` encodes to the end-of-text id. Here the tokenizer runs with
``encode_special_tokens = True``: text that spells a *special* token is tokenized as the text
it is. Added tokens that are not special are still matched in text (that is what they are
for), so they are ordinary vocabulary here. A sentinel therefore uses the tokenizer's own id
only where the tokenizer has it as a special token that text cannot produce; every other
sentinel gets a new id after the vocabulary. Documents are encoded without the BOS/EOS the
tokenizer's post-processor would add (``add_special_tokens=False``).

Hugging Face tokenizers are never spliceable: an edited text is always encoded whole.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
from tokenizers import Tokenizer as _HFTokenizer
from tokenizers import pre_tokenizers

from ..errors import TokenizerError
from .base import SENTINELS, Tokenizer

# Names end-of-sequence and padding tokens go by, tried in order where a model directory does
# not say (its tokenizer_config.json or special_tokens_map.json names them).
EOS_NAMES = ("<|endoftext|>", "</s>", "<eos>", "<|end_of_text|>", "<|eos|>")
PAD_NAMES = ("<pad>", "[PAD]", "<|pad|>", "<|padding|>")

_BYTE_CHARS = frozenset(pre_tokenizers.ByteLevel.alphabet())  # byte-level BPE: a char a byte
_METASPACE = "\u2581"


def _load(text: str) -> _HFTokenizer:
    tk = _HFTokenizer.from_str(text)
    tk.no_truncation()
    tk.no_padding()
    tk.encode_special_tokens = True  # text spelling a special token is just text
    return tk


@dataclass
class HuggingFaceTokenizer(Tokenizer):
    """A ``tokenizers`` tokenizer plus the sentinel ids repofeed needs.

    ``model`` is the canonical JSON. ``eos`` and ``pad`` name the tokens ``eos_id`` and
    ``pad_id`` give: chosen when the store is made, from the model directory's configuration
    where it names them, else the first of ``EOS_NAMES`` / ``PAD_NAMES`` the tokenizer has.
    Without an end-of-sequence token ``eos_id`` is -1 (sequences end without one, as with a
    SentencePiece model that has none); without a padding token ``pad_id`` is ``eos_id``, or 0
    — padding is always masked out, so any id serves.
    """

    kind: ClassVar[str] = "huggingface"
    spliceable: ClassVar[bool] = False
    model: bytes
    extra: dict[str, int] = field(default_factory=dict)
    eos: str | None = None
    pad: str | None = None

    def __post_init__(self) -> None:
        self.tk = _load(self.model.decode("utf-8"))
        vocab = self.tk.get_vocab(with_added_tokens=True)
        self._identify(max(vocab.values(), default=-1) + 1,
                       {vocab[name]: name for name in SENTINELS
                        if name not in self.extra and name in vocab})
        self._vocab = vocab
        self._byte_lengths: np.ndarray | None = None

    def __getstate__(self) -> dict[str, Any]:
        # tokenizers pickles a Tokenizer as its JSON, which leaves out encode_special_tokens:
        # a copy (a DataLoader worker's) is rebuilt from the fields instead
        return {"model": self.model, "extra": self.extra, "eos": self.eos, "pad": self.pad}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.__post_init__()

    @classmethod
    def for_user_json(cls, data: bytes, config: dict[str, Any] | None = None
                      ) -> HuggingFaceTokenizer:
        """Wrap a user's ``tokenizer.json``; the sentinels it cannot serve get new ids.

        ``config`` is what the model directory says of its special tokens (``eos_token``,
        ``pad_token``), if anything.
        """
        if not data.strip():
            raise TokenizerError("not a Hugging Face tokenizer.json (the file is empty)")
        try:
            text = data.decode("utf-8")
            parsed = json.loads(text)
        except UnicodeDecodeError:
            raise TokenizerError("not a Hugging Face tokenizer.json (it is not UTF-8 text)"
                                 ) from None
        except json.JSONDecodeError as exc:
            raise TokenizerError(
                f"not a Hugging Face tokenizer.json (it is not valid JSON: {exc.msg} at line "
                f"{exc.lineno}, column {exc.colno})") from None
        if not isinstance(parsed, dict) or "model" not in parsed:
            raise TokenizerError('not a Hugging Face tokenizer.json (it has no "model")')
        try:
            tk = _load(text)
        except Exception as exc:  # tokenizers raises plain Exception for what it cannot read
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise TokenizerError(f"not a Hugging Face tokenizer.json (the tokenizers library "
                                 f"cannot read it: {reason})") from None
        vocab = tk.get_vocab(with_added_tokens=True)
        if not vocab:
            raise TokenizerError("not a Hugging Face tokenizer.json (it has no tokens)")
        base = max(vocab.values()) + 1
        missing = [name for name in SENTINELS if not _serves_as_sentinel(tk, name)]
        return cls(tk.to_str().encode("utf-8"), {s: base + i for i, s in enumerate(missing)},
                   eos=_named_token(config, "eos_token", EOS_NAMES, vocab),
                   pad=_named_token(config, "pad_token", PAD_NAMES, vocab))

    def stored_info(self) -> dict[str, Any]:
        return {**super().stored_info(), "eos": self.eos, "pad": self.pad}

    @property
    def eos_id(self) -> int:
        return self._vocab.get(self.eos, -1) if self.eos else -1

    @property
    def pad_id(self) -> int:
        if self.pad and self.pad in self._vocab:
            return self._vocab[self.pad]
        return max(self.eos_id, 0)

    def piece_id(self, text: str) -> int | None:
        return self.tk.token_to_id(text)

    def base_vocabulary(self) -> dict[str, int]:
        return dict(self._vocab)

    def encode(self, text: str) -> list[int]:
        return self.tk.encode(text, add_special_tokens=False).ids

    def encode_batch(self, texts: list[str], threads: int = 2) -> list[list[int]]:
        """``encode`` of each text; the ``tokenizers`` library picks its own thread count
        (``RAYON_NUM_THREADS`` sets it, ``TOKENIZERS_PARALLELISM=false`` turns it off)."""
        return [e.ids for e in self.tk.encode_batch_fast(texts, add_special_tokens=False)]

    def _decode_run(self, ids: list[int]) -> str:
        # Special tokens are kept: an EOS appended to a sequence shows as its name, and a
        # model that produces one of them from text (a Unigram vocabulary entry) gets it back.
        return self.tk.decode(ids, skip_special_tokens=False)

    @property
    def byte_lengths(self) -> np.ndarray:
        """UTF-8 bytes each id stands for in the text it was encoded from.

        Exact for byte-level BPE (what code models use: a character of a token is a byte) and
        for byte-fallback and "▁" pieces; for other models (WordPiece's "##" continuations,
        normalizers that change the text) an estimate, which only places evolution records'
        hunks among the tokens.
        """
        if self._byte_lengths is None:
            setup = json.loads(self.model)
            byte_level = _has_type(setup.get("decoder"), "ByteLevel")
            model = setup.get("model") or {}
            byte_fallback = bool(model.get("byte_fallback"))
            prefix = ((model.get("continuing_subword_prefix") or "")
                      if model.get("type") == "WordPiece" else "")
            lengths = np.zeros(self.vocab_size, dtype=np.int64)
            for token, i in self.tk.get_vocab(with_added_tokens=False).items():
                lengths[i] = _token_bytes(token, byte_level, byte_fallback, prefix)
            for i, added in self.tk.get_added_tokens_decoder().items():
                lengths[i] = 0 if added.special else len(added.content.encode("utf-8"))
            self._byte_lengths = lengths
        return self._byte_lengths


def _serves_as_sentinel(tk: _HFTokenizer, name: str) -> bool:
    """Whether ``name`` is a special token of ``tk`` that no text encodes to.

    Only a special token qualifies (added tokens that are not special are matched in text).
    It must also be out of the model's own reach: a model whose vocabulary holds the string
    (a WordLevel or Unigram model, a BPE that merges up to it) produces it from text that
    spells it, whatever the added-token handling does; and the whole pipeline, run on the name
    in several contexts, must not produce it.
    """
    special = {t.content for t in tk.get_added_tokens_decoder().values() if t.special}
    if name not in special:
        return False
    i = tk.token_to_id(name)
    try:
        if any(t.id == i for t in tk.model.tokenize(name)):
            return False
    except Exception:  # a model that cannot tokenize the name alone: the pipeline decides
        pass
    probe = f"{name}\n x{name}y {name}{name}\t{name}."
    return i not in tk.encode(probe, add_special_tokens=False).ids


def _named_token(config: dict[str, Any] | None, key: str, names: tuple[str, ...],
                 vocab: dict[str, int]) -> str | None:
    """The token the model directory names for ``key``, else the first of ``names`` known."""
    named = (config or {}).get(key)
    if isinstance(named, dict):  # {"content": "</s>", "lstrip": false, ...}
        named = named.get("content")
    if isinstance(named, str) and named in vocab:
        return named
    return next((name for name in names if name in vocab), None)


def _has_type(component: Any, kind: str) -> bool:
    """Whether a decoder (or a Sequence of them) in tokenizer.json is of type ``kind``."""
    if not isinstance(component, dict):
        return False
    if component.get("type") == kind:
        return True
    return any(_has_type(part, kind) for part in component.get("decoders") or ())


def _token_bytes(token: str, byte_level: bool, byte_fallback: bool, prefix: str) -> int:
    if byte_level:
        return sum(1 if ch in _BYTE_CHARS else len(ch.encode("utf-8")) for ch in token)
    if byte_fallback and len(token) == 6 and token.startswith("<0x") and token.endswith(">"):
        return 1
    if prefix and token.startswith(prefix):
        token = token[len(prefix):]
    return len(token.replace(_METASPACE, " ").encode("utf-8"))
