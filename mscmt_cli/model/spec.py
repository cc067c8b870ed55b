"""What a saved model directory says of itself (``config.json``), read without torch.

:class:`ModelSpec` is the content of a model directory's ``config.json``; :func:`read_spec` parses and
validates it, :func:`model_dir` finds the model of a run directory. Both the torch model
(:mod:`mscmt_cli.model.build`) and an exported graph's tagger (:mod:`mscmt_cli.export.served`) read them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ValidationError

from mscmt_cli.errors import ModelLoadError, MscmtError
from mscmt_cli.version import __version__

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
TEXT_DIR = "text_encoder"
FORMAT_VERSION = 2  # 2: component parameters recorded in ``params``


class Components(BaseModel, extra="forbid"):
    """Registered names of the four components."""

    text: str
    image: str
    fusion: str
    decoder: str


class ModelSpec(BaseModel, extra="forbid"):
    """The content of ``config.json``: everything :func:`build_model` needs.

    ``params`` holds every declared parameter of every component, defaults
    included, so a saved model rebuilds exactly. ``context`` is what the text
    encoder reads beside each tweet (``"caption"``: the image's caption as a
    second segment; written to ``config.json`` only when it is not ``"none"``,
    so a model without context stays as before). Sizes are filled in by :func:`build_model` and checked when a
    saved model is loaded.
    """

    format: str = "mscmt-model"
    format_version: int = FORMAT_VERSION
    mscmt_version: str = __version__
    components: Components
    sources: dict[str, str]
    labels: list[str]
    params: dict[str, dict[str, Any]] = {}
    context: Literal["none", "caption"] = "none"
    dropout: float = 0.1
    text_hidden_size: int = 0
    image_dim: int = 0
    fusion_dim: int = 0
    training: dict[str, Any] = {}


def read_spec(directory: Path) -> ModelSpec:
    """Parse and validate ``config.json`` of a model directory."""
    path = Path(directory) / CONFIG_FILE
    if not path.is_file():
        raise ModelLoadError(f"{directory}: not an mscmt model directory (no {CONFIG_FILE})")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ModelLoadError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(data, dict) or data.get("format") != "mscmt-model":
        raise ModelLoadError(
            f'{directory}: not an mscmt model directory ({CONFIG_FILE} has no "format": "mscmt-model"; '
            f"pass a run directory or its model/ folder)"
        )
    try:
        return ModelSpec.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        raise ModelLoadError(f"{path}: field {'.'.join(map(str, first['loc']))}: {first['msg']}") from None


def model_dir(path: Path) -> Path:
    """A run directory's ``model/`` sub-directory, or ``path`` itself if it is a model."""
    path = Path(path)
    if (path / "model" / CONFIG_FILE).is_file():
        return path / "model"
    if (path / CONFIG_FILE).is_file():
        return path
    raise MscmtError(f"{path}: no trained model here (expected {path}/model/{CONFIG_FILE})")
