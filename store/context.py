"""Repository context: a file after the files it depends on, as one document cut to a budget.

The graph is a mapping ``path -> the paths it imports`` (what
:func:`repofeed.store.imports.import_graph` or a
:class:`~repofeed.store.resolvers.Resolver` gives). Three questions are asked of it:

- :func:`order`: the files a target depends on, transitively, in an order where each comes
  after the files it depends on, then the target. This is DeepSeek-Coder's ordering
  (repeatedly take the file with the fewest dependencies not yet placed; see ANCHORS.md),
  with ties broken by the smallest in-degree first, so the files the others lean on most
  sit nearest the target, where a cut keeps them.
- :func:`context_document`: those files as text, each as its path line and its content,
  joined by ``<file_sep>``, cut to a budget from the far end.
- :func:`dependents`: the targets whose documents a change to some files touches
  (:func:`affected`: those of a commit, from the graphs before and after it).

Layout of a document (:func:`piece` makes one file's part)::

    far.py\\n<its text><file_sep>near.py\\n<its text><file_sep>target.py\\n<its text>

The separator goes between files only; the caller's tokenizer encodes it as its special
token, and a text that spells ``<file_sep>`` itself cannot forge it (issue 5).
"""

from __future__ import annotations

import heapq
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence

Graph = Mapping[str, Sequence[str]]
"""``path -> the paths it imports`` (paths missing from the mapping import nothing)."""

FILE_SEP = "<file_sep>"
"""The separator between the files of a context document (a special token of the
tokenizer, issue 5)."""


def closure(target: str, graph: Graph) -> set[str]:
    """The files ``target`` depends on transitively, without ``target`` itself (even where
    it sits on a cycle through them)."""
    seen: set[str] = set()
    stack = [target]
    while stack:
        for dep in graph.get(stack.pop(), ()):
            if dep != target and dep not in seen:
                seen.add(dep)
                stack.append(dep)
    return seen


def order(target: str, graph: Graph) -> list[str]:
    """The dependency closure of ``target`` in dependency order, then ``target`` last.

    Each step places, among the files whose dependencies outside their own cycles are all
    placed, the one with the fewest dependencies not yet placed (zero while it sits on no
    cycle: a file comes after everything it depends on); ties go to the smallest in-degree
    (the fewest files of the closure or ``target`` importing it, so the files most leaned on,
    the target's own imports among them, sit nearest the target, where a cut to a budget
    keeps them), then the path. Where every candidate sits on a cycle, the step takes
    the one nearest to ready, which breaks the cycle the same way every time, and a file
    still comes after every dependency no cycle joins it to. Self-imports and imports of
    ``target`` are ignored. O((V + E) log V) over the closure."""
    files = closure(target, graph)
    deps = {f: {d for d in graph.get(f, ()) if d in files and d != f} for f in files}
    users: dict[str, list[str]] = defaultdict(list)
    for f in sorted(files):
        for d in deps[f]:
            users[d].append(f)
    indegree = {f: len(users[f]) for f in files}
    for d in set(graph.get(target, ())) & files:
        indegree[d] += 1
    component = _components(deps)
    pending = {f: len(ds) for f, ds in deps.items()}
    outside = {f: sum(component[d] != component[f] for d in ds) for f, ds in deps.items()}
    heap = [(pending[f], indegree[f], f) for f in files if not outside[f]]
    heapq.heapify(heap)
    placed: list[str] = []
    done: set[str] = set()
    while heap:
        count, _, f = heapq.heappop(heap)
        if f in done or count != pending[f]:
            continue  # placed already, or an outdated entry
        done.add(f)
        placed.append(f)
        for user in users[f]:
            if user not in done:
                pending[user] -= 1
                outside[user] -= component[user] != component[f]
                if not outside[user]:
                    heapq.heappush(heap, (pending[user], indegree[user], user))
    placed.append(target)
    return placed


def _components(deps: Mapping[str, Collection[str]]) -> dict[str, int]:
    """File -> its strongly connected component's number (Tarjan's algorithm, iterative:
    a 10,000-file cycle must not reach Python's recursion limit)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    component: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    count = 0
    for root in sorted(deps):
        if root in index:
            continue
        work = [(root, iter(sorted(deps[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, edges = work[-1]
            step = next(edges, None)
            if step is not None:
                if step not in index:
                    index[step] = low[step] = len(index)
                    stack.append(step)
                    on_stack.add(step)
                    work.append((step, iter(sorted(deps[step]))))
                elif step in on_stack:
                    low[node] = min(low[node], index[step])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component[member] = count
                    if member == node:
                        break
                count += 1
    return component


def piece(path: str, text: str) -> str:
    """One file's part of a context document: its path line, then its text."""
    return f"{path}\n{text}"


