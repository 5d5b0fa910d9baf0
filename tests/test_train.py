"""``repofeed train``: the loop, checkpoints that resume exactly, signals, refusals."""

from __future__ import annotations

import json
import os
import signal

import pytest

from helpers import run_cli
from repofeed.daemon.ingest import backfill
from repofeed.daemon.init import init_store
from repofeed.store.errors import TrainError
from repofeed.train import checkpoint
from repofeed.train.loop import Trainer, TrainOptions

SMALL = dict(batch_size=4, context=64, overlap=32, device="cpu", log_every=1)


@pytest.fixture
def small_store(sample_repo):
    init_store(sample_repo.path, vocab_size=600, max_tokens=64, overlap=32)
    backfill(sample_repo.path)
    return sample_repo


def _losses(run_dir):
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [(r["step"], r["loss"]) for r in map(json.loads, lines)]


def _options(repo, out, **kw):
    return TrainOptions(store=str(repo.path), out=str(out), **{**SMALL, **kw})


def test_a_run_stopped_by_sigterm_and_resumed_logs_the_same_losses(small_store, tmp_path):
    """Stopped by a real SIGTERM at step 5, with new commits ingested before the resume: the
    resumed run's losses equal, bit for bit, those of a run that never stopped."""
    whole = Trainer(_options(small_store, tmp_path / "whole", max_steps=12, seed=3)).run()
    assert whole.steps == 12 and not whole.stopped

    def stop_at_five(record):
        if record["step"] == 5:
            os.kill(os.getpid(), signal.SIGTERM)

    first = Trainer(_options(small_store, tmp_path / "split", max_steps=12, seed=3),
                    on_step=stop_at_five).run()
    assert first.stopped and first.steps == 5
    assert checkpoint.read_info(tmp_path / "split")["step"] == 5

    # the daemon writes new data meanwhile: it joins at the next epoch, not this one
    small_store.commit("A new module", {"lib/extra.py": "def extra(x):\n    return x + 1\n" * 40})
    backfill(small_store.path)

    rest = Trainer(_options(small_store, tmp_path / "split", max_steps=12, seed=3,
                            resume=True)).run()
    assert rest.steps == 12 and not rest.stopped
    assert _losses(tmp_path / "split") == _losses(tmp_path / "whole")


def test_the_command_line_trains_logs_and_resumes(small_store, tmp_path):
    out = tmp_path / "run"
    args = ["train", str(small_store.path), "--out", str(out), "--device", "cpu",
            "--batch-size", "2", "--context", "64", "--overlap", "32", "--log-every", "1"]
    done = run_cli(*args, "--steps", "3")
    assert "Trained 3 steps" in done.stdout
    assert "step 3/3" in done.stderr and "tok/s" in done.stderr and "lr " in done.stderr
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2, 3]
    assert {"loss", "lr", "tokens", "tokens_per_s", "epoch"} <= set(records[0])
    info = checkpoint.read_info(out)
    assert info["step"] == 3 and info["model"]["kind"] == "gpt" and info["context"] == 64

    again = run_cli(*args, "--steps", "5", check=False)
    assert again.returncode == 1 and "--resume" in again.stderr    # never overwrites a run

    run_cli(*args, "--steps", "5", "--resume")
    assert [r["step"] for r in map(json.loads, (out / "metrics.jsonl").read_text()
                                   .splitlines())] == [1, 2, 3, 4, 5]
    model, info = checkpoint.load_model(out)
    assert info["step"] == 5 and not model.training

    # a resume takes the run's own settings; one given with another value is refused
    other = run_cli("train", str(small_store.path), "--out", str(out), "--resume",
                    "--batch-size", "4", check=False)
    assert other.returncode == 1 and "batch_size 4" in other.stderr and "(the run has 2)" \
        in other.stderr
    run_cli("train", str(small_store.path), "--out", str(out), "--resume", "--steps", "6")
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2, 3, 4, 5, 6]
    assert records[-1]["tokens"] == 6 * 2 * 64           # still batch 2 × context 64


