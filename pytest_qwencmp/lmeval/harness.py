"""One ``lm_eval.simple_evaluate`` call on an already loaded model.

``EvaluationRequest`` says everything the call needs besides the model — the
benchmark, where its data lives, shots, limit, generation settings, seed, and
the side's prompting (chat template, few-shot as multi-turn, system
instruction, passed exactly as lm-eval's CLI passes them), and optionally the
very documents to evaluate (``documents``, lm-eval's ``samples=``: exactly
those, for a sequential run's look or the documents a cache lacks) — and
is plain, picklable data, so the same request runs in this process or in every
rank of a tensor-parallel group (``tensor_parallel``). ``run_request`` builds
the task manager over the real task definitions (``tasks``), runs MBPP's
code through the sandbox (``code_eval``), translates the failures a user can
fix into one-paragraph errors, and returns only the parts of lm-eval's output
this project reads.
"""

from __future__ import annotations

import functools
import inspect
import logging
import os
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping

from ..config.benchmarks import Benchmark
from ..errors import DataError, OutOfMemory, QwencmpError
from .code_eval import SandboxedCodeEval, sandboxed_code_eval
from .tasks import TaskSource

# The parts of simple_evaluate's output that the evaluation, the reports and the cache use.
OUTPUT_KEYS = ("results", "groups", "n-shot", "n-samples", "versions", "higher_is_better", "config", "samples")


@dataclass(frozen=True)
class EvaluationRequest:
    """One benchmark to evaluate on a loaded model; picklable."""

    benchmark: Benchmark
    label: str  # the model's display name, for error messages
    data_dir: Path | None
    datasets_cache: Path
    num_fewshot: int | None
    limit: int | None
    gen_kwargs: Mapping[str, Any] | None
    seed: int
    data_fingerprints: Mapping[str, str] | None = None  # content hashes of the local data, when already computed
    apply_chat_template: bool | str = False  # lm-eval's apply_chat_template: False, True or a template name
    fewshot_as_multiturn: bool = False
    system_instruction: str | None = None
    samples: int = 1  # answers sampled per document of a generation task (--samples), every one scored
    # Only these documents (leaf task -> sorted document indices), through simple_evaluate(samples=...):
    # the leaf tasks are asked for by name (a group would evaluate every document of a task left out).
    documents: Mapping[str, tuple[int, ...]] | None = None

    @property
    def tasks(self) -> list[str]:
        """What simple_evaluate is asked for: the benchmark's request, or the leaf tasks holding chosen documents."""
        return list(self.documents) if self.documents is not None else list(self.benchmark.request)


def run_request(lm, request: EvaluationRequest) -> dict[str, Any] | None:
    """Evaluate ``request`` on ``lm`` (lm-eval's HFLM); ``None`` on a tensor-parallel rank other than 0.

    Under a tensor-parallel launch every rank runs the same call (each holds a
    shard of the weights); lm-eval returns the results on local rank 0 only.
    """
    if isinstance(getattr(lm, "batch_sizes", None), dict):
        # With --batch-size auto, detect per benchmark: a size found on short HellaSwag
        # requests must not be reused for long MMLU/MBPP prompts (lm-eval #1678, #3654).
        lm.batch_sizes = {}
    # lm-eval warns once per MMLU subject that num_fewshot was set explicitly; that is the point.
    logging.getLogger("lm_eval.evaluator").setLevel(logging.ERROR)
    # ... and that each local-data override replaces the built-in task of the same name: by design.
    logging.getLogger("lm_eval.tasks._index").setLevel(logging.ERROR)
    # ... and, per task, that a custom_dataset function (our local-data reader) takes --metadata.
    task_logger = logging.getLogger("lm_eval.api.task")
    if not any(isinstance(f, _CustomDatasetNotice) for f in task_logger.filters):
        task_logger.addFilter(_CustomDatasetNotice())
    with tempfile.TemporaryDirectory(prefix="qwencmp-tasks-") as tmp, _detected_batch_sizes(lm) as detected:
        fingerprints = None if request.data_fingerprints is None else dict(request.data_fingerprints)
        source = TaskSource(request.benchmark, request.data_dir)
        manager = source.build_manager(Path(tmp), request.datasets_cache, fingerprints, samples=request.samples)
        output = _simple_evaluate(lm, request, manager)
    if output is None:
        if int(os.environ.get("LOCAL_RANK", "0")) != 0:
            return None
        raise QwencmpError(f"lm-eval returned no results for {request.benchmark.name} on {request.label}.")
    ran = batch_size_that_ran(getattr(lm, "batch_size", None), detected)
    kept = {key: output.get(key, {}) for key in OUTPUT_KEYS}
    # lm-eval records batch_size None for a model handed over as an object: record what ran instead.
    kept["config"] = {**kept["config"], "batch_size": ran, "batch_sizes": sorted(set(detected))}
    return {**kept, "batch_size": ran}


