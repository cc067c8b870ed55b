"""The ``mscmt`` command line. Commands only parse options and call the library."""

from __future__ import annotations

import sys
import traceback
from pathlib import Path
from typing import Any, Optional

import typer

from mscmt_cli.errors import MscmtError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Multimodal NER for tweets: compose, train, evaluate and apply MSCMT variants.")

# Options shared by several commands (typer needs them spelled per command).
ConfigOpt = typer.Option(None, "--config", help="TOML settings file (keys as the long options, plus a [model_paths] table)")
ModelPathOpt = typer.Option(None, "--model-path", help="NAME=PATH: load component NAME from a local directory (repeatable)")
DataDirOpt = typer.Option(None, "--data-dir", help="data directory laid out like ../shared/data")
CorpusOpt = typer.Option(None, "--corpus", help="twitter2015, twitter2017, merged, or any corpus directory name")
ImagesOpt = typer.Option(None, "--images-dir", help="directory of <id>.jpg images")
CaptionsOpt = typer.Option(None, "--captions", help="captions file (<id>.jpg :<caption> lines or JSONL) for --image caption")
MissingOpt = typer.Option(None, "--missing-images", help="blank (counted, reported) or error")
DeviceOpt = typer.Option(None, "--device", help="auto, cpu or cuda")
NoCacheOpt = typer.Option(None, "--no-cache/--cache", help="bypass the image feature cache")


@app.callback()
def _root(ctx: typer.Context, debug: bool = typer.Option(False, "--debug", help="show tracebacks")) -> None:
    ctx.obj = {"debug": debug}


def settings_from(config: Optional[Path], model_path: Optional[list[str]], **options: Any):
    """Build the merged settings from the file, environment and given options."""
    from mscmt_cli.settings import load_settings, parse_model_paths

    options["model_paths"] = parse_model_paths(model_path)
    return load_settings(config, {k: v for k, v in options.items() if v is not None})


@app.command()
def train(
    text: Optional[str] = typer.Option(None, "--text", help="text encoder (see mscmt plugins)"),
    image: Optional[str] = typer.Option(None, "--image", help="image encoder"),
    fusion: Optional[str] = typer.Option(None, "--fusion", help="fusion: gated, additive, none"),
    decoder: Optional[str] = typer.Option(None, "--decoder", help="decoder: crf, softmax"),
    corpus: Optional[str] = CorpusOpt, data_dir: Optional[Path] = DataDirOpt, images_dir: Optional[Path] = ImagesOpt,
    captions: Optional[Path] = CaptionsOpt, missing_images: Optional[str] = MissingOpt,
    out: Optional[Path] = typer.Option(None, "--out", help="run directory to create"),
    resume: Optional[Path] = typer.Option(None, "--resume", help="continue this run directory from its last epoch"),
    lr: Optional[float] = typer.Option(None, "--lr", help="encoder and W_p learning rate [3e-5]"),
    head_lr: Optional[float] = typer.Option(None, "--head-lr", help="gate, classifier, CRF learning rate [3e-4]"),
    epochs: Optional[int] = typer.Option(None, "--epochs", help="maximum epochs [20]"),
    patience: Optional[int] = typer.Option(None, "--patience", help="early-stopping patience [3]"),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="batch size [16]"),
    seed: Optional[int] = typer.Option(None, "--seed", help="random seed [13]"),
    dropout: Optional[float] = typer.Option(None, "--dropout", help="dropout on the text output [0.1]"),
    weight_decay: Optional[float] = typer.Option(None, "--weight-decay", help="AdamW weight decay [0.01]"),
    balance: Optional[bool] = typer.Option(None, "--balance/--no-balance", help="class-balanced sampling [on]"),
    device: Optional[str] = DeviceOpt, no_cache: Optional[bool] = NoCacheOpt,
    model_path: Optional[list[str]] = ModelPathOpt, config: Optional[Path] = ConfigOpt,
) -> None:
    """Train a model; the best epoch (validation weighted F1) is saved in OUT/model."""
    from mscmt_cli.engine.trainer import train as run_training
    from mscmt_cli.engine.rundir import RUN_FILE
    from mscmt_cli.settings import load_settings

    opts = dict(text=text, image=image, fusion=fusion, decoder=decoder, corpus=corpus, data_dir=data_dir, images_dir=images_dir,
                captions=captions, missing_images=missing_images, out=out, lr=lr, head_lr=head_lr, epochs=epochs, patience=patience,
                batch_size=batch_size, seed=seed, dropout=dropout, weight_decay=weight_decay, balance=balance, device=device, no_cache=no_cache)
    if resume is not None:
        config, opts = _resume_settings(resume, opts)
    settings = settings_from(config, model_path, **opts)
    run_training(settings, resume=resume is not None)


