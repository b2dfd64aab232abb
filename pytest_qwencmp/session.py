"""One comparison run: the two models, their evaluations and the comparisons.

``ComparisonRun`` ties the core together for a session — settings, registry,
expectations, the evaluation cache, the two lazily loaded models — and answers
``comparison(benchmark, item)``: each (model, benchmark) is evaluated at most
once, each benchmark compared once. It knows nothing of pytest.
"""

from __future__ import annotations

import platform
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .config.benchmarks import Registry
from .evaluation.cache import EvaluationCache
from .errors import QwencmpError
from .models.placement import (
    ExecutionPlan,
    cuda_available,
    cuda_device_count,
    deepspeed_available,
    plan_execution,
    spread_gpus,
)
from .config.expectations import Expectations
from .failures import FailureMemory
from .models.sources import HubAccess
from .models.loading import ModelHandle, ModelSide
from .config.settings import ModelRef, RunSettings
from .models.weights import read_parameter_count

if TYPE_CHECKING:  # pragma: no cover
    from .comparison import ItemComparison
    from .store.format import SavedEvaluations


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
    ) -> None:
        self.settings = settings
        self.registry = registry
        self.expectations = expectations
        self.progress = progress
        self.correction = correction
        self.worker_index = worker_index
        self.baseline = baseline
        self.baseline_allow_mismatch = baseline_allow_mismatch
        self.baseline_warnings: list[str] = []
        self.shard_plan = None  # a shards.ShardPlan when --qwencmp-shard splits the benchmarks over jobs
        self._handles: dict[str, ModelSide] | None = None
        self._parameter_counts: dict[str, int] = {}  # per side, read once from the safetensors headers
        self._evaluator = None
        self._compared: dict[str, dict[str, "ItemComparison"]] = {}
        self.hub = HubAccess()  # asked at most once per session, and only for a hub model that must be loaded
        self.failures = FailureMemory()  # each problem reported once; a model that cannot load stops what needs it
        self._fully_cached: dict[str, bool] = {}

    def _resolve_demo(self) -> RunSettings:
        from .demo.build import build_demo_assets

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
        has_cuda = cuda_available()
        cuda_devices = cuda_device_count() if has_cuda else 0
        sizes = {side: self.settings.tensor_parallel(side) for side in ("a", "b")}
        gpus: dict[str, tuple[int, ...]] = {}
        if cuda_devices and max(sizes.values()) > 1 and self.settings.device in ("auto", "cuda"):
            gpus = spread_gpus(sizes, cuda_devices, self.worker_index)
        return {
            side: plan_execution(
                dtype=self.settings.dtype_for(side),
                backend=self.settings.backend,
                device=self.settings.device,
                batch_size=self.settings.batch_size,
                has_cuda=has_cuda,
                has_deepspeed=deepspeed_available(),
                worker_index=self.worker_index,
                cuda_devices=cuda_devices,
                tensor_parallel=sizes[side],
                gpus=gpus.get(side),
            )
            for side in ("a", "b")
        }

    @property
    def handles(self) -> dict[str, ModelSide]:
        if self._handles is None:
            if self.settings.demo:
                self.settings = self._resolve_demo()
            refs = {"a": self.settings.model("a"), "b": self.settings.model("b")}
            plans = self.plan_models()
            handles: dict[str, ModelSide] = {}
            for side, ref in refs.items():
                plan = plans[side]
                if plan.tensor_parallel > 1:
                    from .models.tensor_parallel import TensorParallelHandle

                    handles[side] = TensorParallelHandle(
                        side, ref, plan, self.settings.dtype_for(side), options=self.settings.options(side),
                        log_root=self.settings.cache_dir / "tensor-parallel-logs", hub=self.hub, progress=self.progress,
                    )
                else:
                    handles[side] = ModelHandle(
                        side, ref, plan, self.settings.dtype_for(side), self.settings.options(side), hub=self.hub
                    )
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
            from .store.exchange import ImportedEntries
            from .evaluation.evaluator import Evaluator

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

    def comparison(self, benchmark_name: str, item_id: str) -> "ItemComparison":
        if benchmark_name not in self._compared:
            benchmark = self.registry.get(benchmark_name)
            evaluation_a = self.evaluator.evaluate("a", benchmark_name)
            evaluation_b = self.evaluator.evaluate("b", benchmark_name)
            from .comparison import compare_benchmark  # after the evaluations: a failed one never pays for scipy

            compared = dict(
                compare_benchmark(
                    benchmark,
                    evaluation_a,
                    evaluation_b,
                    self.expectations,
                    correction=self.correction,
                    seed=self.settings.seed,
                )
            )
            if self.baseline is not None:
                compared = self._against_baseline(benchmark_name, compared, [evaluation_a, evaluation_b])
            self._compared[benchmark_name] = compared
        return self._compared[benchmark_name][item_id]

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
        from .evaluation.cache import cache_key
        from .lmeval.tasks import TaskSource

        return {
            name: cache_key(TaskSource(self.registry.get(name), self.settings.data_dir, index_dir=self.settings.cache_dir).data_fingerprints())
            for name in benchmark_names
        }

    def _against_baseline(self, benchmark_name: str, compared: dict, evaluations: list) -> dict:
        from .store.baselines import check_compatible, compare_to_baseline
        from .comparison import with_baseline
        from .store.compatibility import number_settings

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

    def saved_evaluations(
        self, name: str, benchmark_names, project_root: Path | None = None, *, full: bool = False
    ) -> "SavedEvaluations | None":
        """The evaluations of ``benchmark_names`` (read from the cache, nothing is run) with their settings; None if any is missing.

        ``full`` (a shard's results, see ``saved``) adds each evaluation's record
        and key parts, the benchmark definitions and the comparison settings.
        """
        from .store.compatibility import number_settings
        from .store.format import machine_info, project_commit, saved_from_evaluations

        evaluations, key_parts = [], {}
        for name_ in benchmark_names:
            for side in ("a", "b"):
                evaluation = self.evaluator.load_cached(side, name_)
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

    def save_baseline(self, name: str, directory: Path, benchmark_names, project_root: Path | None = None) -> Path | None:
        """Save the evaluations of ``benchmark_names`` (read from the cache, nothing is run) as a baseline."""
        from .store.baselines import save_baseline, validate_name

        saved = self.saved_evaluations(validate_name(name), benchmark_names, project_root)
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
            "evaluated": dict(evaluator_stats.evaluated) if evaluator_stats else {},
            "reused": dict(evaluator_stats.reused) if evaluator_stats else {},
            "ignored": list(evaluator_stats.ignored) if evaluator_stats else [],
        }

    def describe(self, evaluated: dict[str, Any] | None = None) -> dict[str, Any]:
        """The run's settings as they ran, for the report (no model is loaded for this)."""
        from .lmeval.tasks import lm_eval_version

        models = {}
        for side, handle in (self._handles or {}).items():
            info = handle.describe()
            if side not in self._parameter_counts:  # every item describes the run: read the headers once
                count = read_parameter_count(handle.ref)
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
            "seed": settings.seed,
            "data": str(settings.data_dir) if settings.data_dir else "Hugging Face hub",
            "lm_eval_version": lm_eval_version(),
            "correction": self.correction,
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
        from .sandbox.executor import detect_sandbox

        sandbox = detect_sandbox()
        return {"code_sandbox": sandbox.summary, "code_sandbox_details": sandbox.description}
