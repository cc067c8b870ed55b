"""One feature cache and one prediction path (issue 15, part 3).

* Training (``mscmt cache build``, :class:`ImageFeatures`) and tagging (:class:`FeatureStore`, ``mscmt tag``)
  share one cache layer (:class:`FeatureEncoder`): a feature either computed the other reads without
  calling the encoder.
* ``Tagger.tag_batch``, ``mscmt tag`` and the service all go through ``Tagger.tag_outcomes``: the same
  inputs give byte-identical answers and, for bad inputs, the same messages.
"""

from __future__ import annotations

import ast
import base64
import json
from pathlib import Path

import pytest
import torch

from mscmt_cli.errors import MscmtError
from mscmt_cli.tagging.tagger import NOT_FINITE
from tests.tagging_support import TRICKY_TEXTS, image_bytes

REPO = Path(__file__).resolve().parents[1]
ANSWER = ("tokens", "tags", "entities")


def _clip_args(tiny) -> list[str]:
    return ["--model-path", f"clip-vit-l14={tiny.clip_vision}"]


def _jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def _answer(row: dict) -> str:
    """The part of an answer every entry point gives (tokens, tags, entities), as JSON bytes."""
    return json.dumps({k: row[k] for k in ANSWER}, ensure_ascii=False)


def _count_encoder_calls(monkeypatch) -> list[int]:
    """Count every call of any image encoder made through the one encode path (sizes of the batches)."""
    import mscmt_cli.features as features

    calls: list[int] = []
    original = features.encode_checked
    monkeypatch.setattr(features, "encode_checked", lambda enc, contents: calls.append(len(contents)) or original(enc, contents))
    return calls


# --- one cache ----------------------------------------------------------------------------------------------------


def _tokens(ref: torch.Tensor | Path) -> torch.Tensor:
    """Training's tokens ``(N_i, D)`` of an image: in memory, or in their cached file."""
    from mscmt_cli.features import read_tokens

    tokens = read_tokens(ref) if isinstance(ref, Path) else ref
    return tokens.unsqueeze(0) if tokens.dim() == 1 else tokens


@pytest.mark.parametrize("kind", ["pooled", "tokens"])
def test_training_and_tagging_read_each_others_features_without_the_encoder(corpus, tmp_path, kind):
    from mscmt_cli.data.images import ImageStore
    from mscmt_cli.features import FeatureCache, ImageFeatures
    from mscmt_cli.tagging.images import FeatureStore
    from tests.test_image_tokens import ColourRows, MeanColour

    make = MeanColour if kind == "pooled" else ColourRows
    ids = sorted(p.stem for p in corpus.images_dir.glob("*.jpg"))[:8]
    paths = [corpus.images_dir / f"{i}.jpg" for i in ids]
    first = ids[:4]

    cache = FeatureCache(tmp_path / "cache")
    trainer = ImageFeatures(make(), ImageStore(corpus.images_dir), cache, batch_size=4)
    trained = dict(zip(first, trainer.lookup(first)))
    tagging = FeatureStore(make(), cache, policy="error", batch_size=4)
    feats, errors = tagging.features(paths)  # the first four from training's features, the rest encoded
    assert not errors and tagging.encoder_calls == 1 and trainer.encoder_calls == 1
    assert tagging.encoder.calls == 1

    again = ImageFeatures(make(), ImageStore(corpus.images_dir), cache, batch_size=4)
    refs = again.lookup(ids)  # all eight: four of training, four of tagging
    assert again.encoder_calls == 0 and again.encoder.calls == 0
    for image_id, feat, ref in zip(ids, feats, refs):
        assert feat is not None and torch.equal(_tokens(ref), feat), image_id
        if image_id in trained:
            assert torch.equal(_tokens(trained[image_id]), feat), image_id
    assert [n for _, _, n, _ in cache.info()] == [8], "one cache entry, shared"


