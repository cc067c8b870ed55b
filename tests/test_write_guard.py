"""Every write goes through mscmt_cli.paths, and the guard keeps the user's files byte-identical.

The first test walks the source of ``mscmt_cli``, ``plugins`` and ``benchmarks`` and fails on any
call that writes, replaces or removes a file outside the guard module, so the next command cannot
forget it. The others run the data-loss examples of issue 24 (and their siblings) on tiny models:
each answer is one line, exit code 2, and every file of the user's is unchanged.
"""

from __future__ import annotations

import ast
import hashlib
import importlib
import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
GUARD = "mscmt_cli/paths.py"
#: Attribute calls that write, replace or remove a file whatever their receiver.
WRITING_METHODS = {
    "write_text",
    "write_bytes",
    "unlink",
    "rmtree",
    "rmdir",
    "rename",
    "savefig",
    "save_pretrained",
    "truncate",
    "touch",
    "symlink_to",
    "hardlink_to",
}
#: Flags of ``os.open`` that write.
WRITING_FLAGS = {"O_WRONLY", "O_RDWR", "O_CREAT", "O_TRUNC", "O_APPEND"}
#: ``module.function`` calls that do.
WRITING_FUNCTIONS = {
    ("os", "replace"),
    ("os", "rename"),
    ("os", "remove"),
    ("os", "unlink"),
    ("os", "rmdir"),
    ("os", "removedirs"),
    ("os", "truncate"),
    ("os", "symlink"),
    ("os", "link"),
    ("shutil", "move"),
    ("shutil", "copy"),
    ("shutil", "copy2"),
    ("shutil", "copyfile"),
    ("shutil", "copytree"),
    ("shutil", "rmtree"),
    ("torch", "save"),
    ("tempfile", "mkstemp"),
    ("tempfile", "mkdtemp"),
}
#: Plain names that do (imported functions).
WRITING_NAMES = {"save_file", "rmtree", "copyfile", "mkstemp", "mkdtemp"}
#: Reviewed exceptions: (file, line's call) -> why it is not a write of a user's file.
ALLOWED: dict[tuple[str, str], str] = {
    ("mscmt_cli/tagging/jobs.py", "os.open"): "points a broken stdout at /dev/null (opens no file of the user's)",
}


def _mode(call: ast.Call) -> str:
    """The mode of an ``open``/``fdopen`` call ('r' when not given or not a constant)."""
    args = call.args[1:2] + [k.value for k in call.keywords if k.arg == "mode"]
    mode = args[0] if args else None
    return mode.value if isinstance(mode, ast.Constant) and isinstance(mode.value, str) else "r"


def _writes(call: ast.Call) -> str | None:
    """The name of the write ``call`` makes, or None when it writes nothing."""
    func = call.func
    if isinstance(func, ast.Name):
        if func.id == "open" and set(_mode(call)) & set("wax+"):
            return f"open(..., {_mode(call)!r})"
        return func.id if func.id in WRITING_NAMES else None
    if not isinstance(func, ast.Attribute):
        return None
    owner = func.value.id if isinstance(func.value, ast.Name) else None
    if (owner, func.attr) in WRITING_FUNCTIONS:
        return f"{owner}.{func.attr}"
    if owner == "os" and func.attr == "open":
        flags = {n.attr for arg in call.args[1:] for n in ast.walk(arg) if isinstance(n, ast.Attribute)}
        return "os.open" if flags & WRITING_FLAGS else None
    if func.attr in ("open", "fdopen") and set(_mode(call)) & set("wax+"):
        return f"{func.attr}(..., {_mode(call)!r})"
    if func.attr in WRITING_METHODS:
        return f".{func.attr}()"
    if func.attr == "replace" and len(call.args) == 1 and not call.keywords:  # Path.replace(target); str.replace takes two
        return ".replace()"
    return None


def writes_outside_the_guard(root: Path = REPO) -> list[str]:
    """``file:line: call`` of every write outside :data:`GUARD` and :data:`ALLOWED`."""
    found = []
    for folder in ("mscmt_cli", "plugins", "benchmarks"):
        for path in sorted((root / folder).rglob("*.py")):
            name = path.relative_to(root).as_posix()
            if name == GUARD:
                continue
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), name)):
                if isinstance(node, ast.Call) and (what := _writes(node)) is not None and (name, what) not in ALLOWED:
                    found.append(f"{name}:{node.lineno}: {what}")
    return found


def test_every_write_goes_through_the_guard():
    assert writes_outside_the_guard() == [], "write through mscmt_cli.paths (or add a reviewed entry to ALLOWED)"


