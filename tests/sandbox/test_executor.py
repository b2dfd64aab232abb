"""The executor: correct programs pass, wrong ones fail, hostile ones are contained.

Every hostile program below is written so that it would PASS only if its attack
worked (or if it fooled the harness); each must score as a failure, leave
nothing behind, and leave this test process (and a decoy process) alive.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import textwrap
import time

import pytest

from pytest_qwencmp.errors import QwencmpError
from pytest_qwencmp.sandbox.executor import detect_sandbox, run_program, run_programs
from pytest_qwencmp.sandbox.policy import ExecutionResult, Limits, Sandbox

FAST = Limits(wall_seconds=5.0, cpu_seconds=5)


@pytest.fixture(scope="module")
def sandbox() -> Sandbox:
    return detect_sandbox()


@pytest.fixture
def tmp_root():
    """A directory for the per-run temporary directories of one test."""
    path = tempfile.mkdtemp(prefix="qwencmp-test-")
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def run(source: str, limits: Limits = FAST, **kwargs) -> ExecutionResult:
    return run_program(textwrap.dedent(source), limits, **kwargs)


def processes_mentioning(text: str) -> list[int]:
    """Pids of live processes whose command line contains ``text``."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            with open(f"/proc/{name}/cmdline", "rb") as f:
                cmdline = f.read()
        except OSError:
            continue
        if text.encode() in cmdline:
            found.append(int(name))
    return found


def assert_contained(result: ExecutionResult, tmp_root: str | None = None) -> None:
    assert not result.passed, result
    assert result.status in {"failed", "timeout", "killed"}, result
    if tmp_root is not None:
        assert os.listdir(tmp_root) == [], "the run's temporary directory was not removed"
        assert processes_mentioning(tmp_root) == [], "stray sandbox processes survived"
    # The harness still works after the hostile program.
    assert run("assert 1 + 1 == 2").passed


# ----------------------------------------------------------------- basics
def test_correct_program_passes():
    result = run(
        """
        def add(a, b):
            return a + b
        print("some output")
        assert add(2, 3) == 5
        """
    )
    assert result.passed and result.status == "passed", result
    assert result.returncode == 0
    assert "some output" in result.output_tail
    assert 0 < result.duration_s < FAST.wall_seconds


def test_wrong_answer_fails():
    result = run("def add(a, b):\n    return a * b\nassert add(2, 3) == 5\n")
    assert not result.passed and result.status == "failed"
    assert result.returncode == 1
    assert "AssertionError" in result.output_tail
    assert "assert add(2, 3) == 5" in result.output_tail  # the failing line, for reports


def test_syntax_error_fails():
    result = run("def add(a, b) return a + b\nassert add(2, 3) == 5\n")
    assert not result.passed and result.status == "failed"
    assert "SyntaxError" in result.output_tail


def test_exception_and_stdin_fail():
    assert run("raise ValueError('boom')").status == "failed"
    assert run("x = input()").status == "failed"  # stdin is /dev/null: EOFError
    assert run("import sys\nassert sys.stdin.read() == ''").passed


def test_hash_seed_is_fixed_so_set_order_is_reproducible():
    program = "print(hash('qwencmp'), list({'a', 'b', 'c', 'd', 'e'}))"
    first, second = run(program), run(program)
    assert first.passed and first.output_tail == second.output_tail


def test_run_programs_keeps_input_order_in_parallel():
    sources = [f"assert {i} % 3 != 0" for i in range(12)]
    results = run_programs(sources, FAST, workers=64)  # capped at os.cpu_count()
    assert [r.passed for r in results] == [i % 3 != 0 for i in range(12)]
    assert run_programs([], FAST) == []


def test_every_fallback_configuration_keeps_the_verdicts_right():
    """The weaker configurations used where namespaces or root are missing
    (each verified by the same probe) still tell passing from failing."""
    from pytest_qwencmp.sandbox.executor import _candidate_configs, _probe_one

    unshare = shutil.which("unshare", path="/usr/bin:/bin:/usr/sbin:/sbin")
    tried = 0
    for launcher, flags in _candidate_configs(unshare, os.geteuid()):
        sandbox = _probe_one(launcher, flags, os.geteuid())
        if sandbox is None:
            continue
        tried += 1
        results = run_programs(
            [
                "assert 1 + 1 == 2",
                "assert 1 + 1 == 3",
                "import os\nos._exit(0)\nassert False",
                "print('done ' + '0' * 32)\nraise SystemExit(0)",
            ],
            FAST,
            sandbox=sandbox,
        )
        assert [r.status for r in results] == ["passed", "failed", "failed", "failed"], (
            launcher,
            flags,
            results,
        )
    assert tried >= 1


