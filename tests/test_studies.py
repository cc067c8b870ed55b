"""``mscmt grid``, ``mscmt ablate`` and ``mscmt crossdata`` end to end on tiny random encoders."""

from __future__ import annotations

import csv
import json
import re
import shutil
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from mscmt_cli.data.conll import read_conll
from mscmt_cli.data.corpus import load_split
from mscmt_cli.engine.metrics import score
from mscmt_cli.errors import MscmtError
from mscmt_cli.labels import ENTITY_TYPES, map_tag
from mscmt_cli.studies.ablate import DEFAULT_VARIANTS, parse_variant
from mscmt_cli.studies.grid import parse_list
from mscmt_cli.studies.tables import Column, StudyTable
from tests.cli_support import one_line_error as _one_line_error
from tests.cli_support import snapshot as _snapshot

FILES = ("results.json", "results.csv", "report.md", "chart.png")
FAST = ["--epochs", "1", "--head-lr", "1e-2"]


def _check_outputs(out: Path, row_names: list[str], numeric: slice) -> dict:
    """Every file is there, every row has a run with test scores, every numeric cell is a number."""
    for name in FILES:
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    results = json.loads((out / "results.json").read_text())
    assert [r["name"] for r in results["rows"]] == row_names
    for row in results["rows"]:
        assert (out / row["run_dir"] / "test_scores.json").is_file()
        assert (out / row["run_dir"] / "model" / "config.json").is_file()
        assert set(row["test"]["types"]) >= set(ENTITY_TYPES)
    table = results["table"]
    with open(out / "results.csv", newline="", encoding="utf-8") as fh:
        lines = list(csv.reader(fh))
    assert lines[0] == table["columns"]
    assert len(lines) - 1 == len(table["rows"])
    for csv_row, json_row in zip(lines[1:], table["rows"]):
        assert len(csv_row) == len(table["columns"])
        for cell, value in zip(csv_row[numeric], json_row[numeric]):
            assert isinstance(value, (int, float)) and abs(float(cell) - value) < 1e-6
    report = (out / "report.md").read_text()
    assert table["title"] in report and "chart.png" in report
    for label in (r["label"] for r in results["rows"]):
        assert label in report
    _check_chart(out / "chart.png")
    return results


def _check_chart(path: Path) -> None:
    with Image.open(path) as img:
        assert img.format == "PNG" and img.width >= 800 and img.height >= 400
        colours = img.convert("RGB").getcolors(maxcolors=1 << 20)
    assert colours is not None and len(colours) > 20, "the chart looks blank"


def _pct(x: float) -> float:
    return round(100 * x, 2)


def test_grid_end_to_end_then_rerun_and_resume(tiny, corpus, mscmt, tmp_path):
    out = tmp_path / "grid"
    args = ["grid", "--lrs", "3e-5,5e-5", "--batch-sizes", "8,16", *corpus.args(), *FAST, "--out", out, *tiny.model_path_args()]
    first = mscmt(args)
    assert first.code == 0, first.err
    names = ["lr3e-05-bs8", "lr3e-05-bs16", "lr5e-05-bs8", "lr5e-05-bs16"]
    results = _check_outputs(out, names, numeric=slice(1, 5))
    rows = results["table"]["rows"]
    # the oracle for the best mark: the highest validation weighted F1 read from each run's own metrics
    valid = []
    for name in names:
        best_epoch = json.loads((out / name / "test_scores.json").read_text())["best_epoch"]
        metrics = [json.loads(line) for line in (out / name / "metrics.jsonl").read_text().splitlines()]
        valid.append(next(m["valid_weighted_f1"] for m in metrics if m["epoch"] == best_epoch))
    best = max(range(len(names)), key=lambda i: (valid[i], -i))
    assert [r[-1] for r in rows] == ["best" if i == best else "" for i in range(len(names))]
    assert results["best"] == names[best]
    for name, row, v in zip(names, rows, valid):
        test = json.loads((out / name / "test_scores.json").read_text())["weighted"]
        assert row[1:5] == [_pct(v), _pct(test["precision"]), _pct(test["recall"]), _pct(test["f1"])]
    assert "Table III" in first.out and "validation" in first.out and "test set" in first.out
    assert all(json.loads((out / n / "run.json").read_text())["settings"]["epochs"] == 1 for n in names)

    # the same command again trains nothing and says so
    weights = {n: (out / n / "model" / "model.safetensors").stat().st_mtime_ns for n in names}
    again = mscmt(args)
    assert again.code == 0, again.err
    assert again.err.count("already finished") >= 4 and "0 row(s) trained now" in again.err
    assert weights == {n: (out / n / "model" / "model.safetensors").stat().st_mtime_ns for n in names}
    assert json.loads((out / "results.json").read_text())["table"] == results["table"]

    # an interrupted row (checkpoint, no test scores) resumes; a row never started trains; the others are skipped
    (out / names[1] / "test_scores.json").unlink()
    shutil.rmtree(out / names[3])
    third = mscmt(args)
    assert third.code == 0, third.err
    assert f"{names[1]}: resuming" in third.err and f"{names[3]}: training into" in third.err
    flags = [r["trained_now"] for r in json.loads((out / "results.json").read_text())["rows"]]
    assert flags == [False, True, False, True]
    assert json.loads((out / "results.json").read_text())["table"]["rows"][1] == rows[1], "a resumed row must score as before"

    # other settings with the same --out are refused instead of mixing results
    changed = mscmt([a if a != "1" else "2" for a in args])
    assert changed.code == 2 and "epochs" in changed.err and "--out" in changed.err


