"""Comparing model A with model B on every item of a benchmark.

Takes two ``BenchmarkEvaluation``s of the same benchmark, pairs their
per-document values, computes the paired difference with its confidence
interval and p-value, corrects the p-values across the benchmark's subjects
(Holm by default), applies the user's expectations and produces one frozen
``ItemComparison`` per item: the record behind each pytest item, its failure
message and its row in the report.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Mapping

from . import statistics as stats
from .benchmarks import OVERALL, Benchmark
from .evaluation import BenchmarkEvaluation, ItemScore
from .expectations import Expectation, Expectations, Verdict, check

POINTS = 100.0


@dataclass(frozen=True)
class ItemComparison:
    """A vs B on one item: scores, paired statistics, expectation and verdict."""

    benchmark: str
    benchmark_title: str
    item_id: str
    metric: str
    model_a: str
    model_b: str
    a: ItemScore
    b: ItemScore
    paired: stats.PairedComparison | None
    adjusted_p: float | None
    correction: str
    significance: str  # "better" | "worse" | "no detectable difference" | "n/a"
    expectation: Expectation
    verdict: Verdict
    generation: bool = False
    examples: tuple[Mapping[str, Any], ...] = ()
    baseline: Any = None  # a baseline.BaselineComparison when --qwencmp-baseline-compare is used

    def __repr__(self) -> str:
        return (
            f"<ItemComparison {self.benchmark}[{self.item_id}]: A {self.a.value * POINTS:.2f} → "
            f"B {self.b.value * POINTS:.2f}, {'pass' if self.verdict.passed else 'FAIL'}>"
        )

    @property
    def delta_points(self) -> float:
        return (self.b.value - self.a.value) * POINTS

    @property
    def delta_stderr_points(self) -> float | None:
        """Paired stderr when per-document data exists; else √(sa² + sb²) from lm-eval's stderrs."""
        if self.paired is not None:
            return self.paired.stderr * POINTS
        if self.a.stderr is None or self.b.stderr is None:
            return None
        return math.hypot(self.a.stderr, self.b.stderr) * POINTS

    @property
    def ci_points(self) -> tuple[float, float] | None:
        if self.paired is None:
            return None
        return self.paired.ci_low * POINTS, self.paired.ci_high * POINTS

    def describe(self) -> str:
        """One paragraph with the numbers, thresholds and uncertainty."""
        def score(s: ItemScore) -> str:
            err = f" ± {s.stderr * POINTS:.2f}" if s.stderr is not None else ""
            return f"{s.value * POINTS:.2f}{err}"

        parts = [
            f"{self.benchmark}[{self.item_id}] {self.metric}: A ({self.model_a}) {score(self.a)}, "
            f"B ({self.model_b}) {score(self.b)} over {self.b.n} documents; "
            f"B − A = {self.delta_points:+.2f} points"
        ]
        if self.delta_stderr_points is not None:
            kind = "paired" if self.paired is not None else "unpaired"
            parts.append(f" (± {self.delta_stderr_points:.2f} {kind} stderr")
            if self.ci_points is not None:
                low, high = self.ci_points
                parts.append(f", 95% CI [{low:+.2f}, {high:+.2f}]")
            if self.adjusted_p is not None:
                parts.append(f", p = {self.adjusted_p:.3g} {self.correction}-adjusted, {self.significance}")
            parts.append(")")
        parts.append(".")
        if self.verdict.checked:
            parts.append(f" Expected: {'; '.join(self.verdict.checked)} ({self.expectation.source}).")
        if self.verdict.failures:
            parts.append(" Missed: " + "; ".join(self.verdict.failures) + ".")
        if self.baseline is not None:
            parts.append(" Against the baseline: " + self.baseline.message)
        return "".join(parts)

    def assert_meets_expectations(self) -> None:
        """Raise AssertionError with the full story when any expectation is missed."""
        __tracebackhide__ = True
        if not self.verdict.passed:
            raise AssertionError(self.describe())

    def to_record(self) -> dict[str, Any]:
        """A JSON-able row: travels from xdist workers in user_properties to the report."""
        ci = self.ci_points
        return {
            "benchmark": self.benchmark,
            "benchmark_title": self.benchmark_title,
            "item": self.item_id,
            "metric": self.metric,
            "model_a": self.model_a,
            "model_b": self.model_b,
            "a": round(self.a.value * POINTS, 4),
            "a_stderr": None if self.a.stderr is None else round(self.a.stderr * POINTS, 4),
            "b": round(self.b.value * POINTS, 4),
            "b_stderr": None if self.b.stderr is None else round(self.b.stderr * POINTS, 4),
            "n": self.b.n,
            "delta": round(self.delta_points, 4),
            "delta_stderr": None if self.delta_stderr_points is None else round(self.delta_stderr_points, 4),
            "ci_low": None if ci is None else round(ci[0], 4),
            "ci_high": None if ci is None else round(ci[1], 4),
            "p_value": None if self.paired is None else self.paired.p_value,
            "adjusted_p": self.adjusted_p,
            "correction": self.correction,
            "test": None if self.paired is None else self.paired.test,
            "significance": self.significance,
            "passed": self.verdict.passed,
            "failures": list(self.verdict.failures),
            "checked": list(self.verdict.checked),
            "generation": self.generation,
            "examples": [dict(e) for e in self.examples],
            "baseline": None if self.baseline is None else self.baseline.to_record(),
        }