def test_invalid_settings_are_user_errors():
    with pytest.raises(QwencmpError):
        Limits(wall_seconds=0)
    with pytest.raises(QwencmpError):
        Limits(memory_bytes=-1)
    with pytest.raises(QwencmpError):
        run_programs(["pass"], FAST, workers=0)


def test_sandbox_is_probed_once_and_described(sandbox):
    assert detect_sandbox() is sandbox
    assert sandbox.description
    for word in ("network", "processes", "filesystem", "user"):
        assert word in sandbox.description
    if not sandbox.network_isolated:
        assert "NOT isolated" in sandbox.description


# ----------------------------------------------------------------- environment
def test_environment_is_minimal_and_tokens_are_not_inherited(monkeypatch):
    token = "hf_qwencmpFAKE" + secrets.token_hex(8)
    monkeypatch.setenv("HF_TOKEN", token)
    monkeypatch.setenv("GITHUB_TOKEN", token)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", token)
    checker = run(
        f"""
        import os
        allowed = {{"PATH", "LANG", "HOME", "TMPDIR", "PYTHONHASHSEED",
                    "PYTHONDONTWRITEBYTECODE", "LC_CTYPE"}}
        assert set(os.environ) <= allowed, sorted(os.environ)
        assert os.environ["PATH"] == "/usr/bin:/bin"
        assert os.environ["HOME"] == os.environ["TMPDIR"] == os.getcwd()
        # Not in any environment this program can read either (/proc/*/environ).
        for pid in os.listdir("/proc"):
            try:
                with open("/proc/%s/environ" % pid, "rb") as f:
                    assert b"{token}" not in f.read(), pid
            except OSError:
                pass
        """
    )
    assert checker.passed, checker
    thief = run("import os\nprint(os.environ.get('HF_TOKEN'))\nassert os.environ['HF_TOKEN']")
    assert_contained(thief)
    assert token not in thief.output_tail


def test_cwd_is_a_fresh_empty_temp_dir_removed_afterwards(tmp_root):
    program = """
        import os
        cwd = os.getcwd()
        assert os.listdir(".") == [], os.listdir(".")
        # Leave behind something awkward to delete: read-only files and dirs.
        os.makedirs("ro/sub")
        with open("ro/sub/f", "w") as f:
            f.write("x")
        os.chmod("ro/sub/f", 0o400)
        os.chmod("ro/sub", 0o500)
        os.chmod("ro", 0o500)
        print("CWD", cwd)
        """
    first = run(program, tmp_dir=tmp_root)
    second = run(program, tmp_dir=tmp_root)
    assert first.passed and second.passed, (first, second)
    cwd_first = first.output_tail.split("CWD ")[1].strip()
    cwd_second = second.output_tail.split("CWD ")[1].strip()
    assert cwd_first != cwd_second
    assert cwd_first.startswith(tmp_root)
    assert not os.path.exists(cwd_first) and not os.path.exists(cwd_second)
    assert os.listdir(tmp_root) == []


# ----------------------------------------------------------------- hostile
def test_infinite_loop_hits_the_wall_clock(tmp_root):
    start = time.monotonic()
    result = run("while True:\n    pass\n", Limits(wall_seconds=1.5, cpu_seconds=30), tmp_dir=tmp_root)
    assert result.status == "timeout" and "wall-clock" in result.detail
    assert time.monotonic() - start < 5
    assert_contained(result, tmp_root)


def test_infinite_loop_hits_the_cpu_limit(tmp_root):
    result = run("while True:\n    pass\n", Limits(wall_seconds=20, cpu_seconds=1), tmp_dir=tmp_root)
    assert result.status == "timeout" and "CPU" in result.detail, result
    assert result.duration_s < 10
    assert_contained(result, tmp_root)


def test_fork_bomb_is_bounded_and_leaves_no_process(sandbox, tmp_root):
    limits = Limits(wall_seconds=2.0, cpu_seconds=5, max_processes=16)
    result = run(
        """
        import os, time
        forks = 0
        try:
            while True:
                if os.fork() == 0:
                    time.sleep(1000)  # children linger...
                    os._exit(0)
                forks += 1
        except OSError as exc:
            print("FORKS", forks, exc, flush=True)
        while True:  # ...and the parent keeps trying
            try:
                os.fork()
            except OSError:
                pass
        """,
        limits,
        tmp_dir=tmp_root,
    )
    assert result.status in {"timeout", "killed"}, result
    if sandbox.uid is not None:  # RLIMIT_NPROC binds only a uid of its own
        forks = int(result.output_tail.split("FORKS ")[1].split()[0])
        assert forks < limits.max_processes
    assert_contained(result, tmp_root)  # includes: no process of this run is left


