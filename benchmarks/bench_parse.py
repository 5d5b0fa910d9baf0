"""Parse and complexity throughput per language, against SentencePiece tokenizing the same
files in the same process.

The files are the text files at the tip of the corpus histories (``../shared/corpus``: five
repositories in Rust, Python, Go, TypeScript and C; read as the ingest reads them,
``common.tip_files``), grouped by the language ``detect_language`` gives them; languages
without a grammar are one ``(text)`` row (the text fallback). The baseline is what the ingest
does to every text anyway: encode it with a SentencePiece model trained on the spot by
repofeed's own trainer (``common.train_sentencepiece``), on these files, one file per call on
one thread, as ``analyze`` runs. Measured: MB/s for ``analyze`` (parse and walk), for
tree-sitter's parse alone, and for ``encode``; best of ``--repeat`` rounds run round-robin.
The ratio is analyze's time over encode's: the share of the tokenizer's cost that complexity
adds (issue 9's goal is the whole quality stage at most 1x tokenizing; ``bench_quality.py``
measures the whole stage).

    python benchmarks/bench_parse.py [--repeat 3] [--vocab-size 8000] [--corpus DIR]
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from collections.abc import Sequence

from common import (
    add_corpus_option,
    add_scratch_options,
    best_seconds,
    corpus_bundles,
    corpus_tip_files,
    megabytes,
    table,
    train_sentencepiece,
    workspace,
)

from repofeed.store import parsing
from repofeed.store.complexity import SPECS, analyze

TEXT_ROW = "(text)"


def analyze_all(language: str, texts: Sequence[str]):
    def work() -> None:
        for text in texts:
            analyze(text, language)
    return work


def parse_only(language: str, texts: Sequence[str]):
    parser = parsing.parser(language)

    def work() -> None:
        for text in texts:
            parser.parse(text.encode("utf-8"))
    return work


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--vocab-size", type=int, default=8000)
    add_corpus_option(parser)
    add_scratch_options(parser)
    args = parser.parse_args()

    bundles = corpus_bundles(args.corpus, args.bundles)
    with workspace(args.workdir, args.keep) as scratch:
        groups: dict[str, list[str]] = defaultdict(list)
        for f in corpus_tip_files(bundles, scratch):
            groups[f.language if f.language in SPECS else TEXT_ROW].append(f.text)

    every = [t for texts in groups.values() for t in texts]
    tok, trained, seconds = train_sentencepiece(every, args.vocab_size)
    print(f"SentencePiece trained on {len(every)} files in {seconds:.1f} s "
          f"(vocabulary {trained.vocab_size})\n")

    rows = []
    totals = {"mb": 0.0, "analyze": 0.0, "encode": 0.0}
    for language in sorted(groups, key=lambda k: (k == TEXT_ROW, k)):
        texts = groups[language]
        mb = megabytes(texts)
        for text in texts:  # warm: grammars loaded, parsers made
            analyze(text, language)
            tok.encode(text)
        works = [analyze_all(language, texts), lambda texts=texts: [tok.encode(t) for t in texts]]
        if language in SPECS:
            works.append(parse_only(language, texts))
        t_analyze, t_encode, *t_parse = best_seconds(args.repeat, works)
        hows = {c.how for c in (analyze(t, language) for t in texts)}
        rows.append([language, len(texts), mb, mb / t_analyze,
                     mb / t_parse[0] if t_parse else None, mb / t_encode, t_analyze / t_encode,
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
