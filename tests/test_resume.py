"""Kill a real training process with SIGKILL and resume it: same metrics, same weights."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tests.cli_support import train_args

REPO = Path(__file__).resolve().parents[1]


def _train_cmd(tiny, corpus, out: Path, extra: list[str] = ()) -> list[str]:
    options = ["--patience", "4", "--lr", "1e-3", "--head-lr", "1e-2", *extra]
    return [
        sys.executable,
        "-m",
        "mscmt_cli",
        *train_args(corpus, out, tiny, image="clip-vit-l14", fusion="gated", epochs=4, batch_size=4, extra=options),
    ]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}


def _metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run / "model" / "model.safetensors"))


def _kill_after_first_epoch(cmd: list[str], run: Path) -> None:
    proc = subprocess.Popen(cmd, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if (run / "metrics.jsonl").is_file() and (run / "metrics.jsonl").read_text().count("\n") >= 1:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()


@pytest.mark.slow
def test_sigkill_then_resume_equals_uninterrupted(tiny, corpus, tmp_path):
    whole = tmp_path / "whole"
    subprocess.run(_train_cmd(tiny, corpus, whole), env=_env(), check=True, capture_output=True, timeout=600)
    killed = tmp_path / "killed"
    _kill_after_first_epoch(_train_cmd(tiny, corpus, killed), killed)
    assert (killed / "checkpoint" / "state.pt").is_file() or (killed / ".checkpoint.old").is_dir()
    refused = subprocess.run(_train_cmd(tiny, corpus, killed), env=_env(), capture_output=True, text=True, timeout=600)
    assert refused.returncode == 2 and "--resume" in refused.stderr
    resumed = subprocess.run(
        [sys.executable, "-m", "mscmt_cli", "train", "--resume", str(killed)],  # the run's own --model-path values are reused
        env=_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert _metrics(killed) == _metrics(whole)
    a, b = _weights(whole), _weights(killed)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert json.loads((killed / "test_scores.json").read_text()) == json.loads((whole / "test_scores.json").read_text())


def test_same_seed_same_metrics(tiny, corpus, tmp_path, mscmt):
    runs = []
    for name in ("a", "b"):
        out = tmp_path / name
        result = mscmt(train_args(corpus, out, tiny, epochs=2, extra=["--seed", "7"]))
        assert result.code == 0, result.err
        runs.append(_metrics(out))
    assert runs[0] == runs[1]


def test_resume_of_nothing_is_an_error(tmp_path, mscmt):
    result = mscmt(["train", "--resume", tmp_path])
    assert result.code == 2 and "not a run directory" in result.err


def test_resume_of_a_broken_run_record_is_a_one_line_error(tmp_path, mscmt):
    (tmp_path / "run.json").write_text('{"settings": ')
    result = mscmt(["train", "--resume", tmp_path])
    assert result.code == 2 and result.err.startswith(f"error: {tmp_path / 'run.json'}:1: not valid JSON")
    assert "Traceback" not in result.err and "unexpected" not in result.err


@pytest.mark.slow
def test_ctrl_c_says_how_to_resume(tiny, corpus, tmp_path):
    run = tmp_path / "interrupted"
    proc = subprocess.Popen(
        _train_cmd(tiny, corpus, run, ["--epochs", "50", "--patience", "50"]),
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        # as from a terminal: a test run started in the background of a script inherits SIGINT ignored
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.time() + 300
    while time.time() < deadline and not ((run / "metrics.jsonl").is_file() and (run / "metrics.jsonl").read_text().count("\n") >= 1):
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 2 and f"mscmt train --resume {run}" in err and "Traceback" not in err
    state = torch.load(run / "checkpoint" / "state.pt", weights_only=True)
    assert state["progress"]["epoch"] == len(_metrics(run)) >= 1
