"""Import graphs: what each language's files import, resolved to repository files, on small
layouts written for each rule, on a real git repository with a gitignored file, on bad
input, and on the corpus histories' tips."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from helpers import CORPUS, GitRepo
from repofeed.daemon.history import text_of
from repofeed.store import schema
from repofeed.store.imports import (
    Import,
    from_records,
    import_graph,
    imports_of,
    resolve,
    to_records,
)
from repofeed.store.resolvers import Resolver

# ---- what the source names -----------------------------------------------------------------


def test_python_imports_spell_modules_names_and_levels():
    text = ("import os, a.b as c\nfrom .x.y import (p, q as r)\nfrom . import z\n"
            "from .. import *\nfrom a import b\n\ndef f():\n    import late\n")
    assert imports_of("pkg/m.py", text, "python") == [
        Import("module", "os"), Import("module", "a.b"),
        Import("relative", "x.y", ("p", "q"), level=1),
        Import("relative", "", ("z",), level=1),
        Import("relative", "", (), level=2),
        Import("from", "a", ("b",)),
        Import("module", "late"),
    ]


def test_rust_use_trees_expand_to_one_record_per_leaf_with_their_inline_scope():
    text = ("mod cli;\nuse crate::{a, b::{C, D as E}};\nuse std::io::{self, Read};\n"
            "#[path = \"gen/out.rs\"]\nmod generated;\n"
            "mod tests {\n    use super::*;\n    mod deep;\n}\n")
    assert imports_of("src/lib.rs", text, "rust") == [
        Import("mod", "cli"),
        Import("use", "crate::a"), Import("use", "crate::b::C"), Import("use", "crate::b::D"),
        Import("use", "std::io"), Import("use", "std::io::Read"),
        Import("mod", "generated", path="gen/out.rs"),
        Import("use", "super", scope=("tests",)),
        Import("mod", "deep", scope=("tests",)),
    ]


def test_javascript_and_typescript_forms_with_literal_specifiers_only():
    text = ("import a from './a';\nimport './side-effect';\nexport {b} from '../b';\n"
            "export * from 'pkg';\nconst c = require('./c');\nconst d = await import('./d');\n"
            "const e = require(name);\nconst f = import(`./f/${x}`);\n")
    expected = [Import("import", "./a"), Import("import", "./side-effect"),
                Import("import", "../b"), Import("import", "pkg"), Import("require", "./c"),
                Import("dynamic", "./d")]
    for language in ("javascript", "typescript", "tsx"):
        assert imports_of("src/x.ts", text, language) == expected, language
    assert imports_of("x.ts", "import x = require('./y');\nimport type {T} from './t';\n",
                      "typescript") == [Import("import", "./y"), Import("import", "./t")]


def test_go_java_and_c_forms():
    go = 'package main\n\nimport "fmt"\nimport (\n\tc "example.com/m/cfg"\n\t_ "embed"\n)\n'
    assert imports_of("main.go", go, "go") == [
        Import("package", "fmt"), Import("package", "example.com/m/cfg"),
        Import("package", "embed")]
    java = ("package a.b;\nimport a.b.C;\nimport a.c.*;\nimport static a.b.D.max;\n"
            "import static a.b.E.*;\n")
    assert imports_of("A.java", java, "java") == [
        Import("class", "a.b.C"), Import("wildcard", "a.c"), Import("static", "a.b.D.max"),
        Import("static", "a.b.E")]
    c = '#include "x.h"\n#include <stdio.h>\n#ifdef WIN\n#  include "win/y.h"\n#endif\n'
    for language in ("c", "cpp"):
        assert imports_of("a.c", c, language) == [
            Import("include", "x.h"), Import("system", "stdio.h"),
            Import("include", "win/y.h")]


def test_languages_without_import_rules_have_none():
    assert imports_of("README.md", "import a\n", "markdown") == []
    assert imports_of("x.rb", "require 'json'\n", "ruby") == []


# ---- resolution, per language --------------------------------------------------------------

PYTHON = {
    "src/pkg/__init__.py": "from .core import run\nfrom . import util\n",
    "src/pkg/core.py": "import os\nfrom .util import helper\n",
    "src/pkg/util.py": "import json\n",
    "src/pkg/sub/__init__.py": "",
    "src/pkg/sub/deep.py": ("from .. import util\nfrom ..core import run\n"
                            "from . import not_a_module\nimport pkg.util as u\nimport numpy\n"),
    "tests/helpers.py": "",
    "tests/test_core.py": "import helpers\nfrom pkg.core import run\nfrom pkg import sub, util\n",
    "scripts/tool.py": "from pkg.sub.deep import x\nimport pkg.sub.deep.thing\nimport pkg\n",
    "top.py": "from ... import x\nimport top\nfrom . import scripts\n",
}


def test_python_resolution_relative_levels_src_roots_and_sibling_scripts():
    graph = import_graph(PYTHON)
    assert graph["src/pkg/__init__.py"] == ["src/pkg/core.py", "src/pkg/util.py"]
    assert graph["src/pkg/core.py"] == ["src/pkg/util.py"]  # os is external
    assert graph["src/pkg/sub/deep.py"] == [  # `not_a_module` is a name of sub/__init__.py
        "src/pkg/util.py", "src/pkg/core.py", "src/pkg/sub/__init__.py"]
    assert graph["tests/test_core.py"] == [  # a test folder finds its sibling helpers
        "tests/helpers.py", "src/pkg/core.py", "src/pkg/sub/__init__.py", "src/pkg/util.py"]
    assert graph["scripts/tool.py"] == ["src/pkg/sub/deep.py", "src/pkg/__init__.py"]
    assert graph["top.py"] == []  # above the repository, itself, a directory without code
    assert graph["src/pkg/util.py"] == []


RUST = {
    "Cargo.toml": '[package]\nname = "my-tool"\nversion = "0.1.0"\n\n[dependencies]\n'
                  'name = "not this one"\n',
    "src/lib.rs": ("mod cli;\npub mod walk;\nmod fmt;\nuse crate::cli::Opts;\nuse std::io;\n"
                   "use clap::Parser;\n#[path = \"generated/out.rs\"]\nmod generated;\n"
                   "#[cfg(test)]\nmod tests {\n    use super::*;\n}\n"),
    "src/cli.rs": "use crate::fmt::template::Template;\nuse super::walk;\n",
    "src/walk.rs": ("use crate::{cli::Opts, fmt};\nmod inner {\n    use super::super::cli;\n}\n"
                    "mod filters;\n"),
    "src/walk/filters.rs": "use super::super::cli::Opts;\nuse crate::Error;\n",
    "src/fmt/mod.rs": "pub mod template;\nuse self::template::Template;\nmod missing;\n",
    "src/fmt/template.rs": "use super::Formatter;\n",
    "src/generated/out.rs": "",
    "tests/integration.rs": "mod testenv;\nuse my_tool::cli::Opts;\nuse tempfile::TempDir;\n",
    "tests/testenv/mod.rs": "",
    "src/bin/tool.rs": "mod helpers;\nuse crate::helpers::X;\nuse my_tool::walk;\n",
    "src/bin/helpers.rs": "",
    "src/parse/mod.rs": "#[cfg(test)]\nmod tests;\n",
    "src/parse/tests/mod.rs": "mod cases;\n",  # a module named tests, not a test crate
    "src/parse/tests/cases.rs": "mod data;\nuse crate::cli;\n",
    "src/parse/tests/cases/data.rs": "",
}


def test_rust_resolution_of_mod_files_crate_self_super_and_workspace_crates():
    graph = import_graph(RUST)
    assert graph["src/lib.rs"] == [
        "src/cli.rs", "src/walk.rs", "src/fmt/mod.rs", "src/generated/out.rs"]
    assert graph["src/cli.rs"] == ["src/fmt/template.rs", "src/walk.rs"]
    assert graph["src/walk.rs"] == ["src/cli.rs", "src/fmt/mod.rs", "src/walk/filters.rs"]
    assert graph["src/walk/filters.rs"] == ["src/cli.rs", "src/lib.rs"]  # Error: in lib.rs
    assert graph["src/fmt/mod.rs"] == ["src/fmt/template.rs"]
    assert graph["src/fmt/template.rs"] == ["src/fmt/mod.rs"]  # super::Formatter
    assert graph["tests/integration.rs"] == ["tests/testenv/mod.rs", "src/cli.rs"]
    assert graph["src/bin/tool.rs"] == ["src/bin/helpers.rs", "src/walk.rs"]  # its own crate
    assert graph["src/parse/tests/cases.rs"] == ["src/parse/tests/cases/data.rs", "src/cli.rs"]
    # Without Cargo.toml's text, the crate's name is unknown: only the module resolves.
    resolver = Resolver(RUST)
    path = "tests/integration.rs"
    assert resolver.resolve(path, imports_of(path, RUST[path], "rust")) == [
        "tests/testenv/mod.rs"]


def test_python_stubs_resolve_to_stubs_and_modules_to_modules():
    files = {"pkg/__init__.py": "", "pkg/__init__.pyi": "from .core import f\n",
             "pkg/core.py": "", "pkg/core.pyi": "", "pkg/native.pyi": "",
             "main.py": "from pkg import core, native\n"}
    graph = import_graph(files)
    assert graph["pkg/__init__.pyi"] == ["pkg/core.pyi"]
    assert graph["main.py"] == ["pkg/core.py", "pkg/native.pyi"]  # a stub-only module


JAVASCRIPT = {
    "package.json": "{}\n",
    "src/index.ts": ("import {a} from './a';\nexport * from './util';\nexport {b} from './b.js';\n"
                     "import React from 'react';\nimport type {T} from './types';\n"),
    "src/a.ts": "const c = require('../lib/c');\nconst d = await import('./d');\n",
    "src/b.ts": "export const b = 1;\n",
    "src/util/index.ts": "export const x = 1;\n",
    "src/types.d.ts": "export type T = number;\n",
    "src/d.tsx": "export default () => null;\n",
    "lib/c.js": "module.exports = require('./missing');\nrequire('lodash');\n",
    "lib/e.mjs": "import data from './data.json';\nimport c from './c.js';\n",
    "lib/data.json": "{}\n",
    "tsconfig.json": ('{\n  "$schema": "https://json.schemastore.org/tsconfig", // a URL\n'
                      '  /* aliases */\n  "compilerOptions": {\n    "baseUrl": ".",\n'
                      '    "outDir": "",\n    "paths": {"@/*": ["gen/*", "src/*"], '
                      '"~lib": ["lib/c.js"],},\n  },\n}\n'),
    "app/page.tsx": ("import {a} from '@/a';\nimport c from '~lib';\n"
                     "import u from 'src/util';\nimport r from 'react';\n"),
}


def test_javascript_resolution_of_relative_specifiers_extensions_and_index_files():
    graph = import_graph(JAVASCRIPT)
    assert graph["src/index.ts"] == [
        "src/a.ts", "src/util/index.ts", "src/b.ts", "src/types.d.ts"]
    assert graph["src/a.ts"] == ["lib/c.js", "src/d.tsx"]
    assert graph["lib/c.js"] == []  # a missing file and a package
    assert graph["lib/e.mjs"] == ["lib/data.json", "lib/c.js"]
    # Bare specifiers through tsconfig.json's paths and baseUrl (comments, trailing commas).
    assert graph["app/page.tsx"] == ["src/a.ts", "lib/c.js", "src/util/index.ts"]
    assert Resolver(JAVASCRIPT).resolve(  # without its text, a bare specifier is a package
        "app/page.tsx", imports_of("app/page.tsx", JAVASCRIPT["app/page.tsx"], "tsx")) == []


GO = {
    "go.mod": "// the module\nmodule example.com/tool\n\ngo 1.21\n",
    "main.go": ('package main\n\nimport (\n\t"fmt"\n\t"example.com/tool/internal/walk"\n'
                '\tcfg "example.com/tool/config"\n\t"github.com/other/lib"\n)\n'),
    "config/config.go": "package config\n",
    "config/load.go": 'package config\n\nimport "example.com/tool/internal/walk"\n',
    "config/config_test.go": 'package config\n\nimport "example.com/tool/config"\n',
    "internal/walk/walk.go": 'package walk\n\nimport "example.com/tool"\n',
    "vendor/github.com/other/lib/lib.go": "package lib\n",
}


def test_go_resolution_through_the_module_path_of_go_mod():
    graph = import_graph(GO)
    assert graph["main.go"] == [  # every non-test file of each package, and the vendored one
        "internal/walk/walk.go", "config/config.go", "config/load.go",
        "vendor/github.com/other/lib/lib.go"]
    assert graph["config/config_test.go"] == ["config/config.go", "config/load.go"]
    assert graph["internal/walk/walk.go"] == ["main.go"]
    # Without go.mod's text: the longest directory suffix of a path that is not the
    # standard library's.
    path = "config/load.go"
    assert Resolver(GO).resolve(path, imports_of(path, GO[path], "go")) == [
        "internal/walk/walk.go"]


JAVA = {
    "src/main/java/com/acme/app/App.java": (
        "package com.acme.app;\nimport com.acme.util.Strings;\nimport com.acme.model.*;\n"
        "import static com.acme.util.Strings.join;\nimport com.acme.util.Strings.Inner;\n"
        "import java.util.List;\n"),
    "src/main/java/com/acme/util/Strings.java": "package com.acme.util;\n",
    "src/main/java/com/acme/model/User.java": "package com.acme.model;\n",
    "src/main/java/com/acme/model/Group.java": "package com.acme.model;\n",
    "src/test/java/com/acme/app/AppTest.java": (
        "package com.acme.app;\nimport com.acme.util.Strings;\nimport org.junit.Test;\n"),
    "plugin/src/main/java/com/acme/util/Strings.java": "package com.acme.util;\n",
    "plugin/src/main/java/com/acme/plugin/Plugin.java": "import com.acme.util.Strings;\n",
}


def test_java_resolution_under_any_source_root_nearest_first():
    graph = import_graph(JAVA)
    assert graph["src/main/java/com/acme/app/App.java"] == [
        "src/main/java/com/acme/util/Strings.java",
        "src/main/java/com/acme/model/Group.java", "src/main/java/com/acme/model/User.java"]
    assert graph["src/test/java/com/acme/app/AppTest.java"] == [
        "src/main/java/com/acme/util/Strings.java"]
    assert graph["plugin/src/main/java/com/acme/plugin/Plugin.java"] == [
        "plugin/src/main/java/com/acme/util/Strings.java"]


C = {
    "include/lib/api.h": '#include <stdint.h>\n#include "lib/types.h"\n',
    "include/lib/types.h": "typedef int t;\n",
    "src/api.c": ('#include "lib/api.h"\n#include "internal.h"\n#include <lib/types.h>\n'
                  '#include <stdio.h>\n#include "config.h"\n'),
    "src/internal.h": '#include "../include/lib/api.h"\n',
    "tests/test_api.c": '#include "unity.h"\n#include "../src/internal.h"\n',
    "third_party/unity/src/unity.h": "",
    "src/widget.cpp": '#include "widget.hpp"\n#include <vector>\n',
    "src/widget.hpp": "#pragma once\n",
}


def test_c_resolution_relative_then_include_roots_then_include_directories():
    graph = import_graph(C)
    assert graph["include/lib/api.h"] == ["include/lib/types.h"]
    assert graph["src/api.c"] == [  # config.h is generated by the build: no file, no edge
        "include/lib/api.h", "src/internal.h", "include/lib/types.h"]
    assert graph["src/internal.h"] == ["include/lib/api.h"]
    assert graph["tests/test_api.c"] == ["third_party/unity/src/unity.h", "src/internal.h"]
    assert graph["src/widget.cpp"] == ["src/widget.hpp"]


def test_imports_round_trip_through_plain_records():
    imports = imports_of("src/lib.rs", RUST["src/lib.rs"], "rust") + imports_of(
        "m.py", "from ..a import b, c\n", "python")
    assert from_records(to_records(imports)) == imports
    assert schema.unpack(schema.pack(to_records(imports))) == to_records(imports)


def test_resolution_keeps_first_mention_order_dedups_and_never_names_the_file_itself():
    imports = [Import("module", "b"), Import("module", "a"), Import("module", "b"),
               Import("module", "me")]
    assert resolve("me.py", imports, ["a.py", "b.py", "me.py"]) == ["b.py", "a.py"]
    assert resolve("me.py", [Import("unknown-kind", "a")], ["a.py"]) == []


def test_a_gitignored_file_gets_no_edge(tmp_path):
    repo = GitRepo(tmp_path / "repo")
    repo.write("generated.py", "VALUE = 1\n")  # written by a build step, never committed
    repo.commit("App importing a helper and a generated module", {
        ".gitignore": "generated.py\n",
        "app.py": "import generated\nimport helpers\n",
        "helpers.py": "def help():\n    return 1\n",
    })
    tracked = repo.git("ls-files").split()
    assert "generated.py" not in tracked and (repo.path / "generated.py").exists()
    texts = {p: (repo.path / p).read_text() for p in tracked}
    assert import_graph(texts)["app.py"] == ["helpers.py"]
    # The same import names the file once it is part of the snapshot.
    everything = [*tracked, "generated.py"]
    assert import_graph(texts, everything)["app.py"] == ["generated.py", "helpers.py"]


# ---- bad input -----------------------------------------------------------------------------

def test_code_that_does_not_parse_gives_the_imports_still_found():
    broken = "import a\ndef f(:\n    from .b import c\n)))\nimport d\n"
    found = imports_of("x.py", broken, "python")
    assert Import("module", "a") in found and Import("module", "d") in found
    garbage = "\x00}{][)(;;\"'`" * 50 + "\n#include"
    for language in ("python", "rust", "javascript", "typescript", "tsx", "go", "java", "c",
                     "cpp"):
        assert isinstance(imports_of("x", garbage, language), list), language
        assert imports_of("x", "", language) == []


def test_a_20000_line_file_is_read_within_its_bound():
    lines = ["import os", "from .sibling import thing"] + [
        f"def f{i}(x):\n    return x + {i}\n" for i in range(10_000)]
    text = "\n".join(lines)
    assert text.count("\n") >= 20_000
    found = imports_of("big.py", text, "python", timeout_s=60)
    assert found == [Import("module", "os"), Import("relative", "sibling", ("thing",), 1)]
    assert imports_of("big.py", text, "python", timeout_s=1e-6) == []  # bounded: none


def test_text_that_is_not_utf8_decoded_with_surrogateescape():
    data = b"import a\ns = '\xff\xfe latin-1: caf\xe9'\nfrom . import b\n"
    text = data.decode("utf-8", "surrogateescape")
    assert imports_of("x.py", text, "python") == [
        Import("module", "a"), Import("relative", "", ("b",), 1)]
    lone = "import a\nx = '\ud800'\n"  # a surrogate no decoder made: still no crash
    assert imports_of("x.py", lone, "python") == [Import("module", "a")]
    spec = b'#include "caf\xe9.h"\n'.decode("utf-8", "surrogateescape")
    found = imports_of("x.c", spec, "c")
    assert resolve("x.c", found, ["x.c", "caf\udce9.h"]) == ["caf\udce9.h"]


# ---- the corpus tips -------------------------------------------------------------------------

BUNDLES = ("attrs", "fd", "cobra", "cJSON", "ky")


@pytest.fixture(scope="module")
def tips(tmp_path_factory) -> dict[str, dict[str, list[str]]]:
    """Each corpus history's import graph at its tip (tracked text files only)."""
    missing = [b for b in BUNDLES if not (CORPUS / f"{b}.bundle").is_file()]
    if missing:
        pytest.skip(f"corpus bundles missing from {CORPUS}: {missing} (set REPOFEED_CORPUS)")
    root = tmp_path_factory.mktemp("corpus")
    graphs = {}
    for name in BUNDLES:
        clone = root / name
        subprocess.run(["git", "clone", "-q", str(CORPUS / f"{name}.bundle"), str(clone)],
                       check=True)
        graphs[name] = import_graph(_tracked_texts(clone))
        files = sum(1 for deps in graphs[name].values() if deps)
        edges = sum(len(deps) for deps in graphs[name].values())
        print(f"{name}: {len(graphs[name])} text files, {files} with edges, {edges} edges")
    return graphs


