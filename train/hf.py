"""Hugging Face causal language models: load one saved with ``save_pretrained``, for full
fine-tuning or LoRA, and check that it speaks the store's tokenizer.

Needs the optional extra ``repofeed[hf]`` (transformers, peft, safetensors). Nothing is
downloaded: models are read from a local directory only (``local_files_only=True``).

A Hugging Face causal LM's ``forward(input_ids, attention_mask=None, labels=None)`` returns
``.logits`` and ``.loss`` with the same convention as the built-in GPT (labels unshifted, the
shift inside, -100 ignored), so the training loop and the evaluation treat both alike.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from repofeed.store.errors import ModelError

log = logging.getLogger("repofeed.train")

INSTALL_HINT = "pip install 'repofeed[hf]'"


def _require(module: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ModelError(f"Hugging Face models need {module}, which is not installed: "
                         f"{INSTALL_HINT}") from exc


def load_hf_model(path: str | Path, *, lora_rank: int | None = None,
                  lora_alpha: int | None = None, lora_dropout: float = 0.0,
                  target_modules: str | list[str] = "all-linear") -> Any:
    """A causal LM from a ``save_pretrained`` directory, in fp32 (the training loop's master
    weights; autocast makes the fp16 copies on CUDA), attention through PyTorch SDPA where the
    architecture supports it.

    With ``lora_rank`` the model is wrapped by peft: LoRA adapters of that rank (alpha twice
    the rank, the usual scaling) on every linear layer but the output head ("all-linear"),
    and only the adapters train.
    """
    transformers = _require("transformers")
    torch = _require("torch")
    path = Path(path)
    if not (path / "config.json").is_file():
        raise ModelError(f"{path} holds no Hugging Face model (no config.json); give a "
                         "directory written by save_pretrained")
    try:
        config = transformers.AutoConfig.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot read the model config in {path}: {_first_line(exc)}") from exc
    if type(config) not in transformers.AutoModelForCausalLM._model_mapping:
        raise ModelError(f"{path} holds a {config.model_type!r} model, which is not a causal "
                         "language model; give a model that generates text "
                         "(AutoModelForCausalLM)")
    dtype_key = "dtype" if int(transformers.__version__.split(".")[0]) >= 5 else "torch_dtype"
    options = {"local_files_only": True, dtype_key: torch.float32}
    try:
        try:
            model = transformers.AutoModelForCausalLM.from_pretrained(
                path, attn_implementation="sdpa", **options)
        except ValueError as exc:  # an architecture without SDPA support
            if "sdpa" not in str(exc).lower():
                raise
            model = transformers.AutoModelForCausalLM.from_pretrained(path, **options)
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot load the model in {path}: {_first_line(exc)}") from exc
    if lora_rank:
        model = apply_lora(model, lora_rank, alpha=lora_alpha, dropout=lora_dropout,
                           target_modules=target_modules)
    return model


def apply_lora(model: Any, rank: int, *, alpha: int | None = None, dropout: float = 0.0,
               target_modules: str | list[str] = "all-linear") -> Any:
    """Wrap ``model`` with LoRA adapters; only they are trainable afterwards."""
    peft = _require("peft")
    if rank < 1:
        raise ModelError(f"the LoRA rank must be at least 1, not {rank}")
    config = peft.LoraConfig(r=rank, lora_alpha=alpha or 2 * rank, lora_dropout=dropout,
                             target_modules=target_modules, task_type="CAUSAL_LM")
    return peft.get_peft_model(model, config)


def lora_linear_dims(model: Any) -> list[tuple[int, int]]:
    """(in, out) of every linear layer LoRA's "all-linear" adapts: nn.Linear and GPT-2's
    Conv1D, all but the output head. LoRA rank r adds r·(in + out) parameters to each."""
    torch = _require("torch")
    pytorch_utils = _require("transformers.pytorch_utils")
    head = model.get_output_embeddings()
    dims = []
    for name, module in model.named_modules():
        if module is head or "lora_" in name:
            continue
        if isinstance(module, torch.nn.Linear):
            dims.append((module.in_features, module.out_features))
        elif isinstance(module, pytorch_utils.Conv1D):
            dims.append((module.weight.shape[0], module.nf))
    return dims


def check_vocabulary(model: Any, model_path: str | Path, store_tokenizer: Any) -> int | None:
    """Refuse a model that does not speak the store's tokenizer; resize its embeddings when the
    store only adds sentinel ids after the model's vocabulary.

    The store's base vocabulary must fit the model's embedding rows, and when the model's
    directory holds a tokenizer it must be the store's. Returns the new number of embedding
    rows after a resize, else None. Call it before LoRA wraps the model: under LoRA the new
    rows keep their initial values (the mean of the others).
    """
    model_path = Path(model_path)
    reason = tokenizer_matches(model_path, store_tokenizer)
    if reason:
        raise ModelError(reason)
    rows = model.get_input_embeddings().weight.shape[0]
    base, total = store_tokenizer.base_size, store_tokenizer.vocab_size
    if total <= rows:
        return None
    if base > rows:
        raise ModelError(
            f"the store's tokenizer has {base} tokens but the model in {model_path} has "
            f"{rows} embedding rows: the store was made with another tokenizer; make a store "
            f"for this model with `repofeed init --tokenizer {model_path}`")
    model.resize_token_embeddings(total)
    log.info("resized the model's token embeddings from %d to %d rows for the store's %d "
             "sentinel ids beyond the tokenizer's vocabulary", rows, total, total - base)
    return total


def tokenizer_matches(model_path: str | Path, store_tokenizer: Any) -> str | None:
    """Why the tokenizer saved with the model is not the store's, or None when it is (or when
    the model directory holds no tokenizer: then only the sizes can be checked).

    The vocabularies are compared piece by piece over the store's base vocabulary (its extra
    sentinel ids come after it and are the store's own).
    """
    model_path = Path(model_path)
    model_pieces = _model_pieces(model_path)
    if model_pieces is None:
        return None
    store_pieces = _store_pieces(store_tokenizer)
    advice = f"make a store for this model with `repofeed init --tokenizer {model_path}`"
    if store_pieces is None:
        return (f"cannot read the store's tokenizer vocabulary to compare it with the model's "
                f"in {model_path}; {advice}")
    if len(model_pieces) != len(store_pieces):
        return (f"the model's tokenizer in {model_path} has {len(model_pieces)} tokens, the "
                f"store's {len(store_pieces)}: they are different tokenizers; {advice}")
    for i, (ours, theirs) in enumerate(zip(store_pieces, model_pieces, strict=True)):
        if ours != theirs:
            return (f"the model's tokenizer in {model_path} differs from the store's: token "
                    f"{i} is {theirs!r} in the model's, {ours!r} in the store's; {advice}")
    return None


def _model_pieces(model_path: Path) -> list[str] | None:
    if (model_path / "tokenizer.json").is_file():
        from tokenizers import Tokenizer

        tok = Tokenizer.from_file(str(model_path / "tokenizer.json"))
        return [tok.id_to_token(i) for i in range(tok.get_vocab_size(with_added_tokens=True))]
    if (model_path / "tokenizer.model").is_file():
        import sentencepiece as spm

        sp = spm.SentencePieceProcessor(model_file=str(model_path / "tokenizer.model"))
        return [sp.id_to_piece(i) for i in range(sp.get_piece_size())]
    return None


def _store_pieces(store_tokenizer: Any) -> list[str] | None:
    sp = getattr(store_tokenizer, "sp", None)
    if sp is not None:
        return [sp.id_to_piece(i) for i in range(store_tokenizer.base_size)]
    from tokenizers import Tokenizer

    for value in vars(store_tokenizer).values():
        if isinstance(value, Tokenizer):
            return [value.id_to_token(i) for i in range(store_tokenizer.base_size)]
    return None


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
