"""Baselines across runs: save a run, compare a later run with it.

A baseline is the lean form of the saved-evaluations format (``format``): every
item's score and per-document values for both models, the settings that change
the numbers (``compatibility.number_settings``), the models, the machine and
the project's commit. This module owns what is baseline-specific:

* names and files: ``DIR/NAME.json`` (:func:`validate_name`,
  :func:`baseline_path`, :func:`available_baselines`), :func:`save_baseline`
  (atomic, deterministic JSON) and :func:`load_baseline`, which turns any
  problem with the file into one clear :class:`QwencmpError` paragraph listing
  the baselines the directory does hold;
* the policy on settings (:func:`check_compatible`): runs whose
  number-changing settings differ (``compatibility.settings_mismatches``, the
  one check shards and cache entries use too; the models' fingerprints are
  not compared, model B is meant to change) are refused unless the user
  passes ``--qwencmp-baseline-allow-mismatch``;
* the comparison (:func:`compare_to_baseline`): per item, the current run
  against the saved one with the paired machinery of ``stats.paired``, over the
  documents present in both (matched by doc key ``"task/doc_id"``), p-values
  adjusted across each benchmark's non-overall items (``stats.adjust_items``,
  as the A-vs-B comparison does), and a
  :class:`BaselineComparison` saying whether the item regressed beyond its
  tolerance.

It is pure: no pytest, no lm-eval, no model; the plugin decides when to save
and compare, and turns a regression into a failed item. Scores are fractions
(as in ``ItemScore``); tolerances and messages are in percentage points.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

from .compatibility import ADAPTER_IDENTITY, IDENTITY, number_settings
from .compatibility import settings_mismatches as _settings_mismatches
from ..errors import QwencmpError
from ..evaluation.scores import BenchmarkEvaluation, ItemScore
from ..files import json_safe, write_atomic
from ..stats.multiplicity import VERDICT_WORSE, adjust_items
from ..stats.paired import POINTS, PairedComparison, paired_test
from .format import (
    SAVED_FORMAT,
    SavedEvaluations,
    SavedFormatError,
    items_from_evaluations,
    machine_info,
    read_saved,
    project_commit,
    saved_from_evaluations,
)


__all__ = [
    "BASELINE_FORMAT",
    "SAVE_OPTION",
    "COMPARE_OPTION",
    "DIR_OPTION",
    "ALLOW_MISMATCH_OPTION",
    "Baseline",
    "BaselineComparison",
    "validate_name",
    "available_baselines",
    "baseline_path",
    "number_settings",
    "machine_info",
    "project_commit",
    "items_from_evaluations",
    "baseline_from_evaluations",
    "save_baseline",
    "load_baseline",
    "settings_mismatches",
    "check_compatible",
    "compare_to_baseline",
    "json_safe",
]

# A baseline is saved evaluations in their lean form.
Baseline = SavedEvaluations
BASELINE_FORMAT = SAVED_FORMAT

# The option names the messages refer to; plugin.py registers options under these names.
SAVE_OPTION = "--qwencmp-baseline-save"
COMPARE_OPTION = "--qwencmp-baseline-compare"
DIR_OPTION = "--qwencmp-baseline-dir"
ALLOW_MISMATCH_OPTION = "--qwencmp-baseline-allow-mismatch"

_NAME = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,99}$")
_SIDE_LABEL = {"a": "model A", "b": "model B"}
# Regressions are judged on point deltas; a delta that equals -tolerance up to
# float rounding is "within" the tolerance.
_EPS_POINTS = 1e-9


# --------------------------------------------------------------------------
# names and files


def validate_name(name: str) -> str:
    """A baseline name: letters, digits, ``.``, ``_``, ``-`` (not starting with ``.``), at most 100."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise QwencmpError(
            f"Baseline name {name!r} is not allowed: use 1 to 100 letters, digits, '.', '_' or '-', "
            "not starting with '.' (for example 'main' or 'qwen2.5-7b_2025-01'); it becomes the file NAME.json."
        )
    return name


def baseline_path(directory: Path, name: str) -> Path:
    return Path(directory) / f"{validate_name(name)}.json"