def test_the_walk_finds_each_kind_of_write(tmp_path):
    """The check itself: a module with one write of each kind is caught on every line."""
    (tmp_path / "mscmt_cli").mkdir()
    (tmp_path / "plugins").mkdir()
    (tmp_path / "benchmarks").mkdir()
    lines = [
        "open(p, 'w')",
        "open(p, mode='ab')",
        "os.fdopen(fd, 'w')",
        "p.write_text('x')",
        "p.write_bytes(b'x')",
        "p.unlink()",
        "os.remove(p)",
        "shutil.rmtree(p)",
        "os.replace(a, b)",
        "p.replace(q)",
        "p.rename(q)",
        "shutil.move(a, b)",
        "fig.savefig(p)",
        "save_file(state, p)",
        "torch.save(state, p)",
        "model.save_pretrained(d)",
        "fh.truncate(0)",
        "os.open(p, os.O_WRONLY | os.O_CREAT)",
        "p.touch()",
    ]
    (tmp_path / "benchmarks" / "bad.py").write_text("\n".join(lines) + "\n'a'.replace('a', 'b')\nopen(p)\n")
    found = writes_outside_the_guard(tmp_path)
    assert [int(f.split(":")[1]) for f in found] == list(range(1, len(lines) + 1))


# -- the data-loss examples, on tiny models ------------------------------------------------------------


def snapshot(root: Path) -> dict[str, str]:
    """SHA-256 of every file below ``root`` (links by their target's name), to compare before and after."""
    out = {}
    for path in sorted(root.rglob("*")):
        key = path.relative_to(root).as_posix()
        if path.is_symlink():
            out[key] = "-> " + str(path.readlink())
        elif path.is_file():
            out[key] = hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            out[key] = "dir"
    return out


def refused(result, *needles: str) -> None:
    """Exit code 2 and one line ``error: ...`` holding every needle."""
    lines = result.err.strip().splitlines()
    assert result.code == 2 and len(lines) == 1 and lines[0].startswith("error: "), result.err
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_every_allowed_entry_is_still_needed():
    """A stale allow-list entry would let a new write of the same name through unreviewed."""
    for (name, what), _reason in ALLOWED.items():
        tree = ast.parse((REPO / name).read_text(encoding="utf-8"))
        assert any(isinstance(n, ast.Call) and _writes(n) == what for n in ast.walk(tree)), (name, what)


@pytest.fixture
def user_files(trained_run, corpus, tmp_path):
    """A copy of the tiny run, of the data and an image, and files of the user's beside them."""
    import shutil

    run, data = tmp_path / "run", tmp_path / "data"
    shutil.copytree(trained_run, run)
    shutil.copytree(corpus.data_dir, data)
    image = tmp_path / "photo.jpg"
    shutil.copy(next(corpus.images_dir.glob("*.jpg")), image)
    (tmp_path / "notes.json").write_text('{"mine": true}\n')
    (tmp_path / "notes.txt").write_text("line one\nline two")
    return run, data, image


def test_evaluate_json_never_replaces_an_input_a_model_file_a_split_or_a_file_of_the_users(user_files, corpus, tiny, tmp_path, mscmt):
    run, data, image = user_files
    (tmp_path / "link.json").symlink_to(run / "model" / "config.json")
    before = snapshot(tmp_path)
    evaluate = ["evaluate", run, "--data-dir", data, "--corpus", corpus.name, "--images-dir", corpus.images_dir, *tiny.model_path_args()]
    for target, needle in (
        (run / "model" / "config.json", "is the same file as a file of the run"),
        (run / "model" / "model.safetensors", "is the same file as a file of the run"),
        (run / "checkpoint" / "state.pt", "is a model file"),
        (data / corpus.name / "test.txt", "is the same file as the test split"),
        (data / corpus.name / "train.txt", "is a data split"),
        (run / "run.json", "is the same file as a file of the run"),
        (run / "test_scores.json", "is the same file as a file of the run"),
        (tmp_path / "link.json", "is the same file as a file of the run"),
        (image, "is an image"),
        (tmp_path / "notes.json", "is not a scores file mscmt wrote"),
        (tmp_path / "notes.txt", "is not a scores file mscmt wrote"),
        (run, "is a directory"),
        ("", "an empty path"),
    ):
        refused(mscmt([*evaluate, "--json", target]), "--json", needle)
    assert snapshot(tmp_path) == before
    scores = tmp_path / "scores.json"
    for _ in range(2):  # new, then an earlier scores file: replaced
        result = mscmt([*evaluate, "--json", scores])
        assert result.code == 0, result.err
    assert set(json.loads(scores.read_text())) >= {"micro", "weighted", "types"}


