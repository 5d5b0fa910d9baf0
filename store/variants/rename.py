"""Identifier renaming (issue 10): the locals of functions get other natural names, drawn from
the identifiers the repository itself uses, without changing what the program does.

The one rule every language follows: a name ``N`` that a function binds is renamed to a
*fresh* name ``M`` (one that occurs as no identifier anywhere in the file, and is no keyword
or builtin), and *every* occurrence of ``N`` inside the function is renamed with it, nested
functions, closures and comprehensions included. A consistent renaming to a fresh name keeps
the program's meaning as long as (a) every occurrence of ``N`` in the function refers to a
binding made inside the function, (b) no binding of ``N`` there can be seen by name from
outside (parameters callers may pass by keyword, class members, imports, names declared
``global``/``nonlocal``, function and class names, exported names) and (c) nothing reads
names at run time (``locals()``, ``eval``, frames). Where a language's analysis cannot show
all three for a name, the name is left as it is; where the function reads names at run
time, the whole function is. Attributes (``x.attr``), fields and keyword-argument names at
call sites are not variables and are never touched.

Python (:func:`_python_edits`): locals (assignment, ``for``, ``with``/``except ... as``,
``:=``, ``del``), comprehension variables, and only the parameters no caller can name:
``*args`` and ``**kwargs``, and those of helpers nested in a function whose every use is a
call there with positional arguments that bind without error. Other parameters can be
passed by keyword, and even positional-only ones are named in the ``TypeError`` a call that
misses them raises, so they keep their names. Names in ``match`` patterns, imports,
``global``/``nonlocal``, nested class bodies, the annotations of nested functions, and the
other parameters of nested functions and lambdas are left alone; functions that use
``locals``, ``vars``, ``eval``, ``exec``, ``dir()``, frames or a self-documenting f-string
(``f"{x=}"``) are skipped whole.

The other languages (:mod:`repofeed.store.variants.scopes`): block-scoped locals and
parameters (there no caller names a parameter), renamed only where every occurrence lies in
the scope of a declaration inside the function.

Names: drawn with ``random.Random(seed)`` from ``names`` (the repository's identifiers) in
the style of the name they replace (snake_case, camelCase, PascalCase, UPPER, one letter);
a short built-in list of natural words only where ``names`` has none in that style.
"""

from __future__ import annotations

import builtins
import functools
import keyword
import random
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import tree_sitter

from repofeed.store import parsing
from repofeed.store.variants import TIMEOUT, Outcome, checked, source_errors

RENAME_VERSION = 1
"""Bumped whenever the output for the same (text, seed, names) changes."""

# Reasons of this transform's own (beside those of repofeed.store.variants).
NO_LOCALS = "no-locals"                    # no function has a local that can be renamed
UNSUPPORTED = "unsupported-language"       # a grammar, but no renaming rules for the language


class _Timeout(Exception):
    """The analysis ran past its deadline."""


@dataclass(frozen=True)
class Edit:
    """Replace bytes ``start:end`` of the source with ``text``."""

    start: int
    end: int
    text: str


# ---------------------------------------------------------------------------------------------
# Public functions


def identifiers(text: str, language: str, timeout_s: float = 1.0) -> Counter[str]:
    """How often each identifier occurs in ``text`` (variables, functions, types, fields:
    every named leaf whose kind names an identifier), for the repository's ``names``
    vocabulary. Empty where there is no grammar or the parse runs past ``timeout_s``."""
    data = text.encode("utf-8", "surrogatepass")
    tree = parsing.parse(data, language, timeout_s)
    if tree is None:
        return Counter()
    return Counter(_identifier_texts(tree, data, time.perf_counter() + timeout_s))


