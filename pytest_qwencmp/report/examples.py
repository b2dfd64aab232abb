"""The per-item details of the HTML report: warning boxes and the documents behind a verdict.

This module owns what ``html_report`` shows about single items rather than
whole tables: the warning box when a generation benchmark (MBPP, any pass@k
metric) scores near zero — the likely causes read from the model's own answers,
a few-shot suggestion and sample outputs —, the numerical-health warnings of a
benchmark's items, and ``examples_html``, the expandable detail of one table
row (its paired statistics, adjustment and MDE, the expectations it met or
missed, its power notes, and the documents where A and B disagree). Every
string from a record is escaped: model output is hostile input.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from .formatting import Record, adjustment_phrase, ci_text, esc, fmt, fmt_mde, is_overall, num, p_cell

NEAR_ZERO_POINTS = 2.0


def is_generation(record: Record) -> bool:
    """Whether the item is a generation metric (the model writes the answer, e.g. MBPP's pass@1)."""
    if "generation" in record:
        return bool(record.get("generation"))
    # older records carry no flag: pass@k (MBPP, HumanEval) is only ever a generation metric
    return any(str(record.get(key, "")).startswith(("pass@", "pass_at_")) for key in ("metric", "item"))


# --------------------------------------------------------------------------- generation warning


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
    if num(shots) == 0:
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
                      if num(shots) in (None, 0) else
                      f"Already {esc(shots)}-shot: read the outputs below and check the prompt, the stop sequence and "
                      f"<code>max_gen_toks</code>"
                      + ("" if num(shots) == 2 else f"; the study ran it 2-shot (<code>--num-fewshot {esc(benchmark)}=2</code>)"))
        out.append(
            f'<div class="qc-warning" role="alert"><p class="qc-warning-head">⚠ {esc(label)} scores '
            f'{fmt(record.get(side))} on {esc(record.get("benchmark_title", benchmark))} {esc(record.get("item"))} '
            f'({esc(label_b if side == "a" else label_a)}: {fmt(record.get(other))}) — that measures the answer format, not coding ability.</p>'
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
                    f'{fmt(e.get(f"{side}_score"), "g")} · {len(str(answer or ""))} characters</div>'
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


# --------------------------------------------------------------------------- a table row's details


def examples_html(record: Record, label_a: str, label_b: str) -> str:
    """The detail row of one item: statistics, expectations, power notes, and the documents where A and B disagree."""
    parts = []
    failures = [str(f) for f in (record.get("failures") or [])]
    checked = [str(c) for c in (record.get("checked") or [])]
    n = record.get("n")
    conf = f"{1 - float(record.get('alpha') or 0.05):.0%}"
    stats_line = (f"{esc(n)} documents · Δ {fmt(record.get('delta'), '+.2f')} ± {fmt(record.get('delta_stderr'))} "
                  f"(paired stderr) · {conf} CI {esc(ci_text(record))}, p {p_cell(record.get('p_value'))}"
                  f"{' (' + esc(record.get('test')) + ')' if record.get('test') else ''}")
    if record.get("adjusted_p") is not None:
        adjusted = "" if is_overall(record) or int(record.get("family_size") or 1) <= 1 else \
            f": CI {esc(ci_text(record, 'adjusted_'))}, p {p_cell(record.get('adjusted_p'))}"
        stats_line += f" · {esc(adjustment_phrase(record))}{adjusted} → {esc(record.get('significance'))}"
    if record.get("mde_level") is not None:
        stats_line += (f" · MDE {esc(fmt_mde(record))} points (smallest true difference found with 80% power "
                       f"at α = {fmt(record.get('mde_level'), '.2g')})")
    parts.append(f'<p class="qc-stats">{stats_line}</p>')
    if failures:
        parts.append('<p class="qc-fail-text"><b>Missed:</b> ' + "; ".join(esc(f) for f in failures) + "</p>")
    if checked:
        parts.append('<p class="qc-check-text"><b>Expected:</b> ' + "; ".join(esc(c) for c in checked) + "</p>")
    if not failures and not checked:
        parts.append('<p class="qc-check-text">No expectations set for this item.</p>')
    notes = [str(n) for n in (record.get("power_notes") or [])]
    if notes:
        parts.append('<p class="qc-check-text"><b>Power:</b> ' + "; ".join(
            f'<span class="qc-weak">{esc(n)}</span>' if n.endswith("underpowered") else esc(n) for n in notes) + "</p>")
    examples = [e for e in (record.get("examples") or []) if isinstance(e, Mapping)]
    if not examples:
        parts.append('<p class="qc-muted">No per-document examples recorded for this item.</p>')
        return "".join(parts)
    disagree = any(num(e.get("a_score")) != num(e.get("b_score")) for e in examples)
    parts.append(f'<p class="qc-muted">{"Documents where the models disagree" if disagree else "Sample documents (the models never disagree here)"}:</p>')
    for e in examples:
        sa, sb = num(e.get("a_score")), num(e.get("b_score"))

        def side_cls(mine: float | None, theirs: float | None) -> str:
            if mine is None or theirs is None or mine == theirs:
                return ""
            return " qc-win" if mine > theirs else " qc-lose"

        parts.append(
            f'<div class="qc-example"><div class="qc-ex-head">doc {esc(e.get("doc", "?"))}</div><div class="qc-ex-grid">'
            f'<div class="qc-ex-cell"><span class="qc-ex-label">prompt (tail)</span><pre class="qc-pre">{esc(e.get("prompt", ""))}</pre></div>'
            f'<div class="qc-ex-cell"><span class="qc-ex-label">target</span><pre class="qc-pre">{esc(e.get("target", ""))}</pre></div>'
            f'<div class="qc-ex-cell{side_cls(sa, sb)}"><span class="qc-ex-label qc-ex-a">{esc(label_a)} (A) · score {fmt(sa, "g")}</span>'
            f'<pre class="qc-pre">{esc(e.get("a_answer", ""))}</pre></div>'
            f'<div class="qc-ex-cell{side_cls(sb, sa)}"><span class="qc-ex-label qc-ex-b">{esc(label_b)} (B) · score {fmt(sb, "g")}</span>'
            f'<pre class="qc-pre">{esc(e.get("b_answer", ""))}</pre></div></div></div>'
        )
    return "".join(parts)
