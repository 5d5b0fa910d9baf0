"""Stored variants per second, per language and transform, against tokenizing the same texts.

Issue 10 asks for variants per second per language. The texts are the code files at the tip
of the corpus histories (``../shared/corpus``), read as the ingest reads a snapshot
(``common.tip_files``), in the languages with a tree-sitter grammar; the vocabulary renaming
draws from is made from them as the daemon makes it (``daemon/variants.py``). Each recipe
(``rename``, ``decomment``, ``reformat`` and the default chain ``rename+decomment``) runs over
every text of a language once, in this process, one call per text, as a worker process of
the daemon runs them; the baseline is SentencePiece encoding the same texts, one text per
call, in the same process. Printed per language and recipe: files, variants made, the
reasons for none, variants per second and the time over tokenizing's.

    python benchmarks/bench_variants.py [--vocab-size 8000] [--corpus DIR] [--bundles a,b]
"""

from __future__ import annotations

import argparse
from collections import Counter, defaultdict

from common import (
    Timer,
    add_corpus_option,
    add_scratch_options,
    best_seconds,
    corpus_bundles,
    corpus_tip_files,
    each,
    megabytes,
    table,
    train_sentencepiece,
    workspace,
)

from repofeed.daemon.variants import identifier_counts, seed_of, vocabulary
from repofeed.store.config import DEFAULT_VARIANTS, Config
from repofeed.store.schema import content_key
from repofeed.store.variants import apply
from repofeed.store.variants.reformat import find_program
from repofeed.store.variants.stored import transformable


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--vocab-size", type=int, default=8000)
    add_corpus_option(parser)
    add_scratch_options(parser)
    args = parser.parse_args()
    bundles = corpus_bundles(args.corpus, args.bundles)
    with workspace(args.workdir, args.keep) as scratch:
        files = [f for f in corpus_tip_files(bundles, scratch)
                 if transformable(f.language) and f.text.strip()]
    timeout_s = Config().variant_timeout_ms / 1000
    tok, _, _ = train_sentencepiece([f.text for f in files], args.vocab_size)
    with Timer() as t:
        names = vocabulary(identifier_counts([(f.text, f.language) for f in files], timeout_s))
    print(f"{len(files)} code files, {megabytes([f.text for f in files]):.2f} MB; vocabulary "
          f"of {len(names)} identifiers made in {t.seconds:.2f} s")
    print("formatters found: " + ", ".join(
        f"{name} {'yes' if find_program(name) else 'no'}"
        for name in ("ruff", "rustfmt", "gofmt", "clang-format", "prettier")))
    by_language = defaultdict(list)
    for f in files:
        by_language[f.language].append(f)
    rows = []
    totals: dict[str, list[float]] = defaultdict(lambda: [0, 0, 0.0, 0.0])
    reasons_all: dict[str, Counter[str]] = defaultdict(Counter)
    for language, group in sorted(by_language.items()):
        texts = [f.text for f in group]
        encode = best_seconds(3, [each(tok.encode, texts)])[0]
        for recipe in DEFAULT_VARIANTS:
            made, reasons = 0, Counter()
            with Timer() as t:
                for f in group:
                    out = apply(recipe, f.text, language,
                                seed=seed_of(content_key(f.text), recipe), names=names,
                                timeout_s=timeout_s)
                    if out.text is None:
                        reasons[out.reason] += 1
                    else:
                        made += 1
            reasons_all[recipe].update(reasons)
            total = totals[recipe]
            total[0] += len(group)
            total[1] += made
            total[2] += t.seconds
            total[3] += encode
            rows.append([language, recipe, len(group), made, made / t.seconds,
                         len(group) / t.seconds, t.seconds / encode,
                         ", ".join(f"{r} {n}" for r, n in reasons.most_common()) or "-"])
    for recipe, (n, made, seconds, encode) in totals.items():
        rows.append(["all", recipe, int(n), int(made), made / seconds, n / seconds,
                     seconds / encode,
                     ", ".join(f"{r} {k}" for r, k in reasons_all[recipe].most_common()) or "-"])
    print(table(["language", "recipe", "files", "variants", "variants/s", "files/s",
                 "x tokenizing", "none, by reason"], rows))
    print("\nx tokenizing: the recipe's time over SentencePiece encoding the same texts "
          "(one thread, one text per call)")


if __name__ == "__main__":
    main()
