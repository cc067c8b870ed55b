"""Settings for every command: defaults < TOML file < ``MSCMT_*`` environment < command line.

A settings file is TOML with the same keys as the long options (dashes or
underscores), plus a ``[model_paths]`` table::

    text = "bertweet"
    fusion = "gated"
    lr = 3e-5
    [model_paths]
    bertweet = "/models/bertweet-base"

Environment variables are the upper-case keys with the ``MSCMT_`` prefix
(``MSCMT_LR=5e-5``, ``MSCMT_MODEL=runs/best``).
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, EnvSettingsSource, SettingsConfigDict

from mscmt_cli.errors import MscmtError


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/mscmt`` or ``~/.cache/mscmt``."""
    import os

    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "mscmt"


class Settings(BaseSettings):
    """Every option of every command. Field descriptions are the CLI help."""

    model_config = SettingsConfigDict(env_prefix="MSCMT_", extra="forbid", populate_by_name=True)

    # components
    text: str = Field("bertweet", description="text encoder")
    image: str = Field("clip-vit-l14", description="image encoder")
    fusion: str = Field("gated", description="fusion")
    decoder: str = Field("crf", description="decoder")
    model_paths: dict[str, str] = Field(default_factory=dict, description="component name -> local model directory")
    # data
    corpus: str = Field("merged", description="corpus name under the data directory")
    data_dir: Path | None = Field(None, description="directory laid out like ../shared/data")
    images_dir: Path | None = Field(None, description="directory of <id>.jpg images")
    captions: Path | None = Field(None, description="captions file for the caption image encoder")
    missing_images: Literal["blank", "error"] = Field("blank", description="policy for missing or unreadable images")
    balance: bool = Field(True, description="class-balanced WeightedRandomSampler")
    # training
    out: Path | None = Field(None, description="run directory")
    lr: float = Field(3e-5, gt=0, le=1, description="learning rate of the text encoder and W_p")
    head_lr: float = Field(3e-4, gt=0, le=1, description="learning rate of gate, classifier and decoder")
    weight_decay: float = Field(0.01, ge=0, description="AdamW weight decay")
    warmup: float = Field(0.1, ge=0, lt=1, description="fraction of steps with linear warm-up")
    dropout: float = Field(0.1, ge=0, lt=1, description="dropout on the text encoder output")
    epochs: int = Field(20, ge=1, description="maximum epochs")
    patience: int = Field(3, ge=1, description="epochs without validation gain before stopping")
    batch_size: int = Field(16, ge=1, description="training batch size")
    eval_batch_size: int = Field(64, ge=1, description="evaluation batch size")
    max_grad_norm: float = Field(1.0, gt=0, description="gradient clipping norm")
    seed: int = Field(13, description="random seed")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="where to train")
    # caches and tagging
    cache_dir: Path = Field(default_factory=default_cache_dir, description="image feature cache")
    no_cache: bool = Field(False, description="do not read or write the feature cache")
    model: Path | None = Field(None, description="trained model directory (for tag, serve, explain)")


def _first_error(err: ValidationError) -> tuple[str, str]:
    first = err.errors()[0]
    return ".".join(str(p) for p in first["loc"]) or "(top level)", first["msg"]


def read_toml(path: Path) -> dict[str, Any]:
    """Read a settings file; dashes in keys become underscores."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8-sig"))
    except FileNotFoundError:
        raise MscmtError(f"{path}: settings file not found") from None
    except UnicodeDecodeError as err:
        raise MscmtError(f"{path}: not valid UTF-8 ({err.reason})") from None
    except tomllib.TOMLDecodeError as err:
        raise MscmtError(f"{path}: invalid TOML: {err}") from None
    return {k.replace("-", "_"): v for k, v in data.items()}


def load_settings(config_file: Path | None = None, overrides: dict[str, Any] | None = None) -> Settings:
    """Merge defaults, the TOML file, ``MSCMT_*`` variables and command-line values."""
    layers: list[tuple[str, dict[str, Any]]] = []
    if config_file is not None:
        layers.append((f"{config_file}: field", read_toml(config_file)))
    try:
        env = EnvSettingsSource(Settings)()
    except Exception as err:  # pydantic-settings raises SettingsError on bad JSON values
        raise MscmtError(f"environment: {err}") from None
    layers.append(("environment variable MSCMT_", {k: v for k, v in env.items()}))
    layers.append(("option --", {k: v for k, v in (overrides or {}).items() if v is not None}))
    merged: dict[str, Any] = {}
    for where, values in layers:
        _validate_layer(where, values)
        if "model_paths" in values:
            values = {**values, "model_paths": {**merged.get("model_paths", {}), **values["model_paths"]}}
        merged.update(values)
    return Settings.model_validate(merged)


def _validate_layer(where: str, values: dict[str, Any]) -> None:
    try:
        Settings.model_validate(values)
    except ValidationError as err:
        field, msg = _first_error(err)
        name = field.upper() if where.endswith("MSCMT_") else (field.replace("_", "-") if where.endswith("--") else field)
        sep = "" if where.endswith(("MSCMT_", "--")) else " "
        raise MscmtError(f"{where}{sep}{name}: {msg}") from None


def parse_model_paths(items: list[str] | None) -> dict[str, str] | None:
    """``["bertweet=/m/bt", ...]`` -> ``{"bertweet": "/m/bt"}``."""
    if not items:
        return None
    out = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise MscmtError(f"--model-path expects NAME=PATH, got {item!r}")
        out[name.strip()] = path.strip()
    return out
