"""What a file imports, read by tree-sitter, and which repository files that names.

Two steps, so that the expensive one is done once per content:

1. :func:`imports_of` parses one file (through :mod:`repofeed.store.parsing`) and lists what
   its source names, as :class:`Import` records: the raw spec (``"./util"``, ``"a.b"``,
   ``"crate::cli::Opts"``, ``"cJSON.h"``) and what resolution needs besides (the dots of a
   Python relative import, the names of ``from x import a, b``, the inline modules a Rust
   declaration sits in). It depends on the content and the path's language only, so it can
   be stored per blob under :data:`IMPORTS_VERSION`.
2. :func:`resolve` (or a :class:`~repofeed.store.resolvers.Resolver` built once per
   snapshot) turns those records into the repository files they refer to, given the
   snapshot's paths. Anything that names no file of the snapshot (the standard library, a
   package from a registry, a gitignored file) resolves to nothing. The rules per language
   are in :mod:`repofeed.store.resolvers`.

Bad code never raises: a file that does not parse gives the imports tree-sitter still finds
in it (error recovery keeps most statements), a parse past the time bound gives none.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass

import tree_sitter

from repofeed.store import parsing
from repofeed.store.languages import detect_language

IMPORTS_VERSION = 1
"""Bump when :func:`imports_of` would list different records for the same content."""

DEFAULT_TIMEOUT_S = 1.0
"""Seconds one file's parse and walk may take before it counts as having no imports."""

LANGUAGES = frozenset({"python", "rust", "javascript", "typescript", "tsx", "go", "java",
                       "c", "cpp"})
"""The languages whose imports are read (the others have none)."""


@dataclass(frozen=True)
class Import:
    """One import as the source spells it.

    ``kind`` by language:

    - Python: ``module`` (``import a.b``: ``target`` ``"a.b"``), ``from`` (``from a.b import
      c, d``: ``target`` ``"a.b"``, ``names`` ``("c", "d")``, ``()`` for ``*``), ``relative``
      (``from ..a import c``: ``target`` ``"a"`` (``""`` for ``from .. import c``),
      ``level`` 2, ``names`` ``("c",)``).
    - Rust: ``mod`` (``mod foo;``: ``target`` ``"foo"``, ``path`` the ``#[path = "..."]``
      attribute's value if any), ``use`` (``target`` ``"crate::a::B"``, one record per leaf
      of a use tree). ``scope`` is the inline modules (``mod tests { ... }``) it sits in.
    - JavaScript, TypeScript, TSX: ``import`` (``import ... from``, ``export ... from``,
      ``import x = require()``), ``require`` (``require("x")``), ``dynamic`` (``import("x")``
      with a literal); ``target`` the specifier.
    - Go: ``package``, ``target`` the import path.
    - Java: ``class`` (``import a.b.C;``), ``wildcard`` (``import a.b.*;``), ``static``
      (``import static a.b.C.m;`` or ``.*``: ``target`` without the ``*``).
    - C, C++: ``include`` (``#include "x.h"``), ``system`` (``#include <x.h>``).
    """

    kind: str
    target: str
    names: tuple[str, ...] = ()
    level: int = 0
    scope: tuple[str, ...] = ()
    path: str = ""


def imports_of(path: str, text: str, language: str,
               timeout_s: float = DEFAULT_TIMEOUT_S) -> list[Import]:
    """The imports ``text`` (the content of ``path``, in ``language``) spells, in source
    order, each once. Empty for a language without import rules, for a parse or walk past
    ``timeout_s`` seconds, and for text without imports; never raises for bad code."""
    reader = _READERS.get(language)
    if reader is None:
        return []
    deadline = time.perf_counter() + timeout_s
    source = _encode(text)
    tree = parsing.parse(source, language, timeout_s)
    if tree is None:
        return []
    found: list[Import] = []
    try:
        for node in _nodes(tree, language):
            if time.perf_counter() > deadline:
                return []
            found.extend(reader(source, node))
    except RecursionError:  # a use tree nested thousands deep: code no one would write
        return []
    return list(dict.fromkeys(found))


def to_records(imports: Sequence[Import]) -> list[list]:
    """``imports`` as plain lists, for the store's msgpack (:func:`from_records` reads
    them back)."""
    return [[i.kind, i.target, list(i.names), i.level, list(i.scope), i.path] for i in imports]


def from_records(records: Sequence[Sequence]) -> list[Import]:
    """The imports :func:`to_records` wrote."""
    return [Import(kind, target, tuple(names), level, tuple(scope), path)
            for kind, target, names, level, scope, path in records]


def resolve(path: str, imports: Sequence[Import], files: Collection[str],
            read: Callable[[str], str | None] | None = None) -> list[str]:
    """The files of ``files`` (a snapshot's paths) that ``imports`` (``path``'s) refer to:
    deduplicated, in order of first mention, never ``path`` itself. ``read`` gives a file's
    text where a rule needs one (Go's ``go.mod`` for the module path); without it, Go
    imports resolve by the longest matching directory suffix. Builds an index of ``files``
    on each call: resolve a whole snapshot through one
    :class:`~repofeed.store.resolvers.Resolver`."""
    from repofeed.store.resolvers import Resolver  # resolvers imports Import from here

    return Resolver(files, read).resolve(path, imports)


