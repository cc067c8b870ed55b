"""Every write goes through mscmt_cli.paths, and the guard keeps the user's files byte-identical.

The first test walks the source of ``mscmt_cli``, ``plugins`` and ``benchmarks`` and fails on any
call that writes, replaces or removes a file outside the guard module, so the next command cannot
forget it. The others run the data-loss examples of issue 24 (and their siblings) on tiny models:
each answer is one line, exit code 2, and every file of the user's is unchanged.
"""

from __future__ import annotations

import ast
import hashlib
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
