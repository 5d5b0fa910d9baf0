"""The temporal split, stores pinned at its cut, path classes, and held-out bits per byte.

One real history serves most tests: the sample sources, then a side branch merged with
``--no-ff`` between commits on main, so that the newest non-merge commits by date lie on
both sides of the merge. Models are made on the spot: a uniform one (all logits zero) and a
bigram model counted from the training side of the split.
"""

from __future__ import annotations

import math
import subprocess
import types
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pygit2
import pytest
import torch

from helpers import GitRepo, run_cli, sample_files
from repofeed.daemon.history import BlobReader
from repofeed.daemon.ingest import backfill, record_changes
from repofeed.daemon.init import init_store
from repofeed.daemon.split import Cut, SplitError, cut_store, find_cut, split_at
from repofeed.store.errors import StoreError
from repofeed.store.locate import CONFIG_KEY
from repofeed.store.paths import CLASSES, path_class
from repofeed.store.reader import Store
from repofeed.train.evaluate import (
    EvalError,
    evaluate,
    evaluate_checkpoint,
    report_text,
    start_token,
    windows_of,
)

VOCAB = 1000
HELD_OUT_WORD = "zyzzyvaquux"


class Uniform(torch.nn.Module):
    """Every token equally likely: exactly log2(V) bits each."""

    def __init__(self, vocab: int):
        super().__init__()
        self.vocab = vocab

    def forward(self, input_ids):
        return types.SimpleNamespace(logits=torch.zeros(*input_ids.shape, self.vocab))


class Bigram(torch.nn.Module):
    """Next-token log-probabilities from the previous token alone, counted from texts."""

    def __init__(self, tokenizer, texts: list[str], vocab: int, alpha: float = 0.1):
        super().__init__()
        counts = torch.full((vocab, vocab), alpha, dtype=torch.float64)
        for text in texts:
            ids = torch.tensor(tokenizer.encode(text))
            counts.index_put_((ids[:-1], ids[1:]), torch.ones(len(ids) - 1, dtype=torch.float64),
                              accumulate=True)
        self.table = torch.nn.Parameter((counts / counts.sum(1, keepdim=True)).log().float())

    def forward(self, input_ids):
        return types.SimpleNamespace(logits=self.table[input_ids])


def git_ok(repo: GitRepo, *args: str) -> bool:
    return subprocess.run(["git", *args], cwd=repo.path, capture_output=True).returncode == 0


@pytest.fixture(scope="module")
def history(tmp_path_factory):
    """main: c1 c2 ... c3 ... merge(feature) c4; feature (from c2): f1 f2, dated between."""
    with pytest.MonkeyPatch.context() as mp:
        home = tmp_path_factory.mktemp("home")
        mp.setenv("HOME", str(home))
        mp.setenv("GIT_CONFIG_NOSYSTEM", "1")
        repo = GitRepo(tmp_path_factory.mktemp("hist") / "repo")
        files = sample_files()
        names = sorted(files)
        half = len(names) // 2
        ids = {}
        ids["c1"] = repo.commit("Import the first half", {n: files[n] for n in names[:half]})
        ids["c2"] = repo.commit("Import the rest", {n: files[n] for n in names[half:]})
        repo.git("switch", "-q", "-c", "feature")
        ids["f1"] = repo.commit("Start a feature", {
            "src/feat.py": "def feat(x):\n    return x + 1\n"})
        repo.git("switch", "-q", "main")
        ids["c3"] = repo.commit("Describe it", {"README.md": "# Sample\n\nSome words.\n"})
        repo.git("switch", "-q", "feature")
        ids["f2"] = repo.commit("Finish the feature", {
            "src/feat.py": f"def feat(x):\n    # {HELD_OUT_WORD}\n    return x + 2\n",
            "tests/test_feat.py": "from feat import feat\n\n\ndef test_feat():\n"
                                  "    assert feat(1) == 3\n"})
        repo.git("switch", "-q", "main")
        repo.tick += 1
        repo.git("merge", "-q", "--no-ff", "-m", "Merge the feature", "feature")
        ids["m"] = repo.head()
        quux = "".join(f"{HELD_OUT_WORD}_{i} = {HELD_OUT_WORD}({i})\n" for i in range(300))
        ids["c4"] = repo.commit("Add a module and drop a file", {
            "lib/quux.py": quux, names[0]: files[names[0]] + "\n# edited\n"},
            remove=[names[1]])
        yield types.SimpleNamespace(repo=repo, ids=ids, names=names, files=files)


