"""Renaming rules for the block-scoped languages (JavaScript, TypeScript, TSX, Go, Rust, Java,
C, C++), for :mod:`repofeed.store.variants.rename`.

A *unit* is an outermost function (its closures and nested functions included, since they
capture its locals; Rust's nested ``fn`` items capture nothing and are units of their own).
In a unit, every declaration of a local or parameter is recorded with its *region*: where
the language lets later code refer to it (JavaScript ``let``/``const``: the whole enclosing
block; ``var``: the function; Go ``:=``, Rust ``let``, Java and C declarations: from the end
of the declaration to the end of the enclosing block; Rust ``if let``/``while let``: to the
end of their block, a ``match`` arm's bindings: to the end of the arm; parameters: the
function). A Rust pattern binds only lower-case names that no ``const``, ``static`` or
``use`` of the file declares (a pattern naming one of those matches against it). A name is
renamed, everywhere in the unit, only when *every* occurrence of it there is one of its
declarations or lies in one of their regions, so that each occurrence refers to a binding
inside the unit. Occurrences that are not variables (fields, properties, methods, paths,
labels, struct-literal keys, JSX tags) are left alone; where one is ambiguous (a Go
composite-literal key, a Java label or ``case`` constant, a name inside a nested class body,
an argument of a C macro or a Rust macro's ``name =``/``name:``), the name is not renamed.
Shorthand properties and fields (``{x}`` in JavaScript, ``S { x }`` in Rust) become
``{x: newname}``. Whole units are skipped where names are read from text: JavaScript
``eval`` and ``with``, Rust format strings that capture names (``"{x}"``), ``dbg!`` and
``stringify!``, C preprocessor lines inside a function. Names a C ``#define`` body
mentions are never renamed, nor TypeScript parameter properties
(``constructor(private x)``: they are fields), nor decorated TypeScript and annotated Java
parameters (frameworks such as Spring bind those by name).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import tree_sitter

from repofeed.store.variants import rename as base

Node = tree_sitter.Node

VAR, SHORTHAND, IGNORE, BLOCK = "var", "shorthand", "ignore", "block"


@dataclass(eq=False)
class Unit:
    """One outermost function: its declarations, occurrences, and names not to touch."""

    node: Node
    regions: dict[str, list[tuple[int, int]]] = field(default_factory=dict)
    declared_at: set[int] = field(default_factory=set)
    occurrences: dict[str, list[tuple[int, int, str]]] = field(default_factory=dict)
    blocked: set[str] = field(default_factory=set)
    unsafe: bool = False

    def declare(self, name_node: Node, data: bytes, start: int, end: int) -> None:
        name = base.node_text(name_node, data)
        self.regions.setdefault(name, []).append((start, end))
        self.declared_at.add(name_node.start_byte)

    def block(self, node: Node | None, data: bytes) -> None:
        """No identifier under ``node`` is renamed in this unit."""
        if node is None:
            return
        stack = [node]
        while stack:
            item = stack.pop()
            if "identifier" in item.type:
                self.blocked.add(base.node_text(item, data))
            stack.extend(item.children)

    def covered(self, name: str, start: int) -> bool:
        return start in self.declared_at or any(
            lo <= start < hi for lo, hi in self.regions.get(name, ()))


@dataclass(frozen=True)
class Spec:
    """What a language's renaming needs to know."""

    roots: frozenset[str]  # function kinds that start a unit
    opaque: frozenset[str]  # function kinds that start their own unit even inside another
    declare: Callable[[Node, Unit, bytes], None]
    classify: Callable[[Node, Unit, bytes], str]
    unsafe: Callable[[Node, bytes], bool]
    reserved: frozenset[str]
    file_blocked: Callable[[Node, bytes], set[str]] = lambda _root, _data: set()