def test_cache_build_then_tag_never_calls_the_encoder_and_the_other_way_round(mscmt, trained_run, tiny, corpus, tmp_path, monkeypatch):
    ids = sorted(p.stem for p in corpus.images_dir.glob("*.jpg"))
    records = [{"text": f"Obama in Paris {k}", "image": f"{image_id}.jpg"} for k, image_id in enumerate(ids)] + [{"text": "no image"}]
    src = _jsonl(tmp_path / "in.jsonl", records)

    def tag(cache: Path):
        out = mscmt(["tag", src, "--model", trained_run, "--images", corpus.images_dir, "--cache-dir", cache, *_clip_args(tiny)])
        assert out.code == 0, out.err
        assert len(out.out.splitlines()) == len(records)
        return out.out

    def build(cache: Path):
        built = mscmt(["cache", "build", "--image", "clip-vit-l14", *corpus.args(), "--cache-dir", cache, *tiny.model_path_args()])
        assert built.code == 0, built.err
        return built

    calls = _count_encoder_calls(monkeypatch)
    # training's cache first: mscmt tag reads every image from it (only the blank image of the line without
    # an image is new: the corpus has every image, so the build never needed the blank one)
    built = build(tmp_path / "a")
    assert sum(calls) == len(ids)
    calls.clear()
    from_build = tag(tmp_path / "a")
    assert calls == [1], f"only the blank image (the line without one) is encoded; got batches {calls}"

    # tagging first: mscmt cache build finds every image in the cache
    calls.clear()
    from_tag = tag(tmp_path / "b")
    assert sum(calls) == len(ids) + 1
    calls.clear()
    built = build(tmp_path / "b")
    assert calls == [] and "(0 encoder batches computed" in " ".join((built.out + built.err).split())
    assert from_build == from_tag, "the same features whoever computed them"


# --- one prediction path ------------------------------------------------------------------------------------------


def _service(tagger):
    from fastapi.testclient import TestClient

    from mscmt_cli.tagging.server import create_app

    return TestClient(create_app(tagger))


