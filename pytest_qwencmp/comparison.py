"""Comparing model A with model B on every item of a benchmark.

Takes two ``BenchmarkEvaluation``s of the same benchmark, pairs their
per-document values and runs each item's paired test; the benchmark's
non-overall items form one family whose p-values are adjusted (Holm by
default) with intervals at the matching per-item levels
(``stats.adjust_items``, the adjustment baselines use too), so an item's
interval and p-value never disagree, adjusted or not: that is the verdict
("better", "worse", "no detectable difference"). Each threshold key of the
expectations is its own one-sided test at its own threshold, adjusted in its
key's family (``stats.rules.decide_keys``); keys that can never pass (or fail)
at the item's size are found exactly (``stats.planning.impossible_keys``, as
``plan`` does). Each item also gets its minimum detectable effect and the
power of its expectation's rules (``stats.power``, ``stats.rules``), and its
verdict (``stats.rules.check``).
The result is one frozen ``ItemComparison`` per item: the record behind each
pytest item, its failure message and its row in the report. ``overall`` (the
benchmark's group score) is tested alone, unadjusted.

:func:`merge_shards` does the same for the shards of a ``--qwencmp-shard``
run (``python -m pytest_qwencmp merge``): ``store.merge`` reads and checks
them, this module compares each benchmark exactly as a single run would, and
:class:`MergedRun` writes the reports. No pytest, no lm-eval, no model.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Mapping

from .stats import power as pw
from .stats import paired as stats
from .config.benchmarks import Benchmark
from .evaluation.scores import BenchmarkEvaluation, ItemScore
from .config.expectations import Expectation, Expectations
from .stats.planning import Impossible, impossible_keys
from .stats.rules import KeyResult, PowerNote, Verdict, assess, check, decide_keys
from .files import write_atomic
from .report.formatting import record_bound, record_points
from .report.html import html_page
from .report.junit import Case, item_properties, write_junit
from .report.results import ordered_record, results_document
from .report.text import item_lines, markdown_tables
from .store.merge import ShardResult, load_shards
from .stats.multiplicity import adjust_items
from .stats.paired import POINTS

RESAMPLES = 10_000


@dataclass(frozen=True)
class ItemComparison:
    """A vs B on one item: scores, paired statistics, expectation and verdict.

    ``paired`` holds the unadjusted test and its interval at level ``alpha``;
    ``adjusted_p`` and ``adjusted_ci`` (fractions) the same test adjusted for
    the item's family of ``family_size`` items by ``correction`` (a word:
    holm, bh or none), the interval taken at ``adjusted_level``; ``mde`` the
    smallest true difference (fraction) detected with 80% power at
    ``mde_level``; ``power_notes`` what each expectation rule can detect;
    ``keys`` each threshold key decided at its threshold in its family;
    ``impossible`` the rules that can never pass (or fail) at this size.
    """

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
    adjusted_ci: tuple[float, float] | None = None
    adjusted_level: float | None = None
    family_size: int = 1
    alpha: float = 0.05
    mde: float | None = None
    mde_level: float | None = None
    power_notes: tuple[PowerNote, ...] = ()
    keys: tuple[KeyResult, ...] = ()
    impossible: tuple[Impossible, ...] = ()
    sampling: Mapping[str, Any] | None = None  # generation benchmarks: temperature and samples per problem
    sequential: Mapping[str, Any] | None = None  # --sequential: the look that decided it, its RCIs (stopping.py)

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

    @property
    def adjusted_ci_points(self) -> tuple[float, float] | None:
        if self.adjusted_ci is None:
            return None
        return self.adjusted_ci[0] * POINTS, self.adjusted_ci[1] * POINTS

    @property
    def underpowered(self) -> bool:
        return any(note.underpowered for note in self.power_notes)

    def describe(self) -> str:
        """Two or three short lines: scores and test; adjusted test, verdict and MDE; expectations (a regression
        against a baseline among them; its numbers are in the JSON and the HTML)."""
        return "\n".join(item_lines(self.to_record()))

    def assert_meets_expectations(self) -> None:
        """Raise AssertionError with the full story when any expectation is missed."""
        __tracebackhide__ = True
        if not self.verdict.passed:
            raise AssertionError(self.describe())

    def to_record(self) -> dict[str, Any]:
        """A JSON-able row: travels from xdist workers in user_properties to the report."""
        ci = self.paired and (self.paired.ci_low, self.paired.ci_high)
        adjusted = self.adjusted_ci
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
            "ci_low": None if not ci else record_bound(ci[0]),
            "ci_high": None if not ci else record_bound(ci[1]),
            "p_value": None if self.paired is None else self.paired.p_value,
            "alpha": self.alpha,
            "adjusted_ci_low": None if adjusted is None else record_bound(adjusted[0]),
            "adjusted_ci_high": None if adjusted is None else record_bound(adjusted[1]),
            "adjusted_p": self.adjusted_p,
            "adjusted_level": self.adjusted_level,
            "correction": self.correction,
            "family_size": self.family_size,
            "test": None if self.paired is None else self.paired.test,
            "significance": self.significance,
            "mde": None if self.mde is None else round(self.mde * POINTS, 4),
            "mde_level": self.mde_level,
            "underpowered": self.underpowered,
            "power_notes": [note.text for note in self.power_notes],
            "keys": [{**k.to_record(), "low": record_points(k.low, k.threshold), "high": record_points(k.high, k.threshold)}
                     for k in self.keys],
            "impossible": [x.to_record() for x in self.impossible],
            "sampling": None if self.sampling is None else dict(self.sampling),
            "passed": self.verdict.passed,
            "failures": list(self.verdict.failures),
            "checked": list(self.verdict.checked),
            "generation": self.generation,
            "examples": [dict(e) for e in self.examples],
            "baseline": None if self.baseline is None else self.baseline.to_record(),
            **({"sequential": dict(self.sequential)} if self.sequential is not None else {}),
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


def _paired_test(a: ItemScore, b: ItemScore, seed: int, samples: int = 1) -> stats.PairedTest | None:
    """The item's paired test; with several samples per document (``--samples``) always the permutation test."""
    if not a.per_doc or a.doc_keys != b.doc_keys:
        return None
    return stats.paired_test(a.per_doc, b.per_doc, seed=seed, resamples=RESAMPLES, binary=False if samples > 1 else None)