def analyse(spec: Spec, tree: tree_sitter.Tree, data: bytes, namer: base.Namer,
            deadline: float) -> list[base.Edit]:
    units = _units(spec, tree.root_node, data, deadline)
    never = spec.file_blocked(tree.root_node, data) | spec.reserved
    edits: list[base.Edit] = []
    for unit in units:
        base.check_deadline(deadline)
        if unit.unsafe:
            continue
        namer.new_group()
        for name in unit.regions:
            if name in unit.blocked or name in never or name == "_" or name.startswith("__"):
                continue
            spans = unit.occurrences.get(name, [])
            if not spans or not all(unit.covered(name, start) for start, _end, _ in spans):
                continue
            new = namer.draw(name)
            if new is None:
                continue
            edits.extend(base.Edit(start, end, f"{name}: {new}" if how == SHORTHAND else new)
                         for start, end, how in spans)
    return edits


def _units(spec: Spec, root: Node, data: bytes, deadline: float) -> list[Unit]:
    units: list[Unit] = []
    stack: list[tuple[Node, Unit | None]] = [(root, None)]
    steps = 0
    while stack:
        node, unit = stack.pop()
        steps += 1
        base.check_deadline(deadline, steps)
        kind = node.type
        if kind in spec.roots and (unit is None or kind in spec.opaque):
            unit = Unit(node)
            units.append(unit)
        if unit is not None:
            if spec.unsafe(node, data):
                unit.unsafe = True
            spec.declare(node, unit, data)
            if node.is_named and "identifier" in kind and node.child_count == 0:
                how = spec.classify(node, unit, data)
                name = base.node_text(node, data)
                if how == BLOCK:
                    unit.blocked.add(name)
                elif how != IGNORE:
                    unit.occurrences.setdefault(name, []).append(
                        (node.start_byte, node.end_byte, how))
        stack.extend((child, unit) for child in reversed(node.named_children))
    return units


def _scope_end(node: Node, kinds: frozenset[str], unit: Unit) -> int:
    """The end of the nearest ancestor of ``node`` of one of ``kinds`` (else the unit's)."""
    parent = node.parent
    while parent is not None and parent.type not in kinds:
        if parent.start_byte == unit.node.start_byte and parent.type == unit.node.type:
            break
        parent = parent.parent
    return (parent or unit.node).end_byte


def _ancestor(node: Node, kinds: frozenset[str], stop: Node) -> Node | None:
    """The nearest ancestor of ``node`` of one of ``kinds``, below ``stop``."""
    parent = node.parent
    while parent is not None and parent != stop:
        if parent.type in kinds:
            return parent
        parent = parent.parent
    return None


def _field_of(node: Node) -> str | None:
    parent = node.parent
    if parent is None:
        return None
    for i, child in enumerate(parent.children):
        if child == node:
            return parent.field_name_for_child(i)
    return None


def _prev_type(node: Node) -> str | None:
    sibling = node.prev_sibling
    return sibling.type if sibling is not None else None


def _next_type(node: Node) -> str | None:
    sibling = node.next_sibling
    return sibling.type if sibling is not None else None


# ---------------------------------------------------------------------------------------------
# JavaScript, TypeScript, TSX

_JS_FUNCTIONS = frozenset({"function_declaration", "function_expression", "function",
                           "arrow_function", "method_definition", "generator_function",
                           "generator_function_declaration"})
_JS_BLOCKS = frozenset({"statement_block", "for_statement", "for_in_statement", "switch_body",
                        "class_static_block", "program"}) | _JS_FUNCTIONS
_JS_JSX = frozenset({"jsx_opening_element", "jsx_closing_element", "jsx_self_closing_element",
                     "jsx_namespace_name", "nested_identifier", "member_expression"})


