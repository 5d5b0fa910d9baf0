"""`repofeed redact` purges a store built before redaction: after it, no byte of any planted
secret is in the store's files (freed pages included: it compacts) nor in any decoded text,
and the store holds what a store built with redaction from the start holds."""

from __future__ import annotations

import json
import subprocess

from helpers import GitRepo, run_cli, sample_files
from plant import fake_secrets, in_context, kind_of, pieces
from repofeed.daemon.ingest import backfill
from repofeed.daemon.init import init_store
from repofeed.store import open_store
from repofeed.store import secrets as secrets_module
from repofeed.store.evolution import plan_views

SECRETS = fake_secrets(seed=21)
NAMES = sorted(SECRETS)
PATH_SECRET = "AKIA" + "Q4ZT7RX2MV9LKB3W"
AUTHOR_SECRET = "xoxp-" + "20394857612-38475610293-" + "Jd8Kq2LmN4pR7sT1vW3xY6zA"


def _repo(root) -> GitRepo:
    repo = GitRepo(root)
    files = sample_files()
    files.pop("lib/store/secrets.py", None)  # its docstring spells placeholders
    half = len(NAMES) // 2
    repo.commit("Import", files)
    repo.commit("Add settings", {
        "conf/settings.py": "".join(in_context(n, SECRETS[n]) for n in NAMES[:half]),
        f"keys/{PATH_SECRET}.txt": "rotated\n",
        ".env": f"TOKEN={SECRETS['github']}\n",
    })
    repo.commit("Add old keys", {"conf/old.py": "".join(in_context(n, SECRETS[n])
                                                        for n in NAMES[half:])})
    repo.commit("Remove old keys", remove=["conf/old.py"])
    env = repo.env()
    env["GIT_AUTHOR_NAME"] = f"ci {AUTHOR_SECRET}"
    repo.write("NOTES.md", "notes\n")
    repo.git("add", "-A")
    subprocess.run(["git", "commit", "-q", "-m",
                    f"Deploy\n\n{in_context('stripe', SECRETS['stripe'])}"],
                   cwd=repo.path, env=env, check=True, capture_output=True)
    return repo


def _needles() -> list[str]:
    out = []
    for secret in (*SECRETS.values(), PATH_SECRET, AUTHOR_SECRET):
        out.extend([secret, *pieces(secret)])
    return out


def _content(path) -> tuple[set, list]:
    """What a reader gets: documents (path, text) and records (texts), decoded."""
    with open_store(path) as store:
        docs = {(d["path"], store.tokenizer.decode(store.tokens(d["array"])))
                for d in store.documents()}
        records = [(r["path"], r["old_path"], r["change"], r["message"], r["author"],
                    r["before"], r["after"]) for r in store.evolution_records()]
    return docs, records


def test_redact_purges_a_store_built_before_redaction(tmp_path, monkeypatch):
    repo = _repo(tmp_path / "repo")
    init_store(repo.path)          # the tokenizer's training text is redacted either way
    monkeypatch.setattr(secrets_module, "ENABLED", False)
    backfill(repo.path)            # as a store built before redaction existed
    monkeypatch.setattr(secrets_module, "ENABLED", True)
    store_dir = repo.path / ".git" / "repofeed" / "store"
    raw = (store_dir / "data.mdb").read_bytes()
    before_docs, before_records = _content(repo.path)
    assert any(SECRETS["aws"] in text for _, text in before_docs)  # the test can fail
    assert PATH_SECRET.encode() in raw and AUTHOR_SECRET.encode() in raw

    done = run_cli("redact", str(repo.path), "--json")
    report = json.loads(done.stdout)

    raw = b"".join(p.read_bytes() for p in store_dir.rglob("*") if p.is_file())
    docs, records = _content(repo.path)
    said = done.stdout + done.stderr
    for needle in _needles():
        assert needle.encode() not in raw, needle
        assert not any(needle in str(item) for item in (*docs, *records)), needle
        assert needle not in said, needle
    assert report["arrays_removed"] == report["arrays_rewritten"] > 0
    assert report["compacted"] is not None and report["waiting_for_readers"] == []
    assert {kind_of(n) for n in NAMES} <= set(report["redactions"])
    assert report["secret_files"] == 1 and report["paths"] >= 2
    with open_store(repo.path) as store:
        assert store.skipped_files().get(".env") == "secret_file"
        assert store.redactions() == {k: v for k, v in sorted(report["redactions"].items())}
        for seq, _ in store._raw_records(False):   # token hunks fit the rewritten arrays
            full = store.record_raw(seq)
            plan_views(full["n_before"], full["n_after"], full["n_msg"], full["hunks"], 256)
            for b0, b1, a0, a1 in full["hunks"]:
                assert 0 <= b0 <= b1 <= full["n_before"] and 0 <= a0 <= a1 <= full["n_after"]

    # what a store built with redaction from the start holds, text for text
    fresh = tmp_path / "fresh-store"
    init_store(repo.path, store=fresh, register=False)
    backfill(repo.path, store=fresh)
    fresh_docs, fresh_records = _content(fresh)
    assert fresh_docs == docs
    # the records of a credentials file already stored are kept, their texts redacted
    assert [r for r in records if r[0] != ".env"] == fresh_records
    assert [r[-1] for r in records if r[0] == ".env"] == ["TOKEN=<SECRET:github>\n"]

    # and a second run finds nothing more
    again = json.loads(run_cli("redact", str(repo.path), "--json").stdout)
    assert again["arrays_rewritten"] == 0 and again["redactions"] == {}


def test_redact_needs_the_daemon_stopped(make_repo):
    repo = make_repo()
    repo.commit("Import", {"a.py": "x = 1\n" * 50, "b.py": "def f():\n    return 2\n" * 20})
    init_store(repo.path)
    backfill(repo.path)
    from repofeed.store.locate import resolve_store_dir
    from repofeed.store.writer import StoreWriter

    with StoreWriter(resolve_store_dir(repo.path)):
        done = run_cli("redact", str(repo.path), check=False)
    assert done.returncode == 1
    assert "error:" in done.stderr and "Traceback" not in done.stderr
