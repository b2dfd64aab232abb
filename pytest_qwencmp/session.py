"""One comparison session: what runs, in which order, once.

``ComparisonRun`` ties the core together for a session — settings, registry,
expectations, the evaluation cache, the two lazily loaded models — and answers
``comparison(benchmark, item)``: each (model, benchmark) is evaluated at most
once, each benchmark compared once. :func:`build_run` makes it from the
option values; the checks it runs at the start are ``startup``'s, the looks of
``--sequential`` are ``stopping``'s, and what is said and written at the end is
``closing``'s. It knows nothing of pytest: ``plugin`` calls it.
"""

from __future__ import annotations

import json
import os
import platform
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from .comparison import ItemComparison, compare_benchmark, with_baseline
from .config.benchmarks import Registry, load_registry
from .config.expectations import Expectations, expectations_identity, load_expectations
from .config.settings import ModelRef, RunSettings, parse_settings
from .demo.build import build_demo_assets
from .errors import FailureMemory, QwencmpError
from .evaluation.cache import EvaluationCache, cache_key, ensure_cache_root
from .evaluation.evaluator import Evaluator
from .hub import HubAccess
from .lmeval.tasks import TaskSource, lm_eval_version
from .models.loading import ModelHandle, ModelSide, ModelSpec
from .models.placement import ExecutionPlan, nvidia_driver_absent, plan_sides
from .models.tensor_parallel import TensorParallelHandle
from .models.weights import read_parameter_count
from .report.junit import RECORD_PROPERTY, item_properties, record_property
from .report.results import ordered_record
from .sandbox.executor import detect_sandbox
from .stats.multiplicity import CORRECTIONS
from .store.baselines import check_compatible, compare_to_baseline, load_baseline, save_baseline, validate_name
from .store.compatibility import number_settings
from .store.exchange import ImportedEntries
from .store.format import SavedEvaluations, machine_info, project_commit, saved_from_evaluations
from .store.shards import ShardSpec, ShardSplit, split_benchmarks
from .startup import check_at_start
from .stats.sequential import SequentialDesign
from .stopping import SequentialOutcome, check_sequential, looked_at, run_sequential, sequential_comparisons

RUN_PROPERTY = "qwencmp_run"
LM_EVAL_PROPERTY = "qwencmp_lm_eval"
SETUP_PROBLEM_PROPERTY = "qwencmp_setup_problem"  # an xdist worker stopped on a setup problem: the session exits 4
BULKY_PROPERTIES = (RECORD_PROPERTY, RUN_PROPERTY, LM_EVAL_PROPERTY)  # consumed by the controller, kept out of JUnit XML


