"""What part of a repository a path belongs to: core code, tests, docs, configuration, other.

Evaluation breaks its results down by these classes, and sampling weights are set per class
(issue 9: core code such as ``src/``, ``lib/``, ``crates/*/src`` or a path with a ``core``
part; tests and specs; docs and configuration such as ``.md``, ``.txt``, ``.json``,
``.yaml``, ``.toml``; the rest). One table of rules, first match wins, so a test under
``src/`` is a test and a README under ``core/`` is documentation. Matching ignores case.
"""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import PurePosixPath

CLASSES = ("core", "test", "docs", "config", "other")


@dataclass(frozen=True)
class Rule:
    """``kind`` says what ``patterns`` are matched against: ``dir`` any directory of the path,
    ``name`` the file name (globs), ``ext`` the file's last suffix, ``part`` any component
    (a directory, or the file name without its suffixes)."""

    cls: str
    kind: str
    patterns: frozenset[str]


def _rule(cls: str, kind: str, *patterns: str) -> Rule:
    return Rule(cls, kind, frozenset(patterns))


RULES: tuple[Rule, ...] = (
    _rule("test", "dir", "test", "tests", "testing", "spec", "specs", "__tests__",
          "testdata", "test_data", "e2e"),
    _rule("test", "name", "test_*", "*_test.*", "*_tests.*", "*_spec.*", "*.test.*",
          "*.spec.*", "conftest.py", "tests.rs"),
    # configuration known by name, before the docs' .txt (CMakeLists.txt, requirements.txt)
    _rule("config", "name", "makefile", "gnumakefile", "dockerfile", "*.dockerfile",
          "cmakelists.txt", "requirements*.txt", "go.mod", "go.sum", "cargo.lock",
          "*.lock", "package-lock.json", ".gitignore", ".gitattributes", ".dockerignore",
          ".editorconfig", "build.gradle", "pom.xml",
          "justfile", "procfile", "vagrantfile", "meson.build", "build.bazel", "workspace",
          "setup.py"),
    _rule("docs", "dir", "docs", "doc", "documentation", "man"),
    # a bare name (README, LICENSE, NEWS) or with a text suffix: history.py stays code
    _rule("docs", "name", "readme", "readme.*", "license", "license-*", "licence", "copying",
          "changelog", "changes", "news", "authors", "contributors", "contributing",
          "notice", "code_of_conduct", "security", "history", "install"),
    _rule("docs", "ext", ".md", ".markdown", ".rst", ".txt", ".adoc", ".asciidoc", ".tex",
          ".org", ".pod", ".rdoc", ".texi"),
    _rule("config", "dir", ".github", ".gitlab", ".circleci", ".devcontainer", ".vscode",
          ".cargo", "ci"),
    _rule("config", "ext", ".json", ".jsonc", ".yaml", ".yml", ".toml", ".ini", ".cfg",
          ".conf", ".xml", ".properties", ".plist", ".env", ".gradle", ".cmake", ".mk",
          ".bazel", ".bzl", ".nix", ".lock", ".csproj", ".sln"),
    _rule("core", "dir", "src", "lib"),
    _rule("core", "part", "core"),
)


def _matches(rule: Rule, dirs: tuple[str, ...], name: str, suffix: str, stem: str) -> bool:
    if rule.kind == "dir":
        return any(d in rule.patterns for d in dirs)
    if rule.kind == "name":
        return any(fnmatchcase(name, p) for p in rule.patterns)
    if rule.kind == "ext":
        return suffix in rule.patterns
    if rule.kind == "part":
        return stem in rule.patterns or any(d in rule.patterns for d in dirs)
    raise ValueError(f"unknown rule kind {rule.kind!r}")


def path_class(path: str) -> str:
    """``core``, ``test``, ``docs``, ``config`` or ``other``: the first rule of ``RULES``
    that matches ``path`` (relative, with ``/``)."""
    p = PurePosixPath(path.lower())
    dirs, name = p.parts[:-1], p.name
    stem = name.split(".", 1)[0] if not name.startswith(".") else name
    for rule in RULES:
        if _matches(rule, dirs, name, p.suffix, stem):
            return rule.cls
    return "other"
