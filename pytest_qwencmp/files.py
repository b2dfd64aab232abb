"""Files shared between processes: one atomic write (of a file, of a folder), one way to wait for a file
lock, JSON-safe values.

* :func:`write_atomic` — every file the plugin writes that another process (an
  xdist worker, a later run, a merge job) may read at the same moment: a
  temporary file in the same folder, flushed and renamed into place, so a
  reader sees the old file or the new one, never a partial write.
* :func:`replace_folder` — the same for a folder: a finished staging folder
  renamed to its final name, an existing one moved aside first (the demo
  build, the mirror's datasets and model snapshots).
* :func:`holding` — an inter-process file lock (``filelock``). When another
  process has it, one line says at once what is waited for, which lock file,
  and who holds it (each holder writes its pid, host and start time beside the
  lock, ``<lock>.holder``); a "still waiting" line follows every
  ``note_every`` seconds; after ``timeout`` seconds a ``LockTimeout``
  paragraph says what to do. Used for the evaluation cache (one process
  computes an evaluation, the others reuse it) and the demo build.
* :func:`json_safe` — a value as JSON data (what these files hold).
* :class:`ProgressFile` — progress lines several processes append to one file
  (pytest-xdist workers) and one process reads as they come (the controller,
  which shows them), polled every half second in a background thread.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Mapping

from filelock import FileLock, Timeout

from .errors import QwencmpError

DEFAULT_LOCK_TIMEOUT = 7200.0  # two hours: a full MMLU on a large model can hold an evaluation's lock that long
NOTE_EVERY = 60.0
HOLDER_SUFFIX = ".holder"


class LockTimeout(QwencmpError):
    """A lock was still held by another process when the wait's bound ran out: the session ends (exit 4)."""

    ends_session = True


def json_safe(value: Any) -> Any:
    """``value`` as JSON data: str keys, lists for tuples, None for non-finite floats, str for the rest."""
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def replace_folder(staging: Path, final: Path, *, retired_prefix: str) -> None:
    """Rename the finished ``staging`` folder to ``final`` (same file system); an existing ``final`` is first renamed
    to a new hidden sibling whose name starts with ``retired_prefix`` (so a caller can sweep leftovers), then deleted.
    A reader of ``final`` finds the old folder or the new one, never a half-written one (or, between the two
    renames, none: callers that replace a folder others may read hold a lock, as the demo build does)."""
    if final.exists():
        retired = Path(tempfile.mkdtemp(prefix=retired_prefix, dir=final.parent))
        retired.rmdir()
        final.rename(retired)
        staging.rename(final)
        shutil.rmtree(retired, ignore_errors=True)
    else:
        staging.rename(final)


