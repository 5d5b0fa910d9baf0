"""Near-duplicates: MinHash signatures, the index the store keeps of the live snapshot's
contents (updated with each commit, never rebuilt, the same however it was fed), and evolution
records whose change is only formatting."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import textwrap

import lmdb
import numpy as np
import pygit2
import pytest

from helpers import CORPUS, run_cli, sample_files
from repofeed.daemon.ingest import Syncer, backfill
from repofeed.daemon.init import init_store
from repofeed.store import open_store
from repofeed.store.config import Config
from repofeed.store.dedup import (
    BANDS,
    NUM_PERM,
    THRESHOLD,
    NearDupIndex,
    audit,
    band_keys,
    same_after_normalisation,
    shingle_hashes,
    signature,
    similarity,
)
from repofeed.store.errors import ConfigError, StoreError
from repofeed.store.policy import Policy
from repofeed.store.schema import ALL_DBS, DB_NEAR_SIGS, NEAR_DBS, content_key
from repofeed.store.writer import SnapshotChange, StoreWriter

NAMES = ("alpha", "beta", "gamma", "delta", "omega", "sigma", "kappa", "theta", "lambda")


def _module(seed: int, functions: int = 60) -> str:
    """A Python-like module of ``functions`` small functions, of words no other seed uses."""
    rng = random.Random(seed)
    out = []
    for i in range(functions):
        name, arg, other = (f"{rng.choice(NAMES)}_{seed}_{rng.randrange(10**6)}"
                            for _ in range(3))
        out.append(f"def {name}({arg}):\n    return {other}({arg}) + {i}\n\n")
    return "".join(out)


def _edited(text: str, lines: range, tag: str) -> str:
    """``text`` with the words of ``lines`` replaced."""
    rows = text.split("\n")
    for n in lines:
        rows[n] = f"    edited_{tag}_{n} = other_{tag}_{n}"
    return "\n".join(rows)


def _path(repo):
    """A ``GitRepo``'s directory, or the directory given."""
    return getattr(repo, "path", repo)


def _store_dir(repo):
    return _path(repo) / ".git" / "repofeed" / "store"


def _index(repo) -> dict[bytes, list[tuple[bytes, bytes]]]:
    """The raw entries of the index's three databases."""
    with open_store(_path(repo)) as store, store._txn() as txn:
        dbs = store._handle.dbs
        return {name: [(bytes(k), bytes(v)) for k, v in txn.cursor(db=dbs[name])]
                for name in NEAR_DBS}


def _audit(repo) -> list[str]:
    with open_store(_path(repo)) as store, store._txn() as txn:
        return audit(txn, store._handle.dbs)


def _clusters(repo) -> dict[str, bytes]:
    """Each document's cluster id, by path."""
    with open_store(repo.path) as store:
        near = store.near_duplicates()
        return {d["path"]: near[d["hash"]] for d in store.documents()}


def _sync(repo):
    """A backfill through a writer held here: its index's counts are readable."""
    with StoreWriter(_store_dir(repo)) as writer:
        Syncer(pygit2.Repository(str(repo.path)), writer).run()
        return writer.neardup.totals


# -- signatures -----------------------------------------------------------------------------

def test_signatures_are_datasketch_minhash_and_estimate_jaccard():
    from datasketch import MinHash

    text = sample_files()["lib/store/writer.py"]
    hashes = shingle_hashes(text)
    sketch = MinHash(num_perm=NUM_PERM, seed=1, scheme="affine32", hashfunc=lambda v: v)
    sketch.update_batch(hashes.tolist())
    sig = signature(text)
    assert sig.dtype == np.uint32 and np.array_equal(sig, sketch.hashvalues)

    edited = _edited(text, range(40, 140), "x")
    other = set(shingle_hashes(edited).tolist())
    exact = len(other & set(hashes.tolist())) / len(other | set(hashes.tolist()))
    assert 0.5 < exact < 0.95
    assert abs(similarity(sig, signature(edited)) - exact) < 0.08
    assert similarity(sig, signature(_module(3))) < 0.05


def test_words_not_spacing_make_shingles():
    assert signature("a b c d e f g h") is None            # 8 words: 4 shingles
    assert signature("x " * 50) is None                      # 46 shingles, all the same one
    assert signature("a b c d e f g h i") is not None       # 5 shingles
    spaced = "a  +  b(c)\n\n\td->e;   f.g h\r\n i"
    assert np.array_equal(signature(spaced), signature("a b c d e f g h i"))
    assert signature("à é î ö ü ñ ç ß ø æ") is None           # not words of [A-Za-z_0-9]


