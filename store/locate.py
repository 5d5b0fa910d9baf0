"""Where a repository's store lives: ``<git common dir>/repofeed/store`` unless configured.

``repofeed init --store DIR`` records DIR in the repository's git config (``repofeed.store``),
so that every later command, and ``open_store(repo)``, finds it.
"""

from __future__ import annotations

from pathlib import Path

import pygit2

from .errors import RepoError

CONFIG_KEY = "repofeed.store"


def open_repository(path: str | Path | None) -> pygit2.Repository:
    start = Path(path or ".").resolve()
    found = pygit2.discover_repository(str(start))
    if found is None:
        raise RepoError(f"{start} is not inside a git repository.")
    try:
        return pygit2.Repository(found)
    except pygit2.GitError as exc:  # e.g. a SHA-256 repository, which libgit2 cannot read
        raise RepoError(f"cannot read the git repository at {found}: {exc}") from exc


def common_dir(repo: pygit2.Repository) -> Path:
    """The git directory shared by all worktrees (``git rev-parse --git-common-dir``)."""
    git_dir = Path(repo.path)
    pointer = git_dir / "commondir"
    if pointer.is_file():
        return (git_dir / pointer.read_text().strip()).resolve()
    return git_dir.resolve()


def repofeed_dir(repo: pygit2.Repository) -> Path:
    return common_dir(repo) / "repofeed"


def store_dir_of(repo: pygit2.Repository) -> Path:
    try:
        configured = repo.config[CONFIG_KEY]
    except KeyError:
        return repofeed_dir(repo) / "store"
    return Path(configured)


def lock_path(store_dir: Path) -> Path:
    """The store's writer lock file, beside the store directory."""
    return store_dir.with_name(store_dir.name + ".lock")


def train_dir(store_dir: Path) -> Path:
    """Where ``repofeed.train`` keeps what shards of a training stream share (the epochs'
    watermarks), beside the store directory: training never writes inside the store."""
    return store_dir.with_name(store_dir.name + ".train")


def own_paths(repo: pygit2.Repository, store_dir: Path) -> tuple[str, ...]:
    """What of repofeed's own files lies inside the worktree, as paths relative to it: the
    store, its lock, training's directory beside it, and ``<git common dir>/repofeed``
    (spool, state, logs). None of them is ever a document or a record, whether git ignores
    them or not (``init --store ./DIR``)."""
    if not repo.workdir:
        return ()
    root = Path(repo.workdir).resolve()
    store = Path(store_dir).resolve()
    found = []
    for path in (store, lock_path(store), train_dir(store), repofeed_dir(repo).resolve()):
        if path != root and path.is_relative_to(root):
            found.append(path.relative_to(root).as_posix())
    return tuple(found)


def is_under(path: str, prefixes: tuple[str, ...]) -> bool:
    """Whether ``path`` (relative, with ``/``) is one of ``prefixes`` or lies under one."""
    return any(path == p or path.startswith(p + "/") for p in prefixes)


def resolve_store_dir(path: str | Path | None) -> Path:
    """A store directory itself, or the store of the repository around ``path``."""
    candidate = Path(path or ".")
    if (candidate / "data.mdb").is_file():
        return candidate.resolve()
    return store_dir_of(open_repository(candidate))
