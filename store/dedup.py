"""Near-duplicate contents: MinHash signatures, and an LSH index of the live snapshot's contents
kept in the store and updated with every snapshot change, never rebuilt.

The setting is BigCode's near-deduplication (``../shared/ANCHORS.md``): 5-gram shingles over the
words of a text (runs of ``[A-Za-z_0-9]``: the text split on ``[^A-Za-z_0-9]`` with the empty
pieces dropped, so that spacing alone never makes two texts differ), MinHash with 256
permutations, Jaccard similarity 0.7. A text of fewer than ``MIN_SHINGLES`` distinct shingles
gets no signature and is never a near-duplicate of anything.

Signatures are datasketch's ``MinHash`` values (scheme ``affine32``, seed ``SEED``): the same
permutations, computed here with one vectorised pass per block of shingles instead of a Python
call per shingle (``tests/test_dedup.py`` checks them against ``MinHash.update_batch``; see
``_permutations`` for why they are drawn here). A shingle's 32-bit hash is a polynomial over
the xxh64 hashes of its five words. All of it is fixed, so a signature is the same in every
process and every version of the store; the parameters and a checksum of the permutations
are recorded in the store (``K_NEAR_DUP``) and an index made with others is refused.

**Clusters are connected components.** Two indexed contents are *similar* when they share an
LSH bucket (one of ``BANDS`` bands of ``ROWS`` signature rows) and their estimated Jaccard
similarity (the share of equal signature rows) is at least ``THRESHOLD``. A cluster is a
connected component of that relation over the live contents, and its id is the smallest content
hash among its members, so a content similar to nothing is a cluster of its own whose id is its
own hash. Adding a content merges the clusters of its similar contents; removing one splits its
cluster again when it was the only link. Both are functions of the set of live contents alone,
never of the order they came in: a backfill and a store fed commit by commit hold byte-identical
indexes for the same tip. This is BigCode's union-find, with each candidate pair verified.

**Bands.** 32 bands × 8 rows use all 256 permutations. A pair of similarity s becomes a
candidate with probability 1 - (1 - s^8)^32: 0.85 at s = 0.7, 0.997 at 0.8, 0.12 at 0.5. The
usual choice, datasketch's ``optimal_param(0.7, 256)`` = 25 × 10 (BigCode's), gives 0.51 at 0.7:
half the pairs at the threshold would never be found. Here a false candidate costs only one
comparison of two signatures (it is verified), while a missed one is missed for good, so the
bands lean towards recall. Measured on the corpus histories (``benchmarks/bench_dedup.py``):
32 × 8 makes candidates of 99.8% of the pairs at 0.7 or more and 89% of those at 0.70–0.75;
25 × 10, 98.8% and 61%.

The index lives in three databases (schema.py): ``DB_NEAR_SIGS`` (content hash → references,
cluster id, signature), ``DB_NEAR_BANDS`` (band key + content hash, for prefix scans) and
``DB_NEAR_CLUSTERS`` (cluster id + content hash, the members of each cluster; one pass over it
gives every live content's cluster). A content is referenced by the snapshot documents that hold
it; it enters the index with its first reference and leaves with its last, in the transaction
that changes the documents (``StoreWriter.sync_snapshot``).
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import lmdb
import numpy as np
import xxhash

from .errors import StoreError
from .schema import (
    DB_DOCS,
    DB_HASHES,
    DB_META,
    DB_NEAR_BANDS,
    DB_NEAR_CLUSTERS,
    DB_NEAR_SIGS,
    K_NEAR_DUP,
    pack,
    unpack,
)

NUM_PERM = 256
SHINGLE_SIZE = 5
MIN_SHINGLES = 5        # fewer distinct shingles: no signature, never a near-duplicate
THRESHOLD = 0.7         # estimated Jaccard similarity that makes two contents similar
BANDS, ROWS = 32, 8     # LSH: BANDS × ROWS <= NUM_PERM (see the module's docstring)
SEED = 1                # datasketch's permutations: numpy's RandomState(SEED), stable
SCHEME = "affine32"     # datasketch's affine permutations modulo 2^32 (uint32 values)

HASH_BYTES = 16         # content hashes (schema.content_key) and cluster ids
BAND_KEY_BYTES = 9      # band number + 64-bit hash of its rows
SIG_BYTES = NUM_PERM * 4
_BLOCK = 512            # shingles permuted at once: 512 KiB of uint32 in flight
_WORD_BYTES = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_"
_NOT_WORD_TO_SPACE = bytes(c if c in _WORD_BYTES else 0x20 for c in range(256))
_POLY = np.uint64(0x9E3779B97F4A7C15)  # odd: the shingle hash's polynomial base
_ENTRY = struct.Struct(">I16s")        # references, cluster id; the signature follows

Signature = np.ndarray  # NUM_PERM uint32 values


# -- signatures ---------------------------------------------------------------------------

@lru_cache(maxsize=1)
def _permutations() -> tuple[np.ndarray, np.ndarray]:
    """The ``NUM_PERM`` affine permutations h → a·h + b (mod 2^32, ``a`` odd, so each is a
    bijection) of datasketch's ``affine32`` scheme, drawn as it draws them from numpy's
    ``RandomState(SEED)``, whose stream numpy keeps fixed. Drawn here rather than taken from a
    ``MinHash`` object, they stay the same whatever datasketch release is installed, and the
    daemon does not import datasketch and scipy (0.4 s) for two arrays;
    ``tests/test_dedup.py`` checks them against datasketch's."""
    gen = np.random.RandomState(SEED)
    a = gen.randint(0, 1 << 31, NUM_PERM, dtype=np.uint32) * np.uint32(2) + np.uint32(1)
    b = gen.randint(0, 1 << 32, NUM_PERM, dtype=np.uint32)
    return a, b


