"""Start one program inside a given ``Sandbox`` and collect what happened.

The parent's side of one run: a fresh temporary directory (and the directories
to hide from it), rlimits set between fork and exec, a minimal environment, the
nonce and status pipes, the launcher argv around ``wrapper.WRAPPER``;
then output read incrementally and capped (only the tail is kept), the
wall-clock deadline after which the namespace's init and the process group get
SIGKILL, and cleanup whatever the program left. ``execute`` never raises for a
problem of the program or the sandbox: it returns an ``ExecutionResult``.
"""

from __future__ import annotations

import functools
import os
import resource
import secrets
import selectors
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time

from .policy import ExecutionResult, Limits, Sandbox
from .wrapper import WRAPPER, verdict

# Directories never hidden behind a tmpfs, whatever $HOME says.
_SYSTEM_DIRS = frozenset(
    ["/", "/bin", "/boot", "/dev", "/etc", "/lib", "/lib32", "/lib64", "/opt",
     "/proc", "/run", "/sbin", "/sys", "/usr", "/var"]
)

_STATUS_CAP = 16 << 10  # bytes kept from the status pipe


def _set_child_limits(cpu: int, memory: int, fsize: int, nproc: int | None) -> None:
    """preexec_fn: runs in the child between fork and exec; only setrlimit calls."""
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
    if nproc is not None:
        resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))


def _user_process_count(uid: int) -> int:
    count = 0
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                if entry.stat().st_uid == uid:
                    count += 1
            except OSError:
                pass
    return count


def _nproc_limit(limits: Limits, sandbox: Sandbox) -> int | None:
    if sandbox.uid is not None:
        return limits.max_processes
    if os.geteuid() == 0 or not os.path.isdir("/proc"):
        return None  # root is exempt from RLIMIT_NPROC; nothing meaningful to set
    return _user_process_count(os.geteuid()) + limits.max_processes


def _is_under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def _masks_and_keeps(base: str) -> tuple[list[str], list[str]]:
    """Directories to hide behind an empty tmpfs, and directories to bind back."""
    keeps = {
        os.path.realpath(base),
        os.path.realpath(sys.base_prefix),
        os.path.realpath(sys.prefix),
        os.path.dirname(os.path.realpath(sys.executable)),
    }
    masks = set()
    home = os.path.expanduser("~")
    if home and home != "~":
        home = os.path.realpath(home)
        if os.path.isdir(home) and home not in _SYSTEM_DIRS:
            masks.add(home)
    # A directory above the interpreter that uid 65534 cannot search (e.g.
    # /root for a pyenv install) is masked too, with the interpreter bound back.
    for keep in list(keeps):
        current = "/"
        for part in keep.strip("/").split("/")[:-1]:
            current = os.path.join(current, part)
            try:
                if not os.stat(current).st_mode & stat.S_IXOTH:
                    if current not in _SYSTEM_DIRS:
                        masks.add(current)
                    break
            except OSError:
                break
    keeps = {k for k in keeps if not any(k != o and _is_under(k, o) for o in keeps)}
    masks = {m for m in masks if not any(_is_under(m, k) for k in keeps)}
    masks = {m for m in masks if not any(m != o and _is_under(m, o) for o in masks)}
    return sorted(masks), sorted(keeps)


def _has_exited(pid: int) -> bool:
    try:
        info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return True
    return info is not None


def _children_of(pid: int) -> list[int]:
    children = []
    try:
        entries = os.listdir("/proc")
    except OSError:
        return children
    for name in entries:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                data = f.read()
        except OSError:
            continue
        fields = data.rpartition(b")")[2].split()
        if len(fields) > 1 and fields[1] == str(pid).encode():
            children.append(int(name))
    return children


def _kill_sandbox(proc: subprocess.Popen, namespace_init: bool) -> None:
    """SIGKILL the PID namespace's init (which takes the namespace with it) and
    the whole process group. Called while the launcher is not yet reaped, so
    neither pid can have been reused."""
    if namespace_init:
        for child in _children_of(proc.pid):
            try:
                os.kill(child, signal.SIGKILL)
            except OSError:
                pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except OSError:
        pass


