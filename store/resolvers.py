"""Which repository files an :class:`~repofeed.store.imports.Import` names: the rules per
language, over an index of one snapshot's paths.

Only files of the snapshot count: the standard library, registry packages and gitignored
files are not in it, so imports of them resolve to nothing. Where a rule finds several
candidates (two source roots holding ``a/b/C.java``), the one nearest the importing file
wins (most leading directories in common, then the shorter path, then the path).

- **Python**: ``from .x import y`` (``level`` dots) from the importing file's package,
  ``..`` one package up. An absolute ``a.b`` is looked for under the importing file's own
  root (the first directory above it that is not a package, so scripts and test folders find
  their siblings), the repository root, ``src/`` and ``lib/``, then any root where ``a`` is a
  package (``a/__init__.py``). A module is ``a/b.py`` or ``a/b/__init__.py`` (their ``.pyi``
  stubs where there is no ``.py``, and first for a stub);
  the longest prefix of the dotted name that is one counts (``import a.b.c`` where ``c`` is a
  function of ``a/b.py``). In ``from m import x, y`` each name that is a submodule
  (``m/x.py``) counts, and ``m`` itself where some name is not one (or for ``*``).
- **Rust**: ``mod foo;`` is ``foo.rs`` or ``foo/mod.rs`` in the declaring module's
  directory (the file's own directory for ``mod.rs``, ``lib.rs``, ``main.rs`` and other
  crate roots, else ``dir/stem/``; inside inline modules, their names below it;
  ``#[path]`` relative to the file's directory). ``use crate::a::b::C`` walks modules down
  from the crate's root directory (the nearest one above holding ``lib.rs`` or ``main.rs``)
  and names the deepest module file it reaches (``a/b.rs``): ``C`` is an item in it; with no
  module reached, the root file (``lib.rs``). ``self::`` starts at the current module,
  each ``super::`` one module up, a first segment that is a child module of the current one
  (``mod cli; use cli::Opts;``) starts there, one that names a workspace crate (``name`` in
  a ``Cargo.toml`` under ``[package]``, where ``read`` is given) starts at its root.
- **JavaScript, TypeScript**: relative specifiers (``./``, ``../``): the path itself, then
  with ``.ts .tsx .d.ts .js .jsx .mjs .cjs .mts .cts .json``, then ``/index`` with those;
  ``./x.js`` also finds ``x.ts`` (TypeScript's ESM convention). A bare specifier goes
  through the ``paths`` and ``baseUrl`` of the nearest ``tsconfig.json`` or
  ``jsconfig.json`` above the file (where ``read`` is given; ``extends`` is not followed),
  else it is a package (external).
- **Go**: the module path comes from the ``go.mod`` nearest the repository root whose
  ``module`` line prefixes the import path (read through ``read``); the package is every
  ``.go`` file not ending in ``_test.go`` in the directory below it, or under ``vendor/``.
  Without ``read``, an import path whose first element holds a dot (not the standard
  library) matches the directory with the longest equal suffix.
- **Java**: ``import a.b.C;`` is a file ending in ``a/b/C.java`` under any source root
  (``import a.b.C.Inner;`` and ``import static a.b.C.m;`` fall back to ``a/b/C.java``);
  ``import a.b.*;`` is every ``.java`` file of a directory ending in ``a/b``.
- **C, C++**: ``#include "x.h"`` relative to the including file's directory, then to the
  include roots (the repository root, ``include/``, ``src/``), then any file whose path ends
  in ``/x.h`` (an include directory set by the build); ``#include <x.h>`` the same without
  the first step, so it resolves only where a repository file matches.
"""

from __future__ import annotations

import json
import posixpath
import re
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Sequence
from functools import cached_property
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from repofeed.store.imports import Import

Read = Callable[[str], "str | None"]

_JS_EXTENSIONS = (".ts", ".tsx", ".d.ts", ".js", ".jsx", ".mjs", ".cjs", ".mts", ".cts",
                  ".json")
_JS_COMPILED = {".js": (".ts", ".tsx"), ".jsx": (".tsx",), ".mjs": (".mts",),
                ".cjs": (".cts",)}
_C_ROOTS = ("", "include", "src")
_PY_ROOTS = ("", "src", "lib")
_RUST_MOD_FILES = frozenset({"mod.rs", "lib.rs", "main.rs"})
_RUST_ROOT_DIRS = frozenset({"tests", "examples", "benches"})
_GO_MODULE = re.compile(r"^\s*module\s+\"?([^\s\"/]+[^\s\"]*)\"?", re.MULTILINE)
_CARGO_SECTION = re.compile(r"^\s*\[([^\]]+)\]", re.MULTILINE)
_CARGO_NAME = re.compile(r"^\s*name\s*=\s*[\"']([^\"']+)[\"']", re.MULTILINE)


