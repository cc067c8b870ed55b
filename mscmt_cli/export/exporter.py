"""``mscmt export``: the trainable part of a trained model as an ONNX graph, and what decoding needs.

The graph is the text encoder, the fusion and the emission head of
:class:`~mscmt_cli.model.mner.MNERModel` in eval mode (:class:`EmissionGraph`),
traced by ``torch.onnx.export``'s TorchScript exporter (the ``dynamo``
exporter needs ``onnxscript``, one more dependency for no gain here) with
dynamic batch, window, sub-word and word axes. Its inputs are the padded
tensors of a collated batch (:func:`~mscmt_cli.export.layout.graph_inputs`;
with ``token_type_ids`` for a model reading the caption beside the tweet in
BERT's pair format), its outputs the emissions ``(B, T, C)`` (0 on
padding words) and, for a fusion that explains a gate, the gate averaged over
hidden dims ``(B, T)`` (what ``mscmt explain`` shows). The layout of the
directory is in :mod:`mscmt_cli.export.layout`.

Every export is checked before it is kept: ONNX Runtime runs a second batch of
another shape (a tweet spanning two windows among them; for a model reading the
caption beside the tweet, made-up captions, one empty) and its emissions must
match torch's (fp32: within ``1e-3 + 1e-3 * max |emission|``; int8: the
difference is recorded, not bounded). The frozen image encoder (captions, or
pixels whose preprocessing has a numpy twin) is exported beside it as
``image.onnx`` (:mod:`mscmt_cli.export.image_export`); one that cannot be is
recorded with why. The directory is built aside and moved into place whole, so
a reader never sees half an export.
"""

from __future__ import annotations

import logging
import re
import warnings
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from mscmt_cli.backends.arrays import ArrayBatch, Example, collate_arrays
from mscmt_cli.backends.decoding import DECODING_FILE, decoding_of
from mscmt_cli.errors import MscmtError
from mscmt_cli.export.freshness import model_digest, weights_digest
from mscmt_cli.export.image_export import export_image_graph
from mscmt_cli.export.layout import (
    CONFIG_FILE,
    IMAGE_AXES,
    IMAGE_DATA_FILE,
    IMAGE_DIR,
    IMAGE_ONNX_FILE,
    MODEL_DIR,
    ONNX_FILE,
    OUTPUT_AXES,
    QUANTIZATIONS,
    TEXT_AXES,
    ExportConfig,
    ImageGraph,
    TaggingInputs,
    graph_feeds,
    graph_inputs,
    is_export_dir,
    refuse_export_dir,
    unpack_extras,
)
from mscmt_cli.export.pixel_recipe import ImageStaysOnTorch
from mscmt_cli.export.runtime import open_session, require
from mscmt_cli.model.build import CONFIG_FILE as MODEL_CONFIG
from mscmt_cli.model.build import TEXT_DIR, Assembled, model_dir
from mscmt_cli.model.components import TextBatch
from mscmt_cli.model.hf_text import HFTextEncoder
from mscmt_cli.model.mner import MNERModel
from mscmt_cli.model.word_tokens import normaliser_name
from mscmt_cli.paths import (
    atomic_dir,
    check_dir_target,
    copy_file,
    foreign_files,
    listing,
    make_dir,
    remove_file,
    same_file,
    write_text_atomic,
)
from mscmt_cli.version import __version__

#: What an exported directory holds (mscmt_cli.export.layout); only these are replaced by a new export.
EXPORT_ENTRIES = frozenset({CONFIG_FILE, ONNX_FILE, IMAGE_ONNX_FILE, IMAGE_DATA_FILE, DECODING_FILE, MODEL_DIR})
OPSET = 17  # LayerNormalization is one node from opset 17 on (as mscmt_cli.cli.exporting.DEFAULT_OPSET)
EXPORTER = "torch.onnx.export (TorchScript)"
#: The two batches of the export: one traced, one checked (word counts per tweet; 0 stands for "spans two windows").
TRACE_LENGTHS = (3, 7)
CHECK_LENGTHS = (9, 1, 0, 4)
WORDS = ["Obama", "visits", "Paris", "with", "@JohnKerry", "https://t.co/x", "today", "🇫🇷", "#Diplomacy", "RT", "New", "York"]
#: The made-up captions beside the tweets of a caption-context model, in turn (one empty: a tweet without a caption).
CAPTIONS = ["a man in a suit waving to a crowd", "", "a city street at night with a tower", "two people shaking hands on a stage"]


