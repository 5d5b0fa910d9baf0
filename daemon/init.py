"""``repofeed init``: the tokenizer (trained on the tip, or the user's own — SentencePiece or
Hugging Face — checked) and a new store that records it with the configuration.

``at=REV`` makes a store for a temporal split (daemon/split.py): the tokenizer is trained on
REV's tree, not the tip's (the tip holds the held-out text: training on it would leak), the
store is pinned at REV (``backfill --until REV`` fills it; the daemon and a plain backfill
refuse it), and it lives apart: it never becomes the repository's default store, so it needs
its own directory.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pygit2

from repofeed.store.config import Config, load_config
from repofeed.store.errors import StoreError, TokenizerError
from repofeed.store.locate import CONFIG_KEY, open_repository, store_dir_of
from repofeed.store.tokenizer import (
    SentencePieceTokenizer,
    Tokenizer,
    check_roundtrip,
    load_tokenizer,
    train_tokenizer,
)
from repofeed.store.writer import StoreWriter

from .history import (
    BlobReader,
    describe_ref,
    followed_ref,
    ref_problem,
    resolve_commit,
    tip_of,
    tree_changes,
)

TRAIN_CORPUS_BYTES = 64 << 20  # tokenizer training reads at most this much of the tip


@dataclass
class InitResult:
    store_dir: Path
    follow: str
    tokenizer_source: str
    vocab_size: int
    tokenizer_kind: str = SentencePieceTokenizer.kind
    notes: list[str] = field(default_factory=list)



def _tip_texts(repo: pygit2.Repository, tip: pygit2.Commit, cfg: Config,
               max_files: int | None = None) -> list[str]:
    blobs = BlobReader(repo, cfg.max_file_bytes, secret_files=tuple(cfg.secret_files))
    texts: list[str] = []
    total = 0
    for path, oid, mode in tree_changes(repo, None, tip.tree):
        # redacted, and .env-like files left out: a model trained on a secret could hold it
        # as a vocabulary piece, and the model's bytes live in the store
        text, _ = blobs.read(oid, mode, path)
        if text:
            texts.append(text)
            total += len(text)
            if total >= TRAIN_CORPUS_BYTES or len(texts) == max_files:
                break
    return texts


def init_store(repo_path: str | Path | None, *, tokenizer: str | Path | None = None,
               vocab_size: int | None = None, store: str | Path | None = None,
               force: bool = False, at: str | None = None, register: bool = True,
               **overrides: Any) -> InitResult:
    """Create the store. ``at`` pins it at a commit for a temporal split (see above; it needs
    ``store``); ``register=False`` keeps any ``store`` from becoming the repository's default
    (``repofeed.store`` in its git config), as a pinned store never does."""
    repo = open_repository(repo_path)
    pinned = resolve_commit(repo, at) if at is not None else None
    if pinned is not None and store is None:
        raise StoreError(
            f"a store pinned at {at} lives apart from the repository's own store: give it a "
            f"directory (`--store DIR`).")
    workdir = Path(repo.workdir) if repo.workdir else None
    cfg = load_config(workdir, vocab_size=vocab_size, **overrides)
    store_dir = Path(store).resolve() if store else store_dir_of(repo)
    follow = followed_ref(cfg.follow)
    notes: list[str] = []

    if tokenizer is not None:
        tok = load_tokenizer(tokenizer)
        source = str(Path(tokenizer).resolve())
        tip = pinned if pinned is not None else tip_of(repo, follow)
        notes.extend(_user_tokenizer_notes(repo, tip, cfg, tok))
    else:
        tip = pinned if pinned is not None else tip_of(repo, follow)
        if tip is None:
            raise TokenizerError(
                f"{describe_ref(repo, follow)} {ref_problem(repo, follow) or 'names no commit'},"
                f" so there is nothing to train a tokenizer on: commit some files first (or "
                f"follow a branch that has them), or pass `--tokenizer MODEL`."
            )
        trained = train_tokenizer(_tip_texts(repo, tip, cfg), cfg.vocab_size)
        tok = SentencePieceTokenizer(trained.model)
        check_roundtrip(tok)
        source = "trained"
        if trained.reduced:
            notes.append(
                f"the repository's text supports a vocabulary of {trained.vocab_size}, not the "
                f"{trained.requested} asked for: the tokenizer was trained with "
                f"{trained.vocab_size}."
            )
    info = {"source": source, "requested_vocab": cfg.vocab_size}
    if source == "trained":
        info["trained_on_redacted_text"] = True  # its training text was redacted (_tip_texts)
    writer = StoreWriter.create(store_dir, config=cfg, tokenizer=tok, tokenizer_info=info,
                                repo=str(workdir or repo.path), follow=follow, force=force,
                                pin=str(pinned.id) if pinned is not None else None)
    writer.close()
    if store and register and pinned is None:
        repo.config[CONFIG_KEY] = str(store_dir)
    return InitResult(store_dir, describe_ref(repo, follow), source, tok.vocab_size,
                      tokenizer_kind=tok.kind, notes=notes)


def _user_tokenizer_notes(repo: pygit2.Repository, tip: pygit2.Commit | None, cfg: Config,
                          tok: Tokenizer) -> list[str]:
    """What the user should know about their tokenizer: text it does not reproduce, and the
    sentinels it lacks (new ids, so the model's embeddings need resizing)."""
    notes = []
    if tip is not None:
        texts = _tip_texts(repo, tip, cfg, max_files=200)  # a sample is enough to tell
        lossy = [t for t in texts if tok.decode(tok.encode(t)) != t]
        if lossy:
            notes.append(
                f"the tokenizer does not reproduce {len(lossy)} of {len(texts)} text files "
                f"exactly (decode(encode(text)) != text: its normalization or pre-tokenization "
                f"changes whitespace or characters); stored text is what it decodes to."
            )
    missing = list(tok.extra)
    if missing:
        first = tok.base_size
        # a sentinel the model has as an ordinary or non-special piece is matched in text
        matched = [s for s in missing if tok.piece_id(s) is not None]
        lacking = [s for s in missing if s not in matched]
        why = []
        if lacking:
            why.append(f"lacks {len(lacking)} of the sentinels ({', '.join(lacking)})")
        if matched:
            why.append(f"has {', '.join(matched)} only as pieces that text encodes to "
                       f"(a file that spells one would forge it)")
        notes.append(
            f"the tokenizer {' and '.join(why)}; these {len(missing)} sentinels get new ids "
            f"{first}–{first + len(missing) - 1} after its vocabulary, which text never "
            f"encodes to. Resize the model's embeddings to {tok.vocab_size} (if it has fewer "
            f"rows) before training on this store."
        )
    return notes