def test_evaluate_json_never_replaces_the_test_file_it_scores(trained_run, tiny, tmp_path, mscmt):
    """``evaluate --test F --json F``: the file being scored (any format, any path to it) is refused and kept."""
    test = tmp_path / "mine.jsonl"
    test.write_text('{"tokens": ["Obama", "visits", "Paris"], "tags": ["B-PER", "O", "B-LOC"]}\n', encoding="utf-8")
    (tmp_path / "link.jsonl").symlink_to(test)
    before = snapshot(tmp_path)
    for target in (test, tmp_path / "link.jsonl"):
        refused(
            mscmt(["evaluate", trained_run, "--test", test, "--json", target, *tiny.model_path_args()]),
            "--json",
            "is the same file as --test",
        )
    assert snapshot(tmp_path) == before


def test_caption_out_is_recognised_before_its_last_line_is_cut(corpus, tmp_path, mscmt):
    """Issue 24 item 2: a file that is not a captions file is refused with every byte still there."""
    cases = {
        "notes.txt": b"line one\nline two",
        "one.txt": b"just one line",
        "records.jsonl": b'{"image": "1.jpg", "caption": "a"}\n{"image": "2.jpg", "capt',
        "words.txt": b"1.jpg :a dog\nsome words",
    }
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
    before = snapshot(tmp_path)
    for name in cases:
        result = mscmt(["caption", corpus.images_dir, "--captioner", tmp_path / "no-model", "--out", tmp_path / name])
        refused(result, f"--out {tmp_path / name}")
    assert snapshot(tmp_path) == before


def test_caption_out_to_dev_stdout_is_neither_read_nor_cut(tmp_path):
    """``caption --out /dev/stdout`` (which the shell may have sent to a file, as pytest does here) is appended to:
    nothing already there is read as captions or cut as a partial last line."""
    from mscmt_cli.captioning import captions_done, repair_tail

    (tmp_path / "out").symlink_to("/dev/stdout")
    print("a partial line of the caller's", end="", flush=True)
    for target in (tmp_path / "out", Path("/dev/stdout")):
        assert captions_done(target) == set() and repair_tail(target) is False


def test_a_partial_caption_line_of_an_image_of_the_directory_is_still_repaired(tmp_path):
    from mscmt_cli.captioning import ImageFile, captions_done, repair_tail

    files = [ImageFile("101", tmp_path / "101.jpg"), ImageFile("102", tmp_path / "102.jpg")]
    out = tmp_path / "c.txt"
    for data, done in ((b"101.jpg :a dog\n10", {"101"}), (b"101.jpg :a dog\n102.jpg :a c", {"101"}), (b"10", set())):
        out.write_bytes(data)
        assert captions_done(out, files) == done
        assert repair_tail(out) and out.read_bytes() == data[: data.rfind(b"\n") + 1]


def _copy_runs(trained_run, folder: Path, names: list[str]) -> None:
    import shutil

    for name in names:
        shutil.copytree(trained_run, folder / name)


def test_a_study_never_takes_over_a_plain_folder_or_a_folder_of_runs(trained_run, corpus, tiny, tmp_path, mscmt):
    myruns, runs = tmp_path / "myruns", tmp_path / "runs"
    _copy_runs(trained_run, myruns, ["a"])
    (myruns / "report.md").write_text("my report\n")
    (myruns / "results.csv").write_text("mine,1\n")
    _copy_runs(trained_run, runs, ["a", "b"])
    before = snapshot(tmp_path)
    grid = ["grid", "--lrs", "3e-5", "--batch-sizes", "8", "--text", "bertweet", "--image", "none", "--fusion", "none"]
    for out in (myruns, runs):
        result = mscmt([*grid, *corpus.args(), "--epochs", "1", "--out", out, *tiny.model_path_args()])
        refused(result, f"--out {out}", "not a study directory")
    assert snapshot(tmp_path) == before


def test_ablate_rows_named_as_the_studys_files_are_refused_up_front(corpus, tiny, tmp_path, mscmt):
    for name in ("results.json", "study.json", "report.md"):
        result = mscmt(
            ["ablate", "--variant", f"{name}=bertweet,none,none,crf", *corpus.args(), "--out", tmp_path / "s", *tiny.model_path_args()]
        )
        refused(result, f"row name {name!r} is a file the study writes")
    assert not (tmp_path / "s").exists()


