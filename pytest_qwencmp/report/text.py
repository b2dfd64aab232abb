"""Comparison records as the study's tables: terminal text and Markdown, and the lines around them.

Input is plain data — the JSON-able records each item attaches to its test
report (``ItemComparison.to_record``) and the run's settings — so the same
tables render on the xdist controller, in pytest-html and in CI summaries.
This module words an item's numbers (:func:`item_lines`, :func:`short_line`:
the failure message and ``-rA``), a benchmark's family and noise level
(:func:`benchmark_lines`, the sentences the HTML shows too), the tables
(:func:`text_tables`, :func:`markdown_tables`), the run's settings
(:func:`settings_lines`) and what was reused (:func:`reuse_lines`). Counts and
number formats come from ``formatting``.
"""

from __future__ import annotations

import statistics as pystats
from typing import Any, Iterable, Mapping, Sequence

from ..config.sides import describe_setup
from ..stats.planning import impossible_lines, impossible_text
from ..stats.power import level_phrase
from .formatting import (
    Record,
    adjustment_phrase,
    batch_size_text,
    confidence,
    expectations_text,
    counts,
    fmt_ci,
    fmt_mde,
    fmt_p,
    group_by_benchmark,
    is_overall,
    paired_test_name,
    score_text,
    sequential_sentence,
    sequential_tag,
    verdict_text,
)


def item_lines(record: Record) -> list[str]:
    """An item's story in three short lines: the scores and the paired test; the adjusted test, the verdict and
    the MDE; the expectations missed (or met). A fourth appears only for an expectation the run's size can never
    decide. The power of each rule is in the JSON and HTML."""
    r = record
    first = (f"{r['benchmark']}[{r['item']}] {r['metric']}: A ({r['model_a']}) {score_text(r['a'], r.get('a_stderr'))}, "
             f"B ({r['model_b']}) {score_text(r['b'], r.get('b_stderr'))}, n = {r['n']}; B − A {r['delta']:+.2f} points")
    if r.get("ci_low") is not None:
        first += f", {confidence(r)} CI {fmt_ci(r['ci_low'], r['ci_high'])}, {paired_test_name(r)} p = {r['p_value']:.3g}"
    elif r.get("delta_stderr") is not None:
        first += f" ± {r['delta_stderr']:.2f} (unpaired stderr)"
    lines = [first + "."]
    if r.get("adjusted_p") is not None:
        adjusted = ""
        if not is_overall(r) and int(r.get("family_size") or 1) > 1:
            adjusted = f": CI {fmt_ci(r.get('adjusted_ci_low'), r.get('adjusted_ci_high'))}, p = {r['adjusted_p']:.3g}"
        mde = fmt_mde(r)
        power = "" if mde == "—" else (f"; MDE {mde} points" if mde != "none" else f"; no MDE: {r['n']} documents detect no difference")
        lines.append(f"  {adjustment_phrase(r)}{adjusted} → {r.get('significance')}{power}.")
    if r.get("failures"):
        lines.append("  Missed: " + "; ".join(r["failures"]) + ".")
    elif r.get("checked"):
        lines.append("  Expected: " + "; ".join(r["checked"]) + ".")
    if r.get("impossible"):
        lines.append("  At this size: " + "; ".join(impossible_text(entry) for entry in r["impossible"]) + ".")
    state = r.get("sequential")
    if isinstance(state, Mapping):
        lines.append(f"  Sequential ({sequential_tag(r)}): {state.get('documents', 0):,} of "
                     f"{state.get('documents_total', 0):,} documents evaluated for this item"
                     + (f"; {state['note']}" if state.get("note") else "") + ".")
    return lines


def short_line(record: Record) -> str:
    """One line for pytest's short summary (``-rA``): the item's numbers and verdict."""
    r = record
    parts = [f"B − A {r['delta']:+.2f}"]
    if r.get("ci_low") is not None:
        parts[0] += f" {confidence(r)} CI {fmt_ci(r['ci_low'], r['ci_high'])} p {fmt_p(r.get('p_value'))}"
    if r.get("adjusted_p") is not None and not is_overall(r) and int(r.get("family_size") or 1) > 1:
        parts.append(f"{r.get('correction')} CI {fmt_ci(r.get('adjusted_ci_low'), r.get('adjusted_ci_high'))} "
                     f"p {fmt_p(r.get('adjusted_p'))}")
    parts.append(str(r.get("significance")))
    if fmt_mde(r) not in ("—", "none"):
        parts.append(f"MDE {fmt_mde(r)}")
    elif fmt_mde(r) == "none":
        parts.append("no MDE (too few documents)")
    if r.get("underpowered"):
        parts.append("underpowered")
    return "; ".join(parts)


