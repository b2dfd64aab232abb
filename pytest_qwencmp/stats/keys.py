"""The threshold keys of an expectation: which hypothesis each tests, and how its interval decides it.

Three keys read one side of the paired interval of B − A (percentage points)
at a threshold. Each is a ONE-SIDED test at its own threshold — never the test
of "no difference" — and reads one side of the two-sided interval at the
matching level: at the default 95 % interval, each key is a one-sided test at
2.5 %.

=============================  ==========  ============  ==================================
key (value as written)         threshold   H0 (tested)   decision
=============================  ==========  ============  ==================================
``min_ci_lower = t``           ``t``       Δ ≤ t         passes iff the interval's low > t
``non_inferiority_margin = M`` ``−M``      Δ ≤ −M        passes iff the interval's low > −M
``max_regression = X``         ``−X``      Δ ≥ −X        FAILS iff the interval's high < −X
=============================  ==========  ============  ==================================

``alternative`` names the side of the one-sided p-value each key uses
(``"greater"``: H1 Δ > threshold; ``"less"``: H1 Δ < threshold), as
``paired_binary.paired_binary_test`` takes it. With an interval whose bounds
were computed to agree with the test at the threshold
(``paired_binary_ci(..., at=threshold)``), :func:`decide_key` and the
p-value can never disagree. No package imports: ``paired_binary``, the
rules and the sequential design (``sequential``, at its last look) share this
table and :func:`passes_at`.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["KEYS", "key_threshold", "passes_at", "decide_key", "agree_at"]

KEYS = {  # key -> (sign of the threshold relative to the key's value, the one-sided test's alternative)
    "min_ci_lower": (1.0, "greater"),
    "non_inferiority_margin": (-1.0, "greater"),
    "max_regression": (-1.0, "less"),
}


def key_threshold(key: str, value: float) -> tuple[float, str]:
    """``(threshold, alternative)`` of ``key = value``: the Δ (points) its one-sided test is of, and its side."""
    if key not in KEYS:
        raise ValueError(f"unknown key {key!r}; one of {', '.join(KEYS)}")
    sign, alternative = KEYS[key]
    return sign * float(value), alternative


def passes_at(alternative: str, threshold, low, high):
    """The one decision rule of a one-sided test at ``threshold`` read off ``[low, high]`` (arrays elementwise):
    ``"greater"`` passes iff ``low > threshold``; ``"less"`` passes unless ``high < threshold``."""
    passed = np.greater(low, threshold) if alternative == "greater" else np.logical_not(np.less(high, threshold))
    return bool(passed) if np.ndim(passed) == 0 else passed


def decide_key(key: str, value: float, low: float, high: float) -> bool:
    """Whether ``key = value`` PASSES, read off an interval ``[low, high]`` of B − A in points.

    ``min_ci_lower = t``: ``low > t``; ``non_inferiority_margin = M``: ``low > −M``;
    ``max_regression = X``: ``not high < −X``. Strict inequalities: a bound exactly
    at the threshold does not show the difference (the one-sided p-value is then
    at least its level). Give the interval of the level the key is tested at
    (95 % for a key alone, the family's adjusted level otherwise), computed with
    ``at=threshold`` so that it agrees with the p-value to the last bit.
    """
    threshold, alternative = key_threshold(key, value)
    return passes_at(alternative, threshold, low, high)


def agree_at(low: float, high: float, threshold: float, beyond_low: bool, beyond_high: bool) -> tuple[float, float]:
    """``[low, high]`` moved (by rounding only) to agree with the test's decisions at ``threshold``.

    ``beyond_low``: the test says Δ > threshold, so ``low`` must lie above it;
    ``beyond_high``: the test says Δ < threshold, so ``high`` must lie below it.
    A bound on the wrong side is put on the threshold (accepted) or the next
    float beyond it (rejected) — what ``paired_binary_ci(..., at=...)`` does.
    """
    if beyond_low and not low > threshold:
        low = math.nextafter(threshold, math.inf)
    elif not beyond_low and low > threshold:
        low = threshold
    if beyond_high and not high < threshold:
        high = math.nextafter(threshold, -math.inf)
    elif not beyond_high and high < threshold:
        high = threshold
    return low, high
