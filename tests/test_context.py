"""Caption as context (``--context caption``): the caption as a second segment of the text encoder's input.

What is proved: the sub-word ids (and segment ids) the encoder gets are the tokenizer's own pair encoding of
(tweet, caption), and the labelled positions are exactly the tweet's first sub-words; the window rule (the tweet
is never truncated because of the caption, the caption is cut to the last window, no window exceeds the limit);
training, evaluation, saving and tagging end to end, with the saved config recording the context; the same
captions at training and tagging time give the same tags; a missing caption follows ``--missing-images``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mscmt_cli.backends.batches import collate, encode_examples
from mscmt_cli.errors import MscmtError
from mscmt_cli.model.hf_text import HFTextEncoder
from plugins.text_encoders import BertBaseEncoder, BertweetEncoder
from tests.cli_support import train_args

ENCODERS = {"bertweet": BertweetEncoder, "bert": BertBaseEncoder}


def _encoder(tiny, name: str) -> HFTextEncoder:
    encoder = ENCODERS[name](str(getattr(tiny, name)))
    encoder.check_context("caption")
    encoder.context = "caption"
    return encoder.eval()


@pytest.fixture(scope="module")
def encoders(tiny) -> dict[str, HFTextEncoder]:
    return {name: _encoder(tiny, name) for name in ENCODERS}


WORDS = ["Obama", "visits", "Paris", "today", "with", "Kerry", "RT", "New", "York", "love", "the", "game", "#NBA", "Jordan", "!!"]
CAPTIONS = ["a man in a suit waving", "a singer with a microphone under stage lights", "two dogs", "a"]


def _own_pair(encoder: HFTextEncoder, words: list[str], caption: str) -> dict:
    """The tokenizer's own pair encoding of (tweet, caption); the tweet as the encoder shows its words."""
    return encoder.tokenizer(" ".join(encoder.normalise_word(w) for w in words), caption, return_token_type_ids=True)


def _first_subwords(encoder: HFTextEncoder, words: list[str], start: int) -> list[int]:
    """Where each word's first sub-word is, counted with the tokenizer itself (not the encoder's memo)."""
    out, at = [], start
    for word in words:
        out.append(at)
        at += len(encoder.tokenizer(encoder.normalise_word(word), add_special_tokens=False)["input_ids"])
    return out


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.sampled_from(sorted(ENCODERS)), st.lists(st.sampled_from(WORDS), min_size=1, max_size=12), st.sampled_from(CAPTIONS))
def test_the_encoder_gets_the_tokenizers_own_pair_encoding_and_labels_the_tweets_first_subwords(encoders, name, words, caption):
    encoder = encoders[name]
    encoded = encoder.encode_words(words, caption)
    own = _own_pair(encoder, words, caption)
    assert encoded.windows == [list(own["input_ids"])]
    if name == "bert":  # BERT takes segment ids: 0 on [CLS] tweet [SEP], 1 on caption [SEP]
        assert encoded.token_types == [list(own["token_type_ids"])] and set(own["token_type_ids"]) == {0, 1}
    else:  # RoBERTa-style models have one segment: no token_type_ids
        assert encoded.token_types is None
    assert [k for k, _ in encoded.word_positions] == [0] * len(words)
    assert [p for _, p in encoded.word_positions] == _first_subwords(encoder, words, start=1)
    tweet_end = len(encoder.pair_format().prefix) + sum(
        len(encoder.tokenizer(encoder.normalise_word(w), add_special_tokens=False)["input_ids"]) for w in words
    )
    assert all(p < tweet_end for _, p in encoded.word_positions), "a labelled position points past the tweet segment"


def test_the_pair_formats_are_the_encoders_own(encoders):
    bert, bertweet = encoders["bert"], encoders["bertweet"]
    t = bert.tokenizer
    assert bert.pair_format().prefix == (t.cls_token_id,) and bert.pair_format().middle == (t.sep_token_id,)
    assert bert.pair_format().suffix == (t.sep_token_id,) and bert.pair_format().n_special == 3
    t = bertweet.tokenizer
    assert bertweet.pair_format().prefix == (t.bos_token_id,) and bertweet.pair_format().middle == (t.eos_token_id,) * 2
    assert bertweet.pair_format().n_special == 4


