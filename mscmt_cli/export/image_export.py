"""``mscmt export`` of a caption image encoder: its graph as ``image.onnx``, checked against torch.

An image encoder is exported when it reads captions and exposes its computation as ``graph`` (an
``nn.Module`` from ``(input_ids, attention_mask)`` ``(n, L)`` to ``(features (n, N, D), mask (n, N))``)
and its tokenizer side as ``inputs`` (:class:`~mscmt_cli.model.caption_inputs.CaptionInputs`), as
:mod:`plugins.caption` does. The graph is traced with dynamic caption and sub-word axes, checked on
other captions (ONNX Runtime's tokens within ``1e-4 + 1e-4 * max |token|`` of torch's), never
quantized (its tokens are features, as the torch encoder's), and its tokenizer is saved beside it.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from mscmt_cli.errors import MscmtError
from mscmt_cli.export.freshness import file_sha256
from mscmt_cli.export.image_graph import GRAPH_OUTPUTS
from mscmt_cli.export.layout import IMAGE_DIR, IMAGE_ONNX_FILE, MODEL_DIR, ImageGraph, resolved_path
from mscmt_cli.export.runtime import open_session
from mscmt_cli.model.caption_inputs import GRAPH_INPUTS, CaptionInputs
from mscmt_cli.model.image_side import token_dtype_name
from mscmt_cli.paths import save_pretrained

#: Captions the graph is traced on, and checked on (an empty one, a long one, a non-ASCII one).
TRACE_CAPTIONS = ["a man in a suit waving to a crowd", "two people shaking hands on a stage"]
CHECK_CAPTIONS = ["", "a city street at night with a tower " * 12, "café crème 🇫🇷 in Paris", "a dog"]


def exportable(encoder: Any) -> bool:
    """Whether ``encoder`` is a caption encoder exposing ``graph`` and ``inputs`` (see the module's docstring)."""
    return encoder.input_kind == "caption" and isinstance(getattr(encoder, "graph", None), nn.Module) and hasattr(encoder, "inputs")


def export_image_graph(encoder: Any, out: Path, opset: int, model_path: str | None = None) -> ImageGraph | None:
    """Write ``out/image.onnx`` and ``out/model/image_encoder/`` for an :func:`exportable` encoder (None for
    any other encoder: nothing written) and return what ``config.json`` records of it; ``model_path``: the
    ``--model-path`` it was built from, if any."""
    if not exportable(encoder):
        return None
    inputs: CaptionInputs = encoder.inputs
    graph = encoder.graph.eval().cpu()
    path = Path(out) / IMAGE_ONNX_FILE
    _trace(graph, next(inputs.batches(TRACE_CAPTIONS)), path, opset, encoder.max_tokens > 1)
    diff = check_image_graph(path, graph, inputs)
    save_pretrained(inputs.tokenizer, Path(out) / MODEL_DIR / IMAGE_DIR)
    return ImageGraph(
        name=encoder.name,
        component=getattr(encoder, "component", encoder.name),
        input_kind="caption",
        dim=int(encoder.dim),
        max_tokens=int(encoder.max_tokens),
        token_dtype=token_dtype_name(encoder),
        grid=encoder.grid,
        grid_offset=int(encoder.grid_offset),
        identity=encoder.identity(),
        source=str(getattr(encoder, "source", "")),
        model_path=resolved_path(model_path),
        max_length=inputs.max_length,
        padding_side=inputs.padding_side,
        batch_size=inputs.batch_size,
        sha256=file_sha256(path),
        checked_max_abs_diff=diff,
    )


def _trace(graph: nn.Module, batch: tuple[np.ndarray, np.ndarray], path: Path, opset: int, tokens: bool) -> None:
    """Write the ONNX file of ``graph`` traced on one batch; captions and sub-words (and tokens) dynamic."""
    axes: dict[str, dict[int, str]] = {name: {0: "captions", 1: "subwords"} for name in GRAPH_INPUTS}
    axes |= {name: ({0: "captions", 1: "tokens"} if tokens else {0: "captions"}) for name in GRAPH_OUTPUTS}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation and tracer warnings
        torch.onnx.export(
            graph,
            tuple(torch.from_numpy(a) for a in batch),
            str(path),
            dynamo=False,
            input_names=list(GRAPH_INPUTS),
            output_names=list(GRAPH_OUTPUTS),
            dynamic_axes=axes,
            opset_version=opset,
            do_constant_folding=True,
        )


def check_image_graph(path: Path, graph: nn.Module, inputs: CaptionInputs) -> float:
    """Largest difference between ONNX Runtime's and torch's tokens on :data:`CHECK_CAPTIONS`; ``MscmtError``
    when over ``1e-4 + 1e-4 * max |token|``, or when the masks differ."""
    session = open_session(path)
    ids, mask = next(inputs.batches(CHECK_CAPTIONS))
    got, got_mask = session.run(list(GRAPH_OUTPUTS), dict(zip(GRAPH_INPUTS, (ids, mask))))
    with torch.no_grad():
        want, want_mask = (t.numpy() for t in graph(torch.from_numpy(ids), torch.from_numpy(mask)))
    diff = float(np.abs(got - want).max())
    bound = 1e-4 + 1e-4 * float(np.abs(want).max())
    if not np.array_equal(got_mask, want_mask) or not diff <= bound:
        raise MscmtError(f"export check failed: the image encoder's ONNX tokens differ from torch's by {diff:.3g} (bound {bound:.3g})")
    return diff
