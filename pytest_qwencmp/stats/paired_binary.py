"""Confidence intervals and tests for the difference of two paired proportions.

Two models A and B answer the same ``n`` documents with 0/1 scores (``acc``,
``acc_norm``, ``pass@1`` with one sample). Only the discordant documents carry
information about the difference: ``b_only`` = documents B got right and A got
wrong, ``a_only`` = the reverse. The difference of the two accuracies is

    Δ = p_B − p_A = q_b − q_a,      estimated by  Δ̂ = (b_only − a_only) / n,

with ``q_b``, ``q_a`` the probabilities that a document is discordant in B's,
resp. A's favour. Everything here is in **percentage points** of B − A
(``Δ = 0.05`` is ``5.0``), elementwise over numpy arrays: scalars in, floats
out; arrays in (any broadcastable shapes), arrays out.

Methods (``method=``):

* ``"score"``: the unconditional asymptotic score interval of Tango (1998,
  Stat Med 17:891–908). Under H0: Δ = δ the restricted maximum likelihood
  estimate of ``q_a`` is

      q̃ = (√(B² − 4AC) − B) / (2A),   A = 2n,  B = −b − c + (2n − b + c) δ,  C = −c δ (1 − δ)

  (``b = b_only``, ``c = a_only``), and the score statistic is

      Z(δ) = (b − c − n δ) / √(n (2 q̃ + δ (1 − δ))),

  decreasing in δ. At δ = 0 it is McNemar's ``(b − c) / √(b + c)`` (0 when
  ``b = c = 0``). It does not condition on the number of discordant documents,
  so it stays valid (and wide) when there are none: ``n = 20, b = c = 0`` gives
  ±16.11 points; ``b = 700, c = 0, n = 14,042`` gives [4.64, 5.36].
* ``"score-cc"`` (**the default**, ``DEFAULT_METHOD``): the same statistic with
  the numerator's distance from 0 reduced by ½, ``sign(u)·max(|u| − ½, 0)``,
  ``u = b − c − nδ`` — half the step of the integer count b − c (a continuity
  correction; at δ = 0 it is McNemar's ``(|b − c| − ½)/√(b + c)``). Plain Tango
  dips below the targets where only ~5 documents are expected to disagree
  (exact coverage 92.8 %, one-sided error 5.45 % on a fine grid); with the
  correction the exact coverage is ≥ 95.0 % and every one-sided error ≤ 3.5 %
  on the whole grid, for about one document of extra width (RESULTS.md).
  ``n = 20, b = c = 0``: ±20.05; ``b = 700, c = 0, n = 14,042``: [4.63, 5.36].
* ``"exact-conditional"``: what the plugin did before. Clopper–Pearson on
  ``π = b/m`` among the ``m = b + c`` discordant documents, mapped to points by
  ``(2π − 1)·m/n``, with its test (the conditional binomial test of
  ``π0 = (1 + δ0·n/m)/2``). Exact *given m*; unconditionally it under-covers
  badly when one model wins most discordant documents (5 % at n = 14,042), is
  not even monotone in b, and ``m = 0`` gives ``[0, 0]``. Kept for comparison.

The test of Δ = δ0 has ``p_greater = Φ(−Z(δ0))`` (H1: Δ > δ0), ``p_less =
Φ(Z(δ0))`` and two-sided ``p = min(1, 2 min(p_greater, p_less))`` (the
conditional method: binomial tails). The interval at level α (``confidence =
1 − α``) is the set of δ0 the two-sided test does not reject. Interval and
test are one computation: after the root is found, each bound is moved to the
floating-point number where the test's own decision switches, so

    δ0 ∉ [low, high]  ⟺  p_two_sided(δ0) < α
    low > δ0          ⟺  p_greater(δ0) < α/2
    high < δ0         ⟺  p_less(δ0) < α/2

(α = 1 − confidence, or ``level`` given exactly) for every table and every δ0
except within ~1e-13 points of a bound, where the double-precision statistic
is not monotone to the last bit; ``at=δ0`` makes it exact for that δ0 too (the
plugin passes each key's threshold). A key with threshold t is decided by the
shifted test of Δ = t, not by the test of 0 (:func:`key_verdict`).

Pure numpy and ``scipy.special``; the keys' table from ``keys``.
"""

