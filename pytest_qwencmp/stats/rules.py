"""How each expectation rule is decided, and how powerful it is at an item's size.

``config.expectations`` reads the rules a user wrote; this module applies them.
Each threshold key (``min_ci_lower``, ``non_inferiority_margin``,
``max_regression``; see ``keys``) is a one-sided test at its own threshold,
at 2.5 % — one side of a 95 % interval. :func:`decide_keys` decides every key of
a benchmark's items: the keys on the adjusted interval form one family per key
(:func:`key_families`: the non-overall items carrying it; ``overall`` alone),
whose one-sided p-values ``multiplicity.adjust_family`` adjusts, and each
item's interval is taken at the level it returns, with its bounds agreeing
with the test at the threshold (:class:`KeyResult`). :func:`check` turns an
item's expectation, the two scores and its key results into a
:class:`Verdict` (every rule missed, every rule applied); :func:`assess` says,
from the power functions, what each rule can detect at the item's size and
whether it is underpowered (:class:`PowerNote`). All numbers are percentage
points.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any

from ..config.benchmarks import OVERALL
from ..config.expectations import Expectation
from . import power as pw
from .keys import KEYS, key_threshold
from .multiplicity import ALPHA, adjust_family
from .paired import POINTS, PairedTest

# Keys read on the interval adjusted for their family; min_ci_lower reads each item's own 95 % interval
# (every item must pass it, so the suite's claim "B is better on all of them" errs at most 2.5 % unadjusted).
ADJUSTED_KEYS = ("non_inferiority_margin", "max_regression")


@dataclass(frozen=True)
class Verdict:
    """The outcome of checking one item's expectation."""

    passed: bool
    failures: tuple[str, ...]
    checked: tuple[str, ...]  # human-readable rules that were applied


@dataclass(frozen=True)
class KeyResult:
    """One threshold key of one item, decided by the one-sided test of its own threshold.

    ``p`` is the test's one-sided p-value at ``threshold`` (points; ``alternative``
    says its side), ``adjusted_p`` the same after ``correction`` over a family of
    ``family_size`` items (``p`` itself alone); ``[low, high]`` the two-sided
    interval at ``level`` whose bounds agree with the test at the threshold:
    ``passed`` is ``keys.decide_key`` of it, and ``adjusted_p < 0.025`` says the same.
    """

    key: str
    value: float
    threshold: float
    alternative: str
    p: float
    adjusted_p: float
    level: float
    low: float
    high: float
    correction: str
    family_size: int
    passed: bool

    @property
    def interval_name(self) -> str:
        """``95% CI`` for a key alone, ``holm-adjusted 99.91% CI`` in a family."""
        confidence = f"{1.0 - self.level:.2%}".replace(".00%", "%")
        return f"{confidence} CI" if self.family_size <= 1 else f"{self.correction}-adjusted {confidence} CI"

    def to_record(self) -> dict[str, Any]:
        return {
            "key": self.key, "value": self.value, "threshold": self.threshold, "alternative": self.alternative,
            "p": self.p, "adjusted_p": self.adjusted_p, "level": self.level, "low": self.low, "high": self.high,
            "correction": self.correction, "family_size": self.family_size, "passed": self.passed,
        }


def key_families(item_ids: Sequence[str], key: str) -> list[list[str]]:
    """The families ``key`` is adjusted over, among the items that carry it (``item_ids``, in order).

    ``non_inferiority_margin`` and ``max_regression``: the non-overall items form
    one family, each ``overall`` item is alone; ``min_ci_lower``: every item alone.
    """
    if key not in ADJUSTED_KEYS:
        return [[i] for i in item_ids]
    family = [i for i in item_ids if i.split(":")[0] != OVERALL]
    return ([family] if family else []) + [[i] for i in item_ids if i not in family]


def decide_keys(
    tests: Mapping[str, PairedTest | None],
    expectations: Mapping[str, Expectation],
    *,
    correction: str = "holm",
    alpha: float = ALPHA,
) -> dict[str, tuple[KeyResult, ...]]:
    """Every threshold key of every item with a test, decided in its key's family (item order kept).

    ``alpha`` is one-sided (0.025): each key alone errs at most 2.5 % at its
    boundary; a Holm family of a key, at most 2.5 % in all.
    """
    results: dict[str, list[KeyResult]] = {item_id: [] for item_id in tests}
    for key in KEYS:
        carrying = [i for i, t in tests.items() if t is not None and getattr(expectations[i], key) is not None]
        for family in key_families(carrying, key):
            method = correction if len(family) > 1 else "none"
            thresholds = [key_threshold(key, getattr(expectations[i], key)) for i in family]
            p = [tests[i].tails(t)[0 if side == "greater" else 1] for i, (t, side) in zip(family, thresholds)]
            adjusted, levels = adjust_family(p, method, alpha)
            for i, (t, side), p_i, adj, level in zip(family, thresholds, p, adjusted, levels):
                low, high = tests[i].key_interval(float(level), t)
                significant = bool(adj < alpha)
                results[i].append(KeyResult(
                    key, getattr(expectations[i], key), t, side, float(p_i), float(adj), float(level), float(low),
                    float(high), method, len(family), significant if side == "greater" else not significant,
                ))
    return {item_id: tuple(found) for item_id, found in results.items()}


def _key_words(key: str, value: float, result: KeyResult | None) -> tuple[str, str | None]:
    """(the rule as checked, the failure or None) for one threshold key."""
    where = "95% CI" if result is None else result.interval_name
    if key == "min_ci_lower":
        rule = f"B − A confidently above {value:+.2f} ({where} lower bound > {value:+.2f})"
    elif key == "non_inferiority_margin":
        rule = f"B confidently within {value:.2f} points of A ({where} lower bound > {-value:+.2f})"
    else:
        rule = f"no significant regression beyond {-value:+.2f} ({where} upper bound not below {-value:+.2f})"
    if result is None:
        return rule, f"{key} needs per-document data for its test, and none is available"
    if result.passed:
        return rule, None
    test = f"p = {result.p:.3g} for Δ {'≤' if result.alternative == 'greater' else '≥'} {result.threshold:+.2f}"
    if result.family_size > 1:
        test += f", adjusted p = {result.adjusted_p:.3g} over {result.family_size} items"
    if key == "min_ci_lower":
        return rule, f"the {where} of B − A starts at {result.low:+.2f}, not above the required {value:+.2f} points ({test})"
    if key == "non_inferiority_margin":
        return rule, (f"B not shown within {value:.2f} points of A (the {where} starts at {result.low:+.2f}, "
                      f"not above {-value:+.2f}; {test})")
    return rule, (f"B significantly worse by more than {value:.2f} points (the {where} [{result.low:+.2f}, "
                  f"{result.high:+.2f}] lies below {-value:+.2f}; {test})")


def check(
    expectation: Expectation,
    score_a: float,
    score_b: float,
    *,
    keys: Sequence[KeyResult] = (),
    significantly_worse: bool = False,
) -> Verdict:
    """Apply ``expectation`` to scores in points; returns every rule missed.

    ``keys`` are the item's threshold keys decided by :func:`decide_keys` (a key
    set in the expectation without its result — no per-document data — fails);
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
    decided = {k.key: k for k in keys}
    for key in KEYS:
        value = getattr(expectation, key)
        if value is None:
            continue
        rule, failure = _key_words(key, value, decided.get(key))
        checked.append(rule)
        if failure:
            failures.append(failure)
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