# -- export and RUN/onnx ---------------------------------------------------------------------------


def _clip(tiny) -> list:
    return ["--model-path", f"clip-vit-l14={tiny.clip_vision}"]


@pytest.fixture(scope="module")
def export_dirs(trained_run, tiny, tmp_path_factory):
    """An fp32 export of the tiny run, and an int8 one (made once for this module)."""
    from mscmt_cli.cli.main import main

    root = tmp_path_factory.mktemp("guard-exports")
    for name, extra in (("fp32", []), ("int8", ["--quantize", "int8"])):
        try:
            main([str(a) for a in ["export", trained_run, "--out", root / name, *extra, *_clip(tiny)]])
        except SystemExit as exc:
            assert not exc.code
    return root / "fp32", root / "int8"


def test_re_export_never_deletes_a_file_of_the_users_inside_model(export_dirs, trained_run, tiny, tmp_path, mscmt):
    import shutil

    fp32, _ = export_dirs
    for inside in ("model/mynotes.txt", "model/text_encoder/mynotes.txt", "model/sub/deep.txt"):
        out = tmp_path / inside.replace("/", "_")
        shutil.copytree(fp32, out)
        (out / inside).parent.mkdir(parents=True, exist_ok=True)
        (out / inside).write_text("mine")
        before = snapshot(out)
        result = mscmt(["export", trained_run, "--out", out, *_clip(tiny)])
        if inside.startswith("model/text_encoder/"):  # a name a tokenizer could have: caught when the new export lacks it
            refused(result, f"--out {out}", "mynotes.txt")
        else:
            refused(result, f"--out {out}: an earlier export that also holds {inside}")
        assert snapshot(out) == before
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")], "no temporary directory is left behind"


def test_export_into_a_folder_it_cannot_write_is_one_line(trained_run, tiny, tmp_path, mscmt, monkeypatch):
    import tempfile

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "mkdtemp", denied)  # root ignores file modes: the refusal is simulated
    refused(mscmt(["export", trained_run, "--out", tmp_path / "exp", *_clip(tiny)]), f"--out {tmp_path / 'exp'}", "Permission denied")
    assert list(tmp_path.iterdir()) == []


def test_an_export_given_as_the_run_is_named_as_such(export_dirs, tiny, tmp_path, mscmt):
    fp32, _ = export_dirs
    refused(mscmt(["export", fp32, "--out", tmp_path / "e2", *_clip(tiny)]), f"{fp32}: an ONNX export (mscmt export), not a trained run")
    refused(mscmt(["evaluate", fp32, "--data-dir", tmp_path, *_clip(tiny)]), "an ONNX export")


def _tag_onnx(mscmt, run: Path, tiny, tmp_path: Path):
    source = tmp_path / "in.jsonl"
    source.write_text('{"text": "Obama visits Paris"}\n', encoding="utf-8")
    return mscmt(["tag", source, "--model", run, "--backend", "onnx", "--out", tmp_path / "out.jsonl", *_clip(tiny)])


def test_run_onnx_holding_foreign_files_or_an_int8_export_is_kept_and_named(export_dirs, trained_run, tiny, tmp_path, mscmt):
    import shutil

    _, int8 = export_dirs
    run = tmp_path / "run"
    shutil.copytree(trained_run, run, ignore=shutil.ignore_patterns("onnx"))
    (run / "onnx").mkdir()
    (run / "onnx" / "notes.txt").write_text("mine")
    before = snapshot(run)
    result = _tag_onnx(mscmt, run, tiny, tmp_path)
    refused(result, f"--backend onnx: {run / 'onnx'} holds notes.txt, not an export mscmt made")
    assert "--out" not in result.err.split(";")[0] and snapshot(run) == before
    shutil.rmtree(run / "onnx")
    shutil.copytree(int8, run / "onnx")
    before = snapshot(run)
    refused(_tag_onnx(mscmt, run, tiny, tmp_path), "holds an int8 export")
    assert snapshot(run) == before
    config = json.loads((run / "onnx" / "config.json").read_text())
    del config["tagging"]
    (run / "onnx" / "config.json").write_text(json.dumps({**config, "format_version": 1}))
    before = snapshot(run)
    refused(_tag_onnx(mscmt, run, tiny, tmp_path), "holds an int8 export of format 1, made before exports recorded")
    assert f"mscmt export {run} --out DIR --quantize int8" in _tag_onnx(mscmt, run, tiny, tmp_path).err
    assert snapshot(run) == before


