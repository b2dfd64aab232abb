"""Group-sequential boundaries: spending functions, published critical values, Monte Carlo of the canonical process."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import special

from pytest_qwencmp.stats import spending as sp

EQ4 = (0.25, 0.5, 0.75, 1.0)
PLAN = (0.125, 0.25, 0.5, 1.0)


def test_spending_functions():
    for name in sp.SPENDING:
        assert sp.spend(1.0, 0.025, name) == pytest.approx(0.025)
        assert sp.spend(0.0, 0.025, name) == 0.0
        assert np.all(np.diff(sp.spend(np.linspace(0.01, 1, 50), 0.025, name)) > 0)
    assert sp.spend(0.25, 0.025, "obrien-fleming") == pytest.approx(2 * special.ndtr(special.ndtri(0.0125) / 0.5))
    assert sp.spend(0.25, 0.025, "hsd-4") == pytest.approx(0.025 * (1 - math.exp(1.0)) / (1 - math.exp(4.0)))
    with pytest.raises(ValueError):
        sp.spend(0.5, 0.025, "haybittle")


def test_obrien_fleming_published_values():
    # Lan–DeMets O'Brien–Fleming type, K = 4 equally spaced, one-sided 0.025 (the upper half of two-sided 0.05):
    # gsDesign sfLDOF / Jennison & Turnbull (2000) ch. 7: 4.3326, 2.9631, 2.3590, 2.0141
    published = (4.3326, 2.9631, 2.3590, 2.0141)
    assert sp.boundaries(EQ4, 0.025, "obrien-fleming") == pytest.approx(published, abs=1.5e-4)
    assert sp.boundaries(EQ4, 0.025, "obrien-fleming", sides=2) == pytest.approx(published, abs=1.5e-4)
    assert sp.boundaries((1.0,), 0.025) == pytest.approx((1.959964,), abs=1e-5)


def test_hwang_shih_decani_published_values():
    # gsDesign's default design (k = 3, sfHSD with γ = −4, one-sided 0.025): 3.0107, 2.5465, 1.9992
    assert sp.boundaries((1 / 3, 2 / 3, 1.0), 0.025, "hsd-4") == pytest.approx((3.0107, 2.5465, 1.9992), abs=1.5e-4)


def test_the_default_plan():
    """The plugin's default looks at one-sided 0.025: HSD(−4) gives 3.43 at 1/8 where LD O'Brien–Fleming gives 6.23,
    and costs 1.2 % of width at the last look (1.984 against 1.960)."""
    hsd = sp.boundaries(PLAN, 0.025, "hsd-4")
    obf = sp.boundaries(PLAN, 0.025, "obrien-fleming")
    assert hsd == pytest.approx((3.429, 3.261, 2.823, 1.984), abs=2e-3)
    assert obf[0] == pytest.approx(6.232, abs=2e-3) and obf[-1] == pytest.approx(1.969, abs=2e-3)


def _canonical_paths(fractions, paths, seed):
    rng = np.random.default_rng(seed)
    t = np.asarray(fractions)
    inc = rng.standard_normal((paths, t.size)) * np.sqrt(np.diff(np.concatenate([[0.0], t])))
    return np.cumsum(inc, axis=1) / np.sqrt(t)  # Z_k with Corr(Z_j, Z_k) = √(t_j / t_k)


@pytest.mark.parametrize("spending,fractions", [("obrien-fleming", PLAN), ("hsd-4", PLAN), ("pocock", EQ4),
                                                ("hsd-4", (0.13, 0.27, 0.49, 1.0))])
def test_boundaries_against_monte_carlo(spending, fractions):
    """4·10^5 paths of the canonical process: the first crossing at each look has the spending increment's
    probability (within 4 Monte Carlo standard errors), and the total is α."""
    alpha = 0.025
    c = np.array(sp.boundaries(fractions, alpha, spending))
    z = _canonical_paths(fractions, 400_000, seed=11)
    crossed = z >= c
    first = np.where(crossed.any(axis=1), crossed.argmax(axis=1), -1)
    increments = np.diff(np.concatenate([[0.0], sp.spend(np.array(fractions), alpha, spending)]))
    for k, target in enumerate(increments):
        se = math.sqrt(max(target * (1 - target), 1e-12) / z.shape[0])
        assert abs(np.mean(first == k) - target) < 4 * se + 2e-6, (k, np.mean(first == k), target)
    assert abs(np.mean(first >= 0) - alpha) < 4 * math.sqrt(alpha * (1 - alpha) / z.shape[0])
    up, _ = sp.exit_probabilities(c, fractions)
    assert np.allclose(up, increments, atol=1e-8)


def test_exit_probabilities_with_drift():
    c = sp.boundaries(PLAN, 0.025, "hsd-4")
    drift = 2.8  # 80 % power of the fixed one-sided 0.025 test
    up, _ = sp.exit_probabilities(c, PLAN, drift=drift)
    z = _canonical_paths(PLAN, 200_000, seed=5) + drift * np.sqrt(np.array(PLAN))
    crossed = z >= np.array(c)
    first = np.where(crossed.any(axis=1), crossed.argmax(axis=1), -1)
    for k in range(len(PLAN)):
        assert abs(np.mean(first == k) - up[k]) < 0.004
    fixed_power = special.ndtr(drift - 1.959964)
    assert fixed_power - 0.01 < sum(up) < fixed_power  # costs under one point of power


def test_edge_cases():
    assert sp.boundaries((1 / 8, 1.0), 1e-12, "obrien-fleming")[0] > 9
    for bad in ((0.5, 0.5, 1.0), (0.0, 1.0), (0.5, 1.2)):
        with pytest.raises(ValueError):
            sp.boundaries(bad)
    fr = (0.5, 0.51, 1.0)  # looks close together: a finer grid, the total is still α
    up, _ = sp.exit_probabilities(sp.boundaries(fr), fr)
    assert sum(up) == pytest.approx(0.025, abs=1e-7)
    up, _ = sp.exit_probabilities(sp.boundaries((0.25, 0.5)), (0.25, 0.5))  # stopped short: only α(1/2) spent
    assert sum(up) == pytest.approx(sp.spend(0.5, 0.025), abs=1e-8)
    assert sp.rci_level(1.959964) == pytest.approx(0.05, abs=1e-6)
    assert sp.rci_level(math.inf) == 0.0
    assert sp.normal_mixture_boundaries(PLAN)[-1] > 3.0  # anytime-valid: much wider at the last look
