"""repofeed.store — the LMDB store, its readers, and the PyTorch datasets.

``open_store`` and ``Store`` are light; ``WindowDataset`` and ``EvolutionDataset`` import torch
on first use only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .config import Config, load_config
from .errors import RepofeedError, StoreError
from .reader import Store, open_store
from .tokenizer import SENTINELS, Tokenizer

if TYPE_CHECKING:
    from .datasets import EvolutionDataset, WindowDataset

__all__ = [
    "Config", "EvolutionDataset", "RepofeedError", "SENTINELS", "Store", "StoreError",
    "Tokenizer", "WindowDataset", "load_config", "open_store",
]


def __getattr__(name: str) -> Any:
    if name in ("WindowDataset", "EvolutionDataset"):
        from . import datasets

        return getattr(datasets, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
