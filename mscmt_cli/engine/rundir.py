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

from mscmt_cli.version import __version__
from mscmt_cli.data.corpus import file_digest
from mscmt_cli.errors import MscmtError
from mscmt_cli.settings import Settings
from mscmt_cli.strict_json import dumps

METRICS_FILE = "metrics.jsonl"
RUN_FILE = "run.json"
LIBRARIES = ("torch", "transformers", "timm", "pytorch-crf", "seqeval", "tokenizers", "safetensors")


def write_text_atomic(path: Path, text: str) -> None:
    """Write a text file atomically (temporary file beside it, then rename); creates the parent folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def write_json(path: Path, data: Any) -> None:
    """Write strict JSON atomically (temporary file, then rename); a NaN or infinity raises before anything is written."""
    write_text_atomic(path, dumps(data, str(path), indent=2, sort_keys=False) + "\n")


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


def read_run_settings(run_dir: Path) -> dict[str, Any] | None:
    """The settings recorded in ``run_dir/run.json``, or None when there is no run.json."""
    path = Path(run_dir) / RUN_FILE
    if not path.is_file():
        return None
    try:
        return dict(json.loads(path.read_text(encoding="utf-8"))["settings"])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError, UnicodeDecodeError) as err:
        raise MscmtError(f"{path}: unreadable run record ({type(err).__name__}: {err})") from None


def resumed_settings(run_dir: Path, given: dict[str, Any], config: Path | None, flags: dict[str, str]) -> Settings:
    """The settings ``run_dir`` was started with (``run.json``), with the given options that may change on resume.

    Options that change what the run learns (or where it lives) are refused, naming the ones that may change.
    """
    from mscmt_cli.settings import flag_of, load_settings, resumable_fields

    saved = read_run_settings(run_dir)
    if saved is None:
        raise MscmtError(f"--resume {run_dir}: not a run directory (no {RUN_FILE})")
    allowed = resumable_fields()
    fixed = [flags.get(k, flag_of(k)) for k in given if k not in allowed]
    if config is not None:
        fixed.insert(0, "--config")
    if fixed:
        may = ", ".join(flags.get(k, flag_of(k)) for k in allowed)
        raise MscmtError(f"--resume {run_dir}: {', '.join(fixed)} cannot change when a run is resumed (the run's settings are in "
                         f"{Path(run_dir) / RUN_FILE}); options that may change: {may}")
    unknown = sorted(set(saved) - set(Settings.model_fields))
    if unknown:
        raise MscmtError(f"{Path(run_dir) / RUN_FILE}: unknown setting {unknown[0]!r} (written by another mscmt version?)")
    paths = {**saved.get("model_paths", {}), **given.get("model_paths", {})}
    return load_settings(None, {**saved, **given, "model_paths": paths, "out": str(run_dir)}, flags)


def append_metrics(run_dir: Path, row: dict[str, Any]) -> None:
    """Append one epoch's row to ``metrics.jsonl`` (strict JSON: a NaN metric raises, nothing is appended)."""
    path = Path(run_dir) / METRICS_FILE
    line = dumps(row, str(path)) + "\n"
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(line)


def rewrite_metrics(run_dir: Path, rows: list[dict[str, Any]]) -> None:
    """Make ``metrics.jsonl`` hold exactly ``rows`` (used on resume)."""
    path = Path(run_dir) / METRICS_FILE
    write_text_atomic(path, "".join(dumps(r, str(path)) + "\n" for r in rows))


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    path = Path(run_dir) / METRICS_FILE
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
