"""How each expectation rule is decided, and how powerful it is at an item's size.

``config.expectations`` reads the rules a user wrote; this module applies them.
:func:`check` turns an item's :class:`~pytest_qwencmp.config.expectations.Expectation`,
the two scores and the item's intervals into a :class:`Verdict` (every rule
missed, every rule applied); :func:`assess` says, from the power functions,
what each rule can detect at the item's size and whether it is underpowered
(:class:`PowerNote`). All numbers are percentage points.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache

from ..config.expectations import Expectation
from . import power as pw
from .paired import POINTS

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
    points = POINTS

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