from __future__ import annotations

import numpy as np
from scipy import special

from .keys import KEYS

__all__ = ["paired_binary_ci", "paired_binary_test", "key_verdict", "METHODS", "DEFAULT_METHOD", "ALTERNATIVES"]

METHODS = ("score", "score-cc", "exact-conditional")
DEFAULT_METHOD = "score-cc"
ALTERNATIVES = ("two-sided", "greater", "less")
POINTS = 100.0
_CC = {"score": 0.0, "score-cc": 0.5}  # continuity correction on the count b − c − nδ

_ROOT_ITERATIONS = 200   # Illinois steps (converges in ~10-30; the cap is a safety net)
_POLISH_ITERATIONS = 1100  # float bisection to adjacent doubles (usually ~20)


# --------------------------------------------------------------------------- validation


def _counts(b_only, a_only, n):
    b = np.asarray(b_only, dtype=np.float64)
    c = np.asarray(a_only, dtype=np.float64)
    nn = np.asarray(n, dtype=np.float64)
    for name, v in (("b_only", b), ("a_only", c), ("n", nn)):
        if not np.all(np.isfinite(v)) or np.any(v < 0) or np.any(v != np.floor(v)):
            raise ValueError(f"{name} must be non-negative integers (counts of documents)")
    if np.any(nn < 1):
        raise ValueError("n must be at least 1 document")
    if np.any(b + c > nn):
        raise ValueError("b_only + a_only cannot exceed n (they count distinct documents)")
    return np.broadcast_arrays(b, c, nn)


def _alpha(confidence, level):
    """α = 1 − confidence (in floating point: 1 − 0.95 = 0.050000000000000044), or ``level`` exactly."""
    alpha = 1.0 - np.asarray(confidence, dtype=np.float64) if level is None else np.asarray(level, dtype=np.float64)
    if not np.all((alpha > 0.0) & (alpha < 1.0)):
        raise ValueError("the level α = 1 − confidence must lie strictly between 0 and 1")
    return alpha


def _method(method):
    key = str(method).lower()
    if key not in METHODS:
        raise ValueError(f"unknown method {method!r}; use one of {', '.join(METHODS)}")
    return key


def _out(x, scalar):
    return float(x) if scalar else x


# --------------------------------------------------------------------------- the statistics


def _tango_z(b, c, n, x, cc=0.0):
    """Tango's score statistic Z(x) for Δ = x (a fraction), elementwise; ±inf outside [−1, 1].

    ``cc``: continuity correction subtracted from |b − c − n x| (0 for Tango's statistic).
    Computed in one orientation (b ≥ c, and x ≥ 0 when b = c) and mirrored, so that
    swapping the models mirrors every p-value and bound bit for bit.
    """
    flip = (c > b) | ((c == b) & (x < 0.0))
    b, c, x = np.where(flip, c, b), np.where(flip, b, c), np.where(flip, -x, x)
    z = _tango_z_oriented(b, c, n, x, cc)
    return np.where(flip, -z, z)


def _tango_z_oriented(b, c, n, x, cc):
    with np.errstate(divide="ignore", invalid="ignore"):
        A = 2.0 * n
        B = -b - c + (2.0 * n - b + c) * x
        C = -c * x * (1.0 - x)
        D = np.maximum(B * B - 4.0 * A * C, 0.0)
        root = np.sqrt(D)
        # the non-negative root of A q² + B q + C = 0, in the form without cancellation
        q = np.where(B <= 0.0, (root - B) / (2.0 * A), -2.0 * C / (B + root))
        q = np.where(np.isfinite(q), q, 0.0)
        var = n * (2.0 * q + x * (1.0 - x))
        var = np.where(x == 0.0, b + c, var)  # exactly McNemar's b + c at Δ = 0
        num = b - c - n * x
        if cc:
            num = np.sign(num) * np.maximum(np.abs(num) - cc, 0.0)
        z = num / np.sqrt(np.maximum(var, 0.0))
        z = np.where(num == 0.0, 0.0, z)  # 0/0 (no discordance at Δ = 0, or Δ̂ = ±1 at the edge)
        z = np.where(x < -1.0, np.inf, np.where(x > 1.0, -np.inf, z))
    return z