def test_ablate_default_variants(tiny, corpus, mscmt, tmp_path):
    out = tmp_path / "ablate"
    result = mscmt(["ablate", *corpus.args(), *FAST, "--out", out, *tiny.model_path_args()])
    assert result.code == 0, result.err
    results = _check_outputs(out, ["V1", "V2", "full"], numeric=slice(2, None))
    components = [tuple(r["components"].values()) for r in results["rows"]]
    assert components == [
        ("bert-base", "clip-vit-l14", "additive", "crf"),
        ("bert-base", "clip-vit-l14", "gated", "crf"),
        ("bertweet", "clip-vit-l14", "gated", "crf"),
    ]
    assert len({json.loads((out / r["run_dir"] / "run.json").read_text())["seed"] for r in results["rows"]}) == 1
    table = results["table"]
    assert table["columns"][2:14] == [f"{t} {m}" for t in sorted(ENTITY_TYPES) for m in ("P", "R", "F1")]  # the model's types
    full_f1 = _pct(results["rows"][2]["test"]["weighted"]["f1"])
    for row, record in zip(table["rows"], results["rows"]):
        scores = record["test"]
        assert row[2:14] == [_pct(scores["types"][t][m]) for t in sorted(ENTITY_TYPES) for m in ("precision", "recall", "f1")]
        assert table["columns"][14:17] == ["Weighted P", "Weighted R", "Weighted F1"]
        assert row[14:17] == [_pct(scores["weighted"][m]) for m in ("precision", "recall", "f1")]
        assert row[17] == pytest.approx(row[16] - full_f1, abs=0.011)
    assert table["rows"][2][17] == 0 and results["reference"] == "full"
    assert "Table V" in result.out


def test_ablate_variant_option_replaces_the_list(tiny, corpus, mscmt, tmp_path):
    out = tmp_path / "ablate2"
    result = mscmt(
        [
            "ablate",
            "--variant",
            "text-only=bertweet,none,none,softmax",
            "--variant",
            "mine=bertweet,clip-vit-l14,gated,crf",
            *corpus.args(),
            *FAST,
            "--out",
            out,
            *tiny.model_path_args(),
        ]
    )
    assert result.code == 0, result.err
    results = _check_outputs(out, ["text-only", "mine"], numeric=slice(2, None))
    assert results["reference"] == "mine", "the first row with the full model's components is the reference"
    assert results["table"]["rows"][1][-1] == 0