def context_document(target: str, graph: Graph, texts: Mapping[str, str], budget: int,
                     size: Callable[[str], int] = len,
                     sep: str = FILE_SEP) -> tuple[str, list[str]] | None:
    """``target``'s context document and the paths it holds (in its order), or None where
    ``target`` depends on no file of ``texts``.

    The files of :func:`order` that ``texts`` holds, each as :func:`piece`, joined by
    ``sep``, such that ``size(document) <= budget``: ``target`` is kept whole where it fits
    (else its start alone: the longest prefix that fits), then its dependencies from the
    nearest (last in the order) back, stopping at the first that does not fit, so the
    farthest are dropped first. ``size`` measures text (``len`` by default; a tokenizer's
    token count for a window), summed over the pieces and checked on the whole."""
    if target not in texts:
        return None
    files = [p for p in order(target, graph) if p in texts]
    if len(files) < 2:
        return None
    chosen = plan(files, lambda p: size(piece(p, texts[p])), budget, size(sep))
    kept = [piece(p, texts[p]) if cut is None else _prefix(piece(p, texts[p]), cut, size)
            for p, cut in chosen]
    paths = [p for p, _ in chosen]
    document = sep.join(kept)
    while size(document) > budget and len(kept) > 1:  # a size that is not additive
        kept.pop(0)
        paths.pop(0)
        document = sep.join(kept)
    return document, paths


def plan(files: Sequence[str], size_of: Callable[[str], int], budget: int, sep_size: int,
         min_part: int = 0) -> list[tuple[str, int | None]]:
    """What of ``files`` (an :func:`order`, the target last) a document of at most ``budget``
    holds: ``(path, None)`` for a file kept whole, ``(path, n)`` for one cut to its start of
    size ``n``; in document order. The target is kept whole where it fits (else its start
    alone); then its dependencies from the nearest back, each costing its size and a
    separator's, until one does not fit: with ``min_part``, that one keeps its start (its
    declarations, imports and signatures come first) where ``min_part`` or more is left,
    else it and everything farther is dropped."""
    target = files[-1]
    whole = size_of(target)
    if whole > budget:
        return [(target, budget)]
    kept: list[tuple[str, int | None]] = [(target, None)]
    used = whole
    for path in reversed(files[:-1]):
        cost = size_of(path) + sep_size
        if used + cost <= budget:
            kept.append((path, None))
            used += cost
            continue
        room = budget - used - sep_size
        if min_part and room >= min_part:
            kept.append((path, room))
        break
    return kept[::-1]


def _prefix(text: str, budget: int, size: Callable[[str], int]) -> str:
    """The longest prefix of ``text`` whose size is at most ``budget`` (binary search:
    size grows with length)."""
    low, high = 0, len(text)
    while low < high:
        middle = (low + high + 1) // 2
        if size(text[:middle]) <= budget:
            low = middle
        else:
            high = middle - 1
    return text[:low]


def reverse(graph: Graph) -> dict[str, set[str]]:
    """``path -> the files that import it``."""
    users: dict[str, set[str]] = defaultdict(set)
    for path, deps in graph.items():
        for dep in deps:
            if dep != path:
                users[dep].add(path)
    return dict(users)


def dependents(changed: Collection[str], graph: Graph,
               users: Mapping[str, Collection[str]] | None = None) -> set[str]:
    """The targets whose context documents include any of ``changed``: every file that
    depends on one of them transitively, and the changed files themselves, where they have
    a document (depend on some file). A superset where documents are cut to a budget (a
    far dependency may have been dropped from a document; the caller may rebuild it and
    find it unchanged). ``users`` is :func:`reverse` of ``graph``, where the caller keeps
    it."""
    users = reverse(graph) if users is None else users
    seen = set(changed)
    stack = list(changed)
    while stack:
        for user in users.get(stack.pop(), ()):
            if user not in seen:
                seen.add(user)
                stack.append(user)
    return {p for p in seen if any(d != p for d in graph.get(p, ()))}


def changed_edges(old: Graph, new: Graph) -> set[str]:
    """The files whose imports differ between two graphs (added, removed or rewired): with
    the changed files themselves, what :func:`dependents` takes after a commit."""
    return {p for p in old.keys() | new.keys()
            if list(old.get(p, ())) != list(new.get(p, ()))}


def affected(changed: Collection[str], old: Graph, new: Graph) -> set[str]:
    """The targets whose context documents may differ between the snapshot of ``old`` and
    that of ``new`` (graphs before and after a commit), where ``changed`` are the files the
    commit added, modified or deleted: the :func:`dependents` in either graph of those files
    and of the files whose imports resolve differently (an import that now finds an added
    file, or lost a deleted one). A target only ``old`` has is in it (its document is to be
    dropped); everything outside it keeps its document as it was."""
    touched = set(changed) | changed_edges(old, new)
    return dependents(touched, old) | dependents(touched, new)


def with_edges(graph: Graph, path: str, deps: Iterable[str] | None) -> dict[str, list[str]]:
    """A copy of ``graph`` where ``path`` imports ``deps`` (None: ``path`` is gone)."""
    updated = {p: list(ds) for p, ds in graph.items()}
    if deps is None:
        updated.pop(path, None)
    else:
        updated[path] = [d for d in dict.fromkeys(deps) if d != path]
    return updated