def test_memory_bomb_fails():
    result = run(
        "blocks = []\nwhile True:\n    blocks.append(bytearray(32 << 20))\n",
        Limits(wall_seconds=10, cpu_seconds=10, memory_bytes=256 << 20),
    )
    assert result.status in {"failed", "killed"}, result
    if result.status == "failed":
        assert "MemoryError" in result.output_tail
    assert_contained(result)


def test_disk_fill_is_stopped_by_the_file_size_limit(tmp_root):
    result = run(
        "with open('big', 'wb') as f:\n    f.write(b'x' * (4 << 20))\n",
        Limits(wall_seconds=5, file_size_bytes=1 << 20),
        tmp_dir=tmp_root,
    )
    assert result.status == "failed" and "File too large" in result.output_tail, result
    assert_contained(result, tmp_root)


def test_disk_fill_with_many_files_is_stopped_by_the_tmpfs_size(sandbox, tmp_root):
    if not sandbox.filesystem_isolated:
        pytest.skip(f"no private size-limited tmpfs here: {sandbox.description}")
    result = run(
        """
        written = 0
        for i in range(10_000):
            with open("f%d" % i, "wb") as f:
                f.write(b"x" * (512 << 10))
            written += 512 << 10
        assert written >= 100 << 20
        """,
        Limits(wall_seconds=5, disk_bytes=4 << 20),
        tmp_dir=tmp_root,
    )
    assert result.status == "failed" and "No space left" in result.output_tail, result
    assert_contained(result, tmp_root)


def test_network_connection_fails(sandbox):
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.settimeout(0.2)
    port = server.getsockname()[1]
    try:
        local = run(
            f"""
            import socket
            s = socket.create_connection(("127.0.0.1", {port}), timeout=2)
            s.sendall(b"exfiltrated")
            """
        )
        remote = run(
            """
            import socket
            socket.create_connection(("1.1.1.1", 53), timeout=2).close()
            """
        )
        if not sandbox.network_isolated:
            pytest.skip(f"no network namespace here: {sandbox.description}")
        assert_contained(local)
        assert_contained(remote)
        assert "unreachable" in remote.output_tail.lower(), remote
        with pytest.raises(socket.timeout):
            server.accept()  # nothing ever connected to the caller's loopback
    finally:
        server.close()


