"""GPU throughput of the full-size architecture, and the fraction of peak bf16 FLOP/s it reaches.

Random weights built from configs (nothing downloaded): a BERTweet-base-shaped
text encoder (RobertaConfig: hidden 768, 12 layers, 12 heads, vocab 64001,
130 positions) inside the mscmt model (gated fusion + CRF, through the
registered ``bertweet``/``gated``/``crf`` components), and a CLIP ViT-L/14
vision tower (hidden 1024, 24 layers, 16 heads, patch 14, 224 px, projection
768). Tweets are synthetic (8 to 40 words, 1 or 2 sub-words each: about
the lengths of TWITTER-2015), bf16 autocast as the engine uses on CUDA.

Measured, median of ``--repeats``, each an engine path unless marked:
* ``train, engine loop``: ``trainer.train_epoch`` over length-bucketed batches
  (CPU collation, gated fusion, CRF loss, clipping, AdamW), image features given.
* ``train, model step only``: the same steps on batches collated and moved
  to the GPU beforehand (what the loop would reach without its CPU work).
* ``vision tower``: the frozen ViT-L/14 on random 224 px pixels (the image
  processor's CPU work left out).
* ``tag, text``: ``Tagger.predict`` (batches, Viterbi, marginals, entities).
* ``tag, text + image``: the vision tower, then ``Tagger.predict`` with its features.

FLOPs: 6 x params x tokens (training), 2 x params x tokens (inference), with
params the non-embedding parameters (the 64001 x 768 word-embedding table is a
lookup, not a matmul); tokens are real sub-words (padding not counted); the
vision tower adds 2 x its params x 257 tokens per image. MFU = FLOP/s / peak
(``--peak-tflops``, default 989: H200 dense bf16). ``--smoke`` shrinks every size
so that the script runs on a CPU in seconds. Without CUDA (and without
``--smoke``) it prints "no CUDA device; skipping" and exits 0.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

if __name__ == "__main__" and not __package__:  # run as a file: become python -m benchmarks.<name> (see _script.py)
    __import__("_script").run_as_module(__file__)

import torch

from mscmt_cli.paths import save_pretrained, write_text_atomic

FULL_TEXT = dict(
    vocab_size=64001,
    hidden_size=768,
    num_hidden_layers=12,
    num_attention_heads=12,
    intermediate_size=3072,
    max_position_embeddings=130,
    type_vocab_size=1,
    layer_norm_eps=1e-5,
)
FULL_VISION = dict(
    hidden_size=1024,
    intermediate_size=4096,
    num_hidden_layers=24,
    num_attention_heads=16,
    patch_size=14,
    image_size=224,
    projection_dim=768,
)
SMOKE_TEXT = dict(FULL_TEXT, vocab_size=1000, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128)
SMOKE_VISION = dict(
    hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, patch_size=14, image_size=56, projection_dim=48
)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, runs on the CPU in seconds (a test of the script)")
    parser.add_argument("--peak-tflops", type=float, default=989.0, help="peak dense bf16 TFLOP/s of the GPU [%(default)s: H200]")
    parser.add_argument("--train-batch", type=int, default=32, help="tweets per training step [%(default)s]")
    parser.add_argument("--tag-batch", type=int, default=64, help="tweets per tagging batch [%(default)s: mscmt tag's default]")
    parser.add_argument("--image-batch", type=int, default=64, help="images per vision-tower call [%(default)s]")
    parser.add_argument("--steps", type=int, default=40, help="training steps per repetition [%(default)s]")
    parser.add_argument("--tweets", type=int, default=4096, help="tweets per tagging repetition [%(default)s]")
    parser.add_argument("--repeats", type=int, default=3, help="repetitions of each measurement [%(default)s]")
    parser.add_argument("--compile", action="store_true", help="torch.compile the text encoder (dynamic shapes)")
    return parser.parse_args()


def text_encoder(sizes: dict, directory: Path):
    """The registered ``bertweet`` encoder over a random RoBERTa of ``sizes`` (a minimal tokenizer beside it)."""
    from transformers import BertTokenizer, RobertaConfig

    from mscmt_cli.registry import Registry

    write_text_atomic(directory / "vocab.txt", "\n".join(["<pad>", "<s>", "</s>", "<unk>"]) + "\n")
    tokenizer = BertTokenizer(
        vocab_file=str(directory / "vocab.txt"),
        unk_token="<unk>",
        sep_token="</s>",
        pad_token="<pad>",
        cls_token="<s>",
        mask_token="<unk>",
        do_lower_case=False,
    )
    save_pretrained(tokenizer, directory)
    config = RobertaConfig(
        **sizes, pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.cls_token_id, eos_token_id=tokenizer.sep_token_id
    )
    save_pretrained(config, directory)
    cls, _ = Registry.from_entry_points().resolve("text", "bertweet")
    return cls(str(directory), pretrained=False)


def build(sizes_text: dict, sizes_vision: dict, device: torch.device, tmp: Path):
    """(mscmt model, vision tower), random weights, on ``device``."""
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    from mscmt_cli.labels import LABELS
    from mscmt_cli.model.mner import MNERModel
    from mscmt_cli.registry import Registry

    registry = Registry.from_entry_points()
    text = text_encoder(sizes_text, tmp)
    vision = CLIPVisionModelWithProjection(CLIPVisionConfig(**sizes_vision)).eval().requires_grad_(False)
    fusion = registry.resolve("fusion", "gated")[0](text.hidden_size, vision.config.projection_dim)
    model = MNERModel(text, fusion, registry.resolve("decoder", "crf")[0](LABELS), len(LABELS))
    return model.to(device), vision.to(device)


def compute_params(module: torch.nn.Module, skip: tuple[str, ...]) -> int:
    """Parameters that take part in matmuls (names containing any of ``skip`` left out)."""
    return sum(p.numel() for n, p in module.named_parameters() if not any(s in n for s in skip))


def synthetic_tweets(n: int, vocab: int, image_dim: int, seed: int = 0):
    """``n`` labelled examples with random sub-word ids and image features (lengths like TWITTER-2015)."""
    from mscmt_cli.backends.batches import Example
    from mscmt_cli.model.components import EncodedTweet

    rng = random.Random(seed)
    examples = []
    for _ in range(n):
        words = rng.randint(8, 40)
        ids, positions = [1], []
        for _ in range(words):
            positions.append((0, len(ids)))
            ids += [rng.randrange(4, vocab) for _ in range(1 if rng.random() < 0.7 else 2)]
        examples.append(Example(EncodedTweet([ids + [2]], positions), [rng.randrange(9) for _ in range(words)], torch.randn(image_dim)))
    return examples


def tokens_per_image(sizes_vision: dict) -> int:
    """Patches of one image plus the class token."""
    return (sizes_vision["image_size"] // sizes_vision["patch_size"]) ** 2 + 1


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn, device: torch.device, repeats: int) -> float:
    """Median seconds of ``fn()`` over ``repeats`` runs, after one untimed warm-up run."""
    fn()
    times = []
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


Row = tuple[str, float, str, float]  # (what, median seconds, throughput text, FLOPs of one repetition)


def measure_training(model, device: torch.device, args: argparse.Namespace, vocab: int, dim: int, n_text: int) -> list[Row]:
    """The engine's training loop, then the same steps on batches already on the device."""
    from mscmt_cli.backends.batches import collate
    from mscmt_cli.backends.device import autocast
    from mscmt_cli.engine.batching import EncodedDataset, length_batches
    from mscmt_cli.engine.trainer import POOL_BATCHES, linear_schedule, train_epoch

    pad = model.text.pad_id
    train = EncodedDataset(synthetic_tweets(args.steps * args.train_batch, vocab, dim))
    batches = length_batches(list(range(len(train))), train.lengths, args.train_batch, POOL_BATCHES, torch.Generator().manual_seed(0))
    optimizer = torch.optim.AdamW(model.parameter_groups(3e-5, 3e-4, 0.01))
    scheduler = linear_schedule(optimizer, 10**9, 0.0)
    flops = 6 * n_text * sum(train.lengths)
    rows: list[Row] = []
    seconds = timed(lambda: train_epoch(model, pad, train, batches, optimizer, scheduler, 1.0, device), device, args.repeats)
    rows.append(("train, engine loop", seconds, f"{len(train) / seconds:8.0f} tweets/s", flops))
    ready = [collate([train[i] for i in b], pad).to(device) for b in batches]

    def steps() -> None:
        model.train()
        for batch in ready:
            with autocast(device):
                loss = model(batch).loss
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()

    seconds = timed(steps, device, args.repeats)
    rows.append(("train, model step only", seconds, f"{len(train) / seconds:8.0f} tweets/s", flops))
    optimizer.state.clear(), ready.clear()  # free the GPU memory before the vision tower
    return rows