class EmissionGraph(nn.Module):
    """The exported function: text encoder -> fusion -> linear head (eval mode, no dropout, no decoder)."""

    def __init__(self, model: MNERModel) -> None:
        super().__init__()
        self.model = model
        self.with_gate = "gate" in type(model.fusion).explains
        self.with_attention = "attention" in type(model.fusion).explains
        self.with_token_types = model.text.takes_token_types

    @property
    def outputs(self) -> list[str]:
        """The graph's output names, in order."""
        return ["emissions"] + ["gate"] * self.with_gate + ["attention"] * self.with_attention

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        word_index: torch.Tensor,
        word_mask: torch.Tensor,
        *extras: torch.Tensor,
    ) -> tuple[torch.Tensor, ...]:
        """input_ids/attention_mask ``(W, L)``, word_index/word_mask ``(B, T)``, extras as :func:`unpack_extras`
        (token_type_ids ``(W, L)`` where the graph takes them, then the image as :func:`image_feeds`) ->
        emissions ``(B, T, C)`` (0 on padding words), with a gate the mean gate ``(B, T)``, with attention
        the attention over the image tokens ``(B, T, N)``."""
        types, image, image_mask = unpack_extras(extras, self.with_token_types)
        words = self.model.text(TextBatch(input_ids, attention_mask, word_index, word_mask, types))  # (B, T, H)
        fused = self.model.fusion(words, image, image_mask)
        emissions = self.model.classifier(fused.fused) * word_mask.unsqueeze(-1).to(fused.fused.dtype)
        out = [emissions]
        if self.with_gate:
            assert fused.gate is not None  # the fusion declares a gate
            out.append(fused.gate.mean(dim=-1))
        if self.with_attention:
            assert fused.attention is not None  # the fusion declares attention
            out.append(fused.attention)
        return tuple(out)


def example_batch(model: MNERModel, image_dim: int, lengths: Sequence[int], seed: int, max_tokens: int = 1) -> ArrayBatch:
    """A collated batch of made-up tweets of ``lengths`` words (0: one tweet that spans two windows) and random
    image features: one vector per tweet for a pooled encoder (``max_tokens == 1``), else 1 to 3 tokens
    (ragged, so the token axis and its mask are traced as such). A model reading the caption beside the tweet
    gets :data:`CAPTIONS` in turn (one empty), so its windows are in the encoder's pair format."""
    limit = int(getattr(model.text, "max_subwords", 64))
    generator = torch.Generator().manual_seed(seed)
    examples = []
    for k, n in enumerate(lengths):
        words = [WORDS[j % len(WORDS)] for j in range(n or limit)]
        tokens = 1 + (k + seed) % min(3, max_tokens)
        image = torch.randn(image_dim, generator=generator) if max_tokens == 1 else torch.randn(tokens, image_dim, generator=generator)
        caption = CAPTIONS[(k + seed) % len(CAPTIONS)] if model.text.context == "caption" else None
        examples.append(Example(model.text.encode_words(words, caption), [], image))
    return collate_arrays(examples, model.text.pad_id)


def trace(graph: EmissionGraph, batch: ArrayBatch, path: Path, opset: int) -> None:
    """Write the ONNX file of ``graph`` traced on ``batch``, every batch and length axis dynamic."""
    inputs = graph_inputs(batch, graph.with_token_types)
    outputs = graph.outputs
    axes = {k: v for k, v in {**TEXT_AXES, **IMAGE_AXES, **OUTPUT_AXES}.items() if k in inputs or k in outputs}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation and tracer warnings
        torch.onnx.export(
            graph,
            tuple(inputs.values()),
            str(path),
            dynamo=False,
            input_names=list(inputs),
            output_names=outputs,
            dynamic_axes=axes,
            opset_version=opset,
            do_constant_folding=True,
        )


def quantize_int8(source: Path, target: Path) -> None:
    """ONNX Runtime's dynamic int8 quantisation: int8 weights, activations quantised per batch as they come.

    Weights are scaled per output channel: on minilm's emissions (64 tweets) that keeps a cosine
    of 0.988 to fp32 where one scale per tensor keeps 0.946, at the same speed and size.
    """
    quantization = require("onnxruntime.quantization")
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # the quantizer logs advice ("consider pre-processing") on the root logger
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            quantization.quantize_dynamic(str(source), str(target), weight_type=quantization.QuantType.QInt8, per_channel=True)
    finally:
        root.setLevel(level)


