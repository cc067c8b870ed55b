"""Plugin registries: built-ins via entry points, unknown names, a third-party plugin."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from mscmt_cli.errors import MscmtError
from mscmt_cli.registry import Registry
from tests.cli_support import train_args

BUILT_INS = {
    "text": {"bertweet", "bert-base", "minilm"},
    "image": {"clip-vit-l14", "none"},
    "fusion": {"gated", "additive", "none"},
    "decoder": {"crf", "softmax"},
}


def test_built_ins_come_from_entry_points():
    registry = Registry.from_entry_points()
    for kind, names in BUILT_INS.items():
        assert names <= set(registry.names(kind))
    cls, variant = registry.resolve("fusion", "gated")
    assert cls.__module__ == "plugins.fusions" and variant is None


def test_unknown_name_lists_known_ones():
    with pytest.raises(MscmtError) as err:
        Registry.from_entry_points().resolve("decoder", "lstm")
    assert "unknown decoder component 'lstm'" in str(err.value) and "crf" in str(err.value) and "softmax" in str(err.value)


def test_plugins_command_lists_everything(mscmt):
    result = mscmt(["plugins"])
    assert result.code == 0
    for names in BUILT_INS.values():
        for name in names:
            assert f" {name} " in result.out


THIRD_PARTY = '''
"""A third-party fusion: concatenates the projected image to every word."""
import torch
from torch import nn
from mscmt_cli.model.components import Fusion, FusionOutput, masked_mean

class ConcatFusion(Fusion):
    name = "concat"
    description = "third-party test fusion: [h_i; W v]"
    slow_parameter_prefixes = ("proj",)

    def __init__(self, text_dim, image_dim):
        super().__init__(text_dim, image_dim)
        self.proj = nn.Linear(image_dim, 5)
        self.output_dim = text_dim + 5

    def fuse(self, words, image, image_mask):
        v = self.proj(masked_mean(image, image_mask)).unsqueeze(1).expand(-1, words.size(1), -1)
        return FusionOutput(torch.cat([words, v], dim=-1))
'''


def _install_third_party(root: Path) -> Path:
    """A distribution outside the package, found through its .dist-info entry points."""
    site = root / "site"
    (site / "mscmt_extra").mkdir(parents=True)
    (site / "mscmt_extra" / "__init__.py").write_text(textwrap.dedent(THIRD_PARTY))
    info = site / "mscmt_extra-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: mscmt-extra\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[mscmt.plugins]\nfusion.concat = mscmt_extra:ConcatFusion\n")
    return site


@pytest.mark.slow
def test_third_party_plugin_is_listed_and_trains(tmp_path, tiny, corpus):
    site = _install_third_party(tmp_path)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(Path(__file__).resolve().parents[1])])}
    listed = subprocess.run([sys.executable, "-m", "mscmt_cli", "plugins"], capture_output=True, text=True, env=env, timeout=300)
    assert listed.returncode == 0 and "concat" in listed.stdout and "third-party test fusion" in listed.stdout
    out = tmp_path / "run"
    trained = subprocess.run(
        [sys.executable, "-m", "mscmt_cli", *train_args(corpus, out, tiny, image="clip-vit-l14", fusion="concat")],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert trained.returncode == 0, trained.stderr
    config = json.loads((out / "model" / "config.json").read_text())
    assert config["components"]["fusion"] == "concat" and config["fusion_dim"] == 32 + 5
