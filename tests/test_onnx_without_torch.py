"""Tagging with the ONNX backend in a process that never imports torch (issue 25, item 3).

A text-only model (with or without the caption read beside the tweet; MiniLM and BERTweet, whose word
normaliser the export names) is tagged from its export by ``Tagger.from_pretrained(backend="onnx")`` and by
``mscmt tag --backend onnx`` in a fresh interpreter: the torch backend's tags and scores, with ``torch`` never
in ``sys.modules``. What they stand on: the tokenizer side (:class:`~mscmt_cli.model.word_tokens.WordTokens`
over the tokenizer class its saved ``tokenizer_config.json`` names), the numpy batch, the graph's feeds,
:class:`~mscmt_cli.export.runtime.OnnxBackend` and its thread count. A caption model (``caption``,
``caption-tokens``) is tagged the same way, its caption encoder run from ``image.onnx``
(:class:`~mscmt_cli.export.image_graph.OnnxImageEncoder`); pixel encoders are in ``tests/test_pixel_export.py``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import needs
from tests.tagging_support import SCORE_TOLERANCE

pytestmark = needs("onnx", "onnxruntime")

REPO = Path(__file__).resolve().parents[1]
TEXTS = [
    "Obama visits Paris with Kerry",
    "hello",
    "the new york times says the mayor of london is here today",
    "x y",
    "RT @ jehnnybgoode loves 👍🏽 in N.Y.C. https://t.co/x",
]

#: Tags the tweets of ``argv[2]`` (texts, captions, images if any) with ``Tagger.from_pretrained(argv[1], backend="onnx")``; prints the tags,
#: probabilities and gates, the torch-free describe() and whether torch was imported.
TAGGER = r"""
import json, sys
from mscmt_cli import Tagger

given = json.load(open(sys.argv[2]))
tagger = Tagger.from_pretrained(sys.argv[1], backend="onnx")
results = tagger.tag_batch(given["texts"], given.get("images"), captions=given["captions"])
out = [{"tags": r.tags, "probs": r.tag_probs, "gate": r.gate, "entities": [e.as_dict() for e in r.entities]} for r in results]
print(json.dumps({"results": out, "info": tagger.info(), "torch": "torch" in sys.modules}))
"""

#: Runs ``mscmt`` with ``argv[1:]`` in this process; prints whether torch was imported.
CLI = r"""
import sys
from mscmt_cli.cli.main import main

try:
    main(sys.argv[1:])
except SystemExit as stop:
    assert not stop.code, stop.code
print("torch" in sys.modules)
"""


#: Serves the export ``argv[1]`` (``create_app`` over the ONNX tagger) and asks it ``/tag`` for ``argv[2]``.
SERVICE = r"""
import json, sys
from fastapi.testclient import TestClient
from mscmt_cli import Tagger
from mscmt_cli.tagging.server import create_app

client = TestClient(create_app(Tagger.from_pretrained(sys.argv[1], backend="onnx")))
answer = client.post("/tag", json={"text": sys.argv[2]})
assert answer.status_code == 200, answer.text
assert client.get("/health").status_code == 200
print(json.dumps({"answer": answer.json(), "torch": "torch" in sys.modules}))
"""


def _python(code: str, *args: str, env: dict[str, str] | None = None) -> str:
    """The last line ``code`` prints, run in a fresh interpreter (which must exit 0)."""
    done = subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**(env if env is not None else os.environ), "PYTHONPATH": str(REPO)},
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


def _tag_without_torch(
    run: Path,
    export: Path,
    captions: list[str] | None,
    tmp_path: Path,
    images: list[str] | None = None,
    model_paths: dict[str, str] | None = None,
) -> tuple[list[dict], list]:
    """Tag :data:`TEXTS` (with ``captions``, ``images``) with the torch tagger of ``run`` (``model_paths``: its
    ``--model-path``) and, in a fresh interpreter, with ``Tagger.from_pretrained(export, backend="onnx")``; assert
    torch was never imported there, the same tags and probabilities within the suite's tolerance. Returns (the
    interpreter's output, the torch results)."""
    from mscmt_cli import Tagger

    torch_tagger = Tagger.from_pretrained(run, model_paths or {}, backend="torch", device="cpu")
    want = torch_tagger.tag_batch(TEXTS, images, captions=captions)
    given = tmp_path / "tweets.json"
    given.write_text(json.dumps({"texts": TEXTS, "captions": captions, "images": images}))

    got = json.loads(_python(TAGGER, str(export), str(given)))

    assert got["torch"] is False, "tagging an export imported torch"
    assert [r["tags"] for r in got["results"]] == [r.tags for r in want]
    for result, expected in zip(got["results"], want):
        np.testing.assert_allclose(result["probs"], expected.tag_probs, atol=SCORE_TOLERANCE)
    return got, want


