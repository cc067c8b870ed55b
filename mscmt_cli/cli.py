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
ConfigOpt = typer.Option(None, "--config", help="TOML settings file (keys as the long options, plus a model_paths table)")
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

    opts = dict(text=text, image=image, fusion=fusion, decoder=decoder, corpus=corpus, data_dir=data_dir, images_dir=images_dir,
                captions=captions, missing_images=missing_images, out=out, lr=lr, head_lr=head_lr, epochs=epochs, patience=patience,
                batch_size=batch_size, seed=seed, dropout=dropout, weight_decay=weight_decay, balance=balance, device=device, no_cache=no_cache)
    if resume is not None:
        config, opts = _resume_settings(resume, opts)
    settings = settings_from(config, model_path, **opts)
    run_training(settings, resume=resume is not None)


def _resume_settings(run_dir: Path, opts: dict[str, Any]) -> tuple[None, dict[str, Any]]:
    """The settings a run was started with (from run.json); --epochs/--patience may be raised."""
    from mscmt_cli.engine.rundir import RUN_FILE, read_run_settings

    saved = read_run_settings(run_dir)
    if saved is None:
        raise MscmtError(f"--resume {run_dir}: not a run directory (no {RUN_FILE})")
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


ModelOpt = typer.Option(None, "--model", help="trained run directory (or its model/); default: 'model' in the settings / MSCMT_MODEL")


@app.command()
def tag(
    input: str = typer.Argument(..., help="JSON Lines file ({\"text\" | \"tokens\", \"image\"?, ...} per line), an IMGID CoNLL file, or - for stdin"),
    model: Optional[Path] = ModelOpt,
    images: Optional[Path] = typer.Option(None, "--images", "--images-dir", help="directory the lines' 'image' file names are in"),
    out: Optional[Path] = typer.Option(None, "--out", help="output JSON Lines file (default: stdout)"),
    strict: bool = typer.Option(False, "--strict", help="stop at the first bad line (exit code 2) instead of reporting and skipping it"),
    explain: Optional[Path] = typer.Option(None, "--explain", help="also write one gate page per tagged line into this directory"),
    captions: Optional[Path] = CaptionsOpt, missing_images: Optional[str] = MissingOpt, batch_size: Optional[int] = typer.Option(None, "--batch-size", help="tweets per forward pass [64]"),
    device: Optional[str] = DeviceOpt, no_cache: Optional[bool] = NoCacheOpt,
    model_path: Optional[list[str]] = ModelPathOpt, config: Optional[Path] = ConfigOpt,
) -> None:
    """Tag tweets: each output line is the input object plus tokens, tags and entities.

    Raw text is split by the tweet-aware tokenizer (rules: mscmt_cli/tagging/tweet_tokenize.py).
    Entity start/end are character offsets into the line's text (into the tokens joined by
    single spaces when only tokens are given); score is the mean probability of the entity's
    predicted tags. Bad lines are reported on stderr with their line numbers and skipped.
    """
    from mscmt_cli.console import make_console
    from mscmt_cli.tagging.jobs import run_tag

    settings = settings_from(config, model_path, model=model, images_dir=images, captions=captions, missing_images=missing_images,
                             eval_batch_size=batch_size, device=device, no_cache=no_cache)
    run_tag(settings, input, out, strict=strict, explain_dir=explain, console=make_console())


@app.command()
def serve(
    model: Optional[Path] = ModelOpt,
    host: str = typer.Option("127.0.0.1", "--host", help="address to listen on (loopback by default)"),
    port: int = typer.Option(8000, "--port", min=0, max=65535, help="TCP port"),
    max_body: int = typer.Option(10 * 2**20, "--max-body-bytes", min=1024, help="largest request body"),
    max_batch: int = typer.Option(64, "--max-batch", min=1, help="most tweets in one /tag/batch request"),
    max_text: int = typer.Option(10_000, "--max-text-chars", min=1, help="longest tweet text"),
    device: Optional[str] = DeviceOpt, no_cache: Optional[bool] = NoCacheOpt,
    model_path: Optional[list[str]] = ModelPathOpt, config: Optional[Path] = ConfigOpt,
) -> None:
    """Serve the model over HTTP: POST /tag, POST /tag/batch, GET /health, GET /info."""
    from mscmt_cli.console import make_console
    from mscmt_cli.tagging.jobs import run_serve
    from mscmt_cli.tagging.server import Limits

    settings = settings_from(config, model_path, model=model, device=device, no_cache=no_cache)
    limits = Limits(max_body_bytes=max_body, max_image_bytes=min(max_body, Limits.max_image_bytes), max_batch=max_batch, max_text_chars=max_text)
    run_serve(settings, host, port, limits, make_console())