def _js_pattern(node: Node | None) -> Iterator[Node]:
    """The names a binding pattern declares."""
    if node is None:
        return
    kind = node.type
    if kind in ("identifier", "shorthand_property_identifier_pattern"):
        yield node
    elif kind in ("object_pattern", "array_pattern", "rest_pattern"):
        for child in node.named_children:
            yield from _js_pattern(child)
    elif kind == "pair_pattern":
        yield from _js_pattern(node.child_by_field_name("value"))
    elif kind in ("assignment_pattern", "object_assignment_pattern"):
        yield from _js_pattern(node.child_by_field_name("left"))
    elif kind in ("required_parameter", "optional_parameter"):
        yield from _js_pattern(node.child_by_field_name("pattern"))


def _js_declare(node: Node, unit: Unit, data: bytes) -> None:
    kind = node.type
    if kind == "variable_declarator":
        parent = node.parent
        scope = _JS_FUNCTIONS if parent is not None and parent.type == "variable_declaration" \
            else _JS_BLOCKS
        end = _scope_end(parent or node, scope, unit)
        start = _js_scope_start(parent or node, scope, unit)
        for name in _js_pattern(node.child_by_field_name("name")):
            unit.declare(name, data, start, end)
    elif kind == "for_in_statement" and node.child_by_field_name("kind") is not None:
        declared = node.child_by_field_name("kind")
        if base.node_text(declared, data) == "var":
            start, end = _js_scope_start(node, _JS_FUNCTIONS, unit), \
                _scope_end(node, _JS_FUNCTIONS, unit)
        else:
            start, end = node.start_byte, node.end_byte
        for name in _js_pattern(node.child_by_field_name("left")):
            unit.declare(name, data, start, end)
    elif kind == "formal_parameters" and node.parent is not None \
            and node.parent.type in _JS_FUNCTIONS:
        function = node.parent
        for param in node.named_children:
            if any(child.type in ("accessibility_modifier", "readonly", "override_modifier",
                                  "decorator") for child in param.children):
                # a parameter property is a field too; a decorator may read the name
                unit.block(param.child_by_field_name("pattern"), data)
                continue
            for name in _js_pattern(param):
                unit.declare(name, data, function.start_byte, function.end_byte)
    elif kind == "arrow_function":
        param = node.child_by_field_name("parameter")
        if param is not None:
            unit.declare(param, data, node.start_byte, node.end_byte)
    elif kind == "catch_clause":
        for name in _js_pattern(node.child_by_field_name("parameter")):
            unit.declare(name, data, node.start_byte, node.end_byte)
    elif kind in ("function_declaration", "generator_function_declaration", "class_declaration",
                  "function_expression", "class", "function"):
        unit.block(node.child_by_field_name("name"), data)  # .name shows it


def _js_scope_start(node: Node, kinds: frozenset[str], unit: Unit) -> int:
    parent = node.parent
    while parent is not None and parent.type not in kinds and parent != unit.node:
        parent = parent.parent
    return (parent or unit.node).start_byte


def _js_classify(node: Node, _unit: Unit, _data: bytes) -> str:
    kind = node.type
    if kind in ("shorthand_property_identifier", "shorthand_property_identifier_pattern"):
        return SHORTHAND
    if kind != "identifier":
        return IGNORE
    parent = node.parent
    if parent is not None and parent.type in _JS_JSX and parent.type != "member_expression":
        return BLOCK  # a JSX tag: lower case would make it an HTML element
    if parent is not None and parent.type == "member_expression" \
            and parent.parent is not None and parent.parent.type in _JS_JSX:
        return BLOCK
    if parent is not None and parent.type in ("export_specifier", "import_specifier",
                                              "namespace_import", "internal_module"):
        return BLOCK
    return VAR


def _js_unsafe(node: Node, data: bytes) -> bool:
    return node.type == "with_statement" or (
        node.type == "identifier" and base.node_text(node, data) == "eval")