def with_baseline(comparison: ItemComparison, check: Any) -> ItemComparison:
    """``comparison`` with a baseline check folded into its verdict."""
    failures = comparison.verdict.failures
    if check.regressed:
        failures += (f"B regressed against baseline {check.baseline_name!r} ({check.delta_points:+.2f} points)",)
    checked = comparison.verdict.checked + (f"B within {check.tolerance_points:.2f} points of the baseline",)
    return replace(comparison, baseline=check, verdict=Verdict(not failures, failures, checked))

def select_examples(
    a: ItemScore,
    b: ItemScore,
    documents_a: Mapping[str, Mapping[str, str]],
    documents_b: Mapping[str, Mapping[str, str]],
    limit: int = 3,
) -> tuple[dict[str, Any], ...]:
    """Up to ``limit`` documents where A and B disagree (else the first few), both answers side by side."""
    scores_a = dict(zip(a.doc_keys, a.per_doc))
    scores_b = dict(zip(b.doc_keys, b.per_doc))
    shared = [k for k in a.doc_keys if k in scores_b and k in documents_a and k in documents_b]
    disagreeing = [k for k in shared if scores_a[k] != scores_b[k]]
    chosen = (disagreeing or shared)[:limit]
    return tuple(
        {
            "doc": key,
            "prompt": documents_a[key].get("prompt", ""),
            "target": documents_a[key].get("target", ""),
            "a_answer": documents_a[key].get("answer", ""),
            "b_answer": documents_b[key].get("answer", ""),
            "a_score": scores_a[key],
            "b_score": scores_b[key],
            "disagree": scores_a[key] != scores_b[key],
        }
        for key in chosen
    )


def _paired(a: ItemScore, b: ItemScore, seed: int) -> stats.PairedComparison | None:
    if not a.per_doc or a.doc_keys != b.doc_keys:
        return None
    return stats.compare_paired(a.per_doc, b.per_doc, seed=seed)


def compare_benchmark(
    benchmark: Benchmark,
    evaluation_a: BenchmarkEvaluation,
    evaluation_b: BenchmarkEvaluation,
    expectations: Expectations,
    *,
    correction: str = "holm",
    alpha: float = 0.05,
    seed: int = 0,
) -> Mapping[str, ItemComparison]:
    """Every item of ``benchmark`` compared; p-values adjusted across its non-overall items."""
    label_a = str(evaluation_a.model.get("label", "A"))
    label_b = str(evaluation_b.model.get("label", "B"))
    pairs = {}
    for item in benchmark.items:
        a, b = evaluation_a.item(item.id), evaluation_b.item(item.id)
        pairs[item.id] = (item, a, b, _paired(a, b, seed))
    family = [i for i, (item, *_ , p) in pairs.items() if p is not None and i.split(":")[0] != OVERALL]
    adjusted = dict(zip(family, stats.adjust_p_values([pairs[i][3].p_value for i in family], method=correction)))
    comparisons = {}
    for item_id, (item, a, b, paired) in pairs.items():
        adjusted_p = adjusted.get(item_id, paired.p_value if paired is not None else None)
        method = correction if item_id in adjusted and len(family) > 1 else "un"
        significance = "n/a" if paired is None else stats.verdict(paired, adjusted_p, alpha)
        expectation = expectations.for_item(benchmark.name, item_id)
        verdict = check(
            expectation,
            a.value * POINTS,
            b.value * POINTS,
            ci_lower=None if paired is None else paired.ci_low * POINTS,
            significantly_worse=significance == "worse",
        )
        comparisons[item_id] = ItemComparison(
            benchmark=benchmark.name,
            benchmark_title=benchmark.title,
            item_id=item_id,
            metric=item.metric,
            model_a=label_a,
            model_b=label_b,
            a=a,
            b=b,
            paired=paired,
            adjusted_p=adjusted_p,
            correction=method,
            significance=significance,
            expectation=expectation,
            verdict=verdict,
            generation=benchmark.generation,
            examples=select_examples(a, b, evaluation_a.documents, evaluation_b.documents),
        )
    return comparisons
