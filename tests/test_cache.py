"""The image feature cache: keys, atomic files, a second run that never calls the image model, what ``cache clear``
deletes (its own entries only), ``cache build``, and one cache shared by training and tagging."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given
from hypothesis import settings as hyp_settings
from hypothesis import strategies as st

from mscmt_cli.errors import MscmtError
from mscmt_cli.features import FeatureCache, encoder_key
from mscmt_cli.model.components import ImageEncoder, ImageTokens
from tests.cli_support import one_line_error as _one_line_error
from tests.cli_support import snapshot as _snapshot
from tests.cli_support import train_args
from tests.tagging_support import clip_args as _clip_args
from tests.tagging_support import write_jsonl as _jsonl
from tests.test_image_tokens import training_tokens


class CountingEncoder(ImageEncoder):
    """A fake frozen encoder: mean colour of the image, counting its calls."""

    name = "counting"
    input_kind = "pixels"

    def __init__(self, tag: str = "v1") -> None:
        super().__init__()
        self.dim, self.tag, self.calls = 3, tag, 0

    def identity(self) -> str:
        return f"counting|{self.tag}"

    def encode(self, inputs):
        self.calls += 1
        means = [torch.from_numpy(np.asarray(img.resize((4, 4)), dtype=np.float32)).reshape(-1, 3).mean(0) for img in inputs]
        return ImageTokens.pooled(torch.stack(means))


def test_second_pass_reads_the_cache(corpus, tmp_path):
    ids = sorted(p.stem for p in corpus.images_dir.glob("*.jpg"))[:10]
    cache = FeatureCache(tmp_path / "cache")
    first_enc = CountingEncoder()
    _, first = training_tokens(first_enc, corpus.images_dir, cache, ids, batch_size=4)
    assert first_enc.calls == 3
    again_enc = CountingEncoder()
    _, again = training_tokens(again_enc, corpus.images_dir, cache, ids)
    assert again_enc.calls == 0 and all(np.array_equal(a, b) for a, b in zip(first, again))
    other = CountingEncoder(tag="v2")  # another encoder identity never gets v1's features
    training_tokens(other, corpus.images_dir, cache, ids[:2])
    assert other.calls == 1
    assert not list((tmp_path / "cache").rglob("*.tmp"))
    assert sorted(n for _, _, n, _ in cache.info()) == [2, 10]


def test_changed_image_is_recomputed(corpus, tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    src = sorted(corpus.images_dir.glob("*.jpg"))
    (images / "a.jpg").write_bytes(src[0].read_bytes())
    cache = FeatureCache(tmp_path / "cache")
    _, before = training_tokens(CountingEncoder(), images, cache, ["a"])
    (images / "a.jpg").write_bytes(src[1].read_bytes())
    enc = CountingEncoder()
    _, after = training_tokens(enc, images, cache, ["a"])
    assert enc.calls == 1 and not np.array_equal(before[0], after[0])


def test_second_train_never_calls_the_image_model(corpus, tiny, mscmt, tmp_path, monkeypatch):
    from plugins.image_encoders import ClipVitL14Encoder

    cache = tmp_path / "cache"
    built = mscmt(["cache", "build", "--image", "clip-vit-l14", *corpus.args(), "--cache-dir", cache, *tiny.model_path_args()])
    assert built.code == 0, built.err
    calls = []
    original = ClipVitL14Encoder.encode
    monkeypatch.setattr(ClipVitL14Encoder, "encode", lambda self, x: calls.append(len(x)) or original(self, x))
    monkeypatch.setenv("MSCMT_CACHE_DIR", str(cache))
    for name in ("one", "two"):
        result = mscmt(train_args(corpus, tmp_path / name, tiny, image="clip-vit-l14", fusion=None))
        assert result.code == 0, result.err
    assert calls == []
    info = mscmt(["cache", "info", "--cache-dir", cache])
    assert info.code == 0 and "clip-vit-l14|" in info.out
    cleared = mscmt(["cache", "clear", "--cache-dir", cache])
    assert cleared.code == 0 and "removed the features of 1 encoder(s)" in cleared.out


# --- the feature cache deletes only its own entries -------------------------------------------------------------------


def _real_entry(root: Path, identity: str = "counting|v1", n: int = 3) -> Path:
    cache = FeatureCache(root)
    for i in range(n):
        cache.put(identity, hashlib.sha256(str(i).encode()).hexdigest(), torch.ones(3) * i)
    return root / encoder_key(identity)


def _foreign(root: Path) -> None:
    """Folders a user may keep beside (or inside) a cache, some shaped like entries."""
    (root / "photos").mkdir(parents=True)
    (root / "photos" / "a.jpg").write_bytes(b"k")
    lookalike = root / ("0123456789abcdef0123")  # the key format, but no identity label
    (lookalike / "ab").mkdir(parents=True)
    (lookalike / "ab" / ("ab" + "0" * 62 + ".npy")).write_bytes(b"mine")
    forged = root / encoder_key("clip") / "cd"  # a label whose hash is not the folder's name
    forged.mkdir(parents=True)
    (forged.parent / "identity.txt").write_text("not clip\n")
    (forged / "notes.txt").write_text("keep")
    (root / "file.txt").write_text("keep")


def test_clear_removes_entries_and_nothing_else(tmp_path):
    root = tmp_path / "cache"
    entry = _real_entry(root)
    other = _real_entry(root, "other|v2", 1)
    (other / "README").write_text("mine, inside an entry")  # a user's file inside an entry survives too
    _foreign(root)
    before = {k: v for k, v in _snapshot(root).items() if not k.startswith((entry.name, other.name))}
    cache = FeatureCache(root)
    assert [(key, ident, n) for key, ident, n, _ in cache.info()] == sorted([(entry.name, "counting|v1", 3), (other.name, "other|v2", 1)])
    assert cache.clear() == 2
    assert not entry.exists()
    assert sorted(p.name for p in other.iterdir()) == ["README", "identity.txt"]
    after = {k: v for k, v in _snapshot(root).items() if not k.startswith(other.name)}
    assert after == before
    assert [key for key, *_ in cache.info()] == [other.name] and cache.info()[0][2] == 0


@hyp_settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    names=st.lists(
        st.one_of(st.text("0123456789abcdef", min_size=20, max_size=20), st.text("abcxyz.-_", min_size=1, max_size=8)),
        min_size=1,
        max_size=5,
        unique=True,
    ),
    label=st.booleans(),
)
def test_clear_never_touches_folders_it_did_not_write(tmp_path_factory, names, label):
    root = tmp_path_factory.mktemp("cache")
    for name in names:
        if name in (".", ".."):
            continue
        (root / name / "ab").mkdir(parents=True, exist_ok=True)
        (root / name / "ab" / ("ab" + "1" * 62 + ".npy")).write_bytes(b"user data")
        if label:
            (root / name / "identity.txt").write_text(f"something {name}\n")
    before = _snapshot(root)
    assert FeatureCache(root).info() == [] and FeatureCache(root).clear() == 0
    assert _snapshot(root) == before


@pytest.mark.parametrize("value", ["", ".", "./"])
def test_cache_dir_meaning_here_is_refused(value, tmp_path, monkeypatch, mscmt):
    monkeypatch.chdir(tmp_path)
    _foreign(tmp_path)
    before = _snapshot(tmp_path)
    with pytest.raises(MscmtError, match="--cache-dir"):
        FeatureCache(Path(value))
    for args in (["cache", "clear", "--cache-dir", value], ["cache", "info", "--cache-dir", value]):
        _one_line_error(mscmt(args), "--cache-dir")
    monkeypatch.setenv("MSCMT_CACHE_DIR", value)
    _one_line_error(mscmt(["cache", "clear"]), "MSCMT_CACHE_DIR" if value == "" else "--cache-dir")  # the settings name the variable
    assert _snapshot(tmp_path) == before


def test_cache_dir_that_is_a_file_is_refused(tmp_path, mscmt):
    (tmp_path / "f").write_text("keep")
    for path, needle in ((tmp_path / "f", "is a file"), (tmp_path / "f" / "sub", f"{tmp_path / 'f'} is a file")):
        with pytest.raises(MscmtError, match="--cache-dir"):
            FeatureCache(path)
        _one_line_error(mscmt(["cache", "clear", "--cache-dir", path]), "--cache-dir", needle)
    assert (tmp_path / "f").read_text() == "keep"


def test_entries_written_before_still_count(tmp_path):
    """A cache written by the previous code (label written after the first shard folder) is read and cleared."""
    root = tmp_path / "cache"
    identity = "clip-vit-l14|/models/clip|224"
    shard = root / encoder_key(identity) / "ab"
    shard.mkdir(parents=True)
    (shard / ("ab" + "2" * 62 + ".npy")).write_bytes(b"x")
    (shard.parent / "identity.txt").write_text(identity + "\n")
    assert FeatureCache(root).info()[0][1:3] == (identity, 1)
    assert FeatureCache(root).clear() == 1 and list(root.iterdir()) == []


# --- cache build: an encoder without features, a cache dir that is a file ---------------------------------------------


def _tiny_paths(tiny) -> dict[str, str]:
    return {"bertweet": str(tiny.bertweet), "bert-base": str(tiny.bert), "clip-vit-l14": str(tiny.clip_vision), "clip-text": str(tiny.clip)}


def test_cache_build_refuses_before_loading_anything(tmp_path):
    import io

    from rich.console import Console

    from mscmt_cli.engine.cache_jobs import build_cache
    from mscmt_cli.registry import Registry
    from mscmt_cli.settings import Settings

    (tmp_path / "f").write_text("keep")
    registry, console = Registry.from_entry_points(), Console(file=io.StringIO())
    # no --data-dir: any of these reaching the data would fail with "no data directory" instead
    for options, needle in (
        ({"image": "none"}, "--image none: this image encoder has no features"),
        ({"cache_dir": tmp_path / "f"}, "--cache-dir"),
        ({"cache_dir": tmp_path / "f" / "sub"}, "is a file"),
        ({"cache_dir": Path("")}, "--cache-dir"),
        ({"no_cache": True}, "--no-cache"),
    ):
        settings = Settings.model_validate({"cache_dir": tmp_path / "cache", "data_dir": None, **options})
        with pytest.raises(MscmtError, match=needle):
            build_cache(settings, registry, console)
    assert not (tmp_path / "cache").exists() and (tmp_path / "f").read_text() == "keep"


def test_cache_build_counts_what_it_cached(tiny, corpus, tmp_path):
    import io

    from rich.console import Console

    from mscmt_cli.engine.cache_jobs import build_cache
    from mscmt_cli.registry import Registry
    from mscmt_cli.settings import Settings

    settings = Settings.model_validate(
        {
            "image": "clip-vit-l14",
            "data_dir": corpus.data_dir,
            "corpus": corpus.name,
            "images_dir": corpus.images_dir,
            "cache_dir": tmp_path / "cache",
            "model_paths": _tiny_paths(tiny),
        }
    )
    out = io.StringIO()
    done = build_cache(settings, Registry.from_entry_points(), Console(file=out, width=300))
    from mscmt_cli.engine.data import CorpusData

    ids = {t.image_id for t in CorpusData.load(corpus.data_dir, corpus.name).all_tweets()}
    digests = {hashlib.sha256((corpus.images_dir / f"{i}.jpg").read_bytes()).hexdigest() for i in ids}
    [(_, _, cached, _)] = FeatureCache(tmp_path / "cache").info()
    assert (done.images, cached) == (len(ids), len(digests)) and done.encoder_batches >= 1
    assert f"{len(ids)} images of tiny" in out.getvalue()
    again = build_cache(settings, Registry.from_entry_points(), Console(file=io.StringIO()))
    assert again.encoder_batches == 0 and again.images == done.images


# --- training and tagging share one cache -----------------------------------------------------------------------------


def _count_encoder_calls(monkeypatch) -> list[int]:
    """Count every call of any image encoder made through the one encode path (sizes of the batches)."""
    import mscmt_cli.features as features

    calls: list[int] = []
    original = features.encode_checked
    monkeypatch.setattr(features, "encode_checked", lambda enc, contents: calls.append(len(contents)) or original(enc, contents))
    return calls


def _tokens(ref: np.ndarray | Path) -> np.ndarray:
    """Training's tokens ``(N_i, D)`` of an image: in memory, or in their cached file."""
    from mscmt_cli.features import as_tokens, read_tokens

    return read_tokens(ref) if isinstance(ref, Path) else as_tokens(ref)


