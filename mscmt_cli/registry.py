"""Plugin registries, filled from the entry-point group ``mscmt.plugins``.

An entry point is named ``<kind>.<name>`` (kind is ``text``, ``image``,
``fusion`` or ``decoder``) and points at a component class with a
``description`` class attribute (one line). The built-in components in
``plugins/`` register exactly this way, so a third-party package adds a
component by declaring, in its own ``pyproject.toml``::

    [project.entry-points."mscmt.plugins"]
    "fusion.bilinear" = "my_package.fusion:BilinearFusion"

A class may also stand for a *family* of names: with ``family = "required"``
the entry point ``image.timm`` answers to ``timm:<model>`` (the part after the
colon is passed to the component as its ``variant``). With
``family = "optional"`` the variant may be left out: ``caption`` and
``caption:bert-base`` both resolve (shown as ``caption[:<text encoder>]``, the
placeholder read from ``variant_hint``).

A component declares its parameters as a pydantic model in its ``Params``
class attribute (typed fields with defaults and descriptions);
:func:`component_params` validates the values a user gives (``--set
fusion.proj_dim=256``, a ``[fusion]`` table) against it. ``explains`` names
what a component can show about a prediction (``{"gate"}``).
"""

from __future__ import annotations

import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any

from pydantic import BaseModel, ValidationError

from mscmt_cli.errors import MscmtError

GROUP = "mscmt.plugins"
REQUIRED = "required"  # ``family = REQUIRED``: the name needs a ``:<variant>`` suffix
OPTIONAL = "optional"  # ``family = OPTIONAL``: the ``:<variant>`` suffix may be omitted
KINDS: dict[str, str] = {
    "text": "text encoders",
    "image": "image encoders",
    "fusion": "fusions",
    "decoder": "decoders",
}


@dataclass(frozen=True)
class PluginSpec:
    """A registered component: where it comes from, loaded on first use."""

    kind: str
    name: str
    target: str  # "module:attr"
    loader: Any = field(repr=False, compare=False, default=None)

    def load(self) -> type[Any]:
        """Import and return the component class."""
        try:
            return self.loader() if self.loader is not None else _import(self.target)
        except Exception as err:  # an import error inside a plugin is the plugin's bug
            raise MscmtError(f"plugin {self.kind}.{self.name} ({self.target}) failed to import: {err}") from err


def _import(target: str) -> type[Any]:
    from importlib import import_module

    module, _, attr = target.partition(":")
    return getattr(import_module(module), attr)


class Registry:
    """All registered components of every kind, read from entry points once."""

    def __init__(self, specs: list[PluginSpec]) -> None:
        self._specs: dict[str, dict[str, PluginSpec]] = {k: {} for k in KINDS}
        for spec in specs:
            self._specs[spec.kind][spec.name] = spec

    @classmethod
    def from_entry_points(cls) -> Registry:
        """Build the registry from the installed distributions' entry points."""
        specs: list[PluginSpec] = []
        for ep in entry_points(group=GROUP):
            kind, _, name = ep.name.partition(".")
            if kind in KINDS and name:
                specs.append(PluginSpec(kind, name, ep.value, ep.load))
        return cls(specs)

    def names(self, kind: str) -> list[str]:
        """Sorted names of one kind; family entries are shown as ``name:<variant>``."""
        return sorted(self._specs[_check_kind(kind)])

    def resolve(self, kind: str, name: str) -> tuple[type[Any], str | None]:
        """The class for ``name`` and its variant (``timm:resnet152`` -> ``resnet152``)."""
        specs = self._specs[_check_kind(kind)]
        base, colon, variant = name.partition(":")
        spec = specs.get(name) or (specs.get(base) if colon else None)
        if spec is None:
            known = ", ".join(self.display_names(kind)) or "none installed"
            raise MscmtError(f"unknown {kind} component {name!r}; known: {known}")
        cls = spec.load()
        family = getattr(cls, "family", "")
        if colon and not family:
            raise MscmtError(f"{kind} component {base!r} takes no ':<variant>' suffix (got {name!r})")
        if family == REQUIRED and not variant:
            raise MscmtError(f"{kind} component {base!r} needs a variant, e.g. {base}:<model>")
        return cls, variant or None

    def display_names(self, kind: str) -> list[str]:
        """Names as a user types them (families as ``timm:<model>``)."""
        out = []
        for name, spec in sorted(self._specs[_check_kind(kind)].items()):
            out.append(_shown(name, spec))
        return out

    def describe(self) -> list[ComponentInfo]:
        """What ``mscmt plugins`` shows of every component, kind by kind."""
        return [ComponentInfo.of(kind, name, spec.load()) for kind in KINDS for name, spec in sorted(self._specs[kind].items())]

    def describe_one(self, qualified: str) -> ComponentInfo:
        """One component by ``KIND.NAME`` (``fusion.gated``)."""
        kind, dot, name = qualified.partition(".")
        if not dot or not name:
            raise MscmtError(f"expected KIND.NAME (e.g. fusion.gated), got {qualified!r}; kinds: {', '.join(KINDS)}")
        cls, _ = self.resolve(kind, name)
        return ComponentInfo.of(kind, name.partition(":")[0], cls)