class ComparisonRun:
    """The session's comparison of model A with model B."""

    def __init__(
        self,
        settings: RunSettings,
        registry: Registry,
        expectations: Expectations,
        *,
        progress: Callable[[str], None] = lambda line: None,
        correction: str = "holm",
        worker_index: int | None = None,
        baseline=None,
        baseline_allow_mismatch: bool = False,
        reevaluate_imported: bool = False,
    ) -> None:
        self.settings = settings
        self.reevaluate_imported = reevaluate_imported  # evaluate anew what an imported entry holds under other settings
        self.registry = registry
        self.expectations = expectations
        self.progress = progress
        self.correction = correction
        self.worker_index = worker_index
        self.baseline = baseline
        self.baseline_allow_mismatch = baseline_allow_mismatch
        self.baseline_warnings: list[str] = []
        self.shard_plan: ShardSplit | None = None  # when --qwencmp-shard splits the benchmarks over jobs
        self._handles: dict[str, ModelSide] | None = None
        self._parameter_counts: dict[str, int] = {}  # per side, read once from the safetensors headers
        self._evaluator = None
        self._compared: dict[str, dict[str, ItemComparison]] = {}
        self._sequential: dict[str, SequentialOutcome] = {}  # --sequential: each benchmark's looks and decisions
        self.hub = HubAccess()  # asked at most once per session, and only for a hub model that must be loaded
        self.failures = FailureMemory()  # each problem reported once; a model that cannot load stops what needs it
        self._fully_cached: dict[str, bool] = {}
        self._attached_lm_eval: set[str] = set()  # benchmarks whose lm-eval results an item of this process carried

    def _resolve_demo(self) -> RunSettings:
        ensure_cache_root(self.settings.cache_dir)
        assets = build_demo_assets(self.settings.cache_dir / "demo", progress=self.progress)
        return replace(
            self.settings,
            model_a=ModelRef(str(assets.model_a)),
            model_b=ModelRef(str(assets.model_b)),
            data_dir=assets.data_dir,
        )

    def plan_models(self) -> dict[str, ExecutionPlan]:
        """What will run for each side (backend, dtype, device, GPUs); loads nothing, builds no demo.

        Raises ``QwencmpError`` for a request this machine cannot serve.
        """
        return plan_sides(self.settings, self.worker_index)

    @property
    def handles(self) -> dict[str, ModelSide]:
        if self._handles is None:
            if self.settings.demo:
                self.settings = self._resolve_demo()
            refs = {"a": self.settings.model("a"), "b": self.settings.model("b")}
            plans = self.plan_models()
            handles: dict[str, ModelSide] = {}
            for side, ref in refs.items():
                spec = ModelSpec(ref, plans[side], self.settings.dtype_for(side), self.settings.options(side))
                if spec.plan.tensor_parallel > 1:
                    handles[side] = TensorParallelHandle(
                        side, spec, log_root=self.settings.cache_dir / "tensor-parallel-logs", hub=self.hub, progress=self.progress,
                    )
                else:
                    handles[side] = ModelHandle(side, spec, hub=self.hub)
            self._handles = handles
        return self._handles

    def check_models(self) -> None:
        """What can fail before any weights load (a missing chat template, a quantization library this
        machine lacks), checked for both sides at start; the demo is only built for it when a chat
        template is asked for."""
        if self.settings.demo and not any(self.settings.options(side).chat_template for side in ("a", "b")):
            return
        for handle in self.handles.values():
            handle.preflight()

    def close(self) -> None:
        """Release both models (a tensor-parallel group's processes exit); safe to call twice."""
        for handle in (self._handles or {}).values():
            handle.close()

    def handle(self, side: str) -> ModelSide:
        return self.handles[side]

    @property
    def evaluator(self):
        if self._evaluator is None:
            ensure_cache_root(self.settings.cache_dir)
            handles = self.handles
            self._evaluator = Evaluator(
                self.settings,
                self.registry,
                EvaluationCache(self.settings.cache_dir, read_enabled=self.settings.read_cache),
                handles,
                progress=self.progress,
                hub=self.hub,
                explain_miss=ImportedEntries(self.settings.cache_dir).explain_miss,
            )
        return self._evaluator

    @property
    def design(self) -> SequentialDesign:
        """The sequential design (``--sequential``): the looks, HSD(−4) spending, graphical Holm (``--correction none``: none)."""
        return SequentialDesign(looks=self.settings.sequential_looks,
                                family_rule="none" if self.correction == "none" else "holm")

    def evaluations(self, benchmark_name: str) -> dict[str, Any]:
        """The two evaluations the benchmark's comparison reads: the whole benchmark, or (``--sequential``) the documents
        its looks evaluated."""
        if self.settings.sequential:
            if benchmark_name not in self._sequential:
                self._sequential[benchmark_name] = run_sequential(
                    self.evaluator, self.registry.get(benchmark_name), self.expectations, self.design, self.settings.seed)
            return dict(zip(("a", "b"), self._sequential[benchmark_name].evaluations))
        return {side: self.evaluator.evaluate(side, benchmark_name) for side in ("a", "b")}

    def comparison(self, benchmark_name: str, item_id: str) -> ItemComparison:
        if benchmark_name not in self._compared:
            benchmark = self.registry.get(benchmark_name)
            evaluations = self.evaluations(benchmark_name)
            evaluation_a, evaluation_b = evaluations["a"], evaluations["b"]
            if self.settings.sequential:
                compared = sequential_comparisons(self._sequential[benchmark_name], benchmark, self.expectations,
                                                  correction=self.correction, seed=self.settings.seed)
            else:
                compared = dict(compare_benchmark(benchmark, evaluation_a, evaluation_b, self.expectations,
                                                  correction=self.correction, seed=self.settings.seed))
            if self.baseline is not None:
                compared = self._against_baseline(benchmark_name, compared, [evaluation_a, evaluation_b])
            self._compared[benchmark_name] = compared
        return self._compared[benchmark_name][item_id]

    def check_before_loading(self, benchmark_names=None, shard: ShardSpec | None = None) -> None:
        """What can be refused before any weights load, for the selected benchmarks (default: all selected by
        --benchmarks): the models named (unless the demo provides them), an impossible device/backend/--tp
        request, bad local data, models, adapters or datasets that cannot be reached, a missing chat template or
        quantization library, a baseline or imported cache entries with other settings (``startup``).
        Raises ``QwencmpError``; nothing is loaded or evaluated."""
        if not self.settings.demo:
            self.settings.model("a"), self.settings.model("b")
        plans = self.plan_models()  # an impossible device/backend/--tp request stops here, once
        selected = set(benchmark_names if benchmark_names is not None else (self.settings.benchmarks or self.registry.names()))
        if shard is not None:  # an xdist controller of a shard job: only this shard's benchmarks
            selected = set(self._split(shard, selected).mine)
        names = [n for n in self.registry.names() if n in selected]
        self.check_models()  # a missing chat template or quantization library, before any load
        needs_evaluator = not self.settings.demo or bool(ImportedEntries(self.settings.cache_dir).records())
        self.baseline_warnings += check_at_start(
            self.settings, self.registry, plans, names, self.evaluator if needs_evaluator and names else None,
            baseline=self.baseline, allow_mismatch=self.baseline_allow_mismatch,
            reevaluate_imported=self.reevaluate_imported,
        )

    def parallel_notice(self, workers: int) -> str | None:
        """One line when ``-n`` cannot help: without a GPU the workers share the CPU cores, and each loads both models."""
        if workers < 2 or not nvidia_driver_absent():
            return None
        return (
            f"qwencmp: -n {workers} on a machine without a GPU: the workers share its {os.cpu_count()} CPU cores and each "
            "loads both models, so the comparison is slower than without -n; -n pays with one GPU per worker"
        )

    def split_for_shard(self, shard: ShardSpec, selected) -> ShardSplit:
        """This job's share of the selected benchmarks (``--qwencmp-shard K/N``); remembered for the report."""
        self.shard_plan = self._split(shard, selected)
        return self.shard_plan

    def _split(self, shard: ShardSpec, selected) -> ShardSplit:
        settings = self.settings
        return split_benchmarks(
            shard, [b for b in self.registry.benchmarks if b.name in selected],
            data_dir=settings.data_dir, demo=settings.demo, limit=settings.limit,
        )

    def item_properties(self, result: ItemComparison) -> list[tuple[str, str]]:
        """What an item's test report carries (``user_properties``): its record, the run as it ran, lm-eval's results
        (once per benchmark and process), and the JUnit properties."""
        benchmark = self.registry.get(result.benchmark)
        record = ordered_record(result.to_record(), [i.id for i in benchmark.items], self.registry.names())
        evaluations = self.evaluations(result.benchmark)
        warnings = [w for evaluation in evaluations.values() for w in evaluation.warnings]
        if warnings:
            record["warnings"] = warnings  # degenerate generations (evaluation.health)
        evaluated = {
            side: {k: evaluation.model.get(k) for k in ("backend", "dtype", "device", "tensor_parallel", "parameters", "notice", "setup")}
            for side, evaluation in evaluations.items()
        }
        for side, evaluation in evaluations.items():  # the batch size that ran, per benchmark (Results.take gathers them)
            if evaluation.model.get("batch_size") is not None:
                evaluated[side]["batch_size"] = {result.benchmark: evaluation.model["batch_size"]}
        properties = [(RUN_PROPERTY, json.dumps(self.describe(evaluated)))]
        if result.benchmark not in self._attached_lm_eval:
            self._attached_lm_eval.add(result.benchmark)
            results = {side: evaluation.lm_eval_results for side, evaluation in evaluations.items()}
            properties.append((LM_EVAL_PROPERTY, json.dumps({"benchmark": result.benchmark, **results})))
        return [*properties, record_property(record), *item_properties(record)]

    def fully_cached(self, benchmark_name: str) -> bool:
        """Both models' evaluations of the benchmark are done or cached on disk: it needs no model."""
        if benchmark_name not in self._fully_cached:
            try:
                self._fully_cached[benchmark_name] = all(self.evaluator.in_cache(side, benchmark_name) for side in ("a", "b"))
            except QwencmpError:
                self._fully_cached[benchmark_name] = False
        return self._fully_cached[benchmark_name]

    def skip_reason(self, benchmark_name: str) -> str | None:
        """Why an item of this benchmark is not run: a model is unavailable and the results are not all cached."""
        if self.failures.stopped is None or self.fully_cached(benchmark_name):
            return None
        return f"not run: {self.failures.stopped}"

    def _data_identity(self, benchmark_names) -> dict[str, str] | None:
        if self.settings.data_dir is None:
            return None
        return {
            name: cache_key(TaskSource(self.registry.get(name), self.settings.data_dir, index_dir=self.settings.cache_dir).data_fingerprints())
            for name in benchmark_names
        }

    def _against_baseline(self, benchmark_name: str, compared: dict, evaluations: list) -> dict:
        current = number_settings(evaluations, self.settings, data=self._data_identity([benchmark_name]))
        self.baseline_warnings += check_compatible(
            self.baseline, current, allow_mismatch=self.baseline_allow_mismatch
        )

        def tolerance(benchmark: str, item_id: str) -> float | None:
            return self.expectations.for_item(benchmark, item_id).baseline_tolerance

        checks = compare_to_baseline(
            self.baseline, evaluations, side="b", tolerance_points=tolerance,
            correction=self.correction, seed=self.settings.seed,
        )
        return {
            item_id: with_baseline(c, checks[(benchmark_name, item_id)]) if (benchmark_name, item_id) in checks else c
            for item_id, c in compared.items()
        }

    def _saved_evaluation(self, side: str, benchmark_name: str, documents: Mapping[str, Mapping[str, int]] | None):
        """A side's evaluation as this run compared it, without running anything; None if it is not at hand."""
        if not self.settings.sequential:
            return self.evaluator.load_cached(side, benchmark_name)
        if benchmark_name in self._sequential:
            return dict(zip(("a", "b"), self._sequential[benchmark_name].evaluations))[side]
        per_task = (documents or {}).get(benchmark_name)  # under xdist: the worker's looks, from the items' records
        if per_task is None:
            return None
        totals = self.evaluator.task_sizes(self.registry.get(benchmark_name))
        return self.evaluator.stored_evaluation(side, benchmark_name, looked_at(per_task, totals, self.settings.seed))

    def saved_evaluations(
        self, name: str, benchmark_names, project_root: Path | None = None, *, full: bool = False,
        documents: Mapping[str, Mapping[str, int]] | None = None,
    ) -> SavedEvaluations | None:
        """The evaluations of ``benchmark_names`` (read from the cache, nothing is run) with their settings; None if any is missing.

        ``full`` (a shard's results, see ``store.format``) adds each evaluation's record
        and key parts, the benchmark definitions and the comparison settings. ``documents``
        (``--sequential``): per benchmark the documents evaluated per leaf task, as the records say.
        """
        evaluations, key_parts = [], {}
        for name_ in benchmark_names:
            for side in ("a", "b"):
                evaluation = self._saved_evaluation(side, name_, documents)
                if evaluation is None:
                    return None
                evaluations.append(evaluation)
                if full:
                    key_parts[(side, name_)] = self.evaluator.key_parts(side, self.registry.get(name_))
        settings = number_settings(evaluations, self.settings, data=self._data_identity(benchmark_names))
        return saved_from_evaluations(
            name, evaluations, settings, machine=machine_info(), project_commit=project_commit(project_root),
            full=full, key_parts=key_parts,
            benchmarks={b.name: {"order": i, "definition": b.to_table()} for i, b in enumerate(self.registry.benchmarks)},
            comparison={"correction": self.correction, "expectations": self._expectations_source()},
        )

    def _expectations_source(self) -> dict[str, str] | None:
        """The expectations file's name and text, so a merge elsewhere judges with the same rules."""
        path = self.settings.expectations
        if path is None:
            return None
        try:
            return {"name": path.name, "text": path.read_text(encoding="utf-8")}
        except OSError:
            return None

    def save_baseline(self, name: str, directory: Path, benchmark_names, project_root: Path | None = None,
                      documents: Mapping[str, Mapping[str, int]] | None = None) -> Path | None:
        """Save the evaluations of ``benchmark_names`` (read from the cache, nothing is run) as a baseline."""
        saved = self.saved_evaluations(validate_name(name), benchmark_names, project_root, documents=documents)
        return None if saved is None else save_baseline(saved, directory)

    def model_loads(self) -> int:
        return sum(h.loads for h in (self._handles or {}).values())

    def stats(self) -> dict[str, Any]:
        evaluator_stats = self._evaluator.stats if self._evaluator is not None else None
        return {
            "model_loads": self.model_loads(),
            "evaluations": evaluator_stats.evaluations if evaluator_stats else 0,
            "cache_hits": evaluator_stats.cache_hits if evaluator_stats else 0,
            "evaluation_seconds": round(evaluator_stats.evaluation_seconds, 2) if evaluator_stats else 0.0,
            "documents_evaluated": dict(evaluator_stats.documents) if evaluator_stats else {},
            "evaluated": dict(evaluator_stats.evaluated) if evaluator_stats else {},
            "reused": dict(evaluator_stats.reused) if evaluator_stats else {},
            "ignored": list(evaluator_stats.ignored) if evaluator_stats else [],
        }

    def describe(self, evaluated: dict[str, Any] | None = None) -> dict[str, Any]:
        """The run's settings as they ran, for the report (no model is loaded for this)."""
        models = {}
        for side, handle in (self._handles or {}).items():
            info = handle.describe()
            if side not in self._parameter_counts:  # every item describes the run: read the headers once
                count = read_parameter_count(handle.spec.ref)
                if count is not None:  # a hub model not downloaded yet has none so far
                    self._parameter_counts[side] = count
            info["parameters"] = self._parameter_counts.get(side)
            models[side] = info
        if evaluated:
            for side, info in evaluated.items():
                models.setdefault(side, {}).update({k: v for k, v in info.items() if v is not None})
        settings = self.settings
        return {
            "models": models,
            "num_fewshot": {
                name: settings.shots_for(name, self.registry.get(name).num_fewshot)
                for name in (settings.benchmarks or self.registry.names())
            },
            "limit": settings.limit,
            "generation": settings.generation.as_gen_kwargs(),
            **({"samples": dict(settings.samples)} if settings.samples else {}),
            "seed": settings.seed,
            "data": str(settings.data_dir) if settings.data_dir else "Hugging Face hub",
            "lm_eval_version": lm_eval_version(),
            "correction": self.correction,
            "expectations": expectations_identity(settings.expectations),
            **({"sequential": self.design.method} if settings.sequential else {}),
            "machine": f"{platform.node()} ({platform.machine()}, Python {platform.python_version()})",
            **self._sandbox_description(),
            **({"shard": self.shard_plan.to_json()} if self.shard_plan is not None else {}),
            **({"baseline": self._baseline_description()} if self.baseline is not None else {}),
        }

    def _baseline_description(self) -> str:
        """Which saved run model B was compared with (--qwencmp-baseline-compare), in one line."""
        saved = self.baseline
        model = (saved.models.get("b") or {}).get("label") or (saved.models.get("b") or {}).get("name_or_path") or "model B"
        commit = f", commit {saved.project_commit[:12]}" if saved.project_commit else ""
        return f"model B against {saved.name!r} ({model}, saved {saved.created[:19].replace('T', ' ')}{commit})"

    def _sandbox_description(self) -> dict[str, str]:
        """Which protections model-written code ran under, only when a generation benchmark is selected:
        ``code_sandbox`` one short line (terminal, Markdown), ``code_sandbox_details`` the full account (HTML)."""
        names = self.settings.benchmarks or self.registry.names()
        if not any(self.registry.get(name).generation for name in names):
            return {}
        sandbox = detect_sandbox()
        return {"code_sandbox": sandbox.summary, "code_sandbox_details": sandbox.description}


