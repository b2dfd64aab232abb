"""The comparison block at the top of the pytest-html report.

``render_summary(records, run, stats)`` returns one self-contained HTML
fragment — inline CSS, inline SVG charts, a few lines of inline vanilla JS for
sorting and expanding rows; no external resource of any kind — that answers
"is B really better than A?" at a glance:

1. a headline: per benchmark the overall score A → B with the paired
   difference and its 95 % CI, how many subjects got significantly better /
   worse / stayed undetermined, how many expectations passed, the models (with
   revisions, backends, dtypes, parameter counts and the B/A parameter ratio
   beside the gains), the run settings and timings;
2. per benchmark: a warning when a generation benchmark scores near zero (the
   answer format, not the model's ability, is the usual cause), a histogram of
   Δ across subjects and a dumbbell chart of A vs B per subject with the paired
   CI of Δ, and the comparison table — sortable, failed rows highlighted, the
   overall row pinned, each row expandable to the documents where A and B
   disagree.

Input is the plain JSON-able data of ``report`` (records from
``ItemComparison.to_record``, the run's ``describe()``, the session's stats);
every string in it is escaped — model output is hostile input.
"""

from __future__ import annotations

import html
import math
import re
from collections import OrderedDict
from typing import Any, Iterable, Mapping, Sequence

from .model_options import describe_setup

Record = Mapping[str, Any]

OVERALL = "overall"
NEAR_ZERO_POINTS = 2.0
COLOR_A = "#d55e00"  # vermillion
COLOR_B = "#0072b2"  # blue
COLOR_BETTER = "#1a7f37"
COLOR_WORSE = "#c62828"
COLOR_UNDETERMINED = "#8a8f98"


# --------------------------------------------------------------------------- helpers


def esc(value: Any) -> str:
    """Text for HTML/SVG content and attribute values (quotes escaped too)."""
    return html.escape("" if value is None else str(value), quote=True)


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _fmt(value: Any, spec: str = ".2f", missing: str = "—") -> str:
    number = _num(value)
    return missing if number is None else format(number, spec)


def _fmt_p(value: Any) -> str:
    p = _num(value)
    if p is None:
        return "—"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def _score(value: Any, stderr: Any) -> str:
    if _num(value) is None:
        return "—"
    return f"{_fmt(value)} ± {_fmt(stderr)}" if _num(stderr) is not None else _fmt(value)


def _ci(record: Record) -> str:
    if _num(record.get("ci_low")) is None or _num(record.get("ci_high")) is None:
        return "—"
    return f"[{_fmt(record['ci_low'], '+.2f')}, {_fmt(record['ci_high'], '+.2f')}]"


def _sign_class(value: Any) -> str:
    number = _num(value)
    if number is None or number == 0:
        return ""
    return "qc-pos" if number > 0 else "qc-neg"


def human_count(n: Any) -> str:
    """1543714304 → '1.54B'; None → '—'."""
    number = _num(n)
    if number is None:
        return "—"
    for unit, size in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(number) >= size:
            return f"{number / size:.3g}{unit}"
    return f"{number:.0f}"


def parameter_ratio(run: Mapping[str, Any]) -> float | None:
    """B's parameter count over A's, when both are known."""
    models = run.get("models") or {}
    a = _num((models.get("a") or {}).get("parameters"))
    b = _num((models.get("b") or {}).get("parameters"))
    if not a or b is None:
        return None
    return b / a


def is_overall(record: Record) -> bool:
    return str(record.get("item", "")).split(":")[0] == OVERALL


def is_generation(record: Record) -> bool:
    if "generation" in record:
        return bool(record.get("generation"))
    # older records carry no flag: pass@k (MBPP, HumanEval) is only ever a generation metric
    return any(str(record.get(key, "")).startswith(("pass@", "pass_at_")) for key in ("metric", "item"))


def group_by_benchmark(records: Iterable[Record]) -> "OrderedDict[str, list[Record]]":
    groups: OrderedDict[str, list[Record]] = OrderedDict()
    for record in sorted(records, key=lambda r: (r.get("benchmark_order", 0), r.get("order", 0))):
        groups.setdefault(str(record.get("benchmark", "")), []).append(record)
    return groups


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
    """The items that are not an aggregate (for single-task benchmarks: all of them)."""
    return [r for r in rows if not is_overall(r)]


def headline_records(rows: Sequence[Record]) -> list[Record]:
    """What the headline shows: the overall item(s); for single-task benchmarks each metric."""
    overall = [r for r in rows if is_overall(r)]
    if overall:
        return overall
    return list(rows) if len(rows) <= 4 else []


def tally(rows: Sequence[Record]) -> dict[str, int]:
    result = {"passed": 0, "failed": 0, "better": 0, "worse": 0, "undetermined": 0}
    for r in rows:
        result["passed" if r.get("passed") else "failed"] += 1
        sig = r.get("significance")
        result[sig if sig in ("better", "worse") else "undetermined"] += 1
    return result


def _labels(rows: Sequence[Record], run: Mapping[str, Any]) -> tuple[str, str]:
    models = run.get("models") or {}
    first = rows[0] if rows else {}
    a = first.get("model_a") or (models.get("a") or {}).get("label") or "A"
    b = first.get("model_b") or (models.get("b") or {}).get("label") or "B"
    return str(a), str(b)


def _verdict_text(record: Record) -> str:
    outcome = "PASS" if record.get("passed") else "FAIL"
    significance = record.get("significance") or ""
    return f"{outcome} · {significance}" if significance and significance != "n/a" else outcome


def _sig_badge(significance: Any) -> str:
    sig = str(significance or "n/a")
    cls = {"better": "qc-better", "worse": "qc-worse"}.get(sig, "qc-undet")
    mark = {"better": "▲", "worse": "▼"}.get(sig, "◆")
    text = {"better": "B better", "worse": "B worse", "no detectable difference": "no detectable difference"}.get(sig, sig)
    return f'<span class="qc-badge {cls}">{mark} {esc(text)}</span>'