def test_re_export_over_a_symlinked_run_onnx_keeps_the_link_and_leaves_nothing_behind(trained_run, tiny, tmp_path, mscmt):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(trained_run, run, ignore=shutil.ignore_patterns("onnx"))
    (tmp_path / "elsewhere").mkdir()
    (run / "onnx").symlink_to(tmp_path / "elsewhere" / "onnx")
    (tmp_path / "elsewhere" / "onnx").mkdir()
    for _ in range(2):
        result = _tag_onnx(mscmt, run, tiny, tmp_path)
        assert result.code == 0, result.err
        config = json.loads((run / "onnx" / "config.json").read_text())
        config["source_weights_sha256"] = "0" * 64  # stale: made again on the next run
        (run / "onnx" / "config.json").write_text(json.dumps(config))
    assert (run / "onnx").is_symlink() and (tmp_path / "elsewhere" / "onnx" / "model.onnx").is_file()
    leftovers = [p.name for d in (run, tmp_path / "elsewhere") for p in d.iterdir() if p.name.startswith(".")]
    assert leftovers == []


# -- benchmark scripts ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("script", "mine"),
    [
        ("ablation", {"ablation.md": "my own notes"}),
        ("example_variants", {"example_variants.md": "my own notes"}),
        ("example_variants", {"example_variants.json": '{"my": "numbers"}'}),
    ],
)
def test_benchmark_reports_never_overwrite_a_users_file_and_refuse_an_out_that_cannot_hold_them(script, mine, tmp_path, monkeypatch):
    import sys

    module = importlib.import_module(f"benchmarks.{script}")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "FILE").write_text("the user's input")
    (tmp_path / "bm1").mkdir()
    for name, text in mine.items():
        (tmp_path / "bm1" / name).write_text(text)
    before = snapshot(tmp_path)
    for out, needle in (("bm1", f"--out bm1/{next(iter(mine))} exists and is not"), ("", "--out: an empty path"), ("FILE", "is a file")):
        monkeypatch.setattr(sys, "argv", [f"{script}.py", "--report-only", "--out", out])
        with pytest.raises(SystemExit) as refusal:
            module.main()
        assert str(refusal.value).startswith("error: ") and needle in str(refusal.value) and "\n" not in str(refusal.value)
    assert snapshot(tmp_path) == before
    for _ in range(2):  # a missing folder is made; the script's own report is then replaced
        monkeypatch.setattr(sys, "argv", [f"{script}.py", "--report-only", "--out", "new/deeper"])
        module.main()
        assert (tmp_path / "new" / "deeper" / f"{script}.md").read_text().startswith(module.FIRST_LINE)


# -- tag and explain outputs ------------------------------------------------------------------------


def test_tag_and_explain_outputs_never_replace_what_is_not_theirs(user_files, corpus, tiny, tmp_path, mscmt):
    run, data, image = user_files
    source = tmp_path / "in.jsonl"
    source.write_text('{"text": "Obama visits Paris"}\n', encoding="utf-8")
    (tmp_path / "other.jsonl").write_text('{"text": "a line of the user\'s"}\n')
    before = snapshot(tmp_path)
    model = ["--model", run, *tiny.model_path_args()]
    for target, needle in (
        (source, "is the same file as the input"),
        (run / "model" / "model.safetensors", "is the same file as a file of --model"),
        (run / "checkpoint" / "state.pt", "is a model file"),
        (data / corpus.name / "train.txt", "is a data split"),
        (image, "is an image"),
        (tmp_path / "other.jsonl", "is not a tag output"),
        (tmp_path / "notes.json", "is not a tag output"),
    ):
        refused(mscmt(["tag", source, "--out", target, *model]), f"--out {target}", needle)
        if needle != "is the same file as the input":
            kind = "is not an explain page" if "tag output" in needle else needle
            refused(mscmt(["explain", "--text", "Obama visits Paris", "--out", target, *model]), f"--out {target}", kind)
    for empty in ("", "."):
        refused(mscmt(["tag", source, "--out", tmp_path / "t.jsonl", "--explain", empty, *model]), "--explain: an empty path")
    assert snapshot(tmp_path) == before
    out, page = tmp_path / "tags.jsonl", tmp_path / "page.html"
    for _ in range(2):  # new, then its own earlier output: replaced
        assert mscmt(["tag", source, "--out", out, *model]).code == 0
        assert mscmt(["explain", "--text", "Obama visits Paris", "--out", page, *model]).code == 0
    assert json.loads(out.read_text())["tokens"] == ["Obama", "visits", "Paris"]


