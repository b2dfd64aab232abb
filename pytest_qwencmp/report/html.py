"""The comparison block at the top of the pytest-html report, and the standalone page ``merge --html`` writes.

:func:`html_summary` returns one self-contained HTML fragment — CSS and a few
lines of vanilla JS inlined from ``assets/`` (report.css, report.js), SVG
charts from ``charts``; no external resource of any kind — that answers "is B
really better than A?" at a glance:

1. a headline: per benchmark the overall score A → B with the paired
   difference and its CI, how many items of the family got significantly
   better / worse / stayed undetermined, how many expectations passed and how
   many items are underpowered, the models (revisions, backends, dtypes,
   parameter counts and the B/A parameter ratio beside the gains), the run
   settings and timings;
2. per benchmark: what the family is and what "no detectable difference"
   means at its sizes (``text`` wording), a warning when a generation
   benchmark scores near zero, a histogram of Δ across subjects and a
   dumbbell chart with the adjusted CI of Δ, and the comparison table — per
   item the unadjusted CI with its p, the adjusted CI with its adjusted p, the
   MDE and the verdict; sortable, failed rows highlighted, the overall row
   pinned, each row expandable to its power notes and the documents where A
   and B disagree.

The markup lives in ``templates/`` (Jinja2, autoescaped: every value is
escaped with ``html.escape`` — model output is hostile input — unless it is
markup this package made, the charts and the inlined assets). Each template
line is stripped of its indentation and joined to the next, so the templates
read as indented HTML and the page carries no whitespace between tags. This
module turns records (``ItemComparison.to_record``), the run's ``describe()``
and the session's stats into what the templates show; every count comes from
``formatting.counts``.
"""

from __future__ import annotations

import html
import re
from collections import OrderedDict
from functools import lru_cache
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from jinja2 import BaseLoader, Environment, StrictUndefined, TemplateNotFound
from markupsafe import Markup

from ..config.sides import describe_setup
from ..stats.planning import impossible_text
from ..stats.power import level_phrase
from .charts import COLOR_A, COLOR_B, dumbbell_svg, histogram_svg
from .formatting import (
    Record,
    adjustment_phrase,
    batch_size_text,
    expectations_text,
    verdict_text,
    ci_text,
    confidence,
    counts,
    fmt,
    fmt_mde,
    group_by_benchmark,
    is_overall,
    num,
    p_cell,
    paired_test_name,
    score_cell,
    sequential_sentence,
    sequential_tag,
)
from .text import (
    adjusted_header,
    baseline_cell,
    baseline_name,
    family_sentence,
    impossible_notes,
    noise_sentence,
    overall_sentence,
    sampling_sentence,
)

# Below this size a model is a toy (the demo's); the Qwen2.5 yardstick is shown only for real language models.
REAL_SCALE_PARAMETERS = 100_000_000
NEAR_ZERO_POINTS = 2.0
ASSETS = Path(__file__).with_name("assets")
TEMPLATES = Path(__file__).with_name("templates")


# --------------------------------------------------------------------------- the templates


class _CompactLoader(BaseLoader):
    """Templates from ``templates/``, each line stripped of its indentation and joined to the next."""

    def get_source(self, environment: Environment, template: str):
        path = TEMPLATES / template
        try:
            text = path.read_text(encoding="utf-8")
        except OSError:
            raise TemplateNotFound(template) from None
        return "".join(line.lstrip() for line in text.splitlines()), str(path), lambda: True


def _escaped(value: Any) -> Any:
    """Every value a template prints: markup this package made as it is, anything else through ``html.escape``."""
    if isinstance(value, Markup):
        return value
    return Markup(html.escape("" if value is None else str(value), quote=True))


