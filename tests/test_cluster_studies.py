"""``mscmt grid|ablate|crossdata --ray``: the rows as Ray tasks on a small local cluster (2 CPUs), tiny models."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mscmt_cli.cluster.connect import INSTALL_HINT, check_address, gpus_per_task, task_error, worker_settings
from mscmt_cli.errors import MscmtError
from mscmt_cli.settings import Settings
from tests.conftest import import_or_skip

REPO = Path(__file__).resolve().parents[1]
FAST = ["--epochs", "1", "--head-lr", "1e-2"]
FILES = ("results.json", "results.csv", "report.md", "chart.png")


def _without_trained_now(results: dict) -> dict:
    return {**results, "rows": [{k: v for k, v in row.items() if k != "trained_now"} for row in results["rows"]]}


def _trained_now(out: Path) -> dict[str, bool]:
    return {row["name"]: row["trained_now"] for row in json.loads((out / "results.json").read_text())["rows"]}


@pytest.mark.parametrize("command", [["grid"], ["ablate"], ["crossdata", "a", "b"]])
def test_without_ray_the_option_says_how_to_install_it(command, mscmt, monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError
    result = mscmt([*command, "--ray", "local", "--data-dir", tmp_path, "--out", tmp_path / "s"])
    assert result.code == 2 and result.err.strip() == f"error: {INSTALL_HINT}"
    assert 'pip install "mscmt[ray]"' in result.err
    assert not (tmp_path / "s").exists()


def test_gpus_per_row_needs_ray(mscmt, tmp_path):
    result = mscmt(["ablate", "--gpus-per-row", "1", "--data-dir", tmp_path, "--out", tmp_path / "s"])
    assert result.code == 2 and result.err.strip() == "error: --gpus-per-row needs --ray ADDRESS"


def test_addresses_and_worker_settings(tmp_path, monkeypatch):
    for good in ("local", "auto", "ray://head:10001", "10.0.0.5:6379", " auto "):
        assert check_address(good) == good.strip()
    for bad in ("", "head", "http://head", "head:port"):
        with pytest.raises(MscmtError, match="expected local, auto"):
            check_address(bad)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "clip").mkdir()
    settings = Settings(out=Path("runs/a"), data_dir=Path("data"), model_paths={"clip-vit-l14": "clip", "bertweet": "vinai/bertweet-base"})
    shipped = worker_settings(settings, 0, "--gpus-per-row")
    assert shipped.out == tmp_path / "runs" / "a" and shipped.data_dir == tmp_path / "data"
    assert shipped.model_paths == {"clip-vit-l14": str(tmp_path / "clip"), "bertweet": "vinai/bertweet-base"}  # a hub id stays
    assert shipped.device == "cpu" and worker_settings(settings, 1, "--gpus-per-row").device == "auto"
    with pytest.raises(MscmtError, match="--device cuda needs GPUs"):
        worker_settings(settings.model_copy(update={"device": "cuda"}), 0, "--gpus-per-row")
    with pytest.raises(MscmtError, match="would hold GPUs"):
        worker_settings(settings.model_copy(update={"device": "cpu"}), 1, "--gpus-per-row")


class _Cluster:
    """What the GPU and worker checks read of Ray: ``nodes()`` and ``cluster_resources()``."""

    def __init__(self, *gpus: float, cpus: float = 16) -> None:
        self.gpus, self.cpus = gpus, cpus

    def nodes(self) -> list[dict]:
        return [{"Alive": True, "Resources": {"CPU": self.cpus, **({"GPU": g} if g else {})}} for g in self.gpus]

    def cluster_resources(self) -> dict:
        return {"CPU": self.cpus * len(self.gpus), "GPU": float(sum(self.gpus))}


def test_gpus_per_task_and_workers():
    from mscmt_cli.cluster.tagging import check_workers, default_workers

    assert gpus_per_task(_Cluster(0, 0), None, "--gpus-per-row") == 0, "no GPUs: rows train on CPU"
    assert gpus_per_task(_Cluster(8, 4), None, "--gpus-per-row") == 1, "GPUs: one each by default"
    assert gpus_per_task(_Cluster(8), 0.5, "--gpus-per-row") == 0.5 and gpus_per_task(_Cluster(8), 0, "--gpus-per-row") == 0
    for given, message in (
        (2.5, "above 1 it must be a whole number"),
        (16, "no node of the cluster has that many GPUs (the most on one node: 8)"),
    ):
        with pytest.raises(MscmtError, match=re.escape(message)):
            gpus_per_task(_Cluster(8, 4), given, "--gpus-per-row")
    with pytest.raises(MscmtError, match="no node of the cluster has that many GPUs"):
        gpus_per_task(_Cluster(0), 1, "--gpus-per-worker")
    assert default_workers(_Cluster(8, 4), 1) == 12 and default_workers(_Cluster(8), 0.5) == 16
    assert default_workers(_Cluster(0, cpus=6), 0) == 6
    check_workers(_Cluster(8, 4), 12, 1)
    with pytest.raises(MscmtError, match="needs 13 GPUs; the cluster has 12"):
        check_workers(_Cluster(8, 4), 13, 1)
    with pytest.raises(MscmtError, match="the cluster has 2 CPU"):
        check_workers(_Cluster(0, cpus=2), 3, 0)


def test_task_errors_are_one_line():
    class Wrapped(Exception):
        def __init__(self, cause: BaseException | None, text: str = "") -> None:
            super().__init__(text)
            self.cause = cause

    assert task_error(Wrapped(MscmtError("row V1: --out x is not empty"))) == "row V1: --out x is not empty"
    assert task_error(Wrapped(ValueError("bad\nsecond line"))) == "ValueError: bad"
    died = "The actor died because of an error raised in its creation task, \x1b[36mray::TagWorker.__init__()\x1b[39m\n  File x\n"
    died += "ModuleNotFoundError: No module named 'mscmt_cli.cluster'\n"
    assert task_error(Wrapped(None, died)) == (
        "ModuleNotFoundError: No module named 'mscmt_cli.cluster' "
        '(the workers need the same mscmt as this machine: pip install "mscmt[ray]" on every node)'
    )
    assert task_error(Wrapped(None, "The worker died unexpectedly\n")) == "Wrapped: The worker died unexpectedly"


@pytest.mark.slow
def test_ablate_on_ray_equals_one_machine_and_a_rerun_trains_only_the_failed_rows(tiny, corpus, mscmt, one_thread, tmp_path, ray_here):
    base = ["ablate", *corpus.args(), *FAST, *tiny.model_path_args()]
    here = mscmt([*base, "--out", tmp_path / "here"])
    assert here.code == 0, here.err

    # V1's directory (in a directory this study marked as its own) holds a run this study did not write:
    # V1 fails on its worker with that error, V2 and full still train
    out = tmp_path / "cluster"
    (out / "V1").mkdir(parents=True)
    (out / "V1" / "run.json").write_text("{}")
    shutil.copy(tmp_path / "here" / "study.json", out / "study.json")
    broken = mscmt([*base, "--ray", "local", "--out", out])
    assert broken.code == 2
    assert f"V1: failed: --out {out / 'V1'} already holds a run (run.json)" in broken.err
    assert "V2: trained" in broken.err and "full: trained" in broken.err
    assert "1 of 3 rows failed (V1; errors above)" in broken.err
    assert "(train_row_task pid=" in broken.err, "rows run as Ray tasks, whose output Ray forwards"
    assert all((out / row / "test_scores.json").is_file() for row in ("V2", "full"))
    assert not (out / "results.json").exists(), "a study with a failed row writes no results, as on one machine"
    full_weights = (out / "full" / "model" / "model.safetensors").stat().st_mtime_ns
    shutil.rmtree(out / "V1")

    again = mscmt([*base, "--ray", "local", "--out", out])
    assert again.code == 0, again.err
    assert "full: already finished, skipped" in again.err and "V2: already finished, skipped" in again.err and "V1: trained" in again.err
    assert (out / "full" / "model" / "model.safetensors").stat().st_mtime_ns == full_weights
    assert _trained_now(out) == {"V1": True, "V2": False, "full": False}

    # the same rows, scores and files as the one-machine study with the same seed
    mine, theirs = (json.loads((d / "results.json").read_text()) for d in (out, tmp_path / "here"))
    assert _without_trained_now(mine) == _without_trained_now(theirs)
    for name in ("results.csv", "report.md"):
        assert (out / name).read_text() == (tmp_path / "here" / name).read_text(), name
    assert (out / "chart.png").stat().st_size > 0
    for row in ("V1", "V2", "full"):
        assert (out / row / "test_scores.json").read_text() == (tmp_path / "here" / row / "test_scores.json").read_text()


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}


def _kill_session(sid: int) -> None:
    """SIGKILL every process of session ``sid`` (the driver's; Ray's workers each have a process group of their own)."""
    for name in os.listdir("/proc"):
        try:
            if name.isdigit() and os.getsid(int(name)) == sid:
                os.kill(int(name), signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            continue


@pytest.mark.slow
def test_driver_killed_midway_then_the_rerun_finishes_only_the_unfinished_rows(tiny, corpus, mscmt, one_thread, tmp_path):
    """SIGKILL of the driver and its local cluster while rows train; the rerun skips the finished row, resumes the
    others from their checkpoints, and every row scores as in an uninterrupted one-machine grid."""
    import_or_skip("ray")
    out = tmp_path / "study"
    # 1, 48 and 24 steps an epoch: the first row ends long before the second, which trains beside it from the start
    rows = ["lr0.001-bs48", "lr0.001-bs1", "lr0.001-bs2"]
    args = ["grid", "--lrs", "1e-3", "--batch-sizes", "48,1,2", *corpus.args(images=False), "--epochs", "3", "--patience", "3"]
    args += ["--image", "none", "--fusion", "none", "--head-lr", "1e-2", *tiny.model_path_args()]
    cmd = [sys.executable, "-m", "mscmt_cli", *args, "--ray", "local", "--out", str(out)]
    driver = subprocess.Popen(cmd, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.time() + 300
        while time.time() < deadline and driver.poll() is None:
            second = out / rows[1] / "metrics.jsonl"  # an epoch of the second row is checkpointed when its line is written
            if (out / rows[0] / "test_scores.json").is_file() and second.is_file() and second.stat().st_size:
                break
            time.sleep(0.02)
    finally:  # the driver and the local cluster it started, at once: a crash of the machine that ran the study
        _kill_session(driver.pid)
        driver.wait()
    finished = {r for r in rows if (out / r / "test_scores.json").is_file()}
    assert finished == {rows[0]}, "killed while the other rows were training"
    rerun = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    assert f"{rows[0]}: already finished, skipped" in rerun.stderr and f"{rows[1]}: resuming the interrupted run in" in rerun.stderr
    assert _trained_now(out) == {rows[0]: False, rows[1]: True, rows[2]: True}

    here = mscmt([*args, "--out", tmp_path / "here"])
    assert here.code == 0, here.err
    mine, theirs = (json.loads((d / "results.json").read_text()) for d in (out, tmp_path / "here"))
    assert _without_trained_now(mine) == _without_trained_now(theirs), "a resumed row scores as an uninterrupted one"
