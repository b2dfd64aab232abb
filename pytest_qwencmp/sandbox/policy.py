"""What protections a sandboxed program gets, and how they are described.

The plain data of sandboxed execution, shared by the modules below it: the
resource ``Limits`` a program runs under, the ``Sandbox`` configuration this
machine offers (how programs are launched, and the protections a probe verified;
``executor.detect_sandbox`` finds it), the ``ExecutionResult`` of one program,
and the wording of a sandbox for reports (``summary``, ``describe_sandbox``).
Nothing here starts a process.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from ..errors import QwencmpError

#: uid/gid the program runs as when the caller is root ("nobody").
SANDBOX_UID = 65534


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


def describe_sandbox(sb: Sandbox, euid: int) -> str:
    """Every layer of ``sb``, active or NOT, in one paragraph (HTML, JSON); ``euid`` is the caller's."""
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
