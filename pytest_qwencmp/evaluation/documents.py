"""Per-document results: what lets a run evaluate only the documents no earlier run evaluated.

:class:`StoredDocuments` holds, for one (model, benchmark, settings but the limit), the
value of every metric and the view (prompt tail, target, answer) of each document
evaluated so far, and what the lm-eval calls recorded (model, shots, task versions,
generation settings). The evaluator keeps it in the cache (folder ``documents/``), adds
each call's documents, asks lm-eval (``simple_evaluate(samples=…)``) only for the
documents it lacks, and :func:`assemble` turns any set of documents into the
:class:`~.scores.BenchmarkEvaluation` a comparison reads: per item the per-document
values, the mean (for a benchmark's ``overall`` over subjects, the size-weighted mean of
the subjects' means, which is lm-eval's group score on complete data and the stratified
estimate on a share of each subject) and lm-eval's stderr formula. Valid only where a
document's prompt does not depend on which documents are evaluated with it
(``lmeval.sizes.shots_depend_on_order``). Pure: no lm-eval, no model.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..config.benchmarks import OVERALL, Benchmark
from ..errors import QwencmpError
from ..files import json_safe
from .health import generation_warnings
from .scores import BenchmarkEvaluation, ItemScore, document_key, document_values, documents

DOCUMENTS_FORMAT = 1
META_KEYS = ("model", "n_shot", "versions", "gen_kwargs", "lm_eval_version", "config", "higher_is_better")
Wanted = Mapping[str, Sequence[int]]  # leaf task -> document indices


@dataclass(frozen=True)
class StoredDocuments:
    """Each evaluated document's metric values and view, and what the lm-eval calls recorded."""

    values: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    views: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    meta: Mapping[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.values)

    def missing(self, wanted: Wanted) -> dict[str, tuple[int, ...]]:
        """Leaf task -> the wanted document indices not stored (tasks with none left out)."""
        out = {}
        for task, indices in wanted.items():
            lacking = tuple(sorted(i for i in indices if document_key(task, i) not in self.values))
            if lacking:
                out[task] = lacking
        return out

    def with_output(self, benchmark: Benchmark, output: Mapping[str, Any], model: Mapping[str, Any],
                    lm_eval_version: str) -> "StoredDocuments":
        """These documents plus one lm-eval call's (its n-shot and versions joined to the recorded ones)."""
        meta = dict(self.meta)
        meta.update(model=dict(model), lm_eval_version=lm_eval_version,
                    config=json_safe(output.get("config") or {}),
                    gen_kwargs=json_safe((output.get("config") or {}).get("gen_kwargs")) if benchmark.generation else None)
        for key, name in (("n_shot", "n-shot"), ("versions", "versions"), ("higher_is_better", "higher_is_better")):
            meta[key] = {**dict(meta.get(key) or {}), **json_safe(output.get(name) or {})}
        return StoredDocuments({**self.values, **document_values(benchmark, output)},
                               {**self.views, **documents(benchmark, output)}, meta)

    def to_payload(self, benchmark: str, side: str, key_parts: Mapping[str, Any]) -> dict[str, Any]:
        return {"format": DOCUMENTS_FORMAT, "benchmark": benchmark, "side": side, "key_parts": json_safe(key_parts),
                "values": dict(self.values), "views": dict(self.views), "meta": dict(self.meta)}

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any] | None) -> "StoredDocuments":
        """The stored documents, or none (an absent, older or unreadable entry)."""
        if not payload or payload.get("format") != DOCUMENTS_FORMAT:
            return cls()
        try:
            return cls(dict(payload["values"]), dict(payload["views"]), dict(payload["meta"]))
        except (KeyError, TypeError, ValueError):
            return cls()

    @classmethod
    def from_evaluation(cls, benchmark: Benchmark, evaluation: BenchmarkEvaluation) -> "StoredDocuments":
        """The documents of a whole evaluation (a cache entry, perhaps imported from another machine)."""
        leaf = set(benchmark.leaf_tasks)
        values: dict[str, dict[str, float]] = {}
        for score in evaluation.items:
            if score.task in leaf:
                for key, value in zip(score.doc_keys, score.per_doc):
                    values.setdefault(key, {})[score.metric] = value
        results = evaluation.lm_eval_results or {}
        meta = {"model": dict(evaluation.model), "n_shot": dict(evaluation.n_shot), "versions": dict(evaluation.versions),
                "gen_kwargs": evaluation.gen_kwargs, "lm_eval_version": evaluation.lm_eval_version,
                "config": dict(results.get("config") or {}), "higher_is_better": dict(results.get("higher_is_better") or {})}
        return cls(values, dict(evaluation.documents), meta)

    def joined(self, other: "StoredDocuments") -> "StoredDocuments":
        """Both sets of documents (``other``'s values win; the recorded metadata merged)."""
        meta = {**dict(other.meta), **dict(self.meta)}
        for key in ("n_shot", "versions", "higher_is_better"):
            meta[key] = {**dict(other.meta.get(key) or {}), **dict(self.meta.get(key) or {})}
        return StoredDocuments({**self.values, **other.values}, {**self.views, **other.views}, meta)


def wanted_documents(sizes: Mapping[str, int], limit: int | None) -> dict[str, tuple[int, ...]]:
    """Leaf task -> the documents a run evaluates: all of them, or the first ``limit`` (lm-eval's ``--limit``)."""
    return {task: tuple(range(size if limit is None else min(size, limit))) for task, size in sizes.items()}