def test_a_missing_caption_is_an_empty_second_segment(encoders):
    bert = encoders["bert"]
    encoded = bert.encode_words(["Obama", "today"], "")
    prefix, middle, suffix = bert.pair_format().prefix, bert.pair_format().middle, bert.pair_format().suffix
    assert encoded.windows == [[*prefix, *bert.word_ids("Obama"), *bert.word_ids("today"), *middle, *suffix]]


def test_an_encoder_without_context_refuses_a_caption_and_one_with_context_needs_one(tiny, encoders):
    plain = BertBaseEncoder(str(tiny.bert))
    with pytest.raises(ValueError, match="context"):
        plain.encode_words(["a"], "a caption")
    with pytest.raises(ValueError, match="context"):
        encoders["bert"].encode_words(["a"])
    assert plain.encode_words(["Obama"]).token_types is None  # without context: the windows of before, no segment ids


# ---------------------------------------------------------------------------
# the window rule
# ---------------------------------------------------------------------------
VOCAB = ["a", "man", "obama", "paris", "supercalifragilistic", "#throwbackthursday", "internationalisation", "x", "!!", "new", "york"]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    name=st.sampled_from(sorted(ENCODERS)),
    words=st.lists(st.sampled_from(VOCAB), min_size=1, max_size=60),
    caption=st.lists(st.sampled_from(VOCAB), max_size=80).map(" ".join),
    window=st.integers(min_value=5, max_value=40),
)
def test_long_tweets_and_long_captions_keep_every_word_and_stay_in_the_window(encoders, name, words, caption, window):
    encoder = encoders[name]
    encoder.max_subwords, saved = window, encoder.max_subwords
    try:
        encoded = encoder.encode_words(words, caption)
        alone = encoder.encode_words(words, "")
    finally:
        encoder.max_subwords = saved
    pair = encoder.pair_format()
    room = window - pair.n_special
    assert all(len(w) <= window for w in encoded.windows), "a window exceeds the limit"
    # every word is represented, by its first sub-word, in order, each window holding whole words
    assert len(encoded.word_positions) == len(words)
    assert encoded.word_positions == sorted(encoded.word_positions)
    for (k, p), word in zip(encoded.word_positions, words):
        assert encoded.windows[k][p] == encoder.word_ids(word)[0]
    # the tweet is cut exactly as with an empty caption: the caption never shortens or moves a word
    assert encoded.word_positions == alone.word_positions and len(encoded.windows) == len(alone.windows)
    last = len(encoded.windows) - 1
    parts: list[list[int]] = []
    for k, window_ids in enumerate(encoded.windows):
        if k < last:  # earlier windows: the tweet alone, in the single format
            assert window_ids[0] == encoder.words.prefix[0] and window_ids[-1] == encoder.words.suffix[-1]
            parts.append(window_ids[len(encoder.words.prefix) : len(window_ids) - len(encoder.words.suffix)])
        else:
            tweet_len = len(alone.windows[k]) - pair.n_special  # the tweet's sub-words in the last window
            tweet = window_ids[len(pair.prefix) : len(pair.prefix) + tweet_len]
            parts.append(tweet)
            second = window_ids[len(pair.prefix) + tweet_len + len(pair.middle) : len(window_ids) - len(pair.suffix)]
            assert window_ids == [*pair.prefix, *tweet, *pair.middle, *second, *pair.suffix]
            assert second == encoder.caption_ids(caption)[: room - tweet_len], "the caption is not its first sub-words that fit"
    assert all(len(part) <= room for part in parts)
    for k, part in enumerate(parts):  # whole words: a window's part is exactly the sub-words of its words
        assert len(part) == sum(len(encoder.word_ids(w)[:room]) for (kk, _), w in zip(encoded.word_positions, words) if kk == k)
    assert [i for part in parts for i in part] == [i for w in words for i in encoder.word_ids(w)[:room]], "a tweet sub-word is lost"


def test_a_window_with_no_room_for_the_tweet_is_refused(tiny):
    from mscmt_cli.model.hf_text import HFTextParams
    from plugins.text_encoders import BertweetParams

    with pytest.raises(MscmtError, match="--set text.window"):
        BertweetEncoder(str(tiny.bertweet), params=BertweetParams(window=4)).check_context("caption")
    BertBaseEncoder(str(tiny.bert), params=HFTextParams(window=4)).check_context("caption")  # 3 special tokens: 1 left


