"""Expectations: what a run must show, read from a TOML file the user edits.

All numbers are percentage points. A benchmark table's plain keys apply to
all of its items; a sub-table per item overrides them; ``[defaults]`` applies
to every benchmark::

    [mmlu]
    max_regression = 5.0            # fail only if B is significantly worse by more than 5 points
    [mmlu.overall]
    min_ci_lower = 10.0             # B confidently better by at least 10 points
    floor_a = 58.5                  # and neither may fall below its floor
    floor_b = 70.8

A malformed file raises ``QwencmpError`` naming the file, the key and the
problem. ``check`` turns an expectation, two scores and the item's intervals
into failure messages; ``assess`` says, from the power functions, what each
rule can detect at an item's size and whether it is underpowered.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, fields, replace
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping

from ..stats import power as pw
from .benchmarks import Registry
from ..errors import QwencmpError

RULE_KEYS = {
    "min_improvement": "minimum of B − A on the point estimate, in points (negative allows a bounded regression)",
    "floor_a": "lowest acceptable score of model A, in points",
    "floor_b": "lowest acceptable score of model B, in points",
    "min_ci_lower": "minimum of the lower bound of the paired 95% CI of B − A, in points",
    "no_significant_regression": "true: fail when B is significantly worse than A after multiple-comparison correction",
    "baseline_tolerance": "with --qwencmp-baseline-compare: largest allowed drop of B against the saved baseline, in points",
    "max_regression": "fail only if B is significantly worse than A by more than this many points (the adjusted CI of B − A lies entirely below −X)",
    "non_inferiority_margin": "pass only if B is confidently not worse than A by this many points (the adjusted CI of B − A starts above −X)",
}
_MARGINS = ("floor_a", "floor_b", "baseline_tolerance", "max_regression", "non_inferiority_margin")


@dataclass(frozen=True)
class Expectation:
    """The rules one item must satisfy; None means 'not required'."""

    min_improvement: float | None = None
    floor_a: float | None = None
    floor_b: float | None = None
    min_ci_lower: float | None = None
    no_significant_regression: bool | None = None
    baseline_tolerance: float | None = None
    max_regression: float | None = None
    non_inferiority_margin: float | None = None
    source: str = ""

    def is_empty(self) -> bool:
        return all(getattr(self, f.name) is None for f in fields(self) if f.name != "source")

    def overlaid_with(self, other: "Expectation") -> "Expectation":
        """``other``'s set rules win over this one's."""
        changes = {f.name: getattr(other, f.name) for f in fields(other) if f.name != "source" and getattr(other, f.name) is not None}
        return replace(self, **changes, source=other.source or self.source)


@dataclass(frozen=True)
class Expectations:
    """All expectations of a suite, resolved per (benchmark, item)."""

    path: Path | None
    defaults: Expectation
    benchmarks: Mapping[str, Expectation]
    items: Mapping[tuple[str, str], Expectation]

    def for_item(self, benchmark: str, item_id: str) -> Expectation:
        resolved = self.defaults
        if benchmark in self.benchmarks:
            resolved = resolved.overlaid_with(self.benchmarks[benchmark])
        if (benchmark, item_id) in self.items:
            resolved = resolved.overlaid_with(self.items[(benchmark, item_id)])
        return resolved


NO_EXPECTATIONS = Expectations(None, Expectation(), {}, {})


def _rules(table: Mapping[str, Any], where: str, path: Path) -> Expectation:
    values: dict[str, Any] = {}
    for key, value in table.items():
        if isinstance(value, Mapping):
            continue
        if key not in RULE_KEYS:
            raise QwencmpError(
                f"{path}: unknown key '{where}.{key}'. Allowed keys: "
                + "; ".join(f"{k} ({doc})" for k, doc in RULE_KEYS.items())
                + "."
            )
        if key == "no_significant_regression":
            if not isinstance(value, bool):
                raise QwencmpError(f"{path}: key '{where}.{key}' must be true or false, got {value!r}.")
            values[key] = value
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise QwencmpError(f"{path}: key '{where}.{key}' must be a number of percentage points, got {value!r}.")
        low, high = (0.0, 100.0) if key in _MARGINS else (-100.0, 100.0)
        if not low <= value <= high:
            raise QwencmpError(
                f"{path}: key '{where}.{key}' = {value} is out of range [{low:g}, {high:g}]; "
                "expectations are in percentage points (59.74, not 0.5974)."
            )
        values[key] = float(value)
    return Expectation(**values, source=f"{path.name}: [{where}]")


def parse_expectations(text: str, path: Path, registry: Registry) -> Expectations:
    """Parse and validate; every problem names the file, the key and what is wrong."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise QwencmpError(f"{path} is not valid TOML: {exc}. Fix the syntax (see README.md, 'Expectations').") from None
    defaults = Expectation()
    per_benchmark: dict[str, Expectation] = {}
    per_item: dict[tuple[str, str], Expectation] = {}
    for name, table in data.items():
        if name == "defaults":
            if not isinstance(table, Mapping) or any(isinstance(v, Mapping) for v in table.values()):
                raise QwencmpError(f"{path}: [defaults] must be a table of rules without sub-tables.")
            defaults = _rules(table, "defaults", path)
            continue
        if not isinstance(table, Mapping):
            raise QwencmpError(f"{path}: top-level key '{name}' must be a benchmark table like [{name}].")
        if name not in registry.names():
            raise QwencmpError(
                f"{path}: [{name}] is not a known benchmark; known: {', '.join(registry.names())} "
                "(add new benchmarks in evals/benchmarks.toml)."
            )
        benchmark = registry.get(name)
        item_ids = {item.id for item in benchmark.items}
        per_benchmark[name] = _rules(table, name, path)
        for item_id, sub in table.items():
            if not isinstance(sub, Mapping):
                continue
            if item_id not in item_ids:
                close = sorted(i for i in item_ids if i.startswith(item_id[:4]))[:5]
                raise QwencmpError(
                    f"{path}: [{name}.{item_id}] names no item of {name}"
                    + (f"; did you mean {', '.join(close)}?" if close else f"; its items are {', '.join(sorted(item_ids)[:6])}, …")
                )
            if any(isinstance(v, Mapping) for v in sub.values()):
                raise QwencmpError(f"{path}: [{name}.{item_id}] must not contain further tables.")
            per_item[(name, item_id)] = _rules(sub, f"{name}.{item_id}", path)
    return Expectations(path, defaults, per_benchmark, per_item)