def _save_text_run(tiny, root: Path, text: str, context: str) -> Path:
    """An untrained ``text`` + no image + no fusion + crf model (``context``: what it reads beside the tweet), saved as a run."""
    from tests.test_onnx_context import _save_run

    return _save_run(tiny, root, context, "none", "none", text)


@pytest.mark.parametrize(("text", "context"), [("minilm", "none"), ("minilm", "caption"), ("bertweet", "none")])
def test_the_tagger_runs_an_export_of_a_text_only_model_without_importing_torch(text, context, mscmt, tiny, tmp_path):
    """``Tagger.from_pretrained(EXPORT, backend="onnx")`` in a fresh interpreter: the torch tagger's tags and
    scores, and ``torch`` never imported (the tokenizer side and its BERTweet word normaliser read from the
    export, the empty image tokens made without torch)."""
    run = _save_text_run(tiny, tmp_path / "run", text, context)
    export = tmp_path / "onnx"
    assert mscmt(["export", run, "--out", export]).code == 0
    captions = ["a man on a stage", "", "a newspaper", "two letters", "a dog"] if context == "caption" else None

    got, want = _tag_without_torch(run, export, captions, tmp_path)

    for result, expected in zip(got["results"], want):
        assert result["gate"] is None and [e["type"] for e in result["entities"]] == [e.type for e in expected.entities]
    assert got["info"]["backend"]["name"] == "onnx" and got["info"]["image_input"] == "none"


def test_mscmt_tag_with_the_onnx_backend_imports_no_torch_once_the_run_is_exported(mscmt, tiny, tmp_path):
    """``mscmt tag --backend onnx --model RUN``: the first call exports ``RUN/onnx`` (torch); the next, in a fresh
    interpreter, finds that export fresh and tags without importing torch, writing the same file."""
    run = _save_text_run(tiny, tmp_path / "run", "bertweet", "none")
    tweets = tmp_path / "tweets.jsonl"
    tweets.write_text("".join(json.dumps({"text": t}) + "\n" for t in TEXTS))
    first, second = tmp_path / "first.jsonl", tmp_path / "second.jsonl"
    assert mscmt(["tag", tweets, "--model", run, "--backend", "onnx", "--out", first]).code == 0

    assert _python(CLI, "tag", str(tweets), "--model", str(run), "--backend", "onnx", "--out", str(second)) == "False"
    assert second.read_bytes() == first.read_bytes()


