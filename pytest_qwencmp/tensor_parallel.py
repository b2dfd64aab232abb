"""A model split across GPUs: a DeepSpeed tensor-parallel group of processes.

``TensorParallelHandle`` is a ``ModelHandle`` whose model lives outside this
process. On first use it launches ``torchrun --nproc-per-node T`` running this
module; every rank loads the model and ``deepspeed.init_inference(...,
tensor_parallel={"tp_size": T})`` keeps that rank's shard of each layer (AutoTP).
The handle then talks to rank 0 over an authenticated Unix socket in a private
folder; rank 0 broadcasts each request to all ranks, every rank runs the same
lm-eval call (``harness.run_request``), and rank 0 sends back the results. The
group lives for the session: each model is loaded once, however many
benchmarks it is evaluated on.

Failures come back as one paragraph: an error every rank hits alike (a missing
dataset) fails that evaluation and the group goes on; anything else (out of
memory, a crash) ends the group, and the message names the rank logs
(``torchrun --log-dir``). Results already cached stay cached.

On CUDA the group sees only its GPUs (``CUDA_VISIBLE_DEVICES``, from
``ExecutionPlan.gpus``) and uses NCCL; on CPU it uses gloo (DeepSpeed supports
fp32/bf16 there), which is how the tests exercise the real launch.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, replace
from multiprocessing.connection import Client, Connection, Listener
from pathlib import Path
from typing import Any, Mapping

from .errors import OutOfMemory, QwencmpError
from .harness import EvaluationRequest, run_request
from .models import ExecutionPlan, ModelHandle, ModelInfo, load_model
from .settings import ModelRef

ADDRESS_ENV = "QWENCMP_TP_ADDRESS"
AUTHKEY_ENV = "QWENCMP_TP_AUTHKEY"
POLL_SECONDS = 0.2
CLOSE_TIMEOUT = 30.0


@dataclass(frozen=True)
class LoadModel:
    """Request: load the model on every rank."""

    ref: ModelRef
    plan: ExecutionPlan
    requested_dtype: str
    fingerprint: str


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


class GroupFailed(QwencmpError):
    """The group cannot serve further requests."""


def launch_command(size: int, log_dir: Path) -> list[str]:
    """torchrun for ``size`` local ranks running this module; console output of rank 0 only, logs of all."""
    return [
        sys.executable, "-m", "torch.distributed.run",
        "--standalone", f"--nproc-per-node={size}",
        f"--log-dir={log_dir}", "--tee=3", "--local-ranks-filter=0",
        "--module", __name__,
    ]


def group_environment(base: Mapping[str, str], size: int, gpus: tuple[int, ...], address: str, authkey: bytes) -> dict[str, str]:
    """The group's environment: ``base`` plus the rendezvous with the parent and the GPUs it may see.

    ``gpus`` index the GPUs this process sees, so under an existing
    ``CUDA_VISIBLE_DEVICES`` they are mapped through it.
    """
    env = dict(base)
    env[ADDRESS_ENV] = address
    env[AUTHKEY_ENV] = authkey.hex()
    env["LOCAL_SIZE"] = str(size)  # DeepSpeed's CPU shared-memory all-reduce needs it (its launcher sets it)
    if gpus:
        visible = [d.strip() for d in base.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
        env["CUDA_VISIBLE_DEVICES"] = ",".join(visible[g] if g < len(visible) else str(g) for g in gpus)
    return env


class ProcessGroup:
    """The parent's end of a launched group: start, request/reply, stop."""

    def __init__(self, size: int, gpus: tuple[int, ...], log_dir: Path, label: str) -> None:
        self.size = size
        self.gpus = gpus
        self.log_dir = log_dir
        self.label = label
        self.process: subprocess.Popen | None = None
        self.connection: Connection | None = None
        self._folder: Path | None = None

    def start(self) -> None:
        self._folder = Path(tempfile.mkdtemp(prefix="qwencmp-tp-"))  # mode 0700: the socket is ours alone
        address = str(self._folder / "rank0.sock")
        authkey = secrets.token_bytes(32)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        env = group_environment(os.environ, self.size, self.gpus, address, authkey)
        try:
            self.process = subprocess.Popen(launch_command(self.size, self.log_dir), env=env, stdin=subprocess.DEVNULL)
        except OSError as exc:
            raise GroupFailed(f"Could not launch the tensor-parallel group for model {self.label!r}: {exc}.") from None
        while self.connection is None:
            if self.process.poll() is not None:
                raise self._ended("starting")
            if os.path.exists(address):
                try:
                    self.connection = Client(address, family="AF_UNIX", authkey=authkey)
                    break
                except (ConnectionRefusedError, FileNotFoundError):
                    pass  # bound but not yet listening
            time.sleep(POLL_SECONDS)

    def call(self, message: LoadModel | Evaluate, doing: str) -> Any:
        """Send ``message`` to rank 0 and wait for its reply, watching that the group stays alive."""
        assert self.connection is not None and self.process is not None
        try:
            self.connection.send(message)
            while not self.connection.poll(POLL_SECONDS):
                if self.process.poll() is not None and not self.connection.poll(0):
                    raise self._ended(doing)
            reply: Reply = self.connection.recv()
        except (EOFError, OSError):
            raise self._ended(doing) from None
        if reply.error is not None:
            if reply.fatal:
                raise GroupFailed(f"{reply.error} (tensor-parallel group of {self.size}; rank logs under {self.log_dir})")
            raise QwencmpError(reply.error)
        return reply.value

    def stop(self) -> None:
        """Ask the group to exit; terminate it if it does not. Safe to call twice."""
        if self.process is not None and self.process.poll() is None:
            try:
                if self.connection is not None:
                    self.connection.send(Shutdown())
                self.process.wait(timeout=CLOSE_TIMEOUT)
            except (OSError, subprocess.TimeoutExpired):
                self.process.terminate()
                try:
                    self.process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait()
        if self.connection is not None:
            self.connection.close()
            self.connection = None
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)
            self._folder = None

    def _ended(self, doing: str) -> GroupFailed:
        code = self.process.poll() if self.process is not None else None
        self.stop()
        return GroupFailed(
            f"The tensor-parallel group of {self.size} processes for model {self.label!r} exited (code {code}) "
            f"while {doing}. The rank logs under {self.log_dir} say why; common causes are too little GPU memory "
            "(lower --batch-size or raise --tp), a tensor-parallel size the model's heads do not divide by, "
            "or a DeepSpeed/NCCL installation problem. Finished evaluations are cached and will be reused."
        )


