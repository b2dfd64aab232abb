"""Whether a model can be loaded is known in seconds, and a "no" is one paragraph naming the fix."""

from __future__ import annotations

import shutil
import socket
import time

import pytest

import pytest_qwencmp.models.sources as sources
from pytest_qwencmp.errors import ModelUnavailable
from pytest_qwencmp.models.placement import ExecutionPlan
from pytest_qwencmp.hub import HubAccess, probe_hub
from pytest_qwencmp.models.sources import check_model_source
from pytest_qwencmp.models.loading import ModelHandle, ModelSpec
from pytest_qwencmp.config.settings import ModelRef

PLAN = ExecutionPlan("hf", "float32", "cpu", 1)


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # nothing listens there once this socket is closed


def test_probe_answers_fast_for_a_closed_and_an_open_endpoint():
    started = time.monotonic()
    reason = probe_hub(f"http://127.0.0.1:{closed_port()}", timeout=2)
    assert reason and "refused" in reason.lower() and time.monotonic() - started < 2
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        assert probe_hub(f"http://127.0.0.1:{server.getsockname()[1]}", timeout=2) is None


def test_behind_a_proxy_the_proxy_is_what_must_answer(monkeypatch):
    for name in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy", "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    with socket.socket() as proxy:
        proxy.bind(("127.0.0.1", 0))
        proxy.listen()
        monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{proxy.getsockname()[1]}")
        assert probe_hub("https://hub.invalid", timeout=2) is None  # the hub's own name does not resolve here
    monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{closed_port()}")
    assert "refused" in probe_hub("https://hub.invalid", timeout=2).lower()


def test_the_hub_is_asked_once_per_session(monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", "https://hub.example")
    asked = []
    hub = HubAccess(probe=lambda endpoint, timeout: asked.append(endpoint) or "unreachable")
    assert hub.unreachable() == hub.unreachable() == "unreachable"
    assert asked == ["https://hub.example"]


@pytest.fixture
def online(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)


def test_unreachable_hub_and_uncached_model_names_the_offline_path(online):
    hub = HubAccess(probe=lambda endpoint, timeout: "[Errno -2] Name or service not known")
    with pytest.raises(ModelUnavailable) as info:
        check_model_source(ModelRef("no-such-org/no-such-model"), "--model-a", hub)
    message = info.value.message
    assert message.startswith("Could not load model 'no-such-org/no-such-model' (--model-a, a hub id): it is not in")
    assert "cannot be reached ([Errno -2] Name or service not known)" in message
    assert "python -m pytest_qwencmp mirror --out DIR --model no-such-org/no-such-model" in message
    assert "--data-dir=DIR --model-a=DIR/models/no-such-org/no-such-model" in message and "\n" not in message


def test_cached_model_loads_without_network_when_the_hub_is_unreachable(online, monkeypatch):
    monkeypatch.setattr(sources, "in_hub_cache", lambda ref, config_file="config.json": True)
    unreachable = HubAccess(probe=lambda endpoint, timeout: "refused")
    reachable = HubAccess(probe=lambda endpoint, timeout: None)
    assert check_model_source(ModelRef("Qwen/Qwen2.5-7B"), "--model-b", unreachable).local_files_only
    assert not check_model_source(ModelRef("Qwen/Qwen2.5-7B"), "--model-b", reachable).local_files_only


def test_offline_mode_never_probes(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    hub = HubAccess(probe=lambda endpoint, timeout: pytest.fail("probed although HF_HUB_OFFLINE is set"))
    with pytest.raises(ModelUnavailable, match="HF_HUB_OFFLINE is set .* not in this machine's Hugging Face cache"):
        check_model_source(ModelRef("org/absent"), "--model-b", hub)


def test_local_folders_must_hold_config_and_weights(tmp_path, demo_assets):
    hub = HubAccess(probe=lambda endpoint, timeout: pytest.fail("a local folder needs no hub"))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ModelUnavailable) as info:
        check_model_source(ModelRef(str(empty)), "--model-a", hub)
    assert f"Model directory {empty} (--model-a) holds no config.json and weights" in info.value.message
    assert "python -m pytest_qwencmp mirror" in info.value.message
    weights_only = tmp_path / "weights-only"
    shutil.copytree(demo_assets.model_a, weights_only)
    (weights_only / "config.json").unlink()
    with pytest.raises(ModelUnavailable, match=r"holds no config.json, so model 'weights-only' cannot be loaded"):
        check_model_source(ModelRef(str(weights_only)), "--model-b", hub)
    assert check_model_source(ModelRef(str(demo_assets.model_a)), "--model-a", hub).where == "local directory"


def test_a_handle_fails_before_reading_weights_and_remembers_it(online, monkeypatch):
    import pytest_qwencmp.models.loading as models

    monkeypatch.setattr(models, "load_model", lambda *a, **k: pytest.fail("weights were read"))
    hub = HubAccess(probe=lambda endpoint, timeout: "refused")
    handle = ModelHandle("a", ModelSpec(ModelRef("org/not-here"), PLAN, "float32"), hub=hub)
    with pytest.raises(ModelUnavailable) as first:
        handle.load()
    with pytest.raises(ModelUnavailable) as again:
        handle.load()
    assert again.value is first.value and handle.loads == 0
    assert handle.fingerprint == "hub:org/not-here@main"  # a cached evaluation of this model can still be found


def test_an_adapter_that_cannot_be_read_fails_the_side_before_any_weights(monkeypatch):
    """A PEFT adapter is checked like its model (the hub cache by adapter_config.json), with its own option and fix."""
    import pytest_qwencmp.models.loading as models
    from pytest_qwencmp.config.sides import ModelOptions

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(models, "load_model", lambda *a, **k: pytest.fail("weights were read"))
    asked = []
    monkeypatch.setattr(sources, "in_hub_cache", lambda ref, config_file="config.json": asked.append(config_file) or ref.name_or_path == "Qwen/Qwen2.5-7B")
    hub = HubAccess(probe=lambda endpoint, timeout: pytest.fail("probed although HF_HUB_OFFLINE is set"))
    options = ModelOptions(peft=ModelRef("org/lora-7"))
    handle = ModelHandle("b", ModelSpec(ModelRef("Qwen/Qwen2.5-7B"), PLAN, "float32", options), hub=hub)
    with pytest.raises(ModelUnavailable) as info:
        handle.load()
    message = info.value.message
    assert message.startswith("Could not load PEFT adapter 'org/lora-7' (--peft-b, a hub id): HF_HUB_OFFLINE is set")
    assert "give --peft-b a local PEFT adapter directory" in message and "--peft-b=DIR/models/org/lora-7" in message
    assert asked == ["config.json", "adapter_config.json"]