def _fmix32(h: np.ndarray) -> np.ndarray:
    """MurmurHash3's 32-bit finalizer, which datasketch applies to each value before its
    affine permutations (multiplications wrap modulo 2^32, as intended)."""
    h = h ^ (h >> np.uint32(16))
    h = h * np.uint32(0x85EBCA6B)
    h = h ^ (h >> np.uint32(13))
    h = h * np.uint32(0xC2B2AE35)
    return h ^ (h >> np.uint32(16))


def shingle_hashes(text: str) -> np.ndarray:
    """The distinct 32-bit hashes of the text's 5-word shingles (sorted, uint32)."""
    # Words are ASCII, so they are found in the UTF-8 bytes (every other byte made a space,
    # then split: twice as fast as a regular expression) and hashed as they are found, one C
    # call each (hashing a repeated word again is cheaper than looking it up).
    words = text.encode("utf-8", "surrogatepass").translate(_NOT_WORD_TO_SPACE).split()
    n = len(words) - SHINGLE_SIZE + 1
    if n <= 0:
        return np.zeros(0, dtype=np.uint32)
    h = np.fromiter(map(xxhash.xxh64_intdigest, words), dtype=np.uint64, count=len(words))
    acc = h[:n].copy()
    for k in range(1, SHINGLE_SIZE):  # h[i]·P^4 + h[i+1]·P^3 + … + h[i+4], modulo 2^64
        acc *= _POLY
        acc += h[k:k + n]
    return np.unique(((acc >> np.uint64(32)) ^ acc).astype(np.uint32))


def minhash(hashes: np.ndarray) -> Signature:
    """The MinHash signature of a set of 32-bit hashes: datasketch's ``MinHash(num_perm=256,
    seed=1, scheme="affine32")`` after ``update_batch`` of those values."""
    a, b = _permutations()
    out = np.full(NUM_PERM, np.iinfo(np.uint32).max, dtype=np.uint32)
    mixed = _fmix32(np.asarray(hashes, dtype=np.uint32))
    # one buffer, multiplied and added in place: new temporaries for every block cost more
    # in page faults than the arithmetic (3x slower)
    buf = np.empty((min(len(mixed), _BLOCK), NUM_PERM), dtype=np.uint32)
    for start in range(0, len(mixed), _BLOCK):
        block = mixed[start:start + _BLOCK]
        view = buf[:len(block)]
        np.multiply(block[:, None], a, out=view)
        view += b
        np.minimum(out, view.min(axis=0), out=out)
    return out