# --------------------------------------------------------------------------- per benchmark


def _family_noun(rows: Sequence[Record]) -> str:
    return "subjects" if any(is_overall(r) for r in rows) else "metrics" if len(rows) > 1 else "item"


def family_sentence(rows: Sequence[Record]) -> str:
    """Which items form the family and how they were adjusted."""
    family = [r for r in rows if not is_overall(r)]
    if not family:
        return ""
    noun = _family_noun(rows)
    if len(family) == 1:
        return "1 item, tested alone (no multiplicity adjustment)"
    correction = next((r.get("correction") for r in family if r.get("correction")), "none")
    how = "unadjusted (--correction none)" if correction == "none" else f"adjusted together ({correction})"
    return f"{len(family)} {noun} form one family, {how}"


def noise_sentence(rows: Sequence[Record]) -> str:
    """What 'no detectable difference' means at this benchmark's sizes, in plain words."""
    family = [r for r in rows if not is_overall(r) and r.get("mde_level") is not None]
    if not family:
        return ""
    mdes = [float(r["mde"]) for r in family if r.get("mde") is not None]
    level = float(family[0]["mde_level"])
    sizes = sorted({int(r["n"]) for r in family})
    n_text = f"{sizes[0]:,}" if len(sizes) == 1 else f"{sizes[0]:,}–{sizes[-1]:,}"
    if not mdes:
        return (f"With {n_text} documents per item no difference of any size can be told apart from noise at "
                f"the {level_phrase(level)}, so \"no detectable difference\" says nothing about these items.")
    typical = pystats.median(mdes)
    spread = "" if f"{min(mdes):.1f}" == f"{max(mdes):.1f}" else f" (per item {min(mdes):.1f}–{max(mdes):.1f})"
    missing = len(family) - len(mdes)
    extra = f"; {missing} item(s) cannot detect any difference" if missing else ""
    return (f"\"No detectable difference\" here means: with {n_text} documents per item, true differences smaller than "
            f"about ±{typical:.1f} points{spread} cannot be told apart from noise (80% power, {level_phrase(level)}){extra}.")


def overall_sentence(record: Record) -> str:
    state = record.get("sequential")
    if isinstance(state, Mapping) and state.get("documents") != state.get("documents_total"):
        return (f"{record['item']}: the size-weighted mean of the subjects' scores on the {record['n']:,} of "
                f"{state.get('documents_total', 0):,} questions evaluated (lm-eval's group score, estimated subject by "
                f"subject); its paired CI and p are over those questions pooled; tested alone, unadjusted → "
                f"{record.get('significance')}.")
    return (f"{record['item']}: lm-eval's group score, a size-weighted micro-average over all {record['n']:,} questions; "
            f"tested alone, unadjusted → {record.get('significance')}.")


def sampling_sentence(rows: Sequence[Record]) -> str:
    """What sampled generations mean for a generation benchmark's score (said once per benchmark), or ""."""
    sampling = next((r.get("sampling") for r in rows if r.get("sampling")), None)
    if not sampling:
        return ""
    k = int(sampling.get("samples") or 1)
    benchmark = rows[0].get("benchmark", "")
    how = f"temperature {sampling.get('temperature')}"
    if k == 1:
        return (f"pass@1 comes from one sampled answer per problem ({how}), so it carries sampling noise: the same model "
                "scores differently on a rerun, and the paired test counts that noise as disagreement. "
                f"--samples {benchmark}=K averages K answers per problem (pass@1 = c/K, Chen et al. 2021), "
                "compared with the paired permutation test.")
    return (f"pass@1 is c/K per problem over K = {k} sampled answers ({how}; Chen et al. 2021's unbiased estimate "
            "for k = 1), compared with the paired permutation test: sampling noise is averaged over the K answers, "
            "not removed.")


