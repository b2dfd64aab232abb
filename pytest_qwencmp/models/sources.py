"""Can a model be loaded on this machine, and from where — decided in seconds, before any weights are read.

A local directory must hold ``config.json`` and weights. A hub id is loaded
from the local Hugging Face cache when it is there and the hub cannot be
reached (or ``HF_HUB_OFFLINE`` is set), from the hub otherwise. Whether the hub
can be reached is probed once per session with a short TCP connect
(``HubAccess``), so an offline machine learns in about a second what
``from_pretrained`` would take ~46 s of retries to say. Every "no" is a
``ModelUnavailable`` paragraph naming the fix, including the project's own
offline path (``python -m pytest_qwencmp mirror``, ``--data-dir``, local model
directories). Nothing here imports torch or transformers.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit
from urllib.request import getproxies, proxy_bypass

from ..errors import ModelUnavailable
from ..config.settings import ModelRef

HUB_PROBE_TIMEOUT = 3.0  # seconds for the one TCP connect that says whether the hub is reachable
DEFAULT_ENDPOINT = "https://huggingface.co"
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf")

Probe = Callable[[str, float], "str | None"]


def hub_endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", DEFAULT_ENDPOINT).rstrip("/")


def hub_offline() -> bool:
    """``HF_HUB_OFFLINE`` (or ``TRANSFORMERS_OFFLINE``) is set: nothing may be fetched."""
    value = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return value.strip().upper() in ("1", "ON", "YES", "TRUE")


def probe_hub(endpoint: str, timeout: float = HUB_PROBE_TIMEOUT) -> str | None:
    """``None`` when a TCP connection to the endpoint's host (or its proxy) opens within ``timeout``; else why not.

    Behind ``HTTPS_PROXY``/``HTTP_PROXY``/``ALL_PROXY`` (as ``huggingface_hub``
    honours them) the proxy is what must answer. Name resolution has no timeout
    of its own, so the attempt runs in a daemon thread and an answer that does
    not come in time counts as unreachable.
    """
    parts = urlsplit(endpoint)
    host = parts.hostname or ""
    port = parts.port or (80 if parts.scheme == "http" else 443)
    proxies = getproxies()
    proxy = proxies.get(parts.scheme) or proxies.get("all")
    if proxy and not proxy_bypass(host):
        via = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        host, port = via.hostname or "", via.port or (443 if via.scheme == "https" else 80)
    outcome: list[str | None] = []

    def attempt() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                outcome.append(None)
        except OSError as exc:
            outcome.append(" ".join(str(exc).split()) or type(exc).__name__)

    thread = threading.Thread(target=attempt, name="qwencmp-hub-probe", daemon=True)
    thread.start()
    thread.join(timeout + 0.5)
    return outcome[0] if outcome else f"no answer within {timeout:g} s"


class HubAccess:
    """Whether the hub answers, asked once per session (``probe`` is injectable for tests)."""

    def __init__(self, probe: Probe = probe_hub, timeout: float = HUB_PROBE_TIMEOUT) -> None:
        self._probe = probe
        self._timeout = timeout
        self._answer: tuple[str | None] | None = None

    def unreachable(self) -> str | None:
        """``None`` if the hub can be reached, else the reason it cannot."""
        if self._answer is None:
            self._answer = (self._probe(hub_endpoint(), self._timeout),)
        return self._answer[0]


@dataclass(frozen=True)
class ModelSource:
    """Where a model will be read from."""

    local_files_only: bool  # True: local directory or the HF cache only, no network
    where: str  # "local directory", "Hugging Face cache", "hub"


def hub_cache_dir() -> str:
    from huggingface_hub.constants import HF_HUB_CACHE

    return str(HF_HUB_CACHE)


def in_hub_cache(ref: ModelRef, config_file: str = "config.json") -> bool:
    """The hub repository's ``config_file`` (at its revision) is in the local Hugging Face cache."""
    try:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(ref.name_or_path, config_file, revision=ref.revision)
    except Exception:  # no huggingface_hub, malformed id: not cached
        return False
    return isinstance(found, str)


@dataclass(frozen=True)
class SourceKind:
    """What is being checked: a model (``config.json`` and weights) or a PEFT adapter (``adapter_config.json``)."""

    noun: str  # "model", "PEFT adapter"
    config_file: str
    folder_words: str  # what writes a good local folder
    failure: str  # what cannot happen without it


MODEL = SourceKind("model", "config.json", "a folder written by save_pretrained or a complete hub snapshot", "be loaded")
ADAPTER = SourceKind(
    "PEFT adapter", "adapter_config.json", "a folder written by peft's save_pretrained (adapter_config.json and "
    "adapter weights) or a complete hub snapshot", "be applied",
)


def offline_fix(ref: ModelRef, option: str, kind: SourceKind = MODEL) -> str:
    """The offline path, in one sentence, for a model or adapter that is not on this machine."""
    name = ref.name_or_path
    return (
        f"give {option} a local {kind.noun} directory ({kind.folder_words}), or, where the hub "
        f"can be reached, run `python -m pytest_qwencmp mirror --out DIR --model {name}` (it also saves the "
        f"benchmark datasets), copy DIR to this machine and run with --data-dir=DIR {option}=DIR/models/{name}"
    )


def check_local_folder(ref: ModelRef, option: str, kind: SourceKind = MODEL) -> None:
    """A local model (or adapter) directory holds its config and weights (an empty or half-copied folder does not)."""
    folder = ref.path
    has_config = (folder / kind.config_file).is_file()
    has_weights = any(p.suffix in WEIGHT_SUFFIXES for p in folder.rglob("*") if p.is_file())
    if has_config and has_weights:
        return
    missing = " and ".join(x for x, ok in ((kind.config_file, has_config), ("weights (*.safetensors or *.bin)", has_weights)) if not ok)
    raise ModelUnavailable(
        f"{kind.noun[0].upper()}{kind.noun[1:]} directory {folder} ({option}) holds no {missing}, so {kind.noun} "
        f"{ref.label!r} cannot {kind.failure}. Fix: point {option} at {kind.folder_words} "
        f"(`python -m pytest_qwencmp mirror --out DIR --model ORG/NAME` writes one to DIR/models/ORG/NAME)."
    )


def check_model_source(ref: ModelRef, option: str, hub: HubAccess, kind: SourceKind = MODEL) -> ModelSource:
    """Where ``ref`` (a model, or with ``kind=ADAPTER`` a PEFT adapter) can be read from here, or
    ``ModelUnavailable`` naming the fix. Reads no weights."""
    if ref.is_local:
        check_local_folder(ref, option, kind)
        return ModelSource(True, "local directory")
    cached = in_hub_cache(ref, kind.config_file)
    what = f"Could not load {kind.noun} {ref.label!r} ({option}, a hub id)"
    if hub_offline():
        if cached:
            return ModelSource(True, "Hugging Face cache")
        raise ModelUnavailable(
            f"{what}: HF_HUB_OFFLINE is set (--data-dir and --demo set it), so nothing is downloaded, and the "
            f"{kind.noun} is not in this machine's Hugging Face cache ({hub_cache_dir()}). Fix: {offline_fix(ref, option, kind)}."
        )
    reason = hub.unreachable()
    if reason is None:
        return ModelSource(False, "hub")
    if cached:
        return ModelSource(True, "Hugging Face cache")
    raise ModelUnavailable(
        f"{what}: it is not in this machine's Hugging Face cache "
        f"({hub_cache_dir()}) and the hub ({hub_endpoint()}) cannot be reached ({reason}). "
        f"Fix: {offline_fix(ref, option, kind)}; or check the spelling of the id."
    )
