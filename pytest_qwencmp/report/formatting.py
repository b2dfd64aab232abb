"""How numbers and records read, wherever they are shown: one source for every report.

The terminal tables, Markdown, JSON, HTML and the failure messages all word a
record's numbers with these helpers: which items are aggregates
(:func:`is_overall`), the one tally behind every report (:func:`counts`),
bounds and intervals that never round across 0 (:func:`record_bound`,
:func:`fmt_bound`, :func:`fmt_ci`), p-values, MDEs, scores, and for HTML the
escaping (:func:`esc`, the same ``html.escape`` the templates use) and
tolerant number cells (:func:`num`, :func:`fmt`, :func:`p_cell`,
:func:`score_cell`, :func:`ci_text`). Pure functions of JSON-able records.

Counts: ``passed``/``failed``/``underpowered`` are over every item;
``better``/``worse``/``undetermined`` over the benchmark's family (its
non-overall items, the ones adjusted together). ``overall`` — lm-eval's group
score, a size-weighted micro-average over all questions — is tested alone,
unadjusted, and reported on its own line.

A sequential run (``--sequential``) adds, per benchmark, how many documents it
evaluated in how many looks and why it stopped (:func:`sequential_sentence`),
and per item the look that decided it (:func:`sequential_tag`).
"""

from __future__ import annotations

import html
import math
from collections import OrderedDict
from typing import Any, Iterable, Mapping

from ..config.benchmarks import OVERALL
from ..stats.paired import POINTS, TEST_NAMES

Record = Mapping[str, Any]


# --------------------------------------------------------------------------- records


def is_overall(record: Record) -> bool:
    """The benchmark's aggregate item(s): ``overall`` or ``overall:<metric>``."""
    return str(record.get("item", "")).split(":")[0] == OVERALL


def group_by_benchmark(records: Iterable[Record]) -> "OrderedDict[str, list[Record]]":
    groups: OrderedDict[str, list[Record]] = OrderedDict()
    for record in sorted(records, key=lambda r: (r.get("benchmark_order", 0), r.get("order", 0))):
        groups.setdefault(str(record.get("benchmark", "")), []).append(record)
    return groups


def record_points(points: float, threshold: float = 0.0) -> float:
    """A bound in points for a record: 4 decimals, never rounded onto or across ``threshold``.

    Keeps ``t ∉ [low, high] ⟺ p(t) < level`` true of the recorded numbers too
    (t = 0 for the verdict's interval, a key's threshold for a key's).
    """
    rounded = round(points, 4)
    if points > threshold and rounded <= threshold:
        return round(threshold + 0.0001, 4) if round(threshold + 0.0001, 4) > threshold else points
    if points < threshold and rounded >= threshold:
        return round(threshold - 0.0001, 4) if round(threshold - 0.0001, 4) < threshold else points
    return rounded


def record_bound(value: float) -> float:
    """A bound of B − A (fraction) in points for a record: 4 decimals, never rounded across 0."""
    return record_points(value * POINTS)


def counts(records: Iterable[Record]) -> dict[str, int]:
    """The one tally behind every report (see the module docstring for what each count covers)."""
    rows = list(records)
    family = [r for r in rows if not is_overall(r)]
    result = {
        "items": len(rows),
        "passed": sum(1 for r in rows if r.get("passed")),
        "failed": sum(1 for r in rows if not r.get("passed")),
        "underpowered": sum(1 for r in rows if r.get("underpowered")),
        "family": len(family),
        "better": 0,
        "worse": 0,
        "undetermined": 0,
    }
    for r in family:
        sig = r.get("significance")
        result[sig if sig in ("better", "worse") else "undetermined"] += 1
    return result


# --------------------------------------------------------------------------- numbers as text


def fmt_bound(value: Any) -> str:
    """A bound in points: ``+1.23``; a bound within 0.005 of 0 keeps its side (``+0.003``)."""
    if value is None:
        return "—"
    value = float(value)
    if value != 0 and abs(value) < 0.005:
        return f"{value:+.1g}"
    return f"{value:+.2f}"


def fmt_ci(low: Any, high: Any) -> str:
    if low is None or high is None:
        return "—"
    return f"[{fmt_bound(low)}, {fmt_bound(high)}]"


def fmt_p(p: Any) -> str:
    if p is None:
        return "—"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def fmt_mde(record: Record) -> str:
    """``±12.3`` points; ``none`` when no difference is detectable at this size; ``—`` without per-document data."""
    if record.get("mde_level") is None:
        return "—"
    mde = record.get("mde")
    return "none" if mde is None else f"±{mde:.1f}"


def score_text(value: float | None, stderr: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:.2f} ± {stderr:.2f}" if stderr is not None else f"{value:.2f}"


