"""Helpers shared by the benchmark scripts: scratch space, git, timing and tables."""

from __future__ import annotations

import argparse
import contextlib
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent
PROJECT = HERE.parent


@contextlib.contextmanager
def workspace(root: Path | None, keep: bool) -> Iterator[Path]:
    """A fresh scratch directory (under ``root`` if given, else the system temp dir)."""
    if root is not None:
        root.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix="repofeed-bench-", dir=root))
    try:
        yield path
    finally:
        if keep:
            print(f"\nscratch data kept in {path}")
        else:
            shutil.rmtree(path, ignore_errors=True)


def add_scratch_options(parser: argparse.ArgumentParser) -> None:
    """``--workdir`` and ``--keep``, which every benchmark takes for its scratch data."""
    parser.add_argument("--workdir", type=Path, default=None,
                        help="where scratch data goes (default: the system temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch data")


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=True)
    return done.stdout.strip()


class Timer:
    """``with Timer() as t: ...`` then ``t.seconds``."""

    def __enter__(self) -> Timer:
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self._start


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A plain-text table, first column left-aligned, the others right-aligned."""
    cells = [[str(h) for h in headers]] + [[_fmt(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]

    def line(row: list[str]) -> str:
        first = row[0].ljust(widths[0])
        return "  ".join([first] + [c.rjust(w) for c, w in zip(row[1:], widths[1:])])

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(cells[0]), rule] + [line(r) for r in cells[1:]])


def _fmt(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:,.2f}" if value < 100 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)