@contextmanager
def _detected_batch_sizes(lm) -> Iterator[list[int]]:
    """The sizes lm-eval's ``batch_size="auto"`` detection picks during the call (``HFLM._detect_batch_size``,
    for log-likelihood and generation requests alike), in order."""
    detected: list[int] = []
    method = getattr(lm, "_detect_batch_size", None)
    if not callable(method):
        yield detected
        return

    def detect(*args, **kwargs):
        size = method(*args, **kwargs)
        detected.append(int(size))
        return size

    lm._detect_batch_size = detect
    try:
        yield detected
    finally:
        del lm._detect_batch_size  # the class's method again


def batch_size_that_ran(requested: Any, detected: list[int]) -> int | list[int] | None:
    """The batch size an evaluation ran with: the integer asked for; with ``auto``, the size lm-eval detected
    (several, sorted, when it detected different ones); None when nothing was detected (no requests)."""
    if isinstance(requested, int) and not isinstance(requested, bool):
        return requested
    sizes = sorted(set(detected))
    if not sizes:
        return None
    return sizes[0] if len(sizes) == 1 else sizes


@contextmanager
def _progress_bars_as_tqdm_says(lm) -> Iterator[None]:
    """Honour ``TQDM_DISABLE`` (set by the plugin for non-terminal output) for lm-eval's own bars.

    lm-eval's HFLM passes ``disable=`` explicitly to its request bars, which
    overrides tqdm's environment defaults; its request methods take
    ``disable_tqdm``, so this evaluation's calls get it.
    """
    if os.environ.get("TQDM_DISABLE", "").lower() not in ("1", "true", "yes"):
        yield
        return
    patched = []
    for name in ("loglikelihood", "loglikelihood_rolling", "generate_until"):
        method = getattr(lm, name, None)
        if method is not None and "disable_tqdm" in inspect.signature(method).parameters:
            setattr(lm, name, functools.partial(method, disable_tqdm=True))
            patched.append(name)
    try:
        yield
    finally:
        for name in patched:
            delattr(lm, name)  # the class's method again


@contextmanager
def _without_environment_report(evaluator_module) -> Iterator[None]:
    """Skip lm-eval's ``add_env_info``: torch's ``collect_env`` runs ``pip list`` and other commands on every
    ``simple_evaluate`` call (0.5–0.6 s each on 2 CPU cores; a sequential run makes several calls per benchmark),
    for ``pretty_env_info`` and version keys this project does not keep (``OUTPUT_KEYS``)."""
    original = evaluator_module.add_env_info
    evaluator_module.add_env_info = lambda storage: None
    try:
        yield
    finally:
        evaluator_module.add_env_info = original