def design_of(paired: stats.PairedComparison) -> pw.Design | None:
    """The power design an observed comparison implies: its n and discordance (binary) or sd of differences."""
    if paired.test == stats.TEST_SCORE:
        return pw.Design(paired.n, discordance=paired.discordance)
    if paired.test == stats.TEST_PERMUTATION:
        min_p = 2.0 / (1 << paired.n) if paired.n < 63 and (1 << paired.n) <= RESAMPLES else 2.0 / (RESAMPLES + 1)
        return pw.Design(paired.n, sd=paired.sd, min_p=min_p)
    return None


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
    """Every item of ``benchmark`` compared; its non-overall items adjusted as one family, each key in its own.

    ``alpha`` is two-sided (0.05: the 95 % interval); every key is a one-sided test at ``alpha / 2``.
    """
    label_a = str(evaluation_a.model.get("label", "A"))
    label_b = str(evaluation_b.model.get("label", "B"))
    pairs = {}
    for item in benchmark.items:
        a, b = evaluation_a.item(item.id), evaluation_b.item(item.id)
        samples = max(evaluation_a.samples, evaluation_b.samples)
        pairs[item.id] = (item, a, b, _paired_test(a, b, seed, samples))
    tests = {item_id: pair[3] for item_id, pair in pairs.items()}
    rules = {item_id: expectations.for_item(benchmark.name, item_id) for item_id in pairs}
    adjusted = adjust_items(tests, correction, alpha)
    keys = decide_keys(tests, rules, correction=correction, alpha=alpha / 2.0)
    tested = [item_id for item_id, test in tests.items() if test is not None]
    impossible = impossible_keys(
        tested, rules.__getitem__, {i: tests[i].n for i in tested}, correction=correction, alpha=alpha / 2.0,
        binary={i: tests[i].test != stats.TEST_PERMUTATION for i in tested}, resamples=RESAMPLES,
    )
    sampling = sampling_of(evaluation_b) if benchmark.generation else None
    comparisons = {}
    for item_id, (item, a, b, test) in pairs.items():
        expectation = rules[item_id]
        paired = adjusted_ci = adjusted_p = level = mde = mde_level = None
        family_size, method, notes, significance = 1, "none", (), "n/a"
        if item_id in adjusted:
            result = adjusted[item_id]
            paired, adjusted_p, level, adjusted_ci = result.paired, result.adjusted_p, result.level, result.adjusted_ci
            family_size, method, significance = result.family_size, result.correction, result.significance
            mde_level = pw.mde_level(alpha, method, family_size)
            design = design_of(paired)
            if design is not None:
                mde = pw.mde(design, mde_level)
                notes = assess(expectation, design, alpha=alpha, family_level=mde_level)
        verdict = check(
            expectation,
            a.value * POINTS,
            b.value * POINTS,
            keys=keys.get(item_id, ()),
            significantly_worse=significance == stats.VERDICT_WORSE,
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
            adjusted_ci=adjusted_ci,
            adjusted_level=level,
            family_size=family_size,
            alpha=alpha,
            mde=mde,
            mde_level=mde_level,
            power_notes=notes,
            keys=keys.get(item_id, ()),
            impossible=impossible.get(item_id, ()),
            sampling=sampling,
        )
    return comparisons


