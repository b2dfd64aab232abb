"""A model split across GPUs: a DeepSpeed tensor-parallel group of processes.

``TensorParallelHandle`` is a ``ModelHandle`` whose model lives outside this
process. On first use it starts T processes running this module (the ranks,
with torch.distributed's environment set as torchrun would); every rank loads
the model and ``deepspeed.init_inference(..., tensor_parallel={"tp_size": T})``
keeps that rank's shard of each layer (AutoTP). The handle talks to rank 0
over an authenticated Unix socket in a private folder; rank 0 broadcasts each
request to all ranks, every rank runs the same lm-eval call
(``harness.run_request``), and rank 0 sends back the results. The group lives
for the session: each model is loaded once, however many benchmarks it is
evaluated on. The ranks are launched here rather than by torchrun so that rank
0's output (lm-eval's progress bars) reaches the terminal unprefixed, the other
ranks' output goes to log files, and no launcher traceback reaches the user.

Start-up is bounded (``START_TIMEOUT``) and never silent: the parent says at
once that it waits for the ranks, repeats it every ``NOTE_EVERY`` seconds, and
names DeepSpeed's CPU shared-memory extension lock
(``torch_extensions/.../deepspeed_shm_comm/lock``) when one exists: a build
interrupted by Ctrl-C leaves it behind, and every later rank then waits on it
forever at 0 % CPU. On time-out the group is stopped and the paragraph names
that file to delete.

Failures come back as one paragraph: an error every rank hits alike (a missing
dataset) fails that evaluation and the group goes on; anything else (out of
memory, a crash, a rank that exits) ends the group, and the message names the
rank logs. Results already cached stay cached.

On CUDA the group sees only its GPUs (``CUDA_VISIBLE_DEVICES``, from
``ExecutionPlan.gpus``) and uses NCCL; on CPU it uses gloo (DeepSpeed supports
fp32/bf16 there), which is how the tests exercise the real launch.
"""

from __future__ import annotations

import ctypes
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import KW_ONLY, dataclass, field, replace
from datetime import timedelta
from multiprocessing.connection import Client, Connection, Listener
from pathlib import Path
from typing import Any, Callable, Mapping

from ..errors import ModelUnavailable, OutOfMemory, QwencmpError
from ..hub import HubAccess
from ..lmeval.harness import EvaluationRequest, run_request
from .loading import ModelHandle, ModelInfo, ModelSpec, load_model

ADDRESS_ENV = "QWENCMP_TP_ADDRESS"
AUTHKEY_ENV = "QWENCMP_TP_AUTHKEY"
ERROR_LOG_ENV = "QWENCMP_TP_ERROR_LOG"
PARENT_ENV = "QWENCMP_TP_PARENT_PID"
POLL_SECONDS = 0.2
CLOSE_TIMEOUT = 30.0
KEEP_LOG_FOLDERS = 20  # group log folders kept under the cache (one per group launched)
START_TIMEOUT = 600.0  # seconds for the ranks to come up (imports, process group, DeepSpeed's extension build)
NOTE_EVERY = 30.0  # seconds between "still starting" lines
SHM_EXTENSION = "deepspeed_shm_comm"  # DeepSpeed's CPU all-reduce extension, JIT-built by torch on first use


@dataclass(frozen=True)
class LoadModel:
    """Request: load the model on every rank."""

    spec: ModelSpec
    fingerprint: str
    adapter_fingerprint: str | None = None


@dataclass(frozen=True)
class Evaluate:
    """Request: run one benchmark on every rank."""

    request: EvaluationRequest


@dataclass(frozen=True)
class Shutdown:
    """Request: leave the loop and exit."""


@dataclass(frozen=True)
class Reply:
    """Rank 0's answer: a value, or an error message; a fatal error ends the group."""

    value: Any = None
    error: str | None = None
    fatal: bool = False


class GroupFailed(ModelUnavailable):
    """The group cannot serve further requests (the side's model is gone for this session)."""


def rank_command() -> list[str]:
    """The command every rank runs: this module as a script."""
    return [sys.executable, "-m", __name__]


