"""Run one untrusted Python program, contained, and say whether it really passed.

MBPP scoring executes code a model wrote. This module is the one place that does
that. Each program runs in a fresh interpreter, started like this::

    parent (pytest)                    new session / process group, rlimits set
     └─ unshare --net --pid --mount --fork --kill-child --mount-proc
         └─ python -S -s -B -P -c WRAPPER      pid 1 in the new PID namespace:
             │                                 sets up the filesystem, then only
             │                                 waits and reports the exit status
             └─ fork: candidate                pid 2, drops to uid 65534 (nobody),
                                               no_new_privs, runs program + asserts

What protects the machine (the layers actually active are probed once per process,
see :func:`detect_sandbox`, and named in :attr:`Sandbox.description`):

* resource limits set in the child before exec: RLIMIT_CPU, RLIMIT_AS,
  RLIMIT_FSIZE, RLIMIT_CORE=0 and RLIMIT_NPROC where it means something (it is a
  per-user count: only applied when the program runs as its own uid, or as an
  offset above the caller's current count when it runs as the caller);
* a wall-clock deadline after which the PID namespace's init and the whole
  process group get SIGKILL (init's death kills everything inside the namespace,
  including processes that left the process group with ``setsid``);
* a private network namespace (only a loopback interface, down): no network;
* a private PID namespace with its own ``/proc``: the program cannot see, signal
  or ``ptrace`` anything outside, including the test runner;
* a private mount namespace in which every mount is read-only (recursive
  ``mount_setattr``) except a fresh size-limited tmpfs mounted on the working
  directory, and in which the caller's ``$HOME`` (and any non-world-searchable
  directory above the Python installation) is hidden behind an empty tmpfs
  (only the Python installation is bound back, read-only);
* a different, unprivileged uid (65534) with no capabilities and
  ``PR_SET_NO_NEW_PRIVS`` (setuid binaries cannot give root back);
* a minimal environment built from nothing (``PATH``, ``LANG``, ``HOME`` and
  ``TMPDIR`` = the working dir, ``PYTHONHASHSEED=0``,
  ``PYTHONDONTWRITEBYTECODE=1``): no ``HF_TOKEN``, ``GITHUB_TOKEN``, ``AWS_*``;
  stdin is ``/dev/null``; no file descriptor is inherited except the two pipes
  described below;
* a fresh temporary directory per program, removed afterwards whatever the
  program left in it; output read incrementally and capped (only the tail is kept).

Where a layer is missing (no ``unshare``, not root, an old kernel) the next
weaker configuration that the probe can verify is used, and the description says
so; see the "NOT" phrases in it. Without a PID namespace and without a uid of its
own (a non-root user on a machine without user namespaces) a hostile program
can signal the caller's other processes: only use such a machine for models you
trust.

Why "passed" cannot be faked by accident or by a generic cheat. The candidate
and its asserts run via ``exec`` inside the wrapper; the program passes only if
``exec`` returned normally, i.e. the test code ran to its end, after which the
wrapper reads a per-run random nonce (``secrets.token_hex``) from an inherited
pipe and writes ``done <nonce>`` to a second, dedicated pipe; the parent requires
that line AND exit status 0 from the namespace init, which mirrors the
candidate's. The nonce is never in the program's memory, argv, environment or
files while the candidate runs: the wrapper only reads it after ``exec``
returned. So ``os._exit(0)`` or ``sys.exit(0)`` before the asserts, printing
"passed" or any fake ``done`` line, replacing ``builtins``/``AssertionError``/
``os.write``/``sys.exit``, or raising ``SystemExit`` all score as failures.

Residual risk, honestly: the program shares a process with the code that
reports success, so a program written against THIS harness can still fake a
pass: it can read the nonce pipe itself (its fd number is visible in
``/proc/self/fd``) and echo the line, use ``sys.settrace`` to jump over the
assert lines, or use ``ctypes`` to rewrite the interpreter. It can also return
objects whose ``__eq__`` is always true, which every assert-based harness
(including HF's ``code_eval``) accepts. These only corrupt a score; the
containment layers above are what protect the machine, and they do not depend
on the program's cooperation. What is NOT prevented even in the strongest
configuration: reading world-readable files (system files, this project's
checkout and virtual environment), burning its CPU/memory/process quota until
the limits hit, and, because all sandboxes share uid 65534, one fork bomb
exhausting the process quota of another program running at the same moment.
"""

