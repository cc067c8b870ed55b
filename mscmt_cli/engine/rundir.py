"""The run directory's records: ``run.json``, ``metrics.jsonl`` and score files.

``run.json`` records the settings, the seed, the component names, the library
versions and the SHA-256 of every data file, so a result can be traced to
exactly what produced it.
"""

from __future__ import annotations

import json
import platform
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from mscmt_cli.data.corpus import file_digest, is_path
from mscmt_cli.errors import DataError, MscmtError
from mscmt_cli.paths import check_dir_target, listing, open_stream, write_json, write_text_atomic
from mscmt_cli.settings import Settings
from mscmt_cli.strict_json import dumps
from mscmt_cli.version import __version__

METRICS_FILE = "metrics.jsonl"
RUN_FILE = "run.json"
TEST_SCORES = "test_scores.json"
# What a run directory holds once an epoch has finished: never overwritten by a new run.
RUN_RECORDS = ("checkpoint", ".checkpoint.old", "model", TEST_SCORES, RUN_FILE, METRICS_FILE)
# Temporary names of mscmt's own atomic writes (left behind only by a kill).
OWN_TEMPORARY = (".checkpoint.", ".model.", f".{RUN_FILE}.", f".{METRICS_FILE}.")
LIBRARIES = ("torch", "transformers", "timm", "pytorch-crf", "seqeval", "tokenizers", "safetensors")


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
    working_dir: str  # relative data paths in settings are relative to it (see recorded_data)

    @classmethod
    def create(cls, settings: Settings, data: Any) -> RunInfo:
        files = [f for split in (data.train, data.valid, data.test) if split is not None for f in split.files]
        return cls(
            settings=settings.model_dump(mode="json"),
            components={"text": settings.text, "image": settings.image, "fusion": settings.fusion, "decoder": settings.decoder},
            seed=settings.seed,
            versions=library_versions(),
            data_files={str(f): file_digest(f) for f in files},
            working_dir=str(Path.cwd()),
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
        raise MscmtError(
            f"--out {path} already holds a run ({listing(records)}); choose another --out (or remove {path} to train it again)"
        )
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


def read_run_record(run_dir: Path) -> dict[str, Any] | None:
    """The whole ``run_dir/run.json`` (settings checked against :class:`Settings`), or None when there is none."""
    path = Path(run_dir) / RUN_FILE
    if not path.is_file():
        return None
    record = read_json(path)
    if not isinstance(record, dict) or not isinstance(record.get("settings"), dict):
        raise DataError(path, None, 'not a run record (no "settings" object)')
    check_recorded_settings(path, record["settings"])
    return record


def read_run_settings(run_dir: Path) -> dict[str, Any] | None:
    """The settings recorded in ``run_dir/run.json``, or None when there is no run.json."""
    record = read_run_record(run_dir)
    return None if record is None else dict(record["settings"])


def recorded_data(path: Path) -> tuple[Path, dict[str, Any]] | None:
    """The data a run was trained on (corpus, data and images directories, captions...) as its ``run.json`` records them,
    with that file's path; ``path`` is the run or its ``model/`` directory. None without a ``run.json``."""
    from mscmt_cli.settings import fields_of

    path = Path(path)
    run_dir = path.parent if (path / "config.json").is_file() and not (path / RUN_FILE).is_file() else path
    record = read_run_record(run_dir)
    if record is None:
        return None
    wanted = set(fields_of("data")) - {"train_file", "valid_file"}  # what trained it is not what is scored
    data = {k: v for k, v in record["settings"].items() if k in wanted and v is not None}
    base = record.get("working_dir")
    return run_dir / RUN_FILE, anchored(data, Path(base)) if isinstance(base, str) and base else data


PATH_SETTINGS = ("data_dir", "images_dir", "captions", "test_file")


def anchored(data: dict[str, Any], base: Path) -> dict[str, Any]:
    """``data`` with its relative paths (and a corpus given by relative path) joined to ``base``, the directory
    the run was trained from, so a run's recorded data is found from any working directory."""
    out = {k: str(base / v) if k in PATH_SETTINGS and not Path(v).is_absolute() else v for k, v in data.items()}
    corpus = out.get("corpus")
    if isinstance(corpus, str) and "/" in corpus:
        out["corpus"] = "+".join(str(base / p) if is_path(p) and not Path(p).is_absolute() else p for p in corpus.split("+"))
    return out


def check_recorded_settings(path: Path, recorded: dict[str, Any]) -> None:
    """Name an unknown or invalid setting as a setting of ``path`` (not as a command-line option)."""
    from pydantic import ValidationError

    unknown = sorted(set(recorded) - set(Settings.model_fields))
    if unknown:
        raise DataError(path, None, f"unknown setting {unknown[0]!r} (not one of mscmt {__version__}'s settings)")
    try:
        Settings.model_validate(recorded)
    except ValidationError as err:
        for error in err.errors():
            key = str(error["loc"][0]) if error["loc"] else ""
            if key in recorded:  # keys run.json lacks come from the environment and are reported there
                raise DataError(path, None, f"setting {key!r}: {error['msg']}") from None


def read_json(path: Path) -> Any:
    """A JSON file of mscmt's own (strict: no NaN or Infinity), errors as ``file:line``."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise DataError(path, None, f"not UTF-8 ({err.reason})") from None
    except OSError as err:
        raise DataError(path, None, f"cannot read ({err.strerror or err})") from None
    try:
        return json.loads(text, parse_constant=_no_constant)
    except json.JSONDecodeError as err:
        raise DataError(path, err.lineno, f"not valid JSON ({err.msg})") from None
    except ValueError as err:
        raise DataError(path, None, str(err)) from None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def resumed_settings(run_dir: Path, given: dict[str, Any], config: Path | None, flags: dict[str, str]) -> Settings:
    """The settings ``run_dir`` was started with (``run.json``), with the given options that may change on resume.

    ``--set`` values recorded as strings (runs started before parameters were typed strictly) are typed as
    ``--set`` types them now (:func:`~mscmt_cli.settings.parse_value`).

    Options that change what the run learns (or where it lives) are refused, naming the ones that may change.
    """
    from mscmt_cli.settings import flag_of, load_settings, parse_value, resumable_fields

    saved = read_run_settings(run_dir)
    if saved is None:
        raise MscmtError(f"--resume {run_dir}: not a run directory (no {RUN_FILE})")
    allowed = resumable_fields()
    fixed = [flags.get(k, flag_of(k)) for k in given if k not in allowed]
    if config is not None:
        fixed.insert(0, "--config")
    if fixed:
        may = ", ".join(flags.get(k, flag_of(k)) for k in allowed)
        raise MscmtError(
            f"--resume {run_dir}: {', '.join(fixed)} cannot change when a run is resumed (the run's settings are in "
            f"{Path(run_dir) / RUN_FILE}); options that may change: {may}"
        )
    paths = {**saved.get("model_paths", {}), **given.get("model_paths", {})}
    params = {
        kind: {k: parse_value(v) if isinstance(v, str) else v for k, v in table.items()} for kind, table in saved.get("params", {}).items()
    }
    return load_settings(None, {**saved, **given, "model_paths": paths, "params": params, "out": str(run_dir)}, flags)


def append_metrics(run_dir: Path, row: dict[str, Any]) -> None:
    """Append one epoch's row to ``metrics.jsonl`` (strict JSON: a NaN metric raises, nothing is appended)."""
    path = Path(run_dir) / METRICS_FILE
    line = dumps(row, str(path)) + "\n"
    with open_stream(path, "metrics", append=True) as fh:
        fh.write(line.encode("utf-8"))


def rewrite_metrics(run_dir: Path, rows: list[dict[str, Any]]) -> None:
    """Make ``metrics.jsonl`` hold exactly ``rows`` (used on resume)."""
    path = Path(run_dir) / METRICS_FILE
    write_text_atomic(path, "".join(dumps(r, str(path)) + "\n" for r in rows))


METRIC_NUMBERS = ("train_loss", "valid_micro_f1", "valid_weighted_f1")


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    """Every epoch's record of ``metrics.jsonl`` (empty when there is none); a bad line is a ``file:line`` error."""
    path = Path(run_dir) / METRICS_FILE
    if not path.is_file():
        return []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as err:
        raise DataError(path, None, f"not UTF-8 ({err.reason})") from None
    rows = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line, parse_constant=_no_constant)
        except json.JSONDecodeError as err:
            raise DataError(path, number, f"not valid JSON ({err.msg})") from None
        except ValueError as err:
            raise DataError(path, number, str(err)) from None
        if not (isinstance(row, dict) and _is_int(row.get("epoch")) and all(_is_number(row.get(k)) for k in METRIC_NUMBERS)):
            raise DataError(path, number, f'not an epoch record (needs an integer "epoch" and numbers {", ".join(METRIC_NUMBERS)})')
        rows.append(row)
    return rows