def test_tag_batch_mscmt_tag_and_the_service_agree_byte_for_byte_and_in_their_messages(mscmt, tagger, trained_run, tiny, corpus, tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    for k, colour in enumerate([(200, 30, 30), (10, 200, 10), (10, 10, 240)]):
        (images / f"good{k}.png").write_bytes(image_bytes(colour, (32 + 8 * k, 24)))
    (images / "bad.jpg").write_bytes(b"not an image")
    good = [
        {"text": TRICKY_TEXTS[0], "image": "good0.png"},
        {"tokens": ["New", "York", "Knicks"], "image": "good1.png"},
        {"text": TRICKY_TEXTS[2]},
        {"text": TRICKY_TEXTS[3], "image": "good2.png"},
        {"text": "Obama visits Paris", "image": "good0.png"},
    ]
    bad = {"text": "Obama in Paris", "image": "bad.jpg"}
    records = good[:2] + [bad] + good[2:]

    # mscmt tag: every line in one window
    src = _jsonl(tmp_path / "in.jsonl", records)
    cli = mscmt(["tag", src, "--model", trained_run, "--images", images, "--missing-images", "error", "--no-cache", *_clip_args(tiny)])
    assert cli.code == 0, cli.err
    cli_rows = [json.loads(line) for line in cli.out.splitlines()]
    cli_bad = [line for line in cli.err.splitlines() if line.startswith(f"{src}:")]

    # Tagger.tag_batch: the good tweets, their images as the paths mscmt tag resolved, then as bytes
    def value(r: dict):
        return r.get("text", r.get("tokens"))

    paths = [str(images / r["image"]) if "image" in r else None for r in good]
    by_path = tagger.tag_batch([value(r) for r in good], paths)
    by_bytes = tagger.tag_batch([value(r) for r in good], [None if p is None else Path(p).read_bytes() for p in paths])
    with pytest.raises(MscmtError) as from_path:
        tagger.tag_batch([value(bad)], [str(images / "bad.jpg")])
    with pytest.raises(MscmtError) as from_bytes:
        tagger.tag_batch([value(bad)], [b"not an image"])

    # the service: the good tweets in one request, the bad one alone
    def item(r: dict, image: bytes | None) -> dict:
        body = {k: r[k] for k in ("text", "tokens") if k in r}
        return {**body, "image": base64.b64encode(image).decode()} if image is not None else body

    with _service(tagger) as client:
        answer = client.post(
            "/tag/batch", json={"items": [item(r, (images / r["image"]).read_bytes() if "image" in r else None) for r in good]}
        )
        refused = client.post("/tag", json=item(bad, b"not an image"))
        refused_in_batch = client.post("/tag/batch", json={"items": [item(good[0], None), item(bad, b"not an image")]})
    assert answer.status_code == 200, answer.text
    served = answer.json()["results"]

    expected = [_answer(r.as_dict()) for r in by_path]
    assert [_answer(r.as_dict()) for r in by_bytes] == expected
    assert [_answer(r) for r in cli_rows] == expected
    assert [_answer(r) for r in served] == expected
    assert all(r.caption is None for r in by_path)

    unreadable = f"{images / 'bad.jpg'}: unreadable image (not an image format Pillow reads)"
    assert cli_bad == [f"{src}:3: {unreadable}"]
    assert str(from_path.value) == f"tweet 0: {unreadable}"
    as_bytes = "image: unreadable image (not an image format Pillow reads)"
    assert str(from_bytes.value) == f"tweet 0: {as_bytes}"
    assert refused.status_code == 422 and refused.json()["detail"] == as_bytes
    assert refused_in_batch.status_code == 422 and refused_in_batch.json()["detail"] == f"items[1]: {as_bytes}"


def test_a_caption_model_agrees_across_entry_points_also_on_missing_captions(mscmt, context_run, tiny, corpus, tmp_path):
    from mscmt_cli import Tagger
    from mscmt_cli.data.captions import read_captions

    captions = read_captions(corpus.captions)
    known = sorted(captions)[0]
    images = tmp_path / "images"
    images.mkdir()
    (images / f"{known}.jpg").write_bytes((corpus.images_dir / f"{known}.jpg").read_bytes())
    (images / "unknown.jpg").write_bytes(image_bytes())
    good = [
        {"text": "Jordan sings in Paris", "image": f"{known}.jpg"},
        {"text": "Jordan sings in Paris", "caption": "a singer on a stage"},
        {"text": "Obama"},
    ]
    bad = {"text": "Obama in Paris", "image": "unknown.jpg"}
    src = _jsonl(tmp_path / "in.jsonl", [good[0], bad, *good[1:]])
    common = ["--model", context_run, "--images", images, "--captions", corpus.captions, "--missing-images", "error", "--no-cache"]
    cli = mscmt(["tag", src, *common, *_clip_args(tiny)])
    assert cli.code == 0, cli.err
    cli_rows = [json.loads(line) for line in cli.out.splitlines()]

    tagger = Tagger.from_pretrained(
        context_run, {"clip-vit-l14": str(tiny.clip_vision)}, device="cpu", captions=corpus.captions, missing_images="error"
    )
    paths = [str(images / r["image"]) if "image" in r else None for r in good]  # as mscmt tag resolves them
    results = tagger.tag_batch([r["text"] for r in good], paths, captions=[r.get("caption") for r in good])
    with pytest.raises(MscmtError) as missing:  # the caption is read first: its error is the tweet's
        tagger.tag_batch([bad["text"]], [bad["image"]])
    with pytest.raises(MscmtError) as as_bytes:
        tagger.tag_batch([bad["text"]], [image_bytes()])
    with _service(tagger) as client:
        served = client.post("/tag/batch", json={"items": [{k: v for k, v in r.items() if k != "image"} for r in good[1:]]})
        refused = client.post("/tag", json={"text": bad["text"], "image": base64.b64encode(image_bytes()).decode()})

    expected = [_answer(r.as_dict()) for r in results]
    assert [_answer(r) for r in cli_rows] == expected
    assert served.status_code == 200 and [_answer(r) for r in served.json()["results"]] == expected[1:]
    assert [r.caption for r in results] == [captions[known], "a singer on a stage", ""]
    no_caption = f"image 'unknown.jpg': no caption in {corpus.captions}"
    assert f"{src}:2: {no_caption}" in cli.err.splitlines()
    assert str(missing.value) == f"tweet 0: {no_caption}"
    assert refused.status_code == 422 and f"tweet 0: {refused.json()['detail']}" == str(as_bytes.value)


def test_a_model_scoring_nan_is_refused_alike_by_every_entry_point(tagger):
    """The old paths disagreed: ``tag_batch`` returned NaN scores where ``mscmt tag`` and the service refused the tweet."""
    from mscmt_cli.tagging.inputs import iter_jsonl
    from mscmt_cli.tagging.stream import tag_stream
    from tests.test_hostile_tagging import nan_weights

    bad: list = []
    with nan_weights(tagger):
        with pytest.raises(MscmtError) as raised:
            tagger.tag_batch(["fine", "Obama in Paris"])
        tag_stream(tagger, iter_jsonl([b'{"text": "fine"}\n']), on_result=lambda *_: None, on_bad=bad.append)
        with _service(tagger) as client:
            answer = client.post("/tag", json={"text": "fine"})
    assert str(raised.value) == f"tweet 0: {NOT_FINITE}"
    assert [b.message for b in bad] == [NOT_FINITE]
    assert answer.status_code == 500 and answer.json()["detail"] == NOT_FINITE


# --- the code shows it ----------------------------------------------------------------------------------------------


def _functions(path: Path) -> dict[str, ast.AST]:
    """Every function of a module by qualified name (``Class.method``, ``outer.inner``)."""
    found: dict[str, ast.AST] = {}

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                name = f"{prefix}{child.name}"
                if not isinstance(child, ast.ClassDef):
                    found[name] = child
                visit(child, f"{name}.")
            else:
                visit(child, prefix)

    visit(ast.parse(path.read_text(encoding="utf-8")), "")
    return found


def _calls(node: ast.AST, attr: str, owner: str | None = None, by_name: bool = True) -> list[ast.Call]:
    """Calls ``<x>.attr(...)`` (with ``owner``: ``<x>.owner.attr(...)``) inside ``node``; without ``owner`` (and with
    ``by_name``) also calls of a function imported by that name, ``attr(...)``."""
    out = []
    for call in ast.walk(node):
        if not isinstance(call, ast.Call):
            continue
        if isinstance(call.func, ast.Attribute) and call.func.attr == attr:
            value = call.func.value
            if owner is None or (isinstance(value, ast.Attribute) and value.attr == owner):
                out.append(call)
        elif by_name and owner is None and isinstance(call.func, ast.Name) and call.func.id == attr:
            out.append(call)
    return out


SCANNED = ("mscmt_cli", "plugins", "benchmarks")


def _outside_functions(tree: ast.Module) -> ast.Module:
    """The module with every function and method body left out: what runs when it is imported or run as a script."""

    class Strip(ast.NodeTransformer):
        def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
            return None

        def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef) -> None:
            return None

    return Strip().visit(tree)


