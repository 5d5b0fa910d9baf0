"""Evolution records as training sequences, in the CommitPack layout.

A record's sequence is ``<commit_before> B <commit_msg> M <commit_after> A [eos]``. When it does
not fit ``max_tokens``, the record gives several *hunk-centred views* instead of being cut:

* The message keeps at most a quarter of the window (longer messages are cut there; the views
  still say which commit they come from).
* Each view covers one group of neighbouring hunks — token ranges of B and A that git's diff
  says changed — plus as much unchanged context around them as the rest of the window holds,
  shared between before and after and centred on the hunks.
* A hunk too large for one view (an added file of 10,000 tokens, say) is tiled: consecutive
  views take consecutive slices of its before and after parts, in proportion.

The end-of-sequence token closes a view whose after part reaches the file's end.
Views are computed from token counts and hunk ranges alone, so any ``max_tokens`` works at
read time without touching the store.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

SPECIAL_TOKENS = 4  # <commit_before>, <commit_msg>, <commit_after>, and room for eos


@dataclass(frozen=True)
class View:
    before: tuple[int, int]
    after: tuple[int, int]
    message: int  # message tokens kept

    @property
    def body(self) -> int:
        return (self.before[1] - self.before[0]) + (self.after[1] - self.after[0])


def message_budget(n_msg: int, max_tokens: int) -> int:
    return min(n_msg, max_tokens // 4)


def _centre(span: tuple[int, int], extra: int, length: int) -> tuple[tuple[int, int], int]:
    """Grow ``span`` by up to ``extra`` tokens of context, centred, within [0, length)."""
    lo, hi = span
    want_lo = extra // 2
    grow_lo = min(want_lo, lo)
    grow_hi = min(extra - grow_lo, length - hi)
    grow_lo = min(extra - grow_hi, lo)  # hand what the end could not take back to the start
    return (lo - grow_lo, hi + grow_hi), extra - grow_lo - grow_hi


def _split(lo: int, hi: int, parts: int, k: int) -> tuple[int, int]:
    n = hi - lo
    return lo + n * k // parts, lo + n * (k + 1) // parts


def plan_views(n_before: int, n_after: int, n_msg: int, hunks: Sequence[Sequence[int]],
               max_tokens: int) -> list[View]:
    """The views of one record. ``hunks`` holds token ranges ``(b0, b1, a0, a1)``."""
    m = message_budget(n_msg, max_tokens)
    budget = max_tokens - SPECIAL_TOKENS - m
    if budget <= 0:
        raise ValueError(f"max_tokens={max_tokens} leaves no room for the record body")
    if n_before + n_after <= budget:
        return [View((0, n_before), (0, n_after), m)]
    # No hunks: the content did not change (a pure rename); one view of the file's start.
    ranges = [tuple(h) for h in hunks] or [(0, 0, 0, 0)]

    # Group neighbouring hunks while the group's changed spans fit one view.
    groups: list[list[int]] = []
    for b0, b1, a0, a1 in ranges:
        if groups:
            g = groups[-1]
            if (max(b1, g[1]) - g[0]) + (max(a1, g[3]) - g[2]) <= budget:
                g[1], g[3] = max(b1, g[1]), max(a1, g[3])
                continue
        groups.append([b0, b1, a0, a1])

    views: list[View] = []
    for b0, b1, a0, a1 in groups:
        size = (b1 - b0) + (a1 - a0)
        if size > budget:
            parts = -(-size // budget)
            for k in range(parts):
                views.append(View(_split(b0, b1, parts, k), _split(a0, a1, parts, k), m))
            continue
        extra = budget - size
        before, left = _centre((b0, b1), extra // 2, n_before)
        after, left = _centre((a0, a1), extra - extra // 2 + left, n_after)
        if left:
            before, _ = _centre(before, left, n_before)
        views.append(View(before, after, m))
    return views
