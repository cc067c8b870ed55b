"""End-to-end ``mscmt train`` / ``mscmt evaluate`` on tiny random encoders."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from importlib.metadata import version
from pathlib import Path

import pytest
import torch
from hypothesis import given
from hypothesis import settings as hyp_settings
from hypothesis import strategies as st
from safetensors.torch import load_file
from seqeval.metrics.sequence_labeling import get_entities

from mscmt_cli.data.conll import read_conll
from mscmt_cli.errors import MscmtError
from mscmt_cli.labels import ENTITY_TYPES
from tests.cli_support import one_line_error as _one_line_error
from tests.cli_support import train_args


def _check_run_dir(run: Path) -> list[dict]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    for row in rows:
        for key in ("epoch", "train_loss", "valid_micro_f1", "valid_weighted_f1"):
            assert isinstance(row[key], (int, float))
    config = json.loads((run / "model" / "config.json").read_text())
    assert set(config["components"]) == {"text", "image", "fusion", "decoder"}
    assert config["labels"][0] == "O" and len(config["labels"]) == 9
    assert (run / "model" / "model.safetensors").is_file()
    assert not list((run / "model").glob("*.bin")), "the frozen image encoder must not be copied"
    run_info = json.loads((run / "run.json").read_text())
    assert run_info["versions"]["torch"] == version("torch")
    for path, digest in run_info["data_files"].items():
        assert digest == hashlib.sha256(Path(path).read_bytes()).hexdigest()
    return rows


def test_train_gated_crf_then_evaluate(trained_run, corpus, tiny, mscmt, tmp_path):
    rows = _check_run_dir(trained_run)
    assert [r["epoch"] for r in rows] == [1, 2]
    scores_file = tmp_path / "scores.json"
    result = mscmt(["evaluate", trained_run, *corpus.args(), "--split", "test", "--json", scores_file, *tiny.model_path_args()])
    assert result.code == 0, result.err
    scores = json.loads(scores_file.read_text())
    gold = [t.tags for t in read_conll(corpus.data_dir / corpus.name / "test.txt")]
    spans = Counter(etype for tags in gold for etype, _, _ in get_entities(list(tags)))
    assert {t: scores["types"][t]["support"] for t in ENTITY_TYPES} == {t: spans.get(t, 0) for t in ENTITY_TYPES}
    assert scores["micro"]["support"] == scores["weighted"]["support"] == sum(spans.values())
    for row in [scores["micro"], scores["weighted"], *scores["types"].values()]:
        p, r = row["precision"], row["recall"]
        if row is not scores["weighted"]:  # the weighted F1 is the support-weighted mean of the type F1s, not 2PR/(P+R)
            assert row["f1"] == pytest.approx(2 * p * r / (p + r) if p + r else 0.0)
    weighted = sum(scores["types"][t]["f1"] * spans.get(t, 0) for t in ENTITY_TYPES) / sum(spans.values())
    assert scores["weighted"]["f1"] == pytest.approx(weighted)
    test_scores = json.loads((trained_run / "test_scores.json").read_text())
    assert test_scores["micro"] == scores["micro"], "evaluate must reproduce the training run's own test scores"


def _after_the_scheme_note(err: str, data_file: Path) -> str:
    """``mscmt evaluate``'s stderr after its one note (the scheme the data file was read as), checked to be just that."""
    before, scored, after = err.partition("scored ")
    assert " ".join(before.split()) == f"warning: {data_file}: tags read as BIO (detected)", err
    return scored + after


def test_evaluate_alone_scores_the_runs_own_corpus_and_says_so(trained_run, corpus, tiny, mscmt, tmp_path):
    """No --corpus, --data-dir or --images-dir: the run's run.json gives them (the default corpus, merged, is not it)."""
    for path in (trained_run, trained_run / "model"):
        result = mscmt(["evaluate", path, "--json", tmp_path / "s.json", *tiny.model_path_args()])
        assert result.code == 0, result.err
        scored = _after_the_scheme_note(result.err, corpus.data_dir / corpus.name / "test.txt")
        assert scored.startswith(f"scored {path} on the test split of {corpus.name} ({corpus.data_dir}), the corpus it was trained on\n")
        assert json.loads((tmp_path / "s.json").read_text())["micro"] == json.loads((trained_run / "test_scores.json").read_text())["micro"]

    # what is given wins over what the run recorded, and the line says the run was trained on another corpus
    other = tmp_path / "data"
    (other / "copy").mkdir(parents=True)
    for split in ("train", "valid", "test"):
        (other / "copy" / f"{split}.txt").write_bytes((corpus.data_dir / corpus.name / f"{split}.txt").read_bytes())
    result = mscmt(["evaluate", trained_run, "--data-dir", other, "--corpus", "copy", "--split", "valid", *tiny.model_path_args()])
    assert result.code == 0, result.err
    scored = _after_the_scheme_note(result.err, other / "copy" / "valid.txt")
    assert scored.startswith(f"scored {trained_run} on the valid split of copy ({other}); it was trained on {corpus.name}\n")