def test_cuda_without_cuda_is_refused_plainly(small_store, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    done = run_cli("train", str(small_store.path), "--out", str(tmp_path / "r"), "--device",
                   "cuda", "--steps", "1", check=False)
    assert done.returncode == 1
    assert "--device cuda" in done.stderr and "--device cpu" in done.stderr
    assert "Traceback" not in done.stderr


def test_resuming_on_a_store_with_another_tokenizer_is_refused(small_store, make_repo, tmp_path):
    Trainer(_options(small_store, tmp_path / "run", max_steps=2)).run()
    other = make_repo("other")
    other.commit("Something else entirely", {"main.go": "package main\n\nfunc main() {}\n" * 30})
    init_store(other.path, vocab_size=300, max_tokens=64, overlap=32)
    backfill(other.path)
    with pytest.raises(TrainError, match="tokenizer"):
        Trainer(_options(other, tmp_path / "run", max_steps=4, resume=True)).run()


def test_a_model_that_does_not_fit_the_budget_is_refused_with_numbers_and_advice(
        small_store, tmp_path):
    with pytest.raises(TrainError) as caught:
        Trainer(_options(small_store, tmp_path / "run", max_steps=1,
                         memory_budget=1 << 20)).run()
    message = str(caught.value)
    assert "MiB" in message or "GiB" in message
    assert "batch" in message and "checkpointing" in message
    assert not (tmp_path / "run" / "checkpoint").exists()


def test_a_store_with_no_data_is_refused(make_repo, tmp_path):
    repo = make_repo("empty")
    repo.commit("Only a tokenizer corpus", {"a.py": "x = 1\n" * 200})
    init_store(repo.path, vocab_size=300, max_tokens=64, overlap=32)   # no backfill
    done = run_cli("train", str(repo.path), "--out", str(tmp_path / "r"), "--device", "cpu",
                   "--steps", "1", check=False)
    assert done.returncode == 1 and "backfill" in done.stderr
    assert "Traceback" not in done.stderr


def _records(run_dir):
    path = run_dir / "metrics.jsonl"
    return [json.loads(x) for x in path.read_text().splitlines()] if path.is_file() else []


@pytest.fixture
def little_store(make_repo):
    """A store of a few short files: an epoch is a handful of batches."""
    repo = make_repo("little")
    repo.commit("A few functions", {
        f"src/m{i}.py": "".join(f"def f{i}_{j}(x):\n    return x + {j}\n" for j in range(12))
        for i in range(3)})
    init_store(repo.path, vocab_size=300, max_tokens=64, overlap=32)
    backfill(repo.path)
    return repo


def test_follow_trains_on_new_commits_without_restarting(little_store, tmp_path):
    """`train --follow --replay 0.5` runs through the store, waits, takes in the commits the
    writer adds as a new epoch, and stops on SIGTERM with a checkpoint (exit 0)."""
    import subprocess
    import sys

    from helpers import wait_for
    from repofeed.train.stream import TrainStream

    small_store = little_store
    first_epoch = TrainStream(small_store.path, max_tokens=64, overlap=32).epoch_length()
    assert first_epoch >= 8
    out = tmp_path / "run"
    log = open(tmp_path / "stderr", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "repofeed.daemon", "train", str(small_store.path), "--out",
         str(out), "--device", "cpu", "--batch-size", "4", "--context", "64", "--overlap", "32",
         "--follow", "--replay", "0.5", "--poll-seconds", "0.1", "--checkpoint-every", "0",
         "--log-every", "1"], stderr=log, stdout=subprocess.PIPE, text=True)
    try:
        # every full batch of the first epoch is trained on, then the stream waits
        wait_for(lambda: len(_records(out)) >= first_epoch // 4, "the first epoch", 120)
        assert all(r["epoch"] == 0 for r in _records(out))
        small_store.commit("New code arrives", {
            "lib/arrived.py": "".join(f"def arrived_{i}(x):\n    return x * {i}\n"
                                      for i in range(60))})
        backfill(small_store.path)
        wait_for(lambda: any(r["epoch"] >= 1 for r in _records(out)), "an epoch of new data",
                 120)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        log.close()
    stderr = (tmp_path / "stderr").read_text()
    assert "stopped at step" in stderr and "Traceback" not in stderr
    assert checkpoint.read_info(out)["step"] == _records(out)[-1]["step"]


def test_train_on_a_temporal_split_then_eval_scores_the_held_out_commits(little_store,
                                                                          tmp_path):
    repo = little_store
    cut = repo.head()
    repo.commit("Rework m1", {"src/m1.py": "".join(
        f"def g{j}(y):\n    return y * {j}\n" for j in range(15))})
    out = tmp_path / "run"
    done = run_cli("train", str(repo.path), "--holdout", "1", "--out", str(out), "--device",
                   "cpu", "--batch-size", "2", "--context", "64", "--overlap", "32", "--steps",
                   "3")
    assert "1 newer commit(s) held out" in done.stderr
    info = checkpoint.read_info(out)
    assert info["cut"] == cut and info["split"]["held_out"] == [repo.head()]

    report = json.loads(run_cli("eval", str(out), "--json").stdout)
    assert report["cut"]["cut"] == cut
    files, records = report["parts"]["files"], report["parts"]["records"]
    assert files["items"] == 1 and records["items"] == 1       # src/m1.py, and its record
    assert files["by_language"].keys() == {"python"} and "core" in files["by_class"]
    for part in (files, records):
        assert part["bits_per_byte"] > 0 and part["tokens"] > 0
    # the rewritten lines of src/m1.py, filled in, and left to right
    infill, lr = report["parts"]["infill"], report["parts"]["lr_middle"]
    assert infill["items"] == lr["items"] == 1 and infill["bytes"] == lr["bytes"] > 0
    assert any("the suffix is worth" in note for note in report["notes"])
    only = json.loads(run_cli("eval", str(out), "--json", "--parts", "infill").stdout)
    assert list(only["parts"]) == ["infill"] and only["parts"]["infill"] == infill
    table = run_cli("eval", str(out)).stdout
    assert "bits/byte" in table and "python" in table and "lr_middle" in table


@pytest.mark.slow
def test_ablate_trains_each_configuration_per_seed_and_tables_the_held_out_bits(
        little_store, tmp_path):
    repo = little_store
    repo.commit("Rework m2", {"src/m2.py": "".join(
        f"def h{j}(z):\n    return z - {j}\n" for j in range(15))})
    out = tmp_path / "ablate"
    args = ["ablate", str(repo.path), "--holdout", "1", "--configs", "mission,default",
            "--seeds", "2", "--tokens", "16384", "--out", str(out)]
    done = run_cli(*args, timeout=600)
    assert "| mission |" in done.stdout and "| default |" in done.stdout
    report = json.loads((out / "ablation.json").read_text())
    assert [r["config"] for r in report["summary"]] == ["mission", "default"]
    assert len(report["runs"]) == 4 and report["eval_context"] == 512
    for run in report["runs"]:
        assert run["tokens"] == 16384 and run["steps"] == 4     # equal compute: 4 × 4,096
        assert run["bpb"]["files"] > 0 and run["bpb"]["records"] > 0
        assert run["by_class"]["core"] > 0                      # src/m2.py, by path class
        assert run["bpb"]["infill"] > 0 and run["bpb"]["lr_middle"] > 0
    assert "By path class" in done.stdout and "| core |" in done.stdout
    assert "Infilling" in done.stdout and "lr middle − infill" in done.stdout
    for row in report["summary"]:
        assert row["all"]["min"] <= row["all"]["mean"] <= row["all"]["max"]
        assert row["infill"]["min"] <= row["infill"]["mean"] <= row["infill"]["max"]
    # the same seed gives the same result: a rerun reuses finished runs, and they agree; a
    # run scored before the infilling parts existed is scored on them from its checkpoint
    older = out / "runs" / "default-seed1" / "result.json"
    result = json.loads(older.read_text())
    del result["bpb"]["infill"], result["bpb"]["lr_middle"]
    older.write_text(json.dumps(result))
    again = run_cli(*args, timeout=600)

    def scores(summary: list[dict]) -> list[dict]:   # the wall time grows by the scoring
        return [{k: v for k, v in row.items() if k != "wall_seconds"} for row in summary]

    assert scores(json.loads((out / "ablation.json").read_text())["summary"]) == \
        scores(report["summary"])
    assert (out / "ablation.md").read_text() in again.stdout


def test_a_crash_while_a_checkpoint_is_written_leaves_the_previous_one(little_store,
                                                                       tmp_path):
    """The states a kill -9 can leave between save()'s steps: a half-written checkpoint.tmp,
    and the old checkpoint moved aside before the new one is in place. Either way the run
    resumes from a whole checkpoint."""
    out = tmp_path / "run"
    Trainer(_options(little_store, out, max_steps=2)).run()
    # killed while writing: a partial checkpoint.tmp beside the complete one
    (out / checkpoint.TMP).mkdir()
    (out / checkpoint.TMP / checkpoint.STATE).write_bytes(b"\x80 half a pickle")
    assert checkpoint.latest(out) == out / checkpoint.CURRENT
    # killed between the two renames: only checkpoint.old is whole
    (out / checkpoint.CURRENT).rename(out / checkpoint.OLD)
    assert checkpoint.latest(out) == out / checkpoint.OLD
    resumed = Trainer(_options(little_store, out, max_steps=4, resume=True)).run()
    assert resumed.steps == 4
    assert checkpoint.read_info(out)["step"] == 4 and not (out / checkpoint.OLD).exists()
