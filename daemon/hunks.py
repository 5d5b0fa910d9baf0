"""Git's line hunks as token ranges: where, in the tokens of a before and an after text, the
lines a diff says changed begin and end. Evolution views centre on these ranges
(store/evolution.py).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from repofeed.store.lines import hunk_span, line_starts


class TokenMap:
    """Maps byte ranges of a text to the token ranges covering them."""

    def __init__(self, text: str, ids: np.ndarray, lengths: np.ndarray):
        self.lines = line_starts(np.frombuffer(text.encode("utf-8"), dtype=np.uint8))
        ends = np.cumsum(lengths[ids]) if len(ids) else np.zeros(0, dtype=np.int64)
        self.ends = ends
        self.starts = ends - lengths[ids] if len(ids) else ends

    def line_range(self, start: int, count: int) -> tuple[int, int]:
        """Token range of git's hunk lines ``start`` (1-based) .. ``start + count``."""
        lo, hi = hunk_span(self.lines, start, count)
        first = int(np.searchsorted(self.ends, lo, side="right"))
        stop = int(np.searchsorted(self.starts, hi, side="left")) if hi > lo else first
        return first, max(first, stop)


def token_hunks(before: str, b_ids: np.ndarray, after: str, a_ids: np.ndarray,
                 hunks: Iterable[tuple[int, int, int, int]], lengths: np.ndarray
                 ) -> list[list[int]]:
    bmap, amap = TokenMap(before, b_ids, lengths), TokenMap(after, a_ids, lengths)
    out = []
    for old_start, old_lines, new_start, new_lines in hunks:
        b0, b1 = bmap.line_range(old_start, old_lines)
        a0, a1 = amap.line_range(new_start, new_lines)
        out.append([b0, b1, a0, a1])
    return out
