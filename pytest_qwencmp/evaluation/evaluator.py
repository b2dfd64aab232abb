"""Running one (model, benchmark) evaluation through ``lm_eval.simple_evaluate``.

All items of a benchmark come from ONE ``simple_evaluate`` call per model,
with the real task definitions (see ``lm_tasks``), per-document samples logged
and reduced to per-document metric values, and the outcome cached on disk
under a key of everything that changes a number. ``Evaluator`` owns the
per-session bookkeeping: evaluations run, cache hits, time spent — and
failures: before the first evaluation that must really run, the selected
benchmarks' local data are checked (``data_checks``) and the model is checked
to be loadable (``model_sources``); a failed evaluation is remembered and
raised again at once for the next item, never attempted twice.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Mapping

from ..config.benchmarks import OVERALL, Benchmark, Registry
from .cache import EvaluationCache, cache_key
from ..errors import DataError, QwencmpError
from ..files import json_safe
from ..lmeval.harness import EvaluationRequest
from ..lmeval.tasks import TaskSource, lm_eval_version, task_definitions_fingerprint
from ..hub import HubAccess
from ..models.loading import ModelSide
from .health import check_loglikelihoods, generation_warnings
from ..config.settings import RunSettings

RESULT_FORMAT = 3
MAX_OUTPUT_CHARS = 1500
MAX_PROMPT_CHARS = 400


@dataclass(frozen=True)
class ItemScore:
    """One model's score on one item, with lm-eval's stderr and the per-document values."""

    item_id: str
    task: str
    metric: str
    value: float
    stderr: float | None
    n: int
    doc_keys: tuple[str, ...] = ()
    per_doc: tuple[float, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "item_id": self.item_id,
            "task": self.task,
            "metric": self.metric,
            "value": self.value,
            "stderr": self.stderr,
            "n": self.n,
            "doc_keys": list(self.doc_keys),
            "per_doc": list(self.per_doc),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ItemScore":
        return cls(
            item_id=data["item_id"],
            task=data["task"],
            metric=data["metric"],
            value=float(data["value"]),
            stderr=None if data["stderr"] is None else float(data["stderr"]),
            n=int(data["n"]),
            doc_keys=tuple(data["doc_keys"]),
            per_doc=tuple(float(v) for v in data["per_doc"]),
        )


@dataclass(frozen=True)
class BenchmarkEvaluation:
    """The outcome of evaluating one model on one benchmark."""

    benchmark: str
    side: str
    key: str
    model: Mapping[str, Any]
    items: tuple[ItemScore, ...]
    n_shot: Mapping[str, Any]
    versions: Mapping[str, Any]
    gen_kwargs: Mapping[str, Any] | None
    lm_eval_version: str
    wall_seconds: float
    documents: Mapping[str, Mapping[str, str]] = field(default_factory=dict)  # doc key -> prompt tail, target, answer
    lm_eval_results: Mapping[str, Any] = field(default_factory=dict)
    from_cache: bool = False
    warnings: tuple[str, ...] = ()  # numerical health: degenerate generations (numerical_health)

    def item(self, item_id: str) -> ItemScore:
        for score in self.items:
            if score.item_id == item_id:
                return score
        raise QwencmpError(f"The {self.benchmark} evaluation has no score for item {item_id!r}.")

    def to_payload(self) -> dict[str, Any]:
        return {
            "format": RESULT_FORMAT,
            "benchmark": self.benchmark,
            "side": self.side,
            "key": self.key,
            "model": dict(self.model),
            "items": [s.to_dict() for s in self.items],
            "n_shot": dict(self.n_shot),
            "versions": dict(self.versions),
            "gen_kwargs": None if self.gen_kwargs is None else dict(self.gen_kwargs),
            "lm_eval_version": self.lm_eval_version,
            "wall_seconds": self.wall_seconds,
            "documents": dict(self.documents),
            "lm_eval_results": dict(self.lm_eval_results),
            "warnings": list(self.warnings),
        }

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any], side: str) -> "BenchmarkEvaluation":
        if payload.get("format") != RESULT_FORMAT:
            raise ValueError("old cache format")
        return cls(
            benchmark=payload["benchmark"],
            side=side,
            key=payload["key"],
            model=payload["model"],
            items=tuple(ItemScore.from_dict(d) for d in payload["items"]),
            n_shot=payload["n_shot"],
            versions=payload["versions"],
            gen_kwargs=payload["gen_kwargs"],
            lm_eval_version=payload["lm_eval_version"],
            wall_seconds=float(payload["wall_seconds"]),
            documents=payload.get("documents", {}),
            lm_eval_results=payload.get("lm_eval_results", {}),
            from_cache=True,
            warnings=tuple(payload.get("warnings", ())),
        )


def _number(value: Any) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def _per_task_samples(samples: Mapping[str, list], task: str, metric: str) -> tuple[list[str], list[float]]:
    rows = sorted(samples.get(task, []), key=lambda s: s["doc_id"])
    keys = [f"{task}/{row['doc_id']}" for row in rows]
    values = [float(row[metric]) for row in rows]
    return keys, values


def extract_item_scores(benchmark: Benchmark, output: Mapping[str, Any]) -> tuple[ItemScore, ...]:
    """Reduce ``simple_evaluate``'s output to the benchmark's items."""
    results = output["results"]
    samples = output.get("samples") or {}
    n_samples = output.get("n-samples", {})
    scores = []
    for item in benchmark.items:
        task_results = results.get(item.task)
        if task_results is None or item.result_key not in task_results:
            raise QwencmpError(
                f"lm-eval returned no {item.metric!r} for task {item.task!r} of benchmark {benchmark.name!r} "
                f"(it reported {', '.join(sorted(task_results or {})) or 'nothing'}); fix the benchmark's metrics."
            )
        value = _number(task_results[item.result_key])
        stderr = _number(task_results.get(f"{item.metric}_stderr,none"))
        if item.id.split(":")[0] == OVERALL and benchmark.subjects:
            keys: list[str] = []
            per_doc: list[float] = []
            for task in benchmark.leaf_tasks:
                k, v = _per_task_samples(samples, task, item.metric)
                keys += k
                per_doc += v
        else:
            keys, per_doc = _per_task_samples(samples, item.task, item.metric)
        n = len(per_doc) or int(n_samples.get(item.task, {}).get("effective", 0))
        scores.append(
            ItemScore(item.id, item.task, item.metric, value if value is not None else float("nan"), stderr, n, tuple(keys), tuple(per_doc))
        )
    return tuple(scores)


def _first_text(value: Any) -> str:
    while isinstance(value, (list, tuple)):
        value = value[0] if value else ""
    return str(value)


def _document_view(row: Mapping[str, Any], generation: bool) -> dict[str, str]:
    """What a reader needs to see of one answered document: prompt tail, target, the model's answer."""
    arguments = row.get("arguments") or []
    context = _first_text(arguments[0][0]) if arguments and isinstance(arguments[0], (list, tuple)) else ""
    target = row.get("target")
    if generation:
        answer = _first_text(row.get("filtered_resps") or row.get("resps") or "")
        target_text = _first_text(target)
    else:
        choices = [_first_text(arg[1]) for arg in arguments if isinstance(arg, (list, tuple)) and len(arg) > 1]
        scores = [_first_text(r) if not isinstance(r, (list, tuple)) else r[0] for r in (row.get("filtered_resps") or [])]
        numeric = [float(x) for x in scores] if scores and all(isinstance(x, (int, float)) for x in scores) else []
        answer = choices[numeric.index(max(numeric))] if numeric and len(numeric) == len(choices) else ""
        try:
            target_text = choices[int(target)]
        except (TypeError, ValueError, IndexError):
            target_text = _first_text(target)
    return {
        "prompt": context[-MAX_PROMPT_CHARS:],
        "target": target_text[:MAX_OUTPUT_CHARS],
        "answer": answer[:MAX_OUTPUT_CHARS],
    }