def load_expectations(path: Path | None, registry: Registry) -> Expectations:
    if path is None:
        return NO_EXPECTATIONS
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise QwencmpError(f"Cannot read expectations file {path}: {exc.strerror}.") from None
    return parse_expectations(text, path, registry)


@dataclass(frozen=True)
class Verdict:
    """The outcome of checking one item's expectation."""

    passed: bool
    failures: tuple[str, ...]
    checked: tuple[str, ...]  # human-readable rules that were applied


def check(
    expectation: Expectation,
    score_a: float,
    score_b: float,
    *,
    ci_lower: float | None = None,
    significantly_worse: bool = False,
    adjusted_ci: tuple[float, float] | None = None,
) -> Verdict:
    """Apply ``expectation`` to scores in points; returns every rule missed.

    ``ci_lower`` is the lower bound of the unadjusted paired CI of B − A
    (``min_ci_lower``); ``adjusted_ci`` the interval adjusted for the item's
    family (``max_regression``, ``non_inferiority_margin``), both in points;
    ``significantly_worse`` the adjusted verdict (``no_significant_regression``).
    """
    failures: list[str] = []
    checked: list[str] = []
    delta = score_b - score_a
    if expectation.min_improvement is not None:
        checked.append(f"B − A ≥ {expectation.min_improvement:+.2f}")
        if not delta >= expectation.min_improvement:
            failures.append(f"improvement {delta:+.2f} is below the required {expectation.min_improvement:+.2f} points")
    if expectation.floor_a is not None:
        checked.append(f"A ≥ {expectation.floor_a:.2f}")
        if not score_a >= expectation.floor_a:
            failures.append(f"A scored {score_a:.2f}, below its floor {expectation.floor_a:.2f}")
    if expectation.floor_b is not None:
        checked.append(f"B ≥ {expectation.floor_b:.2f}")
        if not score_b >= expectation.floor_b:
            failures.append(f"B scored {score_b:.2f}, below its floor {expectation.floor_b:.2f}")
    if expectation.min_ci_lower is not None:
        checked.append(f"CI lower bound of B − A ≥ {expectation.min_ci_lower:+.2f}")
        if ci_lower is None:
            failures.append("a confidence bound was required but no per-document data is available")
        elif not ci_lower >= expectation.min_ci_lower:
            failures.append(
                f"the 95% CI of B − A starts at {ci_lower:+.2f}, below the required {expectation.min_ci_lower:+.2f} points"
            )
    if expectation.max_regression is not None:
        limit = -expectation.max_regression
        checked.append(f"no significant regression beyond {limit:+.2f}")
        if adjusted_ci is None:
            failures.append("max_regression needs per-document data for the adjusted CI, and none is available")
        elif adjusted_ci[1] < limit:
            failures.append(
                f"B significantly worse by more than {expectation.max_regression:.2f} points "
                f"(adjusted CI [{adjusted_ci[0]:+.2f}, {adjusted_ci[1]:+.2f}] lies below {limit:+.2f})"
            )
    if expectation.non_inferiority_margin is not None:
        limit = -expectation.non_inferiority_margin
        checked.append(f"B confidently within {expectation.non_inferiority_margin:.2f} points of A (adjusted CI above {limit:+.2f})")
        if adjusted_ci is None:
            failures.append("non_inferiority_margin needs per-document data for the adjusted CI, and none is available")
        elif not adjusted_ci[0] > limit:
            failures.append(
                f"B not shown within {expectation.non_inferiority_margin:.2f} points of A "
                f"(adjusted CI starts at {adjusted_ci[0]:+.2f}, not above {limit:+.2f})"
            )
    if expectation.no_significant_regression:
        checked.append("no significant regression")
        if significantly_worse:
            failures.append("B is significantly worse than A after multiple-comparison correction")
    return Verdict(not failures, tuple(failures), tuple(checked))


