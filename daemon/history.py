"""Reading git: the followed ref, the commits to process, and what each commit changed.

Pure functions of a pygit2 repository; no store, no tokenizer. Rename detection is asked for
explicitly, so it holds whatever the user's ``diff.renames`` setting is.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import pygit2
from pygit2.enums import DeltaStatus, DiffFind, SortMode

from repofeed.store.errors import RepoError

MODE_LINK = 0o120000
MODE_SUBMODULE = 0o160000
LFS_MAGIC = b"version https://git-lfs.github.com/spec/v1"

SKIP_REASONS = ("binary", "submodule", "symlink", "lfs_pointer", "too_large", "not_utf8")


@dataclass
class FileChange:
    path: str
    old_path: str | None
    change: str                  # added | modified | deleted | renamed
    before: str | None
    after: str | None
    hunks: list[tuple[int, int, int, int]] = field(default_factory=list)  # git line hunks
    before_key: bytes | None = None  # content hashes, set once by the ingest batch
    after_key: bytes | None = None


@dataclass
class CommitChanges:
    commit: pygit2.Commit
    parent: pygit2.Commit | None
    files: list[FileChange]
    skips: dict[str, int]
    message_key: bytes | None = None


class BlobReader:
    """Reads blobs as text, or says why not; remembers recent answers by blob id."""

    def __init__(self, repo: pygit2.Repository, max_bytes: int, cache_size: int = 4096):
        self.repo = repo
        self.max_bytes = max_bytes
        self.cache_size = cache_size
        self._cache: dict[pygit2.Oid, tuple[str | None, str | None]] = {}

    def read(self, oid: pygit2.Oid, mode: int) -> tuple[str | None, str | None]:
        """(text, None) for a text file, (None, reason) for one left out."""
        if mode == MODE_SUBMODULE:
            return None, "submodule"
        if mode == MODE_LINK:
            return None, "symlink"
        hit = self._cache.get(oid)
        if hit is not None:
            return hit
        result = self._classify(self.repo[oid])
        if len(self._cache) >= self.cache_size:
            self._cache.clear()
        self._cache[oid] = result
        return result

    def _classify(self, blob: pygit2.Blob) -> tuple[str | None, str | None]:
        if blob.size > self.max_bytes:
            return None, "too_large"
        if blob.is_binary:
            return None, "binary"
        data = blob.data
        if data.startswith(LFS_MAGIC) and len(data) < 1024:
            return None, "lfs_pointer"
        try:
            return data.decode("utf-8"), None
        except UnicodeDecodeError:
            return None, "not_utf8"


def followed_ref(configured: str | None) -> str:
    """The ref to follow: a configured branch, else ``HEAD`` — whatever is checked out, so
    that the snapshot follows branch switches and a detached HEAD."""
    if configured and configured != "HEAD":
        return configured if configured.startswith("refs/") else f"refs/heads/{configured}"
    return "HEAD"


def describe_ref(repo: pygit2.Repository, ref: str) -> str:
    """``HEAD (main)``, ``HEAD (detached)`` or the ref itself, for messages."""
    if ref != "HEAD":
        return ref
    if repo.head_is_detached:
        return "HEAD (detached)"
    return f"HEAD ({repo.references['HEAD'].target.removeprefix('refs/heads/')})"


def tip_of(repo: pygit2.Repository, ref: str) -> pygit2.Commit | None:
    """The commit the followed ref points at, None while it does not exist yet."""
    try:
        if ref == "HEAD":
            return None if repo.head_is_unborn else repo.head.peel(pygit2.Commit)
        reference = repo.references.get(ref)
        if reference is None:
            return None
        return reference.peel(pygit2.Commit)
    except (pygit2.GitError, KeyError) as exc:
        raise RepoError(f"cannot resolve {ref} in {repo.path}: {exc}") from exc


def new_commits(repo: pygit2.Repository, tip: pygit2.Commit | None, old_tip: str | None
                ) -> list[pygit2.Commit]:
    """Commits reachable from ``tip`` but not from ``old_tip``, oldest first (parents first).

    Everything reachable from the tip of the last completed run is processed, so hiding it
    bounds the walk by what is new, whatever the length of the history. After a rewrite the
    old tip may not be an ancestor: hiding it still hides only processed commits.
    """
    if tip is None:
        return []
    walker = repo.walk(tip.id, SortMode.TOPOLOGICAL | SortMode.REVERSE)
    if old_tip is not None and old_tip in repo:
        walker.hide(pygit2.Oid(hex=old_tip))
    return list(walker)


def live_roots(repo: pygit2.Repository, follow: str, tip: pygit2.Commit | None
               ) -> dict[str, str]:
    """The tips that keep processed commits live: the followed ref and every local branch."""
    roots = {follow: str(tip.id)} if tip is not None else {}
    for name in repo.listall_references():
        if name.startswith("refs/heads/"):
            try:
                roots[name] = str(repo.references[name].peel(pygit2.Commit).id)
            except (KeyError, ValueError, pygit2.GitError):
                continue  # a branch deleted meanwhile, or one that names no commit
    return roots


def reachable_only(repo: pygit2.Repository, tips: Iterable[str], hidden: Iterable[str]
                   ) -> Iterator[bytes]:
    """Raw ids of the commits reachable from ``tips`` and not from ``hidden``."""
    walker = repo.walk(None)
    pushed = False
    for tip in tips:
        walker.push(pygit2.Oid(hex=tip))
        pushed = True
    if not pushed:
        return
    for oid in hidden:
        if oid in repo:
            walker.hide(pygit2.Oid(hex=oid))
    for commit in walker:
        yield commit.id.raw


def _tree_diff(repo: pygit2.Repository, old: pygit2.Tree | None, new: pygit2.Tree,
               renames: bool) -> pygit2.Diff:
    diff = old.diff_to_tree(new, context_lines=0) if old is not None else \
        new.diff_to_tree(swap=True, context_lines=0)
    if renames:
        diff.find_similar(flags=DiffFind.FIND_RENAMES)
    return diff


def commit_changes(repo: pygit2.Repository, commit: pygit2.Commit, blobs: BlobReader
                   ) -> CommitChanges:
    """Every text file a commit changed against its first parent, with git's line hunks."""
    parent = commit.parents[0] if commit.parents else None
    diff = _tree_diff(repo, parent.tree if parent else None, commit.tree, renames=True)
    files: list[FileChange] = []
    skips: dict[str, int] = {}
    for index, delta in enumerate(diff.deltas):
        status = delta.status
        before = after = None
        reason_old = reason_new = None
        if status != DeltaStatus.ADDED:
            before, reason_old = blobs.read(delta.old_file.id, delta.old_file.mode)
        if status != DeltaStatus.DELETED:
            after, reason_new = blobs.read(delta.new_file.id, delta.new_file.mode)
        if before is None and after is None:
            reason = reason_new or reason_old
            if reason:
                skips[reason] = skips.get(reason, 0) + 1
            continue
        if after is None and reason_new:  # text became binary, a symlink, ...: not a deletion
            skips[reason_new] = skips.get(reason_new, 0) + 1
            continue
        if before is not None and after is not None and before == after and \
                status != DeltaStatus.RENAMED:
            continue  # mode change only
        if before is None:
            change = "added"
        elif after is None:
            change = "deleted"
        elif status == DeltaStatus.RENAMED:
            change = "renamed"
        else:
            change = "modified"
        hunks: list[tuple[int, int, int, int]] = []
        if before is not None and after is not None and before != after:
            patch = diff[index]
            hunks = [(h.old_start, h.old_lines, h.new_start, h.new_lines) for h in patch.hunks]
        path = path_of(delta.new_file if after is not None else delta.old_file)
        old_path = path_of(delta.old_file) if change == "renamed" else None
        files.append(FileChange(path, old_path, change, before, after, hunks))
    return CommitChanges(commit, parent, files, skips)


def tree_changes(repo: pygit2.Repository, old: pygit2.Tree | None, new: pygit2.Tree | None
                 ) -> Iterator[tuple[str, pygit2.Oid | None, int]]:
    """(path, blob id or None if gone, mode) for every file that differs between two trees."""
    if new is None:
        if old is None:
            return
        for delta in _tree_diff(repo, None, old, renames=False).deltas:
            yield path_of(delta.new_file), None, 0
        return
    for delta in _tree_diff(repo, old, new, renames=False).deltas:
        if delta.status == DeltaStatus.DELETED:
            yield path_of(delta.old_file), None, 0
        else:
            yield path_of(delta.new_file), delta.new_file.id, delta.new_file.mode


def path_of(diff_file: pygit2.DiffFile) -> str:
    # git paths are bytes; a path that is not UTF-8 keeps a visible replacement character.
    return diff_file.raw_path.decode("utf-8", "replace")


def author_of(commit: pygit2.Commit) -> str:
    # The name only: e-mail addresses are personal data a training set does not need.
    return commit.author.raw_name.decode("utf-8", "replace")


def message_of(commit: pygit2.Commit) -> str:
    return commit.raw_message.decode("utf-8", "replace")
