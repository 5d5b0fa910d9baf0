"""Secrets are never stored: 31 planted fakes of 30 kinds, in files at the tip, in history
(added, then removed), in commit messages, in an author's name, in a file name, in a `.env`
and in the worktree; after a backfill no byte of any of them is in the store's files, in any
decoded text or in the tokenizer's vocabulary, and the redactions are counted per kind.
Also: ordinary code gives no false positives, and splicing by hunks stays exact when
redaction changed the texts.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from helpers import GitRepo, sample_files
from plant import fake_secrets, in_context, kind_of, pieces
from repofeed.daemon.ingest import Syncer, backfill
from repofeed.daemon.init import init_store
from repofeed.daemon.worktree import WorktreeOverlay
from repofeed.store import open_store
from repofeed.store.schema import DB_META
from repofeed.store.secrets import (
    SECRET_FILES,
    find_secrets,
    is_secret_file,
    placeholder_counts,
    redact,
    redact_path,
)
from repofeed.store.writer import StoreWriter

SECRETS = fake_secrets()
NAMES = sorted(SECRETS)
ENV_SECRET = "Zq81vLr0TnWc5Ye2Pk7HsJd4MxQa9Fb3"   # only ever in the .env file
PATH_SECRET = "ghp_" + "Kd83nZ0qLxV7tPw2YbR5mHc9JfA1sGe4Ut6o"
AUTHOR_SECRET = "glpat-" + "Q7rX2mVn9LkT4bWz8HcJ"


def _code_files() -> dict[str, str]:
    """Real code to train the tokenizer on and to edit: the samples and this project's code
    (less store/secrets.py, whose docstring spells placeholders)."""
    files = sample_files()
    files.pop("lib/store/secrets.py", None)
    return files


def _groups() -> tuple[list[str], list[str], list[str], list[str]]:
    """The names split four ways: tip files, history only, commit messages, worktree."""
    return NAMES[0::4], NAMES[1::4], NAMES[2::4], NAMES[3::4]


def _planted_repo(root: Path) -> GitRepo:
    repo = GitRepo(root)
    at_tip, in_history, in_messages, in_worktree = _groups()
    files = _code_files()
    repo.commit("Import the sources", files)
    repo.commit("Add settings", {
        "config/settings.py": "import os\n\n" + "".join(in_context(n, SECRETS[n])
                                                       for n in at_tip),
        ".env": f"DB_PASSWORD={ENV_SECRET}\nDEBUG=1\n",
        f"fixtures/{PATH_SECRET}.json": '{"ok": true}\n',
    })
    repo.commit("Add deployment keys", {
        "deploy/keys.py": "".join(in_context(n, SECRETS[n]) for n in in_history),
        "lib/store/paths.py": files["lib/store/paths.py"] + "".join(
            in_context(n, SECRETS[n]) for n in in_history[:3]),
    })
    repo.commit("Remove the deployment keys", {"lib/store/paths.py": files["lib/store/paths.py"]},
                remove=["deploy/keys.py"])
    for name in in_messages:
        repo.commit(f"Rotate the credential\n\nold one was {in_context(name, SECRETS[name])}",
                    {"NOTES.md": f"rotated {name}\n"})
    env = repo.env()
    env["GIT_AUTHOR_NAME"] = f"bot {AUTHOR_SECRET}"
    repo.git("add", "-A")
    subprocess.run(["git", "commit", "-q", "--allow-empty", "-m", "Committed by a bot"],
                   cwd=repo.path, env=env, check=True, capture_output=True)
    return repo


def _all_needles() -> dict[str, list[str]]:
    needles = {n: [SECRETS[n], *pieces(SECRETS[n])] for n in NAMES}
    for name, secret in (("env", ENV_SECRET), ("path", PATH_SECRET), ("author", AUTHOR_SECRET)):
        needles[name] = [secret, *pieces(secret)]
    return needles


def _store_texts(store) -> list[str]:
    """Every text a reader can get out of the store."""
    texts = []
    for doc in store.documents():
        texts.append(doc["path"])
        texts.append(store.tokenizer.decode(store.tokens(doc["array"])))
    for rec in store.evolution_records(include_superseded=True):
        texts.extend(str(rec.get(k) or "") for k in ("path", "old_path", "message", "author",
                                                      "before", "after"))
    texts.extend(store.skipped_files())
    return texts


def _store_bytes(store_dir: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(store_dir.rglob("*")) if p.is_file())


def test_no_byte_of_a_planted_secret_reaches_the_store(tmp_path):
    repo = _planted_repo(tmp_path / "repo")
    in_worktree = _groups()[3]
    init_store(repo.path)
    backfill(repo.path)
    # the worktree: an untracked file, taken in by the daemon's overlay
    repo.write("scratch/local.py", "".join(in_context(n, SECRETS[n]) for n in in_worktree))
    store_dir = repo.path / ".git" / "repofeed" / "store"
    with StoreWriter(store_dir) as writer:
        syncer = Syncer(repo_obj := __import__("pygit2").Repository(str(repo.path)), writer)
        WorktreeOverlay(repo_obj, syncer, repo.path).apply({"scratch/local.py"}, full=True)

    with open_store(repo.path) as store:
        texts = _store_texts(store)
        docs = {d["path"] for d in store.documents()}
        vocab = [store.tokenizer.decode([i]) for i in range(store.tokenizer.base_size)]
        skipped = store.skipped_files()
        redactions = store.stats()["redactions"]
        arrays = {d["array"] for d in store.documents()}
        decoded_arrays = [store.tokenizer.decode(store.tokens(a)) for a in arrays]
    raw = _store_bytes(store_dir)
    joined = "\n".join(texts)

    # everything planted went in, redacted: the documents and records are there
    assert "scratch/local.py" in docs and "config/settings.py" in docs
    assert any(r.endswith(".json") and r.startswith("fixtures/") for r in docs)
    assert ".env" not in docs and skipped.get(".env") == "secret_file"
    assert "Rotate the credential" in joined and "old one was " in joined
    for name in NAMES:
        assert f"<SECRET:{kind_of(name)}>" in joined, name
    # ... and no byte of any secret is anywhere
    for name, needles in _all_needles().items():
        for needle in needles:
            assert needle not in joined, (name, needle)
            assert needle.encode() not in raw, (name, needle)
    long_pieces = [p for p in vocab if len(p) >= 10]
    for name, needles in _all_needles().items():
        secret = needles[0]
        assert not [p for p in long_pieces if p in secret and p.strip()], name
    # counted per kind, once per distinct stored text: what the stored texts hold
    kinds = {kind_of(n) for n in NAMES}
    assert kinds <= set(redactions), kinds - set(redactions)
    assert len(kinds) >= 20
    assert redactions["aws"] >= 1 and redactions["private_key"] >= 1
    for text in decoded_arrays:
        for kind, n in placeholder_counts(text).items():
            assert redactions[kind] >= n


def test_memory_the_process_freed_never_reaches_the_data_file(sample_repo):
    """Texts are read from git whole, secrets and all, before they are redacted, and the heap
    keeps them after they are freed. The store's LMDB environment must not copy that heap
    into the unused space of the pages it writes (with ``meminit`` off it does: a CI run
    found a planted secret in data.mdb outside any record, and here thousands of copies)."""
    init_store(sample_repo.path)
    backfill(sample_repo.path)
    secret = SECRETS["github"]
    line = f"token = '{secret}'\n".encode()
    store_dir = sample_repo.path / ".git" / "repofeed" / "store"
    with StoreWriter(store_dir) as writer:
        meta = writer.db[DB_META]
        for n in range(20):
            freed = [bytearray(line * 60) for _ in range(200)]
            del freed
            writer._write(lambda txn, n=n: [txn.put(b"probe-%d-%d" % (n, i), b"v" * 10, db=meta)
                                            for i in range(50)])
    assert secret.encode() not in _store_bytes(store_dir)


def test_splicing_an_edit_next_to_a_redacted_block_stays_exact(make_repo):
    """A private key (eight lines, one placeholder once redacted) is added in the middle of a
    long file, then removed while the line next to it is edited: git's hunks of the original
    texts would put every later line out of place; each stored text must decode to exactly
    the redacted text, and no secret come back by splicing."""
    repo = make_repo()
    files = _code_files()
    target = "lib/daemon/ingest.py"
    lines = files[target].splitlines(keepends=True)
    middle = len(lines) // 2
    key = SECRETS["private_key"]
    with_key = "".join(lines[:middle]) + f'KEY = """\n{key}\n"""\n' + "".join(lines[middle:])
    edited = "".join(lines[:middle]) + "KEY = load_key()\n" + "".join(lines[middle:]).replace(
        lines[middle], "# the key is loaded at run time\n" + lines[middle], 1)
    repo.commit("Import", files)
    repo.commit("Add the key", {target: with_key})
    repo.commit("Load the key instead", {target: edited})
    init_store(repo.path)
    backfill(repo.path)
    with open_store(repo.path) as store:
        records = [r for r in store.evolution_records() if r["path"] == target]
    assert [r["message"] for r in records] == ["Import\n", "Add the key\n",
                                              "Load the key instead\n"]
    assert records[1]["after"] == redact(with_key)[0]
    assert records[2]["before"] == redact(with_key)[0]
    assert records[2]["after"] == edited
    for rec in records:
        for piece in pieces(key):
            assert piece not in (rec["before"] or "") + (rec["after"] or "")


def test_each_kind_is_found_in_context_and_replaced_whole():
    for name, secret in SECRETS.items():
        text = f"before\n{in_context(name, secret)}after\n"
        redacted, counts = redact(text)
        assert counts == {kind_of(name): 1}, name
        assert secret not in redacted and "before\n" in redacted and redacted.endswith("after\n")
        assert redact(redacted) == (redacted, {})   # redacting twice changes nothing


def test_ordinary_code_gives_no_false_positives():
    cargo_lock = (
        '[[package]]\nname = "aho-corasick"\nversion = "1.1.3"\n'
        'source = "registry+https://github.com/rust-lang/crates.io-index"\n'
        'checksum = "8e60d3430d3a69478ad0993f19238d2df97c507009a52b3c10addcd7f6bcb916"\n'
    )
    go_sum = ("github.com/spf13/pflag v1.0.5 h1:iy+VFUOCP1a+8yFto/drg2CJ5u0yRoB7fZw3DKv/JXA=\n"
              "github.com/spf13/pflag v1.0.5/go.mod "
              "h1:McXfInJRkz7/ZnRa1LdNlWzjKQQEfXdTm1pHnlRZp5w=\n")
    shas = "".join(f"{i:040x}\n" for i in range(7, 7 ** 12, 7 ** 10)) + \
        "commit 1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d\n" \
        "uuid = '123e4567-e89b-12d3-a456-426614174000'\n"
    python = (
        "import os\n\n"
        "TOKEN_ENV = 'GITHUB_TOKEN'\n"
        "password = os.environ['DB_PASSWORD']\n"
        "secret_key = settings.SECRET_KEY\n"
        "api_key: str = Field(default='', description='the API key')\n"
        "tokenizer_path = 'models/tokenizer_2024_v1.model'\n"
        "PASSWORD_PLACEHOLDER = '${DB_PASSWORD}'\n"
        "url = f'https://{user}:{password}@{host}/db'\n"
        "BEGIN = '-----BEGIN RSA PRIVATE KEY-----'\n"
        "def get_token(self, key: str) -> str:\n    return self.tokens[key]\n"
        "fixture = 'dGhpcyBpcyBvbmx5IGEgdGVzdCBmaXh0dXJlIGluIGJhc2U2NA=='\n"
        "refresh = {'newToken': 'refreshed-token-123'}\n"
    )
    package_lock = ('"integrity": "sha512-5G3LkqNlI4n7RPDwOnwWyEQLXbQBOyycYBxz8ZSBzC2E6zhRB02Ie5tn'
                    'vsxu4e/c8nZzLYIMS8L6KLv2TIkxvg=="\n')
    public_key = ("-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAu1SU1L\n"
                  "-----END PUBLIC KEY-----\n")
    own = "".join(Path(p).read_text() for p in sorted(
        (Path(__file__).parents[1] / "daemon").glob("*.py")))
    for text in (cargo_lock, go_sum, shas, python, package_lock, public_key, own):
        assert find_secrets(text) == [], [text[s:e] for s, e, _ in find_secrets(text)]


def test_secret_files_and_paths():
    for path in (".env", "app/.env", ".env.production", "deploy/id_rsa", "certs/server.pem",
                 "tls.key", ".netrc", "credentials.json", "keystore.p12", "prod.env"):
        assert is_secret_file(path), path
    for path in (".env.example", "app/.env.sample", "id_rsa.pub", "env.py", "README.md",
                 "src/keys.rs", "environment.yml"):
        assert not is_secret_file(path), path
    assert is_secret_file("conf/app.secret", patterns=(*SECRET_FILES, "*.secret"))
    assert redact_path(f"fixtures/{PATH_SECRET}.json") == "fixtures/<SECRET:github>.json"
    assert redact_path("src/main.rs") == "src/main.rs"


@pytest.mark.parametrize("name", ["aws", "jwt", "private_key"])
def test_a_secret_is_never_in_an_error_or_a_log_line(name, make_repo, caplog):
    """The text of a file is never said: a file of credentials (.env) and a file with a
    secret go through a backfill, and nothing logged or returned holds the secret."""
    repo = make_repo()
    repo.commit("Import", {**_code_files(), "conf/x.py": in_context(name, SECRETS[name]),
                           ".env": f"KEY={SECRETS[name]}\n"})
    init_store(repo.path)
    with caplog.at_level("DEBUG"):
        result = backfill(repo.path)
    said = caplog.text + repr(result)
    for piece in pieces(SECRETS[name]):
        assert piece not in said
