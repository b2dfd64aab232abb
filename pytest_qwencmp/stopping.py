"""A sequential run of one benchmark (``--sequential``): evaluate in looks, decide after each, stop when all is decided.

Each leaf task's documents (an MMLU subject, or the whole task) are put in the seeded
order of ``stats.sequential.document_order`` (the run's ``--seed``) and evaluated in
looks at the design's fractions of every task (``--sequential-looks``, default 1/8,
1/4, 1/2, 1), both models on the same documents (``Evaluator.evaluate_documents``:
documents evaluated before, by any run, are not evaluated again). After each look
every item with an expectation is decided by ``stats.sequential`` (repeated
confidence intervals, graphical Holm within the benchmark's family, ``overall``
alone); a task is extended only while an undecided item needs it, and the benchmark
stops when every item with an expectation is decided or its documents are exhausted.
Items with a non-binary metric are decided at the last look by the fixed design
(their task runs to the end). :func:`run_sequential` returns the last look's two
evaluations, each item's decision and the benchmark's account
(:class:`SequentialOutcome`); :func:`sequential_comparisons` turns them into the
run's ``ItemComparison``s — numbers on the documents evaluated, the verdict from
the sequential decision (:func:`decision_verdict`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from .comparison import ItemComparison, compare_benchmark
from .config.benchmarks import OVERALL, Benchmark, Registry
from .config.expectations import Expectation, Expectations
from .config.settings import RunSettings
from .errors import QwencmpError
from .evaluation.evaluator import Evaluator
from .evaluation.scores import BenchmarkEvaluation, ItemScore
from .lmeval.sizes import shots_depend_on_order
from .report.formatting import group_by_benchmark, sequential_account
from .stats.rules import Verdict
from .stats.sequential import (CONTINUE, FAIL, PASS, VERDICT_NAMES, ItemDecision, KeyDecision, LookCounts,
                               SequentialDesign, benchmark_stop, decide_family, decide_item, document_order,
                               planned_sizes, sequential_keys, strata_needed)


@dataclass(frozen=True)
class SequentialOutcome:
    """One benchmark's sequential run: the last look's evaluations (A, B), each item's decision (None: decided by
    the fixed design at the last look, or no expectation), and how far it went."""

    benchmark: str
    evaluations: tuple[BenchmarkEvaluation, BenchmarkEvaluation]
    decisions: Mapping[str, ItemDecision | None]
    looks: int  # looks run
    planned_looks: int
    per_task: Mapping[str, int]  # documents evaluated per leaf task (a prefix of its seeded order)
    totals: Mapping[str, int]  # documents per leaf task in the run
    item_totals: Mapping[str, int]
    decided_items: int  # items with an expectation
    stopped: str
    method: str
    non_binary: tuple[str, ...] = ()
    look_documents: Mapping[str, Mapping[int, int]] = field(default_factory=dict)  # item -> look -> documents by then

    def documents_at(self, item_id: str, look: int | None) -> str:
        """'1,755 of 14,042 documents': an item's documents by a look."""
        n = self.look_documents.get(item_id, {}).get(look or 0, 0)
        return f"{n:,} of {self.item_totals[item_id]:,} documents"

    @property
    def documents_evaluated(self) -> int:
        return sum(self.per_task.values())

    @property
    def documents_total(self) -> int:
        return sum(self.totals.values())

    def summary(self) -> dict[str, Any]:
        """The benchmark's account as the JSON and the reports carry it."""
        return {"documents_evaluated": self.documents_evaluated, "documents_total": self.documents_total,
                "looks": self.looks, "planned_looks": self.planned_looks, "stopped": self.stopped,
                "items_with_expectations": self.decided_items, "method": self.method, "per_task": dict(self.per_task)}


def _strata(benchmark: Benchmark) -> dict[str, tuple[str, ...]]:
    """Item -> the leaf tasks its score is computed from (``overall``: all of them)."""
    return {item.id: (tuple(benchmark.leaf_tasks) if item.id.split(":")[0] == OVERALL and benchmark.subjects
                      else (item.task,)) for item in benchmark.items}