@app.command()
def explain(
    text: str = typer.Option(..., "--text", help="the tweet"),
    out: Path = typer.Option(..., "--out", help="HTML page to write"),
    image: Optional[Path] = typer.Option(None, "--image", help="the tweet's image file (for caption models: its id in --captions)"),
    captions: Optional[Path] = CaptionsOpt,
    model: Optional[Path] = ModelOpt, device: Optional[str] = DeviceOpt, no_cache: Optional[bool] = NoCacheOpt,
    model_path: Optional[list[str]] = ModelPathOpt, config: Optional[Path] = ConfigOpt,
) -> None:
    """Write a self-contained HTML page: entities by type, the image, and the visual gate per token."""
    from mscmt_cli.tagging.jobs import run_explain

    settings = settings_from(config, model_path, model=model, captions=captions, device=device, no_cache=no_cache)
    print(run_explain(settings, text, image, out), file=sys.stderr)


# --- the paper's studies: every `mscmt train` option passes through -----------------------------------------------
StudyOutOpt = typer.Option(None, "--out", help="study directory: one run per row, results.json/csv, report.md, chart.png; "
                                               "run again with the same --out to finish an interrupted study")


def _with_train_options(*dropped: str):
    """Give a study command every option of ``mscmt train`` (except ``dropped``), passed in as keyword arguments."""
    import functools
    import inspect

    def wrap(command):
        own = [p for p in inspect.signature(command, eval_str=True).parameters.values() if p.kind is not p.VAR_KEYWORD]
        taken = {p.name for p in own} | set(dropped) | {"resume"}
        extra = [p for p in inspect.signature(train, eval_str=True).parameters.values() if p.name not in taken]

        @functools.wraps(command)
        def run(**options: Any) -> None:
            command(**options)

        run.__signature__ = inspect.Signature(own + extra)
        run.__annotations__ = {p.name: p.annotation for p in own + extra}
        return run

    return wrap


def _study_settings(out: Optional[Path], options: dict[str, Any]):
    """The study's base settings from the passed-through train options."""
    config, model_path = options.pop("config", None), options.pop("model_path", None)
    return settings_from(config, model_path, out=out, **options)


@app.command()
@_with_train_options("lr", "batch_size")
def grid(
    lrs: str = typer.Option("1e-5,3e-5,5e-5", "--lrs", help="learning rates, comma separated"),
    batch_sizes: str = typer.Option("8,16,32", "--batch-sizes", help="batch sizes, comma separated"),
    out: Optional[Path] = StudyOutOpt, **train_options: Any,
) -> None:
    """Train one model per (learning rate x batch size) cell; the best on validation weighted F1 is reported (Table III)."""
    from mscmt_cli.studies.grid import run_grid

    run_grid(_study_settings(out, train_options), lrs, batch_sizes)


@app.command()
@_with_train_options("text", "image", "fusion", "decoder")
def ablate(
    variant: Optional[list[str]] = typer.Option(None, "--variant", help="NAME=text,image,fusion,decoder (repeatable); replaces "
                                                "the paper's V1=bert-base,clip-vit-l14,additive,crf V2=bert-base,clip-vit-l14,gated,crf "
                                                "full=bertweet,clip-vit-l14,gated,crf"),
    out: Optional[Path] = StudyOutOpt, **train_options: Any,
) -> None:
    """Train model variants on the same data and seed; per-type scores and differences to the full model (Table V)."""
    from mscmt_cli.studies.ablate import run_ablate

    run_ablate(_study_settings(out, train_options), variant)


@app.command()
@_with_train_options("corpus")
def crossdata(
    first: str = typer.Argument(..., help="corpus A (2015, twitter2017, or any corpus directory name)"),
    second: str = typer.Argument(..., help="corpus B"),
    out: Optional[Path] = StudyOutOpt, **train_options: Any,
) -> None:
    """Train on A and test on B, the reverse, and train and test on A + B merged (Table VI)."""
    from mscmt_cli.studies.crossdata import run_crossdata

    run_crossdata(_study_settings(out, train_options), first, second)


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


def _add_subcommand_groups() -> None:
    """Command groups defined in their own modules (they import this one's shared options)."""
    from mscmt_cli.cache_cli import cache_app

    app.add_typer(cache_app, name="cache")


_add_subcommand_groups()
