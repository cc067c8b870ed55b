"""The page at ``GET /`` of ``mscmt serve``, and ``POST /tag?explain=true`` behind it.

The first tests call the app in-process; the last ones start ``mscmt serve`` for real and
drive the page in headless Chromium (Selenium + chromedriver), as a person would: they
skip, saying what is missing, where Chromium, chromedriver or selenium is not installed
(CI installs them: examples/install.sh).
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from PIL import Image

from tests.tagging_support import forced_tag, image_bytes

KEY = "page-Key_0123456789abcdef"
TWEET = "Obama visits Paris with <b>Kerry</b> & friends"
RED = (200, 30, 30)


def _data_uri_image(html: str) -> Image.Image:
    uris = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    assert len(uris) == 1, "one image shown"
    return Image.open(io.BytesIO(base64.b64decode(uris[0]))).convert("RGB")


# --- in-process: the page and the explain answer -----------------------------------------------------------------


@pytest.fixture(scope="module")
def keyed(tagger):
    from fastapi.testclient import TestClient

    from mscmt_cli.tagging.server import create_app

    return TestClient(create_app(tagger, api_key=KEY))


def test_the_page_is_open_static_and_self_contained(keyed):
    from mscmt_cli.tagging.explain import CSS
    from mscmt_cli.tagging.page import page_html

    resp = keyed.get("/")
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/html")
    page = resp.text
    assert page == page_html() and CSS in page, "the template, with the explain page's stylesheet"
    for secret in (KEY, "bertweet", "clip-vit-l14", "B-PER", "api_key_required"):
        assert secret not in page, f"the page must not tell {secret!r}"
    assert not re.search(r"(src|href|action)=|@import|url\(|https?://", page), "nothing fetched from elsewhere"
    assert keyed.head("/").status_code == 200
    assert keyed.get("/info").status_code == 401 and keyed.post("/tag?explain=true", json={"text": "a"}).status_code == 401


def test_the_pages_policy_allows_its_own_script_and_this_service_only(keyed):
    import hashlib

    policy = keyed.get("/").headers["content-security-policy"]
    scripts = re.findall(r"<script>(.*?)</script>", keyed.get("/").text, flags=re.S)
    assert len(scripts) == 1
    digest = base64.b64encode(hashlib.sha256(scripts[0].encode()).digest()).decode()
    assert f"script-src 'sha256-{digest}';" in policy and "default-src 'none'" in policy and "connect-src 'self'" in policy
    assert "frame-ancestors 'none'" in policy and "unsafe-eval" not in policy


def test_explain_adds_the_explain_pages_sections_for_the_same_tweet(keyed, tagger):
    """``explain.html`` is exactly what ``mscmt explain`` renders below its heading (one renderer),
    with the uploaded image and the tagger's own gate."""
    from mscmt_cli.tagging.explain import render_sections

    png = image_bytes(RED, (40, 30))
    headers = {"Authorization": f"Bearer {KEY}"}
    with forced_tag(tagger, "B-ORG"):
        resp = keyed.post("/tag?explain=true", data={"text": TWEET}, files={"image": ("x.png", png, "image/png")}, headers=headers)
        expected = tagger.tag(TWEET, image=png)
    assert resp.status_code == 200, resp.text
    answer = resp.json()
    assert [e["text"] for e in answer["entities"]] == [e.text for e in expected.entities] and len(expected.entities) == len(expected.tokens)
    explain = answer["explain"]
    assert explain["gate"] == pytest.approx(expected.gate) and explain["caption"] is None
    shown = _data_uri_image(explain["html"])
    assert shown.size == (40, 30) and shown.getpixel((5, 5)) == RED
    assert explain["html"] == render_sections(expected, Image.open(io.BytesIO(png)), tagger.info())
    assert "&lt;" in explain["html"] and "&amp;" in explain["html"] and "<b>" not in explain["html"], "the tweet is escaped"


def test_explain_is_asked_for_explicitly_and_also_serves_batches(keyed):
    headers = {"Authorization": f"Bearer {KEY}"}
    for query in ("", "?explain=false", "?explain=0"):
        assert "explain" not in keyed.post(f"/tag{query}", json={"text": "Obama"}, headers=headers).json()
    for query in ("?explain=maybe", "?explain=true&explain=true", "?explain="):
        resp = keyed.post(f"/tag{query}", json={"text": "Obama"}, headers=headers)
        assert resp.status_code == 400 and "'explain' must be true or false" in resp.json()["detail"]
    batch = keyed.post("/tag/batch?explain=1", json={"items": [{"text": "a b"}, {"text": "c"}]}, headers=headers)
    assert batch.status_code == 200
    assert [len(r["explain"]["gate"]) for r in batch.json()["results"]] == [2, 1]
    assert all("No image was given" in r["explain"]["html"] for r in batch.json()["results"])