def test_an_export_of_format_1_is_refused_in_one_line_naming_how_to_export_again(mscmt, tiny, tmp_path):
    """An export made before exports recorded their tagging inputs cannot be tagged without the torch model: one
    line says so and how to export again; given a run, its stale ``RUN/onnx`` is made again instead."""
    from mscmt_cli import Tagger
    from mscmt_cli.errors import ModelLoadError

    run = _save_text_run(tiny, tmp_path / "run", "minilm", "none")
    export = tmp_path / "onnx"
    assert mscmt(["export", run, "--out", export]).code == 0
    config = json.loads((export / "config.json").read_text())
    del config["tagging"]
    (export / "config.json").write_text(json.dumps({**config, "format_version": 1}))

    with pytest.raises(ModelLoadError, match=r"config.json: an export of format 1, .*; export the run again: mscmt export .* --out DIR$"):
        Tagger.from_pretrained(export, backend="onnx")
    result = mscmt(["tag", tmp_path / "none.jsonl", "--model", export, "--backend", "onnx"])
    assert result.code == 2 and len(result.err.strip().splitlines()) == 1
    shutil.copytree(export, run / "onnx")  # a run's own RUN/onnx of format 1: stale, made again on the fly
    tweets = tmp_path / "tweets.jsonl"
    tweets.write_text(json.dumps({"text": TEXTS[0]}) + "\n")
    assert mscmt(["tag", tweets, "--model", run, "--backend", "onnx", "--out", tmp_path / "tags.jsonl"]).code == 0
    assert json.loads((run / "onnx" / "config.json").read_text())["tagging"]["normaliser"] is None


@pytest.mark.parametrize(
    "variables",
    [{}, {"OMP_NUM_THREADS": "1"}, {"OMP_NUM_THREADS": "64"}, {"OMP_NUM_THREADS": "64", "MKL_NUM_THREADS": "1"}, {"OMP_NUM_THREADS": "x"}],
)
def test_the_onnx_threads_are_those_torch_would_use_found_without_torch(variables):
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")} | variables
    ours = "import sys; from mscmt_cli.export.runtime import default_threads; print(default_threads(), 'torch' in sys.modules)"
    torch_threads = _python("import torch; print(torch.get_num_threads())", env=env)
    assert _python(ours, env=env) == f"{torch_threads} False"


#: Encodes the tweets of ``argv[2]`` with the tokenizer saved in ``argv[1]`` (the export's ``model/text_encoder/``)
#: by :class:`~mscmt_cli.model.word_tokens.WordTokens`; prints the windows and whether torch was imported.
TOKENIZE = r"""
import json, sys
from mscmt_cli.model.word_tokens import WordTokens, saved_tokenizer

given = json.load(open(sys.argv[2]))
words = WordTokens(saved_tokenizer(sys.argv[1]), given["max_subwords"], "minilm", context=given["context"], token_types=given["types"])
encoded = [words.encode_words(t, c) for t, c in zip(given["tokens"], given["captions"])]
out = [{"windows": e.windows, "positions": [list(p) for p in e.word_positions], "types": e.token_types} for e in encoded]
print(json.dumps({"tweets": out, "pad_id": words.pad_id, "torch": "torch" in sys.modules}))
"""


@pytest.mark.parametrize("context", ["none", "caption"])
def test_the_saved_tokenizer_gives_the_torch_models_windows_without_importing_torch(context, mscmt, tiny, tmp_path):
    """The tokenizer side of the text encoder (:class:`WordTokens`, which ``HFTextEncoder.encode_words`` is), over the
    tokenizer class named in the export's ``tokenizer_config.json``, windows tweets as the torch tagger does (a long
    tweet in several windows; with a caption, segment ids), in a process without torch."""
    from mscmt_cli import Tagger
    from mscmt_cli.data.doc import doc_from_value
    from mscmt_cli.export.layout import MODEL_DIR
    from mscmt_cli.model.build import TEXT_DIR
    from tests.test_onnx_context import _export, _save_run

    run = _save_run(tiny, tmp_path / "run", context, "none", "none")
    export = _export(mscmt, run, tmp_path / "onnx", tiny)
    tagger = Tagger.from_pretrained(run, backend="torch", device="cpu")
    text = tagger.model.text
    text.max_subwords = 12  # so the long tweet spans windows
    captions = ["a man on a stage", "", "a newspaper", "two letters"] if context == "caption" else [None] * len(TEXTS)
    tokens = [list(doc_from_value(t).tokens) for t in TEXTS]
    want = [tagger.encode(doc_from_value(t), c) for t, c in zip(TEXTS, captions)]
    assert len(want[2].windows) > 1 and (want[0].token_types is not None) == (context == "caption")
    given = tmp_path / "tweets.json"
    settings = {"max_subwords": 12, "context": context, "types": text.takes_token_types}
    given.write_text(json.dumps({"tokens": tokens, "captions": captions, **settings}))

    got = json.loads(_python(TOKENIZE, str(export / MODEL_DIR / TEXT_DIR), str(given)))

    assert got["torch"] is False, "the saved tokenizer imported torch"
    assert got["pad_id"] == text.pad_id
    assert got["tweets"] == [{"windows": e.windows, "positions": [list(p) for p in e.word_positions], "types": e.token_types} for e in want]


