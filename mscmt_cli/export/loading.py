"""``--backend onnx``: an exported directory, or a run exported on the fly, ready for the :class:`Tagger`.

``--model`` may name an exported directory (``mscmt export``), used as it is,
or a run (model) directory: then its export in ``RUN/onnx/``
(:func:`~mscmt_cli.export.exporter.run_export_dir`) is used when it records the
SHA-256 of the run's current weights, and made (or remade) first otherwise.

The tagger still needs the model's tokenizer and its frozen image encoder: the
model is rebuilt from the export's ``model/`` without weights (on PyTorch's
``meta`` device: no memory, no initialisation), and the image encoder is loaded
as for the torch backend. A model trained with ``--context caption`` is rebuilt
with that context (``model/config.json`` records it), so the tagger reads each
tweet's caption as the torch backend does; the graph must then take the segment
ids its text encoder gives (:func:`check_fits`).

So tagging with ``--backend onnx`` still imports torch, though the graph runs without it (the numpy batch of
:mod:`mscmt_cli.backends.arrays`, :class:`~mscmt_cli.export.runtime.OnnxBackend`): the weightless model is torch
modules (its text encoder holds the tokenizer; transformers' ``AutoTokenizer`` imports torch, the concrete
tokenizer classes do not), and the processor's token store (:mod:`mscmt_cli.features`) imports it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mscmt_cli.errors import ModelLoadError, MscmtError
from mscmt_cli.export.exporter import export_model, is_fresh, run_export_dir
from mscmt_cli.export.layout import MODEL_DIR, is_export_dir, read_export_config
from mscmt_cli.export.runtime import OnnxBackend, require
from mscmt_cli.model.build import Assembled, build_model, load_model, model_dir, read_spec
from mscmt_cli.paths import listing


def weightless(export: Path, registry: Any, model_paths: Mapping[str, str]) -> Assembled:
    """The model of an exported directory without trained weights (tokenizer, component classes, image encoder)."""
    directory = Path(export) / MODEL_DIR
    return build_model(read_spec(directory), registry, model_paths, directory=directory, weights=False)


def check_fits(assembled: Assembled, backend: OnnxBackend) -> tuple[Assembled, OnnxBackend]:
    """``(assembled, backend)`` when the graph takes ``token_type_ids`` exactly where the rebuilt text encoder gives
    them (``TextEncoder.takes_token_types``); else ``ModelLoadError`` (a graph and a model/ of two models)."""
    wanted = assembled.model.text.takes_token_types
    if backend.token_types != wanted:
        raise ModelLoadError(
            f"{backend.directory}: model.onnx {'takes' if backend.token_types else 'takes no'} token_type_ids, but the text "
            f"encoder of its model/ (context {assembled.spec.context!r}) gives {'them' if wanted else 'none'}; export the run again"
        )
    return assembled, backend


def check_run_export(run: Path, export: Path) -> None:
    """Refuse to make ``RUN/onnx`` over what an on-the-fly export must not replace: files that are not an
    export, or an export the user made with ``--quantize int8`` (replacing it by fp32 would undo their choice)."""
    if not export.is_dir() or not any(export.iterdir()):
        return
    if not is_export_dir(export):
        found = sorted(p.name for p in export.iterdir())
        raise MscmtError(
            f"--backend onnx: {export} holds {listing(found)}, not an export mscmt made, so {run} cannot be exported there; "
            f"move them out, or export elsewhere with: mscmt export {run} --out DIR, then pass --model DIR"
        )
    if read_export_config(export).quantization != "none":
        raise MscmtError(
            f"--backend onnx: {export} holds an int8 export, which is not made again as fp32 over it; "
            f"tag with it as it is (--model {export}), or remove it to have {run} exported as fp32"
        )


def load_onnx(path: Path, registry: Any, model_paths: Mapping[str, str], threads: int | None = None) -> tuple[Assembled, OnnxBackend]:
    """The weightless model and the ONNX backend of ``path`` (an exported directory, or a run exported on the fly)."""
    require("onnxruntime"), require("onnx")
    path = Path(path)
    if is_export_dir(path):
        return check_fits(weightless(path, registry, model_paths), OnnxBackend(path, threads))
    source, export = model_dir(path), run_export_dir(path)
    if is_fresh(export, source):
        return check_fits(weightless(export, registry, model_paths), OnnxBackend(export, threads))
    check_run_export(path, export)
    assembled = load_model(source, registry, model_paths)
    try:
        export_model(assembled, export, source=source, option="--backend onnx: the run's export", home=source)
    except MscmtError as err:
        raise MscmtError(f"{err}; or export it elsewhere with: mscmt export {path} --out DIR, then pass --model DIR") from None
    assembled.model.to("meta")  # the graph has the weights now; the tagger keeps the tokenizer and the classes
    return check_fits(assembled, OnnxBackend(export, threads))
