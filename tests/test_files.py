"""Files shared between processes: a lock held by another run (the waiter says so at once, names the lock and its
holder, and gives up in time) and a folder replaced in one rename."""

from __future__ import annotations

import os
import socket
import threading
import time

import pytest

from pytest_qwencmp.files import LockTimeout, holding, replace_folder


def hold_in_thread(path, seconds: float, what: str = "the evaluation of MMLU × model_a", release=None):
    """Hold the lock from another thread (flock is per open file: it excludes this thread too) for ``seconds``
    or until ``release`` is set."""
    entered = threading.Event()
    release = release or threading.Event()

    def hold():
        with holding(path, what=what):
            entered.set()
            release.wait(seconds)

    thread = threading.Thread(target=hold, daemon=True)
    thread.start()
    assert entered.wait(10)
    return thread


def test_a_held_lock_is_announced_at_once_and_the_wait_is_bounded(tmp_path):
    lock = tmp_path / "key.lock"
    release = threading.Event()
    holder = hold_in_thread(lock, 30, release=release)
    lines = []
    started = time.monotonic()
    try:
        with pytest.raises(LockTimeout) as info:
            with holding(lock, what="the evaluation of MMLU × model_a", timeout=1.0, progress=lines.append,
                         bound_hint="--lock-timeout SECONDS"):
                pytest.fail("acquired a held lock")
    finally:
        release.set()
    assert time.monotonic() - started < 4
    assert lines[0].startswith(f"qwencmp: waiting for the evaluation of MMLU × model_a: process {os.getpid()} on "
                               f"{socket.gethostname()} (since ")
    assert f"holds {lock} (waits up to 1s; --lock-timeout SECONDS)" in lines[0]
    message = info.value.message
    assert message.startswith(f"Gave up waiting for the evaluation of MMLU × model_a after 1s: {lock} is still held by "
                              f"process {os.getpid()}")
    assert "raise the bound (--lock-timeout SECONDS)" in message and "\n" not in message
    holder.join()


def test_a_released_lock_is_taken_and_progress_repeats_while_waiting(tmp_path):
    lock = tmp_path / "key.lock"
    holder = hold_in_thread(lock, 1.5)
    lines = []
    with holding(lock, what="the demo build", timeout=30, progress=lines.append, note_every=0.5):
        pass
    holder.join()
    assert lines[0].startswith("qwencmp: waiting for the demo build: process ")
    assert any(line.startswith("qwencmp: still waiting for the demo build after ") for line in lines[1:])
    lines.clear()
    with holding(lock, what="the demo build", progress=lines.append):
        pass
    assert lines == []  # a free lock: not a word


def test_progress_lines_from_other_processes_are_shown_as_they_come(tmp_path):
    """xdist workers append lines to one file; a thread shows whole lines within a poll, the rest at ``stop``."""
    import subprocess
    import sys
    import time

    from pytest_qwencmp.files import ProgressFile

    shown: list[str] = []
    relay = ProgressFile(tmp_path / "progress" / "1.log", show=shown.append, every=0.05).start()
    writer = f"from pytest_qwencmp.files import ProgressFile\nProgressFile.append({str(relay.path)!r}, '[gw0] evaluating')"
    subprocess.run([sys.executable, "-c", writer], check=True, timeout=120)
    deadline = time.monotonic() + 10
    while not shown and time.monotonic() < deadline:
        time.sleep(0.05)
    assert shown == ["[gw0] evaluating"]  # while the relay runs, not only at the end
    with open(relay.path, "a") as handle:
        handle.write("[gw1] done\n[gw1] half a li")  # a line still being written is not shown
    relay.stop()
    assert shown == ["[gw0] evaluating", "[gw1] done"]
    assert not relay.path.exists()  # removed at the end of the session
    ProgressFile.append(tmp_path / "no" / "such" / "folder.log", "dropped, never raised")


def test_a_folder_is_replaced_whole_and_the_old_one_is_gone(tmp_path):
    final = tmp_path / "snapshot"
    for content in ("first", "second"):
        staging = tmp_path / f".staging-{content}"
        staging.mkdir()
        (staging / "weights.txt").write_text(content)
        replace_folder(staging, final, retired_prefix=".snapshot-old-")
        assert (final / "weights.txt").read_text() == content
        assert not staging.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["snapshot"]  # the retired copy was deleted