# --- for real: `mscmt serve` and the page in headless Chromium --------------------------------------------------------

#: Where a browser may be (Debian names it chromium; other systems chromium-browser or google-chrome).
BROWSERS = ("chromium", "chromium-browser", "google-chrome")


def _browser_or_skip() -> tuple[str, str]:
    """The paths of Chromium and chromedriver, or skip saying what is missing (fail instead where
    ``MSCMT_REQUIRE_BROWSER=1``, as CI sets it: there a missing browser is an install defect)."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        _missing("the page's browser test needs the selenium package (pip install -e '.[test]')")
    browser = next((found for name in BROWSERS if (found := shutil.which(name))), None)
    driver = shutil.which("chromedriver")
    if browser is None or driver is None:
        missing = " and ".join(what for what, path in (("chromium", browser), ("chromedriver", driver)) if path is None)
        _missing(f"the page's browser test needs {missing} (Debian: apt-get install chromium chromium-driver)")
    assert browser is not None and driver is not None
    return browser, driver


def _missing(reason: str) -> None:
    if os.environ.get("MSCMT_REQUIRE_BROWSER") == "1":
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser():
    chromium, chromedriver = _browser_or_skip()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1200,1600"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=chromedriver))
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def cycling_model(trained_run, tmp_path_factory) -> Path:
    """A copy of the tiny run whose CRF tags every token B-PER, B-LOC, B-ORG, B-OTHER, B-PER, ... in turn
    (emissions flat over the B- tags, transitions rewarding the cycle): entities of every type, whatever
    the random encoders compute."""
    import torch
    from safetensors.torch import load_file, save_file

    model = tmp_path_factory.mktemp("cycling") / "model"
    shutil.copytree(trained_run / "model", model)
    weights = load_file(model / "model.safetensors")
    labels = json.loads((model / "config.json").read_text())["labels"]
    begins = [labels.index(f"B-{t}") for t in ("PER", "LOC", "ORG", "OTHER")]
    weights["classifier.weight"] = torch.zeros_like(weights["classifier.weight"])
    weights["classifier.bias"] = torch.full_like(weights["classifier.bias"], -20.0)
    weights["classifier.bias"][begins] = 0.0
    weights["decoder.crf.transitions"] = torch.zeros_like(weights["decoder.crf.transitions"])
    for a, b in zip(begins, begins[1:] + begins[:1]):
        weights["decoder.crf.transitions"][a, b] = 10.0
    weights["decoder.crf.start_transitions"] = torch.zeros_like(weights["decoder.crf.start_transitions"])
    weights["decoder.crf.start_transitions"][begins[0]] = 10.0
    save_file(weights, model / "model.safetensors")
    return model


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serving(model: Path, tiny, *extra: str) -> Iterator[str]:
    """``mscmt serve --model MODEL`` in a child process; yields its base URL once /health answers."""
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    command = [sys.executable, "-m", "mscmt_cli", "serve", "--model", str(model), "--device", "cpu", "--port", str(port)]
    command += ["--model-path", f"clip-vit-l14={tiny.clip_vision}", *extra]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 240
        while True:
            assert proc.poll() is None, f"mscmt serve exited: {proc.communicate()[1][-2000:]}"
            assert time.monotonic() < deadline, "mscmt serve did not answer /health"
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _tag_in_the_page(driver, text: str, image: Path | None, key: str = "") -> str:
    """Type the tweet (and key), attach the image, press Tag; the final state of the status line."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    for field, value in (("text", text), ("key", key)):
        element = driver.find_element(By.ID, field)
        element.clear()
        if value:
            element.send_keys(value)
    if image is not None:
        driver.find_element(By.ID, "image").send_keys(str(image))
    driver.find_element(By.ID, "tag").click()
    wait = WebDriverWait(driver, 120)
    wait.until(lambda d: d.find_element(By.ID, "status").get_attribute("data-state") in ("done", "error"))
    return driver.find_element(By.ID, "status").get_attribute("data-state")


#: What the page shows for each entity: its text (without the type badge), class and computed background.
SHOWN_ENTITIES = """
return [...document.querySelectorAll('#result mark.ent')].map(m => ({
  text: m.firstChild.textContent, cls: m.className, badge: m.querySelector('.t').textContent,
  background: getComputedStyle(m).backgroundColor}));
"""


def _rgb(colour: str) -> str:
    r, g, b = (int(colour[k : k + 2], 16) for k in (1, 3, 5))
    return f"rgb({r}, {g}, {b})"


