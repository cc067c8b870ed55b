"""Settings for every command: defaults < TOML file < ``MSCMT_*`` environment < command line.

:class:`Settings` is the one specification of every option: each field's
type, default, bounds and help text live here, and the command-line options
are generated from the fields (:mod:`mscmt_cli.cli.options`). A field's
``group`` says which commands take it; ``identity`` marks the fields that
change what a run learns (compared when a study reuses a run, recorded in the
saved model, fixed on ``--resume``).

A settings file is TOML with the same keys as the long options (dashes or
underscores), a ``[model_paths]`` table, and one table per component kind for
the component's parameters (``name`` in the table picks the component)::

    text = "bertweet"
    lr = 3e-5
    [fusion]
    name = "gated"
    proj_dim = 256
    [model_paths]
    bertweet = "/models/bertweet-base"

Environment variables are the upper-case keys with the ``MSCMT_`` prefix
(``MSCMT_LR=5e-5``, ``MSCMT_MODEL=runs/best``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import tomllib
from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, EnvSettingsSource, SettingsConfigDict

from mscmt_cli.errors import MscmtError
from mscmt_cli.registry import KINDS

GROUPS = ("components", "data", "training", "runtime", "tagging")


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/mscmt`` or ``~/.cache/mscmt``."""
    import os

    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "mscmt"


def setting(
    default: Any = None,
    help: str = "",
    *,
    group: str,
    identity: bool = False,
    resumable: bool = False,
    flags: str | None = None,
    **constraints: Any,
) -> Any:
    """A settings field: its help text, the group of commands that take it, and how it is treated.

    Args:
        group: one of :data:`GROUPS` (which commands offer the option).
        identity: the value changes what a run learns (see the module docstring). A new identity
            setting must default to what mscmt did before it existed: runs recorded without it
            are compared as if they had been given the default.
        resumable: the value may change when a run is resumed.
        flags: the option's spelling when it is not ``--<name-with-dashes>``
            (``--x/--no-x`` is the default for booleans).
    """
    assert group in GROUPS, group
    extra: dict[str, Any] = {"group": group, "identity": identity, "resumable": resumable, "flags": flags}
    if callable(default):
        return Field(default_factory=default, description=help, json_schema_extra=extra, **constraints)
    return Field(default, description=help, json_schema_extra=extra, **constraints)


#: What ``--data-dir`` holds (its help and the errors about it say so).
DATA_DIR_LAYOUT = "one sub-directory per corpus (twitter2015, twitter2017, ...) holding train.txt, valid.txt and test.txt"