def sampling_of(evaluation: BenchmarkEvaluation) -> dict[str, Any] | None:
    """How a generation benchmark's answers were drawn: ``{"temperature", "samples"}``; None when greedy."""
    gen_kwargs = evaluation.gen_kwargs or {}
    if not gen_kwargs.get("do_sample"):
        return None
    return {"temperature": gen_kwargs.get("temperature"), "samples": int(evaluation.samples)}


# --------------------------------------------------------------------------- shards merged into one run


@dataclass(frozen=True)
class MergedRun:
    """The merged comparison (``python -m pytest_qwencmp merge``): every item's result and record, the settings and stats."""

    shards: tuple[ShardResult, ...]
    comparisons: tuple[ItemComparison, ...]
    records: tuple[dict[str, Any], ...]
    run_info: dict[str, Any]
    lm_eval_results: dict[str, dict[str, Any]]
    stats: dict[str, Any]

    @property
    def passed(self) -> bool:
        return all(r["passed"] for r in self.records)

    def document(self) -> dict[str, Any]:
        return results_document(self.records, self.run_info, self.lm_eval_results, self.stats)

    def junit_cases(self) -> list[Case]:
        return [
            Case(
                record.get("nodeid") or f"test_{record['benchmark']}.py::test_{record['benchmark']}[{record['item']}]",
                item_properties(record),
                None if comparison.verdict.passed else comparison.describe(),
            )
            for comparison, record in zip(self.comparisons, self.records)
        ]

    def write(self, *, json_path: Path | None = None, html_path: Path | None = None,
              markdown_path: Path | None = None, junit_path: Path | None = None) -> list[Path]:
        """Write the outputs asked for; returns their paths."""
        written = []
        if json_path:
            written.append(write_atomic(Path(json_path), json.dumps(self.document(), indent=2) + "\n", what="merged results"))
        if html_path:
            written.append(write_atomic(Path(html_path), html_page(self.records, self.run_info, self.stats), what="merged report"))
        if markdown_path:
            written.append(write_atomic(Path(markdown_path), self.markdown(), what="merged Markdown"))
        if junit_path:
            written.append(write_junit(self.junit_cases(), Path(junit_path), seconds=float(self.stats.get("wall_seconds") or 0)))
        return written

    def markdown(self) -> str:
        return markdown_tables(self.records, self.run_info)


def merge_shards(paths: Sequence[Path], *, expectations: Path | None = None, correction: str | None = None) -> MergedRun:
    """Read and check the shards (``store.merge.load_shards``), then compare each benchmark as a single run would."""
    started = time.perf_counter()
    shards = load_shards(paths, expectations=expectations, correction=correction)
    registry, evaluations = shards.registry, shards.evaluations
    comparisons, records, lm_eval_results = [], [], {}
    for benchmark in registry.benchmarks:
        if ("a", benchmark.name) not in evaluations:
            continue
        evaluation_a, evaluation_b = evaluations[("a", benchmark.name)], evaluations[("b", benchmark.name)]
        compared = compare_benchmark(
            benchmark, evaluation_a, evaluation_b, shards.rules, correction=shards.correction, seed=shards.seeds[benchmark.name]
        )
        item_ids = [item.id for item in benchmark.items]
        for item_id in item_ids:
            comparison = compared[item_id]
            record = ordered_record(comparison.to_record(), item_ids, registry.names())
            record["outcome"] = "passed" if comparison.verdict.passed else "failed"
            if (benchmark.name, item_id) in shards.nodeids:
                record["nodeid"] = shards.nodeids[(benchmark.name, item_id)]
            comparisons.append(comparison)
            records.append(record)
        lm_eval_results[benchmark.name] = {"a": evaluation_a.lm_eval_results, "b": evaluation_b.lm_eval_results}
    stats = dict(shards.stats)
    stats["merge_seconds"] = round(time.perf_counter() - started, 2)
    return MergedRun(shards.shards, tuple(comparisons), tuple(records), shards.run_info, lm_eval_results, stats)
