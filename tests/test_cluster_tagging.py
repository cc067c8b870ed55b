"""``mscmt tag INPUT --ray``: JSON Lines and Parquet shards tagged by Ray actors, checked against ``mscmt tag`` in one process."""

from __future__ import annotations

import datetime
import json
import math
import shutil
import sys
from pathlib import Path

import pytest

from mscmt_cli.cluster.connect import INSTALL_HINT
from mscmt_cli.cluster.tagging import ordered_results, plan_output
from mscmt_cli.data.doc import InputError
from mscmt_cli.errors import MscmtError
from mscmt_cli.settings import Settings
from mscmt_cli.tagging.inputs import MAX_LINE_BYTES, BadRecord, LongLine
from mscmt_cli.tagging.jobs import load_tagger
from mscmt_cli.tagging.shards import Chunk, Shard, find_shards, parquet_line, parse_chunk, read_chunks, tag_chunk
from tests.cli_support import one_line_error
from tests.conftest import import_or_skip, needs
from tests.tagging_support import TRICKY_TEXTS

WORDS = [
    "Obama",
    "visits",
    "Paris",
    "with",
    "John",
    "Kerry",
    "at",
    "the",
    "United",
    "Nations",
    "in",
    "New",
    "York",
    "today",
    "#news",
    "@cnn",
    "🇫🇷",
    "Москва",
]


def _clip_args(tiny) -> list[str]:
    return ["--model-path", f"clip-vit-l14={tiny.clip_vision}"]


def _text(n: int) -> str:
    return " ".join(WORDS[(n * 7 + k * 3) % len(WORDS)] for k in range(3 + n % 9))


def _lively_copy(run: Path, dest: Path) -> Path:
    """A copy of ``run`` whose classifier gives varied tags (random weights, no CRF preference): every output says something."""
    import torch
    from safetensors.torch import load_file, save_file

    shutil.copytree(run, dest)
    weights = load_file(str(dest / "model" / "model.safetensors"))
    torch.manual_seed(0)
    weights["classifier.weight"] = 3 * torch.randn_like(weights["classifier.weight"])
    weights["classifier.bias"] = torch.zeros_like(weights["classifier.bias"])
    for name in ("decoder.crf.transitions", "decoder.crf.start_transitions", "decoder.crf.end_transitions"):
        weights[name] = torch.zeros_like(weights[name])
    save_file(weights, str(dest / "model" / "model.safetensors"))
    return dest


def _write_jsonl(path: Path, lines: list[str | bytes]) -> None:
    path.write_bytes(b"".join((line if isinstance(line, bytes) else line.encode("utf-8")) + b"\n" for line in lines))


def _write_parquet(path: Path, rows: list[dict]) -> None:
    pa = import_or_skip("pyarrow")
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(rows), path, row_group_size=100)


# --- without Ray: the options, the shards, the chunks ---


def test_without_ray_the_option_says_how_to_install_it(mscmt, trained_run, monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError
    _write_jsonl(tmp_path / "a.jsonl", ['{"text": "x"}'])
    result = mscmt(["tag", tmp_path / "a.jsonl", "--model", trained_run, "--ray", "local", "--out", tmp_path / "out.jsonl"])
    assert result.code == 2 and result.err.strip() == f"error: {INSTALL_HINT}"
    assert not (tmp_path / "out.jsonl").exists()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--workers", "2"], "--workers needs --ray ADDRESS"),
        (["--gpus-per-worker", "1"], "--gpus-per-worker needs --ray ADDRESS"),
        (["--ray", "local", "--explain", "pages"], "--explain is not available with --ray"),
        pytest.param(["--ray", "nowhere"], "--ray 'nowhere': expected local, auto, ray://HOST:PORT or HOST:PORT", marks=needs("ray")),
    ],
)
def test_ray_options_are_checked_before_anything_runs(mscmt, trained_run, tmp_path, extra, message):
    _write_jsonl(tmp_path / "a.jsonl", ['{"text": "x"}'])
    result = mscmt(["tag", tmp_path / "a.jsonl", "--model", trained_run, *extra])
    one_line_error(result, f"error: {message}", alone=True)


