"""Installing, upgrading and removing repofeed's git hooks.

The hooks are one POSIX sh template (``templates/hook.sh``) that appends a line to the spool in
``<git common dir>/repofeed/`` and exits 0. They go where git looks for hooks: the common git
directory's ``hooks/``, which every worktree shares, or ``core.hooksPath`` when it is set. A
relative ``core.hooksPath`` is read by git from each worktree's root, so there the hooks go
into every worktree's copy of that directory.

A hook that was there before is moved, under its own name, to ``repofeed-chained/`` beside
ours, run by ours once, and moved back by ``uninstall``: bytes, mode and all. Its own
``<name>.legacy`` (the pre-commit framework keeps an older hook there) moves with it, so that
whatever it chains still sits where it looks. Our own hooks are recognised by a marker line,
so installing again rewrites them in place (an upgrade) and never chains one to itself.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import pygit2

from repofeed.store.errors import RepoError
from repofeed.store.locate import common_dir, open_repository, repofeed_dir

HOOKS = ("post-commit", "post-merge", "post-rewrite", "post-checkout")
MARKER = b"# repofeed-hook version "
VERSION = 2
SPOOL_NAME = "spool"
CHAINED_DIR = "repofeed-chained"
RECORD_NAME = "hook-dirs"  # in <git common dir>/repofeed/: where hooks were installed

# In the common git directory's hooks/, the spool is found from the hook's own path, so a
# moved repository still nudges its own daemon. A core.hooksPath directory may serve many
# repositories (or sit in the working tree), so there the hook asks git where it runs: one
# more process, about a millisecond.
_SPOOL_BESIDE = f'spool="$here/../repofeed/{SPOOL_NAME}"'
_SPOOL_ASKED = (f'spool=\ncommon=$(git rev-parse --git-common-dir 2>/dev/null) && '
                f'[ -n "$common" ] && spool="$common/repofeed/{SPOOL_NAME}"')


@dataclass
class HookState:
    name: str
    path: Path
    state: str           # installed | outdated | foreign | absent
    chained: bool        # a previous hook is kept in repofeed-chained/ and run after ours


def spool_path(repo: pygit2.Repository) -> Path:
    return repofeed_dir(repo) / SPOOL_NAME


def hooks_dirs(repo: pygit2.Repository) -> tuple[list[Path], bool]:
    """Every directory git runs this repository's hooks from (the first is the main
    worktree's), and whether ``core.hooksPath`` names them."""
    try:
        configured = repo.config["core.hooksPath"]
    except KeyError:
        return [common_dir(repo) / "hooks"], False
    path = Path(os.path.expanduser(configured))
    if path.is_absolute():
        return [path], True
    roots = [Path(repo.workdir)] if repo.workdir else [Path(repo.path)]
    for name in repo.list_worktrees():
        try:
            roots.append(Path(repo.lookup_worktree(name).path))
        except (KeyError, pygit2.GitError):
            continue
    return list(dict.fromkeys((root / path).resolve() for root in roots)), True


def hooks_dir(repo: pygit2.Repository) -> tuple[Path, bool]:
    dirs, custom = hooks_dirs(repo)
    return dirs[0], custom


def _template() -> str:
    return resources.files("repofeed.hooks").joinpath("templates/hook.sh").read_text("utf-8")


def render(name: str, custom_dir: bool) -> bytes:
    """The hook script for ``name``; in a ``core.hooksPath`` directory it asks git for the
    spool's place at run time."""
    body = _template().replace("@SPOOL@", _SPOOL_ASKED if custom_dir else _SPOOL_BESIDE)
    return body.replace("@HOOK@", name).replace("@VERSION@", str(VERSION)).encode()