@dataclass(frozen=True)
class ParamInfo:
    """One declared component parameter."""

    name: str
    type: str
    default: Any
    description: str


@dataclass(frozen=True)
class ComponentInfo:
    """A registered component as ``mscmt plugins`` shows it."""

    kind: str
    shown: str
    description: str
    params: tuple[ParamInfo, ...]
    explains: tuple[str, ...]

    @classmethod
    def of(cls, kind: str, name: str, component: type) -> ComponentInfo:
        doc = getattr(component, "description", "") or " ".join((component.__doc__ or "").strip().splitlines()[0:1])
        model = params_model(component)
        params = tuple(
            ParamInfo(k, _type_name(f.annotation), f.get_default(call_default_factory=True), f.description or "")
            for k, f in (model.model_fields.items() if model is not None else ())
        )
        return cls(kind, display_name(name, component), doc, params, tuple(sorted(getattr(component, "explains", ()))))


def _type_name(annotation: Any) -> str:
    """``int``, ``int | None``, or a Literal's choices (``'bio' | 'none'``)."""
    if typing.get_origin(annotation) is typing.Literal:
        return " | ".join(repr(a) for a in typing.get_args(annotation))
    return getattr(annotation, "__name__", None) or str(annotation).replace("typing.", "")


def params_model(component: type) -> type[BaseModel] | None:
    """The component's declared parameters (its ``Params`` pydantic model), or None."""
    model = getattr(component, "Params", None)
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


def component_params(kind: str, name: str, component: type, values: Mapping[str, Any]) -> dict[str, Any]:
    """Validate ``values`` against the component's parameters; every parameter with its value (defaults filled in)."""
    model = params_model(component)
    known = list(model.model_fields) if model is not None else []
    unknown = sorted(set(values) - set(known))
    if unknown:
        has = f"its parameters: {', '.join(known)}" if known else "it takes no parameters"
        raise MscmtError(
            f"{kind} component {name!r} has no parameter {unknown[0]!r}; {has} (mscmt plugins {kind}.{name.partition(':')[0]})"
        )
    if model is None:
        return {}
    try:
        return model.model_validate(dict(values)).model_dump(mode="json")
    except ValidationError as err:
        first = err.errors()[0]
        key = ".".join(map(str, first["loc"]))
        raise MscmtError(f"{kind}.{key} (component {name!r}): {first['msg']} (got {first.get('input')!r})") from None


def _check_kind(kind: str) -> str:
    if kind not in KINDS:
        raise MscmtError(f"unknown component kind {kind!r}; kinds: {', '.join(KINDS)}")
    return kind


def display_name(name: str, cls: type) -> str:
    """``name``, ``name:<model>`` (family) or ``name[:<model>]`` (optional family)."""
    family, hint = getattr(cls, "family", False), getattr(cls, "variant_hint", "<model>")
    if family == OPTIONAL:
        return f"{name}[:{hint}]"
    return f"{name}:{hint}" if family else name


def _shown(name: str, spec: PluginSpec) -> str:
    try:
        return display_name(name, spec.load())
    except MscmtError:
        return name
