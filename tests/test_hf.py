"""Hugging Face causal LMs: a tiny randomly initialised GPT-2 saved on the spot, loaded for full
fine-tuning and LoRA, its loss convention, and the vocabulary checks against a store's
tokenizer."""

from __future__ import annotations

import io
import logging
import sys

import pytest
import sentencepiece as spm
import torch

from helpers import sample_files
from repofeed.store.errors import ModelError
from repofeed.store.tokenizer import HuggingFaceTokenizer, SentencePieceTokenizer
from repofeed.train.hf import check_vocabulary, load_hf_model, tokenizer_matches
from repofeed.train.model import shifted_cross_entropy
from repofeed.train.preflight import estimate_hf

pytestmark = pytest.mark.usefixtures("one_torch_thread")

transformers = pytest.importorskip("transformers")
pytest.importorskip("peft")

V = 300


def save_tiny_gpt2(path, vocab_size: int = V):
    torch.manual_seed(0)
    config = transformers.GPT2Config(n_layer=2, n_head=2, n_embd=64, vocab_size=vocab_size,
                                     n_positions=256)
    transformers.GPT2LMHeadModel(config).save_pretrained(path)
    return path


@pytest.fixture
def tiny_model(tmp_path):
    return save_tiny_gpt2(tmp_path / "gpt2")


def batch(vocab: int = V):
    ids = torch.randint(0, vocab, (2, 16), generator=torch.Generator().manual_seed(0))
    labels = ids.clone()
    labels[1, 10:] = -100
    return ids, labels


def test_full_model_trains_everything_and_its_loss_is_our_convention(tiny_model):
    model = load_hf_model(tiny_model)
    assert all(p.requires_grad for p in model.parameters())
    assert model.dtype == torch.float32
    ids, labels = batch()
    out = model(input_ids=ids, labels=labels)
    assert out.logits.shape == (2, 16, V)
    assert out.loss.item() == pytest.approx(shifted_cross_entropy(out.logits, labels).item(),
                                            rel=1e-5)


def test_lora_trains_only_the_adapters(tiny_model):
    model = load_hf_model(tiny_model, lora_rank=4)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    ids, labels = batch()
    model(input_ids=ids, labels=labels).loss.backward()
    optimizer.step()
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert changed and changed <= trainable
    assert any("lora_B" in n for n in changed)  # B starts at zero: the adapter now does something
    # the preflight's count of LoRA parameters is the model's
    est = estimate_hf(model.config, batch=2, context=16, lora_rank=4, model=model)
    assert est.trainable == sum(p.numel() for n, p in model.named_parameters() if n in trainable)
    assert est.params == sum(p.numel() for n, p in model.named_parameters() if n not in trainable)


def test_not_a_model_not_a_causal_lm_no_weights_are_clear_errors(tmp_path):
    with pytest.raises(ModelError, match="no config.json"):
        load_hf_model(tmp_path)
    vision = tmp_path / "vit"
    transformers.ViTConfig().save_pretrained(vision)
    with pytest.raises(ModelError, match="'vit' model, which is not a causal language model"):
        load_hf_model(vision)
    weightless = tmp_path / "weightless"
    transformers.GPT2Config(n_layer=1, n_embd=32, n_head=2).save_pretrained(weightless)
    with pytest.raises(ModelError, match="cannot load the model"):
        load_hf_model(weightless)


def test_missing_extra_says_how_to_install(tiny_model, monkeypatch):
    monkeypatch.setitem(sys.modules, "peft", None)  # what Python does when peft is absent
    with pytest.raises(ModelError, match=r"need peft.*pip install 'repofeed\[hf\]'"):
        load_hf_model(tiny_model, lora_rank=4)


SP_VOCAB = 512


@pytest.fixture(scope="module")
def sp_bytes() -> bytes:
    """A SentencePiece model as users bring them, without repofeed's sentinels."""
    return sp_model(SP_VOCAB)


def sp_model(vocab_size: int) -> bytes:
    out = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(list(sample_files().values())), model_writer=out,
        model_type="bpe", vocab_size=vocab_size, byte_fallback=True,
        max_sentence_length=1 << 20, minloglevel=2)
    return out.getvalue()


def test_store_sentinels_beyond_the_vocabulary_resize_the_embeddings(tmp_path, caplog,
                                                                    sp_bytes):
    store_tok, missing = SentencePieceTokenizer.for_user_model(sp_bytes)
    assert missing and store_tok.vocab_size == SP_VOCAB + len(missing)
    path = save_tiny_gpt2(tmp_path / "m", vocab_size=SP_VOCAB)
    model = load_hf_model(path)
    with caplog.at_level(logging.INFO, logger="repofeed.train"):
        added = check_vocabulary(model, path, store_tok)
    assert added == range(SP_VOCAB, store_tok.vocab_size)
    assert model.get_input_embeddings().weight.shape[0] == store_tok.vocab_size
    assert "resized" in caplog.text
    ids = torch.tensor([[store_tok.sentinel("<commit_after>"), 5, 6]])
    assert model(input_ids=ids, labels=ids).loss.isfinite()
    assert not check_vocabulary(model, path, store_tok)  # nothing more to do


