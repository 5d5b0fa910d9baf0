"""The linguist attributes of a path, read from ``.gitattributes`` through libgit2.

GitHub linguist's attributes say what a path is: ``linguist-vendored`` (somebody else's code),
``linguist-generated`` (written by a tool), ``linguist-documentation`` and
``linguist-language=<Name>`` (the language, overriding detection). Filters
(``repofeed.store.filters.excluded_path``) and language detection read them here, the one
place that talks to ``git_attr``.

Two sources:

- the worktree (``commit=None``): the ``.gitattributes`` files on disk, then the index's,
  plus ``.git/info/attributes`` and the user's ``core.attributesFile`` (not the system's).
  libgit2 reads both the file and the index's version; where both speak of an attribute the
  file wins (git reads the index's only where the file is missing: the two differ only while
  a ``.gitattributes`` edit that drops a rule is uncommitted);
- a commit: only the ``.gitattributes`` files of that commit's tree. libgit2's
  ``GIT_ATTR_CHECK_INCLUDE_COMMIT`` alone is not enough in a repository with an index: the
  index's ``.gitattributes`` then takes precedence over the commit's (measured with pygit2
  1.21). So the lookup runs in an in-memory repository that shares the object database and
  has no worktree, no index and no ``info/attributes``: the answer depends on the commit alone,
  the same on every machine and at any later time, as a fact of history should.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pygit2
from pygit2.enums import AttrCheck

from .errors import RepoError
from .schema import path_bytes

LINGUIST_ATTRIBUTES = ("linguist-vendored", "linguist-generated", "linguist-documentation",
                       "linguist-language")
_BOOLEAN = ("linguist-vendored", "linguist-generated", "linguist-documentation")
_FALSE = frozenset({"false", "0", "no", "off", "unset"})

_views = threading.local()


def _history_view(repo: pygit2.Repository) -> pygit2.Repository:
    """An index-less, worktree-less repository over ``repo``'s objects, one per repository
    per thread (pygit2 objects are not shared between threads), kept so that libgit2's
    cache of parsed attribute files is reused."""
    views = getattr(_views, "views", None)
    if views is None:
        views = _views.views = {}
    view = views.get(repo.path)
    if view is None:
        view = pygit2.Repository()
        view.set_odb(repo.odb)
        views[repo.path] = view
    return view


def _commit_id(repo: pygit2.Repository, commit: pygit2.Commit | pygit2.Oid | str
               ) -> pygit2.Oid:
    """The id of the commit ``commit`` is or names (an id, a short id, a ref, ``HEAD~2``)."""
    if isinstance(commit, pygit2.Commit):
        return commit.id
    try:
        return repo.revparse_single(str(commit)).peel(pygit2.Commit).id
    except (KeyError, ValueError, pygit2.GitError) as exc:
        raise RepoError(f"{commit}: not a commit of {repo.path} ({exc}); give a commit id, "
                        "or none for the worktree's attributes") from None


def _normalise(name: str, value: bool | str | None) -> bool | str | None:
    if value is None:
        return None
    if name in _BOOLEAN:
        if isinstance(value, bool):
            return value
        return value.strip().lower() not in _FALSE
    # linguist-language needs a value; a bare or negated attribute says nothing
    return value if isinstance(value, str) and value else None


def linguist_attrs(repo: pygit2.Repository | str | Path, path: str,
                   commit: pygit2.Commit | pygit2.Oid | str | None = None
                   ) -> dict[str, bool | str]:
    """The linguist attributes that ``.gitattributes`` gives ``path`` (relative, with ``/``):
    a dict holding only the attributes that are specified, booleans for vendored, generated
    and documentation (``attr``/``attr=true`` True, ``-attr``/``attr=false`` False), a string
    for ``linguist-language``. With ``commit``, from that commit's tree alone; without, from
    the worktree as git reads it. The system-wide attributes file is never read, so the
    facts do not depend on the machine. ``repo`` may be a path."""
    if not isinstance(repo, pygit2.Repository):
        try:
            repo = pygit2.Repository(str(repo))
        except pygit2.GitError as exc:
            raise RepoError(f"{repo}: not a git repository ({exc})") from None
    if commit is None:
        source, flags, commit_id = repo, AttrCheck.FILE_THEN_INDEX | AttrCheck.NO_SYSTEM, None
    else:
        source = _history_view(repo)
        flags = AttrCheck.INDEX_ONLY | AttrCheck.INCLUDE_COMMIT | AttrCheck.NO_SYSTEM
        commit_id = _commit_id(repo, commit)
    found: dict[str, bool | str] = {}
    raw = path_bytes(path)  # git's bytes: a name that is not UTF-8 is asked for as it is
    for name in LINGUIST_ATTRIBUTES:
        value = _normalise(name, source.get_attr(raw, name, flags, commit_id))
        if value is not None:
            found[name] = value
    return found