from __future__ import annotations

import dataclasses
import functools
import json
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
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Sequence

from .errors import QwencmpError

__all__ = [
    "ExecutionResult",
    "Limits",
    "Sandbox",
    "detect_sandbox",
    "run_program",
    "run_programs",
]

#: uid/gid the program runs as when the caller is root ("nobody").
SANDBOX_UID = 65534

# Directories never hidden behind a tmpfs, whatever $HOME says.
_SYSTEM_DIRS = frozenset(
    ["/", "/bin", "/boot", "/dev", "/etc", "/lib", "/lib32", "/lib64", "/opt",
     "/proc", "/run", "/sbin", "/sys", "/usr", "/var"]
)

_STATUS_CAP = 16 << 10  # bytes kept from the status pipe


@dataclass(frozen=True)
class Limits:
    """Per-program resource limits.

    ``max_processes`` becomes RLIMIT_NPROC, a per-user count: it bounds the
    programs' processes when they run as their own uid (the caller is root);
    when they run as the caller it is applied as the caller's current process
    count plus this many; root without a uid change is exempt from it.
    ``disk_bytes`` sizes the private tmpfs working directory (when a mount
    namespace is available); ``file_size_bytes`` caps every single file.
    """

    wall_seconds: float = 10.0
    cpu_seconds: int = 10
    memory_bytes: int = 1 << 30  # address space (RLIMIT_AS)
    file_size_bytes: int = 1 << 20
    max_processes: int = 64  # RLIMIT_NPROC is per-user; see above
    max_output_bytes: int = 64 << 10
    disk_bytes: int = 64 << 20

    def __post_init__(self) -> None:
        for name in (
            "wall_seconds",
            "cpu_seconds",
            "memory_bytes",
            "file_size_bytes",
            "max_processes",
            "max_output_bytes",
            "disk_bytes",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise QwencmpError(
                    f"Sandbox limit {name}={value!r} is invalid: it must be a positive "
                    f"number. Fix the value where the limits are configured."
                )


@dataclass(frozen=True)
class ExecutionResult:
    """What happened to one program.

    ``status`` is one of ``"passed"``, ``"failed"`` (it ran and raised, exited
    non-zero, or exited before its test code finished), ``"timeout"`` (wall
    clock or CPU limit), ``"killed"`` (ended by another signal, e.g. SIGKILL
    for memory or SIGSEGV) and ``"error"`` (the sandbox itself could not start
    it). ``detail`` is a one-line explanation for reports.
    """

    passed: bool
    status: str
    returncode: int | None
    duration_s: float
    output_tail: str
    detail: str = ""


@dataclass(frozen=True)
class Sandbox:
    """The protections that are active on this machine (verified by a probe).

    ``launcher`` and ``flags`` say how programs are started; the other fields
    are facts the probe program observed from inside.
    """

    network_isolated: bool
    description: str
    pid_isolated: bool = False
    filesystem_isolated: bool = False
    uid: int | None = None  # uid programs run as, when different from the caller's
    launcher: tuple[str, ...] = ()
    flags: tuple[str, ...] = ()

    @property
    def summary(self) -> str:
        """One short line for the terminal and Markdown; ``description`` has the details (HTML, JSON)."""
        euid = os.geteuid()
        user = (f"uid {self.uid}" if self.uid is not None else "runs as ROOT" if euid == 0 else "runs as the caller")
        parts = [
            "no network" if self.network_isolated else "network NOT isolated",
            "own PID namespace" if self.pid_isolated else "processes NOT isolated",
            "read-only filesystem" if self.filesystem_isolated else "filesystem writable",
            user,
        ]
        return ", ".join(parts) + "; time and memory limits"

    @property
    def parent_protected(self) -> bool:
        """True when a program cannot signal the process that started it."""
        return self.pid_isolated or (self.uid is not None and self.uid != os.geteuid())


# --------------------------------------------------------------------------
# The wrapper: trusted code that runs inside the sandbox, before and after the
# candidate. argv: prog work status_fd nonce_fd flags disk uid N mask*N M keep*M
# --------------------------------------------------------------------------
_WRAPPER = r'''
import os, sys

def _qwencmp_fs(libc, ctypes, work, disk, uid, masks, keeps):
    def check(rc, what):
        if rc != 0:
            err = ctypes.get_errno()
            raise OSError(err, "%s: %s" % (what, os.strerror(err)))

    class MountAttr(ctypes.Structure):
        _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64),
                    ("propagation", ctypes.c_uint64), ("userns_fd", ctypes.c_uint64)]

    def readonly(path):  # mount_setattr(AT_FDCWD, path, AT_RECURSIVE, RDONLY|NOSUID)
        attr = MountAttr(0x1 | 0x2, 0, 0, 0)
        check(libc.syscall(ctypes.c_long(442), ctypes.c_int(-100), path.encode(),
                           ctypes.c_uint(0x8000), ctypes.byref(attr),
                           ctypes.c_size_t(ctypes.sizeof(attr))), "mount_setattr " + path)

    libc.mount.argtypes = [ctypes.c_char_p] * 3 + [ctypes.c_ulong, ctypes.c_char_p]
    MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_BIND, MS_REC = 2, 4, 8, 4096, 16384
    fds = {k: os.open(k, os.O_PATH | os.O_DIRECTORY) for k in keeps}
    readonly("/")
    for m in masks:
        check(libc.mount(b"tmpfs", m.encode(), b"tmpfs", MS_NOSUID | MS_NODEV,
                         b"mode=0755,size=1m"), "mount tmpfs on " + m)
        for k in keeps:
            if k.startswith(m.rstrip("/") + "/"):
                os.makedirs(k, 0o755, exist_ok=True)
                check(libc.mount(("/proc/self/fd/%d" % fds[k]).encode(), k.encode(), None,
                                 MS_BIND | MS_REC, None), "bind " + k)
        readonly(m)
    for fd in fds.values():
        os.close(fd)
    opts = "mode=0700,size=%s,uid=%d,gid=%d" % (disk, uid, uid)
    check(libc.mount(b"tmpfs", work.encode(), b"tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
                     opts.encode()), "mount tmpfs on " + work)

def _qwencmp_candidate(prog, source, sfd, nfd, uid, flags, libc, ctypes):
    # Everything used after the program ran is bound here, before it runs: the
    # program may replace builtins, os.*, sys.* (hence also the bare excepts:
    # "except BaseException" would look BaseException up in builtins).
    write, read, _exit, exc_info = os.write, os.read, os._exit, sys.exc_info
    try:
        if "drop" in flags:
            os.setgroups([])
            os.setresgid(uid, uid, uid)
            os.setresuid(uid, uid, uid)
        if libc is not None:
            if libc.prctl(38, 1, 0, 0, 0) != 0:  # PR_SET_NO_NEW_PRIVS
                raise OSError(ctypes.get_errno(), "PR_SET_NO_NEW_PRIVS")
            libc.prctl(1, 9, 0, 0, 0)  # PR_SET_PDEATHSIG: SIGKILL if the monitor dies
    except BaseException as exc:
        try:
            write(sfd, ("setup-error %r\n" % (exc,)).encode("utf-8", "replace"))
        finally:
            _exit(3)
    streams = (sys.stdout, sys.stderr)
    try:
        exec(compile(source, prog, "exec"), {})
    except:  # noqa: E722 - see above
        exc = exc_info()[1]
        for stream in streams:
            try:
                stream.flush()
            except:  # noqa: E722
                pass
        try:
            import traceback
            text = "".join(traceback.format_exception(exc.__class__, exc, exc.__traceback__.tb_next))
        except:  # noqa: E722
            try:
                text = "%s: %s\n" % (exc.__class__.__name__, exc)
            except:  # noqa: E722
                text = "the program raised an exception\n"
        try:
            write(2, text.encode("utf-8", "replace")[-16384:])
        except:  # noqa: E722
            pass
        _exit(1)
    # Only reached when the program and its test code ran to their end.
    for stream in streams:
        try:
            stream.flush()
        except:  # noqa: E722
            pass
    try:
        write(sfd, b"done " + read(nfd, 128) + b"\n")
    except:  # noqa: E722
        _exit(1)
    _exit(0)

def _qwencmp_main(argv):
    write, _exit = os.write, os._exit
    prog, work, sfd, nfd, flags, disk, uid = argv[1:8]
    sfd, nfd, uid = int(sfd), int(nfd), int(uid)
    flags = set(flags.split(",")) - {""}
    nmask = int(argv[8])
    masks = argv[9:9 + nmask]
    keeps = argv[10 + nmask:10 + nmask + int(argv[9 + nmask])]
    libc = ctypes = None
    try:
        with open(prog, "rb") as f:
            source = f.read()
        if flags & {"fs", "nnp"}:
            import ctypes
            libc = ctypes.CDLL(None, use_errno=True)
        if "fs" in flags:
            _qwencmp_fs(libc, ctypes, work, disk, uid, masks, keeps)
        os.chdir(work)
        pid = os.fork()
    except BaseException as exc:
        try:
            write(sfd, ("setup-error %r\n" % (exc,)).encode("utf-8", "replace"))
            write(2, ("qwencmp sandbox setup failed: %r\n" % (exc,)).encode("utf-8", "replace"))
        finally:
            _exit(3)
    if pid == 0:
        _qwencmp_candidate(prog, source, sfd, nfd, uid, flags, libc, ctypes)
        _exit(1)
    os.close(nfd)
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    if code >= 0:
        write(sfd, b"exit %d\n" % code)
        _exit(code)
    write(sfd, b"signal %d\n" % -code)
    _exit(128 - code)

_qwencmp_main(sys.argv)
'''


# --------------------------------------------------------------------------
# Sandbox detection
# --------------------------------------------------------------------------
_PROBE_SOURCE = r'''
import json, math, os, socket
with open("probe.txt", "w") as f:
    f.write("ok")
facts = {
    "pid": os.getpid(),
    "uid": os.getuid(),
    "ifaces": sorted(name for _, name in socket.if_nameindex()),
    "root_ro": bool(os.statvfs("/").f_flag & os.ST_RDONLY),
    "empty_start": os.listdir(".") == ["probe.txt"],
}
print("QWENCMP-PROBE " + json.dumps(facts))
'''


def _candidate_configs(unshare: str | None, euid: int) -> list[tuple[tuple[str, ...], tuple[str, ...]]]:
    """Configurations to try, strongest first: (launcher argv, wrapper flags)."""
    configs: list[tuple[tuple[str, ...], tuple[str, ...]]] = []
    full = ("--net", "--pid", "--mount", "--fork", "--kill-child", "--mount-proc")
    if unshare and euid == 0:
        configs += [
            ((unshare, *full), ("fs", "drop", "nnp")),
            ((unshare, *full), ("drop", "nnp")),
            ((unshare, *full), ("nnp",)),
            ((unshare, "--net"), ("drop", "nnp")),
            ((unshare, "--net"), ("nnp",)),
        ]
    elif unshare:
        # A user namespace makes the program root inside it, so it could undo a
        # read-only remount: no "fs" layer here, and no uid change is possible.
        configs += [
            ((unshare, "--user", "--map-root-user", *full), ("nnp",)),
            ((unshare, "--user", "--map-root-user", "--net"), ("nnp",)),
        ]
    if euid == 0:
        configs.append(((), ("drop", "nnp")))
    configs.append(((), ("nnp",)))
    configs.append(((), ()))
    return configs


def _describe(sb: Sandbox, euid: int) -> str:
    parts = []
    parts.append(
        "network: none (private network namespace)"
        if sb.network_isolated
        else "network: NOT isolated (programs can open connections)"
    )
    parts.append(
        "processes: private PID namespace with its own /proc (cannot see or signal "
        "the caller; everything it starts dies with it)"
        if sb.pid_isolated
        else "processes: NOT isolated (programs see the host's processes; strays are "
        "killed by process group only)"
    )
    if sb.filesystem_isolated:
        parts.append(
            "filesystem: read-only everywhere except a private size-limited tmpfs "
            "working directory; the caller's $HOME is hidden"
        )
    else:
        who = "uid %d" % (sb.uid if sb.uid is not None else euid)
        parts.append(
            f"filesystem: NOT read-only (programs can write wherever {who} may; "
            "only their working directory is cleaned up)"
        )
    if sb.uid is not None:
        parts.append(f"user: uid {sb.uid} without capabilities, no_new_privs")
    elif euid == 0:
        parts.append("user: runs as ROOT (no uid change possible)")
    else:
        parts.append(f"user: runs as the caller (uid {euid})")
    parts.append(
        "always: rlimits (CPU, address space, file size, processes, no core), "
        "wall-clock kill, empty environment, fresh temporary directory"
    )
    return "; ".join(parts)


def _probe_one(launcher: tuple[str, ...], flags: tuple[str, ...], euid: int) -> Sandbox | None:
    trial = Sandbox(
        network_isolated=False,
        description="probe",
        uid=SANDBOX_UID if "drop" in flags else None,
        launcher=launcher,
        flags=flags,
    )
    result = _execute(_PROBE_SOURCE, Limits(wall_seconds=20.0), trial, None)
    if not result.passed:
        return None
    line = next(
        (l for l in result.output_tail.splitlines() if l.startswith("QWENCMP-PROBE ")), None
    )
    if line is None:
        return None
    facts = json.loads(line.split(" ", 1)[1])
    if not facts.get("empty_start"):
        return None
    if "drop" in flags and facts["uid"] != SANDBOX_UID:
        return None
    sb = Sandbox(
        network_isolated="--net" in launcher and set(facts["ifaces"]) <= {"lo"},
        description="",
        pid_isolated="--pid" in launcher and facts["pid"] <= 2,
        filesystem_isolated="fs" in flags and bool(facts["root_ro"]),
        uid=SANDBOX_UID if "drop" in flags else None,
        launcher=launcher,
        flags=flags,
    )
    return dataclasses.replace(sb, description=_describe(sb, euid))


@functools.lru_cache(maxsize=None)
def _probe(executable: str, euid: int, unshare: str | None) -> Sandbox:
    """Find the strongest configuration that really works here (run once per process)."""
    del executable  # part of the cache key only: the probe runs sys.executable
    for launcher, flags in _candidate_configs(unshare, euid):
        sandbox = _probe_one(launcher, flags, euid)
        if sandbox is not None:
            return sandbox
    raise QwencmpError(
        f"Cannot run generated code on this machine: even an unsandboxed "
        f"'{sys.executable} -c ...' subprocess failed. Check that the Python "
        f"interpreter can be started and that the temporary directory "
        f"({tempfile.gettempdir()}) is writable."
    )


def detect_sandbox() -> Sandbox:
    """The protections programs get on this machine, verified by running a probe.

    The probe (a few tenths of a second) runs once per process and interpreter.
    """
    unshare = shutil.which("unshare", path="/usr/bin:/bin:/usr/sbin:/sbin")
    return _probe(sys.executable, os.geteuid(), unshare)


# --------------------------------------------------------------------------
# Running
# --------------------------------------------------------------------------
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


def _execute(source: str, limits: Limits, sandbox: Sandbox, tmp_dir: str | None) -> ExecutionResult:
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
            _WRAPPER,
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
        return _verdict(proc.returncode, out, status, nonce, timed_out, limits, start)
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


def _verdict(
    rc: int | None,
    out: _Tail,
    status: _Tail,
    nonce: bytes,
    timed_out: bool,
    limits: Limits,
    start: float,
) -> ExecutionResult:
    duration = time.monotonic() - start
    text = out.data.decode("utf-8", "replace")
    if out.dropped:
        text = f"[... {out.dropped} bytes of output dropped ...]\n" + text
    lines = bytes(status.data).split(b"\n")
    reported: int | None = None  # candidate's exit: >= 0 code, < 0 signal
    setup_error = None
    for line in lines:
        if line.startswith(b"exit ") and line[5:].isdigit():
            reported = int(line[5:])
        elif line.startswith(b"signal ") and line[7:].isdigit():
            reported = -int(line[7:])
        elif line.startswith(b"setup-error ") and setup_error is None:
            setup_error = line[12:].decode("utf-8", "replace")
    returncode = reported if reported is not None else rc

    def result(passed: bool, state: str, detail: str) -> ExecutionResult:
        return ExecutionResult(passed, state, returncode, duration, text, detail)

    if timed_out:
        return result(False, "timeout", f"wall-clock limit of {limits.wall_seconds:g} s reached")
    if setup_error is not None:
        return result(False, "error", f"sandbox setup failed: {setup_error}")
    if returncode is not None and returncode < 0:
        sig = -returncode
        if sig == signal.SIGXCPU:
            return result(False, "timeout", f"CPU limit of {limits.cpu_seconds} s reached")
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = f"signal {sig}"
        hint = " (CPU hard limit or out of memory)" if sig == signal.SIGKILL else ""
        return result(False, "killed", f"killed by {name}{hint}")
    if rc == 0 and returncode == 0 and (b"done " + nonce) in lines:
        return result(True, "passed", "")
    if returncode == 0:
        return result(
            False, "failed", "exited with status 0 before its test code ran to the end"
        )
    return result(False, "failed", f"exited with status {returncode}")


def run_program(
    source: str,
    limits: Limits = Limits(),
    *,
    sandbox: Sandbox | None = None,
    tmp_dir: str | None = None,
) -> ExecutionResult:
    """Run one untrusted program (candidate + test code) and report the outcome.

    ``sandbox`` defaults to :func:`detect_sandbox`; ``tmp_dir`` is where the
    per-run temporary directory is created (default: the system's).
    The caller survives anything the program does; a problem of the sandbox
    itself is reported as status ``"error"``, never raised.
    """
    if not isinstance(source, str):
        raise TypeError(f"source must be str, not {type(source).__name__}")
    return _execute(source, limits, sandbox or detect_sandbox(), tmp_dir)


def run_programs(
    sources: Sequence[str],
    limits: Limits = Limits(),
    workers: int | None = None,
    *,
    sandbox: Sandbox | None = None,
    tmp_dir: str | None = None,
) -> list[ExecutionResult]:
    """Run many programs in parallel; results come back in input order.

    ``workers`` defaults to ``os.cpu_count()`` and is never allowed above it.
    """
    sources = list(sources)
    for s in sources:
        if not isinstance(s, str):
            raise TypeError(f"sources must be str, not {type(s).__name__}")
    cpus = os.cpu_count() or 1
    if workers is None:
        workers = cpus
    elif isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise QwencmpError(
            f"The number of code-execution workers must be a positive integer, "
            f"got {workers!r}."
        )
    workers = min(workers, cpus, max(1, len(sources)))
    if not sources:
        return []
    sandbox = sandbox or detect_sandbox()
    if workers == 1:
        return [_execute(s, limits, sandbox, tmp_dir) for s in sources]
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="qwencmp-exec") as pool:
        return list(pool.map(lambda s: _execute(s, limits, sandbox, tmp_dir), sources))
