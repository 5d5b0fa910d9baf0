"""Reading git: the followed ref, the commits to process, and what each commit changed.

Pure functions of a pygit2 repository; no store, no tokenizer. Rename detection is asked for
explicitly, so it holds whatever the user's ``diff.renames`` setting is.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pygit2
from pygit2.enums import DeltaStatus, DiffFind, SortMode

from repofeed.store.errors import RepoError, RepofeedError
from repofeed.store.locate import common_dir, open_repository
from repofeed.store.schema import path_str
from repofeed.store.secrets import (
    SECRET_FILES,
    edit_is_clean,
    is_secret_file,
    redact,
    redact_path,
)

MODE_LINK = 0o120000
MODE_SUBMODULE = 0o160000
LFS_MAGIC = b"version https://git-lfs.github.com/spec/v1"

SKIP_REASONS = ("binary", "submodule", "symlink", "lfs_pointer", "too_large", "not_utf8",
                "secret_file")


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
    boundary: bool = False  # a shallow clone's oldest commit: its parents are not here


class BlobReader:
    """Reads blobs as text, or says why not; remembers recent answers by blob id.

    Every text it gives is redacted (store/secrets.py): secrets become ``<SECRET:kind>``
    before anything hashes or tokenizes them; ``redacted`` holds the blobs that had some.
    Given the path, a file of credentials (``.env``, ``id_rsa``: ``is_secret_file``) is left
    out whole, with the reason ``secret_file``.
    """

    def __init__(self, repo: pygit2.Repository, max_bytes: int, cache_size: int = 4096,
                 secret_files: tuple[str, ...] = SECRET_FILES):
        self.repo = repo
        self.secret_files = secret_files  # globs of files left out whole (store/secrets.py)
        self.max_bytes = max_bytes
        self.cache_size = cache_size
        self._cache: dict[pygit2.Oid, tuple[str | None, str | None]] = {}
        self.redacted: set[pygit2.Oid] = set()  # blobs of the cache whose text had secrets
        self.heartbeat: Callable[[], None] = lambda: None  # told of each read: long work lives

    def read(self, oid: pygit2.Oid, mode: int, path: str | None = None,
             edit: tuple[pygit2.Oid, Callable[[], list[tuple[int, int, int, int]]]] | None = None
             ) -> tuple[str | None, str | None]:
        """(redacted text, None) for a text file, (None, reason) for one left out.

        ``edit``: (the blob this one was edited from, a function giving git's line hunks
        between them). When that blob is known clean (read, no secret), only the lines the
        edit wrote are scanned (``edit_is_clean``), so redaction costs what changed."""
        self.heartbeat()
        if mode == MODE_SUBMODULE:
            return None, "submodule"
        if mode == MODE_LINK:
            return None, "symlink"
        if path is not None and is_secret_file(path, self.secret_files):
            return None, "secret_file"
        hit = self._cache.get(oid)
        if hit is not None:
            return hit
        result = self._classify(oid, self.repo[oid], edit)
        if len(self._cache) >= self.cache_size:
            self._cache.clear()
            self.redacted.clear()
        self._cache[oid] = result
        return result

    def _classify(self, oid: pygit2.Oid, blob: pygit2.Blob, edit=None
                  ) -> tuple[str | None, str | None]:
        if blob.size > self.max_bytes:
            return None, "too_large"
        data = blob.data
        text, reason = text_of(data, binary=blob.is_binary)
        if text is not None and edit is not None and self._clean(edit[0]) and \
                edit_is_clean(data, edit[1]()):
            return text, reason
        if text is not None:
            text, counts = redact(text)
            if counts:
                self.redacted.add(oid)
        return text, reason


    def _clean(self, oid: pygit2.Oid) -> bool:
        """Was ``oid`` read as text with no secret (and is it still remembered)?"""
        hit = self._cache.get(oid)
        return hit is not None and hit[0] is not None and oid not in self.redacted


def text_of(data: bytes, binary: bool | None = None) -> tuple[str | None, str | None]:
    """(text, None), or (None, why not): binary (libgit2's verdict for a blob; for bytes from
    disk, a NUL in the first 8,000, git's own test), a Git LFS pointer, or not UTF-8."""
    if binary if binary is not None else b"\0" in data[:8000]:
        return None, "binary"
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


def ref_problem(repo: pygit2.Repository, ref: str) -> str | None:
    """Why ``ref`` names no commit, for messages: ``"has no commits yet"`` (an unborn branch:
    a new repository, or after ``git switch --orphan``) or ``"does not exist"`` (a followed
    branch never created, deleted or renamed); None when it names a commit."""
    try:
        if ref == "HEAD":
            return "has no commits yet" if repo.head_is_unborn else None
        if repo.references.get(ref) is not None:
            return None
        head = repo.references.get("HEAD")
        if head is not None and head.type == pygit2.enums.ReferenceType.SYMBOLIC \
                and head.target == ref:
            return "has no commits yet"  # HEAD is on it, and it is still unborn
    except pygit2.GitError:
        return None
    return "does not exist"


def describe_tip(repo: pygit2.Repository, ref: str, tip: pygit2.Commit | None) -> str:
    """``HEAD (main) at 1a2b3c4d5e6f``, ``HEAD (x), which has no commits yet`` or
    ``refs/heads/y, which does not exist``, for messages."""
    if tip is not None:
        return f"{describe_ref(repo, ref)} at {str(tip.id)[:12]}"
    return f"{describe_ref(repo, ref)}, which {ref_problem(repo, ref) or 'names no commit'}"


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


def resolve_commit(repo: pygit2.Repository, rev: str) -> pygit2.Commit:
    """The commit ``rev`` names (a hash, a branch, a tag, ``HEAD~3``, ...), or a clear error."""
    try:
        return repo.revparse_single(rev).peel(pygit2.Commit)
    except (KeyError, ValueError, pygit2.GitError) as exc:
        raise RepoError(f"{rev!r} names no commit in {repo.workdir or repo.path} ({exc}); "
                        f"give a commit hash, a branch, a tag or an expression such as "
                        f"HEAD~10.") from exc


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
    for name in repo.branches.local:  # local branches only: tags and remotes are not read
        ref = f"refs/heads/{name}"
        try:
            roots[ref] = str(repo.references[ref].peel(pygit2.Commit).id)
        except (KeyError, ValueError, pygit2.GitError):
            continue  # a branch deleted meanwhile, or one that names no commit
    return roots


def reachable_only(repo: pygit2.Repository, tips: Iterable[str], hidden: Iterable[str],
                   exact: bool = True) -> Iterator[bytes]:
    """Raw ids of the commits reachable from ``tips`` and not from ``hidden``: exactly, or
    with ``exact=False`` possibly more (every one of them still reachable from ``tips``).

    libgit2's revwalk stops marking hidden commits once commit dates say nothing older can
    matter, so with a skewed clock (a few commits dated before their parents) it also gives
    commits that *are* reachable from ``hidden``: its answer is a superset. Those candidates
    are then checked against a walk of everything ``hidden`` reaches, which has no hidden
    commits and so no date cut-off: exact, and ended as soon as every candidate is found.
    Its cost follows the length of the history (about 80 ms for 10,000 commits here), and it
    runs only when a run lost a tip (a rewrite, a deleted branch), never for new commits on
    the tip (benchmarks/rewrite_walk.py).
    """
    walker = repo.walk(None)
    pushed = False
    for tip in tips:
        walker.push(pygit2.Oid(hex=tip))
        pushed = True
    if not pushed:
        return
    hidden_ids = [pygit2.Oid(hex=oid) for oid in hidden if oid in repo]
    for oid in hidden_ids:
        walker.hide(oid)
    candidates = [commit.id for commit in walker]
    if not exact or not hidden_ids or not candidates:
        yield from (oid.raw for oid in candidates)
        return
    unseen = set(candidates)
    check = repo.walk(None)
    for oid in hidden_ids:
        check.push(oid)
    for commit in check:
        unseen.discard(commit.id)
        if not unseen:
            return
    yield from (oid.raw for oid in candidates if oid in unseen)


def shallow_boundaries(repo: pygit2.Repository) -> set[str]:
    """The commits a shallow clone cut off from their parents (``<git common dir>/shallow``);
    empty for a complete repository."""
    try:
        return set((common_dir(repo) / "shallow").read_text().split())
    except OSError:
        return set()


_TREE_ENTRY = re.compile(rb"(\d+) ([^\0]*)\0(.{20})", re.S)
MODE_TREE = 0o40000

Entry = tuple[int, bytes]  # (mode, raw 20-byte id) of a tree entry


_parsed: dict[bytes, frozenset[tuple[bytes, ...]]] = {}
PARSED_TREES = 256  # a tree object never changes: a commit's new trees are the next one's old


def _entries(repo: pygit2.Repository, tree_id: bytes | None) -> frozenset[tuple[bytes, ...]]:
    """The entries of a tree: {(mode in octal digits, name, raw id)}."""
    if tree_id is None:
        return frozenset()
    found = _parsed.get(tree_id)
    if found is None:
        _kind, data = repo.odb.read(pygit2.Oid(raw=tree_id))[:2]
        found = frozenset(_TREE_ENTRY.findall(data))
        if len(_parsed) >= PARSED_TREES:
            _parsed.pop(next(iter(_parsed)))
        _parsed[tree_id] = found
    return found


def _changed(old: frozenset[tuple[bytes, ...]], new: frozenset[tuple[bytes, ...]]
             ) -> dict[bytes, list[Entry | None]]:
    """Name -> [old entry, new entry] for the entries that differ (a set difference in C)."""
    out: dict[bytes, list[Entry | None]] = {}
    for side, entries in ((0, old - new), (1, new - old)):
        for mode, name, oid in entries:
            out.setdefault(name, [None, None])[side] = (int(mode, 8), oid)
    return out


_recent: dict[tuple[str, bytes | None, bytes | None], list] = {}


def tree_delta(repo: pygit2.Repository, old_id: bytes | None, new_id: bytes | None
               ) -> list[tuple[bytes, Entry | None, Entry | None]]:
    """(path, old entry, new entry) of every non-tree entry that differs between two trees,
    sorted by path.

    It reads raw tree objects and descends only into subtrees whose ids differ, so its cost
    follows the directories a change touches, not the size of the repository. (libgit2's tree
    diff visits every entry of both trees: 5 ms for one changed file among 10,000.) The last
    few answers are kept: a commit's diff and the snapshot's are often the same pair of trees.
    """
    key = (repo.path, old_id, new_id)
    found = _recent.get(key)
    if found is None:
        found = []
        _delta(repo, old_id, new_id, b"", found)
        found.sort(key=lambda item: item[0])
        if len(_recent) >= 8:
            _recent.pop(next(iter(_recent)))
        _recent[key] = found
    return found


def _delta(repo: pygit2.Repository, old_id: bytes | None, new_id: bytes | None, prefix: bytes,
           out: list[tuple[bytes, Entry | None, Entry | None]]) -> None:
    if old_id == new_id:
        return
    for name, (a, b) in _changed(_entries(repo, old_id), _entries(repo, new_id)).items():
        a_tree = a is not None and a[0] == MODE_TREE
        b_tree = b is not None and b[0] == MODE_TREE
        if a_tree or b_tree:
            _delta(repo, a[1] if a_tree else None, b[1] if b_tree else None,
                   prefix + name + b"/", out)
        a_file, b_file = (None if a_tree else a), (None if b_tree else b)
        if a_file is not None or b_file is not None:
            out.append((prefix + name, a_file, b_file))


def _tree_id(tree: pygit2.Tree | None) -> bytes | None:
    return tree.id.raw if tree is not None else None


def _file_change(path: str, old_path: str | None, renamed: bool,
                 old: tuple[pygit2.Oid, int] | None, new: tuple[pygit2.Oid, int] | None,
                 blobs: BlobReader, hunks_of, skips: dict[str, int]) -> FileChange | None:
    """Classify one changed path; None (with the reason counted) when it is left out."""
    before = after = None
    reason_old = reason_new = None
    diff: list[tuple[list[tuple[int, int, int, int]], list[tuple[int, int]]]] = []

    def line_hunks() -> list[tuple[int, int, int, int]]:  # git's diff, computed once
        return _diff_of(diff, hunks_of)[0]

    def written() -> list[tuple[int, int]]:
        return _diff_of(diff, hunks_of)[1]

    if old is not None:
        before, reason_old = blobs.read(*old, old_path or path)
    if new is not None:
        edit = (old[0], written) if before is not None else None
        after, reason_new = blobs.read(*new, path, edit)
    if before is None and after is None:
        reason = reason_new or reason_old
        if reason:
            skips[reason] = skips.get(reason, 0) + 1
        return None
    if after is None and reason_new:  # text became binary, a symlink, ...: not a deletion
        skips[reason_new] = skips.get(reason_new, 0) + 1
        return None
    if before is not None and after is not None and before == after and not renamed:
        return None  # mode change only
    if before is None:
        change = "added"
    elif after is None:
        change = "deleted"
    else:
        change = "renamed" if renamed else "modified"
    hunks: list[tuple[int, int, int, int]] = []
    if before is not None and after is not None and before != after:
        if old[0] in blobs.redacted or new[0] in blobs.redacted:
            # git's hunks are of the original texts: a redacted one differs (a private key
            # is one line now), so the hunks are taken again, of the texts that are stored
            hunks = [(h.old_start, h.old_lines, h.new_start, h.new_lines)
                     for h in pygit2.Patch.create_from(before, after, context_lines=0).hunks]
        else:
            hunks = line_hunks()
    return FileChange(redact_path(path if after is not None else (old_path or path)),
                      redact_path(old_path) if change == "renamed" and old_path else None,
                      change, before, after, hunks)


def _diff_of(memo: list, hunks_of) -> tuple[list[tuple[int, int, int, int]],
                                            list[tuple[int, int]]]:
    """git's line hunks of a file's change, and the byte ranges of the new text its added
    lines take (what redaction scans of an edit), from one diff kept in ``memo``."""
    if not memo:
        hunks, written = [], []
        for h in hunks_of():
            hunks.append((h.old_start, h.old_lines, h.new_start, h.new_lines))
            added = [line for line in h.lines if line.origin == "+"]
            if added:
                written.append((added[0].content_offset,
                                added[-1].content_offset + len(added[-1].raw_content)))
        memo.append((hunks, written))
    return memo[0]


def commit_changes(repo: pygit2.Repository, commit: pygit2.Commit, blobs: BlobReader
                   ) -> CommitChanges:
    """Every text file a commit changed against its first parent, with git's line hunks."""
    parent = commit.parents[0] if commit.parents else None
    delta = tree_delta(repo, _tree_id(parent.tree) if parent else None, commit.tree_id.raw)
    if any(a is None for _, a, _ in delta) and any(b is None for _, _, b in delta):
        return _changes_with_renames(repo, commit, parent, blobs)  # a file may have moved
    files: list[FileChange] = []
    skips: dict[str, int] = {}
    for raw_path, a, b in delta:
        old = (pygit2.Oid(raw=a[1]), a[0]) if a is not None else None
        new = (pygit2.Oid(raw=b[1]), b[0]) if b is not None else None

        def hunks_of(old=old, new=new):
            return repo[old[0]].diff(repo[new[0]], context_lines=0).hunks

        path = path_str(raw_path)
        change = _file_change(path, None, False, old, new, blobs, hunks_of, skips)
        if change is not None:
            files.append(change)
    return CommitChanges(commit, parent, files, skips)


def _changes_with_renames(repo: pygit2.Repository, commit: pygit2.Commit,
                          parent: pygit2.Commit | None, blobs: BlobReader) -> CommitChanges:
    """``commit_changes`` through libgit2's diff, whose rename detection is asked for
    explicitly, so it holds whatever the user's ``diff.renames`` setting is."""
    diff = parent.tree.diff_to_tree(commit.tree, context_lines=0) if parent is not None else \
        commit.tree.diff_to_tree(swap=True, context_lines=0)
    diff.find_similar(flags=DiffFind.FIND_RENAMES)
    files: list[FileChange] = []
    skips: dict[str, int] = {}
    for index, delta in enumerate(diff.deltas):
        status = delta.status
        old = (delta.old_file.id, delta.old_file.mode) if status != DeltaStatus.ADDED else None
        new = (delta.new_file.id, delta.new_file.mode) if status != DeltaStatus.DELETED \
            else None
        renamed = status == DeltaStatus.RENAMED
        change = _file_change(path_of(delta.new_file), path_of(delta.old_file), renamed,
                              old, new, blobs, lambda index=index: diff[index].hunks, skips)
        if change is not None:
            files.append(change)
    return CommitChanges(commit, parent, files, skips)


def tree_changes(repo: pygit2.Repository, old: pygit2.Tree | None, new: pygit2.Tree | None
                 ) -> Iterator[tuple[str, pygit2.Oid | None, int]]:
    """(path, blob id or None if gone, mode) for every file that differs between two trees."""
    for raw_path, _a, b in tree_delta(repo, _tree_id(old), _tree_id(new)):
        path = path_str(raw_path)
        yield (path, None, 0) if b is None else (path, pygit2.Oid(raw=b[1]), b[0])


def path_of(diff_file: pygit2.DiffFile) -> str:
    # git paths are bytes; one that is not UTF-8 is kept exactly (schema.path_str).
    return path_str(diff_file.raw_path)


def author_of(commit: pygit2.Commit) -> str:
    # The name only: e-mail addresses are personal data a training set does not need.
    return redact(_commit_text(commit, commit.author.raw_name))[0]


def message_of(commit: pygit2.Commit) -> str:
    """A commit's message, secrets redacted."""
    return redact(_commit_text(commit, commit.raw_message))[0]


def _commit_text(commit: pygit2.Commit, raw: bytes) -> str:
    """A commit's text in the encoding its ``encoding`` header names (``i18n.commitEncoding``,
    e.g. ISO-8859-1), else UTF-8; bytes that are neither become U+FFFD, never an error."""
    encoding = commit.message_encoding
    if encoding:
        try:
            return raw.decode(encoding)
        except (LookupError, UnicodeDecodeError):
            pass  # an unknown encoding, or a header that does not tell the truth
    return raw.decode("utf-8", "replace")


def followed_repository(repo: pygit2.Repository, recorded: str | None) -> pygit2.Repository:
    """The repository (worktree) whose refs the store follows: the one ``init`` ran in.

    ``HEAD`` differs between worktrees, so a backfill started in another worktree of the same
    repository still follows the HEAD the store was made for. A store whose repository has
    moved follows the one it was opened from.
    """
    here = str(Path(repo.workdir or repo.path).resolve())
    if not recorded or str(Path(recorded).resolve()) == here or not Path(recorded).exists():
        return repo
    try:
        other = open_repository(recorded)
    except RepofeedError:
        return repo
    return other if common_dir(other) == common_dir(repo) else repo