def _two_corpora(corpus, root: Path) -> Path:
    """``tinyA`` (the fixture corpus) and ``tinyB`` (its splits rotated, OTHER spelt MISC as in TWITTER-2017)."""
    data = root / "data"
    shutil.copytree(corpus.data_dir / corpus.name, data / "tinyA")
    blocks = {
        s: [b for b in (corpus.data_dir / corpus.name / f"{s}.txt").read_text().strip().split("\n\n") if b.strip()]
        for s in ("train", "valid", "test")
    }
    splits = {"train": blocks["valid"] + blocks["test"], "valid": blocks["train"][:16], "test": blocks["train"][16:40]}
    (data / "tinyB").mkdir()
    for split, bl in splits.items():
        (data / "tinyB" / f"{split}.txt").write_text("\n\n".join(bl).replace("-OTHER", "-MISC") + "\n")
    return data


def _gold_support(*paths: Path) -> dict:
    gold = [[map_tag(tag, {"MISC": "OTHER"}) for tag in t.tags] for path in paths for t in read_conll(path)]
    return score(gold, gold)


def test_crossdata_two_corpora(tiny, corpus, mscmt, tmp_path):
    data = _two_corpora(corpus, tmp_path)
    out = tmp_path / "cross"
    result = mscmt(
        ["crossdata", "tinyA", "tinyB", "--data-dir", data, "--images-dir", corpus.images_dir, "--map", "MISC=OTHER", *FAST]
        + ["--out", out, *tiny.model_path_args()]
    )
    assert result.code == 0, result.err
    results = _check_outputs(out, ["tinyA-to-tinyB", "tinyB-to-tinyA", "tinyA+tinyB"], numeric=slice(1, None))
    rows = results["rows"]
    assert [(r["train_corpus"], r["eval_corpus"]) for r in rows] == [("tinyA", "tinyB"), ("tinyB", "tinyA"), ("tinyA+tinyB", "tinyA+tinyB")]
    # each row is scored on the right test split: its supports are that split's gold spans
    assert not (out / "data").exists()  # A+B is read from both directories, never copied
    tests = {c: data / c / "test.txt" for c in ("tinyA", "tinyB")}
    assert len(load_split(data, "tinyA+tinyB", "test").tweets) == len(read_conll(tests["tinyA"])) + len(read_conll(tests["tinyB"]))
    for row, test_files in zip(rows, ([tests["tinyB"]], [tests["tinyA"]], [tests["tinyA"], tests["tinyB"]])):
        gold = _gold_support(*test_files)
        assert {t: row["test"]["types"][t]["support"] for t in ENTITY_TYPES} == {t: gold["types"][t]["support"] for t in ENTITY_TYPES}
    assert (out / "tinyA-to-tinyB" / "eval_tinyB_test.json").is_file()
    table = results["table"]
    assert [r[0] for r in table["rows"]] == [*sorted(ENTITY_TYPES), "micro avg", "weighted avg"]  # a corpus's types, sorted
    assert len(table["columns"]) == 1 + 3 * 3
    assert table["rows"][-1][1:4] == [_pct(rows[0]["test"]["weighted"][m]) for m in ("precision", "recall", "f1")]
    assert "Table VI" in result.out

    again = mscmt(
        ["crossdata", "tinyA", "tinyB", "--data-dir", data, "--images-dir", corpus.images_dir, "--map", "MISC=OTHER", *FAST]
        + ["--out", out, *tiny.model_path_args()]
    )
    assert again.code == 0 and "0 row(s) trained now" in again.err
    assert json.loads((out / "results.json").read_text())["table"] == table


def test_study_errors_are_one_line(corpus, mscmt, tmp_path):
    data = ["--data-dir", corpus.data_dir, "--images-dir", corpus.images_dir]
    for args, expected in (
        (["grid", "--lrs", "3e-5,abc", "--corpus", corpus.name], "--lrs: 'abc' is not a number"),
        (["grid", "--batch-sizes", "8,0", "--corpus", corpus.name], "--batch-sizes: 0 is out of range"),
        (["ablate", "--variant", "V1=bert-base,clip-vit-l14"], "--variant expects NAME=text,image,fusion,decoder"),
        (["ablate", "--variant", "a/b=bertweet,none,none,crf"], "row name 'a/b'"),
        (["crossdata", "2015", "twitter2015"], "two different corpora"),
        (["crossdata", corpus.name, "nope"], "corpus 'nope'"),
    ):
        result = mscmt([*args, *data, "--out", tmp_path / "x"])
        _one_line_error(result, expected, alone=True)