@lru_cache(maxsize=1)
def _templates() -> Environment:
    """The templates' environment, made on first use."""
    env = Environment(loader=_CompactLoader(), autoescape=True, finalize=_escaped, undefined=StrictUndefined)
    env.globals.update(
        COLOR_A=COLOR_A, COLOR_B=COLOR_B, adjustment_phrase=adjustment_phrase, baseline_cell=baseline_cell,
        ci_text=ci_text, confidence=confidence, disagree=_disagree, fmt=fmt, fmt_mde=fmt_mde, human_count=human_count,
        is_overall=is_overall, near_zero=_near_zero, num=num, p_cell=p_cell, paired_test_name=paired_test_name, impossible_text=impossible_text,
        level_phrase=level_phrase,
        plural=_plural, score_cell=score_cell,
        side_class=_side_class, sign_class=_sign_class, unique_warnings=_unique_warnings, verdict_ci=_verdict_ci,
        verdict_text=verdict_text, breakable=_breakable, score_html=_score_html, ci_html=_ci_html,
        sequential_tag=sequential_tag,
    )
    return env


# --------------------------------------------------------------------------- what the templates call


def _sign_class(value: Any) -> str:
    number = num(value)
    if number is None or number == 0:
        return ""
    return "qc-pos" if number > 0 else "qc-neg"


def human_count(n: Any) -> str:
    """1543714304 → '1.54B'; None → '—'."""
    number = num(n)
    if number is None:
        return "—"
    for unit, size in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(number) >= size:
            return f"{number / size:.3g}{unit}"
    return f"{number:.0f}"


def parameter_ratio(run: Mapping[str, Any]) -> float | None:
    """B's parameter count over A's, when both are known."""
    models = run.get("models") or {}
    a = num((models.get("a") or {}).get("parameters"))
    b = num((models.get("b") or {}).get("parameters"))
    if not a or b is None:
        return None
    return b / a


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.1f} s"
    minutes, sec = divmod(int(round(seconds)), 60)
    if minutes < 120:
        return f"{minutes} min {sec:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def _breakable(text: Any) -> Markup:
    """Text that may wrap after each ``_`` (``high_school_government_and_politics``) in a narrow column."""
    return Markup(html.escape("" if text is None else str(text), quote=True).replace("_", "_<wbr>"))


def _score_html(value: Any, stderr: Any) -> Markup:
    """``50.00 ± 18.90``, the ``± stderr`` part free to wrap onto a second line in a narrow column."""
    cell = score_cell(value, stderr)
    head, sep, tail = cell.partition(" ± ")
    if not sep:
        return _escaped(cell)
    return Markup(f'{html.escape(head)} <span class="qc-se">± {html.escape(tail)}</span>')


def _ci_html(record: Record, prefix: str = "") -> Markup:
    """``[-2.73, +62.50]``: on one line, except in a narrow window (CSS), where it may wrap after its comma."""
    return Markup(f'<span class="qc-ci">{html.escape(ci_text(record, prefix))}</span>')


def _verdict_ci(record: Record) -> str:
    """The interval the verdict comes from: adjusted for items of a family, unadjusted for overall."""
    if is_overall(record) or num(record.get("adjusted_ci_low")) is None:
        return ci_text(record)
    return ci_text(record, "adjusted_")


def _side_class(mine: float | None, theirs: float | None) -> str:
    if mine is None or theirs is None or mine == theirs:
        return ""
    return " qc-win" if mine > theirs else " qc-lose"


def _disagree(examples: Sequence[Mapping[str, Any]]) -> bool:
    return any(num(e.get("a_score")) != num(e.get("b_score")) for e in examples)


def _unique_warnings(rows: Sequence[Record]) -> list[str]:
    return list(dict.fromkeys(str(w) for r in rows for w in (r.get("warnings") or [])))


# --------------------------------------------------------------------------- generation benchmarks scoring near zero


def is_generation(record: Record) -> bool:
    """Whether the item is a generation metric (the model writes the answer, e.g. MBPP's pass@1)."""
    if "generation" in record:
        return bool(record.get("generation"))
    # older records carry no flag: pass@k (MBPP, HumanEval) is only ever a generation metric
    return any(str(record.get(key, "")).startswith(("pass@", "pass_at_")) for key in ("metric", "item"))


def _near_zero(record: Record, side: str) -> bool:
    return is_generation(record) and (num(record.get(side)) or 0.0) <= NEAR_ZERO_POINTS


def near_zero_sides(rows: Sequence[Record]) -> list[tuple[str, Record]]:
    """(side, record) for each generation item where a model scores ≤ NEAR_ZERO_POINTS."""
    found = []
    for r in rows:
        if not is_generation(r):
            continue
        for side in ("a", "b"):
            value = num(r.get(side))
            if value is not None and value <= NEAR_ZERO_POINTS:
                found.append((side, r))
    return found


