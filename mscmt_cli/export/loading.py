"""``--backend onnx``: an exported directory, or a run exported on the fly, ready for the :class:`Tagger`.

``--model`` may name an exported directory (``mscmt export``), used as it is,
or a run (model) directory: then its export in ``RUN/onnx/``
(:func:`~mscmt_cli.export.freshness.run_export_dir`) is used when it is fresh (an fp32 export of this
format recording the digest of the run's model as it is now: config, weights, tokenizer), and made (or
remade) first otherwise; its ``image.onnx`` must also have been made with the ``--model-path`` given
now for the image encoder (or both without), as the torch backend would load it.

Around the graph, the tagger reads the export's :class:`~mscmt_cli.export.served.ServedModel` (tokenizer
side, spec, image side, what the fusion explains) without torch; a text-only model, or one whose image
encoder is exported (``image.onnx``), is tagged without importing torch at all. A model trained with
``--context caption`` reads each tweet's caption as the torch backend does; the graph must then take the segment ids its tokenizer side gives (:func:`check_fits`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mscmt_cli.errors import ModelLoadError, MscmtError
from mscmt_cli.export.freshness import is_fresh, run_export_dir
from mscmt_cli.export.layout import ExportConfig, is_export_dir, made_with, read_export_config
from mscmt_cli.export.runtime import OnnxBackend, require
from mscmt_cli.export.served import ServedModel, served_model
from mscmt_cli.model.spec import model_dir
from mscmt_cli.paths import listing


def check_fits(served: ServedModel, backend: OnnxBackend) -> tuple[ServedModel, OnnxBackend]:
    """``(served, backend)`` when the graph takes ``token_type_ids`` exactly where the tokenizer side gives them
    (``WordTokens.takes_token_types``); else ``ModelLoadError`` (a graph and a model/ of two models)."""
    wanted = served.words.takes_token_types
    if backend.token_types != wanted:
        raise ModelLoadError(
            f"{backend.directory}: model.onnx {'takes' if backend.token_types else 'takes no'} token_type_ids, but the text "
            f"encoder of its model/ (context {served.spec.context!r}) gives {'them' if wanted else 'none'}; export the run again"
        )
    return served, backend


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
    config = read_export_config(export)
    if config.quantization != "none" and config.tagging is None:
        raise MscmtError(
            f"--backend onnx: {export} holds an int8 export of format {config.format_version}, made before exports recorded "
            f"how tweets become the graph's inputs; make it again elsewhere with: mscmt export {run} --out DIR --quantize int8, "
            f"then pass --model DIR (or remove it to have {run} exported as fp32)"
        )
    if config.quantization != "none":
        raise MscmtError(
            f"--backend onnx: {export} holds an int8 export, which is not made again as fp32 over it; "
            f"tag with it as it is (--model {export}), or remove it to have {run} exported as fp32"
        )


def load_onnx(path: Path, registry: Any, model_paths: Mapping[str, str], threads: int | None = None) -> tuple[ServedModel, OnnxBackend]:
    """The served model and the ONNX backend of ``path`` (an exported directory, or a run exported on the fly)."""
    require("onnxruntime"), require("onnx")
    path = Path(path)
    export = path if is_export_dir(path) else _run_export(path, registry, model_paths)
    return check_fits(served_model(export, registry, model_paths, threads), OnnxBackend(export, threads))


def _same_image_source(config: ExportConfig, model_paths: Mapping[str, str]) -> bool:
    """Whether ``RUN/onnx``'s image graph (if any) was made with the ``--model-path`` given now (or both without)."""
    graph = config.tagging.image if config.tagging is not None else None
    return graph is None or made_with(graph, model_paths.get(graph.component))


def _run_export(run: Path, registry: Any, model_paths: Mapping[str, str]) -> Path:
    """``RUN/onnx``, exported first when it is not an export of the run's model as it is now."""
    source, export = model_dir(run), run_export_dir(run)
    if is_fresh(export, source) and _same_image_source(read_export_config(export), model_paths):
        return export
    from mscmt_cli.export.exporter import export_model  # torch: the run is loaded and traced
    from mscmt_cli.model.build import load_model

    check_run_export(run, export)
    try:
        export_model(
            load_model(source, registry, model_paths),
            export,
            source=source,
            option="--backend onnx: the run's export",
            home=source,
            model_paths=model_paths,
        )
    except MscmtError as err:
        raise MscmtError(f"{err}; or export it elsewhere with: mscmt export {run} --out DIR, then pass --model DIR") from None
    return export
