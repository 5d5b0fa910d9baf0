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