def test_parsers():
    assert parse_list("1e-5, 3e-5,5e-5", "--lrs", float) == [1e-5, 3e-5, 5e-5]
    assert parse_list("8,16,32", "--batch-sizes", int) == [8, 16, 32]
    with pytest.raises(MscmtError, match="twice"):
        parse_list("8,8", "--batch-sizes", int)
    with pytest.raises(MscmtError, match="out of range"):
        parse_list("2.0", "--lrs", float)
    rows = [parse_variant(v) for v in DEFAULT_VARIANTS]
    assert [r.name for r in rows] == ["V1", "V2", "full"]
    assert rows[0].overrides == {"text": "bert-base", "image": "clip-vit-l14", "fusion": "additive", "decoder": "crf"}


def test_table_renderings_agree():
    table = StudyTable("T", [Column("name", ""), Column("F1"), Column("Δ", "+.2f")], [["a|b", 12.5, -1.25], ["c", 0.0, 0.0]], ["note"])
    md = table.to_markdown()
    assert "| a\\|b | 12.50 | -1.25 |" in md and "| c | 0.00 | +0.00 |" in md and "note" in md
    assert list(csv.reader(table.to_csv().splitlines())) == [["name", "F1", "Δ"], ["a|b", "12.5", "-1.25"], ["c", "0.0", "0.0"]]


def _scores(p: float, r: float, f: float) -> dict:
    row = {"precision": p, "recall": r, "f1": f, "support": 7}
    return {"micro": row, "weighted": {**row, "precision": p - 0.1}, "types": dict.fromkeys(ENTITY_TYPES, row)}


def test_evaluate_table_shows_precision_and_recall_beside_f1():
    from rich.console import Console

    from mscmt_cli.engine.report import scores_table

    console = Console(width=200, record=True)
    console.print(scores_table(_scores(0.6123, 0.7234, 0.6632), "twitter2015 test"))
    lines = console.export_text().splitlines()
    header = next(line for line in lines if "precision" in line)
    assert [c.strip() for c in header.strip("│┃ ").replace("┃", "│").split("│")] == ["type", "precision", "recall", "F1", "support"]
    cells = {c[0]: c[1:] for c in ([x.strip() for x in line.strip("│ ").split("│")] for line in lines if line.startswith("│"))}
    for name in (*ENTITY_TYPES, "micro avg"):
        assert cells[name] == ["61.23", "72.34", "66.32", "7"]
    assert cells["weighted avg"] == ["51.23", "72.34", "66.32", "7"]


def test_ablate_table_shows_weighted_precision_and_recall():
    from types import SimpleNamespace

    from mscmt_cli.studies.ablate import ablate_table
    from mscmt_cli.studies.common import Row, RowResult

    comps = SimpleNamespace(text="bertweet", image="none", fusion="none", decoder="crf", corpus="twitter2015")
    results = [
        RowResult(Row(n, {}), comps, Path(n), 1, {}, _scores(p, r, f))
        for n, (p, r, f) in (("full", (0.70, 0.80, 0.75)), ("V1", (0.60, 0.90, 0.72)))
    ]
    table = ablate_table(results, 0)
    assert [c.name for c in table.columns][-4:] == ["Weighted P", "Weighted R", "Weighted F1", "Δ F1"]
    assert table.rows[1][-4:] == [50.0, 90.0, 72.0, -3.0]
    assert table.rows[0][2:5] == [70.0, 80.0, 75.0]  # PER P, R, F1


def test_the_ablate_table_fits_an_80_column_terminal_and_the_report_keeps_every_column():
    from types import SimpleNamespace

    from rich.console import Console

    from mscmt_cli.studies.ablate import ablate_table
    from mscmt_cli.studies.common import Row, RowResult

    comps = SimpleNamespace(
        text="bertweet", image="clip-vit-l14-patches", fusion="cross-attention", decoder="softmax", corpus="twitter2017"
    )
    results = [
        RowResult(Row(n, {}), comps, Path(n), 1, {}, _scores(p, r, f))
        for n, (p, r, f) in (("full", (0.7012, 0.8034, 0.7512)), ("caption-tokens", (0.6, 0.9, 0.7234)))
    ]
    table = ablate_table(results, 0)
    console = Console(width=80, record=True)
    console.print(table.to_rich())
    lines = console.export_text().splitlines()
    assert max(len(line) for line in lines) <= 80
    rows = {cells[0]: cells[1:] for cells in ([c.strip() for c in line.strip("│ ").split("│")] for line in lines if "│" in line)}
    assert rows["caption-tokens"] == ["72.34", "72.34", "72.34", "72.34", "72.34", "-2.78"]  # one line per row: PER..OTHER F1, W. F1, Δ
    assert "the other columns (P, R, ...) are in report.md and results.csv" in " ".join(lines)
    markdown = table.to_markdown()
    assert "Weighted P" in markdown and "bertweet + clip-vit-l14-patches + cross-attention + softmax" in markdown