def test_shards_of_a_directory_a_glob_and_a_file(tmp_path):
    (tmp_path / "d").mkdir()
    for name in ("b.jsonl", "a.json", "c.ndjson", "_SUCCESS", ".a.jsonl.crc"):
        (tmp_path / "d" / name).write_text('{"text": "x"}\n')
    _write_parquet(tmp_path / "d" / "e.parquet", [{"text": "y"}])
    shards, ignored = find_shards(str(tmp_path / "d"))
    assert [s.path.name for s in shards] == ["a.json", "b.jsonl", "c.ndjson", "e.parquet"]
    assert [s.kind for s in shards] == ["jsonl", "jsonl", "jsonl", "parquet"] and shards[-1].rows == 1
    assert sorted(ignored) == [".a.jsonl.crc", "_SUCCESS"]
    assert [s.out_name for s in shards] == ["a.jsonl", "b.jsonl", "c.jsonl", "e.jsonl"]
    shards, _ = find_shards(str(tmp_path / "d" / "*.*json*"))
    assert [s.path.name for s in shards] == ["a.json", "b.jsonl", "c.ndjson"]
    assert [s.path.name for s in find_shards(str(tmp_path / "d" / "b.jsonl"))[0]] == ["b.jsonl"]
    (tmp_path / "conll.txt").write_text("\n\nIMGID:1\nObama\tB-PER\n")
    (tmp_path / "bad.parquet").write_text("not parquet")
    (tmp_path / "empty").mkdir()
    for name, message in (
        ("conll.txt", "an IMGID CoNLL file; --ray tags JSON Lines and Parquet shards"),
        ("bad.parquet", "not a readable Parquet file"),
        ("empty", "holds no .jsonl, .json, .ndjson or .parquet file"),
        ("nothing*.jsonl", "no file matches this pattern"),
        ("missing.jsonl", "input file not found"),
    ):
        with pytest.raises(MscmtError, match=message):
            find_shards(str(tmp_path / name))
    with pytest.raises(MscmtError, match="not - "):
        find_shards("-")


def test_parquet_rows_are_their_json_lines():
    when = datetime.datetime(2017, 3, 1, 12, 30, tzinfo=datetime.timezone.utc)
    row = {"id": 7, "text": "Obama 🇫🇷", "tokens": None, "at": when, "day": datetime.date(2017, 3, 1), "score": 0.5}
    assert json.loads(parquet_line(row)) == {**row, "at": "2017-03-01T12:30:00+00:00", "day": "2017-03-01"}
    with pytest.raises(InputError, match="column 'score': NaN or infinity is not a JSON number"):
        parquet_line({**row, "score": math.nan})
    with pytest.raises(InputError, match="column 'blob': a bytes value has no JSON form"):
        parquet_line({**row, "blob": b"\x00"})


def test_chunks_keep_line_numbers_within_windows_and_bytes(tmp_path):
    lines = [json.dumps({"n": i, "text": _text(i)}) for i in range(25)]
    lines[3] = ""
    lines[7] = "{broken"
    _write_jsonl(tmp_path / "a.jsonl", lines)
    _write_jsonl(tmp_path / "b.jsonl", [])
    _write_jsonl(
        tmp_path / "c.jsonl",
        [b"\xef\xbb\xbf" + json.dumps({"n": 0, "text": "bom"}).encode(), b'{"text": "' + b"x" * MAX_LINE_BYTES + b'"}'],
    )
    shards, _ = find_shards(str(tmp_path))
    chunks = list(read_chunks(shards, window=10, max_bytes=400))
    assert [(c.shard, c.first_line, len(c.lines)) for c in chunks if c.shard == 1] == [(1, 1, 0)], "an empty shard has one empty chunk"
    first = [c for c in chunks if c.shard == 0]
    assert all(sum(bool(line.strip()) for line in c.lines) <= 10 and (c.size <= 400 or len(c.lines) == 1) for c in first)
    assert [c.first_line for c in first] == [1] + [sum(len(c.lines) for c in first[:k]) + 1 for k in range(1, len(first))]
    assert sum(c.size for c in chunks) == sum(s.size for s in shards)
    items = [item for c in first for item in parse_chunk(c)]
    assert [i.line for i in items] == [n + 1 for n in range(25) if n != 3], "blank lines dropped, numbers kept"
    assert isinstance(items[6], BadRecord) and items[6].line == 8 and "invalid JSON" in items[6].message
    assert [i.record["n"] for i in items if not isinstance(i, BadRecord)] == [n for n in range(25) if n not in (3, 7)]
    last = [item for c in chunks if c.shard == 2 for item in parse_chunk(c)]
    assert last[0].record == {"n": 0, "text": "bom"} and isinstance(last[1], BadRecord) and "over the limit" in last[1].message
    assert isinstance(next(c for c in chunks if c.shard == 2 and len(c.lines) == 1 and c.first_line == 2).lines[0], LongLine)