def rename(text: str, language: str, *, seed: int, names: Sequence[str] = (),
           timeout_s: float = 2.0) -> Outcome:
    """``text`` with the locals of its functions renamed (see the module's docstring), or
    the reason there is no such variant: those of :mod:`repofeed.store.variants`,
    :data:`NO_LOCALS` or :data:`UNSUPPORTED`."""
    deadline = time.perf_counter() + timeout_s
    errors = source_errors(text, language, timeout_s)
    if isinstance(errors, Outcome):
        return errors
    analyse = _analysers().get(language)
    if analyse is None:
        return Outcome(reason=UNSUPPORTED)
    data = text.encode("utf-8", "surrogatepass")
    tree = parsing.parse(data, language, _left(deadline))
    if tree is None:
        return Outcome(reason=TIMEOUT)
    try:
        taken = set(_identifier_texts(tree, data, deadline))
        namer = Namer(names, taken | _reserved(language), random.Random(seed))
        edits = analyse(tree, data, namer, deadline)
    except _Timeout:
        return Outcome(reason=TIMEOUT)
    if not edits:
        return Outcome(reason=NO_LOCALS)
    variant = apply_edits(data, edits).decode("utf-8", "surrogatepass")
    return checked(text, variant, language, _left(deadline), errors)


def apply_edits(data: bytes, edits: Iterable[Edit]) -> bytes:
    """``data`` with each edit's bytes replaced (edits must not overlap)."""
    out: list[bytes] = []
    at = 0
    for edit in sorted(edits, key=lambda e: e.start):
        if edit.start < at:
            raise ValueError(f"overlapping edits at byte {edit.start}")
        out.append(data[at:edit.start])
        out.append(edit.text.encode("utf-8", "surrogatepass"))
        at = edit.end
    out.append(data[at:])
    return b"".join(out)


# ---------------------------------------------------------------------------------------------
# Shared parts


def _left(deadline: float) -> float:
    """Seconds left before ``deadline`` (a little at least, so a parse can say it timed out)."""
    return max(0.001, deadline - time.perf_counter())


def _identifier_texts(tree: tree_sitter.Tree, data: bytes, deadline: float) -> list[str]:
    """The text of every identifier-like leaf of ``tree`` (kinds naming an ``identifier``,
    and Go's ``label_name``), in document order."""
    found: list[str] = []
    cursor = tree.walk()
    steps = 0
    while True:
        node = cursor.node
        steps += 1
        if not steps & 4095 and time.perf_counter() > deadline:
            raise _Timeout
        kind = node.type
        if node.is_named and ("identifier" in kind or kind == "label_name"):
            found.append(data[node.start_byte:node.end_byte].decode("utf-8", "surrogatepass"))
        if cursor.goto_first_child():
            continue
        while not cursor.goto_next_sibling():
            if not cursor.goto_parent():
                return found


def node_text(node: tree_sitter.Node, data: bytes) -> str:
    return data[node.start_byte:node.end_byte].decode("utf-8", "surrogatepass")


def check_deadline(deadline: float, steps: int = 0) -> None:
    """Raise :class:`_Timeout` past ``deadline`` (in a loop that counts ``steps``: looked at
    every 1024th step only)."""
    if not steps & 1023 and time.perf_counter() > deadline:
        raise _Timeout


def _analysers() -> dict[str, Callable[..., list[Edit]]]:
    from repofeed.store.variants import scopes

    found: dict[str, Callable[..., list[Edit]]] = {"python": _python_edits}
    found.update(scopes.ANALYSERS)
    return found


def _reserved(language: str) -> set[str]:
    """Names no renaming may introduce: keywords and builtins of ``language``."""
    if language == "python":
        return PYTHON_RESERVED
    from repofeed.store.variants import scopes

    return scopes.RESERVED.get(language, set())


# ---------------------------------------------------------------------------------------------
# Natural names

_IDENT = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")

FALLBACK_NAMES = (
    "value", "item", "result", "count", "total", "index", "entry", "current", "data", "node",
    "key", "element", "target", "source", "buffer", "text", "label", "token", "offset", "size",
    "length", "state", "first", "second", "other", "part", "chunk", "piece", "record",
    "field_value", "next_item", "last_seen", "item_count", "start_index", "end_index",
    "current_value", "parsed", "output", "pending", "found",
    "itemCount", "currentValue", "nextItem", "startIndex", "endIndex", "lastSeen",
    "fieldValue", "resultList",
    "Value", "Item", "Result", "Entry", "Node", "Target", "Source",
    "VALUE", "LIMIT", "COUNT", "MAX_ITEMS",
    "a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "m", "n", "p", "q", "r", "s",
    "t", "u", "v", "w", "x", "y", "z",
)
"""Natural names for when the repository's own vocabulary has none of a style."""