@pytest.mark.parametrize("stop", [KeyboardInterrupt(), "training"])
def test_interrupted_row_says_how_to_finish_the_study(tmp_path, monkeypatch, stop):
    import io

    from rich.console import Console

    from mscmt_cli.errors import TrainingInterrupted
    from mscmt_cli.settings import Settings
    from mscmt_cli.studies import common

    def interrupted(settings, *args, **kwargs):
        raise stop if isinstance(stop, BaseException) else TrainingInterrupted(2, settings.out)

    monkeypatch.setattr(common, "train_row", interrupted)
    row = common.Row("V1", {})
    with pytest.raises(MscmtError) as err:
        common.run_row(row, Settings(out=tmp_path / "V1"), None, Console(file=io.StringIO()), tmp_path)
    epoch = " after epoch 2" if stop == "training" else ""
    assert str(err.value) == f"row V1: interrupted{epoch}; run the same command with --out {tmp_path} to finish the remaining rows"


def test_mean_std_is_the_one_seed_aggregate_of_the_studies_and_the_benchmarks():
    from mscmt_cli.studies.tables import mean_std

    assert mean_std([0.80, 0.78, 0.79]) == "79.00 ± 1.00"
    assert mean_std([0.5]) == "50.00 (one seed)" and mean_std([0.5], one_seed="") == "50.00"
    assert mean_std([]) == "—"


def _parse_markdown(lines: list[str]) -> list[list[str]]:
    """The cells of each line of a Markdown table, ``\\|`` read back as ``|``."""
    return [[c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line)[1:-1]] for line in lines]