def _binary(score: ItemScore) -> bool:
    return all(v in (0.0, 1.0) for v in score.per_doc)


def look_counts(look: int, a: ItemScore, b: ItemScore) -> LookCounts:
    """An item's counts on its documents so far (both models, the same documents)."""
    if a.doc_keys != b.doc_keys:
        raise ValueError(f"the two models' documents differ for item {a.item_id!r}")
    x, y = np.asarray(a.per_doc), np.asarray(b.per_doc)
    return LookCounts(look, int(x.size), int(np.sum((y == 1) & (x == 0))), int(np.sum((x == 1) & (y == 0))),
                      int(np.sum(x == 1)), int(np.sum(y == 1)))


def looked_at(per_task: Mapping[str, int], totals: Mapping[str, int], seed: int) -> dict[str, tuple[int, ...]]:
    """The documents a sequential run evaluated: the first ``per_task[task]`` of each task's seeded order."""
    return {task: document_order(task, totals[task], seed)[:count] for task, count in per_task.items()}


def sequential_documents(records) -> dict[str, dict[str, int]]:
    """Benchmark -> documents evaluated per leaf task, from the items' records (what an xdist controller knows)."""
    return {name: dict(account["per_task"]) for name, rows in group_by_benchmark(records).items()
            if (account := sequential_account(rows))}


def run_sequential(evaluator: Evaluator, benchmark: Benchmark, expectations: Expectations, design: SequentialDesign,
                   seed: int) -> SequentialOutcome:
    """Evaluate ``benchmark`` look by look until every item with an expectation is decided."""
    totals = evaluator.task_sizes(benchmark)
    orders = {task: document_order(task, n, seed) for task, n in totals.items()}
    planned = {task: planned_sizes(n, design.looks) for task, n in totals.items()}
    strata = _strata(benchmark)
    rules = {item.id: expectations.for_item(benchmark.name, item.id) for item in benchmark.items}
    keyed = [item.id for item in benchmark.items if sequential_keys(rules[item.id])]
    item_planned = {i: tuple(sum(planned[t][k] for t in strata[i]) for k in range(len(design.looks))) for i in keyed}
    family = [i for i in keyed if i.split(":")[0] != OVERALL]
    alone = [i for i in keyed if i.split(":")[0] == OVERALL]
    histories: dict[str, list[LookCounts]] = {i: [] for i in keyed}
    decisions: dict[str, ItemDecision] = {i: ItemDecision(CONTINUE, None, ()) for i in keyed}
    non_binary: set[str] = set()
    per_task = {task: 0 for task in totals}
    K = len(design.looks)
    looks = 0
    evaluations: tuple[BenchmarkEvaluation, BenchmarkEvaluation] | None = None
    for k in range(K):
        needed = set(totals) if k == 0 else strata_needed(decisions, rules, strata) | {
            t for i in non_binary for t in strata[i]}
        extend = {t for t in needed if planned[t][k] > per_task[t]}
        if not extend:
            if not needed:
                break
            continue  # the tasks still needed have no new documents at this planned look (tiny tasks)
        for task in extend:
            per_task[task] = planned[task][k]
        wanted = {task: orders[task][:count] for task, count in per_task.items()}
        what = f"look {k + 1} of {K}"
        evaluations = (evaluator.evaluate_documents("a", benchmark.name, wanted, what=what),
                       evaluator.evaluate_documents("b", benchmark.name, wanted, what=what))
        looks = k + 1
        for item_id in keyed:
            a, b = evaluations[0].item(item_id), evaluations[1].item(item_id)
            if not (_binary(a) and _binary(b)):
                non_binary.add(item_id)
                continue
            if not histories[item_id] or histories[item_id][-1].n < a.n:
                histories[item_id].append(look_counts(k + 1, a, b))
        decided_family = [i for i in family if i not in non_binary and histories[i]]
        if decided_family:
            decisions.update(decide_family({i: histories[i] for i in decided_family},
                                           {i: item_planned[i] for i in decided_family},
                                           {i: rules[i] for i in decided_family}, design))
        for i in alone:
            if i not in non_binary and histories[i]:
                decisions[i] = decide_item(histories[i], item_planned[i], rules[i], design)
        open_items = {i: d for i, d in decisions.items() if i not in non_binary}
        if benchmark_stop(open_items, rules) and not non_binary:
            break
    complete = all(per_task[t] == totals[t] for t in totals)
    if keyed and all(decisions[i].decided for i in keyed if i not in non_binary) and not complete:
        stopped = f"all {len(keyed)} item{'s' if len(keyed) != 1 else ''} with expectations decided"
    elif not keyed:
        stopped = "no item has an expectation (first look only)"
    else:
        stopped = "documents exhausted (the last look is the fixed verdict at the spent level)"
    return SequentialOutcome(
        benchmark.name, evaluations, {i: (None if i in non_binary else decisions.get(i)) for i in rules},
        looks, K, per_task, totals, {i: sum(totals[t] for t in strata[i]) for i in rules}, len(keyed), stopped,
        design.method, tuple(sorted(non_binary)), {i: {h.look: h.n for h in histories[i]} for i in keyed},
    )


