"""The ``mscmt`` application: the command groups assembled, and the entry point.

Usage errors are click's (usage line, one-line message, exit 2); a user error
raised by the library (:class:`~mscmt_cli.errors.MscmtError`) is one line on
stderr and exit 2; Ctrl-C is exit 130. Anything else is a bug: one line that
says so (``--debug`` shows the traceback), exit 1.
"""

from __future__ import annotations

import functools
import sys
import traceback
from collections.abc import Callable
from typing import Any

import typer

from mscmt_cli.cli import cache, captioning, exporting, plugins, studies, tagging, training
from mscmt_cli.console import quiet_libraries
from mscmt_cli.errors import MscmtError

COMMANDS: tuple[Callable[..., Any], ...] = (
    training.train,
    training.evaluate,
    plugins.plugins,
    tagging.tag,
    tagging.serve,
    tagging.explain,
    exporting.export,
    captioning.caption,
    studies.grid,
    studies.ablate,
    studies.crossdata,
)
GROUPS: dict[str, tuple[str, tuple[Callable[..., Any], ...]]] = {"cache": (cache.HELP, (cache.build, cache.info, cache.clear))}


class Interrupted(Exception):
    """Ctrl-C inside a command (click would turn a bare KeyboardInterrupt into 'Aborted!', exit 1)."""


def _interruptible(command: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except KeyboardInterrupt:
            raise Interrupted() from None

    return run


def _root(ctx: typer.Context, debug: bool = typer.Option(False, "--debug", help="show tracebacks")) -> None:
    """Multimodal NER for tweets: compose, train, evaluate and apply MSCMT variants."""
    _help_without_command(ctx)


def _help_without_command(ctx: typer.Context) -> None:
    """A group called without a command shows its help and succeeds."""
    if ctx.invoked_subcommand is None:
        typer.echo(ctx.get_help())
        raise typer.Exit(0)


def _typer(help_text: str | None) -> typer.Typer:
    # plain help (click's): no rich markup, which ate "[ray]" and "[model_paths]" from help texts and showed "<bool>" for flags
    return typer.Typer(add_completion=False, pretty_exceptions_enable=False, help=help_text, rich_markup_mode=None)


def build_app() -> typer.Typer:
    """The ``mscmt`` typer application: the commands, then each command group."""
    app = _typer(_root.__doc__)
    app.callback(invoke_without_command=True)(_root)
    for command in COMMANDS:
        app.command(command.__name__)(_interruptible(command))
    for name, (help_text, commands) in GROUPS.items():
        group = _typer(help_text)
        group.callback(invoke_without_command=True)(_help_without_command)
        for command in commands:
            group.command(command.__name__)(_interruptible(command))
        app.add_typer(group, name=name)
    return app


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app; user errors become one line and exit code 2."""
    args = list(sys.argv[1:] if argv is None else argv)
    quiet_libraries()
    try:
        build_app()(args=args, prog_name="mscmt", standalone_mode=True)
    except MscmtError as err:
        _print_error(str(err), "--debug" in args)
        sys.exit(2)
    except Interrupted:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    except Exception as err:  # a bug: say so in one line, keep the traceback for --debug
        first = str(err).splitlines()[0] if str(err) else ""
        _print_error(
            f"internal error {type(err).__name__}: {first} (this is a bug in mscmt; run with --debug for the traceback)", "--debug" in args
        )
        sys.exit(1)


def _print_error(message: str, debug: bool) -> None:
    if debug:
        traceback.print_exc()
    print(f"error: {message}", file=sys.stderr)
