"""``mscmt serve --api-key-file`` / ``MSCMT_API_KEY``: only callers holding the key are answered."""

from __future__ import annotations

import logging
import os
import threading
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mscmt_cli.errors import MscmtError
from mscmt_cli.tagging.auth import KEY_VARIABLE, is_loopback, open_warning, read_key_file, resolve_api_key
from tests.cli_support import one_line_error

KEY = "s3cret-Key_0123456789abcdefXYZ"
BEARER = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture(scope="module")
def client(tagger):
    from fastapi.testclient import TestClient

    from mscmt_cli.tagging.server import create_app

    return TestClient(create_app(tagger, api_key=KEY))


# --- reading the key --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("content", [KEY, KEY + "\n", KEY + "\r\n"])
def test_key_file_drops_one_trailing_newline(tmp_path, content):
    path = tmp_path / "key"
    path.write_bytes(content.encode())
    assert read_key_file(path) == KEY
    assert resolve_api_key(path, {}) == KEY


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "the API key is empty"),
        (b"\n", "the API key is empty"),
        (KEY.encode() + b"\n\n", "must be one line"),
        (b"two\nlines", "must be one line"),
        (b"with space", "visible ASCII"),
        (KEY.encode() + b" \n", "visible ASCII"),
        ("clé".encode(), "visible ASCII"),
        (b"\xff\xfe", "invalid UTF-8"),
        (b"k" * 5000, "over 4096 characters"),
    ],
)
def test_bad_key_files_are_one_line_errors_naming_the_option(tmp_path, content, message):
    path = tmp_path / "key"
    path.write_bytes(content)
    with pytest.raises(MscmtError) as err:
        read_key_file(path)
    assert str(err.value).startswith(f"--api-key-file {path}: ") and message in str(err.value)
    assert "\n" not in str(err.value)


def test_missing_directory_and_unreadable_key_files(tmp_path):
    with pytest.raises(MscmtError, match="--api-key-file .*: no such file"):
        read_key_file(tmp_path / "absent")
    with pytest.raises(MscmtError, match="--api-key-file .*: is a directory"):
        read_key_file(tmp_path)
    if os.geteuid() != 0:  # root reads anything
        locked = tmp_path / "locked"
        locked.write_text(KEY)
        locked.chmod(0)
        with pytest.raises(MscmtError, match="--api-key-file .*: cannot read it"):
            read_key_file(locked)


def test_the_environment_variable_and_which_wins(tmp_path):
    assert resolve_api_key(None, {}) is None
    assert resolve_api_key(None, {KEY_VARIABLE: KEY}) == KEY
    path = tmp_path / "key"
    path.write_text("from-the-file\n")
    assert resolve_api_key(path, {KEY_VARIABLE: KEY}) == "from-the-file"  # the option over the environment
    with pytest.raises(MscmtError, match=f"environment variable {KEY_VARIABLE}: the API key is empty"):
        resolve_api_key(None, {KEY_VARIABLE: ""})  # set but empty is a mistake, not an open service


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "localhost", "LOCALHOST", "::1", "[::1]"])
def test_loopback_hosts_need_no_key_and_get_no_warning(host):
    assert is_loopback(host) and open_warning(host, has_key=False) is None


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.5", "example.org"])
def test_an_open_service_beyond_loopback_is_warned_about_unless_it_has_a_key(host):
    warning = open_warning(host, has_key=False)
    assert warning is not None and host in warning and KEY_VARIABLE in warning and "--api-key-file" in warning
    assert open_warning(host, has_key=True) is None


def test_cli_refuses_a_bad_key_file_before_loading_anything(mscmt, tmp_path):
    result = mscmt(["serve", "--model", tmp_path / "no-model", "--api-key-file", tmp_path / "absent"])
    one_line_error(result, "--api-key-file", "no such file", alone=True)


# --- the service ------------------------------------------------------------------------------------------------------


def test_health_is_open_and_everything_else_needs_the_key(client):
    assert client.get("/health").json() == {"status": "ok"}
    for method, path, body in [
        ("GET", "/info", None),
        ("POST", "/tag", {"text": "Obama in Paris"}),
        ("POST", "/tag/batch", {"items": [{"text": "Obama"}]}),
        ("GET", "/nope", None),  # no route is revealed to a caller without the key
        ("GET", "/docs", None),
        ("POST", "/health", None),
    ]:
        resp = client.request(method, path, json=body)
        assert resp.status_code == 401, (method, path)
        assert resp.json()["detail"].startswith("missing API key") and resp.headers["www-authenticate"] == "Bearer"