def _is_ours(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            return MARKER in fh.read(512)
    except OSError:
        return False


def _exists(path: Path) -> bool:
    return path.exists() or path.is_symlink()


def _write_executable(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.repofeed-tmp")
    tmp.write_bytes(data)
    tmp.chmod(0o755)
    os.replace(tmp, path)


def _state(path: Path, wanted: bytes) -> str:
    if not _exists(path):
        return "absent"
    if not _is_ours(path):
        return "foreign"
    return "installed" if path.read_bytes() == wanted else "outdated"


def _record(repo: pygit2.Repository, directories: list[Path]) -> None:
    record = repofeed_dir(repo) / RECORD_NAME
    known = set(_recorded(repo))
    with open(record, "a", encoding="utf-8") as fh:
        for directory in directories:
            if str(directory) not in known:
                fh.write(f"{directory}\n")


def _recorded(repo: pygit2.Repository) -> list[str]:
    try:
        return (repofeed_dir(repo) / RECORD_NAME).read_text("utf-8").splitlines()
    except OSError:
        return []


def hook_states(repo_path: str | Path | None) -> list[HookState]:
    """The hooks of the main worktree's hooks directory, as ``repofeed status`` shows them."""
    repo = open_repository(repo_path)
    directory, custom = hooks_dir(repo)
    out = []
    for name in HOOKS:
        path, wanted = directory / name, render(name, custom)
        state = _state(path, wanted)
        legacy = directory / f"{name}.legacy"  # another tool chaining ours
        if state == "foreign" and _is_ours(legacy):
            state = _state(legacy, wanted)
        out.append(HookState(name, path, state, _exists(directory / CHAINED_DIR / name)))
    return out


def _install_one(directory: Path, name: str, custom: bool) -> str:
    path, legacy = directory / name, directory / f"{name}.legacy"
    chained_dir = directory / CHAINED_DIR
    wanted = render(name, custom)
    state = _state(path, wanted)
    if state == "foreign" and _is_ours(legacy):
        # Another tool (pre-commit, say) took our place and runs ours as its .legacy.
        if _state(legacy, wanted) == "installed":
            return f"{name}: already installed (run by {path.name}, which chains it)"
        _write_executable(legacy, wanted)
        return f"{name}: upgraded (run by {path.name}, which chains it)"
    if state == "installed":
        return f"{name}: already installed"
    if state == "outdated":
        _write_executable(path, wanted)
        old_legacy = legacy  # version 1 kept the chained hook as <name>.legacy
        if _exists(old_legacy) and not _exists(chained_dir / name):
            chained_dir.mkdir(exist_ok=True)
            os.rename(old_legacy, chained_dir / name)
        return f"{name}: upgraded"
    moved: list[tuple[Path, Path]] = []
    try:
        if state == "foreign":
            chained_dir.mkdir(exist_ok=True)
            for source in (path, legacy):
                if source == legacy and (not _exists(legacy) or _is_ours(legacy)):
                    continue
                target = chained_dir / source.name
                if _exists(target):
                    raise RepoError(
                        f"{target} exists already, so {source} cannot be kept there; move "
                        f"one of them away, then run `repofeed install` again."
                    )
                os.rename(source, target)  # bytes, mode and a symlink kept as they are
                moved.append((target, source))
        _write_executable(path, wanted)
    except BaseException:
        for target, source in reversed(moved):  # put the user's hook back where it was
            os.rename(target, source)
        raise
    if state == "foreign":
        return f"{name}: installed; the existing hook now runs from {CHAINED_DIR}/{name}"
    return f"{name}: installed"


def install(repo_path: str | Path | None) -> list[str]:
    """Install or upgrade the hooks; returns one line per hook and directory done."""
    repo = open_repository(repo_path)
    directories, custom = hooks_dirs(repo)
    repofeed_dir(repo).mkdir(parents=True, exist_ok=True)  # where the hooks append
    _record(repo, directories)
    done = []
    for directory in directories:
        try:
            directory.mkdir(parents=True, exist_ok=True)
            lines = [_install_one(directory, name, custom) for name in HOOKS]
        except OSError as exc:
            raise RepoError(f"cannot install the hooks in {directory}: {exc}") from exc
        prefix = f"{directory}: " if len(directories) > 1 else ""
        done.extend(prefix + line for line in lines)
    return done


def _uninstall_one(directory: Path, name: str) -> str | None:
    path, legacy = directory / name, directory / f"{name}.legacy"
    chained_dir = directory / CHAINED_DIR
    if _exists(path) and not _is_ours(path) and _is_ours(legacy):
        legacy.unlink()  # ours, chained by another tool: that tool runs nothing now
        return f"{name}: removed from {legacy.name}"
    if not _exists(path):
        return None
    if not _is_ours(path):
        return f"{name}: not repofeed's, left alone"
    path.unlink()
    restored = False
    for kept in (chained_dir / name, chained_dir / f"{name}.legacy"):
        if _exists(kept):
            os.rename(kept, directory / kept.name)
            restored = True
    try:
        chained_dir.rmdir()
    except OSError:
        pass  # not empty (other hooks still chained) or never made
    return f"{name}: removed; the previous hook is back" if restored else f"{name}: removed"


def uninstall(repo_path: str | Path | None) -> list[str]:
    """Remove repofeed's hooks, wherever they were installed, and put back what they chained."""
    repo = open_repository(repo_path)
    directories, _custom = hooks_dirs(repo)
    everywhere = list(dict.fromkeys([*directories, *map(Path, _recorded(repo))]))
    done = []
    for directory in everywhere:
        prefix = f"{directory}: " if len(everywhere) > 1 else ""
        for name in HOOKS:
            try:
                line = _uninstall_one(directory, name)
            except OSError as exc:
                raise RepoError(f"cannot remove the hook {directory / name}: {exc}") from exc
            if line is not None:
                done.append(prefix + line)
    try:
        (repofeed_dir(repo) / RECORD_NAME).unlink()
    except OSError:
        pass
    return done or ["no repofeed hooks were installed"]