def check_export(path: Path, graph: EmissionGraph, batch: ArrayBatch, bounded: bool) -> float:
    """Largest difference between ONNX Runtime's and torch's emissions on ``batch``; raises when over the bound (fp32)."""
    session = open_session(path)
    feeds = graph_feeds(batch, graph.with_token_types)
    got = session.run(["emissions"], {i.name: feeds[i.name] for i in session.get_inputs()})[0]
    with torch.no_grad():
        want = graph(*graph_inputs(batch, graph.with_token_types).values())[0].numpy()
    diff = float(np.abs(got - want).max())
    bound = 1e-3 + 1e-3 * float(np.abs(want).max())
    if bounded and not diff <= bound:
        raise MscmtError(f"export check failed: ONNX Runtime's emissions differ from torch's by {diff:.3g} (bound {bound:.3g})")
    return diff


#: Files of an earlier export's model/text_encoder/ that a new export may drop (a tokenizer's files differ by model).
TOKENIZER_FILE = re.compile(
    r"(config|tokenizer|tokenizer_config|special_tokens_map|added_tokens|generation_config|preprocessor_config)\.json"
    r"|vocab\.(txt|json)|merges\.txt|bpe\.codes|[a-z_.]*\.model|chat_template\.(jinja|json)"
)


def own_export_file(name: str) -> bool:
    """Whether ``name`` (relative to an export directory) is a file some export writes there."""
    parts = Path(name).parts
    if len(parts) == 1:
        return name in EXPORT_ENTRIES
    if parts[:1] != (MODEL_DIR,):
        return False
    tokenizer = len(parts) == 3 and parts[1] in (TEXT_DIR, IMAGE_DIR) and TOKENIZER_FILE.fullmatch(parts[2]) is not None
    return parts[1:] == (MODEL_CONFIG,) or tokenizer


def check_export_target(out: Path, option: str = "--out", home: Path | None = None) -> Path:
    """``--out``: a new or empty directory, or an earlier export holding only an export's own files (replaced
    whole); anything else is refused, so no file of the user's is ever deleted (nor one inside ``model/``).
    ``home``: the saved model it may sit in (a model directory's own ``MODEL/onnx``)."""
    out = check_dir_target(out, option, home=home, replaces_saved=True)
    if out.is_dir():
        found = sorted(p.name for p in out.iterdir())
        if found and not is_export_dir(out):
            raise MscmtError(
                f"{option} {out}: holds {listing(found)}, not an exported model; pass a new or empty directory (an earlier export is replaced)"
            )
        foreign = foreign_files(out.resolve(), own_export_file)
        if foreign:
            raise MscmtError(
                f"{option} {out}: an earlier export that also holds {listing(foreign)}, which mscmt did not write; move them out first"
            )
    return out


def export_model(
    assembled: Assembled,
    out: Path,
    *,
    source: Path,
    quantize: str = "none",
    opset: int = OPSET,
    option: str = "--out",
    home: Path | None = None,
    model_paths: Mapping[str, str] | None = None,
) -> ExportConfig:
    """Write the exported directory of a loaded model into ``out`` (see :mod:`mscmt_cli.export.layout`).

    ``source`` is the saved model directory the model was loaded from (recorded,
    with its weights' digest). ``quantize``: ``none`` or ``int8``. ``option`` names
    ``out`` in messages; ``home``: the saved model ``out`` may sit in (``MODEL/onnx``);
    ``model_paths``: the ``--model-path`` the model was loaded with (recorded for its image encoder).
    """
    if quantize not in QUANTIZATIONS:
        raise MscmtError(f"--quantize {quantize!r}: expected one of {', '.join(QUANTIZATIONS)}")
    onnx, ort = require("onnx"), require("onnxruntime")
    decoding = decoding_of(assembled.model.decoder)
    out = check_export_target(out, option, home)
    model = assembled.model.eval().cpu()
    graph = EmissionGraph(model).eval()
    with atomic_dir(out, option, keep=own_export_file) as tmp:
        _write_model_dir(tmp / MODEL_DIR, assembled, source)
        image, on_torch = _image_graph(assembled, tmp, opset, (model_paths or {}).get(assembled.spec.components.image))
        traced = tmp / ("model.fp32.onnx" if quantize == "int8" else ONNX_FILE)
        trace(graph, example_batch(model, assembled.spec.image_dim, TRACE_LENGTHS, 0, assembled.image.max_tokens), traced, opset)
        if quantize == "int8":
            quantize_int8(traced, tmp / ONNX_FILE)
            remove_file(traced)
        diff = check_export(
            tmp / ONNX_FILE,
            graph,
            example_batch(model, assembled.spec.image_dim, CHECK_LENGTHS, 1, assembled.image.max_tokens),
            quantize == "none",
        )
        decoding.save(tmp)
        config = _config(assembled, tmp, source, opset, quantize, diff, onnx.__version__, ort.__version__, image, on_torch)
        write_text_atomic(tmp / CONFIG_FILE, config.model_dump_json(indent=2) + "\n")
    return config


