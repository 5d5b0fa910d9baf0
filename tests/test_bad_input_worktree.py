"""Bad input for the worktree watcher: checkouts that git's filters rewrite (CRLF, ``eol``,
clean filter drivers, ``working-tree-encoding``), an update that fails and must be retried,
and files that are not what they were a moment ago (gone, a directory turned file, a FIFO)."""

from __future__ import annotations

import errno
import json
import os
import shutil

from helpers import run_cli, sample_files, wait_for
from repofeed.daemon.ingest import backfill
from repofeed.daemon.init import init_store
from repofeed.store import open_store


def _docs(repo) -> dict[str, tuple[str, str]]:
    """path -> (source, text) of every snapshot document."""
    with open_store(repo.path) as store:
        return {d["path"]: (d["source"], store.tokenizer.decode(store.tokens(d["array"])))
                for d in store.documents()}


def _checkout_afresh(repo) -> None:
    """Delete every tracked file and check it out again: git writes it through its filters
    (smudge, CRLF), as a clone would."""
    for rel in repo.git("ls-files", "-z").split("\0"):
        if rel:
            (repo.path / rel).unlink()
    repo.git("checkout", "-q", "--", ".")


def _filtered_repo(make_repo, config: dict[str, str], files: dict[str, str]):
    repo = make_repo()
    for key, value in config.items():
        repo.git("config", key, value)
    repo.commit("Sources", {**sample_files(), **files})
    _checkout_afresh(repo)
    init_store(repo.path)
    backfill(repo.path)
    return repo


def _assert_only_the_edit_is_worktree(repo, daemon_for, rel: str, edit: bytes,
                                      committed_text: str) -> None:
    proc = daemon_for(repo)
    docs = _docs(repo)
    assert docs and {p: s for p, (s, _t) in docs.items() if s != "commit"} == {}
    with open(repo.path / rel, "ab") as fh:
        fh.write(edit)
    expected = committed_text + "ADDED = 1\n"  # as git would store it: filters applied
    wait_for(lambda: _docs(repo).get(rel) == ("worktree", expected), f"the edit of {rel}")
    assert {p for p, (s, _t) in _docs(repo).items() if s != "commit"} == {rel}
    assert "Traceback" not in proc.log()


def test_a_checkout_with_autocrlf_is_the_commit(make_repo, daemon_for):
    repo = _filtered_repo(make_repo, {"core.autocrlf": "true"}, {})
    raw = (repo.path / "cmd" / "greet.go").read_bytes()
    assert b"\r\n" in raw  # the checkout is CRLF, the blobs LF
    _assert_only_the_edit_is_worktree(repo, daemon_for, "cmd/greet.go", b"ADDED = 1\r\n",
                                      raw.decode().replace("\r\n", "\n"))


def test_a_checkout_with_an_eol_attribute_is_the_commit(make_repo, daemon_for):
    repo = _filtered_repo(make_repo, {}, {".gitattributes": "* text eol=crlf\n"})
    raw = (repo.path / "web" / "cart.js").read_bytes()
    assert b"\r\n" in raw
    _assert_only_the_edit_is_worktree(repo, daemon_for, "web/cart.js", b"ADDED = 1\r\n",
                                      raw.decode().replace("\r\n", "\n"))


def test_a_checkout_through_a_clean_filter_driver_is_the_commit(make_repo, daemon_for):
    # blobs in capitals, the worktree in small letters: only the driver maps one to the other
    repo = _filtered_repo(
        make_repo,
        {"filter.upper.clean": "tr a-z A-Z", "filter.upper.smudge": "tr A-Z a-z"},
        {".gitattributes": "*.txt filter=upper\n", "notes/a.txt": "first note\n",
         "notes/b.txt": "second note\n"})
    assert (repo.path / "notes" / "a.txt").read_text() == "first note\n"
    _assert_only_the_edit_is_worktree(repo, daemon_for, "notes/a.txt", b"added = 1\n",
                                      "FIRST NOTE\n")


def test_a_checkout_in_a_working_tree_encoding_is_the_commit(make_repo, daemon_for):
    repo = _filtered_repo(make_repo, {}, {".gitattributes": "*.ps1 working-tree-encoding=UTF-16\n",
                                          "tools/run.ps1": "Write-Host 'hi'\n".encode("utf-16")})
    raw = (repo.path / "tools" / "run.ps1").read_bytes()
    assert raw.decode("utf-16") == "Write-Host 'hi'\n"  # UTF-16 on disk, UTF-8 in the blob
    order = "utf-16-le" if raw.startswith(b"\xff\xfe") else "utf-16-be"  # after the BOM
    _assert_only_the_edit_is_worktree(repo, daemon_for, "tools/run.ps1",
                                      "ADDED = 1\n".encode(order), "Write-Host 'hi'\n")


