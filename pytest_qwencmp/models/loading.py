"""Loading a model once and wrapping it as lm-eval's ``HFLM``.

``load_model`` reads a side's ``ModelSpec`` (the model, the ``ExecutionPlan``
from ``placement``, the dtype asked for, its options) and wraps it for
lm-eval: on a single CUDA device the weights load straight onto it
(``device_map``), never staged in host memory; with the DeepSpeed backend the
model becomes an FP16 inference engine.
``ModelHandle`` holds one side's model in this process: it loads lazily, so a
run whose evaluations are all cached loads nothing, and counts its loads. A
model split across GPUs lives in a group of processes instead
(``tensor_parallel.TensorParallelHandle``, the same ``ModelSide`` interface).
A side's ``ModelOptions`` (chat template, adapter, model arguments) are applied
here: checked before the weights load (``preflight``), then passed to
transformers, peft (``adapters``) and ``HFLM``.
"""

from __future__ import annotations

import logging
import os
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any, Iterator, Mapping, Protocol

from ..config.settings import ModelRef
from ..config.sides import ModelOptions
from ..errors import ModelUnavailable, QwencmpError
from ..hub import HubAccess
from ..lmeval.harness import EvaluationRequest, run_request
from .adapters import attach_adapter
from .placement import ExecutionPlan
from .preflight import check_model, no_chat_template
from .sources import ADAPTER, ModelSource, check_local_folder, check_model_source
from .weights import model_fingerprint, weights_folder


@dataclass(frozen=True)
class ModelSpec:
    """What one side loads: the model, the plan it runs under, the dtype asked for, and its options."""

    ref: ModelRef
    plan: ExecutionPlan
    requested_dtype: str
    options: ModelOptions = ModelOptions()

    @property
    def label(self) -> str:
        """The side's display name (model, adapter, chat template): ``ModelOptions.label``."""
        return self.options.label(self.ref.label)

    def describe(self) -> dict[str, Any]:
        """What a report says of this side before anything loads (``ModelInfo`` adds what the load learns)."""
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
        }


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


def _torch_dtype(name: str):
    import torch  # lazy: torch only when a model is built, loaded or run

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


# What HFLM logs when it is handed a loaded model, as the plugin always does: advice for other callers.
_HANDOVER_WARNINGS = ("`pretrained` model kwarg is not of type `str`", "Passed an already-initialized model through `pretrained`")


class _HandoverFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not any(text in record.getMessage() for text in _HANDOVER_WARNINGS)


@contextmanager
def _without_handover_warnings() -> Iterator[None]:
    """Keep lm-eval's two warnings about an already-loaded model out of every report's captured log."""
    logger = logging.getLogger("lm_eval.models.huggingface")
    handover = _HandoverFilter()
    logger.addFilter(handover)
    try:
        yield
    finally:
        logger.removeFilter(handover)