def _dir(path: str) -> str:
    return posixpath.dirname(path)


def _join(*parts: str) -> str:
    return "/".join(p for p in parts if p)


def _normal(path: str) -> str | None:
    """``path`` without ``.`` and ``..`` steps, or None where it leaves the repository."""
    joined = posixpath.normpath(path) if path else ""
    if joined in {".", ""}:
        return ""
    if joined.startswith("../") or joined == ".." or joined.startswith("/"):
        return None
    return joined


def _common(a: str, b: str) -> int:
    """How many leading directories the directories ``a`` and ``b`` share."""
    count = 0
    for x, y in zip(a.split("/"), b.split("/"), strict=False):
        if x != y or not x:
            break
        count += 1
    return count


def _nearest(path: str, candidates: Iterable[str], dirs: bool = False) -> str | None:
    """The candidate (a file, or a directory where ``dirs``) nearest ``path``: most leading
    directories in common, then the shortest, then the first by path."""
    here = _dir(path)
    return min(candidates, key=lambda c: (-_common(here, c if dirs else _dir(c)), len(c), c),
               default=None)


class Resolver:
    """The rules of this module over one snapshot's paths (``files``), indexed once, so
    that resolving every file of a snapshot costs little more than reading its imports.
    ``read`` gives a file's text where a rule needs one (``go.mod``, ``Cargo.toml``)."""

    def __init__(self, files: Collection[str], read: Read | None = None):
        self.files = frozenset(files)
        self.read = read
        self.dirs: dict[str, list[str]] = defaultdict(list)
        self.by_name: dict[str, list[str]] = defaultdict(list)
        for path in sorted(self.files):
            self.dirs[_dir(path)].append(path)
            self.by_name[posixpath.basename(path)].append(path)
        self.dir_names: dict[str, list[str]] = defaultdict(list)
        for directory in list(self.dirs):
            while directory:  # every ancestor is a directory too, holding files or not
                self.dir_names[posixpath.basename(directory)].append(directory)
                directory = _dir(directory)
        for name, found in self.dir_names.items():
            self.dir_names[name] = sorted(set(found))

    def resolve(self, path: str, imports: Sequence[Import]) -> list[str]:
        """The files ``imports`` (``path``'s) refer to: deduplicated, in order of first
        mention, never ``path`` itself."""
        found: dict[str, None] = {}
        for imp in imports:
            rule = _RULES.get(imp.kind)
            if rule is None:
                continue
            for target in rule(self, path, imp):
                if target != path and target in self.files:
                    found.setdefault(target)
        return list(found)

    # ---- Python ----

    def _py_module(self, root: str, parts: Sequence[str], stub: bool) -> str | None:
        """The file of module ``parts`` under ``root`` (its stub first, for a stub)."""
        base = _join(root, *parts)
        extensions = (".pyi", ".py") if stub else (".py", ".pyi")
        for candidate in ([base + e for e in extensions]
                          + [base + "/__init__" + e for e in extensions]):
            if candidate in self.files:
                return candidate
        return None

    def _py_longest(self, root: str, parts: Sequence[str], stub: bool) -> str | None:
        for end in range(len(parts), 0, -1):
            found = self._py_module(root, parts[:end], stub)
            if found is not None:
                return found
        return None

    def _py_is_package(self, directory: str) -> bool:
        return (directory + "/__init__.py" in self.files
                or directory + "/__init__.pyi" in self.files)

    def _py_own_root(self, path: str) -> str:
        directory = _dir(path)
        while directory and self._py_is_package(directory):
            directory = _dir(directory)
        return directory

    @cached_property
    def _py_package_roots(self) -> dict[str, list[str]]:
        """Top-level package name -> the roots holding it (``src`` for ``src/a/``)."""
        roots: dict[str, set[str]] = defaultdict(set)
        for path in self.files:
            if posixpath.basename(path) in {"__init__.py", "__init__.pyi"}:
                package = _dir(path)
                root = _dir(package)
                if package and not self._py_is_package(root):
                    roots[posixpath.basename(package)].add(root)
        return {name: sorted(found, key=lambda r: (len(r), r)) for name, found in roots.items()}

    def _py_roots(self, path: str, top: str) -> list[str]:
        ordered = [self._py_own_root(path), *_PY_ROOTS, *self._py_package_roots.get(top, ())]
        return list(dict.fromkeys(ordered))

    def _py_from(self, root: str, parts: Sequence[str], names: Sequence[str],
                 stub: bool) -> list[str]:
        """``from <parts> import <names>`` under ``root``."""
        found = []
        whole = True  # every name is a submodule
        for name in names:
            submodule = self._py_module(root, [*parts, *name.split(".")], stub)
            if submodule is None:
                whole = False
            else:
                found.append(submodule)
        if not whole or not names:
            module = (self._py_longest(root, parts, stub) if parts
                      else self._py_module(root, [], stub))
            if module is not None:
                found.insert(0, module)
        return found

    def python_absolute(self, path: str, imp: Import) -> list[str]:
        parts = [p for p in imp.target.split(".") if p]
        if not parts:
            return []
        stub = path.endswith(".pyi")
        for root in self._py_roots(path, parts[0]):
            if imp.kind == "module":
                found = self._py_longest(root, parts, stub)
                if found is not None:
                    return [found]
            else:
                found_all = self._py_from(root, parts, imp.names, stub)
                if found_all:
                    return found_all
        return []

    def python_relative(self, path: str, imp: Import) -> list[str]:
        base: str | None = _dir(path)
        for _ in range(max(imp.level, 1) - 1):
            if not base:
                return []  # above the repository
            base = _dir(base)
        parts = [p for p in imp.target.split(".") if p]
        return self._py_from(base, parts, imp.names, path.endswith(".pyi"))

    # ---- Rust ----

    def _rust_module(self, directory: str, name: str) -> str | None:
        for candidate in (_join(directory, name + ".rs"), _join(directory, name, "mod.rs")):
            if candidate in self.files:
                return candidate
        return None

    def _rust_is_crate_root(self, path: str) -> bool:
        """Is ``path`` the root file of a crate: ``lib.rs``, ``main.rs``, ``build.rs``, a
        file of ``src/bin/``, or of ``tests/``, ``examples/``, ``benches/`` beside a
        ``Cargo.toml``?"""
        if posixpath.basename(path) in {"lib.rs", "main.rs", "build.rs"}:
            return True
        directory = _dir(path)
        parent, above = posixpath.basename(directory), _dir(directory)
        if parent == "bin":
            return posixpath.basename(above) == "src"
        return parent in _RUST_ROOT_DIRS and _join(above, "Cargo.toml") in self.files

    def _rust_children(self, path: str, scope: Sequence[str]) -> str:
        """The directory holding the files of the modules ``path`` (inside ``scope``)
        declares."""
        if posixpath.basename(path) in _RUST_MOD_FILES or self._rust_is_crate_root(path):
            base = _dir(path)
        else:
            base = path[:-3] if path.endswith(".rs") else path
        return _join(base, *scope)

    def _rust_crate_dir(self, path: str) -> str | None:
        """The directory of the root of ``path``'s crate (a crate root's own directory:
        ``src/bin/tool.rs``'s ``crate::`` is ``src/bin/``)."""
        if self._rust_is_crate_root(path):
            return _dir(path)
        directory = _dir(path)
        while True:
            if (_join(directory, "lib.rs") in self.files
                    or _join(directory, "main.rs") in self.files):
                return directory
            if not directory:
                return None
            directory = _dir(directory)

    def _rust_module_file(self, directory: str) -> str | None:
        """The file of the module whose children live in ``directory``."""
        for candidate in (_join(directory, "mod.rs"), directory + ".rs",
                          _join(directory, "lib.rs"), _join(directory, "main.rs")):
            if candidate in self.files:
                return candidate
        return None

    def _rust_walk(self, directory: str, segments: Sequence[str]) -> str | None:
        """The deepest module file ``segments`` reach from ``directory`` (None where the
        first is no module)."""
        found = None
        for segment in segments:
            module = self._rust_module(directory, segment)
            if module is None:
                break
            found, directory = module, _join(directory, segment)
        return found

    @cached_property
    def _rust_crates(self) -> dict[str, str]:
        """Workspace crate name (``-`` as ``_``) -> the directory of its root file."""
        crates: dict[str, str] = {}
        if self.read is None:
            return crates
        for manifest in self.by_name.get("Cargo.toml", ()):
            name = _cargo_package_name(self.read(manifest) or "")
            if name:
                source = _join(_dir(manifest), "src")
                if self._rust_module_file(source) is not None:
                    crates.setdefault(name.replace("-", "_"), source)
        return crates

    def rust_mod(self, path: str, imp: Import) -> list[str]:
        if imp.path:
            base = _join(_dir(path), *imp.scope)
            target = _normal(_join(base, imp.path))
            return [target] if target is not None else []
        found = self._rust_module(self._rust_children(path, imp.scope), imp.target)
        return [found] if found is not None else []

    def rust_use(self, path: str, imp: Import) -> list[str]:
        segments = imp.target.split("::")
        here = self._rust_children(path, imp.scope)
        inline = len(imp.scope)  # inline modules of this file still around the location
        first = segments[0]
        start: str | None
        if first == "crate":
            start, rest, inline = self._rust_crate_dir(path), segments[1:], 0
        elif first in {"self", "super"}:
            start, rest = here, segments
            while rest and rest[0] in {"self", "super"}:
                if rest[0] == "super":
                    if not start:
                        return []  # above the crate: does not compile
                    start, inline = _dir(start), max(inline - 1, 0)
                rest = rest[1:]
        elif self._rust_module(here, first) is not None:  # `mod cli; use cli::Opts;`
            start, rest = here, segments
        else:  # another crate: one of the workspace's, or external
            name = segments[1] if first == "" and len(segments) > 1 else first
            start, rest, inline = self._rust_crates.get(name), segments[2 if first == "" else 1:], 0
        if start is None:
            return []
        found = self._rust_walk(start, rest)
        if found is None and not inline:  # an item of the module at `start` itself
            found = self._rust_module_file(start)
        return _listed(found)

    # ---- JavaScript, TypeScript ----

    def _js_file(self, base: str | None, path: str) -> str | None:
        """The file a specifier resolved to ``base`` names (extensions and index files
        tried), never ``path`` itself."""
        if base is None:
            return None
        candidates = [base]
        stem, extension = posixpath.splitext(base)
        candidates += [stem + e for e in _JS_COMPILED.get(extension, ())]
        candidates += [base + e for e in _JS_EXTENSIONS]
        candidates += [_join(base, "index" + e) for e in _JS_EXTENSIONS]
        return next((c for c in candidates if c in self.files and c != path), None)

    @cached_property
    def _ts_configs(self) -> dict[str, tuple[str, list[tuple[str, list[str]]]]]:
        """Directory of a ``tsconfig.json`` or ``jsconfig.json`` -> (the directory its
        ``paths`` are relative to, its ``paths``: (pattern, substitutions))."""
        configs: dict[str, tuple[str, list[tuple[str, list[str]]]]] = {}
        if self.read is None:
            return configs
        for name in ("tsconfig.json", "jsconfig.json"):
            for config in self.by_name.get(name, ()):
                options = _jsonc(self.read(config) or "").get("compilerOptions")
                if not isinstance(options, dict) or _dir(config) in configs:
                    continue
                base_url = options.get("baseUrl")
                base = _normal(_join(_dir(config), base_url)) if isinstance(base_url, str) \
                    else _dir(config)
                paths = options.get("paths") if isinstance(options.get("paths"), dict) else {}
                mapped = [(k, [t for t in v if isinstance(t, str)]) for k, v in paths.items()
                          if isinstance(k, str) and isinstance(v, list)]
                if base is not None and (mapped or isinstance(base_url, str)):
                    configs[_dir(config)] = (base, mapped)
        return configs

    def _js_aliased(self, path: str, spec: str) -> str | None:
        """A bare specifier through the nearest ``tsconfig.json``'s ``paths`` (a pattern
        with at most one ``*``) and ``baseUrl``."""
        directory: str | None = _dir(path)
        while directory is not None and directory not in self._ts_configs:
            directory = _dir(directory) if directory else None
        if directory is None:
            return None
        base, paths = self._ts_configs[directory]
        for pattern, substitutions in paths:
            head, star, tail = pattern.partition("*")
            if star and spec.startswith(head) and spec.endswith(tail) \
                    and len(spec) >= len(head) + len(tail):
                middle = spec[len(head):len(spec) - len(tail)]
            elif not star and spec == pattern:
                middle = ""
            else:
                continue
            for substitution in substitutions:
                found = self._js_file(_normal(_join(base, substitution.replace("*", middle))),
                                      path)
                if found is not None:
                    return found
        return self._js_file(_normal(_join(base, spec)), path)

    def javascript(self, path: str, imp: Import) -> list[str]:
        spec = imp.target
        if spec.startswith("./") or spec.startswith("../") or spec in {".", ".."}:
            return _listed(self._js_file(_normal(_join(_dir(path), spec)), path))
        return _listed(self._js_aliased(path, spec))  # else a package: external

    # ---- Go ----

    @cached_property
    def _go_modules(self) -> list[tuple[str, str]]:
        """(module path, directory) of every go.mod, longest module path first."""
        modules = []
        if self.read is not None:
            for manifest in self.by_name.get("go.mod", ()):
                found = _GO_MODULE.search(self.read(manifest) or "")
                if found:
                    modules.append((found.group(1), _dir(manifest)))
        return sorted(modules, key=lambda m: (-len(m[0]), m[1]))

    def _go_package(self, directory: str) -> list[str]:
        return [p for p in self.dirs.get(directory, ())
                if p.endswith(".go") and not p.endswith("_test.go")]

    def go(self, path: str, imp: Import) -> list[str]:
        spec = imp.target.strip("/")
        for module, directory in self._go_modules:
            if spec == module or spec.startswith(module + "/"):
                found = self._go_package(_join(directory, spec[len(module) + 1:]))
                if found:
                    return found
        vendored = self._go_package(_join("vendor", spec))
        if vendored:
            return vendored
        parts = spec.split("/")
        if self._go_modules or "." not in parts[0]:
            return []
        for start in range(1, len(parts)):  # no go.mod to read: the longest suffix
            suffix = "/".join(parts[start:])
            matches = [d for d in self.dir_names.get(parts[-1], ())
                       if (d == suffix or d.endswith("/" + suffix)) and self._go_package(d)]
            if matches:
                return self._go_package(_nearest(path, matches, dirs=True))
        return []

    # ---- Java ----

    def _java_class(self, path: str, parts: Sequence[str]) -> list[str]:
        for end in range(len(parts), 1, -1):  # a.b.C.Inner -> a/b/C/Inner.java, a/b/C.java
            suffix = "/".join(parts[:end]) + ".java"
            matches = [p for p in self.by_name.get(parts[end - 1] + ".java", ())
                       if p == suffix or p.endswith("/" + suffix)]
            if matches:
                return [_nearest(path, matches)]
        return []

    def java(self, path: str, imp: Import) -> list[str]:
        parts = imp.target.split(".")
        if imp.kind == "static":
            return self._java_class(path, parts[:-1]) or self._java_class(path, parts)
        if imp.kind == "class":
            return self._java_class(path, parts)
        suffix = "/".join(parts)
        matches = [d for d in self.dir_names.get(parts[-1], ())
                   if (d == suffix or d.endswith("/" + suffix))
                   and any(p.endswith(".java") for p in self.dirs.get(d, ()))]
        directory = _nearest(path, matches, dirs=True)
        return [p for p in self.dirs.get(directory, ()) if p.endswith(".java")] \
            if directory is not None else []

    # ---- C, C++ ----

    def c(self, path: str, imp: Import) -> list[str]:
        spec = imp.target
        candidates = [_normal(_join(_dir(path), spec))] if imp.kind == "include" else []
        candidates += [_normal(_join(root, spec)) for root in _C_ROOTS]
        for candidate in candidates:
            if candidate is not None and candidate in self.files:
                return [candidate]
        tail = _normal(spec)
        if not tail:
            return []
        matches = [p for p in self.by_name.get(posixpath.basename(tail), ())
                   if p == tail or p.endswith("/" + tail)]
        found = _nearest(path, matches)
        return [found] if found is not None else []


