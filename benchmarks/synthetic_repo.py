"""A deterministic synthetic git history for the benchmarks, written with `git fast-import`.

The tree is Python- and Rust-like source: files of ``min_lines``–``max_lines`` lines made of
functions with bodies of ordinary statements. After one initial commit that adds ``files``
files, every commit edits a few lines (replace, insert, delete) in 1–5 files; about one commit
in twenty adds a file, one in forty deletes one and one in thirty renames one (with a small
edit, so that git still sees a rename). Identities and dates are pinned, so the same
arguments give the same commit ids on every machine.

Run it alone to make a repository to look at or to point other tools at:

    python benchmarks/synthetic_repo.py /tmp/synth --commits 2000
"""

from __future__ import annotations

import argparse
import random
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

EPOCH = 1_700_000_000
AUTHORS = ("Ada Lovelace <ada@example.com>", "Grace Hopper <grace@example.com>",
           "Linus Torvalds <linus@example.com>", "Barbara Liskov <barbara@example.com>")

WORDS = (
    "account batch buffer cache channel chunk client commit config context cursor data delta "
    "digest document entry event file filter frame graph handle hash header index item key "
    "layer limit line lock log manifest map message meta node offset order packet page parser "
    "path payload queue range reader record ref region request result retry route row schema "
    "scope segment session shard signal slot snapshot source span state status store stream "
    "table task token tree user value version view window worker writer"
).split()
VERBS = ("build check collect compute decode emit encode fetch flush load merge parse read "
         "refresh resolve scan send split store sync update validate write").split()

# A "simple statement" is a line an edit may replace or delete without unbalancing blocks.
_SIMPLE = re.compile(r"^\s+[^\s#/].*[^:{]$")


def _ident(rng: random.Random, parts: int = 2) -> str:
    return "_".join(rng.choice(WORDS) for _ in range(parts))


def _camel(rng: random.Random) -> str:
    return "".join(rng.choice(WORDS).capitalize() for _ in range(2))


def _call(rng: random.Random) -> str:
    return f"{rng.choice(VERBS)}_{rng.choice(WORDS)}"


class _Python:
    suffix = ".py"

    @staticmethod
    def header(rng: random.Random) -> list[str]:
        mods = sorted({rng.choice(WORDS) for _ in range(rng.randint(2, 5))})
        lines = [f'"""{rng.choice(VERBS).capitalize()} the {_ident(rng, 1)} '
                 f'{_ident(rng, 1)}s of a {_ident(rng, 1)}."""', "",
                 "from __future__ import annotations", "", "import logging"]
        lines += [f"from .{m} import {_camel(rng)}, {_call(rng)}" for m in mods]
        return lines + ["", "logger = logging.getLogger(__name__)", ""]

    @staticmethod
    def statement(rng: random.Random, indent: str) -> str:
        a, b = _ident(rng), _ident(rng)
        n = rng.randint(0, 4096)
        forms = (
            f"{a} = {_call(rng)}({b}, {n})",
            f"{a} += {n}",
            f"# {rng.choice(VERBS)} the {rng.choice(WORDS)} before the {rng.choice(WORDS)}",
            f"{a}.append({b})",
            f'logger.debug("{rng.choice(VERBS)} {rng.choice(WORDS)} %s", {a})',
            f'{a}["{rng.choice(WORDS)}"] = {b} * {n}',
            f"{a} = [{b} for {b} in {_ident(rng)} if {b} is not None]",
            f"self.{a} = {b}.{_call(rng)}()",
        )
        return indent + rng.choice(forms)

    @classmethod
    def function(cls, rng: random.Random, body: int) -> list[str]:
        args = ", ".join(_ident(rng) for _ in range(rng.randint(1, 3)))
        lines = [f"def {_call(rng)}_{rng.choice(WORDS)}({args}):"]
        for _ in range(body):
            if rng.random() < 0.12:
                lines.append(f"    if {_ident(rng)} > {rng.randint(0, 64)}:")
                lines.append(cls.statement(rng, " " * 8))
            else:
                lines.append(cls.statement(rng, " " * 4))
        return lines + [f"    return {_ident(rng)}", "", ""]


