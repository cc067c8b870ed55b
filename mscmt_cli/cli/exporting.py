"""``mscmt export``: a trained model as an ONNX graph for ``--backend onnx``."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from mscmt_cli.cli.options import Given, settings_options

#: The ONNX opset written by default (LayerNormalization is one node from 17 on).
DEFAULT_OPSET = 17


@settings_options("model_paths")
def export(
    given: Given,
    run: Path = typer.Argument(..., help="trained run directory (or its model/)"),
    out: Path = typer.Option(..., "--out", help="directory to write (new, empty, or an earlier export, which is replaced)"),
    quantize: str = typer.Option("none", "--quantize", help="none, or int8: ONNX Runtime's dynamic int8 quantisation of the weights"),
    opset: int = typer.Option(DEFAULT_OPSET, "--opset", min=17, max=20, help="ONNX opset"),
) -> None:
    """Export the trainable part (text encoder, fusion, emission head) to ONNX, with what decoding needs.

    Writes DIR/model.onnx (inputs input_ids, attention_mask, word_index, word_mask, token_type_ids for a
    --context caption model whose encoder has segment ids, image; outputs
    emissions and, for a gated fusion, gate; batch and lengths dynamic), DIR/decoding.json (labels,
    CRF transitions, BIO constraints), DIR/model/ (tokenizer, component names) and DIR/config.json
    (how it was made). The frozen image encoder is written as DIR/image.onnx: a caption encoder (caption,
    caption-tokens; its tokenizer in DIR/model/image_encoder/), or a pixel encoder (CLIP, BLIP-2, timm)
    whose preprocessing is redone without torch, bit for bit (weights over 2 GiB in DIR/image.onnx.data);
    one that is not (an image processor with other steps, a graph the ONNX exporter refuses) stays on
    torch when tagging, and the export says why.
    Use it with: mscmt tag --backend onnx --model DIR.
    """
    from mscmt_cli.export.exporter import export_run
    from mscmt_cli.registry import Registry

    settings = given.settings()
    config = export_run(run, out, Registry.from_entry_points(), settings.model_paths, quantize=quantize, opset=opset)
    check = "" if config.checked_max_abs_diff is None else f"; emissions within {config.checked_max_abs_diff:.2g} of torch's"
    image = config.tagging.image if config.tagging is not None else None
    if image is not None:
        check += f"; {image.component} as image.onnx, tokens within {image.checked_max_abs_diff:.2g} of torch's"
    elif config.tagging is not None and config.tagging.image_on_torch:
        check += f"; image encoder kept on torch for tagging: {config.tagging.image_on_torch}"
    print(f"exported {run} to {out} (opset {config.opset}, quantization {config.quantization}{check})", file=sys.stderr)
