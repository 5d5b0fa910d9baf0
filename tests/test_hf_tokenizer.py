"""Hugging Face tokenizers as the store's tokenizer: a `tokenizer.json`, or a model directory as
`save_pretrained` writes it, made on the spot (a byte-level BPE trained on the sample code, the
kind code models ship). Text that spells a sentinel or one of the tokenizer's own special
tokens is stored as text; sentinels the tokenizer cannot serve get new ids; bad paths and
files are clear errors."""

from __future__ import annotations

import io
import pickle

import lmdb
import pytest
import sentencepiece as spm
from tokenizers import Tokenizer as HFTokenizer
from tokenizers import decoders, models, pre_tokenizers, processors, trainers

from helpers import run_cli, sample_files
from repofeed.daemon.ingest import backfill
from repofeed.daemon.init import init_store
from repofeed.store import SENTINELS, EvolutionDataset, WindowDataset, open_store
from repofeed.store.schema import DB_META, K_TOKENIZER_INFO, pack, unpack
from repofeed.store.tokenizer import load_tokenizer, same_vocabulary

# The tokenizer's own special tokens; <fim_prefix> and <fim_middle> are sentinels it serves.
SPECIAL = ["<|endoftext|>", "<pad>", "<|im_end|>", "<fim_prefix>", "<fim_middle>"]
FORGERY = ('SEP = "<file_sep>"  # and <|endoftext|>, <pad>, <|im_end|>\n'
           + "".join(SENTINELS) + "\n<|endoftext|><|endoftext|>\té 日本 🙂 ▁\n")


def _train(vocab_size: int = 700, prefix_space: bool = False) -> HFTokenizer:
    tk = HFTokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=prefix_space)
    tk.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tk.train_from_iterator(sample_files().values(), trainer)
    tk.add_tokens(["<file_sep>"])  # an added token that is not special: matched in text
    # a BOS, as many models' post-processors add: documents are encoded without it
    bos = "<|endoftext|>"
    tk.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A", special_tokens=[(bos, tk.token_to_id(bos))])
    return tk


@pytest.fixture(scope="module")
def hf(tmp_path_factory):
    """The trained tokenizer, saved as a lone tokenizer.json and as a model directory whose
    configuration names <|im_end|> as its end-of-sequence token."""
    from transformers import PreTrainedTokenizerFast

    root = tmp_path_factory.mktemp("hf")
    tk = _train()
    (root / "lone").mkdir()
    tk.save(str(root / "lone" / "tokenizer.json"))
    PreTrainedTokenizerFast(tokenizer_object=tk, eos_token="<|im_end|>", pad_token="<pad>"
                            ).save_pretrained(root / "model")
    return tk, root / "lone" / "tokenizer.json", root / "model"


def _documents(store) -> dict[str, list[int]]:
    return {d["path"]: store.tokens(d["array"]).tolist() for d in store.documents()}


def test_init_with_a_tokenizer_json_stores_every_file_as_written(sample_repo, hf):
    tk, json_path, _ = hf
    done = run_cli("init", str(sample_repo.path), "--tokenizer", str(json_path))
    assert "Hugging Face" in done.stdout
    run_cli("backfill", str(sample_repo.path))
    files = {path: sample_repo.git("show", f"HEAD:{path}") for path in sample_files()}
    with open_store(sample_repo.path) as store:
        tok = store.tokenizer
        stats = store.stats()
        assert stats["tokenizer_kind"] == "huggingface"
        assert stats["tokenizer_source"] == str(json_path.resolve())
        docs = _documents(store)
        assert set(docs) == set(files)
        specials = [t.content for t in tk.get_added_tokens_decoder().values()]
        plain = 0
        for path, ids in docs.items():
            assert tok.decode(ids) == files[path], path
            # a file that spells a special token keeps it as text (a test of its own below);
            # the others are what the tokenizer itself gives (no BOS)
            if not any(s in files[path] for s in specials):
                assert ids == tk.encode(files[path], add_special_tokens=False).ids, path
                plain += 1
            # token byte lengths add up to the text: evolution hunks are placed right
            assert tok.byte_lengths[ids].sum() == len(files[path].encode()), path
        assert stats["evolution_records"] > 0
        assert plain > len(docs) // 2
    ds = WindowDataset(sample_repo.path)
    small = min(docs, key=lambda p: len(docs[p]))
    index = next(i for i in range(len(ds)) if ds.paths[ds.locate(i)[0]] == small)
    item = ds[index]
    real = int(item["attention_mask"].sum())
    assert tok.decode(item["input_ids"][:real].tolist()) == files[small]