def _listed(path: str | None) -> list[str]:
    return [path] if path is not None else []


_JSONC_NOISE = re.compile(r'("(?:\\.|[^"\\])*")|//[^\n]*|/\*.*?\*/|,(\s*[}\]])', re.DOTALL)


def _jsonc(text: str) -> dict:
    """A ``tsconfig.json`` (JSON with comments and trailing commas), or ``{}`` where it does
    not parse."""
    def keep(m: re.Match) -> str:  # a string as it is, a trailing comma's bracket
        return m.group(1) if m.group(1) is not None else (m.group(2) or "")

    cleaned = _JSONC_NOISE.sub(keep, text)
    try:
        found = json.loads(cleaned)
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}


def _cargo_package_name(text: str) -> str | None:
    """The ``name`` of a Cargo.toml's ``[package]`` section."""
    sections = list(_CARGO_SECTION.finditer(text))
    for i, section in enumerate(sections):
        if section.group(1).strip() == "package":
            end = sections[i + 1].start() if i + 1 < len(sections) else len(text)
            found = _CARGO_NAME.search(text, section.end(), end)
            return found.group(1) if found else None
    return None


_RULES: dict[str, Callable[[Resolver, str, Import], list[str]]] = {
    "module": Resolver.python_absolute, "from": Resolver.python_absolute,
    "relative": Resolver.python_relative,
    "mod": Resolver.rust_mod, "use": Resolver.rust_use,
    "import": Resolver.javascript, "require": Resolver.javascript,
    "dynamic": Resolver.javascript,
    "package": Resolver.go,
    "class": Resolver.java, "static": Resolver.java, "wildcard": Resolver.java,
    "include": Resolver.c, "system": Resolver.c,
}