@functools.lru_cache(maxsize=1 << 16)
def name_style(name: str) -> str:
    """``single``, ``lower``, ``snake``, ``camel``, ``pascal`` or ``upper`` (leading
    underscores aside); ``other`` for what fits none."""
    core = name.lstrip("_")
    if len(core) == 1:
        return "single-upper" if core.isupper() else "single"
    if not core or not core[0].isalpha():
        return "other"
    if core.isupper():
        return "upper"
    if "_" not in core:
        if core.islower() or core.isdigit():
            return "lower"
        return "pascal" if core[0].isupper() else "camel"
    if core.islower():
        return "snake"
    return "other"


# The styles a name of each style may be replaced by, preferred first.
_COMPATIBLE: dict[str, tuple[str, ...]] = {
    "single": ("single",),
    "single-upper": ("single-upper",),
    "lower": ("lower",),
    "snake": ("snake", "lower"),
    "camel": ("camel", "lower"),
    "pascal": ("pascal",),
    "upper": ("upper",),
    "other": ("lower", "snake", "camel"),
}


def _styles_of(old: str) -> tuple[str, ...]:
    """The styles a replacement for ``old`` may have, preferred first."""
    style = name_style(old)
    if style == "single":  # a one-letter local may become a short word too
        return ("single", "short")
    return _COMPATIBLE.get(style, ())


@functools.lru_cache(maxsize=8)
def _style_pools(names: tuple[str, ...]) -> dict[tuple[str, ...], tuple[str, ...]]:
    """For each tuple of styles a replacement may take, the valid identifiers of ``names``
    in those styles, sorted (cached: the daemon passes one repository's vocabulary again
    and again)."""
    by_style: dict[str, set[str]] = {}
    for name in names:
        if isinstance(name, str) and 1 <= len(name) <= 32 and _IDENT.match(name):
            by_style.setdefault(name_style(name), set()).add(name)
            if name_style(name) == "lower" and len(name) <= 5:
                by_style.setdefault("short", set()).add(name)
    wanted = {*_COMPATIBLE.values(), ("single", "short")}
    return {styles: tuple(name for style in styles for name in sorted(by_style.get(style, ())))
            for styles in wanted}


class Namer:
    """Draws fresh natural names: never one in ``taken`` (every identifier of the file,
    keywords, builtins), never the same twice within one group (:meth:`new_group`)."""

    def __init__(self, names: Iterable[str], taken: set[str], rng: random.Random):
        self.taken = taken
        self.rng = rng
        self.group: set[str] = set()
        self.pools = _style_pools(tuple(names))
        self.fallback = _style_pools(FALLBACK_NAMES)

    def new_group(self) -> None:
        """Names may repeat from here on (the next function is disjoint from the last)."""
        self.group = set()

    def draw(self, old: str) -> str | None:
        """A fresh name in the style of ``old``, or None where none is left."""
        prefix = old[: len(old) - len(old.lstrip("_"))]
        styles = _styles_of(old)
        for pools in (self.pools, self.fallback):
            picked = self._pick(pools.get(styles, ()), prefix, len(old) - len(prefix))
            if picked is not None:
                self.group.add(picked)
                return picked
        return None

    def _pick(self, choices: Sequence[str], prefix: str, length: int) -> str | None:
        """A usable name from ``choices``: a few random tries for one of about ``length``
        characters (a long name does not replace a short one), then a scan from a random
        start for any."""
        def usable(name: str) -> bool:
            return (prefix + name not in self.taken and prefix + name not in self.group)

        if not choices:
            return None
        longest = max(2 * length, length + 6)
        for _ in range(16):
            name = choices[self.rng.randrange(len(choices))]
            if len(name) <= longest and usable(name):
                return prefix + name
        start = self.rng.randrange(len(choices))
        for i in range(len(choices)):
            name = choices[(start + i) % len(choices)]
            if usable(name):
                return prefix + name
        return None