def write_atomic(path: Path, text: str, *, what: str) -> Path:
    """Write ``text`` to ``path`` atomically (temporary file + ``os.replace``); returns the path.

    The directory is created if needed; an existing file is replaced in one
    step, so readers see the old file or the new one, never a partial write.
    A failure raises :class:`QwencmpError` naming ``what`` was being written.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp")
    except OSError as exc:
        raise QwencmpError(f"Cannot write {what} to {path.parent}: {exc.strerror or exc}.") from None
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise QwencmpError(f"Cannot write {what} to {path}: {exc.strerror or exc}.") from None
        raise
    return path


def describe_duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def holder_of(lock_path: Path) -> str:
    """Who holds the lock, as its holder recorded it ("another process" when nothing is recorded)."""
    try:
        info = json.loads(Path(str(lock_path) + HOLDER_SUFFIX).read_text(encoding="utf-8"))
        since = time.strftime("%H:%M:%S", time.localtime(float(info["since"])))
        return f"process {int(info['pid'])} on {info['host']} (since {since}, {info['what']})"
    except (OSError, ValueError, KeyError, TypeError):
        return "another process"


def _record_holder(lock_path: Path, what: str) -> None:
    info = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.time(), "what": what}
    try:
        Path(str(lock_path) + HOLDER_SUFFIX).write_text(json.dumps(info), encoding="utf-8")
    except OSError:
        pass  # only for the message a waiting process shows


def _clear_holder(lock_path: Path) -> None:
    try:
        Path(str(lock_path) + HOLDER_SUFFIX).unlink()
    except OSError:
        pass


@contextmanager
def holding(
    lock_path: Path,
    *,
    what: str,
    timeout: float = DEFAULT_LOCK_TIMEOUT,
    progress: Callable[[str], None] = lambda line: None,
    note_every: float = NOTE_EVERY,
    bound_hint: str = "",
) -> Iterator[None]:
    """Hold ``lock_path``'s lock for the block, waiting at most ``timeout`` seconds for another holder.

    ``what`` names the work the lock guards ("the evaluation of MMLU × Qwen2.5-7B");
    ``bound_hint`` says how to raise the bound (an option name).
    """
    lock = FileLock(str(lock_path))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        _wait(lock, lock_path, what, timeout, progress, note_every, bound_hint)
    try:
        _record_holder(lock_path, what)
        yield
    finally:
        _clear_holder(lock_path)
        lock.release()


def _wait(lock: FileLock, lock_path: Path, what: str, timeout: float, progress, note_every: float, bound_hint: str) -> None:
    started = time.monotonic()
    holder = holder_of(lock_path)
    progress(
        f"qwencmp: waiting for {what}: {holder} holds {lock_path} "
        f"(waits up to {describe_duration(timeout)}{'; ' + bound_hint if bound_hint else ''})"
    )
    while True:
        remaining = timeout - (time.monotonic() - started)
        if remaining <= 0:
            raise LockTimeout(
                f"Gave up waiting for {what} after {describe_duration(timeout)}: {lock_path} is still held by "
                f"{holder_of(lock_path)}. Another run (or pytest-xdist worker) is doing the same work; when it "
                "finishes, its result is reused. If that process is stuck, stop it"
                + (f"; if the work takes longer than that, raise the bound ({bound_hint})." if bound_hint else ".")
            )
        try:
            lock.acquire(timeout=min(note_every, remaining))
            return
        except Timeout:
            if time.monotonic() - started < timeout:
                progress(
                    f"qwencmp: still waiting for {what} after {describe_duration(time.monotonic() - started)}: "
                    f"held by {holder_of(lock_path)}"
                )


class ProgressFile:
    """Lines appended by other processes (``append``, one ``write`` each: whole lines on POSIX), relayed to
    ``show`` by a daemon thread polling every ``every`` seconds (``start``) until ``stop``, which shows what is
    left, joins the thread (at most two polls) and removes the file."""

    def __init__(self, path: Path, show: Callable[[str], None] = lambda line: None, every: float = 0.5) -> None:
        self.path = Path(path)
        self._show = show
        self._every = every
        self._offset = 0
        self._done = threading.Event()
        self._reading = threading.Lock()  # the thread and a caller of ``relay`` take turns
        self._thread: threading.Thread | None = None

    @staticmethod
    def append(path: Path | str, line: str) -> None:
        """Add one line (from any process); a progress line that cannot be written is dropped, never raised."""
        try:
            with open(path, "a", encoding="utf-8") as handle:
                handle.write(line.replace("\n", " ") + "\n")
        except OSError:
            pass

    def start(self) -> "ProgressFile":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text("", encoding="utf-8")
        self._thread = threading.Thread(target=self._poll, name="qwencmp-progress", daemon=True)
        self._thread.start()
        return self

    def _poll(self) -> None:
        while not self._done.wait(self._every):
            self.relay()

    def relay(self) -> None:
        """Show the complete lines written since the last call (any thread may call it)."""
        with self._reading:
            try:
                with open(self.path, "rb") as handle:
                    handle.seek(self._offset)
                    chunk = handle.read()
            except OSError:
                return
            complete = chunk[: chunk.rfind(b"\n") + 1]
            self._offset += len(complete)
            for line in complete.decode("utf-8", "replace").splitlines():
                self._show(line)

    def stop(self) -> None:
        if self._thread is None:
            return
        self._done.set()
        self._thread.join(timeout=2 * self._every + 1)
        self._thread = None
        self.relay()
        self.path.unlink(missing_ok=True)
