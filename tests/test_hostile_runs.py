"""Hostile input to training, run directories, studies and the feature cache (issue 12).

Every test asserts that the user's data is intact, or that the refusal is one
line (exit 2) naming the option or the file, before anything was written.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given
from hypothesis import settings as hyp_settings
from hypothesis import strategies as st

from mscmt_cli.errors import MscmtError
from mscmt_cli.features import FeatureCache, encoder_key
from tests.cli_support import train_args


def _one_line_error(result, *needles: str) -> None:
    """Exit 2, one ``error:`` line on stderr (the last) containing every needle, no traceback."""
    assert result.code == 2, (result.code, result.err)
    lines = result.err.strip().splitlines()
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], result.err
    assert "Traceback" not in result.err and "error: unexpected" not in result.err, result.err
    for needle in needles:
        assert needle in errors[0], (needle, errors[0])


def _snapshot(root: Path) -> dict[str, bytes | None]:
    """Every path under ``root`` with its bytes (None for folders)."""
    return {str(p.relative_to(root)): (None if p.is_dir() else p.read_bytes()) for p in sorted(root.rglob("*"))}


# -- 1. the feature cache deletes only its own entries ---------------------------------------------


def _real_entry(root: Path, identity: str = "counting|v1", n: int = 3) -> Path:
    cache = FeatureCache(root)
    for i in range(n):
        cache.put(identity, hashlib.sha256(str(i).encode()).hexdigest(), torch.ones(3) * i)
    return root / encoder_key(identity)


def _foreign(root: Path) -> None:
    """Folders a user may keep beside (or inside) a cache, some shaped like entries."""
    (root / "photos").mkdir(parents=True)
    (root / "photos" / "a.jpg").write_bytes(b"k")
    lookalike = root / ("0123456789abcdef0123")  # the key format, but no identity label
    (lookalike / "ab").mkdir(parents=True)
    (lookalike / "ab" / ("ab" + "0" * 62 + ".npy")).write_bytes(b"mine")
    forged = root / encoder_key("clip") / "cd"  # a label whose hash is not the folder's name
    forged.mkdir(parents=True)
    (forged.parent / "identity.txt").write_text("not clip\n")
    (forged / "notes.txt").write_text("keep")
    (root / "file.txt").write_text("keep")


def test_clear_removes_entries_and_nothing_else(tmp_path):
    root = tmp_path / "cache"
    entry = _real_entry(root)
    other = _real_entry(root, "other|v2", 1)
    (other / "README").write_text("mine, inside an entry")  # a user's file inside an entry survives too
    _foreign(root)
    before = {k: v for k, v in _snapshot(root).items() if not k.startswith((entry.name, other.name))}
    cache = FeatureCache(root)
    assert [(key, ident, n) for key, ident, n, _ in cache.info()] == sorted([(entry.name, "counting|v1", 3), (other.name, "other|v2", 1)])
    assert cache.clear() == 2
    assert not entry.exists()
    assert sorted(p.name for p in other.iterdir()) == ["README", "identity.txt"]
    after = {k: v for k, v in _snapshot(root).items() if not k.startswith(other.name)}
    assert after == before
    assert [key for key, *_ in cache.info()] == [other.name] and cache.info()[0][2] == 0


@hyp_settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    names=st.lists(
        st.one_of(st.text("0123456789abcdef", min_size=20, max_size=20), st.text("abcxyz.-_", min_size=1, max_size=8)),
        min_size=1,
        max_size=5,
        unique=True,
    ),
    label=st.booleans(),
)
def test_clear_never_touches_folders_it_did_not_write(tmp_path_factory, names, label):
    root = tmp_path_factory.mktemp("cache")
    for name in names:
        if name in (".", ".."):
            continue
        (root / name / "ab").mkdir(parents=True, exist_ok=True)
        (root / name / "ab" / ("ab" + "1" * 62 + ".npy")).write_bytes(b"user data")
        if label:
            (root / name / "identity.txt").write_text(f"something {name}\n")
    before = _snapshot(root)
    assert FeatureCache(root).info() == [] and FeatureCache(root).clear() == 0
    assert _snapshot(root) == before


@pytest.mark.parametrize("value", ["", ".", "./"])
def test_cache_dir_meaning_here_is_refused(value, tmp_path, monkeypatch, mscmt):
    monkeypatch.chdir(tmp_path)
    _foreign(tmp_path)
    before = _snapshot(tmp_path)
    with pytest.raises(MscmtError, match="--cache-dir"):
        FeatureCache(Path(value))
    for args in (["cache", "clear", "--cache-dir", value], ["cache", "info", "--cache-dir", value]):
        _one_line_error(mscmt(args), "--cache-dir")
    monkeypatch.setenv("MSCMT_CACHE_DIR", value)
    _one_line_error(mscmt(["cache", "clear"]), "MSCMT_CACHE_DIR" if value == "" else "--cache-dir")  # the settings name the variable
    assert _snapshot(tmp_path) == before


def test_cache_dir_that_is_a_file_is_refused(tmp_path, mscmt):
    (tmp_path / "f").write_text("keep")
    for path, needle in ((tmp_path / "f", "is a file"), (tmp_path / "f" / "sub", f"{tmp_path / 'f'} is a file")):
        with pytest.raises(MscmtError, match="--cache-dir"):
            FeatureCache(path)
        _one_line_error(mscmt(["cache", "clear", "--cache-dir", path]), "--cache-dir", needle)
    assert (tmp_path / "f").read_text() == "keep"


def test_entries_written_before_still_count(tmp_path):
    """A cache written by the previous code (label written after the first shard folder) is read and cleared."""
    root = tmp_path / "cache"
    identity = "clip-vit-l14|/models/clip|224"
    shard = root / encoder_key(identity) / "ab"
    shard.mkdir(parents=True)
    (shard / ("ab" + "2" * 62 + ".npy")).write_bytes(b"x")
    (shard.parent / "identity.txt").write_text(identity + "\n")
    assert FeatureCache(root).info()[0][1:3] == (identity, 1)
    assert FeatureCache(root).clear() == 1 and list(root.iterdir()) == []


# -- cache build: an encoder without features, a cache dir that is a file ---------------------------


def _tiny_paths(tiny) -> dict[str, str]:
    return {"bertweet": str(tiny.bertweet), "bert-base": str(tiny.bert), "clip-vit-l14": str(tiny.clip_vision), "clip-text": str(tiny.clip)}


def test_cache_build_refuses_before_loading_anything(tmp_path):
    import io

    from rich.console import Console

    from mscmt_cli.engine.cache_jobs import build_cache
    from mscmt_cli.registry import Registry
    from mscmt_cli.settings import Settings

    (tmp_path / "f").write_text("keep")
    registry, console = Registry.from_entry_points(), Console(file=io.StringIO())
    # no --data-dir: any of these reaching the data would fail with "no data directory" instead
    for options, needle in (
        ({"image": "none"}, "--image none: this image encoder has no features"),
        ({"cache_dir": tmp_path / "f"}, "--cache-dir"),
        ({"cache_dir": tmp_path / "f" / "sub"}, "is a file"),
        ({"cache_dir": Path("")}, "--cache-dir"),
        ({"no_cache": True}, "--no-cache"),
    ):
        settings = Settings.model_validate({"cache_dir": tmp_path / "cache", "data_dir": None, **options})
        with pytest.raises(MscmtError, match=needle):
            build_cache(settings, registry, console)
    assert not (tmp_path / "cache").exists() and (tmp_path / "f").read_text() == "keep"


def test_cache_build_counts_what_it_cached(tiny, corpus, tmp_path):
    import io

    from rich.console import Console

    from mscmt_cli.engine.cache_jobs import build_cache
    from mscmt_cli.registry import Registry
    from mscmt_cli.settings import Settings

    settings = Settings.model_validate(
        {
            "image": "clip-vit-l14",
            "data_dir": corpus.data_dir,
            "corpus": corpus.name,
            "images_dir": corpus.images_dir,
            "cache_dir": tmp_path / "cache",
            "model_paths": _tiny_paths(tiny),
        }
    )
    out = io.StringIO()
    done = build_cache(settings, Registry.from_entry_points(), Console(file=out, width=300))
    from mscmt_cli.engine.data import CorpusData

    ids = {t.image_id for t in CorpusData.load(corpus.data_dir, corpus.name).all_tweets()}
    digests = {hashlib.sha256((corpus.images_dir / f"{i}.jpg").read_bytes()).hexdigest() for i in ids}
    [(_, _, cached, _)] = FeatureCache(tmp_path / "cache").info()
    assert (done.images, cached) == (len(ids), len(digests)) and done.encoder_batches >= 1
    assert f"{len(ids)} images of tiny" in out.getvalue()
    again = build_cache(settings, Registry.from_entry_points(), Console(file=io.StringIO()))
    assert again.encoder_batches == 0 and again.images == done.images


# -- 3, 4. a new run never overwrites a run or a folder that is not ours ------------------------------


def _copy_run(trained_run: Path, dest: Path, drop: tuple[str, ...] = ()) -> Path:
    import shutil

    shutil.copytree(trained_run, dest)
    for name in drop:
        shutil.rmtree(dest / name) if (dest / name).is_dir() else (dest / name).unlink()
    return dest


def test_finished_run_without_checkpoint_is_not_overwritten(trained_run, tiny, corpus, tmp_path, mscmt):
    run = _copy_run(trained_run, tmp_path / "R", drop=("checkpoint",))
    before = _snapshot(run)
    _one_line_error(mscmt(train_args(corpus, run, tiny)), f"--out {run} already holds a run", "model", "run.json")
    assert _snapshot(run) == before
    (run / "test_scores.json").unlink()  # any one record is enough to refuse
    for name in ("model", "run.json"):
        only = _copy_run(trained_run, tmp_path / f"only-{name}", drop=tuple(n.name for n in trained_run.iterdir() if n.name != name))
        _one_line_error(mscmt(train_args(corpus, only, tiny)), "already holds a run", name)


def test_out_that_is_not_a_new_directory_is_refused_before_loading(tiny, tmp_path, monkeypatch, mscmt):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.txt").write_text("keep")
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "a.jpg").write_bytes(b"k")
    before = _snapshot(tmp_path)
    missing_data = ["--data-dir", tmp_path / "no-such-data"]  # reaching the data would fail differently
    cases = [
        ("", "--out: an empty path (or '.') means the current directory"),
        (".", "--out: an empty path"),
        (tmp_path / "notes.txt", "is a file, not a directory"),
        (tmp_path / "notes.txt" / "run", f"{tmp_path / 'notes.txt'} is a file"),
        (tmp_path / "photos", "is not empty (it holds a.jpg)"),
    ]
    for out, needle in cases:
        result = mscmt(
            ["train", "--text", "bertweet", "--image", "none", "--fusion", "none", *missing_data, "--out", out, *tiny.model_path_args()]
        )
        _one_line_error(result, needle)
    monkeypatch.setenv("MSCMT_OUT", "")
    _one_line_error(mscmt(["train", "--text", "bertweet", "--image", "none", "--fusion", "none", *missing_data]), "MSCMT_OUT", "empty path")
    monkeypatch.delenv("MSCMT_OUT")
    monkeypatch.setenv("MSCMT_CACHE_DIR", "")  # the feature cache would be written into the current directory
    _one_line_error(
        mscmt(["train", "--text", "bertweet", "--image", "none", "--fusion", "none", *missing_data, "--out", tmp_path / "new"]),
        "MSCMT_CACHE_DIR",
        "empty path",
    )
    assert _snapshot(tmp_path) == before


def test_fresh_run_dir_rules(trained_run, tmp_path):
    from mscmt_cli.engine.rundir import check_fresh_run_dir
    from mscmt_cli.engine.trainer import train
    from mscmt_cli.settings import Settings

    assert check_fresh_run_dir(tmp_path / "new") == tmp_path / "new"
    (tmp_path / "empty").mkdir()
    check_fresh_run_dir(tmp_path / "empty")
    # killed during its first epoch: run.json and an empty metrics.jsonl, nothing to lose
    killed = _copy_run(trained_run, tmp_path / "killed", drop=("checkpoint", "model", "test_scores.json"))
    (killed / "metrics.jsonl").write_text("")
    (killed / ".checkpoint.abc123").mkdir()
    check_fresh_run_dir(killed)
    (killed / "metrics.jsonl").write_text('{"epoch": 1}\n')
    with pytest.raises(MscmtError, match="already holds a run"):
        check_fresh_run_dir(killed)
    with pytest.raises(MscmtError, match="--resume"):
        check_fresh_run_dir(trained_run)
    for bad in ("", "."):  # the library entry point refuses too, whatever the CLI passes
        with pytest.raises(MscmtError, match="--out: an empty path"):
            train(Settings.model_validate({"out": Path(bad)}))
    with pytest.raises(MscmtError, match="--resume .*does not exist"):
        train(Settings.model_validate({"out": tmp_path / "nope"}), resume=True)


# -- 9. a non-finite loss stops training and never becomes "best" -----------------------------------


@pytest.mark.parametrize("value", ["inf", "-inf", "nan", "1e999"])
def test_non_finite_settings_are_refused_before_anything_is_written(tiny, corpus, tmp_path, mscmt, value):
    out = tmp_path / "wd"
    for option in ("--weight-decay", "--lr", "--dropout", "--max-grad-norm"):
        _one_line_error(mscmt(train_args(corpus, out, tiny, extra=[option, value])), f"option {option}")
    assert not out.exists()


def test_a_diverging_first_epoch_stops_training_and_saves_nothing(tiny, corpus, tmp_path, monkeypatch, mscmt):
    from mscmt_cli.model.mner import MNERModel

    forward = MNERModel.forward

    def poisoned_forward(self, batch):
        output = forward(self, batch)
        if output.loss is not None and self.training:
            output.loss = output.loss * float("nan")
        return output

    monkeypatch.setattr(MNERModel, "forward", poisoned_forward)
    out = tmp_path / "wd"
    result = mscmt(train_args(corpus, out, tiny, epochs=2))
    _one_line_error(result, "training diverged in epoch 1, step 1", "--weight-decay", "no epoch was saved")
    assert not (out / "model").exists() and not (out / "checkpoint").exists()
    assert (out / "metrics.jsonl").read_text() == ""
    monkeypatch.setattr(MNERModel, "forward", forward)
    # nothing was lost, so the same --out may be trained again
    again = mscmt(train_args(corpus, out, tiny))
    assert again.code == 0, again.err


def test_divergence_keeps_the_last_finite_epoch(tiny, corpus, tmp_path, monkeypatch, mscmt):
    from safetensors.torch import load_file

    from mscmt_cli.engine import trainer
    from mscmt_cli.model.mner import MNERModel

    epoch = {"now": 0}
    run_epoch, forward = trainer.Run.run_epoch, MNERModel.forward

    def counting_run_epoch(self, n):
        epoch["now"] = n
        return run_epoch(self, n)

    def poisoned_forward(self, batch):
        output = forward(self, batch)
        if epoch["now"] == 2 and output.loss is not None:
            output.loss = output.loss * float("inf")
        return output

    monkeypatch.setattr(trainer.Run, "run_epoch", counting_run_epoch)
    monkeypatch.setattr(MNERModel, "forward", poisoned_forward)
    out = tmp_path / "poisoned"
    result = mscmt(train_args(corpus, out, tiny, epochs=3, extra=["--patience", "3"]))
    _one_line_error(result, "training diverged in epoch 2, step 1: the loss is inf", "keeps epoch 1 in its checkpoint")
    weights = load_file(str(out / "model" / "model.safetensors"))
    assert all(torch.isfinite(w).all() for w in weights.values())
    checkpoint = load_file(str(out / "checkpoint" / "model.safetensors"))
    assert all(torch.equal(weights[k], checkpoint[k]) for k in weights), "epoch 1 was the best and the last kept"
    assert [line.count('"epoch": 1') for line in (out / "metrics.jsonl").read_text().splitlines()] == [1]


def test_non_finite_weights_are_found():
    from mscmt_cli.engine.trainer import non_finite_parameters

    model = torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.Linear(3, 2))
    assert non_finite_parameters(model) == []
    with torch.no_grad():
        model[1].bias[0] = float("nan")
        model[0].weight[2, 1] = float("-inf")
    assert non_finite_parameters(model) == ["0.weight", "1.bias"]


# -- from 14: any integer seed trains; the seeds torch accepted keep their batches -------------------


@hyp_settings(max_examples=60, deadline=None)
@given(seed=st.integers(min_value=-(2**80), max_value=2**80), epoch=st.integers(min_value=1, max_value=500))
def test_every_seed_makes_a_generator(seed, epoch):
    from mscmt_cli.engine.trainer import epoch_seed, seed_everything, torch_seed

    generator = torch.Generator().manual_seed(epoch_seed(seed, epoch))
    seed_everything(seed)
    if 0 <= seed * 1000 + epoch < 2**64:
        assert epoch_seed(seed, epoch) == seed * 1000 + epoch  # unchanged: old runs resume with the same batches
    if -(2**63) <= seed * 1000 + epoch < 2**64:  # what torch took before: the very same generator
        old = torch.Generator().manual_seed(seed * 1000 + epoch)
        assert torch.equal(torch.randperm(20, generator=old), torch.randperm(20, generator=generator))
    assert 0 <= torch_seed(seed) < 2**64


def test_largest_seed_trains(tiny, corpus, tmp_path, mscmt):
    out = tmp_path / "seed"
    result = mscmt(train_args(corpus, out, tiny, extra=["--seed", 2**63 - 1]))
    assert result.code == 0, result.err
    assert (out / "test_scores.json").is_file()


# -- from 14: resuming a checkpoint that does not fit the run ------------------------------------------


def _resume(mscmt, tiny, run: Path):
    return mscmt(["train", "--resume", run, *tiny.model_path_args()])


@pytest.mark.parametrize("change", ["drop", "add", "reshape"])
def test_resume_with_weights_of_another_model(trained_run, tiny, tmp_path, mscmt, change):
    from safetensors.torch import load_file, save_file

    run = _copy_run(trained_run, tmp_path / "R")
    path = run / "checkpoint" / "model.safetensors"
    weights = load_file(str(path))
    name = sorted(k for k in weights if k.startswith("fusion."))[0]
    if change == "drop":
        del weights[name]
    elif change == "add":
        weights["fusion.extra.weight"] = torch.zeros(2, 2)
    else:
        weights[name] = torch.zeros(*weights[name].shape, 2)
    save_file(weights, str(path))
    before = _snapshot(run)
    label = {"drop": "missing", "add": "unexpected", "reshape": "wrong shape"}[change]
    _one_line_error(_resume(mscmt, tiny, run), f"{path}: the checkpoint's weights do not fit", label)
    assert _snapshot(run) == before


@pytest.mark.parametrize("damage", ["no optimizer", "not a dict", "other optimizer", "truncated"])
def test_resume_with_a_broken_state(trained_run, tiny, tmp_path, mscmt, damage):
    run = _copy_run(trained_run, tmp_path / "R")
    path = run / "checkpoint" / "state.pt"
    state = torch.load(path, weights_only=True)
    if damage == "no optimizer":
        del state["optimizer"]
        torch.save(state, path)
    elif damage == "not a dict":
        torch.save([1, 2, 3], path)
    elif damage == "other optimizer":
        state["optimizer"]["param_groups"][0]["params"] = [0]
        torch.save(state, path)
    else:
        path.write_bytes(path.read_bytes()[:100])
    before = _snapshot(run)
    needle = {
        "no optimizer": "no optimizer",
        "not a dict": "not a whole training state",
        "other optimizer": "does not fit this run",
        "truncated": "unreadable checkpoint",
    }[damage]
    _one_line_error(_resume(mscmt, tiny, run), str(path.parent), needle)
    assert _snapshot(run) == before


# -- 10 and from 14: a study reuses a finished row only if it is provably the same row -----------------


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


def test_run_json_names_its_own_bad_settings(trained_run, tiny, tmp_path, mscmt):
    import json

    from mscmt_cli.engine.rundir import read_run_settings

    run = _copy_run(trained_run, tmp_path / "R")
    record = json.loads((run / "run.json").read_text())
    for change, needle in (
        ({"foo": 1}, "run.json: unknown setting 'foo'"),
        ({"lr": "fast"}, "run.json: setting 'lr'"),
        ({"epochs": 0}, "run.json: setting 'epochs'"),
    ):
        (run / "run.json").write_text(json.dumps({**record, "settings": {**record["settings"], **change}}))
        with pytest.raises(MscmtError, match=needle):
            read_run_settings(run)
        result = _resume(mscmt, tiny, run)
        _one_line_error(result, str(run / "run.json"), needle)
        assert "option --" not in result.err
    (run / "run.json").write_text('{"settings": {}, \n  oops')
    _one_line_error(_resume(mscmt, tiny, run), f"{run / 'run.json'}:2: not valid JSON")


# -- from 14: evaluate --json DIR, atomic writes that fail, a model directory that is not ours ----------


def test_atomic_write_refuses_a_directory_and_leaves_no_temp_file(tmp_path, monkeypatch):
    from mscmt_cli import paths
    from mscmt_cli.engine import rundir

    (tmp_path / "d").mkdir()
    (tmp_path / "f").write_text("keep")
    for target, needle in ((tmp_path / "d", "is a directory"), (tmp_path / "f" / "x.json", "is a file")):
        with pytest.raises(MscmtError, match=needle):
            rundir.write_json(target, {"a": 1})
    monkeypatch.setattr(paths.os, "replace", lambda *a: (_ for _ in ()).throw(PermissionError(13, "Permission denied")))
    with pytest.raises(MscmtError, match="x.json: cannot write"):
        rundir.write_json(tmp_path / "x.json", {"a": 1})
    with pytest.raises(UnicodeEncodeError):
        rundir.write_text_atomic(tmp_path / "y.txt", "lone \ud800")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d", "f"] and list((tmp_path / "d").iterdir()) == []


def test_evaluate_json_target_is_checked_before_scoring(trained_run, tmp_path, monkeypatch):
    import io

    from rich.console import Console

    from mscmt_cli.engine import evaluation_job
    from mscmt_cli.settings import Settings

    scored = []
    monkeypatch.setattr(evaluation_job, "evaluate_run", lambda *a, **k: scored.append(1) or {"micro": {}})
    (tmp_path / "d").mkdir()
    console = Console(file=io.StringIO())
    for target, needle in ((tmp_path / "d", "--json .*: is a directory"), (Path(""), "--json: an empty path")):
        with pytest.raises(MscmtError, match=needle):
            evaluation_job.run_evaluate(trained_run, Settings(), "test", None, console, target)
    assert scored == [] and list((tmp_path / "d").iterdir()) == []
    evaluation_job.run_evaluate(trained_run, Settings(), "test", None, console, tmp_path / "d" / "s.json")
    assert scored == [1] and (tmp_path / "d" / "s.json").read_text().strip() == '{\n  "micro": {}\n}'


def test_evaluate_json_dir_through_the_cli(trained_run, corpus, tiny, tmp_path, mscmt):
    (tmp_path / "d").mkdir()
    _one_line_error(mscmt(["evaluate", trained_run, *corpus.args(), "--json", tmp_path / "d", *tiny.model_path_args()]), "is a directory")
    assert list((tmp_path / "d").iterdir()) == []


def test_a_foreign_config_json_is_not_a_model(tiny, tmp_path, mscmt, corpus):
    _one_line_error(mscmt(["evaluate", tiny.bertweet, *corpus.args()]), f"{tiny.bertweet}: not an mscmt model directory")


def test_truncated_model_weights_are_named(trained_run, corpus, tiny, tmp_path, mscmt):
    run = _copy_run(trained_run, tmp_path / "R")
    weights = run / "model" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    _one_line_error(mscmt(["evaluate", run, *corpus.args(), *tiny.model_path_args()]), f"{weights}: unreadable weights")