def test_parquet_rows_have_the_line_limit_and_chunk_bound_of_json_lines(tmp_path):
    """Rows of 1.5 MB (compressing to almost nothing) are over the 1 MiB line limit as they are in JSON Lines,
    and a chunk's size is the decoded lines' bytes, so no chunk holds more than its bound of them."""
    from mscmt_cli.tagging.inputs import MAX_LINE_BYTES, LongLine

    rows = [{"text": ("x" * 1_500_000 if k % 3 == 0 else "y" * 300_000), "n": k} for k in range(12)]
    _write_parquet(tmp_path / "p.parquet", rows)
    _write_jsonl(tmp_path / "j.jsonl", [json.dumps(r) for r in rows])
    (jsonl, parquet), _ = find_shards(str(tmp_path))
    assert parquet.size < 100_000, "the file is small: its compressed size says nothing of its rows"
    seen = {}
    for shard in (jsonl, parquet):
        chunks = list(read_chunks([shard], window=1024, max_bytes=1_000_000))
        lines = [line for chunk in chunks for line in chunk.lines]
        seen[shard.kind] = [line.size if isinstance(line, LongLine) else json.loads(line) for line in lines]
        for chunk in chunks:
            kept = sum(len(line.rstrip(b"\n")) + 1 for line in chunk.lines if isinstance(line, bytes))
            assert kept <= 1_000_000 or len(chunk.lines) == 1
            assert chunk.size >= kept
    assert seen["parquet"] == seen["jsonl"]
    assert [s for s in seen["parquet"] if isinstance(s, int)] == [len(json.dumps({"text": "x" * 1_500_000, "n": k})) for k in (0, 3, 6, 9)]
    assert all(s > MAX_LINE_BYTES for s in seen["parquet"] if isinstance(s, int))


def test_a_parquet_shard_with_corrupt_pages_is_one_bad_line_and_keeps_its_readable_rows(tmp_path):
    """Pages garbled behind an intact footer (the footer still gives the row count): the rows before them are
    read, then one bad line names the row reached; a good shard beside it is read whole."""
    import pyarrow.parquet as pq

    rows = [{"text": f"tweet number {k}", "n": k} for k in range(500)]
    _write_parquet(tmp_path / "a-bad.parquet", rows)
    _write_parquet(tmp_path / "b-good.parquet", rows)
    page = pq.ParquetFile(tmp_path / "a-bad.parquet").metadata.row_group(2).column(0).data_page_offset
    data = bytearray((tmp_path / "a-bad.parquet").read_bytes())
    data[page + 20 : page + 60] = bytes(b ^ 0x5A for b in data[page + 20 : page + 60])
    (tmp_path / "a-bad.parquet").write_bytes(bytes(data))
    shards, _ = find_shards(str(tmp_path))
    assert shards[0].rows == 500
    items = {k: [i for c in read_chunks(shards, window=64) if c.shard == k for i in parse_chunk(c)] for k in (0, 1)}
    bad = [i for i in items[0] if isinstance(i, BadRecord)]
    assert len(bad) == 1 and bad[0] is items[0][-1] and "unreadable Parquet data from row" in bad[0].message
    good = [i.record["n"] for i in items[0] if not isinstance(i, BadRecord)]
    assert good == list(range(len(good))) and 100 <= len(good) < 500 and bad[0].line == len(good) + 1
    assert [i.record["n"] for i in items[1]] == list(range(500))


