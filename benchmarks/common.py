"""Helpers shared by the benchmark scripts: scratch space, git, the corpus histories, a
tokenizer trained the way the store trains one, round-robin timing and tables."""

from __future__ import annotations

import argparse
import contextlib
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pygit2

from repofeed.daemon.history import MODE_LINK, MODE_SUBMODULE, text_of, tree_changes
from repofeed.store.attributes import linguist_attrs
from repofeed.store.languages import detect_language
from repofeed.store.tokenizer.sentencepiece import (
    SentencePieceTokenizer,
    TrainResult,
    train_tokenizer,
)

HERE = Path(__file__).resolve().parent
PROJECT = HERE.parent
CORPUS = PROJECT.parent / "shared" / "corpus"  # the real histories (see its README)
MAX_FILE_BYTES = 1 << 20  # the store's default max_file_bytes: larger blobs are left out


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


def add_corpus_option(parser: argparse.ArgumentParser) -> None:
    """``--corpus DIR`` (the ``*.bundle`` histories) and ``--bundles a,b`` (a subset)."""
    parser.add_argument("--corpus", type=Path, default=CORPUS,
                        help="directory of *.bundle histories")
    parser.add_argument("--bundles", default="",
                        help="comma-separated bundle names (default: every one)")


def corpus_bundles(corpus: Path, names: str | Sequence[str] = "") -> list[Path]:
    """The ``*.bundle`` files in ``corpus`` (only ``names``, if given), sorted by name."""
    wanted = [n for n in names.split(",") if n] if isinstance(names, str) else list(names)
    found = sorted(p for p in corpus.glob("*.bundle") if not wanted or p.stem in wanted)
    if not found:
        raise SystemExit(f"no *.bundle in {corpus}"
                         + (f" named {', '.join(wanted)}" if wanted else "") + ": pass --corpus")
    missing = set(wanted) - {p.stem for p in found}
    if missing:
        raise SystemExit(f"no bundle named {', '.join(sorted(missing))} in {corpus}")
    return found


def clone_bundle(bundle: Path, scratch: Path) -> Path:
    """A clone of ``bundle`` at ``scratch/<name>`` (made once; later calls reuse it)."""
    clone = scratch / bundle.stem
    if not clone.exists():
        subprocess.run(["git", "clone", "-q", str(bundle), str(clone)], check=True)
    return clone


@dataclass(frozen=True)
class TipFile:
    """A text file at a history's tip, as the ingest reads it (before redaction)."""

    history: str   # the bundle's name
    path: str
    text: str
    language: str  # detect_language, with the tip's .gitattributes (linguist-language)


def tip_files(clone: Path, max_bytes: int = MAX_FILE_BYTES) -> list[TipFile]:
    """Every text file at the tip of ``clone``, read as the ingest reads a snapshot: the tip
    tree's blobs, symlinks and submodules left out, blobs over ``max_bytes`` left out, binary
    (libgit2's verdict), Git LFS pointers and what is not UTF-8 left out; its language as the
    store gives it."""
    repo = pygit2.Repository(str(clone))
    tip = repo.head.peel(pygit2.Commit)
    out = []
    for path, oid, mode in tree_changes(repo, None, tip.tree):
        if oid is None or mode in (MODE_LINK, MODE_SUBMODULE):
            continue
        blob = repo[oid]
        if blob.size > max_bytes:
            continue
        text, _why = text_of(blob.data, binary=blob.is_binary)
        if text is not None:  # empty files too: they are documents (of no tokens)
            language = detect_language(path, text, linguist_attrs(repo, path, tip))
            out.append(TipFile(clone.name, path, text, language))
    return out


def corpus_tip_files(bundles: Sequence[Path], scratch: Path) -> list[TipFile]:
    """``tip_files`` of every bundle, each cloned into ``scratch``."""
    return [f for bundle in bundles for f in tip_files(clone_bundle(bundle, scratch))]


def megabytes(texts: Sequence[str]) -> float:
    """The UTF-8 size of ``texts`` in MB (10^6 bytes): what every MB/s here divides."""
    return sum(len(t.encode("utf-8")) for t in texts) / 1e6


def train_sentencepiece(texts: Sequence[str], vocab_size: int
                        ) -> tuple[SentencePieceTokenizer, TrainResult, float]:
    """A SentencePiece BPE model trained on ``texts`` the way ``repofeed init`` trains one
    (``train_tokenizer``: the code options, two threads) and loaded as the store loads a
    trained one (spliceable); returns (tokenizer, TrainResult, seconds to train)."""
    with Timer() as timer:
        trained = train_tokenizer(list(texts), vocab_size)
    return SentencePieceTokenizer(trained.model, spliceable=True), trained, timer.seconds


class Timer:
    """``with Timer() as t: ...`` then ``t.seconds``."""

    def __enter__(self) -> Timer:
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self._start


def best_seconds(repeat: int, works: Sequence[Callable[[], object]]) -> list[float]:
    """The fastest of ``repeat`` runs of each of ``works``, in seconds. The runs go
    round-robin (each round runs every work once), so background load on a shared machine
    hits every one alike."""
    times = [float("inf")] * len(works)
    for _ in range(repeat):
        for n, work in enumerate(works):
            with Timer() as t:
                work()
            times[n] = min(times[n], t.seconds)
    return times


def each(fn: Callable[[str], object], texts: Sequence[str]) -> Callable[[], None]:
    """A work for ``best_seconds``: ``fn`` called on every text, one call per text."""

    def work() -> None:
        for text in texts:
            fn(text)

    return work


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
