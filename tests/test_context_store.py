"""Repository context in the store (issue 10): the import graph kept per commit, and a context
document per importing file — its dependencies first, each after its path, joined by the
``<file_sep>`` sentinel, cut to the window — rewritten exactly where a change reaches.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from helpers import run_cli
from repofeed.daemon.ingest import Syncer, backfill
from repofeed.daemon.init import init_store
from repofeed.store import open_store
from repofeed.store.augment import Augment
from repofeed.store.locate import open_repository
from repofeed.store.policy import Policy
from repofeed.store.writer import StoreWriter
from repofeed.train.stream import TrainStream

FILES = {
    "pkg/__init__.py": "",
    "pkg/util.py": "def helper(x):\n    return x + 1\n",
    "pkg/core.py": "from .util import helper\n\n\ndef run(v):\n    return helper(v) * 2\n",
    "pkg/extra.py": "from pkg.core import run\n\n\ndef twice(v):\n    return run(run(v))\n",
    "main.py": "from pkg.core import run\nprint(run(3))\n",
    "lone.py": "print('nothing imported')\n",
    "secret_config.py": "TOKEN = 'local'\n",
    "uses_ignored.py": "import secret_config\nimport os\nprint(secret_config.TOKEN)\n",
    ".gitignore": "secret_config.py\n",
}
CONTEXT_ON = {"context_documents": True}   # the test environment turns it off (conftest.py)


def _docs(path) -> dict[str, dict]:
    with open_store(path) as store:
        tok = store.tokenizer
        out = {}
        for d in store.context_documents():
            ids = store.tokens(d["array"])
            out[d["path"]] = {**d, "ids": ids, "text": tok.decode(ids.tolist())}
        return out


@pytest.fixture
def context_repo(make_repo):
    repo = make_repo("context")
    tracked = {k: v for k, v in FILES.items() if k != "secret_config.py"}
    repo.commit("Sources", tracked)
    (repo.path / "secret_config.py").write_text(FILES["secret_config.py"])  # ignored
    init_store(repo.path, max_tokens=128, overlap=32, vocab_size=400, watch_worktree=False,
               **CONTEXT_ON)
    backfill(repo.path)
    return repo


def test_each_importing_file_has_its_dependencies_first(context_repo):
    docs = _docs(context_repo.path)
    assert set(docs) == {"pkg/core.py", "pkg/extra.py", "main.py"}
    assert docs["main.py"]["files"] == ["pkg/util.py", "pkg/core.py", "main.py"]
    assert docs["pkg/core.py"]["files"] == ["pkg/util.py", "pkg/core.py"]
    with open_store(context_repo.path) as store:
        sep = store.tokenizer.sentinel("<file_sep>")
    for doc in docs.values():
        assert int(np.sum(doc["ids"] == sep)) == len(doc["files"]) - 1
        assert doc["n_tokens"] == len(doc["ids"]) <= 128
        parts = doc["text"].split("<file_sep>")
        assert [p.split("\n", 1)[0] for p in parts] == doc["files"]
        for part, path in zip(parts, doc["files"]):
            assert part == f"{path}\n{FILES[path]}"
    # the import of a gitignored file (and of the standard library) resolves to nothing
    with open_store(context_repo.path) as store:
        entries = store.import_entries()
    assert entries["uses_ignored.py"]["deps"] == []
    assert "uses_ignored.py" not in docs and "lone.py" not in docs


def _commit_and_sync(repo, message, files):
    repo.commit(message, files)
    result = backfill(repo.path)
    return result.context


def test_a_change_rewrites_exactly_the_documents_that_hold_it(context_repo):
    before = _docs(context_repo.path)
    done = _commit_and_sync(context_repo, "Tune main", {
        "main.py": FILES["main.py"] + "print(run(4))\n"})
    after = _docs(context_repo.path)
    assert done.files_read == 1 and done.written == 1
    assert {p for p in after if after[p]["hash"] != before[p]["hash"]} == {"main.py"}
    done = _commit_and_sync(context_repo, "Tune the helper", {
        "pkg/util.py": "def helper(x):\n    return x + 2\n"})
    again = _docs(context_repo.path)
    assert done.written == 3   # everything that imports util, directly or not
    assert all(again[p]["hash"] != after[p]["hash"] for p in again)
    assert "x + 2" in again["pkg/extra.py"]["text"]
    done = _commit_and_sync(context_repo, "A file nobody imports", {"lone.py": "print(1)\n"})
    last = _docs(context_repo.path)
    assert done.written == 0
    assert {p: d["hash"] for p, d in last.items()} == {p: d["hash"] for p, d in again.items()}


def test_a_deleted_dependency_leaves_the_documents_that_held_it(context_repo):
    context_repo.git("rm", "-q", "pkg/util.py")
    context_repo.commit("Drop the helper")
    backfill(context_repo.path)
    docs = _docs(context_repo.path)
    assert "pkg/core.py" not in docs      # it imports nothing left in the repository
    assert docs["main.py"]["files"] == ["pkg/core.py", "main.py"]
    with open_store(context_repo.path) as store:
        assert "pkg/util.py" not in store.import_entries()


def test_an_import_cycle_of_fifty_files(make_repo):
    repo = make_repo("cycle")
    files = {f"ring/m{i:02d}.py": f"from ring import m{(i + 1) % 50:02d}\nVALUE = {i}\n"
             for i in range(50)}
    files["ring/__init__.py"] = ""
    repo.commit("A ring of imports", files)
    init_store(repo.path, max_tokens=96, overlap=0, vocab_size=400, watch_worktree=False,
               **CONTEXT_ON)
    backfill(repo.path)
    docs = _docs(repo.path)
    assert len(docs) == 50
    for path, doc in docs.items():
        assert doc["files"][-1] == path and 2 <= len(doc["files"]) < 50
        assert doc["n_tokens"] <= 96    # cut to the window: the farthest files dropped
        # the file just before the target is the one it imports
        nxt = (int(path[6:8]) + 1) % 50
        assert doc["files"][-2] == f"ring/m{nxt:02d}.py"


def test_status_says_what_is_pending_and_the_stream_draws_context(context_repo):
    context_repo.commit("Another importer", {"more.py": "import pkg.util\n"})
    with StoreWriter(context_repo.path / ".git" / "repofeed" / "store") as writer:
        Syncer(open_repository(context_repo.path), writer).run()   # the commit alone
    status = json.loads(run_cli("status", str(context_repo.path), "--json").stdout)
    assert status["context_pending"] == 1
    backfill(context_repo.path)
    status = json.loads(run_cli("status", str(context_repo.path), "--json").stdout)
    assert status["context_pending"] == 0
    assert "more.py" in _docs(context_repo.path)
    stream = TrainStream(context_repo.path, augment=Augment.off(), seed=3,
                         mix={"windows": 1, "context": 1})
    with open_store(context_repo.path) as store:
        sep = store.tokenizer.sentinel("<file_sep>")
    items = list(stream)
    with_sep = [i for i in items if (i["input_ids"] == sep).any()]
    assert len(with_sep) >= len(items) // 4
    plain = list(TrainStream(context_repo.path, augment=Augment.off(), seed=3))
    assert not any((i["input_ids"] == sep).any() for i in plain)
    # a list of sources: every item of each once (unweighted: each item weighs 1)
    once = Policy.unweighted()
    natural = TrainStream(context_repo.path, augment=Augment.off(), seed=3, policy=once,
                          mix=["windows", "context"])
    windows = TrainStream(context_repo.path, augment=Augment.off(), seed=3, policy=once,
                          mix=["windows"])
    with open_store(context_repo.path) as store:
        n_context = len(store.context_documents())   # each fits one window
    assert natural.epoch_length() == windows.epoch_length() + n_context
    drawn = list(natural)
    assert sum(1 for i in drawn if (i["input_ids"] == sep).any()) == n_context


def test_a_dependency_too_long_for_the_window_gives_its_start(make_repo):
    repo = make_repo("long")
    big = "".join(f"def helper_{i}(value):\n    return value + {i}\n\n" for i in range(200))
    repo.commit("A long module and a user", {
        "lib/big.py": big, "lib/__init__.py": "",
        "app.py": "from lib.big import helper_3\nprint(helper_3(1))\n"})
    init_store(repo.path, max_tokens=128, overlap=32, vocab_size=400, watch_worktree=False,
               **CONTEXT_ON)
    backfill(repo.path)
    doc = _docs(repo.path)["app.py"]
    assert doc["files"] == ["lib/big.py", "app.py"]
    assert 64 <= doc["n_tokens"] <= 128
    head, target = doc["text"].split("<file_sep>")
    assert head.startswith("lib/big.py\ndef helper_0(value):") and big.startswith(head[11:])
    assert target == "app.py\n" + "from lib.big import helper_3\nprint(helper_3(1))\n"
