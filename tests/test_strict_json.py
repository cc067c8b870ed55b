"""Strict JSON: every JSON mscmt writes refuses NaN and infinity, and every input line holding one is a bad line.

What is checked is what a user sees: the old file kept, every good line written, no NaN in an answer.
"""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mscmt_cli.errors import MscmtError
from mscmt_cli.strict_json import loads as strict_loads
from tests.tagging_support import clip_args as _clip_args
from tests.tagging_support import nan_weights
from tests.tagging_support import write_lines as _write_lines

NON_FINITE_TEXTS = ["NaN", "Infinity", "-Infinity", "1e999", "-1e999", "1E400", "2.5e+308", "-123456789e999"]


non_finite = st.sampled_from([math.nan, math.inf, -math.inf])


json_leaf = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=5))


@st.composite
def records_with_one_non_finite(draw) -> tuple[dict, str]:
    """A nested record holding exactly one NaN/inf, and the path to it as :func:`first_non_finite` names it."""
    record = draw(st.dictionaries(st.text("abc", min_size=1, max_size=3), json_leaf, max_size=4))
    depth = draw(st.integers(0, 2))
    value, path = draw(non_finite), ""
    holder: dict = record
    for level in range(depth):
        key = f"k{level}"
        holder[key] = [draw(json_leaf), {}]
        holder, path = holder[key][1], f"{path}.{key}[1]" if path else f"{key}[1]"
    holder["bad"] = value
    return record, f"{path}.bad" if path else "bad"


@settings(max_examples=40, deadline=None)
@given(records_with_one_non_finite())
def test_run_records_refuse_non_finite_numbers_and_keep_the_old_file(tmp_path_factory, case):
    from mscmt_cli.engine.rundir import METRICS_FILE, append_metrics, rewrite_metrics, write_json

    record, where = case
    run = tmp_path_factory.mktemp("run")
    write_json(run / "run.json", {"ok": 1.5})
    append_metrics(run, {"epoch": 1, "f1": 0.5})
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    for write in (
        lambda: write_json(run / "run.json", record),
        lambda: append_metrics(run, record),
        lambda: rewrite_metrics(run, [{"epoch": 1}, record]),
    ):
        with pytest.raises(MscmtError) as err:
            write()
        message = str(err.value)
        assert where in message and "not JSON" in message and ("run.json" in message or METRICS_FILE in message)
        assert "\n" not in message
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before, "a refused record must leave the files as they were"
    assert [strict_loads(line) for line in (run / METRICS_FILE).read_text().splitlines()] == [{"epoch": 1, "f1": 0.5}]


@pytest.mark.parametrize("number", NON_FINITE_TEXTS)
def test_non_finite_numbers_anywhere_in_an_input_line_make_it_a_bad_line(number):
    from mscmt_cli.tagging.inputs import BadRecord, InputRecord, parse_json_line

    for line in (f'{{"text": "a b", "x": {number}}}', f'{{"text": "a b", "deep": [1, {{"y": [{number}]}}]}}', f"{number}"):
        item = parse_json_line(7, line.encode())
        assert isinstance(item, BadRecord) and item.line == 7 and "JSON" in item.message, (line, item)
    assert isinstance(parse_json_line(1, b'{"text": "a", "x": 1e308, "y": -0.0, "z": 123456789012345678901234567890}'), InputRecord)


@pytest.mark.parametrize("depth", [99, 100, 980, 995, 100_000])
def test_nesting_is_limited_at_a_fixed_depth_so_every_line_read_can_be_written(depth):
    from mscmt_cli.tagging.inputs import MAX_NESTING, BadRecord, InputRecord, parse_json_line
    from mscmt_cli.tagging.tagger import TagResult

    item = parse_json_line(3, ('{"text": "a", "x": ' + "[" * depth + "]" * depth + "}").encode())
    if depth + 1 <= MAX_NESTING:
        assert isinstance(item, InputRecord)
        from mscmt_cli.tagging.jobs import output_line

        result = TagResult(item.doc, ["O"], [1.0], [])
        assert strict_loads(output_line(item.record, result))["x"] == item.record["x"]
    else:
        assert isinstance(item, BadRecord) and item.line == 3 and ("nested deeper" in item.message or "invalid JSON" in item.message)


def test_tag_output_is_strict_json_and_keeps_every_good_line(mscmt, trained_run, tiny, tmp_path):
    lines = []
    for i, number in enumerate(NON_FINITE_TEXTS):
        lines += [json.dumps({"id": f"good{i}", "text": "Obama in Paris", "x": 1e308}), f'{{"id": "bad{i}", "text": "x", "n": {number}}}']
    src = _write_lines(tmp_path / "in.jsonl", lines)
    result = mscmt(["tag", src, "--model", trained_run, "--out", tmp_path / "out.jsonl", *_clip_args(tiny)])
    assert result.code == 0, result.err
    rows = [strict_loads(line) for line in (tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [r["id"] for r in rows] == [f"good{i}" for i in range(len(NON_FINITE_TEXTS))]
    for k in range(len(NON_FINITE_TEXTS)):
        assert f"in.jsonl:{2 * k + 2}: invalid JSON" in result.err


def test_a_model_scoring_nan_gives_bad_lines_and_a_500_never_nan_json(tagger, tmp_path):
    from fastapi.testclient import TestClient

    from mscmt_cli.tagging.inputs import iter_jsonl
    from mscmt_cli.tagging.server import create_app
    from mscmt_cli.tagging.stream import NOT_FINITE, tag_stream

    written, bad = [], []
    with nan_weights(tagger):
        tally = tag_stream(
            tagger,
            iter_jsonl([b'{"text": "Obama in Paris"}\n', b'{"text": "again"}\n']),
            on_result=lambda item, result: written.append(item),
            on_bad=bad.append,
        )
        answer = TestClient(create_app(tagger)).post("/tag", json={"text": "Obama in Paris"})
    assert not written and tally.bad == 2 and [b.line for b in bad] == [1, 2] and bad[0].message == NOT_FINITE
    assert answer.status_code == 500 and "not finite" in answer.json()["detail"]
