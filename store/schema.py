"""The on-disk layout of a store: named databases, keys, and the schema version.

Values are msgpack, except token arrays, which are raw little-endian uint16 (vocabulary up to
65,536) or uint32 so that readers take them with ``np.frombuffer`` and no parsing.
"""

from __future__ import annotations

import struct
from typing import Any

import msgpack
import xxhash

from .errors import StoreCorrupt

# 2: sentinels are control symbols, never encoded from text; token chunks carry a checksum;
#    the garbage database and superseded_at for garbage collection
SCHEMA_VERSION = 2
FORMAT_NAME = "repofeed-store"

# Named sub-databases.
DB_META = b"meta"          # key (ascii) -> msgpack value
DB_TOKENS = b"tokens"      # (array id, chunk) -> raw tokens, page-sized chunks (arrays.py)
DB_HASHES = b"hashes"      # 16-byte content hash -> 8-byte array id (content addressing)
DB_DOCS = b"docs"          # path (utf-8) -> msgpack document
DB_RECORDS = b"records"    # 8-byte big-endian sequence number -> msgpack evolution record
DB_COMMITS = b"commits"    # 20-byte commit oid -> msgpack {first, count}
DB_SKIPPED = b"skipped"    # path (utf-8) -> reason, for tip files left out of the snapshot
DB_GARBAGE = b"garbage"    # 8-byte array id -> msgpack time it was first found unreferenced
ALL_DBS = (DB_META, DB_TOKENS, DB_HASHES, DB_DOCS, DB_RECORDS, DB_COMMITS, DB_SKIPPED,
           DB_GARBAGE)

# Meta keys.
K_FORMAT = b"format"
K_SCHEMA = b"schema_version"
K_CONFIG = b"config"
K_TOKENIZER_MODEL = b"tokenizer_model"
K_TOKENIZER_INFO = b"tokenizer"
K_REPO = b"repo"
K_FOLLOW = b"follow"
K_HEAD = b"head"                  # followed tip the snapshot reflects
K_NEXT_SEQ = b"next_seq"
K_NEXT_ARRAY = b"next_array"
K_COMMITS_DONE = b"commits_processed"
K_STORED_TOKENS = b"stored_tokens"  # tokens over all distinct stored arrays
K_RECORD_SKIPS = b"record_skips"    # reason -> count, over the files of processed commits
K_ROOTS = b"roots"                # ref -> commit id: the tips that kept commits live last time
K_SUPERSEDED = b"superseded_commits"  # how many processed commits are superseded now
K_PENDING = b"pending_tips"       # tips a run began ingesting from; cleared when it completes


def pack(value: Any) -> bytes:
    return msgpack.packb(value, use_bin_type=True)


def unpack(raw: bytes | memoryview) -> Any:
    try:
        return msgpack.unpackb(raw, raw=False, strict_map_key=False)
    except Exception as exc:  # msgpack raises several kinds for bytes that do not parse
        raise StoreCorrupt(
            f"a value in the store does not parse ({type(exc).__name__}: {exc}): the store is "
            f"corrupt. Rebuild it with `repofeed init --force` and `repofeed backfill`."
        ) from exc


def content_key(text: str) -> bytes:
    """The content hash of a text: 128 bits of xxh3 over its UTF-8 bytes."""
    return content_key_of(text.encode("utf-8"))


def content_key_of(data: bytes) -> bytes:
    return xxhash.xxh3_128_digest(data)


def seq_key(seq: int) -> bytes:
    """Big-endian keys sort in number order, so appends fill LMDB pages completely."""
    return struct.pack(">Q", seq)


def seq_of(key: bytes | memoryview) -> int:
    return struct.unpack(">Q", bytes(key))[0]


def token_dtype(vocab_size: int) -> str:
    return "<u2" if vocab_size <= 1 << 16 else "<u4"
