"""Installing, upgrading and removing repofeed's git hooks.

The hooks are one POSIX sh template (``templates/hook.sh``) that appends a line to the spool in
``<git common dir>/repofeed/`` and exits 0. They go where git looks for hooks: ``core.hooksPath``
when it is set (relative to the working tree's root, as git reads it), else the common git
directory's ``hooks/``, which every worktree shares. A hook that was there before is kept as
``<name>.legacy``, run by ours once, and put back byte for byte on uninstall. Our own hooks are
recognised by a marker line, so installing again rewrites them in place (an upgrade) and never
chains a repofeed hook to itself.
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
VERSION = 1
SPOOL_NAME = "spool"
# A shared core.hooksPath serves many repositories, so there the hook asks git where it runs
# (one more process, about a millisecond) instead of naming one repository's spool.
_RUNTIME_SPOOL = f'$(git rev-parse --git-common-dir 2>/dev/null)/repofeed/{SPOOL_NAME}'


@dataclass
class HookState:
    name: str
    path: Path
    state: str           # installed | outdated | foreign | absent
    legacy: bool         # a previous hook is kept as <name>.legacy and chained

    def as_dict(self) -> dict[str, object]:
        return {"name": self.name, "path": str(self.path), "state": self.state,
                "legacy": self.legacy}


def spool_path(repo: pygit2.Repository) -> Path:
    return repofeed_dir(repo) / SPOOL_NAME


def hooks_dir(repo: pygit2.Repository) -> tuple[Path, bool]:
    """Where git runs this repository's hooks from, and whether ``core.hooksPath`` says so."""
    try:
        configured = repo.config["core.hooksPath"]
    except KeyError:
        return common_dir(repo) / "hooks", False
    path = Path(os.path.expanduser(configured))
    if not path.is_absolute():
        base = Path(repo.workdir) if repo.workdir else Path(repo.path)
        path = base / path
    return path, True


def _template() -> str:
    return resources.files("repofeed.hooks").joinpath("templates/hook.sh").read_text("utf-8")


def _sh_quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


def render(name: str, spool: Path | None) -> bytes:
    """The hook script for ``name``; ``spool`` None: found at run time (shared hooksPath)."""
    spool_value = f'"{_RUNTIME_SPOOL}"' if spool is None else _sh_quote(str(spool))
    body = _template().replace("'@SPOOL@'", spool_value).replace("@HOOK@", name)
    return body.replace("@VERSION@", str(VERSION)).encode()


def _is_ours(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            return MARKER in fh.read(512)
    except OSError:
        return False


def _write_executable(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.repofeed-tmp")
    tmp.write_bytes(data)
    tmp.chmod(0o755)
    os.replace(tmp, path)


def _exists(path: Path) -> bool:
    return path.exists() or path.is_symlink()


def _state(path: Path, wanted: bytes) -> str:
    if not _exists(path):
        return "absent"
    if not _is_ours(path):
        return "foreign"
    return "installed" if path.read_bytes() == wanted else "outdated"


def _target(repo: pygit2.Repository) -> tuple[Path, Path | None]:
    directory, custom = hooks_dir(repo)
    return directory, None if custom else spool_path(repo)


def hook_states(repo_path: str | Path | None) -> list[HookState]:
    repo = open_repository(repo_path)
    directory, spool = _target(repo)
    return [HookState(name, directory / name, _state(directory / name, render(name, spool)),
                      _exists(directory / f"{name}.legacy")) for name in HOOKS]


def install(repo_path: str | Path | None) -> list[str]:
    """Install or upgrade the hooks; returns one line per hook saying what was done."""
    repo = open_repository(repo_path)
    directory, spool = _target(repo)
    repofeed_dir(repo).mkdir(parents=True, exist_ok=True)  # where the hooks append
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RepoError(f"cannot create the hooks directory {directory}: {exc}") from exc
    # Check every hook before changing any, so that a refusal leaves all of them as they were.
    for name in HOOKS:
        path, legacy = directory / name, directory / f"{name}.legacy"
        if _exists(path) and not _is_ours(path) and _exists(legacy):
            raise RepoError(
                f"{path} is not repofeed's and {legacy} exists too; repofeed would have to "
                f"overwrite one of them. Merge them into one hook, then run `repofeed install` "
                f"again."
            )
    done = []
    for name in HOOKS:
        path, legacy = directory / name, directory / f"{name}.legacy"
        wanted = render(name, spool)
        state = _state(path, wanted)
        try:
            if state == "installed":
                done.append(f"{name}: already installed")
                continue
            if state == "foreign":
                os.rename(path, legacy)  # bytes, mode and a symlink kept as they are
            _write_executable(path, wanted)
        except OSError as exc:
            raise RepoError(f"cannot write the hook {path}: {exc}") from exc
        done.append({"absent": f"{name}: installed",
                     "outdated": f"{name}: upgraded",
                     "foreign": f"{name}: installed; the existing hook now runs from "
                                f"{legacy.name}"}[state])
    return done


def uninstall(repo_path: str | Path | None) -> list[str]:
    """Remove repofeed's hooks and put back the hooks they chained."""
    repo = open_repository(repo_path)
    directory, _spool = hooks_dir(repo)
    done = []
    for name in HOOKS:
        path, legacy = directory / name, directory / f"{name}.legacy"
        if not _exists(path):
            done.append(f"{name}: not installed")
            continue
        if not _is_ours(path):
            done.append(f"{name}: not repofeed's, left alone")
            continue
        try:
            path.unlink()
            if _exists(legacy):
                os.rename(legacy, path)
                done.append(f"{name}: removed; the previous hook is back")
            else:
                done.append(f"{name}: removed")
        except OSError as exc:
            raise RepoError(f"cannot remove the hook {path}: {exc}") from exc
    return done
