"""What will actually run for a model: backend, dtype, device, batch size and tensor-parallel GPUs.

``plan_execution`` turns a ``PlacementRequest`` (the settings asked for and
the machine's facts) into an ``ExecutionPlan``:
FP16 through ``deepspeed.init_inference`` on CUDA; plain transformers on CPU,
where FP16 is mapped to float32 with a one-line notice; a model split across
processes always through DeepSpeed (AutoTP), on GPUs chosen by ``spread_gpus``.
It is pure (the machine's facts come in with the request) and this module imports
no torch at module level: ``cuda_available`` and ``cuda_device_count`` import it
only when an NVIDIA driver is present, so a run whose evaluations are all cached
stays fast.
"""

from __future__ import annotations

import sys
from importlib.util import find_spec
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from ..config.settings import RunSettings
from ..errors import QwencmpError

CPU_BATCH_SIZE = 16  # used for --batch-size auto on CPU (lm-eval's detection is for GPUs)
TENSOR_PARALLEL_BATCH_SIZE = 16  # used for --batch-size auto when a model is split across GPUs


@dataclass(frozen=True)
class ExecutionPlan:
    """What actually runs for a model: may differ from what was asked for on CPU."""

    backend: str  # "deepspeed" | "hf"
    dtype: str  # the dtype the weights run in
    device: str  # "cpu" | "cuda" | "cuda:N"
    batch_size: int | str
    notice: str = ""  # one line when the plan differs from the request
    tensor_parallel: int = 1  # processes (GPUs) the weights are split across
    gpus: tuple[int, ...] = ()  # with tensor parallelism on CUDA: the GPU indices the group uses

    @property
    def summary(self) -> str:
        """One line for progress output: ``deepspeed, float16, cuda:0,1, tensor parallel x2``."""
        parts = [self.backend, self.dtype, self.device]
        if self.tensor_parallel > 1:
            parts.append(f"tensor parallel x{self.tensor_parallel}")
        return ", ".join(parts)


@dataclass(frozen=True)
class PlacementRequest:
    """What a side asks for (dtype, ``--backend``, ``--device``, ``--batch-size``, ``--tp``) and what this machine has.

    ``worker_index`` is N of pytest-xdist worker gwN; ``gpus`` (from ``spread_gpus``)
    the GPUs chosen for the side on CUDA.
    """

    dtype: str
    backend: str
    device: str
    batch_size: int | str
    has_cuda: bool
    has_deepspeed: bool
    worker_index: int | None = None
    cuda_devices: int = 1
    tensor_parallel: int = 1
    gpus: tuple[int, ...] | None = None


def nvidia_driver_absent() -> bool:
    """True when this Linux machine certainly has no NVIDIA GPU: no driver is loaded.

    Decided from ``/proc`` and ``/dev`` without importing torch (~2 s), so that a
    CPU run whose evaluations are all cached stays fast. Elsewhere, or with a
    driver present, torch decides.
    """
    if not sys.platform.startswith("linux"):
        return False
    return not Path("/proc/driver/nvidia").exists() and not any(Path("/dev").glob("nvidia[0-9]*"))


def cuda_available() -> bool:
    if nvidia_driver_absent():
        return False
    import torch  # lazy: torch only when a model is built, loaded or run

    return bool(torch.cuda.is_available())


def cuda_device_count() -> int:
    if not cuda_available():
        return 0
    import torch  # lazy: torch only when a model is built, loaded or run

    return int(torch.cuda.device_count())


def deepspeed_available() -> bool:
    return find_spec("deepspeed") is not None


def plan_execution(request: PlacementRequest) -> ExecutionPlan:
    """Decide backend, dtype, device and batch size; pure, so it is unit-tested directly.

    Under pytest-xdist (``worker_index`` = N of worker gwN) with ``--device auto``,
    each worker pins its own GPU: ``cuda:N mod <number of GPUs>``. With
    ``tensor_parallel`` = T > 1 the weights are split by DeepSpeed across T
    processes; on CUDA worker N uses GPUs ``N*T .. N*T+T-1`` (mod the count).
    ``gpus`` (from ``spread_gpus``) overrides both choices on CUDA.
    """
    if request.tensor_parallel > 1:
        return _plan_tensor_parallel(request)
    backend, device, batch_size = request.backend, request.device, request.batch_size
    has_cuda, has_deepspeed, cuda_devices = request.has_cuda, request.has_deepspeed, request.cuda_devices
    if device in ("auto", "cuda") and has_cuda and request.gpus:
        device = f"cuda:{request.gpus[0]}"
    if device == "auto":
        if not has_cuda:
            device = "cpu"
        elif request.worker_index is not None and cuda_devices > 1:
            device = f"cuda:{request.worker_index % cuda_devices}"
        else:
            device = "cuda"
    if device.startswith("cuda") and not has_cuda:
        raise _no_cuda(device)
    notices = []
    if device.startswith("cuda"):
        if backend == "auto":
            backend = "deepspeed" if has_deepspeed else "hf"
            if not has_deepspeed:
                notices.append("DeepSpeed is not installed: plain transformers ran on CUDA")
        elif backend == "deepspeed" and not has_deepspeed:
            raise QwencmpError("--backend deepspeed was asked for but DeepSpeed is not installed; pip install deepspeed.")
        run_dtype = request.dtype
    else:
        if backend == "deepspeed" and not has_deepspeed:
            raise QwencmpError("--backend deepspeed was asked for but DeepSpeed is not installed; pip install deepspeed.")
        backend = "deepspeed" if backend == "deepspeed" else "hf"
        run_dtype, notice = _cpu_dtype(request.dtype, backend)
        notices += [notice] if notice else []
    if batch_size == "auto" and not device.startswith("cuda"):
        batch_size = CPU_BATCH_SIZE
    return ExecutionPlan(backend, run_dtype, device, batch_size, "; ".join(notices))


