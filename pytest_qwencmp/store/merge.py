"""Shards that belong together: reading and checking the ``--qwencmp-json`` files of ``--qwencmp-shard`` jobs.

Each shard's ``--qwencmp-json`` carries its evaluations in the full saved form
(``format.read_results``). :func:`load_shards` reads them (:func:`read_shard`),
checks that they belong together (:func:`check_shards`) — one plan of N
shards with every shard given once, the same number-changing settings and
models (``compatibility.settings_mismatches``, the one check baselines and
cache imports use too), the same correction and expectations unless the
merge sets them, every item of every benchmark present exactly once — and
returns a :class:`ShardSet`: the rebuilt evaluations, the registry the shards
defined, the rules and correction to judge with, the merged settings and
counters. ``comparison.merge_shards`` compares them with the SAME core a run
uses, so every number equals a single run's on the same evaluations, to the
last digit.

A problem with the inputs raises ``QwencmpError`` with one paragraph (the
command exits 4). Pure: no pytest, no lm-eval task, no model, no torch — a
merge job runs on a GitHub-hosted runner.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config.benchmarks import Registry, benchmark_from_table
from ..config.expectations import NO_EXPECTATIONS, Expectations, expectations_identity, load_expectations, parse_expectations
from ..errors import QwencmpError
from ..evaluation.scores import BenchmarkEvaluation
from ..report.results import combine_stats
from ..stats.multiplicity import adjust_p_values
from .compatibility import settings_mismatches
from .format import SavedEvaluations, SavedFormatError, read_results

MOST_PROBLEMS = 4  # named in the one paragraph; the count of the rest follows
ADVICE = "Merge the --qwencmp-json files of one run of every shard (rerun a failed or missing shard job first)."


@dataclass(frozen=True)
class ShardResult:
    """One shard's results file: the results document and its saved evaluations."""

    path: Path
    document: Mapping[str, Any]
    saved: SavedEvaluations

    @property
    def plan(self) -> Mapping[str, Any] | None:
        plan = self.document.get("settings", {}).get("shard")
        return plan if isinstance(plan, Mapping) else None

    @property
    def label(self) -> str:
        plan = self.plan
        return f"{self.path.name} (shard {plan['index']}/{plan['count']})" if plan else self.path.name

    @property
    def records(self) -> list[Mapping[str, Any]]:
        return list(self.document.get("comparisons") or [])

    @property
    def run_info(self) -> dict[str, Any]:
        models = self.document.get("models") or {}
        return {
            **self.document.get("settings", {}),
            "models": {side: {k: v for k, v in (models.get(side) or {}).items() if k != "lm_eval"} for side in models},
        }


def read_shard(path: Path) -> ShardResult:
    """Read one shard's results JSON (``format.read_results``); :class:`QwencmpError` (one paragraph) when it cannot be merged."""
    path = Path(path)
    try:
        document, saved = read_results(path)
    except SavedFormatError as exc:
        raise QwencmpError(f"Cannot merge {path}: {exc} {ADVICE}") from None
    return ShardResult(path, document, saved)


# --------------------------------------------------------------------------
# checks


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


def _identity(shard: ShardResult, overrides: Iterable[str]) -> dict[str, Any]:
    """What must agree between shards: the number-changing settings, and the comparison settings the merge does not set."""
    identity = dict(shard.saved.settings)
    comparison = shard.saved.comparison
    if "correction" not in overrides:
        identity["correction"] = comparison.get("correction")
    if "expectations" not in overrides:
        rules = comparison.get("expectations")
        identity["expectations"] = None if not rules else f"{rules.get('name')}, sha256 {_digest(str(rules.get('text', '')))[:8]}"
    return identity


def _plan_text(plan: Mapping[str, Any]) -> str:
    groups = plan.get("benchmarks") or []
    return ", ".join(f"{i}/{plan.get('count')} {'+'.join(g) or 'nothing'}" for i, g in enumerate(groups, 1))


def _plan_problems(shards: Sequence[ShardResult]) -> list[str]:
    planned = [s for s in shards if s.plan is not None]
    if not planned:
        return []
    if len(planned) != len(shards):
        plain = ", ".join(s.path.name for s in shards if s.plan is None)
        return [f"{plain} did not run with --qwencmp-shard while {planned[0].label} did"]
    first = planned[0].plan
    problems = []
    for shard in planned[1:]:
        plan = shard.plan
        if plan.get("count") != first.get("count") or plan.get("benchmarks") != first.get("benchmarks"):
            problems.append(
                f"the shards were planned differently ({planned[0].path.name}: {_plan_text(first)}; "
                f"{shard.path.name}: {_plan_text(plan)}), so they come from different selections, limits or data"
            )
    if problems:
        return problems
    by_index: dict[int, list[ShardResult]] = {}
    for shard in planned:
        by_index.setdefault(int(shard.plan["index"]), []).append(shard)
    for index, group in sorted(by_index.items()):
        if len(group) > 1:
            problems.append(f"shard {index}/{first['count']} is given {len(group)} times ({', '.join(s.path.name for s in group)})")
    for index, benchmarks in enumerate(first.get("benchmarks") or [], 1):
        if index not in by_index and benchmarks:
            problems.append(f"shard {index}/{first['count']} ({', '.join(benchmarks)}) is missing")
    return problems


