"""Many tests at once: multiple-comparison adjustment with intervals that agree, and the verdict.

:func:`adjust_family` is THE adjustment. It takes the ONE-SIDED p-values of
the hypotheses a family of items tests — each threshold key's own test at its
own threshold (``keys``), or the test of "no difference" on the side the data
point to — adjusts them (Holm, BH or none) at the one-sided ``alpha`` (0.025:
one side of a 95 % interval) and returns each item's TWO-SIDED interval level,
chosen so that the threshold lies outside the item's interval on its side
exactly when the adjusted p-value is below ``alpha``. :func:`adjust_p_values`
is its adjusted p-values alone (= statsmodels' ``multipletests``).
:func:`adjust_items` applies it to a benchmark's items for the verdict
("better", "worse", "no detectable difference", worded by :func:`verdict`):
the one adjustment the A-vs-B comparison and the baseline comparison use; the
keys' families are ``rules.test_keys``. Pure numpy; the tests check the
adjustments against statsmodels.
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
ALPHA = 0.025  # one-sided: what each key (or a Holm family of keys) may err; one side of a 95 % interval


def _values(values: Sequence[float]) -> np.ndarray:
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"adjust_p_values: p-values must be numbers ({exc})") from None
    if arr.ndim != 1 or not np.all(np.isfinite(arr)):
        raise ValueError("adjust_p_values: expected a flat sequence of finite p-values")
    return arr


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


def adjust_family(p_values: Sequence[float], method: str = "holm", alpha: float = ALPHA) -> tuple[np.ndarray, np.ndarray]:
    """Adjusted one-sided p-values and each item's two-sided interval level: ``(adjusted, levels)``.

    ``p_values``: one per item, the ONE-SIDED p-value of the hypothesis it tests
    (``paired_binary_test(..., delta0=threshold, alternative=...)`` for a key).
    ``alpha``: the one-sided level the family controls (0.025, one side of a 95 %
    interval). With the m p-values sorted ascending ``p_(1) ≤ … ≤ p_(m)``:

    * ``"holm"`` (family-wise error ≤ alpha): ``adj_(k) = min(1, max_{j≤k} (m − j + 1) p_(j))``;
      an item rejected at rank k is tested at the one-sided level ``alpha/(m − k + 1)``
      (tied p-values share the level of the first of them), every other item at
      ``alpha/(m − k* + 1)``, the rank k* where the step-down stopped;
    * ``"bh"`` (false discovery rate ≤ alpha): ``adj_(k) = min(1, min_{j≥k} p_(j) m / j)``;
      with r rejections every item gets ``max(r, 1)·alpha/m`` (Benjamini–Yekutieli's
      FCR-adjusted level, 2005);
    * ``"none"``: ``adj = p``, level ``alpha``.

    ``levels`` are TWO-SIDED (2 × the one-sided level), the form an interval's
    ``level`` takes: a family of one at alpha 0.025 gets 0.05, the 95 % interval.
    Guarantee, for every input: ``p_i < levels_i / 2 ⟺ adjusted_i < alpha`` (where
    rounding ties p to its level, the level moves by one ulp to the side the
    adjusted p-value decides), so with an interval that inverts its test at the
    threshold (``paired_binary_ci(..., level=levels[i], at=threshold)``) the
    threshold lies outside item i's interval on its side ⟺ ``adjusted_i < alpha``.
    The adjusted p-values equal statsmodels' ``multipletests(p, method="holm" |
    "fdr_bh")[1]``. Input order is kept; empty in, empty out.
    """
    alpha = float(alpha)
    if not 0.0 < alpha < 0.5:
        raise ValueError(f"alpha is one-sided and must lie in (0, 0.5), got {alpha} (0.025 for a 95 % interval)")
    p, key = _check_family(p_values, method)
    m = p.size
    if m == 0:
        return np.empty(0), np.empty(0)
    if key == "none":
        adjusted, one_sided = p.copy(), np.full(m, alpha)
    else:
        order = np.argsort(p, kind="stable")
        ps = p[order]
        adj = _adjust_sorted(ps, key)
        if key == "holm":
            rejected = adj < alpha
            stop = int(np.argmin(rejected)) if not rejected.all() else m  # 0-based rank where it stopped
            first_of_tie = np.searchsorted(ps, ps, side="left")
            ranks = np.where(np.arange(m) < stop, first_of_tie, stop)
            lev = alpha / (m - ranks)
        else:
            lev = np.full(m, max(int(np.count_nonzero(adj < alpha)), 1) * alpha / m)
        adjusted, one_sided = np.empty(m), np.empty(m)
        adjusted[order], one_sided[order] = adj, lev
    # the guarantee to the last bit: p < level ⟺ adjusted < alpha
    reject = adjusted < alpha
    one_sided = np.where(reject & ~(p < one_sided), np.nextafter(p, np.inf), one_sided)
    one_sided = np.where(~reject & (p < one_sided), p, one_sided)
    return adjusted, 2.0 * one_sided


def verdict(comparison, adjusted_p: float, alpha: float = 2 * ALPHA) -> str:
    """The wording of one item's result from its two-sided adjusted p-value.

    ``"better"`` if ``adjusted_p < alpha`` and ``delta > 0`` (B beats A),
    ``"worse"`` if ``adjusted_p < alpha`` and ``delta < 0``, otherwise
    ``"no detectable difference"``. ``alpha`` is two-sided (0.05: each side
    2.5 %). The adjusted interval (taken at the level :func:`adjust_items`
    gives) then lies entirely above, resp. below, 0. ``comparison`` is a
    ``paired.PairedComparison`` (anything with ``delta``).
    """
    alpha = float(alpha)
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must lie strictly between 0 and 1, got {alpha}")
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
    """One item's paired test after its family's adjustment, for the verdict.

    ``paired`` is the unadjusted test with its interval at ``level`` 0.05 (95 %);
    ``adjusted_p`` (two-sided) and ``adjusted_ci`` (fractions) the same test of
    "no difference" adjusted for a family of ``family_size`` items by
    ``correction`` ("none" for an item tested alone), the interval taken at
    ``level``; ``significance`` its wording.
    """

    paired: "PairedComparison"
    adjusted_p: float
    level: float
    adjusted_ci: tuple[float, float]
    correction: str
    family_size: int
    significance: str


def adjust_items(
    tests: Mapping[str, "PairedTest | None"], correction: str = "holm", level: float = 2 * ALPHA
) -> dict[str, Adjusted]:
    """Every item that has a test, adjusted for the verdict: its non-overall items form one family, ``overall`` is alone.

    ``tests`` maps item ids to their paired test (None: no per-document data,
    the item is left out of the family and of the result). The family's
    hypotheses are "no difference", each on the side its data point to: the
    one-sided p-value is half the two-sided one, adjusted by :func:`adjust_family`
    at ``level / 2``; the adjusted p-value is reported two-sided (doubled), so
    ``0 ∉ adjusted CI ⟺ adjusted p < level``.
    """
    family = [i for i, t in tests.items() if t is not None and i.split(":")[0] != OVERALL]
    adjusted_one, levels = adjust_family([tests[i].p_value / 2.0 for i in family], correction, level / 2.0)
    by_item = {i: (min(1.0, 2.0 * float(a)), float(lv)) for i, a, lv in zip(family, adjusted_one, levels)}
    adjusted = {}
    for item_id, test in tests.items():
        if test is None:
            continue
        paired = test.comparison(level=level)
        if item_id in by_item:
            family_size = len(family)
            method = correction if family_size > 1 else "none"
            adjusted_p, item_level = by_item[item_id]
        else:
            family_size, method = 1, "none"
            adjusted_p, item_level = paired.p_value, level
        # The interval beside the adjusted p-value is the same test's, at the family's level.
        interval = test.interval(item_level, reject=adjusted_p < level)
        adjusted[item_id] = Adjusted(paired, adjusted_p, item_level, interval, method, family_size,
                                     verdict(paired, adjusted_p, level))
    return adjusted
