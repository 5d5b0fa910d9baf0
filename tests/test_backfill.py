"""Backfill turns history into evolution records and the tip into snapshot documents."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time

import pytest

from helpers import fast_history, run_cli, sample_files, store_dump
from repofeed.daemon.ingest import backfill
from repofeed.daemon.init import init_store
from repofeed.store import open_store
from repofeed.store.schema import K_COMMITS_DONE

PY = "def area(w, h):\n    return w * h\n\n\ndef perimeter(w, h):\n    return 2 * (w + h)\n"


def _init(repo, **kw):
    """Init with the sample files' text in the first commit, so a tokenizer can train."""
    return init_store(repo.path, **kw)


def _history(repo):
    files = sample_files()
    repo.commit("Import sources", {**files, "shapes.py": PY, "notes.txt": "keep me\n"})
    a = repo.commit("Rename perimeter's argument",
                    {"shapes.py": PY.replace("perimeter(w, h)", "perimeter(w, l)")
                                   .replace("(w + h)", "(w + l)")})
    repo.git("mv", "notes.txt", "NOTES.txt")
    b = repo.commit("Rename the notes", {"NOTES.txt": "keep me\nand me\n"})
    c = repo.commit("Drop shapes", remove=["shapes.py"])
    return files, (a, b, c)


def test_records_cover_added_modified_renamed_deleted(make_repo):
    repo = make_repo()
    repo.git("config", "diff.renames", "false")  # repofeed finds renames regardless
    files, (modified, renamed, deleted) = _history(repo)
    _init(repo)
    result = backfill(repo.path)
    assert result.commits == 4
    with open_store(repo.path) as store:
        records = list(store.evolution_records())
        first = [r for r in records if r["commit"] != modified and r["commit"] != renamed
                 and r["commit"] != deleted]
        assert {r["path"] for r in first} == set(files) | {"shapes.py", "notes.txt"}
        assert all(r["change"] == "added" and r["before"] is None for r in first)
        assert all(r["parent"] is None for r in first)

        by_commit = {r["commit"]: r for r in records[len(first):]}
        mod = by_commit[modified]
        assert (mod["change"], mod["path"], mod["old_path"]) == ("modified", "shapes.py", None)
        assert mod["before"] == PY and "perimeter(w, l)" in mod["after"]
        assert mod["message"] == "Rename perimeter's argument\n"
        assert mod["author"] == "Ada Tester" and "@" not in mod["author"]
        assert mod["timestamp"] == repo.EPOCH + 120

        ren = by_commit[renamed]
        assert (ren["change"], ren["path"], ren["old_path"]) == ("renamed", "NOTES.txt",
                                                                 "notes.txt")
        assert (ren["before"], ren["after"]) == ("keep me\n", "keep me\nand me\n")

        gone = by_commit[deleted]
        assert (gone["change"], gone["path"], gone["after"]) == ("deleted", "shapes.py", None)
        assert gone["before"] == mod["after"]

        docs = {d["path"] for d in store.documents()}
        assert "shapes.py" not in docs and "NOTES.txt" in docs and "notes.txt" not in docs
        assert docs == set(files) | {"NOTES.txt"}


