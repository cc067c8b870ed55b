"""examples/configs/: every settings file loads, and each says the recipe its table or script really used."""

from __future__ import annotations

from pathlib import Path

import pytest

from mscmt_cli.settings import Settings, identity_fields, load_settings
from mscmt_cli.studies.common import Row, row_settings
from tests.conftest import REPO
from tests.test_benchmark_scripts import load_script

CONFIGS = REPO / "examples" / "configs"


def identity(settings: Settings) -> dict[str, object]:
    """What a run learns from (the fields a study compares before reusing a run)."""
    return {name: getattr(settings, name) for name in identity_fields()}


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.toml")), ids=lambda p: p.name)
def test_every_settings_file_loads(path: Path):
    assert load_settings(path).text


@pytest.mark.parametrize("corpus", ["twitter2017", "twitter2015"])
def test_results_toml_is_the_recipe_of_the_results_and_ablation_scripts(corpus, tmp_path, monkeypatch):
    """The text-only cell of benchmarks/results.py and the reference cell of benchmarks/ablation.py,
    with their default arguments, are exactly examples/configs/results.toml plus corpus and seed."""
    results, ablation = load_script("results"), load_script("ablation")
    monkeypatch.setattr("sys.argv", ["results.py", "--data-dir", str(tmp_path)])
    args = results.parse_args()
    given = dict(corpus=corpus, seed=2, data_dir=tmp_path)
    from_file = identity(load_settings(CONFIGS / "results.toml", given))
    script_base = dict(text="minilm", decoder="crf", epochs=args.epochs, patience=args.patience, lr=args.lr, batch_size=args.batch_size)
    text_only = row_settings(load_settings(None, script_base), Row("cell", dict(given, **results.VARIANTS["text-only"])), tmp_path)
    reference = row_settings(load_settings(None, ablation.BASE), Row("cell", dict(given, **ablation.FACTORS["defaults"])), tmp_path)
    assert identity(text_only) == from_file
    assert identity(reference) == from_file


def test_each_bundled_example_variant_is_the_variant_it_names():
    """benchmarks/example_variants.py trains each variant over examples/configs/example.toml: a variant
    must not inherit the file's own context, image encoder or fusion."""
    variants = load_script("example_variants")
    base = load_settings(variants.CONFIG)
    for name, overrides in variants.VARIANTS.items():
        got = row_settings(base, Row(name, overrides), Path("out"))
        meant = (overrides.get("context", "none"), overrides["image"], overrides["fusion"])
        assert (got.context, got.image, got.fusion) == meant, name


def test_the_quickstart_trains_a_variant_that_types_the_showcase_right():
    """examples/configs/example.toml is one of the variants that tagged the showcase's "Jordan" PER
    with every seed on the bundled example (benchmarks/example_variants/example_variants.md)."""
    variants = load_script("example_variants")
    quickstart = load_settings(CONFIGS / "example.toml")
    shown = {"context": quickstart.context, "image": quickstart.image, "fusion": quickstart.fusion}
    assert shown in [variants.VARIANTS["context"], variants.VARIANTS["caption-tokens+cross-attention"]]
    page = (REPO / "benchmarks" / "example_variants" / "example_variants.md").read_text(encoding="utf-8")
    name = next(n for n, v in variants.VARIANTS.items() if v == shown)
    row = next(line for line in page.splitlines() if line.startswith(f"| {name} |"))
    assert row.split(" | ")[5] == "B-PER, B-PER, B-PER"
