"""Variations made on the fly, when an item is read: fill-in-the-middle and masking.

Policy in the reader (DESIGN.md, principle 5): nothing here is stored, the options are
read-time configuration (``fim_rate``, ``fim_spm_rate``, ``mask_rate``, ``mask_labels``), and
every choice is drawn from a generator seeded with (seed, epoch, item key), so the same run
sees the same variations, a resume continues them exactly, and another epoch draws anew.

**Fill-in-the-middle** (Bavarian et al. 2022, arXiv 2207.14255; StarCoder's sentinels). With
probability ``fim_rate`` a window is cut at two character positions drawn uniformly, into
prefix, middle and suffix, after windowing (the FIM paper's "context-level" FIM: the cut lies
within what the model sees). The three parts are encoded again and laid out either

* PSM: ``<fim_prefix>`` prefix ``<fim_suffix>`` suffix ``<fim_middle>`` middle, or
* SPM (with probability ``fim_spm_rate`` of the FIM items): ``<fim_prefix><fim_suffix>``
  suffix ``<fim_middle>`` prefix middle (StarCoder's variant, where the prefix runs straight
  into the middle).

The sentinels are ids that no text encodes to (issue 5), so source code that spells
``<fim_middle>`` cannot forge one. Re-encoding the parts apart can take a few more tokens
than the window had, and the three sentinels take three: an item longer than the window is
cut in its suffix (in PSM the end of the suffix, in SPM too), never in the middle, which is
what the model learns to write. No end-of-middle token follows the middle: the item ends
there. Loss is on every token, as in the FIM paper. A window shorter than two characters is
left as it is. ``fim_layout`` is the one place the layout is written; the held-out infilling
evaluation (repofeed.train.evaluate, part ``infill``) lays its spans out with it too.

**Masking** (BERT-style, Devlin et al. 2019). With ``mask_rate`` > 0, each real token (not a
sentinel) is chosen with that probability; a chosen token becomes ``<mask>`` 8 times in 10, a
random ordinary token once, and stays once. ``mask_labels="masked"`` takes loss on the chosen
positions only (the original tokens there); ``"all"`` on every real token, as plain
next-token training does. Masking applies after FIM when both are on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import ConfigError
from .tokenizer import SENTINELS, Tokenizer

MASK_LABELS = ("masked", "all")
FIM_SENTINELS = ("<fim_prefix>", "<fim_suffix>", "<fim_middle>")
OPTIONS = ("fim_rate", "fim_spm_rate", "mask_rate", "mask_labels")  # in store/config.py
_FIM_SALT, _MASK_SALT = 0x46494D, 0x4D41534B  # "FIM", "MASK": separate streams of draws


@dataclass(frozen=True)
class Augment:
    """The on-the-fly variations of a training stream (see the module's docstring)."""

    fim_rate: float = 0.5
    fim_spm_rate: float = 0.5
    mask_rate: float = 0.0
    mask_labels: str = "masked"

    def __post_init__(self) -> None:
        for name in ("fim_rate", "fim_spm_rate", "mask_rate"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not 0.0 <= value <= 1.0:
                raise ConfigError(f"{name} must be a fraction between 0 and 1 (got {value!r})")
        if self.mask_labels not in MASK_LABELS:
            raise ConfigError(f"mask_labels must be one of {', '.join(MASK_LABELS)} "
                              f"(got {self.mask_labels!r})")

    @classmethod
    def off(cls) -> Augment:
        return cls(fim_rate=0.0, mask_rate=0.0)

    @classmethod
    def from_config(cls, cfg: Any) -> Augment:
        return cls(*(getattr(cfg, name) for name in OPTIONS))

    @property
    def active(self) -> bool:
        return self.fim_rate > 0 or self.mask_rate > 0

    def settings(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in OPTIONS}


class Augmenter:
    """Applies an :class:`Augment` with one store's tokenizer."""

    def __init__(self, augment: Augment, tok: Tokenizer):
        self.augment = augment
        self.tok = tok
        self.fim = fim_sentinels(tok)
        self.mask_id = tok.sentinel("<mask>")
        special = {tok.sentinel(n) for n in SENTINELS} | {tok.eos_id, tok.pad_id}
        self.ordinary = np.setdiff1d(np.arange(tok.vocab_size, dtype=np.int64),
                                     np.fromiter(special, dtype=np.int64))
        self._special = np.fromiter(special, dtype=np.int64)

    def __call__(self, ids: np.ndarray, length: int, key: int, seed: int, epoch: int,
                 label_mask: np.ndarray | None = None
                 ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
        """(input ids, label mask or None for every token, label ids) of window ``ids``,
        whose loss was to be on ``label_mask`` (None: every token); item ``key``."""
        aug = self.augment
        ids = np.asarray(ids, dtype=np.int64)
        if aug.fim_rate > 0:
            rng = np.random.default_rng([seed % 2**64, epoch, key, _FIM_SALT])
            if rng.random() < aug.fim_rate:
                ids = self._fim(ids, length, rng, spm=rng.random() < aug.fim_spm_rate)
                label_mask = None   # a new layout: loss on all of it
        targets = ids
        if aug.mask_rate > 0:
            rng = np.random.default_rng([seed % 2**64, epoch, key, _MASK_SALT])
            chosen = (rng.random(len(ids)) < aug.mask_rate) & ~np.isin(ids, self._special)
            roll = rng.random(len(ids))
            ids = ids.copy()
            to_random = chosen & (roll >= 0.8) & (roll < 0.9)
            ids[chosen & (roll < 0.8)] = self.mask_id
            ids[to_random] = rng.choice(self.ordinary, int(to_random.sum()))
            if aug.mask_labels == "masked":
                label_mask = chosen if label_mask is None else chosen & label_mask
        return ids, label_mask, targets

    def _fim(self, ids: np.ndarray, length: int, rng: np.random.Generator, spm: bool
             ) -> np.ndarray:
        text = self.tok.decode(ids.tolist())
        if len(text) < 2:
            return ids
        lo, hi = sorted(rng.integers(0, len(text) + 1, size=2).tolist())
        prefix, middle, suffix = (np.asarray(self.tok.encode(part), dtype=np.int64)
                                  if part else np.zeros(0, dtype=np.int64)
                                  for part in (text[:lo], text[lo:hi], text[hi:]))
        over = len(prefix) + len(middle) + len(suffix) + 3 - length
        if over > 0:   # cut the suffix's end, then (if the suffix is gone) the prefix's start
            cut = min(over, len(suffix))
            suffix = suffix[:len(suffix) - cut]
            prefix = prefix[over - cut:]
        return fim_layout(prefix, middle, suffix, self.fim, spm=spm)[:length]


def fim_sentinels(tok: Tokenizer) -> tuple[int, int, int]:
    """The ids of ``<fim_prefix>``, ``<fim_suffix>`` and ``<fim_middle>`` in ``tok``."""
    return tuple(tok.sentinel(n) for n in FIM_SENTINELS)  # type: ignore[return-value]


def fim_layout(prefix: np.ndarray | list[int], middle: np.ndarray | list[int],
               suffix: np.ndarray | list[int], sentinels: tuple[int, int, int], *,
               spm: bool = False) -> np.ndarray:
    """The one fill-in-the-middle layout, of parts already encoded apart: PSM
    ``<fim_prefix>`` prefix ``<fim_suffix>`` suffix ``<fim_middle>`` middle, or SPM
    ``<fim_prefix><fim_suffix>`` suffix ``<fim_middle>`` prefix middle. The middle ends the
    sequence in both, and no end-of-middle token follows it. Training lays its windows out
    with it (``Augmenter``), and so does the held-out infilling evaluation
    (repofeed.train.evaluate), so that both ask the model the same question."""
    pre, suf, mid = (np.array([i], dtype=np.int64) for i in sentinels)
    prefix, middle, suffix = (np.asarray(part, dtype=np.int64).reshape(-1)
                              for part in (prefix, middle, suffix))
    parts = ([pre, suf, suffix, mid, prefix, middle] if spm else
             [pre, prefix, suf, suffix, mid, middle])
    return np.concatenate(parts)