def test_segment_ids_reach_the_model(encoders):
    bert = encoders["bert"]
    examples = encode_examples(bert, [["Obama", "in", "Paris"]], None, torch.zeros(1, 0), ["a man in a suit"])
    batch = collate(examples, bert.pad_id)
    assert batch.text.token_type_ids is not None and batch.text.token_type_ids.tolist() == examples[0].encoded.token_types
    with torch.no_grad():
        with_types = bert(batch.text)
        batch.text.token_type_ids = None
        without = bert(batch.text)
    assert not torch.allclose(with_types, without), "the caption's segment ids do not reach the model"


# ---------------------------------------------------------------------------
# end to end: train, evaluate, save, tag
# ---------------------------------------------------------------------------
def _train(mscmt, corpus, tiny, out: Path, *extra, captions: Path | None = None, **components):
    context = ["--context", "caption", "--captions", captions or corpus.captions, "--head-lr", "1e-2", "--lr", "1e-3"]
    paths = ["--model-path", f"minilm={tiny.bert}", "--model-path", f"caption={tiny.bert}"]
    return mscmt(train_args(corpus, out, tiny, **components, batch_size=8, extra=[*extra, *context, *paths]))


COMBINATIONS = {
    "bertweet-text-only": {"text": "bertweet", "image": "none", "fusion": "none"},
    "minilm-clip-gated": {"text": "minilm", "image": "clip-vit-l14", "fusion": "gated"},
    "bert-caption-additive": {"text": "bert-base", "image": "caption", "fusion": "additive", "decoder": "softmax"},
}


@pytest.mark.parametrize("combination", sorted(COMBINATIONS))
def test_train_evaluate_save_and_tag_with_caption_context(mscmt, corpus, tiny, tmp_path, combination):
    from mscmt_cli.data.conll import read_conll
    from mscmt_cli.engine.data import TweetReader, training_processor
    from mscmt_cli.engine.evaluate import tag_split
    from mscmt_cli.model.build import load_model
    from mscmt_cli.registry import Registry

    components = COMBINATIONS[combination]
    out = tmp_path / "run"
    reads_images = components["image"] == "clip-vit-l14"
    trained = _train(mscmt, corpus, tiny, out, "--cache-dir", tmp_path / "cache", **components)
    assert trained.code == 0, trained.err
    config = json.loads((out / "model" / "config.json").read_text(encoding="utf-8"))
    assert config["context"] == "caption" and config["training"]["context"] == "caption"
    assert json.loads((out / "run.json").read_text(encoding="utf-8"))["settings"]["context"] == "caption"

    # the saved model scores the test split exactly as the model in memory did at the end of training
    paths = ["--model-path", f"caption={tiny.bert}", "--model-path", f"clip-vit-l14={tiny.clip_vision}"]
    common = ["--captions", corpus.captions, "--cache-dir", tmp_path / "cache", *paths]
    evaluated = mscmt(
        [
            "evaluate",
            out,
            *corpus.args(images=reads_images),
            "--split",
            "test",
            *common,
            "--json",
            tmp_path / "s.json",
        ]
    )
    assert evaluated.code == 0, evaluated.err
    assert json.loads((tmp_path / "s.json").read_text())["micro"] == json.loads((out / "test_scores.json").read_text())["micro"]

    # mscmt tag (captions looked up by each tweet's image id) gives the tags of the training path's encoding
    test_file = corpus.data_dir / corpus.name / "test.txt"
    tagged = mscmt(
        ["tag", test_file, "--model", out, "--missing-images", "error", *(["--images", corpus.images_dir] if reads_images else []), *common]
    )
    assert tagged.code == 0, tagged.err
    rows = [json.loads(line) for line in tagged.out.splitlines()]
    tweets = read_conll(test_file)
    assembled = load_model(out / "model", Registry.from_entry_points(), {"caption": str(tiny.bert), "clip-vit-l14": str(tiny.clip_vision)})
    processor = training_processor(
        assembled.image, assembled.spec.context, images_dir=corpus.images_dir, captions=corpus.captions, policy="error", cache_dir=None
    )
    dataset = TweetReader(processor).encode(tweets, assembled.model.text, assembled.spec.labels)
    from mscmt_cli.tagging.tagger import Tagger

    in_memory = tag_split(Tagger(assembled, "cpu", batch_size=8, max_batch_subwords=None), tweets, dataset)
    assert [r["tags"] for r in rows] == in_memory
    assert len(rows) == len(tweets) == 16