class TensorParallelHandle(ModelHandle):
    """One side's model, split across ``plan.tensor_parallel`` processes by DeepSpeed."""

    def __init__(self, side: str, ref: ModelRef, plan: ExecutionPlan, requested_dtype: str, *, log_root: Path) -> None:
        super().__init__(side, ref, plan, requested_dtype)
        self.log_root = log_root
        self._group: ProcessGroup | None = None

    def _load(self) -> ModelInfo:
        log_dir = self.log_root / f"{self.side}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
        self._group = ProcessGroup(self.plan.tensor_parallel, self.plan.gpus, log_dir, self.ref.label)
        try:
            self._group.start()
            return self._group.call(
                LoadModel(self.ref, self.plan, self.requested_dtype, self.fingerprint), f"loading {self.ref.label}"
            )
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
    """One rank of the group: receive (rank 0) or broadcast-receive requests, run them, reply (rank 0)."""
    import torch
    import torch.distributed as dist

    import deepspeed

    rank = int(os.environ["RANK"])
    local_rank = int(os.environ["LOCAL_RANK"])
    on_cuda = torch.cuda.is_available()
    if on_cuda:
        torch.cuda.set_device(local_rank)
    deepspeed.init_distributed(dist_backend="nccl" if on_cuda else "gloo")
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
                device = f"cuda:{local_rank}" if on_cuda else "cpu"
                lm, info = load_model(message.ref, replace(message.plan, device=device), message.requested_dtype, message.fingerprint)
                value: Any = replace(info, device=message.plan.device)
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
            traceback.print_exc()
            reply(Reply(error=f"Rank {rank} failed: {type(exc).__name__}: {' '.join(str(exc).split())[:300]}", fatal=True))
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
    # pickles name pytest_qwencmp.tensor_parallel's classes, and isinstance must match them.
    from pytest_qwencmp.tensor_parallel import serve as _serve

    sys.exit(_serve())
