"""Sampling weights: how often a document is drawn, decided at read time from its path.

A weight is a sampling rate relative to an ordinary document: 3.0 means drawn three times as
often, 0.3 means 0.3 times as often, 0 means never. The store keeps facts (the path); the
reader applies these rules, so changing them needs no re-ingest (DESIGN.md, principle 5).

Two layers, the first that applies decides:

1. user rules, ``(glob, weight)`` in order, first match wins (glob syntax:
   ``repofeed.store.globs``, the rules of ``.gitattributes``);
2. the path's class (``repofeed.store.paths.path_class``) and its weight in
   ``class_weights``, by default ``DEFAULT_CLASS_WEIGHTS``: core code (``src/``, ``lib/``,
   ``crates/*/src``, a ``core`` part) 3.0, tests and specs 0.3, docs 0.5, configuration 0.5,
   the rest 1.0.

Vendored, generated and lock files are not weighted here: they are excluded before
(``repofeed.store.filters.excluded_path``).

A fractional weight is never rounded away. In each epoch a document gets ``copies(w, u)``
copies, ``floor(w)`` plus one more with probability ``frac(w)``, where ``u`` is uniform in
[0, 1) and drawn per (seed, epoch, document) from a keyed hash, so the expected number of
copies is exactly ``w``: a weight of 0.3 puts the document in about 3 epochs out of 10, a
weight of 2.5 gives 2 or 3 copies, 2.5 on average.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

from .errors import ConfigError
from .globs import Glob
from .paths import CLASSES, path_class

DEFAULT_CLASS_WEIGHTS: dict[str, float] = {
    "core": 3.0, "test": 0.3, "docs": 0.5, "config": 0.5, "other": 1.0,
}


def _check_weight(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"the weight of {what} must be a number (0 excludes), "
                          f"not {value!r}")
    if not math.isfinite(value) or value < 0:
        raise ConfigError(f"the weight of {what} must be a finite number >= 0 (0 excludes), "
                          f"not {value!r}")
    return float(value)


class WeightRules:
    """``WeightRules([("tests/fixtures/**", 0), ("src/legacy/**", 0.5)], {"test": 0.5})``.

    ``rules`` are ``(glob, weight)`` pairs (a mapping keeps its order); ``class_weights``
    overrides some or all of ``DEFAULT_CLASS_WEIGHTS``. Bad globs, unknown classes and weights
    that are not numbers >= 0 raise ``ConfigError`` naming the culprit."""

    def __init__(self, rules: Sequence[tuple[str, float]] | Mapping[str, float] = (),
                 class_weights: Mapping[str, float] | None = None):
        pairs = list(rules.items()) if isinstance(rules, Mapping) else list(rules)
        self.rules: list[tuple[Glob, float]] = []
        for pair in pairs:
            if not isinstance(pair, (tuple, list)) or len(pair) != 2:
                raise ConfigError(f"a weight rule is a (glob, weight) pair, not {pair!r}")
            pattern, weight = pair
            self.rules.append((Glob(pattern), _check_weight(weight, f"rule {pattern!r}")))
        unknown = sorted(set(class_weights or {}) - set(CLASSES))
        if unknown:
            raise ConfigError(f"unknown path class(es) {', '.join(map(repr, unknown))} in the "
                              f"class weights; the classes are {', '.join(CLASSES)}")
        self.class_weights = dict(DEFAULT_CLASS_WEIGHTS)
        for cls, weight in (class_weights or {}).items():
            self.class_weights[cls] = _check_weight(weight, f"class {cls!r}")

    def decide(self, path: str) -> tuple[float, str]:
        """The weight of ``path`` and what decided it: ``rule <glob>`` or ``class <name>``."""
        for glob, weight in self.rules:
            if glob.matches(path):
                return weight, f"rule {glob.pattern}"
        cls = path_class(path)
        return self.class_weights[cls], f"class {cls}"

    def weight(self, path: str) -> float:
        return self.decide(path)[0]

    def which(self, path: str) -> str:
        return self.decide(path)[1]

    def unmatched(self, paths: Iterable[str]) -> list[str]:
        """The globs of the rules that match none of ``paths`` (the CLI warns about them)."""
        waiting = {glob.pattern: glob for glob, _ in self.rules}
        for path in paths:
            if not waiting:
                break
            for pattern in [p for p, glob in waiting.items() if glob.matches(path)]:
                del waiting[pattern]
        return [glob.pattern for glob, _ in self.rules if glob.pattern in waiting]


DEFAULT_RULES = WeightRules()


def copies(weight: float, u: float) -> int:
    """How many copies of a document of ``weight`` an epoch holds, given ``u`` uniform in
    [0, 1): ``floor(weight)`` and one more when ``u < frac(weight)``. Its mean over ``u`` is
    ``weight`` exactly; a weight of 0 always gives 0."""
    if not 0.0 <= u < 1.0:
        raise ValueError(f"u must be in [0, 1), not {u!r}")
    if not 0.0 <= weight < math.inf:
        raise ValueError(f"a weight must be a finite number >= 0, not {weight!r}")
    whole = math.floor(weight)
    return whole + (u < weight - whole)