def test_context_without_captions_is_refused_before_anything_loads(mscmt, corpus, tmp_path):
    result = mscmt(
        ["train", "--text", "bertweet", "--image", "none", "--fusion", "none", "--context", "caption", *corpus.args(images=False)]
        + ["--out", tmp_path / "run", "--model-path", f"bertweet={tmp_path}"]  # not a model: nothing may load
    )
    assert result.code == 2 and result.err.strip() == (
        "error: --context caption: the text encoder reads each tweet's caption beside it; pass --captions FILE"
    )
    assert not (tmp_path / "run").exists()
    bad = mscmt(["train", "--context", "image", "--out", tmp_path / "run"])
    assert bad.code == 2 and "--context" in bad.err and "caption" in bad.err


def test_a_missing_caption_at_training_follows_missing_images(mscmt, corpus, tiny, tmp_path):
    from mscmt_cli.data.conll import read_conll

    first = read_conll(corpus.data_dir / corpus.name / "train.txt")[0]
    partial = tmp_path / "partial.txt"
    partial.write_text(
        "".join(
            line + "\n" for line in corpus.captions.read_text(encoding="utf-8").splitlines() if not line.startswith(f"{first.image_id}.")
        ),
        encoding="utf-8",
    )
    stopped = _train(mscmt, corpus, tiny, tmp_path / "stopped", "--missing-images", "error", captions=partial)
    assert stopped.code == 2
    assert stopped.err.strip().startswith(f"error: {first.source}: no caption for image {first.image_id!r} in {partial}")
    assert not (tmp_path / "stopped").exists()
    blank = _train(mscmt, corpus, tiny, tmp_path / "blank", "--missing-images", "blank", captions=partial)
    assert blank.code == 0, blank.err
    assert f"1 image(s) without a caption in {partial}" in " ".join(blank.err.split())


def test_a_missing_caption_is_reported_once_with_one_message_by_train_evaluate_tag_and_the_service(mscmt, corpus, tiny, tmp_path):
    """One caption source behind every road (issue 25): the same ``[file:line: ]no caption for image 'ID' in FILE``
    under ``--missing-images error``, and under ``blank`` one end-of-run line, said once, naming the image."""
    import base64

    from fastapi.testclient import TestClient

    from mscmt_cli import Tagger
    from mscmt_cli.data.captions import no_caption
    from mscmt_cli.data.conll import read_conll
    from mscmt_cli.tagging.server import create_app
    from tests.tagging_support import image_bytes

    test_file = corpus.data_dir / corpus.name / "test.txt"
    first = read_conll(test_file)[0]
    partial = tmp_path / "partial.txt"
    partial.write_text(
        "".join(
            line + "\n" for line in corpus.captions.read_text(encoding="utf-8").splitlines() if not line.startswith(f"{first.image_id}.")
        ),
        encoding="utf-8",
    )
    message = no_caption(first.image_id, partial)  # no caption for image 'ID' in FILE
    blank_note = f"1 image(s) without a caption in {partial} read as an empty caption (policy 'blank'): {first.image_id}"

    def said_once(err: str) -> bool:
        flat = " ".join(err.split())
        return flat.count("without a caption") == 1 and blank_note in flat

    text_only = {"text": "bertweet", "image": "none", "fusion": "none"}
    stopped = _train(mscmt, corpus, tiny, tmp_path / "stopped", "--missing-images", "error", captions=partial, **text_only)
    assert stopped.code == 2 and stopped.err.strip() == f"error: {first.source}: {message}"
    run = tmp_path / "run"
    trained = _train(mscmt, corpus, tiny, run, "--missing-images", "blank", captions=partial, **text_only)
    assert trained.code == 0, trained.err
    assert said_once(trained.err)

    evaluate = ["evaluate", run, *corpus.args(images=False), "--captions", partial, "--split", "test"]
    evaluate += ["--model-path", f"bertweet={tiny.bertweet}"]
    strict = mscmt([*evaluate, "--missing-images", "error"])
    assert strict.code == 2 and strict.err.strip() == f"error: {first.source}: {message}"
    lenient = mscmt([*evaluate, "--missing-images", "blank"])
    assert lenient.code == 0, lenient.err
    assert said_once(lenient.err)

    tag = ["tag", test_file, "--model", run, "--captions", partial, "--no-cache", "--model-path", f"bertweet={tiny.bertweet}"]
    strict = mscmt([*tag, "--missing-images", "error"])
    assert strict.code == 0, strict.err
    assert f"{first.source}: {message}" in strict.err.splitlines()
    assert len(strict.out.splitlines()) == len(read_conll(test_file)) - 1
    lenient = mscmt([*tag, "--missing-images", "blank"])
    assert lenient.code == 0 and said_once(lenient.err), lenient.err

    # the service (policy 'error', as mscmt serve runs): an image given as bytes, no caption, and no captioner
    tagger = Tagger.from_pretrained(run, {"bertweet": str(tiny.bertweet)}, device="cpu", captions=partial)
    answer = TestClient(create_app(tagger)).post("/tag", json={"text": "Obama in Paris", "image": base64.b64encode(image_bytes()).decode()})
    assert answer.status_code == 422 and answer.json()["detail"] == no_caption("<image bytes>", partial)
    with pytest.raises(MscmtError) as by_name:
        tagger.tag("Obama in Paris", image=f"{first.image_id}.jpg")
    assert str(by_name.value) == f"tweet 0: {no_caption(f'{first.image_id}.jpg', partial)}"


