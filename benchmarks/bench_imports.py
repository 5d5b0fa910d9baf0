"""Import graphs and context documents over the corpus tips: what reading imports costs
against tree-sitter's parse alone of the same files in the same process, what resolving a
whole snapshot and building every context document cost, and how many edges result.

The files are the text files at the tip of each corpus history (``../shared/corpus``, read
as the ingest reads them, ``common.tip_files``). Per history: MB/s of ``imports_of`` (parse,
query, records) and of the bare parse; the ratio imports/parse (1.0 = reading imports costs
nothing beyond the parse); the time to resolve every file through one ``Resolver`` (an
index of the snapshot's paths, rebuilt per snapshot); the time to build every file's context
document cut to ``--budget`` characters; files with edges, edges, documents made. Best of
``--repeat`` rounds run round-robin.

    python benchmarks/bench_imports.py [--repeat 3] [--budget 16000] [--corpus DIR]
"""

from __future__ import annotations

import argparse

from common import (
    add_corpus_option,
    add_scratch_options,
    best_seconds,
    clone_bundle,
    corpus_bundles,
    megabytes,
    table,
    tip_files,
    workspace,
)

from repofeed.store import parsing
from repofeed.store.context import context_document, reverse
from repofeed.store.imports import LANGUAGES, imports_of
from repofeed.store.resolvers import Resolver


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--budget", type=int, default=16_000,
                        help="context document budget in characters")
    add_corpus_option(parser)
    add_scratch_options(parser)
    args = parser.parse_args()

    rows = []
    with workspace(args.workdir, args.keep) as scratch:
        for bundle in corpus_bundles(args.corpus, args.bundles):
            files = tip_files(clone_bundle(bundle, scratch))
            texts = {f.path: f.text for f in files}
            code = [f for f in files if f.language in LANGUAGES]
            mb = megabytes([f.text for f in code])
            found = {f.path: imports_of(f.path, f.text, f.language, 60) for f in code}

            def read_imports(code=code) -> None:
                for f in code:
                    imports_of(f.path, f.text, f.language, 60)

            def parse_only(code=code) -> None:
                for f in code:
                    parsing.parse(f.text.encode("utf-8"), f.language, 60)

            graph: dict[str, list[str]] = {}

            def resolve_all(texts=texts, found=found, graph=graph) -> None:
                resolver = Resolver(texts, texts.get)
                graph.clear()
                graph.update({p: resolver.resolve(p, i) for p, i in found.items()})

            made: list[int] = []

            def documents(texts=texts, graph=graph, made=made) -> None:
                made[:] = [sum(context_document(t, graph, texts, args.budget) is not None
                               for t in graph)]

            resolve_all()
            t_imports, t_parse, t_resolve, t_docs = best_seconds(
                args.repeat, [read_imports, parse_only, resolve_all, documents])
            edges = sum(len(d) for d in graph.values())
            rows.append([bundle.stem, len(code), mb, mb / t_imports, mb / t_parse,
                         t_imports / t_parse, t_resolve * 1e3, t_docs * 1e3,
                         sum(1 for d in graph.values() if d), edges, made[0],
                         len(reverse(graph))])
    print(table(["history", "code files", "MB", "imports MB/s", "parse MB/s", "imports/parse",
                 "resolve ms", "documents ms", "files w/ edges", "edges", "documents",
                 "imported"], rows))
    print("\nimports/parse: reading imports over parsing alone, same files, same process "
          "(1.0 = free beyond the parse). resolve: every file through one Resolver; "
          f"documents: every file's context document cut to {args.budget} characters.")


if __name__ == "__main__":
    main()