def _settings_problems(shards: Sequence[ShardResult], overrides: Iterable[str]) -> list[str]:
    first = shards[0]
    reference = _identity(first, overrides)
    problems = []
    for shard in shards[1:]:
        diffs = settings_mismatches(reference, _identity(shard, overrides), names=(first.path.name, shard.path.name))
        if diffs:
            problems.append(f"{first.path.name} and {shard.path.name} differ in settings that change the numbers — " + "; ".join(diffs))
    return problems


def _coverage_problems(shards: Sequence[ShardResult], registry: Registry) -> list[str]:
    problems = []
    evaluated: dict[tuple[str, str], list[str]] = {}
    recorded: dict[tuple[str, str], list[str]] = {}
    for shard in shards:
        for side, benchmark in shard.saved.records:
            evaluated.setdefault((side, benchmark), []).append(shard.path.name)
        for record in shard.records:
            recorded.setdefault((record.get("benchmark"), record.get("item")), []).append(shard.path.name)
    twice = [(side, benchmark, files) for (side, benchmark), files in sorted(evaluated.items()) if len(files) > 1]
    if twice:
        shown = ", ".join(f"model {side.upper()}'s {benchmark}" for side, benchmark, _ in twice[:4]) + (", …" if len(twice) > 4 else "")
        problems.append(f"{len(twice)} evaluation(s) are in more than one file ({shown}: {', '.join(dict.fromkeys(twice[0][2]))})")
    duplicated = [(benchmark, item, files) for (benchmark, item), files in sorted(recorded.items()) if len(files) > 1]
    if duplicated:
        shown = ", ".join(f"{b}[{i}]" for b, i, _ in duplicated[:3]) + (", …" if len(duplicated) > 3 else "")
        problems.append(f"{len(duplicated)} item(s) are in more than one file ({shown})")
    # Benchmarks the given shards were to run (a missing shard is reported by the plan check).
    planned = {b for s in shards if s.plan for b in (s.plan.get("benchmarks") or [])[int(s.plan["index"]) - 1]}
    benchmarks = list(dict.fromkeys([b for b, _ in recorded] + sorted(planned)))
    for name in benchmarks:
        if name not in registry.names():
            problems.append(f"benchmark {name} has results but no definition in the saved evaluations")
            continue
        ids = [item.id for item in registry.get(name).items]
        missing = [i for i in ids if (name, i) not in recorded]
        if missing:
            shown = ", ".join(f"{name}[{i}]" for i in missing[:5]) + (", …" if len(missing) > 5 else "")
            problems.append(
                f"{len(missing)} of the {len(ids)} items of {name} are missing ({shown}): deselected (-k, --lf) "
                "or not run because the job stopped early"
            )
        sides = [s for s in ("a", "b") if (s, name) not in evaluated]
        if len(missing) < len(ids) and sides:
            problems.append(f"{name} has results but not model {' and '.join(s.upper() for s in sides)}'s per-document evaluations")
    return problems


def check_shards(shards: Sequence[ShardResult], registry: Registry, *, overrides: Iterable[str] = ()) -> None:
    """Raise one :class:`QwencmpError` paragraph naming every reason these shards cannot be merged."""
    overrides = tuple(overrides)
    problems = _plan_problems(shards) + _settings_problems(shards, overrides) + _coverage_problems(shards, registry)
    if problems:
        names = ", ".join(s.path.name for s in shards)
        shown = problems[:MOST_PROBLEMS] + ([f"and {len(problems) - MOST_PROBLEMS} more"] if len(problems) > MOST_PROBLEMS else [])
        raise QwencmpError(f"Cannot merge {names}: " + "; ".join(shown) + f". {ADVICE}")


# --------------------------------------------------------------------------
# the merge


def merged_registry(shards: Sequence[ShardResult]) -> Registry:
    """The benchmarks the shards knew, in their registry order, as each shard that ran one defined it."""
    defined: dict[str, Mapping[str, Any]] = {}
    for shard in shards:
        ran = {b for _, b in shard.saved.records}
        for name, entry in shard.saved.benchmarks_defined.items():
            if name not in defined or name in ran:
                defined[name] = entry
    try:
        ordered = sorted(defined.items(), key=lambda kv: (int(kv[1]["order"]), kv[0]))
        return Registry(tuple(benchmark_from_table(name, entry["definition"], "saved evaluations") for name, entry in ordered))
    except (KeyError, TypeError, ValueError) as exc:
        raise QwencmpError(f"Cannot merge: a shard's benchmark definitions are malformed ({exc}). {ADVICE}") from None


