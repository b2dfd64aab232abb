"""Many items at once: multiple-comparison adjustment with intervals that agree, and the verdict.

A benchmark's items (MMLU's 57 subjects, HellaSwag's acc and acc_norm) are
tested together. :func:`adjust_p_values` adjusts their p-values (Holm, BH or
none); :func:`family_levels` gives each item the level at which its test's
interval must be taken so that the interval excludes 0 exactly when the
adjusted p-value is below α; :func:`verdict` words the result;
:func:`adjust_family` does all three for a benchmark's items at once — the one
adjustment both the A-vs-B comparison and the baseline comparison use. Pure
numpy; the tests check the adjustments against statsmodels.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

import numpy as np

from ..config.benchmarks import OVERALL

if TYPE_CHECKING:  # pragma: no cover
    from .paired import PairedComparison, PairedTest

VERDICT_BETTER = "better"
VERDICT_WORSE = "worse"
VERDICT_NONE = "no detectable difference"

CORRECTIONS = ("holm", "bh", "none")


def _values(values: Sequence[float]) -> np.ndarray:
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"adjust_p_values: p-values must be numbers ({exc})") from None
    if arr.ndim != 1 or not np.all(np.isfinite(arr)):
        raise ValueError("adjust_p_values: expected a flat sequence of finite p-values")
    return arr


def _check_alpha(alpha: float) -> float:
    alpha = float(alpha)
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must lie strictly between 0 and 1, got {alpha}")
    return alpha


def _adjust_sorted(p_sorted: np.ndarray, key: str) -> np.ndarray:
    m = p_sorted.size
    if key == "holm":
        adjusted = np.maximum.accumulate(p_sorted * np.arange(m, 0, -1))
    else:
        adjusted = np.minimum.accumulate((p_sorted / (np.arange(1, m + 1) / float(m)))[::-1])[::-1]
    return np.minimum(adjusted, 1.0)


def _check_family(p_values: Sequence[float], method: str) -> tuple[np.ndarray, str]:
    key = str(method).lower()
    if key not in CORRECTIONS:
        raise ValueError(f"unknown p-value adjustment {method!r}; use 'holm', 'bh' or 'none'")
    p = _values(p_values)
    if np.any((p < 0.0) | (p > 1.0)):
        raise ValueError("adjust_p_values: p-values must lie in [0, 1]")
    return p, key


def adjust_p_values(p_values: Sequence[float], method: str = "holm") -> list[float]:
    """Adjust the p-values of items tested together for multiple comparisons.

    With the ``m`` raw p-values sorted ascending, ``p_(1) <= ... <= p_(m)``:

    * ``"holm"`` (default): Holm's step-down method, controls the family-wise
      error rate: ``adj_(k) = min(1, max_{j <= k} (m - j + 1) p_(j))``;
    * ``"bh"``: Benjamini-Hochberg, controls the false discovery rate:
      ``adj_(k) = min(1, min_{j >= k} p_(j) / (j / m))``;
    * ``"none"``: the raw p-values.

    These are, operation for operation, ``statsmodels.stats.multitest.
    multipletests(p, method="holm" | "fdr_bh")[1]`` (the tests hold them equal
    to 1e-12), computed here because statsmodels' Holm branch runs a full
    ``gc.collect()`` per call (~130 ms with torch loaded). Tied raw p-values
    get equal adjusted values. Results are in the input order; [] for [].
    """
    p, key = _check_family(p_values, method)
    if p.size == 0:
        return []
    if key == "none":
        return [float(v) for v in p]
    order = np.argsort(p, kind="stable")
    adjusted = np.empty(p.size)
    adjusted[order] = _adjust_sorted(p[order], key)
    return [float(v) for v in adjusted]


def family_levels(p_values: Sequence[float], method: str = "holm", alpha: float = 0.05) -> list[tuple[float, float]]:
    """Per item ``(adjusted_p, level)``: the level its adjusted interval is taken at.

    The level is chosen so that the test's interval at it excludes 0 exactly
    when ``adjusted_p < alpha`` (for an item whose ``p`` is not at a level's
    boundary; at the boundary ``paired.PairedTest.interval`` takes the
    decision from ``adjusted_p``):

    * ``holm``: the step-down rejects ranks ``1 … k*−1`` and stops at rank
      ``k*``. A rejected item of rank ``k`` gets ``α / (m − k + 1)`` (the
      level it was tested at; tied p-values share the level of the first of
      them); every other item gets ``α / (m − k* + 1)``, at which none of them
      is significant.
    * ``bh``: with ``r`` items rejected, every item gets ``max(r, 1) · α / m``
      (the Benjamini–Yekutieli "FCR-adjusted" level, 2005).
    * ``none``: ``α``.

    Results are in the input order; [] for [].
    """
    alpha = _check_alpha(alpha)
    p, key = _check_family(p_values, method)
    m = p.size
    if m == 0:
        return []
    if key == "none":
        return [(float(v), alpha) for v in p]
    order = np.argsort(p, kind="stable")
    p_sorted = p[order]
    adjusted_sorted = _adjust_sorted(p_sorted, key)
    rejected = adjusted_sorted < alpha
    levels_sorted = np.empty(m)
    if key == "bh":
        levels_sorted[:] = max(int(np.count_nonzero(rejected)), 1) * alpha / m
    else:
        stop = int(np.argmin(rejected)) if not rejected.all() else m  # 0-based rank k* − 1
        first_of_tie = np.searchsorted(p_sorted, p_sorted, side="left")
        ranks = np.where(np.arange(m) < stop, first_of_tie, stop)
        levels_sorted[:] = alpha / (m - ranks)
    adjusted = np.empty(m)
    levels = np.empty(m)
    adjusted[order] = adjusted_sorted
    levels[order] = levels_sorted
    return [(float(a), float(level)) for a, level in zip(adjusted, levels)]


def verdict(comparison, adjusted_p: float, alpha: float = 0.05) -> str:
    """The wording of one item's result.

    ``"better"`` if ``adjusted_p < alpha`` and ``delta > 0`` (B beats A),
    ``"worse"`` if ``adjusted_p < alpha`` and ``delta < 0``, otherwise
    ``"no detectable difference"``. The adjusted interval (taken at the level
    :func:`family_levels` gives) then lies entirely above, resp. below, 0.
    ``comparison`` is a ``paired.PairedComparison`` (anything with ``delta``).
    """
    alpha = _check_alpha(alpha)
    adjusted_p = float(adjusted_p)
    if not 0.0 <= adjusted_p <= 1.0:
        raise ValueError(f"adjusted p-value must lie in [0, 1], got {adjusted_p}")
    if adjusted_p < alpha:
        if comparison.delta > 0:
            return VERDICT_BETTER
        if comparison.delta < 0:
            return VERDICT_WORSE
    return VERDICT_NONE


@dataclass(frozen=True)
class Adjusted:
    """One item's paired test after its family's adjustment.

    ``paired`` is the unadjusted test with its interval at ``alpha``;
    ``adjusted_p`` and ``adjusted_ci`` (fractions) the same test adjusted for a
    family of ``family_size`` items by ``correction`` ("none" for an item tested
    alone), the interval taken at ``level``; ``significance`` its wording.
    """

    paired: "PairedComparison"
    adjusted_p: float
    level: float
    adjusted_ci: tuple[float, float]
    correction: str
    family_size: int
    significance: str


def adjust_family(
    tests: Mapping[str, "PairedTest | None"], correction: str = "holm", alpha: float = 0.05
) -> dict[str, Adjusted]:
    """Every item that has a test, adjusted: its non-overall items form one family, ``overall`` is tested alone.

    ``tests`` maps item ids to their paired test (None: no per-document data,
    the item is left out of the family and of the result).
    """
    family = [i for i, t in tests.items() if t is not None and i.split(":")[0] != OVERALL]
    levels = dict(zip(family, family_levels([tests[i].p_value for i in family], correction, alpha)))
    adjusted = {}
    for item_id, test in tests.items():
        if test is None:
            continue
        paired = test.comparison(level=alpha)
        if item_id in levels:
            family_size = len(family)
            method = correction if family_size > 1 else "none"
            adjusted_p, level = levels[item_id]
        else:
            family_size, method = 1, "none"
            adjusted_p, level = paired.p_value, alpha
        # The interval beside the adjusted p-value is the same test's, at the family's level.
        interval = test.interval(level, reject=adjusted_p < alpha)
        adjusted[item_id] = Adjusted(paired, adjusted_p, level, interval, method, family_size, verdict(paired, adjusted_p, alpha))
    return adjusted