def _documents(benchmark: Benchmark, output: Mapping[str, Any]) -> dict[str, dict[str, str]]:
    documents = {}
    for task in benchmark.leaf_tasks:
        for row in output.get("samples", {}).get(task, []):
            documents[f"{task}/{row['doc_id']}"] = _document_view(row, benchmark.generation)
    return documents


@dataclass
class EvaluatorStats:
    """Counters for the terminal summary: what this process did."""

    evaluations: int = 0
    cache_hits: int = 0
    evaluation_seconds: float = 0.0
    evaluated: dict[str, list[str]] = field(default_factory=dict)  # side -> benchmarks evaluated here
    reused: dict[str, dict[str, str]] = field(default_factory=dict)  # side -> benchmark -> "cache" | "imported from …"
    ignored: list[str] = field(default_factory=list)  # why a near-miss cache entry was not used


class Evaluator:
    """Evaluates (side, benchmark) pairs once per process, through the on-disk cache."""

    def __init__(
        self,
        settings: RunSettings,
        registry: Registry,
        cache: EvaluationCache,
        handles: Mapping[str, ModelSide],
        progress: Callable[[str], None] = lambda line: None,
        hub: HubAccess | None = None,
        explain_miss: Callable[[str, Benchmark, Mapping[str, Any]], list[str]] = lambda side, benchmark, parts: [],
    ) -> None:
        self.settings = settings
        self.registry = registry
        self.cache = cache
        self.handles = handles
        self.progress = progress
        self.explain_miss = explain_miss  # lines saying why a cache entry close to this one was not used
        self.stats = EvaluatorStats()
        self._done: dict[tuple[str, str], BenchmarkEvaluation] = {}
        self._failed: dict[tuple[str, str], QwencmpError] = {}
        self._data_problems: dict[str, DataError | None] = {}
        self.hub = hub or HubAccess()

    def key_parts(self, side: str, benchmark: Benchmark) -> dict[str, Any]:
        handle = self.handles[side]
        plan = handle.plan
        source = TaskSource(benchmark, self.settings.data_dir, index_dir=self.cache.root)
        return {
            "format": RESULT_FORMAT,
            "model": handle.fingerprint,
            "benchmark": {
                "request": list(benchmark.request),
                "leaf_tasks": list(benchmark.leaf_tasks),
                "metrics": [list(m) for m in benchmark.metrics],
            },
            "task_definitions": task_definitions_fingerprint(benchmark.task_dirs),
            "lm_eval": lm_eval_version(),
            "num_fewshot": self.settings.shots_for(benchmark.name, benchmark.num_fewshot),
            "limit": self.settings.limit,
            "dtype": plan.dtype,
            "backend": plan.backend,
            "device_type": plan.device.split(":")[0],
            "batch_size": plan.batch_size,
            "tensor_parallel": plan.tensor_parallel,
            "generation": self.settings.generation.as_gen_kwargs() if benchmark.generation else None,
            "seed": self.settings.seed,
            "data": source.data_fingerprints() if self.settings.data_dir else "hub",
            # chat template, system instruction, model args, the adapter's fingerprint (not where it was read from)
            **({"setup": {k: v for k, v in handle.setup().items() if k != "adapter"}} if handle.setup() else {}),
        }

    def evaluate(self, side: str, benchmark_name: str) -> BenchmarkEvaluation:
        """The evaluation, computed at most once per session; a failure is raised again at once, never retried."""
        memo_key = (side, benchmark_name)
        if memo_key in self._failed:
            raise self._failed[memo_key]
        if memo_key not in self._done:
            try:
                self._done[memo_key] = self._evaluate(side, self.registry.get(benchmark_name))
            except QwencmpError as exc:
                self._failed[memo_key] = exc
                raise
            except Exception as exc:  # unexpected: its traceback shows once, later items get one line
                self._failed[memo_key] = QwencmpError(
                    f"The evaluation of {benchmark_name} on {self.handles[side].label} failed earlier in this "
                    f"session ({type(exc).__name__}: {' '.join(str(exc).split())[:200]}); it is not attempted again. "
                    "The first failing item shows the traceback."
                )
                raise
        return self._done[memo_key]

    def check_data(self, benchmark_name: str) -> None:
        """Raise the benchmark's ``DataError`` if its data cannot be read.

        The first call checks every selected benchmark at once, so a problem is
        known before any model runs: each local copy with one streaming read
        (``data_checks``), or, without --data-dir, whether the hub can be
        reached (or the datasets are cached) for lm-eval to download them.
        """
        if benchmark_name not in self._data_problems:
            from ..lmeval.data_checks import check_benchmark_data, check_hub_data

            selected = self.settings.benchmarks or self.registry.names()
            benchmarks = [self.registry.get(n) for n in dict.fromkeys([*selected, benchmark_name])
                          if n not in self._data_problems]
            if self.settings.data_dir is None:
                self._data_problems.update(check_hub_data(benchmarks, self.hub))
            else:
                for benchmark in benchmarks:
                    try:
                        check_benchmark_data(benchmark, self.settings.data_dir)
                        self._data_problems[benchmark.name] = None
                    except DataError as exc:
                        self._data_problems[benchmark.name] = exc
        problem = self._data_problems[benchmark_name]
        if problem is not None:
            raise problem

    def _before_running(self, side: str, benchmark: Benchmark) -> None:
        """What can be known without loading a model: every model still needed can be loaded, the data are usable."""
        self.handles[side].check()
        for other in self.handles:
            if other != side and not self.in_cache(other, benchmark.name):
                self.handles[other].check()  # the comparison needs it too: fail before spending time on this side
        self.check_data(benchmark.name)

    def in_cache(self, side: str, benchmark_name: str) -> bool:
        """Done in this session, or stored in the on-disk cache (not read here): nothing to load for it."""
        if (side, benchmark_name) in self._done:
            return True
        key = cache_key(self.key_parts(side, self.registry.get(benchmark_name)))
        return self.cache.read_enabled and self.cache.path_for(key).is_file()

    def load_cached(self, side: str, benchmark_name: str) -> BenchmarkEvaluation | None:
        """The evaluation from this process or the on-disk cache, without running anything."""
        if (side, benchmark_name) in self._done:
            return self._done[(side, benchmark_name)]
        key = cache_key(self.key_parts(side, self.registry.get(benchmark_name)))
        payload = EvaluationCache(self.cache.root).load(key)
        try:
            return None if payload is None else BenchmarkEvaluation.from_payload(payload, side)
        except (KeyError, TypeError, ValueError):
            return None

    def _evaluate(self, side: str, benchmark: Benchmark) -> BenchmarkEvaluation:
        parts = self.key_parts(side, benchmark)
        key = cache_key(parts)
        label = self.handles[side].label
        what = f"the evaluation of {benchmark.title} × {label}"
        with self.cache.locked(key, what=what, timeout=self.settings.lock_timeout, progress=self.progress):
            payload = self.cache.load(key)
            if payload is not None:
                try:
                    evaluation = BenchmarkEvaluation.from_payload(payload, side)
                except (KeyError, TypeError, ValueError):
                    evaluation = None
                if evaluation is not None:
                    origin = str(payload.get("origin") or "cache")
                    self.stats.cache_hits += 1
                    self.stats.reused.setdefault(side, {})[benchmark.name] = origin
                    where = "" if origin == "cache" else f" ({origin})"
                    self.progress(f"qwencmp: {benchmark.title} × {label}: cached result reused{where}")
                    return evaluation
            for line in self.explain_miss(side, benchmark, parts):
                self.stats.ignored.append(line)
                self.progress(line)
            self._before_running(side, benchmark)
            self.progress(f"qwencmp: {benchmark.title} × {label}: evaluating ({self.handles[side].plan.summary})")
            started = time.perf_counter()
            try:
                evaluation = self._run(side, benchmark, key, parts["data"] if isinstance(parts["data"], dict) else None)
            except Exception:
                self.progress(f"qwencmp: {benchmark.title} × {label}: failed after {time.perf_counter() - started:.1f}s")
                raise
            # The side and key parts travel with the entry: an export picks a side, an import diffs a near miss.
            self.cache.store(key, {**evaluation.to_payload(), "side": side, "key_parts": json_safe(parts)})
            self.stats.evaluations += 1
            self.stats.evaluated.setdefault(side, []).append(benchmark.name)
            self.stats.evaluation_seconds += evaluation.wall_seconds
            self.progress(f"qwencmp: {benchmark.title} × {label}: done in {time.perf_counter() - started:.1f}s")
            return evaluation

    def _run(self, side: str, benchmark: Benchmark, key: str, data_fingerprints: dict[str, str] | None) -> BenchmarkEvaluation:
        handle = self.handles[side]
        info = handle.load()
        gen_kwargs = self.settings.generation.as_gen_kwargs() if benchmark.generation else None
        request = EvaluationRequest(
            benchmark=benchmark,
            label=handle.label,
            data_dir=self.settings.data_dir,
            datasets_cache=self.cache.root / "datasets",
            num_fewshot=self.settings.shots_for(benchmark.name, benchmark.num_fewshot),
            limit=self.settings.limit,
            gen_kwargs=gen_kwargs,
            seed=self.settings.seed,
            data_fingerprints=data_fingerprints,
            **handle.options.prompting(),
        )
        started = time.perf_counter()
        output = handle.run(request)
        wall = round(time.perf_counter() - started, 3)
        check_loglikelihoods(benchmark, output, handle.label, info.dtype, info.requested_dtype)
        return BenchmarkEvaluation(
            benchmark=benchmark.name,
            side=side,
            key=key,
            model=info.to_dict(),
            items=extract_item_scores(benchmark, output),
            n_shot=json_safe(output["n-shot"]),
            versions=json_safe(output["versions"]),
            gen_kwargs=json_safe(output["config"].get("gen_kwargs")) if gen_kwargs else None,
            lm_eval_version=lm_eval_version(),
            wall_seconds=wall,
            documents=_documents(benchmark, output),
            lm_eval_results=json_safe({k: v for k, v in output.items() if k != "samples"}),
            warnings=generation_warnings(benchmark, output, handle.label, info.dtype),
        )
