"""The ``--qwencmp-json`` results document, records in table order, and several processes' counters as one."""

from __future__ import annotations

from typing import Any, Iterable, Mapping, Sequence

from .formatting import Record, counts, group_by_benchmark, is_overall, sequential_account
from .text import impossible_notes, sampling_sentence


RESULTS_SCHEMA_VERSION = 1


def results_document(
    records: Iterable[Record],
    run: Mapping[str, Any],
    lm_eval_results: Mapping[str, Mapping[str, Any]],
    stats: Mapping[str, Any],
) -> dict[str, Any]:
    """The ``--qwencmp-json`` document (schema: ``results.schema.json`` beside this module).

    ``models.<side>.lm_eval`` holds, per benchmark, lm-eval's own results object
    (``results``, ``groups``, ``n-shot``, ``n-samples``, ``versions``,
    ``higher_is_better``, ``config``), so tools that read lm-eval output read it.
    """
    rows = list(records)
    benchmarks = {}
    for name, group in group_by_benchmark(rows).items():
        family = [r for r in group if not is_overall(r)]
        correction = family[0].get("correction", "none") if len(family) > 1 else "none"
        benchmarks[name] = {"title": group[0].get("benchmark_title", name), **counts(group), "correction": correction,
                            "sampling_note": sampling_sentence(group) or None, "impossible": impossible_notes(group)}
        account = sequential_account(group)
        if account:  # --sequential: documents evaluated of the total, looks, why it stopped, the method
            benchmarks[name]["sequential"] = dict(account)
    models: dict[str, Any] = {}
    for side in ("a", "b"):
        models[side] = {
            **dict(run.get("models", {}).get(side, {})),
            "lm_eval": {name: payload.get(side, {}) for name, payload in lm_eval_results.items()},
        }
    comparisons = [
        {k: v for k, v in r.items() if k not in ("order", "benchmark_order")} for r in sorted(
            rows, key=lambda r: (r.get("benchmark_order", 0), r.get("order", 0))
        )
    ]
    return {
        "schema_version": RESULTS_SCHEMA_VERSION,
        "settings": {k: v for k, v in run.items() if k != "models"},
        "models": models,
        "benchmarks": benchmarks,
        "comparisons": comparisons,
        "stats": dict(stats),
        "passed": all(r["passed"] for r in rows),
    }


def ordered_record(record: Mapping[str, Any], item_ids: Sequence[str], benchmark_names: Sequence[str]) -> dict[str, Any]:
    """``record`` with its place in the tables: ``order`` among its benchmark's items, ``benchmark_order`` in the registry."""
    return {**record, "order": list(item_ids).index(record["item"]), "benchmark_order": list(benchmark_names).index(record["benchmark"])}


_COUNTED = ("model_loads", "evaluations", "cache_hits", "evaluation_seconds")


def combine_stats(parts: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Several processes' (xdist workers') or jobs' (shards') stats as one: counts added, reuse listed."""
    total: dict[str, Any] = {key: 0 for key in _COUNTED}
    total.update(evaluated={}, reused={}, ignored=[], documents_evaluated={})
    for part in parts:
        for key in _COUNTED:
            total[key] = round(total[key] + (part.get(key) or 0), 2)
        for side, names in (part.get("evaluated") or {}).items():
            total["evaluated"].setdefault(side, []).extend(names)
        for side, by_benchmark in (part.get("reused") or {}).items():
            total["reused"].setdefault(side, {}).update(by_benchmark)
        total["ignored"] += list(part.get("ignored") or [])
        for side, count in (part.get("documents_evaluated") or {}).items():
            total["documents_evaluated"][side] = total["documents_evaluated"].get(side, 0) + count
    return total