def test_skipped_files_are_counted_by_reason(make_repo):
    repo = make_repo()
    repo.write("repofeed.toml", "max_file_bytes = 20000\n")
    repo.commit("Sources", sample_files())
    (repo.path / "link.py").symlink_to("lib/store/schema.py")
    repo.commit("Add data", {
        "logo.png": b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4,
        "big.py": "x = 1\n" * 5000,
        "latin1.py": "# caf\xe9\n".encode("latin-1"),
        "model.bin": b"version https://git-lfs.github.com/spec/v1\noid sha256:"
                     + b"ab" * 32 + b"\nsize 123456\n",
    })
    other = repo.head()
    repo.git("update-index", "--add", "--cacheinfo", f"160000,{other},vendor/dep")
    repo.tick += 1
    repo.git("commit", "-q", "-m", "Add a submodule")
    _init(repo)
    backfill(repo.path)
    with open_store(repo.path) as store:
        stats = store.stats()
        expected = {"binary": 1, "too_large": 2, "not_utf8": 1, "lfs_pointer": 1,
                    "symlink": 1, "submodule": 1}
        # lib/store/*.py files above 20 kB are "too_large" too: count them from the tree
        big_sources = sum(1 for t in sample_files().values() if len(t.encode()) > 20000)
        expected["too_large"] = 1 + big_sources
        assert stats["skipped_in_history"] == expected
        assert stats["skipped_at_head"] == expected
        skipped = store.skipped_files()
        assert skipped["vendor/dep"] == "submodule" and skipped["link.py"] == "symlink"
        paths = {d["path"] for d in store.documents()}
        assert not paths & {"logo.png", "big.py", "latin1.py", "model.bin", "link.py",
                            "vendor/dep"}
        recorded = {r["path"] for r in store.evolution_records()}
        assert not recorded & set(expected)


def test_merge_commits_give_no_records_unless_asked(make_repo):
    repo = make_repo()
    repo.commit("Sources", sample_files())
    repo.git("checkout", "-q", "-b", "feature")
    feature = repo.commit("Feature work", {"feature.py": "def feature():\n    return 42\n"})
    repo.git("checkout", "-q", "main")
    repo.commit("Mainline work", {"main.py": "def main():\n    return 0\n"})
    repo.tick += 1
    repo.git("merge", "-q", "--no-ff", "-m", "Merge feature", "feature")
    merge = repo.head()

    _init(repo)
    backfill(repo.path)
    with open_store(repo.path) as store:
        commits = [r["commit"] for r in store.evolution_records()]
        assert feature in commits and merge not in commits
        assert store.stats()["commits_processed"] == 4
        assert "feature.py" in {d["path"] for d in store.documents()}

    _init(repo, force=True, include_merges=True)
    backfill(repo.path)
    with open_store(repo.path) as store:
        merged = [r for r in store.evolution_records() if r["commit"] == merge]
        assert [(r["path"], r["change"]) for r in merged] == [("feature.py", "added")]


def test_second_backfill_changes_nothing(sample_repo):
    _init(sample_repo)
    backfill(sample_repo.path)
    before = store_dump(sample_repo.path)
    again = backfill(sample_repo.path)
    assert again.commits == 0 and again.documents_changed == 0
    assert store_dump(sample_repo.path) == before


def _clean_copy(repo, name):
    """A copy of the freshly initialised store (same tokenizer), for a clean reference run."""
    src = repo.path / ".git" / "repofeed" / "store"
    dst = repo.path.parent / name
    shutil.copytree(src, dst)
    return dst


@pytest.mark.parametrize("stop_after", [1, 2, 7, 60])
def test_interrupted_backfill_resumes_to_the_clean_result(make_repo, stop_after):
    repo = make_repo()
    repo.commit("Sources", sample_files())
    fast_history(repo, 80)
    _init(repo)
    clean = _clean_copy(repo, "clean-store")
    backfill(repo.path, store=clean)
    partial = backfill(repo.path, stop_after=stop_after)
    assert partial.commits == stop_after
    with open_store(repo.path) as store:
        assert store.stats()["commits_processed"] == stop_after
        assert store.stats()["head"] is None  # the snapshot waits for the end of history
    backfill(repo.path)
    assert store_dump(repo.path) == store_dump(clean)


