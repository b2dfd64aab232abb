"""Loading a model once and wrapping it as lm-eval's ``HFLM``.

``plan_execution`` decides, without touching torch's heavy parts, what will
actually run (backend, dtype, device, tensor-parallel GPUs) for the requested
settings: FP16 through ``deepspeed.init_inference`` on CUDA; plain
transformers on CPU, where FP16 is mapped to float32 with a one-line notice.
``ModelHandle`` holds one side's model in this process: it loads lazily, so a
run whose evaluations are all cached loads nothing, and counts its loads. A
model split across GPUs lives in a group of processes instead
(``tensor_parallel.TensorParallelHandle``, the same ``ModelSide`` interface).
A side's ``ModelOptions`` (chat template, adapter, model arguments) are applied
here: checked before the weights load (``preflight``), then passed to
transformers, peft (``adapters``) and ``HFLM``. On a single CUDA device the
weights load straight onto it (``device_map``), never staged in host memory.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Protocol

from .errors import ModelUnavailable, QwencmpError
from .model_options import ModelOptions
from .model_sources import WEIGHT_SUFFIXES, HubAccess, ModelSource, check_local_folder, check_model_source
from .settings import ModelRef

if TYPE_CHECKING:  # pragma: no cover
    from .harness import EvaluationRequest

CPU_BATCH_SIZE = 16  # used for --batch-size auto on CPU (lm-eval's detection is for GPUs)
TENSOR_PARALLEL_BATCH_SIZE = 16  # used for --batch-size auto when a model is split across GPUs
_CONTENT_HASH_LIMIT = 64 << 20  # hash whole files up to 64 MiB; larger ones by size, mtime, head and tail


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
class ModelInfo:
    """What a report needs to say about a loaded model."""

    label: str
    name_or_path: str
    revision: str | None
    fingerprint: str
    backend: str
    dtype: str
    requested_dtype: str
    device: str
    parameters: int
    load_seconds: float
    notice: str
    tensor_parallel: int = 1
    setup: Mapping[str, Any] = field(default_factory=dict)  # ModelOptions.setup(): adapter, chat template, model args

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


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
    import torch

    return bool(torch.cuda.is_available())


def cuda_device_count() -> int:
    if not cuda_available():
        return 0
    import torch

    return int(torch.cuda.device_count())


def deepspeed_available() -> bool:
    from importlib.util import find_spec

    return find_spec("deepspeed") is not None


def plan_execution(
    *,
    dtype: str,
    backend: str,
    device: str,
    batch_size: int | str,
    has_cuda: bool,
    has_deepspeed: bool,
    worker_index: int | None = None,
    cuda_devices: int = 1,
    tensor_parallel: int = 1,
    gpus: tuple[int, ...] | None = None,
) -> ExecutionPlan:
    """Decide backend, dtype, device and batch size; pure, so it is unit-tested directly.

    Under pytest-xdist (``worker_index`` = N of worker gwN) with ``--device auto``,
    each worker pins its own GPU: ``cuda:N mod <number of GPUs>``. With
    ``tensor_parallel`` = T > 1 the weights are split by DeepSpeed across T
    processes; on CUDA worker N uses GPUs ``N*T .. N*T+T-1`` (mod the count).
    ``gpus`` (from ``spread_gpus``) overrides both choices on CUDA.
    """
    if tensor_parallel > 1:
        return _plan_tensor_parallel(
            dtype=dtype, backend=backend, device=device, batch_size=batch_size, has_cuda=has_cuda,
            has_deepspeed=has_deepspeed, worker_index=worker_index, cuda_devices=cuda_devices,
            tensor_parallel=tensor_parallel, gpus=gpus,
        )
    if device in ("auto", "cuda") and has_cuda and gpus:
        device = f"cuda:{gpus[0]}"
    if device == "auto":
        if not has_cuda:
            device = "cpu"
        elif worker_index is not None and cuda_devices > 1:
            device = f"cuda:{worker_index % cuda_devices}"
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
        run_dtype = dtype
    else:
        if backend == "deepspeed" and not has_deepspeed:
            raise QwencmpError("--backend deepspeed was asked for but DeepSpeed is not installed; pip install deepspeed.")
        backend = "deepspeed" if backend == "deepspeed" else "hf"
        run_dtype, notice = _cpu_dtype(dtype, backend)
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


def _plan_tensor_parallel(
    *,
    dtype: str,
    backend: str,
    device: str,
    batch_size: int | str,
    has_cuda: bool,
    has_deepspeed: bool,
    worker_index: int | None,
    cuda_devices: int,
    tensor_parallel: int,
    gpus: tuple[int, ...] | None,
) -> ExecutionPlan:
    """The plan for a model split across ``tensor_parallel`` processes: always DeepSpeed (AutoTP)."""
    option = f"--tp {tensor_parallel}"
    if backend == "hf":
        raise QwencmpError(
            f"{option} splits the model across processes with DeepSpeed, but --backend hf was asked for; "
            "drop --backend hf (or use --backend deepspeed), or drop the tensor-parallel option."
        )
    if not has_deepspeed:
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
            gpus = spread_gpus({"split": tensor_parallel}, cuda_devices, worker_index)["split"]
        run_dtype = dtype
        device = "cuda:" + ",".join(str(g) for g in gpus)
        if batch_size == "auto":
            # lm-eval's detection retries after an out-of-memory error in each rank on its own;
            # ranks that retry at different points leave the group's collectives out of step.
            batch_size = TENSOR_PARALLEL_BATCH_SIZE
            notice = (f"--batch-size auto is not used with {option} (ranks must stay in step); "
                      f"batch size {batch_size}, set --batch-size to tune")
    else:
        gpus = ()
        run_dtype, notice = _cpu_dtype(dtype, "deepspeed")
        if batch_size == "auto":
            batch_size = CPU_BATCH_SIZE
    return ExecutionPlan("deepspeed", run_dtype, device, batch_size, notice, tensor_parallel, gpus)


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    size = path.stat().st_size
    with path.open("rb") as handle:
        if size <= _CONTENT_HASH_LIMIT:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        else:
            digest.update(f"{size}:{path.stat().st_mtime_ns}".encode())
            digest.update(handle.read(1 << 20))
            handle.seek(size - (1 << 20))
            digest.update(handle.read(1 << 20))
    return digest.hexdigest()


def model_fingerprint(ref: ModelRef) -> str:
    """Identity of the weights: a content hash for local folders, the resolved revision for hub ids."""
    if ref.is_local:
        folder = ref.path
        files = sorted(p for p in folder.rglob("*") if p.is_file() and (p.suffix in WEIGHT_SUFFIXES or p.suffix == ".json"))
        if not any(p.suffix in WEIGHT_SUFFIXES for p in files):
            raise ModelUnavailable(
                f"Model directory {folder} holds no weights (no *.safetensors or *.bin files), so model "
                f"{ref.label!r} cannot be loaded. Fix: point --model-a/--model-b at a folder written by "
                "save_pretrained or a complete hub snapshot (`python -m pytest_qwencmp mirror --out DIR --model "
                "ORG/NAME` writes one to DIR/models/ORG/NAME)."
            )
        digest = hashlib.sha256()
        for path in files:
            digest.update(str(path.relative_to(folder)).encode() + b"\0" + _file_digest(path).encode())
        return "local:" + digest.hexdigest()
    revision = ref.revision or "main"
    return f"hub:{ref.name_or_path}@{_resolve_hub_revision(ref.name_or_path, revision)}"


def _resolve_hub_revision(repo_id: str, revision: str) -> str:
    """The commit a branch or tag points to in the local HF cache, else the name as given."""
    try:
        from huggingface_hub.constants import HF_HUB_CACHE
    except ImportError:  # pragma: no cover
        return revision
    ref_file = Path(HF_HUB_CACHE) / f"models--{repo_id.replace('/', '--')}" / "refs" / revision
    try:
        return ref_file.read_text().strip() or revision
    except OSError:
        return revision


def _torch_dtype(name: str):
    import torch

    return {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}[name]


def _load_error(ref: ModelRef, exc: BaseException) -> ModelUnavailable:
    where = "local directory" if ref.is_local else "hub id"
    reason = " ".join(str(exc).split())[:400].rstrip(".")
    hint = (
        "check that the folder holds config.json, tokenizer files and complete weights (an interrupted copy "
        "leaves them truncated); `python -m pytest_qwencmp mirror --out DIR --model ORG/NAME` writes a complete "
        "copy to DIR/models/ORG/NAME"
        if ref.is_local
        else "check the spelling of the id (and access with `hf auth login` for a gated model); on a machine "
        "without the hub, give a local model directory or use `python -m pytest_qwencmp mirror` (see README)"
    )
    return ModelUnavailable(f"Could not load model {ref.label!r} ({where}): {type(exc).__name__}: {reason}. Fix: {hint}.")


def placement(plan: ExecutionPlan) -> dict[str, Any]:
    """``device_map`` for ``from_pretrained``: a single CUDA device gets its weights straight from the
    checkpoint (no staging copy in host memory); CPU needs none (transformers keeps one copy, read from
    the memory-mapped file), and a model split by DeepSpeed loads on the host, where AutoTP shards it.
    """
    if plan.tensor_parallel == 1 and plan.device.startswith("cuda"):
        return {"device_map": {"": plan.device}}
    return {}


def load_model(
    ref: ModelRef,
    plan: ExecutionPlan,
    requested_dtype: str,
    fingerprint: str,
    options: ModelOptions = ModelOptions(),
    adapter_fingerprint: str | None = None,
    *,
    local_files_only: bool = False,
):
    """Load weights and tokenizer per ``plan`` and ``options`` and wrap them as lm-eval's HFLM.
    Returns (lm, ModelInfo).

    In a tensor-parallel group each rank calls this with its own ``plan.device``
    and keeps its shard of the weights. ``local_files_only``: never touch the
    network (a local directory, or the HF cache when the hub cannot be reached).
    """
    started = time.perf_counter()
    try:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        source = str(ref.path) if ref.is_local else ref.name_or_path
        kwargs: dict[str, Any] = {"revision": ref.revision} if ref.revision else {}
        if local_files_only:
            kwargs["local_files_only"] = True
        tokenizer = AutoTokenizer.from_pretrained(source, **kwargs, **options.tokenizer_kwargs())
        if options.chat_template and not getattr(tokenizer, "chat_template", None):
            from .preflight import no_chat_template

            raise no_chat_template(ref.label, "--apply-chat-template", "its tokenizer loaded without one")
        load_kwargs = {**placement(plan), **_load_options(options, plan)}
        model = AutoModelForCausalLM.from_pretrained(source, dtype=_torch_dtype(plan.dtype), **kwargs, **load_kwargs)
    except QwencmpError:
        raise
    except Exception as exc:  # missing files, unknown hub id, truncated weights (SafetensorError), bad config...
        raise _load_error(ref, exc) from None
    model.eval()
    parameters = _parameter_count(model)
    if options.peft is not None:
        from .adapters import attach_adapter

        # DeepSpeed gets the adapter merged into plain linear layers (AutoTP splits those).
        model = attach_adapter(model, options.peft, merge=plan.backend == "deepspeed")
    if plan.backend == "deepspeed":
        model = _deepspeed_module(model, plan)
    elif plan.device != "cpu" and not placement(plan):
        model = model.to(plan.device)
    from lm_eval.models.huggingface import HFLM

    lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=plan.batch_size, device=plan.device, **options.lm_kwargs())
    info = ModelInfo(
        label=options.label(ref.label),
        name_or_path=ref.name_or_path,
        revision=ref.revision,
        fingerprint=fingerprint,
        backend=plan.backend,
        dtype=plan.dtype,
        requested_dtype=requested_dtype,
        device=plan.device,
        parameters=parameters,
        load_seconds=round(time.perf_counter() - started, 3),
        notice=plan.notice,
        tensor_parallel=plan.tensor_parallel,
        setup=options.setup(adapter_fingerprint),
    )
    return lm, info


def _parameter_count(model) -> int:
    """The model's parameters; transformers' count undoes bitsandbytes 4-bit packing (two weights per byte)."""
    counter = getattr(model, "num_parameters", None)
    return int(counter()) if callable(counter) else sum(p.numel() for p in model.parameters())


def _load_options(options: ModelOptions, plan: ExecutionPlan) -> dict[str, Any]:
    """``from_pretrained`` keywords from ``--model-args``: trust_remote_code, attn_implementation, and a
    ``BitsAndBytesConfig`` for load_in_4bit/load_in_8bit (loaded onto the plan's device)."""
    kwargs = options.load_kwargs()
    bnb = options.bnb_settings()
    if bnb:
        from transformers import BitsAndBytesConfig

        if "bnb_4bit_compute_dtype" in bnb:
            bnb["bnb_4bit_compute_dtype"] = _torch_dtype(bnb["bnb_4bit_compute_dtype"])
        kwargs["quantization_config"] = BitsAndBytesConfig(**bnb)
        kwargs.setdefault("device_map", {"": plan.device})
    return kwargs


def _deepspeed_module(model, plan: ExecutionPlan):
    """FP16 inference engine; no kernel injection (DeepSpeed has no Qwen2 policy).

    With ``plan.tensor_parallel`` > 1 this runs in every rank of a launched
    group and DeepSpeed's AutoTP keeps this rank's shard of each linear layer.
    """
    import deepspeed

    if plan.device.startswith("cuda"):
        import torch

        index = int(plan.device.split(":")[1]) if ":" in plan.device else torch.cuda.current_device()
        torch.cuda.set_device(index)
        os.environ.setdefault("LOCAL_RANK", "0")
    parallel = {"tensor_parallel": {"tp_size": plan.tensor_parallel}} if plan.tensor_parallel > 1 else {}
    engine = deepspeed.init_inference(model, dtype=_torch_dtype(plan.dtype), replace_with_kernel_inject=False, **parallel)
    return engine.module


class ModelSide(Protocol):
    """One side of the comparison as the evaluator sees it, wherever its model runs."""

    side: str
    ref: ModelRef
    plan: ExecutionPlan
    loads: int

    options: ModelOptions

    @property
    def label(self) -> str: ...

    @property
    def fingerprint(self) -> str: ...

    def setup(self) -> dict[str, Any]: ...

    def load(self) -> ModelInfo: ...

    def run(self, request: "EvaluationRequest") -> Mapping[str, Any]: ...

    def describe(self) -> dict[str, Any]: ...

    def close(self) -> None: ...


class ModelHandle:
    """One side of the comparison (A or B) in this process: loads its model on first use, at most once.

    Before any weights are read, ``check`` decides in seconds whether (and from
    where) the model can be loaded at all (``model_sources``). A failed check or
    load is remembered: every later use raises the same error object at once.
    Subclasses that keep the model elsewhere override ``_load``, ``_run`` and ``close``.
    """

    def __init__(
        self,
        side: str,
        ref: ModelRef,
        plan: ExecutionPlan,
        requested_dtype: str,
        options: ModelOptions = ModelOptions(),
        *,
        hub: HubAccess | None = None,
    ) -> None:
        self.side = side
        self.ref = ref
        self.plan = plan
        self.requested_dtype = requested_dtype
        self.options = options
        self.loads = 0
        self.hub = hub or HubAccess()
        self._fingerprint: str | None = None
        self._source: ModelSource | None = None
        self._adapter_fingerprint: str | None = None
        self._info: ModelInfo | None = None
        self._lm: Any = None
        self._error: QwencmpError | None = None

    @property
    def option(self) -> str:
        return f"--model-{self.side}"

    @property
    def fingerprint(self) -> str:
        """The weights' identity (cache keys); computable even when the model cannot be loaded here."""
        if self._fingerprint is None:
            if self.ref.is_local:
                check_local_folder(self.ref, self.option)  # an empty or half-copied folder: say so, with the fix
            self._fingerprint = model_fingerprint(self.ref)
        return self._fingerprint

    @property
    def label(self) -> str:
        """The side's display name (model, adapter, chat template): ``ModelOptions.label``."""
        return self.options.label(self.ref.label)

    @property
    def adapter_fingerprint(self) -> str | None:
        """Identity of the PEFT adapter's weights (content hash, or hub revision); None without one."""
        if self.options.peft is not None and self._adapter_fingerprint is None:
            self._adapter_fingerprint = model_fingerprint(self.options.peft)
        return self._adapter_fingerprint

    def setup(self) -> dict[str, Any]:
        """The side's adapter, chat template and model arguments as they change its numbers (cache key,
        report, baselines); empty for a plain model."""
        return self.options.setup(self.adapter_fingerprint)

    def preflight(self) -> None:
        """Check what can be checked before any weights load (chat template, quantization library)."""
        from .preflight import check_model

        option = "--apply-chat-template"
        check_model(self.ref.label, weights_folder(self.ref), self.options, self.plan.device.split(",")[0], option)

    def check(self) -> ModelSource:
        """Where the model will be read from; ``ModelUnavailable`` (remembered) if it cannot be loaded here."""
        if self._error is not None:
            raise self._error
        if self._source is None:
            try:
                self._source = check_model_source(self.ref, self.option, self.hub)
            except QwencmpError as exc:
                self._error = exc
                raise
        return self._source

    def load(self) -> ModelInfo:
        self.check()
        if self._info is None:
            try:
                self.preflight()
                self._info = self._load()
            except QwencmpError as exc:
                self._error = exc
                raise
            self.loads += 1
        return self._info

    def run(self, request: "EvaluationRequest") -> Mapping[str, Any]:
        """Evaluate ``request`` on this side's model (loading it first if needed)."""
        self.load()
        return self._run(request)

    def close(self) -> None:
        """Drop the model (its memory is freed once nothing else refers to it)."""
        self._lm = None
        self._info = None

    def _load(self) -> ModelInfo:
        local_only = self._source.local_files_only if self._source else False
        self._lm, info = load_model(
            self.ref, self.plan, self.requested_dtype, self.fingerprint, self.options, self.adapter_fingerprint,
            local_files_only=local_only,
        )
        return info

    def _run(self, request: "EvaluationRequest") -> Mapping[str, Any]:
        from .harness import run_request

        output = run_request(self._lm, request)
        if output is None:  # lm-eval leaves results to LOCAL_RANK 0
            raise QwencmpError(
                f"lm-eval returned no results for {request.benchmark.name} on {request.label}: this process has "
                f"LOCAL_RANK={os.environ.get('LOCAL_RANK')} in its environment, and lm-eval then leaves the results "
                "to rank 0. Run pytest without a distributed launcher (for --tp the plugin launches its own ranks)."
            )
        return output

    def describe(self) -> dict[str, Any]:
        """What ran or will run, without loading anything."""
        return {
            "label": self.label,
            "name_or_path": self.ref.name_or_path,
            "revision": self.ref.revision,
            "backend": self.plan.backend,
            "dtype": self.plan.dtype,
            "requested_dtype": self.requested_dtype,
            "device": self.plan.device,
            "notice": self.plan.notice,
            "tensor_parallel": self.plan.tensor_parallel,
            "setup": self.setup(),
        }


def weights_folder(ref: ModelRef) -> Path | None:
    """Where the model's files are on this machine: its local directory, or its snapshot in the
    Hugging Face cache; ``None`` when a hub model is not downloaded yet."""
    if ref.is_local:
        return ref.path
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(ref.name_or_path, revision=ref.revision, local_files_only=True))
    except Exception:  # not in the cache (or no huggingface_hub): unknown
        return None


def read_parameter_count(ref: ModelRef) -> int | None:
    """Parameter count from the safetensors headers (local folder or cached snapshot), without loading weights."""
    folder = weights_folder(ref)
    if folder is None:
        return None
    total = 0
    try:
        for path in folder.glob("*.safetensors"):
            with path.open("rb") as handle:
                header_len = int.from_bytes(handle.read(8), "little")
                header = json.loads(handle.read(header_len))
            for name, meta in header.items():
                if name != "__metadata__":
                    count = 1
                    for dim in meta["shape"]:
                        count *= dim
                    total += count
    except (OSError, ValueError, KeyError, TypeError, AttributeError):  # unreadable: loading will say why
        return None
    return total or None