def check_sequential(settings: RunSettings, registry: Registry, correction: str, shard: object | None) -> None:
    """What ``--sequential`` cannot do, refused at start in one paragraph (``QwencmpError``)."""
    if correction == "bh":
        raise QwencmpError(
            "--sequential does not combine with --correction bh: the false discovery rate has no group-sequential "
            "counterpart here. A sequential run controls each family's error with the graphical Holm procedure "
            "(--correction holm, the default; it also controls the false discovery rate) or tests each item alone "
            "(--correction none); pick one of those, or drop --sequential."
        )
    if shard is not None:
        raise QwencmpError(
            "--sequential does not combine with --qwencmp-shard: a sequential run decides after each look which "
            "documents come next, and a merge of shards would have to replay every look. Run the sequential "
            "comparison in one job (a benchmark's looks already run on one machine), or shard a full run "
            "(drop --sequential)."
        )
    for name in settings.benchmarks or registry.names():
        benchmark = registry.get(name)
        if settings.samples_for(name) > 1:
            raise QwencmpError(
                f"--sequential does not combine with --samples {name}={settings.samples_for(name)}: with several answers "
                "per problem each document's pass@1 is a fraction, and the sequential design's repeated intervals are "
                f"the score intervals of 0/1 values. Drop --samples for a sequential run (one answer per problem), or "
                "drop --sequential to compare the K-sample pass@1 with the permutation test."
            )
        shots = settings.shots_for(name, benchmark.num_fewshot)
        tasks = shots_depend_on_order(benchmark, shots)
        if tasks:
            raise QwencmpError(
                f"--sequential cannot evaluate {benchmark.title} in looks with {shots if shots is not None else 'its default'} "
                f"shot(s): lm-eval draws the few-shot examples of {tasks[0]} at random in evaluation order, so a "
                "document evaluated in a look would get other examples than in a full run. Use --num-fewshot "
                f"{name}=0, leave {name} out (--benchmarks), or drop --sequential."
            )


# --------------------------------------------------------------------------- the verdicts