@given(
    st.lists(
        st.lists(
            st.text(st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp", "Zs")).filter(lambda c: c != "\\"), min_size=1),
            min_size=3,
            max_size=3,
        ),
        max_size=4,
    )
)
def test_a_markdown_table_reads_back_as_its_cells(rows):
    from mscmt_cli.studies.tables import markdown_table

    lines = markdown_table(["a", "b|c", "d"], rows, [":---", "---:", "---"])
    assert len(lines) == 2 + len(rows)
    assert _parse_markdown(lines) == [["a", "b|c", "d"], [":---", "---:", "---"], *rows]
    assert markdown_table(["x", "y"], [])[1] == "| --- | --- |", "the default alignment, one per column"


def test_seed_cells_are_mean_std_over_seeds_of_one_score():
    from mscmt_cli.studies.tables import average_cells, seed_scores, type_f1_cells

    runs = {3: _scores(0.70, 0.60, 0.65), 1: _scores(0.80, 0.62, 0.70)}
    runs[3]["types"] = {"PER": {"f1": 0.5}}  # LOC not scored: counts as 0
    seeds = [runs[s] for s in sorted(runs)]
    assert average_cells(seeds, "micro") == ["75.00 ± 7.07", "61.00 ± 1.41", "67.50 ± 3.54"]
    assert average_cells(seeds, "weighted", ["precision"]) == ["65.00 ± 7.07"]
    assert type_f1_cells(seeds, ["PER", "LOC"]) == ["60.00 ± 14.14", "35.00 ± 49.50"]
    assert type_f1_cells(seeds[:1], ["PER"], one_seed="") == ["70.00"]
    assert average_cells([], "micro", ["f1"]) == ["—"]
    assert list(seed_scores(runs)) == [1, 3] and seed_scores(runs, "weighted", "precision") == pytest.approx({1: 0.7, 3: 0.6})


@given(
    st.dictionaries(st.integers(0, 20), st.floats(0, 1), max_size=6),
    st.dictionaries(st.integers(0, 20), st.floats(0, 1), max_size=6),
)
def test_paired_deltas_compare_seeds_both_have_in_points(cell, reference):
    import statistics

    from mscmt_cli.studies.tables import paired_deltas

    deltas = paired_deltas(cell, reference)
    both = sorted(set(cell) & set(reference))
    assert list(deltas.by_seed) == both
    for seed in both:
        assert deltas.by_seed[seed] == pytest.approx(100 * (cell[seed] - reference[seed]), abs=1e-9)
    assert deltas.better == sum(cell[s] > reference[s] for s in both)
    if not both:
        assert deltas.per_seed() == deltas.mean() == "—"
        return
    assert float(deltas.mean()) == pytest.approx(statistics.mean(deltas.by_seed.values()), abs=0.005 + 1e-9)
    shown = [part.split(": ") for part in deltas.per_seed().split(", ")]
    assert [int(s[1:]) for s, _ in shown] == both
    assert [float(d) for _, d in shown] == pytest.approx(list(deltas.by_seed.values()), abs=0.005 + 1e-9)


def test_the_seed_chart_keeps_a_colour_per_cell_across_panels():
    from matplotlib.colors import to_hex

    from mscmt_cli.studies.charts import seed_figure

    panels = {"a": {"x": [70.0, 72.0], "y": [80.0], "z": []}, "b": {"y": [60.0, 61.0, 65.0], "x": [50.0]}, "c": {"x": []}}
    fig = seed_figure(panels, "title", "F1 (%)", "minilm", order=["w", "y", "x"])
    a, b, c = fig.axes
    assert [t.get_text() for t in a.get_xticklabels()] == ["x", "y"] and [t.get_text() for t in b.get_xticklabels()] == ["y", "x"]
    assert (a.get_title(), c.get_title(), fig.get_suptitle()) == ("a: minilm", "c: no finished run", "title")
    assert a.get_ylim() == (65.0, 83.0) and b.get_ylim() == (45.0, 68.0), "the axis spans the values"

    def diamonds(ax) -> dict[float, tuple[float, str]]:  # x -> (mean, colour) of each cell's diamond
        found = {}
        for line in ax.get_lines():
            if line.get_marker() == "D":
                x, y = line.get_xydata()[0]
                found[float(x)] = (float(y), to_hex(line.get_color()))
        return found

    colour = {"y": to_hex("C1"), "x": to_hex("C2")}  # their places in order
    assert diamonds(a) == {0.0: (71.0, colour["x"]), 1.0: (80.0, colour["y"])}
    assert diamonds(b) == {0.0: (pytest.approx(62.0), colour["y"]), 1.0: (50.0, colour["x"])}
    dots = [line.get_ydata().tolist() for line in b.get_lines() if line.get_marker() == "."]
    assert dots == [[60.0, 61.0, 65.0], [50.0]], "one dot per seed"


# --- a study reuses a finished row only if it is provably the same row ------------------------------------------------


GRID = ["grid", "--lrs", "3e-5", "--batch-sizes", "8", "--text", "bertweet", "--image", "none", "--fusion", "none"]


def _study_args(tiny, data_dir: Path, out: Path, study: list = GRID) -> list:
    """A one-epoch study (by default a one-cell text-only grid) on the tiny corpus under ``data_dir``."""
    return [*study, "--data-dir", data_dir, "--corpus", "tiny", "--epochs", "1", "--out", out, *tiny.model_path_args()]


@pytest.fixture
def finished_grid(tiny, corpus, tmp_path, mscmt):
    import shutil

    data = tmp_path / "a"
    shutil.copytree(corpus.data_dir / corpus.name, data / "tiny")
    out = tmp_path / "g2"
    first = mscmt(_study_args(tiny, data, out))
    assert first.code == 0, first.err
    return data, out


def test_study_row_needs_the_same_data_bytes(finished_grid, tiny, tmp_path, mscmt):
    import shutil

    data, out = finished_grid
    moved = tmp_path / "b"
    shutil.copytree(data, moved)  # the same bytes elsewhere are the same data
    again = mscmt(_study_args(tiny, moved, out))
    assert again.code == 0 and "already finished" in again.err, again.err
    before = _snapshot(out)
    test = moved / "tiny" / "test.txt"
    blocks = test.read_text().strip().split("\n\n")
    test.write_text("\n\n".join(blocks[:-1]) + "\n")  # other bytes are other data
    _one_line_error(mscmt(_study_args(tiny, moved, out)), f"{out / 'lr3e-05-bs8'} was trained on other data: tiny/test.txt", str(test))
    assert _snapshot(out) == before


@pytest.mark.parametrize(
    "damage, needle",
    [
        (("metrics.jsonl", '{"epoch": 1, "train_loss": 1.0,'), "metrics.jsonl:1: not valid JSON"),
        (("metrics.jsonl", '{"epoch": 1}\n'), "metrics.jsonl:1: not an epoch record"),
        (
            ("metrics.jsonl", '\n{"epoch": 1, "train_loss": NaN, "valid_micro_f1": 0, "valid_weighted_f1": 0}\n'),
            "metrics.jsonl:2: NaN is not a JSON number",
        ),
        (("test_scores.json", '{"best_epoch": 1,\n "micro": '), "test_scores.json:2: not valid JSON"),
        (
            ("test_scores.json", '{"best_epoch": 1, "micro": {"precision": 1, "recall": 1, "f1": 1}, "types": {}}'),
            "test_scores.json: no weighted scores",
        ),
        (("run.json", '{"settings": {"foo": 1}}'), "run.json: unknown setting 'foo'"),
        (("run.json", None), "has no run.json"),
    ],
)
def test_study_row_with_a_damaged_record(finished_grid, tiny, mscmt, damage, needle):
    data, out = finished_grid
    name, text = damage
    row = out / "lr3e-05-bs8"
    if text is None:
        (row / name).unlink()
    else:
        (row / name).write_text(text)
    before = _snapshot(out)
    _one_line_error(mscmt(_study_args(tiny, data, out)), str(row), needle)
    assert _snapshot(out) == before


def test_study_out_must_be_a_study_directory(finished_grid, tiny, tmp_path, monkeypatch, mscmt):
    data, out = finished_grid
    monkeypatch.chdir(tmp_path)
    (tmp_path / "f").write_text("keep")
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "report.md").write_text("my report")
    (tmp_path / "docs" / "notes.txt").write_text("keep")
    before = _snapshot(tmp_path)
    for target, needle in (
        ("", "--out: an empty path"),
        (".", "--out: an empty path"),
        (tmp_path / "f", "is a file"),
        (tmp_path / "f" / "g", "is a file"),
        (tmp_path / "docs", "not a study directory (it holds notes.txt)"),
    ):
        _one_line_error(mscmt(_study_args(tiny, data, target)), needle)
    ablate = _study_args(tiny, data, out, ["ablate", "--variant", "t=bertweet,none,none,crf"])
    _one_line_error(mscmt(ablate), f"--out {out} holds a grid study")
    assert _snapshot(tmp_path) == before


