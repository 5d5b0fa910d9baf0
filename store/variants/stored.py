"""The stored variants: which exist, which are pending, and why some documents have none.

A variant entry is keyed by its source's content hash and the recipe's name, so a content
held by several documents (or by one, commit after commit) is transformed once. Its value
(msgpack) is ``{"v": [versions], "hash", "array", "n_tokens"}`` for a variant, or
``{"v": [versions], "reason": why}`` for none. An entry made under other transform versions
counts as pending: it is made again. Documents in a language without a tree-sitter grammar
get no variants and are not pending.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from repofeed.store.schema import DB_DOCS, DB_VARIANTS, unpack

from . import recipe_version

KEY_BYTES = 16  # a content hash's length: the key's prefix


def variant_key(content_hash: bytes, recipe: str) -> bytes:
    return content_hash + recipe.encode("ascii")


def split_key(key: bytes) -> tuple[bytes, str]:
    return bytes(key[:KEY_BYTES]), bytes(key[KEY_BYTES:]).decode("ascii")


def transformable(language: str | None) -> bool:
    """Whether documents in ``language`` get variants (it has a tree-sitter grammar)."""
    from repofeed.store.parsing import GRAMMARS
    return language in GRAMMARS


@dataclass
class Pending:
    """A content that lacks some of its variants: one of its documents' path and language
    (the first in path order), and the recipes to make."""

    content: bytes
    path: str
    language: str
    recipes: list[str]


@dataclass
class Summary:
    """What the store holds of the variants of ``recipes``."""

    contents: int = 0                                    # transformable contents in the snapshot
    pending: int = 0                                     # (content, recipe) pairs to make
    made: Counter[str] = field(default_factory=Counter)  # recipe -> variants stored
    tokens: Counter[str] = field(default_factory=Counter)
    reasons: dict[str, Counter[str]] = field(default_factory=dict)  # recipe -> reason -> n

    def as_dict(self) -> dict[str, Any]:
        return {"contents": self.contents, "pending": self.pending, "made": dict(self.made),
                "tokens": dict(self.tokens),
                "none": {r: dict(sorted(c.items())) for r, c in self.reasons.items()}}


def _contents(txn, dbs) -> dict[bytes, tuple[str, str]]:
    """Transformable contents of the snapshot: content hash -> (path, language) of its
    first document in path order."""
    out: dict[bytes, tuple[str, str]] = {}
    for _, raw in txn.cursor(db=dbs[DB_DOCS]):
        doc = unpack(raw)
        if transformable(doc.get("language")) and doc["hash"] not in out:
            out[doc["hash"]] = (doc["path"], doc["language"])
    return out


def _walk(txn, dbs, recipes: Iterable[str]
          ) -> Iterator[tuple[bytes, str, str, str, dict[str, Any] | None]]:
    """(content, path, language, recipe, its current entry or None) over every pair."""
    versions = {r: recipe_version(r) for r in recipes}
    for content, (path, language) in _contents(txn, dbs).items():
        for recipe, version in versions.items():
            raw = txn.get(variant_key(content, recipe), db=dbs[DB_VARIANTS])
            entry = unpack(raw) if raw is not None else None
            yield content, path, language, recipe, (
                entry if entry is not None and entry.get("v") == version else None)


def pending(txn, dbs, recipes: Iterable[str]) -> list[Pending]:
    """The contents whose variants (some or all) are still to make, in path order."""
    found: dict[bytes, Pending] = {}
    for content, path, language, recipe, entry in _walk(txn, dbs, recipes):
        if entry is None:
            found.setdefault(content, Pending(content, path, language, [])).recipes.append(
                recipe)
    return sorted(found.values(), key=lambda p: p.path)


def summary(txn, dbs, recipes: Iterable[str]) -> Summary:
    out = Summary()
    seen: set[bytes] = set()
    for content, _, _, recipe, entry in _walk(txn, dbs, recipes):
        if content not in seen:
            seen.add(content)
            out.contents += 1
        if entry is None:
            out.pending += 1
        elif entry.get("reason") is not None:
            out.reasons.setdefault(recipe, Counter())[entry["reason"]] += 1
        else:
            out.made[recipe] += 1
            out.tokens[recipe] += entry["n_tokens"]
    return out


def variant_documents(txn, dbs, recipes: Iterable[str]) -> list[dict[str, Any]]:
    """Every stored variant of a snapshot document, as a document of its own: the source
    document's fields (path, language, weight inputs) with the variant's ``hash``,
    ``array`` and ``n_tokens``, and ``recipe``; in path order, then recipe order."""
    recipes = list(recipes)
    out = []
    for _, raw in txn.cursor(db=dbs[DB_DOCS]):
        doc = unpack(raw)
        if not transformable(doc.get("language")):
            continue
        for recipe in recipes:
            raw_entry = txn.get(variant_key(doc["hash"], recipe), db=dbs[DB_VARIANTS])
            if raw_entry is None:
                continue
            entry = unpack(raw_entry)
            if entry.get("array") is None:
                continue
            out.append({**doc, "source_hash": doc["hash"], "source_array": doc["array"],
                        "hash": entry["hash"], "array": entry["array"],
                        "n_tokens": entry["n_tokens"], "recipe": recipe})
    return out