def test_a_saved_tokenizer_naming_no_tokenizer_class_is_a_one_line_error(tmp_path):
    from mscmt_cli.errors import ModelLoadError
    from mscmt_cli.model.word_tokens import saved_tokenizer

    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "NoSuchTokenizer"}))
    with pytest.raises(
        ModelLoadError, match=r"tokenizer_config.json: tokenizer_class 'NoSuchTokenizer' is not a transformers tokenizer class$"
    ):
        saved_tokenizer(tmp_path)


def test_the_service_answers_from_an_export_of_a_text_only_model_without_importing_torch(mscmt, tiny, tmp_path):
    from mscmt_cli import Tagger

    run = _save_text_run(tiny, tmp_path / "run", "bertweet", "none")
    export = tmp_path / "onnx"
    assert mscmt(["export", run, "--out", export]).code == 0
    want = Tagger.from_pretrained(run, backend="torch", device="cpu").tag(TEXTS[4])

    got = json.loads(_python(SERVICE, str(export), TEXTS[4]))

    assert got["torch"] is False, "serving an export imported torch"
    assert got["answer"]["tags"] == want.tags


CAPTIONS = ["a man on a stage", "", "a newspaper on a table " * 20, "two letters", "café 🇫🇷"]


@pytest.mark.parametrize(("image", "fusion"), [("caption", "gated"), ("caption-tokens", "cross-attention")])
def test_a_caption_model_is_tagged_from_its_export_without_importing_torch(image, fusion, mscmt, tiny, tmp_path):
    """A model whose image is its caption (pooled, or its sub-word tokens) exports its caption encoder as
    ``image.onnx``; ``Tagger.from_pretrained(EXPORT, backend="onnx")`` in a fresh interpreter tags as the torch
    tagger does (same tags, probabilities within the suite's tolerance; a long caption truncated alike), and
    ``torch`` is never imported."""
    from tests.test_onnx_context import _save_run

    run = _save_run(tiny, tmp_path / "run", "none", image, fusion)
    export = tmp_path / "onnx"
    exported = mscmt(["export", run, "--out", export])
    assert exported.code == 0 and f"; {image} as image.onnx, tokens within " in exported.err
    config = json.loads((export / "config.json").read_text())
    graph = config["tagging"]["image"]
    assert (export / "image.onnx").is_file() and (export / "model" / "image_encoder" / "tokenizer_config.json").is_file()
    assert graph["component"] == image and graph["checked_max_abs_diff"] < 1e-4 and config["format_version"] == 4

    got, _ = _tag_without_torch(run, export, CAPTIONS, tmp_path)

    assert got["info"]["image_input"] == "caption"