def test_band_keys_split_the_signature_into_bands():
    sig = signature(_module(1))
    keys = band_keys(sig)
    assert len(keys) == BANDS and all(len(k) == 9 for k in keys)
    assert [k[0] for k in keys] == list(range(BANDS))
    changed = sig.copy()
    changed[0] ^= 1  # row 0 is in band 0 alone
    assert band_keys(changed)[1:] == keys[1:] and band_keys(changed)[0] != keys[0]


# -- the index in the store -----------------------------------------------------------------

def test_near_copies_share_a_cluster_and_unrelated_files_do_not(make_repo):
    base = _module(1)
    copies = {"a/util.py": base, "b/util_copy.py": _edited(base, range(10, 16), "b"),
              "c/vendored/util.py": _edited(base, range(100, 108), "c")}
    tiny = {"tiny.py": "X = 1\n", "again/tiny.py": "X = 1\n", "small.py": "Y = 2\n"}
    repo = make_repo()
    repo.commit("Sources", {**sample_files(), **copies, **tiny, "other.py": _module(2)})
    init_store(repo.path)
    backfill(repo.path)
    clusters = _clusters(repo)
    util = clusters["a/util.py"]
    assert clusters["b/util_copy.py"] == util and clusters["c/vendored/util.py"] == util
    assert util == min(content_key(t) for t in copies.values())  # the smallest member's hash
    others = {p: c for p, c in clusters.items() if p not in copies}
    assert util not in others.values()
    assert clusters["tiny.py"] == clusters["again/tiny.py"] == content_key("X = 1\n")
    assert clusters["small.py"] == content_key("Y = 2\n") != clusters["tiny.py"]
    with open_store(repo.path) as store, store._txn() as txn:
        entry = txn.get(content_key("X = 1\n"), db=store._handle.dbs[DB_NEAR_SIGS])
        assert len(entry) == 20  # two references and a cluster id: no signature
    assert _audit(repo) == []


def test_the_index_follows_each_commit_without_being_rebuilt(make_repo):
    base = _module(1)
    repo = make_repo()
    repo.commit("Sources", {**sample_files(), "util.py": base, "other.py": _module(2),
                            "dup1.py": _module(5), "dup2.py": _module(5)})
    init_store(repo.path)
    backfill(repo.path)
    before = _index(repo)
    with open_store(repo.path) as store:
        docs = {d["path"]: d["hash"] for d in store.documents()}

    repo.commit("Copy util, rewrite other, drop a duplicate",
                {"copy/util.py": _edited(base, range(20, 26), "n"), "other.py": _module(4)},
                remove=["dup1.py"])
    totals = _sync(repo)
    assert (totals.added, totals.removed, totals.signatures) == (2, 1, 2)  # only what is new
    after = _index(repo)
    sigs_before, sigs_after = dict(before[DB_NEAR_SIGS]), dict(after[DB_NEAR_SIGS])
    assert docs["other.py"] not in sigs_after  # no document holds it any more
    assert sigs_after[docs["dup2.py"]][:4] == (1).to_bytes(4, "big")  # one reference left
    clusters = _clusters(repo)
    assert clusters["copy/util.py"] == clusters["util.py"]
    for path, content in docs.items():
        if path in ("other.py", "dup1.py", "dup2.py"):
            continue
        old, new = sigs_before[content], sigs_after[content]
        if path == "util.py":  # its cluster may take the new copy's id; its signature stays
            assert old[:4] == new[:4] and old[20:] == new[20:]
        else:
            assert old == new, path
    assert _audit(repo) == []

    repo.commit("Drop the other duplicate", remove=["dup2.py"])
    totals = _sync(repo)
    assert (totals.added, totals.removed, totals.signatures) == (0, 1, 0)
    assert docs["dup2.py"] not in dict(_index(repo)[DB_NEAR_SIGS])
    assert _audit(repo) == []


