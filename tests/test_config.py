"""`repofeed config show` and configuration errors that say where the bad setting is."""

from __future__ import annotations

import json

import pytest

from helpers import run_cli


@pytest.fixture
def small_repo_factory(make_repo):
    def make():
        repo = make_repo("cfg")
        repo.commit("Some code", {"a.py": "def f(x):\n    return x + 1\n" * 40})
        return repo

    return make


def test_config_show_says_where_each_value_comes_from(small_repo_factory, monkeypatch):
    repo = small_repo_factory()
    repo.write("repofeed.toml", "# windows\n\nmax_tokens = 512\noverlap = 128\n")
    monkeypatch.setenv("REPOFEED_GC_GRACE_SECONDS", "60")
    shown = json.loads(run_cli("config", "show", str(repo.path), "--json").stdout)
    assert shown["effective"]["max_tokens"] == 512 and shown["effective"]["overlap"] == 128
    assert shown["source"]["max_tokens"] == f"{repo.path / 'repofeed.toml'}:3"
    assert shown["source"]["overlap"] == f"{repo.path / 'repofeed.toml'}:4"
    assert shown["source"]["gc_grace_seconds"] == "REPOFEED_GC_GRACE_SECONDS"
    assert shown["effective"]["gc_grace_seconds"] == 60
    assert shown["source"]["vocab_size"] == "default" and shown["store"] is None
    table = run_cli("config", "show", str(repo.path)).stdout
    assert "repofeed.toml:3" in table and "REPOFEED_GC_GRACE_SECONDS" in table


def test_config_show_sets_the_effective_values_beside_the_stores(small_repo_factory):
    repo = small_repo_factory()
    run_cli("init", str(repo.path), "--max-tokens", "256", "--overlap", "64")
    repo.write("repofeed.toml", "max_tokens = 512\noverlap = 128\n")
    shown = json.loads(run_cli("config", "show", str(repo.path), "--json").stdout)
    assert shown["store"]["max_tokens"] == 256 and shown["effective"]["max_tokens"] == 512
    table = run_cli("config", "show", str(repo.path)).stdout
    assert "init --force" in table


def test_errors_name_the_file_and_line(small_repo_factory):
    repo = small_repo_factory()
    repo.write("repofeed.toml", "max_tokens = 512\nwindw = 3\n")
    done = run_cli("config", "show", str(repo.path), check=False)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert f"{repo.path / 'repofeed.toml'}:2: unknown config key 'windw'" in done.stderr

    repo.write("repofeed.toml", "\noverlap = 2000\n")
    done = run_cli("init", str(repo.path), check=False)
    assert "overlap must be" in done.stderr and "overlap set in" in done.stderr
    assert "repofeed.toml:2)" in done.stderr

    # the default overlap is fine; the file's max_tokens is what makes it too large
    repo.write("repofeed.toml", "max_tokens = 512\n")
    done = run_cli("init", str(repo.path), check=False)
    assert "overlap must be" in done.stderr and "max_tokens set in" in done.stderr

    (repo.path / "repofeed.toml").unlink()
    repo.write("pyproject.toml", '[project]\nname = "x"\n\n[tool.repofeed]\noverlap = "lots"\n')
    done = run_cli("config", "show", str(repo.path), check=False)
    # the table name survives the terminal's markup
    assert "pyproject.toml:5 [tool.repofeed]" in done.stderr and "must be int" in done.stderr


def test_every_data_quality_option_is_typed_validated_and_placed(small_repo_factory,
                                                                  monkeypatch):
    repo = small_repo_factory()
    repo.write("repofeed.toml", 'near_dedup = "drop"\nweight_test = 1\n\n[weights]\n'
                                '"tests/fixtures/**" = 0\n"src/legacy/*" = 0.5\n')
    monkeypatch.setenv("REPOFEED_SECRET_FILES", '[".env", "*.pem"]')
    shown = json.loads(run_cli("config", "show", str(repo.path), "--json").stdout)
    effective, source = shown["effective"], shown["source"]
    assert effective["weights"] == {"tests/fixtures/**": 0.0, "src/legacy/*": 0.5}
    assert source["weights"].endswith("repofeed.toml:4")          # the table's header
    assert effective["weight_test"] == 1.0 and isinstance(effective["weight_test"], float)
    assert effective["near_dedup"] == "drop" and source["near_dedup"].endswith(":1")
    assert effective["secret_files"] == [".env", "*.pem"]
    assert source["secret_files"] == "REPOFEED_SECRET_FILES"
    assert "weights" in shown["read_time"] and "max_tokens" not in shown["read_time"]
    table = run_cli("config", "show", str(repo.path)).stdout
    assert "applies" in table and "needs no re-ingest" in table


@pytest.mark.parametrize("text, said", [
    ('near_dedup = "sometimes"\n', "near_dedup must be one of downweight, drop, off"),
    ("curriculum = 3\n", "'curriculum' (from"),
    ('\n[weights]\n"src/**" = "lots"\n', "the weight of 'src/**' must be a number"),
    ("filter_min_alpha_fraction = 1.5\n", "must be a fraction between 0 and 1"),
    ('secret_files = ".env"\n', "must be a list of strings"),
    ('\n\n[weights]\n"src/[" = 2\n', "src/["),
])
def test_quality_options_errors_name_the_file_line_key_and_what_is_allowed(
        small_repo_factory, text, said):
    repo = small_repo_factory()
    repo.write("repofeed.toml", text)
    done = run_cli("config", "show", str(repo.path), check=False)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert said in done.stderr
    line = text.count("\n", 0, text.index("[weights]")) + 1 if "[weights]" in text else 1
    assert f"repofeed.toml:{line}" in done.stderr