def _check_shown(driver, answer: dict, labels: list[str]) -> None:
    """The page shows ``answer``'s entities in their type's class and colour, its gate, and the image."""
    from selenium.webdriver.common.by import By

    from mscmt_cli.labels import types_of
    from mscmt_cli.tagging.explain import type_colours

    shown = driver.execute_script(SHOWN_ENTITIES)
    assert [(s["text"], s["badge"]) for s in shown] == [(e["text"], e["type"]) for e in answer["entities"]]
    for s, e in zip(shown, answer["entities"]):
        assert s["cls"] == f"ent ent-{e['type']}" and s["background"] == _rgb(type_colours(types_of(labels))[e["type"]])
    titles = [c.get_attribute("title") for c in driver.find_elements(By.CSS_SELECTOR, "#result .cell")]
    assert titles == [f"g = {g:.4f}" for g in answer["explain"]["gate"]]
    shown_image = _data_uri_image(driver.find_element(By.ID, "result").get_attribute("innerHTML"))
    assert shown_image.size == (40, 30) and shown_image.getpixel((5, 5)) == RED, "the attached image reached the service"
    # script errors and refusals by the page's policy; the 401s asked for ("network") are expected
    errors = [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE" and entry["source"] != "network"]
    assert not errors, errors


@pytest.mark.slow
def test_the_page_tags_a_tweet_with_an_image_in_headless_chromium(browser, cycling_model, tiny, tmp_path):
    image = tmp_path / "red.png"
    image.write_bytes(image_bytes(RED, (40, 30)))
    with serving(cycling_model, tiny) as url:
        browser.get(f"{url}/")
        assert _tag_in_the_page(browser, TWEET, image) == "done"
        with httpx.Client(base_url=url, timeout=60) as http:
            files = {"image": ("red.png", image.read_bytes(), "image/png")}
            answer = http.post("/tag?explain=true", data={"text": TWEET}, files=files).json()
        assert [e["type"] for e in answer["entities"][:5]] == ["PER", "LOC", "ORG", "OTHER", "PER"]
        assert len(answer["entities"]) == len(answer["tokens"]) > 5
        _check_shown(browser, answer, json.loads((cycling_model / "config.json").read_text())["labels"])
        assert browser.find_element("id", "status").text == f"{len(answer['entities'])} entities"
        assert browser.find_element("id", "model").text == "model: bertweet + clip-vit-l14 + gated + crf; reads the image"


@pytest.mark.slow
def test_the_page_works_with_the_api_key(browser, cycling_model, tiny, tmp_path):
    from selenium.webdriver.support.ui import WebDriverWait

    image = tmp_path / "red.png"
    image.write_bytes(image_bytes(RED, (40, 30)))
    key_file = tmp_path / "api.key"
    key_file.write_text(KEY + "\n")
    with serving(cycling_model, tiny, "--api-key-file", str(key_file)) as url:
        browser.get(f"{url}/")  # the page itself needs no key
        WebDriverWait(browser, 30).until(lambda d: d.find_element("id", "model").text == "This service needs an API key.")
        assert _tag_in_the_page(browser, TWEET, image) == "error"
        assert browser.find_element("id", "status").text.startswith("401: missing API key")
        assert _tag_in_the_page(browser, TWEET, image, key="wrong") == "error"
        assert browser.find_element("id", "status").text == "401: wrong API key"
        assert _tag_in_the_page(browser, TWEET, image, key=KEY) == "done"
        with httpx.Client(base_url=url, timeout=60, headers={"Authorization": f"Bearer {KEY}"}) as http:
            files = {"image": ("red.png", image.read_bytes(), "image/png")}
            answer = http.post("/tag?explain=true", data={"text": TWEET}, files=files).json()
        _check_shown(browser, answer, json.loads((cycling_model / "config.json").read_text())["labels"])
        assert browser.execute_script("return localStorage.length + sessionStorage.length + document.cookie.length") == 0
        assert KEY not in browser.execute_script("return document.documentElement.outerHTML")


def test_without_a_browser_the_browser_tests_skip_saying_what_is_missing(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: "/usr/bin/chromium" if name == "chromium" else None)
    monkeypatch.delenv("MSCMT_REQUIRE_BROWSER", raising=False)
    with pytest.raises(pytest.skip.Exception, match="the page's browser test needs (chromedriver|the selenium package)"):
        _browser_or_skip()
    monkeypatch.setenv("MSCMT_REQUIRE_BROWSER", "1")  # CI: a missing browser is a failure, not a skip
    with pytest.raises(pytest.fail.Exception, match="the page's browser test needs (chromedriver|the selenium package)"):
        _browser_or_skip()
