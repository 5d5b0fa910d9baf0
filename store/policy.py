"""Read-time policy: which documents and records are sampled, and how often.

The store holds facts (principle 5): per document its path, language and linguist attributes;
per text its filter measurements and complexity (``store/facts.py``); the near-duplicate
clusters of the live documents (``store/dedup.py``). ``Policy`` turns them into a sampling
weight per document and per record, from the read-time options of the configuration
(``Config.read_time()``), so that changing a weight rule, a filter threshold, the dedup mode
or the curriculum needs no re-ingest. The steps, in order, for a document:

1. **Path exclusions** (``exclude_vendored``): linguist-vendored or linguist-generated in
   .gitattributes, ``vendor/``, ``node_modules/``, lock files — weight 0, with the reason.
2. **Filters** (``filters``): StarCoder2's, from the text's stored measurements and the
   configured thresholds (``filters.filter_reason``) — weight 0, with the reason.
3. **Weights** (``weighting``): the first user rule whose glob matches (``weights``), else the
   path's class (core, test, docs, config, other: ``paths.path_class``). A rule of 0 leaves
   the path out (reason ``weight_zero``). Without ``weighting`` every item weighs 1.
4. **Exact duplicates** (``dedup_exact``): documents with identical text are one document: the
   first path (in path order) of those still in keeps the largest weight among them; the
   others are left out (``exact_duplicate``).
5. **Near duplicates** (``near_dedup``): a cluster of n documents still in either shares its
   weight (``downweight``: each member's weight divided by n) or keeps one member, the heaviest
   (``drop``; the others ``near_duplicate``).

A weight is a sampling probability relative to weight 1, never a count: the sampler draws an
item ``floor(w)`` times per epoch plus once more with probability ``frac(w)``
(``weights.copies``), so 0.3 means sampled 0.3× as often, never zero times.

Records (evolution) take steps 1–3 from their path and the after-text's facts (the before
text's for a deletion); records whose before and after are equal after normalisation are
dropped when they are written (``dedup.same_after_normalisation``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from .augment import OPTIONS as AUGMENT_OPTIONS
from .config import Config, reading_config
from .filters import Thresholds, excluded_path, filter_reason
from .paths import path_class
from .schema import K_REPO
from .weights import WeightRules


@dataclass
class Weighed:
    """One document or record as the sampler sees it."""

    path: str
    weight: float                 # the sampling weight (0: left out)
    reason: str | None = None     # why it is left out (weight 0), else None
    rule: str = ""                # what set the weight: a glob, or the path class
    cls: str = "other"            # path class
    language: str = "other"
    cluster: str | None = None    # near-duplicate cluster (documents)
    score: float = 0.0            # complexity score (0 where none is known)
    doc: dict[str, Any] = field(default_factory=dict)   # the stored document or record
    facts: dict[str, Any] = field(default_factory=dict)  # of its text (store/facts.py)


def _thresholds(cfg: Config) -> Thresholds:
    """The filters' thresholds: the ``filter_`` options of the configuration."""
    return Thresholds(**{f.name: getattr(cfg, f"filter_{f.name}")
                         for f in fields(Thresholds) if hasattr(cfg, f"filter_{f.name}")})


# Every item once, nothing left out, no curriculum, no variation: the data before weights,
# filters and fill-in-the-middle.
UNWEIGHTED: dict[str, Any] = {"weighting": False, "exclude_vendored": False, "filters": False,
                              "dedup_exact": False, "near_dedup": "off", "curriculum": "off",
                              "fim_rate": 0.0, "mask_rate": 0.0}


