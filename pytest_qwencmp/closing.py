"""The end of a comparison session: what its items reported, what it says, which files it writes.

:class:`Results` gathers what the items' test reports carry (on an xdist
controller: every worker's; the property names are ``session``'s);
:func:`summary_lines` and :func:`html_block` are what the terminal summary and
pytest-html's report say; :func:`finish` writes what the session was asked to
keep (baseline, results JSON, Markdown, the step summary) and says each in a
closing line. It knows nothing of pytest: ``plugin`` calls it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import QwencmpError
from .files import write_atomic
from .report.formatting import group_by_benchmark, sequential_account
from .report.html import html_summary
from .report.junit import RECORD_PROPERTY
from .report.results import combine_stats, results_document
from .report.text import impossible_notes, markdown_tables, reuse_lines, settings_lines, text_tables
from .session import LM_EVAL_PROPERTY, RUN_PROPERTY, SETUP_PROBLEM_PROPERTY, ComparisonRun
from .stopping import sequential_documents
from .store.format import RESULTS_KEY, SavedEvaluations
from .store.shards import ShardSpec


# --------------------------------------------------------------------------- what the items reported


@dataclass
class Results:
    """What the session's items reported (on an xdist controller: every worker's), and the lines said at the end."""

    records: dict[str, dict[str, Any]] = field(default_factory=dict)  # node id -> the item's record
    run_info: dict[str, Any] = field(default_factory=dict)
    lm_eval_results: dict[str, dict[str, Any]] = field(default_factory=dict)
    worker_stats: list[dict[str, Any]] = field(default_factory=list)
    worker_baseline_warnings: list[str] = field(default_factory=list)
    closing_lines: list[str] = field(default_factory=list)
    not_run: int = 0  # items skipped once the session stopped (a model, or the data, cannot be had)
    setup_problem: str | None = None  # a worker stopped the session on a setup problem (SETUP_PROBLEM_PROPERTY)
    started: float = field(default_factory=time.perf_counter)

    @staticmethod
    def record_of(properties) -> dict[str, Any] | None:
        """The item's record among a test report's ``user_properties``, or None."""
        for name, value in properties:
            if name == RECORD_PROPERTY:
                return json.loads(value)
        return None

    def take(self, properties, *, nodeid: str, outcome: str, when: str) -> None:
        """Keep what one test report carries: its record (with outcome and node id), the run's settings, lm-eval's results."""
        for name, value in properties:
            if name == RECORD_PROPERTY and when == "call":
                record = json.loads(value)
                record["outcome"] = outcome
                record["nodeid"] = nodeid
                self.records[nodeid] = record
            elif name == RUN_PROPERTY:
                self.run_info = with_batch_sizes(json.loads(value), self.run_info)
            elif name == SETUP_PROBLEM_PROPERTY:
                self.setup_problem = str(value)
            elif name == LM_EVAL_PROPERTY:
                payload = json.loads(value)
                self.lm_eval_results[payload["benchmark"]] = payload

    def worker_output(self, run: ComparisonRun) -> dict[str, str]:
        """What an xdist worker hands its controller at the end (counters, baseline warnings)."""
        return {"qwencmp_stats": json.dumps(run.stats()), "qwencmp_baseline_warnings": json.dumps(run.baseline_warnings)}

    def take_worker_output(self, output: Mapping[str, str]) -> None:
        if "qwencmp_stats" in output:
            self.worker_stats.append(json.loads(output["qwencmp_stats"]))
        if "qwencmp_baseline_warnings" in output:
            self.worker_baseline_warnings += json.loads(output["qwencmp_baseline_warnings"])

    def stats(self, run: ComparisonRun) -> dict[str, Any]:
        totals = combine_stats([run.stats(), *self.worker_stats])
        totals["wall_seconds"] = round(time.perf_counter() - self.started, 1)
        return totals


def with_batch_sizes(run_info: dict[str, Any], earlier: Mapping[str, Any]) -> dict[str, Any]:
    """``run_info`` (one item's view of the run) with the batch sizes that ran for every benchmark seen so far."""
    for side, model in (run_info.get("models") or {}).items():
        seen = ((earlier.get("models") or {}).get(side) or {}).get("batch_size") or {}
        if seen or isinstance(model.get("batch_size"), dict):
            model["batch_size"] = {**seen, **(model.get("batch_size") or {})}
    return run_info


# --------------------------------------------------------------------------- the end of the session


def stopped_line(run: ComparisonRun, results: Results) -> str | None:
    """Why items were skipped without running (a model or the data could not be had), when some were."""
    if run.failures.stopped and results.not_run:
        return f"qwencmp: {results.not_run} item(s) skipped, not run: {run.failures.stopped}"
    return None


def summary_lines(run: ComparisonRun, results: Results) -> list[str]:
    """The terminal summary under "qwencmp: model comparison": settings, tables, work done, warnings; [] without records."""
    if not results.records:
        return []
    lines = [*settings_lines(results.run_info)]
    lines += [f"can never pass or fail at this size: {note}" for note in impossible_notes(results.records.values())]
    lines += ["", *text_tables(results.records.values())]
    s = results.stats(run)
    lines.append(
        f"qwencmp: {s['model_loads']} model load(s), {s['evaluations']} evaluation(s) "
        f"({s['evaluation_seconds']:.1f}s), {s['cache_hits']} cached evaluation(s) reused; "
        f"session {s['wall_seconds']:.1f}s"
    )
    lines += reuse_lines(s) + combine_stats(results.worker_stats)["ignored"]  # this process said its own at once
    accounts = [a for rows in group_by_benchmark(results.records.values()).values() if (a := sequential_account(rows))]
    if accounts:
        done, total = sum(a["documents_evaluated"] for a in accounts), sum(a["documents_total"] for a in accounts)
        lines.append(f"qwencmp: sequential: compared on {done:,} of {total:,} documents ({100 * done / max(total, 1):.0f} %) "
                     f"over {len(accounts)} benchmark(s); lm-eval evaluated "
                     + (", ".join(f"{n:,} for model {side.upper()}" for side, n in sorted(s["documents_evaluated"].items()))
                        or "none") + " in this session (the others were cached)")
    plan = results.run_info.get("shard")
    if plan and run.shard_plan is None:  # under xdist the workers planned: say here what this shard ran
        mine = plan["benchmarks"][plan["index"] - 1]
        lines.append(f"qwencmp: shard {plan['index']}/{plan['count']} ran {', '.join(mine) or 'nothing'}")
    for warning in dict.fromkeys(run.baseline_warnings + results.worker_baseline_warnings):
        lines.append(f"qwencmp: baseline settings differ (allowed): {warning}")
    checks = [r["baseline"] for r in results.records.values() if isinstance(r.get("baseline"), dict)]
    if checks:
        regressed = sum(bool(c.get("regressed")) for c in checks)
        lines.append(
            f"qwencmp: model B compared with baseline {checks[0].get('baseline')!r} on {len(checks)} item(s): "
            f"{regressed} regressed beyond their tolerance (column \"B − baseline\" above)"
        )
    lines += [f"qwencmp: WARNING: {w}" for w in dict.fromkeys(w for r in results.records.values() for w in r.get("warnings", ()))]
    return lines + results.closing_lines


def html_block(run: ComparisonRun, results: Results) -> str | None:
    """The comparison block at the top of pytest-html's report, or None without records."""
    if not results.records:
        return None
    return html_summary(results.records.values(), results.run_info, results.stats(run))


def shard_ran_nothing(run: ComparisonRun, shard: ShardSpec | None) -> bool:
    """A shard job whose split gave it no benchmark (more jobs than benchmarks): it succeeds with nothing collected."""
    return shard is not None and (run.shard_plan is None or not run.shard_plan.mine)


def finish(
    run: ComparisonRun,
    results: Results,
    *,
    shard: ShardSpec | None,
    project_root: Path,
    baseline_save: str | None = None,
    baseline_dir: Path | None = None,
    json_path: str | None = None,
    markdown_path: str | None = None,
    step_summary: str | None = None,
) -> None:
    """Write what the session was asked to keep (baseline, results JSON, Markdown, the step summary); say each in a closing line."""
    shard_plan = run.shard_plan  # None on an xdist controller: its workers collect and plan
    if not (results.records or shard_plan is not None):
        return
    if baseline_save and results.records:
        benchmarks = list(dict.fromkeys(r["benchmark"] for r in results.records.values()))
        try:
            path = run.save_baseline(baseline_save, baseline_dir, benchmarks, project_root,
                                     documents=sequential_documents(results.records.values()))
        except QwencmpError as exc:
            path, reason = None, exc.message
        else:
            reason = "some evaluations are missing from the cache (did items fail to evaluate?)"
        results.closing_lines.append(
            f"qwencmp: saved baseline {baseline_save!r} to {path}" if path else f"qwencmp: baseline {baseline_save!r} NOT saved: {reason}"
        )
    if json_path:
        document = results_document(results.records.values(), results.run_info or run.describe(), results.lm_eval_results,
                                    results.stats(run))
        if shard is not None:  # what merge reads (~1 KB per document)
            saved = _shard_evaluations(run, results, shard, project_root)
            if saved is not None:
                document[RESULTS_KEY] = saved.to_json()
        write_atomic(Path(json_path), json.dumps(document, indent=2, sort_keys=False), what="the results JSON")
        results.closing_lines.append(f"qwencmp: results JSON written to {Path(json_path).resolve()}")
    if not results.records:
        return
    markdown = None
    if markdown_path:
        markdown = markdown_tables(results.records.values(), results.run_info)
        write_atomic(Path(markdown_path), markdown, what="the Markdown tables")
        results.closing_lines.append(f"qwencmp: Markdown tables written to {Path(markdown_path).resolve()}")
    if step_summary:
        with open(step_summary, "a", encoding="utf-8") as handle:
            handle.write((markdown or markdown_tables(results.records.values(), results.run_info)) + "\n")
        results.closing_lines.append("qwencmp: Markdown tables appended to $GITHUB_STEP_SUMMARY")


def _shard_evaluations(run: ComparisonRun, results: Results, shard: ShardSpec, project_root: Path) -> SavedEvaluations | None:
    """This run's evaluations in the full saved form (what ``merge`` reads), or None with a closing line saying why."""
    benchmarks = list(dict.fromkeys(r["benchmark"] for r in results.records.values()))
    try:
        saved = run.saved_evaluations(f"shard-{shard.index}-of-{shard.count}", benchmarks, project_root, full=True)
    except QwencmpError as exc:
        saved, reason = None, exc.message
    else:
        reason = "some evaluations are missing from the cache (did items fail to evaluate?)"
    if saved is None:
        results.closing_lines.append(f"qwencmp: the results JSON holds no per-document evaluations, so it cannot be merged: {reason}")
    return saved
