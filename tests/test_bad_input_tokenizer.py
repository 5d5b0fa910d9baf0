"""Bad input for the tokenizer: source code that spells a sentinel, tips that hold too little
text to learn from, users' models that cannot serve, and stores of an older schema."""

from __future__ import annotations

import io

import lmdb
import pytest
import sentencepiece as spm

from helpers import run_cli, sample_files
from repofeed.daemon.ingest import backfill
from repofeed.daemon.init import init_store
from repofeed.store import SENTINELS, EvolutionDataset, open_store
from repofeed.store.errors import TokenizerError
from repofeed.store.schema import DB_META, K_SCHEMA, pack
from repofeed.store.tokenizer import CODE_TRAINER_OPTIONS, SentencePieceTokenizer, Tokenizer

# Every character class code uses: space, tab, newline, ASCII punctuation, digits, and
# non-ASCII text (two-, three- and four-byte UTF-8) that byte fallback must carry.
CODE_CHARACTERS = "a b\tc\n!{}[]()<>;:'\"`~@#$%^&*-+=/\\|?,. 0123456789 é 日本 🙂"
README_EXAMPLE = "\tdef f():\n"


def _sentinel_ids(tok: Tokenizer) -> set[int]:
    return {tok.sentinel(name) for name in SENTINELS}


def _stored_documents(store) -> dict[str, list[int]]:
    return {d["path"]: store.tokens(d["array"]).tolist() for d in store.documents()}


@pytest.mark.parametrize("name", SENTINELS)
def test_a_sentinel_spelled_in_source_is_plain_text(make_repo, name):
    repo = make_repo()
    text = f'SEP = "{name}"\n# split on {name}{name} here\nparts = data.split(SEP)\n'
    repo.commit("Sources", {**sample_files(), "sep.py": text})
    init_store(repo.path)
    backfill(repo.path)
    with open_store(repo.path) as store:
        tok = store.tokenizer
        ids = _stored_documents(store)["sep.py"]
        assert not _sentinel_ids(tok) & set(ids)
        assert tok.decode(ids) == text
        assert tok.encode(name) != [tok.sentinel(name)]
        # the sentinel id itself still decodes to its name, for `repofeed show`
        assert tok.decode([tok.sentinel(name)]) == name


def test_sentinel_text_split_across_lines_round_trips(make_repo):
    repo = make_repo()
    text = "a = '<commit_\nafter>'\nb = '<file_sep\n>'\n<fim_\tprefix>\n<mask\r\n>\n"
    repo.commit("Sources", {**sample_files(), "split.txt": text})
    init_store(repo.path)
    backfill(repo.path)
    with open_store(repo.path) as store:
        ids = _stored_documents(store)["split.txt"]
        assert not _sentinel_ids(store.tokenizer) & set(ids)
        assert store.tokenizer.decode(ids) == text


def test_a_commit_that_spells_sentinels_gives_one_of_each_in_its_sequence(make_repo):
    repo = make_repo()
    repo.commit("Sources", sample_files())
    forged = ("<commit_before>old<commit_msg>fake message<commit_after>new\n"
              "<file_sep>other.py\n<fim_prefix>a<fim_suffix>b<fim_middle>\n")
    repo.commit("Parse <commit_after> markers", {"forged.txt": forged})
    init_store(repo.path)
    backfill(repo.path)
    ds = EvolutionDataset(repo.path)
    with open_store(repo.path) as store:
        tok = store.tokenizer
        items = [ds[i] for i in range(len(ds)) if ds.record_of(i)["path"] == "forged.txt"]
        assert len(items) == 1
        n = int(items[0]["attention_mask"].sum())
        ids = items[0]["input_ids"][:n].tolist()
        for name in ("<commit_before>", "<commit_msg>", "<commit_after>"):
            assert ids.count(tok.sentinel(name)) == 1, name
        for name in ("<file_sep>", "<fim_prefix>", "<fim_suffix>", "<fim_middle>"):
            assert tok.sentinel(name) not in ids, name
        assert tok.decode(ids[:-1]) == (
            "<commit_before><commit_msg>Parse <commit_after> markers\n<commit_after>" + forged)


@pytest.mark.parametrize("tip", ["x=1", "0123456789\n42", "日本語のテキスト\n", "ÄÖÜ"])
def test_a_tip_with_little_text_gives_a_tokenizer_that_keeps_every_character(make_repo, tip):
    repo = make_repo()
    repo.commit("The only file", {"a.py": tip})
    init_store(repo.path)
    with open_store(repo.path) as store:
        tok = store.tokenizer
        for text in (CODE_CHARACTERS, README_EXAMPLE, "  two  spaces  \n\n\t\t"):
            ids = tok.encode(text)
            assert tok.decode(ids) == text
            assert not _sentinel_ids(tok) & set(ids)
    # and what is committed later is stored as it was written
    later = "def f(a, b):\n\treturn a + b  # sum\n"
    repo.commit("Add a function", {"f.py": later})
    backfill(repo.path)
    with open_store(repo.path) as store:
        assert store.tokenizer.decode(_stored_documents(store)["f.py"]) == later
        for n in range(2):
            assert "\u2581" not in run_cli("show", "window", str(n), str(repo.path)).stdout


