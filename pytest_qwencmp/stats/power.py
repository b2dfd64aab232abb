"""Power and minimum detectable effect (MDE) of the paired tests in ``paired``.

One source for "what can this item detect?", used by the run (per item, from
the observed data) and by ``python -m pytest_qwencmp plan`` (before a run,
from dataset sizes and an assumed discordance). All differences are fractions
(0.05 = 5 points); callers convert.

A check asks whether the interval of B − A at some ``level`` lies beyond a
threshold ``τ`` on one side: ``side=+1`` "lower bound > τ" (B better than
``τ``), ``side=-1`` "upper bound < τ" (B worse than ``τ``). ``τ = 0`` is the
test itself. :func:`power` is the probability of that event for a true
difference ``Δ``; :func:`detectable` inverts it: the true ``Δ`` at which the
check fires with probability ``target`` (80 %); :func:`mde` is the smallest
true improvement the two-sided test detects with that power.

* Binary metrics (exact): documents are discordant with probability ``r``
  (the discordance); given ``m`` discordant documents, ``b ~ Bin(m, π)`` with
  ``π = (r + Δ)/(2r)``, so ``|Δ| <= r``. For each ``m`` the run's own test
  (``paired_binary_test``, Tango's score test with continuity correction, the
  decision ``p_greater(τ) < level/2``, exactly what the run compares) passes
  from a critical count ``u(m)`` on (its bound is monotone in b), found by
  bisection; ``power = Σ_m P(M = m) · P(Bin(m, π) >= u(m))``, summed over ``m``
  within 8 standard deviations of ``n r``. No discordant document (``r = 0``)
  is one table, b = c = 0, whose interval is wide.
* Other metrics: a location shift of the differences with standard deviation
  ``sd``; the permutation test is approximated by the paired t-test, power
  from the noncentral t distribution; ``min_p`` (the smallest p-value the
  permutation test can give, ``2/(resamples+1)``) caps what is detectable.

numpy and ``scipy.special`` only (no scipy.stats: the planner must start fast).
Monte Carlo tests check the numbers against simulated runs of the real tests.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable

import numpy as np
from scipy import special

from .paired_binary import paired_binary_test

__all__ = ["Design", "power", "detectable", "mde", "mde_level", "level_phrase", "point_pass_probability", "smallest_n"]

DEFAULT_POWER = 0.8
_BISECTIONS = 26


@dataclass(frozen=True)
class Design:
    """What a paired comparison's power depends on.

    ``n`` documents; ``discordance`` (binary metrics: the share of documents
    where exactly one model scores) or ``sd`` (other metrics: standard
    deviation of the per-document differences); ``min_p`` the smallest p-value
    the test can produce (0 for the exact binomial machinery, which handles it
    itself).
    """

    n: int
    discordance: float | None = None
    sd: float | None = None
    min_p: float = 0.0

    @property
    def binary(self) -> bool:
        return self.discordance is not None


def mde_level(alpha: float, correction: str, family_size: int) -> float:
    """The per-item level an MDE is computed at: ``α/m`` under Holm or BH (one true effect in a family of ``m``), else ``α``.

    For Holm this is exact when a single item of the family differs (it is
    tested first, at ``α/m``); for BH it is the level of a family with one
    rejection. It is conservative when several items differ at once.
    """
    if correction in ("holm", "bh") and family_size > 1:
        return alpha / family_size
    return alpha


def level_phrase(level: float) -> str:
    """A two-sided level in words, the one way every report says it: ``95 % interval, 2.5 % a side``."""
    confidence = f"{100 * (1 - level):.2f}".rstrip("0").rstrip(".")
    return f"{confidence} % interval, {100 * level / 2:.3g} % a side"


# --------------------------------------------------------------------------- binary (exact)


def _binom_sf(k: np.ndarray, m: np.ndarray, p: float | np.ndarray) -> np.ndarray:
    """P(X > k) for X ~ Bin(m, p); 1 for k < 0, 0 for k >= m."""
    safe = np.clip(k, 0, np.maximum(m - 1, 0)).astype(np.float64)
    with np.errstate(invalid="ignore"):
        out = special.betainc(safe + 1.0, np.maximum(m - safe, 1.0), p)  # = bdtrc(k, m, p), ~3x faster
    return np.where(k < 0, 1.0, np.where(k >= m, 0.0, out))


@lru_cache(maxsize=4096)
def _discordant_counts(n: int, r: float) -> tuple[np.ndarray, np.ndarray]:
    """(m values, P(M = m)) for M ~ Bin(n, r), over the range holding all but ~1e-15 of the mass."""
    if r >= 1.0:
        return np.array([n]), np.array([1.0])
    if r <= 0.0:
        return np.array([0]), np.array([1.0])
    mean, sd = n * r, math.sqrt(n * r * (1.0 - r))
    low = max(0, math.floor(mean - 8.0 * sd - 5))
    high = min(n, math.ceil(mean + 8.0 * sd + 5))
    m = np.arange(low, high + 1)
    log_pmf = (special.gammaln(n + 1) - special.gammaln(m + 1) - special.gammaln(n - m + 1)
               + m * math.log(r) + (n - m) * math.log1p(-r))
    return m, np.exp(log_pmf)


@lru_cache(maxsize=4096)
def _critical_counts(n: int, r: float, level: float, tau: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(m, P(M = m), u(m)): the run's test says ``Δ > τ`` exactly when ``b >= u(m)`` (``u = m + 1``: never).

    ``u(m)`` is the smallest b in [0, m] with ``p_greater(τ; b, m − b, n) < level/2``,
    found by bisection over b for all m at once; the p-value is the run's own.
    """
    m, weight = _discordant_counts(n, r)
    lo = np.zeros(m.shape, dtype=np.int64)
    hi = m.astype(np.int64) + 1  # "passes" at m + 1 by definition: the answer lies in [lo, hi]
    points = tau * 100.0
    while np.any(lo < hi):
        open_ = lo < hi
        mid = (lo + hi) // 2
        b = np.where(open_, mid, 0)
        c = np.where(open_, m - mid, 0)
        passes = open_ & (mid <= m) & (paired_binary_test(b, c, n, points, "greater") < level / 2.0)
        hi = np.where(open_ & passes, mid, hi)
        lo = np.where(open_ & ~passes, mid + 1, lo)
    return m, weight, hi