def test_other_corpus_scores_are_recomputed_for_other_data(tmp_path, monkeypatch, corpus):
    import io
    import json

    from rich.console import Console

    from mscmt_cli.settings import Settings
    from mscmt_cli.studies import common

    calls, prf = [], {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2}
    monkeypatch.setattr(
        "mscmt_cli.engine.evaluation_job.evaluate_run",
        lambda *a, **k: calls.append(1) or {"micro": prf, "weighted": prf, "types": {"PER": prf}},
    )
    run = tmp_path / "run"
    run.mkdir()
    settings = Settings.model_validate({"data_dir": corpus.data_dir, "corpus": corpus.name, "out": run})
    console = Console(file=io.StringIO())
    common.eval_scores(run, settings, corpus.name, None, console)
    common.eval_scores(run, settings, corpus.name, None, console)
    assert len(calls) == 1, "the same data: the kept scores are read"
    kept = json.loads((run / f"eval_{corpus.name}_test.json").read_text())
    assert list(kept["data_files"]) == [f"{corpus.name}/test.txt"]
    kept["data_files"][f"{corpus.name}/test.txt"] = "0" * 64
    (run / f"eval_{corpus.name}_test.json").write_text(json.dumps(kept))
    common.eval_scores(run, settings, corpus.name, None, console)
    assert len(calls) == 2, "other data: scored again"