def test_a_tip_with_no_text_at_all_is_a_clear_error(make_repo):
    repo = make_repo()
    repo.commit("Only binary", {"blob.bin": bytes(range(256)) * 4})
    done = run_cli("init", str(repo.path), check=False)
    assert done.returncode == 1
    assert "no text to train a tokenizer on" in done.stderr
    assert "Traceback" not in done.stderr


def test_the_roundtrip_check_refuses_a_trained_model_that_loses_spaces():
    """The check init runs on a trained model catches the model that lost spaces before."""
    from repofeed.store.tokenizer import check_roundtrip

    options = {k: v for k, v in CODE_TRAINER_OPTIONS.items() if k != "required_chars"}
    out = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(["x=1"]), model_writer=out,
                                   vocab_size=272, **options)
    tok = SentencePieceTokenizer(out.getvalue(), spliceable=True)
    assert tok.decode(tok.encode("a b")) != "a b"      # the fault the check exists for
    with pytest.raises(TokenizerError, match="does not reproduce"):
        check_roundtrip(tok)


def _user_model(tmp_path, **options) -> str:
    out = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(sample_files().values()), model_writer=out, model_type="bpe",
        vocab_size=800, byte_fallback=True, max_sentence_length=1 << 20, minloglevel=2,
        normalization_rule_name="identity", remove_extra_whitespaces=False,
        add_dummy_prefix=False, **options)
    path = tmp_path / "user.model"
    path.write_bytes(out.getvalue())
    return str(path)


def test_a_user_model_with_user_defined_sentinels_cannot_be_forged(sample_repo, tmp_path):
    model = _user_model(tmp_path, user_defined_symbols=["<commit_after>", "<file_sep>"],
                        control_symbols=["<commit_msg>"])
    sample_repo.commit("Spell them", {"forged.txt": "<commit_after><file_sep><commit_msg>\n"})
    done = run_cli("init", str(sample_repo.path), "--tokenizer", model)
    assert "<commit_after>, <file_sep>" in done.stderr and "text encodes to" in done.stderr
    backfill(sample_repo.path)
    with open_store(sample_repo.path) as store:
        tok = store.tokenizer
        assert tok.sentinel("<commit_msg>") < 800        # a control symbol of its own: used
        assert tok.sentinel("<commit_after>") >= 800     # matched in text: a new id instead
        assert tok.sentinel("<file_sep>") >= 800
        ids = _stored_documents(store)["forged.txt"]
        assert not _sentinel_ids(tok) & set(ids)
        assert tok.decode(ids) == "<commit_after><file_sep><commit_msg>\n"
        assert tok.decode([tok.sentinel("<commit_after>")]) == "<commit_after>"
        assert tok.decode([tok.sentinel("<commit_msg>")]) == "<commit_msg>"


@pytest.mark.parametrize("content", [b"", b"definitely not a protobuf", b"\x00\x01\x02"])
def test_a_user_model_that_is_not_sentencepiece_is_a_clear_error(sample_repo, tmp_path,
                                                                 content):
    model = tmp_path / "user.model"
    model.write_bytes(content)
    done = run_cli("init", str(sample_repo.path), "--tokenizer", str(model), check=False)
    assert done.returncode == 1
    assert "is not a SentencePiece model" in done.stderr and str(model) in done.stderr
    assert "Traceback" not in done.stderr
    assert not list(sample_repo.path.glob(".git/repofeed/store/data.mdb"))


def test_a_store_of_schema_version_1_is_refused_and_rebuilt_as_told(sample_repo):
    init_store(sample_repo.path)
    backfill(sample_repo.path)
    store_dir = sample_repo.path / ".git" / "repofeed" / "store"
    env = lmdb.open(str(store_dir), max_dbs=16)
    with env.begin(write=True) as txn:
        txn.put(K_SCHEMA, pack(1), db=env.open_db(DB_META, txn=txn))
    env.close()
    done = run_cli("stats", str(sample_repo.path), check=False)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "schema version 1" in done.stderr
    assert "repofeed init --force" in done.stderr and "repofeed backfill" in done.stderr
    run_cli("init", "--force", str(sample_repo.path))
    run_cli("backfill", str(sample_repo.path))
    with open_store(sample_repo.path) as store:
        assert store.stats()["evolution_records"] > 0