def _tango_tails(b, c, n, x, cc=0.0):
    z = _tango_z(b, c, n, x, cc)
    return special.ndtr(-z), special.ndtr(z)


def _binom_sf_ge(k, m, p):
    """P(X >= k) for X ~ Bin(m, p), k integer; 1 for k <= 0; p clipped to [0, 1]."""
    with np.errstate(invalid="ignore", divide="ignore"):
        out = special.betainc(np.maximum(k, 1.0), np.maximum(m - k + 1.0, 1.0), np.clip(p, 0.0, 1.0))
    return np.where(k <= 0, 1.0, np.where(k > m, 0.0, out))


def _conditional_tails(b, c, n, x, points):
    """Exact conditional tails P(X >= b), P(X <= b), X ~ Bin(m, π0), π0 = (1 + x n/m)/2.

    Written symmetrically (π0 and 1 − π0 as (1 ± y)/2) so that swapping the models mirrors it exactly.
    """
    m = b + c
    with np.errstate(divide="ignore", invalid="ignore"):
        y = x * n / m
    pi_b, pi_c = (1.0 + y) / 2.0, (1.0 - y) / 2.0
    greater = _binom_sf_ge(b, m, pi_b)           # H1: Δ > x
    less = _binom_sf_ge(c, m, pi_c)              # P(X <= b) = P(m − X >= c), m − X ~ Bin(m, 1 − π0)
    # outside the conditional range Δ ∈ [−m/n, m/n]: the hypothesis is impossible on its side
    greater = np.where(pi_b < 0.0, 0.0, np.where(pi_c < 0.0, 1.0, greater))
    less = np.where(pi_c < 0.0, 0.0, np.where(pi_b < 0.0, 1.0, less))
    # no discordant document: conditionally Δ = 0 exactly
    greater = np.where(m == 0, np.where(points < 0.0, 0.0, 1.0), greater)
    less = np.where(m == 0, np.where(points > 0.0, 0.0, 1.0), less)
    return greater, less


def _tails(b, c, n, points, method):
    """(p_greater, p_less) of the test of Δ = ``points`` (in points), elementwise.

    A δ0 beyond ±100 points is impossible: rejected on its side (decided in
    points, before the division by 100 can round it back onto ±1).
    """
    x = points / POINTS
    if method in _CC:
        greater, less = _tango_tails(b, c, n, x, cc=_CC[method])
    else:
        greater, less = _conditional_tails(b, c, n, x, points)
    greater = np.where(points < -POINTS, 0.0, np.where(points > POINTS, 1.0, greater))
    less = np.where(points > POINTS, 0.0, np.where(points < -POINTS, 1.0, less))
    return greater, less


# --------------------------------------------------------------------------- the test