# ---------------------------------------------------------------------------------------------
# Python

PYTHON_RESERVED = (set(keyword.kwlist) | set(keyword.softkwlist) | set(dir(builtins))
                   | {"self", "cls", "__class__", "print", "exec"})

# Reading names at run time: a function whose subtree mentions one is skipped whole.
_PY_DYNAMIC = frozenset({"locals", "vars", "eval", "exec", "_getframe", "currentframe",
                         "f_locals", "f_back", "co_varnames", "getframeinfo",
                         "getouterframes", "getinnerframes"})

# Roles of an identifier occurrence.
LOAD, STORE, WALRUS, PARAM_OK, BLOCK, IGNORE = "load", "store", "walrus", "param", "block", "-"
PARAM_IF_PRIVATE = "param?"  # a def's parameter: renamable where every call is positional

_PY_TARGETS = frozenset({"pattern_list", "tuple_pattern", "list_pattern", "tuple", "list",
                         "list_splat_pattern", "parenthesized_expression", "expression_list"})
_PY_COMPREHENSIONS = frozenset({"list_comprehension", "set_comprehension",
                                "dictionary_comprehension", "generator_expression"})


@dataclass
class Signature:
    """A ``def`` as its calls see it: where its name is, and which calls can bind it."""

    name: str
    start: int  # the byte where the def's name is
    decorated: bool
    required: int = 0  # positional parameters without a default
    positional: int = 0  # positional parameters
    star: bool = False  # has *args
    keyword_required: bool = False  # a keyword-only parameter without a default


@dataclass(eq=False)
class Scope:
    """A Python scope: its own occurrences (name, start, end, role) and nested scopes."""

    kind: str  # module, function, lambda, class, comprehension
    parent: Scope | None
    occurrences: list[tuple[str, int, int, str]] = field(default_factory=list)
    children: list[Scope] = field(default_factory=list)
    walrus: set[str] = field(default_factory=set)  # names := binds here from comprehensions
    unsafe: bool = False  # reads names at run time, or a form the analysis does not know
    signature: Signature | None = None  # a def's, for its calls (see _private_helpers)

    def __post_init__(self) -> None:
        if self.parent is not None:
            self.parent.children.append(self)

    def subtree(self) -> Iterable[Scope]:
        stack = [self]
        while stack:
            scope = stack.pop()
            yield scope
            stack.extend(reversed(scope.children))

    def function_scope(self) -> Scope:
        """Where ``:=`` binds: the nearest scope that is no comprehension."""
        scope = self
        while scope.kind == "comprehension" and scope.parent is not None:
            scope = scope.parent
        return scope

    def in_function(self) -> bool:
        scope = self
        while scope is not None:
            if scope.kind in ("function", "lambda"):
                return True
            scope = scope.parent
        return False


def _annotation(scope: Scope) -> str:
    """The role of names in a parameter's or return annotation: kept where the function is
    nested in another (under ``from __future__ import annotations`` the annotation is the
    text itself, which ``__annotations__`` and ``get_type_hints`` show)."""
    return BLOCK if scope.in_function() else LOAD