def _stderr(values: np.ndarray) -> float | None:
    """lm-eval's ``mean_stderr``: the sample standard deviation over √n."""
    return float(np.std(values, ddof=1) / math.sqrt(values.size)) if values.size > 1 else None


def _item_values(stored: StoredDocuments, task: str, indices: Sequence[int], metric: str, benchmark: Benchmark):
    keys = [document_key(task, i) for i in sorted(indices)]
    try:
        return keys, [float(stored.values[k][metric]) for k in keys]
    except KeyError:
        raise QwencmpError(
            f"lm-eval logged no {metric!r} per document for task {task!r} of benchmark {benchmark.name!r}; "
            "fix the benchmark's metrics."
        ) from None


def item_scores(benchmark: Benchmark, stored: StoredDocuments, wanted: Wanted,
                totals: Mapping[str, int]) -> tuple[ItemScore, ...]:
    """Every item's score on the ``wanted`` documents; ``totals``: each leaf task's documents in the run
    (the weights of the size-weighted ``overall``)."""
    scores = []
    for item in benchmark.items:
        if item.id.split(":")[0] == OVERALL and benchmark.subjects:
            keys: list[str] = []
            values: list[float] = []
            means, weights, variances, sizes, stderrs = [], [], [], [], []
            for task in benchmark.leaf_tasks:
                k, v = _item_values(stored, task, wanted.get(task, ()), item.metric, benchmark)
                if not v:
                    continue
                keys += k
                values += v
                arr = np.asarray(v)
                means.append(arr.mean())
                weights.append(totals[task])
                variances.append(arr.var(ddof=1) if arr.size > 1 else 0.0)
                sizes.append(arr.size)
                stderrs.append(_stderr(arr) or 0.0)
            w = np.asarray(weights, float) / max(sum(weights), 1)
            value = float(np.dot(w, means)) if means else float("nan")
            complete = all(n == t for n, t in zip(sizes, weights))
            if complete and sum(sizes) > len(sizes):  # lm-eval's pooled_sample_stderr, as it reports the group
                pooled = sum((n - 1) * s * s * n for n, s in zip(sizes, stderrs)) / (sum(sizes) - len(sizes))
                stderr = math.sqrt(pooled / sum(sizes))
            else:  # the stratified estimate's standard error
                stderr = math.sqrt(sum(wi * wi * var / n for wi, var, n in zip(w, variances, sizes))) if sizes else None
        else:
            keys, values = _item_values(stored, item.task, wanted.get(item.task, ()), item.metric, benchmark)
            value = float(np.mean(values)) if values else float("nan")
            stderr = _stderr(np.asarray(values))
        scores.append(ItemScore(item.id, item.task, item.metric, value, stderr, len(values), tuple(keys), tuple(values)))
    return tuple(scores)


def assemble(benchmark: Benchmark, side: str, key: str, stored: StoredDocuments, wanted: Wanted,
             totals: Mapping[str, int], *, group_versions: Mapping[str, str], wall_seconds: float,
             note: str) -> BenchmarkEvaluation:
    """The evaluation of the ``wanted`` documents from stored ones. Its ``lm_eval_results`` is lm-eval's results
    shape computed from the per-document values, with ``qwencmp`` saying so (``note``)."""
    items = item_scores(benchmark, stored, wanted, totals)
    meta = stored.meta
    views = {document_key(t, i): stored.views[document_key(t, i)] for t, ix in wanted.items() for i in ix
             if document_key(t, i) in stored.views}
    n_shot = {t: v for t, v in dict(meta.get("n_shot") or {}).items() if t in benchmark.leaf_tasks}
    versions = {**{t: v for t, v in dict(meta.get("versions") or {}).items() if t in benchmark.leaf_tasks},
                **dict(group_versions)}
    results: dict[str, dict[str, Any]] = {}
    for score in items:
        entry = results.setdefault(score.task, {"alias": score.task})
        entry[f"{score.metric},none"] = score.value
        entry[f"{score.metric}_stderr,none"] = "N/A" if score.stderr is None else score.stderr
    rows = {task: [{"filtered_resps": [views.get(document_key(task, i), {}).get("answer", "")]} for i in ix]
            for task, ix in wanted.items()}
    model = dict(meta.get("model") or {})
    return BenchmarkEvaluation(
        benchmark=benchmark.name,
        side=side,
        key=key,
        model=model,
        items=items,
        n_shot=n_shot,
        versions=versions,
        gen_kwargs=meta.get("gen_kwargs") if benchmark.generation else None,
        lm_eval_version=str(meta.get("lm_eval_version") or ""),
        wall_seconds=wall_seconds,
        documents=views,
        lm_eval_results={
            "results": results,
            "n-shot": n_shot,
            "n-samples": {t: {"original": totals.get(t, len(ix)), "effective": len(ix)} for t, ix in wanted.items()},
            "versions": versions,
            "higher_is_better": dict(meta.get("higher_is_better") or {}),
            "config": dict(meta.get("config") or {}),
            "qwencmp": note,
        },
        warnings=generation_warnings(benchmark, {"samples": rows}, str(model.get("label", side)),
                                     str(model.get("dtype", ""))),
    )
