"""Comment removal and reformatting variants per second per language, against tree-sitter's
parse of the same files in the same process.

The files are the text files at the tip of the corpus histories (``../shared/corpus``,
``common.tip_files``) that have a grammar, grouped by language. Measured, one file per call on
one thread, best of ``--repeat`` rounds run round-robin: ``decomment`` (its parses, the cuts,
the check of the variant), ``reformat`` with the formatters found on this machine (ruff for
Python, rustfmt, gofmt, clang-format, prettier where installed; each a process per file), and
``relayout`` (the tree-sitter layout change that ``reformat`` falls back to). The baseline is one
parse of each file (``parsing.parse``); the ratios are each transform's time over it. Also
printed: how many files got a variant, and the reasons of those that did not.

    python benchmarks/bench_variants_layout.py [--repeat 3] [--corpus DIR] [--bundles fd,ky]
"""

from __future__ import annotations

import argparse
from collections import Counter, defaultdict

from common import (
    add_corpus_option,
    add_scratch_options,
    best_seconds,
    corpus_bundles,
    corpus_tip_files,
    each,
    megabytes,
    table,
    workspace,
)

from repofeed.store import parsing
from repofeed.store.variants.comments import decomment
from repofeed.store.variants.reformat import formatter_commands, reformat, relayout

TIMEOUT_S = 10.0


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
            if f.language in parsing.GRAMMARS:
                groups[f.language].append(f.text)

    def transforms(language: str) -> dict[str, object]:
        return {
            "decomment": lambda t: decomment(t, language, seed=0, timeout_s=TIMEOUT_S),
            "reformat": lambda t: reformat(t, language, seed=0, timeout_s=TIMEOUT_S),
            "relayout": lambda t: relayout(t, language, seed=0, timeout_s=TIMEOUT_S),
        }

    rows = []
    reasons: dict[tuple[str, str], Counter[str]] = {}
    for language in sorted(groups):
        texts = groups[language]
        mb = megabytes(texts)
        funcs = transforms(language)
        for name, fn in funcs.items():  # warm, and count what each gives
            reasons[language, name] = Counter(fn(t).reason or "variant" for t in texts)

        def parse(text: str, language: str = language) -> object:
            return parsing.parse(text.encode("utf-8", "surrogatepass"), language, TIMEOUT_S)

        works = [each(parse, texts), *(each(fn, texts) for fn in funcs.values())]
        t_parse, *t_transforms = best_seconds(args.repeat, works)
        formatter = formatter_commands(language, 0)
        for (name, _), seconds in zip(funcs.items(), t_transforms):
            rows.append([language, name if name != "reformat" or formatter else
                         "reformat (no formatter)", len(texts), mb, len(texts) / seconds,
                         mb / seconds, seconds / t_parse, reasons[language, name]["variant"]])
    print(table(["language", "transform", "files", "MB", "files/s", "MB/s", "x parse",
                 "variants"], rows))
    print("\nx parse: the transform's time over one tree-sitter parse of the same files "
          "(one thread each, same process).\n\nfiles without a variant, by reason:")
    for (language, name), counts in sorted(reasons.items()):
        others = {k: v for k, v in counts.items() if k != "variant"}
        if others:
            print(f"  {language:<10} {name:<9} " + ", ".join(
                f"{k} {v}" for k, v in sorted(others.items())))


if __name__ == "__main__":
    main()
