"""Facts about a text, measured once when its token array is first stored.

Principle 5 of the design: the store holds facts, the reader applies policy. What the filters
measure (``filters.text_stats``: line lengths, alphabetic fraction, auto-generated markers,
encoded data) and how complex the text is (``complexity.analyze``: nesting depth, branches,
functions, through tree-sitter where a grammar applies) are measured here, per content, and
kept with the array (``DB_FACTS``, by array id). Thresholds, weights and curricula are then
read-time settings (``store/policy.py``): changing one needs no re-ingest.

A fact record is ``{"lang": language, "stats": {...}, "cx": {...}}``. Commit messages have no
facts (no filter or curriculum applies to them).
"""

from __future__ import annotations

from typing import Any

from .complexity import analyze
from .filters import text_stats

FACTS_VERSION = 1


def facts_of(text: str, language: str, timeout_ms: int) -> dict[str, Any]:
    """The facts of ``text`` read as ``language`` (``languages.detect_language``)."""
    return {"v": FACTS_VERSION, "lang": language, "stats": text_stats(text),
            "cx": analyze(text, language, timeout_ms=timeout_ms).to_dict()}
