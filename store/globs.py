"""Path globs as users write them in configuration: the rules of ``.gitattributes``.

One syntax for every glob repofeed reads (weight rules, exclusions), the one git users
already know from ``.gitignore`` and ``.gitattributes``:

- A glob is matched against the path relative to the repository root, with ``/``,
  case-sensitively.
- ``*`` matches any characters but ``/``; ``?`` one character but ``/``; ``[abc]``, ``[a-z]``
  and ``[!abc]`` (or ``[^abc]``) one character of a set; ``\\`` makes the next character
  literal.
- ``**`` as a whole component matches any number of directories, none included:
  ``**/test_*.py``, ``src/**/gen/*.rs``, ``docs/**``. Elsewhere (``foo**``) it is an error.
- A glob without ``/`` matches a name at any depth: ``*.md`` is every Markdown file,
  ``fixtures`` every file under any directory called ``fixtures``. A glob with a ``/``
  (other than a trailing one) is anchored at the root: ``src/*.py`` matches ``src/a.py``,
  neither ``src/x/a.py`` nor ``lib/src/a.py``; a leading ``/`` anchors a glob without
  another ``/`` (``/setup.py``).
- A glob that names a directory covers everything below it (``src/gen`` covers
  ``src/gen/x.py``); a trailing ``/`` matches directories only (``build/``).
- No ``!`` negation: rules are ordered and the first match wins, which says the same thing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .errors import ConfigError


class GlobError(ConfigError):
    """A glob that cannot be read; the message names it and what is wrong."""


def _fail(pattern: str, why: str) -> GlobError:
    return GlobError(f"bad glob {pattern!r}: {why}")


def _component(pattern: str, part: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(part):
        ch = part[i]
        if ch == "*":
            if part.startswith("**", i):
                raise _fail(pattern, "'**' must be a whole path component "
                                     "(like 'src/**/x.py'); use '*' within a name")
            out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch == "\\":
            if i + 1 == len(part):
                raise _fail(pattern, "it ends with a lone '\\'")
            i += 1
            out.append(re.escape(part[i]))
        elif ch == "[":
            end = part.find("]", i + 2)  # a ']' right after '[' (or '[!') is literal
            if part.startswith(("[!", "[^"), i):
                end = part.find("]", i + 3)
            if end < 0:
                raise _fail(pattern, "a '[' has no closing ']'")
            body = part[i + 1:end]
            negate = body[:1] in ("!", "^")
            if negate:
                body = body[1:]
            body = body.replace("\\", "\\\\").replace("[", "\\[")
            out.append(("[^/" if negate else "[") + body + "]")
            i = end
        else:
            out.append(re.escape(ch))
        i += 1
    return "".join(out)


def glob_regex(pattern: str) -> str:
    """The regular expression (for ``re.fullmatch``) of ``pattern``; raises ``GlobError``."""
    if not isinstance(pattern, str) or not pattern.strip():
        raise _fail(str(pattern), "a glob must be a non-empty string")
    if pattern.startswith("!"):
        raise _fail(pattern, "'!' negation is not supported: put a rule for the exception "
                             "before the general one (the first match wins)")
    body = pattern
    dir_only = body.endswith("/")
    body = body.rstrip("/")
    anchored = body.startswith("/") or "/" in body
    body = body.lstrip("/")
    if not body:
        raise _fail(pattern, "it names no path")
    parts = body.split("/")
    if "" in parts:
        raise _fail(pattern, "it has an empty path component ('//')")
    regex = "" if anchored else "(?:[^/]+/)*"
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if part == "**":
            regex += ".*" if last else "(?:[^/]+/)*"
            continue
        regex += _component(pattern, part) + ("" if last else "/")
    if parts[-1] != "**":
        regex += "/.+" if dir_only else "(?:/.+)?"
    try:
        re.compile(regex)
    except re.error as exc:
        raise _fail(pattern, f"it cannot be read ({exc})") from None
    return regex


@dataclass(frozen=True)
class Glob:
    """A compiled glob: ``Glob("src/**/*.rs").matches("src/a/b.rs")``."""

    pattern: str
    _regex: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_regex", re.compile(glob_regex(self.pattern)))

    def matches(self, path: str) -> bool:
        return self._regex.fullmatch(path) is not None
