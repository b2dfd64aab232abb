"""Paired statistics for comparing two models on the same benchmark documents.

This module owns every number that turns two models' per-document scores into
a verdict: one model's mean and standard error (:func:`score_of`), the paired
comparison of model B against model A on the *same* documents
(:func:`compare_paired`), the unpaired interval shown only for contrast
(:func:`compare_unpaired`), multiple-comparison adjustment of the p-values of
many items tested at once (:func:`adjust_p_values`), and the final wording
(:func:`verdict`).

Why paired: A and B answer the same documents, so their per-document scores are
correlated. lm-eval's ``model_comparator`` applies an unpaired z-test to the two
means, which ignores that correlation and is far too conservative when the two
models mostly agree. Here every test and interval is built from the
per-document differences ``d_i = b_i - a_i``:

* binary metrics (every value in {0, 1}: ``acc``, ``acc_norm``, ``pass@1`` with
  one sample) use the exact McNemar test on the discordant documents and
  Newcombe's square-and-add (hybrid Wilson score) interval for the difference
  of paired proportions;
* any other metric uses a seeded sign-flip permutation test on ``d`` and a
  seeded bootstrap (BCa) interval for ``mean(d)``.

The module is pure: numpy and scipy only (statsmodels is the reference its
tests check against); no pytest, no lm-eval, no module-level mutable state.
Every random quantity comes from a ``numpy.random.Generator`` seeded by the
caller, so results are reproducible.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy import stats

__all__ = [
    "Score",
    "PairedComparison",
    "score_of",
    "compare_paired",
    "compare_unpaired",
    "adjust_p_values",
    "verdict",
    "TEST_MCNEMAR",
    "TEST_PERMUTATION",
    "TEST_DEGENERATE",
    "VERDICT_BETTER",
    "VERDICT_WORSE",
    "VERDICT_NONE",
]

TEST_MCNEMAR = "mcnemar-exact"
TEST_PERMUTATION = "paired-permutation"
TEST_DEGENERATE = "degenerate"

VERDICT_BETTER = "better"
VERDICT_WORSE = "worse"
VERDICT_NONE = "no detectable difference"

# Upper bound on the float64 cells of one resampling batch (~32 MB), so that
# n = 14,042 documents x 10,000 resamples never materialises at once.
_BATCH_CELLS = 4_000_000


@dataclass(frozen=True)
class Score:
    """One model's score on one item.

    ``mean`` is the average of the per-document values (a fraction in [0, 1]
    for accuracy-like metrics); ``stderr`` is ``s / sqrt(n)`` with ``s`` the
    sample standard deviation (``ddof=1``), which is lm-eval's closed form for
    the standard error of a mean; ``n`` is the number of documents.
    """

    mean: float
    stderr: float
    n: int


@dataclass(frozen=True)
class PairedComparison:
    """Model B against model A on the same ``n`` documents.

    ``delta = mean_b - mean_a`` (positive: B scores higher); ``stderr`` is the
    paired standard error ``sd(b_i - a_i, ddof=1) / sqrt(n)``; ``[ci_low,
    ci_high]`` is a ``confidence`` interval for ``delta``; ``p_value`` is
    two-sided for H0: no difference, from ``test`` (one of ``"mcnemar-exact"``,
    ``"paired-permutation"``, ``"degenerate"``). For binary metrics ``b_only``
    counts documents B got right and A wrong, ``a_only`` the reverse; for other
    metrics both are 0.
    """

    n: int
    mean_a: float
    mean_b: float
    delta: float
    stderr: float
    ci_low: float
    ci_high: float
    p_value: float
    test: str
    b_only: int
    a_only: int
    confidence: float


# --------------------------------------------------------------------------
# validation helpers


def _as_values(values: Sequence[float], name: str) -> np.ndarray:
    """``values`` as a 1-D float64 array of finite numbers, or ValueError."""
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name}: per-document scores must be numbers ({exc})") from None
    if arr.ndim != 1:
        raise ValueError(
            f"{name}: expected a flat sequence of per-document scores, got an array of shape {arr.shape}"
        )
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name}: per-document scores must be finite numbers (found NaN or infinity)")
    return arr


def _check_confidence(confidence: float) -> float:
    confidence = float(confidence)
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie strictly between 0 and 1, got {confidence}")
    return confidence


def _z(confidence: float) -> float:
    """Two-sided normal quantile ``z = Phi^-1((1 + confidence) / 2)``."""
    return float(stats.norm.ppf(0.5 + confidence / 2.0))


def _sample_stderr(x: np.ndarray) -> float:
    """``std(x, ddof=1) / sqrt(n)``; 0 when ``n == 1``."""
    n = x.size
    if n < 2:
        return 0.0
    return float(np.std(x, ddof=1) / math.sqrt(n))


# --------------------------------------------------------------------------
# one model


def score_of(values: Sequence[float]) -> Score:
    """Mean and standard error of one model's per-document values.

    ``mean = sum(x) / n``; ``stderr = sqrt(sum((x - mean)^2) / (n - 1)) / sqrt(n)``
    (0 for a single document). Raises ValueError for no documents.
    """
    x = _as_values(values, "score_of")
    if x.size == 0:
        raise ValueError("score_of: no per-document values; a score needs at least one document")
    return Score(mean=float(np.mean(x)), stderr=_sample_stderr(x), n=int(x.size))


# --------------------------------------------------------------------------
# binary metrics: exact McNemar + Newcombe square-and-add interval


def _mcnemar_exact_p(b_only: int, a_only: int) -> float:
    """Exact two-sided McNemar p-value.

    Under H0 each of the ``m = b_only + a_only`` discordant documents is
    equally likely to favour either model, so ``b_only ~ Binomial(m, 1/2)``:
    ``p = binomtest(min(b_only, a_only), m, 1/2).pvalue``
    ``  = min(1, 2 * BinomCDF(min(b_only, a_only); m, 1/2))``,
    the same number as ``statsmodels...mcnemar(table, exact=True).pvalue``.
    Taking the minimum makes the p-value exactly symmetric in A and B. With no
    discordant documents there is no evidence at all: ``p = 1``.
    """
    m = b_only + a_only
    if m == 0:
        return 1.0
    return float(min(1.0, stats.binomtest(min(b_only, a_only), m, 0.5).pvalue))


def _wilson(x: int, n: int, z: float) -> tuple[float, float]:
    """Wilson score interval for a proportion ``x / n``.

    ``(x + z^2/2 -+ z * sqrt(x (n - x) / n + z^2 / 4)) / (n + z^2)``, clipped
    to [0, 1].
    """
    z2 = z * z
    centre = x + z2 / 2.0
    half = z * math.sqrt(x * (n - x) / n + z2 / 4.0)
    denom = n + z2
    return max(0.0, (centre - half) / denom), min(1.0, (centre + half) / denom)


def _square_add(x: float, y: float, psi: float) -> float:
    """``sqrt(x^2 + y^2 - 2 psi x y)``, written symmetrically in x and y."""
    return math.sqrt(max(0.0, x * x + y * y - 2.0 * psi * (x * y)))


def _newcombe_paired_ci(both: int, b_only: int, a_only: int, neither: int, z: float) -> tuple[float, float]:
    """Newcombe's square-and-add interval for a difference of paired proportions.

    Newcombe (1998), Statistics in Medicine 17:2635-2650, method 10, in the
    form recommended by Fagerland, Lydersen & Laake (2014), Statistics in
    Medicine 33:2850-2875 ("Newcombe square-and-add"). With ``p_b = (both +
    b_only) / n``, ``p_a = (both + a_only) / n``, ``delta = (b_only - a_only) /
    n``, Wilson intervals ``(l_b, u_b)`` and ``(l_a, u_a)`` for the two
    marginal proportions, and the (continuity-corrected) correlation estimate

        A   = both * neither - b_only * a_only
        psi = (A - n/2) / sqrt(P)   if A > n/2
              0                     if 0 <= A <= n/2, or any marginal is 0
              A / sqrt(P)           if A < 0
        P   = (both + b_only)(a_only + neither)(both + a_only)(b_only + neither)

    the interval is

        L = delta - sqrt((p_b - l_b)^2 + (u_a - p_a)^2 - 2 psi (p_b - l_b)(u_a - p_a))
        U = delta + sqrt((p_a - l_a)^2 + (u_b - p_b)^2 - 2 psi (p_a - l_a)(u_b - p_b))

    Unlike the paired Wald interval it never collapses to zero width when few
    documents are discordant, stays inside [-1, 1], and keeps close to nominal
    coverage down to small n; swapping A and B maps ``[L, U]`` to ``[-U, -L]``.
    """
    n = both + b_only + a_only + neither
    p_b = (both + b_only) / n
    p_a = (both + a_only) / n
    delta = (b_only - a_only) / n
    l_b, u_b = _wilson(both + b_only, n, z)
    l_a, u_a = _wilson(both + a_only, n, z)

    marginals = (both + b_only, a_only + neither, both + a_only, b_only + neither)
    if min(marginals) == 0:
        psi = 0.0
    else:
        prod = math.prod(marginals)  # Python ints: no overflow
        agree = both * neither - b_only * a_only
        if agree > n / 2:
            psi = (agree - n / 2) / math.sqrt(prod)
        elif agree >= 0:
            psi = 0.0
        else:
            psi = agree / math.sqrt(prod)

    low = delta - _square_add(p_b - l_b, u_a - p_a, psi)
    high = delta + _square_add(p_a - l_a, u_b - p_b, psi)
    return max(-1.0, low), min(1.0, high)


# --------------------------------------------------------------------------
# other metrics: sign-flip permutation test + bootstrap interval


def _sign_flip_p(d: np.ndarray, resamples: int, rng: np.random.Generator) -> float:
    """Two-sided p-value of the paired (sign-flip) permutation test of mean(d).

    Under H0 the labels A/B are exchangeable within each document, so every
    difference keeps its size and takes either sign. The null distribution is
    ``T_s = mean(s_i * d_i)`` over sign vectors ``s``; the observed statistic
    is ``T = mean(d)``. Conventions follow ``scipy.stats.permutation_test(
    (d,), mean, permutation_type='samples')``:

    * exact when ``2^n <= resamples``: all ``2^n`` sign vectors,
      ``P_> = #{T_s >= T - g} / 2^n`` and ``P_< = #{T_s <= T + g} / 2^n``;
    * otherwise ``resamples`` random sign vectors drawn from ``rng``, with the
      observed labelling counted once: ``P = (# + 1) / (resamples + 1)``;
    * ``p = min(1, 2 min(P_>, P_<))``, with tie tolerance ``g = 100 eps |T|``.

    The null is computed as ``T_s = (2 (bits @ d) - sum(d)) / n`` with 0/1
    ``bits``, a matrix-vector product in batches; this is many times faster
    than scipy's generic permutation machinery and agrees with it exactly in
    the exact case.
    """
    n = d.size
    total = float(np.sum(d))
    observed = float(np.mean(d))
    gamma = abs(observed) * 100.0 * float(np.finfo(np.float64).eps)

    greater = 0
    less = 0
    if n < 63 and (1 << n) <= resamples:
        count = 1 << n
        codes = np.arange(count, dtype=np.int64)
        bits = ((codes[:, None] >> np.arange(n, dtype=np.int64)) & 1).astype(np.float64)
        null = (2.0 * (bits @ d) - total) / n
        greater = int(np.count_nonzero(null >= observed - gamma))
        less = int(np.count_nonzero(null <= observed + gamma))
        p_greater = greater / count
        p_less = less / count
    else:
        batch = max(1, min(resamples, _BATCH_CELLS // n))
        n_bytes = (n + 7) // 8
        done = 0
        while done < resamples:
            k = min(batch, resamples - done)
            packed = rng.integers(0, 256, size=(k, n_bytes), dtype=np.uint8)
            bits = np.unpackbits(packed, axis=1, count=n).astype(np.float64)
            null = (2.0 * (bits @ d) - total) / n
            greater += int(np.count_nonzero(null >= observed - gamma))
            less += int(np.count_nonzero(null <= observed + gamma))
            done += k
        p_greater = (greater + 1) / (resamples + 1)
        p_less = (less + 1) / (resamples + 1)
    return float(min(1.0, 2.0 * min(p_greater, p_less)))


def _bootstrap_ci(d: np.ndarray, confidence: float, resamples: int, rng: np.random.Generator) -> tuple[float, float]:
    """Paired bootstrap interval for mean(d): BCa, falling back to percentile.

    Documents are resampled with replacement (A and B together, i.e. the
    differences ``d``) ``resamples`` times; the interval is the bias-corrected
    and accelerated (BCa, Efron 1987) one computed by
    ``scipy.stats.bootstrap((d,), np.mean, method='BCa')``: with bootstrap
    means ``T*``, ``z0 = Phi^-1(share of T* below mean(d))``, acceleration
    ``a = sum(u^3) / (6 (sum u^2)^1.5)`` from jackknife deviations ``u``, the
    limits are the ``Phi(z0 + (z0 + z_q) / (1 - a (z0 + z_q)))`` quantiles of
    ``T*`` for ``z_q = -+ z``. When BCa is undefined (a degenerate bootstrap
    distribution) the plain percentile interval of ``T*`` is used.
    """
    batch = max(1, _BATCH_CELLS // d.size)
    with warnings.catch_warnings():
        # scipy warns (DegenerateDataWarning) when BCa is undefined; we detect
        # that from the NaN it returns and fall back below.
        warnings.simplefilter("ignore")
        res = stats.bootstrap(
            (d,),
            np.mean,
            n_resamples=resamples,
            batch=batch,
            vectorized=True,
            confidence_level=confidence,
            method="BCa",
            rng=rng,
        )
    low = float(res.confidence_interval.low)
    high = float(res.confidence_interval.high)
    if not (math.isfinite(low) and math.isfinite(high)):
        tail = (1.0 - confidence) / 2.0 * 100.0
        low, high = (float(v) for v in np.percentile(res.bootstrap_distribution, [tail, 100.0 - tail]))
    return low, high


# --------------------------------------------------------------------------
# public comparison API


def compare_paired(
    a: Sequence[float],
    b: Sequence[float],
    *,
    confidence: float = 0.95,
    seed: int = 0,
    resamples: int = 10_000,
) -> PairedComparison:
    """Compare model B with model A on the same documents, document by document.

    ``a[i]`` and ``b[i]`` must be the two models' scores on document ``i``.
    With ``d_i = b_i - a_i``: ``delta = mean(d)`` (``= mean_b - mean_a``),
    ``stderr = sd(d, ddof=1) / sqrt(n)``.

    * Binary metrics (every value of both models in {0, 1}): ``b_only`` /
      ``a_only`` count the discordant documents; ``p`` is the exact McNemar
      test (:func:`_mcnemar_exact_p`), the interval is Newcombe's
      square-and-add interval for paired proportions
      (:func:`_newcombe_paired_ci`); ``test = "mcnemar-exact"``. Closed form,
      no resampling.
    * Otherwise: ``p`` from the sign-flip permutation test
      (:func:`_sign_flip_p`), the interval from the paired BCa bootstrap
      (:func:`_bootstrap_ci`), each drawing ``resamples`` resamples from its
      own ``numpy.random.default_rng(seed)``; ``test = "paired-permutation"``.
      When every difference is 0 the result is exact: ``p = 1``, CI [0, 0].
    * ``n == 1``: nothing to test; ``stderr = 0``, CI ``[delta, delta]``,
      ``p = 1``, ``test = "degenerate"``.

    The interval always contains ``delta`` (a resampling interval is widened
    to it in the rare tiny-sample case where it would not). Raises ValueError
    for no documents, unequal lengths, non-finite values, or bad parameters.
    """
    confidence = _check_confidence(confidence)
    if isinstance(resamples, bool) or not isinstance(resamples, (int, np.integer)) or resamples < 1:
        raise ValueError(f"resamples must be a positive integer, got {resamples!r}")
    resamples = int(resamples)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")

    x = _as_values(a, "compare_paired (model A)")
    y = _as_values(b, "compare_paired (model B)")
    if x.size != y.size:
        raise ValueError(
            f"compare_paired: model A has {x.size} per-document scores and model B has {y.size}; "
            "a paired comparison needs both models scored on the same documents in the same order"
        )
    n = int(x.size)
    if n == 0:
        raise ValueError("compare_paired: no documents to compare; both models were scored on 0 documents")

    d = y - x
    mean_a = float(np.mean(x))
    mean_b = float(np.mean(y))
    binary = bool(np.all((x == 0.0) | (x == 1.0)) and np.all((y == 0.0) | (y == 1.0)))

    b_only = a_only = 0
    if binary:
        xa = x.astype(bool)
        yb = y.astype(bool)
        both = int(np.count_nonzero(xa & yb))
        b_only = int(np.count_nonzero(yb & ~xa))
        a_only = int(np.count_nonzero(xa & ~yb))
        neither = n - both - b_only - a_only
        delta = (b_only - a_only) / n
    else:
        delta = float(np.mean(d))

    if n == 1:
        return PairedComparison(
            n=n, mean_a=mean_a, mean_b=mean_b, delta=delta, stderr=0.0,
            ci_low=delta, ci_high=delta, p_value=1.0, test=TEST_DEGENERATE,
            b_only=b_only, a_only=a_only, confidence=confidence,
        )

    stderr = _sample_stderr(d)
    if binary:
        p_value = _mcnemar_exact_p(b_only, a_only)
        ci_low, ci_high = _newcombe_paired_ci(both, b_only, a_only, neither, _z(confidence))
        test = TEST_MCNEMAR
    elif not np.any(d):
        p_value, ci_low, ci_high = 1.0, 0.0, 0.0
        test = TEST_PERMUTATION
    else:
        p_value = _sign_flip_p(d, resamples, np.random.default_rng(seed))
        if np.all(d == d[0]):
            ci_low = ci_high = delta  # every bootstrap resample has mean d[0]
        else:
            ci_low, ci_high = _bootstrap_ci(d, confidence, resamples, np.random.default_rng(seed))
        test = TEST_PERMUTATION

    return PairedComparison(
        n=n, mean_a=mean_a, mean_b=mean_b, delta=delta, stderr=stderr,
        ci_low=min(ci_low, delta), ci_high=max(ci_high, delta), p_value=p_value,
        test=test, b_only=b_only, a_only=a_only, confidence=confidence,
    )


def compare_unpaired(a: Score, b: Score, *, confidence: float = 0.95) -> tuple[float, float]:
    """Normal-approximation interval for ``b.mean - a.mean`` treating A and B as independent.

    ``delta -+ z * sqrt(se_a^2 + se_b^2)`` with ``z = Phi^-1((1 + confidence) / 2)``:
    what lm-eval's model_comparator's z-test implies. It ignores the
    correlation between two models' answers to the same documents, so it is
    shown only to contrast with the (usually much narrower) paired interval.
    """
    confidence = _check_confidence(confidence)
    delta = float(b.mean) - float(a.mean)
    half = _z(confidence) * math.hypot(float(a.stderr), float(b.stderr))
    return delta - half, delta + half


# --------------------------------------------------------------------------
# many items at once


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
    to 1e-12). They are computed here rather than by calling statsmodels
    because its Holm branch runs a full ``gc.collect()`` on every call, which
    costs ~130 ms in a process that has torch and lm-eval loaded. Tied raw
    p-values get equal adjusted values. Results are in the input order; an
    empty input gives [].
    """
    key = str(method).lower()
    if key not in ("holm", "bh", "none"):
        raise ValueError(f"unknown p-value adjustment {method!r}; use 'holm', 'bh' or 'none'")
    p = _as_values(p_values, "adjust_p_values")
    if np.any((p < 0.0) | (p > 1.0)):
        raise ValueError("adjust_p_values: p-values must lie in [0, 1]")
    if p.size == 0:
        return []
    if key == "none":
        return [float(v) for v in p]
    m = p.size
    order = np.argsort(p, kind="stable")
    p_sorted = p[order]
    if key == "holm":
        adj_sorted = np.maximum.accumulate(p_sorted * np.arange(m, 0, -1))
    else:
        adj_sorted = np.minimum.accumulate((p_sorted / (np.arange(1, m + 1) / float(m)))[::-1])[::-1]
    adjusted = np.empty(m)
    adjusted[order] = np.minimum(adj_sorted, 1.0)
    return [float(v) for v in adjusted]


def verdict(comparison: PairedComparison, adjusted_p: float, alpha: float = 0.05) -> str:
    """The wording of one item's result.

    ``"better"`` if ``adjusted_p < alpha`` and ``delta > 0`` (B beats A),
    ``"worse"`` if ``adjusted_p < alpha`` and ``delta < 0``, otherwise
    ``"no detectable difference"``.
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