def signature(text: str) -> Signature | None:
    """The text's MinHash signature (``NUM_PERM`` uint32 values); None for a text of fewer than
    ``MIN_SHINGLES`` distinct shingles, which is never a near-duplicate."""
    hashes = shingle_hashes(text)
    if len(hashes) < MIN_SHINGLES:
        return None
    return minhash(hashes)


def band_keys(sig: Signature) -> list[bytes]:
    """The LSH bucket keys of a signature: per band, its number and a 64-bit hash of its rows.
    Two signatures share a key when they agree on every row of that band."""
    rows = np.ascontiguousarray(sig[:BANDS * ROWS], dtype="<u4").reshape(BANDS, ROWS)
    return [bytes((band,)) + xxhash.xxh3_64_digest(rows[band].tobytes())
            for band in range(BANDS)]


def similarity(sig_a: Signature, sig_b: Signature) -> float:
    """The estimated Jaccard similarity of two texts: the share of equal signature rows."""
    return float(np.count_nonzero(np.asarray(sig_a) == np.asarray(sig_b))) / NUM_PERM


@lru_cache(maxsize=1)
def _parameters() -> tuple[tuple[str, Any], ...]:
    return tuple(parameters().items())


def parameters() -> dict[str, Any]:
    """What a signature and a cluster depend on; recorded in the store with its index."""
    a, b = _permutations()
    return {"num_perm": NUM_PERM, "shingle_size": SHINGLE_SIZE, "min_shingles": MIN_SHINGLES,
            "threshold": THRESHOLD, "bands": BANDS, "rows": ROWS, "seed": SEED,
            "scheme": SCHEME, "shingle_hash": "xxh64 words, polynomial, 32 bits",
            "permutations": xxhash.xxh64_hexdigest(a.tobytes() + b.tobytes())}


# -- the index ----------------------------------------------------------------------------

@dataclass
class Entry:
    """A content's entry in ``DB_NEAR_SIGS``."""

    refs: int                   # snapshot documents that hold the content
    cluster: bytes
    sig: Signature | None       # None: too short to have one

    def packed(self) -> bytes:
        tail = b"" if self.sig is None else self.sig.astype("<u4").tobytes()
        return _ENTRY.pack(self.refs, self.cluster) + tail

    @classmethod
    def parse(cls, raw: bytes | memoryview) -> Entry:
        raw = bytes(raw)
        refs, cluster = _ENTRY.unpack_from(raw)
        tail = raw[_ENTRY.size:]
        sig = np.frombuffer(tail, dtype="<u4").astype(np.uint32) if tail else None
        return cls(refs, cluster, sig)


@dataclass
class Updated:
    """What one ``NearDupIndex.update`` did."""

    added: int = 0          # contents that entered the index (their first reference)
    removed: int = 0        # contents that left it (their last reference went)
    signatures: int = 0     # signatures computed (the added contents long enough for one)
    relabelled: int = 0     # members moved to another cluster id (merges, splits)


TextOf = Callable[[bytes], str]