def _likely_causes(answers: Sequence[str], shots: Any) -> list[str]:
    """Why a model's generations score near zero, read from its own answers (``details.html`` words each cause)."""
    causes = []
    texts = [a for a in answers if isinstance(a, str)]
    if texts and all(not t.strip() for t in texts):
        causes.append("empty")
    if any("```" in t for t in texts):
        causes.append("fenced")
    if any(len(t) >= 400 or t.count("def ") > 1 or "[BEGIN]" in t or "You are an expert" in t for t in texts):
        causes.append("no_stop")
    if num(shots) == 0:
        causes.append("zero_shot")
    return causes or ["format"]


def _generation_warnings(benchmark: str, rows: Sequence[Record], run: Mapping[str, Any], label_a: str, label_b: str) -> list[dict[str, Any]]:
    shots = (run.get("num_fewshot") or {}).get(benchmark)
    warnings = []
    for side, record in near_zero_sides(rows):
        examples = [e for e in (record.get("examples") or []) if isinstance(e, Mapping)]
        warnings.append({
            "side": side, "other": "b" if side == "a" else "a", "record": record, "examples": examples,
            "label": label_a if side == "a" else label_b, "other_label": label_b if side == "a" else label_a,
            "causes": _likely_causes([str(e.get(f"{side}_answer", "")) for e in examples], shots),
            "shots": shots, "shots_unset": num(shots) in (None, 0), "study_shots": num(shots) == 2,
        })
    return warnings


# --------------------------------------------------------------------------- one benchmark


def _slugs(names: Sequence[str]) -> dict[str, str]:
    """Benchmark name → an id-safe slug, unique within the page."""
    seen: set[str] = set()
    result = {}
    for name in names:
        base = re.sub(r"[^A-Za-z0-9_-]+", "-", name).strip("-") or "benchmark"
        slug, n = base, 2
        while slug in seen:
            slug, n = f"{base}-{n}", n + 1
        seen.add(slug)
        result[name] = slug
    return result


def subject_records(rows: Sequence[Record]) -> list[Record]:
    """The items of the benchmark's family: not an aggregate (for single-task benchmarks: all of them)."""
    return [r for r in rows if not is_overall(r)]


def headline_records(rows: Sequence[Record]) -> list[Record]:
    """What the headline shows: the overall item(s); for single-task benchmarks each metric."""
    overall = [r for r in rows if is_overall(r)]
    if overall:
        return overall
    return list(rows) if len(rows) <= 4 else []


def _labels(rows: Sequence[Record], run: Mapping[str, Any]) -> tuple[str, str]:
    models = run.get("models") or {}
    first = rows[0] if rows else {}
    a = first.get("model_a") or (models.get("a") or {}).get("label") or "A"
    b = first.get("model_b") or (models.get("b") or {}).get("label") or "B"
    return str(a), str(b)


def _chart_notes(subjects: Sequence[Record]) -> dict[str, Any] | None:
    deltas = sorted(num(r.get("delta")) for r in subjects if num(r.get("delta")) is not None)
    if not deltas:
        return None
    middle = len(deltas) // 2
    by_delta = sorted(subjects, key=lambda r: num(r.get("delta")) or 0.0)
    return {
        "improved": sum(1 for d in deltas if d > 0), "declined": sum(1 for d in deltas if d < 0), "count": len(deltas),
        "median": deltas[middle] if len(deltas) % 2 else (deltas[middle - 1] + deltas[middle]) / 2,
        "mean": sum(deltas) / len(deltas), "counts": counts(subjects), "best": by_delta[-1], "worst": by_delta[0],
    }


