"""Window arithmetic, in one place: a window is a view (document, offset), never a copy.

Windows of ``max_tokens`` start every ``stride = max_tokens - overlap`` tokens; the last one
ends exactly at the document's end (it may overlap its predecessor by more than ``overlap``);
a document of at most ``max_tokens`` tokens is one window; an empty document has none.

Each token of a document lies in the part a window *adds* (``new_label_starts``) of exactly
one window: the first window adds all its tokens, every later one the tokens past its
predecessor's end. Taking loss only there (``labels_on="new"``) labels each token once per pass.
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


def new_label_starts(doc: np.ndarray, start: np.ndarray, stop: np.ndarray) -> np.ndarray:
    """For windows from ``window_spans``: the offset, within each window, of the first token it
    adds beyond its predecessor in the same document (0 for a document's first window)."""
    doc, start, stop = (np.asarray(a, dtype=np.int64) for a in (doc, start, stop))
    offset = np.zeros(len(doc), dtype=np.int64)
    if len(doc) > 1:
        same = doc[1:] == doc[:-1]
        offset[1:] = np.where(same, np.maximum(stop[:-1] - start[1:], 0), 0)
    return offset
