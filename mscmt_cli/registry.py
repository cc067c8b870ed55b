"""Plugin registries, filled from the entry-point group ``mscmt.plugins``.

An entry point is named ``<kind>.<name>`` (kind is ``text``, ``image``,
``fusion`` or ``decoder``) and points at a component class with a
``description`` class attribute (one line). The built-in components in
``plugins/`` register exactly this way, so a third-party package adds a
component by declaring, in its own ``pyproject.toml``::

    [project.entry-points."mscmt.plugins"]
    "fusion.bilinear" = "my_package.fusion:BilinearFusion"

A class may also stand for a *family* of names: the entry point
``image.timm`` answers to ``timm:<model>`` (the part after the colon is passed
to the component as its ``variant``). With ``family = "optional"`` the variant
may be left out: ``caption`` and ``caption:bert-base`` both resolve (shown as
``caption[:<text encoder>]``, the placeholder read from ``variant_hint``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any

from mscmt_cli.errors import MscmtError

GROUP = "mscmt.plugins"
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

    def load(self) -> type:
        """Import and return the component class."""
        try:
            return self.loader() if self.loader is not None else _import(self.target)
        except Exception as err:  # an import error inside a plugin is the plugin's bug
            raise MscmtError(f"plugin {self.kind}.{self.name} ({self.target}) failed to import: {err}") from err


def _import(target: str) -> type:
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
    def from_entry_points(cls) -> "Registry":
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

    def resolve(self, kind: str, name: str) -> tuple[type, str | None]:
        """The class for ``name`` and its variant (``timm:resnet152`` -> ``resnet152``)."""
        specs = self._specs[_check_kind(kind)]
        base, colon, variant = name.partition(":")
        spec = specs.get(name) or (specs.get(base) if colon else None)
        if spec is None:
            known = ", ".join(self.display_names(kind)) or "none installed"
            raise MscmtError(f"unknown {kind} component {name!r}; known: {known}")
        cls = spec.load()
        if colon and not getattr(cls, "family", False):
            raise MscmtError(f"{kind} component {base!r} takes no ':<variant>' suffix (got {name!r})")
        if getattr(cls, "family", False) and getattr(cls, "family") != OPTIONAL and not variant:
            raise MscmtError(f"{kind} component {base!r} needs a variant, e.g. {base}:<model>")
        return cls, variant or None

    def display_names(self, kind: str) -> list[str]:
        """Names as a user types them (families as ``timm:<model>``)."""
        out = []
        for name, spec in sorted(self._specs[_check_kind(kind)].items()):
            out.append(_shown(name, spec))
        return out

    def describe(self) -> list[tuple[str, str, str]]:
        """(kind, display name, one-line description) for every component."""
        rows = []
        for kind in KINDS:
            for name, spec in sorted(self._specs[kind].items()):
                cls = spec.load()
                shown = display_name(name, cls)
                doc = getattr(cls, "description", "") or (cls.__doc__ or "").strip().splitlines()[0:1]
                rows.append((kind, shown, doc if isinstance(doc, str) else " ".join(doc)))
        return rows


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