_JS_RESERVED = frozenset("""
break case catch class const continue debugger default delete do else enum export extends
false finally for function if import in instanceof new null return super switch this throw
true try typeof var void while with yield let static implements interface package private
protected public await async of get set arguments eval undefined NaN Infinity globalThis
window document console require module exports process Buffer global self type declare
namespace abstract readonly any number string boolean symbol object never unknown bigint
keyof infer is asserts satisfies override accessor constructor prototype Object Array
String Number Boolean Symbol Map Set WeakMap WeakSet Promise JSON Math Date RegExp Error
TypeError RangeError SyntaxError Reflect Proxy Function BigInt Intl setTimeout
clearTimeout setInterval clearInterval queueMicrotask structuredClone fetch URL
""".split())


# ---------------------------------------------------------------------------------------------
# Go

_GO_FUNCTIONS = frozenset({"function_declaration", "method_declaration", "func_literal"})
_GO_SCOPES = frozenset({"block", "if_statement", "for_statement", "expression_switch_statement",
                        "type_switch_statement", "select_statement", "expression_case",
                        "type_case", "default_case", "communication_case"}) | _GO_FUNCTIONS


def _identifiers_in(node: Node | None) -> list[Node]:
    return [] if node is None else [c for c in node.named_children if c.type == "identifier"]


def _go_declare(node: Node, unit: Unit, data: bytes) -> None:
    kind = node.type
    if kind == "short_var_declaration":
        end = _scope_end(node, _GO_SCOPES, unit)
        for name in _identifiers_in(node.child_by_field_name("left")):
            unit.declare(name, data, node.end_byte, end)
    elif kind in ("var_spec", "const_spec"):
        end = _scope_end(node, _GO_SCOPES, unit)
        for i, child in enumerate(node.children):
            if node.field_name_for_child(i) == "name":
                unit.declare(child, data, node.end_byte, end)
    elif kind == "range_clause" and any(c.type == ":=" for c in node.children):
        loop = node.parent or node
        for name in _identifiers_in(node.child_by_field_name("left")):
            unit.declare(name, data, node.end_byte, loop.end_byte)
    elif kind == "type_switch_statement":
        alias = node.child_by_field_name("alias")
        for name in _identifiers_in(alias):
            unit.declare(name, data, alias.end_byte, node.end_byte)
    elif kind == "parameter_list":
        function = node.parent
        role = _field_of(node)
        if function is None or function.type not in _GO_FUNCTIONS or role == "result":
            unit.block(node, data)  # named results, and names in function types
            return
        for param in node.named_children:
            for i, child in enumerate(param.children):
                if param.field_name_for_child(i) == "name":
                    unit.declare(child, data, node.end_byte, function.end_byte)


def _go_classify(node: Node, _unit: Unit, _data: bytes) -> str:
    if node.type != "identifier":
        return IGNORE
    parent = node.parent
    if parent is not None and parent.type == "literal_element" and _field_of(parent) == "key":
        return BLOCK  # a struct field or a map key: cannot tell which
    return VAR


_GO_RESERVED = frozenset("""
break case chan const continue default defer else fallthrough for func go goto if import
interface map package range return select struct switch type var true false nil iota append
cap clear close complex copy delete imag len make max min new panic print println real
recover bool byte complex64 complex128 error float32 float64 int int8 int16 int32 int64 rune
string uint uint8 uint16 uint32 uint64 uintptr any comparable
""".split())


# ---------------------------------------------------------------------------------------------
# Rust

_RUST_SCOPES = frozenset({"block", "function_item", "closure_expression"})
_RUST_CAPTURE = re.compile(r"\{[A-Za-z_]")


def _rust_pattern(node: Node | None) -> Iterator[Node]:
    if node is None:
        return
    kind = node.type
    if kind in ("identifier", "shorthand_field_identifier"):
        text = node.text or b""
        if text[:1].islower() or text[:1] == b"_":  # upper case: a constant or a variant
            yield node
        return
    if kind in ("scoped_identifier", "field_identifier", "type_identifier"):
        return
    for i, child in enumerate(node.children):
        role = node.field_name_for_child(i)
        if role == "type" or (kind == "field_pattern" and role == "name"
                              and child.type == "field_identifier"):
            continue  # a constructor's path, or the field a sub-pattern reads
        if child.is_named:
            yield from _rust_pattern(child)