def _where_called(
    attr: str, owner: str | None = None, roots: tuple[str, ...] = SCANNED, repo: Path = REPO, by_name: bool = True
) -> set[str]:
    """``module:function`` of every function in ``roots`` calling ``.attr(...)`` or ``attr(...)`` (innermost function),
    ``module:<module>`` for a call at a module's top level (a script's body, a module-level constant)."""
    places = set()
    for path in sorted(p for root in roots for p in (repo / root).rglob("*.py")):
        functions = _functions(path)
        where = path.relative_to(repo).as_posix()
        for name, node in functions.items():
            inner = {n for n in functions if n.startswith(name + ".")}
            own = len(_calls(node, attr, owner, by_name)) - sum(
                len(_calls(functions[n], attr, owner, by_name)) for n in inner if n.count(".") == name.count(".") + 1
            )
            if own > 0:
                places.add(f"{where}:{name}")
        if _calls(_outside_functions(ast.parse(path.read_text(encoding="utf-8"))), attr, owner, by_name):
            places.add(f"{where}:<module>")
    return places


def _defined(name: str, roots: tuple[str, ...] = SCANNED) -> set[str]:
    """``module:function`` of every function or method called ``name`` in ``roots``."""
    return {
        f"{path.relative_to(REPO).as_posix()}:{qual}"
        for path in sorted(p for root in roots for p in (REPO / root).rglob("*.py"))
        for qual in _functions(path)
        if qual.rpartition(".")[2] == name
    }