def _expectations(shards: Sequence[ShardResult], registry: Registry, path: Path | None) -> Expectations:
    if path is not None:
        return load_expectations(Path(path), registry)
    rules = shards[0].saved.comparison.get("expectations")
    if not rules:
        return NO_EXPECTATIONS
    return parse_expectations(str(rules.get("text", "")), Path(str(rules.get("name", "expectations.toml"))), registry)


def _correction(shards: Sequence[ShardResult], given: str | None) -> str:
    correction = (given or shards[0].saved.comparison.get("correction") or "holm").lower()
    try:
        adjust_p_values([], method=correction)
    except ValueError as exc:
        raise QwencmpError(f"--correction {correction!r}: {exc}.") from None
    return correction


def _run_info(shards: Sequence[ShardResult], correction: str, expectations: Path | None) -> dict[str, Any]:
    ran = [s for s in shards if s.records] or list(shards)
    info = ran[0].run_info
    for shard in ran[1:]:
        for side, model in shard.run_info.get("models", {}).items():
            mine = info["models"].setdefault(side, {})
            for key, value in model.items():
                if key == "batch_size" and isinstance(value, Mapping):  # per benchmark: each shard ran its own
                    mine[key] = {**(mine.get(key) or {}), **value}
                mine.setdefault(key, value)
    info["num_fewshot"] = {k: v for s in ran for k, v in (s.run_info.get("num_fewshot") or {}).items()}
    info["machine"] = "; ".join(dict.fromkeys(str(s.run_info["machine"]) for s in ran if s.run_info.get("machine")))
    for key in ("code_sandbox", "code_sandbox_details"):
        info[key] = next((s.run_info[key] for s in ran if s.run_info.get(key)), None)
    info["correction"] = correction
    rules = shards[0].saved.comparison.get("expectations")
    if expectations is not None:
        info["expectations"] = expectations_identity(Path(expectations))
    elif rules and not info.get("expectations"):  # shards written before results recorded the file
        info["expectations"] = expectations_identity(Path(str(rules.get("name"))), str(rules.get("text", "")))
    info.pop("shard", None)
    info["merged_from"] = [s.label for s in shards]
    return info


@dataclass(frozen=True)
class ShardSet:
    """Shards that belong together, checked, with what comparing them again needs.

    ``evaluations`` maps ``(side, benchmark)`` to the evaluation rebuilt from
    the saved form; ``seeds`` each benchmark's resampling seed; ``nodeids``
    each item's pytest node id; ``rules`` and ``correction`` what the merge
    judges with (the shards' own unless the merge sets them).
    """

    shards: tuple[ShardResult, ...]
    registry: Registry
    rules: Expectations
    correction: str
    evaluations: Mapping[tuple[str, str], BenchmarkEvaluation]
    seeds: Mapping[str, int]
    nodeids: Mapping[tuple[str, str], str]
    run_info: dict[str, Any]
    stats: dict[str, Any]


def load_shards(paths: Sequence[Path], *, expectations: Path | None = None, correction: str | None = None) -> ShardSet:
    """Read and check the shards' results files; :class:`QwencmpError` (one paragraph) when they cannot be merged."""
    if not paths:
        raise QwencmpError(f"Give the shards' results files to merge. {ADVICE}")
    shards = tuple(read_shard(p) for p in paths)
    registry = merged_registry(shards)
    overrides = [name for name, value in (("correction", correction), ("expectations", expectations)) if value is not None]
    check_shards(shards, registry, overrides=overrides)
    method = _correction(shards, correction)
    rules = _expectations(shards, registry, expectations)
    evaluations: dict[tuple[str, str], BenchmarkEvaluation] = {}
    seeds: dict[str, int] = {}
    nodeids: dict[tuple[str, str], str] = {}
    for shard in shards:
        for evaluation in shard.saved.evaluations():
            evaluations[(evaluation.side, evaluation.benchmark)] = evaluation
            seeds[evaluation.benchmark] = int(shard.saved.settings.get("seed", 0))
        for record in shard.records:
            if record.get("nodeid"):
                nodeids[(record["benchmark"], record["item"])] = record["nodeid"]
    stats = combine_stats(s.document.get("stats") or {} for s in shards)
    stats["wall_seconds"] = max((float((s.document.get("stats") or {}).get("wall_seconds") or 0) for s in shards), default=0.0)
    stats["shards"] = len(shards)
    return ShardSet(shards, registry, rules, method, evaluations, seeds, nodeids, _run_info(shards, method, expectations), stats)
