"""Atomic writes under SIGKILL: a kill at any instant leaves the old or the new state, never a torn one."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from mscmt_cli.engine.checkpoint import load_checkpoint
from mscmt_cli.errors import MscmtError

REPO = Path(__file__).resolve().parents[1]

WRITER = textwrap.dedent("""
    import sys, torch
    from pathlib import Path
    from mscmt_cli.engine.checkpoint import save_checkpoint
    from mscmt_cli.engine.rundir import write_json
    run = Path(sys.argv[1])
    model = torch.nn.Linear(64, 64)
    for i in range(1, 100000):
        with torch.no_grad():
            model.weight.fill_(float(i))
        save_checkpoint(run, model, {"progress": {"epoch": i}})
        write_json(run / "scores.json", {"epoch": i, "pad": "x" * 200000})
        print(i, flush=True)
""")


@pytest.mark.slow
@pytest.mark.parametrize("delay", [0.05, 0.3, 0.7, 1.1])
def test_kill_during_writes_leaves_a_whole_state(tmp_path, delay):
    run = tmp_path / "run"
    run.mkdir()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(run)], env=env, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "1"  # at least one complete state exists
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    weights, state = load_checkpoint(run)
    epoch = state["progress"]["epoch"]
    assert torch.all(weights["weight"] == float(epoch)), "weights and state must come from the same write"
    scores = json.loads((run / "scores.json").read_text())
    assert scores["pad"] == "x" * 200000 and scores["epoch"] >= 1


# --- an atomic write that fails leaves no temporary file --------------------------------------------------------------


def test_atomic_write_refuses_a_directory_and_leaves_no_temp_file(tmp_path, monkeypatch):
    from mscmt_cli import paths
    from mscmt_cli.engine import rundir

    (tmp_path / "d").mkdir()
    (tmp_path / "f").write_text("keep")
    for target, needle in ((tmp_path / "d", "is a directory"), (tmp_path / "f" / "x.json", "is a file")):
        with pytest.raises(MscmtError, match=needle):
            rundir.write_json(target, {"a": 1})
    monkeypatch.setattr(paths.os, "replace", lambda *a: (_ for _ in ()).throw(PermissionError(13, "Permission denied")))
    with pytest.raises(MscmtError, match="x.json: cannot write"):
        rundir.write_json(tmp_path / "x.json", {"a": 1})
    with pytest.raises(UnicodeEncodeError):
        rundir.write_text_atomic(tmp_path / "y.txt", "lone \ud800")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d", "f"] and list((tmp_path / "d").iterdir()) == []
