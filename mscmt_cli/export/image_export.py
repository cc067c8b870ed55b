"""``mscmt export`` of a frozen image encoder: its graph as ``image.onnx``, checked against torch.

Two kinds are exported, each with its inputs made without torch when tagging:

* a caption encoder exposing ``graph`` (an ``nn.Module`` from ``(input_ids, attention_mask)`` ``(n, L)``
  to ``(features (n, N, D), mask (n, N))``) and ``inputs``
  (:class:`~mscmt_cli.model.caption_inputs.CaptionInputs`), as :mod:`plugins.caption` does; its
  tokenizer is saved beside the graph;
* a :class:`~mscmt_cli.model.components.PixelEncoder` (CLIP, BLIP-2, timm) whose preprocessing reads
  as a :class:`~mscmt_cli.model.pixel_inputs.PixelRecipe` (:func:`pixel_recipe`) that gives its own
  pixels bit for bit on :func:`check_images`; the graph goes from ``pixel_values`` ``(n, 3, H, W)``.

Graphs are traced with a dynamic batch axis (and caption sub-words), checked on other inputs (ONNX
Runtime's tokens within ``1e-4 + 1e-4 * max |token|`` of torch's), never quantized (their tokens are
features, as the torch encoder's). Adaptive average pooling (``timm-grid``'s grid) is written as two
matrix products with the pooling's bins (:func:`_pooling_as_matmul`), since ONNX's pooling needs the
grid to divide the feature map. An encoder over 2 GiB (BLIP-2's ViT-g) keeps its weights in one file
beside the graph (``image.onnx.data``; ONNX holds at most 2 GiB in one file). An encoder that cannot be
exported raises :class:`ImageStaysOnTorch` naming why; the export then records that the tagger loads it
with torch.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from mscmt_cli.errors import MscmtError
from mscmt_cli.export.freshness import file_sha256
from mscmt_cli.export.image_graph import GRAPH_OUTPUTS, PIXEL_INPUTS
from mscmt_cli.export.layout import IMAGE_DATA_FILE, IMAGE_DIR, IMAGE_ONNX_FILE, MODEL_DIR, ImageGraph, resolved_path
from mscmt_cli.export.pixel_recipe import ImageStaysOnTorch, pixel_recipe
from mscmt_cli.export.runtime import open_session
from mscmt_cli.model.caption_inputs import GRAPH_INPUTS, CaptionInputs
from mscmt_cli.model.components import PixelEncoder
from mscmt_cli.model.image_side import token_dtype_name
from mscmt_cli.paths import remove_file, save_pretrained

#: Captions the graph is traced on, and checked on (an empty one, a long one, a non-ASCII one).
TRACE_CAPTIONS = ["a man in a suit waving to a crowd", "two people shaking hands on a stage"]
CHECK_CAPTIONS = ["", "a city street at night with a tower " * 12, "café crème 🇫🇷 in Paris", "a dog"]
#: The most weights an ``image.onnx`` holds itself (one protobuf holds at most 2 GiB); more go beside it.
ONNX_MAX_BYTES = 2 * 1024**3 - 64 * 1024**2

Arrays = dict[str, np.ndarray]


def check_images() -> tuple[list[Image.Image], list[Image.Image]]:
    """Images a pixel graph is traced on (2) and checked on (4): noise and gradients of other sizes and
    shapes (tall, wide, smaller than the model's input, grey)."""
    rng = np.random.default_rng(0)
    noise = [Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)) for h, w in ((240, 320), (300, 260))]
    ramp = np.linspace(0, 255, 97, dtype=np.float64)
    gradient = np.stack([np.add.outer(ramp, ramp[:61]) / 2, np.add.outer(ramp, ramp[:61][::-1]) / 2, np.full((97, 61), 90.0)], -1)
    check = [
        Image.fromarray(rng.integers(0, 256, (480, 170, 3), dtype=np.uint8)),
        Image.fromarray(gradient.astype(np.uint8)),
        Image.fromarray(rng.integers(0, 256, (19, 23, 3), dtype=np.uint8)),
        Image.fromarray(rng.integers(0, 256, (150, 640), dtype=np.uint8)).convert("RGB"),
    ]
    return noise, check