class _PythonWalk:
    """One pass over a Python tree that files every identifier under its scope and role."""

    def __init__(self, data: bytes, deadline: float):
        self.data = data
        self.deadline = deadline
        self.steps = 0
        self.stack: list[tuple[tree_sitter.Node, Scope, str]] = []
        # callee name's byte -> the call's positional argument count (-1: keywords, splats)
        self.calls: dict[int, int] = {}

    def run(self, root: tree_sitter.Node) -> Scope:
        module = Scope("module", None)
        self.stack.append((root, module, LOAD))
        while self.stack:
            node, scope, role = self.stack.pop()
            self.steps += 1
            check_deadline(self.deadline, self.steps)
            self.visit(node, scope, role)
        return module

    def push(self, items: list[tuple[tree_sitter.Node, Scope, str]]) -> None:
        self.stack.extend(reversed(items))  # popped in document order

    def children(self, node: tree_sitter.Node, scope: Scope, role: str,
                 roles: dict[str, tuple[Scope, str]] | None = None) -> None:
        items = []
        for i, child in enumerate(node.children):
            if not child.is_named:  # punctuation and keywords hold no names
                continue
            name = node.field_name_for_child(i)
            target = (roles or {}).get(name) if name else None
            items.append((child, *(target or (scope, role))))
        self.push(items)

    def visit(self, node: tree_sitter.Node, scope: Scope, role: str) -> None:
        kind = node.type
        if kind == "identifier":
            text = node_text(node, self.data)
            if text in _PY_DYNAMIC:
                scope.unsafe = True
            scope.occurrences.append((text, node.start_byte, node.end_byte, role))
            if role == WALRUS:
                scope.function_scope().walrus.add(text)
            return
        if role == BLOCK:
            self.children(node, scope, BLOCK)
            return
        handler = getattr(self, "visit_" + kind, None)
        if handler is not None:
            handler(node, scope, role)
        elif kind in _PY_COMPREHENSIONS:
            self.comprehension(node, scope)
        else:
            self.children(node, scope, role if kind in _PY_TARGETS else LOAD)

    # -- scopes

    def visit_function_definition(self, node: tree_sitter.Node, scope: Scope, _role: str) -> None:
        inner = Scope("function", scope)
        name = node.child_by_field_name("name")
        if name is not None:
            parent = node.parent
            inner.signature = Signature(node_text(name, self.data), name.start_byte,
                                        parent is not None
                                        and parent.type == "decorated_definition")
        self.function(node, scope, inner, {"name": (scope, BLOCK), "type_parameters":
                                           (scope, BLOCK),
                                           "return_type": (scope, _annotation(scope))})

    def visit_lambda(self, node: tree_sitter.Node, scope: Scope, _role: str) -> None:
        self.function(node, scope, Scope("lambda", scope), {})

    def function(self, node: tree_sitter.Node, outer: Scope, inner: Scope,
                 roles: dict[str, tuple[Scope, str]]) -> None:
        items = []
        for i, child in enumerate(node.children):
            name = node.field_name_for_child(i)
            if name == "parameters":
                self.parameters(child, outer, inner)
            elif name == "body":
                items.append((child, inner, LOAD))
            elif name in roles:
                items.append((child, *roles[name]))
        if node.child_by_field_name("type_parameters") is not None:
            inner.unsafe = True
        self.push(items)

    def parameters(self, node: tree_sitter.Node, outer: Scope, inner: Scope) -> None:
        """Parameter names go to ``inner`` (renamable where no caller can name them:
        ``*args``, ``**kwargs``); defaults and annotations to ``outer``."""
        items: list[tuple[tree_sitter.Node, Scope, str]] = []
        # Named in keyword calls, or (positional-only) in TypeError messages; a def's may
        # still be renamed where all its calls are in sight (see _private_helpers).
        plain = BLOCK if inner.signature is None else PARAM_IF_PRIVATE
        sig = inner.signature or Signature("", -1, True)
        keyword_only = False
        for param in node.named_children:
            kind = param.type
            if kind == "keyword_separator":
                keyword_only = True
            if kind in ("positional_separator", "keyword_separator", "comment"):
                continue
            defaulted = kind in ("default_parameter", "typed_default_parameter")
            if kind == "list_splat_pattern" or (kind == "typed_parameter" and any(
                    c.type == "list_splat_pattern" for c in param.children)):
                sig.star, keyword_only = True, True
            elif kind == "dictionary_splat_pattern" or (kind == "typed_parameter" and any(
                    c.type == "dictionary_splat_pattern" for c in param.children)):
                pass
            elif keyword_only:
                sig.keyword_required |= not defaulted
            else:
                sig.positional += 1
                sig.required += not defaulted
            if kind == "identifier":
                items.append((param, inner, plain))
            elif kind in ("list_splat_pattern", "dictionary_splat_pattern"):
                items.extend((c, inner, PARAM_OK) for c in param.named_children)
            elif kind in ("default_parameter", "typed_default_parameter", "typed_parameter"):
                for j, child in enumerate(param.children):
                    field_name = param.field_name_for_child(j)
                    if field_name == "value":
                        items.append((child, outer, LOAD))
                    elif field_name == "type":
                        items.append((child, outer, _annotation(outer)))
                    elif child.type == "identifier":
                        items.append((child, inner, plain))
                    elif child.type in ("list_splat_pattern", "dictionary_splat_pattern"):
                        items.extend((c, inner, PARAM_OK) for c in child.named_children)
                    elif child.is_named:
                        inner.unsafe = True
            else:  # a form this analysis does not know: leave the function alone
                inner.unsafe = True
                items.append((param, inner, BLOCK))
        self.push(items)

    def visit_class_definition(self, node: tree_sitter.Node, scope: Scope, _role: str) -> None:
        body = Scope("class", scope)
        self.children(node, scope, LOAD, {"name": (scope, BLOCK),
                                          "type_parameters": (scope, BLOCK),
                                          "body": (body, LOAD)})

    def comprehension(self, node: tree_sitter.Node, scope: Scope) -> None:
        """The first iterable is evaluated outside; the rest in the comprehension's scope."""
        inner = Scope("comprehension", scope)
        items: list[tuple[tree_sitter.Node, Scope, str]] = []
        first = True
        for child in node.children:
            if child.type == "for_in_clause":
                for j, part in enumerate(child.children):
                    name = child.field_name_for_child(j)
                    if name == "left":
                        items.append((part, inner, STORE))
                    elif name == "right":
                        items.append((part, scope if first else inner, LOAD))
                    else:
                        items.append((part, inner, LOAD))
                first = False
            else:
                items.append((child, inner, LOAD))
        self.push(items)

    # -- bindings

    def visit_assignment(self, node: tree_sitter.Node, scope: Scope, _role: str) -> None:
        self.children(node, scope, LOAD, {"left": (scope, STORE)})

    visit_augmented_assignment = visit_assignment
    visit_for_statement = visit_assignment

    def visit_named_expression(self, node: tree_sitter.Node, scope: Scope, _role: str) -> None:
        self.children(node, scope, LOAD, {"name": (scope, WALRUS)})

    def visit_as_pattern_target(self, node: tree_sitter.Node, scope: Scope, _role: str) -> None:
        self.children(node, scope, STORE)

    def visit_delete_statement(self, node: tree_sitter.Node, scope: Scope, _role: str) -> None:
        self.children(node, scope, STORE)

    def _blocked(self, node: tree_sitter.Node, scope: Scope, _role: str) -> None:
        self.children(node, scope, BLOCK)

    visit_global_statement = _blocked
    visit_nonlocal_statement = _blocked
    visit_import_statement = _blocked
    visit_import_from_statement = _blocked
    visit_future_import_statement = _blocked
    visit_case_pattern = _blocked
    visit_type_parameter = _blocked

    # -- names that are no variables

    def visit_attribute(self, node: tree_sitter.Node, scope: Scope, _role: str) -> None:
        self.children(node, scope, LOAD, {"attribute": (scope, IGNORE)})

    def visit_keyword_argument(self, node: tree_sitter.Node, scope: Scope, _role: str) -> None:
        self.children(node, scope, LOAD, {"name": (scope, IGNORE)})

    def visit_dotted_name(self, node: tree_sitter.Node, scope: Scope, role: str) -> None:
        named = node.named_children
        self.push([(child, scope, role if i == 0 else IGNORE) for i, child in enumerate(named)])

    def visit_interpolation(self, node: tree_sitter.Node, scope: Scope, _role: str) -> None:
        if any(child.type == "=" for child in node.children):  # f"{x=}" prints the name
            scope.unsafe = True
        self.children(node, scope, LOAD)

    def visit_call(self, node: tree_sitter.Node, scope: Scope, _role: str) -> None:
        function = node.child_by_field_name("function")
        arguments = node.child_by_field_name("arguments")
        if (function is not None and node_text(function, self.data) == "dir"
                and arguments is not None and arguments.named_child_count == 0):
            scope.unsafe = True  # dir() lists the caller's names
        if function is not None and function.type == "identifier" and arguments is not None:
            args = [a for a in arguments.named_children if a.type != "comment"]
            plain = arguments.type == "argument_list" and all(
                a.type not in ("keyword_argument", "list_splat", "dictionary_splat")
                for a in args)
            self.calls[function.start_byte] = len(args) if plain else -1
        self.children(node, scope, LOAD)