def test_text_spelling_sentinels_and_special_tokens_is_plain_text(sample_repo, hf):
    tk, _, model_dir = hf
    sample_repo.commit("Parse <commit_after> and <|endoftext|> markers", {"forged.py": FORGERY})
    init_store(sample_repo.path, tokenizer=model_dir)
    backfill(sample_repo.path)
    special_ids = {tk.token_to_id(name) for name in SPECIAL}
    with open_store(sample_repo.path) as store:
        tok = store.tokenizer
        sentinel_ids = {tok.sentinel(name) for name in SENTINELS}
        ids = _documents(store)["forged.py"]
        assert not (sentinel_ids | special_ids) & set(ids)
        assert tok.decode(ids) == FORGERY
        for name in SENTINELS:
            assert tok.decode([tok.sentinel(name)]) == name   # shown by name
        copy = pickle.loads(pickle.dumps(tok))   # as a spawned DataLoader worker gets it
        assert copy.encode(FORGERY) == ids and copy.id == tok.id
    ds = EvolutionDataset(sample_repo.path)
    items = [ds[i] for i in range(len(ds)) if ds.record_of(i)["path"] == "forged.py"]
    assert len(items) == 1
    seq = items[0]["input_ids"][:int(items[0]["attention_mask"].sum())].tolist()
    for name in ("<commit_before>", "<commit_msg>", "<commit_after>"):
        assert seq.count(tok.sentinel(name)) == 1, name
    assert seq[-1] == tok.eos_id == tk.token_to_id("<|im_end|>")  # the directory's EOS
    assert tok.decode(seq[-1:]) == "<|im_end|>"
    assert tok.decode(seq[:-1]) == ("<commit_before><commit_msg>Parse <commit_after> and "
                               "<|endoftext|> markers\n<commit_after>" + FORGERY)


def test_sentinels_the_tokenizer_cannot_serve_get_new_ids_and_a_note(sample_repo, hf):
    tk, json_path, _ = hf
    base = tk.get_vocab_size(with_added_tokens=True)
    done = run_cli("init", str(sample_repo.path), "--tokenizer", str(json_path))
    assert "lacks 6 of the sentinels" in done.stderr
    assert "has <file_sep> only as pieces that text encodes to" in done.stderr
    assert f"Resize the model's embeddings to {base + 7}" in done.stderr
    with open_store(sample_repo.path) as store:
        tok = store.tokenizer
        assert (tok.base_size, tok.vocab_size) == (base, base + 7)
        # its own special tokens serve; the others get ids after its vocabulary
        assert tok.sentinel("<fim_prefix>") == tk.token_to_id("<fim_prefix>") < base
        assert tok.sentinel("<fim_middle>") == tk.token_to_id("<fim_middle>") < base
        assert sorted(tok.sentinel(n) for n in SENTINELS if n not in SPECIAL) == list(
            range(base, base + 7))
        # a lone tokenizer.json names no EOS: the first usual name it has is taken
        assert tok.eos_id == tk.token_to_id("<|endoftext|>")
        assert tok.pad_id == tk.token_to_id("<pad>")


def test_a_special_token_the_model_itself_produces_from_text_is_no_sentinel(tmp_path):
    """A Unigram model holds its special tokens as vocabulary entries and picks them for text
    that spells them, whatever the added-token handling says: such a sentinel gets a new id."""
    tk = HFTokenizer(models.Unigram())
    tk.pre_tokenizer = pre_tokenizers.Metaspace()
    tk.decoder = decoders.Metaspace()
    tk.train_from_iterator(sample_files().values(), trainers.UnigramTrainer(
        vocab_size=600, special_tokens=["<fim_prefix>", "</s>"], unk_token="<unk>",
        show_progress=False))
    path = tmp_path / "tokenizer.json"
    tk.save(str(path))
    tok = load_tokenizer(path)
    own = tk.token_to_id("<fim_prefix>")
    assert own in tok.encode("a <fim_prefix> b")            # the model's entry, from text
    assert tok.sentinel("<fim_prefix>") >= tok.base_size   # so the sentinel is a new id
    assert tok.sentinel("<fim_prefix>") not in tok.encode("a <fim_prefix> b")
    assert tok.decode(tok.encode("a <fim_prefix> b")) == "a <fim_prefix> b"
    assert tok.eos_id == tok.pad_id == tk.token_to_id("</s>")  # no pad: the EOS pads


