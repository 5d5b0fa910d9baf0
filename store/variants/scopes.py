"""Renaming rules for block-scoped languages (placeholder)."""

from __future__ import annotations

ANALYSERS: dict = {}
RESERVED: dict[str, set[str]] = {}