def test_a_worktree_document_moves_its_path_to_another_cluster(make_repo):
    """Documents written alone (the worktree watcher's ``put_documents``) keep the index in
    step too; without the texts passed, the new content's text is decoded from its tokens."""
    base, other = _module(1), _module(2)
    repo = make_repo()
    repo.commit("Sources", {**sample_files(), "u.py": base, "v.py": _edited(base, range(4), "v"),
                            "w.py": other})
    init_store(repo.path)
    backfill(repo.path)
    edited = _edited(other, range(6), "w")  # u.py now holds a near copy of w.py
    key = content_key(edited)
    with StoreWriter(_store_dir(repo)) as writer:
        ids = writer.tokenizer.encode(edited)
        writer.put_documents([SnapshotChange("u.py", {
            "path": "u.py", "hash": key, "n_tokens": len(ids), "language": "python",
            "weight": 1.0, "blob": "0" * 40, "source": "worktree"})], {key: ids})
        assert writer.neardup.totals.signatures == 1
    clusters = _clusters(repo)
    assert clusters["u.py"] == clusters["w.py"] != clusters["v.py"]
    assert content_key(base) not in dict(_index(repo)[DB_NEAR_SIGS])
    assert _audit(repo) == []


def test_the_policy_downweights_or_drops_near_duplicates(make_repo):
    base, same = _module(1), _module(3)
    repo = make_repo()
    repo.commit("Sources", {**sample_files(), "a/util.py": base,
                            "b/util.py": _edited(base, range(8), "b"),
                            "c2.py": same, "c1.py": same, "lone.py": _module(2)})
    init_store(repo.path)
    backfill(repo.path)
    mine = ("a/util.py", "b/util.py", "c1.py", "c2.py", "lone.py")

    def weights(mode):
        cfg = Config(near_dedup=mode, dedup_exact=False, weighting=False, filters=False,
                     exclude_vendored=False)
        with open_store(repo.path) as store:
            return {w.path: w.weight for w in Policy(cfg).documents(store) if w.path in mine}

    assert weights("off") == dict.fromkeys(mine, 1.0)
    # exact copies share a content, hence a cluster
    assert weights("downweight") == {"a/util.py": 0.5, "b/util.py": 0.5, "c1.py": 0.5,
                                     "c2.py": 0.5, "lone.py": 1.0}
    # drop: one per cluster, the first path among equal weights
    assert weights("drop") == {"a/util.py": 1.0, "b/util.py": 0.0, "c1.py": 1.0,
                               "c2.py": 0.0, "lone.py": 1.0}
    with pytest.raises(ConfigError, match="near_dedup must be one of downweight, drop, off"):
        Config(near_dedup="halve").validate()


def _chain() -> tuple[str, str, str]:
    """Three texts: B similar to A and to C, A not similar to C."""
    b = _module(7, functions=100)
    a = _edited(b, range(0, 36), "a")
    c = _edited(b, range(264, 300), "c")
    sa, sb, sc = signature(a), signature(b), signature(c)
    assert similarity(sa, sb) >= THRESHOLD + 0.05 and similarity(sb, sc) >= THRESHOLD + 0.05
    assert similarity(sa, sc) <= THRESHOLD - 0.05
    return a, b, c


def _steps() -> list[tuple[str, dict[str, str], list[str]]]:
    a, b, c = _chain()
    return [
        ("Sources", {**sample_files(), "a.py": a, "c.py": c, "u.py": _module(9)}, []),
        ("Add the link between a and c", {"b.py": b}, []),
        ("Edit u, add a tiny file", {"u.py": _edited(_module(9), range(3, 5), "u"),
                                     "t.py": "T = 0\n"}, []),
        ("Copy a", {"d/a.py": _edited(a, range(60, 64), "d")}, []),
        ("Drop the link", {}, ["b.py"]),
    ]


def test_a_backfill_and_commit_by_commit_ingest_give_the_same_index(make_repo):
    """Clusters are connected components under their smallest member's hash: a function of
    the live contents alone, so however the store was fed, its index is the same, byte for
    byte. Merges (a link added) and splits (the link removed) included."""
    steps = _steps()
    stepwise, whole = make_repo("stepwise"), make_repo("whole")
    for n, (message, files, remove) in enumerate(steps):
        stepwise.commit(message, files, remove)
        whole.commit(message, files, remove)
        if n == 0:
            init_store(stepwise.path)
        backfill(stepwise.path)
        clusters = _clusters(stepwise)
        linked = n in (1, 2, 3)
        assert (clusters["a.py"] == clusters["c.py"]) == linked, message
        if linked:
            assert clusters["b.py"] == clusters["a.py"]
        assert _audit(stepwise) == [], message
    clusters = _clusters(stepwise)
    assert clusters["d/a.py"] == clusters["a.py"] != clusters["c.py"]
    init_store(whole.path)
    backfill(whole.path)
    assert _clusters(whole) == clusters
    assert _index(whole) == _index(stepwise)
    assert _audit(whole) == []