def _tracked_texts(clone: Path) -> dict[str, str]:
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=clone, capture_output=True,
                            check=True).stdout.decode().split("\0")
    texts = {}
    for path in filter(None, listed):
        file = clone / path
        if file.is_file() and not file.is_symlink():
            text, _why = text_of(file.read_bytes())
            if text is not None:
                texts[path] = text
    return texts


def test_attrs_modules_import_each_other(tips):
    graph = tips["attrs"]
    modules = [p for p in graph if p.startswith("src/attr/") and p.endswith(".py")]
    importing = [p for p in modules if any(d.startswith("src/attr/") for d in graph[p])]
    assert len(modules) >= 10 and len(importing) > len(modules) / 2, (modules, importing)
    assert "src/attr/_make.py" in graph["src/attr/_funcs.py"]
    assert "src/attr/_make.py" in graph["src/attr/__init__.py"]
    tests = [p for p in graph if p.startswith("tests/test_")]
    assert sum(1 for p in tests if any(d.startswith("src/") for d in graph[p])) \
        > len(tests) / 2


def test_fd_modules_resolve_through_mod_and_use(tips):
    graph = tips["fd"]
    main = graph["src/main.rs"]
    assert {"src/cli.rs", "src/config.rs", "src/walk.rs"} <= set(main)
    assert any(p.endswith("/mod.rs") for p in main)  # `mod exec;` -> src/exec/mod.rs
    assert sum(1 for p in graph if p.startswith("src/") and graph[p]) >= 10


def test_cobra_subpackages_import_the_root_package(tips):
    graph = tips["cobra"]
    docs = [p for p in graph if p.startswith("doc/") and p.endswith(".go")
            and not p.endswith("_test.go")]
    assert docs and all("command.go" in graph[p] for p in docs), docs
    assert not any(p.endswith("_test.go") for deps in graph.values() for p in deps)


def test_cjson_includes_resolve(tips):
    graph = tips["cJSON"]
    assert graph["cJSON.c"] == ["cJSON.h"]
    assert "cJSON.h" in graph["cJSON_Utils.h"]
    tests = [p for p in graph if p.startswith("tests/") and p.count("/") == 1
             and p.endswith(".c")]
    assert tests and sum("tests/common.h" in graph[p] for p in tests) > len(tests) / 2


def test_ky_relative_imports_resolve(tips):
    graph = tips["ky"]
    assert "source/core/Ky.ts" in graph["source/index.ts"]
    source = [p for p in graph if p.startswith("source/") and p.endswith(".ts")]
    assert sum(1 for p in source if graph[p]) > len(source) / 2