def test_a_chunk_is_tagged_as_one_process_tags_its_lines(mscmt, trained_run, tiny, corpus, tmp_path):
    image = sorted(corpus.images_dir.glob("*.jpg"))[0].name
    lines = [json.dumps({"id": i, "text": t, **({"image": image} if i % 2 else {})}) for i, t in enumerate(TRICKY_TEXTS)]
    lines[2] = json.dumps({"id": 2, "text": "x", "image": "no-such.jpg"})
    _write_jsonl(tmp_path / "a.jsonl", lines)
    one = mscmt(
        ["tag", tmp_path / "a.jsonl", "--model", trained_run, "--images", corpus.images_dir, "--missing-images", "error", *_clip_args(tiny)]
    )
    assert one.code == 0, one.err
    shards, _ = find_shards(str(tmp_path / "a.jsonl"))
    (chunk,) = read_chunks(shards)
    settings = Settings(
        model=trained_run, images_dir=corpus.images_dir, missing_images="error", model_paths={"clip-vit-l14": str(tiny.clip_vision)}
    )
    tagged = tag_chunk(load_tagger(settings), chunk)  # as a worker loads and tags
    assert [x for x in tagged if not isinstance(x, BadRecord)] == [line.encode() + b"\n" for line in one.out.splitlines()]
    (bad,) = [x for x in tagged if isinstance(x, BadRecord)]
    assert bad.line == 3 and f"a.jsonl:3: {bad.message}" in one.err


def test_a_worker_reports_the_missing_captions_as_one_process_does(context_run, tiny, corpus, tmp_path):
    """``tag --cluster`` says every end-of-run note of the Tagger (missing images and missing captions), not images only."""
    from mscmt_cli.cluster.tagging import TagWorker

    _write_jsonl(tmp_path / "a.jsonl", [json.dumps({"text": "Obama in Paris", "image": "unknown.jpg"}), json.dumps({"text": "x"})])
    (chunk,) = read_chunks(find_shards(str(tmp_path / "a.jsonl"))[0])
    settings = Settings(
        model=context_run,
        captions=corpus.captions,
        missing_images="blank",
        no_cache=True,
        model_paths={"clip-vit-l14": str(tiny.clip_vision)},
    )
    worker = TagWorker(settings)
    assert worker.report() == []
    tagged = worker.tag(chunk)
    assert len(tagged) == 2 and not any(isinstance(t, BadRecord) for t in tagged)
    notes = worker.report()
    assert f"1 image(s) without a caption in {corpus.captions} read as an empty caption (policy 'blank'): unknown.jpg" in notes


def test_bad_line_100_is_reported_as_line_100(mscmt, trained_run, tiny, tmp_path):
    """The report is plain text: rich once printed ``a.jsonl:100:`` as an emoji."""
    _write_jsonl(tmp_path / "a.jsonl", ['{"text": "x"}'] * 99 + ["{broken"])
    result = mscmt(["tag", tmp_path / "a.jsonl", "--model", trained_run, *_clip_args(tiny), "--out", tmp_path / "out.jsonl"])
    assert result.code == 0 and f"{tmp_path / 'a.jsonl'}:100: invalid JSON" in result.err


def test_output_plans_refuse_to_replace_an_input(tmp_path):
    _write_jsonl(tmp_path / "a.jsonl", ['{"text": "x"}'])
    _write_parquet(tmp_path / "a.parquet", [{"text": "y"}])
    _write_jsonl(tmp_path / "b.json", ['{"text": "x"}'])
    shards, _ = find_shards(str(tmp_path / "*.json*"))
    reads = [("the input", s.path) for s in shards]
    with pytest.raises(MscmtError, match="is the same file as the input"):
        plan_output(tmp_path, shards, reads)  # a.jsonl would be written over itself
    with pytest.raises(MscmtError, match="is the same file as the input"):
        plan_output(tmp_path / "a.jsonl", shards, reads)
    assert plan_output(tmp_path / "new", shards, reads).file == tmp_path / "new"
    assert plan_output(f"{tmp_path / 'new'}/", shards, reads).directory == tmp_path / "new"
    both, _ = find_shards(str(tmp_path / "a.*"))
    with pytest.raises(MscmtError, match="would both be written to a.jsonl"):
        plan_output(f"{tmp_path / 'out'}/", both, [])