class NearDupIndex:
    """The near-duplicate index of a store; every method works in the caller's write
    transaction, so the index changes atomically with the documents it describes.

    ``dbs`` returns the store's named databases (the writer's ``db``: they change when the
    environment is reopened). ``threshold`` is the similarity that joins two contents; it is
    part of the recorded parameters, so an index is only ever extended with its own.
    """

    def __init__(self, dbs: Callable[[], Mapping[bytes, Any]], threshold: float = THRESHOLD):
        self._dbs = dbs
        self.threshold = threshold
        self.totals = Updated()  # over this object's life: what tests and benchmarks read

    # -- the public operations ------------------------------------------------------------

    def add(self, txn: lmdb.Transaction, content_hash: bytes, text: str | Callable[[], str]
            ) -> bytes:
        """One more document references ``content_hash``; its cluster id. The text (or a
        function giving it) is read only if the content is new to the index."""
        self.update(txn, {content_hash: 1},
                    lambda _h: text() if callable(text) else text)
        return self.cluster_of(txn, content_hash)

    def remove(self, txn: lmdb.Transaction, content_hash: bytes) -> None:
        """One document fewer references ``content_hash``; with its last, it leaves the index
        (and its cluster splits if it was the only link). Unknown contents are ignored."""
        self.update(txn, {content_hash: -1}, _no_text)

    def discard(self, txn: lmdb.Transaction, content_hashes: Iterable[bytes]) -> int:
        """Remove contents whatever their references (garbage collection's safety net: a
        collected content must not stay in the index); how many were there."""
        dbs = self._dbs()
        deltas = {}
        for h in content_hashes:
            raw = txn.get(h, db=dbs[DB_NEAR_SIGS])
            if raw is not None:
                deltas[h] = -Entry.parse(raw).refs
        if deltas:
            self.update(txn, deltas, _no_text)
        return len(deltas)

    def update(self, txn: lmdb.Transaction, deltas: Mapping[bytes, int], text_of: TextOf
               ) -> Updated:
        """Apply reference changes (content hash → documents added minus removed) at once:
        contents whose last reference went leave first, their clusters are split where
        needed, then contents with a first reference enter (``text_of(hash)`` gives their
        text), merging the clusters they are similar to."""
        if not any(deltas.values()):
            return Updated()
        self._check_parameters(txn)
        dbs = self._dbs()
        sigs = dbs[DB_NEAR_SIGS]
        done = Updated()
        fresh: list[bytes] = []
        dirty: set[bytes] = set()
        for content_hash, delta in deltas.items():
            if delta == 0:
                continue
            raw = txn.get(content_hash, db=sigs)
            entry = Entry.parse(raw) if raw is not None else None
            refs = (entry.refs if entry else 0) + delta
            if entry is None:
                if refs > 0:
                    fresh.append(content_hash)
            elif refs > 0:
                entry.refs = refs
                txn.put(content_hash, entry.packed(), db=sigs)
            else:
                self._drop(txn, content_hash, entry)
                done.removed += 1
                if entry.sig is not None:
                    dirty.add(entry.cluster)
        for cluster in sorted(dirty):
            done.relabelled += self._resettle(txn, cluster)
        for content_hash in sorted(fresh):
            done.relabelled += self._insert(txn, content_hash, deltas[content_hash],
                                            text_of(content_hash), done)
            done.added += 1
        for name in ("added", "removed", "signatures", "relabelled"):
            setattr(self.totals, name, getattr(self.totals, name) + getattr(done, name))
        return done

    def cluster_of(self, txn: lmdb.Transaction, content_hash: bytes) -> bytes | None:
        raw = txn.get(content_hash, db=self._dbs()[DB_NEAR_SIGS])
        return Entry.parse(raw).cluster if raw is not None else None

    def entry(self, txn: lmdb.Transaction, content_hash: bytes) -> Entry | None:
        raw = txn.get(content_hash, db=self._dbs()[DB_NEAR_SIGS])
        return Entry.parse(raw) if raw is not None else None

    # -- inside ---------------------------------------------------------------------------

    def _check_parameters(self, txn: lmdb.Transaction) -> None:
        """Record the parameters with the first entry; refuse an index made with others.
        (Checked in every transaction: one that recorded them may have been aborted.)"""
        meta = self._dbs()[DB_META]
        wanted = {**dict(_parameters()), "threshold": self.threshold}
        raw = txn.get(K_NEAR_DUP, db=meta)
        if raw is None:
            txn.put(K_NEAR_DUP, pack(wanted), db=meta)
        elif unpack(raw) != wanted:
            found = unpack(raw)
            differ = sorted(k for k in set(found) | set(wanted) if found.get(k) != wanted.get(k))
            raise StoreError(
                f"the store's near-duplicate index was made with other parameters "
                f"({', '.join(differ)} differ: {[found.get(k) for k in differ]} in the store, "
                f"{[wanted.get(k) for k in differ]} here); it cannot be extended with these. "
                f"Rebuild the store with `repofeed init --force` and `repofeed backfill`.")

    def _insert(self, txn: lmdb.Transaction, content_hash: bytes, refs: int, text: str,
                done: Updated) -> int:
        """Index a content new to the index; how many members changed cluster id."""
        dbs = self._dbs()
        sig = signature(text)
        if sig is None:
            entry = Entry(refs, content_hash, None)
            txn.put(content_hash, entry.packed(), db=dbs[DB_NEAR_SIGS])
            txn.put(content_hash + content_hash, b"", db=dbs[DB_NEAR_CLUSTERS])
            return 0
        done.signatures += 1
        keys = band_keys(sig)
        clusters = self._similar_clusters(txn, content_hash, sig, keys)
        label = min([content_hash, *clusters])
        for key in keys:
            txn.put(key + content_hash, b"", db=dbs[DB_NEAR_BANDS])
        txn.put(content_hash, Entry(refs, label, sig).packed(), db=dbs[DB_NEAR_SIGS])
        txn.put(label + content_hash, b"", db=dbs[DB_NEAR_CLUSTERS])
        moved = 0
        for cluster in clusters - {label}:
            moved += self._relabel(txn, self._members(txn, cluster), cluster, label)
        return moved

    def _similar_clusters(self, txn: lmdb.Transaction, content_hash: bytes, sig: Signature,
                          keys: list[bytes]) -> set[bytes]:
        """The clusters of the indexed contents similar to ``sig``."""
        dbs = self._dbs()
        candidates: set[bytes] = set()
        cursor = txn.cursor(db=dbs[DB_NEAR_BANDS])
        for key in keys:
            if not cursor.set_range(key):
                continue
            for found in cursor.iternext(keys=True, values=False):
                found = bytes(found)
                if found[:BAND_KEY_BYTES] != key:
                    break
                candidates.add(found[BAND_KEY_BYTES:])
        candidates.discard(content_hash)
        clusters: set[bytes] = set()
        for other in sorted(candidates):
            raw = txn.get(other, db=dbs[DB_NEAR_SIGS])
            cluster = bytes(raw[4:_ENTRY.size])
            if cluster in clusters:
                continue  # joined already: a second link changes nothing
            if similarity(sig, np.frombuffer(raw, dtype="<u4", offset=_ENTRY.size)) >= \
                    self.threshold:
                clusters.add(cluster)
        return clusters

    def _drop(self, txn: lmdb.Transaction, content_hash: bytes, entry: Entry) -> None:
        dbs = self._dbs()
        txn.delete(content_hash, db=dbs[DB_NEAR_SIGS])
        txn.delete(entry.cluster + content_hash, db=dbs[DB_NEAR_CLUSTERS])
        if entry.sig is not None:
            for key in band_keys(entry.sig):
                txn.delete(key + content_hash, db=dbs[DB_NEAR_BANDS])

    def _members(self, txn: lmdb.Transaction, cluster: bytes) -> list[bytes]:
        cursor = txn.cursor(db=self._dbs()[DB_NEAR_CLUSTERS])
        out = []
        if cursor.set_range(cluster):
            for key in cursor.iternext(keys=True, values=False):
                key = bytes(key)
                if key[:HASH_BYTES] != cluster:
                    break
                out.append(key[HASH_BYTES:])
        return out

    def _relabel(self, txn: lmdb.Transaction, members: list[bytes], old: bytes, new: bytes
                 ) -> int:
        dbs = self._dbs()
        for member in members:
            txn.delete(old + member, db=dbs[DB_NEAR_CLUSTERS])
            txn.put(new + member, b"", db=dbs[DB_NEAR_CLUSTERS])
            entry = Entry.parse(txn.get(member, db=dbs[DB_NEAR_SIGS]))
            entry.cluster = new
            txn.put(member, entry.packed(), db=dbs[DB_NEAR_SIGS])
        return len(members)

    def _resettle(self, txn: lmdb.Transaction, cluster: bytes) -> int:
        """After members left ``cluster``: its remaining members' connected components, each
        under the smallest hash among its members; how many members changed cluster id."""
        members = self._members(txn, cluster)
        if not members:
            return 0
        sigs_db = self._dbs()[DB_NEAR_SIGS]
        sigs = {m: Entry.parse(txn.get(m, db=sigs_db)).sig for m in members}
        moved = 0
        for component in components(sigs, self.threshold):
            label = min(component)
            if label != cluster:
                moved += self._relabel(txn, sorted(component), cluster, label)
        return moved