def test_lora_trains_the_new_sentinel_rows_too(tmp_path, sp_bytes):
    store_tok, missing = SentencePieceTokenizer.for_user_model(sp_bytes)
    path = save_tiny_gpt2(tmp_path / "m", vocab_size=SP_VOCAB)
    model = load_hf_model(path, lora_rank=4, store_tokenizer=store_tok)
    first, second = (store_tok.sentinel(name) for name in missing[:2])
    ids = torch.tensor([[first, 5, second, 7, first, 9]])

    def embeddings():
        return model.get_input_embeddings()(torch.arange(store_tok.vocab_size)).detach()

    before = embeddings()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    model(input_ids=ids, labels=ids).loss.backward()
    optimizer.step()
    after = embeddings()
    for sentinel in (first, second):  # the new rows learn
        assert not torch.allclose(after[sentinel], before[sentinel])
    assert torch.equal(after[:SP_VOCAB], before[:SP_VOCAB])  # the model's own rows stay


def test_a_model_smaller_than_the_store_vocabulary_is_refused(tmp_path, sp_bytes):
    store_tok, _ = SentencePieceTokenizer.for_user_model(sp_bytes)
    path = save_tiny_gpt2(tmp_path / "m", vocab_size=SP_VOCAB - 20)
    with pytest.raises(ModelError) as err:
        check_vocabulary(load_hf_model(path), path, store_tok)
    message = str(err.value)
    assert f"has {SP_VOCAB} tokens" in message and f"{SP_VOCAB - 20} embedding rows" in message
    assert f"repofeed init --tokenizer {path}" in str(err.value)


def test_the_model_tokenizer_must_be_the_store_one(tmp_path, sp_bytes):
    model_bytes = sp_bytes
    store_tok, _ = SentencePieceTokenizer.for_user_model(model_bytes)
    path = save_tiny_gpt2(tmp_path / "m", vocab_size=store_tok.vocab_size)
    assert tokenizer_matches(path, store_tok) is None  # no tokenizer saved: sizes only
    (path / "tokenizer.model").write_bytes(model_bytes)
    assert tokenizer_matches(path, store_tok) is None
    assert not check_vocabulary(load_hf_model(path), path, store_tok)
    # a Hugging Face tokenizer.json: another kind than the store's
    (path / "tokenizer.model").unlink()
    bpe_tokenizer(SP_VOCAB, "a").save(str(path / "tokenizer.json"))
    reason = tokenizer_matches(path, store_tok)
    assert reason is not None and "huggingface tokenizer, the store's a sentencepiece" in reason
    assert f"repofeed init --tokenizer {path}" in reason
    with pytest.raises(ModelError, match="tokenizer"):
        check_vocabulary(load_hf_model(path), path, store_tok)


def test_a_tokenizer_json_of_the_same_kind_and_size_but_other_tokens_is_refused(tmp_path):
    ours = bpe_tokenizer(SP_VOCAB, "a")
    store_tok = HuggingFaceTokenizer.for_user_json(ours.to_str().encode())
    path = save_tiny_gpt2(tmp_path / "m", vocab_size=store_tok.vocab_size)
    ours.save(str(path / "tokenizer.json"))
    assert tokenizer_matches(path, store_tok) is None
    other = bpe_tokenizer(SP_VOCAB, "b")
    other.save(str(path / "tokenizer.json"))
    reason = tokenizer_matches(path, store_tok)
    assert reason is not None
    assert "differs from the store's: token" in reason or "tokens, the store's" in reason


def bpe_tokenizer(vocab_size: int, corpus: str):
    """A byte-level BPE trained on the spot: on the sample files ("a") or on their lines
    reversed ("b"), which gives other merges."""
    from tokenizers import Tokenizer as HFTokenizer
    from tokenizers import models, pre_tokenizers, trainers

    texts = list(sample_files().values())
    if corpus == "b":
        texts = ["\n".join(line[::-1] for line in text.splitlines()) for text in texts]
    tok = HFTokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel()
    tok.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=vocab_size,
                                                       show_progress=False))
    return tok


@pytest.mark.parametrize("kind", ["gpt2", "llama"])
def test_preflight_activations_of_hf_models_are_what_autograd_saves(tmp_path, kind):
    """GPT-2 (dropout, so SDPA's math kernel on CPU, and gelu_new) and Llama (gated MLP,
    grouped-query attention): the estimate against the bytes autograd saves."""
    from test_preflight import saved_bytes, saved_estimate

    from repofeed.train.preflight import Settings, hf_architecture

    if kind == "gpt2":
        config = transformers.GPT2Config(n_layer=3, n_head=4, n_embd=64, vocab_size=V,
                                         n_positions=256)
    else:
        config = transformers.LlamaConfig(num_hidden_layers=3, num_attention_heads=4,
                                          num_key_value_heads=2, hidden_size=64,
                                          intermediate_size=172, vocab_size=V)
    torch.manual_seed(0)
    transformers.AutoModelForCausalLM.from_config(config).save_pretrained(tmp_path / kind)
    model = load_hf_model(tmp_path / kind).train()
    arch = hf_architecture(model.config, model)
    assert arch.params == sum(p.numel() for p in model.parameters())
    from_config = hf_architecture(config)  # without the model: the same counts
    assert from_config.params == arch.params and from_config.lora_params(8) == arch.lora_params(8)
    saved = saved_bytes(model, torch.randint(0, V, (2, 128)))
    assert saved == pytest.approx(saved_estimate(arch, Settings(batch=2, context=128)), rel=0.05)
