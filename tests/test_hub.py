"""mscmt_cli.model.hub: a hub id is loaded from the cache, or the hub is asked only when it answers; paths never go to it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import huggingface_hub.constants
import pytest

from mscmt_cli.errors import ModelLoadError
from mscmt_cli.model.hub import hub_reachable, load_pretrained, looks_like_path
from tests.conftest import REPO


def _closed_port() -> int:
    """A loopback port nothing listens on (bound, then released): a connection to it is refused at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Loader:
    """A ``from_pretrained`` that records its calls and finds nothing in the cache."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict]] = []

    def __call__(self, source: str, **kwargs):
        self.calls.append((source, kwargs))
        if kwargs.get("local_files_only"):
            raise OSError("couldn't find them in the cached files")
        return f"loaded {source}"


@pytest.fixture
def online(monkeypatch):
    """HF_HUB_OFFLINE unset (the tests set it); the hub's address is for each test to give."""
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    return monkeypatch


def test_paths_and_hub_ids():
    assert all(looks_like_path(p) for p in ("/nope", "./m", "../m", "~/m", ".", "a/b/c", "C:\\models\\m"))
    assert not any(looks_like_path(i) for i in ("vinai/bertweet-base", "bert-base-uncased", "Salesforce/blip-image-captioning-base"))


def test_a_closed_port_is_unreachable_and_a_listening_one_reachable():
    assert not hub_reachable(f"http://127.0.0.1:{_closed_port()}", 2.0)
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        assert hub_reachable(f"http://127.0.0.1:{server.getsockname()[1]}", 2.0)


def test_offline_asks_only_the_cache_and_says_how_to_give_a_local_copy():
    assert huggingface_hub.constants.HF_HUB_OFFLINE, "conftest sets HF_HUB_OFFLINE=1"
    load = Loader()
    with pytest.raises(ModelLoadError) as err:
        load_pretrained("bertweet", "vinai/bertweet-base", load)
    assert load.calls == [("vinai/bertweet-base", {"local_files_only": True})]
    assert str(err.value) == (
        "bertweet: cannot load 'vinai/bertweet-base': HF_HUB_OFFLINE is set and it is not in the Hugging Face cache; "
        "pass --model-path bertweet=/path/to/bertweet-base"
    )


def test_an_unreachable_hub_is_never_asked(online):
    online.setattr(huggingface_hub.constants, "ENDPOINT", f"http://127.0.0.1:{_closed_port()}")
    load = Loader()
    with pytest.raises(ModelLoadError) as err:
        load_pretrained("captioner", "Salesforce/blip-image-captioning-base", load, local_option="--captioner")
    assert load.calls == [("Salesforce/blip-image-captioning-base", {"local_files_only": True})]
    message = str(err.value)
    assert "the model hub (http://127.0.0.1:" in message and "is unreachable" in message and "\n" not in message
    assert "pass --captioner /path/to/blip-image-captioning-base" in message and "HF_HUB_OFFLINE=1" in message


def test_a_reachable_hub_is_asked_after_the_cache():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
            patch.setattr(huggingface_hub.constants, "ENDPOINT", f"http://127.0.0.1:{server.getsockname()[1]}")
            load = Loader()
            assert load_pretrained("bertweet", "vinai/bertweet-base", load) == "loaded vinai/bertweet-base"
    assert load.calls == [("vinai/bertweet-base", {"local_files_only": True}), ("vinai/bertweet-base", {})]


def test_a_cached_model_loads_without_the_hub(online):
    online.setattr(huggingface_hub.constants, "ENDPOINT", f"http://127.0.0.1:{_closed_port()}")
    assert load_pretrained("bertweet", "vinai/bertweet-base", lambda source, **kw: (source, kw)) == (
        "vinai/bertweet-base",
        {"local_files_only": True},
    )


def test_a_missing_directory_is_named_not_sent_to_the_hub(mscmt, corpus, tmp_path):
    load = Loader()
    with pytest.raises(ModelLoadError, match=r"^--captioner /nope: no such directory: /nope$"):
        load_pretrained("captioner", "/nope", load, local_option="--captioner")
    assert load.calls == []
    train = ["train", "--text", "bertweet", "--image", "none", "--fusion", "none", *corpus.args(images=False), "--out", tmp_path / "r"]
    result = mscmt([*train, "--model-path", "bertweet=/nope"])
    assert result.code == 2 and result.err == "error: --model-path bertweet=/nope: no such directory: /nope\n"
    (tmp_path / "img").mkdir()
    result = mscmt(["caption", tmp_path / "img", "--captioner", tmp_path / "nope", "--out", tmp_path / "c.txt"])
    assert result.code == 2 and result.err.strip().endswith(f"no such directory: {tmp_path / 'nope'}"), result.err


@pytest.mark.slow
def test_train_on_a_machine_without_the_hub_fails_at_once_in_one_line(corpus, tmp_path):
    """A fresh process, HF_HUB_OFFLINE unset, the hub's address a closed port: the error, without huggingface_hub's retries."""
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    env |= {"PYTHONPATH": str(REPO), "HF_ENDPOINT": f"http://127.0.0.1:{_closed_port()}", "HF_HOME": str(tmp_path / "hf")}
    args = ["train", "--text", "bertweet", "--image", "none", "--fusion", "none", *corpus.args(images=False), "--out", str(tmp_path / "r")]
    done = subprocess.run([sys.executable, "-m", "mscmt_cli", *args], env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 2 and "Retrying" not in done.stderr
    assert done.stderr.startswith("error: bertweet: cannot load 'vinai/bertweet-base': the model hub (http://127.0.0.1:"), done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