def _image_graph(assembled: Assembled, tmp: Path, opset: int, model_path: str | None) -> tuple[ImageGraph | None, str | None]:
    """The exported image encoder (None for a model without image), or None and why it stays on torch."""
    try:
        return export_image_graph(assembled.image, tmp, opset, model_path), None
    except ImageStaysOnTorch as err:
        for name in (IMAGE_ONNX_FILE, IMAGE_DATA_FILE):
            if (tmp / name).exists():
                remove_file(tmp / name)
        return None, str(err)


def _write_model_dir(directory: Path, assembled: Assembled, source: Path) -> None:
    """The source model's config.json and text_encoder/ (tokenizer and architecture, no weights)."""
    make_dir(directory)
    copy_file(Path(source) / MODEL_CONFIG, directory / MODEL_CONFIG)
    assembled.model.text.save_architecture(directory / TEXT_DIR)


def _config(
    assembled: Assembled,
    tmp: Path,
    source: Path,
    opset: int,
    quantize: str,
    diff: float,
    onnx_v: str,
    ort_v: str,
    image: ImageGraph | None,
    on_torch: str | None,
) -> ExportConfig:
    session = open_session(tmp / ONNX_FILE)
    shapes = {io.name: [str(d) for d in io.shape] for io in session.get_inputs()}
    outputs = {io.name: [str(d) for d in io.shape] for io in session.get_outputs()}
    return ExportConfig(
        mscmt_version=__version__,
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        source_model=str(Path(source).resolve()),
        source_weights_sha256=weights_digest(source),
        source_sha256=model_digest(source),
        components=assembled.spec.components.model_dump(),
        opset=opset,
        quantization=quantize,
        exporter=EXPORTER,
        torch_version=torch.__version__,
        onnx_version=onnx_v,
        onnxruntime_version=ort_v,
        inputs=shapes,
        outputs=outputs,
        gate="mean over hidden dims of the fusion's gate g_i" if "gate" in outputs else None,
        checked_max_abs_diff=diff,
        tagging=tagging_inputs(assembled, image, on_torch),
    )


def tagging_inputs(assembled: Assembled, image: ImageGraph | None = None, on_torch: str | None = None) -> TaggingInputs:
    """What a tagger without torch needs to make the graph's inputs as the model does (:class:`TaggingInputs`;
    ``image``: the exported image encoder, else ``on_torch``: why it is not); ``MscmtError`` for a text encoder whose tokenizer side an
    export cannot record."""
    text = assembled.model.text
    if not isinstance(text, HFTextEncoder) or type(text).normalise_word is not HFTextEncoder.normalise_word:
        raise MscmtError(
            f"text encoder {assembled.spec.components.text!r}: an export records a Hugging Face text encoder's tokenizer "
            f"side (WordTokens) and its word normaliser (the attribute 'normaliser', not an overridden normalise_word)"
        )
    return TaggingInputs(
        max_subwords=text.words.max_subwords,
        normaliser=normaliser_name(text.normaliser),
        token_types=text.words.token_types,
        image_input=assembled.image.input_kind,
        explains=sorted(assembled.explains),
        image=image,
        image_on_torch=on_torch,
    )


def export_run(
    run: Path, out: Path, registry: Any, model_paths: Mapping[str, str] | None = None, *, quantize: str = "none", opset: int = OPSET
) -> ExportConfig:
    """``mscmt export RUN --out DIR``: load a run (or model) directory and export it."""
    from mscmt_cli.model.build import load_model

    if quantize not in QUANTIZATIONS:
        raise MscmtError(f"--quantize {quantize!r}: expected one of {', '.join(QUANTIZATIONS)}")
    require("onnx"), require("onnxruntime")
    check_export_target(out)
    refuse_export_dir(Path(run))
    source = model_dir(Path(run))
    if same_file(source.parent, out) or same_file(source, out):
        raise MscmtError(f"--out {out}: is the run being exported ({run}); pass another directory")
    paths = model_paths or {}
    return export_model(load_model(source, registry, paths), out, source=source, quantize=quantize, opset=opset, model_paths=paths)