def test_a_failing_clean_filter_leaves_the_file_as_it_is(make_repo, daemon_for):
    repo = _filtered_repo(make_repo, {"filter.broken.clean": "exit 3"},
                          {".gitattributes": "*.cfg filter=broken\n", "app.cfg": "a = 1\n"})
    proc = daemon_for(repo)
    (repo.path / "app.cfg").write_text("a = 2\n")
    wait_for(lambda: _docs(repo).get("app.cfg") == ("worktree", "a = 2\n"), "the edit")
    assert "the clean filter 'broken' exited 3 on app.cfg" in proc.log()
    assert "Traceback" not in proc.log()


def _fill(disk) -> None:
    """Fill ``disk`` to the last byte."""
    fd = os.open(disk / "filler", os.O_WRONLY | os.O_CREAT)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError as exc:
        assert exc.errno == errno.ENOSPC
    finally:
        os.close(fd)


def test_paths_of_a_failed_update_are_retried(make_repo, daemon_for, tiny_disk):
    repo = make_repo()
    repo.commit("Sources", {n: t for n, t in sample_files().items() if not n.startswith("lib/")})
    store = tiny_disk / "store"
    run_cli("init", str(repo.path), "--store", str(store))
    run_cli("backfill", str(repo.path))
    proc = daemon_for(repo)
    _fill(tiny_disk)
    text = "".join(f"def retry_{n}(x):\n    return x + {n * 7919 % 1000}\n" for n in range(3000))
    (repo.path / "edited.py").write_text(text)
    wait_for(lambda: "updating the store failed" in proc.log(), "the update to fail")
    assert _docs(repo).get("edited.py") is None
    (tiny_disk / "filler").unlink()  # room again: the retry must still know the file
    wait_for(lambda: _docs(repo).get("edited.py") == ("worktree", text),
             "the file's document after the failure cleared")
    assert proc.proc.poll() is None and "Traceback" not in proc.log()


def test_a_file_gone_before_it_is_read_leaves_no_document(live_repo, daemon):
    proc = daemon()
    for n in range(20):  # each one gone before the burst settles and the daemon reads it
        path = live_repo.path / f"flash{n}.py"
        path.write_text(f"F = {n}\n")
        path.unlink()
    (live_repo.path / "marker.py").write_text("M = 1\n")
    wait_for(lambda: _docs(live_repo).get("marker.py") == ("worktree", "M = 1\n"), "the marker")
    assert not [p for p in _docs(live_repo) if p.startswith("flash")]
    assert "Traceback" not in proc.log()


def test_a_directory_replaced_by_a_file(live_repo, daemon):
    proc = daemon()
    (live_repo.path / "scratch").mkdir()
    (live_repo.path / "scratch" / "a.py").write_text("A = 1\n")
    wait_for(lambda: "scratch/a.py" in _docs(live_repo), "the file in the directory")
    shutil.rmtree(live_repo.path / "scratch")
    (live_repo.path / "scratch").write_text("SCRATCH = 2\n")
    wait_for(lambda: _docs(live_repo).get("scratch") == ("worktree", "SCRATCH = 2\n"),
             "the file that took the directory's name")
    assert "scratch/a.py" not in _docs(live_repo)
    # and back: the file replaced by a directory again
    (live_repo.path / "scratch").unlink()
    (live_repo.path / "scratch").mkdir()
    (live_repo.path / "scratch" / "b.py").write_text("B = 3\n")
    wait_for(lambda: "scratch/b.py" in _docs(live_repo) and "scratch" not in _docs(live_repo),
             "the directory again")
    assert "Traceback" not in proc.log()


def test_a_fifo_in_the_worktree_is_never_opened(live_repo, daemon):
    proc = daemon()
    os.mkfifo(live_repo.path / "pipe.py")  # opened for reading, it would block for ever
    (live_repo.path / "after.py").write_text("AFTER = 1\n")
    wait_for(lambda: "after.py" in _docs(live_repo), "a file written after the FIFO")
    assert "pipe.py" not in _docs(live_repo)
    state = json.loads((live_repo.path / ".git" / "repofeed" / "daemon.json").read_text())
    assert state["pid"] == proc.proc.pid and proc.proc.poll() is None