def _bare_index(path):
    """A real LMDB environment with the store's databases, and an index on it."""
    env = lmdb.open(str(path), map_size=1 << 30, max_dbs=32)
    dbs = {name: env.open_db(name) for name in ALL_DBS}
    return env, dbs, NearDupIndex(lambda: dbs)


@pytest.mark.parametrize("seed", range(6))
def test_the_index_depends_on_the_live_contents_only(tmp_path, seed):
    """Random adds and removals of references, in transactions of random sizes, end with the
    same databases, byte for byte, as one transaction adding what is left: merges and splits
    of near-threshold chains included."""
    rng = random.Random(seed)
    bases = [_module(100 + seed * 10 + n, functions=40) for n in range(3)]
    texts = [_edited(b, range(start, start + rng.choice((2, 6, 12, 24))), f"{seed}_{n}")
             for n in range(36) for b in [bases[n % 3]] for start in [rng.randrange(90)]]
    by_hash = {content_key(t): t for t in texts}
    hashes = sorted(by_hash)
    env, dbs, index = _bare_index(tmp_path / "stepped")
    refs = dict.fromkeys(hashes, 0)
    for _ in range(60):
        deltas: dict[bytes, int] = {}
        for h in rng.sample(hashes, rng.randint(1, 8)):
            change = rng.choice((1, -1)) if refs[h] else 1
            refs[h] += change
            deltas[h] = deltas.get(h, 0) + change
        with env.begin(write=True) as txn:
            index.update(txn, deltas, by_hash.__getitem__)
    assert index.totals.relabelled > 0  # clusters did merge or split on the way
    env2, dbs2, fresh = _bare_index(tmp_path / "whole")
    with env2.begin(write=True) as txn:
        fresh.update(txn, {h: n for h, n in refs.items() if n}, by_hash.__getitem__)
    for name in NEAR_DBS:
        with env.begin() as a, env2.begin() as b:
            assert list(a.cursor(db=dbs[name])) == list(b.cursor(db=dbs2[name])), name
    env.close()
    env2.close()




@pytest.mark.skipif(not (CORPUS / "ky.bundle").exists(), reason="needs ../shared/corpus")
def test_a_real_history_stepped_commit_by_commit_equals_its_backfill(tmp_path):
    """ky (TypeScript): a store brought up the last 12 first-parent commits one at a time,
    as the daemon would, holds the same index, byte for byte, as one backfilled at the tip."""
    stepped, whole = tmp_path / "stepped", tmp_path / "whole"
    for path in (stepped, whole):
        subprocess.run(["git", "clone", "-q", str(CORPUS / "ky.bundle"), str(path)], check=True)

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=stepped, check=True, capture_output=True,
                              text=True).stdout

    steps = git("rev-list", "--first-parent", "--reverse", "HEAD~12..HEAD").split()
    git("reset", "-q", "--hard", "HEAD~12")
    init_store(stepped)
    backfill(stepped)
    for commit in steps:
        git("reset", "-q", "--hard", commit)
        backfill(stepped)
    init_store(whole)
    backfill(whole)
    assert _audit(stepped) == [] and _audit(whole) == []
    assert _index(stepped) == _index(whole)
    with open_store(whole) as store:
        assert len(store.near_duplicates()) > 50


def test_a_fresh_process_reads_the_same_clusters(make_repo):
    base = _module(1)
    repo = make_repo()
    repo.commit("Sources", {**sample_files(), "x.py": base, "y.py": _edited(base, range(5), "y")})
    init_store(repo.path)
    backfill(repo.path)
    with open_store(repo.path) as store:
        here = {k.hex(): v.hex() for k, v in store.near_duplicates().items()}
        assert len(here) == len({d["hash"] for d in store.documents()})
    script = textwrap.dedent("""
        import json, sys
        from repofeed.store import open_store
        with open_store(sys.argv[1]) as store:
            print(json.dumps({k.hex(): v.hex() for k, v in store.near_duplicates().items()}))
    """)
    done = subprocess.run([sys.executable, "-c", script, str(repo.path)], check=True,
                          capture_output=True, text=True)
    assert json.loads(done.stdout) == here


def test_nothing_dangles_after_gc(make_repo):
    base = _module(1)
    repo = make_repo()
    repo.commit("Sources", {**sample_files(), "m.py": base})
    repo.commit("Add a near copy", {"n.py": _edited(base, range(3), "n")})
    init_store(repo.path)
    backfill(repo.path)
    repo.write("n.py", _module(6))  # the amended commit holds something else
    repo.git("add", "-A")
    repo.tick += 1
    repo.git("commit", "-q", "--amend", "-m", "Add another module")
    backfill(repo.path)
    gone = content_key(_edited(base, range(3), "n"))
    assert gone not in dict(_index(repo)[DB_NEAR_SIGS])
    report = json.loads(run_cli("gc", str(repo.path), "--json").stdout)
    assert report["arrays"] >= 1 and report["index_entries"] == 0
    with open_store(repo.path) as store:
        assert store.near_duplicates().keys() == {d["hash"] for d in store.documents()}
    assert _audit(repo) == []  # every entry's array is there, nothing else is indexed


