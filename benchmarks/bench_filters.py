"""Filter measurements (``text_stats``) against tokenizing the same text, per language.

The quality stage of ingest should cost at most what tokenizing costs (issue 9). This
measures its first part: ``repofeed.store.filters.text_stats`` over every text file at the
tip of the ../shared/corpus histories (read as the ingest reads them, ``common.tip_files``),
grouped by the language the store gives them, against a SentencePiece BPE model trained the
way the store trains one (``common.train_sentencepiece``) encoding the same files with
``encode``, one thread, in the same process. Figures are MB/s of UTF-8 text, best of
``--repeat`` rounds run round-robin; the ratio is filters over tokenizing (above 1: the
filters are faster). Two synthetic rows show the bad inputs: a 10 MB minified JavaScript line
and a 10 MB base64 file. ``bench_quality.py`` puts every quality stage side by side.

    python benchmarks/bench_filters.py [--corpus DIR] [--bundles a,b] [--vocab 8000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import base64
import random
from collections import defaultdict
from collections.abc import Sequence

from common import (
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

from repofeed.store.filters import text_stats


def synthetic() -> dict[str, list[str]]:
    rng = random.Random(1)
    parts, length = [], 0
    while length < 10 << 20:
        a, b = rng.choice("abcdefgh"), rng.choice("ijklmnop")
        parts.append(f"function {a}{b}({a},{b}){{return {a}.map(function(x){{return x+{b}}})}};")
        length += len(parts[-1])
    return {"(10 MB minified line)": ["".join(parts)],
            "(10 MB base64)": [base64.encodebytes(rng.randbytes(7_500_000)).decode()]}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_corpus_option(parser)
    parser.add_argument("--vocab", type=int, default=8000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--min-files", type=int, default=5,
                        help="languages with fewer files are folded into 'other'")
    add_scratch_options(parser)
    args = parser.parse_args(argv)
    bundles = corpus_bundles(args.corpus, args.bundles)
    with workspace(args.workdir, args.keep) as scratch:
        files = corpus_tip_files(bundles, scratch)
    by_language: dict[str, list[str]] = defaultdict(list)
    for f in files:
        by_language[f.language].append(f.text)
    grouped: dict[str, list[str]] = defaultdict(list)
    for language, texts in by_language.items():
        grouped[language if len(texts) >= args.min_files else "other"].extend(texts)
    everything = [t for texts in grouped.values() for t in texts]
    tokenizer, result, seconds = train_sentencepiece(everything, args.vocab)
    print(f"{len(everything)} files, {megabytes(everything):.2f} MB; "
          f"SentencePiece BPE {result.vocab_size} pieces trained in {seconds:.1f} s")
    grouped["(all corpus files)"] = everything
    grouped.update(synthetic())
    rows = []
    for language, texts in sorted(grouped.items(), key=lambda kv: (kv[0][0] == "(", kv[0])):
        size = megabytes(texts)
        t_stats, t_encode = best_seconds(args.repeat, [each(text_stats, texts),
                                                       each(tokenizer.encode, texts)])
        rows.append([language, len(texts), round(size, 2), size / t_stats, size / t_encode,
                     t_encode / t_stats])
    print(table(["language", "files", "MB", "text_stats MB/s", "encode MB/s",
                 "ratio (stats/encode)"], rows))


if __name__ == "__main__":
    main()