@pytest.fixture(scope="module")
def split_store(history, tmp_path_factory):
    cut = find_cut(history.repo.path, holdout=2)
    directory = cut_store(history.repo.path, cut, tmp_path_factory.mktemp("cut") / "store",
                          vocab_size=VOCAB)
    with Store(directory) as store:
        tokenizer = store.tokenizer
    return types.SimpleNamespace(cut=cut, dir=directory, tokenizer=tokenizer)


# -- the split ------------------------------------------------------------------------------


def test_holdout_takes_the_newest_non_merge_commits_by_date_across_a_merge(history):
    ids = history.ids
    cut = find_cut(history.repo.path, holdout=2)
    assert cut.held_out == (ids["f2"], ids["c4"])  # oldest first; the merge is not counted
    assert cut.cut == ids["c3"]
    assert cut.tip == ids["c4"] and cut.holdout == 2
    for oid in cut.held_out:
        assert not git_ok(history.repo, "merge-base", "--is-ancestor", oid, cut.cut)
    # c3 is held out too at N=3: the cut falls back to c2, along the first-parent chain
    three = find_cut(history.repo.path, holdout=3)
    assert three.held_out == (ids["c3"], ids["f2"], ids["c4"]) and three.cut == ids["c2"]
    # f1 (a side-branch commit) is the fourth newest: the cut c2 still reaches none of them
    four = find_cut(history.repo.path, holdout=4)
    assert four.held_out == (ids["f1"], ids["c3"], ids["f2"], ids["c4"])
    assert four.cut == ids["c2"]
    assert Cut.from_dict(four.to_dict()) == four


def test_since_cuts_at_the_newest_first_parent_commit_before_the_date(history):
    ids, repo = history.ids, history.repo
    f1_date = datetime.fromtimestamp(GitRepo.EPOCH + 60 * 3, UTC)
    cut = find_cut(repo.path, since=f1_date.isoformat())
    assert cut.cut == ids["c2"]
    assert cut.held_out == (ids["f1"], ids["c3"], ids["f2"], ids["c4"])
    # a naive date is UTC; a date string with another zone is converted
    assert find_cut(repo.path, since=f1_date.replace(tzinfo=None)).cut == ids["c2"]
    assert find_cut(repo.path, since="2023-11-14T23:16:20+01:00").cut == ids["c2"]
    # c2 itself is not before its own date
    assert find_cut(repo.path, since="2023-11-14T23:15:20+01:00").cut == ids["c1"]
    assert split_at(repo.path, ids["c2"]).held_out == cut.held_out


@pytest.mark.parametrize("kwargs, message", [
    ({"holdout": 0}, "positive"),
    ({"holdout": -3}, "positive"),
    ({"holdout": True}, "positive"),
    ({"holdout": 6}, "no training history"),
    ({}, "exactly one"),
    ({"holdout": 1, "since": "2024-01-01"}, "exactly one"),
    ({"since": "yesterday"}, "not a date"),
    ({"since": "2001-01-01"}, "no training history"),
    ({"since": (datetime.now(UTC) + timedelta(days=2)).isoformat()}, "in the future"),
    ({"since": "2024-06-01"}, "after the tip"),
])
def test_bad_splits_are_refused_clearly(history, kwargs, message):
    with pytest.raises(SplitError, match=message):
        find_cut(history.repo.path, **kwargs)


def test_a_split_with_nothing_held_out_or_no_history_is_refused(history, make_repo):
    with pytest.raises(SplitError, match="nothing held out"):
        split_at(history.repo.path, history.ids["c4"])
    empty = make_repo("empty")
    with pytest.raises(SplitError, match="no commits"):
        find_cut(empty.path, holdout=1)
    merges_only = make_repo("merges")
    merges_only.commit("one", {"a.txt": "a\n"})
    base = merges_only.head()
    merges_only.git("switch", "-q", "-c", "side")
    merges_only.commit("two", {"b.txt": "b\n"})
    merges_only.git("switch", "-q", "main")
    merges_only.tick += 1
    merges_only.git("merge", "-q", "--no-ff", "-m", "merge", "side")
    # on the first-parent chain after the base there is only the merge: the side commit is
    # what a split at the base holds out
    assert split_at(merges_only.path, base).held_out == (
        merges_only.git("rev-parse", "side").strip(),)