def export_image_graph(encoder: Any, out: Path, opset: int, model_path: str | None = None) -> ImageGraph | None:
    """Write ``out/image.onnx`` (and a caption encoder's ``out/model/image_encoder/``) and return what
    ``config.json`` records of it; None for a model without image (nothing written). ``model_path``: the
    ``--model-path`` the encoder was built from, if any. :class:`ImageStaysOnTorch` when it cannot be."""
    if encoder.input_kind == "caption":
        return _export_caption(encoder, Path(out), opset, model_path)
    if encoder.input_kind == "pixels":
        return _export_pixels(encoder, Path(out), opset, model_path)
    return None


def _export_caption(encoder: Any, out: Path, opset: int, model_path: str | None) -> ImageGraph:
    if not (isinstance(getattr(encoder, "graph", None), nn.Module) and hasattr(encoder, "inputs")):
        raise ImageStaysOnTorch(f"{encoder.name} does not expose its graph and its caption inputs")
    inputs: CaptionInputs = encoder.inputs
    graph = encoder.graph.eval().cpu()
    path = out / IMAGE_ONNX_FILE
    trace_inputs = dict(zip(GRAPH_INPUTS, next(inputs.batches(TRACE_CAPTIONS))))
    _trace(graph, trace_inputs, path, opset, {"captions", "subwords"}, encoder.max_tokens > 1)
    diff = _check(path, graph, dict(zip(GRAPH_INPUTS, next(inputs.batches(CHECK_CAPTIONS)))))
    save_pretrained(inputs.tokenizer, out / MODEL_DIR / IMAGE_DIR)
    return _record(
        encoder, path, diff, model_path, max_length=inputs.max_length, padding_side=inputs.padding_side, batch_size=inputs.batch_size
    )


def _export_pixels(encoder: Any, out: Path, opset: int, model_path: str | None) -> ImageGraph:
    if not isinstance(encoder, PixelEncoder):
        raise ImageStaysOnTorch(f"{encoder.name} is not a PixelEncoder (its pixels and its model are not separate)")
    recipe = pixel_recipe(encoder)
    trace_images, check = check_images()
    own = encoder.pixels(trace_images + check).cpu().numpy()
    redone = np.concatenate(list(recipe.batches(trace_images + check)))
    if own.shape != redone.shape or not np.array_equal(own, redone):
        raise ImageStaysOnTorch(f"{encoder.name}: its preprocessing gives other pixels than the recipe read from it")
    graph = encoder.graph.eval().cpu()
    path = out / IMAGE_ONNX_FILE
    try:
        with _pooling_as_matmul(opset):
            _trace(graph, {PIXEL_INPUTS[0]: redone[:2]}, path, opset, {"images"}, encoder.max_tokens > 1)
    except (torch.onnx.errors.OnnxExporterError, RuntimeError) as err:
        reason = str(err).strip().splitlines()[0].split(" Please ")[0]
        raise ImageStaysOnTorch(f"{encoder.name}: the ONNX exporter refused its graph: {reason}") from err
    large = sum(p.numel() * p.element_size() for p in encoder.parameters()) > ONNX_MAX_BYTES
    data = weights_beside(path) if large else None
    diff = _check(path, graph, {PIXEL_INPUTS[0]: redone[2:]})
    return _record(encoder, path, diff, model_path, pixels=recipe, batch_size=recipe.batch_size, data_sha256=data)


def pooling_matrix(size: int, bins: int) -> np.ndarray:
    """``(bins, size)`` float32: row ``i`` averages ``[floor(i * size / bins), ceil((i + 1) * size / bins))``,
    the bins of ``adaptive_avg_pool`` over an axis of ``size``."""
    matrix = np.zeros((bins, size), np.float32)
    for i in range(bins):
        start, end = (i * size) // bins, -(-(i + 1) * size // bins)
        matrix[i, start:end] = 1.0 / (end - start)
    return matrix


def _adaptive_avg_pool2d(g: Any, x: Any, output_size: Any) -> Any:
    """``aten::adaptive_avg_pool2d`` of ``x`` ``(n, C, h, w)`` as ``P_h @ x @ P_w^T`` (static ``h``, ``w``)."""
    from torch.onnx import symbolic_helper

    rows, cols = symbolic_helper._parse_arg(output_size, "is")
    height, width = symbolic_helper._get_tensor_sizes(x)[2:]
    if height is None or width is None:
        return symbolic_helper._unimplemented("adaptive_avg_pool2d", "feature map size not known when traced", x)
    down = g.op("Constant", value_t=torch.from_numpy(pooling_matrix(height, rows)))  # (G_h, h)
    across = g.op("Constant", value_t=torch.from_numpy(pooling_matrix(width, cols).T.copy()))  # (w, G_w)
    return g.op("MatMul", g.op("MatMul", down, x), across)