def rank_environment(
    base: Mapping[str, str], rank: int, size: int, gpus: tuple[int, ...], port: int, address: str, authkey: bytes
) -> dict[str, str]:
    """One rank's environment: ``base``, torch.distributed's rendezvous, the parent's socket, its GPUs.

    ``gpus`` index the GPUs this process sees, so under an existing
    ``CUDA_VISIBLE_DEVICES`` they are mapped through it.
    """
    env = dict(base)
    env.update(
        RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(size), LOCAL_WORLD_SIZE=str(size),
        LOCAL_SIZE=str(size),  # DeepSpeed's CPU shared-memory all-reduce reads it (its own launcher sets it)
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port),
    )
    env[ADDRESS_ENV] = address
    env[AUTHKEY_ENV] = authkey.hex()
    env[PARENT_ENV] = str(os.getpid())
    if gpus:
        visible = [d.strip() for d in base.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
        env["CUDA_VISIBLE_DEVICES"] = ",".join(visible[g] if g < len(visible) else str(g) for g in gpus)
    return env


def prune_logs(root: Path, keep: int) -> None:
    """Remove all but the ``keep`` most recent group log folders under ``root``."""
    if not root.is_dir():
        return
    folders = sorted((p for p in root.iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in folders[keep:]:
        shutil.rmtree(old, ignore_errors=True)


def shm_extension_lock() -> Path | None:
    """The lock file torch's JIT build of DeepSpeed's shm extension waits on (``None`` if unknown)."""
    try:
        from torch.utils.cpp_extension import _get_build_directory  # lazy: torch only when a model is built, loaded or run

        return Path(_get_build_directory(SHM_EXTENSION, verbose=False)) / "lock"
    except Exception:  # no torch, or its private helper moved: nothing to look at
        return None


def lock_note(lock: Path | None, launched_at: float) -> str:
    """What the ranks may be waiting on, for the progress and time-out messages ("" if nothing)."""
    try:
        created = lock.stat().st_mtime if lock is not None else None
    except OSError:
        created = None
    if created is None:
        return ""
    if created >= launched_at:
        return f"the ranks are building DeepSpeed's {SHM_EXTENSION} extension (first use; its lock is {lock})"
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(created))
    return (
        f"the lock file {lock} exists since {since}, before the ranks started: the ranks wait until it is removed. "
        f"Unless another process is building DeepSpeed's {SHM_EXTENSION} extension right now, it was left by an "
        "interrupted build: delete that file"
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _die_with_parent(parent_pid: int) -> None:
    """Linux: this rank gets SIGTERM when the pytest process that launched it dies (and exits now if it already has)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent_pid:
        sys.exit(1)


@dataclass(eq=False)
class ProcessGroup:
    """The parent's end of a launched group: start the ranks, request/reply with rank 0, stop.

    Rank 0 writes to this process's terminal (lm-eval's progress bars); the
    other ranks write to ``log_dir/rank-N.log``; a rank's unexpected error
    goes to ``log_dir/rank-N.error.log``. If any rank exits, the group ends.
    ``env`` is added to each rank's environment; ``command`` starts a rank.
    """

    size: int
    gpus: tuple[int, ...]
    log_dir: Path
    label: str
    _: KW_ONLY
    progress: Callable[[str], None] = lambda line: None
    start_timeout: float = START_TIMEOUT
    env: Mapping[str, str] = field(default_factory=dict)
    command: list[str] = field(default_factory=rank_command)
    ranks: list[subprocess.Popen] = field(default_factory=list, init=False)
    connection: Connection | None = field(default=None, init=False)
    _folder: Path | None = field(default=None, init=False, repr=False)

    def start(self) -> None:
        """Launch the ranks and wait (bounded, saying so) until rank 0 accepts the connection."""
        self._folder = Path(tempfile.mkdtemp(prefix="qwencmp-tp-"))  # mode 0700: the socket is ours alone
        address = str(self._folder / "rank0.sock")
        authkey = secrets.token_bytes(32)
        port = _free_port()
        self.log_dir.mkdir(parents=True, exist_ok=True)
        try:
            for rank in range(self.size):
                env = rank_environment({**os.environ, **self.env}, rank, self.size, self.gpus, port, address, authkey)
                env[ERROR_LOG_ENV] = str(self.log_dir / f"rank-{rank}.error.log")
                if rank == 0:
                    output = None
                else:
                    output = (self.log_dir / f"rank-{rank}.log").open("wb")
                try:
                    self.ranks.append(subprocess.Popen(
                        self.command, env=env, stdin=subprocess.DEVNULL, stdout=output,
                        stderr=subprocess.STDOUT if output else None,
                    ))
                finally:
                    if output is not None:
                        output.close()
        except OSError as exc:
            self.stop()
            raise GroupFailed(f"Could not launch the tensor-parallel group for model {self.label!r}: {exc}.") from None
        self._wait_for_rank0(address, authkey)

    def _wait_for_rank0(self, address: str, authkey: bytes) -> None:
        launched = time.time()
        started = time.monotonic()
        lock = shm_extension_lock()
        doing = f"starting {self.size} tensor-parallel processes for model {self.label!r}"
        note = lock_note(lock, launched)
        self.progress(f"qwencmp: {doing} (DeepSpeed set-up, up to {self.start_timeout:.0f}s){'; ' + note if note else ''}")
        next_note = started + NOTE_EVERY
        while self.connection is None:
            if self._exited():
                raise self._ended("starting")
            if os.path.exists(address):
                try:
                    self.connection = Client(address, family="AF_UNIX", authkey=authkey)
                    break
                except (ConnectionRefusedError, FileNotFoundError):
                    pass  # bound but not yet listening
            now = time.monotonic()
            if now - started > self.start_timeout:
                note = lock_note(lock, launched)
                for process in self.ranks:  # stuck before they listen: nothing would hear a shutdown request
                    process.terminate()
                self.stop()
                raise GroupFailed(
                    f"The tensor-parallel group for model {self.label!r} did not start within "
                    f"{self.start_timeout:.0f}s (rank 0 never accepted the connection). "
                    + (f"Most likely cause: {note}. " if note else "")
                    + f"The rank logs under {self.log_dir} say where they stopped; a DeepSpeed or torch.distributed "
                    "set-up that hangs (a firewall on MASTER_PORT, NCCL waiting for a GPU) is the other usual cause."
                )
            if now >= next_note:
                next_note = now + NOTE_EVERY
                note = lock_note(lock, launched)
                self.progress(f"qwencmp: still {doing} after {now - started:.0f}s{'; ' + note if note else ''}")
            time.sleep(POLL_SECONDS)

    def call(self, message: LoadModel | Evaluate, doing: str) -> Any:
        """Send ``message`` to rank 0 and wait for its reply, watching that every rank stays alive."""
        assert self.connection is not None
        try:
            self.connection.send(message)
            while not self.connection.poll(POLL_SECONDS):
                if self._exited() and not self.connection.poll(0):
                    raise self._ended(doing)
            reply: Reply = self.connection.recv()
        except (EOFError, OSError):
            raise self._ended(doing) from None
        if reply.error is not None:
            if reply.fatal:
                self.stop()
                raise GroupFailed(f"{reply.error} (tensor-parallel group of {self.size}; rank logs under {self.log_dir})")
            raise QwencmpError(reply.error)
        return reply.value

    def stop(self) -> None:
        """Ask the ranks to exit; terminate those that do not. Safe to call twice."""
        if self.connection is not None:
            try:
                self.connection.send(Shutdown())
            except OSError:
                pass
        deadline = time.monotonic() + CLOSE_TIMEOUT
        for process in self.ranks:
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.terminate()
        for process in self.ranks:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self.connection is not None:
            self.connection.close()
            self.connection = None
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)
            self._folder = None

    def _exited(self) -> bool:
        return any(process.poll() is not None for process in self.ranks)

    def _ended(self, doing: str) -> GroupFailed:
        codes = {rank: process.poll() for rank, process in enumerate(self.ranks)}
        for process in self.ranks:  # the others may be blocked in a collective with the dead rank
            if process.poll() is None:
                process.terminate()
        self.stop()
        exited = ", ".join(f"rank {rank} with code {code}" for rank, code in codes.items() if code is not None)
        return GroupFailed(
            f"The tensor-parallel group of {self.size} processes for model {self.label!r} ended while {doing}: "
            f"{exited or 'its connection closed'}. The rank logs under {self.log_dir} say why (a negative code is "
            "the signal that killed the rank: -9 is often the kernel's out-of-memory killer); common causes are too "
            "little GPU memory (lower --batch-size or raise --tp) or a DeepSpeed/NCCL installation problem. "
            "Finished evaluations are cached and will be reused."
        )


class TensorParallelHandle(ModelHandle):
    """One side's model, split across ``plan.tensor_parallel`` processes by DeepSpeed."""

    def __init__(
        self,
        side: str,
        spec: ModelSpec,
        *,
        log_root: Path,
        hub: HubAccess | None = None,
        progress: Callable[[str], None] = lambda line: None,
        start_timeout: float = START_TIMEOUT,
    ) -> None:
        super().__init__(side, spec, hub=hub)
        self.log_root = log_root
        self.progress = progress
        self.start_timeout = start_timeout
        self._group: ProcessGroup | None = None

    def _load(self) -> ModelInfo:
        prune_logs(self.log_root, keep=KEEP_LOG_FOLDERS - 1)
        log_dir = self.log_root / f"{self.side}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
        # The hub cannot be reached (or must not be): the ranks load from the HF cache without retrying it.
        offline = {"HF_HUB_OFFLINE": "1"} if self._source is not None and self._source.where == "Hugging Face cache" else {}
        spec = self.spec
        self._group = ProcessGroup(
            spec.plan.tensor_parallel, spec.plan.gpus, log_dir, spec.ref.label,
            progress=self.progress, start_timeout=self.start_timeout, env=offline,
        )
        try:
            self._group.start()
            return self._group.call(LoadModel(spec, self.fingerprint, self.adapter_fingerprint), f"loading {spec.ref.label}")
        except QwencmpError:
            self._group.stop()
            raise

    def _run(self, request: EvaluationRequest) -> Mapping[str, Any]:
        assert self._group is not None
        try:
            return self._group.call(Evaluate(request), f"evaluating {request.benchmark.name}")
        except GroupFailed as exc:
            self._error = exc  # the group is gone: later uses fail at once with the same reason
            self._group.stop()
            raise

    def close(self) -> None:
        if self._group is not None:
            self._group.stop()
            self._group = None
        super().close()


def serve() -> int:
    """One rank of the group; its exit status. Unexpected errors go to the rank's error log, not the terminal."""
    error_log = Path(os.environ[ERROR_LOG_ENV])
    _die_with_parent(int(os.environ[PARENT_ENV]))
    try:
        return _serve(int(os.environ["RANK"]), int(os.environ["LOCAL_RANK"]), error_log)
    except KeyboardInterrupt:  # Ctrl-C reaches the whole foreground process group: leave quietly
        return 130
    except Exception:  # a collective failed because another rank died, or setup failed: the parent reports it
        error_log.write_text(traceback.format_exc())
        return 1


def _serve(rank: int, local_rank: int, error_log: Path) -> int:
    """Receive (rank 0) or broadcast-receive requests, run them on every rank, reply (rank 0)."""
    import torch  # lazy: torch only when a model is built, loaded or run
    import torch.distributed as dist  # lazy: torch only when a model is built, loaded or run

    import deepspeed  # lazy: deepspeed only for its backend

    on_cuda = torch.cuda.is_available()
    if on_cuda:
        torch.cuda.set_device(local_rank)
    # Ranks other than 0 wait in a broadcast while the parent works elsewhere (the other
    # model, hours of MMLU): no collective timeout; the parent ends the group if a rank dies.
    deepspeed.init_distributed(dist_backend="nccl" if on_cuda else "gloo", timeout=timedelta(weeks=52))
    connection = _accept_parent() if rank == 0 else None

    def reply(answer: Reply) -> None:
        if connection is not None:
            connection.send(answer)

    lm = None
    while True:
        box = [_receive(connection) if connection is not None else None]
        dist.broadcast_object_list(box, src=0)
        message = box[0]
        if isinstance(message, Shutdown):
            break
        try:
            if isinstance(message, LoadModel):
                plan = message.spec.plan
                spec = replace(message.spec, plan=replace(plan, device=f"cuda:{local_rank}" if on_cuda else "cpu"))
                lm, info = load_model(spec, message.fingerprint, message.adapter_fingerprint)
                value: Any = replace(info, device=plan.device)
            else:
                value = run_request(lm, message.request)
        except QwencmpError as exc:
            # Every rank meets the same input problem (missing data...) and stays in step;
            # out of memory leaves ranks out of step: end the group.
            fatal = isinstance(exc, OutOfMemory)
            reply(Reply(error=exc.message, fatal=fatal))
            if fatal:
                return 1
            continue
        except Exception as exc:
            error_log.write_text(traceback.format_exc())
            summary = " ".join(str(exc).split())[:300]
            reply(Reply(error=f"Rank {rank} failed: {type(exc).__name__}: {summary} (traceback in {error_log})", fatal=True))
            return 1
        reply(Reply(value=value))
    dist.destroy_process_group()
    return 0


def _accept_parent() -> Connection:
    address = os.environ[ADDRESS_ENV]
    with Listener(address, family="AF_UNIX", authkey=bytes.fromhex(os.environ[AUTHKEY_ENV])) as listener:
        return listener.accept()


def _receive(connection: Connection) -> LoadModel | Evaluate | Shutdown:
    try:
        return connection.recv()
    except (EOFError, OSError):
        return Shutdown()  # the parent is gone: take the other ranks down with us


if __name__ == "__main__":
    # Run the imported module's serve(), not this __main__ copy's: the requests the parent
    # pickles name pytest_qwencmp.models.tensor_parallel's classes, and isinstance must match them.
    from pytest_qwencmp.models.tensor_parallel import serve as _serve

    sys.exit(_serve())
