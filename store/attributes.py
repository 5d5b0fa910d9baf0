"""The linguist attributes of a path, read from ``.gitattributes`` through libgit2.

GitHub linguist's attributes say what a path is: ``linguist-vendored`` (somebody else's code),
``linguist-generated`` (written by a tool), ``linguist-documentation`` and
``linguist-language=<Name>`` (the language, overriding detection). Filters
(``repofeed.store.filters.excluded_path``) and language detection read them here, the one
place that talks to ``git_attr``.

Two sources:

- the worktree (``commit=None``): the ``.gitattributes`` files on disk, then the index's,
  plus ``.git/info/attributes`` and the user's ``core.attributesFile``. libgit2 reads both
  the file and the index's version; where both speak of an attribute the file wins (git reads
  the index's only where the file is missing: the two differ only while a ``.gitattributes``
  edit that drops a rule is uncommitted);
- a commit: only the ``.gitattributes`` files of that commit's tree. libgit2's
  ``GIT_ATTR_CHECK_INCLUDE_COMMIT`` alone is not enough in a repository with an index: the
  index's ``.gitattributes`` then takes precedence over the commit's (measured with pygit2
  1.21). So the lookup runs in an in-memory repository that shares the object database and
  has no worktree, no index and no ``info/attributes``: the answer depends on the commit alone,
  the same on every machine and at any later time, as a fact of history should.
"""

from __future__ import annotations

import pygit2
from pygit2.enums import AttrCheck

from .schema import path_bytes

LINGUIST_ATTRIBUTES = ("linguist-vendored", "linguist-generated", "linguist-documentation",
                       "linguist-language")
_BOOLEAN = ("linguist-vendored", "linguist-generated", "linguist-documentation")
_FALSE = frozenset({"false", "0", "no", "off", "unset"})

_history_views: dict[str, pygit2.Repository] = {}
_MAX_VIEWS = 16


def _history_view(repo: pygit2.Repository) -> pygit2.Repository:
    """An index-less, worktree-less repository over ``repo``'s objects (kept per repository,
    so libgit2's cache of parsed attribute files is reused)."""
    view = _history_views.get(repo.path)
    if view is None:
        if len(_history_views) >= _MAX_VIEWS:
            _history_views.pop(next(iter(_history_views)))
        view = pygit2.Repository()
        view.set_odb(repo.odb)
        _history_views[repo.path] = view
    return view


def _normalise(name: str, value: bool | str | None) -> bool | str | None:
    if value is None:
        return None
    if name in _BOOLEAN:
        if isinstance(value, bool):
            return value
        return value.strip().lower() not in _FALSE
    # linguist-language needs a value; a bare or negated attribute says nothing
    return value if isinstance(value, str) and value else None


def linguist_attrs(repo: pygit2.Repository, path: str,
                   commit: pygit2.Commit | None = None) -> dict[str, bool | str]:
    """The linguist attributes that ``.gitattributes`` gives ``path`` (relative, with ``/``):
    a dict holding only the attributes that are specified, booleans for vendored, generated
    and documentation (``attr``/``attr=true`` True, ``-attr``/``attr=false`` False), a string
    for ``linguist-language``. With ``commit``, from that commit's tree alone; without, from
    the worktree as git reads it."""
    if commit is None:
        source, flags, commit_id = repo, AttrCheck.FILE_THEN_INDEX, None
    else:
        source = _history_view(repo)
        flags, commit_id = AttrCheck.INCLUDE_COMMIT | AttrCheck.NO_SYSTEM, commit.id
    found: dict[str, bool | str] = {}
    raw = path_bytes(path)  # git's bytes: a name that is not UTF-8 is asked for as it is
    for name in LINGUIST_ATTRIBUTES:
        value = _normalise(name, source.get_attr(raw, name, flags, commit_id))
        if value is not None:
            found[name] = value
    return found
