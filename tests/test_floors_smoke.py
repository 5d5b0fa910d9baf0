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
