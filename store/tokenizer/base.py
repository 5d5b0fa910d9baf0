"""What every store tokenizer offers, whichever library reads its model.

A store holds one tokenizer: its model's bytes and a small info record (``kind``, ``id``,
``vocab_size``, ``extra``). Two kinds exist, ``sentencepiece`` (``sentencepiece.py``) and
``huggingface`` (``huggingface.py``); both keep the rules here:

- ``encode`` never adds a BOS or EOS token, and never produces a sentinel id, whatever the text
  spells: sentinels (``SENTINELS``) are ids that text never encodes to, so source code that
  spells ``<file_sep>`` cannot forge the structural token. A sentinel the model has in a form
  text cannot produce is used as is; the others get ids after the model's vocabulary
  (``extra``), and a model trained on such a store needs its embeddings resized to
  ``vocab_size``.
- ``decode`` gives the text, with every sentinel id shown by its name. Other ids that are no
  text (an EOS ending a sequence) show as SentencePiece and ``tokenizers`` decode them: as
  nothing, and as the token's name.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from typing import Any, ClassVar

import numpy as np
import xxhash

from ..errors import TokenizerError

SENTINELS = (
    "<fim_prefix>",
    "<fim_middle>",
    "<fim_suffix>",
    "<fim_pad>",
    "<commit_before>",
    "<commit_msg>",
    "<commit_after>",
    "<file_sep>",
    "<mask>",
)

# Every character class code uses: spaces (single, runs), tab, newlines, all of printable ASCII,
# digits, non-ASCII of two, three and four UTF-8 bytes, and sentinel spellings.
ROUNDTRIP_PROBE = (
    "a b  c\td\n\t\tif x:\r\n    return 0\n\n"
    + "".join(chr(c) for c in range(0x21, 0x7F)) + " 0123456789 é ß Ω 日本 🙂 ▁\n"
    + "".join(SENTINELS) + "\n"
)


class Tokenizer(ABC):
    """A store's tokenizer: a model of some ``kind`` plus the sentinel ids repofeed needs.

    ``base_size`` is the model's own vocabulary (one more than its highest id), ``vocab_size``
    that plus the sentinels added after it (``extra``: name -> id). ``id`` is a hash of the
    stored model bytes and ``extra``: two stores with the same id hold interchangeable ids.
    """

    kind: ClassVar[str]
    model: bytes
    extra: dict[str, int]
    # True only where an edited text can be re-encoded around its change (``plan_edit``)
    spliceable: bool = False
    id: str
    base_size: int
    vocab_size: int

    def _identify(self, base_size: int, own_sentinels: dict[int, str]) -> None:
        """Set ``id``, the sizes, and the names sentinel ids decode to."""
        self.id = xxhash.xxh3_64_hexdigest(self.model + repr(sorted(self.extra.items())).encode())
        self.base_size = base_size
        self.vocab_size = base_size + len(self.extra)
        self._names = dict(own_sentinels)
        self._names.update({i: name for name, i in self.extra.items()})
        self._sentinel_ids = {name: i for i, name in self._names.items()}

    # -- what the store and the datasets use ------------------------------------------------

    def sentinel(self, name: str) -> int:
        """The id of sentinel ``name`` (one of ``SENTINELS``)."""
        return self._sentinel_ids[name]

    @abstractmethod
    def encode(self, text: str) -> list[int]:
        """The ids of ``text``: no BOS or EOS added, never a sentinel id."""

    @abstractmethod
    def encode_batch(self, texts: list[str], threads: int = 2) -> list[list[int]]:
        """``encode`` of each text, in one (multi-threaded) call."""

    @abstractmethod
    def _decode_run(self, ids: list[int]) -> str:
        """The text of ids that hold no sentinel."""

    def decode(self, ids: Sequence[int]) -> str:
        """The text of ``ids``; every sentinel id shows as its name."""
        ids = [int(i) for i in ids]
        if self._names.keys().isdisjoint(ids):
            return self._decode_run(ids)
        parts, run = [], []
        for i in ids:
            if i in self._names:
                parts.append(self._decode_run(run))
                parts.append(self._names[i])
                run = []
            else:
                run.append(i)
        parts.append(self._decode_run(run))
        return "".join(parts)

    @property
    @abstractmethod
    def eos_id(self) -> int:
        """The end-of-sequence id, or -1 where the model has none."""

    @property
    @abstractmethod
    def pad_id(self) -> int:
        """An id to pad with (always masked out): the model's pad, else its EOS, else 0."""

    @property
    @abstractmethod
    def byte_lengths(self) -> np.ndarray:
        """UTF-8 bytes each id decodes to: a cumulative sum maps tokens to text offsets."""

    @abstractmethod
    def piece_id(self, text: str) -> int | None:
        """The id the model's own vocabulary has for the token ``text``, if any."""

    @abstractmethod
    def base_vocabulary(self) -> dict[str, int]:
        """The model's own token -> id mapping (sentinels added after it left out)."""

    def stored_info(self) -> dict[str, Any]:
        """What the store records about this tokenizer beside the model bytes."""
        return {"kind": self.kind, "id": self.id, "vocab_size": self.vocab_size,
                "extra": self.extra}

    # -- re-encoding an edited text around its change -----------------------------------------

    def plan_edit(self, before: str, before_ids: np.ndarray, after: str,
                  hunks: Sequence[Sequence[int]]) -> list[tuple[int, int] | str] | None:
        """How to get ``encode(after)`` from the tokens of ``before``; None: encode it whole.

        Only a spliceable tokenizer plans; see ``SentencePieceTokenizer.plan_edit``.
        """
        return None

    @staticmethod
    def assemble(before_ids: np.ndarray, plan: list[tuple[int, int] | str],
                 encoded: Iterable[list[int]]) -> list[int]:
        """The tokens a plan describes, given the encodings of its texts in order."""
        encoded = iter(encoded)
        out: list[int] = []
        for step in plan:
            out.extend(next(encoded) if isinstance(step, str)
                       else before_ids[step[0]:step[1]].tolist())
        return out

    def encode_edit(self, before: str, before_ids: np.ndarray, after: str,
                    hunks: Sequence[Sequence[int]]) -> list[int]:
        """``encode(after)``, re-encoding only around ``hunks`` where the tokenizer allows."""
        plan = self.plan_edit(before, before_ids, after, hunks)
        if plan is None:
            return self.encode(after)
        return self.assemble(before_ids, plan,
                             (self.encode(s) for s in plan if isinstance(s, str)))


def check_roundtrip(tok: Tokenizer) -> None:
    """Refuse a model that cannot reproduce every character class code uses.

    ``init`` runs this on the model it trains: a tip with little text once gave a model that
    decoded every space as "▁" (issue 7), and stored text would be wrong from then on.
    """
    ids = tok.encode(ROUNDTRIP_PROBE)
    decoded = tok.decode(ids)
    forged = sorted({tok._names[i] for i in ids if i in tok._names})
    if decoded == ROUNDTRIP_PROBE and not forged:
        return
    lost = sorted({c for c in ROUNDTRIP_PROBE if c not in decoded})
    what = (f"text encodes to the sentinels {', '.join(forged)}" if forged else
            f"decode(encode(text)) != text, losing {''.join(lost)!r}" if lost else
            "decode(encode(text)) != text")
    raise TokenizerError(
        f"the trained tokenizer does not reproduce code ({what}); this is a repofeed bug: "
        f"please report it, and meanwhile pass `--tokenizer MODEL`."
    )