# --------------------------------------------------------------------------- power of the rules


@dataclass(frozen=True)
class PowerNote:
    """What one rule of an expectation can detect at an item's size.

    ``underpowered``: at this ``n`` the rule lands on the wrong side more than
    ``1 − power`` of the time in its reference case (see :func:`assess`);
    ``needed_n`` (when asked for) is the smallest ``n`` at which it would not.
    """

    rule: str
    text: str
    underpowered: bool = False
    needed_n: int | None = None


def _pct(p: float) -> str:
    return "<1%" if p < 0.01 else (">99%" if p > 0.99 else f"{p:.0%}")


# A rule's reference probability: ("interval", true Δ, level, threshold, side) for an interval
# beyond a threshold (power.power), ("point", true Δ, threshold) for a point estimate at or above it.
Probe = tuple


def _probability(design: pw.Design, probe: Probe) -> float:
    if probe[0] == "point":
        return pw.point_pass_probability(design, probe[1], probe[2])
    _, delta, level, threshold, side = probe
    return pw.power(design, delta, level, threshold=threshold, side=side)


@lru_cache(maxsize=1024)
def _needed_n(design: pw.Design, probe: Probe, target: float) -> int | None:
    """The smallest n at which ``probe`` reaches ``target`` (same discordance or sd); cached per rule and design.

    None when no n suffices: as n grows the estimate converges to the true B − A (capped at ±discordance
    for binary designs), so a check whose threshold lies beyond it never fires reliably.
    """
    delta, threshold = probe[1], probe[-2] if probe[0] == "interval" else probe[2]
    if design.binary:
        delta = max(-design.discordance, min(design.discordance, delta))
    side = probe[-1] if probe[0] == "interval" else 1
    if (delta - threshold) * side <= 0:
        return None
    return pw.smallest_n(lambda n: _probability(replace(design, n=n), probe) >= target, limit=1_000_000)


