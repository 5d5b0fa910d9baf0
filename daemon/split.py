"""The temporal split: where training history ends (the cut) and which commits are held out.

Random splits leak for code (a file and its near copy land on both sides), so evaluation holds
out the *newest* commits and trains on a store made at the cut, a commit older than all of
them. Two ways to name it:

* ``holdout=N``: the N newest non-merge commits that the tip reaches, counted over everything
  it reaches in commit-date order (on a history of merged pull requests the first-parent chain
  holds few non-merge commits: counting along it would put the cut years back). The cut is
  the newest commit of the tip's first-parent chain that reaches none of them, so the training
  history holds none of them. Commits the cut does not reach and that are older than the N
  (a side branch merged late) are neither trained on nor scored.
* ``since=DATE``: the cut is the newest first-parent commit of the tip committed before DATE;
  the held-out commits are every non-merge commit the tip reaches and the cut does not.

Dates are committer dates (when a commit entered the history). A date without a time zone is
taken as UTC. ``cut_store`` makes the store at the cut: pinned there, its tokenizer trained on
the cut's tree (training it on the tip would let the held-out text into the vocabulary).
Pure git apart from ``cut_store``; no torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pygit2
from pygit2.enums import SortMode

from repofeed.store.errors import RepofeedError, StoreError
from repofeed.store.locate import open_repository

from .history import followed_ref, reachable_only, resolve_commit


class SplitError(RepofeedError):
    """A temporal split that cannot be made as asked (no training or no held-out data)."""


@dataclass(frozen=True)
class Cut:
    """A temporal split of the history the tip reaches."""

    cut: str                     # the last commit of the training history
    tip: str                     # the newest commit: what evaluation scores files at
    held_out: tuple[str, ...]    # non-merge commits scored, oldest first
    cut_date: datetime           # committer dates, UTC
    tip_date: datetime
    first_held_out: datetime     # the oldest held-out commit's date
    holdout: int | None = None   # how the split was asked for
    since: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-able: hashes and ISO dates."""
        return {
            "cut": self.cut, "tip": self.tip, "held_out": list(self.held_out),
            "held_out_commits": len(self.held_out),
            "cut_date": self.cut_date.isoformat(), "tip_date": self.tip_date.isoformat(),
            "first_held_out_date": self.first_held_out.isoformat(),
            "holdout": self.holdout,
            "since": self.since.isoformat() if self.since else None,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Cut:
        since = data.get("since")
        return cls(data["cut"], data["tip"], tuple(data["held_out"]),
                   datetime.fromisoformat(data["cut_date"]),
                   datetime.fromisoformat(data["tip_date"]),
                   datetime.fromisoformat(data["first_held_out_date"]),
                   data.get("holdout"), datetime.fromisoformat(since) if since else None)


def commit_date(commit: pygit2.Commit) -> datetime:
    return datetime.fromtimestamp(commit.commit_time, UTC)


def parse_date(value: datetime | str) -> datetime:
    """A date given as a datetime or ISO 8601 text (``2024-05-01``, ``2024-05-01T12:00+02:00``);
    without a time zone it is UTC."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip())
        except ValueError:
            raise SplitError(f"{value!r} is not a date: give an ISO 8601 date such as "
                             f"2024-05-01 or 2024-05-01T12:00:00+02:00.") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _repository(repo: pygit2.Repository | str | Path | None) -> pygit2.Repository:
    return repo if isinstance(repo, pygit2.Repository) else open_repository(repo)


def _tip(repo: pygit2.Repository, tip: pygit2.Commit | str | None) -> pygit2.Commit:
    if isinstance(tip, pygit2.Commit):
        return tip
    if tip is None:
        ref = followed_ref(None)
        if repo.is_empty or repo.head_is_unborn:
            raise SplitError(f"{repo.workdir or repo.path} has no commits: there is no history "
                             f"to split.")
        return resolve_commit(repo, ref)
    return resolve_commit(repo, tip)


def _first_parents(tip: pygit2.Commit) -> list[pygit2.Commit]:
    """The tip's first-parent chain, newest first."""
    chain = [tip]
    while chain[-1].parents:
        chain.append(chain[-1].parents[0])
    return chain


def _non_merges_newest_first(repo: pygit2.Repository, tips: list[pygit2.Oid],
                             hidden: tuple[pygit2.Oid, ...] = ()) -> list[pygit2.Commit]:
    """Non-merge commits reachable from ``tips`` (and, exactly, not from ``hidden``), newest
    first by committer date; equal dates keep the walk's order, children before parents."""
    walker = repo.walk(tips[0], SortMode.TOPOLOGICAL)
    for oid in hidden:
        walker.hide(oid)  # libgit2 may still give a few hidden ones: filtered exactly below
    commits = list(walker)
    if hidden:
        exact = set(reachable_only(repo, [str(t) for t in tips], [str(h) for h in hidden]))
        commits = [c for c in commits if c.id.raw in exact]
    commits = [c for c in commits if len(c.parents) <= 1]
    commits.sort(key=lambda c: c.commit_time, reverse=True)  # stable: ties keep topo order
    return commits


def _reaches_none(repo: pygit2.Repository, tip: pygit2.Commit, candidate: pygit2.Commit,
                  held: set[bytes]) -> bool:
    """Whether ``candidate`` (an ancestor of ``tip``) reaches none of ``held``: every one of
    them is reachable from the tip and not from it."""
    if candidate.id.raw in held:
        return False
    newer = set(reachable_only(repo, [str(tip.id)], [str(candidate.id)]))
    return held <= newer


def find_cut(repo: pygit2.Repository | str | Path | None, *, holdout: int | None = None,
             since: datetime | str | None = None, tip: pygit2.Commit | str | None = None
             ) -> Cut:
    """The temporal split of ``tip``'s history (default: ``HEAD``); see the module's text.

    Exactly one of ``holdout`` (the number of newest non-merge commits to hold out) and
    ``since`` (a date: commits from then on are held out) is given.
    """
    repo = _repository(repo)
    if (holdout is None) == (since is None):
        raise SplitError("name the split with exactly one of --holdout N (the N newest "
                         "non-merge commits) and --since DATE.")
    head = _tip(repo, tip)
    chain = _first_parents(head)
    if holdout is not None:
        return _holdout_cut(repo, head, chain, holdout)
    return _since_cut(repo, head, chain, parse_date(since))


def _holdout_cut(repo: pygit2.Repository, head: pygit2.Commit, chain: list[pygit2.Commit],
                 holdout: int) -> Cut:
    if isinstance(holdout, bool) or not isinstance(holdout, int) or holdout <= 0:
        raise SplitError(f"--holdout must be a positive number of commits (got {holdout!r}).")
    newest = _non_merges_newest_first(repo, [head.id])
    if holdout >= len(newest):
        raise SplitError(
            f"--holdout {holdout} leaves no training history: {str(head.id)[:12]} "
            f"reaches {len(newest)} non-merge commit(s); hold out fewer.")
    held = newest[:holdout]
    held_raw = {c.id.raw for c in held}
    # The chain is ordered: a commit reaches everything its first parent reaches, so the
    # commits that reach none of the held-out ones are a suffix of it. Bisect for its start.
    if not _reaches_none(repo, head, chain[-1], held_raw):
        raise SplitError(
            f"--holdout {holdout} leaves no training history: the first commit of the "
            f"first-parent chain is among the {holdout} newest by date (dates out of order?); "
            f"hold out fewer, or use --since DATE.")
    lo, hi = 0, len(chain) - 1  # chain[hi] reaches none; find the smallest such index
    while lo < hi:
        mid = (lo + hi) // 2
        if _reaches_none(repo, head, chain[mid], held_raw):
            hi = mid
        else:
            lo = mid + 1
    cut = chain[hi]
    return _make(head, cut, list(reversed(held)), holdout=holdout)


def _since_cut(repo: pygit2.Repository, head: pygit2.Commit, chain: list[pygit2.Commit],
               since: datetime) -> Cut:
    now = datetime.now(UTC)
    if since > now:
        raise SplitError(f"--since {since.isoformat()} is in the future: nothing can be held "
                         f"out from then on.")
    if since > commit_date(head):
        raise SplitError(
            f"--since {since.isoformat()} is after the tip {str(head.id)[:12]} "
            f"({commit_date(head).isoformat()}): nothing would be held out; give an earlier "
            f"date.")
    stamp = since.timestamp()
    cut = next((c for c in chain if c.commit_time < stamp), None)
    if cut is None:
        raise SplitError(
            f"--since {since.isoformat()} leaves no training history: no commit of the tip's "
            f"first-parent chain is older (the first is from "
            f"{commit_date(chain[-1]).isoformat()}); give a later date.")
    return split_at(repo, cut, head, since=since)


def split_at(repo: pygit2.Repository | str | Path | None, cut: pygit2.Commit | str,
             tip: pygit2.Commit | str | None = None, *, since: datetime | None = None) -> Cut:
    """The split at a known cut: every non-merge commit ``tip`` reaches and ``cut`` does not
    is held out (what ``since`` gives, and how a checkpoint's recorded cut is evaluated)."""
    repo = _repository(repo)
    head = _tip(repo, tip)
    cut_commit = cut if isinstance(cut, pygit2.Commit) else resolve_commit(repo, cut)
    held = _non_merges_newest_first(repo, [head.id], (cut_commit.id,))
    if not held:
        raise SplitError(
            f"the cut {str(cut_commit.id)[:12]} leaves nothing held out: the tip "
            f"{str(head.id)[:12]} reaches no non-merge commit that it does not"
            + (f" (no commit since {since.isoformat()} besides merges)" if since else "")
            + "; hold out more.")
    return _make(head, cut_commit, list(reversed(held)), since=since)


def _make(head: pygit2.Commit, cut: pygit2.Commit, held: list[pygit2.Commit], *,
          holdout: int | None = None, since: datetime | None = None) -> Cut:
    return Cut(str(cut.id), str(head.id), tuple(str(c.id) for c in held), commit_date(cut),
               commit_date(head), commit_date(held[0]), holdout, since)


def cut_store(repo: pygit2.Repository | str | Path | None, cut: Cut | str, directory: str | Path,
              *, tokenizer: str | Path | None = None, vocab_size: int | None = None,
              force: bool = False, progress=None, **config: Any) -> Path:
    """A store at ``directory`` holding the history up to the cut and the snapshot at it.

    Made once (``init_store(at=cut)``: pinned, its tokenizer trained on the cut's tree unless
    ``tokenizer`` is given, never the repository's default store) and backfilled up to the
    cut; called again it reuses the store if it was made for the same cut, tokenizer and
    configuration (finishing an interrupted backfill). A store there made otherwise is an
    error, unless ``force`` replaces it. Returns the store's directory.
    """
    from repofeed.store.config import Config, load_config
    from repofeed.store.reader import Store
    from repofeed.store.schema import K_CONFIG, K_PIN, K_TOKENIZER_INFO

    from .ingest import backfill
    from .init import init_store

    git = _repository(repo)
    oid = cut.cut if isinstance(cut, Cut) else str(resolve_commit(git, cut).id)
    directory = Path(directory).resolve()
    workdir = Path(git.workdir) if git.workdir else None
    # the options that shape what is written; read-time policy is the reader's business
    read = set(Config.read_time())
    wanted = {k: v for k, v in load_config(workdir, vocab_size=vocab_size, **config)
              .to_dict().items() if k not in read}
    source = str(Path(tokenizer).resolve()) if tokenizer is not None else "trained"
    if (directory / "data.mdb").exists() and not force:
        with Store(directory) as store:
            pin, have = store.meta(K_PIN), store.meta(K_CONFIG)
            have_source = (store.meta(K_TOKENIZER_INFO) or {}).get("source")
        differs = [what for what, ok in (("cut", pin == oid),
                                         ("tokenizer", have_source == source),
                                         ("configuration", {k: v for k, v in have.items()
                                                            if k not in read} == wanted))
                  if not ok]
        if differs:
            raise StoreError(
                f"{directory} holds a store made for another {', '.join(differs)} "
                f"(pinned at {str(pin)[:12] if pin else 'nothing'}); use another directory, "
                f"or force=True to replace it.")
    else:
        init_store(git.workdir or git.path, tokenizer=tokenizer, vocab_size=vocab_size,
                   store=directory, force=force, at=oid, **config)
    backfill(git.workdir or git.path, store=directory, until=oid, progress=progress)
    return directory


__all__ = ["Cut", "SplitError", "cut_store", "find_cut", "parse_date", "split_at"]