class _Rust:
    suffix = ".rs"

    @staticmethod
    def header(rng: random.Random) -> list[str]:
        mods = sorted({rng.choice(WORDS) for _ in range(rng.randint(2, 5))})
        lines = [f"//! {rng.choice(VERBS).capitalize()} the {rng.choice(WORDS)}s of a "
                 f"{rng.choice(WORDS)}.", "", "use std::collections::HashMap;"]
        lines += [f"use crate::{m}::{{{_camel(rng)}, {_call(rng)}}};" for m in mods]
        return lines + [""]

    @staticmethod
    def statement(rng: random.Random, indent: str) -> str:
        a, b = _ident(rng), _ident(rng)
        n = rng.randint(0, 4096)
        forms = (
            f"let {a} = {_call(rng)}(&{b}, {n});",
            f"{a} += {n};",
            f"// {rng.choice(VERBS)} the {rng.choice(WORDS)} before the {rng.choice(WORDS)}",
            f"{a}.push({b}.clone());",
            f'debug!("{rng.choice(VERBS)} {rng.choice(WORDS)} {{}}", {a});',
            f'{a}.insert("{rng.choice(WORDS)}".to_string(), {b} * {n});',
            f"let {a}: Vec<_> = {b}.iter().filter(|x| x.is_some()).collect();",
            f"self.{a} = {b}.{_call(rng)}()?;",
        )
        return indent + rng.choice(forms)

    @classmethod
    def function(cls, rng: random.Random, body: int) -> list[str]:
        args = ", ".join(f"{_ident(rng)}: &{_camel(rng)}" for _ in range(rng.randint(1, 3)))
        lines = [f"pub fn {_call(rng)}_{rng.choice(WORDS)}({args}) -> Result<usize> {{"]
        for _ in range(body):
            if rng.random() < 0.12:
                lines.append(f"    if {_ident(rng)} > {rng.randint(0, 64)} {{")
                lines.append(cls.statement(rng, " " * 8))
                lines.append("    }")
            else:
                lines.append(cls.statement(rng, " " * 4))
        return lines + [f"    Ok({_ident(rng)})", "}", ""]


def new_file(rng: random.Random, lang: type, min_lines: int, max_lines: int) -> list[str]:
    target = rng.randint(min_lines, max_lines)
    lines = lang.header(rng)
    while len(lines) < target:
        lines += lang.function(rng, rng.randint(4, 24))
    return lines


def edit_lines(rng: random.Random, lang: type, lines: list[str]) -> list[str]:
    """A few line edits: replace, insert after, or delete simple statements."""
    lines = list(lines)
    for _ in range(rng.randint(1, 6)):
        simple = [i for i, line in enumerate(lines) if _SIMPLE.match(line)]
        if not simple:
            lines.append(lang.statement(rng, "    "))
            continue
        i = rng.choice(simple)
        indent = lines[i][: len(lines[i]) - len(lines[i].lstrip())]
        kind = rng.random()
        if kind < 0.55:
            lines[i] = lang.statement(rng, indent)
        elif kind < 0.85 or len(simple) < 8:
            lines.insert(i + 1, lang.statement(rng, indent))
        else:
            del lines[i]
    return lines


@dataclass
class _Tree:
    files: dict[str, list[str]]
    serial: int = 0
    fanout: int | None = None  # about this many files a directory; None: 24 directories

    def fresh_path(self, rng: random.Random) -> tuple[str, type]:
        lang = _Python if rng.random() < 0.6 else _Rust
        self.serial += 1
        top = "src" if lang is _Rust else "pkg"
        sub = rng.choice(WORDS[:12])
        if self.fanout:  # one more level: groups of directories that fill up in turn
            sub = f"{sub}/part{self.serial // (self.fanout * 24)}"
        return f"{top}/{sub}/{rng.choice(WORDS)}_{self.serial}{lang.suffix}", lang


def _lang_of(path: str) -> type:
    return _Rust if path.endswith(".rs") else _Python


def _message(rng: random.Random, verb: str, path: str) -> str:
    stem = Path(path).stem
    subject = f"{verb} {rng.choice(WORDS)} {rng.choice(VERBS)} in {stem}"
    if rng.random() < 0.3:
        body = " ".join(rng.choice(WORDS + VERBS) for _ in range(rng.randint(8, 40)))
        return f"{subject}\n\n{body}\n"
    return subject + "\n"


def _data(text: str) -> bytes:
    raw = text.encode("utf-8")
    return b"data %d\n%s\n" % (len(raw), raw)


def _content(lines: list[str]) -> str:
    return "\n".join(lines) + "\n"