# ---------------------------------------------------------------------------
# tagging new tweets: the caption given, looked up, generated, or missing
# ---------------------------------------------------------------------------
def _jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def _tagger(context_run, tiny, **kwargs):
    from mscmt_cli import Tagger

    return Tagger.from_pretrained(context_run, {"clip-vit-l14": str(tiny.clip_vision)}, device="cpu", **kwargs)


def test_the_tagger_reads_the_caption_given_or_looked_up_and_shows_it(context_run, tiny, corpus):
    from mscmt_cli.data.captions import read_captions

    tagger = _tagger(context_run, tiny, captions=corpus.captions)
    captions = read_captions(corpus.captions)
    image_id = next(iter(captions))
    image = str(corpus.images_dir / f"{image_id}.jpg")
    looked_up = tagger.tag("Jordan sings in Paris tonight", image=image)
    given = tagger.tag("Jordan sings in Paris tonight", image=image, caption=captions[image_id])
    other = tagger.tag("Jordan sings in Paris tonight", image=image, caption="a map of a city with a river")
    assert looked_up.caption == given.caption == captions[image_id] and other.caption == "a map of a city with a river"
    assert looked_up.tag_probs == given.tag_probs and looked_up.gate == given.gate
    assert other.tag_probs != given.tag_probs, "the caption beside the tweet changes nothing"
    assert tagger.info()["context"] == "caption"
    assert tagger.tag("Obama", image=None).caption == ""  # no image: the empty caption
    with pytest.raises(MscmtError, match=f"no caption for image '.*not-in-the-file.jpg' in {corpus.captions}"):
        tagger.tag("Obama", image=str(corpus.images_dir / "not-in-the-file.jpg"))


def test_tag_cli_missing_captions_follow_missing_images(mscmt, context_run, tiny, corpus, tmp_path):
    from mscmt_cli.data.captions import read_captions

    captions = read_captions(corpus.captions)
    image_id = next(iter(captions))
    records = [
        {"text": "Obama in Paris", "image": f"{image_id}.jpg"},
        {"text": "Obama in Paris", "image": f"{image_id}.jpg", "caption": captions[image_id]},
        {"text": "Obama in Paris", "image": "unknown.jpg", "caption": ""},
        {"text": "Obama in Paris", "image": "unknown.jpg"},
        {"text": "Obama in Paris"},
    ]
    make_images_for = tmp_path / "img"
    from tests.tiny_models import make_images

    make_images(make_images_for, ["unknown"])
    for image in corpus.images_dir.iterdir():
        (make_images_for / image.name).write_bytes(image.read_bytes())
    src = _jsonl(tmp_path / "in.jsonl", records)
    common = ["tag", src, "--model", context_run, "--images", make_images_for, "--captions", corpus.captions, "--no-cache"]
    common += ["--model-path", f"clip-vit-l14={tiny.clip_vision}"]
    strict = mscmt([*common, "--missing-images", "error"])
    assert strict.code == 0, strict.err
    rows = [json.loads(line) for line in strict.out.splitlines()]
    assert len(rows) == 4 and f"in.jsonl:4: no caption for image 'unknown.jpg' in {corpus.captions}" in strict.err
    assert rows[0]["tags"] == rows[1]["tags"] and rows[0]["entities"] == rows[1]["entities"]
    lenient = mscmt([*common, "--missing-images", "blank"])
    assert lenient.code == 0, lenient.err
    rows = [json.loads(line) for line in lenient.out.splitlines()]
    assert len(rows) == 5 and rows[3]["entities"] == rows[2]["entities"]  # a missing caption reads as the empty caption
    assert f"1 image(s) without a caption in {corpus.captions} read as an empty caption (policy 'blank'): unknown.jpg" in " ".join(
        lenient.err.split()
    )


