"""``mscmt plugins``: the registered components, and one component's parameters in full."""

from __future__ import annotations

from typing import Optional

import typer


def plugins(component: Optional[str] = typer.Argument(None, help="KIND.NAME (e.g. fusion.gated): show that component in full")) -> None:
    """List every registered component with a one-line description and its parameters."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from mscmt_cli.registry import KINDS, Registry

    registry = Registry.from_entry_points()
    if component is None:
        table = Table(title="mscmt components (entry-point group mscmt.plugins); mscmt plugins KIND.NAME shows one in full")
        for col in ("kind", "name", "description", "parameters"):
            table.add_column(col)
        for row in registry.describe():
            params = ", ".join(f"{p.name}={p.default!r}" for p in row.params)
            table.add_row(KINDS[row.kind], escape(row.shown), escape(row.description), escape(params))
    else:
        row = registry.describe_one(component)
        table = Table(title=escape(f"{row.kind}.{row.shown}: {row.description}"))
        for col in ("parameter", "type", "default", "description"):
            table.add_column(col)
        for p in row.params:
            table.add_row(escape(p.name), escape(p.type), escape(repr(p.default)), escape(p.description))
        if not row.params:
            table.add_row("(none)", "", "", "this component takes no parameters")
        if row.explains:
            table.caption = escape(f"explains: {', '.join(row.explains)}")
    Console(width=160).print(table)
