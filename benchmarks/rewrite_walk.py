"""Which commits a rewrite superseded: the exact walk against libgit2's hiding walk alone.

``history.reachable_only`` takes libgit2's revwalk (tips pushed, the live roots hidden), whose
answer is a superset when commit dates are skewed, and checks the candidates against a walk of
everything the live roots reach (no hidden commits, so no date cut-off), which ends once every
candidate is found. The baseline is the hiding walk alone (what it was before issue 7). On a
generated history (``--commits``, default 10,000) with ``--branches`` extra local branches
forked at spread-out points, it times, best of ``--repeat`` rounds:

- amend: the old tip lost, one new tip in its place (one candidate);
- rebase: the last 50 commits rewritten (50 candidates);
- branch deleted: a branch of 500 commits of its own dropped (500 candidates).

The usual case, a commit on top of the tip, loses no tip and walks nothing in either version.

    python benchmarks/rewrite_walk.py [--commits 10000] [--branches 8] [--repeat 5]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pygit2
from common import Timer, add_scratch_options, table, workspace
from synthetic_repo import make_repo

from repofeed.daemon.history import reachable_only


def walk_only(repo: pygit2.Repository, tips: list[str], hidden: list[str]) -> list[bytes]:
    """The baseline: libgit2's hiding walk, no check (the code before issue 7)."""
    walker = repo.walk(None)
    for tip in tips:
        walker.push(pygit2.Oid(hex=tip))
    for oid in hidden:
        walker.hide(pygit2.Oid(hex=oid))
    return [c.id.raw for c in walker]


def _commit(repo: pygit2.Repository, parent: pygit2.Oid, message: str) -> pygit2.Oid:
    sig = pygit2.Signature("Bench", "bench@example.com", 1_800_000_000, 0)
    tree = repo[parent].peel(pygit2.Commit).tree_id
    return repo.create_commit(None, sig, sig, message, tree, [parent])


def scenarios(repo: pygit2.Repository, branches: int) -> dict[str, tuple[list[str], list[str]]]:
    """name -> (lost tips, live roots), built with objects only (no ref moves)."""
    tip = repo.head.peel(pygit2.Commit)
    history = [c.id for c in repo.walk(tip.id, pygit2.enums.SortMode.TOPOLOGICAL)]
    roots = [str(tip.id)]
    for n in range(branches):  # other local branches, forked along the history, one commit each
        roots.append(str(_commit(repo, history[(n + 1) * len(history) // (branches + 2)],
                                 f"branch {n}")))
    amended = _commit(repo, tip.parent_ids[0], "amended")
    rebased = history[50]
    for n in range(50):
        rebased = _commit(repo, rebased, f"rebased {n}")
    side = history[len(history) // 3]
    for n in range(500):
        side = _commit(repo, side, f"side {n}")
    return {
        "amend": ([str(tip.id)], [str(amended), *roots[1:]]),
        "rebase 50": ([str(tip.id)], [str(rebased), *roots[1:]]),
        "branch deleted (500)": ([str(side)], roots),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commits", type=int, default=10_000)
    parser.add_argument("--branches", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=5)
    add_scratch_options(parser)
    args = parser.parse_args()
    with workspace(args.workdir, args.keep) as scratch:
        path = make_repo(Path(scratch) / "repo", commits=args.commits, files=50)
        repo = pygit2.Repository(str(path))
        rows = []
        for name, (lost, live) in scenarios(repo, args.branches).items():
            best = {"walk": float("inf"), "exact": float("inf")}
            for _ in range(args.repeat):
                for label, fn in (("walk", walk_only), ("exact", reachable_only)):
                    with Timer() as t:
                        found = list(fn(repo, lost, live))
                    best[label] = min(best[label], t.seconds)
                    if label == "exact":
                        count = len(found)
            rows.append((name, count, f"{best['walk'] * 1e3:.2f}", f"{best['exact'] * 1e3:.2f}",
                         f"{best['exact'] / best['walk']:.1f}x"))
        print(f"{args.commits:,} commits, {args.branches + 1} live roots")
        print(table(["rewrite", "superseded", "walk ms", "exact ms", "ratio"], rows))


if __name__ == "__main__":
    main()
