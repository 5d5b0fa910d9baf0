"""``repofeed train --model DIR``: a Hugging Face causal LM made on the spot (a tiny GPT-2 with
a byte-level BPE trained on the sample code, saved with ``save_pretrained``), fine-tuned in
full or with LoRA on a store made with its tokenizer; a model whose tokenizer is not the
store's is refused."""

from __future__ import annotations

import pytest
import torch
from tokenizers import Tokenizer as HFTokenizer
from tokenizers import decoders, models, pre_tokenizers, trainers

from helpers import run_cli, sample_files
from repofeed.daemon.ingest import backfill
from repofeed.daemon.init import init_store
from repofeed.store.errors import TrainError
from repofeed.train import checkpoint
from repofeed.train.loop import Trainer, TrainOptions

transformers = pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def hf_model(tmp_path_factory):
    """A model directory: tokenizer files and a randomly initialised 2-layer GPT-2."""
    tk = HFTokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    tk.train_from_iterator(sample_files().values(), trainers.BpeTrainer(
        vocab_size=600, special_tokens=["<|endoftext|>"], show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    root = tmp_path_factory.mktemp("model")
    transformers.PreTrainedTokenizerFast(tokenizer_object=tk, eos_token="<|endoftext|>"
                                         ).save_pretrained(root)
    torch.manual_seed(0)
    config = transformers.GPT2Config(vocab_size=tk.get_vocab_size(), n_positions=128,
                                     n_embd=32, n_layer=2, n_head=2)
    transformers.GPT2LMHeadModel(config).save_pretrained(root)
    return root


@pytest.fixture
def hf_store(sample_repo, hf_model):
    init_store(sample_repo.path, tokenizer=hf_model, max_tokens=64, overlap=32)
    backfill(sample_repo.path)
    return sample_repo


def _options(repo, out, model, **kw):
    return TrainOptions(store=str(repo.path), out=str(out), model=str(model), device="cpu",
                        batch_size=2, max_steps=3, lr=1e-3, **kw)


def test_full_fine_tuning_of_a_saved_model_trains_and_reloads(hf_store, hf_model, tmp_path):
    result = Trainer(_options(hf_store, tmp_path / "full", hf_model)).run()
    assert result.steps == 3 and result.last_loss is not None
    model, info = checkpoint.load_model(tmp_path / "full")
    assert info["model"] == {"kind": "hf", "path": str(hf_model.resolve()), "lora": None,
                             "checkpointing": False, "new_ids_from": 600}
    # the store gave the sentinels the tokenizer lacks ids after its vocabulary: the
    # embeddings were resized to the store's vocabulary
    assert model.get_input_embeddings().weight.shape[0] == info["vocab_size"]
    base = transformers.GPT2LMHeadModel.from_pretrained(hf_model)
    changed = [n for n, p in base.named_parameters()
               if n in dict(model.named_parameters())
               and p.shape == dict(model.named_parameters())[n].shape
               and not torch.equal(p, dict(model.named_parameters())[n])]
    assert changed                                          # every weight could train


def test_lora_trains_only_its_adapters(hf_store, hf_model, tmp_path):
    result = Trainer(_options(hf_store, tmp_path / "lora", hf_model, lora=4)).run()
    assert result.steps == 3
    state = checkpoint.read_state(tmp_path / "lora")["model"]
    # the checkpoint holds the adapters, and the embedding rows of the sentinels the store added
    assert state and all("lora_" in key or "trainable_tokens" in key for key in state)
    assert any("lora_" in key for key in state)
    model, info = checkpoint.load_model(tmp_path / "lora")
    assert info["trainable_parameters"] < info["parameters"] / 5
    base = transformers.GPT2LMHeadModel.from_pretrained(hf_model)
    base_params = dict(base.named_parameters())
    for name, param in model.named_parameters():
        if "lora_" in name or "trainable_tokens" in name:
            continue
        plain = name.replace("base_model.model.", "").replace(".base_layer", "")
        if plain in base_params and base_params[plain].shape == param.shape:
            assert torch.equal(base_params[plain], param), name   # frozen
    assert any(p.abs().sum() > 0 for n, p in model.named_parameters() if "lora_B" in n)


def test_a_model_whose_tokenizer_is_not_the_stores_is_refused(sample_repo, hf_model, tmp_path):
    init_store(sample_repo.path, vocab_size=600, max_tokens=64, overlap=32)   # SentencePiece
    backfill(sample_repo.path)
    with pytest.raises(TrainError, match="--tokenizer"):
        Trainer(_options(sample_repo, tmp_path / "run", hf_model)).run()
    done = run_cli("train", str(sample_repo.path), "--model", str(hf_model), "--out",
                   str(tmp_path / "cli"), "--device", "cpu", "--steps", "1", check=False)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "repofeed init --tokenizer" in done.stderr
