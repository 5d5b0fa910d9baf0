"""History rewrites: amend, reset, rebase, branch switches, deleted branches and pruned objects.

After each, a run of the pipeline (what the daemon does on a nudge) leaves the snapshot at the
new tip, and records of commits no longer reachable from HEAD or any local branch out of the
datasets (kept, marked superseded, for who asks for them)."""

from __future__ import annotations

import subprocess

from helpers import GitRepo, run_cli, sample_files, wait_for
from repofeed.daemon.ingest import backfill
from repofeed.daemon.init import init_store
from repofeed.store import EvolutionDataset, open_store


def _live(repo) -> list[tuple[str, str]]:
    with open_store(repo.path) as store:
        return [(r["commit"], r["path"]) for r in store.evolution_records()]


def _all(repo) -> list[tuple[str, str]]:
    with open_store(repo.path) as store:
        return [(r["commit"], r["path"]) for r in store.evolution_records(True)]


def _docs(repo) -> dict[str, str]:
    with open_store(repo.path) as store:
        return {d["path"]: store.tokenizer.decode(store.tokens(d["array"]))
                for d in store.documents()}


def _started(make_repo):
    repo = make_repo()
    repo.commit("Sources", sample_files())
    init_store(repo.path)
    backfill(repo.path)
    return repo


def test_amend_supersedes_the_old_commit(make_repo):
    repo = _started(make_repo)
    old = repo.commit("Add a", {"a.py": "A = 1\n"})
    backfill(repo.path)
    repo.write("a.py", "A = 2\n")
    repo.git("add", "a.py")
    repo.tick += 1
    repo.git("commit", "-q", "--amend", "-m", "Add a, fixed")
    new = repo.head()
    result = backfill(repo.path)
    assert (result.commits, result.superseded) == (1, 1)
    assert (old, "a.py") not in _live(repo) and (new, "a.py") in _live(repo)
    assert (old, "a.py") in _all(repo)
    assert _docs(repo)["a.py"] == "A = 2\n"
    with open_store(repo.path) as store:
        stats = store.stats()
        assert stats["superseded_records"] == 1 and stats["head"] == new
    with_old = EvolutionDataset(repo.path, include_superseded=True)
    assert len(EvolutionDataset(repo.path)) == len(with_old) - 1


def test_reset_supersedes_and_a_reset_back_restores(make_repo):
    repo = _started(make_repo)
    base = repo.head()
    b = repo.commit("Add b", {"b.py": "B = 1\n"})
    c = repo.commit("Add c", {"c.py": "C = 1\n"})
    backfill(repo.path)
    before = _live(repo)
    repo.git("reset", "-q", "--hard", base)
    result = backfill(repo.path)
    assert result.superseded == 2 and result.commits == 0
    assert {commit for commit, _ in _live(repo)}.isdisjoint({b, c})
    assert "b.py" not in _docs(repo) and "c.py" not in _docs(repo)

    repo.git("reset", "-q", "--hard", c)  # back again, as from the reflog
    result = backfill(repo.path)
    assert (result.restored, result.commits) == (2, 0)  # nothing processed twice
    assert _live(repo) == before
    with open_store(repo.path) as store:
        assert store.stats()["superseded_records"] == 0


def test_rebase_supersedes_the_old_commits_and_ingests_the_new(make_repo):
    repo = _started(make_repo)
    repo.git("checkout", "-q", "-b", "feature")
    f1 = repo.commit("Feature one", {"f.py": "F = 1\n"})
    f2 = repo.commit("Feature two", {"f.py": "F = 2\n"})
    backfill(repo.path)
    repo.git("checkout", "-q", "main")
    m = repo.commit("Main moves on", {"m.py": "M = 1\n"})
    repo.git("checkout", "-q", "feature")
    repo.tick += 1
    repo.git("rebase", "-q", "main")
    backfill(repo.path)
    live = {commit for commit, _ in _live(repo)}
    assert f1 not in live and f2 not in live and m in live
    rebased = repo.git("rev-list", "main..feature").split()
    assert len(rebased) == 2 and set(rebased) <= live
    assert _docs(repo)["f.py"] == "F = 2\n" and "m.py" in _docs(repo)


