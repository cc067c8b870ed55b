"""The contract every component must keep, as checks a test suite runs over each registered component.

``tests/test_contracts.py`` runs them over every component ``mscmt plugins``
lists; a third-party package gets the same tests by calling them on its own
component (as transformers' ``ModelTesterMixin`` serves every model)::

    from mscmt_cli.contracts import check_fusion
    from my_package.fusion import BilinearFusion

    def test_bilinear_keeps_the_contract():
        check_fusion(BilinearFusion)

Each check raises ``AssertionError`` with what broke. What is checked:
shapes and dtypes of outputs; masks respected (padding never changes a real
word's output; image tokens masked out never change any output, with one
token per image and with several); gradients reach every trainable parameter and never a frozen
one; a state-dict save/load round trip reproduces the outputs; declared
parameters round trip through JSON; declared capabilities (``explains``)
hold; bad inputs raise a ``ValueError`` that names the argument; a text
encoder that reads a caption beside the tweet keeps its windows and word
positions.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from mscmt_cli.backends.batches import collate
from mscmt_cli.errors import MscmtError
from mscmt_cli.labels import LABELS
from mscmt_cli.model.components import Decoder, Fusion, FusionOutput, ImageEncoder, ImageTokens, TextEncoder, feature_identity
from mscmt_cli.registry import params_model

TWEETS = (["Obama", "visits", "Paris", "today", "with", "@someone", "https://t.co/x", "!!"], ["New", "York"])


def check_params_round_trip(component: type) -> None:
    """Declared parameters have defaults and survive a JSON round trip unchanged."""
    model = params_model(component)
    if model is None:
        return
    defaults = model()
    again = model.model_validate(json.loads(json.dumps(defaults.model_dump(mode="json"))))
    assert again == defaults, f"{component.__name__}.Params does not round-trip through JSON"


def _raises_naming(call: Callable[[], Any], argument: str) -> None:
    try:
        call()
    except ValueError as err:
        assert argument in str(err), f"ValueError should name {argument!r}: {err}"
        return
    raise AssertionError(f"no ValueError for a bad {argument!r}")


def _trainable_get_grad(module: torch.nn.Module, loss: torch.Tensor, unused: tuple[str, ...] = ()) -> None:
    """After ``loss.backward()``, every trainable parameter (less names containing an ``unused`` part) has a gradient."""
    module.zero_grad(set_to_none=True)
    loss.backward()
    for name, p in module.named_parameters():
        if p.requires_grad and not any(part in name for part in unused):
            assert p.grad is not None, f"no gradient reaches trainable parameter {name}"
        else:
            assert p.grad is None, f"a gradient reached frozen parameter {name}"


# --- fusions ------------------------------------------------------------------------------------------------------


def check_fusion(cls: type[Fusion], params: Any = None, text_dim: int = 8, image_dim: int = 6) -> None:
    """The fusion contract on random inputs (``params``: a ``cls.Params`` instance or None for defaults),
    with one image token per tweet (``N = 1``, a pooled encoder) and with ragged token sequences (``N = 4``)."""
    check_params_round_trip(cls)
    image_dim = image_dim if cls.needs_image else 0
    make = (lambda: cls(text_dim, image_dim, params)) if params_model(cls) else (lambda: cls(text_dim, image_dim))
    for counts in ((1, 1, 1), (4, 2, 1)):
        torch.manual_seed(0)
        _check_fusion_on(make, cls, text_dim, image_dim, counts)


def _image_inputs(image_dim: int, counts: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Random image tokens ``(B, N, D)`` and a mask ``(B, N)`` with ``counts[b]`` real tokens in row ``b``."""
    n = max(counts)
    mask = torch.arange(n).unsqueeze(0) < torch.tensor(counts).unsqueeze(1)
    return torch.randn(len(counts), n, image_dim), mask


