"""``mscmt serve``'s app started for real (uvicorn on a free loopback port) and called over HTTP; odd request bodies
through FastAPI's test client."""

from __future__ import annotations

import base64

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.tagging_support import TRICKY_TEXTS, image_bytes, serving


@pytest.fixture(scope="module")
def server(tagger):
    from mscmt_cli.tagging.server import Limits

    limits = Limits(max_body_bytes=200_000, max_image_bytes=100_000, max_batch=4, max_text_chars=500, max_tokens=100)
    with serving(tagger, limits=limits) as (port, _), httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
        yield client


def test_health_and_info(server, tagger):
    assert server.get("/health").json() == {"status": "ok"}
    info = server.get("/info").json()
    assert info["labels"] == tagger.labels and info["components"]["fusion"] == "gated" and info["has_gate"] is True
    assert info["limits"]["max_batch"] == 4


def test_tag_json_with_base64_image_matches_the_python_api(server, tagger):
    png = image_bytes((10, 200, 10), (32, 24))
    for image in (base64.b64encode(png).decode(), "data:image/png;base64," + base64.b64encode(png).decode()):
        resp = server.post("/tag", json={"text": TRICKY_TEXTS[0], "image": image})
        assert resp.status_code == 200, resp.text
        body = resp.json()
        expected = tagger.tag(TRICKY_TEXTS[0], image=png)
        assert body["text"] == TRICKY_TEXTS[0] and body["tokens"] == expected.tokens and body["tags"] == expected.tags
        assert all(body["text"][e["start"] : e["end"]] == e["text"] for e in body["entities"])


