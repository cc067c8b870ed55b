"""Whether an export is one of a saved model as it is now: digests of the model's files, without torch.

``--backend onnx`` given a run uses ``RUN/onnx/`` (:func:`run_export_dir`) when :func:`is_fresh` (an
fp32 export of this format whose recorded :func:`model_digest` is the run's model's now), and
exports the run again otherwise (:mod:`mscmt_cli.export.loading`).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from mscmt_cli.errors import MscmtError
from mscmt_cli.export.layout import EXPORT_FORMAT_VERSION, RUN_EXPORT_DIR, is_export_dir, read_export_config
from mscmt_cli.model.spec import CONFIG_FILE as MODEL_CONFIG
from mscmt_cli.model.spec import TEXT_DIR, WEIGHTS_FILE, model_dir


def _file_digest(path: Path, digest: Any) -> None:
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 22):
            digest.update(chunk)


def file_sha256(path: Path) -> str:
    """SHA-256 of one file's bytes."""
    digest = hashlib.sha256()
    _file_digest(Path(path), digest)
    return digest.hexdigest()


def weights_digest(model_dir: Path) -> str:
    """SHA-256 of a saved model's weights file (recorded in an export, for the reader)."""
    return file_sha256(Path(model_dir) / WEIGHTS_FILE)


def model_digest(model_dir: Path) -> str:
    """SHA-256 over everything of a saved model that shapes its output: ``config.json`` (components,
    labels, decoding constraints, context, text normalisation), the weights, and every file of
    ``text_encoder/`` (tokenizer and architecture), each with its relative path. An export records
    it; a change to any of them makes ``RUN/onnx`` stale (a change of config.json alone left it in use)."""
    model_dir = Path(model_dir)
    text = model_dir / TEXT_DIR
    files = [model_dir / MODEL_CONFIG, model_dir / WEIGHTS_FILE] + sorted(p for p in text.rglob("*") if p.is_file())
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.relative_to(model_dir).as_posix().encode("utf-8") + b"\0")
        _file_digest(path, digest)
        digest.update(b"\0")
    return digest.hexdigest()


def run_export_dir(path: Path) -> Path:
    """Where ``--backend onnx`` exports a model on the fly: ``RUN/onnx`` for a run directory, ``MODEL/onnx`` for a model directory."""
    return model_dir(Path(path)).parent / RUN_EXPORT_DIR if (Path(path) / "model" / MODEL_CONFIG).is_file() else Path(path) / RUN_EXPORT_DIR


def is_fresh(export: Path, source: Path) -> bool:
    """Whether ``export`` is an fp32 export of the model directory ``source`` as it is now (:func:`model_digest`),
    in this format (an export of an earlier format, without tagging inputs or a caption encoder's graph, is made again)."""
    if not is_export_dir(export):
        return False
    try:
        config = read_export_config(export)
    except MscmtError:
        return False
    current = config.format_version == EXPORT_FORMAT_VERSION and config.tagging is not None
    return current and config.quantization == "none" and config.source_sha256 == model_digest(source)