def test_training_that_stops_early_says_so_in_one_line(corpus, tiny, mscmt, tmp_path):
    """Learning rates near zero: the validation F1 never beats epoch 1's, so patience 1 stops after epoch 2 of 5."""
    extra = ["--patience", "1", "--lr", "1e-12", "--head-lr", "1e-12"]
    result = mscmt(train_args(corpus, tmp_path / "run", tiny, epochs=5, extra=extra))
    assert result.code == 0, result.err
    rows = _check_run_dir(tmp_path / "run")
    assert [r["epoch"] for r in rows] == [1, 2] and rows[1]["valid_weighted_f1"] <= rows[0]["valid_weighted_f1"]
    stopped = [line for line in result.err.splitlines() if line.startswith("stopped early")]
    assert stopped == [
        "stopped early after epoch 2 of 5: no gain in validation weighted F1 for 1 epoch(s) (--patience 1); "
        f"best epoch 1 (weighted F1 {100 * rows[0]['valid_weighted_f1']:.2f}) is the saved model"
    ]
    whole = mscmt(train_args(corpus, tmp_path / "whole", tiny, epochs=1))
    assert whole.code == 0 and "stopped early" not in whole.err


def test_train_softmax_variant(corpus, tiny, mscmt, tmp_path):
    out = tmp_path / "softmax"
    result = mscmt(
        train_args(corpus, out, tiny, text="bert-base", image="clip-vit-l14", fusion="additive", decoder="softmax", batch_size=8)
    )
    assert result.code == 0, result.err
    rows = _check_run_dir(out)
    assert len(rows) == 1
    assert json.loads((out / "model" / "config.json").read_text())["components"]["decoder"] == "softmax"


def test_text_only_needs_no_images(corpus, tiny, mscmt, tmp_path):
    out = tmp_path / "textonly"
    result = mscmt(train_args(corpus, out, tiny))
    assert result.code == 0, result.err
    _check_run_dir(out)
    config = json.loads((out / "model" / "config.json").read_text())
    assert config["image_dim"] == 0 and config["fusion_dim"] == config["text_hidden_size"] == 32
    keys = load_file(str(out / "model" / "model.safetensors"))
    assert not any(k.startswith("fusion.") for k in keys) and keys["classifier.weight"].shape == (9, 32)


def test_image_encoder_without_images_dir_fails_up_front(corpus, tiny, mscmt, tmp_path):
    result = mscmt(train_args(corpus, tmp_path / "x", tiny, image="clip-vit-l14", fusion=None, images=False, epochs=None))
    _one_line_error(result, "--images-dir", alone=True)


def test_unknown_component_lists_known_ones(corpus, mscmt, tmp_path):
    result = mscmt(["train", "--fusion", "bilinear", *corpus.args(), "--out", tmp_path / "x"])
    assert result.code == 2
    assert "unknown fusion component 'bilinear'" in result.err and "gated" in result.err and "additive" in result.err


def test_unreachable_hub_model_is_one_line(corpus, mscmt, tmp_path):
    result = mscmt(
        ["train", "--text", "bert-base", "--image", "none", "--fusion", "none", *corpus.args(images=False), "--out", tmp_path / "x"]
    )
    _one_line_error(result, "'bert-base-uncased'", "--model-path bert-base=", alone=True)