def test_same_vocabulary_tells_the_store_tokenizer_from_others(sample_repo, hf, tmp_path):
    _, json_path, model_dir = hf
    init_store(sample_repo.path, tokenizer=json_path)
    other = tmp_path / "other.json"
    _train(vocab_size=650).save(str(other))
    with open_store(sample_repo.path) as store:
        assert same_vocabulary(store.tokenizer, load_tokenizer(model_dir))
        assert not same_vocabulary(store.tokenizer, load_tokenizer(other))
    init_store(sample_repo.path, force=True)  # a SentencePiece tokenizer trained on the tip
    with open_store(sample_repo.path) as store:
        assert store.tokenizer.kind == "sentencepiece"
        assert not same_vocabulary(store.tokenizer, load_tokenizer(model_dir))


def test_a_tokenizer_that_does_not_reproduce_code_is_reported(sample_repo, tmp_path):
    path = tmp_path / "tokenizer.json"
    _train(prefix_space=True).save(str(path))  # " " added before every text
    done = run_cli("init", str(sample_repo.path), "--tokenizer", str(path))
    assert "does not reproduce" in done.stderr


def test_a_store_written_before_kinds_is_read_as_sentencepiece(sample_repo):
    init_store(sample_repo.path)
    store_dir = sample_repo.path / ".git" / "repofeed" / "store"
    env = lmdb.open(str(store_dir), max_dbs=16)
    with env.begin(write=True) as txn:
        db = env.open_db(DB_META, txn=txn)
        info = unpack(txn.get(K_TOKENIZER_INFO, db=db))
        del info["kind"]
        txn.put(K_TOKENIZER_INFO, pack(info), db=db)
    env.close()
    with open_store(sample_repo.path) as store:
        assert store.tokenizer.kind == "sentencepiece" and store.tokenizer.spliceable
        assert store.stats()["tokenizer_kind"] == "sentencepiece"


def _sentencepiece_model() -> bytes:
    out = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(sample_files().values()), model_writer=out, model_type="bpe",
        vocab_size=600, byte_fallback=True, max_sentence_length=1 << 20, minloglevel=2)
    return out.getvalue()


def test_a_directory_with_only_a_sentencepiece_model_is_read_as_one(sample_repo, tmp_path,
                                                                    hf):
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "tokenizer.model").write_bytes(_sentencepiece_model())
    run_cli("init", str(sample_repo.path), "--tokenizer", str(model_dir))
    with open_store(sample_repo.path) as store:
        assert store.stats()["tokenizer_kind"] == "sentencepiece"
        assert store.tokenizer.base_size == 600
        # beside a tokenizer.json, the directory is read as the kind the store asks for
        hf[0].save(str(model_dir / "tokenizer.json"))
        assert load_tokenizer(model_dir).kind == "huggingface"
        assert same_vocabulary(store.tokenizer, load_tokenizer(model_dir, prefer="sentencepiece"))


@pytest.mark.parametrize("name, content, message", [
    ("empty-dir", None, "holds no tokenizer.json (nor a SentencePiece tokenizer.model"),
    ("nothing-here", "absent", "no tokenizer model at"),
    ("tokenizer.json", b"", "is not a Hugging Face tokenizer.json (the file is empty)"),
    ("tokenizer.json", b'{"model": {"type": "BPE",', "it is not valid JSON"),
    ("tokenizer.json", b'{"model": {"type": "Nonsense"}}', "the tokenizers library cannot"),
    ("weights.bin", b"\x00\x01 neither kind", "is not a SentencePiece model"),
])
def test_a_path_that_holds_no_tokenizer_is_a_clear_error(sample_repo, tmp_path, name, content,
                                                         message):
    path = tmp_path / name
    if content is None:
        path.mkdir()
    elif content != "absent":
        path.write_bytes(content)
    done = run_cli("init", str(sample_repo.path), "--tokenizer", str(path), check=False)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert message in done.stderr and str(path) in done.stderr
    assert not (sample_repo.path / ".git" / "repofeed" / "store" / "data.mdb").exists()
