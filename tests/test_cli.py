"""The command line as a user meets it: the real entry point in a subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from helpers import run_cli, sample_files

CONTRACT_KEYS = {"store_path", "repo", "tokenizer_id", "vocab_size", "max_tokens", "overlap",
                 "head", "commits_processed", "evolution_records", "documents", "windows",
                 "tokens", "store_bytes"}


def test_init_backfill_stats_show(sample_repo):
    cwd = sample_repo.path / "src"   # any directory inside the repository works
    run_cli("init", cwd=cwd)
    run_cli("backfill", cwd=cwd)
    stats = json.loads(run_cli("stats", "--json", cwd=cwd).stdout)
    assert CONTRACT_KEYS <= set(stats)
    assert stats["head"] == sample_repo.head()
    assert (stats["max_tokens"], stats["overlap"]) == (1024, 768)
    assert stats["commits_processed"] == 3 and stats["documents"] > 0
    assert stats["windows"] >= stats["documents"] and stats["tokens"] > 0

    human = run_cli("stats", cwd=cwd).stdout
    assert "commits_processed" in human and "windows" in human

    window = run_cli("show", "window", "0", cwd=cwd).stdout
    first_line, text = window.split("\n", 1)
    assert first_line.startswith("window 0: ") and "tokens 0–" in first_line
    path = first_line.split(": ", 1)[1].split(" tokens")[0]
    assert (sample_repo.path / path).read_text().startswith(text.rstrip("\n")[:200])

    record = json.loads(run_cli("show", "record", "0", "--json", cwd=cwd).stdout)
    assert record["change"] == "added" and record["commit"]
    assert record["after"] == sample_files()[record["path"]]
    plain = run_cli("show", "record", "0", cwd=cwd).stdout
    assert plain.split("\n", 1)[1].startswith("<commit_before><commit_msg>Initial import")


def test_show_out_of_range_is_a_clear_error(sample_repo):
    run_cli("init", str(sample_repo.path))
    run_cli("backfill", str(sample_repo.path))
    for kind in ("window", "record"):
        done = run_cli("show", kind, "99999", str(sample_repo.path), check=False)
        assert done.returncode == 1 and f"there is no {kind} 99999" in done.stderr


def test_help_texts():
    done = run_cli("--help")
    for verb in ("init", "backfill", "stats", "show"):
        assert verb in done.stdout
    assert "--vocab-size" in run_cli("init", "--help").stdout


def test_console_script_is_installed():
    exe = Path(sys.executable).parent / "repofeed"
    assert exe.is_file(), f"the `repofeed` console script is missing beside {sys.executable}"
    done = subprocess.run([str(exe), "--help"], capture_output=True, text=True)
    assert done.returncode == 0 and "backfill" in done.stdout


def test_show_record_marks_a_superseded_record(sample_repo):
    """`show record N` reads records by sequence number, superseded ones too, and says so."""
    run_cli("init", str(sample_repo.path))
    run_cli("backfill", str(sample_repo.path))
    records = json.loads(run_cli("stats", "--json", str(sample_repo.path)).stdout)
    last = records["evolution_records"] - 1   # the tweak of the last commit
    assert "superseded" not in run_cli("show", "record", str(last), str(sample_repo.path)
                                       ).stdout.split("\n", 1)[0]
    sample_repo.git("commit", "-q", "--amend", "-m", "Tweak a constant, reworded")
    run_cli("backfill", str(sample_repo.path))
    header = run_cli("show", "record", str(last), str(sample_repo.path)).stdout.split("\n", 1)[0]
    assert header.startswith(f"record {last} (superseded: ") and "datasets leave it out" in header
    as_json = json.loads(run_cli("show", "record", str(last), "--json",
                                 str(sample_repo.path)).stdout)
    assert as_json["superseded"] is True
    newest = run_cli("show", "record", str(last + 1), str(sample_repo.path)).stdout
    assert "superseded" not in newest.split("\n", 1)[0] and "reworded" in newest