class _CustomDatasetNotice(logging.Filter):
    """Drops lm-eval's per-task advice about ``--metadata`` for tasks with a ``custom_dataset`` function."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Custom kwargs can be passed to `--metadata`" not in record.getMessage()


def _simple_evaluate(lm, request: EvaluationRequest, manager):
    import lm_eval  # lazy: lm-eval (and torch, datasets) only when an evaluation really runs
    import lm_eval.evaluator  # lazy: as above

    try:
        with sandboxed_code_eval(SandboxedCodeEval()), _progress_bars_as_tqdm_says(lm), \
                _without_environment_report(lm_eval.evaluator):
            return lm_eval.simple_evaluate(
                model=lm,
                tasks=request.tasks,
                num_fewshot=request.num_fewshot,
                limit=None if request.documents is not None else request.limit,
                samples=None if request.documents is None else {task: sorted(ix) for task, ix in request.documents.items()},
                task_manager=manager,
                log_samples=True,
                gen_kwargs=None if request.gen_kwargs is None else dict(request.gen_kwargs),
                random_seed=request.seed,
                numpy_random_seed=request.seed,
                torch_random_seed=request.seed,
                fewshot_random_seed=request.seed,
                confirm_run_unsafe_code=True,
                apply_chat_template=request.apply_chat_template,
                fewshot_as_multiturn=request.fewshot_as_multiturn,
                system_instruction=request.system_instruction,
            )
    except QwencmpError:
        raise
    except Exception as exc:  # translate the known, user-fixable failures; re-raise the rest
        error = translate_error(exc, request.benchmark, request.label, lm)
        if error is exc:
            raise
    raise error from None  # one paragraph, no "during handling of the above exception" chain


def translate_error(exc: Exception, benchmark: Benchmark, label: str, lm) -> Exception:
    """A one-paragraph ``QwencmpError`` for failures the user can fix; ``exc`` itself otherwise."""
    text = " ".join(str(exc).split())[:300]
    name = type(exc).__name__
    if name == "OutOfMemoryError" or "out of memory" in text.lower():
        batch = getattr(lm, "batch_size", "?")
        if batch == "auto":
            which = "with the batch size lm-eval detected (--batch-size auto, the default on CUDA)"
            lower = "Set a fixed, smaller --batch-size N"
        else:
            which = f"with batch size {batch}"
            lower = f"Lower --batch-size below {batch} (or let lm-eval detect what fits: --batch-size auto)"
        return OutOfMemory(
            f"CUDA ran out of memory evaluating {benchmark.name} on {label} {which}. {lower}, free the GPU, run "
            "fewer models per GPU (pytest-xdist with one GPU per worker), or split the model across GPUs with --tp N. "
            "Finished evaluations are cached and will be reused."
        )
    if name in ("ConnectionError", "OfflineModeIsEnabled", "LocalEntryNotFoundError") or "offline" in text.lower():
        return DataError(
            f"lm-eval could not fetch the data of {benchmark.name} ({name}: {text}). This machine cannot reach the "
            "Hugging Face hub: pass --data-dir with local copies of the datasets in their hub layout "
            "(`python -m pytest_qwencmp mirror --out DIR` writes them where the hub can be reached)."
        )
    if name in (
        "DatasetNotFoundError", "FileNotFoundError", "DatasetGenerationError", "SplitsNotFoundError",
        "ArrowInvalid", "JSONDecodeError", "UnicodeDecodeError",
    ):
        return DataError(
            f"The dataset of {benchmark.name} could not be read ({name}: {text}). Check the local copy under "
            "--data-dir: it needs the files and a README.md whose YAML header lists the configs and splits "
            "(`python -m pytest_qwencmp mirror --out DIR` writes a complete copy)."
        )
    if name == "KeyError" and text.strip("'\"") in ("train", "validation", "test", "dev"):
        return DataError(
            f"The dataset of {benchmark.name} has no split {text} that lm-eval's task definition reads. Add that "
            "split to the local copy under --data-dir (files plus its entry in README.md's configs header), or "
            "write a complete copy with `python -m pytest_qwencmp mirror --out DIR`."
        )
    return exc
