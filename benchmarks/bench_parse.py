"""Parse and complexity throughput per language, against SentencePiece tokenizing the same
files in the same process.

The files are the text files at the tip of the corpus histories (``../shared/corpus``: five
repositories in Rust, Python, Go, TypeScript and C), grouped by the language
``detect_language`` gives them; languages without a grammar are one ``(text)`` row (the
text fallback). The baseline is what the ingest does to every text anyway: encode it with a
SentencePiece model trained on the spot by repofeed's own trainer, on these files, one file
per call on one thread, as ``analyze`` runs. Measured: MB/s for ``analyze`` (parse and walk),
for tree-sitter's parse alone, and for ``encode``; best of ``--repeat`` rounds. The ratio is
analyze's time over encode's: the share of the tokenizer's cost that complexity adds
(issue 9's goal is the whole quality stage at most 1x tokenizing).

    python benchmarks/bench_parse.py [--repeat 3] [--vocab-size 8000] [--corpus DIR]
"""

from __future__ import annotations

import argparse
import subprocess
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path

import pygit2
from common import PROJECT, add_scratch_options, table, workspace

from repofeed.daemon.history import text_of
from repofeed.store import complexity
from repofeed.store.complexity import SPECS, analyze
from repofeed.store.languages import detect_language, linguist_attrs
from repofeed.store.tokenizer import SentencePieceTokenizer, train_tokenizer

BUNDLES = ("fd", "attrs", "cobra", "ky", "cJSON")
TEXT_ROW = "(text)"


def tip_texts(clone: Path) -> list[tuple[str, str]]:
    """(language, text) of every text file at the clone's tip."""
    repo = pygit2.Repository(str(clone))
    out = []
    stack = [("", repo.head.peel(pygit2.Commit).tree)]
    while stack:
        prefix, tree = stack.pop()
        for entry in tree:
            rel = prefix + entry.name
            if entry.type_str == "tree":
                stack.append((rel + "/", repo[entry.id]))
            elif entry.type_str == "blob" and entry.filemode != pygit2.enums.FileMode.LINK:
                text, _why = text_of(repo[entry.id].data)
                if text is not None:
                    attrs = linguist_attrs(repo, rel, "HEAD")
                    out.append((detect_language(rel, text, attrs), text))
    return out


def best_seconds(repeat: int, fn: Callable[..., object], *args: object) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn(*args)
        best = min(best, time.perf_counter() - start)
    return best


def analyze_all(language: str, texts: Sequence[str]) -> None:
    for text in texts:
        analyze(text, language)


def encode_all(tok: SentencePieceTokenizer, texts: Sequence[str]) -> None:
    for text in texts:
        tok.encode(text)


def parse_only(language: str, texts: Sequence[str]) -> None:
    grammar = complexity._grammar(language)
    parser = complexity._parser(language, grammar)
    for text in texts:
        parser.parse(text.encode("utf-8"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--vocab-size", type=int, default=8000)
    parser.add_argument("--corpus", type=Path, default=PROJECT.parent / "shared" / "corpus")
    add_scratch_options(parser)
    args = parser.parse_args()

    with workspace(args.workdir, args.keep) as scratch:
        groups: dict[str, list[str]] = defaultdict(list)
        for name in BUNDLES:
            clone = scratch / name
            subprocess.run(["git", "clone", "-q", str(args.corpus / f"{name}.bundle"),
                            str(clone)], check=True)
            for language, text in tip_texts(clone):
                groups[language if language in SPECS else TEXT_ROW].append(text)

    every = [t for texts in groups.values() for t in texts]
    start = time.perf_counter()
    trained = train_tokenizer(every, args.vocab_size)
    tok = SentencePieceTokenizer(trained.model)
    print(f"SentencePiece trained on {len(every)} files in {time.perf_counter() - start:.1f} s "
          f"(vocabulary {trained.vocab_size})\n")

    rows = []
    totals = {"mb": 0.0, "analyze": 0.0, "encode": 0.0}
    for language in sorted(groups, key=lambda k: (k == TEXT_ROW, k)):
        texts = groups[language]
        mb = sum(len(t.encode("utf-8")) for t in texts) / 1e6
        for text in texts:  # warm: grammars loaded, parsers made
            analyze(text, language)
            tok.encode(text)
        t_analyze = best_seconds(args.repeat, analyze_all, language, texts)
        t_encode = best_seconds(args.repeat, encode_all, tok, texts)
        t_parse = (best_seconds(args.repeat, parse_only, language, texts)
                   if language in SPECS else None)
        hows = {c.how for c in (analyze(t, language) for t in texts)}
        rows.append([language, len(texts), mb, mb / t_analyze,
                     mb / t_parse if t_parse else None, mb / t_encode, t_analyze / t_encode,
                     ",".join(sorted(hows))])
        totals["mb"] += mb
        totals["analyze"] += t_analyze
        totals["encode"] += t_encode
    rows.append(["all", len(every), totals["mb"], totals["mb"] / totals["analyze"], None,
                 totals["mb"] / totals["encode"], totals["analyze"] / totals["encode"], ""])
    print(table(["language", "files", "MB", "analyze MB/s", "parse MB/s", "encode MB/s",
                 "analyze/encode", "how"], rows))
    print("\nanalyze/encode: time to measure complexity over time to tokenize the same "
          "files (1.0 = as costly as tokenizing); one thread each, same process.")


if __name__ == "__main__":
    main()