def test_branch_switch_moves_the_snapshot_and_keeps_other_branches_live(make_repo):
    repo = _started(make_repo)
    main_only = repo.commit("Main only", {"main.py": "MAIN = 1\n"})
    backfill(repo.path)
    repo.git("checkout", "-q", "-b", "side", "HEAD~1")
    side = repo.commit("Side only", {"side.py": "SIDE = 1\n"})
    backfill(repo.path)
    docs = _docs(repo)
    assert "side.py" in docs and "main.py" not in docs
    live = {commit for commit, _ in _live(repo)}
    assert {main_only, side} <= live  # main's commit is still on a branch

    repo.git("checkout", "-q", "main")
    repo.git("branch", "-q", "-D", "side")
    result = backfill(repo.path)
    assert result.superseded == 1
    assert side not in {commit for commit, _ in _live(repo)}
    assert "main.py" in _docs(repo) and "side.py" not in _docs(repo)


def test_pruned_old_tip_is_still_superseded(make_repo):
    repo = _started(make_repo)
    old = repo.commit("Doomed", {"d.py": "D = 1\n"})
    backfill(repo.path)
    repo.git("reset", "-q", "--hard", "HEAD~1")
    repo.git("reflog", "expire", "--expire=now", "--all")
    repo.git("gc", "-q", "--prune=now")
    gone = subprocess.run(["git", "cat-file", "-e", old], cwd=repo.path, capture_output=True)
    assert gone.returncode != 0  # the old tip is no longer in the object database
    result = backfill(repo.path)
    assert result.superseded == 1
    assert old not in {commit for commit, _ in _live(repo)}
    assert "d.py" not in _docs(repo)


def test_backfill_from_a_linked_worktree_follows_the_store_s_worktree(make_repo, tmp_path):
    repo = _started(make_repo)
    linked = tmp_path / "linked"
    repo.git("worktree", "add", "-q", "-b", "elsewhere", str(linked))
    repo.commit_in(linked, "In the linked tree", {"only_there.py": "X = 1\n"})
    done = run_cli("backfill", str(linked))
    assert "Backfilled 0 commits" in done.stdout
    assert "only_there.py" not in _docs(repo)  # the main worktree's HEAD did not move


def test_commits_of_an_interrupted_run_are_superseded_when_rewritten_away(make_repo):
    repo = _started(make_repo)
    base = repo.head()
    b = repo.commit("Add b", {"b.py": "B = 1\n"})
    c = repo.commit("Add c", {"c.py": "C = 1\n"})
    repo.commit("Add d", {"d.py": "D = 1\n"})
    assert backfill(repo.path, stop_after=2).commits == 2  # cut short after b and c
    repo.git("reset", "-q", "--hard", base)
    e = repo.commit("Add e", {"e.py": "E = 1\n"})
    result = backfill(repo.path)
    assert (result.commits, result.superseded) == (1, 2)
    live = {commit for commit, _ in _live(repo)}
    assert b not in live and c not in live and e in live


def test_the_daemon_takes_in_the_history_an_unshallow_fetch_brings(make_repo, tmp_path,
                                                                   daemon_for):
    src = _started(make_repo)
    src.commit("Add a", {"a.py": "A = 1\n"})
    src.commit("Add b", {"b.py": "B = 1\n"})
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", "--depth", "1", f"file://{src.path}", str(clone)],
                   check=True, capture_output=True)
    repo = GitRepo(clone)
    init_store(clone)
    backfill(clone)
    assert _all(repo) == []  # the only commit is the boundary: its parents are not here
    daemon_for(repo)
    subprocess.run(["git", "fetch", "-q", "--unshallow"], cwd=clone, check=True,
                   capture_output=True)

    def processed():
        with open_store(clone) as store:
            return store.stats()["commits_processed"] == 3

    wait_for(processed, "the commits the fetch brought")
    paths = [path for _commit, path in _live(repo)]
    assert paths[-2:] == ["a.py", "b.py"]  # the older commits first, then the boundary
    assert len(paths) == len(sample_files()) + 2
    assert set(_docs(repo)) == set(sample_files()) | {"a.py", "b.py"}