def _resume_settings(run_dir: Path, opts: dict[str, Any]) -> tuple[None, dict[str, Any]]:
    """The settings a run was started with (from run.json); --epochs/--patience may be raised."""
    import json

    from mscmt_cli.engine.rundir import RUN_FILE

    path = Path(run_dir) / RUN_FILE
    if not path.is_file():
        raise MscmtError(f"--resume {run_dir}: not a run directory (no {RUN_FILE})")
    saved = json.loads(path.read_text(encoding="utf-8"))["settings"]
    allowed = {k: v for k, v in opts.items() if k in ("epochs", "patience", "device", "no_cache") and v is not None}
    return None, {**saved, **allowed, "out": str(run_dir)}


@app.command()
def evaluate(
    run_dir: Path = typer.Argument(..., help="run directory (or model directory) to evaluate"),
    corpus: Optional[str] = CorpusOpt, data_dir: Optional[Path] = DataDirOpt,
    split: str = typer.Option("test", "--split", help="train, valid or test"),
    json_out: Optional[Path] = typer.Option(None, "--json", help="write the scores as JSON"),
    images_dir: Optional[Path] = ImagesOpt, captions: Optional[Path] = CaptionsOpt, missing_images: Optional[str] = MissingOpt,
    device: Optional[str] = DeviceOpt, no_cache: Optional[bool] = NoCacheOpt,
    model_path: Optional[list[str]] = ModelPathOpt, config: Optional[Path] = ConfigOpt,
) -> None:
    """Score a trained model on a split (seqeval, conlleval-compatible spans)."""
    from mscmt_cli.console import make_console
    from mscmt_cli.engine.evaluation_job import evaluate_run, save_scores
    from mscmt_cli.registry import Registry

    settings = settings_from(config, model_path, corpus=corpus, data_dir=data_dir, images_dir=images_dir, captions=captions,
                             missing_images=missing_images, device=device, no_cache=no_cache)
    scores = evaluate_run(run_dir, settings, split, Registry.from_entry_points(), make_console())
    if json_out is not None:
        save_scores(json_out, scores)


@app.command()
def plugins() -> None:
    """List every registered component with a one-line description."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from mscmt_cli.registry import KINDS, Registry

    table = Table(title="mscmt components (entry-point group mscmt.plugins)")
    for col in ("kind", "name", "description"):
        table.add_column(col)
    for kind, name, desc in Registry.from_entry_points().describe():
        table.add_row(KINDS[kind], escape(name), escape(desc))
    Console(width=160).print(table)


def _quiet_libraries() -> None:
    """Our own progress bars replace transformers' per-load bars and info logs."""
    import os

    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
    except ImportError:
        pass


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app, turning user errors into one line and exit code 2."""
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    _quiet_libraries()
    try:
        app(args=argv, standalone_mode=False)
    except MscmtError as err:
        if debug:
            traceback.print_exc()
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    except SystemExit:
        raise
    except Exception as err:  # click usage errors first
        import click

        if isinstance(err, click.exceptions.ClickException):
            err.show()
            sys.exit(err.exit_code)
        if isinstance(err, click.exceptions.Abort):
            sys.exit(130)
        if debug:
            traceback.print_exc()
        print(f"error: unexpected {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''} (run with --debug for the traceback)", file=sys.stderr)
        sys.exit(1)