def _no_text(content_hash: bytes) -> str:
    raise AssertionError(f"no text needed to remove {content_hash.hex()}")


def components(sigs: Mapping[bytes, Signature], threshold: float = THRESHOLD
               ) -> list[set[bytes]]:
    """The connected components of the similarity relation over ``sigs``: pairs that share an
    LSH bucket and reach ``threshold``. Within a bucket a content is compared with one member
    of each component found so far until one is similar, so a bucket of near-identical
    contents costs one comparison per member, not one per pair."""
    parent = {m: m for m in sigs}

    def find(m: bytes) -> bytes:
        while parent[m] != m:
            parent[m] = parent[parent[m]]
            m = parent[m]
        return m

    buckets: dict[bytes, list[bytes]] = {}
    for member in sorted(sigs):
        for key in band_keys(sigs[member]):
            buckets.setdefault(key, []).append(member)
    for bucket in buckets.values():
        if len(bucket) < 2:
            continue
        groups: dict[bytes, list[bytes]] = {}  # component root → its members in this bucket
        for member in bucket:
            root = find(member)
            for other_root in list(groups):
                if other_root == root or find(other_root) == root:
                    continue
                if any(similarity(sigs[member], sigs[o]) >= threshold
                       for o in groups[other_root]):
                    parent[find(other_root)] = root
            merged: list[bytes] = [member]
            for other_root in list(groups):
                if find(other_root) == root:
                    merged.extend(groups.pop(other_root))
            groups[root] = merged
    out: dict[bytes, set[bytes]] = {}
    for member in sigs:
        out.setdefault(find(member), set()).add(member)
    return list(out.values())