def measure_inference(
    model, vision, device: torch.device, args: argparse.Namespace, sizes_text: dict, sizes_vision: dict, n_text: int, n_vision: int
) -> list[Row]:
    """The frozen vision tower alone, then ``Tagger.predict`` without and with it."""
    from mscmt_cli.backends.device import autocast
    from mscmt_cli.data.doc import doc_from_value
    from mscmt_cli.labels import LABELS
    from mscmt_cli.model.build import Assembled, Components, ModelSpec
    from mscmt_cli.tagging.tagger import Tagger
    from plugins.image_encoders import NoImageEncoder

    dim = vision.config.projection_dim
    vision_tokens = tokens_per_image(sizes_vision)
    pixels = torch.randn(args.image_batch, 3, sizes_vision["image_size"], sizes_vision["image_size"], device=device)
    n_calls = max(1, args.tweets // args.image_batch)
    images = n_calls * args.image_batch
    vision_flops = 2 * n_vision * vision_tokens * images

    @torch.inference_mode()
    def encode_images() -> list[torch.Tensor]:
        feats = []
        for _ in range(n_calls):
            with autocast(device):
                feats.append(vision(pixel_values=pixels).image_embeds.float().cpu())
        return [f for chunk in feats for f in chunk]

    rows: list[Row] = []
    seconds = timed(encode_images, device, args.repeats)
    rows.append(("vision tower", seconds, f"{images / seconds:8.0f} images/s", vision_flops))

    spec = ModelSpec(
        components=Components(text="bertweet", image="clip-vit-l14", fusion="gated", decoder="crf"),
        sources={},
        labels=list(LABELS),
        text_hidden_size=model.text.hidden_size,
        image_dim=dim,
        fusion_dim=model.fusion.output_dim,
    )
    tagger = Tagger(Assembled(model, NoImageEncoder(), spec), device, batch_size=args.tag_batch)
    tweets = synthetic_tweets(images, sizes_text["vocab_size"], dim, seed=1)
    docs = [doc_from_value([f"w{k}" for k in range(e.length)]) for e in tweets]
    encoded = [e.encoded for e in tweets]
    features = [e.image for e in tweets]
    text_flops = 2 * n_text * sum(e.encoded.n_subwords for e in tweets)
    seconds = timed(lambda: tagger.predict(docs, features, encoded), device, args.repeats)
    rows.append(("tag, text", seconds, f"{len(docs) / seconds:8.0f} tweets/s", text_flops))
    seconds = timed(lambda: tagger.predict(docs, encode_images(), encoded), device, args.repeats)
    rows.append(("tag, text + image", seconds, f"{len(docs) / seconds:8.0f} tweets/s", text_flops + vision_flops))
    return rows


def print_rows(rows: list[Row], peak_tflops: float) -> None:
    print(f"{'measurement':<24} {'median s':>9} {'throughput':>18} {'TFLOP/s':>8} {'MFU':>7}")
    for what, seconds, rate, flops in rows:
        print(f"{what:<24} {seconds:9.3f} {rate:>18} {flops / seconds / 1e12:8.2f} {100 * flops / seconds / (peak_tflops * 1e12):6.1f}%")


def main() -> int:
    args = parse_args()
    if not args.smoke and not torch.cuda.is_available():
        print("no CUDA device; skipping")
        return 0
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type == "cpu":
        torch.set_num_threads(1)  # a shared CPU: one thread avoids OpenMP threads waiting on each other
    if args.smoke:
        args.steps, args.tweets, args.repeats, args.train_batch, args.tag_batch, args.image_batch = 3, 48, 1, 8, 16, 4
    sizes_text, sizes_vision = (SMOKE_TEXT, SMOKE_VISION) if args.smoke else (FULL_TEXT, FULL_VISION)
    torch.backends.cuda.matmul.allow_tf32 = True
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    name = torch.cuda.get_device_name() if device.type == "cuda" else "CPU"
    print(
        f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}  {name}  torch {torch.__version__}  "
        f"{'SMOKE sizes' if args.smoke else 'full sizes'}  peak {args.peak_tflops:.0f} TFLOP/s{'  compiled' if args.compile else ''}"
    )
    with tempfile.TemporaryDirectory(prefix="bench-gpu-") as tmp:
        model, vision = build(sizes_text, sizes_vision, device, Path(tmp))
    if args.compile:
        model.text.model = torch.compile(model.text.model, dynamic=True)
    n_text = compute_params(model, ("embeddings.word_embeddings", "position_embeddings", "token_type_embeddings"))
    n_vision = compute_params(vision, ("position_embedding", "class_embedding"))
    vision_tokens = tokens_per_image(sizes_vision)
    print(
        f"text+fusion+head: {compute_params(model, ()) / 1e6:.1f} M params ({n_text / 1e6:.1f} M non-embedding); "
        f"vision tower: {n_vision / 1e6:.1f} M params, {vision_tokens} tokens per image"
    )
    rows = measure_training(model, device, args, sizes_text["vocab_size"], vision.config.projection_dim, n_text)
    rows += measure_inference(model, vision, device, args, sizes_text, sizes_vision, n_text, n_vision)
    print_rows(rows, args.peak_tflops)
    if device.type == "cuda":
        print(f"peak GPU memory allocated: {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