class _Tail:
    """Keeps the last ``cap`` bytes written to it; discards the rest."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.data = bytearray()
        self.dropped = 0

    def add(self, chunk: bytes) -> None:
        self.data += chunk
        excess = len(self.data) - self.cap
        if excess > 0:
            del self.data[:excess]
            self.dropped += excess


def _remove_tree(path: str) -> None:
    def onerror(func, failed, _exc_info):
        # A read-only directory (only an obstacle when we are not root).
        try:
            os.chmod(os.path.dirname(failed), 0o700)
            if os.path.isdir(failed) and not os.path.islink(failed):
                os.chmod(failed, 0o700)
            func(failed)
        except OSError:
            pass

    shutil.rmtree(path, onerror=onerror)
    if os.path.exists(path):
        shutil.rmtree(path, ignore_errors=True)


def _interpreter_flags() -> list[str]:
    # -I would also imply -E, which makes Python ignore PYTHONHASHSEED; the
    # environment is built from nothing, so -S -s -B (-P) is equivalent here
    # and keeps the hash seed fixed (set iteration order is reproducible).
    flags = ["-S", "-s", "-B"]
    if sys.version_info >= (3, 11):
        flags.append("-P")
    return flags


def execute(source: str, limits: Limits, sandbox: Sandbox, tmp_dir: str | None) -> ExecutionResult:
    """Run ``source`` once under ``sandbox`` and ``limits``; ``tmp_dir`` holds its temporary directory."""
    start = time.monotonic()
    nonce = secrets.token_hex(16).encode()
    base = tempfile.mkdtemp(prefix="qwencmp-run-", dir=tmp_dir)
    fds: list[int] = []
    try:
        os.chmod(base, 0o755)
        work = os.path.join(base, "work")
        os.mkdir(work, 0o700)
        prog = os.path.join(base, "program.py")
        with open(prog, "wb") as f:
            f.write(source.encode("utf-8", "surrogatepass"))
        os.chmod(prog, 0o444)
        uid = sandbox.uid if sandbox.uid is not None else os.geteuid()
        if sandbox.uid is not None:
            os.chown(work, sandbox.uid, sandbox.uid)
        masks, keeps = _masks_and_keeps(base) if "fs" in sandbox.flags else ([], [])

        nonce_r, nonce_w = os.pipe()
        status_r, status_w = os.pipe()
        fds += [nonce_r, nonce_w, status_r, status_w]
        os.write(nonce_w, nonce)
        os.close(nonce_w)
        fds.remove(nonce_w)

        argv = [
            *sandbox.launcher,
            sys.executable,
            *_interpreter_flags(),
            "-c",
            WRAPPER,
            prog,
            work,
            str(status_w),
            str(nonce_r),
            ",".join(sandbox.flags),
            str(limits.disk_bytes),
            str(uid),
            str(len(masks)),
            *masks,
            str(len(keeps)),
            *keeps,
        ]
        env = {
            "PATH": "/usr/bin:/bin",
            "LANG": "C.UTF-8",
            "HOME": work,
            "TMPDIR": work,
            "PYTHONHASHSEED": "0",
            "PYTHONDONTWRITEBYTECODE": "1",
        }
        preexec = functools.partial(
            _set_child_limits,
            int(limits.cpu_seconds),
            int(limits.memory_bytes),
            int(limits.file_size_bytes),
            _nproc_limit(limits, sandbox),
        )
        try:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                cwd=work,
                env=env,
                pass_fds=(status_w, nonce_r),
                start_new_session=True,
                preexec_fn=preexec,
            )
        except (OSError, subprocess.SubprocessError) as exc:
            return ExecutionResult(
                False, "error", None, time.monotonic() - start, "", f"could not start: {exc}"
            )
        for fd in (status_w, nonce_r):
            os.close(fd)
            fds.remove(fd)
        try:
            out, status, timed_out = _collect(proc, status_r, limits, start)
        finally:
            if proc.returncode is None:
                _kill_sandbox(proc, namespace_init=True)
                proc.wait()
        return verdict(proc.returncode, out.data, out.dropped, status.data, nonce, timed_out, limits, start)
    finally:
        for fd in fds:
            try:
                os.close(fd)
            except OSError:
                pass
        _remove_tree(base)


def _collect(proc: subprocess.Popen, status_r: int, limits: Limits, start: float):
    out = _Tail(limits.max_output_bytes)
    status = _Tail(_STATUS_CAP)
    deadline = start + limits.wall_seconds
    timed_out = False
    exited_at: float | None = None
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout.fileno(), selectors.EVENT_READ, out)
        sel.register(status_r, selectors.EVENT_READ, status)
        while sel.get_map():
            now = time.monotonic()
            if exited_at is None and _has_exited(proc.pid):
                exited_at = now
            if exited_at is not None and now - exited_at > 0.5:
                break  # something outside the namespace still holds the pipes
            if now >= deadline:
                timed_out = exited_at is None
                break
            wait = min(deadline - now, 0.1 if exited_at is not None else 0.25)
            for key, _ in sel.select(timeout=wait):
                chunk = os.read(key.fd, 65536)
                if chunk:
                    key.data.add(chunk)
                else:
                    sel.unregister(key.fd)
        # The pipes close an instant before the launcher exits: give it until
        # the deadline. Then kill before reaping it, so that its pid (our pgid)
        # cannot have been reused.
        while not _has_exited(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.001)
        _kill_sandbox(proc, namespace_init=not _has_exited(proc.pid))
        proc.wait()
        # Whatever is left in the pipes (bounded: writers are dead or we give up).
        final = time.monotonic() + 0.2
        while sel.get_map() and time.monotonic() < final:
            ready = sel.select(timeout=max(0.0, final - time.monotonic()))
            if not ready:
                break
            for key, _ in ready:
                chunk = os.read(key.fd, 65536)
                if chunk:
                    key.data.add(chunk)
                else:
                    sel.unregister(key.fd)
    proc.stdout.close()
    return out, status, timed_out

