"""The run directory's records: ``run.json``, ``metrics.jsonl`` and score files.

``run.json`` records the settings, the seed, the component names, the library
versions and the SHA-256 of every data file, so a result can be traced to
exactly what produced it.
"""

from __future__ import annotations

import json
import os
import platform
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from mscmt_cli import __version__
from mscmt_cli.data.corpus import file_digest
from mscmt_cli.errors import MscmtError
from mscmt_cli.paths import check_dir_target, check_file_target, listing
from mscmt_cli.settings import Settings

METRICS_FILE = "metrics.jsonl"
RUN_FILE = "run.json"
TEST_SCORES = "test_scores.json"
# What a run directory holds once an epoch has finished: never overwritten by a new run.
RUN_RECORDS = ("checkpoint", ".checkpoint.old", "model", TEST_SCORES, RUN_FILE, METRICS_FILE)
# Temporary names of mscmt's own atomic writes (left behind only by a kill).
OWN_TEMPORARY = (".checkpoint.", ".model.", f".{RUN_FILE}.", f".{METRICS_FILE}.")
LIBRARIES = ("torch", "transformers", "timm", "pytorch-crf", "seqeval", "tokenizers", "safetensors")


def write_text_atomic(path: Path, text: str) -> None:
    """Write a text file atomically (temporary file beside it, then rename); creates the parent folder.

    A directory at ``path`` (or a file where a parent folder should be) is
    refused, and the temporary file never outlives a failed write.
    """
    path = check_file_target(path, "output file")
    tmp: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
        tmp = None
    except OSError as err:
        raise MscmtError(f"{path}: cannot write ({err.strerror or err})") from None
    finally:
        if tmp is not None and os.path.lexists(tmp):
            os.unlink(tmp)


def write_json(path: Path, data: Any) -> None:
    """Write JSON atomically (temporary file, then rename)."""
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def library_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version(), "mscmt": __version__}
    for name in LIBRARIES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


@dataclass
class RunInfo:
    """What ``run.json`` holds."""

    settings: dict[str, Any]
    components: dict[str, str]
    seed: int
    versions: dict[str, str]
    data_files: dict[str, str]

    @classmethod
    def create(cls, settings: Settings, data: Any) -> "RunInfo":
        files = [f for split in (data.train, data.valid, data.test) for f in split.files]
        return cls(
            settings=settings.model_dump(mode="json"),
            components={"text": settings.text, "image": settings.image, "fusion": settings.fusion, "decoder": settings.decoder},
            seed=settings.seed, versions=library_versions(),
            data_files={str(f): file_digest(f) for f in files},
        )

    def write(self, run_dir: Path) -> None:
        write_json(Path(run_dir) / RUN_FILE, asdict(self))


def check_fresh_run_dir(run_dir: Path | str | None) -> Path:
    """The directory a new run may train into: absent, empty, or a run that never finished an epoch.

    Anything else is refused, naming what is there: a run with a checkpoint
    (resume it), a finished or partly finished run (its model, scores or
    metrics would be overwritten), or a directory holding other files.
    """
    if run_dir is None:
        raise MscmtError("no run directory: pass --out DIR")
    path = check_dir_target(run_dir, "--out")
    if not path.is_dir():
        return path
    names = sorted(p.name for p in path.iterdir())
    if "checkpoint" in names or ".checkpoint.old" in names:
        raise MscmtError(f"{path} already holds a training run; resume it with --resume {path} or choose another --out")
    own = [n for n in names if not n.startswith(OWN_TEMPORARY)]
    if not own or _never_finished_an_epoch(path, own):
        return path
    records = [n for n in RUN_RECORDS if n in own]
    if records:
        raise MscmtError(f"--out {path} already holds a run ({listing(records)}); choose another --out "
                         f"(or remove {path} to train it again)")
    raise MscmtError(f"--out {path} is not empty (it holds {listing(own)}); choose a new or empty directory")


def _never_finished_an_epoch(path: Path, own: list[str]) -> bool:
    """Only ``run.json`` (ours) and an empty ``metrics.jsonl``: a run killed in its first epoch, nothing to lose."""
    metrics = path / METRICS_FILE
    if sorted(own) != sorted([METRICS_FILE, RUN_FILE]) or not metrics.is_file() or metrics.stat().st_size > 0:
        return False
    try:
        record = json.loads((path / RUN_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(record, dict) and {"settings", "data_files"} <= set(record)


def read_run_settings(run_dir: Path) -> dict[str, Any] | None:
    """The settings recorded in ``run_dir/run.json``, or None when there is no run.json."""
    path = Path(run_dir) / RUN_FILE
    if not path.is_file():
        return None
    try:
        return dict(json.loads(path.read_text(encoding="utf-8"))["settings"])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError, UnicodeDecodeError) as err:
        raise MscmtError(f"{path}: unreadable run record ({type(err).__name__}: {err})") from None


def append_metrics(run_dir: Path, row: dict[str, Any]) -> None:
    with open(Path(run_dir) / METRICS_FILE, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(row) + "\n")


def rewrite_metrics(run_dir: Path, rows: list[dict[str, Any]]) -> None:
    """Make ``metrics.jsonl`` hold exactly ``rows`` (used on resume)."""
    write_text_atomic(Path(run_dir) / METRICS_FILE, "".join(json.dumps(r) + "\n" for r in rows))


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    path = Path(run_dir) / METRICS_FILE
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