def _check_fusion_on(make: Callable[[], Fusion], cls: type[Fusion], text_dim: int, image_dim: int, counts: Sequence[int]) -> None:
    fusion = make().eval()
    words = torch.randn(3, 5, text_dim, requires_grad=True)
    image, mask = _image_inputs(image_dim, counts)

    def run(w: torch.Tensor, img: torch.Tensor | None = image, m: torch.Tensor | None = mask, f: Fusion = fusion) -> FusionOutput:
        return f(w, img, m) if cls.needs_image else f(w, None)

    out = run(words)
    assert out.fused.shape == (3, 5, fusion.output_dim) and out.fused.dtype == torch.float32, f"fused {tuple(out.fused.shape)}"
    assert ("gate" in cls.explains) == (out.gate is not None), "a gate is returned iff the fusion declares explains={'gate'}"
    if out.gate is not None:
        assert out.gate.shape[:2] == (3, 5) and float(out.gate.detach().min()) >= 0 and float(out.gate.detach().max()) <= 1
    assert ("attention" in cls.explains) == (out.attention is not None), "attention is returned iff explains has 'attention'"
    if out.attention is not None:
        _check_attention(out.attention.detach(), mask)
    changed = words.detach().clone()
    changed[:, 3:] = torch.randn(3, 2, text_dim)  # the last two words stand for padding
    assert torch.allclose(run(changed).fused[:, :3], out.fused[:, :3], atol=1e-6), "padding words changed a real word's output"
    if cls.needs_image:
        noisy = image.clone()
        noisy[~mask] = torch.randn(int((~mask).sum()), image_dim) * 10
        again = run(words, noisy)
        assert torch.allclose(again.fused, out.fused, atol=1e-6), "image tokens masked out changed the output"
        if out.attention is not None and again.attention is not None:
            assert torch.allclose(again.attention, out.attention, atol=1e-6), "image tokens masked out changed the attention"
    _trainable_get_grad(fusion, out.fused.sum() + (out.gate.sum() if out.gate is not None else 0))
    assert words.grad is not None, "no gradient reaches the word features"
    copy = make().eval()
    copy.load_state_dict(fusion.state_dict())
    assert torch.equal(run(words, f=copy).fused, out.fused), "state-dict round trip changed the output"
    _raises_naming(lambda: fusion(torch.randn(3, 5, text_dim + 1), image, mask), "words")
    if cls.needs_image:
        _raises_naming(lambda: fusion(words, None), "image")
        _raises_naming(lambda: fusion(words, torch.randn(2, image.size(1), image_dim), mask[:2]), "image")
        _raises_naming(lambda: fusion(words, image[:, :, 0]), "image")
        _raises_naming(lambda: fusion(words, image, mask[:, :1].expand(3, 2)), "image_mask")
        _raises_naming(lambda: fusion(words, image, torch.zeros_like(mask)), "image_mask")


def _check_attention(attention: torch.Tensor, mask: torch.Tensor) -> None:
    """attention ``(B, T, N)``: non-negative, 0 on padding tokens, each word's row sums to 1."""
    b, n = mask.shape
    assert attention.shape[0] == b and attention.shape[2] == n, f"attention must be (B, T, N) = ({b}, T, {n}), got {tuple(attention.shape)}"
    assert float(attention.min()) >= 0, "attention weights must be non-negative"
    assert float(attention.masked_select(~mask.unsqueeze(1).expand_as(attention)).abs().sum()) == 0, "attention on a padding token"
    assert torch.allclose(attention.sum(-1), torch.ones(attention.shape[:2]), atol=1e-5), "a word's attention must sum to 1"


# --- decoders -----------------------------------------------------------------------------------------------------


def check_decoder(cls: type[Decoder], labels: Sequence[str] = LABELS, params: Any = None) -> None:
    """The decoder contract on random emissions with a ragged mask."""
    check_params_round_trip(cls)
    torch.manual_seed(0)
    make = (lambda: cls(labels, params)) if params_model(cls) else (lambda: cls(labels))
    decoder = make().eval()
    c = len(labels)
    emissions = torch.randn(3, 6, c, requires_grad=True)
    mask = torch.tensor([[1] * 6, [1] * 4 + [0] * 2, [1] + [0] * 5], dtype=torch.bool)
    tags = torch.randint(0, c, (3, 6)) * mask
    tags[:, 0] = 0
    loss = decoder.loss(emissions, tags, mask)
    assert loss.dim() == 0 and torch.isfinite(loss), f"loss must be a finite scalar, got {loss}"
    paths = decoder.decode(emissions, mask)
    assert [len(p) for p in paths] == [6, 4, 1] and all(0 <= k < c for p in paths for k in p)
    marg = decoder.marginals(emissions, mask)
    assert marg.shape == (3, 6, c) and marg.dtype == torch.float32
    assert torch.allclose(marg[mask].sum(-1), torch.ones(int(mask.sum())), atol=1e-4), "marginals of a word must sum to 1"
    noisy = emissions.detach().clone()
    noisy[~mask] = torch.randn(int((~mask).sum()), c) * 10
    assert torch.allclose(decoder.loss(noisy, tags, mask), loss, atol=1e-5), "padding changed the loss"
    assert decoder.decode(noisy, mask) == paths, "padding changed a decoded path"
    assert torch.allclose(decoder.marginals(noisy, mask)[mask], marg[mask], atol=1e-5), "padding changed the marginals"
    _trainable_get_grad(decoder, loss)
    assert emissions.grad is not None, "no gradient reaches the emissions"
    copy = make().eval()
    copy.load_state_dict(decoder.state_dict())
    assert copy.decode(emissions, mask) == paths, "state-dict round trip changed the decoded paths"
    _raises_naming(lambda: decoder.decode(emissions, mask[:, :4]), "mask")
    _raises_naming(lambda: decoder.decode(torch.randn(3, 6, c + 1), mask), "emissions")
    _raises_naming(lambda: decoder.loss(emissions, tags[:, :3], mask), "tags")
    _raises_naming(lambda: decoder.decode(emissions, torch.zeros(3, 6, dtype=torch.bool)), "mask")


# --- encoders -----------------------------------------------------------------------------------------------------