def near_duplicates(txn: lmdb.Transaction, dbs: Mapping[bytes, Any]) -> dict[bytes, bytes]:
    """Content hash → cluster id of every live document's content, from one pass over the
    cluster members (keys only). A store made before the index has none: an empty dict."""
    db = dbs.get(DB_NEAR_CLUSTERS)
    if db is None:
        return {}
    return {bytes(key[HASH_BYTES:]): bytes(key[:HASH_BYTES])
            for key in txn.cursor(db=db).iternext(keys=True, values=False)}


# What readers make of the clusters (down-weighting, dropping) is read-time policy:
# store/policy.py, with the configuration's near_dedup.


def audit(txn: lmdb.Transaction, dbs: Mapping[bytes, Any], threshold: float = THRESHOLD
          ) -> list[str]:
    """What is wrong with the index, against the documents it follows; empty when it is
    whole: every document's content indexed with as many references as documents hold it,
    nothing else indexed, every entry's bands and membership present and nothing more, and
    every cluster a connected component under its smallest member's hash. A full pass, for
    tests and checks, not for the write path."""
    problems: list[str] = []
    held: dict[bytes, int] = {}
    for _, raw in txn.cursor(db=dbs[DB_DOCS]):
        content = unpack(raw).get("hash")
        if content is not None:
            held[content] = held.get(content, 0) + 1
    entries = {bytes(k): Entry.parse(v) for k, v in txn.cursor(db=dbs[DB_NEAR_SIGS])}
    for content in held.keys() - entries.keys():
        problems.append(f"document content {content.hex()} is not indexed")
    for content, entry in entries.items():
        if held.get(content, 0) != entry.refs:
            problems.append(f"{content.hex()} has {entry.refs} references, documents hold it "
                            f"{held.get(content, 0)} times")
        if txn.get(content, db=dbs[DB_HASHES]) is None:
            problems.append(f"{content.hex()} is indexed but has no token array")
    bands = {bytes(k) for k in txn.cursor(db=dbs[DB_NEAR_BANDS]).iternext(values=False)}
    wanted_bands = {key + c for c, e in entries.items() if e.sig is not None
                    for key in band_keys(e.sig)}
    problems += [f"band entry {k.hex()} belongs to no indexed content"
                 for k in sorted(bands - wanted_bands)]
    problems += [f"band entry {k.hex()} is missing" for k in sorted(wanted_bands - bands)]
    members = {bytes(k) for k in txn.cursor(db=dbs[DB_NEAR_CLUSTERS]).iternext(values=False)}
    wanted_members = {e.cluster + c for c, e in entries.items()}
    problems += [f"cluster member {k.hex()} is stale" for k in sorted(members - wanted_members)]
    problems += [f"cluster member {k.hex()} is missing" for k in sorted(wanted_members - members)]
    signed = {c: e.sig for c, e in entries.items() if e.sig is not None}
    for component in components(signed, threshold):
        labels = {entries[c].cluster for c in component}
        if labels != {min(component)}:
            problems.append(f"a component of {len(component)} contents is labelled "
                            f"{sorted(x.hex() for x in labels)}, not {min(component).hex()}")
    for content, entry in entries.items():
        if entry.sig is None and entry.cluster != content:
            problems.append(f"{content.hex()} has no signature but is in another cluster")
    return problems


