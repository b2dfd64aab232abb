"""Paired statistics for comparing two models on the same benchmark documents.

One model's mean and standard error (:func:`score_of`); the paired test of
model B against model A on the *same* documents with the confidence interval
that inverts that very test (:func:`paired_test`, :func:`compare_paired`),
at any threshold (:meth:`PairedTest.tails`, :meth:`PairedTest.key_interval`:
an expectation key with threshold t is the test of Δ = t); the unpaired
interval shown only for contrast (:func:`compare_unpaired`).

One coherent story per item: the interval beside a p-value is the set of
differences that the same test does not reject, so ``t ∉ CI ⟺ p(t) < level``
for every possible input and every t (likewise for the adjusted pair).

* Binary metrics (every value in {0, 1}: ``acc``, ``acc_norm``, ``pass@1`` with
  one sample): Tango's unconditional score test with a ½ continuity
  correction and its interval (``paired_binary``, method ``score-cc``), valid
  whatever the split of the discordant documents, including none.
* Any other metric (``pass@1`` as c/K from K samples per problem): a seeded
  sign-flip permutation test on ``d = b − a`` and its inversion with the SAME
  sign vectors: shifting ``d`` by ``δ`` the test of ``mean(d − δ) = 0``
  accepts exactly when ``δ`` lies between two order statistics of the subset
  means ``mean(d_i : i flipped)`` (Hartigan 1969, "Using subsample values as
  typical values", JASA 64:1303–1317).

Pure: numpy and ``scipy.special`` only (scipy.stats and statsmodels are the
references its tests check against; not importing scipy.stats keeps the
planner fast); no pytest, no lm-eval, no module-level mutable state. Every
random quantity comes from a ``numpy.random.Generator`` seeded by the caller.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy import special

from .keys import agree_at
from .multiplicity import VERDICT_BETTER, VERDICT_NONE, VERDICT_WORSE
from .paired_binary import paired_binary_ci, paired_binary_test

__all__ = [
    "Score",
    "PairedComparison",
    "PairedTest",
    "score_of",
    "paired_test",
    "compare_paired",
    "compare_unpaired",
    "TEST_SCORE",
    "TEST_PERMUTATION",
    "TEST_DEGENERATE",
    "TEST_NAMES",
    "VERDICT_BETTER",
    "VERDICT_WORSE",
    "VERDICT_NONE",
    "POINTS",
]

TEST_SCORE = "tango-score-cc"
TEST_PERMUTATION = "paired-permutation"
TEST_DEGENERATE = "degenerate"
TEST_NAMES = {  # what the reports call each test
    TEST_SCORE: "Tango score (cc)",
    TEST_PERMUTATION: "paired permutation",
    TEST_DEGENERATE: "one document: no test",
}

# Upper bound on the float64 cells of one resampling batch (~32 MB), so that
# n = 14,042 documents x 10,000 resamples never materialises at once.
_BATCH_CELLS = 4_000_000
# How far a bound is moved when floating-point rounding puts it on the wrong
# side of 0 for the decision already taken (only ever at p == level, to ~1e-15).
_NUDGE = 1e-12
# Scores and differences are fractions here; reports, expectations and tolerances speak percentage points.
POINTS = 100.0


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
    paired standard error ``sd(b_i - a_i, ddof=1) / sqrt(n)``; ``p_value`` is
    two-sided for H0: no difference, from ``test`` (one of ``"tango-score-cc"``,
    ``"paired-permutation"``, ``"degenerate"``; ``TEST_NAMES`` words them);
    ``[ci_low, ci_high]`` is the
    ``confidence`` interval that inverts that test, so 0 lies outside it
    exactly when ``p_value < 1 - confidence``. For binary metrics ``b_only``
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

    @property
    def binary(self) -> bool:
        return self.test == TEST_SCORE

    @property
    def discordance(self) -> float:
        """Share of documents where exactly one model scored (binary metrics)."""
        return (self.b_only + self.a_only) / self.n

    @property
    def sd(self) -> float:
        """Standard deviation of the per-document differences (``ddof=1``)."""
        return self.stderr * math.sqrt(self.n)


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


def _check_level(level: float, name: str = "level") -> float:
    level = float(level)
    if not 0.0 < level < 1.0:
        raise ValueError(f"{name} must lie strictly between 0 and 1, got {level}")
    return level


def _sample_stderr(x: np.ndarray) -> float:
    """``std(x, ddof=1) / sqrt(n)``; 0 when ``n == 1``."""
    n = x.size
    if n < 2:
        return 0.0
    return float(np.std(x, ddof=1) / math.sqrt(n))


def _consistent(low: float, high: float, delta: float, reject: bool) -> tuple[float, float]:
    """``[low, high]`` with ``0 ∉ [low, high] ⟺ reject`` restored where rounding broke it.

    The interval and the p-value are two computations of the same test; in
    exact arithmetic they agree. Only when ``p`` equals the level to within
    floating-point error can they disagree, and then the bound nearest 0 is
    moved by at most ``_NUDGE`` (tests check that it never moves further).
    """
    if reject and low <= 0.0 <= high:
        if delta > 0:
            low = _NUDGE
        elif delta < 0:
            high = -_NUDGE
    elif not reject:
        low, high = min(low, 0.0), max(high, 0.0)
    return low, high


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
# other metrics: sign-flip permutation test and its inversion


@dataclass(frozen=True, eq=False)
class _SignFlip:
    """One sign-flip permutation test of mean(d) and everything needed to invert it.

    ``breakpoints`` are the sorted subset means ``mean(d_i : i flipped)`` of the
    sign vectors drawn (the all-+1 vector has none): shifting ``d`` by ``δ``,
    the vector counts towards the upper tail exactly when ``δ`` is at least its
    breakpoint and towards the lower tail when ``δ`` is at most it.
    ``always`` counts vectors in both tails for every ``δ`` (the all-+1
    vector); ``extra`` is 1 for Monte Carlo (the observed labelling counted
    once, scipy's convention) and 0 for exact enumeration; ``total`` is the
    number of sign vectors.
    """

    p_value: float
    breakpoints: np.ndarray
    always: int
    extra: int
    total: int

    def bounds(self, level: float) -> tuple[float, float]:
        """The smallest and largest δ with ``p(δ) >= level`` (±inf when every δ is accepted)."""
        denominator = self.total + self.extra

        def accepted(j: int) -> bool:  # the test's own formula: 2 * P_tail >= level
            return 2.0 * (self.always + j + self.extra) / denominator >= level

        j = max(0, math.ceil(level * denominator / 2.0) - self.always - self.extra)
        while j > 0 and accepted(j - 1):
            j -= 1
        while not accepted(j):
            j += 1
        count = self.breakpoints.size
        if j == 0:
            return -math.inf, math.inf
        if j > count:  # cannot happen for level < 1; keep the point estimate
            return math.nan, math.nan
        return float(self.breakpoints[j - 1]), float(self.breakpoints[count - j])

    def tails(self, delta: float) -> tuple[float, float]:
        """One-sided p-values of the test of mean(d) = ``delta``: ``(P_>, P_<)``, H1 Δ > delta resp. Δ < delta.

        The tails :meth:`bounds` inverts: ``P_> < level/2`` exactly when ``delta`` lies below the
        lower bound at ``level``, ``P_< < level/2`` exactly when it lies above the upper one.
        """
        denominator = self.total + self.extra
        upper = int(np.searchsorted(self.breakpoints, delta, side="right"))  # breakpoints ≤ delta
        lower = self.breakpoints.size - int(np.searchsorted(self.breakpoints, delta, side="left"))  # ≥ delta
        return (self.always + upper + self.extra) / denominator, (self.always + lower + self.extra) / denominator


def _sign_flip(d: np.ndarray, resamples: int, rng: np.random.Generator) -> _SignFlip:
    """Two-sided paired (sign-flip) permutation test of mean(d), kept invertible.

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
    ``bits`` (1 = keep the sign), a matrix-vector product in batches. The same
    products give each vector's breakpoint ``(sum(d) - bits @ d) / #flipped``.
    """
    n = d.size
    total = float(np.sum(d))
    observed = float(np.mean(d))
    gamma = abs(observed) * 100.0 * float(np.finfo(np.float64).eps)

    def batch_stats(bits: np.ndarray) -> tuple[int, int, np.ndarray, int]:
        kept = bits @ d
        null = (2.0 * kept - total) / n
        flipped = n - bits.sum(axis=1)
        has_flip = flipped > 0
        points = (total - kept[has_flip]) / flipped[has_flip]
        return (
            int(np.count_nonzero(null >= observed - gamma)),
            int(np.count_nonzero(null <= observed + gamma)),
            points,
            int(np.count_nonzero(~has_flip)),
        )

    if n < 63 and (1 << n) <= resamples:
        count = 1 << n
        codes = np.arange(count, dtype=np.int64)
        bits = ((codes[:, None] >> np.arange(n, dtype=np.int64)) & 1).astype(np.float64)
        greater, less, points, always = batch_stats(bits)
        p = min(1.0, 2.0 * min(greater / count, less / count))
        return _SignFlip(float(p), np.sort(points), always, 0, count)

    batch = max(1, min(resamples, _BATCH_CELLS // n))
    n_bytes = (n + 7) // 8
    greater = less = always = 0
    parts = []
    done = 0
    while done < resamples:
        k = min(batch, resamples - done)
        packed = rng.integers(0, 256, size=(k, n_bytes), dtype=np.uint8)
        bits = np.unpackbits(packed, axis=1, count=n).astype(np.float64)
        g, l, points, a = batch_stats(bits)
        greater, less, always = greater + g, less + l, always + a
        parts.append(points)
        done += k
    p = min(1.0, 2.0 * min((greater + 1) / (resamples + 1), (less + 1) / (resamples + 1)))
    return _SignFlip(float(p), np.sort(np.concatenate(parts)), always, 1, resamples)


# --------------------------------------------------------------------------
# one item: the test and its intervals


class PairedTest:
    """The paired test of one item, able to give its interval at any level and its test at any threshold.

    ``p_value`` tests H0: no difference (two-sided). ``interval(level)`` is the
    set of differences the same test does not reject at ``level``;
    ``interval(level, reject=...)`` takes the decision about 0 from the caller
    (an adjusted p-value compared with α) so that interval and adjusted p-value
    can never disagree, even by rounding. :meth:`tails` tests Δ = t for any
    threshold t; :meth:`key_interval` is the interval whose bounds agree with
    that test at t to the last bit (points).
    """

    def __init__(self, n: int, mean_a: float, mean_b: float, delta: float, stderr: float, p_value: float,
                 test: str, b_only: int = 0, a_only: int = 0, flips: _SignFlip | None = None,
                 span: float = 1.0) -> None:
        self.n = n
        self.mean_a = mean_a
        self.mean_b = mean_b
        self.delta = delta
        self.stderr = stderr
        self.p_value = p_value
        self.test = test
        self.b_only = b_only
        self.a_only = a_only
        self._flips = flips
        self._span = span  # the largest possible |B − A| given the observed values

    def raw_interval(self, level: float) -> tuple[float, float]:
        """The inversion at ``level`` (fractions), before the guard that ties it to the decision about 0."""
        level = _check_level(level)
        if self.test == TEST_SCORE:
            low, high = paired_binary_ci(self.b_only, self.a_only, self.n, level=level, at=0.0)
            return low / POINTS, high / POINTS
        if self._flips is None:  # one document: no information about the difference
            return -self._span, self._span
        low, high = self._flips.bounds(level)
        if math.isnan(low):
            return self.delta, self.delta
        return max(low, -self._span), min(high, self._span)

    def interval(self, level: float, reject: bool | None = None) -> tuple[float, float]:
        """``[low, high]`` with ``0 ∉ [low, high] ⟺ reject`` (default ``reject = p_value < level``)."""
        low, high = self.raw_interval(level)
        low, high = min(low, self.delta), max(high, self.delta)  # a Monte Carlo corner case at tiny n
        if reject is None:
            reject = self.p_value < level
        return _consistent(low, high, self.delta, bool(reject))

    def tails(self, threshold: float) -> tuple[float, float]:
        """One-sided p-values of the test of Δ = ``threshold`` (points): ``(p_greater, p_less)``.

        ``p_greater`` (H1: Δ > threshold) is the p-value of ``min_ci_lower`` and
        ``non_inferiority_margin``, ``p_less`` (H1: Δ < threshold) that of
        ``max_regression`` (``keys``). A threshold beyond what the data allow
        is rejected on its side.
        """
        if self.test == TEST_SCORE:
            return (paired_binary_test(self.b_only, self.a_only, self.n, threshold, "greater"),
                    paired_binary_test(self.b_only, self.a_only, self.n, threshold, "less"))
        delta = threshold / POINTS
        if self._flips is None:
            return (0.0 if delta < -self._span else 1.0), (0.0 if delta > self._span else 1.0)
        return self._flips.tails(delta)

    def key_interval(self, level: float, threshold: float) -> tuple[float, float]:
        """The two-sided interval at ``level`` in points, its bounds agreeing with :meth:`tails` at ``threshold``:

        ``low > threshold ⟺ p_greater < level/2`` and ``high < threshold ⟺ p_less < level/2``,
        to the last bit (a key's threshold and the family's level: ``multiplicity.adjust_family``).
        """
        level = _check_level(level)
        if self.test == TEST_SCORE:
            return paired_binary_ci(self.b_only, self.a_only, self.n, level=level, at=threshold)
        low, high = self.raw_interval(level)
        low, high = min(low, self.delta) * POINTS, max(high, self.delta) * POINTS
        greater, less = self.tails(threshold)
        return agree_at(low, high, threshold, greater < level / 2.0, less < level / 2.0)

    def comparison(self, confidence: float = 0.95, *, level: float | None = None) -> PairedComparison:
        """The summary at ``confidence`` (or at ``level = 1 − confidence``, given exactly)."""
        level = _check_level(1.0 - _check_level(confidence, "confidence") if level is None else level)
        low, high = self.interval(level)
        return PairedComparison(
            n=self.n, mean_a=self.mean_a, mean_b=self.mean_b, delta=self.delta, stderr=self.stderr,
            ci_low=low, ci_high=high, p_value=self.p_value, test=self.test,
            b_only=self.b_only, a_only=self.a_only, confidence=1.0 - level,
        )


def paired_test(a: Sequence[float], b: Sequence[float], *, seed: int = 0, resamples: int = 10_000,
                binary: bool | None = None) -> PairedTest:
    """The paired test of B against A on the same documents (``a[i]``, ``b[i]``: document ``i``).

    With ``d_i = b_i - a_i``: ``delta = mean(d)``, ``stderr = sd(d, ddof=1) / sqrt(n)``.

    * Binary metrics (every value of both models in {0, 1}): Tango's score test
      with a ½ continuity correction (``paired_binary``, method ``score-cc``) on
      the counts ``b_only``, ``a_only``, ``n``; closed form, no resampling; valid
      with any number of documents, including one, and with no discordant
      document (n = 20 identical answers: ±20.05 points).
    * Otherwise: the sign-flip permutation test with ``resamples`` sign
      vectors from ``numpy.random.default_rng(seed)``, intervals from the same
      vectors. All differences 0 is no special case: the interval is [0, 0]
      only when the test could reject any other shift (2^-n below the level's
      tail), else as wide as the scores allow.
    * ``n == 1`` (other metrics): nothing to test; ``p = 1``, intervals as wide as
      the difference can be.

    ``binary``: None (default) picks the test from the values; False forces the
    permutation test even when every value happens to be 0 or 1 (per-document
    means of several samples, ``--samples``, are not single 0/1 outcomes).

    Raises ValueError for no documents, unequal lengths, non-finite values, or
    bad parameters.
    """
    if isinstance(resamples, bool) or not isinstance(resamples, (int, np.integer)) or resamples < 1:
        raise ValueError(f"resamples must be a positive integer, got {resamples!r}")
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
    mean_a, mean_b = float(np.mean(x)), float(np.mean(y))
    values = np.concatenate([x, y])
    span = max(float(values.max() - values.min()), 1.0)  # the largest |B − A| the scores allow (fractions)
    zero_one = bool(np.all((x == 0.0) | (x == 1.0)) and np.all((y == 0.0) | (y == 1.0)))
    if binary and not zero_one:
        raise ValueError("compare_paired: binary=True needs every per-document score to be 0 or 1")
    binary = zero_one if binary is None else binary
    common = dict(n=n, mean_a=mean_a, mean_b=mean_b)
    if binary:
        xa, yb = x.astype(bool), y.astype(bool)
        b_only = int(np.count_nonzero(yb & ~xa))
        a_only = int(np.count_nonzero(xa & ~yb))
        return PairedTest(**common, delta=(b_only - a_only) / n, stderr=_sample_stderr(d),
                          p_value=paired_binary_test(b_only, a_only, n), test=TEST_SCORE, b_only=b_only, a_only=a_only)
    delta = float(np.mean(d))
    if n == 1:
        return PairedTest(**common, delta=delta, stderr=0.0, p_value=1.0, test=TEST_DEGENERATE, span=span)
    flips = _sign_flip(d, int(resamples), np.random.default_rng(seed))
    return PairedTest(**common, delta=delta, stderr=_sample_stderr(d), p_value=flips.p_value,
                      test=TEST_PERMUTATION, flips=flips, span=span)


def compare_paired(
    a: Sequence[float],
    b: Sequence[float],
    *,
    confidence: float = 0.95,
    seed: int = 0,
    resamples: int = 10_000,
) -> PairedComparison:
    """Compare model B with model A on the same documents: :func:`paired_test` summarised at ``confidence``.

    The interval inverts the test: ``0 ∉ [ci_low, ci_high] ⟺ p_value < 1 − confidence``.
    """
    confidence = _check_level(confidence, "confidence")
    return paired_test(a, b, seed=seed, resamples=resamples).comparison(confidence)


def compare_unpaired(a: Score, b: Score, *, confidence: float = 0.95) -> tuple[float, float]:
    """Normal-approximation interval for ``b.mean - a.mean`` treating A and B as independent.

    ``delta -+ z * sqrt(se_a^2 + se_b^2)`` with ``z = Phi^-1((1 + confidence) / 2)``:
    what lm-eval's model_comparator's z-test implies. It ignores the
    correlation between two models' answers to the same documents, so it is
    shown only to contrast with the (usually much narrower) paired interval.
    """
    confidence = _check_level(confidence, "confidence")
    delta = float(b.mean) - float(a.mean)
    half = float(special.ndtri(0.5 + confidence / 2.0)) * math.hypot(float(a.stderr), float(b.stderr))
    return delta - half, delta + half