def paired_binary_test(b_only, a_only, n, delta0=0.0, alternative="two-sided", method=DEFAULT_METHOD):
    """p-value of the paired test of H0: Δ = ``delta0`` (points of B − A), elementwise.

    ``alternative``: ``"two-sided"`` (``min(1, 2·min(p_greater, p_less))``),
    ``"greater"`` (H1: Δ > delta0, small when B is confidently better than
    delta0; the test of ``min_ci_lower = delta0`` and of
    ``non_inferiority_margin = −delta0``) or ``"less"`` (H1: Δ < delta0; the test
    of ``max_regression = −delta0``). ``method="score"`` is Tango's score test;
    at ``delta0 = 0`` its statistic is McNemar's ``(b − c)/√(b + c)`` (``p = 1``
    when ``b = c = 0``); the default ``"score-cc"`` uses ``|b − c − n·δ0| − ½``
    in the numerator (at 0: McNemar with a ½ correction). It is the exact
    inversion of :func:`paired_binary_ci` of the same method:

        delta0 ∉ CI(confidence)  ⟺  two-sided p < 1 − confidence
        CI low  > delta0         ⟺  p_greater < (1 − confidence) / 2
        CI high < delta0         ⟺  p_less    < (1 − confidence) / 2

    for every table and every delta0 (to the last bit: for a delta0 within
    ~1e-13 points of a bound, compute the interval with ``at=delta0``). A
    delta0 outside [−100, 100] is impossible: its p-value is 0 on the side
    that excludes it.
    """
    method = _method(method)
    if alternative not in ALTERNATIVES:
        raise ValueError(f"alternative must be one of {', '.join(ALTERNATIVES)}, got {alternative!r}")
    scalar = all(np.ndim(v) == 0 for v in (b_only, a_only, n, delta0))
    b, c, nn = _counts(b_only, a_only, n)
    d = np.asarray(delta0, dtype=np.float64)
    if np.any(np.isnan(d)):
        raise ValueError("delta0 must be a number of points")
    greater, less = _tails(b, c, nn, d, method)
    if alternative == "greater":
        p = greater
    elif alternative == "less":
        p = less
    else:
        p = np.minimum(1.0, 2.0 * np.minimum(greater, less))
    return _out(p, scalar)


# --------------------------------------------------------------------------- the interval


def _illinois(f, lo, hi, f_lo, f_hi, active):
    """Vectorised Illinois (modified regula falsi) for a root of f in [lo, hi] with f(lo) > 0 > f(hi)."""
    lo, hi, f_lo, f_hi = lo.copy(), hi.copy(), f_lo.copy(), f_hi.copy()
    side = np.zeros(lo.shape, dtype=np.int8)
    idx = np.flatnonzero(active)
    for _ in range(_ROOT_ITERATIONS):
        if idx.size == 0:
            break
        a, b_, fa, fb = lo[idx], hi[idx], f_lo[idx], f_hi[idx]
        x = (a * fb - b_ * fa) / (fb - fa)
        x = np.where((x > a) & (x < b_), x, 0.5 * (a + b_))
        fx = f(x, idx)
        pos = fx > 0
        # the root is right of x: move lo
        lo[idx] = np.where(pos, x, a)
        f_lo[idx] = np.where(pos, fx, np.where(side[idx] == -1, fa / 2.0, fa))
        hi[idx] = np.where(pos, b_, x)
        f_hi[idx] = np.where(pos, np.where(side[idx] == 1, fb / 2.0, fb), fx)
        side[idx] = np.where(pos, 1, -1)
        zero = fx == 0.0
        lo[idx[zero]] = x[zero]
        hi[idx[zero]] = x[zero]
        width = hi[idx] - lo[idx]
        done = (fx == 0.0) | (width <= 4e-16 * np.maximum(np.abs(x), 1e-3))
        idx = idx[~done]
    return 0.5 * (lo + hi)