@pytest.fixture(scope="module")
def blip(tmp_path_factory) -> Path:
    from tests.tiny_vlm import make_tiny_blip_captioner

    return make_tiny_blip_captioner(tmp_path_factory.mktemp("blip") / "blip")


def test_a_captioner_captions_new_images_for_the_context(mscmt, context_run, tiny, corpus, blip, tmp_path):
    from mscmt_cli.data.captions import read_captions

    ids = sorted(p.stem for p in corpus.images_dir.glob("*.jpg"))[:4]
    pics = tmp_path / "pics"
    pics.mkdir()
    for i in ids:
        (pics / f"{i}.jpg").write_bytes((corpus.images_dir / f"{i}.jpg").read_bytes())
    src = _jsonl(tmp_path / "in.jsonl", [{"text": f"tweet {i} from Paris", "image": f"{i}.jpg"} for i in ids])
    common = ["tag", src, "--model", context_run, "--images", pics, "--missing-images", "error", "--cache-dir", tmp_path / "cache"]
    common += ["--model-path", f"clip-vit-l14={tiny.clip_vision}"]
    live = mscmt([*common, "--captioner", blip, "--max-new-tokens", "6", "--out", tmp_path / "live.jsonl", "--explain", tmp_path / "pages"])
    assert live.code == 0, live.err
    written = mscmt(
        ["caption", pics, "--captioner", blip, "--out", tmp_path / "c.txt", "--max-new-tokens", "6", "--cache-dir", tmp_path / "cache"]
    )
    assert written.code == 0, written.err
    again = mscmt([*common, "--captions", tmp_path / "c.txt", "--out", tmp_path / "written.jsonl"])
    assert again.code == 0, again.err
    assert (tmp_path / "live.jsonl").read_bytes() == (tmp_path / "written.jsonl").read_bytes()
    assert len((tmp_path / "live.jsonl").read_text().splitlines()) == 4
    caption = read_captions(tmp_path / "c.txt")[ids[0]]
    page = (tmp_path / "pages" / "line-000001.html").read_text(encoding="utf-8")
    assert "reads the caption beside the tweet" in page and caption in page
    no_captions = mscmt([*common, "--out", tmp_path / "none.jsonl"])
    assert no_captions.code == 0 and "pass --captions FILE or --captioner" in no_captions.err


def test_the_server_reads_the_caption_field(context_run, tiny, corpus):
    from fastapi.testclient import TestClient

    from mscmt_cli.tagging.server import create_app

    tagger = _tagger(context_run, tiny, missing_images="error")
    with TestClient(create_app(tagger)) as client:
        given = client.post("/tag", json={"text": "Jordan in Paris", "caption": "a singer on a stage"})
        missing = client.post("/tag", json={"text": "Jordan in Paris", "image": _b64(corpus.images_dir)})
    assert given.status_code == 200, given.text
    assert given.json()["tags"] == tagger.tag("Jordan in Paris", caption="a singer on a stage").tags
    assert missing.status_code == 422 and "give a 'caption'" in missing.text


def _b64(images: Path) -> str:
    import base64

    return base64.b64encode(next(iter(sorted(images.glob("*.jpg")))).read_bytes()).decode()


def test_a_model_without_context_saves_the_config_of_before(trained_run):
    config = json.loads((trained_run / "model" / "config.json").read_text(encoding="utf-8"))
    assert "context" not in config and config["training"]["context"] == "none"


def test_a_study_reuses_a_run_recorded_before_the_context_setting_existed(trained_run, tmp_path):
    import shutil

    from mscmt_cli.registry import Registry
    from mscmt_cli.settings import Settings
    from mscmt_cli.studies.common import check_same_settings

    run = tmp_path / "old"
    shutil.copytree(trained_run, run)
    record = json.loads((run / "run.json").read_text(encoding="utf-8"))
    settings = Settings.model_validate(record["settings"])
    del record["settings"]["context"]
    (run / "run.json").write_text(json.dumps(record), encoding="utf-8")
    check_same_settings(run, settings, Registry.from_entry_points())  # an old run read context 'none'
    with pytest.raises(MscmtError, match="context='none', but this study asks context='caption'"):
        check_same_settings(run, settings.model_copy(update={"context": "caption"}), Registry.from_entry_points())
