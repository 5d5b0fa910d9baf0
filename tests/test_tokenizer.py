"""The tokenizer keeps every byte of code, caps its vocabulary, and handles users' models."""

from __future__ import annotations

import io

import pytest
import sentencepiece as spm

from helpers import run_cli, sample_files
from repofeed.daemon.ingest import backfill
from repofeed.daemon.init import init_store
from repofeed.store import SENTINELS, open_store
from repofeed.store.errors import TokenizerError
from repofeed.store.tokenizer import SentencePieceTokenizer, train_tokenizer

TRICKY = [
    "def f(x):\n\tif x:\n\t\treturn 1\n\n\n    return 0\n",
    "    leading spaces, trailing spaces   \n\n\n\n",
    "\ttabs\tin\tthe\tmiddle\t\n",
    "naïve café — Ελληνικά 中文 🚀 👩‍💻\n",
    "windows\r\nline\r\nendings\r\n",
    "",
    " ",
    "\n",
    "x = 1234567890  # digits\n",
    "<commit_msg> looks like a sentinel <fim_prefix>\n",
]


def test_roundtrip_of_every_sample_file(sample_repo):
    init_store(sample_repo.path)
    backfill(sample_repo.path)
    with open_store(sample_repo.path) as store:
        tok = store.tokenizer
        for name, text in sample_files().items():
            ids = tok.encode(text)
            assert tok.decode(ids) == text, name
        for text in TRICKY:
            assert tok.decode(tok.encode(text)) == text, repr(text)
        # the stored snapshot decodes to the committed bytes, file by file
        for doc in store.documents():
            committed = (sample_repo.path / doc["path"]).read_bytes().decode("utf-8")
            assert tok.decode(store.tokens(doc["array"])) == committed, doc["path"]


def test_sentinels_are_ids_that_text_never_encodes_to(sample_repo):
    init_store(sample_repo.path)
    with open_store(sample_repo.path) as store:
        tok = store.tokenizer
        sentinel_ids = {tok.sentinel(name) for name in SENTINELS}
        assert len(sentinel_ids) == len(SENTINELS) and max(sentinel_ids) < tok.vocab_size
        for name in SENTINELS:
            assert not sentinel_ids & set(tok.encode(name)), name
            assert tok.decode([tok.sentinel(name)]) == name
        framed = [tok.sentinel("<commit_before>"), *tok.encode("x = 1"),
                  tok.sentinel("<commit_after>")]
        assert tok.decode(framed) == "<commit_before>x = 1<commit_after>"
        # whitespace runs are pieces of their own, so indentation stays cheap
        assert len(tok.encode("        ")) < 8


def test_small_repository_reduces_vocabulary_and_says_so(make_repo):
    repo = make_repo()
    for i in range(10):
        repo.commit(f"file {i}", {f"m{i}.py": f"def f{i}(a, b):\n    return a * {i} + b\n"})
    done = run_cli("init", str(repo.path))
    assert "supports a vocabulary of" in done.stderr
    with open_store(repo.path) as store:
        stats = store.stats()
        assert 300 <= stats["vocab_size"] < 16384
        assert stats["token_dtype"] == "<u2"


def test_no_text_to_train_on_is_a_clear_error():
    with pytest.raises(TokenizerError, match="no text to train"):
        train_tokenizer([], 1000)


def _user_model(vocab_size: int, symbols: list[str], **options) -> bytes:
    """A model as users bring them: SentencePiece's default options unless told otherwise."""
    out = io.BytesIO()
    text = list(sample_files().values())
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(text), model_writer=out, model_type="bpe",
        vocab_size=vocab_size, user_defined_symbols=symbols, byte_fallback=True,
        max_sentence_length=1 << 20, minloglevel=2, **options,
    )
    return out.getvalue()