def test_tag_multipart_upload(server):
    resp = server.post(
        "/tag", data={"text": "Obama in Paris"}, files={"image": ("x.png", image_bytes((10, 200, 10), (32, 24)), "image/png")}
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["tokens"] == ["Obama", "in", "Paris"]


def test_batch_keeps_order(server):
    items = [{"text": t} for t in TRICKY_TEXTS[:3]] + [{"tokens": ["New", "York"]}]
    resp = server.post("/tag/batch", json={"items": items})
    assert resp.status_code == 200, resp.text
    results = resp.json()["results"]
    assert [r.get("text") for r in results] == TRICKY_TEXTS[:3] + [None] and results[3]["tokens"] == ["New", "York"]


@pytest.mark.parametrize(
    "kwargs,status,message",
    [
        ({"content": b"{not json", "headers": {"content-type": "application/json"}}, 400, "invalid JSON"),
        ({"content": b"\xff\xfe", "headers": {"content-type": "application/json"}}, 400, "UTF-8"),
        ({"json": [1, 2]}, 422, "JSON object"),
        ({"json": {"id": 3}}, 422, "'text'"),
        ({"json": {"text": "   "}}, 422, "empty tweet"),
        ({"json": {"tokens": ["a", 5]}}, 422, "must be a string"),
        ({"json": {"text": "hi", "caption": 5}}, 422, "'caption' must be a string, got int"),
        ({"content": b'{"text": "hi", "x": NaN}', "headers": {"content-type": "application/json"}}, 400, "NaN is not valid JSON"),
        ({"json": {"text": "hi", "image": "/etc/passwd"}}, 400, "base64"),
        ({"json": {"text": "hi", "image": base64.b64encode(b"not an image").decode()}}, 422, "unreadable image"),
        ({"json": {"text": "hi", "image": 12}}, 422, "base64 string"),
        ({"json": {"text": "x" * 501}}, 413, "characters"),
        ({"json": {"text": "hi", "pad": "x" * 250_000}}, 413, "body"),
        ({"content": b"text=hi", "headers": {"content-type": "text/plain"}}, 415, "content type"),
        ({"content": b"--zz\r\nbroken", "headers": {"content-type": "multipart/form-data; boundary=zz"}}, 400, "truncated"),
        (
            {
                "content": b'--zz\r\nContent-Disposition: form-data; name="text"\r\n\r\nhi',
                "headers": {"content-type": "multipart/form-data"},
            },
            400,
            "without a boundary",
        ),
        ({"data": {"text": "hi", "image": "not-a-file"}}, 422, "file upload"),
    ],
)
def test_malformed_requests_are_4xx_with_a_message(server, kwargs, status, message):
    resp = server.post("/tag", **kwargs)
    assert resp.status_code == status, resp.text
    assert message in resp.json()["detail"]


@pytest.mark.parametrize(
    "body,status",
    [
        ({"items": [{"text": "a"}] * 5}, 413),
        ({"items": []}, 422),
        ({"items": "a"}, 422),
        ([{"text": "a"}], 422),
        ({"items": [{"text": "a"}, {"text": ""}]}, 422),
    ],
)
def test_malformed_batches_are_4xx(server, body, status):
    resp = server.post("/tag/batch", json=body)
    assert resp.status_code == status, resp.text
    if body == {"items": [{"text": "a"}, {"text": ""}]}:
        assert resp.json()["detail"].startswith("items[1]: ")


def test_wrong_methods_and_paths_are_4xx(server):
    assert server.get("/tag").status_code == 405
    assert server.get("/nope").status_code == 404


# --- request bodies: 4xx with a detail, never 500, and text is never silently replaced --------------------------------


@pytest.fixture(scope="module")
def client(tagger):
    from fastapi.testclient import TestClient

    from mscmt_cli.tagging.server import Limits, create_app

    limits = Limits(max_body_bytes=200_000, max_image_bytes=100_000, max_batch=4, max_text_chars=500, max_tokens=100)
    return TestClient(create_app(tagger, limits))


def _json_post(client, path: str, raw: str):
    return client.post(path, content=raw.encode("ascii"), headers={"content-type": "application/json"})


@settings(max_examples=25, deadline=None)
@given(st.integers(0xD800, 0xDFFF), st.sampled_from(["text", "tokens", "caption", "batch"]), st.text("ab ", min_size=1, max_size=6))
def test_lone_surrogates_anywhere_are_a_400_naming_the_field(client, code, field, prefix):
    escape = f"\\u{code:04x}"
    body = {
        "text": f'{{"text": "{prefix}{escape}"}}',
        "tokens": f'{{"tokens": ["ok", "{prefix}{escape}"]}}',
        "caption": f'{{"text": "Obama", "caption": "{prefix}{escape}"}}',
        "batch": f'{{"items": [{{"text": "fine"}}, {{"text": "{prefix}{escape}"}}]}}',
    }[field]
    answer = _json_post(client, "/tag/batch" if field == "batch" else "/tag", body)
    assert answer.status_code == 400, answer.text
    name = {"text": "'text'", "tokens": "'tokens'[1]", "caption": "'caption'", "batch": "items[1]: 'text'"}[field]
    assert f"{name} is not valid Unicode: lone surrogate" in answer.json()["detail"]


def test_caption_text_and_form_fields_over_the_limit_or_not_utf8(client):
    assert client.post("/tag", json={"text": "Obama", "caption": "c" * 501}).status_code == 413
    assert "'caption' over 500 characters" in client.post("/tag", json={"text": "Obama", "caption": "c" * 501}).json()["detail"]
    multipart = [
        (
            b'--zz\r\nContent-Disposition: form-data; name="text"\r\n\r\nObama \xff\xfe in Paris\r\n--zz--\r\n',
            "multipart/form-data; boundary=zz",
        ),
        (
            b'--zz\r\nContent-Disposition: form-data; name="caption"\r\n\r\n\xc3\r\n--zz\r\nContent-Disposition: form-data; name="text"\r\n\r\nhi\r\n--zz--\r\n',
            "multipart/form-data; boundary=zz",
        ),
        (b"text=Obama+%FF+Paris", "application/x-www-form-urlencoded"),
        (b"text=Obama \xe9", "application/x-www-form-urlencoded"),
    ]
    for body, kind in multipart:
        answer = client.post("/tag", content=body, headers={"content-type": kind})
        assert answer.status_code == 400 and "is not valid utf-8" in answer.json()["detail"], (body, answer.text)
    good = [
        (b'--zz\r\nContent-Disposition: form-data; name="text"\r\n\r\ncaf\xc3\xa9 Obama\r\n--zz--\r\n', "multipart/form-data; boundary=zz"),
        (
            b'--zz\r\nContent-Disposition: form-data; name="text"\r\n\r\ncaf\xe9 Obama\r\n--zz--\r\n',
            "multipart/form-data; boundary=zz; charset=latin-1",
        ),
        (b"text=caf%C3%A9+Obama", "application/x-www-form-urlencoded"),
    ]
    for body, kind in good:
        answer = client.post("/tag", content=body, headers={"content-type": kind})
        assert answer.status_code == 200 and answer.json()["text"] == "café Obama", answer.text
    files = {"image": ("x.png", image_bytes(), "image/png"), "other": ("y.png", image_bytes(), "image/png")}
    answer = client.post("/tag", data={"text": "hi"}, files=files)
    assert answer.status_code == 400 and "more than one file" in answer.json()["detail"], answer.text
    assert client.post("/tag", data={"caption": "x"}, files={"text": ("t.txt", b"hi", "text/plain")}).status_code == 422


@pytest.mark.parametrize(
    "raw",
    [
        '{"text": "Obama \\u0000 Paris"}',
        '{"text": "a\\u2028b\\u0085c"}',
        '{"text": "x", "n": ' + "9" * 5000 + "}",
        "[" * 100_000 + "]" * 100_000,
        '{"text": "x", "image": "\\ud800"}',
        '{"text": "x", "image": "data:,"}',
        '{"tokens": ["\\u0000"]}',
        '{"text": "x", "caption": ["a"]}',
        '{"text": {"a": 1}}',
        '"just a string"',
        "1e999",
        '{"text": "x", "y": -1e999}',
        "",
    ],
)
def test_odd_bodies_are_answered_below_500(client, raw):
    answer = _json_post(client, "/tag", raw) if raw.isascii() else None
    assert answer is not None and answer.status_code < 500, answer.text
    assert answer.status_code == 200 or answer.json()["detail"]


# --- forms: every odd form a one-line 4xx naming its cause; parts in memory, nothing logged per request --------------


def _part(name: str, value: bytes, filename: str | None = None, boundary: str = "zz") -> bytes:
    file = f'; filename="{filename}"' if filename is not None else ""
    head = f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"{file}\r\n\r\n'
    return head.encode() + value + b"\r\n"


END = b"--zz--\r\n"
MULTIPART = "multipart/form-data; boundary=zz"
URLENCODED = "application/x-www-form-urlencoded"


@pytest.mark.parametrize(
    "body,kind,status,detail",
    [
        (b"".join(_part(f"f{i}", b"x") for i in range(2000)) + END, MULTIPART, 400, "too many form fields (2000; at most 8"),
        (b"&".join(b"f%d=x" % i for i in range(2000)), URLENCODED, 400, "too many form fields (2000; at most 8"),
        (_part("text", b"Obama") + _part("text", b"Paris") + END, MULTIPART, 400, "form field 'text' given twice"),
        (b"text=Obama&text=Paris", URLENCODED, 400, "form field 'text' given twice"),
        (
            _part("text", b"Obama") + _part("image", b"a", "a.png") + _part("image", b"b", "b.png") + END,
            MULTIPART,
            400,
            "more than one file in the form ('image', 'image')",
        ),
        (_part("text", b"Obama") + END, "multipart/form-data", 400, "multipart/form-data without a boundary"),
        (_part("text", b"Obama") + END, "multipart/form-data; boundary=" + "z" * 71, 400, "invalid multipart boundary"),
        (_part("text", b"Obama", boundary="yy") + b"--yy--\r\n", MULTIPART, 400, "does not start with its boundary '--zz'"),
        (b"", MULTIPART, 400, "the body is empty"),
        (_part("text", b"Obama"), MULTIPART, 400, "ends before its closing boundary '--zz--' (truncated?)"),
        (b'--zz\r\nContent-Disposition: form-data; name="text"\r\n\r\nObam', MULTIPART, 400, "truncated"),
        (
            b"--zz\r\nContent-Disposition form-data\r\n\r\nx\r\n" + END,
            MULTIPART,
            400,
            "malformed form data at byte 26: found invalid character",
        ),
        (
            b"--zz\r\nContent-Type: text/plain\r\n\r\nx\r\n" + END,
            MULTIPART,
            400,
            "form part 1 has no 'Content-Disposition: form-data; name=...'",
        ),
        (_part("", b"Obama") + END, MULTIPART, 400, "a form field without a name"),
        (_part("text[]", b"Obama") + END, MULTIPART, 422, "nested or list names are not read: 'text[]'"),
        (b"items%5B0%5D%5Btext%5D=Obama", URLENCODED, 422, "nested or list names are not read: 'items[0][text]'"),
        (
            _part("Text", b"Obama") + END,
            MULTIPART,
            422,
            "unknown form field: 'Text'; the fields are 'text', 'caption' and the file 'image'",
        ),
        (
            b'--zz\r\nContent-Disposition: form-data; name="text"\r\nContent-Transfer-Encoding: base64\r\n\r\nT2JhbWE=\r\n' + END,
            MULTIPART,
            400,
            "Content-Transfer-Encoding 'base64' is not read",
        ),
        (_part("text", b"Obama") + _part("image", b"x" * 100_001, "a.png") + END, MULTIPART, 413, "image over 100000 bytes"),
    ],
)
def test_odd_forms_are_one_line_4xx_naming_the_cause(server, body, kind, status, detail):
    answer = server.post("/tag", content=body, headers={"content-type": kind})
    assert answer.status_code == status, answer.text
    assert detail in answer.json()["detail"] and "\n" not in answer.json()["detail"]


def test_a_well_formed_form_still_tags_with_its_image_and_caption(server):
    body = _part("text", "café Obama".encode()) + _part("caption", b"a man") + _part("image", image_bytes(), "x.png") + END
    answer = server.post("/tag", content=body, headers={"content-type": MULTIPART})
    assert answer.status_code == 200 and answer.json()["tokens"] == ["café", "Obama"], answer.text
    rfc2231 = b"--zz\r\nContent-Disposition: form-data; name=\"image\"; filename*=UTF-8''caf%C3%A9.png\r\n\r\n"
    body = _part("text", b"Obama") + rfc2231 + b"not an image\r\n" + END
    answer = server.post("/tag", content=body, headers={"content-type": MULTIPART})
    assert answer.status_code == 422 and "unreadable image" in answer.json()["detail"], answer.text


def test_forms_are_read_in_memory_and_log_nothing(tagger, caplog, monkeypatch):
    """An upload of several MiB (python-multipart's own parser spools over 1 MiB to a temporary file) is read
    without one, and odd forms put nothing in the log: the cause is in the answer."""
    import logging
    import tempfile

    from fastapi.testclient import TestClient

    from mscmt_cli.tagging.server import create_app

    def no_temp_file(*args, **kwargs):
        raise AssertionError("a form part was spooled to disk")

    for name in ("NamedTemporaryFile", "TemporaryFile", "mkstemp", "SpooledTemporaryFile"):
        monkeypatch.setattr(tempfile, name, no_temp_file)
    client = TestClient(create_app(tagger))
    caplog.set_level(logging.DEBUG)
    big = _part("text", b"Obama") + _part("image", b"\0" * (3 * 2**20), "x.png") + END
    answer = client.post("/tag", content=big, headers={"content-type": MULTIPART})
    assert answer.status_code == 422 and "unreadable image" in answer.json()["detail"], answer.text
    for body in (b"--zz\r\nContent-Disposition form-data\r\n\r\nx\r\n" + END, b"--zz\r\r\n", _part("text", b"x") + END + b"epilogue"):
        assert client.post("/tag", content=body, headers={"content-type": MULTIPART}).status_code < 500
    assert [r for r in caplog.records if r.name.startswith("python_multipart")] == []