# --------------------------------------------------------------------------- building the run


def baseline_directory(value: str | None, project_root: Path) -> Path:
    """Where baselines live: ``--qwencmp-baseline-dir`` (or its ini key), else ``.qwencmp/baselines`` in the rootdir."""
    return Path(value).expanduser().resolve() if value else project_root / ".qwencmp" / "baselines"


def build_run(
    raw: Mapping[str, Any],
    *,
    benchmark_files,
    worker_index: int | None = None,
    baseline_compare: str | None = None,
    baseline_save: str | None = None,
    baseline_dir: Path | None = None,
    baseline_allow_mismatch: bool = False,
    reevaluate_imported: bool = False,
    shard: ShardSpec | None = None,
) -> ComparisonRun:
    """The session's run from the raw option values (``config.options.raw_options``); ``QwencmpError`` for a bad one."""
    registry = load_registry(benchmark_files)
    settings = parse_settings(raw, registry.names(), {b.name: b.generation for b in registry.benchmarks})
    correction = (raw.get("correction") or "holm").lower()
    if correction not in CORRECTIONS:
        raise QwencmpError(f"--correction {correction!r} is not one of {', '.join(CORRECTIONS)}.")
    if settings.sequential:
        check_sequential(settings, registry, correction, shard)
    expectations = load_expectations(settings.expectations, registry)
    baseline = load_baseline(baseline_dir, baseline_compare) if baseline_compare else None
    if baseline_save:
        validate_name(baseline_save)
    return ComparisonRun(
        settings, registry, expectations, correction=correction, worker_index=worker_index,
        baseline=baseline, baseline_allow_mismatch=baseline_allow_mismatch, reevaluate_imported=reevaluate_imported,
    )


def shard_line(split: ShardSplit, deselected: int, json_given: bool) -> str:
    """The one line a shard job says at collection: which shard runs what."""
    hint = "" if json_given else "; write this shard's results with --qwencmp-json=FILE to merge them"
    return f"{split.describe()}; {deselected} item(s) of other shards deselected{hint}"