def test_every_tagging_entry_point_calls_the_one_prediction_function():
    assert _where_called("tag_outcomes", roots=("mscmt_cli",)) == {
        "mscmt_cli/tagging/tagger.py:Tagger.tag_batch",
        "mscmt_cli/tagging/stream.py:tag_window",
        "mscmt_cli/tagging/server.py:create_app.run",
    }
    one = "mscmt_cli/tagging/tagger.py:Tagger.tag_outcomes"
    # its steps are called nowhere else: features and errors, then predict
    # (the method; tagging.inputs.read_inputs, a function of the same name, reads JSONL lines)
    assert _where_called("read_inputs", roots=("mscmt_cli",), by_name=False) == {one}
    assert _where_called("features", owner="images", roots=("mscmt_cli",)) == {"mscmt_cli/tagging/tagger.py:Tagger.read_inputs"}


def test_the_tagger_is_the_only_predictor():
    """One ``predict`` in the source tree (the Tagger's), called by tagging and by evaluation only (issue 25)."""
    assert _defined("predict") == {"mscmt_cli/tagging/tagger.py:Tagger.predict"}
    assert _where_called("predict", roots=("mscmt_cli", "plugins")) == {
        "mscmt_cli/tagging/tagger.py:Tagger.tag_outcomes",  # mscmt tag, serve, explain, the Tagger API
        "mscmt_cli/engine/evaluate.py:tag_split",  # validation, test scores, mscmt evaluate, backend_f1, count_invalid
    }
    assert _where_called("predict", roots=("benchmarks",)) == {"benchmarks/bench_gpu.py:measure_inference"}  # times it


def test_the_call_finder_sees_calls_by_name_at_module_level_in_functions_and_methods(tmp_path):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "script.py").write_text(
        "from x import predict\n"
        "import x\n"
        "scores = predict(model, data)\n"
        "if __name__ == '__main__':\n"
        "    x.predict(model)\n"
        "def run():\n"
        "    def inner():\n"
        "        return predict(1)\n"
        "    return inner\n"
        "class Job:\n"
        "    def go(self):\n"
        "        return self.tagger.predict(2)\n"
        "def quiet():\n"
        "    return predicted(3)\n",
        encoding="utf-8",
    )
    found = _where_called("predict", roots=("pkg",), repo=tmp_path)
    assert found == {"pkg/script.py:<module>", "pkg/script.py:run.inner", "pkg/script.py:Job.go"}


def test_one_encode_path_writes_the_feature_cache():
    encode = "mscmt_cli/features.py:FeatureEncoder.encode"
    assert _where_called("put", owner="cache", roots=("mscmt_cli",)) == {encode}
    assert _where_called("encode_checked", roots=("mscmt_cli",)) == {encode}
