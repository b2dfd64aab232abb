"""The trusted program that runs inside the sandbox around the candidate, and the verdict on its report.

``WRAPPER`` is started (by ``launch``) as the sandbox's first process:
it sets up the filesystem, forks the candidate (which drops its uid, sets
no_new_privs and runs the program with its asserts via ``exec``), and reports on
a dedicated status pipe: ``setup-error ...``, ``done <nonce>``, then ``exit N``
or ``signal N``. ``verdict`` reads that report on the parent's side: both ends
of the protocol are here.

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
containment layers (see ``executor``) are what protect the machine, and they
do not depend on the program's cooperation. What is NOT prevented even in the strongest
configuration: reading world-readable files (system files, this project's
checkout and virtual environment), burning its CPU/memory/process quota until
the limits hit, and, because all sandboxes share uid 65534, one fork bomb
exhausting the process quota of another program running at the same moment.
"""

from __future__ import annotations

import signal
import time

from .policy import ExecutionResult, Limits

# argv: prog work status_fd nonce_fd flags disk uid N mask*N M keep*M
WRAPPER = r'''
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

    def flush():  # defined before the program runs, like everything used after it
        for stream in streams:
            try:
                stream.flush()
            except:  # noqa: E722
                pass

    try:
        exec(compile(source, prog, "exec"), {})
    except:  # noqa: E722 - see above
        exc = exc_info()[1]
        flush()
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
    flush()
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


def verdict(
    rc: int | None,
    output: bytes,
    dropped: int,
    status: bytes,
    nonce: bytes,
    timed_out: bool,
    limits: Limits,
    start: float,
) -> ExecutionResult:
    """The outcome of one run from the launcher's exit status ``rc``, the kept tail of the program's
    ``output`` (``dropped`` bytes before it were discarded) and the wrapper's ``status`` report."""
    duration = time.monotonic() - start
    text = bytes(output).decode("utf-8", "replace")
    if dropped:
        text = f"[... {dropped} bytes of output dropped ...]\n" + text
    lines = bytes(status).split(b"\n")
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