def nice_ticks(low: float, high: float, count: int = 6) -> list[float]:
    """Round tick values covering [low, high]."""
    if high <= low:
        high = low + 1.0
    raw = (high - low) / max(count - 1, 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    start = math.floor(low / step + 1e-9) * step
    ticks = []
    value = start
    while value <= high + step * 1e-6:
        ticks.append(round(value, 10))
        value += step
    if ticks[-1] < high - 1e-9:
        ticks.append(round(ticks[-1] + step, 10))
    return ticks


def _tick_label(value: float) -> str:
    return f"{value:g}"


# --------------------------------------------------------------------------- SVG charts


def _svg_open(uid: str, width: int, height: int, title: str, desc: str, cls: str) -> str:
    return (
        f'<svg class="{cls}" id="{uid}" role="img" '
        f'aria-labelledby="{uid}-title {uid}-desc" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="system-ui, -apple-system, Segoe UI, Helvetica, Arial, sans-serif">'
        f'<title id="{uid}-title">{esc(title)}</title><desc id="{uid}-desc">{esc(desc)}</desc>'
    )


def _sig_color(significance: Any) -> str:
    return {"better": COLOR_BETTER, "worse": COLOR_WORSE}.get(str(significance), COLOR_UNDETERMINED)


def _short(label: str, limit: int = 40) -> str:
    return label if len(label) <= limit else label[: limit - 1] + "…"


def dumbbell_svg(rows: Sequence[Record], label_a: str, label_b: str, uid: str,
                 overall: Record | None = None, metric: str = "acc") -> str:
    """A vs B per subject (left panel) and Δ = B − A with its paired 95 % CI (right panel), sorted by Δ."""
    items = [r for r in rows if _num(r.get("a")) is not None and _num(r.get("b")) is not None]
    items.sort(key=lambda r: (-(_num(r.get("delta")) or 0.0), str(r.get("item"))))
    row_h, top, bottom = 17, 78, 46
    label_w, p1_x0, p1_x1, p2_x0, p2_x1, width = 252, 262, 560, 612, 930, 960
    height = top + row_h * len(items) + bottom
    scores = [v for r in items for v in (_num(r["a"]), _num(r["b"]))]
    s_ticks = nice_ticks(max(0.0, min(scores) - 2), min(100.0, max(scores) + 2), 6)
    s_lo, s_hi = s_ticks[0], s_ticks[-1]
    deltas = [0.0]
    for r in items:
        for key in ("delta", "ci_low", "ci_high"):
            if _num(r.get(key)) is not None:
                deltas.append(_num(r[key]))
    if overall is not None and _num(overall.get("delta")) is not None:
        deltas.append(_num(overall["delta"]))
    d_ticks = nice_ticks(min(deltas), max(deltas), 7)
    d_lo, d_hi = d_ticks[0], d_ticks[-1]

    def sx(v: float) -> float:
        return p1_x0 + (v - s_lo) / (s_hi - s_lo) * (p1_x1 - p1_x0)

    def dx(v: float) -> float:
        return p2_x0 + (v - d_lo) / (d_hi - d_lo) * (p2_x1 - p2_x0)

    title = f"{label_a} vs {label_b} per subject ({metric}), sorted by improvement"
    desc = (f"Left: {metric} of {label_a} and {label_b} per subject, in points. Right: the improvement "
            f"B − A with its paired 95% confidence interval. {len(items)} subjects.")
    out = [_svg_open(uid, width, height, title, desc, "qc-chart qc-dumbbell")]
    # legend: A/B on the left, significance colours on the right (widths estimated at ~7 px a character)
    text_a, text_b = f"{_short(label_a, 30)} (A)", f"{_short(label_b, 30)} (B)"
    xb = 30 + 7 * len(text_a) + 24
    sig_items = (("B better", COLOR_BETTER), ("B worse", COLOR_WORSE), ("undetermined (adj. p)", COLOR_UNDETERMINED))
    xs = width - 12 - sum(13 + 7 * len(t) + 14 for t, _ in sig_items)
    legend = [f'<circle cx="18" cy="14" r="5" fill="{COLOR_A}"/><text x="28" y="18">{esc(text_a)}</text>',
              f'<circle cx="{xb}" cy="14" r="5" fill="{COLOR_B}"/><text x="{xb + 10}" y="18">{esc(text_b)}</text>',
              f'<line x1="{xb + 18 + 7 * len(text_b)}" y1="14" x2="{xb + 40 + 7 * len(text_b)}" y2="14" stroke="#9aa3ad" stroke-width="2"/>'
              f'<text x="{xb + 46 + 7 * len(text_b)}" y="18" fill="#555">A → B</text>']
    for text, color in sig_items:
        legend.append(f'<rect x="{xs}" y="9" width="9" height="9" fill="{color}"/><text x="{xs + 13}" y="18">{esc(text)}</text>')
        xs += 13 + 7 * len(text) + 14
    out.append('<g class="qc-legend" font-size="12">' + "".join(legend) + "</g>")
    # panel titles and axes
    out.append(
        f'<text x="{(p1_x0 + p1_x1) / 2}" y="40" text-anchor="middle" font-size="12" font-weight="600">{esc(metric)} (points)</text>'
        f'<text x="{(p2_x0 + p2_x1) / 2}" y="40" text-anchor="middle" font-size="12" font-weight="600">Improvement B − A (points), 95% paired CI</text>'
        f'<text x="{label_w}" y="40" text-anchor="end" font-size="12" font-weight="600">subject</text>'
    )
    y0, y1 = top - 6, top + row_h * len(items) + 2
    for i in range(len(items)):
        if i % 2 == 0:
            out.append(f'<rect x="4" y="{top + i * row_h}" width="{width - 8}" height="{row_h}" fill="#f4f6f8"/>')
    grid = []
    for t in s_ticks:
        x = sx(t)
        grid.append(f'<line x1="{x:.1f}" y1="{y0}" x2="{x:.1f}" y2="{y1}" stroke="#d9dde3"/>')
        for y in (top - 10, y1 + 14):
            grid.append(f'<text x="{x:.1f}" y="{y}" text-anchor="middle" font-size="10" fill="#555">{_tick_label(t)}</text>')
    for t in d_ticks:
        x = dx(t)
        zero = abs(t) < 1e-12
        stroke = 'stroke="#555" stroke-width="1.2"' if zero else 'stroke="#d9dde3"'
        grid.append(f'<line x1="{x:.1f}" y1="{y0}" x2="{x:.1f}" y2="{y1}" {stroke}/>')
        for y in (top - 10, y1 + 14):
            grid.append(f'<text x="{x:.1f}" y="{y}" text-anchor="middle" font-size="10" fill="#555">{_tick_label(t)}</text>')
    out.append('<g class="qc-grid">' + "".join(grid) + "</g>")
    out.append(
        f'<text x="{(p1_x0 + p1_x1) / 2}" y="{y1 + 32}" text-anchor="middle" font-size="11" fill="#333">{esc(metric)}, points</text>'
        f'<text x="{(p2_x0 + p2_x1) / 2}" y="{y1 + 32}" text-anchor="middle" font-size="11" fill="#333">Δ = B − A, points</text>'
    )
    if overall is not None and _num(overall.get("delta")) is not None:
        x = dx(_num(overall["delta"]))
        out.append(
            f'<g class="qc-overall-mark"><title>{esc(overall.get("item"))}: Δ {_fmt(overall.get("delta"), "+.2f")} {esc(_ci(overall))}</title>'
            f'<line x1="{x:.1f}" y1="{y0}" x2="{x:.1f}" y2="{y1}" stroke="{COLOR_B}" stroke-dasharray="4 3"/>'
            f'<text x="{x:.1f}" y="{top - 22}" text-anchor="middle" font-size="10" fill="{COLOR_B}">overall {_fmt(overall.get("delta"), "+.2f")}</text></g>'
        )
    for i, r in enumerate(items):
        cy = top + i * row_h + row_h / 2
        a, b, d = _num(r["a"]), _num(r["b"]), _num(r.get("delta"))
        name = str(r.get("item"))
        tip = (f"{name}: {label_a} {_score(r.get('a'), r.get('a_stderr'))}, {label_b} {_score(r.get('b'), r.get('b_stderr'))}; "
               f"Δ {_fmt(d, '+.2f')} {_ci(r)}, adj. p {_fmt_p(r.get('adjusted_p'))}, {r.get('significance') or 'n/a'}"
               f"{'' if r.get('passed', True) else ' — FAILED expectations'}")
        color = _sig_color(r.get("significance"))
        failed = not r.get("passed", True)
        label_style = f'fill="{COLOR_WORSE}" font-weight="700"' if failed else 'fill="#222"'
        parts = [f'<g class="qc-row" data-item="{esc(name)}"><title>{esc(tip)}</title>',
                 f'<text x="{label_w}" y="{cy + 4:.1f}" text-anchor="end" font-size="11" '
                 f'{label_style}>'
                 f'{esc(_short(name))}{" ✗" if failed else ""}</text>',
                 f'<line x1="{sx(a):.1f}" y1="{cy:.1f}" x2="{sx(b):.1f}" y2="{cy:.1f}" stroke="#9aa3ad" stroke-width="2"/>',
                 f'<circle class="qc-a" cx="{sx(a):.1f}" cy="{cy:.1f}" r="4.2" fill="{COLOR_A}"/>',
                 f'<circle class="qc-b" cx="{sx(b):.1f}" cy="{cy:.1f}" r="4.2" fill="{COLOR_B}"/>']
        lo, hi = _num(r.get("ci_low")), _num(r.get("ci_high"))
        if lo is not None and hi is not None:
            parts.append(f'<line class="qc-ci" x1="{dx(lo):.1f}" y1="{cy:.1f}" x2="{dx(hi):.1f}" y2="{cy:.1f}" stroke="{color}" stroke-width="2"/>'
                         f'<line x1="{dx(lo):.1f}" y1="{cy - 4:.1f}" x2="{dx(lo):.1f}" y2="{cy + 4:.1f}" stroke="{color}" stroke-width="1.5"/>'
                         f'<line x1="{dx(hi):.1f}" y1="{cy - 4:.1f}" x2="{dx(hi):.1f}" y2="{cy + 4:.1f}" stroke="{color}" stroke-width="1.5"/>')
        if d is not None:
            parts.append(f'<rect class="qc-d" x="{dx(d) - 4:.1f}" y="{cy - 4:.1f}" width="8" height="8" fill="{color}"/>')
        parts.append("</g>")
        out.append("".join(parts))
    out.append("</svg>")
    return "".join(out)


def histogram_svg(rows: Sequence[Record], uid: str, label_a: str, label_b: str, overall: Record | None = None) -> str:
    """How Δ = B − A is distributed across subjects; bars stacked by significance."""
    deltas = [(_num(r.get("delta")), r.get("significance")) for r in rows if _num(r.get("delta")) is not None]
    width, height, left, right, top, bottom = 470, 270, 48, 14, 46, 50
    values = [d for d, _ in deltas] or [0.0]
    lo, hi = min(values + [0.0]), max(values + [0.0])
    ticks = nice_ticks(lo, hi, 7)
    step = (ticks[1] - ticks[0]) / 2 if len(ticks) > 1 else 1.0
    edges = [ticks[0] + i * step for i in range(int(round((ticks[-1] - ticks[0]) / step)) + 1)]
    if len(edges) < 2:
        edges = [ticks[0], ticks[0] + step]
    nbins = len(edges) - 1
    bins = [{"better": 0, "undetermined": 0, "worse": 0} for _ in range(nbins)]
    for d, sig in deltas:
        index = min(max(int((d - edges[0]) // step), 0), nbins - 1)
        bins[index][sig if sig in ("better", "worse") else "undetermined"] += 1
    peak = max([sum(b.values()) for b in bins] + [1])
    y_ticks = [t for t in nice_ticks(0, peak, 5) if float(t).is_integer()]
    y_max = y_ticks[-1]
    plot_w, plot_h = width - left - right, height - top - bottom

    def x(v: float) -> float:
        return left + (v - edges[0]) / (edges[-1] - edges[0]) * plot_w

    def y(count: float) -> float:
        return top + plot_h - count / y_max * plot_h

    mean = sum(values) / len(values) if deltas else 0.0
    positive = sum(1 for d, _ in deltas if d > 0)
    title = f"Distribution of the improvement {label_b} − {label_a} across {len(deltas)} subjects"
    desc = (f"Histogram of Δ in points, bin width {step:g}; {positive} of {len(deltas)} subjects improved; "
            f"mean Δ {mean:+.2f}. Bars stacked by significance after multiple-comparison correction.")
    out = [_svg_open(uid, width, height, title, desc, "qc-chart qc-hist")]
    out.append(
        f'<g font-size="11"><rect x="{left}" y="10" width="9" height="9" fill="{COLOR_BETTER}"/><text x="{left + 13}" y="18">B better</text>'
        f'<rect x="{left + 76}" y="10" width="9" height="9" fill="{COLOR_WORSE}"/><text x="{left + 89}" y="18">B worse</text>'
        f'<rect x="{left + 148}" y="10" width="9" height="9" fill="{COLOR_UNDETERMINED}"/><text x="{left + 161}" y="18">undetermined</text></g>'
    )
    for t in y_ticks:
        out.append(f'<line x1="{left}" y1="{y(t):.1f}" x2="{width - right}" y2="{y(t):.1f}" stroke="#e3e6ea"/>'
                   f'<text x="{left - 6}" y="{y(t) + 3:.1f}" text-anchor="end" font-size="10" fill="#555">{t:g}</text>')
    for i, counts in enumerate(bins):
        base = 0
        for key, color in (("better", COLOR_BETTER), ("undetermined", COLOR_UNDETERMINED), ("worse", COLOR_WORSE)):
            n = counts[key]
            if not n:
                continue
            x0, x1 = x(edges[i]) + 1, x(edges[i + 1]) - 1
            out.append(f'<rect class="qc-bar" x="{x0:.1f}" y="{y(base + n):.1f}" width="{x1 - x0:.1f}" height="{y(base) - y(base + n):.1f}" '
                       f'fill="{color}"><title>{n} subject(s) {esc(key)}, Δ in [{edges[i]:+g}, {edges[i + 1]:+g})</title></rect>')
            base += n
    out.append(f'<line x1="{left}" y1="{top + plot_h}" x2="{width - right}" y2="{top + plot_h}" stroke="#555"/>')
    for t in ticks:
        out.append(f'<line x1="{x(t):.1f}" y1="{top + plot_h}" x2="{x(t):.1f}" y2="{top + plot_h + 4}" stroke="#555"/>'
                   f'<text x="{x(t):.1f}" y="{top + plot_h + 15}" text-anchor="middle" font-size="10" fill="#555">{_tick_label(t)}</text>')
    zero = x(0.0)
    out.append(f'<line x1="{zero:.1f}" y1="{top - 4}" x2="{zero:.1f}" y2="{top + plot_h}" stroke="#333" stroke-width="1.2"/>')
    if overall is not None and _num(overall.get("delta")) is not None:
        ox = x(min(max(_num(overall["delta"]), edges[0]), edges[-1]))
        out.append(f'<line x1="{ox:.1f}" y1="{top - 4}" x2="{ox:.1f}" y2="{top + plot_h}" stroke="{COLOR_B}" stroke-dasharray="4 3"/>'
                   f'<text x="{ox:.1f}" y="{top - 8}" text-anchor="middle" font-size="10" fill="{COLOR_B}">overall {_fmt(overall.get("delta"), "+.2f")}</text>')
    out.append(f'<text x="{left + plot_w / 2:.1f}" y="{height - 14}" text-anchor="middle" font-size="11" fill="#333">Δ = B − A, points (bin {step:g})</text>'
               f'<text transform="translate(13 {top + plot_h / 2:.1f}) rotate(-90)" text-anchor="middle" font-size="11" fill="#333">subjects</text>')
    out.append("</svg>")
    return "".join(out)


# --------------------------------------------------------------------------- generation warning


def near_zero_sides(rows: Sequence[Record]) -> list[tuple[str, Record]]:
    """(side, record) for each generation item where a model scores ≤ NEAR_ZERO_POINTS."""
    found = []
    for r in rows:
        if not is_generation(r):
            continue
        for side in ("a", "b"):
            value = _num(r.get(side))
            if value is not None and value <= NEAR_ZERO_POINTS:
                found.append((side, r))
    return found


def _likely_causes(answers: Sequence[str], shots: Any, benchmark: str) -> list[str]:
    causes = []
    texts = [a for a in answers if isinstance(a, str)]
    if texts and all(not t.strip() for t in texts):
        causes.append("it returns empty answers — the prompt format does not lead it to write code at all")
    if any("```" in t for t in texts):
        causes.append("it wraps the code in Markdown fences or prose, which the benchmark executes verbatim")
    if any(len(t) >= 400 or t.count("def ") > 1 or "[BEGIN]" in t or "You are an expert" in t for t in texts):
        causes.append("it never emits the stop sequence <code>[DONE]</code>, so generation runs on to the token limit "
                      "and the text after the solution (more tasks, more tests) breaks the program")
    if _num(shots) == 0:
        causes.append(f"the run is zero-shot ({esc(benchmark)} num_fewshot = 0): without examples a base model does not "
                      "learn the <code>[BEGIN] … [DONE]</code> answer format — the reference study's 0 % on zero-shot MBPP "
                      "had exactly this cause")
    if not causes:
        causes.append("it does not follow the answer format (the code between <code>[BEGIN]</code> and the stop "
                      "sequence <code>[DONE]</code>)")
    return causes


def generation_warning(benchmark: str, rows: Sequence[Record], run: Mapping[str, Any], label_a: str, label_b: str) -> str:
    hits = near_zero_sides(rows)
    if not hits:
        return ""
    shots = (run.get("num_fewshot") or {}).get(benchmark)
    out = []
    for side, record in hits:
        label = label_a if side == "a" else label_b
        other = "b" if side == "a" else "a"
        examples = [e for e in (record.get("examples") or []) if isinstance(e, Mapping)]
        answers = [str(e.get(f"{side}_answer", "")) for e in examples]
        causes = _likely_causes(answers, shots, benchmark)
        suggestion = (f"Run it few-shot: <code>--num-fewshot {esc(benchmark)}=2</code> (the study's setting)"
                      if _num(shots) in (None, 0) else
                      f"Already {esc(shots)}-shot: read the outputs below and check the prompt, the stop sequence and "
                      f"<code>max_gen_toks</code>; compare with <code>--num-fewshot {esc(benchmark)}=2</code>")
        out.append(
            f'<div class="qc-warning" role="alert"><p class="qc-warning-head">⚠ {esc(label)} scores '
            f'{_fmt(record.get(side))} on {esc(record.get("benchmark_title", benchmark))} {esc(record.get("item"))} '
            f'({esc(label_b if side == "a" else label_a)}: {_fmt(record.get(other))}) — that measures the answer format, not coding ability.</p>'
            f'<p>Likely cause: {esc(label)} does not follow the answer format:</p><ul>'
            + "".join(f"<li>{c}</li>" for c in causes)
            + f"</ul><p><b>Suggestion:</b> {suggestion}.</p>"
        )
        if examples:
            out.append(f'<p>Sample outputs of {esc(label)}:</p><div class="qc-samples">')
            for e in examples[:3]:
                answer = e.get(f"{side}_answer")
                out.append(
                    f'<div class="qc-sample"><div class="qc-sample-head">doc {esc(e.get("doc", "?"))} · score '
                    f'{_fmt(e.get(f"{side}_score"), "g")} · {len(str(answer or ""))} characters</div>'
                    f'<pre class="qc-pre">{esc(answer) if answer not in (None, "") else "<i>(empty)</i>"}</pre></div>'
                )
            out.append("</div>")
        else:
            out.append("<p><i>No sample outputs were recorded for this item.</i></p>")
        out.append("</div>")
    return "".join(out)


def health_warnings_html(rows: Sequence[Record]) -> str:
    """The numerical-health warnings of a benchmark's items (degenerate generations), once each."""
    warnings = dict.fromkeys(str(w) for r in rows for w in (r.get("warnings") or []))
    return "".join(f'<div class="qc-warning" role="alert"><p class="qc-warning-head">⚠ {esc(w)}</p></div>' for w in warnings)


# --------------------------------------------------------------------------- table


def _examples_html(record: Record, label_a: str, label_b: str) -> str:
    parts = []
    failures = [str(f) for f in (record.get("failures") or [])]
    checked = [str(c) for c in (record.get("checked") or [])]
    n = record.get("n")
    stats_line = (f"{esc(n)} documents · Δ {_fmt(record.get('delta'), '+.2f')} ± {_fmt(record.get('delta_stderr'))} "
                  f"(paired stderr) · 95% CI {esc(_ci(record))} · p {_fmt_p(record.get('p_value'))} raw, "
                  f"{_fmt_p(record.get('adjusted_p'))} {esc(record.get('correction') or '')}-adjusted"
                  f"{' · ' + esc(record.get('test')) if record.get('test') else ''}")
    parts.append(f'<p class="qc-stats">{stats_line}</p>')
    if failures:
        parts.append('<p class="qc-fail-text"><b>Missed:</b> ' + "; ".join(esc(f) for f in failures) + "</p>")
    if checked:
        parts.append('<p class="qc-check-text"><b>Expected:</b> ' + "; ".join(esc(c) for c in checked) + "</p>")
    if not failures and not checked:
        parts.append('<p class="qc-check-text">No expectations set for this item.</p>')
    examples = [e for e in (record.get("examples") or []) if isinstance(e, Mapping)]
    if not examples:
        parts.append('<p class="qc-muted">No per-document examples recorded for this item.</p>')
        return "".join(parts)
    disagree = any(_num(e.get("a_score")) != _num(e.get("b_score")) for e in examples)
    parts.append(f'<p class="qc-muted">{"Documents where the models disagree" if disagree else "Sample documents (the models never disagree here)"}:</p>')
    for e in examples:
        sa, sb = _num(e.get("a_score")), _num(e.get("b_score"))

        def side_cls(mine: float | None, theirs: float | None) -> str:
            if mine is None or theirs is None or mine == theirs:
                return ""
            return " qc-win" if mine > theirs else " qc-lose"

        parts.append(
            f'<div class="qc-example"><div class="qc-ex-head">doc {esc(e.get("doc", "?"))}</div><div class="qc-ex-grid">'
            f'<div class="qc-ex-cell"><span class="qc-ex-label">prompt (tail)</span><pre class="qc-pre">{esc(e.get("prompt", ""))}</pre></div>'
            f'<div class="qc-ex-cell"><span class="qc-ex-label">target</span><pre class="qc-pre">{esc(e.get("target", ""))}</pre></div>'
            f'<div class="qc-ex-cell{side_cls(sa, sb)}"><span class="qc-ex-label qc-ex-a">{esc(label_a)} (A) · score {_fmt(sa, "g")}</span>'
            f'<pre class="qc-pre">{esc(e.get("a_answer", ""))}</pre></div>'
            f'<div class="qc-ex-cell{side_cls(sb, sa)}"><span class="qc-ex-label qc-ex-b">{esc(label_b)} (B) · score {_fmt(sb, "g")}</span>'
            f'<pre class="qc-pre">{esc(e.get("b_answer", ""))}</pre></div></div></div>'
        )
    return "".join(parts)


def comparison_table(rows: Sequence[Record], slug: str, label_a: str, label_b: str) -> str:
    metric = str(rows[0].get("metric", "acc")) if rows else "acc"
    metrics = {str(r.get("metric", "acc")) for r in rows}
    shown_metric = metric if len(metrics) == 1 else "score"
    heads = [
        ("Task", "text"),
        (f"{label_a} {shown_metric} ± stderr", "num"),
        (f"{label_b} {shown_metric} ± stderr", "num"),
        ("Improvement", "num"),
        ("95% CI (paired)", "num"),
        ("adj. p", "num"),
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
        d = _num(r.get("delta"))
        sig = r.get("significance")
        cells = [
            f'<td data-v="{esc(name)}"><button type="button" class="qc-toggle" aria-expanded="false" aria-controls="{detail_id}">'
            f'<span class="qc-caret" aria-hidden="true"></span>{esc(name)}</button></td>',
            f'<td data-v="{_fmt(r.get("a"), ".6f", "")}">{esc(_score(r.get("a"), r.get("a_stderr")))}</td>',
            f'<td data-v="{_fmt(r.get("b"), ".6f", "")}">{esc(_score(r.get("b"), r.get("b_stderr")))}</td>',
            f'<td data-v="{_fmt(d, ".6f", "")}" class="{_sign_class(d)}">{esc(_fmt(d, "+.2f"))}</td>',
            f'<td data-v="{_fmt(r.get("ci_low"), ".6f", "")}">{esc(_ci(r))}</td>',
            f'<td data-v="{_fmt(r.get("adjusted_p"), ".9g", "")}">{esc(_fmt_p(r.get("adjusted_p")))}</td>',
            f'<td data-v="{esc(_verdict_text(r))}" title="{title}"><span class="qc-outcome {"qc-o-fail" if not r.get("passed") else "qc-o-pass"}">'
            f'{"FAIL" if not r.get("passed") else "PASS"}</span> '
            f'{_sig_badge(sig) if sig and sig != "n/a" else ""}</td>',
        ]
        out.append(f'<tr class="{" ".join(classes)}" data-i="{index}">' + "".join(cells) + "</tr>")
        out.append(f'<tr class="qc-detail" id="{detail_id}" hidden><td colspan="7">{_examples_html(r, label_a, label_b)}</td></tr>')
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
        n = _num(m.get("parameters"))
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
    for key in ("num_fewshot", "limit", "generation", "seed", "correction", "data", "lm_eval_version", "machine", "code_sandbox"):
        if key not in run or run[key] in (None, {}, ""):
            continue
        value = run[key]
        if isinstance(value, Mapping):
            value = ", ".join(f"{k}={v}" for k, v in value.items())
        label = {"num_fewshot": "few-shot", "lm_eval_version": "lm-eval", "correction": "p correction",
                 "code_sandbox": "code sandbox"}.get(key, key.replace("_", " "))
        extra = ' <span class="qc-warn-inline">(smoke run: not comparable to full runs)</span>' if key == "limit" else ""
        items.append(f"<dt>{esc(label)}</dt><dd>{esc(value)}{extra}</dd>")
    if stats:
        wall = _num(stats.get("wall_seconds"))
        items.append(f"<dt>wall time</dt><dd>{'—' if wall is None else _duration(wall)}</dd>")
        evaluations = stats.get("evaluations")
        if evaluations is not None:
            items.append(f"<dt>work</dt><dd>{esc(stats.get('model_loads', 0))} model load(s), {esc(evaluations)} evaluation(s) "
                         f"({_duration(_num(stats.get('evaluation_seconds')) or 0.0)}), {esc(stats.get('cache_hits', 0))} cached evaluation(s) reused</dd>")
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


def _headline(groups: Mapping[str, list[Record]], slugs: Mapping[str, str], run: Mapping[str, Any],
              label_a: str, label_b: str) -> str:
    ratio = parameter_ratio(run)
    models = run.get("models") or {}
    pa, pb = (models.get("a") or {}).get("parameters"), (models.get("b") or {}).get("parameters")
    out = ['<table class="qc-headline"><thead><tr><th>Benchmark</th><th>Metric</th>'
           f'<th><span class="qc-dot" style="background:{COLOR_A}"></span>{esc(label_a)}</th>'
           f'<th><span class="qc-dot" style="background:{COLOR_B}"></span>{esc(label_b)}</th>'
           '<th>Improvement B − A</th><th>95% CI (paired)</th><th>Verdict</th>'
           '<th>Significantly better / worse / undetermined</th><th>Expectations</th></tr></thead><tbody>']
    for benchmark, rows in groups.items():
        slug = slugs[benchmark]
        heads = headline_records(rows)
        subjects = subject_records(rows)
        t_sub, t_all = tally(subjects), tally(rows)
        title = rows[0].get("benchmark_title", benchmark)
        kind = "subject" if any(is_overall(r) for r in rows) else "metric"
        counts = (f'<span class="qc-better">▲ {t_sub["better"]}</span> / <span class="qc-worse">▼ {t_sub["worse"]}</span> / '
                  f'<span class="qc-undet">◆ {t_sub["undetermined"]}</span> <span class="qc-muted">of {_plural(len(subjects), kind)}</span>')
        expectations = (f'<span class="qc-o-pass">{t_all["passed"]} passed</span>'
                        + (f', <span class="qc-o-fail">{t_all["failed"]} failed</span>' if t_all["failed"] else ""))
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
                d = _num(r.get("delta"))
                gain = esc(_fmt(d, "+.2f"))
                name = str(r.get("metric", "")) if is_overall(r) else str(r.get("item", ""))
                low = {side: is_generation(r) and (_num(r.get(side)) or 0.0) <= NEAR_ZERO_POINTS for side in ("a", "b")}
                cells += [
                    f"<td>{esc(name)}</td>",
                    f'<td class="qc-num{" qc-near-zero" if low["a"] else ""}">{esc(_score(r.get("a"), r.get("a_stderr")))}</td>',
                    f'<td class="qc-num{" qc-near-zero" if low["b"] else ""}">{esc(_score(r.get("b"), r.get("b_stderr")))}</td>',
                    f'<td class="qc-num qc-gain {_sign_class(d)}">{gain}'
                    + (f' <span class="qc-ratio" title="B has {ratio:.2f}× the parameters of A">at {ratio:.2f}× params</span>' if ratio else "")
                    + "</td>",
                    f'<td class="qc-num">{esc(_ci(r))}</td>',
                    f"<td>{_sig_badge(r.get('significance'))}</td>",
                ]
            if i == 0:
                span = f' rowspan="{len(shown)}"' if len(shown) > 1 else ""
                cells.append(f"<td{span}>{counts}</td><td{span}>{expectations}</td>")
            out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</tbody></table>")
    if ratio:
        out.append(f'<p class="qc-scale">Scale: {esc(label_b)} has <b>{ratio:.2f}×</b> the parameters of {esc(label_a)} '
                   f"({human_count(pa)} → {human_count(pb)}); the gains above are what that buys "
                   f'<span class="qc-muted">(reference: Qwen2.5 1.5B → 7B is 4.7× parameters for +12 MMLU points)</span>.</p>')
    return "".join(out)


# --------------------------------------------------------------------------- page


CSS = """
.qwencmp { color: #1f2328; font-family: system-ui, -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; font-size: 13px; line-height: 1.4; max-width: 1360px; }
.qwencmp h2 { font-size: 20px; margin: 0.4em 0 0.3em; color: #1f2328; }
.qwencmp h3 { font-size: 17px; margin: 1.6em 0 0.3em; color: #1f2328; border-bottom: 2px solid #d0d7de; padding-bottom: 3px; }
.qwencmp h4 { font-size: 14px; margin: 1em 0 0.3em; color: #1f2328; }
.qwencmp p { color: #1f2328; margin: 0.35em 0; }
.qwencmp code, .qwencmp pre { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, "Liberation Mono", monospace; font-size: 12px; }
.qwencmp code { background: #eff1f3; padding: 0 3px; border-radius: 3px; }
.qwencmp a { color: #0a58ca; }
.qwencmp .qc-banner { padding: 8px 12px; border-radius: 6px; font-size: 15px; font-weight: 600; margin: 0.4em 0 0.8em; }
.qwencmp .qc-banner.qc-b-ok { background: #e6f4ea; border: 1px solid #8cc79b; color: #0f5323; }
.qwencmp .qc-banner.qc-b-fail { background: #fdecea; border: 1px solid #e8a29b; color: #8c1d18; }
.qwencmp .qc-banner small { font-weight: normal; font-size: 12px; }
.qwencmp table { border-collapse: collapse; }
.qwencmp th, .qwencmp td { border: 1px solid #d0d7de; padding: 4px 8px; vertical-align: top; color: #1f2328; }
.qwencmp thead th { background: #f0f3f6; font-weight: 600; text-align: left; }
.qwencmp .qc-headline { font-size: 13px; margin-bottom: 0.3em; }
.qwencmp .qc-headline tbody th { text-align: left; background: #fafbfc; }
.qwencmp .qc-num { text-align: right; white-space: nowrap; font-variant-numeric: tabular-nums; }
.qwencmp .qc-gain { font-weight: 700; font-size: 14px; }
.qwencmp .qc-ratio { font-weight: normal; font-size: 11px; color: #57606a; margin-left: 4px; }
.qwencmp .qc-scale { font-size: 13px; }
.qwencmp .qc-top { display: flex; flex-wrap: wrap; gap: 18px; align-items: flex-start; margin: 0.6em 0; }
.qwencmp .qc-models { font-size: 12px; }
.qwencmp .qc-models tbody th { text-align: left; background: #fafbfc; font-weight: 600; }
.qwencmp .qc-settings { display: grid; grid-template-columns: max-content minmax(200px, 520px); gap: 2px 12px; margin: 0; font-size: 12px; }
.qwencmp .qc-settings dt { font-weight: 600; color: #57606a; }
.qwencmp .qc-settings dd { margin: 0; overflow-wrap: anywhere; }
.qwencmp .qc-dot { display: inline-block; width: 10px; height: 10px; border-radius: 50%; margin-right: 5px; vertical-align: -1px; }
.qwencmp .qc-pos { color: #1a7f37; } .qwencmp .qc-neg { color: #c62828; }
.qwencmp .qc-better { color: #1a7f37; } .qwencmp .qc-worse { color: #c62828; } .qwencmp .qc-undet { color: #6e7781; }
.qwencmp .qc-badge { white-space: nowrap; font-size: 12px; }
.qwencmp .qc-o-pass { color: #1a7f37; font-weight: 700; } .qwencmp .qc-o-fail { color: #c62828; font-weight: 700; }
.qwencmp .qc-muted { color: #6e7781; font-size: 12px; }
.qwencmp .qc-warn-inline { color: #9a6700; }
.qwencmp td.qc-near-zero { background: #fff4ce; color: #7d4e00; font-weight: 700; }
.qwencmp .qc-warn-chip { background: #fff4ce; border: 1px solid #d4a72c; color: #7d4e00; border-radius: 10px; padding: 0 6px; font-size: 11px; font-weight: 600; text-decoration: none; white-space: nowrap; }
.qwencmp nav.qc-nav { margin: 0.5em 0; font-size: 13px; }
.qwencmp nav.qc-nav a { margin-right: 12px; }
.qwencmp .qc-warning { background: #fff8e1; border: 1px solid #d4a72c; border-left: 6px solid #d4a72c; border-radius: 6px; padding: 8px 14px; margin: 0.6em 0 1em; }
.qwencmp .qc-warning-head { font-weight: 700; font-size: 14px; color: #7d4e00; }
.qwencmp .qc-warning ul { margin: 0.2em 0 0.4em 1.2em; padding: 0; }
.qwencmp .qc-samples { display: grid; grid-template-columns: repeat(auto-fit, minmax(300px, 1fr)); gap: 8px; }
.qwencmp .qc-sample { background: #fff; border: 1px solid #e1c16e; border-radius: 4px; padding: 4px 6px; min-width: 0; }
.qwencmp .qc-sample-head { font-size: 11px; color: #6e7781; }
.qwencmp .qc-pre { white-space: pre-wrap; overflow-wrap: anywhere; margin: 2px 0; max-height: 16em; overflow: auto; background: #f6f8fa; border: 1px solid #e5e8eb; border-radius: 3px; padding: 4px 6px; color: #1f2328; }
.qwencmp .qc-charts { display: flex; flex-wrap: wrap; gap: 12px 24px; align-items: flex-start; margin: 0.4em 0 0.8em; }
.qwencmp .qc-chart { max-width: 100%; height: auto; background: #fff; border: 1px solid #e5e8eb; border-radius: 4px; }
.qwencmp .qc-chart text { fill: #222; }
.qwencmp .qc-chart .qc-row:hover rect.qc-d, .qwencmp .qc-chart .qc-row:hover circle { stroke: #000; stroke-width: 1.5; }
.qwencmp .qc-chart-notes { font-size: 12px; max-width: 420px; }
.qwencmp .qc-chart-notes li { margin: 2px 0; }
.qwencmp .qc-table-tools { margin: 0.5em 0 0.3em; display: flex; gap: 8px; align-items: center; }
.qwencmp .qc-btn { font: inherit; font-size: 12px; padding: 1px 8px; border: 1px solid #afb8c1; border-radius: 4px; background: #f6f8fa; cursor: pointer; color: #1f2328; }
.qwencmp .qc-table { font-size: 13px; margin-bottom: 0.5em; font-variant-numeric: tabular-nums; }
.qwencmp .qc-table td { text-align: right; white-space: nowrap; }
.qwencmp .qc-table td:first-child, .qwencmp .qc-table td:last-child { text-align: left; }
.qwencmp .qc-th { cursor: pointer; user-select: none; white-space: nowrap; }
.qwencmp .qc-th:hover { background: #e3e8ee; }
.qwencmp .qc-th[aria-sort="ascending"] .qc-arrow::after { content: " ▲"; font-size: 10px; }
.qwencmp .qc-th[aria-sort="descending"] .qc-arrow::after { content: " ▼"; font-size: 10px; }
.qwencmp .qc-table tbody tr.qc-item:nth-child(4n+1) td { background: #fafbfc; }
.qwencmp .qc-table tr.qc-fail td { background: #fde7e7 !important; }
.qwencmp .qc-table tr.qc-fail td:first-child { box-shadow: inset 4px 0 0 #c62828; }
.qwencmp .qc-table tr.qc-overall td { font-weight: 700; background: #eaf2fb; border-bottom: 2px solid #8aa9c9; }
.qwencmp .qc-table tr.qc-detail > td { background: #fcfcfd; white-space: normal; text-align: left; padding: 6px 12px 10px; max-width: 1200px; }
.qwencmp .qc-toggle { font: inherit; background: none; border: none; padding: 0; cursor: pointer; color: #0a3069; text-align: left; }
.qwencmp .qc-toggle:hover { text-decoration: underline; }
.qwencmp .qc-caret { display: inline-block; width: 1.1em; color: #6e7781; }
.qwencmp .qc-caret::before { content: "▸"; }
.qwencmp .qc-toggle[aria-expanded="true"] .qc-caret::before { content: "▾"; }
.qwencmp .qc-example { border: 1px solid #d0d7de; border-radius: 5px; padding: 6px 8px; margin: 6px 0; background: #fff; }
.qwencmp .qc-ex-head { font-size: 11px; color: #57606a; font-weight: 600; }
.qwencmp .qc-ex-label { font-size: 11px; color: #57606a; font-weight: 600; }
.qwencmp .qc-ex-a { color: #d55e00; } .qwencmp .qc-ex-b { color: #0072b2; }
.qwencmp .qc-ex-grid { display: grid; grid-template-columns: 1.5fr 1fr 1fr 1fr; gap: 6px; margin-top: 2px; }
.qwencmp .qc-ex-cell { min-width: 0; border-radius: 4px; padding: 2px 4px; align-self: start; }
.qwencmp .qc-ex-cell.qc-win { background: #e6f4ea; } .qwencmp .qc-ex-cell.qc-lose { background: #fdecea; }
.qwencmp .qc-fail-text { color: #8c1d18; } .qwencmp .qc-check-text { color: #57606a; }
.qwencmp .qc-stats { color: #57606a; font-size: 12px; }
"""

_SCRIPT = r"""
(function () {
  var root = document.currentScript && document.currentScript.parentNode;
  if (!root) { return; }
  function cellValue(row, col, type) {
    var cell = row.children[col];
    var v = cell ? cell.getAttribute('data-v') : '';
    if (type === 'num') { var n = parseFloat(v); return isNaN(n) ? null : n; }
    return (v || '').toLowerCase();
  }
  function sortTable(th) {
    var table = th.closest('table');
    var tbody = table.tBodies[0];
    var col = +th.getAttribute('data-col');
    var type = th.getAttribute('data-type');
    var dir = th.getAttribute('aria-sort') === 'ascending' ? -1 : 1;
    Array.prototype.forEach.call(table.querySelectorAll('th.qc-th'), function (h) { h.setAttribute('aria-sort', 'none'); });
    th.setAttribute('aria-sort', dir === 1 ? 'ascending' : 'descending');
    var pairs = [], pinned = [];
    Array.prototype.forEach.call(tbody.querySelectorAll('tr.qc-item'), function (row) {
      var pair = [row, row.nextElementSibling];
      (row.classList.contains('qc-overall') ? pinned : pairs).push(pair);
    });
    pairs.sort(function (p, q) {
      var a = cellValue(p[0], col, type), b = cellValue(q[0], col, type);
      if (a === null && b === null) { return (+p[0].getAttribute('data-i')) - (+q[0].getAttribute('data-i')); }
      if (a === null) { return 1; }
      if (b === null) { return -1; }
      if (a < b) { return -dir; }
      if (a > b) { return dir; }
      return (+p[0].getAttribute('data-i')) - (+q[0].getAttribute('data-i'));
    });
    pinned.concat(pairs).forEach(function (pair) { tbody.appendChild(pair[0]); if (pair[1]) { tbody.appendChild(pair[1]); } });
  }
  function setOpen(button, open) {
    var detail = document.getElementById(button.getAttribute('aria-controls'));
    if (!detail) { return; }
    button.setAttribute('aria-expanded', open ? 'true' : 'false');
    if (open) { detail.removeAttribute('hidden'); } else { detail.setAttribute('hidden', ''); }
  }
  root.addEventListener('click', function (event) {
    var target = event.target;
    var th = target.closest('th.qc-th');
    if (th && root.contains(th)) { sortTable(th); return; }
    var toggle = target.closest('button.qc-toggle');
    if (toggle && root.contains(toggle)) { setOpen(toggle, toggle.getAttribute('aria-expanded') !== 'true'); return; }
    var all = target.closest('[data-qc-expand],[data-qc-collapse]');
    if (all && root.contains(all)) {
      var slug = all.getAttribute('data-qc-expand') || all.getAttribute('data-qc-collapse');
      var open = all.hasAttribute('data-qc-expand');
      var table = root.querySelector('table[data-qc-table="' + slug + '"]');
      if (table) { Array.prototype.forEach.call(table.querySelectorAll('button.qc-toggle'), function (b) { setOpen(b, open); }); }
    }
  });
  root.addEventListener('keydown', function (event) {
    var th = event.target.closest && event.target.closest('th.qc-th');
    if (th && (event.key === 'Enter' || event.key === ' ')) { event.preventDefault(); sortTable(th); }
  });
})();
"""


def _chart_notes(subjects: Sequence[Record]) -> str:
    deltas = sorted(_num(r.get("delta")) for r in subjects if _num(r.get("delta")) is not None)
    if not deltas:
        return ""
    t = tally(subjects)
    median = deltas[len(deltas) // 2] if len(deltas) % 2 else (deltas[len(deltas) // 2 - 1] + deltas[len(deltas) // 2]) / 2
    by_delta = sorted(subjects, key=lambda r: _num(r.get("delta")) or 0.0)
    worst, best = by_delta[0], by_delta[-1]
    return (
        '<ul class="qc-chart-notes">'
        f"<li>{sum(1 for d in deltas if d > 0)} of {len(deltas)} subjects improved, {sum(1 for d in deltas if d < 0)} declined; "
        f"median Δ {median:+.2f}, mean Δ {sum(deltas) / len(deltas):+.2f} points.</li>"
        f'<li><span class="qc-better">▲ {t["better"]}</span> significantly better, <span class="qc-worse">▼ {t["worse"]}</span> '
        f'significantly worse, <span class="qc-undet">◆ {t["undetermined"]}</span> undetermined after correction.</li>'
        f"<li>Largest gain: <b>{esc(best.get('item'))}</b> {_fmt(best.get('delta'), '+.2f')} {esc(_ci(best))}.</li>"
        f"<li>Smallest: <b>{esc(worst.get('item'))}</b> {_fmt(worst.get('delta'), '+.2f')} {esc(_ci(worst))}.</li>"
        "<li>Subjects with few documents have wide intervals: a large Δ there can still be undetermined.</li>"
        "</ul>"
    )


def benchmark_section(benchmark: str, rows: Sequence[Record], slug: str, run: Mapping[str, Any]) -> str:
    label_a, label_b = _labels(rows, run)
    title = rows[0].get("benchmark_title", benchmark)
    subjects = subject_records(rows)
    t_all, t_sub = tally(rows), tally(subjects)
    shots = (run.get("num_fewshot") or {}).get(benchmark)
    out = [f'<section class="qc-section" id="qwencmp-sec-{slug}"><h3>{esc(title)}</h3>']
    out.append(
        f"<p>{_plural(len(rows), 'item')} ({'%d-shot' % int(_num(shots)) if _num(shots) is not None else 'default shots'}): "
        f'<span class="qc-o-pass">{t_all["passed"]} passed</span>, '
        f'<span class="{"qc-o-fail" if t_all["failed"] else "qc-muted"}">{t_all["failed"]} failed</span>; '
        f'B significantly better on <span class="qc-better">{t_sub["better"]}</span>, worse on '
        f'<span class="qc-worse">{t_sub["worse"]}</span>, undetermined on <span class="qc-undet">{t_sub["undetermined"]}</span>'
        f'{" of " + str(len(subjects)) + " subjects" if len(subjects) != len(rows) else ""}.</p>'
    )
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


def render_summary(records: Iterable[Record], run: Mapping[str, Any] | None = None,
                   stats: Mapping[str, Any] | None = None) -> str:
    """The whole block: headline, models and settings, then a section per benchmark."""
    run = run or {}
    rows = list(records)
    groups = group_by_benchmark(rows)
    slugs = _slugs(list(groups))
    label_a, label_b = _labels(rows, run)
    out = [f'<div class="qwencmp" id="qwencmp"><style>{CSS}</style>',
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
    out.append(f"<script>{_SCRIPT}</script></div>")
    return "".join(out)
