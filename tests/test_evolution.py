"""Evolution records as CommitPack sequences: whole when they fit, hunk-centred views when not."""

from __future__ import annotations

import pytest

from helpers import sample_files
from repofeed.daemon.ingest import backfill
from repofeed.daemon.init import init_store
from repofeed.store import EvolutionDataset, open_store
from repofeed.store.evolution import SPECIAL_TOKENS, plan_views


def test_a_record_that_fits_is_one_whole_view():
    views = plan_views(100, 120, 10, [(40, 45, 40, 65)], 1024)
    assert len(views) == 1
    assert (views[0].before, views[0].after, views[0].message) == ((0, 100), (0, 120), 10)


def test_long_records_give_views_centred_on_each_hunk():
    hunks = [(400, 410, 400, 510), (2000, 2010, 2100, 2110)]
    views = plan_views(3000, 3100, 10, hunks, 1024)
    assert len(views) == 2
    for view, (b0, b1, a0, a1) in zip(views, hunks):
        assert view.before[0] <= b0 and b1 <= view.before[1]
        assert view.after[0] <= a0 and a1 <= view.after[1]
        assert view.body + view.message + SPECIAL_TOKENS == 1024   # the window is used fully
        # context on both sides of the hunk, roughly balanced
        assert b0 - view.before[0] > 100 and view.before[1] - b1 > 100


def test_a_hunk_larger_than_the_window_is_tiled_without_gaps():
    views = plan_views(0, 5000, 10, [(0, 0, 0, 5000)], 1024)
    assert views[0].after[0] == 0 and views[-1].after[1] == 5000
    assert all(a.after[1] == b.after[0] for a, b in zip(views, views[1:]))
    assert all(v.body + v.message + SPECIAL_TOKENS <= 1024 for v in views)


def test_a_long_message_keeps_a_quarter_of_the_window():
    views = plan_views(50, 50, 5000, [(10, 12, 10, 14)], 1024)
    assert views[0].message == 256


def test_a_pure_rename_is_one_view():
    assert len(plan_views(3000, 3000, 5, [], 1024)) == 1


def _decode_item(tok, item):
    n = int(item["attention_mask"].sum())
    return tok.decode(item["input_ids"][:n].tolist())


def test_items_use_the_commitpack_layout(sample_repo):
    init_store(sample_repo.path)
    backfill(sample_repo.path)
    ds = EvolutionDataset(sample_repo.path)
    with open_store(sample_repo.path) as store:
        tok = store.tokenizer
        records = list(store.evolution_records())
        small = next(i for i, r in enumerate(records)
                     if r["change"] == "added" and r["n_after"] < 500)
        rec = records[small]
        index = next(i for i in range(len(ds)) if ds.record_of(i)["path"] == rec["path"]
                     and ds.record_of(i)["commit"] == rec["commit"])
        text = _decode_item(tok, ds[index])
        assert text == f"<commit_before><commit_msg>{rec['message']}<commit_after>{rec['after']}"
        assert ds[index]["input_ids"][int(ds[index]["attention_mask"].sum()) - 1] == tok.eos_id


def test_long_file_edit_gives_hunk_centred_views(make_repo):
    repo = make_repo()
    body = "".join(f"def handler_{i}(event):\n    return event.get({i!r})\n\n"
                   for i in range(400))
    repo.commit("Sources", {**sample_files(), "handlers.py": body})
    edited = body.replace("return event.get(200)", "return event.get(200, 'fallback')")
    edited = edited.replace("return event.get(350)", "raise KeyError(350)")
    repo.commit("Give handler 200 a fallback", {"handlers.py": edited})
    init_store(repo.path, max_tokens=256, overlap=128)
    backfill(repo.path)
    ds = EvolutionDataset(repo.path)
    with open_store(repo.path) as store:
        tok = store.tokenizer
        items = [i for i in range(len(ds)) if ds.record_of(i)["change"] == "modified"]
        assert len(items) == 2                                   # one per hunk
        texts = [_decode_item(tok, ds[i]) for i in items]
        assert "event.get(200)" in texts[0] and "event.get(200, 'fallback')" in texts[0]
        assert "event.get(350)" in texts[1] and "raise KeyError(350)" in texts[1]
        for t in texts:
            assert t.startswith("<commit_before>") and "<commit_msg>Give handler 200" in t
            before, after = t.split("<commit_after>")
            assert len(before) > 200 and len(after) > 200        # context around the change
        # the window is used fully, but for the slot kept for the end-of-sequence token
        assert all(int(ds[i]["attention_mask"].sum()) == 255 for i in items)
        # a window large enough for the whole record gives one view with both hunks
        wide = EvolutionDataset(repo.path, max_tokens=32768)
        whole = [i for i in range(len(wide)) if wide.record_of(i)["change"] == "modified"]
        assert len(whole) == 1
        text = _decode_item(tok, wide[whole[0]])
        assert "'fallback')" in text and "raise KeyError(350)" in text


def test_labels_on_the_after_part_only(sample_repo):
    init_store(sample_repo.path)
    backfill(sample_repo.path)
    ds = EvolutionDataset(sample_repo.path, labels_on="after")
    with open_store(sample_repo.path) as store:
        tok = store.tokenizer
        index = next(i for i in range(len(ds)) if ds.record_of(i)["change"] == "modified")
        item = ds[index]
        rec = store.record(next(r["index"] for r in store.evolution_records()
                                if r["change"] == "modified"))
        labelled = item["labels"][item["labels"] != -100].tolist()
        assert labelled[-1] == tok.eos_id
        assert tok.decode(labelled[:-1]) in rec["after"]
        assert (item["labels"] != -100).sum() < item["attention_mask"].sum()
    with pytest.raises(ValueError, match="labels_on"):
        EvolutionDataset(sample_repo.path, labels_on="before")