def impossible_notes(records: Iterable[Record]) -> list[str]:
    """The run's rules that can never pass (or fail) at their items' size, grouped as ``plan`` prints them."""
    return impossible_lines((r["benchmark"], r["item"], entry) for r in records for entry in r.get("impossible") or ())


def benchmark_lines(rows: Sequence[Record]) -> list[str]:
    """The headline of one benchmark: counts, the family, overall, and what 'no detectable difference' means."""
    c = counts(rows)
    title = rows[0].get("benchmark_title", rows[0].get("benchmark"))
    head = f"{title}: {c['items']} item{'s' if c['items'] != 1 else ''}, {c['passed']} passed, {c['failed']} failed"
    if c["underpowered"]:
        head += f", {c['underpowered']} underpowered"
    lines = [head + "."]
    sequential = sequential_sentence(rows)
    if sequential:
        lines.append(f"  Sequential: {sequential}.")
    family = family_sentence(rows)
    if family:
        lines.append(f"  {family}: B significantly better on {c['better']}, worse on {c['worse']}, "
                     f"no detectable difference on {c['undetermined']}.")
    lines += ["  " + overall_sentence(r) for r in rows if is_overall(r)]
    for sentence in (noise_sentence(rows), sampling_sentence(rows)):
        if sentence:
            lines.append("  " + sentence)
    return lines


def _adjusted_cells(record: Record) -> tuple[str, str]:
    if is_overall(record):
        return "— (alone)", "—"
    return fmt_ci(record.get("adjusted_ci_low"), record.get("adjusted_ci_high")), fmt_p(record.get("adjusted_p"))


def baseline_name(records: Sequence[Record]) -> str | None:
    """The baseline the rows were compared with (--qwencmp-baseline-compare), None without one."""
    return next((r["baseline"].get("baseline") for r in records if isinstance(r.get("baseline"), Mapping)), None)


def baseline_cell(record: Record) -> str:
    """B now against B in the baseline: the delta in points, a significant change, a regression."""
    check = record.get("baseline")
    if not isinstance(check, Mapping) or check.get("delta") is None:
        return "—"
    cell = f"{check['delta']:+.2f}"
    if check.get("significance") in ("better", "worse"):
        cell += f" ({check['significance']})"
    return cell + (" REGRESSED" if check.get("regressed") else "")


def table_rows(records: Sequence[Record]) -> list[tuple[str, ...]]:
    with_baseline = baseline_name(records) is not None
    return [
        (
            str(r["item"]),
            score_text(r["a"], r.get("a_stderr")),
            score_text(r["b"], r.get("b_stderr")),
            f"{r['delta']:+.2f}",
            fmt_ci(r.get("ci_low"), r.get("ci_high")),
            fmt_p(r.get("p_value")),
            *_adjusted_cells(r),
            fmt_mde(r),
            *((baseline_cell(r),) if with_baseline else ()),
            verdict_text(r),
        )
        for r in records
    ]


def adjusted_header(rows: Sequence[Record]) -> str:
    family = [r for r in rows if not is_overall(r)]
    if len(family) <= 1:
        return "adj. CI (alone)"
    return f"{family[0].get('correction')} CI (×{len(family)})"


def _headers(records: Sequence[Record]) -> tuple[str, ...]:
    first = records[0]
    metric = first.get("metric", "acc")
    return (
        "Task",
        f"{first['model_a']} {metric} ± stderr",
        f"{first['model_b']} {metric} ± stderr",
        "B − A",
        f"{confidence(first)} CI (paired)",
        "p",
        adjusted_header(records),
        "adj. p",
        "MDE",
        *((f"B − baseline {name!r}",) if (name := baseline_name(records)) else ()),
        "Verdict",
    )


