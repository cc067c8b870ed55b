"""Reaching a Ray cluster: ``--ray ADDRESS``, the GPUs a task asks for, settings a worker can use.

``ADDRESS`` is ``local`` (start Ray on this machine for this command, stop it
after), ``auto`` (join the cluster this machine is part of: ``ray start`` ran
here, or ``RAY_ADDRESS`` names it), ``ray://HOST:PORT`` (Ray Client) or
``HOST:PORT`` (the head node's GCS address). A process already connected to
Ray (a notebook, a test) keeps its connection, whatever the address.

Every node must see the files a command names (data, images, models, run
directories) at the same paths: the workers get the driver's settings with
every relative path made absolute against the driver's working directory.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

from mscmt_cli.errors import MscmtError
from mscmt_cli.settings import Settings

INSTALL_HINT = 'Ray is not installed; --ray needs the [ray] extra: pip install "mscmt[ray]"'
ADDRESS_HELP = "run on a Ray cluster: local (start one here), auto (the one this machine belongs to), ray://HOST:PORT or HOST:PORT"
_PATH_FIELDS = ("data_dir", "images_dir", "captions", "out", "cache_dir", "model")


def require_ray() -> ModuleType:
    """The ``ray`` module, or the one-line error saying how to install it."""
    try:
        import ray
    except ImportError:
        raise MscmtError(INSTALL_HINT) from None
    return ray


def check_address(address: str) -> str:
    """``address`` stripped; refused when empty or not one of the forms :mod:`this module <mscmt_cli.cluster.connect>` names."""
    address = address.strip()
    known = address in ("local", "auto") or address.startswith("ray://") or _host_port(address)
    if not known:
        raise MscmtError(f"--ray {address!r}: expected local, auto, ray://HOST:PORT or HOST:PORT")
    return address


def _host_port(address: str) -> bool:
    host, sep, port = address.rpartition(":")
    return bool(sep and host and port.isdigit())


@contextmanager
def connected(address: str) -> Iterator[ModuleType]:
    """Connect to the cluster at ``address`` (see the module docstring) for the duration of the block."""
    ray = require_ray()
    address = check_address(address)
    if ray.is_initialized():
        yield ray
        return
    options: dict[str, Any] = {"logging_level": logging.WARNING}
    if address == "local":
        options["include_dashboard"] = False
    try:
        ray.init(address=address, **options)
    except Exception as err:  # ConnectionError, ValueError, a client's gRPC error: none of them is a bug of ours
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise MscmtError(f"--ray {address}: cannot connect to the Ray cluster ({first})") from None
    try:
        yield ray
    finally:
        ray.shutdown()


def gpus_per_task(ray: ModuleType, given: float | None, option: str) -> float:
    """The GPUs each task or actor asks for: ``given``, else 1 when the cluster has GPUs, else 0.

    Refused up front when no node has that many (Ray would wait for it forever),
    or when it is above 1 and not a whole number (Ray's rule).
    """
    nodes = [node.get("Resources", {}) for node in ray.nodes() if node.get("Alive", True)]
    largest = max((float(r.get("GPU", 0)) for r in nodes), default=0.0)
    gpus = (1.0 if largest > 0 else 0.0) if given is None else float(given)
    if gpus < 0:
        raise MscmtError(f"{option} must be at least 0, got {given}")
    if gpus > 1 and not gpus.is_integer():
        raise MscmtError(f"{option} {given}: above 1 it must be a whole number of GPUs")
    if gpus > largest:
        raise MscmtError(f"{option} {gpus:g}: no node of the cluster has that many GPUs (the most on one node: {largest:g})")
    return gpus


def worker_settings(settings: Settings, gpus: float, option: str) -> Settings:
    """The settings a worker runs with: absolute paths, and the device its ``gpus`` allow.

    ``--device auto`` becomes ``cpu`` for a task without GPUs (a worker on a GPU
    node would otherwise take a GPU it was not given); ``--device cuda`` without
    GPUs, or ``--device cpu`` holding GPUs, is refused.
    """
    if gpus == 0 and settings.device == "cuda":
        raise MscmtError(f"--device cuda needs GPUs: give {option} 1 (or more)")
    if gpus > 0 and settings.device == "cpu":
        raise MscmtError(f"--device cpu with {option} {gpus:g} would hold GPUs it never uses: give {option} 0")
    update: dict[str, Any] = {name: _absolute(getattr(settings, name)) for name in _PATH_FIELDS if getattr(settings, name) is not None}
    update["model_paths"] = {name: _absolute_if_local(path) for name, path in settings.model_paths.items()}
    if gpus == 0:
        update["device"] = "cpu"
    return settings.model_copy(update=update)


def _absolute(path: Path) -> Path:
    return Path(os.path.abspath(os.path.expanduser(path)))


def _absolute_if_local(path: str) -> str:
    """A ``--model-path`` value: a local path made absolute; anything else (a hub id) as given."""
    return str(_absolute(Path(path))) if os.path.exists(os.path.expanduser(path)) else path


def task_error(err: BaseException) -> str:
    """What went wrong in a Ray task or actor, in one line: the task's own error message when it raised one.

    Ray wraps a task's exception (``err.cause``); an actor that could not even be created
    carries only text, whose last line names the exception. A worker that cannot import
    mscmt is told to install it on every node.
    """
    cause = getattr(err, "cause", None)
    if isinstance(cause, MscmtError):
        return str(cause)
    if isinstance(cause, BaseException):
        text = f"{type(cause).__name__}: {_first_line(str(cause))}".rstrip(": ")
    else:
        lines = [line.strip() for line in _ANSI.sub("", str(err)).splitlines() if line.strip()]
        last = lines[-1] if lines else ""
        named = _EXCEPTION_LINE.match(last)
        text = (
            f"{named.group(1).rpartition('.')[2]}: {named.group(2)}"
            if named
            else f"{type(err).__name__}: {lines[0] if lines else ''}".rstrip(": ")
        )
    if "No module named 'mscmt_cli" in text or "No module named 'plugins" in text:
        text += ' (the workers need the same mscmt as this machine: pip install "mscmt[ray]" on every node)'
    return text


def _first_line(text: str) -> str:
    lines = _ANSI.sub("", text).strip().splitlines()
    return lines[0] if lines else ""


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_EXCEPTION_LINE = re.compile(r"^([A-Za-z_][\w.]*(?:Error|Exception)): (.*)$")