def check_text_encoder(encoder: TextEncoder, rebuild: Callable[[Path], TextEncoder], tmp: Path) -> None:
    """The text-encoder contract: one vector per word, padding-invariant, gradients, saved architecture.

    ``rebuild(directory)`` builds the same encoder class from ``save_architecture``'s directory
    without pretrained weights (as loading a saved model does). Parts of a checkpoint that word
    vectors never use (BERT's pooler) must be frozen by the encoder, not left trainable.
    """
    check_params_round_trip(type(encoder))
    encoder.eval()
    encoded = [encoder.encode_words(w) for w in TWEETS]
    assert [len(e.word_positions) for e in encoded] == [len(w) for w in TWEETS]
    from mscmt_cli.backends.batches import Example

    def words_of(examples: list[Any]) -> torch.Tensor:
        return encoder(collate(examples, encoder.pad_id).text)

    pair = words_of([Example(e, [], torch.zeros(0)) for e in encoded])
    assert pair.shape == (2, len(TWEETS[0]), encoder.hidden_size) and pair.dtype == torch.float32
    alone = words_of([Example(encoded[1], [], torch.zeros(0))])
    assert torch.allclose(alone[0], pair[1, : len(TWEETS[1])], atol=1e-4), "padding changed a short tweet's word vectors"
    _trainable_get_grad(encoder, pair.sum())
    encoder.save_architecture(tmp)
    again = rebuild(tmp)
    assert [again.encode_words(w).windows for w in TWEETS] == [e.windows for e in encoded], "saved tokenizer splits differently"
    again.load_state_dict(encoder.state_dict())
    again.eval()
    assert torch.allclose(again(collate([Example(e, [], torch.zeros(0)) for e in encoded], again.pad_id).text), pair, atol=1e-5)
    _check_caption_context(encoder)


def _check_caption_context(encoder: TextEncoder) -> None:
    """An encoder that reads a caption beside the tweet (``--context caption``) keeps one vector per tweet word,
    every window within the encoder's limit, and labels no caption sub-word."""
    try:
        encoder.check_context("caption")
    except MscmtError:
        return  # this encoder does not read a caption: nothing more to check
    from mscmt_cli.backends.batches import Example

    encoder.context, saved = "caption", encoder.context
    try:
        plain = [encoder.encode_words(w, "") for w in TWEETS]
        with_caption = [encoder.encode_words(w, "a man in a suit waving a flag " * 40) for w in TWEETS]
        words = encoder(collate([Example(e, [], torch.zeros(0)) for e in with_caption], encoder.pad_id).text)
        takes_types = encoder.takes_token_types
    finally:
        encoder.context = saved
    limit = getattr(encoder, "max_subwords", None)
    for tweet, empty, full in zip(TWEETS, plain, with_caption):
        assert full.word_positions == empty.word_positions and len(full.word_positions) == len(tweet), "the caption moved a word"
        assert limit is None or all(len(w) <= limit for w in full.windows), "a window with the caption exceeds the limit"
        assert full.token_types is None or [len(t) for t in full.token_types] == [len(w) for w in full.windows]
        assert (full.token_types is not None) == takes_types, "segment ids given exactly when takes_token_types says so"
    assert words.shape == (2, len(TWEETS[0]), encoder.hidden_size) and torch.isfinite(words).all()


def check_image_encoder(encoder: ImageEncoder, inputs: list[Any]) -> None:
    """The image-encoder contract: frozen; :class:`ImageTokens` ``(n, N, D)`` float32 on the CPU with a
    ``(n, N)`` prefix mask, ``N <= max_tokens`` (``N == 1`` for a pooled encoder); deterministic; an
    input's real tokens do not depend on the batch; stable identities; token texts (if any) name the real tokens."""
    check_params_round_trip(type(encoder))
    assert all(not p.requires_grad for p in encoder.parameters()), "an image encoder must be frozen"
    out = encoder.encode(inputs)
    assert isinstance(out, ImageTokens), f"encode() must return ImageTokens, got {type(out).__name__}"
    out.check("encode()", encoder.dim, encoder.max_tokens)
    feats, mask = out.features, out.mask
    assert feats.shape[0] == len(inputs) and feats.dtype == torch.float32 and feats.device.type == "cpu"
    assert encoder.max_tokens > 1 or feats.shape[1] == 1, "a pooled encoder (max_tokens == 1) gives one token per image"
    assert torch.equal(feats[~mask], torch.zeros_like(feats[~mask])), "padding tokens must be zeros"
    again = encoder.encode(inputs)
    assert torch.equal(again.features, feats) and torch.equal(again.mask, mask), "features must be deterministic"
    if len(inputs) > 1:
        alone = encoder.encode(inputs[1:2]).per_image()[0]
        assert torch.allclose(alone, out.per_image()[1], atol=1e-4), "a batch changed one input's tokens"
    identity = encoder.identity()
    assert isinstance(identity, str) and identity and identity == encoder.identity()
    assert feature_identity(encoder) == feature_identity(encoder)
    if encoder.grid is not None:
        rows, cols = encoder.grid
        assert encoder.grid_offset + rows * cols == encoder.max_tokens == feats.shape[1], "grid tokens must fill max_tokens"
    for item, tokens in zip(inputs, out.per_image()):
        texts = encoder.token_texts(item)
        assert texts is None or len(texts) == tokens.shape[0], "token_texts must name each real token"