def assess(
    expectation: Expectation,
    design: pw.Design,
    *,
    alpha: float,
    family_level: float,
    target: float = pw.DEFAULT_POWER,
    with_needed_n: bool = False,
) -> tuple[PowerNote, ...]:
    """The power of each comparison rule of ``expectation`` for an item of ``design``.

    Levels: rules on the adjusted interval or adjusted p (``max_regression``,
    ``non_inferiority_margin``, ``no_significant_regression``) use
    ``family_level`` (``power.mde_level``); ``min_ci_lower`` uses the
    unadjusted ``alpha``. A rule with threshold ``t`` is *underpowered* when,
    with probability above ``1 − target``:

    * ``max_regression X`` (X > 0): a true regression of ``2X`` passes;
    * ``non_inferiority_margin M``, or ``min_ci_lower t < 0`` (M = −t): a B
      exactly as good as A fails;
    * ``min_ci_lower t > 0``: a true gain of ``2t`` fails;
    * ``min_improvement t`` (point estimate): a B as good as A fails (t <= 0),
      or a true gain of ``2t`` fails (t > 0);

    ``no_significant_regression``, ``max_regression = 0`` and
    ``min_ci_lower = 0`` are tests of "no difference" at a controlled level and
    are never underpowered; their notes state the smallest regression or gain
    they catch with ``target`` power. Floors are absolute and not assessed.
    """
    notes: list[PowerNote] = []
    points = 100.0

    def note(rule: str, text: str, probe: Probe | None = None) -> None:
        low = probe is not None and _probability(design, probe) < target
        needed = _needed_n(replace(design, n=0), probe, target) if low and with_needed_n else None
        notes.append(PowerNote(rule, text + (" — underpowered" if low else ""), low, needed))

    def caught(level: float, threshold: float, side: int) -> str:
        found = pw.detectable(design, level, target, threshold=threshold / points, side=side)
        if found is None:
            return "no possible difference reaches it at this size"
        if side < 0:
            return f"catches a true regression of {-found * points:.1f} points or more with {target:.0%} power"
        return f"passes with {target:.0%} power when the true B − A is {found * points:+.1f} or more"

    e = expectation
    if e.no_significant_regression:
        note("no_significant_regression", f"no_significant_regression: {caught(family_level, 0.0, -1)}")
    if e.max_regression is not None:
        x = e.max_regression
        text = f"max_regression {x:g}: {caught(family_level, -x, -1)}"
        if x > 0:
            probe = ("interval", -2 * x / points, family_level, -x / points, -1)
            note("max_regression", f"{text}; a true regression of {2 * x:g} fails it with probability "
                                   f"{_pct(_probability(design, probe))}", probe)
        else:
            note("max_regression", text)
    margins = []
    if e.non_inferiority_margin is not None:
        margins.append(("non_inferiority_margin", e.non_inferiority_margin, family_level))
    if e.min_ci_lower is not None and e.min_ci_lower < 0:
        margins.append(("min_ci_lower", -e.min_ci_lower, alpha))
    for rule, margin, level in margins:
        probe = ("interval", 0.0, level, -margin / points, 1)
        note(rule, f"{rule} {margin:g}: a B exactly as good as A passes with probability "
                   f"{_pct(_probability(design, probe))}", probe)
    if e.min_ci_lower is not None and e.min_ci_lower >= 0:
        t = e.min_ci_lower
        text = f"min_ci_lower {t:g}: {caught(alpha, t, 1)}"
        if t > 0:
            probe = ("interval", 2 * t / points, alpha, t / points, 1)
            note("min_ci_lower", f"{text}; a true gain of {2 * t:g} passes with probability "
                                 f"{_pct(_probability(design, probe))}", probe)
        else:
            note("min_ci_lower", text)
    if e.min_improvement is not None:
        t = e.min_improvement
        probe = ("point", 0.0 if t <= 0 else 2 * t / points, t / points)
        case = "a B exactly as good as A passes" if t <= 0 else f"a true gain of {2 * t:g} passes"
        note("min_improvement", f"min_improvement {t:+g} (point estimate): {case} with probability "
                                f"{_pct(_probability(design, probe))}", probe)
    return tuple(notes)
