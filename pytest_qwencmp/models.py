"""Loading a model once and wrapping it as lm-eval's ``HFLM``.

``plan_execution`` decides, without touching torch's heavy parts, what will
actually run (backend, dtype, device) for the requested settings: FP16 through
``deepspeed.init_inference`` on CUDA; plain transformers on CPU, where FP16 is
mapped to float32 with a one-line notice. ``ModelHandle`` loads lazily, so a
run whose evaluations are all cached loads nothing, and counts its loads.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .errors import QwencmpError
from .settings import ModelRef

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf")
_CONTENT_HASH_LIMIT = 64 << 20  # hash whole files up to 64 MiB; larger ones by size, mtime, head and tail


@dataclass(frozen=True)
class ExecutionPlan:
    """What actually runs for a model: may differ from what was asked for on CPU."""

    backend: str  # "deepspeed" | "hf"
    dtype: str  # the dtype the weights run in
    device: str  # "cpu" | "cuda" | "cuda:N"
    batch_size: int | str
    notice: str = ""  # one line when the plan differs from the request


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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def cuda_available() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def cuda_device_count() -> int:
    import torch

    return int(torch.cuda.device_count()) if torch.cuda.is_available() else 0


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
) -> ExecutionPlan:
    """Decide backend, dtype, device and batch size; pure, so it is unit-tested directly.

    Under pytest-xdist (``worker_index`` = N of worker gwN) with ``--device auto``,
    each worker pins its own GPU: ``cuda:N mod <number of GPUs>``.
    """
    if device == "auto":
        if not has_cuda:
            device = "cpu"
        elif worker_index is not None and cuda_devices > 1:
            device = f"cuda:{worker_index % cuda_devices}"
        else:
            device = "cuda"
    if device.startswith("cuda") and not has_cuda:
        raise QwencmpError(f"--device {device} was asked for but torch sees no CUDA device; use --device cpu or auto.")
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
        if backend == "deepspeed":
            if not has_deepspeed:
                raise QwencmpError("--backend deepspeed was asked for but DeepSpeed is not installed; pip install deepspeed.")
            # DeepSpeed's CPU accelerator supports fp32 and bf16, not fp16.
            run_dtype = "float32" if dtype == "float16" else dtype
        else:
            backend = "hf"
            run_dtype = "float32" if dtype == "float16" else dtype
        if run_dtype != dtype:
            notices.append(f"{dtype} requested, but this CPU run used {run_dtype} ({backend} backend)")
    if batch_size == "auto" and not device.startswith("cuda"):
        batch_size = 16
    return ExecutionPlan(backend, run_dtype, device, batch_size, "; ".join(notices))


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
            raise QwencmpError(
                f"Model directory {folder} holds no weights (no *.safetensors or *.bin files); "
                "point --model-a/--model-b at a folder written by save_pretrained or a hub snapshot."
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


def _load_error(ref: ModelRef, exc: BaseException) -> QwencmpError:
    where = "local directory" if ref.is_local else "hub id"
    reason = " ".join(str(exc).split())[:400]
    hint = (
        "check that the folder holds config.json, tokenizer files and weights"
        if ref.is_local
        else "check the spelling; offline, the model must already be in the Hugging Face cache "
        "(HF_HOME) or given as a local directory"
    )
    return QwencmpError(f"Could not load model {ref.label!r} ({where}): {type(exc).__name__}: {reason}. Fix: {hint}.")


def load_model(ref: ModelRef, plan: ExecutionPlan, requested_dtype: str, fingerprint: str):
    """Load weights and tokenizer per ``plan`` and wrap them as lm-eval's HFLM. Returns (lm, ModelInfo)."""
    started = time.perf_counter()
    try:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        source = str(ref.path) if ref.is_local else ref.name_or_path
        kwargs: dict[str, Any] = {"revision": ref.revision} if ref.revision else {}
        tokenizer = AutoTokenizer.from_pretrained(source, **kwargs)
        model = AutoModelForCausalLM.from_pretrained(source, dtype=_torch_dtype(plan.dtype), **kwargs)
    except QwencmpError:
        raise
    except (OSError, ValueError, KeyError, EnvironmentError) as exc:
        raise _load_error(ref, exc) from None
    model.eval()
    parameters = sum(p.numel() for p in model.parameters())
    if plan.backend == "deepspeed":
        model = _deepspeed_module(model, plan)
    elif plan.device != "cpu":
        model = model.to(plan.device)
    from lm_eval.models.huggingface import HFLM

    lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=plan.batch_size, device=plan.device)
    info = ModelInfo(
        label=ref.label,
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
    )
    return lm, info


def _deepspeed_module(model, plan: ExecutionPlan):
    """FP16 inference engine; no kernel injection (DeepSpeed has no Qwen2 policy)."""
    import deepspeed

    if plan.device.startswith("cuda"):
        import torch

        index = int(plan.device.split(":")[1]) if ":" in plan.device else torch.cuda.current_device()
        torch.cuda.set_device(index)
        os.environ.setdefault("LOCAL_RANK", "0")
    engine = deepspeed.init_inference(model, dtype=_torch_dtype(plan.dtype), replace_with_kernel_inject=False)
    return engine.module


class ModelHandle:
    """One side of the comparison (A or B): loads its model on first use, at most once."""

    def __init__(self, side: str, ref: ModelRef, plan: ExecutionPlan, requested_dtype: str) -> None:
        self.side = side
        self.ref = ref
        self.plan = plan
        self.requested_dtype = requested_dtype
        self.loads = 0
        self._fingerprint: str | None = None
        self._loaded: tuple[Any, ModelInfo] | None = None
        self._error: QwencmpError | None = None

    @property
    def fingerprint(self) -> str:
        if self._fingerprint is None:
            self._fingerprint = model_fingerprint(self.ref)
        return self._fingerprint

    @property
    def is_loaded(self) -> bool:
        return self._loaded is not None

    def load(self) -> tuple[Any, ModelInfo]:
        if self._error is not None:
            raise self._error
        if self._loaded is None:
            try:
                self._loaded = load_model(self.ref, self.plan, self.requested_dtype, self.fingerprint)
            except QwencmpError as exc:
                self._error = exc
                raise
            self.loads += 1
        return self._loaded

    def describe(self) -> dict[str, Any]:
        """What ran or will run, without loading anything."""
        return {
            "label": self.ref.label,
            "name_or_path": self.ref.name_or_path,
            "revision": self.ref.revision,
            "backend": self.plan.backend,
            "dtype": self.plan.dtype,
            "requested_dtype": self.requested_dtype,
            "device": self.plan.device,
            "notice": self.plan.notice,
        }


def read_parameter_count(ref: ModelRef) -> int | None:
    """Parameter count from a local safetensors index/header, without loading weights."""
    if not ref.is_local:
        return None
    total = 0
    for path in ref.path.glob("*.safetensors"):
        with path.open("rb") as handle:
            header_len = int.from_bytes(handle.read(8), "little")
            header = json.loads(handle.read(header_len))
        for name, meta in header.items():
            if name != "__metadata__":
                count = 1
                for dim in meta["shape"]:
                    count *= dim
                total += count
    return total or None
