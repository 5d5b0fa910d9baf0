"""Git's line hunks as byte ranges: the one place that maps a diff's lines to the bytes of a
text. Tokenizing splices around these ranges (``SentencePieceTokenizer.plan_edit``), the
evolution records centre on them (``daemon/hunks.py``), and the facts of an edited text are
measured from them (``store/facts.py``).

A hunk is git's ``(old_start, old_lines, new_start, new_lines)``: 1-based line numbers, and a
hunk of no lines (``old_lines == 0``, an insertion) sits after line ``old_start``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

Hunk = tuple[int, int, int, int]
Edit = tuple[int, int, int, int]
"""``(lo_b, hi_b, lo_a, hi_a)``: a text's bytes ``lo_b:hi_b`` became its new version's
``lo_a:hi_a``; a list of them is in order and leaves every other byte as it was."""


def line_starts(data: np.ndarray | bytes) -> np.ndarray:
    """Byte offset of every line start, then the end of the text."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        data = np.frombuffer(data, dtype=np.uint8)
    starts = np.flatnonzero(data == 0x0A) + 1
    return np.concatenate(([0], starts[starts < len(data)], [len(data)])).astype(np.int64)


def hunk_span(lines: np.ndarray, start: int, count: int) -> tuple[int, int]:
    """The bytes ``(lo, hi)`` of a hunk's side (1-based ``start``, ``count`` lines) in the text
    whose ``line_starts`` are ``lines``; an empty span at the insertion point for no lines."""
    last = len(lines) - 1
    if count == 0:
        at = int(lines[min(start, last)])
        return at, at
    return int(lines[min(start - 1, last)]), int(lines[min(start - 1 + count, last)])


def byte_edits(before_lines: np.ndarray, after_lines: np.ndarray, hunks: Iterable[Hunk]
               ) -> list[Edit]:
    """The :data:`Edit` of each hunk between two texts, given their ``line_starts``."""
    return [(*hunk_span(before_lines, old_start, old_lines),
             *hunk_span(after_lines, new_start, new_lines))
            for old_start, old_lines, new_start, new_lines in hunks]


def describes(before: bytes, after: bytes, edits: Sequence[Edit]) -> bool:
    """Do ``edits`` turn ``before`` into ``after``? The stretches between them must be equal:
    compared at memory speed, so that hunks that do not match the texts (another diff, texts
    redacted since) are found out rather than trusted."""
    lo_b = lo_a = 0
    for e_lo_b, e_hi_b, e_lo_a, e_hi_a in [*edits, (len(before), len(before), len(after),
                                                    len(after))]:
        if not (lo_b <= e_lo_b <= e_hi_b and lo_a <= e_lo_a <= e_hi_a) \
                or e_lo_b - lo_b != e_lo_a - lo_a \
                or before[lo_b:e_lo_b] != after[lo_a:e_lo_a]:
            return False
        lo_b, lo_a = e_hi_b, e_hi_a
    return True