def _polish(x, accepted, lower):
    """The float where ``accepted`` changes, next to the approximate bound ``x`` (points).

    ``lower=True``: the smallest float accepted (everything below rejected);
    else the largest float accepted. ``accepted(values, idx)`` evaluates the
    test's own decision for the elements ``idx``.
    """
    x = x.copy()
    idx = np.arange(x.size)
    step = np.maximum(np.abs(x), 1e-3) * 2e-14
    inside = x.copy()   # accepted side
    outside = x.copy()  # rejected side
    sign = -1.0 if lower else 1.0
    # bracket: inside accepted, outside rejected (widen until both hold)
    todo = idx
    for _ in range(60):
        if todo.size == 0:
            break
        cand = x[todo] - sign * step[todo]
        ok = accepted(cand, todo)
        inside[todo[ok]] = cand[ok]
        step[todo[~ok]] *= 8.0
        todo = todo[~ok]
    if todo.size:
        raise RuntimeError("could not bracket a bound (accepted side)")
    step = np.maximum(np.abs(x), 1e-3) * 2e-14
    todo = idx
    for _ in range(60):
        if todo.size == 0:
            break
        cand = x[todo] + sign * step[todo]
        ok = ~accepted(cand, todo)
        outside[todo[ok]] = cand[ok]
        step[todo[~ok]] *= 8.0
        todo = todo[~ok]
    if todo.size:
        raise RuntimeError("could not bracket a bound (rejected side)")
    todo = idx
    for _ in range(_POLISH_ITERATIONS):
        if todo.size == 0:
            break
        a, o = inside[todo], outside[todo]
        mid = a + (o - a) / 2.0
        adjacent = (mid == a) | (mid == o)
        todo, a, o, mid = todo[~adjacent], a[~adjacent], o[~adjacent], mid[~adjacent]
        if todo.size == 0:
            break
        ok = accepted(mid, todo)
        inside[todo[ok]] = mid[ok]
        outside[todo[~ok]] = mid[~ok]
    return inside


def _score_bounds(b, c, n, alpha, cc):
    """Tango's interval as fractions (approximate roots; the polish makes them exact)."""
    z = -special.ndtri(alpha / 2.0)
    low = np.empty(b.shape)
    high = np.empty(b.shape)
    hat = (b - c) / n

    def h(x, idx, target):  # sign(h) = sign(Z(x) − target[idx]), smooth in x
        bi, ci, ni, target = b[idx], c[idx], n[idx], target[idx]
        with np.errstate(divide="ignore", invalid="ignore"):
            A = 2.0 * ni
            B = -bi - ci + (2.0 * ni - bi + ci) * x
            C = -ci * x * (1.0 - x)
            root = np.sqrt(np.maximum(B * B - 4.0 * A * C, 0.0))
            q = np.where(B <= 0.0, (root - B) / (2.0 * A), -2.0 * C / (B + root))
            q = np.where(np.isfinite(q), q, 0.0)
            sd = np.sqrt(np.maximum(ni * (2.0 * q + x * (1.0 - x)), 0.0))
        num = bi - ci - ni * x
        if cc:
            num = np.sign(num) * np.maximum(np.abs(num) - cc, 0.0)
        return num - target * sd

    none = (b + c) == 0
    # no discordant document: q̃ = 0 for δ > 0, so Z(δ) = −(nδ − cc)/√(nδ(1 − δ)); Z = −z at the root of
    # (n + z²)δ² − (2cc + z²)δ + cc²/n = 0 above cc/n (cc = 0: δ = z²/(n + z²)); symmetric below 0
    k = 2.0 * cc + z * z
    half = (k + np.sqrt(np.maximum(k * k - 4.0 * (n + z * z) * cc * cc / n, 0.0))) / (2.0 * (n + z * z))
    flat = np.flatnonzero(~none)
    # lower bound: root of Z = z in (−1, Δ̂); upper: Z = −z in (Δ̂, 1)
    lo0 = np.full(flat.size, -1.0)
    hi0 = hat[flat]
    f_lo = h(lo0, flat, z)
    f_hi = np.minimum(h(hi0, flat, z), -1e-300)  # −z·sd(Δ̂) < 0; 0 only at Δ̂ = 1, where Z < z just below
    edge = f_lo <= 0  # Δ̂ = −1 (every document A-only): the bound is −1
    r = _illinois(lambda x, i: h(x, flat[i], z), lo0, hi0, f_lo, f_hi, ~edge)
    r = np.where(edge, -1.0, r)
    low[flat] = r
    lo0 = hat[flat]
    hi0 = np.full(flat.size, 1.0)
    f_lo = np.maximum(h(lo0, flat, -z), 1e-300)  # z·sd(Δ̂) > 0; 0 only at Δ̂ = −1
    f_hi = h(hi0, flat, -z)
    edge = f_hi >= 0  # Δ̂ = 1 (every document B-only): the bound is 1
    r = _illinois(lambda x, i: h(x, flat[i], -z), lo0, hi0, f_lo, f_hi, ~edge)
    r = np.where(edge, 1.0, r)
    high[flat] = r
    low[none] = -half[none]
    high[none] = half[none]
    return low, high