def _binary_power(n: int, r: float, delta: float, level: float, tau: float) -> float:
    """P(the run's test says Δ > τ at ``level``, i.e. the interval's low bound lies above τ) for true B − A ``delta``."""
    m, weight, u = _critical_counts(n, r, level, tau)
    pi = 0.5 if r <= 0.0 else min(1.0, max(0.0, (r + delta) / (2.0 * r)))
    hit = _binom_sf(u - 1, m, pi)
    hit = np.where(u <= 0, 1.0, np.where(u > m, 0.0, hit))
    return float(np.clip(np.sum(weight * hit), 0.0, 1.0))


# --------------------------------------------------------------------------- other metrics (t approximation)


def _continuous_power(design: Design, delta: float, level: float, tau: float) -> float:
    if design.min_p >= level or design.n < 2:
        return 0.0
    df = design.n - 1
    se = float(design.sd) / math.sqrt(design.n)
    if se <= 0.0:
        return 1.0 if delta > tau else 0.0
    critical = float(special.stdtrit(df, 1.0 - level / 2.0))
    shift = (delta - tau) / se
    below = float(special.nctdtr(df, shift, critical))
    if not math.isfinite(below):  # scipy's noncentral t gives NaN far in its tail: the probability is 0 or 1 there
        below = 0.0 if shift > critical else 1.0
    return 1.0 - below


# --------------------------------------------------------------------------- public


def power(design: Design, delta: float, level: float, *, threshold: float = 0.0, side: int = 1) -> float:
    """P(the interval at ``level`` lies beyond ``threshold`` on ``side``) when the true B − A is ``delta``."""
    if side not in (1, -1):
        raise ValueError("side must be +1 (lower bound above the threshold) or -1 (upper bound below it)")
    if side == -1:  # upper bound of (A, B) below τ ⟺ lower bound of (B, A) above −τ
        delta, threshold = -delta, -threshold
    if design.binary:
        if design.n < 1:
            return 0.0
        return _binary_power(int(design.n), max(0.0, float(design.discordance)), float(delta), float(level), float(threshold))
    return _continuous_power(design, float(delta), float(level), float(threshold))


