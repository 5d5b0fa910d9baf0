"""Window arithmetic: a window is a view (document, offset), never a copy of tokens.

Windows of ``max_tokens`` start every ``stride = max_tokens - overlap`` tokens; the last one
ends exactly at the document's end (it may overlap its predecessor by more than ``overlap``);
a document of at most ``max_tokens`` tokens is one window; an empty document has none.
"""

from __future__ import annotations

import numpy as np


def window_count(n_tokens: int, max_tokens: int, stride: int) -> int:
    if n_tokens <= 0:
        return 0
    if n_tokens <= max_tokens:
        return 1
    return -(-(n_tokens - max_tokens) // stride) + 1


def window_counts(n_tokens: np.ndarray, max_tokens: int, stride: int) -> np.ndarray:
    n = np.asarray(n_tokens, dtype=np.int64)
    long_docs = -(-(n - max_tokens) // stride) + 1
    return np.where(n <= 0, 0, np.where(n <= max_tokens, 1, long_docs))


def window_start(n_tokens: int, index: int, max_tokens: int, stride: int) -> int:
    """Offset of window ``index`` within a document of ``n_tokens`` tokens."""
    return max(0, min(index * stride, n_tokens - max_tokens))