def _rust_declare(node: Node, unit: Unit, data: bytes) -> None:
    kind = node.type
    if kind == "let_declaration":
        end = _scope_end(node, _RUST_SCOPES, unit)
        for name in _rust_pattern(node.child_by_field_name("pattern")):
            unit.declare(name, data, node.end_byte, end)
    elif kind in ("parameters", "closure_parameters") and node.parent is not None \
            and node.parent.type in ("function_item", "closure_expression"):
        function = node.parent
        for param in node.named_children:
            pattern = param.child_by_field_name("pattern") if param.type == "parameter" \
                else param
            for name in _rust_pattern(pattern):
                unit.declare(name, data, node.end_byte, function.end_byte)
    elif kind == "for_expression":
        body = node.child_by_field_name("body")
        if body is not None:
            for name in _rust_pattern(node.child_by_field_name("pattern")):
                unit.declare(name, data, body.start_byte, node.end_byte)
    elif kind == "let_condition":  # if let / while let (and let chains): until the block ends
        above = _ancestor(node, frozenset({"if_expression", "while_expression"}), unit.node)
        block = None if above is None else (above.child_by_field_name("consequence")
                                            or above.child_by_field_name("body"))
        if block is not None:
            for name in _rust_pattern(node.child_by_field_name("pattern")):
                unit.declare(name, data, node.end_byte, block.end_byte)
    elif kind == "match_arm":  # the arm's guard and value
        pattern = node.child_by_field_name("pattern")
        if pattern is not None:
            for i, child in enumerate(pattern.children):
                if child.is_named and pattern.field_name_for_child(i) != "condition":
                    for name in _rust_pattern(child):
                        unit.declare(name, data, child.end_byte, node.end_byte)


def _rust_file_blocked(root: Node, data: bytes) -> set[str]:
    """Names a pattern could mean other than a new binding: constants, statics and whatever
    a ``use`` brings in (a pattern naming one matches against it)."""
    found: set[str] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if node.type in ("const_item", "static_item"):
            name = node.child_by_field_name("name")
            if name is not None:
                found.add(base.node_text(name, data))
        elif node.type == "use_declaration":
            found.update(base.node_text(n, data) for n in _identifiers_below(node))
        stack.extend(node.named_children)
    return found


def _identifiers_below(node: Node) -> Iterator[Node]:
    stack = [node]
    while stack:
        item = stack.pop()
        if "identifier" in item.type:
            yield item
        stack.extend(item.named_children)


def _rust_classify(node: Node, _unit: Unit, _data: bytes) -> str:
    kind = node.type
    if kind == "shorthand_field_identifier":
        return SHORTHAND
    if kind != "identifier":
        return IGNORE
    parent = node.parent
    ptype = parent.type if parent is not None else ""
    if ptype == "shorthand_field_initializer":
        return SHORTHAND
    if ptype in ("scoped_identifier", "scoped_type_identifier", "scoped_use_list",
                 "use_declaration", "use_as_clause", "attribute", "meta_item"):
        return IGNORE
    if ptype == "macro_invocation" and _field_of(node) == "macro":
        return IGNORE
    if ptype == "token_tree":
        if _prev_type(node) in (".", "::", "$", "'") or _next_type(node) in ("::", "!"):
            return IGNORE  # a field, a path or a macro's name
        if _next_type(node) in (":", "="):
            return BLOCK  # a struct field, a type ascription or a named argument
    return VAR


def _rust_unsafe(node: Node, data: bytes) -> bool:
    kind = node.type
    if kind == "macro_invocation":
        macro = node.child_by_field_name("macro")
        return macro is not None and base.node_text(macro, data) in (
            "dbg", "stringify", "concat_idents", "macro_rules")
    if kind in ("string_literal", "raw_string_literal") and node.parent is not None \
            and node.parent.type == "token_tree":
        return bool(_RUST_CAPTURE.search(base.node_text(node, data).replace("{{", "")))
    return kind == "macro_definition"