def test_missing_image_is_counted_or_fatal(corpus, tiny, mscmt, tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    for f in sorted(corpus.images_dir.glob("*.jpg"))[3:]:
        (images / f.name).write_bytes(f.read_bytes())
    base = train_args(corpus, None, tiny, image="clip-vit-l14", fusion=None, images=False, extra=["--images-dir", images, "--no-cache"])
    fatal = mscmt([*base, "--out", tmp_path / "a", "--missing-images", "error"])
    assert fatal.code == 2 and "not found (looked in" in fatal.err and "Traceback" not in fatal.err
    blank = mscmt([*base, "--out", tmp_path / "b", "--missing-images", "blank"])
    assert blank.code == 0, blank.err
    assert "3 missing or unreadable image(s) replaced by a blank image" in blank.err


def test_malformed_data_file_names_file_and_line(corpus, mscmt, tmp_path):
    bad = tmp_path / "data" / "bad"
    bad.mkdir(parents=True)
    for split in ("train", "valid", "test"):
        (bad / f"{split}.txt").write_text("IMGID:1\nhello\tO\nworld B-PER\n\n", encoding="utf-8")
    result = mscmt(
        ["train", "--image", "none", "--fusion", "none", "--data-dir", tmp_path / "data", "--corpus", "bad", "--out", tmp_path / "x"]
    )
    assert result.code == 2
    assert f"{bad / 'train.txt'}:3:" in result.err and "no tab" in result.err


def test_settings_file_and_environment(corpus, tiny, mscmt, tmp_path, monkeypatch):
    cfg = tmp_path / "s.toml"
    cfg.write_text(
        f'text = "bertweet"\nimage = "none"\nfusion = "none"\nepochs = 1\nbatch-size = 4\n[model_paths]\nbertweet = "{tiny.bertweet}"\n',
        encoding="utf-8",
    )
    monkeypatch.setenv("MSCMT_SEED", "5")
    out = tmp_path / "run"
    result = mscmt(["train", "--config", cfg, *corpus.args(images=False), "--out", out])
    assert result.code == 0, result.err
    settings = json.loads((out / "run.json").read_text())["settings"]
    assert settings["seed"] == 5 and settings["batch_size"] == 4 and settings["epochs"] == 1


@pytest.mark.parametrize(
    "content, fragment",
    [
        ("epochs = 1\nlearning_rate = 3\n", "learning_rate: Extra inputs are not permitted"),
        ('epochs = "many"\n', "epochs: Input should be a valid integer"),
        ("epochs = [\n", "invalid TOML"),
    ],
)
def test_bad_settings_file(content, fragment, mscmt, tmp_path):
    cfg = tmp_path / "bad.toml"
    cfg.write_text(content, encoding="utf-8")
    result = mscmt(["train", "--config", cfg, "--out", tmp_path / "x"])
    assert result.code == 2 and str(cfg) in result.err and fragment in result.err


def test_negative_learning_rate(mscmt, tmp_path):
    result = mscmt(["train", "--lr", "-1", "--out", tmp_path / "x"])
    assert result.code == 2 and "--lr: Input should be greater than 0" in result.err


# --- a non-finite loss stops training and never becomes "best" --------------------------------------------------------


@pytest.mark.parametrize("value", ["inf", "-inf", "nan", "1e999"])
def test_non_finite_settings_are_refused_before_anything_is_written(tiny, corpus, tmp_path, mscmt, value):
    out = tmp_path / "wd"
    for option in ("--weight-decay", "--lr", "--dropout", "--max-grad-norm"):
        _one_line_error(mscmt(train_args(corpus, out, tiny, extra=[option, value])), f"option {option}")
    assert not out.exists()


def test_a_diverging_first_epoch_stops_training_and_saves_nothing(tiny, corpus, tmp_path, monkeypatch, mscmt):
    from mscmt_cli.model.mner import MNERModel

    forward = MNERModel.forward

    def poisoned_forward(self, batch):
        output = forward(self, batch)
        if output.loss is not None and self.training:
            output.loss = output.loss * float("nan")
        return output

    monkeypatch.setattr(MNERModel, "forward", poisoned_forward)
    out = tmp_path / "wd"
    result = mscmt(train_args(corpus, out, tiny, epochs=2))
    _one_line_error(result, "training diverged in epoch 1, step 1", "--weight-decay", "no epoch was saved")
    assert not (out / "model").exists() and not (out / "checkpoint").exists()
    assert (out / "metrics.jsonl").read_text() == ""
    monkeypatch.setattr(MNERModel, "forward", forward)
    # nothing was lost, so the same --out may be trained again
    again = mscmt(train_args(corpus, out, tiny))
    assert again.code == 0, again.err


def test_divergence_keeps_the_last_finite_epoch(tiny, corpus, tmp_path, monkeypatch, mscmt):
    from safetensors.torch import load_file

    from mscmt_cli.engine import trainer
    from mscmt_cli.model.mner import MNERModel

    epoch = {"now": 0}
    run_epoch, forward = trainer.Run.run_epoch, MNERModel.forward

    def counting_run_epoch(self, n):
        epoch["now"] = n
        return run_epoch(self, n)

    def poisoned_forward(self, batch):
        output = forward(self, batch)
        if epoch["now"] == 2 and output.loss is not None:
            output.loss = output.loss * float("inf")
        return output

    monkeypatch.setattr(trainer.Run, "run_epoch", counting_run_epoch)
    monkeypatch.setattr(MNERModel, "forward", poisoned_forward)
    out = tmp_path / "poisoned"
    result = mscmt(train_args(corpus, out, tiny, epochs=3, extra=["--patience", "3"]))
    _one_line_error(result, "training diverged in epoch 2, step 1: the loss is inf", "keeps epoch 1 in its checkpoint")
    weights = load_file(str(out / "model" / "model.safetensors"))
    assert all(torch.isfinite(w).all() for w in weights.values())
    checkpoint = load_file(str(out / "checkpoint" / "model.safetensors"))
    assert all(torch.equal(weights[k], checkpoint[k]) for k in weights), "epoch 1 was the best and the last kept"
    assert [line.count('"epoch": 1') for line in (out / "metrics.jsonl").read_text().splitlines()] == [1]


def test_non_finite_weights_are_found():
    from mscmt_cli.engine.trainer import non_finite_parameters

    model = torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.Linear(3, 2))
    assert non_finite_parameters(model) == []
    with torch.no_grad():
        model[1].bias[0] = float("nan")
        model[0].weight[2, 1] = float("-inf")
    assert non_finite_parameters(model) == ["0.weight", "1.bias"]


