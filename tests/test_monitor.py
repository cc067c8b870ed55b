"""``--monitor``: the validation F1 that picks the saved epoch; runs recorded before it existed still match."""

from __future__ import annotations

import json
import shutil

import pytest

from mscmt_cli.engine.rundir import RUN_FILE, read_run_settings
from mscmt_cli.engine.trainer import Progress
from mscmt_cli.errors import MscmtError
from mscmt_cli.registry import Registry
from mscmt_cli.settings import Settings
from mscmt_cli.studies.common import check_same_settings

# micro F1 peaks at epoch 2, weighted F1 at epoch 3
ROWS = [
    {"epoch": 1, "valid_micro_f1": 0.50, "valid_weighted_f1": 0.40},
    {"epoch": 2, "valid_micro_f1": 0.70, "valid_weighted_f1": 0.45},
    {"epoch": 3, "valid_micro_f1": 0.60, "valid_weighted_f1": 0.55},
    {"epoch": 4, "valid_micro_f1": 0.65, "valid_weighted_f1": 0.50},
]


@pytest.mark.parametrize(("monitor", "best", "improved", "bad"), [("weighted", 3, [1, 1, 1, 0], 1), ("micro", 2, [1, 1, 0, 0], 2)])
def test_progress_picks_the_epoch_of_the_monitored_f1(monitor, best, improved, bad):
    progress = Progress()
    flags = [progress.record(row, monitor) for row in ROWS]
    assert flags == [bool(f) for f in improved]
    assert progress.best_epoch == best and progress.epoch == 4 and progress.bad_epochs == bad
    assert progress.best_f1 == ROWS[best - 1][f"valid_{monitor}_f1"]


def test_monitor_defaults_to_the_papers_weighted_f1():
    assert Settings().monitor == "weighted"


def _run_with_settings(trained_run, tmp_path, edit):
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    record = json.loads((run / RUN_FILE).read_text())
    edit(record["settings"])
    (run / RUN_FILE).write_text(json.dumps(record))
    return run


def test_a_run_recorded_before_monitor_existed_counts_as_weighted(trained_run, tmp_path):
    run = _run_with_settings(trained_run, tmp_path, lambda s: s.pop("monitor"))
    settings = Settings.model_validate(read_run_settings(run))
    check_same_settings(run, settings, Registry.from_entry_points())  # the default: accepted
    with pytest.raises(MscmtError, match="monitor=.weighted., but this study asks monitor=.micro."):
        check_same_settings(run, settings.model_copy(update={"monitor": "micro"}), Registry.from_entry_points())


def test_a_run_trained_on_micro_is_not_reused_for_weighted(trained_run, tmp_path):
    run = _run_with_settings(trained_run, tmp_path, lambda s: s.update(monitor="micro"))
    settings = Settings.model_validate(read_run_settings(run))
    with pytest.raises(MscmtError, match="monitor='micro', but this study asks monitor='weighted'"):
        check_same_settings(run, settings.model_copy(update={"monitor": "weighted"}), Registry.from_entry_points())
