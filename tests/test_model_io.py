"""Text encoders on tiny models, and save/reload of trained model directories."""

from __future__ import annotations

import json

import pytest
import torch

from mscmt_cli.backends.batches import collate, encode_examples
from mscmt_cli.errors import ModelLoadError
from mscmt_cli.model.build import load_model, save_model
from mscmt_cli.registry import Registry
from plugins.text_encoders import BertBaseEncoder, BertweetEncoder
from tests.cli_support import copy_run as _copy_run
from tests.cli_support import one_line_error as _one_line_error


def test_bertweet_normalises_mentions_and_urls(tiny):
    enc = BertweetEncoder(str(tiny.bertweet))
    assert enc.normalise_word("@someone") == "@USER" and enc.normalise_word("@") == "@USER"  # as BERTweet's normalizeToken
    assert enc.normalise_word("https://t.co/x") == "HTTPURL" and enc.normalise_word("www.x.org") == "HTTPURL"
    assert enc.word_ids("@someone") == enc.word_ids("@USER")
    assert enc.max_subwords == 128


@pytest.mark.parametrize("name", ["bertweet", "bert"])
def test_saved_text_encoder_tokenizes_identically(tiny, tmp_path, name):
    cls = {"bertweet": BertweetEncoder, "bert": BertBaseEncoder}[name]
    enc = cls(str(getattr(tiny, name)))
    enc.save_architecture(tmp_path / "arch")
    again = cls(str(tmp_path / "arch"), pretrained=False)
    words = ["my", "heart", "goes", "out", "to", "Aurora", "and", "@someone", "at", "Port", "Halden", "tonight", "!!", "https://t.co/x"]
    assert [again.word_ids(w) for w in words] == [enc.word_ids(w) for w in words]


def test_long_tweet_is_windowed_and_every_word_is_represented(tiny):
    enc = BertBaseEncoder(str(tiny.bert))  # 64 positions
    words = [f"word{i % 7}" for i in range(300)]
    encoded = enc.encode_words(words)
    assert len(encoded.windows) > 1 and all(len(w) <= enc.max_subwords for w in encoded.windows)
    assert len(encoded.word_positions) == 300
    for (k, p), word in zip(encoded.word_positions, words):
        assert encoded.windows[k][p] == enc.word_ids(word)[0]
    batch = collate(encode_examples(enc, [words, ["short", "one"]], None, torch.zeros(2, 0)), enc.pad_id)
    out = enc(batch.text)
    assert out.shape == (2, 300, enc.hidden_size)
    assert batch.text.word_mask.sum().item() == 302


def test_saved_model_reloads_with_identical_predictions(trained_run, tiny, corpus):
    from mscmt_cli.data.conll import read_conll
    from tests.test_image_tokens import load_rgb

    registry = Registry.from_entry_points()
    paths = {"clip-vit-l14": str(tiny.clip_vision)}
    first = load_model(trained_run / "model", registry, paths)
    tweets = read_conll(corpus.data_dir / corpus.name / "test.txt")
    images = first.image.encode([load_rgb(corpus.images_dir, t.image_id) for t in tweets])
    batch = collate(encode_examples(first.model.text, [t.tokens for t in tweets], None, images), first.model.text.pad_id)
    with torch.no_grad():
        out1 = first.model(batch)
    resaved = trained_run.parent / "resaved"
    save_model(resaved, first.model, first.spec)
    second = load_model(resaved, registry, paths)
    with torch.no_grad():
        out2 = second.model(batch)
    assert torch.equal(out1.emissions, out2.emissions)
    assert first.model.decode(out1) == second.model.decode(out2)
    assert json.loads((resaved / "config.json").read_text()) == json.loads((trained_run / "model" / "config.json").read_text())


def test_mismatched_or_missing_weights_are_named(trained_run, tiny, tmp_path):
    import shutil

    from safetensors.torch import load_file, save_file

    registry = Registry.from_entry_points()
    paths = {"clip-vit-l14": str(tiny.clip_vision)}
    broken = tmp_path / "broken"
    shutil.copytree(trained_run / "model", broken)
    state = load_file(str(broken / "model.safetensors"))
    state["classifier.weight"] = torch.zeros(3, 3)
    save_file(state, str(broken / "model.safetensors"))
    with pytest.raises(ModelLoadError, match=r"model.safetensors: weights do not match.*wrong shape: classifier.weight"):
        load_model(broken, registry, paths)
    (broken / "model.safetensors").unlink()
    with pytest.raises(ModelLoadError, match="weights file missing"):
        load_model(broken, registry, paths)
    (broken / "config.json").write_text("{not json")
    with pytest.raises(ModelLoadError, match="config.json: not valid JSON"):
        load_model(broken, registry, paths)


def test_loading_through_the_python_api_prints_no_transformers_load_report(trained_run, tiny, capfd):
    """A full CLIP checkpoint as the vision tower: transformers would log a LOAD REPORT of UNEXPECTED keys
    (and draw a progress bar) into the caller's stderr; ``Tagger.from_pretrained`` keeps them quiet and
    leaves transformers' own settings as it found them."""
    import logging

    from transformers import CLIPVisionModelWithProjection
    from transformers.utils import logging as hf_logging

    from mscmt_cli import Tagger

    class Records(logging.Handler):
        def __init__(self) -> None:
            super().__init__()
            self.messages: list[str] = []

        def emit(self, record: logging.LogRecord) -> None:
            self.messages.append(record.getMessage())

    records, library = Records(), logging.getLogger("transformers")
    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_warning()
    hf_logging.enable_progress_bar()
    library.addHandler(records)
    try:
        CLIPVisionModelWithProjection.from_pretrained(str(tiny.clip))
        assert any("LOAD REPORT" in m for m in records.messages), "the checkpoint makes transformers report"
        assert "Loading weights" in capfd.readouterr().err
        records.messages.clear()
        Tagger.from_pretrained(trained_run, {"clip-vit-l14": str(tiny.clip)}, device="cpu")
        assert records.messages == [] and capfd.readouterr().err == ""
        assert hf_logging.get_verbosity() == hf_logging.WARNING and hf_logging.is_progress_bar_enabled()
    finally:
        library.removeHandler(records)
        hf_logging.set_verbosity(verbosity)
        (hf_logging.enable_progress_bar if bars else hf_logging.disable_progress_bar)()


# --- a model directory that is not ours, weights that are cut short ---------------------------------------------------


def test_a_foreign_config_json_is_not_a_model(tiny, tmp_path, mscmt, corpus):
    _one_line_error(mscmt(["evaluate", tiny.bertweet, *corpus.args()]), f"{tiny.bertweet}: not an mscmt model directory")


def test_truncated_model_weights_are_named(trained_run, corpus, tiny, tmp_path, mscmt):
    run = _copy_run(trained_run, tmp_path / "R")
    weights = run / "model" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    _one_line_error(mscmt(["evaluate", run, *corpus.args(), *tiny.model_path_args()]), f"{weights}: unreadable weights")
