"""Bad input from git's side: odd paths, odd clones, odd clocks, odd commits.

Each case is something a real repository holds; each must be taken in exactly, or refused with a
clear error, and never stop the store. Paths are git's bytes: a name that is not UTF-8 comes
back from ``Store.documents()`` as a ``str`` whose ``os.fsencode`` is those bytes.
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from helpers import GitRepo, run_cli, sample_files, store_head, wait_for
from repofeed.daemon.ingest import backfill
from repofeed.daemon.init import init_store
from repofeed.store import open_store

LATIN1 = os.fsdecode(b"caf\xe9.py")          # "café.py" written in ISO-8859-1
LATIN1_RENAMED = os.fsdecode(b"r\xe9sum\xe9.py")


def _docs(path) -> dict[str, dict]:
    with open_store(path) as store:
        return {d["path"]: d for d in store.documents()}


def _text(path, rel: str) -> str | None:
    with open_store(path) as store:
        for d in store.documents():
            if d["path"] == rel:
                return store.tokenizer.decode(store.tokens(d["array"]))
    return None


def _records(path, **kw) -> list[dict]:
    with open_store(path) as store:
        return list(store.evolution_records(**kw))


def _stats(path) -> dict:
    with open_store(path) as store:
        return store.stats()


def _commit_at(repo: GitRepo, when: int, message: str, files: dict[str, str]) -> str:
    """A commit dated ``when`` (seconds since 1970), author and committer alike."""
    for rel, content in files.items():
        repo.write(rel, content)
    repo.git("add", "-A")
    date = f"@{when} +0000"  # "@": git reads small numbers as something else than seconds
    env = {**repo.env(), "GIT_AUTHOR_DATE": date, "GIT_COMMITTER_DATE": date}
    subprocess.run(["git", "commit", "-q", "-m", message], cwd=repo.path, env=env, check=True,
                   capture_output=True)
    return repo.head()


def _sources(make_repo, extra: dict[str, str | bytes] | None = None) -> GitRepo:
    repo = make_repo()
    repo.commit("Sources", {**sample_files(), **(extra or {})})
    return repo


# -- paths -----------------------------------------------------------------------------------

def test_a_latin1_file_name_is_kept_byte_for_byte(make_repo):
    repo = _sources(make_repo, {LATIN1: "CAFE = 1\n"})
    repo.commit("Edit the Latin-1 file", {LATIN1: "CAFE = 2\n"})
    init_store(repo.path)
    backfill(repo.path)
    docs = _docs(repo.path)
    assert [os.fsencode(p) for p in docs if p.startswith("caf")] == [b"caf\xe9.py"]
    assert _text(repo.path, LATIN1) == "CAFE = 2\n"
    edits = [r for r in _records(repo.path) if r["path"] == LATIN1]
    assert [r["change"] for r in edits] == ["added", "modified"]
    # The command line shows it, in JSON and in text, without a traceback.
    stats = json.loads(run_cli("stats", str(repo.path), "--json").stdout)
    assert stats["documents"] == len(docs)
    index = next(r["index"] for r in edits if r["change"] == "modified")
    shown = json.loads(run_cli("show", "record", str(index), str(repo.path), "--json").stdout)
    assert os.fsencode(shown["path"]) == b"caf\xe9.py"
    text = run_cli("show", "record", str(index), str(repo.path)).stdout
    assert "modified caf\\xe9.py" in text and "CAFE = 2" in text


def test_an_untracked_latin1_file_and_its_edits_reach_the_daemon(live_repo, daemon):
    """Issue 7 (a): a name that is not UTF-8 broke every rescan of the worktree."""
    live_repo.commit("A tracked Latin-1 name", {LATIN1: "TRACKED = 1\n"})
    untracked = os.fsdecode(b"notes/na\xefve.py")
    live_repo.write(untracked, "NAIVE = 1\n")
    daemon()  # starts with a full rescan of the worktree
    wait_for(lambda: _text(live_repo.path, untracked) == "NAIVE = 1\n", "the untracked file")
    live_repo.write(untracked, "NAIVE = 2\n")
    wait_for(lambda: _text(live_repo.path, untracked) == "NAIVE = 2\n", "its edit")
    live_repo.write(LATIN1, "TRACKED = 2\n")
    wait_for(lambda: _text(live_repo.path, LATIN1) == "TRACKED = 2\n", "the tracked file's edit")
    docs = _docs(live_repo.path)
    assert docs[untracked]["source"] == "worktree" and docs[LATIN1]["source"] == "worktree"
    assert os.fsencode(untracked) in {os.fsencode(p) for p in docs}


def _long_path(n_bytes: int) -> str:
    """A path of exactly ``n_bytes`` bytes, in directories of at most 200 bytes each."""
    parts, left = [], n_bytes - len(".py")
    while left > 200:
        parts.append("d" * 199)
        left -= 200
    parts.append("f" * left)
    path = "/".join(parts) + ".py"
    assert len(path.encode()) == n_bytes
    return path


@pytest.mark.parametrize("n_bytes", [511, 512, 600, 4000])
def test_long_paths_are_documents_records_and_skips(make_repo, n_bytes):
    """LMDB refuses keys over 511 bytes: a long path used to stop the store with a message
    that the disk was full."""
    long_py = _long_path(n_bytes)
    long_bin = long_py[:-3] + ".bin"
    repo = _sources(make_repo, {long_py: "LONG = 1\n", long_bin: b"\0\1\2"})
    repo.commit("Edit the long one", {long_py: "LONG = 2\n"})
    init_store(repo.path)
    backfill(repo.path)
    assert _text(repo.path, long_py) == "LONG = 2\n"
    assert [r["change"] for r in _records(repo.path) if r["path"] == long_py] == \
        ["added", "modified"]
    with open_store(repo.path) as store:
        assert store.skipped_files()[long_bin] == "binary"
    repo.commit("Drop both", remove=[long_py, long_bin])
    backfill(repo.path)
    assert long_py not in _docs(repo.path)
    with open_store(repo.path) as store:
        assert long_bin not in store.skipped_files()


def test_two_long_paths_sharing_their_first_500_bytes_stay_apart(make_repo):
    stem = _long_path(700)[:-3]
    a, b = stem + "_a.py", stem + "_b.py"
    repo = _sources(make_repo, {a: "A = 1\n", b: "B = 1\n"})
    init_store(repo.path)
    backfill(repo.path)
    assert (_text(repo.path, a), _text(repo.path, b)) == ("A = 1\n", "B = 1\n")


def test_names_with_a_newline_a_backslash_and_brackets(make_repo):
    odd = {"two\nlines.py": "NL = 1\n", "back\\slash.py": "BS = 1\n", "[bold]x.py": "BR = 1\n"}
    repo = _sources(make_repo, odd)
    init_store(repo.path)
    backfill(repo.path)
    assert {p: _text(repo.path, p) for p in odd} == odd
    with open_store(repo.path) as store:
        index = next(w["index"] for w in store.windows() if w["path"] == "[bold]x.py")
    # The terminal shows the name as it is (not as rich markup).
    assert "[bold]x.py" in run_cli("show", "window", str(index), str(repo.path)).stdout


def test_a_rename_to_a_name_that_is_not_utf8(make_repo):
    repo = _sources(make_repo, {"plain.py": "PLAIN = 1\n"})
    repo.git("mv", "plain.py", LATIN1_RENAMED)
    repo.commit("Rename to Latin-1")
    init_store(repo.path)
    backfill(repo.path)
    renamed = [r for r in _records(repo.path) if r["change"] == "renamed"]
    assert [(r["old_path"], os.fsencode(r["path"])) for r in renamed] == \
        [("plain.py", b"r\xe9sum\xe9.py")]
    assert "plain.py" not in _docs(repo.path)
    assert _text(repo.path, LATIN1_RENAMED) == "PLAIN = 1\n"


# -- commits ---------------------------------------------------------------------------------

def test_latin1_message_and_author_are_read_in_their_declared_encoding(make_repo):
    repo = _sources(make_repo)
    repo.write("fix.py", "FIX = 1\n")
    (repo.path / "msg.txt").write_bytes(b"Caf\xe9 fix\n")
    repo.git("add", "fix.py")
    env = {**repo.env(), "GIT_AUTHOR_NAME": "Jos\xe9 Tester"}
    env = {k: v.encode("latin-1") if k == "GIT_AUTHOR_NAME" else v for k, v in env.items()}
    subprocess.run(["git", "-c", "i18n.commitEncoding=ISO-8859-1", "commit", "-q",
                    "-F", "msg.txt"], cwd=repo.path, env=env, check=True, capture_output=True)
    # And a message whose bytes are not UTF-8, with no encoding declared (git commit would
    # recode it, so the object is written directly, as other tools may).
    repo.write("fix.py", "FIX = 2\n")
    repo.git("add", "fix.py")
    tree, parent = repo.git("write-tree").strip(), repo.head()
    who = f"Ada Tester <ada@example.com> {GitRepo.EPOCH + 600} +0000"
    raw = (f"tree {tree}\nparent {parent}\nauthor {who}\ncommitter {who}\n\n".encode()
           + b"Broken \xff\xfe bytes\n")
    repo.git("update-ref", "HEAD",
             repo.git("hash-object", "-t", "commit", "-w", "--stdin", input=raw).strip())
    init_store(repo.path)
    backfill(repo.path)
    fixes = [r for r in _records(repo.path) if r["path"] == "fix.py"]
    assert (fixes[0]["message"], fixes[0]["author"]) == ("Café fix\n", "José Tester")
    assert fixes[1]["message"] == "Broken \ufffd\ufffd bytes\n"


def test_commits_dated_1970_and_2100(make_repo):
    repo = _sources(make_repo)
    _commit_at(repo, 0, "At the epoch", {"old.py": "OLD = 1970\n"})
    _commit_at(repo, 4_102_444_800, "In 2100", {"new.py": "NEW = 2100\n"})
    init_store(repo.path)
    backfill(repo.path)
    stamps = {r["path"]: r["timestamp"] for r in _records(repo.path)}
    assert (stamps["old.py"], stamps["new.py"]) == (0, 4_102_444_800)


def test_an_empty_tree_commit_empties_the_snapshot(make_repo):
    repo = _sources(make_repo)
    init_store(repo.path)
    repo.git("rm", "-q", "-r", ".")
    repo.commit("Remove everything")
    result = backfill(repo.path)
    assert _docs(repo.path) == {}
    assert result.records == 2 * len(sample_files())  # each file added, then deleted
    assert {r["change"] for r in _records(repo.path)} == {"added", "deleted"}


def test_an_octopus_merge(make_repo):
    repo = _sources(make_repo)
    for name in ("one", "two", "three"):
        repo.git("checkout", "-q", "-b", name, "main")
        repo.commit(f"Add {name}", {f"{name}.py": f"{name.upper()} = 1\n"})
    repo.git("checkout", "-q", "main")
    repo.git("merge", "-q", "--no-edit", "one", "two", "three")
    assert len(repo.git("log", "-1", "--format=%P").split()) == 3
    init_store(repo.path)
    result = backfill(repo.path)
    assert result.commits == 5  # the sources, three branches, the merge
    assert {"one.py", "two.py", "three.py"} <= set(_docs(repo.path))
    records = _records(repo.path)
    assert sorted(r["path"] for r in records if r["message"].startswith("Add ")) == \
        ["one.py", "three.py", "two.py"]
    assert repo.head() not in {r["commit"] for r in records}  # merges give no records


def test_an_annotated_tag_as_the_followed_ref(make_repo):
    repo = _sources(make_repo)
    repo.commit("Release", {"version.py": "VERSION = 1\n"})
    repo.git("tag", "-a", "-m", "the release", "v1")
    repo.commit("After the release", {"version.py": "VERSION = 2\n"})
    init_store(repo.path, follow="refs/tags/v1")
    backfill(repo.path)
    assert _text(repo.path, "version.py") == "VERSION = 1\n"
    assert store_head(repo.path) == repo.git("rev-parse", "v1^{commit}").strip()


@pytest.mark.slow
def test_a_commit_of_ten_thousand_files(make_repo):
    repo = _sources(make_repo)
    many = {f"gen/{n // 100:03d}/m{n:05d}.py": f"VALUE_{n} = {n}\n" for n in range(10_000)}
    repo.commit("Generate ten thousand modules", many)
    init_store(repo.path)
    result = backfill(repo.path)
    assert result.records == len(sample_files()) + 10_000
    docs = _docs(repo.path)
    assert sum(p.startswith("gen/") for p in docs) == 10_000
    assert _text(repo.path, "gen/042/m04242.py") == "VALUE_4242 = 4242\n"


# -- clones, checkouts and clocks ------------------------------------------------------------

def test_a_shallow_clone_then_unshallow(make_repo, tmp_path):
    """The boundary commit has no parents here: its diff would say it added every file."""
    src = _sources(make_repo, {"a.py": "A = 1\n"})
    first = src.head()
    src.commit("Edit a", {"a.py": "A = 2\n"})
    src.commit("Add b", {"b.py": "B = 1\n"})
    clone = tmp_path / "shallow"
    subprocess.run(["git", "clone", "-q", "--depth", "2", f"file://{src.path}", str(clone)],
                   check=True, capture_output=True)
    init_store(clone)
    result = backfill(clone)
    assert result.commits == 2  # the boundary is counted as processed
    assert [(r["path"], r["change"]) for r in _records(clone)] == [("b.py", "added")]
    assert _text(clone, "a.py") == "A = 2\n"  # the boundary's tree is the snapshot's base

    subprocess.run(["git", "fetch", "-q", "--unshallow"], cwd=clone, check=True,
                   capture_output=True)
    result = backfill(clone)
    assert result.commits == 2  # the first commit, and the boundary again, with its records
    assert _stats(clone)["commits_processed"] == 3
    by_commit = {}
    for r in _records(clone):
        by_commit.setdefault(r["commit"], []).append((r["path"], r["change"]))
    assert len(by_commit[first]) == len(sample_files()) + 1
    assert by_commit[src.git("rev-parse", "HEAD~1").strip()] == [("a.py", "modified")]
    assert backfill(clone).commits == 0


def test_sparse_checkout_keeps_the_documents_outside_the_sparse_set(live_repo, daemon):
    outside = "cmd/greet.go"
    original = _text(live_repo.path, outside)
    live_repo.git("sparse-checkout", "set", "lib")
    assert not (live_repo.path / outside).exists()
    daemon()  # its first reconcile rescans the worktree
    assert _text(live_repo.path, outside) == original
    head = live_repo.commit("Edit inside the sparse set", {"lib/extra.py": "EXTRA = 1\n"})
    wait_for(lambda: store_head(live_repo.path) == head, "the commit")
    wait_for(lambda: _text(live_repo.path, "lib/extra.py") == "EXTRA = 1\n", "its document")
    assert _docs(live_repo.path)[outside]["source"] == "commit"
    assert not any(r["change"] == "deleted" for r in _records(live_repo.path))


def test_clock_skew_does_not_supersede_live_commits(make_repo):
    """libgit2 stops a hiding walk by commit dates: a commit dated before the stored head
    made the walk think live commits were gone."""
    repo = _sources(make_repo)
    base = GitRepo.EPOCH + 100_000
    live = _commit_at(repo, base, "Live", {"live.py": "LIVE = 1\n"})
    _commit_at(repo, base + 60, "Dropped", {"dropped.py": "DROPPED = 1\n"})
    init_store(repo.path)
    backfill(repo.path)
    repo.git("reset", "-q", "--hard", live)
    # Eight commits from a machine whose clock says 1970. Walking by date, libgit2 emits the
    # live commits (dated later) first, and gives up marking hidden ones after five that are
    # older than anything emitted: the chain down to the live ones is longer than that.
    for n in range(8):
        _commit_at(repo, 86_400 + 60 * n, f"Skewed {n}", {f"skew{n}.py": f"S = {n}\n"})
    result = backfill(repo.path)
    assert result.superseded == 1
    paths = [r["path"] for r in _records(repo.path)]
    assert {"live.py", "skew0.py", "skew7.py"} <= set(paths) and "dropped.py" not in paths
    assert len(paths) == len(sample_files()) + 9


def test_a_store_inside_the_worktree_is_never_ingested(make_repo, daemon_for):
    repo = _sources(make_repo)
    store_dir = repo.path / "store-dir"
    run_cli("init", str(repo.path), "--store", str(store_dir))
    run_cli("backfill", str(repo.path))
    run_cli("install", str(repo.path))
    daemon_for(repo)
    # Not ignored: `git add -A` takes the store, its lock file and all.
    head = repo.commit("Commit everything", {"new.py": "NEW = 1\n"})
    assert "store-dir.lock" in repo.git("ls-files")
    wait_for(lambda: store_head(repo.path) == head, "the commit")
    wait_for(lambda: "new.py" in _docs(repo.path), "the new file's document")
    own = ("store-dir", "store-dir.lock", ".git")
    assert not [p for p in _docs(repo.path) if p.startswith(own)]
    assert not [r["path"] for r in _records(repo.path) if r["path"].startswith(own)]
    with open_store(repo.path) as store:
        assert not [p for p in store.skipped_files() if p.startswith(own)]
