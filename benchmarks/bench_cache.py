"""Image-feature cache: a training epoch with a frozen image encoder, uncached and cached, against text only.

A randomly initialised CLIP vision tower (ViT, hidden 384, 4 layers, 6 heads,
patch 16, 224 px: costly enough that encoding shows) is saved in a temporary
directory and loaded as the ``clip-vit-l14`` component through
``--model-path``; every tweet gets a generated 480x360 JPEG. All three arms
train minilm + crf for one epoch on the same first ``--tweets`` tweets of
TWITTER-2017 train through ``mscmt_cli.engine.trainer.Run``:

* ``uncached epoch 1``: gated fusion, empty cache directory: the features of
  every tweet's image are computed (``Run._precompute``, timed), then one
  ``train_epoch``.
* ``cached epoch 2``: the same, with the cache directory that a first run
  filled: features come from the disk cache, then one ``train_epoch``.
* ``text-only epoch``: ``--image none --fusion none``: one ``train_epoch``.

Model loading and tokenization are left out of every arm; the training epochs
of the three arms take turns every 5 steps (``common.interleaved``). Prints medians, the
feature and training parts of each arm, and each arm's cost relative to the
text-only epoch. Target: cached epoch 2 <= 1.1x the text-only epoch.
"""

from __future__ import annotations

import hashlib
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import Segment, Stopwatch, base_parser, interleaved, machine_line, report, set_threads, subset_corpus, training_segments

from mscmt_cli.paths import make_dir, remove_tree, save_pretrained, write_atomic


def make_vision_tower(directory: Path) -> Path:
    """A random CLIP vision tower with its image processor, saved into ``directory``."""
    import torch
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(0)
    config = CLIPVisionConfig(
        hidden_size=384,
        intermediate_size=1536,
        num_hidden_layers=4,
        num_attention_heads=6,
        image_size=224,
        patch_size=16,
        projection_dim=256,
    )
    save_pretrained(CLIPVisionModelWithProjection(config), directory)
    save_pretrained(CLIPImageProcessor(size={"shortest_edge": 224}, crop_size={"height": 224, "width": 224}), directory)
    return directory


def make_images(directory: Path, ids: list[str], size: tuple[int, int] = (480, 360)) -> None:
    """A JPEG per id: coloured noise with a few shapes (deterministic per id)."""
    import numpy as np
    from PIL import Image, ImageDraw

    make_dir(directory)
    for image_id in ids:
        seed = int.from_bytes(hashlib.sha256(image_id.encode()).digest()[:4], "little")
        rng = np.random.default_rng(seed)
        pixels = rng.integers(0, 256, (size[1] // 8, size[0] // 8, 3), dtype=np.uint8)
        img = Image.fromarray(pixels).resize(size)
        draw = ImageDraw.Draw(img)
        for _ in range(4):
            x, y = int(rng.integers(0, size[0] - 60)), int(rng.integers(0, size[1] - 60))
            draw.ellipse([x, y, x + 60, y + 40], fill=tuple(int(c) for c in rng.integers(0, 256, 3)))
        write_atomic(directory / f"{image_id}.jpg", lambda fh, img=img: img.save(fh, "JPEG", quality=90))


def arm(settings, registry, features: list[float], fresh_cache: bool):
    """Builds a run (its feature stage timed, appended to ``features``); segments: the feature
    stage's seconds, then ``train_epoch`` over ``Run.epoch_batches(1)``, 5 batches at a time."""
    from mscmt_cli.console import make_console
    from mscmt_cli.engine.trainer import Run

    class TimedRun(Run):
        def _precompute(self) -> None:
            with Stopwatch() as sw:
                super()._precompute()
            self.feature_seconds = sw.seconds

    def prepare() -> list[Segment]:
        if fresh_cache:
            remove_tree(settings.cache_dir)
        run = TimedRun(settings, registry, make_console(quiet=True))
        features.append(run.feature_seconds)
        return [lambda: run.feature_seconds] + training_segments(run, run.epoch_batches(1))

    return prepare


def main() -> None:
    parser = base_parser(__doc__)
    parser.add_argument("--tweets", type=int, default=240, help="training tweets (first N of TWITTER-2017 train) [%(default)s]")
    args = parser.parse_args()
    set_threads(args.threads)
    from mscmt_cli.data.corpus import SPLITS, load_split
    from mscmt_cli.registry import Registry
    from mscmt_cli.settings import Settings

    print(machine_line())
    with tempfile.TemporaryDirectory(prefix="bench-cache-") as tmp:
        tmp = Path(tmp)
        data_dir, corpus = subset_corpus(args.data_dir, "twitter2017", tmp / "data", args.tweets, 16)
        ids = sorted({t.image_id for s in SPLITS for t in load_split(data_dir, corpus, s).tweets})
        make_images(tmp / "images", ids)
        tower = make_vision_tower(tmp / "clip")
        common = dict(
            text="minilm",
            decoder="crf",
            data_dir=data_dir,
            corpus=corpus,
            balance=False,
            lr=5e-5,
            batch_size=16,
            epochs=1,
            seed=13,
            out=tmp / "run",
            device="cpu",
        )
        image = Settings(
            **common,
            image="clip-vit-l14",
            fusion="gated",
            images_dir=tmp / "images",
            model_paths={"clip-vit-l14": str(tower)},
            cache_dir=tmp / "cache-a",
        )
        cached = image.model_copy(update={"cache_dir": tmp / "cache-b"})
        text = Settings(**common, image="none", fusion="none", no_cache=True)
        registry = Registry.from_entry_points()
        features: dict[str, list[float]] = {"uncached epoch 1": [], "cached epoch 2": [], "text-only epoch": []}
        arms = {
            "uncached epoch 1": arm(image, registry, features["uncached epoch 1"], fresh_cache=True),
            "cached epoch 2": arm(cached, registry, features["cached epoch 2"], fresh_cache=False),
            "text-only epoch": arm(text, registry, features["text-only epoch"], fresh_cache=False),
        }
        print(f"{len(ids)} images; one epoch of {args.tweets} TWITTER-2017 train tweets, minilm + crf, batch 16, CPU")
        print("filling the cache of the cached arm (not timed) ...")
        arm(cached, registry, [], fresh_cache=True)()
        times = interleaved(arms, args.repeats)
        report(times, "text-only epoch", args.tweets, ratio="cost")
        print(
            f"\n{'arm':<24} {'features s':>10} {'training s':>10}   (medians; the feature stage runs while the run is built, not interleaved)"
        )
        for name, total in times.items():
            feats = features[name]
            print(f"{name:<24} {statistics.median(feats):10.2f} {statistics.median(t - f for t, f in zip(total, feats)):10.2f}")


if __name__ == "__main__":
    main()