def test_with_the_key_the_service_answers(client, tagger):
    info = client.get("/info", headers=BEARER)
    assert info.status_code == 200 and info.json()["api_key_required"] is True and KEY not in info.text
    tag = client.post("/tag", json={"text": "Obama in Paris"}, headers={"Authorization": f"bearer  {KEY} "})
    assert tag.status_code == 200 and tag.json()["tags"] == tagger.tag("Obama in Paris").tags
    batch = client.post("/tag/batch", json={"items": [{"text": "a b"}, {"text": "c"}]}, headers=BEARER)
    assert batch.status_code == 200 and [r["tokens"] for r in batch.json()["results"]] == [["a", "b"], ["c"]]
    assert client.get("/nope", headers=BEARER).status_code == 404


@pytest.mark.parametrize(
    "authorization, detail",
    [
        (f"Bearer {KEY}x", "wrong API key"),  # longer
        (f"Bearer {KEY[:-1]}", "wrong API key"),  # shorter
        (f"Bearer {KEY.upper()}", "wrong API key"),  # differs only in case
        (f"Bearer {KEY.lower()}", "wrong API key"),
        (f"Basic {KEY}", "must be 'Bearer <key>'"),
        ("Bearer", "must be 'Bearer <key>'"),
        ("Bearer   ", "must be 'Bearer <key>'"),
        (KEY, "must be 'Bearer <key>'"),
    ],
)
def test_a_wrong_key_or_scheme_is_401(client, authorization, detail):
    resp = client.post("/tag", json={"text": "Obama"}, headers={"Authorization": authorization})
    assert resp.status_code == 401 and detail in resp.json()["detail"]
    assert KEY not in resp.text and KEY.upper() not in resp.text


@settings(max_examples=40, deadline=None)
@given(st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=40))
def test_any_other_key_is_401(client, other):
    resp = client.get("/info", headers={"Authorization": f"Bearer {other}"})
    assert resp.status_code == (200 if other == KEY else 401)


def test_two_authorization_headers_are_401(client):
    resp = client.get("/info", headers=[("Authorization", f"Bearer {KEY}"), ("Authorization", f"Bearer {KEY}")])
    assert resp.status_code == 401 and "more than one" in resp.json()["detail"]


def test_without_a_key_the_service_is_open_and_says_so(tagger):
    from fastapi.testclient import TestClient

    from mscmt_cli.tagging.server import create_app

    info = TestClient(create_app(tagger)).get("/info")
    assert info.status_code == 200 and info.json()["api_key_required"] is False


def test_the_key_is_never_logged_by_a_real_server(tagger, caplog, monkeypatch):
    """uvicorn with its access log on, logging into pytest's handler: no record mentions the key."""
    import socket

    import httpx
    import uvicorn

    from mscmt_cli.tagging.server import create_app

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = uvicorn.Config(create_app(tagger, api_key=KEY), host="127.0.0.1", port=port, log_level="debug", log_config=None)
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    for name in ("uvicorn", "uvicorn.access", "uvicorn.error"):  # an earlier server's log config may have cut them off
        monkeypatch.setattr(logging.getLogger(name), "propagate", True)
        monkeypatch.setattr(logging.getLogger(name), "disabled", False)
    with caplog.at_level(logging.DEBUG), caplog.at_level(logging.DEBUG, logger="uvicorn.access"):
        thread.start()
        deadline = time.time() + 30
        while not srv.started:
            assert time.time() < deadline and thread.is_alive(), "server did not start"
            time.sleep(0.05)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as http:
            answers = [
                http.post("/tag", json={"text": "Obama"}, headers=BEARER),
                http.post("/tag", json={"text": "Obama"}, headers={"Authorization": f"Bearer {KEY}x"}),
                http.get("/info", headers=BEARER),
                http.get("/health"),
            ]
        srv.should_exit = True
        thread.join(10)
    assert [a.status_code for a in answers] == [200, 401, 200, 200]
    assert any("POST /tag" in r.getMessage() for r in caplog.records), "the access log was captured"
    for text in [r.getMessage() for r in caplog.records] + [a.text for a in answers] + [str(a.headers) for a in answers]:
        assert KEY not in text


def test_key_file_path_is_not_a_setting():
    """The key is a deployment secret of ``serve``: it never enters Settings (which runs record)."""
    from mscmt_cli.settings import Settings

    assert not any("key" in name for name in Settings.model_fields)
