"""``mscmt evaluate`` is tagging, then scoring (issue 25, item 2): the split goes through the Tagger, under either backend.

Three tiny trained runs: the shared gated + CRF run (CLIP features), a text-only run and a caption model (its image
encoder reads each tweet's caption). What is proved: ``mscmt evaluate RUN --backend onnx`` gives the torch
backend's scores (equal within ``SCORE_TOLERANCE``, as the tags are identical); the scores of ``mscmt evaluate`` are
those of the tags ``mscmt tag`` writes for the same CoNLL file, scored against its gold tags; training's test
scores (``test_scores.json``) are those of ``mscmt evaluate`` on the saved best epoch.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli_support import train_args

#: Scores are ratios of counts of the same tags: the backends' scores are equal up to float rounding.
SCORE_TOLERANCE = 1e-12

RUNS = {
    "gated": None,  # the shared trained_run fixture
    "text-only": {"image": "none", "fusion": "none"},
    "caption": {"image": "caption", "fusion": "additive", "decoder": "softmax"},
}


@pytest.fixture(scope="module")
def runs(trained_run, tiny, corpus, tmp_path_factory) -> dict[str, Path]:
    import shutil

    from mscmt_cli.cli.main import main

    out = {"gated": tmp_path_factory.mktemp("eval-runs") / "gated"}
    shutil.copytree(trained_run, out["gated"])  # --backend onnx exports into the run: never into the shared one
    for name, components in RUNS.items():
        if components is None:
            continue
        run = tmp_path_factory.mktemp("eval-runs") / name
        extra = ["--head-lr", "1e-2", "--lr", "1e-3", "--captions", corpus.captions, "--model-path", f"caption={tiny.bert}"]
        try:
            main(train_args(corpus, run, tiny, epochs=2, batch_size=8, extra=extra, **components))
        except SystemExit as exc:
            assert not exc.code, f"training the {name} run failed ({exc.code})"
        out[name] = run
    return out


def _inputs(name: str, tiny, corpus) -> list:
    """What a run reads beside the tweets, and the local copies of its components."""
    paths = ["--model-path", f"clip-vit-l14={tiny.clip_vision}", "--model-path", f"caption={tiny.bert}"]
    if name == "gated":
        return [*paths, "--images-dir", corpus.images_dir]
    return [*paths, "--captions", corpus.captions] if name == "caption" else paths


def _evaluate(mscmt, run: Path, name: str, backend: str, tiny, corpus, tmp_path: Path) -> dict:
    target = tmp_path / f"{name}-{backend}.json"
    args = ["evaluate", run, "--data-dir", corpus.data_dir, "--corpus", corpus.name, "--backend", backend, "--device", "cpu"]
    result = mscmt([*args, "--no-cache", "--json", target, *_inputs(name, tiny, corpus)])
    assert result.code == 0, result.err
    return json.loads(target.read_text(encoding="utf-8"))


def _numbers(scores: dict, prefix: str = "") -> dict[str, float]:
    """Every number of a scores dict by its path (``micro.f1``, ``per_type.PER.recall``, ...)."""
    out: dict[str, float] = {}
    for key, value in scores.items():
        if isinstance(value, dict):
            out.update(_numbers(value, f"{prefix}{key}."))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            out[f"{prefix}{key}"] = float(value)
    return out


@pytest.mark.parametrize("name", sorted(RUNS))
def test_evaluate_backend_onnx_gives_the_scores_of_the_torch_backend(mscmt, runs, name, tiny, corpus, tmp_path):
    torch_scores = _evaluate(mscmt, runs[name], name, "torch", tiny, corpus, tmp_path)
    onnx_scores = _evaluate(mscmt, runs[name], name, "onnx", tiny, corpus, tmp_path)
    want, got = _numbers(torch_scores), _numbers(onnx_scores)
    assert got.keys() == want.keys() and "micro.f1" in want
    assert got == pytest.approx(want, abs=SCORE_TOLERANCE)
    assert (runs[name] / "onnx" / "model.onnx").is_file(), "the run was exported on the fly"


@pytest.mark.parametrize("name", sorted(RUNS))
def test_evaluate_scores_the_tags_mscmt_tag_writes_for_the_split(mscmt, runs, name, tiny, corpus, tmp_path):
    from mscmt_cli.data.conll import read_conll
    from mscmt_cli.engine.metrics import score

    test_file = corpus.data_dir / corpus.name / "test.txt"
    tagged = tmp_path / "tagged.jsonl"
    reads = ["--images", corpus.images_dir] if name == "gated" else []
    extra = ["--captions", corpus.captions] if name == "caption" else []
    args = ["tag", test_file, "--model", runs[name], "--device", "cpu", "--out", tagged, *reads, *extra, *_inputs(name, tiny, corpus)[:4]]
    result = mscmt(args)
    assert result.code == 0, result.err
    tags = [json.loads(line)["tags"] for line in tagged.read_text(encoding="utf-8").splitlines()]
    gold = [list(t.tags) for t in read_conll(test_file)]
    assert len(tags) == len(gold) == 16
    evaluated = _evaluate(mscmt, runs[name], name, "torch", tiny, corpus, tmp_path)
    assert _numbers(evaluated) == pytest.approx(_numbers(score(gold, tags)), abs=SCORE_TOLERANCE)
    # and training's own test score is that of mscmt evaluate on the saved best epoch
    trained = json.loads((runs[name] / "test_scores.json").read_text(encoding="utf-8"))
    assert _numbers(evaluated) == pytest.approx(_numbers({k: v for k, v in trained.items() if k != "best_epoch"}), abs=SCORE_TOLERANCE)


@pytest.mark.parametrize("backend", ["torch", "onnx"])
def test_predict_without_scores_gives_the_same_tags_and_nothing_else(tagger, trained_run, tiny, backend, tmp_path):
    """Evaluation asks the Tagger for tags alone (no marginals, no entities): the tags are those of a full answer."""
    import shutil

    from mscmt_cli.data.doc import doc_from_value
    from mscmt_cli.tagging.tagger import Tagger
    from tests.tagging_support import TRICKY_TEXTS, image_bytes

    if backend == "onnx":
        run = tmp_path / "run"
        shutil.copytree(trained_run, run)
        tagger = Tagger.from_pretrained(run, {"clip-vit-l14": str(tiny.clip_vision)}, backend="onnx", missing_images="error")
    docs = [doc_from_value(t) for t in TRICKY_TEXTS]
    feats, errors = tagger.images.features([image_bytes((k * 30 % 256, 10, 200)) for k in range(len(docs))])
    assert not errors
    full = tagger.predict(docs, feats)
    bare = tagger.predict(docs, feats, scores=False)
    assert [r.tags for r in bare] == [r.tags for r in full]
    assert all(r.tag_probs == [] and r.entities == [] and r.gate is None for r in bare)
    assert any(r.entities for r in full) or all(set(r.tags) == {"O"} for r in full)
