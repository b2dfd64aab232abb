"""Whether the Hugging Face hub can be reached, asked once per session, in about a second.

``HF_HUB_OFFLINE`` (or ``TRANSFORMERS_OFFLINE``) says nothing may be fetched
(:func:`hub_offline`); otherwise :class:`HubAccess` probes the endpoint
(``HF_ENDPOINT``, or its proxy) once with a short TCP connect, so an offline
machine learns in about a second what ``from_pretrained`` or a dataset
download would take minutes of retries to say. Models (``models.sources``)
and datasets (``lmeval.data_checks``) ask the same instance. No torch, no
huggingface_hub.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable
from urllib.parse import urlsplit
from urllib.request import getproxies, proxy_bypass

HUB_PROBE_TIMEOUT = 3.0  # seconds for the one TCP connect that says whether the hub is reachable
DEFAULT_ENDPOINT = "https://huggingface.co"

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

    def blocked(self) -> str | None:
        """Why nothing can be downloaded now, as a clause ("HF_HUB_OFFLINE is set", "the hub (URL) cannot
        be reached: REASON"); ``None`` when the hub answers. Probes at most once."""
        if hub_offline():
            return "HF_HUB_OFFLINE is set"
        reason = self.unreachable()
        return None if reason is None else f"the hub ({hub_endpoint()}) cannot be reached: {reason}"