def test_holdout_when_dates_put_the_first_commit_among_the_newest(make_repo):
    repo = make_repo("skewed")
    repo.tick = 100  # the root commit is dated after its children
    repo.commit("root", {"a.txt": "a\n"})
    repo.tick = 1
    repo.commit("child", {"b.txt": "b\n"})
    repo.commit("grandchild", {"c.txt": "c\n"})
    with pytest.raises(SplitError, match="no training history"):
        find_cut(repo.path, holdout=1)


# -- path classes ---------------------------------------------------------------------------


@pytest.mark.parametrize("path, cls", [
    ("src/repofeed/cli.py", "core"), ("crates/store/src/lib.rs", "core"),
    ("lib/daemon/history.py", "core"), ("pkg/core/loop.go", "core"), ("core.py", "core"),
    ("tests/test_cli.py", "test"), ("src/app/tests/helpers.py", "test"),
    ("server/handler_test.go", "test"), ("web/button.spec.ts", "test"),
    ("src/foo/__tests__/x.js", "test"),
    ("README.md", "docs"), ("LICENSE", "docs"), ("docs/conf.py", "docs"),
    ("core/README.md", "docs"), ("notes.txt", "docs"), ("src/history.py", "core"),
    ("pyproject.toml", "config"), ("src/settings.json", "config"),
    (".github/workflows/ci.yml", "config"), ("CMakeLists.txt", "config"),
    ("requirements-dev.txt", "config"), ("Makefile", "config"), ("Cargo.lock", "config"),
    ("scripts/setup.sh", "other"), ("main.go", "other"), ("Src/Main.C", "core"),
])
def test_path_class(path, cls):
    assert path_class(path) == cls
    assert cls in CLASSES


# -- a store at the cut ---------------------------------------------------------------------


def test_cut_store_holds_exactly_the_history_up_to_the_cut(history, split_store):
    cut, repo = split_store.cut, history.repo
    with Store(split_store.dir) as store:
        stats = store.stats()
        paths = {d["path"] for d in store.documents()}
    reachable = int(repo.git("rev-list", "--count", cut.cut).strip())
    assert stats["head"] == cut.cut and stats["pinned_at"] == cut.cut
    assert stats["commits_processed"] == reachable == 3  # c1 c2 c3
    assert "lib/quux.py" not in paths and "README.md" in paths
    # the cut store never becomes the repository's default
    with pytest.raises(KeyError):
        pygit2.Repository(str(repo.path)).config[CONFIG_KEY]


def test_the_cut_stores_tokenizer_never_saw_the_held_out_text(history, split_store, tmp_path):
    word = HELD_OUT_WORD
    assert len(split_store.tokenizer.encode(word)) > 2
    # ... whereas one trained on the tip learns the word that the held-out commits repeat
    tip_store = tmp_path / "tip"
    init_store(history.repo.path, store=tip_store, vocab_size=VOCAB, register=False)
    with Store(tip_store) as store:
        assert len(store.tokenizer.encode(word)) <= 2
    with pytest.raises(KeyError):
        pygit2.Repository(str(history.repo.path)).config[CONFIG_KEY]


def test_a_pinned_store_is_never_moved(history, split_store):
    path, cut = history.repo.path, split_store.cut
    with pytest.raises(StoreError, match="pinned at .*plain backfill"):
        backfill(path, store=split_store.dir)
    with pytest.raises(StoreError, match="pinned at .*not at"):
        backfill(path, store=split_store.dir, until="HEAD")
    again = backfill(path, store=split_store.dir, until=cut.cut[:10])
    assert again.commits == 0 and again.head == cut.cut
    # reused as it is for the same cut; refused for another configuration
    assert cut_store(path, cut, split_store.dir, vocab_size=VOCAB) == split_store.dir
    with pytest.raises(StoreError, match="another configuration"):
        cut_store(path, cut, split_store.dir, vocab_size=VOCAB, max_tokens=512, overlap=128)


def two_commits(make_repo) -> tuple[GitRepo, str]:
    """A repository of two commits of real source; returns it and its first commit."""
    repo = make_repo()
    files = sample_files()
    names = sorted(files)
    first = repo.commit("one", {n: files[n] for n in names[:3]})
    repo.commit("two", {n: files[n] for n in names[3:5]})
    return repo, first


