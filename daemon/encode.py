"""Token ids for texts, computed once: what the store lacks is encoded, in batches.

``TextBatch`` gathers the texts of several commits, each hashed once, and notes which text is
an edit of which. ``Encoder.encode_missing`` encodes the texts the store lacks in one
multi-threaded encode call per wave, re-encoding an edited text only around git's
hunks (``Tokenizer.plan_edit``), and calls a heartbeat between chunks of work so that the
daemon can feed systemd's watchdog during a commit of hundreds of MB.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from repofeed.store.facts import FactMeter
from repofeed.store.languages import detect_language
from repofeed.store.schema import content_key_of
from repofeed.store.secrets import placeholder_counts
from repofeed.store.writer import StoreWriter

from .history import CommitChanges, message_of

ENCODE_CHUNK_BYTES = 256 << 10  # text per encode call: a fraction of a second


def no_heartbeat() -> None:
    pass


class TextBatch:
    """Commits whose texts are tokenized together (one multi-threaded encode call)."""

    def __init__(self) -> None:
        self.items: list[CommitChanges] = []
        self.texts: dict[bytes, str] = {}
        # edited text -> (the text it was edited from, git's line hunks between them)
        self.bases: dict[bytes, tuple[bytes, list[tuple[int, int, int, int]]]] = {}
        self.languages: dict[bytes, str] = {}  # file texts' languages, for their facts
        self.bytes = 0

    def add(self, changes: CommitChanges) -> None:
        """Queue a commit; hash each of its texts once and keep the new ones for encoding."""
        self.items.append(changes)
        if changes.files:
            changes.message_key = self._key(message_of(changes.commit))
        for f in changes.files:
            f.before_key = self._key(f.before) if f.before is not None else None
            if f.before_key is not None:
                self.languages.setdefault(
                    f.before_key, detect_language(f.old_path or f.path, f.before))
            if f.after is None:
                continue
            first_seen = len(self.texts)
            f.after_key = self._key(f.after)
            self.languages.setdefault(f.after_key, detect_language(f.path, f.after))
            # A text first met as the result of this edit is encoded from its base, which
            # then comes earlier in the batch's order.
            if f.before_key is not None and f.hunks and len(self.texts) > first_seen:
                self.bases[f.after_key] = (f.before_key, f.hunks)

    def _key(self, text: str) -> bytes:
        data = text.encode("utf-8")
        key = content_key_of(data)
        if key not in self.texts:
            self.texts[key] = text
            self.bytes += len(data)
        return key


class Encoder:
    """Encodes for one store: its tokenizer, and its arrays as the bases of edits."""

    def __init__(self, writer: StoreWriter):
        self.writer = writer
        self.tok = writer.tokenizer
        self.heartbeat: Callable[[], None] = no_heartbeat
        # measures the facts, an edit from its base's parse where that is at hand
        self.meter = FactMeter(writer.config.parse_timeout_ms)
        # facts of the texts encoded (by content hash), taken by whoever writes their arrays
        self.facts: dict[bytes, dict] = {}

    def take_facts(self, keys) -> dict[bytes, dict]:
        """The facts measured for ``keys`` (those that have any), handed over once."""
        return {k: self.facts.pop(k) for k in keys if k in self.facts}

    def encode_missing(self, texts: dict[bytes, str],
                       bases: dict[bytes, tuple[bytes, list]] | None = None,
                       languages: dict[bytes, str] | None = None
                       ) -> dict[bytes, np.ndarray]:
        """Token ids of the texts the store lacks.

        A text edited from a known one (``bases``) is re-encoded around its hunks only
        (``Tokenizer.plan_edit``). Everything the tokenizer must see — whole texts and the
        edited spans — goes to it in one multi-threaded call per wave; a wave handles the
        edits whose base is known, so an edit of a text new in this batch waits one wave.
        A text with a language in ``languages`` (a file's, not a message's) also gets its
        facts measured (``store/facts.py``; an edit from its base's parse, as tokenizing
        splices), kept in ``facts`` for the writer.
        """
        bases = bases or {}
        absent = self.writer.missing_arrays(texts)
        pending = [k for k in texts if k in absent]
        # texts reach here redacted: their placeholders are counted when their array is stored
        self.writer.note_redactions({k: counts for k in pending
                                     if (counts := placeholder_counts(texts[k]))})
        for key in pending:
            language = (languages or {}).get(key)
            if language is not None and key not in self.facts:
                self.facts[key] = self.meter.facts(key, texts[key], language, bases.get(key))
                self.heartbeat()
        fresh: dict[bytes, np.ndarray] = {}
        while pending:
            whole: list[bytes] = []
            edits: list[tuple[bytes, np.ndarray, list]] = []
            waiting: list[bytes] = []
            for key in pending:
                base = bases.get(key) if self.tok.spliceable else None
                if base is None:
                    whole.append(key)
                    continue
                if base[0] in absent and base[0] not in fresh:
                    waiting.append(key)
                    continue
                base_ids = self.ids(base[0], fresh)
                plan = self.tok.plan_edit(texts[base[0]], base_ids, texts[key], base[1])
                if plan is None:
                    whole.append(key)
                else:
                    edits.append((key, base_ids, plan))
            if not whole and not edits:   # cannot happen (bases come first); be safe
                whole, waiting = waiting, []
            spans = [step for _, _, plan in edits for step in plan if isinstance(step, str)]
            encoded = self._encode_chunked([texts[k] for k in whole] + spans)
            for key, ids in zip(whole, encoded):
                fresh[key] = np.asarray(ids, dtype=np.int64)
                self.heartbeat()  # tens of MB of ids take a while to convert, too
            rest = iter(encoded[len(whole):])
            for key, base_ids, plan in edits:
                fresh[key] = np.asarray(self.tok.assemble(base_ids, plan, rest), dtype=np.int64)
                self.heartbeat()
            pending = waiting
        return fresh

    def _encode_chunked(self, texts: list[str]) -> list[list[int]]:
        """``encode_batch`` over chunks of about ``ENCODE_CHUNK_BYTES``, with a heartbeat after
        each: one call over hundreds of MB would say nothing for minutes."""
        encoded: list[list[int]] = []
        start, size = 0, 0
        for end, text in enumerate(texts, 1):
            size += len(text)
            if size >= ENCODE_CHUNK_BYTES or end == len(texts):
                encoded.extend(self.tok.encode_batch(texts[start:end]))
                self.heartbeat()
                start, size = end, 0
        return encoded

    def ids(self, key: bytes, fresh: dict[bytes, np.ndarray]) -> np.ndarray:
        found = fresh.get(key)
        return found if found is not None else self.writer.read_array(key).astype(np.int64)