def _wait_for(predicate, timeout=60.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


def _processed(repo):
    try:
        with open_store(repo.path) as store:
            return store.meta(K_COMMITS_DONE, 0)  # one key: stats() surveys the whole store
    except Exception:
        return 0


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT])
def test_killed_backfill_then_rerun_equals_a_clean_run(make_repo, sig):
    repo = make_repo()
    repo.commit("Sources", sample_files())
    fast_history(repo, 1500, files=60)
    _init(repo)
    clean = _clean_copy(repo, "clean-store")
    backfill(repo.path, store=clean)
    total = store_dump(clean)

    proc = subprocess.Popen([sys.executable, "-m", "repofeed.daemon", "backfill",
                             str(repo.path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    with open_store(repo.path) as reader:  # one reader, a fresh view per poll: a cheap poll
        _wait_for(lambda: reader.meta(K_COMMITS_DONE, 0) >= 100,
                  what="the backfill to store 100 commits")
        # Frozen at once, the backfill cannot end between this check and the signal however
        # fast the machine is; the count read while it is stopped says where the signal lands.
        proc.send_signal(signal.SIGSTOP)
        frozen = reader.meta(K_COMMITS_DONE, 0)
    assert 100 <= frozen < 1501, "the backfill ended before it could be interrupted"
    proc.send_signal(sig)
    proc.send_signal(signal.SIGCONT)
    _out, err = proc.communicate(timeout=60)
    done = _processed(repo)
    assert frozen <= done < 1501, (proc.returncode, err[-2000:])
    if sig == signal.SIGINT:
        assert proc.returncode == 130
        assert "run `repofeed backfill` again" in err
    else:
        assert proc.returncode == -signal.SIGKILL
    run_cli("backfill", str(repo.path))
    assert store_dump(repo.path) == total


def test_empty_repository(make_repo, tmp_path):
    repo = make_repo()
    done = run_cli("init", str(repo.path), check=False)
    assert done.returncode == 1
    assert "has no commits yet" in done.stderr and "--tokenizer" in done.stderr
    assert not (repo.path / ".git" / "repofeed" / "store" / "data.mdb").exists()

    # with a tokenizer of its own, an empty repository is a valid, empty store
    donor = make_repo("donor")
    donor.commit("Sources", sample_files())
    init_store(donor.path)
    model = tmp_path / "donor.model"
    with open_store(donor.path) as store:
        model.write_bytes(store.tokenizer.model)
    run_cli("init", str(repo.path), "--tokenizer", str(model))
    done = run_cli("backfill", str(repo.path))
    assert "Backfilled 0 commits" in done.stdout and "no commits yet" in done.stdout
    with open_store(repo.path) as store:
        stats = store.stats()
        assert (stats["commits_processed"], stats["documents"], stats["windows"]) == (0, 0, 0)
    # the first commit is then picked up
    repo.commit("First", {"a.py": "print('hello')\n"})
    backfill(repo.path)
    with open_store(repo.path) as store:
        assert [d["path"] for d in store.documents()] == ["a.py"]


def test_single_commit(make_repo):
    repo = make_repo()
    files = sample_files()
    repo.commit("Only commit", files)
    _init(repo)
    backfill(repo.path)
    with open_store(repo.path) as store:
        records = list(store.evolution_records())
        assert len(records) == len(files)
        assert {r["change"] for r in records} == {"added"}
        assert len(store.documents()) == len(files)


def test_detached_head_is_followed(make_repo):
    repo = make_repo()
    repo.commit("Sources", sample_files())
    kept = repo.commit("Kept", {"kept.py": "KEPT = True\n"})
    repo.commit("Later", {"later.py": "LATER = True\n"})
    repo.git("checkout", "-q", "--detach", kept)
    result = _init(repo)
    assert result.follow == "HEAD (detached)"
    backfill(repo.path)
    with open_store(repo.path) as store:
        paths = {d["path"] for d in store.documents()}
        assert "kept.py" in paths and "later.py" not in paths
        assert store.stats()["head"] == kept
        assert store.stats()["commits_processed"] == 2


def test_paths_with_spaces_and_non_ascii(make_repo):
    repo = make_repo()
    odd = {"dir with space/naïve café.py": "ÉTÉ = 'été'\n", "数据/读取.py": "x = '中文'\n"}
    repo.commit("Sources", {**sample_files(), **odd})
    repo.git("mv", "dir with space/naïve café.py", "dir with space/résumé.py")
    repo.commit("Rename with accents")
    _init(repo)
    backfill(repo.path)
    with open_store(repo.path) as store:
        docs = {d["path"]: d for d in store.documents()}
        assert "dir with space/résumé.py" in docs and "数据/读取.py" in docs
        assert store.tokenizer.decode(store.tokens(docs["数据/读取.py"]["array"])) == \
            "x = '中文'\n"
        renamed = [r for r in store.evolution_records() if r["change"] == "renamed"]
        assert [(r["old_path"], r["path"]) for r in renamed] == [
            ("dir with space/naïve café.py", "dir with space/résumé.py")]


def test_progress_bar_reports_commits_per_second(make_repo):
    repo = make_repo()
    repo.commit("Sources", sample_files())
    fast_history(repo, 200)
    run_cli("init", str(repo.path))
    done = run_cli("backfill", str(repo.path))
    assert "201/201" in done.stderr and "commits/s" in done.stderr
    assert "Backfilled 201 commits" in done.stdout


def test_snapshot_follows_the_tip_after_new_commits(sample_repo):
    _init(sample_repo)
    backfill(sample_repo.path)
    with open_store(sample_repo.path) as store:
        before = {d["path"]: d["array"] for d in store.documents()}
        sample_repo.commit("Add and change", {"new.py": "NEW = 1\n",
                                              "cmd/greet.go": "package main\n"})
        result = backfill(sample_repo.path)
        assert result.commits == 1 and result.documents_changed == 2
        after = {d["path"]: d["array"] for d in store.documents()}  # the same Store object
    assert set(after) == set(before) | {"new.py"}
    assert [p for p in before if before[p] != after[p]] == ["cmd/greet.go"]


def test_full_disk_stops_cleanly_and_loses_nothing(make_repo, tiny_disk, tmp_path):
    repo = make_repo()
    repo.commit("Sources", sample_files())
    fast_history(repo, 600, files=60)
    store = tiny_disk / "store"
    run_cli("init", str(repo.path), "--store", str(store))
    clean = tmp_path / "clean-store"
    shutil.copytree(store, clean)
    backfill(repo.path, store=clean)

    done = run_cli("backfill", str(repo.path), check=False)
    assert done.returncode == 1
    assert "full" in done.stderr and "run the command again" in done.stderr
    assert "Traceback" not in done.stderr
    with open_store(store) as partial:
        stats = partial.stats()
        assert 0 < stats["commits_processed"] < 601
        # every commit the cursor says is done has all its records
        commits = {r["commit"] for r in partial.raw_records()}
        assert len(commits) == stats["commits_processed"]

    # room again: the same store, moved to a larger disk, finishes the job
    bigger = tmp_path / "bigger-store"
    shutil.copytree(store, bigger)
    repo.git("config", "repofeed.store", str(bigger))
    run_cli("backfill", str(repo.path))
    assert store_dump(bigger) == store_dump(clean)


def test_stored_tokens_equal_a_full_encode_of_each_text(make_repo):
    """Edited files are encoded around their edit only; the result must not differ."""
    repo = make_repo()
    files = sample_files()
    repo.commit("Sources", files)
    fast_history(repo, 150)
    for n in range(5):
        repo.commit(f"Edit {n}", {name: text.replace("  ", " ", n + 1) + f"# edit {n}\n"
                                  for name, text in list(files.items())[n::3]})
    _init(repo)
    backfill(repo.path)
    with open_store(repo.path) as store:
        tok = store.tokenizer
        for raw, rec in zip(store.raw_records(), store.evolution_records()):
            for side in ("before", "after"):
                if raw[side] is not None:
                    assert store.tokens(raw[side]).tolist() == tok.encode(rec[side])
