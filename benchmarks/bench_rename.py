"""Identifier renaming throughput per language (issue 10: variants per second per language),
against tree-sitter parsing the same files in the same process.

The files are the text files at the tip of the corpus histories (``../shared/corpus``,
``common.tip_files``) whose language has renaming rules. ``names`` is the vocabulary of
each language's files (``identifiers``), as the daemon builds it for a repository. Measured,
best of ``--repeat`` rounds run round-robin, one file per call on one thread: files/s and
MB/s for ``rename`` (which parses three times: the source check, the analysis, the variant
check) and MB/s for one tree-sitter parse alone. The ratio is rename's time over one parse's.
Reasons (``unparsed``, ``no-locals``, ...) are counted per language.

    python benchmarks/bench_rename.py [--repeat 3] [--corpus DIR] [--bundles a,b]
"""

from __future__ import annotations

import argparse
from collections import Counter, defaultdict
from collections.abc import Sequence

from common import (
    add_corpus_option,
    add_scratch_options,
    best_seconds,
    corpus_bundles,
    corpus_tip_files,
    megabytes,
    table,
    workspace,
)

from repofeed.store import parsing
from repofeed.store.variants.rename import identifiers, rename
from repofeed.store.variants.scopes import ANALYSERS

LANGUAGES = {"python", *ANALYSERS}


def rename_all(language: str, texts: Sequence[str], names: list[str]):
    def work() -> None:
        for n, text in enumerate(texts):
            rename(text, language, seed=n, names=names)
    return work


def parse_only(language: str, texts: Sequence[str]):
    parser = parsing.parser(language)

    def work() -> None:
        for text in texts:
            parser.parse(text.encode("utf-8", "surrogatepass"))
    return work


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    add_corpus_option(parser)
    add_scratch_options(parser)
    args = parser.parse_args()

    bundles = corpus_bundles(args.corpus, args.bundles)
    with workspace(args.workdir, args.keep) as scratch:
        groups: dict[str, list[str]] = defaultdict(list)
        for f in corpus_tip_files(bundles, scratch):
            if f.language in LANGUAGES:
                groups[f.language].append(f.text)

    rows = []
    for language in sorted(groups):
        texts = groups[language]
        vocabulary: Counter[str] = Counter()
        for text in texts:
            vocabulary.update(identifiers(text, language))
        names = sorted(vocabulary)
        reasons = Counter(rename(t, language, seed=n, names=names).reason or "renamed"
                          for n, t in enumerate(texts))
        t_rename, t_parse = best_seconds(args.repeat, [rename_all(language, texts, names),
                                                       parse_only(language, texts)])
        mb = megabytes(texts)
        rows.append([language, len(texts), mb, len(texts) / t_rename, mb / t_rename,
                     mb / t_parse, t_rename / t_parse,
                     " ".join(f"{k}={v}" for k, v in sorted(reasons.items()))])
    print(table(["language", "files", "MB", "files/s", "rename MB/s", "parse MB/s",
                 "rename/parse", "outcomes"], rows))
    print("\nrename/parse: time to rename over the time of one tree-sitter parse of the same "
          "files; one thread each, same process.")


if __name__ == "__main__":
    main()