# -- records whose change is only formatting ------------------------------------------------

_BLANK_RUNS = re.compile(r"\n{3,}")
_SPACES = " \t\f\v"  # whitespace at a line's end (ASCII: a no-break space is a change)
_LAYOUT = (_SPACES + "\r\n\ufeff").encode()  # the bytes of all that normalising may touch


def _layout_free(text: str) -> bytes:
    """The text's UTF-8 without any byte of ``_LAYOUT`` (the BOM's three bytes wherever they
    are: deleting more keeps "equal when normalised" implying "equal here")."""
    return text.encode("utf-8", "surrogatepass").translate(None, _LAYOUT)


def normalised(text: str) -> str:
    """A text as ``same_after_normalisation`` compares it: without a byte-order mark, with
    ``\\n`` line endings, no spaces, tabs, form feeds or vertical tabs at the end of a line,
    one blank line where there were several, and no blank lines at the start or the end.
    Indentation is kept (see there)."""
    if text.startswith("\ufeff"):
        text = text[1:]
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = "\n".join(line.rstrip(_SPACES) for line in text.split("\n"))
    return _BLANK_RUNS.sub("\n\n", text).strip("\n")


def same_after_normalisation(before: str, after: str) -> bool:
    """Whether a change from ``before`` to ``after`` changes nothing but line endings, a
    byte-order mark, whitespace at the ends of lines, how many blank lines separate two
    lines, or blank lines at the start and the end (a missing final newline).

    Indentation is a change: in Python, YAML or a Makefile it is the program, and a re-indent
    elsewhere is an edit someone made on purpose. CommitPackFT keeps a record only when its
    after differs from its before; this is that test, blind to what no reader of the code
    would call a change."""
    if before == after:
        return True
    # Normalising touches only the characters of _LAYOUT: texts that differ without them
    # differ (two C-speed passes each, 7x faster than str.split, before any line is rewritten).
    if _layout_free(before) != _layout_free(after):
        return False
    return normalised(before) == normalised(after)