def test_the_daemon_refuses_a_pinned_store(make_repo, tmp_path):
    from repofeed.daemon.live import Daemon

    repo, first = two_commits(make_repo)
    init_store(repo.path, store=tmp_path / "cut", at=first, vocab_size=VOCAB)
    repo.git("config", CONFIG_KEY, str(tmp_path / "cut"))  # made the default by hand
    with pytest.raises(StoreError, match="neither the daemon nor a plain backfill"):
        Daemon(repo.path)


def test_until_needs_a_store_pinned_there(make_repo, tmp_path):
    repo, first = two_commits(make_repo)
    init_store(repo.path, vocab_size=VOCAB)
    with pytest.raises(StoreError, match="follows its branch"):
        backfill(repo.path, until=first)
    with pytest.raises(StoreError, match="--store DIR"):
        init_store(repo.path, at=first, vocab_size=VOCAB, force=True)


def test_cli_init_at_backfill_until_and_status_show_the_pin(make_repo, tmp_path):
    repo, first = two_commits(make_repo)
    store = str(tmp_path / "cut")
    run_cli("init", str(repo.path), "--at", "HEAD~1", "--store", store, "--vocab-size", str(VOCAB))
    refused = run_cli("backfill", str(repo.path), "--store", store, check=False)
    assert refused.returncode == 1 and "pinned at" in refused.stderr
    done = run_cli("backfill", str(repo.path), "--until", "HEAD~1", "--store", store)
    assert f"head {first[:12]}" in done.stdout
    status = run_cli("status", str(repo.path), "--store", store)
    assert f"commit {first[:12]} (pinned" in status.stdout


# -- scoring ----------------------------------------------------------------------------------


def held_out_texts(history, cut):
    """The texts both parts should score, formed independently of the evaluator."""
    git = pygit2.Repository(str(history.repo.path))
    tip = git[cut.tip]
    changed, afters = set(), []
    blobs = BlobReader(git, 1 << 20)
    for oid in cut.held_out:
        for f in record_changes(git, git[oid], blobs).files:
            if f.after:
                changed.add(f.path)
                afters.append(f.after)
    files = [tip.tree[p].data.decode() for p in sorted(changed) if p in tip.tree]
    return files, afters


@pytest.mark.parametrize("context, stride", [(64, 32), (16, 1), (16, 15), (200, 150)])
def test_uniform_model_gives_log2_v_bits_per_token(history, split_store, context, stride):
    tok, cut = split_store.tokenizer, split_store.cut
    report = evaluate(Uniform(tok.vocab_size), tok, history.repo.path, cut, context=context,
                      stride=stride, batch_size=3)
    files, afters = held_out_texts(history, cut)
    for part, texts in (("files", files), ("records", afters)):
        result = report.parts[part]
        assert result.total.items == len(texts)
        assert result.total.tokens == sum(len(tok.encode(t)) for t in texts)
        assert result.lossy == 0
        assert result.total.bytes == sum(len(t.encode()) for t in texts)
        groups = [result.total, *result.by_language.values(), *result.by_class.values()]
        for group in groups:
            assert group.bits_per_byte == pytest.approx(
                group.tokens * math.log2(tok.vocab_size) / group.bytes, rel=1e-9)


def test_records_score_only_the_after_tokens(history, split_store):
    tok, cut = split_store.tokenizer, split_store.cut
    report = evaluate(Uniform(tok.vocab_size), tok, history.repo.path, cut, context=32,
                      parts=["records"])
    _files, afters = held_out_texts(history, cut)
    records = report.parts["records"]
    assert records.total.tokens == sum(len(tok.encode(a)) for a in afters)
    assert records.skipped == {"deleted": 1}
    assert list(report.parts) == ["records"]


def test_a_bigram_model_beats_uniform_and_scores_every_token_once(history, split_store):
    tok, cut = split_store.tokenizer, split_store.cut
    training = [history.files[n] for n in history.names]  # the training side: the sources
    bigram = Bigram(tok, training, tok.vocab_size)
    uniform = evaluate(Uniform(tok.vocab_size), tok, history.repo.path, cut, context=64)
    results = [evaluate(bigram, tok, history.repo.path, cut, context=c, stride=s,
                        batch_size=b) for c, s, b in ((64, 32, 8), (16, 1, 5), (128, 100, 1))]
    for part in ("files", "records"):
        bpb = results[0].parts[part].total.bits_per_byte
        assert bpb < uniform.parts[part].total.bits_per_byte
        # a bigram needs one token of context: any windows that score each token once agree
        for other in results[1:]:
            assert other.parts[part].total.bits_per_byte == pytest.approx(bpb, rel=1e-6)
    assert "files" in report_text(results[0]) and "bits/byte" in report_text(results[0])


