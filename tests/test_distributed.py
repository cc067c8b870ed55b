"""Two CPU processes under torchrun (gloo) match one process with the same global batch."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli_support import train_args

REPO = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _no_dropout_copy(src: Path, dst: Path) -> Path:
    """The tiny BERTweet with its internal dropout off, so runs are comparable step by step."""
    shutil.copytree(src, dst)
    config = json.loads((dst / "config.json").read_text())
    config.update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    (dst / "config.json").write_text(json.dumps(config))
    return dst


def _metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_two_processes_match_one(tiny, corpus, tmp_path):
    bertweet = _no_dropout_copy(tiny.bertweet, tmp_path / "bertweet")
    options = ["--dropout", "0", "--lr", "1e-3", "--head-lr", "1e-2", "--seed", "3", "--device", "cpu"]
    paths = ["--model-path", f"bertweet={bertweet}", "--model-path", f"clip-vit-l14={tiny.clip_vision}"]
    args = train_args(corpus, None, image="clip-vit-l14", fusion="gated", epochs=2, batch_size=8, extra=[*options, *paths])
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    single = tmp_path / "single"
    subprocess.run([sys.executable, "-m", "mscmt_cli", *args, "--out", str(single)], env=env, check=True, capture_output=True, timeout=600)
    double = tmp_path / "double"
    launched = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc-per-node",
            "2",
            "--master-port",
            str(_free_port()),
            "-m",
            "mscmt_cli",
            *args,
            "--out",
            str(double),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert launched.returncode == 0, launched.stderr[-3000:]
    one, two = _metrics(single), _metrics(double)
    assert [r["epoch"] for r in two] == [1, 2]
    for a, b in zip(one, two):
        assert b["train_loss"] == pytest.approx(a["train_loss"], rel=1e-3)
        assert b["valid_weighted_f1"] == pytest.approx(a["valid_weighted_f1"], abs=1e-3)
        assert b["valid_micro_f1"] == pytest.approx(a["valid_micro_f1"], abs=1e-3)
    assert sorted(p.name for p in double.iterdir() if not p.name.startswith(".")) == sorted(
        p.name for p in single.iterdir() if not p.name.startswith(".")
    )
