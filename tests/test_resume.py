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

from mscmt_cli.errors import MscmtError
from tests.cli_support import copy_run as _copy_run
from tests.cli_support import one_line_error as _one_line_error
from tests.cli_support import snapshot as _snapshot
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


# --- resuming a checkpoint that does not fit the run ------------------------------------------------------------------


def _resume(mscmt, tiny, run: Path):
    return mscmt(["train", "--resume", run, *tiny.model_path_args()])


@pytest.mark.parametrize("change", ["drop", "add", "reshape"])
def test_resume_with_weights_of_another_model(trained_run, tiny, tmp_path, mscmt, change):
    from safetensors.torch import load_file, save_file

    run = _copy_run(trained_run, tmp_path / "R")
    path = run / "checkpoint" / "model.safetensors"
    weights = load_file(str(path))
    name = sorted(k for k in weights if k.startswith("fusion."))[0]
    if change == "drop":
        del weights[name]
    elif change == "add":
        weights["fusion.extra.weight"] = torch.zeros(2, 2)
    else:
        weights[name] = torch.zeros(*weights[name].shape, 2)
    save_file(weights, str(path))
    before = _snapshot(run)
    label = {"drop": "missing", "add": "unexpected", "reshape": "wrong shape"}[change]
    _one_line_error(_resume(mscmt, tiny, run), f"{path}: the checkpoint's weights do not fit", label)
    assert _snapshot(run) == before


@pytest.mark.parametrize("damage", ["no optimizer", "not a dict", "other optimizer", "truncated"])
def test_resume_with_a_broken_state(trained_run, tiny, tmp_path, mscmt, damage):
    run = _copy_run(trained_run, tmp_path / "R")
    path = run / "checkpoint" / "state.pt"
    state = torch.load(path, weights_only=True)
    if damage == "no optimizer":
        del state["optimizer"]
        torch.save(state, path)
    elif damage == "not a dict":
        torch.save([1, 2, 3], path)
    elif damage == "other optimizer":
        state["optimizer"]["param_groups"][0]["params"] = [0]
        torch.save(state, path)
    else:
        path.write_bytes(path.read_bytes()[:100])
    before = _snapshot(run)
    needle = {
        "no optimizer": "no optimizer",
        "not a dict": "not a whole training state",
        "other optimizer": "does not fit this run",
        "truncated": "unreadable checkpoint",
    }[damage]
    _one_line_error(_resume(mscmt, tiny, run), str(path.parent), needle)
    assert _snapshot(run) == before


# --- a run.json with bad settings is named ----------------------------------------------------------------------------


def test_run_json_names_its_own_bad_settings(trained_run, tiny, tmp_path, mscmt):
    import json

    from mscmt_cli.engine.rundir import read_run_settings

    run = _copy_run(trained_run, tmp_path / "R")
    record = json.loads((run / "run.json").read_text())
    for change, needle in (
        ({"foo": 1}, "run.json: unknown setting 'foo'"),
        ({"lr": "fast"}, "run.json: setting 'lr'"),
        ({"epochs": 0}, "run.json: setting 'epochs'"),
    ):
        (run / "run.json").write_text(json.dumps({**record, "settings": {**record["settings"], **change}}))
        with pytest.raises(MscmtError, match=needle):
            read_run_settings(run)
        result = _resume(mscmt, tiny, run)
        _one_line_error(result, str(run / "run.json"), needle)
        assert "option --" not in result.err
    (run / "run.json").write_text('{"settings": {}, \n  oops')
    _one_line_error(_resume(mscmt, tiny, run), f"{run / 'run.json'}:2: not valid JSON")