def verdict_text(record: Record) -> str:
    """The verdict as every table words it (terminal, Markdown, HTML, JUnit ``qwencmp_verdict``):
    ``PASS · better``, ``FAIL · no detectable difference · underpowered``, and with ``--sequential`` the look
    that decided it (``PASS · better · look 1/4``)."""
    outcome = "PASS" if record.get("passed") else "FAIL"
    significance = record.get("significance") or ""
    text = f"{outcome} · {significance}" if significance and significance != "n/a" else outcome
    tag = sequential_tag(record)
    return text + (" · underpowered" if record.get("underpowered") else "") + (f" · {tag}" if tag else "")


def batch_size_text(model: Mapping[str, Any]) -> str | None:
    """The batch size a model ran with, per benchmark when they differ: ``16``, ``auto → 64``,
    ``auto → mmlu 32, hellaswag 64``; the requested size alone when no evaluation recorded one; None without either."""
    requested = model.get("requested_batch_size")
    ran = {k: v for k, v in (model.get("batch_size") or {}).items() if v is not None} if isinstance(model.get("batch_size"), Mapping) else {}

    def one(value: Any) -> str:
        return " and ".join(str(v) for v in value) if isinstance(value, list) else str(value)

    if not ran:
        return None if requested is None else str(requested)
    shown = {one(v) for v in ran.values()}
    text = shown.pop() if len(shown) == 1 else ", ".join(f"{name} {one(v)}" for name, v in ran.items())
    return f"auto → {text}" if requested == "auto" else text


def expectations_text(expectations: Any) -> str:
    """The expectations file that judged the run: ``evals/expectations.toml (sha256 1070eb085334…)``."""
    if not isinstance(expectations, Mapping):
        return "none" if expectations is None else str(expectations)
    digest = expectations.get("sha256")
    return f"{expectations.get('path')} (sha256 {digest[:12]}…)" if digest else str(expectations.get("path"))


def confidence(record: Record) -> str:
    return f"{1 - float(record.get('alpha') or 0.05):.0%}"


def paired_test_name(record: Record) -> str:
    """The name of the item's paired test, as every report shows it (``Tango score (cc)``, ``paired permutation``)."""
    test = record.get("test")
    return "" if not test else TEST_NAMES.get(str(test), str(test))


def adjustment_phrase(record: Record) -> str:
    """How an item's adjusted pair was obtained, in words."""
    if is_overall(record):
        return "tested alone (group score), unadjusted"
    size = int(record.get("family_size") or 1)
    if size <= 1:
        return "alone in its family, no adjustment"
    return f"{record.get('correction')}-adjusted over {size} items"


# --------------------------------------------------------------------------- numbers in HTML cells (any value, never an exception)


def esc(value: Any) -> str:
    """Text for HTML/SVG content and attribute values (quotes escaped too)."""
    return html.escape("" if value is None else str(value), quote=True)


def num(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def fmt(value: Any, spec: str = ".2f", missing: str = "—") -> str:
    number = num(value)
    return missing if number is None else format(number, spec)


def p_cell(value: Any) -> str:
    p = num(value)
    if p is None:
        return "—"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def score_cell(value: Any, stderr: Any) -> str:
    if num(value) is None:
        return "—"
    return f"{fmt(value)} ± {fmt(stderr)}" if num(stderr) is not None else fmt(value)


def ci_text(record: Record, prefix: str = "") -> str:
    """``[low, high]`` of the record's interval (``prefix="adjusted_"``: the adjusted one)."""
    low, high = num(record.get(prefix + "ci_low")), num(record.get(prefix + "ci_high"))
    return "—" if low is None or high is None else fmt_ci(low, high)


# --------------------------------------------------------------------------- sequential runs (--sequential)


def sequential_account(rows: Iterable[Record]) -> Mapping[str, Any] | None:
    """A benchmark's sequential account (documents, looks, why it stopped, the method), None for a full run."""
    return next((r["sequential"]["benchmark"] for r in rows if isinstance(r.get("sequential"), Mapping)), None)


def sequential_sentence(rows: Iterable[Record]) -> str:
    """'evaluated 3,510 of 14,042 documents (25 %) in 2 looks; stopped: all 58 items with expectations decided'."""
    account = sequential_account(rows)
    if not account:
        return ""
    done, total, looks = account["documents_evaluated"], account["documents_total"], account["looks"]
    return (f"evaluated {done:,} of {total:,} documents ({100 * done / max(total, 1):.0f} %) in {looks} look"
            f"{'s' if looks != 1 else ''}; stopped: {account['stopped']}")


def sequential_tag(record: Record) -> str:
    """An item's sequential state in a few words: the look that decided it, or what its numbers cover."""
    state = record.get("sequential")
    if not isinstance(state, Mapping):
        return ""
    account = state.get("benchmark") or {}
    if state.get("look"):
        return f"look {state['look']}/{account.get('planned_looks', '?')}"
    if state.get("verdict") == "fixed design":
        return "last look, fixed design"
    return f"on {state.get('documents', 0):,} of {state.get('documents_total', 0):,} documents"
