"""The SVG charts of the HTML report: A vs B per subject (dumbbell) and the spread of B − A (histogram).

Pure functions of JSON-able records; every string is
escaped — model output is hostile input. The intervals drawn are the
adjusted ones (``adjusted_ci_low``/``high``, the interval the verdict colour
comes from), so a coloured bar always excludes 0 and a grey one never does.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

from .formatting import Record, ci_text, esc, fmt, num, p_cell, score_cell

COLOR_A = "#d55e00"  # vermillion
COLOR_B = "#0072b2"  # blue
COLOR_BETTER = "#1a7f37"
COLOR_WORSE = "#c62828"
COLOR_UNDETERMINED = "#8a8f98"


def chart_bounds(record: Record) -> tuple[float | None, float | None]:
    """The interval a chart draws: the adjusted one when the record has it, else the unadjusted one."""
    prefix = "adjusted_" if num(record.get("adjusted_ci_low")) is not None else ""
    return num(record.get(prefix + "ci_low")), num(record.get(prefix + "ci_high"))



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


# --------------------------------------------------------------------------- charts


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
    items = [r for r in rows if num(r.get("a")) is not None and num(r.get("b")) is not None]
    items.sort(key=lambda r: (-(num(r.get("delta")) or 0.0), str(r.get("item"))))
    row_h, top, bottom = 17, 78, 46
    label_w, p1_x0, p1_x1, p2_x0, p2_x1, width = 252, 262, 560, 612, 930, 960
    height = top + row_h * len(items) + bottom
    scores = [v for r in items for v in (num(r["a"]), num(r["b"]))]
    s_ticks = nice_ticks(max(0.0, min(scores) - 2), min(100.0, max(scores) + 2), 6)
    s_lo, s_hi = s_ticks[0], s_ticks[-1]
    deltas = [0.0]
    for r in items:
        for value in (num(r.get("delta")), *chart_bounds(r)):
            if value is not None:
                deltas.append(value)
    if overall is not None and num(overall.get("delta")) is not None:
        deltas.append(num(overall["delta"]))
    d_ticks = nice_ticks(min(deltas), max(deltas), 7)
    d_lo, d_hi = d_ticks[0], d_ticks[-1]

    def sx(v: float) -> float:
        return p1_x0 + (v - s_lo) / (s_hi - s_lo) * (p1_x1 - p1_x0)

    def dx(v: float) -> float:
        return p2_x0 + (v - d_lo) / (d_hi - d_lo) * (p2_x1 - p2_x0)

    title = f"{label_a} vs {label_b} per subject ({metric}), sorted by improvement"
    desc = (f"Left: {metric} of {label_a} and {label_b} per subject, in points. Right: the improvement "
            f"B − A with its adjusted paired confidence interval (the verdict's interval). {len(items)} subjects.")
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
        f'<text x="{(p2_x0 + p2_x1) / 2}" y="40" text-anchor="middle" font-size="12" font-weight="600">Improvement B − A (points), adjusted CI</text>'
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
    if overall is not None and num(overall.get("delta")) is not None:
        x = dx(num(overall["delta"]))
        out.append(
            f'<g class="qc-overall-mark"><title>{esc(overall.get("item"))}: Δ {fmt(overall.get("delta"), "+.2f")} {esc(ci_text(overall))}</title>'
            f'<line x1="{x:.1f}" y1="{y0}" x2="{x:.1f}" y2="{y1}" stroke="{COLOR_B}" stroke-dasharray="4 3"/>'
            f'<text x="{x:.1f}" y="{top - 22}" text-anchor="middle" font-size="10" fill="{COLOR_B}">overall {fmt(overall.get("delta"), "+.2f")}</text></g>'
        )
    for i, r in enumerate(items):
        cy = top + i * row_h + row_h / 2
        a, b, d = num(r["a"]), num(r["b"]), num(r.get("delta"))
        name = str(r.get("item"))
        tip = (f"{name}: {label_a} {score_cell(r.get('a'), r.get('a_stderr'))}, {label_b} {score_cell(r.get('b'), r.get('b_stderr'))}; "
               f"Δ {fmt(d, '+.2f')}, adjusted CI {ci_text(r, 'adjusted_')}, adj. p {p_cell(r.get('adjusted_p'))}, {r.get('significance') or 'n/a'}"
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
        lo, hi = chart_bounds(r)
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
    deltas = [(num(r.get("delta")), r.get("significance")) for r in rows if num(r.get("delta")) is not None]
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
    if overall is not None and num(overall.get("delta")) is not None:
        ox = x(min(max(num(overall["delta"]), edges[0]), edges[-1]))
        out.append(f'<line x1="{ox:.1f}" y1="{top - 4}" x2="{ox:.1f}" y2="{top + plot_h}" stroke="{COLOR_B}" stroke-dasharray="4 3"/>'
                   f'<text x="{ox:.1f}" y="{top - 8}" text-anchor="middle" font-size="10" fill="{COLOR_B}">overall {fmt(overall.get("delta"), "+.2f")}</text>')
    out.append(f'<text x="{left + plot_w / 2:.1f}" y="{height - 14}" text-anchor="middle" font-size="11" fill="#333">Δ = B − A, points (bin {step:g})</text>'
               f'<text transform="translate(13 {top + plot_h / 2:.1f}) rotate(-90)" text-anchor="middle" font-size="11" fill="#333">subjects</text>')
    out.append("</svg>")
    return "".join(out)