class Policy:
    """The read-time options of a configuration, applied to a store's facts."""

    @classmethod
    def unweighted(cls, cfg: Config | None = None) -> Policy:
        """Every item once (``UNWEIGHTED`` over ``cfg``)."""
        return cls((cfg or Config()).with_overrides(**UNWEIGHTED))

    def __init__(self, cfg: Config):
        self.cfg = cfg
        self.rules = WeightRules(list(cfg.weights.items()), cfg.class_weights())
        self.thresholds = _thresholds(cfg)

    @classmethod
    def for_store(cls, store, **flags: Any) -> Policy:
        """The policy for ``store`` (a ``Store``): the repository's configuration now
        (``config.reading_config``), with ``flags`` over it."""
        repo = store.meta(K_REPO)
        return cls(reading_config(store.config, Path(repo) if repo else None, **flags)[0])

    def settings(self) -> dict[str, Any]:
        """The options that decide what is sampled (a run records them; resumes compare)."""
        return {name: getattr(self.cfg, name) for name in Config.read_time()
                if name not in AUGMENT_OPTIONS}   # what is sampled, not how it is varied

    # -- documents ----------------------------------------------------------------------

    def _base(self, path: str, attrs: dict[str, Any] | None, stats: dict | None,
              language: str) -> tuple[float, str | None, str]:
        """(weight, reason left out, what set the weight) from steps 1-3."""
        cfg = self.cfg
        if cfg.exclude_vendored:
            why = excluded_path(path, attrs)
            if why:
                return 0.0, why, why
        if cfg.filters and stats is not None:
            if not cfg.filter_autogenerated:
                stats = {**stats, "autogenerated": False}
            why = filter_reason(stats, language, self.thresholds)
            if why:
                return 0.0, why, why
        if not cfg.weighting:
            return 1.0, None, "unweighted"
        weight, rule = self.rules.weight(path), self.rules.which(path)
        return weight, ("weight_zero" if weight == 0 else None), rule

    def documents(self, store, docs: list[dict[str, Any]] | None = None) -> list[Weighed]:
        """Every snapshot document with tokens (of ``docs``, default the store's) with its
        weight, in path order."""
        if docs is None:
            docs = store.documents(weighed=False)
        docs = [d for d in docs if d["n_tokens"] > 0]
        facts = store.facts([d["array"] for d in docs])
        clusters = store.near_duplicates() if self.cfg.near_dedup != "off" else {}
        out = []
        for d in docs:
            fact = facts.get(d["array"], {})
            language = d.get("language", "other")
            weight, reason, rule = self._base(d["path"], d.get("attrs"), fact.get("stats"),
                                              language)
            cluster = clusters.get(d.get("hash"))  # a store before the index has no hash
            out.append(Weighed(d["path"], weight, reason, rule, path_class(d["path"]), language,
                               cluster.hex() if cluster is not None else None,
                               float((fact.get("cx") or {}).get("score", 0.0)), d, fact))
        if self.cfg.dedup_exact:
            self._exact(out)
        if self.cfg.near_dedup != "off":
            self._near(out)
        return out

    @staticmethod
    def _exact(items: list[Weighed]) -> None:
        groups: dict[int, list[Weighed]] = {}
        for item in items:
            if item.reason is None:
                groups.setdefault(item.doc["array"], []).append(item)
        for group in groups.values():
            if len(group) > 1:
                group[0].weight = max(i.weight for i in group)
                for item in group[1:]:
                    item.weight, item.reason = 0.0, "exact_duplicate"

    def _near(self, items: list[Weighed]) -> None:
        groups: dict[str, list[Weighed]] = {}
        for item in items:
            if item.reason is None and item.cluster is not None:
                groups.setdefault(item.cluster, []).append(item)
        for group in groups.values():
            if len(group) < 2:
                continue
            if self.cfg.near_dedup == "downweight":
                for item in group:
                    item.weight /= len(group)
            else:  # drop: keep the heaviest (the first in path order among equals)
                keep = max(group, key=lambda i: i.weight)
                for item in group:
                    if item is not keep:
                        item.weight, item.reason = 0.0, "near_duplicate"

    def explain(self, store, path: str) -> dict[str, Any]:
        """Why ``path`` is sampled as it is: its weight and what set it, or why it is left
        out — with the measurements and thresholds of a failed filter, the members of its
        near-duplicate cluster, or the reason it was skipped at ingest."""
        skipped = store.skipped_files().get(path)
        if skipped is not None:
            return {"path": path, "in_store": False, "weight": 0.0, "excluded": skipped,
                    "why": f"skipped at ingest: {skipped}"}
        weighed = self.documents(store)
        item = next((w for w in weighed if w.path == path), None)
        if item is None:
            return {"path": path, "in_store": False, "weight": 0.0, "excluded": "not_found",
                    "why": "no document at this path in the snapshot (not in the followed "
                           "tree, ignored, or empty)"}
        fact = item.facts
        out: dict[str, Any] = {
            "path": path, "in_store": True, "weight": item.weight, "excluded": item.reason,
            "set_by": item.rule, "class": item.cls, "language": item.language,
            "n_tokens": item.doc["n_tokens"], "complexity": fact.get("cx"),
            "stats": fact.get("stats"), "attrs": item.doc.get("attrs", {}),
            "cluster": item.cluster,
            "cluster_members": sorted(w.path for w in weighed
                                      if item.cluster and w.cluster == item.cluster),
        }
        if item.reason is None:
            out["why"] = f"sampled with weight {item.weight:g} (set by {item.rule})"
        elif item.reason in ("exact_duplicate", "near_duplicate"):
            kept = [w.path for w in weighed if w.reason is None and (
                w.doc["array"] == item.doc["array"] if item.reason == "exact_duplicate"
                else w.cluster == item.cluster)]
            out["why"] = f"left out: {item.reason} of {', '.join(kept) or 'another document'}"
        else:
            out["why"] = f"left out: {item.reason}"
        return out

    # -- records ------------------------------------------------------------------------

    def records(self, store, numbered: list[tuple[int, dict[str, Any]]]
                ) -> dict[int, Weighed]:
        """Each record of ``numbered`` (``Store.numbered_records()``) with its weight."""
        arrays = [r["after"] if r["after"] is not None else r["before"] for _, r in numbered]
        facts = store.facts([a for a in arrays if a is not None])
        out = {}
        for (seq, rec), array in zip(numbered, arrays):
            fact = facts.get(array, {}) if array is not None else {}
            language = fact.get("lang", "other")
            weight, reason, rule = self._base(rec["path"], None, fact.get("stats"), language)
            out[seq] = Weighed(rec["path"], weight, reason, rule, path_class(rec["path"]),
                               language, None,
                               float((fact.get("cx") or {}).get("score", 0.0)), rec)
        return out


def composition(items: list[Weighed]) -> dict[str, Any]:
    """What a set of weighed items is made of: counts by language, by weight class and by
    reason left out, and the sum of weights of each class (the share it is sampled with)."""
    languages: dict[str, int] = {}
    classes: dict[str, dict[str, Any]] = {}
    excluded: dict[str, int] = {}
    for item in items:
        languages[item.language] = languages.get(item.language, 0) + 1
        entry = classes.setdefault(item.cls, {"items": 0, "weight": 0.0})
        entry["items"] += 1
        entry["weight"] = round(entry["weight"] + item.weight, 6)
        if item.reason is not None:
            excluded[item.reason] = excluded.get(item.reason, 0) + 1
    total = sum(c["weight"] for c in classes.values())
    for entry in classes.values():
        entry["share"] = round(entry["weight"] / total, 4) if total else 0.0
    return {"languages": dict(sorted(languages.items(), key=lambda kv: -kv[1])),
            "weight_classes": dict(sorted(classes.items(), key=lambda kv: -kv[1]["weight"])),
            "excluded": dict(sorted(excluded.items(), key=lambda kv: -kv[1]))}