_RUST_RESERVED = frozenset("""
as async await break const continue crate dyn else enum extern false fn for if impl in let
loop match mod move mut pub ref return self Self static struct super trait true type unsafe
use where while abstract become box do final macro override priv typeof unsized virtual
yield try union Some None Ok Err Vec String Box Option Result drop println format vec
""".split())


# ---------------------------------------------------------------------------------------------
# Java

_JAVA_FUNCTIONS = frozenset({"method_declaration", "constructor_declaration",
                             "compact_constructor_declaration", "lambda_expression"})
_JAVA_SCOPES = frozenset({"block", "constructor_body", "for_statement", "switch_block",
                          "catch_clause", "try_with_resources_statement", "lambda_expression",
                          "enhanced_for_statement"}) | _JAVA_FUNCTIONS
_JAVA_CLASSES = frozenset({"class_body", "enum_body", "interface_body", "record_declaration"})


def _java_declare(node: Node, unit: Unit, data: bytes) -> None:
    kind = node.type
    if kind == "local_variable_declaration":
        end = _scope_end(node, _JAVA_SCOPES, unit)
        for declarator in node.children_by_field_name("declarator"):
            name = declarator.child_by_field_name("name")
            if name is not None:
                unit.declare(name, data, name.end_byte, end)
    elif kind == "formal_parameters" and node.parent is not None \
            and node.parent.type in _JAVA_FUNCTIONS:
        function = node.parent
        for param in node.named_children:
            name = param.child_by_field_name("name")
            if param.type == "spread_parameter":
                declarator = next((c for c in param.named_children
                                   if c.type == "variable_declarator"), None)
                name = declarator.child_by_field_name("name") if declarator else None
            if name is not None and _java_annotated(param):
                unit.block(name, data)  # frameworks bind annotated parameters by name
            elif name is not None:
                unit.declare(name, data, node.end_byte, function.end_byte)
    elif kind == "lambda_expression":
        params = node.child_by_field_name("parameters")
        if params is not None and params.type == "identifier":
            unit.declare(params, data, params.end_byte, node.end_byte)
        elif params is not None and params.type == "inferred_parameters":
            for name in _identifiers_in(params):
                unit.declare(name, data, params.end_byte, node.end_byte)
    elif kind == "catch_formal_parameter":
        clause = node.parent or node
        name = node.child_by_field_name("name")
        if name is not None:
            unit.declare(name, data, name.end_byte, clause.end_byte)
    elif kind == "enhanced_for_statement":
        name, body = node.child_by_field_name("name"), node.child_by_field_name("body")
        if name is not None and body is not None:
            unit.declare(name, data, body.start_byte, node.end_byte)
    elif kind == "resource":
        name = node.child_by_field_name("name")
        statement = _ancestor(node, frozenset({"try_with_resources_statement"}), unit.node)
        if name is not None and statement is not None:
            unit.declare(name, data, name.end_byte, statement.end_byte)


def _java_annotated(param: Node) -> bool:
    return any(child.type == "modifiers" and any(
        m.type in ("annotation", "marker_annotation") for m in child.children)
        for child in param.children)


def _java_classify(node: Node, unit: Unit, _data: bytes) -> str:
    if node.type != "identifier":
        return IGNORE
    parent = node.parent
    ptype = parent.type if parent is not None else ""
    role = _field_of(node)
    if (ptype == "field_access" and role == "field") or \
            (ptype == "method_invocation" and role == "name") or \
            (ptype == "element_value_pair" and role == "key") or \
            ptype in ("marker_annotation", "annotation", "scoped_identifier") or \
            (ptype == "method_reference" and _prev_type(node) == "::"):
        return IGNORE
    if ptype in ("labeled_statement", "break_statement", "continue_statement", "switch_label"):
        return BLOCK
    if _ancestor(node, _JAVA_CLASSES, unit.node) is not None:
        return BLOCK  # a local or anonymous class: its fields could share the name
    return VAR


