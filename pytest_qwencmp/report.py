"""Rendering comparison records as the study's tables: terminal text, HTML, Markdown.

Input is plain data — the JSON-able records each item attaches to its test
report (``ItemComparison.to_record``) and the run's settings — so the same
tables render on the xdist controller, in pytest-html and in CI summaries.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Iterable, Mapping, Sequence

from .model_options import describe_setup

Record = Mapping[str, Any]


def group_by_benchmark(records: Iterable[Record]) -> "OrderedDict[str, list[Record]]":
    groups: OrderedDict[str, list[Record]] = OrderedDict()
    for record in sorted(records, key=lambda r: (r.get("benchmark_order", 0), r.get("order", 0))):
        groups.setdefault(record["benchmark"], []).append(record)
    return groups


def _score(value: float | None, stderr: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:.2f} ± {stderr:.2f}" if stderr is not None else f"{value:.2f}"


def _ci(record: Record) -> str:
    if record.get("ci_low") is None:
        return "—"
    return f"[{record['ci_low']:+.2f}, {record['ci_high']:+.2f}]"


def _p(record: Record) -> str:
    p = record.get("adjusted_p")
    if p is None:
        return "—"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def _verdict(record: Record) -> str:
    outcome = "PASS" if record["passed"] else "FAIL"
    significance = record.get("significance") or ""
    return f"{outcome} · {significance}" if significance and significance != "n/a" else outcome


HEADERS = ("Task", "A", "B", "Improvement", "95% CI (paired)", "p adj.", "Verdict")


def table_rows(records: Sequence[Record]) -> list[tuple[str, ...]]:
    return [
        (
            str(r["item"]),
            _score(r["a"], r.get("a_stderr")),
            _score(r["b"], r.get("b_stderr")),
            f"{r['delta']:+.2f}",
            _ci(r),
            _p(r),
            _verdict(r),
        )
        for r in records
    ]


def _headers(records: Sequence[Record]) -> tuple[str, ...]:
    first = records[0]
    metric = first.get("metric", "acc")
    return (
        "Task",
        f"{first['model_a']} {metric} ± stderr",
        f"{first['model_b']} {metric} ± stderr",
        "Improvement",
        "95% CI (paired)",
        "p adj.",
        "Verdict",
    )


def counts(records: Sequence[Record]) -> dict[str, int]:
    result = {"passed": 0, "failed": 0, "better": 0, "worse": 0, "undetermined": 0}
    for r in records:
        result["passed" if r["passed"] else "failed"] += 1
        sig = r.get("significance")
        if sig == "better":
            result["better"] += 1
        elif sig == "worse":
            result["worse"] += 1
        else:
            result["undetermined"] += 1
    return result


def text_tables(records: Iterable[Record], width: int = 120) -> list[str]:
    lines: list[str] = []
    for benchmark, rows in group_by_benchmark(records).items():
        headers = _headers(rows)
        body = table_rows(rows)
        widths = [max(len(h), *(len(r[i]) for r in body)) for i, h in enumerate(headers)]
        c = counts(rows)
        lines.append(
            f"{rows[0].get('benchmark_title', benchmark)}: {len(rows)} items, {c['passed']} passed, {c['failed']} failed; "
            f"B significantly better on {c['better']}, worse on {c['worse']}, undetermined on {c['undetermined']}"
        )
        lines.append("  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip())
        lines.append("  ".join("-" * w for w in widths))
        for row in body:
            lines.append("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
        lines.append("")
    return lines


def settings_lines(run: Mapping[str, Any]) -> list[str]:
    """The run's settings as 'key: value' lines (models, backend, dtype, shots, generation, versions)."""
    lines = []
    for side in ("a", "b"):
        model = run.get("models", {}).get(side)
        if not model:
            continue
        revision = f" @ {model['revision']}" if model.get("revision") else ""
        params = f", {model['parameters']:,} parameters" if model.get("parameters") else ""
        split = f", tensor parallel x{model['tensor_parallel']}" if (model.get("tensor_parallel") or 1) > 1 else ""
        lines.append(
            f"model {side.upper()}: {model['name_or_path']}{revision} — {model['backend']} backend, "
            f"{model['dtype']} on {model['device']}{split}{params}"
        )
        if model.get("notice"):
            lines.append(f"  note: {model['notice']}")
        for name, text in describe_setup(model.get("setup") or {}):  # adapter, chat template, model args
            lines.append(f"  {name}: {text}")
    for key in ("num_fewshot", "limit", "generation", "seed", "data", "lm_eval_version", "correction", "code_sandbox"):
        if key in run and run[key] not in (None, {}, ""):
            value = run[key]
            if isinstance(value, Mapping):
                value = ", ".join(f"{k}={v}" for k, v in value.items())
            lines.append(f"{key.replace('_', ' ')}: {value}")
    return lines


def html_summary(records: Iterable[Record], run: Mapping[str, Any], stats: Mapping[str, Any] | None = None) -> str:
    """One self-contained HTML block for pytest-html: headline, charts and a table per benchmark.

    Rendered by ``html_report.render_summary`` (inline CSS, SVG and JS; no external resources).
    """
    from .html_report import render_summary

    return render_summary(records, run, stats)


def markdown_tables(records: Iterable[Record], run: Mapping[str, Any]) -> str:
    """GitHub-flavoured Markdown: settings, then one table per benchmark."""
    lines = ["## Model comparison", ""]
    lines += [f"- {s}" for s in settings_lines(run)]
    lines.append("")
    for benchmark, rows in group_by_benchmark(records).items():
        headers = _headers(rows)
        lines.append(f"### {rows[0].get('benchmark_title', benchmark)}")
        lines.append("")
        lines.append("| " + " | ".join(headers) + " |")
        lines.append("|" + "|".join([":---"] + ["---:"] * (len(headers) - 1)) + "|")
        for row in table_rows(rows):
            lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |")
        lines.append("")
    return "\n".join(lines)


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
        benchmarks[name] = {"title": group[0].get("benchmark_title", name), **counts(group)}
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