@lru_cache(maxsize=4096)
def detectable(design: Design, level: float, target: float = DEFAULT_POWER, *, threshold: float = 0.0,
               side: int = 1) -> float | None:
    """The true B − A at which the check fires with probability ``target``; None if no possible difference does.

    ``side=+1``: the smallest ``Δ`` with ``P(lower bound > threshold) >= target``;
    ``side=-1``: the largest ``Δ`` with ``P(upper bound < threshold) >= target``.
    Binary designs search ``|Δ| <= discordance``; others ``threshold ± 40 sd``.
    """
    if side == -1:  # by symmetry: the mirror image of a side +1 check
        found = detectable(design, level, target, threshold=-threshold, side=1)
        return None if found is None else -found
    if design.binary:
        return _detect_binary(design, level, target, threshold)
    if design.sd is None or design.sd <= 0 or design.n < 2 or design.min_p >= level:
        return None
    span = 40.0 * float(design.sd)
    return _bisect(lambda d: power(design, d, level, threshold=threshold), threshold - span, threshold + span, target)


def _detect_binary(design: Design, level: float, target: float, tau: float) -> float | None:
    r = float(design.discordance)
    if r <= 0.0:
        return None
    return _bisect(lambda d: power(design, d, level, threshold=tau), -r, r, target)


def _bisect(f: Callable[[float], float], low: float, high: float, target: float) -> float | None:
    """Smallest x in [low, high] with f(x) >= target, f non-decreasing; None if f(high) < target.

    The Illinois variant of regula falsi (a few evaluations for a smooth power
    curve), with a plain bisection every third step so that a flat curve over a
    wide bracket still closes, to a bracket of 1e-7 (0.00001 points).
    """
    f_high = f(high) - target
    if f_high < 0:
        return None
    f_low = f(low) - target
    if f_low >= 0:
        return low
    side = 0
    for step in range(_BISECTIONS * 6):
        if high - low <= 1e-7:
            break
        mid = (low * f_high - high * f_low) / (f_high - f_low) if step % 3 != 2 else (low + high) / 2.0
        if not low < mid < high:
            mid = (low + high) / 2.0
        f_mid = f(mid) - target
        if f_mid >= 0:
            high, f_high = mid, f_mid
            if side == 1:
                f_low /= 2.0
            side = 1
        else:
            low, f_low = mid, f_mid
            if side == -1:
                f_high /= 2.0
            side = -1
    return high


def mde(design: Design, level: float, target: float = DEFAULT_POWER) -> float | None:
    """Minimum detectable effect: the smallest true improvement the two-sided test at ``level`` detects with ``target`` power.

    By symmetry it is also the smallest true regression detected. None when
    nothing is detectable at this ``n`` (too few documents, or no discordance).
    """
    found = detectable(design, level, target, threshold=0.0, side=1)
    return None if found is None else max(found, 0.0)


def point_pass_probability(design: Design, delta: float, threshold: float) -> float:
    """P(point estimate of B − A >= threshold) for true ``delta`` (normal approximation).

    Standard error ``sqrt(r − Δ²)/√n`` for binary designs (multinomial
    variance of the per-document difference), ``sd/√n`` otherwise.
    """
    if design.binary:
        var = max(float(design.discordance) - delta * delta, 0.0)
    else:
        var = float(design.sd or 0.0) ** 2
    se = math.sqrt(var / design.n) if design.n > 0 else 0.0
    if se == 0.0:
        return 1.0 if delta >= threshold else 0.0
    return float(special.ndtr((delta - threshold) / se))


def smallest_n(ok: Callable[[int], bool], start: int = 1, limit: int = 10_000_000) -> int | None:
    """The smallest n in [start, limit] with ``ok(n)``, assuming ``ok`` turns true and stays true (None if never)."""
    low, high = start, max(start, 1)
    while not ok(high):
        if high >= limit:
            return None
        low, high = high + 1, min(limit, high * 2)
    while low < high:
        mid = (low + high) // 2
        if ok(mid):
            high = mid
        else:
            low = mid + 1
    return high
