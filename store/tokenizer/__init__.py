"""The store's tokenizer: SentencePiece (trained on the repository, or the base model's own) or
a Hugging Face ``tokenizer.json``, behind one interface (``base.Tokenizer``).

- ``load_tokenizer(path)`` reads what a user names with ``init --tokenizer`` (or ``train``
  checks a model directory with): a SentencePiece ``.model``, a ``tokenizer.json``, or a
  model directory holding one (as ``save_pretrained`` writes it; a directory with only a
  SentencePiece ``tokenizer.model`` is read as SentencePiece).
- ``stored_tokenizer(model, info)`` rebuilds the right kind from what a store holds: the model
  bytes and the info record, whose ``kind`` is absent in stores made before Hugging Face
  tokenizers were supported (those are SentencePiece).
- ``same_vocabulary(a, b)``: whether ids mean the same tokens in both.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import TokenizerError
from .base import ROUNDTRIP_PROBE, SENTINELS, Tokenizer, check_roundtrip
from .huggingface import HuggingFaceTokenizer
from .sentencepiece import (
    CODE_TRAINER_OPTIONS,
    SentencePieceTokenizer,
    TrainResult,
    train_tokenizer,
)

__all__ = [
    "CODE_TRAINER_OPTIONS", "HuggingFaceTokenizer", "ROUNDTRIP_PROBE", "SENTINELS",
    "SentencePieceTokenizer", "Tokenizer", "TrainResult", "check_roundtrip", "kind_of",
    "load_tokenizer", "same_vocabulary", "stored_tokenizer", "train_tokenizer",
]

_WHAT_TO_PASS = ("pass the base model's SentencePiece `.model` file, its Hugging Face "
                 "`tokenizer.json`, or the model directory holding it")


def load_tokenizer(path: str | Path, prefer: str | None = None) -> Tokenizer:
    """The tokenizer at ``path``: a SentencePiece model, a ``tokenizer.json``, or a directory.

    Sentinels it cannot serve get ids after its vocabulary (``Tokenizer.extra``). A directory's
    ``tokenizer.json`` is read before its ``tokenizer.model``; ``prefer="sentencepiece"`` reads
    the ``tokenizer.model`` of a directory that holds both (as Llama-style models ship), which
    is how to compare a model directory with a store made from that file.
    """
    path = Path(path)
    if path.is_dir():
        if prefer == SentencePieceTokenizer.kind and (path / "tokenizer.model").is_file():
            return _load_sentencepiece(path / "tokenizer.model")
        if (path / "tokenizer.json").is_file():
            return _load_json(path / "tokenizer.json")
        if (path / "tokenizer.model").is_file():
            return _load_sentencepiece(path / "tokenizer.model")
        raise TokenizerError(
            f"{path} holds no tokenizer.json (nor a SentencePiece tokenizer.model, which is "
            f"used when there is no tokenizer.json): {_WHAT_TO_PASS}.")
    if not path.is_file():
        raise TokenizerError(f"no tokenizer model at {path}: {_WHAT_TO_PASS}.")
    with path.open("rb") as f:
        start = f.read(4096).lstrip(b"\xef\xbb\xbf \t\r\n")
    if path.suffix == ".json" or start.startswith(b"{"):
        return _load_json(path)
    return _load_sentencepiece(path)


def _load_json(path: Path) -> HuggingFaceTokenizer:
    try:
        return HuggingFaceTokenizer.for_user_json(path.read_bytes(), _model_config(path.parent))
    except TokenizerError as exc:
        raise TokenizerError(f"{path} is {exc}: {_WHAT_TO_PASS}.") from None


def _load_sentencepiece(path: Path) -> SentencePieceTokenizer:
    try:
        return SentencePieceTokenizer.for_user_model(path.read_bytes())[0]
    except TokenizerError as exc:
        raise TokenizerError(f"{path} is {exc}, nor a Hugging Face tokenizer.json: "
                             f"{_WHAT_TO_PASS}.") from None


def _model_config(directory: Path) -> dict[str, Any]:
    """What a model directory says of its special tokens (``eos_token``, ``pad_token``...).

    ``save_pretrained`` writes them to tokenizer_config.json and special_tokens_map.json; both
    are optional hints, so a file that is absent or unreadable says nothing.
    """
    config: dict[str, Any] = {}
    for name in ("special_tokens_map.json", "tokenizer_config.json"):  # the latter wins
        try:
            found = json.loads((directory / name).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(found, dict):
            config.update({k: v for k, v in found.items() if v is not None})
    return config


def kind_of(info: dict[str, Any]) -> str:
    """The kind of tokenizer a store's info record describes (``sentencepiece`` in stores made
    before there were two kinds)."""
    return info.get("kind", SentencePieceTokenizer.kind)


def stored_tokenizer(model: bytes, info: dict[str, Any]) -> Tokenizer:
    """The tokenizer a store holds: its model bytes and its info record."""
    kind = kind_of(info)
    extra = info.get("extra", {})
    if kind == SentencePieceTokenizer.kind:
        return SentencePieceTokenizer(model, extra, spliceable=info.get("source") == "trained")
    if kind == HuggingFaceTokenizer.kind:
        return HuggingFaceTokenizer(model, extra, eos=info.get("eos"), pad=info.get("pad"))
    raise TokenizerError(f"the store's tokenizer is of kind {kind!r}, which this version of "
                         f"repofeed cannot read: upgrade repofeed.")


def same_vocabulary(a: Tokenizer, b: Tokenizer) -> bool:
    """Whether ``a`` and ``b`` are of one kind and map the same tokens to the same ids.

    Only the models' own vocabularies count: the sentinels added after them may differ. To
    check a model directory against a store: ``same_vocabulary(store.tokenizer,
    load_tokenizer(directory, prefer=store.tokenizer.kind))``.
    """
    return a.kind == b.kind and a.base_vocabulary() == b.base_vocabulary()
