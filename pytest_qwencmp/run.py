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
from typing import TYPE_CHECKING, Any

from .benchmarks import Registry
from .cache import EvaluationCache
from .expectations import Expectations
from .models import (
    ModelHandle,
    cuda_available,
    cuda_device_count,
    deepspeed_available,
    plan_execution,
    read_parameter_count,
)
from .settings import ModelRef, RunSettings

if TYPE_CHECKING:  # pragma: no cover
    from .comparison import ItemComparison


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
    ) -> None:
        self.settings = settings
        self.registry = registry
        self.expectations = expectations
        self.progress = progress
        self.correction = correction
        self.worker_index = worker_index
        self._handles: dict[str, ModelHandle] | None = None
        self._evaluator = None
        self._compared: dict[str, dict[str, "ItemComparison"]] = {}

    def _resolve_demo(self) -> RunSettings:
        from .demo import build_demo_assets

        self.progress("qwencmp: preparing the embedded demo models and data (built once, then cached)")
        assets = build_demo_assets(self.settings.cache_dir / "demo")
        return replace(
            self.settings,
            model_a=ModelRef(str(assets.model_a)),
            model_b=ModelRef(str(assets.model_b)),
            data_dir=assets.data_dir,
        )

    @property
    def handles(self) -> dict[str, ModelHandle]:
        if self._handles is None:
            if self.settings.demo:
                self.settings = self._resolve_demo()
            refs = {"a": self.settings.model("a"), "b": self.settings.model("b")}
            has_cuda = cuda_available()
            plan = plan_execution(
                dtype=self.settings.dtype,
                backend=self.settings.backend,
                device=self.settings.device,
                batch_size=self.settings.batch_size,
                has_cuda=has_cuda,
                has_deepspeed=deepspeed_available(),
                worker_index=self.worker_index,
                cuda_devices=cuda_device_count() if has_cuda else 0,
            )
            self._handles = {side: ModelHandle(side, ref, plan, self.settings.dtype) for side, ref in refs.items()}
        return self._handles

    def handle(self, side: str) -> ModelHandle:
        return self.handles[side]

    @property
    def evaluator(self):
        if self._evaluator is None:
            from .evaluation import Evaluator

            handles = self.handles
            self._evaluator = Evaluator(
                self.settings,
                self.registry,
                EvaluationCache(self.settings.cache_dir, read_enabled=self.settings.read_cache),
                handles,
                progress=self.progress,
            )
        return self._evaluator

    def comparison(self, benchmark_name: str, item_id: str) -> "ItemComparison":
        if benchmark_name not in self._compared:
            from .comparison import compare_benchmark

            benchmark = self.registry.get(benchmark_name)
            evaluation_a = self.evaluator.evaluate("a", benchmark_name)
            evaluation_b = self.evaluator.evaluate("b", benchmark_name)
            self._compared[benchmark_name] = dict(
                compare_benchmark(
                    benchmark,
                    evaluation_a,
                    evaluation_b,
                    self.expectations,
                    correction=self.correction,
                    seed=self.settings.seed,
                )
            )
        return self._compared[benchmark_name][item_id]

    def model_loads(self) -> int:
        return sum(h.loads for h in (self._handles or {}).values())

    def stats(self) -> dict[str, Any]:
        evaluator_stats = self._evaluator.stats if self._evaluator is not None else None
        return {
            "model_loads": self.model_loads(),
            "evaluations": evaluator_stats.evaluations if evaluator_stats else 0,
            "cache_hits": evaluator_stats.cache_hits if evaluator_stats else 0,
            "evaluation_seconds": round(evaluator_stats.evaluation_seconds, 2) if evaluator_stats else 0.0,
        }

    def describe(self, evaluated: dict[str, Any] | None = None) -> dict[str, Any]:
        """The run's settings as they ran, for the report (no model is loaded for this)."""
        from .lm_tasks import lm_eval_version

        models = {}
        for side, handle in (self._handles or {}).items():
            info = handle.describe()
            info["parameters"] = read_parameter_count(handle.ref)
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
        }