SCORE_FIELDS = ("precision", "recall", "f1")


def read_scores(path: Path) -> dict[str, Any]:
    """A scores file (``test_scores.json``, ``eval_*_test.json``): micro, weighted and per-type P/R/F1."""
    path = Path(path)
    data = read_json(path)
    if not isinstance(data, dict):
        raise DataError(path, None, "not a scores object")
    entries = [("micro", data.get("micro")), ("weighted", data.get("weighted"))]
    types = data.get("types")
    if not isinstance(types, dict):
        raise DataError(path, None, 'no "types" scores')
    entries += [(f"types.{t}", v) for t, v in types.items()]
    for name, entry in entries:
        if not (isinstance(entry, dict) and all(_is_number(entry.get(k)) for k in SCORE_FIELDS)):
            raise DataError(path, None, f"no {name} scores ({', '.join(SCORE_FIELDS)})")
    if "best_epoch" in data and not _is_int(data["best_epoch"]):
        raise DataError(path, None, f"best_epoch is {data['best_epoch']!r}, not an integer")
    return data


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def data_identity(files: Any) -> dict[str, str]:
    """``{"<corpus folder>/<file name>": SHA-256}`` of data files.

    Keyed by the name inside the data directory, not the full path: the same
    bytes under another ``--data-dir`` are the same data, other bytes are not.
    """
    return {f"{Path(f).parent.name}/{Path(f).name}": digest for f, digest in files}


def recorded_data_identity(run_dir: Path, record: dict[str, Any]) -> dict[str, str]:
    """The data identity in a run record (``data_files``: path -> SHA-256)."""
    files = record.get("data_files")
    if not isinstance(files, dict) or not files or not all(isinstance(v, str) for v in files.values()):
        raise DataError(Path(run_dir) / RUN_FILE, None, "records no data files, so the data it was trained on is unknown")
    return data_identity(files.items())
