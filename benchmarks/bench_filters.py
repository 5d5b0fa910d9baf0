"""Filter measurements (``text_stats``) against tokenizing the same text, per language.

The quality stage of ingest should cost at most what tokenizing costs (issue 9). This
measures its first part: ``repofeed.store.filters.text_stats`` over every text file at the
tip of the ../shared/corpus histories, grouped by language, against a SentencePiece BPE model
trained the way the store trains one (``train_tokenizer``, code options) encoding the same
files with ``encode``, one thread, in the same process. Figures are MB/s of UTF-8 text, best
of ``--repeat`` rounds; the ratio is filters over tokenizing (above 1: the filters are
faster). Two synthetic rows show the bad inputs: a 10 MB minified JavaScript line and a 10 MB
base64 file.

    python benchmarks/bench_filters.py [--corpus ../shared/corpus] [--vocab 8000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import base64
import random
import subprocess
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path

from common import PROJECT, Timer, add_scratch_options, table, workspace

from repofeed.store.filters import text_stats
from repofeed.store.languages import language_of
from repofeed.store.tokenizer.sentencepiece import SentencePieceTokenizer, train_tokenizer


def corpus_texts(corpus: Path, scratch: Path) -> dict[str, list[str]]:
    """Every UTF-8 text file at the tip of every bundle in ``corpus``, by language."""
    texts: dict[str, list[str]] = defaultdict(list)
    for bundle in sorted(corpus.glob("*.bundle")):
        repo = scratch / bundle.stem
        subprocess.run(["git", "clone", "-q", str(bundle), str(repo)], check=True)
        listed = subprocess.run(["git", "ls-files", "-z"], cwd=repo, check=True,
                                capture_output=True).stdout.decode().split("\0")
        for path in filter(None, listed):
            try:
                text = (repo / path).read_bytes().decode("utf-8")
            except (UnicodeDecodeError, IsADirectoryError):
                continue
            if text and "\0" not in text:
                texts[language_of(path)].append(text)
    return texts


def rate(work: Callable[[str], object], texts: Sequence[str], repeat: int) -> float:
    """Best MB/s of ``work`` over ``texts`` in ``repeat`` rounds."""
    size = sum(len(t.encode("utf-8")) for t in texts)
    best = float("inf")
    for _ in range(repeat):
        with Timer() as timer:
            for text in texts:
                work(text)
        best = min(best, timer.seconds)
    return size / 1e6 / best


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
    parser.add_argument("--corpus", type=Path, default=PROJECT.parent / "shared" / "corpus")
    parser.add_argument("--vocab", type=int, default=8000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--min-files", type=int, default=5,
                        help="languages with fewer files are folded into 'other'")
    add_scratch_options(parser)
    args = parser.parse_args(argv)
    if not any(args.corpus.glob("*.bundle")):
        parser.error(f"no *.bundle in {args.corpus}: pass --corpus")
    with workspace(args.workdir, args.keep) as scratch:
        by_language = corpus_texts(args.corpus, scratch)
    grouped: dict[str, list[str]] = defaultdict(list)
    for language, texts in by_language.items():
        grouped[language if len(texts) >= args.min_files else "other"].extend(texts)
    everything = [t for texts in grouped.values() for t in texts]
    with Timer() as trained:
        result = train_tokenizer(everything, args.vocab)
    tokenizer = SentencePieceTokenizer(result.model, spliceable=True)
    print(f"{len(everything)} files, {sum(len(t.encode()) for t in everything) / 1e6:.2f} MB; "
          f"SentencePiece BPE {result.vocab_size} pieces trained in {trained.seconds:.1f} s")
    grouped["(all corpus files)"] = everything
    grouped.update(synthetic())
    rows = []
    for language, texts in sorted(grouped.items(), key=lambda kv: (kv[0][0] == "(", kv[0])):
        size = sum(len(t.encode()) for t in texts) / 1e6
        stats_rate = rate(text_stats, texts, args.repeat)
        encode_rate = rate(tokenizer.encode, texts, max(1, args.repeat - 1))
        rows.append([language, len(texts), round(size, 2), stats_rate, encode_rate,
                     stats_rate / encode_rate])
    print(table(["language", "files", "MB", "text_stats MB/s", "encode MB/s",
                 "ratio (stats/encode)"], rows))


if __name__ == "__main__":
    main()