def available_baselines(directory: Path) -> list[str]:
    """The names of the baseline files (``NAME.json``) in ``directory``, sorted; [] if none or no directory."""
    try:
        entries = list(Path(directory).iterdir())
    except OSError:
        return []
    return sorted(p.stem for p in entries if p.suffix == ".json" and p.is_file() and _NAME.match(p.stem))


def _available_text(directory: Path) -> str:
    names = available_baselines(directory)
    if names:
        return f"Baselines available in {directory}: {', '.join(names)}."
    return f"No baselines are saved in {directory}; save one with {SAVE_OPTION} NAME."


# --------------------------------------------------------------------------
# building, saving, loading


def baseline_from_evaluations(
    name: str, evaluations: Iterable[BenchmarkEvaluation], settings_that_matter: Mapping[str, Any], **lean: Any
) -> Baseline:
    """A :class:`Baseline` of these evaluations: ``format.saved_from_evaluations`` in its lean form, under a valid name.

    ``lean`` are its keyword options that a baseline keeps: ``machine``, ``project_commit``, ``created``.
    """
    unknown = set(lean) - {"machine", "project_commit", "created"}
    if unknown:
        raise TypeError(f"baseline_from_evaluations() got unexpected keyword arguments: {', '.join(sorted(unknown))}")
    return saved_from_evaluations(validate_name(name), evaluations, settings_that_matter, **lean)


def save_baseline(baseline: Baseline, directory: Path) -> Path:
    """Write ``directory/NAME.json`` atomically (temporary file + ``os.replace``); returns the path.

    The directory is created if needed; an existing baseline of that name is
    replaced in one step, so readers see the old file or the new one, never a
    partial write.
    """
    path = baseline_path(directory, baseline.name)
    return write_atomic(path, baseline.dumps(), what=f"baseline {baseline.name!r}")


def _resolve_file(directory_or_file: Path, name: str | None) -> tuple[Path, Path]:
    """(file, directory) for the arguments of :func:`load_baseline`."""
    location = Path(directory_or_file)
    if name is None:
        if location.is_file():
            return location, location.parent
        if location.is_dir():
            raise QwencmpError(
                f"Name the baseline to compare with ({COMPARE_OPTION} NAME). {_available_text(location)}"
            )
        if location.suffix == ".json":
            raise QwencmpError(f"Baseline file {location} does not exist. {_available_text(location.parent)}")
        raise QwencmpError(
            f"Baseline directory {location} does not exist; save a baseline first with {SAVE_OPTION} NAME "
            f"(and {DIR_OPTION} DIR)."
        )
    if name.endswith(".json"):
        name = name[: -len(".json")]
    path = baseline_path(location, name)
    if not location.is_dir():
        raise QwencmpError(
            f"There is no baseline {name!r}: the baseline directory {location} does not exist. "
            f"Save one first with {SAVE_OPTION} {name}, or point {DIR_OPTION} at the directory that holds it."
        )
    if not path.is_file():
        raise QwencmpError(f"There is no baseline {name!r} ({path} does not exist). {_available_text(location)}")
    return path, location



def load_baseline(directory_or_file: Path, name: str | None = None) -> Baseline:
    """Read a baseline: ``directory/NAME.json`` or, with ``name=None``, the file given.

    Missing, unreadable, truncated or corrupt files and files of another
    format raise :class:`QwencmpError` with one paragraph that names the file,
    the problem and what to do, and lists the baselines the directory holds.
    """
    path, directory = _resolve_file(directory_or_file, name)

    try:
        return read_saved(path, "baseline")
    except SavedFormatError as exc:
        raise QwencmpError(
            f"Baseline file {path}: {exc} Restore it (for example from git) or save it again with "
            f"{SAVE_OPTION} {path.stem}. {_available_text(directory)}"
        ) from None


# --------------------------------------------------------------------------
# compatibility


def settings_mismatches(
    baseline: Baseline,
    current_settings: Mapping[str, Any],
    *,
    sides: Iterable[str] | None = None,
) -> list[str]:
    """The baseline's differences from this run's number-changing settings; [] if compatible.

    ``compatibility.settings_mismatches`` worded "baseline …, now …", without
    the models' fingerprints (a baseline is compared with another model B).
    """
    return _settings_mismatches(baseline, current_settings, sides=sides, ignore=(IDENTITY, ADAPTER_IDENTITY))


