"""What one evaluation measured: the per-document score of each item, and the evaluation as a whole.

:class:`ItemScore` is THE per-document score type of the package — one
model's score on one item, lm-eval's stderr, and the value of every document
(``doc_keys[i]`` -> ``per_doc[i]``); the saved-evaluations format
(``store.format``) keeps exactly these, keyed ``(side, benchmark, item_id)``.
:class:`BenchmarkEvaluation` is one (model, benchmark) evaluation: its item
scores, the model as it ran, shots, task versions, generation settings,
lm-eval's own results object and the documents the reports show — what the
cache stores (:meth:`BenchmarkEvaluation.to_payload`) and what a comparison
reads. :func:`extract_item_scores` and :func:`documents` reduce
``simple_evaluate``'s output to them, checking that lm-eval's score of each
item is the mean of the per-document values the statistics use
(:func:`check_score_against_documents`). Pure: no lm-eval import, no model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping

from ..config.benchmarks import OVERALL, Benchmark
from ..errors import QwencmpError

RESULT_FORMAT = 3
SCORE_TOLERANCE = 1e-9  # lm-eval's score against the mean of the per-document values
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
    samples: int = 1  # generation benchmarks: answers sampled per problem (--samples), each value the mean of them

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
            "samples": self.samples,
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
            samples=int(payload.get("samples", 1)),
        )


def _number(value: Any) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def _per_task_samples(samples: Mapping[str, list], task: str, metric: str) -> tuple[list[str], list[float]]:
    rows = sorted(samples.get(task, []), key=lambda s: s["doc_id"])
    keys = [document_key(task, row["doc_id"]) for row in rows]
    values = [float(row[metric]) for row in rows]
    return keys, values


def check_score_against_documents(benchmark: Benchmark, item, value: float | None, per_doc: list[float]) -> None:
    """lm-eval's score for ``item`` must be the mean of the per-document values the statistics use.

    For a leaf task, lm-eval aggregates its documents by their mean; for MMLU
    ``overall`` its group score is the size-weighted mean, which is the mean
    of all questions. A difference beyond ``SCORE_TOLERANCE`` means the table
    would show one number and the test another: a ``QwencmpError`` (the
    evaluator fails the benchmark's items once), never a silent disagreement.
    """
    if value is None or not per_doc:
        return
    mean = math.fsum(per_doc) / len(per_doc)
    if abs(value - mean) <= SCORE_TOLERANCE:
        return
    raise QwencmpError(
        f"lm-eval reports {item.metric} = {value!r} for {benchmark.name}[{item.id}] (task {item.task}), but the mean of "
        f"the {len(per_doc):,} per-document values the paired statistics use is {mean!r} (they differ by "
        f"{abs(value - mean):.3g}, beyond {SCORE_TOLERANCE:g}). The score shown and the test would disagree, so "
        f"{benchmark.name}'s items fail: check that the task aggregates its documents by their mean (a metric with "
        "another aggregation, a filter that drops documents, a modified lm-eval or an edited cache entry would explain it)."
    )


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
        check_score_against_documents(benchmark, item, value, per_doc)
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


def document_key(task: str, index: int) -> str:
    """How a document is named everywhere (``doc_keys``, the documents views, the per-document cache)."""
    return f"{task}/{index}"


def document_values(benchmark: Benchmark, output: Mapping[str, Any]) -> dict[str, dict[str, float]]:
    """Document key -> the value of each of the benchmark's metrics that lm-eval logged for it."""
    metrics = [metric for _, metric in benchmark.metrics]
    values = {}
    for task in benchmark.leaf_tasks:
        for row in output.get("samples", {}).get(task, []):
            values[document_key(task, row["doc_id"])] = {m: float(row[m]) for m in metrics if m in row}
    return values


def documents(benchmark: Benchmark, output: Mapping[str, Any]) -> dict[str, dict[str, str]]:
    documents = {}
    for task in benchmark.leaf_tasks:
        for row in output.get("samples", {}).get(task, []):
            documents[document_key(task, row["doc_id"])] = _document_view(row, benchmark.generation)
    return documents
