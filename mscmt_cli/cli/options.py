"""Command-line options generated from :class:`~mscmt_cli.settings.Settings`.

A command names the settings it takes; :func:`settings_options` gives it one
typer option per setting (type, help and default from the field) plus
``--config``, and hands the command a :class:`Given`: the values given on
the command line, which :meth:`Given.settings` merges with the file and the
environment. Adding a setting to a group in ``Settings`` adds the option to
every command of that group; nothing else is written twice.
"""

from __future__ import annotations

import functools
import inspect
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import typer

from mscmt_cli.registry import KINDS, Registry
from mscmt_cli.settings import Settings, fields_of, flag_of, load_settings, parse_model_paths, parse_params, parse_type_map

CONFIG = "config"
#: What the training commands take: train, and every study (less what a study sets per row).
TRAIN = fields_of("components", "data", "training", "runtime")
#: What the commands applying a trained model take: tag, serve, explain.
APPLY = fields_of("tagging", "runtime") + ("model_paths",)
#: Settings of ``evaluate``.
EVALUATE = fields_of("data", "runtime", without=("train_file", "valid_file")) + ("model_paths", "backend")

_REPEATABLE = {"model_paths": parse_model_paths, "params": parse_params, "type_map": parse_type_map}


@dataclass
class Given:
    """The settings given on the command line, and where to read the rest."""

    config: Path | None = None
    values: dict[str, Any] = field(default_factory=dict)
    flags: dict[str, str] = field(default_factory=dict)

    def settings(self, under: tuple[Path, dict[str, Any]] | None = None, **extra: Any) -> Settings:
        """Defaults < ``under`` (settings read from that file) < ``--config`` file < ``MSCMT_*`` environment < these values
        < ``extra``."""
        return load_settings(self.config, {**self.values, **extra}, self.flags, under)

    @property
    def reads(self) -> list[tuple[str, Path]]:
        """Files the command reads besides its settings' own (``--config``): an output must never replace them."""
        return [("--config", self.config)] if self.config is not None else []


def settings_options(*names: str, rename: dict[str, tuple[str, ...]] | None = None) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Give a command one option per named setting, and ``--config``.

    The decorated function takes ``given: Given`` as its first parameter and
    its own typer parameters after it. ``rename`` spells a setting's option
    differently for this command (``{"eval_batch_size": ("--batch-size",)}``).
    """
    rename = rename or {}

    def wrap(command: Callable[..., Any]) -> Callable[..., Any]:
        own = list(inspect.signature(command, eval_str=True).parameters.values())[1:]
        generated = [_parameter(n, rename.get(n)) for n in names] + [_config_parameter()]
        flags = {n: rename[n][0] if n in rename else flag_of(n) for n in names}

        @functools.wraps(command)
        def run(**options: Any) -> Any:
            values = {n: options.pop(n) for n in names}
            for name, parse in _REPEATABLE.items():
                if name in values:
                    values[name] = parse(values[name])
            given = Given(options.pop(CONFIG), {k: v for k, v in values.items() if v is not None}, flags)
            return command(given, **options)

        parameters = own + generated
        run.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
        run.__annotations__ = {p.name: p.annotation for p in parameters}
        return run

    return wrap


def _config_parameter() -> inspect.Parameter:
    option = typer.Option(None, "--config", help="TOML settings file (keys as the long options, [model_paths] and [KIND] tables)")
    return inspect.Parameter(CONFIG, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=Optional[Path])


def _parameter(name: str, spelled: tuple[str, ...] | None) -> inspect.Parameter:
    """The typer option of one setting: always optional (None = not given), help with the default."""
    info = Settings.model_fields[name]
    flags = (spelled or (flag_of(name),)) if name in _REPEATABLE or info.annotation is not bool else (spelled or (_bool_flags(name),))
    described = f"{info.description}: {', '.join(installed_names(name))} (see mscmt plugins)" if name in KINDS else info.description
    help_text = f"{described} {_default_text(name)}".strip()
    annotation: Any = Optional[list[str]] if name in _REPEATABLE else Optional[_option_type(info.annotation)]
    return inspect.Parameter(
        name, inspect.Parameter.KEYWORD_ONLY, default=typer.Option(None, *flags, help=help_text), annotation=annotation
    )


@functools.cache  # the installed entry points, read once per process (every command's component options show them)
def installed_names(kind: str) -> tuple[str, ...]:
    """The registered names of one component kind (entry points only: no plugin is imported)."""
    return tuple(Registry.from_entry_points().names(kind))


def _bool_flags(name: str) -> str:
    extra = Settings.model_fields[name].json_schema_extra or {}
    flags = extra.get("flags") if isinstance(extra, dict) else None
    return str(flags) if flags else f"--{name.replace('_', '-')}/--no-{name.replace('_', '-')}"


def _option_type(annotation: Any) -> type:
    """``Path | None`` -> ``Path``; ``Literal[...]`` -> ``str``; plain types unchanged."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) is typing.Literal:
        return type(args[0])
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return _option_type(args[0])
    return annotation


def _default_text(name: str) -> str:
    info = Settings.model_fields[name]
    if name in _REPEATABLE or info.default_factory is not None or info.default is None:
        return ""
    default = info.default
    return f"(default: {'on' if default else 'off'})" if isinstance(default, bool) else f"(default: {default})"