def test_windows_cover_every_target_once_with_the_most_context():
    for n_context, length, context, stride in [(1, 1000, 64, 32), (300, 301, 64, 1),
                                               (5, 40, 16, 15), (1, 2, 8, 4), (50, 900, 128, 17)]:
        windows = windows_of(n_context, length, context, stride)
        targets = [t for w in windows for t in range(w.lo, w.hi)]
        assert targets == list(range(n_context, length))
        for w in windows:
            assert w.hi - w.begin <= context and w.lo > w.begin
            assert w.lo - w.begin >= min(context - stride, w.lo)
    with pytest.raises(EvalError, match="stride"):
        windows_of(1, 10, 8, 8)


def test_limits_pick_the_same_items_every_time(history, split_store):
    tok, cut = split_store.tokenizer, split_store.cut
    model = Uniform(tok.vocab_size)
    small = [evaluate(model, tok, history.repo.path, cut, context=32, limit_bytes=2000,
                      max_files=2) for _ in range(2)]
    assert small[0].as_dict() == small[1].as_dict()
    for part in small[0].parts.values():
        assert 0 < part.total.items <= 2 and part.total.bytes <= 2000
        assert part.selected_from >= part.total.items
    with pytest.raises(EvalError, match="limit_bytes"):
        evaluate(model, tok, history.repo.path, cut, context=32, limit_bytes=0)
    with pytest.raises(EvalError, match="context"):
        evaluate(model, tok, history.repo.path, cut)


def test_evaluate_checkpoint_uses_the_checkpoints_split_and_refuses_another(history,
                                                                            split_store):
    tok, cut = split_store.tokenizer, split_store.cut
    model = Uniform(tok.vocab_size)
    info = {"cut": cut.cut, "holdout": 2, "tip": cut.tip, "store": str(split_store.dir),
            "tokenizer_id": tok.id, "context": 32}
    report = evaluate_checkpoint(model, info, history.repo.path)
    assert report.cut == cut and report.parts["files"].total.tokens > 0
    assert evaluate_checkpoint(model, info, history.repo.path, holdout=2).cut == cut
    with pytest.raises(SplitError, match="trained up to"):
        evaluate_checkpoint(model, info, history.repo.path, holdout=3)
    with pytest.raises(EvalError, match="tokenizer"):
        evaluate_checkpoint(model, {**info, "tokenizer_id": "0" * 16}, history.repo.path)
    with pytest.raises(SplitError, match="not trained on a temporal split"):
        evaluate_checkpoint(model, {"store": str(split_store.dir)}, history.repo.path)
    with pytest.raises(EvalError, match="fewer than"):
        evaluate_checkpoint(Uniform(10), info, history.repo.path)


# -- infilling ------------------------------------------------------------------------------


class Copier(torch.nn.Module):
    """An induction head written out: the next token is predicted to be the one that followed
    the latest earlier occurrence of the last three tokens (else two, else one) in the same
    sequence; uniform where they never occurred. It gains only from text it can see."""

    def __init__(self, vocab: int):
        super().__init__()
        self.vocab = vocab

    def forward(self, input_ids):
        logits = torch.zeros(*input_ids.shape, self.vocab)
        for b, row in enumerate(input_ids.tolist()):
            seen: dict[tuple[int, ...], int] = {}   # n-gram -> position of its last token
            for t in range(len(row)):
                for n in (3, 2, 1):
                    at = seen.get(tuple(row[max(0, t - n + 1):t + 1]))
                    if t + 1 >= n and at is not None:
                        logits[b, t, row[at + 1]] = 12.0
                        break
                for n in (1, 2, 3):
                    if t + 1 >= n:
                        seen[tuple(row[t - n + 1:t + 1])] = t
        return types.SimpleNamespace(logits=logits)