def test_benchmark_json_outputs_refuse_what_the_script_did_not_write(corpus, tmp_path):
    from benchmarks import common

    split = corpus.data_dir / corpus.name / "test.txt"
    (tmp_path / "mine.json").write_text('{"my": "numbers"}')
    (tmp_path / "counts.json").write_text('{"predicted": {}, "gold": {}}')
    ours = lambda data: isinstance(data, dict) and {"predicted", "gold"} <= set(data)  # noqa: E731
    for target, needle in (
        (split, "is the same file as --conll"),
        (tmp_path / "mine.json", "is not a count"),
        (tmp_path, "is a directory"),
    ):
        with pytest.raises(SystemExit) as refusal:
            common.json_target(target, "a count this script wrote", ours, [("--conll", split)])
        assert str(refusal.value).startswith("error: --json") and needle in str(refusal.value)
    assert common.json_target(tmp_path / "counts.json", "a count this script wrote", ours) == tmp_path / "counts.json"


# -- hostile output targets, for every command that writes: devices, pipes, process streams, links, saved models ------


@pytest.fixture
def hostile(user_files, export_dirs, corpus, tiny, tmp_path):
    """The user's files (a run, data, an image, notes), an export, a FIFO, and links of every kind beside them;
    ``commands[name](target)`` is the argument list of a command writing ``target``."""
    import os
    import shutil

    run, data, _ = user_files
    export = tmp_path / "export"
    shutil.copytree(export_dirs[0], export)
    shutil.copytree(data / corpus.name, data / "other")
    source = tmp_path / "in.jsonl"
    source.write_text('{"text": "Obama visits Paris"}\n', encoding="utf-8")
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "empty").write_bytes(b"")
    os.link(tmp_path / "empty", tmp_path / "empty-too")
    os.link(run / "model" / "config.json", tmp_path / "config-too.json")
    os.link(source, tmp_path / "in-too.jsonl")
    for name, target in (
        ("to-devnull", "/dev/null"),
        ("to-stdout", "/dev/stdout"),
        ("to-fifo", tmp_path / "fifo"),
        ("to-config", run / "model" / "config.json"),
        ("to-notes", tmp_path / "notes.txt"),
        ("to-nowhere", tmp_path / "missing" / "x"),
        ("to-model", run / "model"),
        ("to-checkpoint", run / "checkpoint"),
    ):
        (tmp_path / name).symlink_to(target)
    model = ["--model", run, *tiny.model_path_args()]
    variant = ["--text", "bertweet", "--image", "none", "--fusion", "none"]
    commands = {
        "evaluate --json": lambda t: ["evaluate", run, "--data-dir", data, "--corpus", corpus.name, *tiny.model_path_args(), "--json", t],
        "tag --out": lambda t: ["tag", source, "--out", t, *model],
        "explain --out": lambda t: ["explain", "--text", "Obama visits Paris", "--out", t, *model],
        "caption --out": lambda t: ["caption", corpus.images_dir, "--captioner", tmp_path / "no-model", "--out", t],
        "train --out": lambda t: ["train", *variant, *corpus.args(images=False), "--epochs", "1", "--out", t, *tiny.model_path_args()],
        "grid --out": lambda t: ["grid", "--lrs", "3e-5", "--batch-sizes", "8", *variant, *corpus.args(False), "--out", t],
        "ablate --out": lambda t: ["ablate", "--variant", "a=bertweet,none,none,crf", *corpus.args(False), "--out", t],
        "crossdata --out": lambda t: ["crossdata", corpus.name, "other", "--data-dir", data, "--out", t],
        "export --out": lambda t: ["export", run, "--out", t, *_clip(tiny)],
        "cache build --cache-dir": lambda t: ["cache", "build", *corpus.args(), "--cache-dir", t, *_clip(tiny)],
        "tag --explain": lambda t: ["tag", source, "--out", tmp_path / "tags.jsonl", "--explain", t, *model],
    }
    return tmp_path, run, export, commands


FILE_OUTPUTS = ["evaluate --json", "tag --out", "explain --out", "caption --out"]
STREAMED = {"tag --out", "explain --out", "caption --out"}
DIR_OUTPUTS = ["train --out", "grid --out", "ablate --out", "crossdata --out", "export --out", "cache build --cache-dir", "tag --explain"]


