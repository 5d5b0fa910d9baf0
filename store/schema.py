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
# 3: data quality: facts per content (filters' measurements, language, complexity), secrets
#    redacted before hashing, the near-duplicate index, linguist attributes per document
# 4: stored variants per content and transform; the import graph and context documents
SCHEMA_VERSION = 4
FORMAT_NAME = "repofeed-store"

# Named sub-databases.
DB_META = b"meta"          # key (ascii) -> msgpack value
DB_TOKENS = b"tokens"      # (array id, chunk) -> raw tokens, page-sized chunks (arrays.py)
DB_HASHES = b"hashes"      # 16-byte content hash -> 8-byte array id (content addressing)
DB_DOCS = b"docs"          # path_key(path) -> msgpack document (which holds the full path)
DB_RECORDS = b"records"    # 8-byte big-endian sequence number -> msgpack evolution record
DB_COMMITS = b"commits"    # 20-byte commit oid -> msgpack {first, count}
DB_SKIPPED = b"skipped"    # path_key(path) -> reason, for tip files left out of the snapshot
#                            (reason NUL path, when the key is a hash: see path_key)
DB_GARBAGE = b"garbage"    # 8-byte array id -> msgpack time it was first found unreferenced
DB_FACTS = b"facts"        # 8-byte array id -> msgpack facts of its text (store/facts.py),
#                            computed once when the array is first written
# Near-duplicate index (issue 9, dedup.py): the live snapshot's contents, updated per commit.
DB_NEAR_SIGS = b"near_sigs"          # content hash -> references, cluster id, MinHash signature
DB_NEAR_BANDS = b"near_bands"        # LSH band key (9 bytes) + content hash -> empty
DB_NEAR_CLUSTERS = b"near_clusters"  # cluster id + content hash -> empty: a cluster's members
K_NEAR_DUP = b"near_dup"             # meta: the parameters the index was made with
NEAR_DBS = (DB_NEAR_SIGS, DB_NEAR_BANDS, DB_NEAR_CLUSTERS)

# Stored variants (issue 10, store/variants): other spellings of a snapshot content, made once
# per (content, recipe, version) after the commit that brought the content in.
DB_VARIANTS = b"variants"  # content hash + recipe name (ascii) -> msgpack entry: {"v": version,
#                            "hash", "array", "n_tokens"} or {"v": version, "reason": why none}
K_VARIANT_NAMES = b"variant_names"  # meta: the repository's identifiers renaming draws from
# Repository context (issue 10, store/imports.py, store/context.py), updated per commit.
DB_IMPORTS = b"imports"    # path_key(path) -> msgpack {"v", "hash", "imports": [...]}: what the
#                            snapshot document at that path imports, as written
DB_CONTEXT = b"context"    # path_key(path) -> msgpack context document of that target: {"path",
#                            "hash", "array", "n_tokens", "files": [paths it holds, in order]}
VARIANT_DBS = (DB_VARIANTS, DB_IMPORTS, DB_CONTEXT)

ALL_DBS = (DB_META, DB_TOKENS, DB_HASHES, DB_DOCS, DB_RECORDS, DB_COMMITS, DB_SKIPPED,
           DB_GARBAGE, DB_FACTS, *NEAR_DBS, *VARIANT_DBS)

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
K_SHALLOW = b"shallow_boundaries"  # commits processed as a shallow clone's boundary (no parents)
K_PIN = b"pinned_at"              # a store made for a temporal split: the cut commit it ends at

# Secrets never stored (issue 9, store/secrets.py): placeholders written, per kind, counted once
# per distinct stored text when its token array is first written (and by `repofeed redact`).
K_REDACTIONS = b"redactions"      # kind -> count

# LMDB's default build refuses keys over 511 bytes (MDB_MAXKEYSIZE); a longer path is keyed by
# a prefix of it, a NUL (which no git path holds) and a hash of the whole.
MAX_KEY_BYTES = 511
_HASHED_PREFIX = MAX_KEY_BYTES - 1 - 16


# Paths are git's bytes decoded with "surrogateescape" (see ``path_bytes``): a name that is
# not UTF-8 holds lone surrogates, which strict UTF-8 cannot encode. msgpack writes such a
# string as its original bytes and reads it back the same way, so nothing is lost; every
# string that is valid UTF-8 is stored exactly as before.
def pack(value: Any) -> bytes:
    return msgpack.packb(value, use_bin_type=True, unicode_errors="surrogateescape")


def unpack(raw: bytes | memoryview) -> Any:
    try:
        return msgpack.unpackb(raw, raw=False, strict_map_key=False,
                               unicode_errors="surrogateescape")
    except Exception as exc:  # msgpack raises several kinds for bytes that do not parse
        raise StoreCorrupt(
            f"a value in the store does not parse ({type(exc).__name__}: {exc}): the store is "
            f"corrupt. Rebuild it with `repofeed init --force` and `repofeed backfill`."
        ) from exc


def path_str(raw: bytes) -> str:
    """A path as repofeed holds it: git's bytes (or the file system's, which are the same)
    decoded as UTF-8 with "surrogateescape", so that ``path_bytes`` (or ``os.fsencode``)
    gives the original bytes back, whatever they are."""
    return raw.decode("utf-8", "surrogateescape")


def path_bytes(path: str) -> bytes:
    """Git's bytes of a path: the inverse of ``path_str``."""
    return path.encode("utf-8", "surrogateescape")


def path_key(path: str) -> bytes:
    """The key of a path in the docs and skipped databases: its bytes, or, over LMDB's key
    limit, a prefix, a NUL and a 128-bit hash of the whole (the value keeps the full path)."""
    raw = path_bytes(path)
    if len(raw) <= MAX_KEY_BYTES:
        return raw
    return raw[:_HASHED_PREFIX] + b"\0" + xxhash.xxh3_128_digest(raw)


def is_hashed_key(key: bytes) -> bool:
    return len(key) == MAX_KEY_BYTES and key[_HASHED_PREFIX] == 0


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
