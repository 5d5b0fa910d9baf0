"""Variations made on the fly (issue 10, point 2): fill-in-the-middle in PSM and SPM order and
BERT-style masking, through the training stream over a real store, deterministic per seed,
epoch and item, resumed exactly, and never forged by text that spells a sentinel."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch

from repofeed.daemon.ingest import backfill
from repofeed.daemon.init import init_store
from repofeed.store import WindowDataset, open_store
from repofeed.store.augment import Augment
from repofeed.store.config import Config
from repofeed.store.errors import ConfigError
from repofeed.store.policy import Policy
from repofeed.train.stream import TrainStream

CONTEXT = 128
FORGED = "# a comment that spells <fim_prefix> <fim_suffix> <fim_middle> and <mask>\n"


@pytest.fixture
def store_repo(sample_repo):
    sample_repo.commit("A file that spells the sentinels", {"notes/forged.py": FORGED * 3})
    init_store(sample_repo.path, max_tokens=CONTEXT, overlap=64)
    backfill(sample_repo.path)
    return sample_repo


def _plain_policy(**options) -> Policy:
    return Policy.unweighted(Config(**options))


def _stream(repo, augment: Augment, **kwargs) -> TrainStream:
    return TrainStream(repo.path, mix={"windows": 1}, policy=_plain_policy(), augment=augment,
                       **kwargs)


def _real(item: dict[str, torch.Tensor]) -> np.ndarray:
    return item["input_ids"][item["attention_mask"].bool()].numpy()


def _window_texts(repo) -> Counter:
    with open_store(repo.path) as store:
        tok = store.tokenizer
    windows = WindowDataset(repo.path)
    texts = Counter(tok.decode(_real(windows[i]).tolist()) for i in range(len(windows)))
    windows.close()
    return texts


def _sentinels(tok) -> tuple[int, int, int]:
    return tuple(tok.sentinel(n) for n in ("<fim_prefix>", "<fim_suffix>", "<fim_middle>"))


@pytest.mark.parametrize("order", ["psm", "spm"])
def test_every_window_made_fill_in_the_middle_holds_its_text_in_the_chosen_order(store_repo,
                                                                                 order):
    with open_store(store_repo.path) as store:
        tok = store.tokenizer
    pre, suf, mid = _sentinels(tok)
    texts = _window_texts(store_repo)
    augment = Augment(fim_rate=1.0, fim_spm_rate=1.0 if order == "spm" else 0.0)
    whole = cut = 0
    for item in _stream(store_repo, augment, seed=3):
        ids = _real(item).tolist()
        assert [ids.count(s) for s in (pre, suf, mid)] == [1, 1, 1]   # never forged
        assert (item["labels"] != -100).sum() == len(ids)            # loss on every token
        if order == "psm":
            assert ids[0] == pre and ids.index(pre) < ids.index(suf) < ids.index(mid)
            prefix = ids[1:ids.index(suf)]
            suffix = ids[ids.index(suf) + 1:ids.index(mid)]
            middle = ids[ids.index(mid) + 1:]
        else:
            assert ids[:2] == [pre, suf] and ids.index(mid) > 1
            suffix = ids[2:ids.index(mid)]
            # SPM runs the prefix straight into the middle: the join is where the text lay
            rest = tok.decode(ids[ids.index(mid) + 1:])
            prefix, middle = [], None
        text = (tok.decode(prefix) + tok.decode(middle) + tok.decode(suffix)
                if middle is not None else rest + tok.decode(suffix))
        if len(ids) < CONTEXT:   # nothing was cut: the parts are the window's text again
            assert text in texts
            whole += 1
        else:                    # the suffix's end was cut: the rest is a stretch of it
            assert any(text in window for window in texts)
            cut += 1
    assert whole > 3 and cut > 20


def test_half_the_windows_by_default_and_each_epoch_draws_anew(store_repo):
    with open_store(store_repo.path) as store:
        tok = store.tokenizer
    pre, suf, _ = _sentinels(tok)
    assert Augment() == Augment.from_config(Config())   # rate 0.5, PSM and SPM alike
    stream = _stream(store_repo, Augment(), seed=5, epochs=2)
    kinds: list[Counter] = [Counter(), Counter()]
    for item in stream:
        ids = _real(item).tolist()
        kind = "plain" if pre not in ids else ("spm" if ids[1] == suf else "psm")
        kinds[stream.epoch][kind] += 1
    for seen in kinds:
        n = sum(seen.values())
        fim = seen["psm"] + seen["spm"]
        assert abs(fim - n / 2) <= 4 * (n / 4) ** 0.5, seen          # binomial, 4 sd
        assert abs(seen["spm"] - fim / 2) <= 4 * (fim / 4) ** 0.5, seen
    first = [_real(i).tobytes() for i in _stream(store_repo, Augment(), seed=5)]
    again = [_real(i).tobytes() for i in _stream(store_repo, Augment(), seed=5)]
    other = [_real(i).tobytes() for i in _stream(store_repo, Augment(), seed=6)]
    assert first == again and first != other


def test_a_resumed_stream_varies_its_items_as_the_uninterrupted_one(store_repo):
    augment = Augment(fim_rate=0.5, mask_rate=0.1)
    full = [(_real(i).tobytes(), i["labels"].numpy().tobytes())
            for i in _stream(store_repo, augment, seed=9, epochs=2)]
    head = _stream(store_repo, augment, seed=9, epochs=2)
    taken = []
    it = iter(head)
    for _ in range(len(full) // 2 + 3):   # into the second epoch
        item = next(it)
        taken.append((_real(item).tobytes(), item["labels"].numpy().tobytes()))
    state = head.state_dict()
    tail = _stream(store_repo, augment, seed=9, epochs=2)
    tail.load_state_dict(state)
    taken += [(_real(i).tobytes(), i["labels"].numpy().tobytes()) for i in tail]
    assert taken == full
    other = _stream(store_repo, Augment(fim_rate=0.0), seed=9, epochs=2)
    with pytest.raises(ConfigError):   # another variation is another stream
        other.load_state_dict(state)


@pytest.mark.parametrize("labels", ["masked", "all"])
def test_masking_hides_a_share_of_tokens_and_asks_for_them_back(store_repo, labels):
    with open_store(store_repo.path) as store:
        tok = store.tokenizer
    mask_id = tok.sentinel("<mask>")
    plain = list(_stream(store_repo, Augment.off(), seed=2))
    masked = list(_stream(store_repo, Augment(fim_rate=0.0, mask_rate=0.15,
                                              mask_labels=labels), seed=2))
    assert len(plain) == len(masked)
    chosen = changed = as_mask = real = 0
    for a, b in zip(plain, masked):
        original, inputs = _real(a), _real(b)
        n = len(original)
        real += n
        wanted = b["labels"][:n].numpy()
        assert (b["labels"][n:] == -100).all()
        if labels == "all":
            assert (wanted == original).all()
            chosen += int((inputs != original).sum())
        else:
            asked = wanted != -100
            assert (wanted[asked] == original[asked]).all()   # the originals come back
            assert (inputs[~asked] == original[~asked]).all()  # only chosen ones change
            chosen += int(asked.sum())
            as_mask += int((inputs[asked] == mask_id).sum())
        changed += int((inputs != original).sum())
    if labels == "masked":
        assert abs(chosen / real - 0.15) < 0.03
        assert abs(as_mask / chosen - 0.8) < 0.08          # 8 in 10 become <mask>
        assert 0.8 < changed / chosen < 0.95               # 1 in 10 stays as it was
    else:
        assert 0.10 < changed / real < 0.15


def test_bad_options_are_refused_with_what_is_allowed(tmp_path):
    with pytest.raises(ConfigError, match="fim_rate must be a fraction between 0 and 1"):
        Augment(fim_rate=1.5)
    with pytest.raises(ConfigError, match="mask_labels must be one of masked, all"):
        Config(mask_labels="some").validate()
    (tmp_path / "repofeed.toml").write_text("fim_spm_rate = -0.1\n")
    from repofeed.store.config import resolve_config
    with pytest.raises(ConfigError, match="fim_spm_rate"):
        resolve_config(tmp_path)