def _refused_everywhere(mscmt, hostile, names: list[str], targets: list[str | Path], *needles: str) -> None:
    tmp_path, _, _, commands = hostile
    before = snapshot(tmp_path)
    for name in names:
        for target in targets:
            option = name.split()[-1]
            target = tmp_path / target if isinstance(target, str) and not target.startswith("/") else target
            result = mscmt(commands[name](target))
            assert result.code == 2, (target, result.err[-300:])
            refused(result, f"{option} {target}", *needles)
    assert snapshot(tmp_path) == before
    assert Path("/dev/stdout").is_symlink() and str(Path("/dev/stdout").readlink()) == "/proc/self/fd/1"


@pytest.mark.parametrize("name", FILE_OUTPUTS + DIR_OUTPUTS)
def test_outputs_written_whole_refuse_devices_pipes_and_process_streams(name, hostile, mscmt):
    """An output written whole (a temporary file or directory, then renamed) over a FIFO, a link to /dev/null or
    /dev/stdout, or /proc/self/fd/N would replace the name, not write to it: refused (streamed outputs: below)."""
    targets: list[str | Path] = ["fifo", "to-devnull", "to-stdout", "/proc/self/fd/1", "/proc/self/fd/2"]
    if name in STREAMED:  # written through as they go: only a name that does not exist in /dev or /proc is refused
        targets = ["/proc/self/fd/987"]
        _refused_everywhere(mscmt, hostile, [name], targets, "mscmt makes no file in /dev, /proc or /sys")
    else:
        _refused_everywhere(mscmt, hostile, [name], targets, "is a " if name in FILE_OUTPUTS else "not a directory")


@pytest.mark.parametrize("name", FILE_OUTPUTS)
def test_a_hard_linked_output_is_refused(name, hostile, mscmt):
    """A file with a second name (an empty file otherwise taken as new; a link to the model's config, to the input)."""
    _refused_everywhere(mscmt, hostile, [name], ["empty", "empty-too", "config-too.json"], "refusing")
    _refused_everywhere(mscmt, hostile, [name], ["empty"], "hard links")
    if name != "explain --out":
        _refused_everywhere(mscmt, hostile, [name], ["in-too.jsonl"], "refusing")


@pytest.mark.parametrize("name", FILE_OUTPUTS)
def test_a_link_is_judged_by_where_it_leads(name, hostile, mscmt):
    targets: list[str | Path] = ["to-config", "to-notes", "to-nowhere", "to-model/new.json", "to-checkpoint/new.json"]
    _refused_everywhere(mscmt, hostile, [name], targets)


@pytest.mark.parametrize("name", FILE_OUTPUTS + DIR_OUTPUTS)
def test_nothing_new_is_written_inside_a_saved_model_a_checkpoint_or_an_export(name, hostile, mscmt):
    _, run, export, _ = hostile
    targets: list[str | Path] = [
        run / "model" / "new.jsonl",
        run / "model" / "text_encoder" / "new.jsonl",
        run / "checkpoint" / "new.jsonl",
        export / "new.jsonl",
        export / "model" / "new.jsonl",
        export / "model" / "sub" / "new.jsonl",
    ]
    _refused_everywhere(mscmt, hostile, [name], targets, "is inside", "a saved model, export or checkpoint")
    if name in DIR_OUTPUTS and name != "export --out":  # export replaces an earlier export (and names what else it finds)
        saved = [run / "model", run / "checkpoint", export, "to-model", "to-checkpoint"]
        _refused_everywhere(mscmt, hostile, [name], saved, "a saved model, export or checkpoint")


def test_export_out_spelled_with_dot_dot_works(hostile, tiny, mscmt, monkeypatch):
    tmp_path, run, _, _ = hostile
    monkeypatch.chdir(tmp_path)
    for _ in range(2):  # new, then an earlier export of its own: replaced
        result = mscmt(["export", run, "--out", "a/../a", *_clip(tiny)])
        assert result.code == 0, result.err
        assert (tmp_path / "a" / "model.onnx").is_file()
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]


def _shell_tag(args: list[str], tmp_path: Path) -> bytes:
    """``sh -c 'echo before; mscmt ARGS' > out.txt``: what the file holds afterwards (stdout sent to a file)."""
    import os
    import shlex
    import subprocess
    import sys

    out = tmp_path / "shell-out.txt"
    command = f"echo before; {shlex.quote(sys.executable)} -m mscmt_cli {' '.join(shlex.quote(str(a)) for a in args)}"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with open(out, "wb") as fh:
        done = subprocess.run(["sh", "-c", command], stdout=fh, stderr=subprocess.PIPE, env=env, timeout=300)
    assert done.returncode == 0, done.stderr.decode()
    return out.read_bytes()