def check_compatible(
    baseline: Baseline,
    current_settings: Mapping[str, Any],
    *,
    allow_mismatch: bool,
    sides: Iterable[str] | None = None,
) -> list[str]:
    """Refuse a comparison whose number-changing settings differ, unless ``allow_mismatch``.

    Raises :class:`QwencmpError` listing every difference and naming
    ``--qwencmp-baseline-allow-mismatch``; with ``allow_mismatch`` returns
    the differences (warnings for the report) instead. [] when compatible.
    """
    mismatches = settings_mismatches(baseline, current_settings, sides=sides)
    if mismatches and not allow_mismatch:
        raise QwencmpError(
            f"This run cannot be compared with {baseline.describe()}: settings that change the numbers differ — "
            + "; ".join(mismatches)
            + f". Rerun with the baseline's settings, save a new baseline with {SAVE_OPTION} NAME, or pass "
            f"{ALLOW_MISMATCH_OPTION} to compare anyway (only documents present in both runs are paired)."
        )
    return mismatches


# --------------------------------------------------------------------------
# comparison


@dataclass(frozen=True)
class BaselineComparison:
    """One item of one model (``side``): the current run against the baseline.

    ``baseline_value`` and ``current_value`` are the items' full scores
    (fractions); ``paired`` compares them over the ``matched_docs`` documents
    present in both runs (``mean_a`` = baseline, ``mean_b`` = current,
    ``delta`` = current − baseline), None when no document matches or either
    run lacks per-document values. ``adjusted_p`` is corrected across the
    benchmark's non-overall items (``correction``; an overall item keeps its
    raw p). ``significance`` is "better", "worse", "no detectable difference"
    or "n/a" for the current run relative to the baseline. ``regressed``:
    the delta (paired over matched documents when available, else of the
    full scores) is below ``-tolerance_points``, or the current run is
    significantly worse after correction (when that rule is on).
    """

    benchmark: str
    item_id: str
    side: str
    metric: str
    baseline_name: str
    baseline_model: str
    current_model: str
    baseline_value: float
    current_value: float
    baseline_stderr: float | None
    current_stderr: float | None
    paired: "PairedComparison | None"
    matched_docs: int
    baseline_docs: int
    current_docs: int
    adjusted_p: float | None
    adjusted_ci: tuple[float, float] | None  # fractions; consistent with adjusted_p (0 outside it <=> adjusted_p < alpha)
    correction: str
    significance: str
    tolerance_points: float
    regressed: bool
    message: str

    @property
    def delta_points(self) -> float:
        """current − baseline in points: paired over matched documents when available."""
        if self.paired is not None:
            return self.paired.delta * POINTS
        return (self.current_value - self.baseline_value) * POINTS

    def assert_not_regressed(self) -> None:
        """Raise AssertionError with :attr:`message` when the item regressed."""
        __tracebackhide__ = True
        if self.regressed:
            raise AssertionError(self.message)

    def to_record(self) -> dict[str, Any]:
        """A JSON-able row for reports (points, rounded)."""
        p = self.paired
        return {
            "benchmark": self.benchmark,
            "item": self.item_id,
            "side": self.side,
            "metric": self.metric,
            "baseline": self.baseline_name,
            "baseline_model": self.baseline_model,
            "current_model": self.current_model,
            "baseline_value": round(self.baseline_value * POINTS, 4),
            "current_value": round(self.current_value * POINTS, 4),
            "delta": round(self.delta_points, 4),
            "ci_low": None if p is None else round(p.ci_low * POINTS, 4),
            "ci_high": None if p is None else round(p.ci_high * POINTS, 4),
            "p_value": None if p is None else p.p_value,
            "adjusted_p": self.adjusted_p,
            "adjusted_ci_low": None if self.adjusted_ci is None else round(self.adjusted_ci[0] * POINTS, 4),
            "adjusted_ci_high": None if self.adjusted_ci is None else round(self.adjusted_ci[1] * POINTS, 4),
            "correction": self.correction,
            "significance": self.significance,
            "matched_docs": self.matched_docs,
            "baseline_docs": self.baseline_docs,
            "current_docs": self.current_docs,
            "tolerance": self.tolerance_points,
            "regressed": self.regressed,
        }


