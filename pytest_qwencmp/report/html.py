"""The comparison block at the top of the pytest-html report.

``render_summary(records, run, stats)`` returns one self-contained HTML
fragment — CSS and a few lines of vanilla JS inlined from
``report_assets/`` (report.css, report.js), SVG charts from ``html_charts``;
no external resource of any kind — that answers "is B really better than A?"
at a glance:

1. a headline: per benchmark the overall score A → B with the paired
   difference and its CI, how many items of the family got significantly
   better / worse / stayed undetermined, how many expectations passed and how
   many items are underpowered, the models (revisions, backends, dtypes,
   parameter counts and the B/A parameter ratio beside the gains), the run
   settings and timings;
2. per benchmark: what the family is and what "no detectable difference"
   means at its sizes (``report.benchmark_lines`` wording), a warning when a
   generation benchmark scores near zero, a histogram of Δ across subjects and
   a dumbbell chart with the adjusted CI of Δ, and the comparison table —
   per item the unadjusted CI with its p, the adjusted CI with its adjusted p,
   the MDE and the verdict; sortable, failed rows highlighted, the overall row
   pinned, each row expandable to its power notes and the documents where A
   and B disagree (the warning boxes and those per-item details are rendered
   by ``html_examples``).

Every count comes from ``report.counts`` (the terminal, Markdown and JSON use
it too). Input is plain JSON-able data (records from
``ItemComparison.to_record``, the run's ``describe()``, the session's stats);
every string in it is escaped — model output is hostile input.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from html import escape
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from ..config.sides import describe_setup
from .charts import COLOR_A, COLOR_B, dumbbell_svg, histogram_svg, nice_ticks  # noqa: F401  (nice_ticks: re-exported)
from .examples import (
    NEAR_ZERO_POINTS,
    examples_html,
    generation_warning,
    health_warnings_html,
    is_generation,
    near_zero_sides,
)
from .formatting import Record, ci_text, counts, esc, fmt, fmt_mde, group_by_benchmark, is_overall, num, p_cell, score_cell
from .text import adjusted_header, baseline_cell, baseline_name, family_sentence, noise_sentence, overall_sentence

# Below this size a model is a toy (the demo's); the Qwen2.5 yardstick is shown only for real language models.
REAL_SCALE_PARAMETERS = 100_000_000
ASSETS = Path(__file__).with_name("assets")

# --------------------------------------------------------------------------- helpers


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


def _verdict_text(record: Record) -> str:
    outcome = "PASS" if record.get("passed") else "FAIL"
    significance = record.get("significance") or ""
    text = f"{outcome} · {significance}" if significance and significance != "n/a" else outcome
    return text + (" · underpowered" if record.get("underpowered") else "")


def _sig_badge(significance: Any) -> str:
    sig = str(significance or "n/a")
    cls = {"better": "qc-better", "worse": "qc-worse"}.get(sig, "qc-undet")
    mark = {"better": "▲", "worse": "▼"}.get(sig, "◆")
    text = {"better": "B better", "worse": "B worse", "no detectable difference": "no detectable difference"}.get(sig, sig)
    return f'<span class="qc-badge {cls}">{mark} {esc(text)}</span>'


# --------------------------------------------------------------------------- table


def _adjusted_cells(r: Record) -> list[str]:
    if is_overall(r):
        note = "tested alone: lm-eval's group score (size-weighted micro-average), unadjusted"
        return [f'<td data-v="" class="qc-muted" title="{esc(note)}">— (alone)</td>', '<td data-v="" class="qc-muted">—</td>']
    return [f'<td data-v="{fmt(r.get("adjusted_ci_low"), ".6f", "")}">{esc(ci_text(r, "adjusted_"))}</td>',
            f'<td data-v="{fmt(r.get("adjusted_p"), ".9g", "")}">{esc(p_cell(r.get("adjusted_p")))}</td>']


def comparison_table(rows: Sequence[Record], slug: str, label_a: str, label_b: str) -> str:
    metric = str(rows[0].get("metric", "acc")) if rows else "acc"
    metrics = {str(r.get("metric", "acc")) for r in rows}
    shown_metric = metric if len(metrics) == 1 else "score"
    conf = f"{1 - float((rows[0].get('alpha') if rows else None) or 0.05):.0%}"
    heads = [
        ("Task", "text"),
        (f"{label_a} {shown_metric} ± stderr", "num"),
        (f"{label_b} {shown_metric} ± stderr", "num"),
        ("Improvement", "num"),
        (f"{conf} CI (paired)", "num"),
        ("p", "num"),
        (adjusted_header(rows) if rows else "adj. CI", "num"),
        ("adj. p", "num"),
        ("MDE", "num"),
        *(((f"B − baseline {compared_with!r}", "num"),) if (compared_with := baseline_name(rows)) else ()),
        ("Verdict", "text"),
    ]
    ordered = [r for r in rows if is_overall(r)] + [r for r in rows if not is_overall(r)]
    out = [
        f'<div class="qc-table-tools"><button type="button" class="qc-btn" data-qc-expand="{slug}">expand all</button>'
        f'<button type="button" class="qc-btn" data-qc-collapse="{slug}">collapse all</button>'
        f'<span class="qc-muted">Click a column head to sort; click a task to see the documents where the models disagree.</span></div>',
        f'<table class="qc-table" id="qwencmp-{slug}" data-qc-table="{slug}"><thead><tr>',
    ]
    for i, (head, kind) in enumerate(heads):
        out.append(f'<th scope="col" class="qc-th" data-col="{i}" data-type="{kind}" aria-sort="none" tabindex="0">'
                   f'{esc(head)}<span class="qc-arrow" aria-hidden="true"></span></th>')
    out.append("</tr></thead><tbody>")
    for index, r in enumerate(ordered):
        detail_id = f"qwencmp-{slug}-d{index}"
        classes = ["qc-item", "qc-fail" if not r.get("passed") else "qc-ok"]
        if is_overall(r):
            classes.append("qc-overall")
        name = str(r.get("item"))
        title = esc("; ".join(str(x) for x in (r.get("failures") or r.get("checked") or [])))
        d = num(r.get("delta"))
        sig = r.get("significance")
        weak_cls = ' class="qc-weak"' if r.get("underpowered") else ""
        weak_badge = ' <span class="qc-weak">underpowered</span>' if r.get("underpowered") else ""
        cells = [
            f'<td data-v="{esc(name)}"><button type="button" class="qc-toggle" aria-expanded="false" aria-controls="{detail_id}">'
            f'<span class="qc-caret" aria-hidden="true"></span>{esc(name)}</button></td>',
            f'<td data-v="{fmt(r.get("a"), ".6f", "")}">{esc(score_cell(r.get("a"), r.get("a_stderr")))}</td>',
            f'<td data-v="{fmt(r.get("b"), ".6f", "")}">{esc(score_cell(r.get("b"), r.get("b_stderr")))}</td>',
            f'<td data-v="{fmt(d, ".6f", "")}" class="{_sign_class(d)}">{esc(fmt(d, "+.2f"))}</td>',
            f'<td data-v="{fmt(r.get("ci_low"), ".6f", "")}">{esc(ci_text(r))}</td>',
            f'<td data-v="{fmt(r.get("p_value"), ".9g", "")}">{esc(p_cell(r.get("p_value")))}</td>',
            *_adjusted_cells(r),
            f'<td data-v="{fmt(r.get("mde"), ".6f", "")}"{weak_cls}>{esc(fmt_mde(r))}</td>',
            *((f'<td data-v="{fmt((r.get("baseline") or {}).get("delta"), ".6f", "")}">{esc(baseline_cell(r))}</td>',) if compared_with else ()),
            f'<td data-v="{esc(_verdict_text(r))}" title="{title}"><span class="qc-outcome {"qc-o-fail" if not r.get("passed") else "qc-o-pass"}">'
            f'{"FAIL" if not r.get("passed") else "PASS"}</span> '
            f'{_sig_badge(sig) if sig and sig != "n/a" else ""}'
            f'{weak_badge}</td>',
        ]
        out.append(f'<tr class="{" ".join(classes)}" data-i="{index}">' + "".join(cells) + "</tr>")
        out.append(f'<tr class="qc-detail" id="{detail_id}" hidden><td colspan="{len(heads)}">{examples_html(r, label_a, label_b)}</td></tr>')
    out.append("</tbody></table>")
    return "".join(out)


# --------------------------------------------------------------------------- headline


def _model_rows(run: Mapping[str, Any], label_a: str, label_b: str) -> str:
    models = run.get("models") or {}
    a, b = models.get("a") or {}, models.get("b") or {}
    if not a and not b:
        return ""

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
        ("parameters", params),
    ]
    out = [f'<table class="qc-models"><thead><tr><th></th><th><span class="qc-dot" style="background:{COLOR_A}"></span>A · {esc(label_a)}</th>'
           f'<th><span class="qc-dot" style="background:{COLOR_B}"></span>B · {esc(label_b)}</th></tr></thead><tbody>']
    for key, get in rows:
        out.append(f"<tr><th scope=\"row\">{esc(key)}</th><td>{esc(get(a))}</td><td>{esc(get(b))}</td></tr>")
    setups = [dict(describe_setup(m.get("setup") or {})) for m in (a, b)]  # adapter, chat template, model args
    for key in dict.fromkeys([*setups[0], *setups[1]]):
        out.append(f"<tr><th scope=\"row\">{esc(key)}</th><td>{esc(setups[0].get(key, '—'))}</td><td>{esc(setups[1].get(key, '—'))}</td></tr>")
    notices = [(label_a, a.get("notice")), (label_b, b.get("notice"))]
    for label, notice in notices:
        if notice:
            out.append(f'<tr><th scope="row">note</th><td colspan="2">{esc(label)}: {esc(notice)}</td></tr>')
    out.append("</tbody></table>")
    return "".join(out)


def _settings_html(run: Mapping[str, Any], stats: Mapping[str, Any] | None) -> str:
    items = []
    details = "code_sandbox_details" if run.get("code_sandbox_details") else "code_sandbox"
    for key in ("num_fewshot", "limit", "generation", "seed", "correction", "data", "lm_eval_version", "machine", details, "baseline"):
        if key not in run or run[key] in (None, {}, ""):
            continue
        value = run[key]
        if isinstance(value, Mapping):
            value = ", ".join(f"{k}={v}" for k, v in value.items())
        label = {"num_fewshot": "few-shot", "lm_eval_version": "lm-eval", "correction": "p correction",
                 "code_sandbox": "code sandbox", "code_sandbox_details": "code sandbox"}.get(key, key.replace("_", " "))
        extra = ' <span class="qc-warn-inline">(smoke run: not comparable to full runs)</span>' if key == "limit" else ""
        items.append(f"<dt>{esc(label)}</dt><dd>{esc(value)}{extra}</dd>")
    if stats:
        wall = num(stats.get("wall_seconds"))
        items.append(f"<dt>wall time</dt><dd>{'—' if wall is None else _duration(wall)}</dd>")
        evaluations = stats.get("evaluations")
        if evaluations is not None:
            items.append(f"<dt>work</dt><dd>{esc(stats.get('model_loads', 0))} model load(s), {esc(evaluations)} evaluation(s) "
                         f"({_duration(num(stats.get('evaluation_seconds')) or 0.0)}), {esc(stats.get('cache_hits', 0))} cached evaluation(s) reused</dd>")
    if not items:
        return ""
    return '<dl class="qc-settings">' + "".join(items) + "</dl>"


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


def _verdict_ci(record: Record) -> str:
    """The interval the verdict comes from: adjusted for items of a family, unadjusted for overall."""
    if is_overall(record) or num(record.get("adjusted_ci_low")) is None:
        return ci_text(record)
    return ci_text(record, "adjusted_")


def _headline(groups: Mapping[str, list[Record]], slugs: Mapping[str, str], run: Mapping[str, Any],
              label_a: str, label_b: str) -> str:
    ratio = parameter_ratio(run)
    models = run.get("models") or {}
    pa, pb = (models.get("a") or {}).get("parameters"), (models.get("b") or {}).get("parameters")
    out = ['<table class="qc-headline"><thead><tr><th>Benchmark</th><th>Metric</th>'
           f'<th><span class="qc-dot" style="background:{COLOR_A}"></span>{esc(label_a)}</th>'
           f'<th><span class="qc-dot" style="background:{COLOR_B}"></span>{esc(label_b)}</th>'
           '<th>Improvement B − A</th><th title="the adjusted CI for items of a family, the unadjusted one for overall">'
           'CI behind the verdict</th><th>Verdict</th>'
           '<th>Significantly better / worse / undetermined (the family)</th><th>Expectations</th></tr></thead><tbody>']
    for benchmark, rows in groups.items():
        slug = slugs[benchmark]
        heads = headline_records(rows)
        c = counts(rows)
        title = rows[0].get("benchmark_title", benchmark)
        kind = "subject" if any(is_overall(r) for r in rows) else "metric"
        tallies = (f'<span class="qc-better">▲ {c["better"]}</span> / <span class="qc-worse">▼ {c["worse"]}</span> / '
                   f'<span class="qc-undet">◆ {c["undetermined"]}</span> <span class="qc-muted">of {_plural(c["family"], kind)}</span>')
        expectations = (f'<span class="qc-o-pass">{c["passed"]} passed</span>'
                        + (f', <span class="qc-o-fail">{c["failed"]} failed</span>' if c["failed"] else "")
                        + (f', <span class="qc-weak">{c["underpowered"]} underpowered</span>' if c["underpowered"] else ""))
        warn = ' <a class="qc-warn-chip" href="#qwencmp-sec-{0}">⚠ near-zero score</a>'.format(slug) if near_zero_sides(rows) else ""
        shown = heads or [None]
        for i, r in enumerate(shown):
            cells = []
            if i == 0:
                span = f' rowspan="{len(shown)}"' if len(shown) > 1 else ""
                cells.append(f'<th scope="row"{span}><a href="#qwencmp-sec-{slug}">{esc(title)}</a>{warn}</th>')
            if r is None:
                cells.append('<td colspan="6" class="qc-muted">no aggregate item</td>')
            else:
                d = num(r.get("delta"))
                gain = esc(fmt(d, "+.2f"))
                name = str(r.get("metric", "")) if is_overall(r) else str(r.get("item", ""))
                low = {side: is_generation(r) and (num(r.get(side)) or 0.0) <= NEAR_ZERO_POINTS for side in ("a", "b")}
                cells += [
                    f"<td>{esc(name)}</td>",
                    f'<td class="qc-num{" qc-near-zero" if low["a"] else ""}">{esc(score_cell(r.get("a"), r.get("a_stderr")))}</td>',
                    f'<td class="qc-num{" qc-near-zero" if low["b"] else ""}">{esc(score_cell(r.get("b"), r.get("b_stderr")))}</td>',
                    f'<td class="qc-num qc-gain {_sign_class(d)}">{gain}</td>',
                    f'<td class="qc-num">{esc(_verdict_ci(r))}</td>',
                    f"<td>{_sig_badge(r.get('significance'))}</td>",
                ]
            if i == 0:
                span = f' rowspan="{len(shown)}"' if len(shown) > 1 else ""
                cells.append(f"<td{span}>{tallies}</td><td{span}>{expectations}</td>")
            out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</tbody></table>")
    if ratio:
        # The study's pair as a yardstick, only for models of a comparable kind (not the demo's toy models).
        reference = (' <span class="qc-muted">(reference: Qwen2.5 1.5B → 7B is 4.7× parameters for +12 MMLU points)</span>'
                     if min(num(pa) or 0, num(pb) or 0) >= REAL_SCALE_PARAMETERS else "")
        out.append(f'<p class="qc-scale">Scale: {esc(label_b)} has <b>{ratio:.2f}×</b> the parameters of {esc(label_a)} '
                   f"({human_count(pa)} → {human_count(pb)}); the gains above are what that buys{reference}.</p>")
    return "".join(out)


# --------------------------------------------------------------------------- page


def _chart_notes(subjects: Sequence[Record]) -> str:
    deltas = sorted(num(r.get("delta")) for r in subjects if num(r.get("delta")) is not None)
    if not deltas:
        return ""
    t = counts(subjects)
    median = deltas[len(deltas) // 2] if len(deltas) % 2 else (deltas[len(deltas) // 2 - 1] + deltas[len(deltas) // 2]) / 2
    by_delta = sorted(subjects, key=lambda r: num(r.get("delta")) or 0.0)
    worst, best = by_delta[0], by_delta[-1]
    return (
        '<ul class="qc-chart-notes">'
        f"<li>{sum(1 for d in deltas if d > 0)} of {len(deltas)} subjects improved, {sum(1 for d in deltas if d < 0)} declined; "
        f"median Δ {median:+.2f}, mean Δ {sum(deltas) / len(deltas):+.2f} points.</li>"
        f'<li><span class="qc-better">▲ {t["better"]}</span> significantly better, <span class="qc-worse">▼ {t["worse"]}</span> '
        f'significantly worse, <span class="qc-undet">◆ {t["undetermined"]}</span> undetermined after correction.</li>'
        f"<li>Largest gain: <b>{esc(best.get('item'))}</b> {fmt(best.get('delta'), '+.2f')}, adjusted CI {esc(_verdict_ci(best))}.</li>"
        f"<li>Smallest: <b>{esc(worst.get('item'))}</b> {fmt(worst.get('delta'), '+.2f')}, adjusted CI {esc(_verdict_ci(worst))}.</li>"
        "<li>Subjects with few documents have wide intervals: a large Δ there can still be undetermined.</li>"
        "</ul>"
    )


def benchmark_section(benchmark: str, rows: Sequence[Record], slug: str, run: Mapping[str, Any]) -> str:
    label_a, label_b = _labels(rows, run)
    title = rows[0].get("benchmark_title", benchmark)
    subjects = subject_records(rows)
    c = counts(rows)
    shots = (run.get("num_fewshot") or {}).get(benchmark)
    out = [f'<section class="qc-section" id="qwencmp-sec-{slug}"><h3>{esc(title)}</h3>']
    out.append(
        f"<p>{_plural(len(rows), 'item')} ({'%d-shot' % int(num(shots)) if num(shots) is not None else 'default shots'}): "
        f'<span class="qc-o-pass">{c["passed"]} passed</span>, '
        f'<span class="{"qc-o-fail" if c["failed"] else "qc-muted"}">{c["failed"]} failed</span>'
        + (f', <span class="qc-weak">{c["underpowered"]} underpowered</span>' if c["underpowered"] else "") + ".</p>"
    )
    family = family_sentence(rows)
    if family:
        out.append(f'<p>{esc(family)}: B significantly better on <span class="qc-better">{c["better"]}</span>, worse on '
                   f'<span class="qc-worse">{c["worse"]}</span>, no detectable difference on '
                   f'<span class="qc-undet">{c["undetermined"]}</span>.</p>')
    for r in rows:
        if is_overall(r):
            out.append(f'<p>{esc(overall_sentence(r))}</p>')
    noise = noise_sentence(rows)
    if noise:
        out.append(f'<p class="qc-noise">{esc(noise)}</p>')
    out.append(generation_warning(benchmark, rows, run, label_a, label_b))
    out.append(health_warnings_html(rows))
    overall_by_metric = {str(r.get("metric")): r for r in rows if is_overall(r)}
    by_metric: OrderedDict[str, list[Record]] = OrderedDict()
    for r in subjects:
        by_metric.setdefault(str(r.get("metric", "")), []).append(r)
    for metric, group in by_metric.items():
        if len(group) < 3:
            continue
        suffix = "" if len(by_metric) == 1 else "-" + re.sub(r"[^A-Za-z0-9_-]+", "-", metric)
        overall = overall_by_metric.get(metric)
        out.append('<div class="qc-charts">')
        out.append(histogram_svg(group, f"qwencmp-{slug}{suffix}-hist", label_a, label_b, overall))
        out.append(_chart_notes(group))
        out.append("</div>")
        out.append(dumbbell_svg(group, label_a, label_b, f"qwencmp-{slug}{suffix}-dumbbell", overall, metric))
    out.append(comparison_table(rows, slug, label_a, label_b))
    out.append("</section>")
    return "".join(out)


def _asset(name: str) -> str:
    """A file of ``report_assets/`` (package data), inlined into the page."""
    return (ASSETS / name).read_text(encoding="utf-8")


def render_summary(records: Iterable[Record], run: Mapping[str, Any] | None = None,
                   stats: Mapping[str, Any] | None = None) -> str:
    """The whole block: headline, models and settings, then a section per benchmark."""
    run = run or {}
    rows = list(records)
    groups = group_by_benchmark(rows)
    slugs = _slugs(list(groups))
    label_a, label_b = _labels(rows, run)
    out = [f'<div class="qwencmp" id="qwencmp"><style>{_asset("report.css")}</style>',
           f'<h2>Model comparison: <span style="color:{COLOR_A}">{esc(label_a)}</span> (A, baseline) → '
           f'<span style="color:{COLOR_B}">{esc(label_b)}</span> (B, candidate)</h2>']
    if rows:
        failed = [r for r in rows if not r.get("passed")]
        if failed:
            names = ", ".join(f"{r.get('benchmark')}[{r.get('item')}]" for r in failed[:6]) + (" …" if len(failed) > 6 else "")
            out.append(f'<div class="qc-banner qc-b-fail">✗ {len(failed)} of {len(rows)} items missed their expectations '
                       f"<small>({esc(names)})</small></div>")
        else:
            out.append(f'<div class="qc-banner qc-b-ok">✓ All {len(rows)} items met their expectations</div>')
        out.append(_headline(groups, slugs, run, label_a, label_b))
    else:
        out.append('<p class="qc-muted">No comparison results were recorded.</p>')
    top = [x for x in (_model_rows(run, label_a, label_b), _settings_html(run, stats)) if x]
    if top:
        out.append('<div class="qc-top">' + "".join(top) + "</div>")
    if len(groups) > 1:
        out.append('<nav class="qc-nav">Jump to: ' + "".join(
            f'<a href="#qwencmp-sec-{slugs[name]}">{esc(group[0].get("benchmark_title", name))}</a>' for name, group in groups.items()
        ) + "</nav>")
    for name, group in groups.items():
        out.append(benchmark_section(name, group, slugs[name], run))
    out.append(f"<script>{_asset('report.js')}</script></div>")
    return "".join(out)


def html_summary(records: Iterable[Record], run: Mapping[str, Any], stats: Mapping[str, Any] | None = None) -> str:
    """One self-contained HTML block for pytest-html: headline, charts and a table per benchmark (inline CSS, SVG, JS)."""
    return render_summary(records, run, stats)


def html_page(records: Iterable[Record], run: Mapping[str, Any], stats: Mapping[str, Any] | None = None, title: str = "Model comparison") -> str:
    """A standalone HTML page around the same summary block the pytest-html report carries."""
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title></head><body>{html_summary(records, run, stats)}</body></html>\n"
    )
