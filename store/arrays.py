"""Token arrays in LMDB, cut into checksummed chunks that fill whole pages.

LMDB gives any value over about 2 KB overflow pages of its own and rounds it up to whole
4 KiB pages: one value per array wasted a quarter of a store of real code. So an array is
stored as chunks of at most ``CHUNK_BYTES`` — exactly one overflow page each, nothing wasted —
under keys (array id, chunk number), appended in order; only the last, partial chunk can leave
part of a page unused, and a short one sits packed in a leaf page. A 1,024-token window of
uint16 tokens spans at most two chunks. Every array has at least one chunk, empty arrays too.

Each chunk starts with the xxh3-64 of its tokens: token pages are most of a store, and a
flipped byte there would otherwise train a model on wrong tokens without any error. It costs
8 bytes of each 4,080 (0.2 %). A reader checks each chunk the first time it reads it (about
2 µs on this machine) and remembers the chunks it checked (a set of ints, given as
``verified``), so training, which reads every window many times, pays it once per chunk.
"""

from __future__ import annotations

import struct

import numpy as np
import xxhash

from .errors import StoreCorrupt

PAGE_HEADER = 16                # LMDB's page header; a chunk plus it fills one 4 KiB page
CHUNK_BYTES = 4096 - PAGE_HEADER
SUM_BYTES = 8
PAYLOAD_BYTES = CHUNK_BYTES - SUM_BYTES

_KEY = struct.Struct(">QI")
_SUM = struct.Struct("<Q")
_digest = xxhash.xxh3_64_intdigest


class ChunkMissing(LookupError):
    """A chunk an index names is not in the store (the array is gone, or never was)."""


def chunk_key(array_id: int, chunk: int) -> bytes:
    return _KEY.pack(array_id, chunk)


def tokens_per_chunk(dtype: np.dtype) -> int:
    return PAYLOAD_BYTES // np.dtype(dtype).itemsize


def chunks_of(data: bytes) -> list[bytes]:
    """The stored chunks of an array's raw bytes: checksum, then up to PAYLOAD_BYTES."""
    parts = [data[i:i + PAYLOAD_BYTES] for i in range(0, len(data), PAYLOAD_BYTES)] or [b""]
    return [_SUM.pack(_digest(part)) + part for part in parts]


def _check(raw, array_id: int, chunk: int) -> None:
    view = memoryview(raw)
    if len(view) < SUM_BYTES or _SUM.unpack_from(view)[0] != _digest(view[SUM_BYTES:]):
        raise StoreCorrupt(f"token array {array_id}, chunk {chunk}, fails its checksum: the "
                           f"store is corrupt. Rebuild it with `repofeed init --force` and "
                           f"`repofeed backfill`.")


def _chunk(txn, db, array_id: int, chunk: int, verified: set[int] | None):
    """The stored chunk (checksum first), checked unless ``verified`` says it was."""
    raw = txn.get(_KEY.pack(array_id, chunk), None, db)
    if raw is None:
        raise ChunkMissing(array_id)
    if verified is None:
        _check(raw, array_id, chunk)
    else:
        mark = array_id << 32 | chunk
        if mark not in verified:
            _check(raw, array_id, chunk)
            verified.add(mark)
    return raw


def read_slice(txn, db, array_id: int, start: int, stop: int, dtype: np.dtype,
               verified: set[int] | None = None) -> np.ndarray:
    """Tokens ``start:stop`` of an array as a new int64 array (empty when ``stop <= start``).

    Raises ``ChunkMissing`` when the array is absent and ``StoreCorrupt`` when a chunk fails
    its checksum (each chunk is checked once per ``verified`` set; every time without one).
    The cases of a training window — within one chunk, or across two — come first: this is
    the hot path of every training step.
    """
    if stop <= start:
        return np.zeros(0, dtype=np.int64)
    item = dtype.itemsize
    per_chunk = PAYLOAD_BYTES // item
    first = start // per_chunk
    split = (first + 1) * per_chunk
    offset = SUM_BYTES + (start - first * per_chunk) * item
    if stop <= split:
        return np.frombuffer(_chunk(txn, db, array_id, first, verified), dtype, stop - start,
                             offset).astype(np.int64)
    out = np.empty(stop - start, dtype=np.int64)
    out[:split - start] = np.frombuffer(_chunk(txn, db, array_id, first, verified), dtype,
                                        split - start, offset)
    pos, chunk = split - start, first + 1
    while pos < len(out):
        take = min(per_chunk, len(out) - pos)
        out[pos:pos + take] = np.frombuffer(_chunk(txn, db, array_id, chunk, verified), dtype,
                                            take, SUM_BYTES)
        pos += take
        chunk += 1
    return out


def read_all(txn, db, array_id: int, dtype: np.dtype) -> np.ndarray:
    """A whole array, copied out of the transaction; ``ChunkMissing`` if absent."""
    cursor = txn.cursor(db=db)
    prefix = struct.pack(">Q", array_id)
    if not cursor.set_range(chunk_key(array_id, 0)):
        raise ChunkMissing(array_id)
    parts = []
    for n, (key, value) in enumerate(cursor):
        if bytes(key[:8]) != prefix:
            break
        _check(value, array_id, n)
        parts.append(np.frombuffer(value, dtype=dtype, offset=SUM_BYTES))
    if not parts:
        raise ChunkMissing(array_id)
    return np.concatenate(parts) if len(parts) > 1 else parts[0].copy()