# --- any integer seed trains; the seeds torch accepted keep their batches ---------------------------------------------


@hyp_settings(max_examples=60, deadline=None)
@given(seed=st.integers(min_value=-(2**80), max_value=2**80), epoch=st.integers(min_value=1, max_value=500))
def test_every_seed_makes_a_generator(seed, epoch):
    from mscmt_cli.engine.trainer import epoch_seed, seed_everything, torch_seed

    generator = torch.Generator().manual_seed(epoch_seed(seed, epoch))
    seed_everything(seed)
    if 0 <= seed * 1000 + epoch < 2**64:
        assert epoch_seed(seed, epoch) == seed * 1000 + epoch  # unchanged: old runs resume with the same batches
    if -(2**63) <= seed * 1000 + epoch < 2**64:  # what torch took before: the very same generator
        old = torch.Generator().manual_seed(seed * 1000 + epoch)
        assert torch.equal(torch.randperm(20, generator=old), torch.randperm(20, generator=generator))
    assert 0 <= torch_seed(seed) < 2**64


def test_largest_seed_trains(tiny, corpus, tmp_path, mscmt):
    out = tmp_path / "seed"
    result = mscmt(train_args(corpus, out, tiny, extra=["--seed", 2**63 - 1]))
    assert result.code == 0, result.err
    assert (out / "test_scores.json").is_file()


# --- evaluate --json: a directory or an empty path is refused before scoring ------------------------------------------


def test_evaluate_json_target_is_checked_before_scoring(trained_run, tmp_path, monkeypatch):
    import io

    from rich.console import Console

    from mscmt_cli.engine import evaluation_job
    from mscmt_cli.settings import Settings

    scored = []
    monkeypatch.setattr(evaluation_job, "evaluate_run", lambda *a, **k: scored.append(1) or {"micro": {}})
    (tmp_path / "d").mkdir()
    console = Console(file=io.StringIO())
    for target, needle in ((tmp_path / "d", "--json .*: is a directory"), (Path(""), "--json: an empty path")):
        with pytest.raises(MscmtError, match=needle):
            evaluation_job.run_evaluate(trained_run, Settings(), "test", None, console, target)
    assert scored == [] and list((tmp_path / "d").iterdir()) == []
    evaluation_job.run_evaluate(trained_run, Settings(), "test", None, console, tmp_path / "d" / "s.json")
    assert scored == [1] and (tmp_path / "d" / "s.json").read_text().strip() == '{\n  "micro": {}\n}'


def test_evaluate_json_dir_through_the_cli(trained_run, corpus, tiny, tmp_path, mscmt):
    (tmp_path / "d").mkdir()
    _one_line_error(mscmt(["evaluate", trained_run, *corpus.args(), "--json", tmp_path / "d", *tiny.model_path_args()]), "is a directory")
    assert list((tmp_path / "d").iterdir()) == []