_JAVA_RESERVED = frozenset("""
abstract assert boolean break byte case catch char class const continue default do double
else enum extends final finally float for goto if implements import instanceof int
interface long native new package private protected public return short static strictfp
super switch synchronized this throw throws transient try void volatile while true false
null var record yield sealed permits non when String Object System Math Integer Long
Double Float Boolean Character Byte Short List Map Set Exception RuntimeException Override
""".split())


# ---------------------------------------------------------------------------------------------
# C and C++

_C_FUNCTIONS = frozenset({"function_definition", "lambda_expression"})
_C_SCOPES = frozenset({"compound_statement", "for_statement", "for_range_loop", "if_statement",
                       "while_statement", "switch_statement", "catch_clause"}) | _C_FUNCTIONS
_C_DECLARATORS = frozenset({"init_declarator", "pointer_declarator", "array_declarator",
                            "attributed_declarator", "reference_declarator"})
_C_TYPES = frozenset({"struct_specifier", "union_specifier", "class_specifier",
                      "enum_specifier", "field_declaration_list"})
_C_MACRO_LIKE = frozenset({"assert", "offsetof", "static_assert", "_Static_assert", "va_arg"})
_C_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _c_name(declarator: Node | None) -> Node | None:
    """The identifier a declarator declares (None for function declarators and the like)."""
    while declarator is not None and declarator.type in _C_DECLARATORS:
        inner = declarator.child_by_field_name("declarator")
        if inner is None and declarator.type == "reference_declarator":
            inner = next((c for c in declarator.named_children), None)
        declarator = inner
    if declarator is not None and declarator.type == "identifier":
        return declarator
    return None


def _c_declare(node: Node, unit: Unit, data: bytes) -> None:
    kind = node.type
    if kind == "declaration":
        extern = any(c.type == "storage_class_specifier" and base.node_text(c, data) == "extern"
                     for c in node.children)
        end = _scope_end(node, _C_SCOPES, unit)
        for declarator in node.children_by_field_name("declarator"):
            name = _c_name(declarator)
            if name is None or extern:
                unit.block(declarator, data)
            else:
                unit.declare(name, data, name.end_byte, end)
    elif kind == "structured_binding_declarator":
        declaration = node.parent or node
        end = _scope_end(declaration, _C_SCOPES, unit)
        for name in _identifiers_in(node):
            unit.declare(name, data, declaration.end_byte, end)
    elif kind == "parameter_list":
        region = _c_parameter_region(node, unit)
        for param in node.named_children:
            name = _c_name(param.child_by_field_name("declarator"))
            if region is None or name is None:
                unit.block(param.child_by_field_name("declarator"), data)
            else:
                unit.declare(name, data, *region)
    elif kind == "for_range_loop":
        name, right = _c_name(node.child_by_field_name("declarator")), \
            node.child_by_field_name("right")
        if name is not None and right is not None:
            unit.declare(name, data, right.end_byte, node.end_byte)
        else:
            unit.block(node.child_by_field_name("declarator"), data)


def _c_parameter_region(node: Node, unit: Unit) -> tuple[int, int] | None:
    """Where the parameters of ``node`` (a parameter list) are in scope: the body of the
    function or lambda they belong to, or the catch clause; None for a function type's."""
    parent = node.parent
    if parent is not None and parent.type == "catch_clause":
        return node.end_byte, parent.end_byte
    if parent is None or parent.type not in ("function_declarator",
                                             "abstract_function_declarator"):
        return None
    above = parent.parent
    while above is not None and above.type in _C_DECLARATORS | {"parenthesized_declarator"}:
        above = above.parent
    if above is not None and above.type in _C_FUNCTIONS:
        return node.end_byte, above.end_byte
    return None