def _charts(rows: Sequence[Record], slug: str, label_a: str, label_b: str) -> list[dict[str, Any]]:
    """Per metric with at least three subjects: the histogram of Δ, its notes, and the dumbbell chart."""
    overall_by_metric = {str(r.get("metric")): r for r in rows if is_overall(r)}
    by_metric: OrderedDict[str, list[Record]] = OrderedDict()
    for r in subject_records(rows):
        by_metric.setdefault(str(r.get("metric", "")), []).append(r)
    charts = []
    for metric, group in by_metric.items():
        if len(group) < 3:
            continue
        suffix = "" if len(by_metric) == 1 else "-" + re.sub(r"[^A-Za-z0-9_-]+", "-", metric)
        overall = overall_by_metric.get(metric)
        charts.append({
            "histogram": Markup(histogram_svg(group, f"qwencmp-{slug}{suffix}-hist", label_a, label_b, overall)),
            "notes": _chart_notes(group),
            "dumbbell": Markup(dumbbell_svg(group, label_a, label_b, f"qwencmp-{slug}{suffix}-dumbbell", overall, metric)),
        })
    return charts


def _table_heads(rows: Sequence[Record], label_a: str, label_b: str) -> list[tuple[str, str, bool]]:
    metrics = {str(r.get("metric", "acc")) for r in rows}
    shown_metric = (str(rows[0].get("metric", "acc")) if rows else "acc") if len(metrics) == 1 else "score"
    conf = f"{1 - float((rows[0].get('alpha') if rows else None) or 0.05):.0%}"
    compared_with = baseline_name(rows)
    return [  # (head, sort type, a column a narrow window leaves out: its value is in the row's details)
        ("Task", "text", False),
        (f"{label_a} {shown_metric} ± stderr", "num", False),
        (f"{label_b} {shown_metric} ± stderr", "num", False),
        ("Improvement", "num", False),
        (f"{conf} CI (paired)", "num", False),
        ("p", "num", True),
        (adjusted_header(rows) if rows else "adj. CI", "num", False),
        ("adj. p", "num", True),
        ("MDE", "num", True),
        *(((f"B − baseline {compared_with!r}", "num", False),) if compared_with else ()),
        ("Verdict and reason", "text", False),
    ]


def _section(benchmark: str, rows: Sequence[Record], slug: str, run: Mapping[str, Any]) -> dict[str, Any]:
    label_a, label_b = _labels(rows, run)
    shots = (run.get("num_fewshot") or {}).get(benchmark)
    return {
        "name": benchmark, "slug": slug, "rows": list(rows), "title": rows[0].get("benchmark_title", benchmark),
        "counts": counts(rows), "headline": headline_records(rows), "near_zero": bool(near_zero_sides(rows)),
        "kind": "subject" if any(is_overall(r) for r in rows) else "metric",
        "shots": "%d-shot" % int(num(shots)) if num(shots) is not None else "default shots",
        "family": family_sentence(rows), "overall": [overall_sentence(r) for r in rows if is_overall(r)],
        "noise": noise_sentence(rows), "sampling": sampling_sentence(rows), "warnings": _generation_warnings(benchmark, rows, run, label_a, label_b),
        "sequential": sequential_sentence(rows),
        "charts": _charts(rows, slug, label_a, label_b), "heads": _table_heads(rows, label_a, label_b),
        "ordered": [r for r in rows if is_overall(r)] + [r for r in rows if not is_overall(r)],
        "compared_with": baseline_name(rows),
    }


# --------------------------------------------------------------------------- the models and the run