@contextmanager
def _pooling_as_matmul(opset: int) -> Iterator[None]:
    """Export ``adaptive_avg_pool2d`` with :func:`_adaptive_avg_pool2d` for the duration of one trace."""
    torch.onnx.register_custom_op_symbolic("aten::adaptive_avg_pool2d", _adaptive_avg_pool2d, opset)
    try:
        yield
    finally:
        torch.onnx.unregister_custom_op_symbolic("aten::adaptive_avg_pool2d", opset)


def weights_beside(path: Path) -> str:
    """Move the weights of the ONNX graph ``path`` into one file beside it (:data:`IMAGE_DATA_FILE`), in place of
    the per-tensor files the exporter writes for a graph over 2 GiB; return that file's SHA-256."""
    import onnx
    from onnx.external_data_helper import load_external_data_for_model, uses_external_data

    model = onnx.load(str(path), load_external_data=False)
    tensors = [t for t in model.graph.initializer if uses_external_data(t)]
    scattered = {entry.value for t in tensors for entry in t.external_data if entry.key == "location"}
    load_external_data_for_model(model, str(path.parent))
    onnx.save_model(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True, location=IMAGE_DATA_FILE, size_threshold=0)
    for name in sorted(scattered - {IMAGE_DATA_FILE}):
        remove_file(path.parent / name)
    return file_sha256(path.parent / IMAGE_DATA_FILE)


def _record(encoder: Any, path: Path, diff: float, model_path: str | None, **inputs: Any) -> ImageGraph:
    """What ``config.json`` records of an exported encoder (``inputs``: how its inputs are made)."""
    return ImageGraph(
        name=encoder.name,
        component=getattr(encoder, "component", encoder.name),
        input_kind=encoder.input_kind,
        dim=int(encoder.dim),
        max_tokens=int(encoder.max_tokens),
        token_dtype=token_dtype_name(encoder),
        grid=encoder.grid,
        grid_offset=int(encoder.grid_offset),
        identity=encoder.identity(),
        source=str(getattr(encoder, "source", "")),
        model_path=resolved_path(model_path),
        sha256=file_sha256(path),
        checked_max_abs_diff=diff,
        **inputs,
    )


def _trace(graph: nn.Module, inputs: Arrays, path: Path, opset: int, dynamic: set[str], tokens: bool) -> None:
    """Write the ONNX file of ``graph`` traced on ``inputs``; the batch axis (named first in ``dynamic``:
    captions or images), caption sub-words and, for a token encoder, the tokens are dynamic."""
    batch = "captions" if "captions" in dynamic else "images"
    axes: dict[str, dict[int, str]] = {name: {0: batch} | ({1: "subwords"} if "subwords" in dynamic else {}) for name in inputs}
    axes |= {name: ({0: batch, 1: "tokens"} if tokens else {0: batch}) for name in GRAPH_OUTPUTS}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation and tracer warnings
        torch.onnx.export(
            graph,
            tuple(torch.from_numpy(a) for a in inputs.values()),
            str(path),
            dynamo=False,
            input_names=list(inputs),
            output_names=list(GRAPH_OUTPUTS),
            dynamic_axes=axes,
            opset_version=opset,
            do_constant_folding=True,
        )


def _check(path: Path, graph: nn.Module, inputs: Arrays) -> float:
    """Largest difference between ONNX Runtime's and torch's tokens on ``inputs``; ``MscmtError`` when over
    ``1e-4 + 1e-4 * max |token|``, or when the masks differ."""
    got, got_mask = open_session(path).run(list(GRAPH_OUTPUTS), inputs)
    with torch.no_grad():
        want, want_mask = (t.numpy() for t in graph(*(torch.from_numpy(a) for a in inputs.values())))
    diff = float(np.abs(got - want).max())
    bound = 1e-4 + 1e-4 * float(np.abs(want).max())
    if not np.array_equal(got_mask, want_mask) or not diff <= bound:
        raise MscmtError(f"export check failed: the image encoder's ONNX tokens differ from torch's by {diff:.3g} (bound {bound:.3g})")
    return diff