def _c_classify(node: Node, unit: Unit, data: bytes) -> str:
    if node.type != "identifier":
        return IGNORE
    parent = node.parent
    if parent is not None and parent.type in ("qualified_identifier", "using_declaration"):
        return IGNORE
    above = parent
    while above is not None and above != unit.node:
        if above.type in _C_TYPES:
            return BLOCK  # a local struct or class: members could share the name
        if above.type == "argument_list" and above.parent is not None \
                and above.parent.type == "call_expression":
            callee = above.parent.child_by_field_name("function")
            if callee is not None and callee.type == "identifier":
                text = base.node_text(callee, data)
                if text in _C_MACRO_LIKE or (text.isupper() and len(text) > 1):
                    return BLOCK  # a macro's argument may be stringified or pasted
        above = above.parent
    return VAR


def _c_unsafe(node: Node, _data: bytes) -> bool:
    return node.type.startswith("preproc_")


def _c_file_blocked(root: Node, data: bytes) -> set[str]:
    """Every name a ``#define`` body mentions (a macro may use a caller's local by name)."""
    found: set[str] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if node.type == "preproc_arg":
            found.update(_C_NAME.findall(base.node_text(node, data)))
        elif node.type in ("preproc_def", "preproc_function_def") or node.child_count:
            stack.extend(node.children)
    return found


_C_RESERVED = frozenset("""
auto break case char const continue default do double else enum extern float for goto if
inline int long register restrict return short signed sizeof static struct switch typedef
union unsigned void volatile while _Bool _Complex _Imaginary _Alignas _Alignof _Atomic
_Generic _Noreturn _Static_assert _Thread_local bool true false NULL EOF errno stdin stdout
stderr size_t ssize_t main printf fprintf sprintf snprintf malloc calloc realloc free
memcpy memset strlen strcmp exit abort assert
alignas alignof and and_eq asm bitand bitor catch char8_t char16_t char32_t class compl
concept consteval constexpr constinit const_cast co_await co_return co_yield decltype
delete dynamic_cast explicit export friend mutable namespace new noexcept not not_eq
nullptr operator or or_eq private protected public reinterpret_cast requires static_assert
static_cast template this thread_local throw try typeid typename using virtual wchar_t xor
xor_eq override final std string vector cout cerr endl
""".split())


# ---------------------------------------------------------------------------------------------

_JS = Spec(_JS_FUNCTIONS, frozenset(), _js_declare, _js_classify, _js_unsafe, _JS_RESERVED)
_SPECS: dict[str, Spec] = {
    "javascript": _JS, "typescript": _JS, "tsx": _JS,
    "go": Spec(_GO_FUNCTIONS, frozenset(), _go_declare, _go_classify,
               lambda _n, _d: False, _GO_RESERVED),
    "rust": Spec(frozenset({"function_item"}), frozenset({"function_item"}), _rust_declare,
                 _rust_classify, _rust_unsafe, _RUST_RESERVED, _rust_file_blocked),
    "java": Spec(_JAVA_FUNCTIONS, frozenset(), _java_declare, _java_classify,
                 lambda _n, _d: False, _JAVA_RESERVED),
    "c": Spec(_C_FUNCTIONS, frozenset(), _c_declare, _c_classify, _c_unsafe, _C_RESERVED,
              _c_file_blocked),
    "cpp": Spec(_C_FUNCTIONS, frozenset(), _c_declare, _c_classify, _c_unsafe, _C_RESERVED,
                _c_file_blocked),
}


def _analyser(spec: Spec) -> Callable[..., list[base.Edit]]:
    def run(tree: tree_sitter.Tree, data: bytes, namer: base.Namer,
            deadline: float) -> list[base.Edit]:
        return analyse(spec, tree, data, namer, deadline)

    return run


ANALYSERS: dict[str, Callable[..., list[base.Edit]]] = {
    language: _analyser(spec) for language, spec in _SPECS.items()}
RESERVED: dict[str, set[str]] = {language: set(spec.reserved)
                                 for language, spec in _SPECS.items()}
