"""Token arrays in LMDB, cut into chunks that fill whole pages.

LMDB gives any value over about 2 KB overflow pages of its own and rounds it up to whole
4 KiB pages: one value per array wasted a quarter of a store of real code. So an array is
stored as chunks of ``CHUNK_BYTES`` — exactly one overflow page each, nothing wasted — under
keys (array id, chunk number), appended in order; only the last, partial chunk can leave part
of a page unused, and a short one sits packed in a leaf page. A 1,024-token window of uint16
tokens spans at most two chunks. Every array has at least one chunk, empty arrays too.
"""

from __future__ import annotations

import struct

import numpy as np

PAGE_HEADER = 16                # LMDB's page header; a chunk plus it fills one 4 KiB page
CHUNK_BYTES = 4096 - PAGE_HEADER


_KEY = struct.Struct(">QI")


def chunk_key(array_id: int, chunk: int) -> bytes:
    return _KEY.pack(array_id, chunk)


def chunks_of(data: bytes) -> list[bytes]:
    return [data[i:i + CHUNK_BYTES] for i in range(0, len(data), CHUNK_BYTES)] or [b""]


def read_slice(txn, db, array_id: int, start: int, stop: int, dtype: np.dtype
               ) -> np.ndarray | None:
    """Tokens ``start:stop`` of an array as a new int64 array; None if the array is absent."""
    item = dtype.itemsize
    per_chunk = CHUNK_BYTES // item
    first = start // per_chunk
    last = (stop - 1) // per_chunk if stop > start else first
    if first == last:  # the common case: one lookup
        raw = txn.get(_KEY.pack(array_id, first), None, db)
        if raw is None:
            return None
        return np.frombuffer(raw, dtype=dtype, count=stop - start,
                             offset=(start - first * per_chunk) * item).astype(np.int64)
    out = np.empty(stop - start, dtype=np.int64)
    pos = 0
    for chunk in range(first, last + 1):
        raw = txn.get(_KEY.pack(array_id, chunk), None, db)
        if raw is None:
            return None
        base = chunk * per_chunk
        lo, hi = max(start - base, 0), min(stop - base, per_chunk)
        out[pos:pos + hi - lo] = np.frombuffer(raw, dtype=dtype, count=hi - lo, offset=lo * item)
        pos += hi - lo
    return out


def read_all(txn, db, array_id: int, dtype: np.dtype) -> np.ndarray | None:
    """A whole array, copied out of the transaction; None if absent."""
    cursor = txn.cursor(db=db)
    prefix = struct.pack(">Q", array_id)
    if not cursor.set_range(chunk_key(array_id, 0)):
        return None
    parts = []
    for key, value in cursor:
        if bytes(key[:8]) != prefix:
            break
        parts.append(np.frombuffer(value, dtype=dtype))
    if not parts:
        return None
    return np.concatenate(parts) if len(parts) > 1 else parts[0].copy()
