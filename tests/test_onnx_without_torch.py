"""The ONNX backend in a process that never imports torch (issue 25, item 3).

What runs without torch today: the numpy batch (:mod:`mscmt_cli.backends.arrays`: ``collate_arrays``), the
graph's feeds (:func:`mscmt_cli.export.layout.graph_feeds`), :class:`~mscmt_cli.export.runtime.OnnxBackend`
(ONNX Runtime, its thread count, numpy decoding). A driver in a fresh interpreter collates tweets encoded by
the torch tagger, tags them with the exported graph of a text-only run (with and without the caption read
beside the tweet) and must give the torch backend's tags, with ``torch`` never in ``sys.modules``. The tokenizer
side of the text encoder (:class:`~mscmt_cli.model.word_tokens.WordTokens` over the tokenizer class its saved
``tokenizer_config.json`` names) windows tweets as the torch tagger does, without torch.

(``mscmt tag --backend onnx`` and ``Tagger.from_pretrained(backend="onnx")`` still import torch: the model
is rebuilt weightless from the export's ``model/`` with torch modules, whose text encoder is the tokenizer, and
the processor's token store and the CLI import it; see the module docstring of ``mscmt_cli.export.loading``.)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import needs
from tests.tagging_support import SCORE_TOLERANCE

pytestmark = needs("onnx", "onnxruntime")

REPO = Path(__file__).resolve().parents[1]
TEXTS = ["Obama visits Paris with Kerry", "hello", "the new york times says the mayor of london is here today", "x y"]

#: Tags the tweets of ``tweets.json`` with the graph in ``argv[1]``, prints the paths, probabilities, threads and
#: whether torch was imported.
DRIVER = r"""
import json, sys
import numpy as np
from mscmt_cli.backends.arrays import Example, collate_arrays, eval_batches
from mscmt_cli.export.runtime import OnnxBackend
from mscmt_cli.model.encoded import EncodedTweet

backend = OnnxBackend(sys.argv[1])
given = json.load(open(sys.argv[2]))
encoded = [EncodedTweet(t["windows"], [tuple(p) for p in t["positions"]], t["types"]) for t in given["tweets"]]
paths, probs = [None] * len(encoded), [None] * len(encoded)
for idx in eval_batches([e.n_subwords for e in encoded], 2):
    batch = collate_arrays([Example(encoded[i], [], np.zeros((1, 0), np.float32)) for i in idx], given["pad_id"])
    scored = backend.decode(backend.forward(batch))
    for b, i in enumerate(idx):
        n = len(encoded[i].word_positions)
        paths[i] = scored.paths[b][:n]
        probs[i] = [float(scored.probs[b, t, k]) for t, k in enumerate(paths[i])]
threads = backend.describe()["intra_op_threads"]
print(json.dumps({"paths": paths, "probs": probs, "threads": threads, "torch": "torch" in sys.modules}))
"""


def _python(code: str, *args: str, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**(env if env is not None else os.environ), "PYTHONPATH": str(REPO)},
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


@pytest.mark.parametrize("context", ["none", "caption"])
def test_the_onnx_backend_tags_a_text_only_model_without_importing_torch(context, mscmt, tiny, tmp_path):
    from mscmt_cli import Tagger
    from mscmt_cli.data.doc import doc_from_value
    from tests.test_onnx_context import _export, _save_run

    run = _save_run(tiny, tmp_path / "run", context, "none", "none")
    export = _export(mscmt, run, tmp_path / "onnx", tiny)
    tagger = Tagger.from_pretrained(run, backend="torch", device="cpu")
    captions = ["a man on a stage", "", "a newspaper", "two letters"] if context == "caption" else [None] * len(TEXTS)
    want = tagger.tag_batch(TEXTS, captions=captions)
    encoded = [tagger.encode(doc_from_value(t), c) for t, c in zip(TEXTS, captions)]
    assert (encoded[0].token_types is not None) == (context == "caption"), "the caption model's graph takes segment ids"
    given = tmp_path / "tweets.json"
    tweets = [{"windows": e.windows, "positions": e.word_positions, "types": e.token_types} for e in encoded]
    given.write_text(json.dumps({"pad_id": tagger.model.text.pad_id, "tweets": tweets}))

    got = json.loads(_python(DRIVER, str(export), str(given)))

    assert got["torch"] is False, "the ONNX backend imported torch"
    assert [[tagger.labels[k] for k in path] for path in got["paths"]] == [r.tags for r in want]
    for probs, result in zip(got["probs"], want):
        np.testing.assert_allclose(probs, result.tag_probs, atol=SCORE_TOLERANCE)


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