CurrentScores = Union[
    Baseline,
    Iterable[BenchmarkEvaluation],
    Mapping[tuple[str, str, str], ItemScore],
]
Tolerance = Union[float, int, Mapping[tuple[str, str], float], Callable[[str, str], "float | None"]]


def _current_items(current: CurrentScores) -> tuple[dict[tuple[str, str, str], ItemScore], dict[str, str]]:
    """(items keyed (side, benchmark, item_id), side -> model label) from any accepted form."""
    if isinstance(current, Baseline):
        labels = {s: str(m.get("label", "")) for s, m in current.models.items()}
        return dict(current.items), labels
    if isinstance(current, Mapping):
        return {tuple(key): score for key, score in current.items()}, {}
    evaluations = list(current)
    labels = {e.side: str((e.model or {}).get("label", "")) for e in evaluations}
    return items_from_evaluations(evaluations), labels


def _tolerance_for(tolerance: Tolerance, benchmark: str, item_id: str, default: float) -> float:
    if callable(tolerance):
        value = tolerance(benchmark, item_id)
    elif isinstance(tolerance, Mapping):
        value = tolerance.get((benchmark, item_id), tolerance.get((benchmark, "*"), default))
    else:
        value = tolerance
    value = default if value is None else float(value)
    if not math.isfinite(value) or value < 0:
        raise QwencmpError(f"The baseline tolerance of {benchmark}[{item_id}] must be a non-negative number of points, got {value}.")
    return value


def _match(base: ItemScore, now: ItemScore) -> tuple[list[float], list[float]]:
    """The two runs' values on the documents both scored, in the baseline's order."""
    if not base.per_doc or not now.per_doc:
        return [], []
    current = dict(zip(now.doc_keys, now.per_doc))
    xs, ys = [], []
    for key, value in zip(base.doc_keys, base.per_doc):
        if key in current and math.isfinite(value) and math.isfinite(current[key]):
            xs.append(value)
            ys.append(current[key])
    return xs, ys


def _interval_text(interval: tuple[float, float] | None, method: str, family_size: int, alpha: float) -> str:
    """The interval that goes with the p-value shown beside it, labelled with its level."""
    if interval is None:
        return "no interval"
    label = f"{100 * (1 - alpha):g}% CI" if method == "none" else f"{method}-adjusted CI (family of {family_size})"
    return f"{label} [{interval[0] * POINTS:+.2f}, {interval[1] * POINTS:+.2f}]"


def _score_text(value: float, stderr: float | None) -> str:
    err = f" ± {stderr * POINTS:.2f}" if stderr is not None and math.isfinite(stderr) else ""
    return f"{value * POINTS:.2f}{err}"