def test_infill_spans_are_the_lines_the_held_out_commits_added(history, split_store):
    from repofeed.train.evaluate import held_out

    git = pygit2.Repository(str(history.repo.path))
    held = held_out(git, split_store.cut)
    spans = {(t.path, t.text): t.span for t in held.texts["infill"]}
    first = history.names[0]
    edited = history.files[first]
    # f2 turned feat's one body line into two; c4 appended two lines to the first file.
    # The files they added (tests/test_feat.py, lib/quux.py) have no text around them, and
    # nothing from the training side (f1 wrote src/feat.py first) is a span.
    assert spans == {
        ("src/feat.py", f"    # {HELD_OUT_WORD}\n    return x + 2\n"): ("def feat(x):\n", ""),
        (first, "\n# edited\n"): (edited, ""),
    }
    assert held.skips["infill"] == {"added": 2, "deleted": 1}
    assert [(t.path, t.text, t.span) for t in held.texts["lr_middle"]] == \
        [(t.path, t.text, t.span) for t in held.texts["infill"]]


def test_infill_span_takes_one_hunk_by_hash_and_says_why_there_is_none():
    from repofeed.train.evaluate import infill_span

    after = "".join(f"line {i}\n" for i in range(1, 21))
    hunks = [(2, 0, 3, 2), (10, 1, 12, 1), (15, 1, 17, 0)]   # two add lines, one deletes
    span, reason = infill_span(after, hunks, "c\0a.py")
    assert reason is None and "".join(span) == after
    assert span[1] in ("line 3\nline 4\n", "line 12\n")
    assert infill_span(after, hunks[::-1], "c\0a.py")[0] == span    # not by position
    picked = {infill_span(after, hunks, f"c{i}\0a.py")[0][1] for i in range(20)}
    assert picked == {"line 3\nline 4\n", "line 12\n"}              # by a hash of the key
    assert infill_span(after, [(3, 2, 2, 0)], "k") == (None, "no_added_lines")
    assert infill_span("a\n\n\nb\n", [(1, 0, 2, 2)], "k") == (None, "blank_middle")
    assert infill_span(after, [(1, 0, 1, 20)], "k", max_middle_bytes=50) == \
        (None, "long_middle")


def test_only_the_middles_are_scored_and_a_blind_model_gains_nothing_from_the_suffix(
        history, split_store):
    tok, cut = split_store.tokenizer, split_store.cut
    report = evaluate(Uniform(tok.vocab_size), tok, history.repo.path, cut, context=64,
                      parts=["infill", "lr_middle"])
    middles = [f"    # {HELD_OUT_WORD}\n    return x + 2\n", "\n# edited\n"]
    for part in ("infill", "lr_middle"):
        total = report.parts[part].total
        assert total.items == 2
        assert total.bytes == sum(len(m.encode()) for m in middles)
        assert total.tokens == sum(len(tok.encode(m)) for m in middles)
        assert total.bits_per_byte == pytest.approx(
            total.tokens * math.log2(tok.vocab_size) / total.bytes, rel=1e-9)
    assert report.parts["infill"].total.nats == pytest.approx(
        report.parts["lr_middle"].total.nats, rel=1e-12)
    assert any("the suffix is worth +0.0000" in note for note in report.notes)


def test_an_infill_item_is_trainings_psm_layout_cut_around_the_middle(split_store):
    from repofeed.store.augment import fim_layout, fim_sentinels
    from repofeed.train.evaluate import _Text, make_item

    tok = split_store.tokenizer
    pre, suf, mid = fim_sentinels(tok)
    before = "".join(f"line_{i} = {i}\n" for i in range(60))
    after = "".join(f"tail_{i} = {i}\n" for i in range(60))
    middle = "inserted = True\n"
    text = _Text("infill", "a.py", middle, 0, span=(before, after))
    p, m, s = (tok.encode(t) for t in (before, middle, after))
    whole = make_item(text, tok, 4096)
    assert whole.context + whole.scored == fim_layout(p, m, s, (pre, suf, mid)).tolist()
    assert whole.scored == m and whole.nbytes == len(middle.encode())
    context = 40
    cut = make_item(text, tok, context)
    assert cut.scored == m and len(cut.context) + len(cut.scored) == context
    assert cut.context[0] == pre and cut.context[-1] == mid
    at = cut.context.index(suf)
    kept_prefix, kept_suffix = cut.context[1:at], cut.context[at + 1:-1]
    assert kept_prefix == p[len(p) - len(kept_prefix):]    # the prefix's end ...
    assert kept_suffix == s[:len(kept_suffix)]             # ... and the suffix's start
    assert abs(len(kept_prefix) - len(kept_suffix)) <= 1   # half each
    lr = make_item(_Text("lr_middle", "a.py", middle, 0, span=(before, after)), tok, context)
    assert lr.context == kept_prefix and lr.scored == m    # the same prefix, no suffix
    # a short prefix leaves its room to the suffix; a prefix that is the file's whole start
    # follows the start token, as a file does left to right
    short = _Text("infill", "a.py", middle, 0, span=("x = 1\n", after))
    item = make_item(short, tok, context)
    assert len(item.context) + len(item.scored) == context
    assert item.context[1:item.context.index(suf)] == tok.encode("x = 1\n")
    lr = make_item(replace(short, part="lr_middle"), tok, context)
    assert lr.context == [start_token(tok), *tok.encode("x = 1\n")]