def _key_text(key: KeyDecision, documents: str) -> tuple[str, str]:
    """(what the key requires, why it failed) in words, with the repeated interval it was read from."""
    t = key.threshold
    side = "A" if key.rule == "floor_a" else "B"
    need, reach = {
        "min_ci_lower": (f"repeated CI of B − A above {t:+.2f}", f"show B − A above {t:+.2f}"),
        "non_inferiority_margin": (f"repeated CI of B − A above {t:+.2f}", f"show B − A above {t:+.2f}"),
        "max_regression": (f"repeated CI of B − A not below {t:+.2f}", f"keep B − A within {t:+.2f}"),
        "no_significant_regression": ("repeated CI of B − A not below 0", "keep B − A from being below 0"),
        "min_improvement": (f"B − A ≥ {t:+.2f}", f"bring B − A to {t:+.2f}"),
    }.get(key.rule, (f"{side} ≥ {t:.2f}", f"bring {side}'s score to the floor {t:.2f}"))
    if key.curtailed:  # decided because no outcome of the documents left could change the last look
        return f"{key.rule}: {need}", f"{key.rule}: at look {key.look} ({documents}), no outcome of the remaining documents can {reach}"
    conf = f"{100 * (1 - key.level):.4g}%"
    if key.rule in ("floor_a", "floor_b"):
        interval = f"the repeated {conf} score interval of {side} [{key.low:.2f}, {key.high:.2f}]"
        why = f"lies below the floor {t:.2f}"
    elif key.rule == "min_improvement":
        interval = f"the repeated {conf} CI of B − A [{key.low:+.2f}, {key.high:+.2f}]"
        why = f"lies below {t:+.2f}" if key.high < t else f"holds a point estimate below {t:+.2f}"
    else:
        interval = f"the repeated {conf} CI of B − A [{key.low:+.2f}, {key.high:+.2f}]"
        why = f"lies below {t:+.2f}" if key.rule in ("max_regression", "no_significant_regression") else f"does not start above {t:+.2f}"
    return f"{key.rule}: {need}", f"{key.rule}: {interval} at look {key.look} ({documents}) {why}"


def decision_verdict(decision: ItemDecision, documents_at) -> Verdict:
    """The pass/fail of a sequentially decided item, each key worded with the interval that decided it
    (``documents_at(look)``: the item's documents by then, in words)."""
    failures, checked = [], []
    for key in decision.keys:
        need, why = _key_text(key, documents_at(key.look))
        checked.append(need)
        if key.verdict == FAIL:
            failures.append(why)
    return Verdict(decision.verdict == PASS, tuple(failures), tuple(checked))


def _item_record(outcome: SequentialOutcome, item_id: str, decision: ItemDecision | None, n: int,
                 expectation: Expectation) -> dict[str, Any]:
    total = outcome.item_totals[item_id]
    if decision is None:
        note = ("no expectation: its numbers are on the documents evaluated" if not sequential_keys(expectation)
                else "non-binary metric: decided at the last look by the fixed design")
    else:
        note = ""
    return {
        "look": None if decision is None else decision.look,
        "verdict": "fixed design" if decision is None else VERDICT_NAMES[decision.verdict],
        "documents": n, "documents_total": total, "note": note,
        "keys": [] if decision is None else [
            {"rule": k.rule, "threshold": k.threshold, "verdict": VERDICT_NAMES[k.verdict], "look": k.look,
             "rci_low": round(k.low, 4), "rci_high": round(k.high, 4), "level": k.level, "alpha": k.alpha,
             "curtailed": k.curtailed} for k in decision.keys],
        "benchmark": outcome.summary(),
    }


def sequential_comparisons(outcome: SequentialOutcome, benchmark: Benchmark, expectations: Expectations, *,
                           correction: str, seed: int) -> dict[str, ItemComparison]:
    """Every item's comparison on the documents evaluated; items decided sequentially carry that verdict."""
    a, b = outcome.evaluations
    compared = compare_benchmark(benchmark, a, b, expectations, correction=correction, seed=seed)
    out = {}
    for item_id, comparison in compared.items():
        decision = outcome.decisions.get(item_id)
        n = comparison.b.n
        record = _item_record(outcome, item_id, decision, n, comparison.expectation)
        if decision is not None and decision.keys:
            verdict = decision_verdict(decision, lambda look, i=item_id: outcome.documents_at(i, look))
            comparison = replace(comparison, verdict=verdict)
        out[item_id] = replace(comparison, sequential=record)
    return out