def _conditional_bounds(b, c, n, alpha):
    m = b + c
    with np.errstate(invalid="ignore", divide="ignore"):
        pi_low = np.where(b > 0, special.betaincinv(np.maximum(b, 1.0), c + 1.0, alpha / 2.0), 0.0)
        pi_high = np.where(c > 0, special.betaincinv(b + 1.0, np.maximum(c, 1.0), 1.0 - alpha / 2.0), 1.0)
        scale = np.where(m > 0, m / n, 0.0)
    return (2.0 * pi_low - 1.0) * scale, (2.0 * pi_high - 1.0) * scale


def paired_binary_ci(b_only, a_only, n, confidence=0.95, method=DEFAULT_METHOD, *, level=None, at=None, exact=True):
    """Two-sided interval for Δ = p_B − p_A in percentage points, elementwise: ``(low, high)``.

    ``b_only``: documents B got right and A wrong; ``a_only``: the reverse;
    ``n``: all documents. Scalars give floats, arrays (broadcast together)
    give arrays. ``confidence`` is two-sided (0.95: each side errs at most
    2.5 %); ``level`` (keyword) gives α = 1 − confidence exactly instead, for
    adjusted intervals (Holm's 0.05/57 ...); any α in (0, 1).

    ``method="score-cc"`` (default): Tango's (1998) asymptotic score interval
    with a ½ continuity correction; unconditional, valid with no discordant
    document (n = 20, b = c = 0: ±20.05); b = 700, c = 0, n = 14,042: [4.63,
    5.36]. ``"score"``: plain Tango (±16.11; [4.64, 5.36]). ``"exact-conditional"``:
    Clopper–Pearson on the discordant documents mapped with m/n, the plugin's
    former interval (conditional on m; under-covers). Every method's bounds
    invert :func:`paired_binary_test` of the same method:
    ``low > t ⟺ p_greater(t) < α/2`` and ``high < t ⟺ p_less(t) < α/2``.

    Floating point: each bound is the float at which the test's own decision
    switches (``t = low`` is accepted, the float just below it rejected), so the
    equivalences hold for every t outside a band of ~1e-13 points around a
    bound, where the double-precision statistic is not monotone to the last
    bit. ``at`` (points, broadcast with the tables): thresholds the bounds must
    agree with *exactly* — a bound that rounding put on the wrong side of
    ``at`` is moved to ``at`` (accepted) or the next float beyond it (rejected),
    as the old ``statistics._consistent`` did for 0. Pass the key's threshold.

    ``exact=False`` skips the polish and ``at`` (bounds then agree with the
    test only to ~1e-11 points; 3–4× faster; for simulations).
    """
    method = _method(method)
    alpha = _alpha(confidence, level)
    scalar = all(np.ndim(v) == 0 for v in (b_only, a_only, n, alpha, at))
    b0, c0, nn = _counts(b_only, a_only, n)
    b0, c0, nn, alpha = np.broadcast_arrays(b0, c0, nn, alpha, *([] if at is None else [np.asarray(at)]))[:4]
    shape = b0.shape
    b0, c0, nn, alpha = b0.ravel(), c0.ravel(), nn.ravel(), alpha.ravel()
    # one orientation (b ≥ c), mirrored back at the end: swapping the models mirrors the interval exactly
    flip = c0 > b0
    b, c = np.where(flip, c0, b0), np.where(flip, b0, c0)
    tie = b == c
    if method == "exact-conditional":
        low, high = _conditional_bounds(b, c, nn, alpha)
    else:
        low, high = _score_bounds(b, c, nn, alpha, _CC[method])
    low, high = low * POINTS, high * POINTS
    low, high = np.clip(low, -POINTS, POINTS), np.clip(high, -POINTS, POINTS)
    if exact and b.size:
        tail = alpha / 2.0

        def accept_low(x, idx):
            return _tails(b[idx], c[idx], nn[idx], x, method)[0] >= tail[idx]

        def accept_high(x, idx):
            return _tails(b[idx], c[idx], nn[idx], x, method)[1] >= tail[idx]

        fixed_low = low <= -POINTS   # −100 is accepted and everything below it rejected
        fixed_high = high >= POINTS
        if method == "exact-conditional":  # a degenerate interval [0, 0] (m = 0) is exact as is
            m0 = (b + c) == 0
            fixed_low, fixed_high = fixed_low | m0, fixed_high | m0
        i = np.flatnonzero(~fixed_low & ~tie)
        if i.size:
            low[i] = _polish(low[i], lambda x, j: accept_low(x, i[j]), lower=True)
        i = np.flatnonzero(~fixed_high)
        if i.size:
            high[i] = _polish(high[i], lambda x, j: accept_high(x, i[j]), lower=False)
        low, high = np.maximum(low, -POINTS), np.minimum(high, POINTS)
        low = np.where(tie, -high, low)  # b = c: the test is exactly antisymmetric in δ, so is the interval
    low, high = np.where(flip, -high, low), np.where(flip, -low, high)
    b, c = b0, c0
    if exact and b.size:
        tail = alpha / 2.0
        if at is not None:
            t = np.broadcast_to(np.asarray(at, dtype=np.float64), shape).ravel()
            if np.any(np.isnan(t)):
                raise ValueError("at must be numbers of points")
            greater, less = _tails(b, c, nn, t, method)
            rejected = greater < tail   # the test says Δ > t: low must lie above t
            low = np.where(rejected & (low <= t), np.nextafter(t, np.inf),
                           np.where(~rejected & (low > t), t, low))
            rejected = less < tail      # the test says Δ < t: high must lie below t
            high = np.where(rejected & (high >= t), np.nextafter(t, -np.inf),
                            np.where(~rejected & (high < t), t, high))
    low, high = low.reshape(shape), high.reshape(shape)
    return _out(low, scalar), _out(high, scalar)