def test_a_store_without_the_index_databases_still_opens(make_repo):
    """A reader opens a store whose environment lacks databases added later (then its
    version says whether it can be read), instead of calling it not a store."""
    repo = make_repo()
    repo.commit("Sources", sample_files())
    init_store(repo.path)
    backfill(repo.path)
    env = lmdb.open(str(_store_dir(repo)), max_dbs=32)
    with env.begin(write=True) as txn:
        for name in NEAR_DBS:
            txn.drop(env.open_db(name, txn=txn), delete=True)
    env.close()
    with open_store(repo.path) as store:
        assert store.near_duplicates() == {}
        assert len(store.documents()) == len(sample_files())


def test_an_index_is_only_extended_with_its_own_parameters(make_repo):
    repo = make_repo()
    repo.commit("Sources", sample_files())
    init_store(repo.path)
    backfill(repo.path)
    with StoreWriter(_store_dir(repo)) as writer:
        stricter = NearDupIndex(lambda: writer.db, threshold=0.8)
        with pytest.raises(StoreError, match="threshold differ: \\[0.7\\] in the store, "
                                             "\\[0.8\\] here.*repofeed init --force"):
            writer._write(lambda txn: stricter.add(txn, b"x" * 16, _module(1)))
    assert _audit(repo) == []  # nothing was written


# -- records whose change is only formatting --------------------------------------------------

@pytest.mark.parametrize("before, after, same", [
    ("a = 1\nb = 2\n", "a = 1\nb = 2\n", True),
    ("a = 1\nb = 2\n", "a = 1\r\nb = 2\r\n", True),           # line endings
    ("a = 1\nb = 2\n", "a = 1\rb = 2\r", True),
    ("a = 1\nb = 2\n", "a = 1   \nb = 2\t\n", True),          # trailing whitespace
    ("a = 1\n\nb = 2\n", "a = 1\n\n\n\nb = 2\n", True),        # blank-line runs
    ("a = 1\nb = 2\n", "a = 1\nb = 2", True),                  # the final newline
    ("a = 1\nb = 2\n", "\n\na = 1\nb = 2\n\n\n", True),        # blank lines at the ends
    ("a = 1\n", "\ufeffa = 1\n", True),                        # a byte-order mark
    ("a = 1\nb = 2\n", "a = 1\n\nb = 2\n", False),             # a blank line added
    ("if x:\n    y()\n", "if x:\ny()\n", False),               # indentation is meaning
    ("if x:\n    y()\n", "if x:\n\ty()\n", False),
    ("a = 1\n", "a  = 1\n", False),                            # spacing inside a line
    ("a = 1\n", "a = 2\n", False),
    ("a = 1\n", "a = 1\u00a0\n", False),                     # a no-break space is text
    ("a = 1\n", "a = \ufeff1\n", False),                      # a BOM inside is text
    ("", "\n\n", True),
    ("", "x", False),
])
def test_same_after_normalisation(before, after, same):
    assert same_after_normalisation(before, after) is same
    assert same_after_normalisation(after, before) is same


def test_records_that_change_only_formatting_are_dropped_and_counted(make_repo):
    code = "def f(x):\n    return x + 1\n\n\ndef g(y):\n    return y * 2\n"
    repo = make_repo()
    repo.commit("Sources", {**sample_files(), "f.py": code})
    repo.commit("CRLF and trailing spaces", {"f.py": code.replace("\n", "  \r\n")})
    repo.commit("Re-indent", {"f.py": code.replace("    ", "  ")})
    repo.git("mv", "f.py", "g.py")
    repo.commit("Move it")
    init_store(repo.path)
    backfill(repo.path)
    with open_store(repo.path) as store:
        records = [(r["message"], r["change"]) for r in store.evolution_records()
                   if r["path"] in ("f.py", "g.py")]
        assert records == [("Sources\n", "added"), ("Re-indent\n", "modified"),
                           ("Move it\n", "renamed")]
        assert store.stats()["skipped_in_history"]["unchanged_after_normalisation"] == 1
