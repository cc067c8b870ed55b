"""The exported graph in ONNX Runtime: :class:`OnnxBackend`, the backend of ``--backend onnx``.

Session settings, chosen rather than left to the defaults:

* ``graph_optimization_level = ORT_ENABLE_ALL``: constant folding, node
  fusions (LayerNorm, GELU, attention) and the CPU layout transforms; the
  session optimises once when it loads (a second or two for a BERT-base).
* ``intra_op_num_threads = default_threads()`` (unless ``threads`` is
  given): the number of threads the torch backend would use, found without
  importing torch: ``torch.get_num_threads()`` when torch is already loaded in
  the process (so ``torch.set_num_threads`` counts), else PyTorch's own default
  as it shows: ``MKL_NUM_THREADS``, else ``OMP_NUM_THREADS`` (a positive
  integer), at most the physical cores the process may run on; without either,
  those cores (:func:`available_cores`). So the two backends are compared like
  for like and the tagger never takes more of a shared machine than torch would.
* ``inter_op_num_threads = 1`` with sequential execution: the graph is one
  chain of layers with no parallel branches worth running side by side; a
  second pool would only compete with the first for the same cores.

Only the CPU provider is used: ``onnxruntime`` on PyPI is the CPU build, and the
torch backend serves GPUs.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from mscmt_cli.backends.arrays import ArrayBatch
from mscmt_cli.backends.base import Emitted, Scored
from mscmt_cli.backends.decoding import Decoding
from mscmt_cli.errors import ModelLoadError, MscmtError
from mscmt_cli.export.layout import ONNX_FILE, graph_feeds, read_export_config

INSTALL_HINT = "pip install 'mscmt[onnx]' (or: pip install onnx onnxruntime)"


def require(module: str) -> ModuleType:
    """Import ``onnx`` or ``onnxruntime``, or raise the one-line error saying how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MscmtError(f"the onnx backend needs the package {module!r}, which is not installed: {INSTALL_HINT}") from None


def available_cores() -> int:
    """The physical cores the process may run on: distinct ``(package, core)`` pairs of the CPUs in its affinity
    mask (``/sys/devices/system/cpu/cpuN/topology``); the CPUs of the mask where the topology cannot be read."""
    cpus = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set(range(os.cpu_count() or 1))
    cores = set()
    for cpu in cpus:
        topology = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology")
        try:
            cores.add(((topology / "physical_package_id").read_text().strip(), (topology / "core_id").read_text().strip()))
        except OSError:
            return len(cpus)
    return len(cores) or 1


def default_threads() -> int:
    """The intra-op threads torch would use (the module docstring's rule), without importing torch."""
    torch = sys.modules.get("torch")
    if torch is not None and hasattr(torch, "get_num_threads"):
        return int(torch.get_num_threads())
    cores = available_cores()
    for name in ("MKL_NUM_THREADS", "OMP_NUM_THREADS"):
        value = os.environ.get(name, "").strip()
        if value.isdigit() and int(value) > 0:
            return min(int(value), cores)
    return cores


def session_options(threads: int | None = None) -> Any:
    """ONNX Runtime session options as the module docstring explains (``threads``: intra-op threads, default torch's)."""
    ort = require("onnxruntime")
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.intra_op_num_threads = threads or default_threads()
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # errors only: no per-session warnings on stderr
    return options


def open_session(path: Path, threads: int | None = None) -> Any:
    """An ``InferenceSession`` of the ONNX file ``path`` on the CPU."""
    ort = require("onnxruntime")
    if not Path(path).is_file():
        raise ModelLoadError(f"{path}: missing from the exported directory; export the model again (mscmt export RUN --out DIR)")
    try:
        return ort.InferenceSession(str(path), sess_options=session_options(threads), providers=["CPUExecutionProvider"])
    except Exception as err:  # onnxruntime raises its own exception types for unreadable or invalid graphs
        raise ModelLoadError(f"{path}: ONNX Runtime cannot load it ({type(err).__name__}: {str(err)[:200]})") from None


class OnnxBackend:
    """An exported directory's graph in ONNX Runtime (CPU), decoded in numpy."""

    name = "onnx"

    def __init__(self, directory: Path, threads: int | None = None) -> None:
        self.directory = Path(directory)
        self.config = read_export_config(self.directory)
        self.decoding = Decoding.load(self.directory)
        self.session = open_session(self.directory / ONNX_FILE, threads)
        self.inputs = [i.name for i in self.session.get_inputs()]
        self.outputs = [o.name for o in self.session.get_outputs()]
        #: Whether the graph takes segment ids (a model reading the caption beside the tweet in BERT's pair format).
        self.token_types = "token_type_ids" in self.inputs
        self.device = "cpu"

    @property
    def has_gate(self) -> bool:
        return "gate" in self.outputs

    def forward(self, batch: ArrayBatch) -> Emitted:
        """Emissions ``(B, T, C)`` float32, the mean gate ``(B, T)`` and the attention ``(B, T, N)`` (None without
        them), as numpy arrays."""
        feeds = graph_feeds(batch, self.token_types)
        found = dict(zip(self.outputs, self.session.run(self.outputs, {k: feeds[k] for k in self.inputs})))
        return Emitted(found["emissions"], batch.word_mask, found.get("gate"), found.get("attention"))

    def decode(self, emitted: Emitted, marginals: bool = True) -> Scored:
        paths = self.decoding.decode(emitted.emissions, emitted.mask)
        probs = self.decoding.marginals(emitted.emissions, emitted.mask) if marginals else None
        gate = None if emitted.gate is None else np.asarray(emitted.gate, dtype=np.float32)
        attention = None if emitted.attention is None else np.asarray(emitted.attention, dtype=np.float32)
        return Scored(paths, probs, gate, attention)

    def describe(self) -> dict[str, Any]:
        options = self.session.get_session_options()
        return {
            "name": self.name,
            "quantization": self.config.quantization,
            "opset": self.config.opset,
            "intra_op_threads": options.intra_op_num_threads,
            "inter_op_threads": options.inter_op_num_threads,
        }
