"""The cross-attention fusion: a hand-written softmax attention as oracle, masks, parameters, real CLI runs."""

from __future__ import annotations

import json
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mscmt_cli.errors import MscmtError
from mscmt_cli.tagging.tagger import Tagger
from plugins.fusions import CrossAttentionFusion, CrossAttentionLayer, CrossAttentionParams
from tests.cli_support import train_args


def _layer_by_hand(layer: CrossAttentionLayer, x: torch.Tensor, v: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One layer with scalar loops: per head ``softmax(q.k / sqrt(d))`` over the real tokens only, then out-projection,
    gate, residual and LayerNorm. x ``(B, T, H)``, v ``(B, N, H)``, mask ``(B, N)`` -> ``(B, T, H)``, ``(B, T, N)``."""
    mha = layer.attention
    b_, t_, h_ = x.shape
    heads, d = mha.heads, h_ // mha.heads
    wq, wk, wv = mha.in_proj_weight.chunk(3)
    bq, bk, bv = mha.in_proj_bias.chunk(3)
    q, k, val = x @ wq.T + bq, v @ wk.T + bk, v @ wv.T + bv
    out = torch.zeros(b_, t_, h_)
    attention = torch.zeros(b_, t_, v.shape[1])
    for b in range(b_):
        real = [j for j in range(v.shape[1]) if mask[b, j]]
        for t in range(t_):
            heads_out = []
            for h in range(heads):
                part = slice(h * d, (h + 1) * d)
                scores = [float(q[b, t, part] @ k[b, j, part]) / math.sqrt(d) for j in real]
                top = max(scores)
                exps = [math.exp(s - top) for s in scores]
                weights = [e / sum(exps) for e in exps]
                heads_out.append(sum(w * val[b, j, part] for w, j in zip(weights, real)))
                for w, j in zip(weights, real):
                    attention[b, t, j] += w / heads
            a = mha.out_proj(torch.cat(heads_out))
            if layer.gate is not None:
                a = torch.sigmoid(layer.gate(torch.cat([x[b, t], a]))) * a
            y = x[b, t] + a
            mean, var = y.mean(), ((y - y.mean()) ** 2).mean()
            out[b, t] = (y - mean) / torch.sqrt(var + layer.norm.eps) * layer.norm.weight + layer.norm.bias
    return out, attention


def _by_hand(fusion: CrossAttentionFusion, words: torch.Tensor, image: torch.Tensor, mask: torch.Tensor):
    x, v, attention = words, fusion.proj(image), None
    for layer in fusion.layers:
        x, attention = _layer_by_hand(layer, x, v, mask)
    return x, attention


@settings(max_examples=12, deadline=None)
@given(
    counts=st.lists(st.integers(1, 4), min_size=1, max_size=3),
    heads=st.sampled_from([1, 2, 4]),
    layers=st.integers(1, 2),
    gate=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_cross_attention_equals_a_hand_written_softmax_attention(counts, heads, layers, gate, seed):
    torch.manual_seed(seed)
    fusion = CrossAttentionFusion(4, 3, CrossAttentionParams(heads=heads, layers=layers, gate=gate)).eval()
    for p in fusion.parameters():  # random biases too, so no term hides behind a zero
        torch.nn.init.normal_(p, std=0.5)
    words = torch.randn(len(counts), 3, 4)
    image = torch.randn(len(counts), max(counts), 3)
    mask = torch.arange(max(counts)).unsqueeze(0) < torch.tensor(counts).unsqueeze(1)
    with torch.no_grad():
        out = fusion(words, image, mask)
        want, attention = _by_hand(fusion, words, image, mask)
    assert out.fused.shape == (len(counts), 3, 4) and out.gate is None
    assert torch.allclose(out.fused, want, atol=1e-4)
    assert out.attention is not None and torch.allclose(out.attention, attention, atol=1e-5)


def test_one_token_per_image_takes_all_the_attention():
    torch.manual_seed(0)
    fusion = CrossAttentionFusion(8, 5, CrossAttentionParams(heads=2)).eval()
    out = fusion(torch.randn(2, 4, 8), torch.randn(2, 1, 5))
    assert out.attention is not None and torch.equal(out.attention, torch.ones(2, 4, 1))


def test_padding_tokens_change_nothing_and_get_no_attention():
    torch.manual_seed(0)
    fusion = CrossAttentionFusion(8, 5).eval()
    words, image = torch.randn(2, 4, 8), torch.randn(2, 3, 5)
    mask = torch.tensor([[True, True, True], [True, False, False]])
    out = fusion(words, image, mask)
    alone = fusion(words[1:], image[1:, :1])  # the second tweet's image without its padding
    assert torch.allclose(out.fused[1:], alone.fused, atol=1e-6)
    assert out.attention is not None and torch.equal(out.attention[1, :, 1:], torch.zeros(4, 2))


def test_the_gate_is_a_parameter_and_heads_must_divide_the_hidden_size():
    assert CrossAttentionFusion(8, 5).layers[0].gate is not None, "the gate is on by default"
    assert CrossAttentionFusion(8, 5, CrossAttentionParams(gate=False)).layers[0].gate is None
    assert len(CrossAttentionFusion(8, 5, CrossAttentionParams(layers=3)).layers) == 3
    with pytest.raises(MscmtError, match="heads=3 does not divide the text hidden size 8"):
        CrossAttentionFusion(8, 5, CrossAttentionParams(heads=3))


def test_every_cross_attention_parameter_trains_at_the_head_rate(tiny):
    from mscmt_cli.labels import LABELS
    from mscmt_cli.model.mner import MNERModel
    from plugins.decoders import CRFDecoder
    from plugins.text_encoders import BertweetEncoder

    model = MNERModel(BertweetEncoder(str(tiny.bertweet)), CrossAttentionFusion(32, 24), CRFDecoder(LABELS), 9)
    by_id = {id(p): g["lr"] for g in model.parameter_groups(lr=1.0, head_lr=2.0, weight_decay=0.1) for p in g["params"]}
    assert all(by_id[id(p)] == 2.0 for p in model.fusion.parameters())
    assert by_id[id(next(model.text.parameters()))] == 1.0


# --- real CLI runs on tiny models -------------------------------------------------------------------------------------


def _train(mscmt, tiny, corpus, out, image: str, extra: list) -> dict:
    options = ["--set", "fusion.heads=2", *extra, "--lr", "1e-3", "--head-lr", "1e-2"]
    result = mscmt(train_args(corpus, out, tiny, image=image, fusion="cross-attention", epochs=2, batch_size=8, extra=options))
    assert result.code == 0, result.err
    assert (out / "test_scores.json").is_file(), "the run scored its best epoch on the test split"
    return json.loads((out / "model" / "config.json").read_text())


def _in_memory(run, paths: dict, tweets, contents: list) -> tuple[list[list[str]], list[float]]:
    """The saved model, run directly on encoder tokens computed here (rounded to the encoder's token dtype):
    each tweet's tags, and the probability of every tag (all tweets, in order)."""
    from mscmt_cli.backends.batches import collate, encode_examples
    from mscmt_cli.model.build import load_model
    from mscmt_cli.registry import Registry

    assembled = load_model(run / "model", Registry.from_entry_points(), paths)
    tokens = [t.to(assembled.image.token_dtype) for t in assembled.image.encode(contents).per_image()]
    batch = collate(encode_examples(assembled.model.text, [t.tokens for t in tweets], None, tokens), assembled.model.text.pad_id)
    with torch.no_grad():
        output = assembled.model(batch)
        decoded, marginals = assembled.model.decode(output), assembled.model.marginals(output)
    tags = [[assembled.spec.labels[k] for k in p] for p in decoded]
    return tags, [float(marginals[b, i, k]) for b, p in enumerate(decoded) for i, k in enumerate(p)]


def _tags_by_cli(mscmt, src, run, extra: list) -> list[list[str]]:
    result = mscmt(["tag", src, "--model", run, "--missing-images", "error", *extra])
    assert result.code == 0, result.err
    return [json.loads(line)["tags"] for line in result.out.splitlines()]


def test_train_patches_with_cross_attention_then_tag_as_in_memory(mscmt, tiny, corpus, tmp_path, monkeypatch):
    from mscmt_cli.data.conll import read_conll
    from tests.test_image_tokens import load_rgb

    monkeypatch.setenv("MSCMT_CACHE_DIR", str(tmp_path / "cache"))
    run, key = tmp_path / "run", f"clip-vit-l14-patches={tiny.clip_vision}"
    config = _train(mscmt, tiny, corpus, run, "clip-vit-l14-patches", ["--model-path", key])
    assert config["params"]["fusion"] == {"heads": 2, "layers": 1, "dropout": 0.1, "gate": True}
    assert config["components"]["image"] == "clip-vit-l14-patches" and config["image_dim"] == 32
    assert list((tmp_path / "cache").glob("*/*/*.npy")), "the patch tokens went to the cache"
    src = corpus.data_dir / corpus.name / "test.txt"
    tweets = read_conll(src)
    cli = _tags_by_cli(mscmt, src, run, ["--images", corpus.images_dir, "--model-path", key])
    paths = {"clip-vit-l14-patches": str(tiny.clip_vision)}
    tags, probs = _in_memory(run, paths, tweets, [load_rgb(corpus.images_dir, t.image_id) for t in tweets])
    assert len(cli) == 16 and cli == tags
    tagger = Tagger.from_pretrained(run, paths, device="cpu")
    results = tagger.tag_batch([t.tokens for t in tweets], [corpus.images_dir / f"{t.image_id}.jpg" for t in tweets])
    assert [p for r in results for p in r.tag_probs] == pytest.approx(probs, abs=1e-5)


def test_train_caption_tokens_without_a_cache_then_tag_as_in_memory(mscmt, tiny, corpus, tmp_path):
    from mscmt_cli.data.captions import read_captions
    from mscmt_cli.data.conll import read_conll

    run, key = tmp_path / "run", f"caption-tokens:bert-base={tiny.bert}"
    captions = ["--captions", corpus.captions, "--model-path", key]
    config = _train(mscmt, tiny, corpus, run, "caption-tokens:bert-base", [*captions, "--no-cache"])
    assert config["params"]["fusion"]["heads"] == 2 and config["components"]["image"] == "caption-tokens:bert-base"
    src = corpus.data_dir / corpus.name / "test.txt"
    tweets, table = read_conll(src), read_captions(corpus.captions)
    cli = _tags_by_cli(mscmt, src, run, [*captions, "--no-cache"])
    paths = {"caption-tokens:bert-base": str(tiny.bert)}
    tags, probs = _in_memory(run, paths, tweets, [table[t.image_id] for t in tweets])
    assert len(cli) == 16 and cli == tags
    tagger = Tagger.from_pretrained(run, paths, device="cpu", captions=corpus.captions)
    results = tagger.tag_batch([t.tokens for t in tweets], [t.image_id for t in tweets])
    assert [p for r in results for p in r.tag_probs] == pytest.approx(probs, abs=1e-5)


def test_train_a_timm_grid_with_image_and_fusion_parameters_then_tag(mscmt, tiny, corpus, tmp_path, monkeypatch):
    from tests.tiny_vlm import make_timm_weights

    monkeypatch.setenv("MSCMT_CACHE_DIR", str(tmp_path / "cache"))
    key = f"timm-grid:test_resnet={make_timm_weights(tmp_path / 'timm.safetensors')}"
    run, extra = tmp_path / "run", ["--set", "image.grid=2", "--set", "fusion.gate=false", "--model-path", key]
    config = _train(mscmt, tiny, corpus, run, "timm-grid:test_resnet", extra)
    assert config["params"]["image"] == {"grid": 2} and config["params"]["fusion"]["gate"] is False
    src = corpus.data_dir / corpus.name / "test.txt"
    assert len(_tags_by_cli(mscmt, src, run, ["--images", corpus.images_dir, "--model-path", key])) == 16
    tagger = Tagger.from_pretrained(run, {"timm-grid:test_resnet": key.split("=", 1)[1]}, device="cpu")
    result = tagger.tag("Obama in Paris", image=sorted(corpus.images_dir.glob("*.jpg"))[0])
    assert tagger.info()["image_tokens"]["grid"] == [2, 2] and result.attention is not None and len(result.attention[0]) == 4