def _python_edits(tree: tree_sitter.Tree, data: bytes, namer: Namer,
                  deadline: float) -> list[Edit]:
    walk = _PythonWalk(data, deadline)
    module = walk.run(tree.root_node)
    _private_helpers(module, walk.calls, deadline)
    edits: list[Edit] = []
    claimed: set[int] = set()
    roots = [scope for scope in module.subtree()
             if scope.kind in ("function", "lambda") and not _under_function(scope)]
    for root in roots:
        namer.new_group()
        for scope in root.subtree():
            check_deadline(deadline)  # every scope: each walks its subtree
            if scope.kind in ("function", "lambda", "comprehension"):
                edits.extend(_rename_scope(scope, namer, claimed))
    return edits


def _private_helpers(module: Scope, calls: dict[int, int], deadline: float) -> None:
    """Settle every def's :data:`PARAM_IF_PRIVATE` parameters: renamable (:data:`PARAM_OK`)
    for a helper nested in a function, undecorated, whose name the enclosing function uses
    only to call it, each call with positional arguments that bind without error (so no
    caller can name a parameter, and no TypeError shows one); else :data:`BLOCK`."""
    for scope in module.subtree():
        sig = scope.signature
        if sig is None:
            continue
        check_deadline(deadline)
        private = (not sig.decorated and not sig.keyword_required and scope.parent is not None
                   and scope.parent.kind == "function")
        if private:
            for inner in scope.parent.subtree():
                for name, start, _end, _role in inner.occurrences:
                    if name != sig.name or start == sig.start:
                        continue
                    count = calls.get(start, -1)
                    if count < sig.required or (count > sig.positional and not sig.star):
                        private = False
        role = PARAM_OK if private else BLOCK
        scope.occurrences = [(name, start, end, role if r == PARAM_IF_PRIVATE else r)
                             for name, start, end, r in scope.occurrences]