@pytest.mark.parametrize("kind", ["pooled", "tokens"])
def test_training_and_tagging_read_each_others_features_without_the_encoder(corpus, tmp_path, kind):
    from mscmt_cli.features import FeatureCache, TokenStore
    from tests.test_image_tokens import ColourRows, MeanColour

    make = MeanColour if kind == "pooled" else ColourRows
    ids = sorted(p.stem for p in corpus.images_dir.glob("*.jpg"))[:8]
    paths = [corpus.images_dir / f"{i}.jpg" for i in ids]
    first = ids[:4]

    cache = FeatureCache(tmp_path / "cache")
    trainer, refs = training_tokens(make(), corpus.images_dir, cache, first, batch_size=4)
    trained = dict(zip(first, refs))
    tagging = TokenStore(make(), cache, policy="error", batch_size=4)
    feats, errors = tagging.features(paths)  # the first four from training's features, the rest encoded
    assert not errors and tagging.encoder_calls == 1 and trainer.encoder_calls == 1
    assert tagging.encoder.calls == 1

    again, refs = training_tokens(make(), corpus.images_dir, cache, ids, batch_size=4)  # all eight: four of training, four of tagging
    assert again.encoder_calls == 0 and again.encoder.calls == 0
    for image_id, feat, ref in zip(ids, feats, refs):
        assert feat is not None and np.array_equal(_tokens(ref), feat), image_id
        if image_id in trained:
            assert np.array_equal(_tokens(trained[image_id]), feat), image_id
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