class Settings(BaseSettings):
    """Every option of every command (see the module docstring)."""

    model_config = SettingsConfigDict(env_prefix="MSCMT_", extra="forbid", populate_by_name=True)

    # components
    text: str = setting("bertweet", "text encoder", group="components", identity=True)
    image: str = setting("clip-vit-l14", "image encoder", group="components", identity=True)
    fusion: str = setting("gated", "fusion", group="components", identity=True)
    decoder: str = setting("crf", "decoder", group="components", identity=True)
    context: Literal["none", "caption"] = setting(
        "none",
        "what the text encoder reads beside the tweet: none, or caption (the image's caption as a second segment, "
        "[CLS] tweet [SEP] caption [SEP]; reads --captions)",
        group="components",
        identity=True,
    )
    params: dict[str, dict[str, Any]] = setting(
        dict,
        "KIND.KEY=VALUE: a component parameter, e.g. fusion.proj_dim=256 (repeatable; see mscmt plugins KIND.NAME)",
        group="components",
        identity=True,
        flags="--set",
    )
    model_paths: dict[str, str] = setting(
        dict, "NAME=PATH: load component NAME from a local directory (repeatable)", group="components", resumable=True, flags="--model-path"
    )
    # data
    corpus: str = setting(
        "merged",
        "twitter2015, twitter2017, merged, any corpus directory name under --data-dir, or a corpus directory by path "
        "(with a /: its train/valid/test .txt, or one train.*, valid.*, test.* file each); A+B reads both",
        group="data",
        identity=True,
    )
    data_dir: Path | None = setting(None, f"data directory: {DATA_DIR_LAYOUT}", group="data")
    images_dir: Path | None = setting(None, "directory of <id>.jpg images", group="data")
    captions: Path | None = setting(
        None, "captions file (<id>.jpg :<caption> lines or JSONL) for --image caption and --context caption", group="data"
    )
    missing_images: Literal["blank", "error"] = setting(
        "blank", "missing or unreadable images: blank (counted, reported) or error", group="data"
    )
    train_file: Path | None = setting(
        None, "training file (any --format), instead of --corpus under --data-dir", group="data", identity=True, flags="--train"
    )
    valid_file: Path | None = setting(None, "validation file, with --train", group="data", identity=True, flags="--valid")
    test_file: Path | None = setting(
        None, "test file: with --train, scored after training; with evaluate, the file scored", group="data", flags="--test"
    )
    data_format: Literal["auto", "imgid", "conll", "jsonl", "parquet", "label-studio"] = setting(
        "auto",
        "format of the data files: auto (by extension: .jsonl, .parquet, .json = Label Studio; else IMGID or column CoNLL "
        "by the first line), imgid, conll (columns), jsonl (tokens+tags or text+entities), parquet, label-studio",
        group="data",
        identity=True,
        flags="--format",
    )
    scheme: Literal["auto", "bio", "iob1", "bioes"] = setting(
        "auto", "tagging scheme of the data, converted to BIO: auto (detected), bio, iob1, bioes (BILOU too)", group="data", identity=True
    )
    label_column: int = setting(-1, "column CoNLL: the tag's column (0 = the token; -1 = the last)", group="data", identity=True)
    image_column: int | None = setting(None, "column CoNLL: the column holding the tweet's image id", group="data", identity=True)
    tag_names: str | None = setting(
        None, "T0,T1,...: the tag of each integer id, for JSONL/Parquet integer tags (a ClassLabel's names)", group="data", identity=True
    )
    type_map: dict[str, str] = setting(
        dict,
        "FROM=TO: rename an entity type on reading (repeatable; e.g. MISC=OTHER, the default of twitter2015/twitter2017/merged)",
        group="data",
        identity=True,
        flags="--map",
    )
    strict: bool = setting(False, "refuse a data file with a skippable bad line (an empty token) instead of skipping it", group="data")
    # training
    out: Path | None = setting(None, "run directory to create", group="training")
    lr: float = setting(3e-5, "learning rate of the text encoder and W_p", group="training", identity=True, gt=0, le=1)
    head_lr: float = setting(3e-4, "learning rate of gate, classifier and decoder", group="training", identity=True, gt=0, le=1)
    weight_decay: float = setting(0.01, "AdamW weight decay", group="training", identity=True, ge=0, le=1)
    warmup: float = setting(0.1, "fraction of steps with linear warm-up", group="training", identity=True, ge=0, lt=1)
    dropout: float = setting(0.1, "dropout on the text encoder output", group="training", identity=True, ge=0, lt=1)
    epochs: int = setting(20, "maximum epochs", group="training", identity=True, resumable=True, ge=1, le=10_000)
    patience: int = setting(
        3, "epochs without validation gain before stopping", group="training", identity=True, resumable=True, ge=1, le=10_000
    )
    monitor: Literal["weighted", "micro"] = setting(
        "weighted",
        "validation F1 that picks the saved epoch and drives early stopping: weighted (the paper) or micro",
        group="training",
        identity=True,
    )
    batch_size: int = setting(16, "training batch size", group="training", identity=True, ge=1, le=100_000)
    max_grad_norm: float = setting(1.0, "gradient clipping norm", group="training", identity=True, gt=0)
    seed: int = setting(13, "random seed (any integer)", group="training", identity=True)
    labels: str | None = setting(
        None,
        "T1,T2,...: the entity types to learn, in this order; a training tag of another type is refused "
        "(default: the training split's types, sorted)",
        group="training",
        identity=True,
    )
    balance: bool = setting(
        False,
        "the paper's class-balanced WeightedRandomSampler (drawn with replacement; off: each tweet once per epoch, shuffled)",
        group="training",
        identity=True,
    )
    # runtime
    device: Literal["auto", "cpu", "cuda"] = setting("auto", "where to run: auto, cpu or cuda", group="runtime", resumable=True)
    eval_batch_size: int = setting(64, "tweets per forward pass when predicting", group="runtime", resumable=True, ge=1, le=100_000)
    cache_dir: Path = setting(default_cache_dir, "image feature cache directory", group="runtime", resumable=True)
    no_cache: bool = setting(False, "bypass the image feature cache", group="runtime", resumable=True, flags="--no-cache/--cache")
    progress_every: float = setting(
        30.0,
        "where stderr is not a terminal (a log, CI), print a progress line at most every this many seconds (0: at every step)",
        group="runtime",
        resumable=True,
        ge=0,
    )
    # tagging
    model: Path | None = setting(None, "trained run directory (or its model/) for tag, serve and explain", group="tagging")
    backend: Literal["torch", "onnx"] = setting(
        "torch",
        "what runs the model: torch, or onnx (ONNX Runtime on the CPU; --model an exported directory, or a run exported on the fly into RUN/onnx/)",
        group="tagging",
    )
    captioner: str | None = setting(
        None,
        "image-to-text model (hub id or local directory) that captions an image coming without a caption, for caption models",
        group="tagging",
    )
    max_new_tokens: int = setting(30, "longest caption the --captioner writes, in tokens (greedy decoding)", group="tagging", ge=1, le=1024)

    @field_validator("*", mode="before")
    @classmethod
    def _no_empty_path_or_nan(cls, value: Any, info: Any) -> Any:
        field = cls.model_fields[info.field_name]
        if isinstance(value, str) and value.strip() == "" and "Path" in str(field.annotation):
            raise ValueError("empty path; give a file or directory name")
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"must be a finite number, got {value}")
        if isinstance(value, str) and field.annotation is float and value.strip().lower().lstrip("+-") in ("inf", "infinity", "nan"):
            raise ValueError(f"must be a finite number, got {value!r}")
        return value

    @field_validator("params")
    @classmethod
    def _kinds(cls, value: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        unknown = sorted(set(value) - set(KINDS))
        if unknown:
            raise ValueError(f"unknown component kind {unknown[0]!r}; kinds: {', '.join(KINDS)}")
        return value


def required_path(value: Path | None, option: str) -> Path:
    """``value`` as a Path, or a one-line error that ``option`` is needed."""
    if value is None:
        raise MscmtError(f"{option} is required here")
    return Path(value)


def fields_of(*groups: str, without: tuple[str, ...] = ()) -> tuple[str, ...]:
    """Names of the settings in ``groups`` (in declaration order), less ``without``."""
    return tuple(name for name, f in Settings.model_fields.items() if _extra(name)["group"] in groups and name not in without)


def identity_fields() -> tuple[str, ...]:
    """The settings that change what a run learns."""
    return tuple(name for name in Settings.model_fields if _extra(name)["identity"])


def resumable_fields() -> tuple[str, ...]:
    """The settings that may change when a run is resumed."""
    return tuple(name for name in Settings.model_fields if _extra(name)["resumable"])


def _extra(name: str) -> dict[str, Any]:
    extra = Settings.model_fields[name].json_schema_extra
    assert isinstance(extra, dict)
    return extra


def flag_of(name: str) -> str:
    """The command-line spelling of a setting (``--eval-batch-size``; ``--set`` for ``params``)."""
    flags = _extra(name)["flags"]
    return str(flags).split("/")[0] if flags else "--" + name.replace("_", "-")


def _first_error(err: ValidationError) -> tuple[str, str]:
    first = err.errors()[0]
    message = first["msg"].removeprefix("Value error, ")  # pydantic's prefix for a validator's own words
    return ".".join(str(p) for p in first["loc"]) or "(top level)", message


def read_toml(path: Path) -> dict[str, Any]:
    """Read a settings file; dashes in keys become underscores, ``[kind]`` tables become ``params``."""
    path = Path(path)
    if path.is_dir():
        raise MscmtError(f"--config {path}: is a directory, not a settings file")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8-sig"))
    except FileNotFoundError:
        raise MscmtError(f"{path}: settings file not found") from None
    except UnicodeDecodeError as err:
        raise MscmtError(f"{path}: not valid UTF-8 ({err.reason})") from None
    except tomllib.TOMLDecodeError as err:
        raise MscmtError(f"{path}: invalid TOML: {err}") from None
    out: dict[str, Any] = {}
    for key, value in data.items():
        key = key.replace("-", "_")
        key = _FLAG_KEYS.get(key, key)
        if key in KINDS and isinstance(value, dict):
            table = {k.replace("-", "_"): v for k, v in value.items()}
            if "name" in table:
                out[key] = table.pop("name")
            out.setdefault("params", {})[key] = table
        else:
            out[key] = value
    return out


#: TOML keys spelled as a setting's option where it differs from the field (``map`` -> ``type_map``).
_FLAG_KEYS: dict[str, str] = {
    flag_of(name)[2:].replace("-", "_"): name
    for name in Settings.model_fields
    if flag_of(name)[2:].replace("-", "_") != name and name != "params"  # [KIND] tables, not "set"
}


def load_settings(
    config_file: Path | None = None,
    overrides: dict[str, Any] | None = None,
    flags: Mapping[str, str] | None = None,
    under: tuple[Path, dict[str, Any]] | None = None,
) -> Settings:
    """Merge defaults, ``under``, the TOML file, ``MSCMT_*`` variables and command-line values.

    ``flags`` maps a setting to the option a command spells it with (for messages).
    ``model_paths``, ``type_map`` and ``params`` are merged key by key rather than replaced.
    ``under``: settings read from a file (a run's ``run.json``) that take the place of the defaults.
    """
    layers: list[tuple[str, dict[str, Any]]] = []
    if under is not None:
        layers.append((f"{under[0]}: setting", under[1]))
    if config_file is not None:
        layers.append((f"{config_file}: field", read_toml(config_file)))
    try:
        env = EnvSettingsSource(Settings)()
    except Exception as err:  # pydantic-settings raises SettingsError on bad JSON values
        raise MscmtError(f"environment: {err}") from None
    layers.append(("environment variable MSCMT_", dict(env)))
    layers.append(("option", {k: v for k, v in (overrides or {}).items() if v is not None}))
    merged: dict[str, Any] = {}
    for where, values in layers:
        _validate_layer(where, values, flags or {})
        merged.update(_merge_tables(merged, values))
    return Settings.model_validate(merged)


def _merge_tables(merged: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """``values`` with its ``model_paths``, ``type_map`` and ``params`` merged over those already in ``merged``."""
    out = dict(values)
    for table in ("model_paths", "type_map"):
        if table in values:
            out[table] = {**merged.get(table, {}), **values[table]}
    if "params" in values:
        params = {k: dict(v) for k, v in merged.get("params", {}).items()}
        for kind, table in values["params"].items():
            params[kind] = {**params.get(kind, {}), **table}
        out["params"] = params
    return out


def _validate_layer(where: str, values: dict[str, Any], flags: Mapping[str, str]) -> None:
    try:
        Settings.model_validate(values)
    except ValidationError as err:
        field, msg = _first_error(err)
        top = field.split(".")[0]
        if where == "option":
            where, field = "option ", flags.get(top, flag_of(top) if top in Settings.model_fields else "--" + top.replace("_", "-"))
        elif where.endswith("MSCMT_"):
            field = field.upper()
        else:
            where += " "
        raise MscmtError(f"{where}{field}: {msg}") from None


def parse_pairs(items: list[str] | None, option: str, separator: str = "=") -> dict[str, str] | None:
    """``["a=1", ...]`` -> ``{"a": "1"}``; the option name is in the error."""
    if not items:
        return None
    out = {}
    for item in items:
        name, sep, value = item.partition(separator)
        if not sep or not name.strip() or not value.strip():
            raise MscmtError(f"{option} expects NAME{separator}VALUE, got {item!r}")
        out[name.strip()] = value.strip()
    return out


def parse_model_paths(items: list[str] | None) -> dict[str, str] | None:
    """``["bertweet=/m/bt", ...]`` -> ``{"bertweet": "/m/bt"}``."""
    return parse_pairs(items, "--model-path")


def parse_value(text: str) -> bool | int | float | str:
    """A ``--set`` value as a TOML file would give it: ``true``/``false`` a bool, ``256`` an int,
    ``0.5``/``1e-3`` a float, anything else the string. The component's parameters then take
    it strictly, as they take a TOML or JSON value (no bool read as an int, no "1" as a number)."""
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    if re.fullmatch(r"[+-]?\d+", text):
        return int(text)
    if re.fullmatch(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?", text):
        return float(text)
    return text


def parse_params(items: list[str] | None) -> dict[str, dict[str, Any]] | None:
    """``["fusion.proj_dim=256", ...]`` -> ``{"fusion": {"proj_dim": 256}}`` (see :func:`parse_value`)."""
    pairs = parse_pairs(items, "--set")
    if pairs is None:
        return None
    out: dict[str, dict[str, Any]] = {}
    for key, value in pairs.items():
        kind, dot, name = key.partition(".")
        if not dot or kind not in KINDS or not name:
            raise MscmtError(f"--set expects KIND.KEY=VALUE with KIND one of {', '.join(KINDS)}, got {key}={value!r}")
        out.setdefault(kind, {})[name.replace("-", "_")] = parse_value(value)
    return out


def parse_type_map(items: list[str] | None) -> dict[str, str] | None:
    """``["MISC=OTHER", ...]`` -> ``{"MISC": "OTHER"}``."""
    return parse_pairs(items, "--map")