def test_user_tokenizer_gets_missing_sentinels_after_its_vocabulary(sample_repo, tmp_path):
    model = tmp_path / "user.model"
    model.write_bytes(_user_model(800, [], control_symbols=["<commit_msg>"]))
    done = run_cli("init", str(sample_repo.path), "--tokenizer", str(model))
    assert "lacks 8 of the sentinels" in done.stderr
    assert "Resize the model's embeddings to 808" in done.stderr
    with open_store(sample_repo.path) as store:
        tok = store.tokenizer
        assert tok.vocab_size == 808
        assert tok.sentinel("<commit_msg>") < 800          # the model's own piece
        assert tok.sentinel("<commit_before>") >= 800      # a new id after the vocabulary
        assert max(tok.encode("<commit_before> is plain text here")) < 800
        assert tok.sentinel("<commit_msg>") not in tok.encode("<commit_msg> is plain text too")
        before, after = tok.sentinel("<commit_before>"), tok.sentinel("<commit_after>")
        ids = [before, *tok.encode("x = 1"), after]
        assert tok.decode(ids) == "<commit_before>x = 1<commit_after>"
        assert store.stats()["tokenizer_source"] == str(model.resolve())


def test_large_vocabulary_stores_uint32_tokens(sample_repo, tmp_path):
    symbols = [f"<sym{i}>" for i in range(66_000)]
    model = tmp_path / "big.model"
    model.write_bytes(_user_model(66_600, symbols, normalization_rule_name="identity",
                                  remove_extra_whitespaces=False, add_dummy_prefix=False))
    sample_repo.commit("use a symbol", {"sym.txt": "high ids: <sym65999> <sym65998>\n"})
    init_store(sample_repo.path, tokenizer=model)
    backfill(sample_repo.path)
    with open_store(sample_repo.path) as store:
        assert store.stats()["token_dtype"] == "<u4"
        docs = {d["path"]: d for d in store.documents()}
        tokens = store.tokens(docs["sym.txt"]["array"])
        assert tokens.dtype.itemsize == 4 and tokens.max() > 65_535
        assert store.tokenizer.decode(tokens) == "high ids: <sym65999> <sym65998>\n"


def test_user_tokenizer_that_loses_whitespace_is_reported(sample_repo, tmp_path):
    model = tmp_path / "nfkc.model"
    model.write_bytes(_user_model(800, []))  # SentencePiece defaults: NFKC, no extra spaces
    done = run_cli("init", str(sample_repo.path), "--tokenizer", str(model))
    assert "does not reproduce" in done.stderr


def test_not_a_model_is_a_clear_error(tmp_path):
    with pytest.raises(TokenizerError, match="not a SentencePiece model"):
        SentencePieceTokenizer.for_user_model(b"definitely not a protobuf")


def test_encode_edit_equals_a_full_encode(sample_repo):
    """Re-encoding only around an edit gives exactly the tokens of encoding the whole text."""
    import random

    import numpy as np
    import pygit2

    init_store(sample_repo.path)
    with open_store(sample_repo.path) as store:
        tok = store.tokenizer
        assert tok.spliceable
        files = [t for t in sample_files().values() if "\u2581" not in t]
        rng = random.Random(5)
        spliced = 0
        for n in range(720):
            before = rng.choice(files)
            lines = before.split("\n")
            k = rng.randrange(len(lines))
            edit = n % 6
            if edit == 0:
                lines[k] += " extra"
            elif edit == 1:
                lines.insert(k, f"    inserted_{n} = {n}  # note")
            elif edit == 2 and len(lines) > 1:
                del lines[k]
            elif edit == 3:
                lines[k] = lines[k].replace(" ", "  ", 1)
            elif edit == 4:  # sentinel spellings are plain text, spliced like any other
                sentinel = SENTINELS[n % len(SENTINELS)]
                lines[k] = lines[k].replace(" ", f" {sentinel}", 1) + f"{sentinel} x"
            else:
                lines[k] = "\t" + lines[k] + "\u00e9"
            after = "\n".join(lines)
            if after == before:
                continue
            patch = pygit2.Patch.create_from(before.encode(), after.encode(), context_lines=0)
            hunks = [(h.old_start, h.old_lines, h.new_start, h.new_lines) for h in patch.hunks]
            before_ids = np.array(tok.encode(before))
            plan = tok.plan_edit(before, before_ids, after, hunks)
            spliced += plan is not None
            assert tok.encode_edit(before, before_ids, after, hunks) == tok.encode(after), n
        assert spliced > 540  # most edits are spliced, not re-encoded whole