# --------------------------------------------------------------------------- the keys


def key_verdict(b_only, a_only, n, key, value, confidence=0.95, method=DEFAULT_METHOD, *, level=None):
    """One expectation key decided by the test of its own threshold: ``(passed, p, bound)``, elementwise.

    ``min_ci_lower = t``: H0 Δ ≤ t, ``p = p_greater(t)``, passes iff ``p < α/2``
    ⟺ the interval's low bound lies above t. ``non_inferiority_margin = M``: the
    same at t = −M. ``max_regression = X``: H0 Δ ≥ −X, ``p = p_less(−X)``, FAILS
    iff ``p < α/2`` ⟺ the high bound lies below −X (``keys.KEYS``). α = 1 −
    confidence, or ``level`` (two-sided, e.g. from ``multiplicity.adjust_family``);
    each key is a one-sided test at α/2 (2.5 % for a 95 % interval). ``bound`` is
    the bound the key reads, computed with ``at=threshold`` so that it can never
    contradict ``p``: ``passed`` equals ``keys.decide_key`` of that interval.
    """
    sign, alternative = KEYS.get(key, (None, None))
    if sign is None:
        raise ValueError(f"unknown key {key!r}; one of {', '.join(KEYS)}")
    t = sign * np.asarray(value, dtype=np.float64)
    alpha = _alpha(confidence, level)
    p = paired_binary_test(b_only, a_only, n, t, alternative, method)
    low, high = paired_binary_ci(b_only, a_only, n, method=method, level=alpha, at=t)
    significant = np.asarray(p < alpha / 2.0)
    if alternative == "greater":
        passed, bound = significant, low
    else:
        passed, bound = ~significant, high
    if np.ndim(passed) == 0:
        return bool(passed), float(p), float(bound)
    return passed, p, bound