def _under_function(scope: Scope) -> bool:
    return scope.parent is not None and scope.parent.in_function()


def _rename_scope(scope: Scope, namer: Namer, claimed: set[int]) -> list[Edit]:
    """Renames for the names ``scope`` binds (see the module's docstring for the rules)."""
    inside = list(scope.subtree())
    if any(s.unsafe for s in inside):
        return []
    bound: dict[str, None] = {}  # in order of first binding
    for name, _start, _end, role in scope.occurrences:
        if role in (STORE, PARAM_OK):
            bound.setdefault(name, None)
    for name in sorted(scope.walrus):
        bound.setdefault(name, None)
    blocked = set()
    occurrences: dict[str, list[tuple[int, int]]] = {}
    for s in inside:
        for name, start, end, role in s.occurrences:
            if role == IGNORE:
                continue
            if role == BLOCK or (s.kind == "class"):
                blocked.add(name)
            occurrences.setdefault(name, []).append((start, end))
    edits = []
    for name in bound:
        if name in blocked or name in PYTHON_RESERVED or name == "_" or name.startswith("__"):
            continue
        spans = occurrences.get(name, [])
        if not spans or any(start in claimed for start, _ in spans):
            continue
        new = namer.draw(name)
        if new is None:
            continue
        for start, end in spans:
            claimed.add(start)
            edits.append(Edit(start, end, new))
    return edits
