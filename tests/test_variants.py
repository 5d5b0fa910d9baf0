"""Stored variants end to end (issue 10): made by a real backfill and a real daemon, one per
(content, recipe, version), deterministic, linked to their source, collected with it, drawn
by the training stream where the mix names them.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from helpers import VARIANTS_ON, run_cli, wait_for
from repofeed.daemon.ingest import Syncer, backfill
from repofeed.daemon.init import init_store
from repofeed.store import open_store
from repofeed.store.augment import Augment
from repofeed.store.config import DEFAULT_VARIANTS
from repofeed.store.locate import open_repository
from repofeed.store.parsing import error_count, parse
from repofeed.store.schema import DB_VARIANTS, pack
from repofeed.store.variants import recipe_version
from repofeed.store.variants.stored import variant_key
from repofeed.store.writer import StoreWriter
from repofeed.train.stream import TrainStream

ENGINE = '''"""The engine: scores and totals."""


def total(values, scale):
    """Sum of the scaled values."""
    running = 0
    for item in values:
        running += item * scale  # scaled
    return running


def best(values):
    # the largest value, or None
    top = None
    for candidate in values:
        if top is None or candidate > top:
            top = candidate
    return top
'''

PARSER = '''import re

WORD = re.compile(r"[a-z]+")


def words(text):
    """The lowercase words of a text."""
    found = []
    for match in WORD.finditer(text.lower()):
        token = match.group(0)
        found.append(token)
    return found
'''

SCRIPT = '''// Counting helpers.
export function countBy(items, key) {
  const counts = {};
  for (const entry of items) {
    const name = entry[key];  // the group
    counts[name] = (counts[name] || 0) + 1;
  }
  return counts;
}
'''

FILES = {
    "src/engine.py": ENGINE,
    "src/parser.py": PARSER,
    "web/count.js": SCRIPT,
    "src/broken.py": "def broken(:\n    return 1\n",
    "README.md": "# Engine\n\nScores and totals.\n",
}


def _variants(store) -> dict[tuple[str, str], str]:
    tok = store.tokenizer
    return {(d["path"], d["recipe"]): tok.decode(store.tokens(d["array"]).tolist())
            for d in store.variant_documents()}


@pytest.fixture
def variant_repo(make_repo):
    repo = make_repo("variants")
    repo.commit("Sources", FILES)
    init_store(repo.path, max_tokens=64, overlap=16, vocab_size=400, **VARIANTS_ON)
    backfill(repo.path)
    return repo


def test_backfill_stores_each_recipe_of_each_code_file(variant_repo):
    with open_store(variant_repo.path) as store:
        made = _variants(store)
        docs = {d["path"]: d for d in store.documents(weighed=False)}
        summary = store.variant_summary()
        tok = store.tokenizer
        sources = {p: tok.decode(store.tokens(d["array"]).tolist()) for p, d in docs.items()}
    recipes = ["rename", "decomment", "reformat", "rename+decomment"]
    for path in ("src/engine.py", "src/parser.py"):
        for recipe in recipes:
            text = made.get((path, recipe))
            assert text is not None, (path, recipe, summary.as_dict())
            assert text != sources[path]
            tree = parse(text.encode(), "python", 5.0)
            assert tree is not None and error_count(tree) == 0, (recipe, text)
    engine = made[("src/engine.py", "decomment")]
    assert "# scaled" not in engine and "Sum of the scaled" not in engine
    assert "def total(values, scale)" in engine   # a public function's signature stays
    assert ("web/count.js", "decomment") in made
    assert not any(p in ("README.md", "src/broken.py") for p, _ in made)
    # the file that does not parse has no variant, and says so, per recipe
    assert summary.reasons["rename"]["unparsed"] == 1
    assert summary.pending == 0
    stats = json.loads(run_cli("stats", str(variant_repo.path), "--json").stdout)
    assert stats["variants"]["decomment"] >= 3 and stats["variants_pending"] == 0
    assert stats["variants_none"]["unparsed"] == len(recipes)


def test_variants_are_deterministic_and_made_once(variant_repo, make_repo):
    again = make_repo("again")
    again.commit("Sources", FILES)
    init_store(again.path, max_tokens=64, overlap=16, vocab_size=400, **VARIANTS_ON)
    backfill(again.path)
    with open_store(variant_repo.path) as a, open_store(again.path) as b:
        first, second = _variants(a), _variants(b)
        count = len(a.variant_documents())
    assert first == second and first
    result = backfill(variant_repo.path)   # nothing new: nothing is made again
    assert result.variants.contents == 0
    with open_store(variant_repo.path) as store:
        assert len(store.variant_documents()) == count


def test_a_new_transform_version_makes_the_variant_again(variant_repo):
    from repofeed.store.schema import content_key
    with open_store(variant_repo.path) as store:
        doc = next(d for d in store.documents(weighed=False) if d["path"] == "src/engine.py")
        before = _variants(store)[("src/engine.py", "decomment")]
    key = variant_key(doc["hash"], "decomment")
    with StoreWriter(variant_repo.path / ".git" / "repofeed" / "store") as writer:
        stale = {"v": [v - 1 for v in recipe_version("decomment")], "hash": content_key("x"),
                 "n_tokens": 1}
        writer._write(lambda txn: txn.put(key, pack(stale), db=writer.db[DB_VARIANTS]))
    with open_store(variant_repo.path) as store:
        assert store.variant_summary().pending == 1
    result = backfill(variant_repo.path)
    assert result.variants.contents == 1 and result.variants.variants == 1
    with open_store(variant_repo.path) as store:
        assert _variants(store)[("src/engine.py", "decomment")] == before
        assert store.variant_summary().pending == 0


def test_variants_follow_their_source_and_are_collected_with_it(variant_repo):
    variant_repo.commit("Rewrite the parser", {"src/parser.py": PARSER.replace(
        "found.append(token)", "found.append(token.strip())")})
    backfill(variant_repo.path)
    with open_store(variant_repo.path) as store:
        made = _variants(store)
        assert "token.strip()" in made[("src/parser.py", "decomment")]
    done = json.loads(run_cli("gc", str(variant_repo.path), "--grace", "0", "--json").stdout)
    # the old parser's four variant entries went, and their arrays with them (its text stays:
    # the commit's evolution record holds it)
    assert done["variants"] == 4 and done["arrays"] == 4
    with open_store(variant_repo.path) as store:
        assert _variants(store) == made   # the live ones stay, readable


def test_the_defaults_make_variants_and_an_empty_option_none(make_repo, monkeypatch):
    monkeypatch.delenv("REPOFEED_VARIANTS")            # repofeed's own defaults
    monkeypatch.delenv("REPOFEED_CONTEXT_DOCUMENTS")
    assert VARIANTS_ON == {"variants": list(DEFAULT_VARIANTS), "context_documents": True}
    repo = make_repo("defaults")
    repo.commit("Sources", FILES)
    init_store(repo.path, max_tokens=64, overlap=16, vocab_size=400)
    assert backfill(repo.path).variants.variants >= 10
    repo = make_repo("none")
    repo.commit("Sources", FILES)
    (repo.path / "repofeed.toml").write_text("variants = []\n")
    init_store(repo.path, max_tokens=64, overlap=16, vocab_size=400)
    result = backfill(repo.path)
    assert result.variants.contents == 0
    with open_store(repo.path) as store:
        assert store.variant_documents() == [] and store.variant_summary().pending == 0


def test_the_stream_draws_variants_only_where_the_mix_names_them(variant_repo):
    off = Augment.off()
    plain = TrainStream(variant_repo.path, augment=off, seed=1)
    mixed = TrainStream(variant_repo.path, augment=off, seed=1,
                        mix={"windows": 1, "variants": 1})
    with open_store(variant_repo.path) as store:
        tok = store.tokenizer
        variant_texts = set(_variants(store).values())
    assert set(plain.sources) == {"windows", "evolution"}
    assert set(mixed.sources) == {"windows", "variants"}

    def texts(stream):
        out = []
        for item in stream:
            ids = item["input_ids"][item["attention_mask"].bool()].tolist()
            out.append(tok.decode(ids))
        return out

    drawn = texts(mixed)
    from_variants = [t for t in drawn if any(t and t in v for v in variant_texts)
                     and not any(t in s for s in FILES.values())]
    assert len(from_variants) >= len(drawn) // 4
    assert not [t for t in texts(plain) if t and any(t in v for v in variant_texts)
                and not any(t in s for s in FILES.values())]


def test_status_counts_pending_variants_until_the_daemon_makes_them(make_repo, daemon_for):
    repo = make_repo("live")
    repo.commit("Sources", FILES)
    init_store(repo.path, max_tokens=64, overlap=16, vocab_size=400, **VARIANTS_ON)
    backfill(repo.path)
    run_cli("install", str(repo.path))
    repo.commit("Add a module", {"src/extra.py": ENGINE.replace("total", "grand_total")})
    with StoreWriter(repo.path / ".git" / "repofeed" / "store") as writer:
        Syncer(open_repository(repo.path), writer).run()   # the commit's own write alone

    def status():
        return json.loads(run_cli("status", str(repo.path), "--json").stdout)

    assert status()["head"] == repo.head() and status()["variants_pending"] == 4
    assert "4 pending" in run_cli("status", str(repo.path)).stdout
    daemon = daemon_for(repo)
    wait_for(lambda: status()["variants_pending"] == 0, "the daemon to make the variants")
    with open_store(repo.path) as store:
        assert ("src/extra.py", "rename") in _variants(store)
    assert "variants:" in daemon.log()
    assert "variants:" in run_cli("status", str(repo.path)).stdout
    # the transforms ran in a worker process, which ends with the daemon, even killed
    workers = _children(daemon.proc.pid)
    assert workers, "the daemon made its variants in a worker process"
    daemon.stop(signal.SIGKILL)
    wait_for(lambda: not [p for p in workers if _alive(p)], "the workers to end")


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(c) for c in (task / "children").read_text().split()]
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"