class _Actors:
    """What :func:`ordered_results` uses of Ray: ``actor.tag.remote(chunk)``, ``ray.get`` and ``ray.cancel``."""

    def __init__(self, count: int, fail_at: int | None = None) -> None:
        self.count, self.fail_at = count, fail_at
        self.sent: list[tuple[int, int]] = []  # (actor, chunk's first line)
        self.taken = self.most_in_flight = 0
        self.cancelled: list[int] = []
        self.actors = [self._actor(k) for k in range(count)]

    def _actor(self, k: int):
        fake = self

        class Tag:
            @staticmethod
            def remote(chunk):
                fake.sent.append((k, chunk.first_line))
                fake.most_in_flight = max(fake.most_in_flight, len(fake.sent) - fake.taken)
                return chunk.first_line

        return type("Actor", (), {"tag": Tag})()

    def get(self, ref: int) -> list:
        self.taken += 1
        if ref == self.fail_at:
            raise RuntimeError("worker lost")
        return [f"{ref}".encode()]

    def cancel(self, ref: int) -> None:
        self.cancelled.append(ref)


def test_ordered_results_keep_order_and_hold_two_chunks_per_worker(tmp_path):
    shards = [Shard(tmp_path / "a.jsonl", "jsonl", 0)]
    pulled = []

    def chunks():
        for i in range(20):
            pulled.append(i)
            yield Chunk(0, 1 + 10 * i, [b"{}"] * 10, 10)

    fake = _Actors(2)
    seen = []
    for chunk, result in ordered_results(fake, fake.actors, chunks(), shards):
        assert len(pulled) - len(seen) <= 5, "read ahead: two chunks per worker in flight, and the one being written"
        seen.append((chunk.first_line, result))
        assert chunk.lines == [], "a chunk's lines are not kept once sent"
    assert seen == [(1 + 10 * i, [f"{1 + 10 * i}".encode()]) for i in range(20)]
    assert fake.most_in_flight == 4 and sorted(k for k, _ in fake.sent).count(0) == 10

    fake = _Actors(2, fail_at=31)
    with pytest.raises(MscmtError, match=r"a\.jsonl: lines 31-40 could not be tagged: RuntimeError: worker lost"):
        list(ordered_results(fake, fake.actors, chunks(), shards))
    assert fake.cancelled == [41, 51, 61], "what was in flight is cancelled"


# --- on a local Ray cluster ---


def _shards(root: Path, image: str) -> dict[str, list[dict]]:
    """3,000 tweets in two JSON Lines shards (1,500 and 300, with bad lines among them) and two Parquet shards
    (700 and 500, each with a row without text and a row holding NaN); per Parquet shard, its rows as JSON objects
    (the NaN row left out: it has no JSON form)."""
    root.mkdir()
    n = 0
    for k, count in enumerate((1500, 300)):
        lines: list[str | bytes] = []
        for j in range(count):
            lines.append(json.dumps({"id": f"{k}-{j}", "text": _text(n), **({"image": image} if j % 50 == 0 else {})}, ensure_ascii=False))
            n += 1
        for at, line in ((5, "{broken"), (17, "[1]"), (40, ""), (41, '{"text": "   "}'), (290, '{"text": "x", "image": "no-such.jpg"}')):
            lines.insert(at + k, line)
        lines.insert(250, b"\xff\xfe not utf-8")
        _write_jsonl(root / f"part-{k}.jsonl", lines)
    as_json: dict[str, list[dict]] = {}
    when = datetime.datetime(2017, 3, 1, 12, 30)
    for k, count in ((2, 700), (3, 500)):
        rows = []
        for j in range(count):
            rows.append({"id": f"{k}-{j}", "text": _text(n), "at": when + datetime.timedelta(minutes=j), "score": 0.5})
            n += 1
        rows[9]["text"] = None  # no tweet
        rows[99]["score"] = math.nan  # not JSON
        _write_parquet(root / f"part-{k}.parquet", rows)
        as_json[f"part-{k}.parquet"] = [{**r, "at": r["at"].isoformat()} for r in rows if not math.isnan(r["score"])]
    (root / "_SUCCESS").write_text("")
    return as_json


