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
from collections.abc import Sequence
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
                  target_modules: str | list[str] = "all-linear",
                  store_tokenizer: Any = None, vocab_size: int | None = None,
                  new_ids_from: int | None = None, checkpointing: bool = False) -> Any:
    """A causal LM from a ``save_pretrained`` directory, in fp32 (the training loop's master
    weights; autocast makes the fp16 copies on CUDA), attention through PyTorch SDPA where the
    architecture supports it.

    With ``store_tokenizer`` the model is checked against it first (:func:`check_vocabulary`),
    its embeddings resized for the store's extra sentinel ids; reloading a trained model
    without it, ``vocab_size`` and ``new_ids_from`` (the tokenizer's size) give the same
    shapes. ``checkpointing`` turns on activation checkpointing. With ``lora_rank`` the model is
    then wrapped by peft: LoRA adapters of that rank (alpha twice the rank, the usual scaling)
    on every linear layer but the output head ("all-linear"), and only the adapters train,
    plus the embedding rows of those new sentinel ids, which would otherwise keep their
    initial values: samples close to the mean embedding, barely distinguishable.
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
    causal = _require("transformers.models.auto.modeling_auto").MODEL_FOR_CAUSAL_LM_MAPPING_NAMES
    if config.model_type not in causal:
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
    rows = model.get_input_embeddings().weight.shape[0]
    # rows a resize adds are drawn at random: from a fixed seed, so that a LoRA checkpoint
    # (adapters only) loads onto the same rows it trained with, whatever the run's seed
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        if store_tokenizer is not None:
            check_vocabulary(model, path, store_tokenizer)   # refuses, or resizes
        elif vocab_size is not None and rows < vocab_size:
            model.resize_token_embeddings(vocab_size)        # a checkpoint's model, again
    if checkpointing:
        model.gradient_checkpointing_enable(
            gradient_checkpointing_kwargs={"use_reentrant": False})
    if lora_rank:
        # the ids the store gave sentinels train too, from the end of the tokenizer's
        # vocabulary (a model's spare rows included: many pad their vocabulary)
        total = store_tokenizer.vocab_size if store_tokenizer is not None else (
            vocab_size or rows)
        first = store_tokenizer.base_size if store_tokenizer is not None else (
            rows if new_ids_from is None else new_ids_from)
        model = apply_lora(model, lora_rank, alpha=lora_alpha, dropout=lora_dropout,
                           target_modules=target_modules,
                           trainable_tokens=range(first, max(first, total)))
    return model


def apply_lora(model: Any, rank: int, *, alpha: int | None = None, dropout: float = 0.0,
               target_modules: str | list[str] = "all-linear",
               trainable_tokens: Sequence[int] = ()) -> Any:
    """Wrap ``model`` with LoRA adapters; only they are trainable afterwards, and the
    embedding rows of ``trainable_tokens`` (peft's trainable tokens)."""
    peft = _require("peft")
    if rank < 1:
        raise ModelError(f"the LoRA rank must be at least 1, not {rank}")
    tokens = None
    if trainable_tokens:
        embedding = model.get_input_embeddings()
        name = next(n for n, m in model.named_modules() if m is embedding)
        tokens = {name.rsplit(".", 1)[-1]: list(trainable_tokens)}
    config = peft.LoraConfig(r=rank, lora_alpha=alpha or 2 * rank, lora_dropout=dropout,
                             target_modules=target_modules, task_type="CAUSAL_LM",
                             trainable_token_indices=tokens)
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


def check_vocabulary(model: Any, model_path: str | Path, store_tokenizer: Any) -> range:
    """Refuse a model that does not speak the store's tokenizer; resize its embeddings when the
    store only adds sentinel ids after the model's vocabulary.

    The store's base vocabulary must fit the model's embedding rows, and when the model's
    directory holds a tokenizer it must be the store's. Returns the ids of the rows added
    (empty when none were). Call it before LoRA wraps the model and make those rows trainable
    (:func:`load_hf_model` does both): they start as samples close to the mean embedding.
    """
    model_path = Path(model_path)
    reason = tokenizer_matches(model_path, store_tokenizer)
    if reason:
        raise ModelError(reason)
    rows = model.get_input_embeddings().weight.shape[0]
    base, total = store_tokenizer.base_size, store_tokenizer.vocab_size
    if total <= rows:
        return range(0)
    if base > rows:
        raise ModelError(
            f"the store's tokenizer has {base} tokens but the model in {model_path} has "
            f"{rows} embedding rows: the store was made with another tokenizer; make a store "
            f"for this model with `repofeed init --tokenizer {model_path}`")
    model.resize_token_embeddings(total)
    log.info("resized the model's token embeddings from %d to %d rows for the store's %d "
             "sentinel ids beyond the tokenizer's vocabulary", rows, total, total - base)
    return range(rows, total)


def tokenizer_matches(model_path: str | Path, store_tokenizer: Any) -> str | None:
    """Why the tokenizer saved with the model is not the store's, or None when it is (or when
    the model directory holds no tokenizer: then only the sizes can be checked).

    The model directory is read as the store's kind where it holds both a ``tokenizer.json``
    and a ``tokenizer.model``; only the tokenizers' own vocabularies are compared (the
    sentinel ids a store adds after them are its own): ``same_vocabulary``.
    """
    from repofeed.store.errors import TokenizerError
    from repofeed.store.tokenizer import load_tokenizer, same_vocabulary

    model_path = Path(model_path)
    if not any((model_path / name).is_file() for name in ("tokenizer.json", "tokenizer.model")):
        return None
    advice = f"make a store for this model with `repofeed init --tokenizer {model_path}`"
    try:
        theirs = load_tokenizer(model_path, prefer=store_tokenizer.kind)
    except TokenizerError as exc:
        return f"cannot read the tokenizer saved with the model: {exc}"
    if same_vocabulary(store_tokenizer, theirs):
        return None
    where = f"the model's tokenizer in {model_path}"
    if theirs.kind != store_tokenizer.kind:
        return (f"{where} is a {theirs.kind} tokenizer, the store's a {store_tokenizer.kind} "
                f"one; {advice}")
    ours_vocab, their_vocab = store_tokenizer.base_vocabulary(), theirs.base_vocabulary()
    if len(ours_vocab) != len(their_vocab):
        return (f"{where} has {len(their_vocab)} tokens, the store's {len(ours_vocab)}: they "
                f"are different tokenizers; {advice}")
    ours_by_id = {i: t for t, i in ours_vocab.items()}
    theirs_by_id = {i: t for t, i in their_vocab.items()}
    first = min(i for i in ours_by_id.keys() | theirs_by_id.keys()
                if ours_by_id.get(i) != theirs_by_id.get(i))
    return (f"{where} differs from the store's: token {first} is "
            f"{theirs_by_id.get(first)!r} in the model's, {ours_by_id.get(first)!r} in the "
            f"store's; {advice}")


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