# ---- reading the tree --------------------------------------------------------------------

# The nodes that hold imports, per language, anywhere in the tree (Python imports in
# functions, C includes under #ifdef, Rust `use` in function bodies all count). JavaScript's
# calls are narrowed in the query itself (it runs in C), so that the other calls of a file
# cost nothing in Python.
_QUERIES = {
    "python": "(import_statement) @n (import_from_statement) @n",
    "rust": "(mod_item) @n (use_declaration) @n",
    "javascript": """
        (import_statement) @n
        (export_statement source: (_)) @n
        (call_expression function: (identifier) @_f arguments: (arguments . (string) .)
            (#eq? @_f "require")) @n
        (call_expression function: (import) arguments: (arguments . [(string)
            (template_string)] .)) @n""",
    "go": "(import_spec) @n",
    "java": "(import_declaration) @n",
    "c": "(preproc_include) @n",
}
for _alias, _of in (("typescript", "javascript"), ("tsx", "javascript"), ("cpp", "c")):
    _QUERIES[_alias] = _QUERIES[_of]

_queries: dict[str, tree_sitter.Query] = {}


def _query(language: str) -> tree_sitter.Query:
    """The language's import query (compiled once; queries are read-only, so threads
    share them)."""
    found = _queries.get(language)
    if found is None:
        found = _queries[language] = tree_sitter.Query(parsing.grammar(language),
                                                       _QUERIES[language])
    return found


def _nodes(tree: tree_sitter.Tree, language: str) -> Iterator[tree_sitter.Node]:
    """The import nodes of ``tree`` in source order (the query runs in C, so a large file
    costs little beyond its parse)."""
    captured = tree_sitter.QueryCursor(_query(language)).captures(tree.root_node)
    yield from sorted(captured.get("n", ()), key=lambda n: n.start_byte)


def _encode(text: str) -> bytes:
    try:
        return text.encode("utf-8", "surrogateescape")  # text decoded that way round-trips
    except UnicodeEncodeError:  # a lone surrogate surrogateescape did not make
        return text.encode("utf-8", "replace")


def _text(src: bytes, node: tree_sitter.Node | None) -> str:
    """The source of ``node`` (sliced from ``src``: ``node.text`` of a tree parsed through a
    read callback reads through it again, 64 KiB a call)."""
    if node is None:
        return ""
    return src[node.start_byte:node.end_byte].decode("utf-8", "surrogateescape")


def _string(src: bytes, node: tree_sitter.Node | None) -> str | None:
    """The content of a string literal node without interpolation, or None."""
    if node is None or node.type not in {"string", "template_string", "string_literal",
                                         "interpreted_string_literal", "raw_string_literal"}:
        return None
    if any(c.type in {"template_substitution", "escape_sequence"} for c in node.children):
        return None
    raw = _text(src, node)
    if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "\"'`":
        return raw[1:-1]
    return None


# ---- per language ------------------------------------------------------------------------

def _python(src: bytes, node: tree_sitter.Node) -> list[Import]:
    if node.type == "import_statement":
        return [Import("module", _text(src, _dotted(name)))
                for name in node.children_by_field_name("name")]
    module = node.child_by_field_name("module_name")
    if module is None:
        return []
    names = tuple(_text(src, _dotted(name)) for name in node.children_by_field_name("name"))
    if module.type == "relative_import":
        prefix = next((c for c in module.children if c.type == "import_prefix"), None)
        dotted = next((c for c in module.children if c.type == "dotted_name"), None)
        level = _text(src, prefix).count(".")
        return [Import("relative", _text(src, dotted), names, level=level)]
    return [Import("from", _text(src, module), names)]


def _dotted(node: tree_sitter.Node) -> tree_sitter.Node:
    """The dotted name of ``a.b as c``."""
    if node.type == "aliased_import":
        return node.child_by_field_name("name") or node
    return node


def _rust(src: bytes, node: tree_sitter.Node) -> list[Import]:
    scope = _rust_scope(src, node)
    if node.type == "mod_item":
        if node.child_by_field_name("body") is not None:
            return []  # an inline module: its items are read on their own
        return [Import("mod", _text(src, node.child_by_field_name("name")), scope=scope,
                       path=_rust_path_attribute(src, node))]
    argument = node.child_by_field_name("argument")
    if argument is None:
        return []
    return [Import("use", "::".join(segments), scope=scope)
            for segments in _use_paths(src, argument, ())]


def _rust_scope(src: bytes, node: tree_sitter.Node) -> tuple[str, ...]:
    """The inline modules around ``node``, outermost first."""
    names = []
    parent = node.parent
    while parent is not None:
        if parent.type == "mod_item":
            names.append(_text(src, parent.child_by_field_name("name")))
        parent = parent.parent
    return tuple(reversed(names))


