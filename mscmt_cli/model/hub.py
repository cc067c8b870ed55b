"""Loading pretrained parts by hub id or local directory, with one-line errors."""

from __future__ import annotations

import hashlib
import json
import socket
import threading
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import huggingface_hub.constants

from mscmt_cli.errors import ModelLoadError
from mscmt_cli.paths import missing_local_copy

if TYPE_CHECKING:
    import torch

T = TypeVar("T")


#: How long the model hub may take to accept a TCP connection before it counts as unreachable. A reachable hub answers
#: in well under a second; without this check huggingface_hub retries for 45 s to 3 min ("Retrying in Ns") offline.
HUB_CHECK_SECONDS = 3.0


def load_pretrained(
    component: str, source: str, load: Callable[..., T], *, local_option: str | None = None, hub_timeout: float = HUB_CHECK_SECONDS
) -> T:
    """``load(source)`` (a ``from_pretrained``) for a local directory or a hub id; any failure is a one-line ``ModelLoadError``.

    ``load`` also takes ``local_files_only=True`` (as ``from_pretrained`` does): then only the Hugging Face cache is read.

    A hub id is loaded from the Hugging Face cache when it is there (no network at all); otherwise, unless
    ``HF_HUB_OFFLINE`` is set, the hub is checked to accept a connection within ``hub_timeout`` seconds before it is
    asked, so an offline machine fails at once instead of retrying for minutes. ``component`` is the registered name
    (``bertweet``), so the message can say which ``--model-path`` to pass; ``local_option`` is the option that takes a
    local copy instead, when it is not ``--model-path`` (``--captioner``).
    """
    how = f"{local_option} " if local_option else f"--model-path {component}="
    local = Path(source).expanduser()
    if local.exists():
        try:
            with quiet_transformers():
                return load(str(local))
        except (OSError, ValueError) as err:
            raise ModelLoadError(f"{component}: cannot load local model directory {local}: {_first_line(err)}") from err
    if looks_like_path(source):
        raise ModelLoadError(f"{how}{source}: no such directory: {local}")
    try:
        with quiet_transformers():
            return load(source, local_files_only=True)
    except (OSError, ValueError):
        pass  # not (wholly) in the Hugging Face cache: ask the hub
    local_copy = f"pass {how}/path/to/{source.split('/')[-1]}"
    if huggingface_hub.constants.HF_HUB_OFFLINE:
        raise ModelLoadError(
            f"{component}: cannot load {source!r}: HF_HUB_OFFLINE is set and it is not in the Hugging Face cache; {local_copy}"
        )
    endpoint = huggingface_hub.constants.ENDPOINT
    if not hub_reachable(endpoint, hub_timeout):
        raise ModelLoadError(
            f"{component}: cannot load {source!r}: the model hub ({endpoint}) is unreachable and it is not in the Hugging Face "
            f"cache; download it where the hub is reachable and {local_copy} (HF_HUB_OFFLINE=1: never ask the hub)"
        )
    try:
        with quiet_transformers():
            return load(source)
    except (OSError, ValueError) as err:
        raise ModelLoadError(f"{component}: cannot load {source!r} from the model hub: {_first_line(err)}; or {local_copy}") from err


def _first_line(err: Exception) -> str:
    return str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__


def looks_like_path(source: str) -> bool:
    """Whether ``source`` can only be a path: a hub id is ``name`` or ``owner/name``, never absolute or ``./``-relative."""
    return source.startswith(("/", "~", "./", "../", ".\\", "..\\")) or source in (".", "..") or source.count("/") > 1 or "\\" in source


def hub_reachable(url: str, timeout: float) -> bool:
    """Whether ``url``'s host (or the proxy the environment gives for it) accepts a TCP connection within ``timeout``
    seconds, name lookup included (a thread bounds it: a lookup without network can hang past any socket timeout)."""
    parts = urllib.parse.urlsplit(url)
    host, port = parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)
    proxy = urllib.request.getproxies().get(parts.scheme)
    if proxy and not urllib.request.proxy_bypass(host):
        via = urllib.parse.urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        host, port = via.hostname or "", via.port or 80
    answered: list[bool] = []

    def probe() -> None:
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            answered.append(True)
        except OSError:
            answered.append(False)

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(answered and answered[0])


@contextmanager
def quiet_transformers() -> Iterator[None]:
    """transformers' warnings and progress bars off while a part loads, then as they were.

    Its multi-line "LOAD REPORT" tables (e.g. the text tower's keys UNEXPECTED when a full CLIP
    checkpoint is loaded as its vision tower, which is what we ask for) reached the stderr of
    every ``Tagger.from_pretrained`` caller; the CLI had quieted them only for itself.
    """
    from transformers.utils import logging as hf_logging

    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity(hf_logging.ERROR)
    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()  # type: ignore[no-untyped-call]


def resolve_source(component: str, default: str, model_paths: Mapping[str, str]) -> str:
    """The local path given with ``--model-path component=PATH``, else ``default``."""
    path = model_paths.get(component)
    if path is None:
        return default
    missing = missing_local_copy(path)
    if missing is not None:
        raise ModelLoadError(f"--model-path {component}={path}: {missing}")
    return str(Path(path).expanduser())


def weights_fingerprint(source: str, model: torch.nn.Module) -> str:
    """A cheap identity for a model's weights.

    For a local weights file, or a local directory's weight files: names,
    sizes and the first and last MiB of each. Otherwise (or when none are
    found): a hash of every parameter's shape and a strided sample of its values.
    """
    h = hashlib.sha256()
    path = Path(source)
    if path.is_file():
        files = [path]
    else:
        files = sorted(path.glob("*.safetensors")) + sorted(path.glob("*.bin")) if path.is_dir() else []
    for f in files:
        size = f.stat().st_size
        with open(f, "rb") as fh:
            head = fh.read(1 << 20)
            fh.seek(max(0, size - (1 << 20)))
            tail = fh.read()
        h.update(f"{f.name}:{size}".encode() + head + tail)
    if not files:
        for name, p in model.state_dict().items():
            flat = p.detach().flatten()
            h.update(f"{name}{tuple(p.shape)}".encode() + flat[:: max(1, flat.numel() // 64)].float().numpy().tobytes())
    return h.hexdigest()[:16]


def config_digest(data: Any) -> str:
    """Short hash of a JSON-able configuration (preprocessing, transforms)."""
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:12]
