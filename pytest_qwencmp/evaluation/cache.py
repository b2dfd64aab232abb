"""The on-disk evaluation cache: one JSON entry per (model, benchmark, settings).

The per-document results (``evaluation.documents``) live beside the evaluations in a
folder of their own, with the same entries, keys and locks.

Entries are keyed by a hash of everything that changes a number, written
atomically (``files.write_atomic``) so a crash leaves no half entry,
guarded by a per-key file lock so concurrent xdist workers compute an
evaluation once, and checked on read: a corrupt or truncated entry is treated
as missing and recomputed. A cache folder created here is marked as one
(``CACHEDIR.TAG``, and a ``.gitignore`` of ``*``).
"""

from __future__ import annotations

import hashlib
import json
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

from ..files import DEFAULT_LOCK_TIMEOUT, holding, write_atomic

FORMAT_VERSION = 1
# A cache folder the plugin creates says what it is: backup and archiving tools skip it (CACHEDIR.TAG,
# https://bford.info/cachedir/) and git ignores it (.gitignore), wherever --eval-cache-dir puts it.
CACHEDIR_TAG = (
    "Signature: 8a477f597d28d172789f06886806bc55\n"
    "# This file is a cache directory tag created by pytest-qwencmp.\n"
    "# For information about cache directory tags, see https://bford.info/cachedir/\n"
)
GITIGNORE = "# Created by pytest-qwencmp: evaluations, demo assets and task indexes, all rebuilt on demand.\n*\n"


def ensure_cache_root(root: Path) -> Path:
    """The cache folder ``root``, created if missing — with ``CACHEDIR.TAG`` and a ``.gitignore`` of ``*`` when created here."""
    root = Path(root)
    if not root.is_dir():
        root.mkdir(parents=True, exist_ok=True)
        for name, text in (("CACHEDIR.TAG", CACHEDIR_TAG), (".gitignore", GITIGNORE)):
            write_atomic(root / name, text, what=f"the cache folder's {name}")
    return root


def cache_key(parts: Mapping[str, Any]) -> str:
    """A stable hex digest of a JSON-able mapping (key order does not matter)."""
    canonical = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _digest(payload_text: str) -> str:
    return hashlib.sha256(payload_text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class EvaluationCache:
    """Cached evaluation results under ``root/evaluations`` (``folder``: the per-document results, ``documents``)."""

    root: Path
    read_enabled: bool = True
    folder: str = "evaluations"

    @property
    def directory(self) -> Path:
        return self.root / self.folder

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
        ensure_cache_root(self.root)
        path = self.path_for(key)
        payload_text = json.dumps(payload, sort_keys=True, allow_nan=True)
        envelope = {"format": FORMAT_VERSION, "key": key, "sha256": _digest(payload_text), "payload": payload_text}
        write_atomic(path, json.dumps(envelope), what="a cached evaluation")
        return path
