"""Facts about a text, measured once when its token array is first stored.

Principle 5 of the design: the store holds facts, the reader applies policy. What the filters
measure (``filters.text_stats``: line lengths, alphabetic fraction, auto-generated markers,
encoded data) and how complex the text is (``complexity.analyze``: nesting depth, branches,
functions, through tree-sitter where a grammar applies) are measured here, per content, and
kept with the array (``DB_FACTS``, by array id). Thresholds, weights and curricula are then
read-time settings (``store/policy.py``): changing one needs no re-ingest.

A fact record is ``{"lang": language, "stats": {...}, "cx": {...}}``. Commit messages have no
facts (no filter or curriculum applies to them).

The ingest measures through a :class:`FactMeter`, which keeps what it read off the texts it
measured last (their line lengths and encoded runs, their parse trees): a text that is an
edit of one of them (git's hunks say where) is measured from the edited lines alone
(``filters.measure_text``), parsed incrementally and counted around the edit alone
(``complexity.measure``), so that, as with tokenizing, an edit costs what it changed rather
than the whole file. The facts are the same either way.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from .complexity import Complexity, Parsed, analyze, measure
from .filters import Measured, measure_text, text_stats
from .lines import Hunk

FACTS_VERSION = 1

KEEP_BYTES = 8 << 20
"""Text whose measurements a :class:`FactMeter` keeps, the most recently measured first. A
parse tree takes about 25 bytes of memory per byte of text (the trees of the corpus tips'
2.6 MB of code took 64 MB), so this holds about 200 MB at most. Measured on backfills, the
edited texts whose base was kept: attrs 97%, fd 99%, and 96% on a generated history whose 200
files are edited at random (3.8 MB of live text; 54% with 2 MB kept)."""


def facts_of(text: str, language: str, timeout_ms: int) -> dict[str, Any]:
    """The facts of ``text`` read as ``language`` (``languages.detect_language``)."""
    return _record(language, text_stats(text), analyze(text, language, timeout_ms=timeout_ms))


def _record(language: str, stats: dict[str, Any], complexity: Complexity) -> dict[str, Any]:
    return {"v": FACTS_VERSION, "lang": language, "stats": stats, "cx": complexity.to_dict()}


@dataclass(frozen=True)
class _Kept:
    """A text's measurements, kept to measure its edits from."""

    measured: Measured
    parsed: Parsed | None

    @property
    def size(self) -> int:
        """Bytes of text held (the parse tree's memory follows it)."""
        shared = self.parsed is None or self.parsed.data is self.measured.data
        return len(self.measured.data) * (1 if shared else 2)


class FactMeter:
    """Measures facts as ``facts_of`` does, measuring an edit from its base's measurements
    when that is among the last texts measured (``KEEP_BYTES`` of them). One thread uses a
    meter (the encoder's)."""

    def __init__(self, timeout_ms: int, keep_bytes: int = KEEP_BYTES):
        self.timeout_ms = timeout_ms
        self.keep_bytes = keep_bytes
        self._kept: OrderedDict[bytes, _Kept] = OrderedDict()
        self._kept_bytes = 0
        self.incremental = 0   # texts parsed from their base's tree (not whole)

    def facts(self, key: bytes, text: str, language: str,
              base: tuple[bytes, Sequence[Hunk]] | None = None) -> dict[str, Any]:
        """The facts of ``text`` (content hash ``key``); ``base`` is the text it was edited
        from, as (content hash, git's line hunks from it to ``text``)."""
        kept = self._kept.get(base[0]) if base is not None else None
        hunks = base[1] if base is not None else None
        if kept is not None:
            self._kept.move_to_end(base[0])
        stats, measured = measure_text(text, kept.measured if kept else None, hunks)
        complexity, parsed = measure(text, language, self.timeout_ms,
                                     kept.parsed if kept else None, hunks)
        if parsed is not None and parsed.from_base:
            self.incremental += 1
        if parsed is not None and parsed.data == measured.data:   # kept once
            parsed = replace(parsed, data=measured.data, line_starts=measured.line_starts)
        self._keep(key, _Kept(measured, parsed))
        return _record(language, stats, complexity)

    def _keep(self, key: bytes, kept: _Kept) -> None:
        if key in self._kept or kept.size > self.keep_bytes:
            return
        self._kept[key] = kept
        self._kept_bytes += kept.size
        while self._kept_bytes > self.keep_bytes:
            _, dropped = self._kept.popitem(last=False)
            self._kept_bytes -= dropped.size