def _reports(err: str, root: Path) -> list[str]:
    return [line for line in err.splitlines() if line.startswith(str(root / "part-"))]


@pytest.mark.slow
def test_shards_on_ray_equal_one_process(mscmt, trained_run, tiny, corpus, tmp_path, one_thread, ray_here):
    image = sorted(corpus.images_dir.glob("*.jpg"))[0].name
    root = tmp_path / "shards"
    parquet_as_json = _shards(root, image)
    common = ["--model", _lively_copy(trained_run, tmp_path / "run"), "--images", corpus.images_dir, "--missing-images", "error"]
    common += _clip_args(tiny)

    # the oracle: each shard tagged by `mscmt tag` in one process (a Parquet shard as the JSON Lines of its rows)
    expected: dict[int, list[dict]] = {}
    one_reports: list[str] = []
    for k in range(4):
        source = root / f"part-{k}.jsonl"
        if k >= 2:
            source = tmp_path / f"part-{k}.jsonl"
            source.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in parquet_as_json[f"part-{k}.parquet"]))
        one = mscmt(["tag", source, *common, "--out", tmp_path / f"one-{k}.jsonl"])
        assert one.code == 0, one.err
        expected[k] = [json.loads(line) for line in (tmp_path / f"one-{k}.jsonl").read_text(encoding="utf-8").splitlines()]
        one_reports += _reports(one.err, root)
    everything = [row for k in range(4) for row in expected[k]]
    assert len(everything) == 3000 - 2 * 2, "of the 3,000 tweets, each Parquet shard has a row without text and one with NaN"
    assert sum(bool(row["entities"]) for row in everything) > 1000, "the tags say something"

    cluster = mscmt(["tag", root, *common, "--ray", "local", "--workers", "2", "--out", tmp_path / "out.jsonl"])
    assert cluster.code == 0, cluster.err
    got = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines()]
    assert got == everything, "exactly the good lines, in input order, with the same tags and scores"
    reports = _reports(cluster.err, root)
    assert reports[: len(one_reports)] == one_reports, "a JSON Lines shard's bad lines are reported as in one process"
    assert [line.split(": ")[0] for line in reports[len(one_reports) :]] == [
        f"{root / f'part-{k}.parquet'}:{n}" for k in (2, 3) for n in (10, 100)
    ]
    assert f"{root / 'part-2.parquet'}:100: column 'score': NaN or infinity is not a JSON number" in reports
    assert (
        len(reports) == 2 * 5 + 2 * 2 and "skipped 14 bad line(s)" in cluster.err and "tagged 2996 tweet(s) from 4 shard(s)" in cluster.err
    )
    assert "not shards, not read: _SUCCESS" in cluster.err

    # --strict: the first bad line, in input order, stops the run; the lines before it are written
    strict = mscmt(["tag", root, *common, "--ray", "local", "--strict", "--out", tmp_path / "strict.jsonl"])
    assert strict.code == 2 and strict.err.strip().splitlines()[-1].startswith(f"error: {one_reports[0]} (--strict: stopped here)")
    assert [json.loads(line) for line in (tmp_path / "strict.jsonl").read_text().splitlines()] == expected[0][:5]

    # a directory: one output shard per input shard, each what one process writes for that shard
    split = mscmt(["tag", str(root / "part-*"), *common, "--ray", "local", "--out", f"{tmp_path / 'tagged'}/"])
    assert split.code == 0, split.err
    assert sorted(p.name for p in (tmp_path / "tagged").iterdir()) == [f"part-{k}.jsonl" for k in range(4)]
    for k in range(4):
        assert (tmp_path / "tagged" / f"part-{k}.jsonl").read_text(encoding="utf-8") == (tmp_path / f"one-{k}.jsonl").read_text(
            encoding="utf-8"
        )