@pytest.mark.parametrize("stdout", ["/dev/stdout", "to-stdout"])
def test_streamed_outputs_to_dev_stdout_are_appended_to_what_the_shell_sent_there(stdout, hostile, tiny):
    tmp_path, run, _, _ = hostile
    target = stdout if stdout.startswith("/") else tmp_path / stdout
    model = ["--model", run, *tiny.model_path_args(), "--device", "cpu"]
    held = _shell_tag(["tag", tmp_path / "in.jsonl", "--out", target, *model], tmp_path)
    first, *rest = held.decode().splitlines()
    assert first == "before" and [json.loads(line)["tokens"] for line in rest] == [["Obama", "visits", "Paris"]]
    held = _shell_tag(["explain", "--text", "Obama visits Paris", "--out", target, *model], tmp_path)
    assert held.lower().startswith(b"before\n<!doctype html>"), held[:40]
    assert Path("/dev/stdout").is_symlink()


def test_tag_out_to_a_fifo_is_written_through(hostile, tiny, mscmt):
    import threading

    tmp_path, run, _, _ = hostile
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append((tmp_path / "fifo").read_bytes()))
    reader.start()
    result = mscmt(["tag", tmp_path / "in.jsonl", "--out", tmp_path / "to-fifo", "--model", run, *tiny.model_path_args()])
    reader.join(60)
    assert result.code == 0, result.err
    assert json.loads(got[0])["tokens"] == ["Obama", "visits", "Paris"]


def test_benchmark_outputs_refuse_the_same_hostile_targets(hostile, monkeypatch):
    import sys

    from benchmarks import ablation, common, hf_recipe

    tmp_path, run, export, _ = hostile
    (tmp_path / "recipe-run").mkdir()
    (tmp_path / "recipe-run" / "recipe.json").write_text('{"mine": true}')
    (tmp_path / "other-run" / "model").mkdir(parents=True)
    before = snapshot(tmp_path)
    for target, needle in (
        (tmp_path / "fifo", "is a pipe (FIFO)"),
        (tmp_path / "to-devnull", "is a device or process stream"),
        (Path("/proc/self/fd/1"), "is a device or process stream"),
        (run / "model" / "bm", "is inside"),
        (run / "checkpoint" / "bm", "is inside"),
        (export / "bm", "is inside"),
    ):
        monkeypatch.setattr(sys, "argv", ["ablation.py", "--report-only", "--out", str(target)])
        with pytest.raises(SystemExit) as refusal:
            ablation.main()
        assert str(refusal.value).startswith(f"error: --out {target}") and needle in str(refusal.value), refusal.value
    for target, needle in (
        (tmp_path / "fifo", "is a pipe (FIFO)"),
        (tmp_path / "to-devnull", "is a device or process stream"),
        (run / "model" / "recipe", "is inside"),
        (export, "is a saved model, export or checkpoint"),
        (tmp_path / "recipe-run", "recipe.json exists and is not a record of the recipe"),
        (tmp_path / "other-run", "holds model/ but no recipe.json"),
    ):
        with pytest.raises(SystemExit) as refusal:
            hf_recipe.check_run_out(target)
        assert str(refusal.value).startswith(f"error: --out {target}") and needle in str(refusal.value), refusal.value
    for target, needle in (
        (tmp_path / "fifo", "is a pipe (FIFO)"),
        (tmp_path / "to-stdout", "is a device or process stream"),
        (tmp_path / "empty", "hard links"),
        (run / "model" / "counts.json", "is inside"),
    ):
        with pytest.raises(SystemExit) as refusal:
            common.json_target(target, "a count this script wrote", lambda data: True)
        assert str(refusal.value).startswith(f"error: --json {target}") and needle in str(refusal.value), refusal.value
    assert snapshot(tmp_path) == before


def test_ray_tag_output_directories_refuse_saved_models(hostile):
    """``tag --ray --out DIR/``: the per-shard directory is checked as every output directory is."""
    from mscmt_cli.cluster.tagging import plan_output
    from mscmt_cli.errors import MscmtError

    tmp_path, run, export, _ = hostile
    before = snapshot(tmp_path)
    for target, needle in (
        (run / "model", "is a saved model, export or checkpoint"),
        (export, "is a saved model, export or checkpoint"),
        (f"{run / 'checkpoint' / 'shards'}/", "is inside"),
        (tmp_path / "to-model", "is a saved model, export or checkpoint"),
    ):
        with pytest.raises(MscmtError) as refusal:
            plan_output(target, [], [])
        assert str(refusal.value).startswith(f"--out {target}".rstrip("/")) and needle in str(refusal.value), refusal.value
    assert snapshot(tmp_path) == before
