"""The daemon's smoke test: what scripts/check_floors.sh runs with every dependency at its
declared floor (and the whole suite runs with the current releases). Nothing here imports
torch, which is no declared dependency."""

from __future__ import annotations

import signal

from helpers import run_cli, sample_files, wait_for
from repofeed.store import open_store


def _sources(repo) -> dict[str, str]:
    with open_store(repo.path) as store:
        return {d["path"]: d["source"] for d in store.documents()}


def test_init_backfill_and_a_daemon_that_takes_in_a_commit_and_an_edit(make_repo, daemon_for):
    repo = make_repo()
    repo.commit("Sources", sample_files())
    run_cli("init", str(repo.path))
    run_cli("backfill", str(repo.path))
    run_cli("install", str(repo.path))
    proc = daemon_for(repo)
    repo.commit("One more", {"more.py": "MORE = 1\n"})
    wait_for(lambda: _sources(repo).get("more.py") == "commit", "the commit")
    (repo.path / "draft.py").write_text("DRAFT = 1\n")
    wait_for(lambda: _sources(repo).get("draft.py") == "worktree", "the worktree edit")
    with open_store(repo.path) as store:
        assert store.stats()["commits_processed"] == 2
    assert proc.stop(signal.SIGTERM) == 0
    assert "Traceback" not in proc.log()


def test_init_and_backfill_with_a_hugging_face_tokenizer(make_repo, tmp_path):
    """The `tokenizers` floor: a byte-level BPE read from tokenizer.json, special tokens kept
    out of text (``encode_special_tokens``), batches encoded (``encode_batch_fast``)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tk = Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    tk.train_from_iterator(sample_files().values(), trainers.BpeTrainer(
        vocab_size=600, special_tokens=["<|endoftext|>", "<fim_prefix>"], show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tk.save(str(tmp_path / "tokenizer.json"))
    repo = make_repo()
    files = {**sample_files(), "forged.py": "'<|endoftext|><fim_prefix><file_sep>' é 🙂\n"}
    repo.commit("Sources", files)
    run_cli("init", str(repo.path), "--tokenizer", str(tmp_path))
    run_cli("backfill", str(repo.path))
    with open_store(repo.path) as store:
        tok = store.tokenizer
        assert store.stats()["tokenizer_kind"] == "huggingface"
        assert tok.sentinel("<fim_prefix>") == tk.token_to_id("<fim_prefix>")
        docs = {d["path"]: store.tokens(d["array"]).tolist() for d in store.documents()}
        assert {path: tok.decode(ids) for path, ids in docs.items()} == files
        assert tk.token_to_id("<|endoftext|>") not in docs["forged.py"]
        assert tok.sentinel("<fim_prefix>") not in docs["forged.py"]