def test_a_model_that_can_read_the_suffix_fills_in_better_than_left_to_right(
        split_store, make_repo):
    tok = split_store.tokenizer
    repo = make_repo()
    tail = "".join(f"def helper_{i}(value):\n    return value * {i} + {i * i}\n\n"
                   for i in range(12))
    head = "import math\n\n\n"
    repo.commit("Helpers", {"src/helpers.py": head + tail})
    base = repo.head()
    # the held-out commit writes, near the top, lines that the rest of the file spells
    copied = "".join(f"def helper_{i}(value):\n    return value * {i} + {i * i}\n\n"
                     for i in (7, 8))
    repo.commit("Repeat two helpers up front", {"src/helpers.py": head + copied + tail})
    report = evaluate(Copier(tok.vocab_size), tok, repo.path, split_at(repo.path, base),
                      context=512, parts=["infill", "lr_middle"])
    infill, lr = (report.parts[p].total for p in ("infill", "lr_middle"))
    assert infill.items == lr.items == 1 and infill.bytes == lr.bytes > 0
    assert infill.bits_per_byte < lr.bits_per_byte / 2


def test_held_out_commits_that_write_nothing_to_fill_in_give_no_spans_not_a_crash(
        split_store, make_repo):
    from repofeed.train.ablate import bits_per_byte

    tok = split_store.tokenizer
    repo = make_repo()
    repo.commit("one", {"a.py": "x = 1\ny = 2\nz = 3\n", "b.py": "b = 1\n"})
    base = repo.head()
    # a new file, a deletion of lines, blank lines added, and a file removed
    repo.commit("two", {"new.py": "n = 1\n", "a.py": "x = 1\nz = 3\n",
                        "b.py": "b = 1\n\n\n"})
    repo.commit("three", remove=["a.py"])
    report = evaluate(Uniform(tok.vocab_size), tok, repo.path, split_at(repo.path, base),
                      context=64)
    for part in ("infill", "lr_middle"):
        result = report.parts[part]
        assert result.total.items == 0 and result.total.bits_per_byte is None
        assert result.skipped == {"added": 1, "no_added_lines": 1, "blank_middle": 1,
                                  "deleted": 1}
    assert any(note.startswith("infill: no infill spans") for note in report.notes)
    assert report.parts["records"].total.items > 0   # the rest is scored as before
    bpb = bits_per_byte(report)   # what an ablation row holds: "all" stays left to right
    lr_parts = [report.parts[p].total for p in ("files", "records")]
    assert bpb["infill"] is None and bpb["lr_middle"] is None
    assert bpb["all"] == pytest.approx(sum(t.nats for t in lr_parts) / math.log(2)
                                       / sum(t.bytes for t in lr_parts), rel=1e-12)
    assert "infill" in report_text(report)


def test_span_selection_is_fixed_and_shared_by_both_infill_parts(history, split_store):
    tok, cut = split_store.tokenizer, split_store.cut
    model = Uniform(tok.vocab_size)
    runs = [evaluate(model, tok, history.repo.path, cut, context=32, max_files=1,
                     parts=["infill", "lr_middle"]) for _ in range(2)]
    assert runs[0].as_dict() == runs[1].as_dict()
    infill, lr = (runs[0].parts[p] for p in ("infill", "lr_middle"))
    assert infill.total.items == 1 and infill.selected_from == 2
    assert infill.total.bytes == lr.total.bytes and infill.by_language.keys() == \
        lr.by_language.keys()
