"""Inventory bookkeeping for the sample repository."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Item:
    name: str
    quantity: int = 0
    tags: set[str] = field(default_factory=set)

    def restock(self, amount: int) -> None:
        if amount <= 0:
            raise ValueError(f"restock amount must be positive, got {amount}")
        self.quantity += amount


class Inventory:
    """Items by name, with a low-stock report."""

    def __init__(self) -> None:
        self._items: dict[str, Item] = {}

    def add(self, item: Item) -> None:
        self._items[item.name] = item

    def get(self, name: str) -> Item:
        try:
            return self._items[name]
        except KeyError:
            raise KeyError(f"no item named {name!r}") from None

    def low_stock(self, threshold: int = 5) -> list[str]:
        return sorted(n for n, it in self._items.items() if it.quantity < threshold)

    def __len__(self) -> int:
        return len(self._items)


def summarize(inv: Inventory) -> str:
	# a tab-indented line inside Python, on purpose
	return f"{len(inv)} items; low: {', '.join(inv.low_stock()) or 'none'}"
