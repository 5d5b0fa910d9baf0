"""Making the stored variants (issue 10): after a commit's snapshot lands, each new content of
a language with a grammar gets one variant per recipe of the ``variants`` option.

Variants land in transactions of their own, after the commit's. The transforms run in worker
processes (:func:`transform_batch`), so neither the daemon's next commit nor its watchers
wait for them: the daemon keeps one batch in flight and stores its results between nudges;
``repofeed backfill`` makes them all before it returns, with a process per core; and
``repofeed status`` counts those still pending.

Each (content, recipe) is made once per transform version and is deterministic: its seed is
a hash of the content and the recipe, and renaming draws names from the repository's
vocabulary (the ``VOCABULARY_SIZE`` identifiers used by the most documents when the store's
first variants were made, kept in the store's meta so that later variants draw from the same
list). A variant's text is tokenized and stored like any content; its entry links it to its
source content, and garbage collection removes it once no document holds the source.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import multiprocessing
import os
import signal
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass, field

import xxhash

from repofeed.store.schema import K_VARIANT_NAMES, content_key
from repofeed.store.variants import Outcome, apply, recipe_version
from repofeed.store.variants.stored import Pending, pending, variant_key

from .encode import Encoder

log = logging.getLogger(__name__)

VOCABULARY_SIZE = 4096   # identifiers renaming may draw from
BATCH_CONTENTS = 16      # contents per worker job, and per write transaction
INLINE_CONTENTS = 48     # a backfill with fewer pending contents starts no worker processes
TRANSFORM_FAILED = "transform-failed"  # a transform raised: a bug, logged


@dataclass
class Made:
    """What a pass made: variants stored, contents with none per reason, and time."""

    variants: int = 0
    contents: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0

    def add(self, other: Made) -> None:
        self.variants += other.variants
        self.contents += other.contents
        self.reasons.update(other.reasons)


@dataclass
class Job:
    """One content to transform: its text and the recipes it lacks."""

    content: bytes
    path: str
    language: str
    text: str
    recipes: list[str]


# (content hash, recipe, transform versions, the variant's text or None, the reason or None)
Result = tuple[bytes, str, list[int], str | None, str | None]


def seed_of(content: bytes, recipe: str) -> int:
    """The seed of one variant: the same content and recipe always give the same one."""
    return xxhash.xxh3_64_intdigest(content + recipe.encode("ascii")) >> 1


def transform_batch(jobs: Sequence[Job], names: Sequence[str], timeout_s: float
                    ) -> list[Result]:
    """Every variant of ``jobs`` (run in a worker process, or inline)."""
    out: list[Result] = []
    for job in jobs:
        for recipe in job.recipes:
            try:
                made = apply(recipe, job.text, job.language, seed=seed_of(job.content, recipe),
                             names=names, timeout_s=timeout_s)
            except Exception as exc:  # a transform's bug costs its variant, no more
                log.warning("the %s variant of %s failed (%s: %s); it is left out", recipe,
                            job.path, type(exc).__name__, exc)
                made = Outcome(reason=TRANSFORM_FAILED)
            out.append((job.content, recipe, recipe_version(recipe), made.text, made.reason))
    return out


def identifier_counts(texts: Sequence[tuple[str, str]], timeout_s: float) -> Counter[str]:
    """In how many of ``texts`` ((text, language) pairs) each identifier occurs."""
    from repofeed.store.variants.rename import identifiers
    documents: Counter[str] = Counter()
    for text, language in texts:
        documents.update(identifiers(text, language, timeout_s).keys())
    return documents


def vocabulary(documents: Counter[str]) -> list[str]:
    return [name for name, _ in sorted(documents.items(), key=lambda kv: (-kv[1], kv[0]))
            ][:VOCABULARY_SIZE]


def worker_pool(workers: int) -> ProcessPoolExecutor:
    """Worker processes for the transforms, started afresh ("spawn": the daemon has threads,
    which a fork would copy in whatever state they are), each ending with the process that
    started it, however that ends (a daemon killed with SIGKILL leaves no worker behind)."""
    return ProcessPoolExecutor(max_workers=workers,
                               mp_context=multiprocessing.get_context("spawn"),
                               initializer=_end_with_parent, initargs=(os.getpid(),))


_PR_SET_PDEATHSIG = 1


def _end_with_parent(parent: int) -> None:
    """Have the kernel kill this worker when its parent ends (Linux's ``PR_SET_PDEATHSIG``);
    a parent already gone ends it now."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the worker ends at its next job's EOF
        pass
    if os.getppid() != parent:
        os._exit(0)


class VariantMaker:
    """Makes the pending variants of one store (the writer's), with the encoder's tokenizer."""

    def __init__(self, encoder: Encoder):
        self.encoder = encoder
        self.writer = encoder.writer
        cfg = self.writer.config
        self.recipes = list(cfg.variants)
        self.timeout_s = cfg.variant_timeout_ms / 1000
        self._names: list[str] | None = None

    def pending(self) -> list[Pending]:
        if not self.recipes:
            return []
        with self.writer.handle.begin(buffers=True) as txn:
            return pending(txn, self.writer.db, self.recipes)

    def jobs(self, todo: Sequence[Pending]) -> list[Job]:
        return [Job(p.content, p.path, p.language, self.writer.text_of(p.content), p.recipes)
                for p in todo]

    @property
    def renames(self) -> bool:
        return any("rename" in r.split("+") for r in self.recipes)

    def stored_names(self) -> list[str] | None:
        """The vocabulary, once made (None before the store's first variants)."""
        if self._names is None:
            self._names = [] if not self.renames else self.writer.meta(K_VARIANT_NAMES)
        return self._names

    def keep_names(self, documents: Counter[str]) -> list[str]:
        self._names = vocabulary(documents)
        self.writer.set_meta(K_VARIANT_NAMES, self._names)
        return self._names

    def store(self, results: Sequence[Result]) -> Made:
        """Tokenize and store the variants of ``results`` (and the reasons for none), in one
        transaction."""
        made = Made(contents=len({r[0] for r in results}))
        entries: dict[bytes, dict] = {}
        texts: dict[bytes, str] = {}
        for content, recipe, version, text, reason in results:
            entry: dict = {"v": version}
            if text is None:
                entry["reason"] = reason
                made.reasons[reason] += 1
            else:
                entry["hash"] = key = content_key(text)
                texts[key] = text
                made.variants += 1
            entries[variant_key(content, recipe)] = entry
        fresh = self.encoder.encode_missing(texts)
        for entry in entries.values():
            if "hash" in entry:
                key = entry["hash"]
                entry["n_tokens"] = int(len(fresh[key]) if key in fresh
                                        else len(self.writer.read_array(key)))
        self.writer.put_variants(entries, fresh)
        return made

    def run(self, progress: Callable[[int, int], None] | None = None,
            workers: int | None = None) -> Made:
        """Make every pending variant; ``progress(done, total)`` after each batch of
        contents. ``workers``: processes for the transforms (default: one per core; none
        for a few contents)."""
        started = time.perf_counter()
        made = Made()
        todo = self.pending()
        if not todo:
            return made
        workers = workers if workers is not None else (os.cpu_count() or 1)
        pool: Executor | None = worker_pool(workers) if workers > 1 and \
            len(todo) >= INLINE_CONTENTS else None
        try:
            names = self.stored_names()
            if names is None:
                texts = [(self.writer.text_of(p.content), p.language) for p in todo]
                counts: Counter[str] = Counter()
                if pool is None:
                    counts = identifier_counts(texts, self.timeout_s)
                else:
                    step = max(1, len(texts) // (workers * 4) + 1)
                    parts = [texts[i:i + step] for i in range(0, len(texts), step)]
                    for part in pool.map(identifier_counts, parts,
                                         [self.timeout_s] * len(parts)):
                        counts.update(part)
                names = self.keep_names(counts)
            batches = [todo[i:i + BATCH_CONTENTS] for i in range(0, len(todo), BATCH_CONTENTS)]
            if pool is None:
                results = (transform_batch(self.jobs(b), names, self.timeout_s)
                           for b in batches)
            else:  # at most two batches per worker in flight, texts read as they go
                results = _ahead(pool, batches, self.jobs, names, self.timeout_s, 2 * workers)
            for batch_results in results:
                made.add(self.store(batch_results))
                self.encoder.heartbeat()
                if progress is not None:
                    progress(made.contents, len(todo))
        finally:
            if pool is not None:
                pool.shutdown(cancel_futures=True)
        made.seconds = time.perf_counter() - started
        return made


def _ahead(pool: Executor, batches, jobs_of, names, timeout_s: float, depth: int):
    """The results of ``batches`` in order, with up to ``depth`` of them in the pool."""
    futures = []
    for batch in batches:
        futures.append(pool.submit(transform_batch, jobs_of(batch), names, timeout_s))
        if len(futures) >= depth:
            yield futures.pop(0).result()
    for future in futures:
        yield future.result()