def compare_to_baseline(
    baseline: Baseline,
    current: CurrentScores,
    *,
    side: str = "b",
    tolerance_points: Tolerance = 1.0,
    correction: str = "holm",
    alpha: float = 0.05,
    fail_on_significant: bool = True,
    seed: int = 0,
) -> dict[tuple[str, str], BaselineComparison]:
    """Every item of ``side`` scored both now and in ``baseline``, compared; keyed (benchmark, item_id).

    ``current`` is the run's evaluations, a mapping ``(side, benchmark,
    item_id) -> ItemScore``, or another :class:`Baseline`.
    Items only in one of the two runs are left out of the result (the caller
    reports them as "no baseline"). Documents are matched by doc key; the
    paired statistics (``stats.paired_test``, baseline as A, current
    as B, ``seed`` for resampling metrics) use matched documents only.
    ``tolerance_points`` is one number, a mapping ``(benchmark, item_id) ->
    points`` (``(benchmark, "*")`` for a whole benchmark; unlisted items get
    1.0), or a callable ``(benchmark, item_id) -> points | None`` (None:
    1.0) — for example the expectations' tolerance per item.
    ``fail_on_significant=False`` judges by the tolerance alone.

    This does not check the settings: call :func:`check_compatible` first.
    """
    now_items, now_labels = _current_items(current)
    base_labels = {s: str(m.get("label", "")) for s, m in baseline.models.items()}
    pairs: dict[str, dict[str, tuple[ItemScore, ItemScore, Any, int]]] = {}
    for key in sorted(baseline.items):
        item_side, benchmark, item_id = key
        if item_side != side or key not in now_items:
            continue
        base, now = baseline.items[key], now_items[key]
        xs, ys = _match(base, now)
        test = paired_test(xs, ys, seed=seed) if xs else None
        pairs.setdefault(benchmark, {})[item_id] = (base, now, test, len(xs))

    results: dict[tuple[str, str], BaselineComparison] = {}
    for benchmark, by_item in pairs.items():
        adjusted = adjust_items({item_id: pair[2] for item_id, pair in by_item.items()}, correction, alpha)
        for item_id, (base, now, test, matched) in by_item.items():
            paired = adjusted_ci = adjusted_p = None
            method, family_size, significance = "none", 1, "n/a"
            if item_id in adjusted:
                result = adjusted[item_id]
                paired, adjusted_p, adjusted_ci = result.paired, result.adjusted_p, result.adjusted_ci
                method, family_size, significance = result.correction, result.family_size, result.significance
            tolerance = _tolerance_for(tolerance_points, benchmark, item_id, 1.0)
            delta = paired.delta * POINTS if paired is not None else (now.value - base.value) * POINTS
            beyond = math.isfinite(delta) and delta < -tolerance - _EPS_POINTS
            significant = fail_on_significant and significance == VERDICT_WORSE
            regressed = bool(beyond or significant)

            label = _SIDE_LABEL.get(side, f"side {side}")
            who = now_labels.get(side) or base_labels.get(side) or ""
            parts = [
                f"{benchmark}[{item_id}] {base.metric} of {label}{f' ({who})' if who else ''}: "
                f"{baseline.describe()} {_score_text(base.value, base.stderr)}"
                f"{f' ({base_labels[side]})' if base_labels.get(side) and base_labels.get(side) != who else ''}, "
                f"now {_score_text(now.value, now.stderr)}; "
            ]
            if paired is not None:
                parts.append(
                    f"now − baseline = {delta:+.2f} points over {matched} matched documents "
                    f"({len(base.per_doc)} in the baseline, {len(now.per_doc)} now) "
                    f"(± {paired.stderr * POINTS:.2f} paired stderr, {_interval_text(adjusted_ci, method, family_size, alpha)}, "
                    f"p = {adjusted_p:.3g}{'' if method == 'none' else f' {method}-adjusted'}, {significance}). "
                )
            else:
                why = (
                    "no document of the baseline matches one of this run"
                    if base.per_doc and now.per_doc
                    else "per-document values are missing"
                )
                parts.append(f"now − baseline = {delta:+.2f} points on the full scores ({why}; no paired test). ")
            parts.append(f"Tolerance: {tolerance:.2f} points")
            if not fail_on_significant:
                parts.append(" (significance not required)")
            if regressed:
                reasons = []
                if beyond:
                    reasons.append(f"fell {-delta:.2f} points, beyond the tolerance of {tolerance:.2f}")
                if significant:
                    reasons.append(
                        f"significantly worse after {correction} correction" if method != "none"
                        else "significantly worse (p not adjusted: tested alone)"
                    )
                parts.append("; REGRESSED: " + " and ".join(reasons) + ".")
            else:
                parts.append("; no regression.")
            results[(benchmark, item_id)] = BaselineComparison(
                benchmark=benchmark,
                item_id=item_id,
                side=side,
                metric=base.metric,
                baseline_name=baseline.name,
                baseline_model=base_labels.get(side, ""),
                current_model=who,
                baseline_value=base.value,
                current_value=now.value,
                baseline_stderr=base.stderr,
                current_stderr=now.stderr,
                paired=paired,
                matched_docs=matched,
                baseline_docs=len(base.per_doc),
                current_docs=len(now.per_doc),
                adjusted_p=adjusted_p,
                adjusted_ci=adjusted_ci,
                correction=method,
                significance=significance,
                tolerance_points=tolerance,
                regressed=regressed,
                message="".join(parts),
            )
    return results