def _rust_path_attribute(src: bytes, node: tree_sitter.Node) -> str:
    """The value of a ``#[path = "x.rs"]`` attribute on a ``mod`` item, or ``""``."""
    sibling = node.prev_named_sibling
    while sibling is not None and sibling.type == "attribute_item":
        attribute = next((c for c in sibling.named_children if c.type == "attribute"), None)
        if attribute is not None and _text(src, attribute.named_children[0]) == "path":
            value = _string(src, attribute.child_by_field_name("value"))
            if value:
                return value
        sibling = sibling.prev_named_sibling
    return ""


def _use_paths(src: bytes, node: tree_sitter.Node,
               prefix: tuple[str, ...]) -> list[tuple[str, ...]]:
    """The paths of a use tree's leaves (``a::{b, c::D}`` -> ``a::b``, ``a::c::D``);
    ``self`` in a list is the list's own path, a wildcard's path is the module it opens."""
    kind = node.type
    if kind == "use_as_clause":
        inner = node.child_by_field_name("path")
        return _use_paths(src, inner, prefix) if inner is not None else []
    if kind == "use_wildcard":
        inner = next(iter(node.named_children), None)
        return _use_paths(src, inner, prefix) if inner is not None else [prefix]
    if kind == "scoped_use_list":
        inner = node.child_by_field_name("path")
        head = prefix + (_segments(src, inner) if inner is not None else ())
        listed = node.child_by_field_name("list")
        return _use_paths(src, listed, head) if listed is not None else []
    if kind == "use_list":
        return [p for child in node.named_children for p in _use_paths(src, child, prefix)]
    if kind == "self" and prefix:
        return [prefix]
    if kind in {"identifier", "scoped_identifier", "self", "super", "crate"}:
        return [prefix + _segments(src, node)]
    return []


def _segments(src: bytes, node: tree_sitter.Node) -> tuple[str, ...]:
    return tuple(part.strip() for part in _text(src, node).split("::"))


def _javascript(src: bytes, node: tree_sitter.Node) -> list[Import]:
    if node.type == "call_expression":
        function = node.child_by_field_name("function")
        arguments = node.child_by_field_name("arguments")
        if function is None or arguments is None or arguments.named_child_count != 1:
            return []
        if function.type == "import":
            kind = "dynamic"
        elif function.type == "identifier" and _text(src, function) == "require":
            kind = "require"
        else:
            return []
        spec = _string(src, arguments.named_children[0])
        return [Import(kind, spec)] if spec else []
    source = node.child_by_field_name("source")
    if source is None:  # `import x = require("y")` holds it one level down
        clause = next((c for c in node.named_children if c.type == "import_require_clause"),
                      None)
        source = clause.child_by_field_name("source") if clause is not None else None
    spec = _string(src, source)
    return [Import("import", spec)] if spec else []


def _go(src: bytes, node: tree_sitter.Node) -> list[Import]:
    spec = _string(src, node.child_by_field_name("path"))
    return [Import("package", spec)] if spec else []


def _java(src: bytes, node: tree_sitter.Node) -> list[Import]:
    name = next((c for c in node.named_children
                 if c.type in {"scoped_identifier", "identifier"}), None)
    if name is None:
        return []
    target = "".join(_text(src, name).split())
    if any(c.type == "static" for c in node.children):
        return [Import("static", target)]
    if any(c.type == "asterisk" for c in node.children):
        return [Import("wildcard", target)]
    return [Import("class", target)]


def _c(src: bytes, node: tree_sitter.Node) -> list[Import]:
    spec = node.child_by_field_name("path")
    if spec is None:
        return []
    if spec.type == "system_lib_string":
        inner = _text(src, spec).strip()
        return [Import("system", inner[1:-1].strip())] if len(inner) > 2 else []
    inner = _string(src, spec)
    return [Import("include", inner)] if inner else []


_READERS: dict[str, Callable[[bytes, tree_sitter.Node], list[Import]]] = {
    "python": _python, "rust": _rust, "javascript": _javascript, "typescript": _javascript,
    "tsx": _javascript, "go": _go, "java": _java, "c": _c, "cpp": _c,
}


def import_graph(texts: Mapping[str, str], files: Collection[str] | None = None,
                 timeout_s: float = DEFAULT_TIMEOUT_S) -> dict[str, list[str]]:
    """Each file of ``texts`` (path -> content) -> the files of ``files`` (default: the
    paths of ``texts``) it imports; a whole snapshot at once, languages detected from path
    and first line, ``go.mod`` and ``Cargo.toml`` read from ``texts``."""
    from repofeed.store.resolvers import Resolver

    resolver = Resolver(texts.keys() if files is None else files, texts.get)
    return {path: resolver.resolve(path, imports_of(path, text,
                                                    detect_language(path, text), timeout_s))
            for path, text in texts.items()}
