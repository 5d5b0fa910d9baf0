"""`repofeed install` / `uninstall`: sh hooks that append to the spool and never fail git."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess

import pytest

from helpers import GitRepo, run_cli
from repofeed.hooks.install import HOOKS, VERSION, hook_states

LEGACY = """#!/bin/sh
echo "legacy $(basename "$0") $*" >> "{log}"
cat >> "{log}"
exit {status}
"""


def spool(repo: GitRepo) -> str:
    path = repo.path / ".git" / "repofeed" / "spool"
    return path.read_text() if path.exists() else ""


def installed(repo: GitRepo) -> GitRepo:
    repo.commit("First", {"a.py": "A = 1\n"})
    run_cli("install", str(repo.path))
    return repo


def test_install_writes_four_executable_sh_hooks(make_repo):
    repo = installed(make_repo())
    for name in HOOKS:
        path = repo.path / ".git" / "hooks" / name
        assert path.stat().st_mode & stat.S_IXUSR
        assert path.read_text().startswith("#!/bin/sh\n")
        code = [line for line in path.read_text().splitlines() if not line.startswith("#")]
        assert not any("python" in line or "repofeed " in line for line in code)


def test_each_hook_appends_to_the_spool(make_repo):
    repo = installed(make_repo())
    first = repo.head()
    repo.commit("Second", {"a.py": "A = 2\n"})
    assert spool(repo).splitlines() == ["post-commit "]

    repo.tick += 1
    repo.git("commit", "-q", "--amend", "-m", "Second, amended")
    amended = repo.head()
    lines = spool(repo).splitlines()
    assert "post-rewrite amend" in lines
    assert any(line.endswith(f" {amended}") and line != amended for line in lines)

    repo.git("checkout", "-q", "-b", "side", first)
    assert any(line.startswith(f"post-checkout {amended} {first} 1") for line in
               spool(repo).splitlines())
    repo.commit("On side", {"b.py": "B = 1\n"})
    repo.git("checkout", "-q", "main")
    repo.tick += 1
    repo.git("merge", "-q", "--no-edit", "side")
    assert "post-merge 0" in spool(repo).splitlines()


def test_a_commit_never_fails_when_the_spool_cannot_be_written(make_repo, tiny_disk):
    repo = installed(make_repo())
    repofeed = repo.path / ".git" / "repofeed"
    # gone: the directory was deleted (say, with the store)
    shutil.rmtree(repofeed)
    done = subprocess.run(["git", "commit", "-q", "--allow-empty", "-m", "gone"], cwd=repo.path,
                          env=repo.env(), capture_output=True, text=True)
    assert done.returncode == 0 and done.stderr == ""
    # a full disk
    repofeed.symlink_to(tiny_disk)
    with open(tiny_disk / "filler", "wb") as fh:
        try:
            while True:
                fh.write(b"\0" * 65536)
        except OSError:
            pass
    done = subprocess.run(["git", "commit", "-q", "--allow-empty", "-m", "full"], cwd=repo.path,
                          env=repo.env(), capture_output=True, text=True)
    assert done.returncode == 0 and done.stderr == ""
    # a read-only disk (read-only for root too)
    subprocess.run(["mount", "-o", "remount,ro", str(tiny_disk)], check=True)
    done = subprocess.run(["git", "commit", "-q", "--allow-empty", "-m", "ro"], cwd=repo.path,
                          env=repo.env(), capture_output=True, text=True)
    assert done.returncode == 0 and done.stderr == ""
    assert repo.git("log", "--format=%s", "-3").split() == ["ro", "full", "gone"]


def test_hooks_need_no_repofeed_on_path(make_repo):
    repo = installed(make_repo())
    env = {**repo.env(), "PATH": "/usr/bin:/bin"}  # no virtual environment, no repofeed
    done = subprocess.run(["git", "commit", "-q", "--allow-empty", "-m", "bare PATH"],
                          cwd=repo.path, env=env, capture_output=True, text=True)
    assert done.returncode == 0 and done.stderr == ""
    assert spool(repo).splitlines() == ["post-commit "]


def test_an_existing_hook_is_chained_once_and_restored_byte_for_byte(make_repo, tmp_path):
    repo = make_repo()
    repo.commit("First", {"a.py": "A = 1\n"})
    log = tmp_path / "legacy.log"
    hooks = repo.path / ".git" / "hooks"
    originals = {}
    for name in ("post-commit", "post-rewrite"):
        (hooks / name).write_text(LEGACY.format(log=log, status=0))
        (hooks / name).chmod(0o751)
        originals[name] = ((hooks / name).read_bytes(), (hooks / name).stat().st_mode)
    out = run_cli("install", str(repo.path)).stdout
    assert "the existing hook now runs from repofeed-chained/post-commit" in out
    run_cli("install", str(repo.path))  # twice: still chained once

    repo.commit("Second", {"a.py": "A = 2\n"})
    assert log.read_text().splitlines() == ["legacy post-commit "]  # under its own name
    assert spool(repo).splitlines() == ["post-commit "]
    log.write_text("")
    old = repo.head()
    repo.tick += 1
    repo.git("commit", "-q", "--amend", "-m", "Second, amended")
    # the chained post-rewrite gets the same arguments and the same input
    lines = log.read_text().splitlines()
    at = lines.index("legacy post-rewrite amend")
    assert lines[at + 1] == f"{old} {repo.head()}"
    assert lines.count("legacy post-commit ") == 1

    run_cli("uninstall", str(repo.path))
    for name, (data, mode) in originals.items():
        assert (hooks / name).read_bytes() == data and (hooks / name).stat().st_mode == mode
    for name in ("post-merge", "post-checkout"):
        assert not (hooks / name).exists()
    assert not (hooks / "repofeed-chained").exists()


def test_the_chained_hook_keeps_its_exit_status(make_repo, tmp_path):
    repo = make_repo()
    first = repo.commit("First", {"a.py": "A = 1\n"})
    hook = repo.path / ".git" / "hooks" / "post-checkout"
    hook.write_text(LEGACY.format(log=tmp_path / "log", status=3) + "\n")
    hook.chmod(0o755)

    def checkout(branch: str) -> int:
        return subprocess.run(["git", "checkout", "-q", "-b", branch, first], cwd=repo.path,
                              env=repo.env(), capture_output=True, text=True).returncode

    alone = checkout("alone")
    assert alone != 0
    run_cli("install", str(repo.path))
    assert checkout("chained") == alone  # what git did with that hook alone
    assert spool(repo).startswith("post-checkout ")


def test_a_chained_hook_that_commits_does_not_loop(make_repo):
    repo = make_repo()
    repo.commit("First", {"a.py": "A = 1\n"})
    hook = repo.path / ".git" / "hooks" / "post-commit"
    # Without a guard this hook would commit forever; chained by repofeed it runs once.
    hook.write_text('#!/bin/sh\ngit commit -q --allow-empty -m "made by the hook"\n')
    hook.chmod(0o755)
    run_cli("install", str(repo.path))
    done = subprocess.run(["git", "commit", "-q", "--allow-empty", "-m", "by hand"],
                          cwd=repo.path, env=repo.env(), capture_output=True, text=True,
                          timeout=30)
    assert done.returncode == 0
    assert repo.git("log", "--format=%s").splitlines() == [
        "made by the hook", "by hand", "First"]
    assert spool(repo).splitlines() == ["post-commit ", "post-commit "]


def test_an_older_repofeed_hook_is_upgraded(make_repo):
    repo = installed(make_repo())
    hook = repo.path / ".git" / "hooks" / "post-commit"
    hook.write_text("#!/bin/sh\n# repofeed-hook version 0\nexit 0\n")
    out = run_cli("install", str(repo.path)).stdout
    assert "post-commit: upgraded" in out
    assert f"version {VERSION}" in hook.read_text()
    assert not (hook.parent / "repofeed-chained").exists()  # never chained to itself


# A dispatcher as the pre-commit framework writes one: it finds its own older hook as
# "$HERE/<its name>.legacy" and reads its hook type from its file name.
DISPATCHER = """#!/bin/sh
HERE="$(cd "$(dirname "$0")" && pwd)"
NAME="$(basename "$0")"
echo "dispatch $NAME" >> "{log}"
if [ -x "$HERE/$NAME.legacy" ]; then "$HERE/$NAME.legacy" "$@" || exit $?; fi
exit 0
"""


def test_a_dispatcher_with_its_own_legacy_hook_keeps_working(make_repo, tmp_path):
    repo = make_repo()
    first = repo.commit("First", {"a.py": "A = 1\n"})
    log = tmp_path / "log"
    hooks = repo.path / ".git" / "hooks"
    (hooks / "post-checkout").write_text(DISPATCHER.format(log=log))
    (hooks / "post-checkout.legacy").write_text(LEGACY.format(log=log, status=0))
    originals = {}
    for name in ("post-checkout", "post-checkout.legacy"):
        (hooks / name).chmod(0o755)
        originals[name] = (hooks / name).read_bytes()
    run_cli("install", str(repo.path))
    done = subprocess.run(["git", "checkout", "-q", "-b", "other", first], cwd=repo.path,
                          env=repo.env(), capture_output=True, text=True)
    assert done.returncode == 0 and done.stderr == ""
    assert log.read_text().splitlines() == ["dispatch post-checkout",
                                            f"legacy post-checkout.legacy {first} {first} 1"]
    assert spool(repo).startswith("post-checkout ")
    run_cli("uninstall", str(repo.path))
    assert {n: (hooks / n).read_bytes() for n in originals} == originals


def test_ours_chained_by_another_tool_counts_as_installed(make_repo, tmp_path):
    repo = installed(make_repo())
    hooks = repo.path / ".git" / "hooks"
    # another tool installs after repofeed and keeps ours as its .legacy
    os.rename(hooks / "post-commit", hooks / "post-commit.legacy")
    (hooks / "post-commit").write_text(DISPATCHER.format(log=tmp_path / "log"))
    (hooks / "post-commit").chmod(0o755)
    assert "post-commit: already installed (run by post-commit" in \
        run_cli("install", str(repo.path)).stdout
    repo.commit("Second", {"a.py": "A = 2\n"})
    assert spool(repo).splitlines() == ["post-commit "]
    assert {h.name: h.state for h in hook_states(repo.path)}["post-commit"] == "installed"
    run_cli("uninstall", str(repo.path))
    assert not (hooks / "post-commit.legacy").exists()
    assert (hooks / "post-commit").read_text().startswith("#!/bin/sh\nHERE=")


def test_worktrees_feed_one_spool(make_repo, tmp_path):
    repo = installed(make_repo())
    linked = tmp_path / "linked tree"
    repo.git("worktree", "add", "-q", "-b", "feature", str(linked))
    open(repo.path / ".git" / "repofeed" / "spool", "w").close()
    done = subprocess.run(["git", "commit", "-q", "--allow-empty", "-m", "in the worktree"],
                          cwd=linked, env=repo.env(), capture_output=True, text=True)
    assert done.returncode == 0
    assert spool(repo).splitlines() == ["post-commit "]


@pytest.mark.parametrize("hooks_path", ["custom-hooks", "ABSOLUTE"])
def test_core_hooks_path_is_used(make_repo, tmp_path, hooks_path):
    repo = make_repo("it's a repo")  # a quote in the path, for the hook's quoting
    repo.commit("First", {"a.py": "A = 1\n"})
    if hooks_path == "ABSOLUTE":
        hooks_path = str(tmp_path / "shared hooks")
    repo.git("config", "core.hooksPath", hooks_path)
    out = run_cli("install", str(repo.path)).stdout
    assert "core.hooksPath" in out
    target = (repo.path / hooks_path) if not os.path.isabs(hooks_path) else tmp_path / \
        "shared hooks"
    assert (target / "post-commit").exists()
    assert not (repo.path / ".git" / "hooks" / "post-commit").exists()
    repo.commit("Second", {"a.py": "A = 2\n"})
    assert spool(repo).splitlines() == ["post-commit "]


def test_uninstall_leaves_foreign_hooks_alone(make_repo):
    repo = make_repo()
    repo.commit("First", {"a.py": "A = 1\n"})
    hook = repo.path / ".git" / "hooks" / "post-commit"
    run_cli("install", str(repo.path))
    hook.write_text("#!/bin/sh\necho someone else's\n")  # replaced by another tool since
    out = run_cli("uninstall", str(repo.path)).stdout
    assert "post-commit: not repofeed's, left alone" in out
    assert hook.read_text() == "#!/bin/sh\necho someone else's\n"


def test_a_missing_spool_keeps_the_checkout_status(make_repo, tmp_path):
    repo = make_repo()
    first = repo.commit("First", {"a.py": "A = 1\n"})
    hook = repo.path / ".git" / "hooks" / "post-checkout"
    hook.write_text(LEGACY.format(log=tmp_path / "log", status=0))
    hook.chmod(0o755)
    run_cli("install", str(repo.path))
    shutil.rmtree(repo.path / ".git" / "repofeed")
    done = subprocess.run(["git", "checkout", "-q", "-b", "other", first], cwd=repo.path,
                          env=repo.env(), capture_output=True, text=True)
    assert (done.returncode, done.stderr) == (0, "")
    assert (tmp_path / "log").read_text().startswith("legacy post-checkout ")


def test_a_moved_repository_nudges_its_own_spool(make_repo, tmp_path):
    repo = installed(make_repo())
    moved = tmp_path / "moved"
    shutil.move(repo.path, moved)
    repo.path = moved
    (moved / ".git" / "repofeed").mkdir(exist_ok=True)
    repo.commit("After the move", {"a.py": "A = 2\n"})
    assert spool(repo).splitlines() == ["post-commit "]


def test_relative_hooks_path_reaches_linked_worktrees(make_repo, tmp_path):
    repo = make_repo()
    repo.commit("First", {"a.py": "A = 1\n"})
    linked = tmp_path / "linked"
    repo.git("worktree", "add", "-q", "-b", "feature", str(linked))
    repo.git("config", "core.hooksPath", ".githooks")  # read from each worktree's root
    run_cli("install", str(repo.path))
    assert (linked / ".githooks" / "post-commit").exists()
    done = subprocess.run(["git", "commit", "-q", "--allow-empty", "-m", "linked"],
                          cwd=linked, env=repo.env(), capture_output=True, text=True)
    assert done.returncode == 0
    assert spool(repo).splitlines() == ["post-commit "]


def test_uninstall_finds_hooks_where_they_were_installed(make_repo, tmp_path):
    repo = installed(make_repo())
    repo.git("config", "core.hooksPath", str(tmp_path / "elsewhere"))  # changed since
    out = run_cli("uninstall", str(repo.path)).stdout
    assert "post-commit: removed" in out
    assert not (repo.path / ".git" / "hooks" / "post-commit").exists()