def test_reading_a_file_under_the_callers_home_fails(sandbox, monkeypatch, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    secret = home / "credentials"
    token = "secret-" + secrets.token_hex(8)
    secret.write_text(token)
    secret.chmod(0o600)
    monkeypatch.setenv("HOME", str(home))
    result = run(
        f"""
        import os
        assert os.path.expanduser("~") != {str(home)!r}
        with open({str(secret)!r}) as f:
            print(f.read())
        """
    )
    if not (sandbox.filesystem_isolated or sandbox.uid is not None):
        pytest.skip(f"programs run as the caller here: {sandbox.description}")
    assert_contained(result)
    assert token not in result.output_tail
    if sandbox.filesystem_isolated:
        # Not only file permissions: the directory is hidden, even from root
        # inside the namespace (the layer that protects a non-root caller).
        as_root = dataclasses.replace(sandbox, flags=("fs", "nnp"), uid=None)
        hidden = run(f"import os\nassert os.listdir({str(home)!r}) == []", sandbox=as_root)
        assert hidden.passed, hidden


def test_writing_outside_the_temp_dir_fails(sandbox, tmp_path):
    # As root, permissions would not stop this; the read-only mount namespace
    # does (and uid 65534 cannot write to root's 0700 directories).
    outside = tmp_path / "outside.txt"
    shared_tmp = os.path.join(tempfile.gettempdir(), "qwencmp-escape-" + secrets.token_hex(6))
    result = run(
        f"""
        for path in ({str(outside)!r}, {shared_tmp!r}):
            try:
                with open(path, "w") as f:
                    f.write("escaped")
            except OSError as exc:
                print("blocked:", path, exc)
        import os
        assert os.path.exists({str(outside)!r}) or os.path.exists({shared_tmp!r})
        """
    )
    try:
        if not sandbox.filesystem_isolated:
            pytest.skip(f"filesystem not read-only here: {sandbox.description}")
        assert_contained(result)
        assert not outside.exists()
        assert not os.path.exists(shared_tmp)
        assert "Read-only file system" in result.output_tail
    finally:
        if os.path.exists(shared_tmp):
            os.unlink(shared_tmp)


def test_killing_the_parent_fails_and_everyone_survives(sandbox, tmp_root):
    if not sandbox.parent_protected:
        pytest.skip(f"programs could signal the caller here: {sandbox.description}")
    decoy = subprocess.Popen(["sleep", "60"])  # a root-owned bystander
    try:
        kill_all = "os.kill(-1, signal.SIGKILL)" if sandbox.pid_isolated else "pass"
        result = run(
            f"""
            import os, signal, time
            for target in (os.getppid(), {os.getpid()}, {decoy.pid}):
                try:
                    os.kill(target, signal.SIGKILL)
                    print("sent SIGKILL to", target)
                except OSError as exc:
                    print("could not kill", target, exc)
            try:
                {kill_all}  # every process it may signal
            except OSError as exc:
                print("kill(-1):", exc)
            time.sleep(0.2)
            raise SystemExit(0)
            """,
            tmp_dir=tmp_root,
        )
        assert_contained(result, tmp_root)
        assert decoy.poll() is None, "the decoy process was killed"
        os.kill(os.getpid(), 0)  # and so are we, obviously, if we got here
    finally:
        decoy.kill()
        decoy.wait()


def test_exit_zero_before_the_asserts_fails():
    result = run("def f():\n    return 1\nimport os\nos._exit(0)\nassert f() == 2\n")
    assert result.status == "failed" and result.returncode == 0
    assert "before its test code" in result.detail
    assert_contained(result)
    assert_contained(run("import sys\nsys.exit(0)\nassert False\n"))
    assert_contained(run("raise SystemExit(0)\n"))


def test_printing_a_fake_success_fails():
    fake = "done " + secrets.token_hex(16)
    result = run(
        f"""
        import os, sys
        print("passed")
        print({fake!r})
        print("{{'passed': True, 'result': 'passed'}}")
        for fd in range(3, 64):  # and on every inherited descriptor
            for line in (b"{fake}\\n", b"exit 0\\n"):
                try:
                    os.write(fd, line)
                except OSError:
                    pass
        sys.stdout.flush()
        os._exit(0)
        """
    )
    assert_contained(result)


def test_monkey_patching_builtins_fails():
    result = run(
        """
        import builtins, os, sys
        class Harmless(Exception):
            pass
        builtins.AssertionError = Harmless
        builtins.BaseException = Harmless
        builtins.Exception = Harmless
        sys.excepthook = lambda *args: None
        sys.exit = lambda *args: None
        os._exit = lambda *args: None
        os.write = lambda fd, data: len(data)
        os.read = lambda fd, n: b"0" * 32
        def add(a, b):
            return a * b
        assert add(2, 3) == 5
        """
    )
    assert result.status == "failed", result
    assert "AssertionError" in result.output_tail
    assert_contained(result)


def test_subclasses_escape_is_contained(sandbox, tmp_path):
    marker = tmp_path / "pwned"
    result = run(
        f"""
        for cls in ().__class__.__bases__[0].__subclasses__():
            if cls.__name__ == "_wrap_close":
                real_os = cls.__init__.__globals__
                break
        real_os["system"]("id; echo pwned > {marker}; kill -9 {os.getpid()}")
        assert real_os["path"].exists({str(marker)!r})
        """
    )
    if not sandbox.filesystem_isolated:
        pytest.skip(f"filesystem not read-only here: {sandbox.description}")
    assert_contained(result)
    assert not marker.exists()


def test_huge_output_is_capped_and_does_not_change_the_verdict():
    limits = Limits(wall_seconds=10, max_output_bytes=8 << 10)
    passing = run("import sys\nsys.stdout.write('x' * (20 << 20))\nassert True\n", limits)
    assert passing.passed, passing.detail
    assert len(passing.output_tail) < (8 << 10) + 100
    assert "bytes of output dropped" in passing.output_tail
    failing = run("import sys\nsys.stdout.write('x' * (20 << 20))\nassert 1 == 2\n", limits)
    assert failing.status == "failed"
    assert "AssertionError" in failing.output_tail  # the tail keeps the traceback
    endless = run("while True:\n    print('y' * 1000)\n", Limits(wall_seconds=1.5))
    assert endless.status == "timeout"
    assert len(endless.output_tail) < Limits().max_output_bytes + 100
    assert_contained(endless)


def test_parent_survives_signals_and_crashes():
    crash = run("import ctypes\nctypes.string_at(0)\n")
    assert crash.status == "killed" and "SIGSEGV" in crash.detail, crash
    assert_contained(crash)
    assert_contained(run("import os, signal\nos.kill(os.getpid(), signal.SIGTERM)\nimport time\ntime.sleep(5)\n"))
