"""Running one (model, benchmark) evaluation through ``lm_eval.simple_evaluate``.

All items of a benchmark come from ONE ``simple_evaluate`` call per model,
with the real task definitions (see ``lmeval.tasks``), per-document samples
logged and reduced to per-document metric values (``scores``), and the outcome cached on disk
under a key of everything that changes a number. ``Evaluator`` owns the
per-session bookkeeping: evaluations run, cache hits, time spent — and
failures: before the first evaluation that must really run, the selected
benchmarks' local data are checked (``lmeval.data_checks``) and the model is
checked to be loadable (``models.sources``); a failed evaluation is remembered and
raised again at once for the next item, never attempted twice.

Each document's results are also kept (``documents``, keyed by everything but the
limit): an evaluation whose entry is missing asks lm-eval only for the documents no
earlier run evaluated (``simple_evaluate(samples=…)``) — after a sequential run, a
longer one or a full one re-evaluates nothing — and :meth:`Evaluator.evaluate_documents`
evaluates any chosen documents (a sequential run's look) the same way. Only where a
document's prompt does not depend on the others evaluated with it
(``lmeval.sizes.shots_depend_on_order``); elsewhere every run evaluates in full.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Mapping

from ..config.benchmarks import Benchmark, Registry
from ..config.settings import RunSettings
from ..errors import DataError, QwencmpError
from ..files import json_safe
from ..hub import HubAccess
from ..lmeval.data_checks import check_benchmark_data, check_hub_data
from ..lmeval.harness import EvaluationRequest
from ..lmeval.sizes import TaskSizes, group_versions, shots_depend_on_order
from ..lmeval.tasks import TaskSource, lm_eval_version, task_definitions_fingerprint
from ..models.loading import ModelSide
from .cache import EvaluationCache, cache_key
from .documents import DOCUMENTS_FORMAT, StoredDocuments, Wanted, assemble, wanted_documents
from .health import check_loglikelihoods, generation_warnings
from .scores import RESULT_FORMAT, BenchmarkEvaluation, documents, extract_item_scores


@dataclass
class EvaluatorStats:
    """Counters for the terminal summary: what this process did."""

    evaluations: int = 0
    cache_hits: int = 0
    evaluation_seconds: float = 0.0
    evaluated: dict[str, list[str]] = field(default_factory=dict)  # side -> benchmarks evaluated here
    documents: dict[str, int] = field(default_factory=dict)  # side -> documents lm-eval evaluated here
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
        self._sizes: dict[str, dict[str, int]] = {}
        self.hub = hub or HubAccess()
        self.documents_cache = EvaluationCache(cache.root, cache.read_enabled, folder="documents")

    def key_parts(self, side: str, benchmark: Benchmark) -> dict[str, Any]:
        handle = self.handles[side]
        plan = handle.spec.plan
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
            # answers sampled per problem (--samples); absent at 1, so earlier cache entries stay valid
            **({"samples": self._samples(benchmark)} if self._samples(benchmark) > 1 else {}),
        }

    def _samples(self, benchmark: Benchmark) -> int:
        return self.settings.samples_for(benchmark.name) if benchmark.generation else 1

    def documents_key_parts(self, side: str, benchmark: Benchmark) -> dict[str, Any]:
        """The key parts of the per-document results: the evaluation's, less the limit (documents are documents)."""
        parts = {k: v for k, v in self.key_parts(side, benchmark).items() if k != "limit"}
        return {**parts, "documents": DOCUMENTS_FORMAT}

    def reuses_documents(self, benchmark: Benchmark) -> bool:
        """Whether documents evaluated apart give the same prompts as in one call (see ``shots_depend_on_order``),
        and each document's value is one answer's (``--samples`` K > 1 evaluates the benchmark whole: its values are
        means of K answers, which an assembled evaluation would not mark as such)."""
        if self._samples(benchmark) > 1:
            return False
        return not shots_depend_on_order(benchmark, self.settings.shots_for(benchmark.name, benchmark.num_fewshot))

    def task_sizes(self, benchmark: Benchmark) -> dict[str, int]:
        """Leaf task -> its documents in this run (capped by --limit); ``QwencmpError`` when it cannot be known."""
        if benchmark.name not in self._sizes:
            sizes = TaskSizes(self.settings.data_dir)(benchmark)
            limit = self.settings.limit
            self._sizes[benchmark.name] = {t: n if limit is None else min(n, limit) for t, n in sizes.items()}
        return self._sizes[benchmark.name]

    def evaluate_documents(self, side: str, benchmark_name: str, wanted: Wanted, *, what: str = "") -> BenchmarkEvaluation:
        """The evaluation of exactly the ``wanted`` documents (leaf task -> indices): stored ones reused, only the others
        evaluated (one lm-eval call). ``what`` names the step in the progress line (``look 2 of 4``)."""
        benchmark = self.registry.get(benchmark_name)
        memo_key = (side, benchmark_name)
        if memo_key in self._failed:
            raise self._failed[memo_key]
        try:
            return self._documents(side, benchmark, wanted, self.task_sizes(benchmark), what=what)
        except QwencmpError as exc:
            self._failed[memo_key] = exc
            raise

    def stored_evaluation(self, side: str, benchmark_name: str, wanted: Wanted) -> BenchmarkEvaluation | None:
        """The evaluation of the ``wanted`` documents when all are stored (nothing is run), else None."""
        benchmark = self.registry.get(benchmark_name)
        return self._documents(side, benchmark, wanted, self.task_sizes(benchmark), what="", load_only=True)

    def _documents(self, side: str, benchmark: Benchmark, wanted: Wanted, totals: dict[str, int], *,
                   what: str, full_key: str | None = None, load_only: bool = False) -> BenchmarkEvaluation | None:
        parts = self.documents_key_parts(side, benchmark)
        key = cache_key(parts)
        label = self.handles[side].label
        with self.documents_cache.locked(key, what=f"the documents of {benchmark.title} × {label}",
                                         timeout=self.settings.lock_timeout, progress=self.progress):
            stored = StoredDocuments.from_payload(self.documents_cache.load(key))
            if full_key is None and self.cache.read_enabled and stored.missing(wanted):
                whole = self.load_cached(side, benchmark.name)  # a whole evaluation (perhaps imported) holds them all
                if whole is not None:
                    stored = stored.joined(StoredDocuments.from_evaluation(benchmark, whole))
            missing = stored.missing(wanted)
            count = sum(len(ix) for ix in wanted.values())
            lacking = sum(len(ix) for ix in missing.values())
            step = f"{what}: " if what else ""
            wall = 0.0
            if missing and load_only:
                return None
            if missing:
                self._before_running(side, benchmark)
                self.progress(f"qwencmp: {benchmark.title} × {label}: {step}evaluating {lacking:,} of {count:,} documents "
                              f"({count - lacking:,} already evaluated; {self.handles[side].spec.plan.summary})")
                data = parts["data"] if isinstance(parts["data"], dict) else None
                started = time.perf_counter()
                output, info, wall = self._call(side, benchmark, samples=missing, data_fingerprints=data)
                _check_sizes(benchmark, output, totals, self.settings.limit)
                stored = self._keep(side, benchmark, stored, output, info, parts)
                self._count(side, benchmark, lacking, wall)
                self.progress(f"qwencmp: {benchmark.title} × {label}: {step}done in {time.perf_counter() - started:.1f}s "
                              f"(lm-eval {wall:.1f}s)")
            elif not load_only:
                self.progress(f"qwencmp: {benchmark.title} × {label}: {step}all {count:,} documents already evaluated")
        note = (f"assembled by pytest-qwencmp from {count:,} documents' results ({lacking:,} evaluated now, the others "
                "cached); every number computed from the per-document values")
        return assemble(benchmark, side, full_key or key, stored, wanted, totals,
                        group_versions=group_versions(benchmark.task_dirs, benchmark.request), wall_seconds=wall, note=note)

    def _keep(self, side: str, benchmark: Benchmark, stored: StoredDocuments, output: Mapping[str, Any], info,
              parts: Mapping[str, Any]) -> StoredDocuments:
        """``stored`` with one call's documents, written to the per-document cache (the caller holds its lock)."""
        stored = stored.with_output(benchmark, output, info.to_dict(), lm_eval_version())
        self.documents_cache.store(cache_key(parts), stored.to_payload(benchmark.name, side, parts))
        return stored

    def _count(self, side: str, benchmark: Benchmark, documents: int, seconds: float) -> None:
        self.stats.evaluations += 1
        if benchmark.name not in self.stats.evaluated.setdefault(side, []):
            self.stats.evaluated[side].append(benchmark.name)
        self.stats.documents[side] = self.stats.documents.get(side, 0) + documents
        self.stats.evaluation_seconds += seconds

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

    def data_checked(self, benchmark_names) -> None:
        """The session's start already checked these benchmarks' data (``startup``): not again."""
        self._data_problems.update({name: None for name in benchmark_names})

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
            started = time.perf_counter()
            evaluation = self._from_documents(side, benchmark, key)
            if evaluation is None:
                self._before_running(side, benchmark)
                self.progress(f"qwencmp: {benchmark.title} × {label}: evaluating ({self.handles[side].spec.plan.summary})")
                try:
                    evaluation = self._run(side, benchmark, key, parts["data"] if isinstance(parts["data"], dict) else None)
                except Exception:
                    self.progress(f"qwencmp: {benchmark.title} × {label}: failed after {time.perf_counter() - started:.1f}s")
                    raise
                self.progress(f"qwencmp: {benchmark.title} × {label}: done in {time.perf_counter() - started:.1f}s")
            elif not evaluation.wall_seconds:
                self.stats.reused.setdefault(side, {})[benchmark.name] = "from the per-document results"
            # The side and key parts travel with the entry: an export picks a side, an import diffs a near miss.
            self.cache.store(key, {**evaluation.to_payload(), "side": side, "key_parts": json_safe(parts)})
            return evaluation

    def _from_documents(self, side: str, benchmark: Benchmark, key: str) -> BenchmarkEvaluation | None:
        """The whole evaluation from the per-document results when some are stored (the rest evaluated now);
        None when none are, or documents cannot be reused or counted: then one plain lm-eval call does it all."""
        if not self.reuses_documents(benchmark) or not self.documents_cache.read_enabled:
            return None
        if not self.documents_cache.path_for(cache_key(self.documents_key_parts(side, benchmark))).is_file():
            return None
        try:
            totals = self.task_sizes(benchmark)
        except QwencmpError:
            return None
        return self._documents(side, benchmark, wanted_documents(totals, None), totals, what="", full_key=key)

    def _call(self, side: str, benchmark: Benchmark, *, samples: Wanted | None = None,
              data_fingerprints: dict[str, str] | None = None):
        """One lm-eval call on the side's model (loaded on first use): (output, model info, seconds)."""
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
            samples=self._samples(benchmark),
            documents=None if samples is None else {task: tuple(ix) for task, ix in samples.items()},
            **handle.spec.options.prompting(),
        )
        started = time.perf_counter()
        output = handle.run(request)
        wall = round(time.perf_counter() - started, 3)
        check_loglikelihoods(benchmark, output, handle.label, info.dtype, info.requested_dtype)
        return output, info, wall

    def _run(self, side: str, benchmark: Benchmark, key: str, data_fingerprints: dict[str, str] | None) -> BenchmarkEvaluation:
        """The whole benchmark in one lm-eval call (lm-eval's own numbers); its documents are stored for reuse."""
        output, info, wall = self._call(side, benchmark, data_fingerprints=data_fingerprints)
        gen_kwargs = self.settings.generation.as_gen_kwargs() if benchmark.generation else None
        self._count(side, benchmark, sum(len(rows) for rows in (output.get("samples") or {}).values()), wall)
        if self.reuses_documents(benchmark):
            parts = self.documents_key_parts(side, benchmark)
            doc_key = cache_key(parts)
            with self.documents_cache.locked(doc_key, what=f"the documents of {benchmark.title} × {self.handles[side].label}",
                                             timeout=self.settings.lock_timeout, progress=self.progress):
                self._keep(side, benchmark, StoredDocuments.from_payload(self.documents_cache.load(doc_key)), output, info, parts)
        return BenchmarkEvaluation(
            benchmark=benchmark.name,
            side=side,
            key=key,
            model={**info.to_dict(), "batch_size": output.get("batch_size")},  # the size that ran (auto: detected)
            items=extract_item_scores(benchmark, output),
            n_shot=json_safe(output["n-shot"]),
            versions=json_safe(output["versions"]),
            gen_kwargs=json_safe(output["config"].get("gen_kwargs")) if gen_kwargs else None,
            lm_eval_version=lm_eval_version(),
            wall_seconds=wall,
            documents=documents(benchmark, output),
            lm_eval_results=json_safe({k: v for k, v in output.items() if k != "samples"}),
            warnings=generation_warnings(benchmark, output, self.handles[side].label, info.dtype),
            samples=self._samples(benchmark),
        )


def _check_sizes(benchmark: Benchmark, output: Mapping[str, Any], totals: Mapping[str, int], limit: int | None) -> None:
    """The documents each task really has (lm-eval's ``n-samples``) must be the ones the run counted before asking
    for some of them; otherwise documents would be left out (or asked for that do not exist) without a word."""
    for task, counts in (output.get("n-samples") or {}).items():
        original = counts.get("original") if isinstance(counts, Mapping) else None
        if task in totals and isinstance(original, int):
            real = original if limit is None else min(original, limit)
            if real != totals[task]:
                raise QwencmpError(
                    f"lm-eval's task {task!r} of {benchmark.title} has {original:,} documents, but this run counted "
                    f"{totals[task]:,} before choosing which to evaluate (from the local copy or "
                    "pytest_qwencmp/config/dataset_sizes.toml). Give the data with --data-dir (it is counted there), "
                    "or correct the size table."
                )
