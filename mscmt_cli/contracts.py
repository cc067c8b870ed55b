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
word's output); gradients reach every trainable parameter and never a frozen
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

from mscmt_cli.engine.batching import collate
from mscmt_cli.errors import MscmtError
from mscmt_cli.labels import LABELS
from mscmt_cli.model.components import Decoder, Fusion, ImageEncoder, TextEncoder
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
    """The fusion contract on random inputs (``params``: a ``cls.Params`` instance or None for defaults)."""
    check_params_round_trip(cls)
    torch.manual_seed(0)
    image_dim = image_dim if cls.needs_image else 0
    make = (lambda: cls(text_dim, image_dim, params)) if params_model(cls) else (lambda: cls(text_dim, image_dim))
    fusion = make().eval()
    words, image = torch.randn(3, 5, text_dim, requires_grad=True), torch.randn(3, image_dim)
    out = fusion(words, image if cls.needs_image else None)
    assert out.fused.shape == (3, 5, fusion.output_dim) and out.fused.dtype == torch.float32, f"fused {tuple(out.fused.shape)}"
    assert ("gate" in cls.explains) == (out.gate is not None), "a gate is returned iff the fusion declares explains={'gate'}"
    if out.gate is not None:
        assert out.gate.shape[:2] == (3, 5) and float(out.gate.detach().min()) >= 0 and float(out.gate.detach().max()) <= 1
    changed = words.detach().clone()
    changed[:, 3:] = torch.randn(3, 2, text_dim)  # the last two words stand for padding
    again = fusion(changed, image if cls.needs_image else None)
    assert torch.allclose(again.fused[:, :3], out.fused[:, :3], atol=1e-6), "padding words changed a real word's output"
    _trainable_get_grad(fusion, out.fused.sum() + (out.gate.sum() if out.gate is not None else 0))
    assert words.grad is not None, "no gradient reaches the word features"
    copy = make().eval()
    copy.load_state_dict(fusion.state_dict())
    assert torch.equal(copy(words, image if cls.needs_image else None).fused, out.fused), "state-dict round trip changed the output"
    _raises_naming(lambda: fusion(torch.randn(3, 5, text_dim + 1), image), "words")
    if cls.needs_image:
        _raises_naming(lambda: fusion(words, None), "image")
        _raises_naming(lambda: fusion(words, torch.randn(2, image_dim)), "image")


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
    from mscmt_cli.engine.batching import Example

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
    from mscmt_cli.engine.batching import Example

    encoder.context, saved = "caption", encoder.context
    try:
        plain = [encoder.encode_words(w, "") for w in TWEETS]
        with_caption = [encoder.encode_words(w, "a man in a suit waving a flag " * 40) for w in TWEETS]
        words = encoder(collate([Example(e, [], torch.zeros(0)) for e in with_caption], encoder.pad_id).text)
    finally:
        encoder.context = saved
    limit = getattr(encoder, "max_subwords", None)
    for tweet, empty, full in zip(TWEETS, plain, with_caption):
        assert full.word_positions == empty.word_positions and len(full.word_positions) == len(tweet), "the caption moved a word"
        assert limit is None or all(len(w) <= limit for w in full.windows), "a window with the caption exceeds the limit"
        assert full.token_types is None or [len(t) for t in full.token_types] == [len(w) for w in full.windows]
    assert words.shape == (2, len(TWEETS[0]), encoder.hidden_size) and torch.isfinite(words).all()


def check_image_encoder(encoder: ImageEncoder, inputs: list[Any]) -> None:
    """The image-encoder contract: frozen, ``(n, D)`` float32 on the CPU, deterministic, a stable identity."""
    check_params_round_trip(type(encoder))
    assert all(not p.requires_grad for p in encoder.parameters()), "an image encoder must be frozen"
    feats = encoder.encode(inputs)
    assert feats.shape == (len(inputs), encoder.dim) and feats.dtype == torch.float32 and feats.device.type == "cpu"
    assert torch.equal(encoder.encode(inputs), feats), "features must be deterministic"
    if len(inputs) > 1:
        assert torch.allclose(encoder.encode(inputs[1:2])[0], feats[1], atol=1e-4), "a batch changed one input's features"
    identity = encoder.identity()
    assert isinstance(identity, str) and identity and identity == encoder.identity()
