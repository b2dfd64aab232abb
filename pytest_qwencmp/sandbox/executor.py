"""Run one untrusted Python program, contained, and say whether it really passed.

MBPP scoring executes code a model wrote. This module (with the ``sandbox*``
modules below it) is the one place that does that. Each program runs in a
fresh interpreter, started like this::

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

Modules, imports flowing one way: ``policy`` (the data: ``Limits``,
``Sandbox``, ``ExecutionResult``, descriptions) <- ``wrapper`` (the
trusted program inside, and the verdict on its report: why "passed" cannot be
faked, and what can still fake it) <- ``launch`` (starting one program,
limits, wall-clock kill, capped output) <- this module (which configuration this
machine supports, probed once per process, and the public ``run_program`` /
``run_programs``).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import shutil
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from typing import Sequence

from ..errors import QwencmpError
from .policy import SANDBOX_UID, ExecutionResult, Limits, Sandbox, describe_sandbox
from .launch import execute

__all__ = [
    "ExecutionResult",
    "Limits",
    "Sandbox",
    "detect_sandbox",
    "run_program",
    "run_programs",
]  # Limits, Sandbox and ExecutionResult live in .sandbox; named here as part of this API


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


def _probe_one(launcher: tuple[str, ...], flags: tuple[str, ...], euid: int) -> Sandbox | None:
    trial = Sandbox(
        network_isolated=False,
        description="probe",
        uid=SANDBOX_UID if "drop" in flags else None,
        launcher=launcher,
        flags=flags,
    )
    result = execute(_PROBE_SOURCE, Limits(wall_seconds=20.0), trial, None)
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
    return dataclasses.replace(sb, description=describe_sandbox(sb, euid))


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
    return execute(source, limits, sandbox or detect_sandbox(), tmp_dir)


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
        return [execute(s, limits, sandbox, tmp_dir) for s in sources]
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="qwencmp-exec") as pool:
        return list(pool.map(lambda s: execute(s, limits, sandbox, tmp_dir), sources))
