"""Window arithmetic, in one place: a window is a view (document, offset), never a copy.

Windows of ``max_tokens`` start every ``stride = max_tokens - overlap`` tokens; the last one
ends exactly at the document's end (it may overlap its predecessor by more than ``overlap``);
a document of at most ``max_tokens`` tokens is one window; an empty document has none.
"""

from __future__ import annotations

import numpy as np


def window_counts(n_tokens, max_tokens: int, stride: int) -> np.ndarray:
    """Windows of each document, for an array of document lengths."""
    n = np.asarray(n_tokens, dtype=np.int64)
    long_docs = -(-(n - max_tokens) // stride) + 1
    return np.where(n <= 0, 0, np.where(n <= max_tokens, 1, long_docs))


def window_count(n_tokens: int, max_tokens: int, stride: int) -> int:
    return int(window_counts(n_tokens, max_tokens, stride))


def window_spans(n_tokens, max_tokens: int, stride: int
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every window of every document, in order: (document number, start, stop) arrays."""
    n = np.asarray(n_tokens, dtype=np.int64)
    counts = window_counts(n, max_tokens, stride)
    doc = np.repeat(np.arange(len(n), dtype=np.int64), counts)
    first = np.repeat(np.cumsum(counts) - counts, counts)
    j = np.arange(len(doc), dtype=np.int64) - first
    start = np.maximum(0, np.minimum(j * stride, n[doc] - max_tokens))
    stop = np.minimum(start + max_tokens, n[doc])
    return doc, start, stop