def text_tables(records: Iterable[Record], width: int = 120) -> list[str]:
    lines: list[str] = []
    for benchmark, rows in group_by_benchmark(records).items():
        headers = _headers(rows)
        body = table_rows(rows)
        widths = [max(len(h), *(len(r[i]) for r in body)) for i, h in enumerate(headers)]
        lines += benchmark_lines(rows)
        lines.append("  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip())
        lines.append("  ".join("-" * w for w in widths))
        for row in body:
            lines.append("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
        lines.append("")
    return lines


def settings_lines(run: Mapping[str, Any]) -> list[str]:
    """The run's settings as 'key: value' lines (models, backend, dtype, shots, generation, versions)."""
    lines = []
    models = {side: run.get("models", {}).get(side) for side in ("a", "b")}
    notices = {side: model.get("notice") for side, model in models.items() if model and model.get("notice")}
    shared_notice = notices.get("a") if len(notices) == 2 and notices["a"] == notices["b"] else None
    for side, model in models.items():
        if not model:
            continue
        revision = f" @ {model['revision']}" if model.get("revision") else ""
        params = f", {model['parameters']:,} parameters" if model.get("parameters") else ""
        split = f", tensor parallel x{model['tensor_parallel']}" if (model.get("tensor_parallel") or 1) > 1 else ""
        batch = f", batch size {batch_size_text(model)}" if batch_size_text(model) else ""
        lines.append(
            f"model {side.upper()}: {model['name_or_path']}{revision} — {model['backend']} backend, "
            f"{model['dtype']} on {model['device']}{split}{batch}{params}"
        )
        if model.get("notice") and not shared_notice:
            lines.append(f"  note: {model['notice']}")
        for name, text in describe_setup(model.get("setup") or {}):  # adapter, chat template, model args
            lines.append(f"  {name}: {text}")
    if shared_notice:
        lines.append(f"note (both models): {shared_notice}")
    for group in _SETTING_LINES:  # related settings share a line: a CI log stays short
        parts = []
        for key in group:
            if key in run and run[key] not in (None, {}, ""):
                value = run[key]
                if key == "expectations":
                    value = expectations_text(value)
                elif isinstance(value, Mapping):
                    value = ", ".join(f"{k}={v}" for k, v in value.items())
                parts.append(f"{key.replace('_', ' ')}: {value}")
        if parts:
            lines.append(" · ".join(parts))
    return lines


# The run-wide settings, by line: what the models were asked; where the data and the method came from;
# the sandbox model-written code ran in; the baseline model B was compared with.
_SETTING_LINES = (
    ("num_fewshot", "limit", "generation", "samples", "seed"),
    ("data", "lm_eval_version", "correction"),
    ("sequential",),
    ("expectations",),
    ("code_sandbox",),
    ("baseline",),
)


def markdown_tables(records: Iterable[Record], run: Mapping[str, Any]) -> str:
    """GitHub-flavoured Markdown: settings, the rules that cannot be decided at this size, then one table per benchmark."""
    records = list(records)
    lines = ["## Model comparison", ""]
    lines += [f"- {s}" for s in settings_lines(run)]
    lines += [f"- **Can never pass or fail at this size:** {note}" for note in impossible_notes(records)]
    lines.append("")
    for benchmark, rows in group_by_benchmark(records).items():
        headers = _headers(rows)
        lines.append(f"### {rows[0].get('benchmark_title', benchmark)}")
        lines.append("")
        head, *rest = benchmark_lines(rows)
        lines += [f"**{head}**", ""] + [f"- {line.strip()}" for line in rest] + [""]
        lines.append("| " + " | ".join(headers) + " |")
        lines.append("|" + "|".join([":---"] + ["---:"] * (len(headers) - 1)) + "|")
        for row in table_rows(rows):
            lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |")
        lines.append("")
    return "\n".join(lines)


def reuse_lines(stats: Mapping[str, Any]) -> list[str]:
    """Per model, which evaluations ran here and which were reused, and from where (the cache, or an import)."""
    reused = stats.get("reused") or {}
    if not reused.get("a") and not reused.get("b"):
        return []  # everything was evaluated here: the counts line says it all
    said: dict[str, str] = {}
    for side in ("a", "b"):
        segments = []
        evaluated = (stats.get("evaluated") or {}).get(side) or []
        if evaluated:
            segments.append("evaluated " + ", ".join(evaluated))
        by_origin: dict[str, list[str]] = {}
        for benchmark, origin in (reused.get(side) or {}).items():
            by_origin.setdefault(origin, []).append(benchmark)
        for origin, names in by_origin.items():
            segments.append(f"reused {', '.join(names)} " + ("from the cache" if origin == "cache" else origin))
        if segments:
            said[side] = "; ".join(segments)
    if len(said) == 2 and said["a"] == said["b"]:
        return [f"qwencmp: models A and B: {said['a']}"]
    return [f"qwencmp: model {side.upper()}: {text}" for side, text in said.items()]