def _model_rows(run: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    models = run.get("models") or {}
    a, b = models.get("a") or {}, models.get("b") or {}
    if not a and not b:
        return []

    def dtype(m: Mapping[str, Any]) -> str:
        actual, requested = m.get("dtype"), m.get("requested_dtype")
        if requested and actual and requested != actual:
            return f"{actual} ({requested} requested)"
        return str(actual or requested or "—")

    def params(m: Mapping[str, Any]) -> str:
        n = num(m.get("parameters"))
        return "—" if n is None else f"{human_count(n)} ({int(n):,})"

    rows = [
        ("model", lambda m: str(m.get("name_or_path") or "—")),
        ("revision", lambda m: str(m.get("revision") or "(default branch)")),
        ("backend", lambda m: str(m.get("backend") or "—")),
        ("dtype", dtype),
        ("device", lambda m: str(m.get("device") or "—")),
        ("tensor parallel", lambda m: f"x{m['tensor_parallel']} (DeepSpeed AutoTP)" if (m.get("tensor_parallel") or 1) > 1 else "no"),
        ("batch size", lambda m: batch_size_text(m) or "—"),
        ("parameters", params),
    ]
    out = [(key, get(a), get(b)) for key, get in rows]
    setups = [dict(describe_setup(m.get("setup") or {})) for m in (a, b)]  # adapter, chat template, model args
    out += [(key, setups[0].get(key, "—"), setups[1].get(key, "—")) for key in dict.fromkeys([*setups[0], *setups[1]])]
    return out


def _settings(run: Mapping[str, Any], stats: Mapping[str, Any] | None) -> list[tuple[str, Any, bool]]:
    """(label, value, smoke run?) per setting shown, then the wall time and the work done."""
    items = []
    details = "code_sandbox_details" if run.get("code_sandbox_details") else "code_sandbox"
    for key in ("num_fewshot", "limit", "generation", "samples", "seed", "correction", "sequential", "expectations", "data",
                "lm_eval_version", "machine", details, "baseline"):
        if key not in run or run[key] in (None, {}, ""):
            continue
        value = run[key]
        if key == "expectations":
            value = expectations_text(value)
        elif isinstance(value, Mapping):
            value = ", ".join(f"{k}={v}" for k, v in value.items())
        label = {"num_fewshot": "few-shot", "samples": "samples per problem", "lm_eval_version": "lm-eval", "correction": "p correction",
                 "code_sandbox": "code sandbox", "code_sandbox_details": "code sandbox"}.get(key, key.replace("_", " "))
        items.append((label, value, key == "limit"))
    if stats:
        wall = num(stats.get("wall_seconds"))
        items.append(("wall time", "—" if wall is None else _duration(wall), False))
        evaluations = stats.get("evaluations")
        if evaluations is not None:
            items.append(("work", f"{stats.get('model_loads', 0)} model load(s), {evaluations} evaluation(s) "
                          f"({_duration(num(stats.get('evaluation_seconds')) or 0.0)}), {stats.get('cache_hits', 0)} "
                          "cached evaluation(s) reused", False))
    return items


def _asset(name: str) -> Markup:
    """A file of ``assets/`` (package data), inlined into the page."""
    return Markup((ASSETS / name).read_text(encoding="utf-8"))


# --------------------------------------------------------------------------- the block and the page


def render_summary(records: Iterable[Record], run: Mapping[str, Any] | None = None,
                   stats: Mapping[str, Any] | None = None) -> str:
    """The whole block: headline, models and settings, then a section per benchmark."""
    run = run or {}
    rows = list(records)
    groups = group_by_benchmark(rows)
    slugs = _slugs(list(groups))
    label_a, label_b = _labels(rows, run)
    failed = [r for r in rows if not r.get("passed")]
    models = run.get("models") or {}
    pa, pb = (models.get("a") or {}).get("parameters"), (models.get("b") or {}).get("parameters")
    return _templates().get_template("summary.html").render(
        css=_asset("report.css"), js=_asset("report.js"), label_a=label_a, label_b=label_b, rows=rows, failed=failed,
        failed_names=", ".join(f"{r.get('benchmark')}[{r.get('item')}]" for r in failed[:6]) + (" …" if len(failed) > 6 else ""),
        sections=[_section(name, group, slugs[name], run) for name, group in groups.items()],
        model_rows=_model_rows(run), settings=_settings(run, stats), impossible=impossible_notes(rows),
        notices=[(label, notice) for label, notice in ((label_a, (models.get("a") or {}).get("notice")),
                                                       (label_b, (models.get("b") or {}).get("notice"))) if notice],
        ratio=parameter_ratio(run), parameters_a=pa, parameters_b=pb,
        real_scale=min(num(pa) or 0, num(pb) or 0) >= REAL_SCALE_PARAMETERS,
    )


def html_summary(records: Iterable[Record], run: Mapping[str, Any], stats: Mapping[str, Any] | None = None) -> str:
    """One self-contained HTML block for pytest-html: headline, charts and a table per benchmark (inline CSS, SVG, JS)."""
    return render_summary(records, run, stats)


def html_page(records: Iterable[Record], run: Mapping[str, Any], stats: Mapping[str, Any] | None = None,
              title: str = "Model comparison") -> str:
    """A standalone HTML page around the same summary block the pytest-html report carries."""
    return _templates().get_template("page.html").render(title=title, summary=Markup(html_summary(records, run, stats)))