def load_model(spec: ModelSpec, fingerprint: str, adapter_fingerprint: str | None = None, *,
               local_files_only: bool = False):
    """Load weights and tokenizer per the spec's plan and options and wrap them as lm-eval's HFLM.
    Returns (lm, ModelInfo).

    In a tensor-parallel group each rank calls this with its own ``plan.device``
    and keeps its shard of the weights. ``local_files_only``: never touch the
    network (a local directory, or the HF cache when the hub cannot be reached).
    """
    started = time.perf_counter()
    ref, plan, options = spec.ref, spec.plan, spec.options
    try:
        from transformers import AutoModelForCausalLM, AutoTokenizer  # lazy: transformers (and torch) only when a model is loaded or built

        source = str(ref.path) if ref.is_local else ref.name_or_path
        kwargs: dict[str, Any] = {"revision": ref.revision} if ref.revision else {}
        if local_files_only:
            kwargs["local_files_only"] = True
        tokenizer = AutoTokenizer.from_pretrained(source, **kwargs, **options.tokenizer_kwargs())
        if options.chat_template and not getattr(tokenizer, "chat_template", None):
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
        # DeepSpeed gets the adapter merged into plain linear layers (AutoTP splits those).
        model = attach_adapter(model, options.peft, merge=plan.backend == "deepspeed")
    if plan.backend == "deepspeed":
        model = _deepspeed_module(model, plan)
    elif plan.device != "cpu" and not placement(plan):
        model = model.to(plan.device)
    from lm_eval.models.huggingface import HFLM  # lazy: lm-eval (torch, datasets) only when an evaluation runs

    with _without_handover_warnings():
        lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=plan.batch_size, device=plan.device, **options.lm_kwargs())
    info = ModelInfo(
        **spec.describe(), fingerprint=fingerprint, parameters=parameters,
        load_seconds=round(time.perf_counter() - started, 3), setup=options.setup(adapter_fingerprint),
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
        from transformers import BitsAndBytesConfig  # lazy: transformers (and torch) only when a model is loaded or built

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
    import deepspeed  # lazy: deepspeed only for its backend

    if plan.device.startswith("cuda"):
        import torch  # lazy: torch only when a model is built, loaded or run

        index = int(plan.device.split(":")[1]) if ":" in plan.device else torch.cuda.current_device()
        torch.cuda.set_device(index)
        os.environ.setdefault("LOCAL_RANK", "0")
    parallel = {"tensor_parallel": {"tp_size": plan.tensor_parallel}} if plan.tensor_parallel > 1 else {}
    engine = deepspeed.init_inference(model, dtype=_torch_dtype(plan.dtype), replace_with_kernel_inject=False, **parallel)
    return engine.module


class ModelSide(Protocol):
    """One side of the comparison as the evaluator sees it, wherever its model runs."""

    side: str
    spec: ModelSpec
    loads: int

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
    where) the model can be loaded at all (``sources``). A failed check or
    load is remembered: every later use raises the same error object at once.
    Subclasses that keep the model elsewhere override ``_load``, ``_run`` and ``close``.
    """

    def __init__(self, side: str, spec: ModelSpec, *, hub: HubAccess | None = None) -> None:
        self.side = side
        self.spec = spec
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
            if self.spec.ref.is_local:
                check_local_folder(self.spec.ref, self.option)  # an empty or half-copied folder: say so, with the fix
            self._fingerprint = model_fingerprint(self.spec.ref)
        return self._fingerprint

    @property
    def label(self) -> str:
        """The side's display name (model, adapter, chat template): ``ModelSpec.label``."""
        return self.spec.label

    @property
    def adapter_fingerprint(self) -> str | None:
        """Identity of the PEFT adapter's weights (content hash, or hub revision); None without one."""
        if self.spec.options.peft is not None and self._adapter_fingerprint is None:
            self._adapter_fingerprint = model_fingerprint(self.spec.options.peft)
        return self._adapter_fingerprint

    def setup(self) -> dict[str, Any]:
        """The side's adapter, chat template and model arguments as they change its numbers (cache key,
        report, baselines); empty for a plain model."""
        return self.spec.options.setup(self.adapter_fingerprint)

    def preflight(self) -> None:
        """Check what can be checked before any weights load (chat template, quantization library)."""
        spec, option = self.spec, "--apply-chat-template"
        check_model(spec.ref.label, weights_folder(spec.ref), spec.options, spec.plan.device.split(",")[0], option)

    def check(self) -> ModelSource:
        """Where the model will be read from; ``ModelUnavailable`` (remembered) if it or its PEFT adapter
        cannot be read here."""
        if self._error is not None:
            raise self._error
        if self._source is None:
            try:
                source = check_model_source(self.spec.ref, self.option, self.hub)
                if self.spec.options.peft is not None:
                    check_model_source(self.spec.options.peft, f"--peft-{self.side}", self.hub, ADAPTER)
                self._source = source
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
        self._lm, info = load_model(self.spec, self.fingerprint, self.adapter_fingerprint, local_files_only=local_only)
        return info

    def _run(self, request: "EvaluationRequest") -> Mapping[str, Any]:
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
            **self.spec.describe(),
            "requested_batch_size": self.spec.plan.batch_size,  # an integer, or "auto" (detected per benchmark)
            "setup": self.setup(),
        }