def fast_import_stream(commits: int, files: int, seed: int, min_lines: int = 50,
                       max_lines: int = 400, branch: str = "main", fanout: int | None = None):
    """Yield the fast-import stream, one commit at a time (bytes)."""
    rng = random.Random(seed)
    tree = _Tree({}, fanout=fanout)
    when = EPOCH
    for n in range(commits):
        ops: list[bytes] = []
        if n == 0:
            for _ in range(files):
                path, lang = tree.fresh_path(rng)
                tree.files[path] = new_file(rng, lang, min_lines, max_lines)
                ops.append(b"M 100644 inline %s\n" % path.encode() + _data(
                    _content(tree.files[path])))
            message = f"Initial import of {files} files\n"
        else:
            message = _evolve(rng, tree, ops, min_lines, max_lines)
        when += rng.randint(60, 7200)
        author = rng.choice(AUTHORS)
        head = (f"commit refs/heads/{branch}\nmark :{n + 1}\n"
                f"author {author} {when} +0000\ncommitter {author} {when} +0000\n").encode()
        yield head + _data(message) + b"".join(ops) + b"\n"


def _evolve(rng: random.Random, tree: _Tree, ops: list[bytes], min_lines: int,
            max_lines: int) -> str:
    roll = rng.random()
    paths = sorted(tree.files)
    if roll < 0.05 or len(paths) < 10:
        path, lang = tree.fresh_path(rng)
        tree.files[path] = new_file(rng, lang, min_lines, max_lines)
        ops.append(b"M 100644 inline %s\n" % path.encode() + _data(_content(tree.files[path])))
        return _message(rng, "Add", path)
    if roll < 0.075:
        path = rng.choice(paths)
        del tree.files[path]
        ops.append(b"D %s\n" % path.encode())
        return _message(rng, "Remove", path)
    if roll < 0.108:
        old = rng.choice(paths)
        new, _ = tree.fresh_path(rng)
        new = str(Path(new).with_suffix(Path(old).suffix))
        lines = edit_lines(rng, _lang_of(old), tree.files.pop(old))
        tree.files[new] = lines
        ops.append(b"D %s\n" % old.encode())
        ops.append(b"M 100644 inline %s\n" % new.encode() + _data(_content(lines)))
        return _message(rng, "Move", new)
    touched = rng.sample(paths, rng.randint(1, 5))
    for path in touched:
        tree.files[path] = edit_lines(rng, _lang_of(path), tree.files[path])
        ops.append(b"M 100644 inline %s\n" % path.encode() + _data(_content(tree.files[path])))
    verb = rng.choice(("Fix", "Refactor", "Tune", "Handle", "Simplify", "Update"))
    return _message(rng, verb, touched[0])


def make_repo(path: Path, commits: int = 2000, files: int = 200, seed: int = 1,
              min_lines: int = 50, max_lines: int = 400, fanout: int | None = None) -> Path:
    """Create a non-bare repository at ``path`` holding the synthetic history, checked out."""
    path.mkdir(parents=True, exist_ok=True)

    def git(*args: str, **kw) -> subprocess.CompletedProcess:
        return subprocess.run(["git", *args], cwd=path, check=True, capture_output=True, **kw)

    git("init", "-q", "-b", "main")
    git("config", "gc.auto", "0")
    proc = subprocess.Popen(["git", "fast-import", "--quiet"], cwd=path,
                            stdin=subprocess.PIPE, stderr=subprocess.PIPE)
    for chunk in fast_import_stream(commits, files, seed, min_lines, max_lines, fanout=fanout):
        proc.stdin.write(chunk)
    proc.stdin.close()
    if proc.wait() != 0:
        raise RuntimeError(f"git fast-import failed: {proc.stderr.read().decode()}")
    git("reset", "-q", "--hard")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("path", type=Path, help="directory to create the repository in")
    parser.add_argument("--commits", type=int, default=2000)
    parser.add_argument("--files", type=int, default=200, help="files in the first commit")
    parser.add_argument("--min-lines", type=int, default=50)
    parser.add_argument("--max-lines", type=int, default=400)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    make_repo(args.path, args.commits, args.files, args.seed, args.min_lines, args.max_lines)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=args.path, capture_output=True,
                          text=True, check=True).stdout.strip()
    print(f"{args.path}: {args.commits} commits, head {head}")


if __name__ == "__main__":
    main()
