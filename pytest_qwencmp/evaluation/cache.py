"""The on-disk evaluation cache: one JSON entry per (model, benchmark, settings).

Entries are keyed by a hash of everything that changes a number, written
atomically (temporary file + ``os.replace``) so a crash leaves no half entry,
guarded by a per-key file lock so concurrent xdist workers compute an
evaluation once, and checked on read: a corrupt or truncated entry is treated
as missing and recomputed.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

from ..files import DEFAULT_LOCK_TIMEOUT, holding

FORMAT_VERSION = 1


def cache_key(parts: Mapping[str, Any]) -> str:
    """A stable hex digest of a JSON-able mapping (key order does not matter)."""
    canonical = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _digest(payload_text: str) -> str:
    return hashlib.sha256(payload_text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class EvaluationCache:
    """Cached evaluation results under ``root/evaluations``."""

    root: Path
    read_enabled: bool = True

    @property
    def directory(self) -> Path:
        return self.root / "evaluations"

    def path_for(self, key: str) -> Path:
        return self.directory / key[:2] / f"{key}.json"

    @contextmanager
    def locked(
        self,
        key: str,
        *,
        what: str = "a cached evaluation",
        timeout: float = DEFAULT_LOCK_TIMEOUT,
        progress: Callable[[str], None] = lambda line: None,
    ) -> Iterator[None]:
        """Hold the key's lock: one process computes, the others wait (saying so, at most ``timeout`` s) and then read."""
        path = self.path_for(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        with holding(path.with_suffix(".lock"), what=what, timeout=timeout, progress=progress,
                     bound_hint="--lock-timeout SECONDS, ini qwencmp_lock_timeout"):
            yield

    def load(self, key: str) -> dict[str, Any] | None:
        """The stored payload, or None if absent, disabled, corrupt or stale."""
        if not self.read_enabled:
            return None
        path = self.path_for(key)
        try:
            envelope = json.loads(path.read_text(encoding="utf-8"))
            payload_text = envelope["payload"]
            if envelope.get("format") != FORMAT_VERSION or envelope.get("key") != key:
                return None
            if envelope.get("sha256") != _digest(payload_text):
                return None
            payload = json.loads(payload_text)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError):
            return None  # corrupt or truncated: recompute
        return payload if isinstance(payload, dict) else None

    def store(self, key: str, payload: Mapping[str, Any]) -> Path:
        """Write the payload atomically; readers see the old entry or the new one."""
        path = self.path_for(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        payload_text = json.dumps(payload, sort_keys=True, allow_nan=True)
        envelope = {"format": FORMAT_VERSION, "key": key, "sha256": _digest(payload_text), "payload": payload_text}
        fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{key[:8]}-", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(envelope, handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp_name, path)
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise
        return path