def _cpu_dtype(dtype: str, backend: str) -> tuple[str, str]:
    """The dtype a CPU run uses, and a notice when it is not the one asked for.

    CPUs do not run FP16 inference usefully, and DeepSpeed's CPU accelerator
    supports fp32 and bf16, not fp16: FP16 becomes float32.
    """
    run_dtype = "float32" if dtype == "float16" else dtype
    notice = f"{dtype} requested, but this CPU run used {run_dtype} ({backend} backend)" if run_dtype != dtype else ""
    return run_dtype, notice


def _no_cuda(device: str) -> QwencmpError:
    return QwencmpError(f"--device {device} was asked for but torch sees no CUDA device; use --device cpu or auto.")


def spread_gpus(sizes: Mapping[str, int], cuda_devices: int, worker_index: int | None = None) -> dict[str, tuple[int, ...]]:
    """GPUs for each side when a model is split: side by side when there are enough, so the
    models do not share memory (``{"a": 1, "b": 4}`` on 8 GPUs: A on 0, B on 1-4; xdist worker N
    takes the N-th such block); otherwise every side starts at the worker's first GPU.
    """
    need = sum(sizes.values())
    worker = worker_index or 0
    if cuda_devices >= need:
        spread: dict[str, tuple[int, ...]] = {}
        next_gpu = worker * need
        for side, size in sizes.items():
            spread[side] = tuple((next_gpu + i) % cuda_devices for i in range(size))
            next_gpu += size
        return spread
    first = worker * max(sizes.values())
    return {side: tuple((first + i) % cuda_devices for i in range(size)) for side, size in sizes.items()}


def _plan_tensor_parallel(request: PlacementRequest) -> ExecutionPlan:
    """The plan for a model split across ``tensor_parallel`` processes: always DeepSpeed (AutoTP)."""
    device, batch_size, gpus, cuda_devices = request.device, request.batch_size, request.gpus, request.cuda_devices
    tensor_parallel, has_cuda = request.tensor_parallel, request.has_cuda
    option = f"--tp {tensor_parallel}"
    if request.backend == "hf":
        raise QwencmpError(
            f"{option} splits the model across processes with DeepSpeed, but --backend hf was asked for; "
            "drop --backend hf (or use --backend deepspeed), or drop the tensor-parallel option."
        )
    if not request.has_deepspeed:
        raise QwencmpError(f"{option} needs DeepSpeed, which is not installed; pip install deepspeed.")
    if device == "auto":
        device = "cuda" if has_cuda else "cpu"
    if device.startswith("cuda:"):
        raise QwencmpError(
            f"--device {device} names one GPU, but {option} needs {tensor_parallel}; use --device cuda or auto "
            "(restrict the GPUs with CUDA_VISIBLE_DEVICES)."
        )
    notice = ""
    if device == "cuda":
        if not has_cuda:
            raise _no_cuda(device)
        if cuda_devices < tensor_parallel:
            raise QwencmpError(
                f"{option} needs {tensor_parallel} GPUs but torch sees {cuda_devices}; lower the tensor-parallel "
                "size or run on a machine with more GPUs."
            )
        if not gpus or len(gpus) != tensor_parallel:
            gpus = spread_gpus({"split": tensor_parallel}, cuda_devices, request.worker_index)["split"]
        run_dtype = request.dtype
        device = "cuda:" + ",".join(str(g) for g in gpus)
        if batch_size == "auto":
            # lm-eval's detection retries after an out-of-memory error in each rank on its own;
            # ranks that retry at different points leave the group's collectives out of step.
            batch_size = TENSOR_PARALLEL_BATCH_SIZE
            notice = (f"batch size {batch_size}: with {option} lm-eval does not detect it (the ranks must stay in "
                      "step); set --batch-size N to tune")
    else:
        gpus = ()
        run_dtype, notice = _cpu_dtype(request.dtype, "deepspeed")
        if batch_size == "auto":
            batch_size = CPU_BATCH_SIZE
    return ExecutionPlan("deepspeed", run_dtype, device, batch_size, notice, tensor_parallel, gpus)


def plan_sides(settings: RunSettings, worker_index: int | None = None) -> dict[str, ExecutionPlan]:
    """What will run for each side (backend, dtype, device, GPUs) under ``settings``; loads nothing.

    Raises ``QwencmpError`` for a request this machine cannot serve.
    """
    has_cuda = cuda_available()
    cuda_devices = cuda_device_count() if has_cuda else 0
    sizes = {side: settings.tensor_parallel(side) for side in ("a", "b")}
    gpus: dict[str, tuple[int, ...]] = {}
    if cuda_devices and max(sizes.values()) > 1 and settings.device in ("auto", "cuda"):
        gpus = spread_gpus(sizes, cuda_devices, worker_index)
    return {
        side: plan_execution(PlacementRequest(
            dtype=settings.dtype_for(side),
            backend=settings.backend,
            device=settings.device,
            batch_size=settings.batch_size,
            has_cuda=has_cuda,
            has_deepspeed=deepspeed_available(),
            worker_index=worker_index,
            cuda_devices=cuda_devices,
            tensor_parallel=sizes[side],
            gpus=gpus.get(side),
        ))
        for side in ("a", "b")
    }