@pytest.mark.parametrize("image", ["caption", "caption-tokens"])
def test_the_exported_caption_encoder_gives_the_torch_encoders_tokens_under_its_own_identity(image, mscmt, tiny, tmp_path):
    """``image.onnx`` run by :class:`OnnxImageEncoder` gives the torch encoder's tokens and masks (float32 within
    1e-5; kept in the encoder's dtype, within one float16 step for caption tokens) and its own cache identity."""
    from mscmt_cli.export.image_graph import OnnxImageEncoder
    from mscmt_cli.export.layout import read_export_config
    from mscmt_cli.features import FeatureCache, TokenStore, encode_checked
    from mscmt_cli.model.build import saved_image_encoder
    from mscmt_cli.model.image_side import feature_identity
    from mscmt_cli.model.spec import read_spec
    from mscmt_cli.registry import Registry
    from tests.test_onnx_context import _save_run

    run = _save_run(tiny, tmp_path / "run", "none", image, "cross-attention" if image == "caption-tokens" else "gated")
    export = tmp_path / "onnx"
    assert mscmt(["export", run, "--out", export]).code == 0
    graph = read_export_config(export).tagging.image  # type: ignore[union-attr]
    assert graph is not None
    onnx = OnnxImageEncoder(export, graph)
    torch_encoder = saved_image_encoder(read_spec(run / "model"), Registry.from_entry_points(), {})

    got, want = onnx.encode(CAPTIONS), torch_encoder.encode(CAPTIONS)
    np.testing.assert_array_equal(got.mask, want.mask.numpy())
    np.testing.assert_allclose(got.features, want.features.numpy(), atol=1e-5)
    for a, b in zip(encode_checked(onnx, CAPTIONS), encode_checked(torch_encoder, CAPTIONS)):
        assert a.dtype == b.dtype == np.dtype(graph.token_dtype)
        np.testing.assert_allclose(a.astype(np.float32), b.astype(np.float32), atol=2e-3 if graph.token_dtype == "float16" else 1e-5)
    assert onnx.token_texts(CAPTIONS[0]) == torch_encoder.token_texts(CAPTIONS[0])
    assert feature_identity(onnx).startswith(graph.identity + "|onnx:") and feature_identity(onnx) != feature_identity(torch_encoder)
    cache = FeatureCache(tmp_path / "cache")
    for side in (onnx, torch_encoder):
        TokenStore(side, cache).features([])
        TokenStore(side, cache).core.encode(["d" * 64], lambda _: CAPTIONS[0], lambda *_: None)
    assert len(cache.entries()) == 2, "the exported encoder's features are cached apart from torch's"


def test_a_model_path_other_than_the_exported_encoders_is_refused_for_an_export_and_re_exported_for_a_run(mscmt, tiny, tmp_path):
    """``--model-path caption=OTHER`` names another caption encoder than the export's ``image.onnx``: for an export
    directory one line says so; for a run, ``RUN/onnx`` is made again from OTHER (and again without it)."""
    from mscmt_cli import Tagger
    from mscmt_cli.errors import ModelLoadError
    from tests.test_onnx_context import _save_run

    run = _save_run(tiny, tmp_path / "run", "none", "caption", "gated")
    export = tmp_path / "onnx"
    assert mscmt(["export", run, "--out", export]).code == 0
    other = tmp_path / "other"
    shutil.copytree(tiny.bert, other)

    with pytest.raises(ModelLoadError, match=r"^--model-path caption=.*other: this export's image encoder \(image.onnx\) was made from "):
        Tagger.from_pretrained(export, backend="onnx", model_paths={"caption": str(other)})
    same = Tagger.from_pretrained(export, backend="onnx", model_paths={"caption": str(tiny.bert) + "/"})  # where its weights came from
    assert same.info()["image_input"] == "caption"
    tweets = tmp_path / "tweets.jsonl"
    tweets.write_text(json.dumps({"text": TEXTS[0], "caption": CAPTIONS[0]}) + "\n")
    result = mscmt(["tag", tweets, "--model", export, "--backend", "onnx", "--model-path", f"caption={other}"])
    assert result.code == 2 and len(result.err.strip().splitlines()) == 1

    def recorded() -> str | None:
        return json.loads((run / "onnx" / "config.json").read_text())["tagging"]["image"]["model_path"]

    out = tmp_path / "tags.jsonl"
    assert mscmt(["tag", tweets, "--model", run, "--backend", "onnx", "--out", out]).code == 0
    assert recorded() is None
    assert mscmt(["tag", tweets, "--model", run, "--backend", "onnx", "--model-path", f"caption={other}", "--out", out]).code == 0
    assert recorded() == str(other.resolve())
    assert mscmt(["tag", tweets, "--model", run, "--backend", "onnx", "--out", out]).code == 0
    assert recorded() is None
