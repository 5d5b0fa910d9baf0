"""Stored variants: other spellings of a document that mean the same program (issue 10).

Each transform is a function ``(text, language, *, seed, names, timeout_s) -> Outcome``:

- ``text``: the document (redacted, as stored); ``language``: the name
  :func:`repofeed.store.languages.detect_language` gives;
- ``seed``: every choice the transform makes is drawn from it, so the same (text, seed) gives
  the same variant;
- ``names``: identifiers the repository itself uses (renaming draws natural names from them);
- ``timeout_s``: the bound on the whole transform, parse and external formatter included.

It returns an :class:`Outcome`: the variant's text, or no text and the reason (counted by
the daemon). :func:`checked` is the last step of every transform: a variant must differ from
its source and parse with no more error nodes than it.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from repofeed.store import parsing

# Reasons a document has no variant of a transform (counted per reason in the store).
NO_GRAMMAR = "no-grammar"          # no tree-sitter grammar for the language
UNPARSED = "unparsed"              # the source itself has syntax errors
TIMEOUT = "timeout"                # the parse or the formatter ran past the bound
UNCHANGED = "unchanged"            # the transform found nothing to change
NEW_ERRORS = "new-errors"          # the variant parses with more error nodes than its source


@dataclass(frozen=True)
class Outcome:
    """A variant (``text``), or none and why (``reason``)."""

    text: str | None = None
    reason: str | None = None

    def __post_init__(self) -> None:
        if (self.text is None) == (self.reason is None):
            raise ValueError("an Outcome holds a text or a reason, not both or neither")


def source_errors(text: str, language: str, timeout_s: float) -> Outcome | int:
    """The error count of ``text``'s parse, or the Outcome that ends the transform: no
    grammar, a timeout, or a source that does not parse (:data:`UNPARSED`)."""
    if parsing.grammar(language) is None:
        return Outcome(reason=NO_GRAMMAR)
    tree = parsing.parse(text.encode("utf-8", "surrogatepass"), language, timeout_s)
    if tree is None:
        return Outcome(reason=TIMEOUT)
    errors = parsing.error_count(tree)
    return Outcome(reason=UNPARSED) if errors else 0


def checked(source: str, variant: str, language: str, timeout_s: float,
            source_error_count: int = 0) -> Outcome:
    """``variant`` as the outcome, if it differs from ``source`` and parses with no more
    error nodes than ``source_error_count``; else the reason it is dropped."""
    if variant == source:
        return Outcome(reason=UNCHANGED)
    tree = parsing.parse(variant.encode("utf-8", "surrogatepass"), language, timeout_s)
    if tree is None:
        return Outcome(reason=TIMEOUT)
    if parsing.error_count(tree) > source_error_count:
        return Outcome(reason=NEW_ERRORS)
    return Outcome(text=variant)


# -- the transforms and recipes ------------------------------------------------------------

TRANSFORMS: dict[str, str] = {
    "rename": "rename",        # locals and parameters, natural names (rename.py)
    "decomment": "comments",   # comments and docstrings removed (comments.py)
    "reformat": "reformat",    # a real formatter, or a layout change tree-sitter proves safe
}
"""Transform name -> the module of this package that holds it: a function of the same name
and a version constant ``<NAME>_VERSION``."""


def check_recipes(recipes: list[str]) -> None:
    """Refuse a recipe that names no transform, or a recipe twice (the ``variants`` option)."""
    from repofeed.store.errors import ConfigError
    seen = set()
    for recipe in recipes:
        steps = recipe.split("+") if isinstance(recipe, str) else [None]
        unknown = [s for s in steps if s not in TRANSFORMS]
        if unknown or not steps:
            raise ConfigError(f"variants: {recipe!r} is not a transform or a chain of them "
                              f"joined by '+'; the transforms are {', '.join(TRANSFORMS)}")
        if recipe in seen:
            raise ConfigError(f"variants: {recipe!r} is listed twice")
        seen.add(recipe)


def _transform(name: str):
    import importlib
    module = importlib.import_module(f"{__name__}.{TRANSFORMS[name]}")
    return getattr(module, name), getattr(module, f"{name.upper()}_VERSION")


def recipe_version(recipe: str) -> list[int]:
    """The versions of a recipe's transforms: a stored variant made under others is made
    again."""
    return [_transform(step)[1] for step in recipe.split("+")]


def apply(recipe: str, text: str, language: str, *, seed: int, names: Sequence[str] = (),
          timeout_s: float = 2.0) -> Outcome:
    """The variant of ``text`` that ``recipe`` (a transform, or several joined by ``+``,
    applied in order) makes. A step of a chain that finds nothing to change is passed over;
    any other reason ends the chain. ``timeout_s`` bounds the whole chain."""
    deadline = time.monotonic() + timeout_s
    current = text
    for n, step in enumerate(recipe.split("+")):
        left = deadline - time.monotonic()
        if left <= 0:
            return Outcome(reason=TIMEOUT)
        function, _ = _transform(step)
        out = function(current, language, seed=seed * 7919 + n, names=names, timeout_s=left)
        if out.text is not None:
            current = out.text
        elif out.reason != UNCHANGED:
            return out
    return Outcome(text=current) if current != text else Outcome(reason=UNCHANGED)
