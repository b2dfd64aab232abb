"""Power and MDE (pytest_qwencmp.stats.power): exact against the tests' own decisions, and against Monte Carlo runs of them."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest
from scipy import optimize
from scipy import stats as sps

from pytest_qwencmp.stats import planning
from pytest_qwencmp.stats import power as pw
from pytest_qwencmp.config.benchmarks import builtin_registry
from pytest_qwencmp.config.expectations import load_expectations
from pytest_qwencmp.demo.data import DEMO_SIZES, demo_size
from pytest_qwencmp.lmeval.sizes import TaskSizes
from pytest_qwencmp.stats.paired import paired_test
from pytest_qwencmp.stats.paired_binary import paired_binary_ci

REPO = Path(__file__).resolve().parents[2]
REGISTRY = builtin_registry()


def decision_power(n: int, r: float, delta: float, level: float, tau: float, side: int = 1) -> float:
    """P(the run's interval lies beyond tau) by summing over every table: statistics' intervals, no power code."""
    total = 0.0
    pi = (r + delta) / (2 * r)
    for m in range(n + 1):
        weight = sps.binom.pmf(m, n, r)
        if weight < 1e-15:
            continue
        b = np.arange(m + 1)
        low, high = paired_binary_ci(b, m - b, n, level=level, at=100 * tau)
        beyond = (np.asarray(low) > 100 * tau) if side == 1 else (np.asarray(high) < 100 * tau)
        total += weight * float(np.sum(sps.binom.pmf(b, m, pi) * beyond))
    return total


@pytest.mark.parametrize(
    "n, r, delta, level, tau, side",
    [
        (30, 1.0, 0.3, 0.05, 0.0, 1),
        (40, 0.3, 0.1, 0.05, 0.0, 1),
        (40, 0.3, -0.12, 0.01, -0.05, -1),
        (25, 0.5, 0.2, 0.05 / 57, 0.0, 1),
        (60, 0.25, 0.0, 0.05, -0.1, 1),  # non-inferiority: B as good as A, margin 10 points
        (35, 0.4, 0.25, 0.2, 0.1, 1),
    ],
)
def test_binary_power_is_exactly_the_probability_of_the_runs_decision(n, r, delta, level, tau, side):
    expected = decision_power(n, r, delta, level, tau, side)
    assert pw.power(pw.Design(n, discordance=r), delta, level, threshold=tau, side=side) == pytest.approx(expected, abs=1e-9)


def simulated_power(n: int, r: float, delta: float, level: float, rng, *, tau: float = 0.0, side: int = 1,
                    sims: int = 6_000) -> float:
    """Monte Carlo: draw 2x2 tables, run the run's exact interval, count how often it lies beyond tau."""
    delta = max(-r, min(r, delta))
    x = rng.multinomial(n, [(r + delta) / 2, (r - delta) / 2, 1 - r], size=sims)
    low, high = paired_binary_ci(x[:, 0], x[:, 1], n, level=level, exact=False)
    return float(np.mean(low > 100 * tau) if side == 1 else np.mean(high < 100 * tau))


def _plan(demo: bool):
    if demo:
        expectations = load_expectations(REPO / "evals" / "demo-expectations.toml", REGISTRY)
        return planning.make_plan(REGISTRY, expectations, TaskSizes(None, (demo_size, DEMO_SIZES)))
    return planning.make_plan(REGISTRY, load_expectations(REPO / "evals" / "expectations.toml", REGISTRY), TaskSizes())


@pytest.mark.parametrize("demo", [False, True], ids=["shipped", "demo"])
def test_plan_mdes_agree_with_monte_carlo_within_ten_percent(demo):
    """The MDE the plan prints: at 0.9 x MDE simulated runs detect the difference less than 80% of the
    time, at 1.1 x MDE more (so the simulated MDE lies within 10%), and about 80% at the MDE itself."""
    plan = _plan(demo)
    rng = np.random.default_rng(11)
    seen = set()
    checked = 0
    for item in plan.items:
        key = (item.n, item.level)
        if key in seen:
            continue
        seen.add(key)
        r = plan.discordance
        if item.mde is None:  # nothing detectable: even the largest possible difference is found < 80% of the time
            assert simulated_power(item.n, r, r, item.level, rng, sims=2_000) < plan.power
            checked += 1
            continue
        if len(seen) > 8 and item.n < 1_000:
            continue  # enough small subjects; keep the test fast
        mde = item.mde / 100
        below = simulated_power(item.n, r, 0.9 * mde, item.level, rng)
        at = simulated_power(item.n, r, mde, item.level, rng)
        above = simulated_power(item.n, r, min(1.1 * mde, r), item.level, rng)
        assert below < plan.power < above or (1.1 * mde > r and at >= plan.power - 0.03), (item, below, above)
        assert at == pytest.approx(plan.power, abs=0.03), item
        checked += 1
    assert checked >= (4 if demo else 5)


def test_regression_check_detects_what_it_states():
    """max_regression X: the true regression caught with 80% power, checked by simulating the adjusted-interval rule."""
    rng = np.random.default_rng(3)
    for n, level, allowance in ((1_534, 0.05 / 57, 0.05), (500, 0.05, 0.0), (14_042, 0.05, 0.02)):
        design = pw.Design(n, discordance=0.25)
        caught = pw.detectable(design, level, threshold=-allowance, side=-1)
        excess = -caught - allowance  # the MDE of the regression check, beyond its allowance
        assert excess > 0
        far = simulated_power(n, 0.25, -(allowance + 1.1 * excess), level, rng, tau=-allowance, side=-1)
        near = simulated_power(n, 0.25, -(allowance + 0.9 * excess), level, rng, tau=-allowance, side=-1)
        at = simulated_power(n, 0.25, caught, level, rng, tau=-allowance, side=-1)
        assert near < 0.8 < far and at == pytest.approx(0.8, abs=0.03)


def test_non_binary_mde_agrees_with_the_permutation_test_it_approximates():
    rng = np.random.default_rng(5)
    n, sd, level = 40, 0.3, 0.05
    mde = pw.mde(pw.Design(n, sd=sd, min_p=2 / 200), level)

    def simulated(delta: float, sims: int = 250) -> float:
        hits = 0
        for i in range(sims):
            a = rng.random(n)
            test = paired_test(a, a + rng.normal(delta, sd, n), seed=i, resamples=199)
            hits += test.interval(level)[0] > 0
        return hits / sims

    assert simulated(0.85 * mde) < 0.8 < simulated(1.15 * mde)


def test_what_nothing_can_detect():
    assert pw.mde(pw.Design(8, discordance=0.5), 0.05 / 57) is None  # 8 of 8 won by B: p = 0.008 > 0.05/57
    assert pw.power(pw.Design(20, discordance=0.0), 0.0, 0.05, threshold=-0.05) == 0.0  # no disagreement: ±20 points
    assert pw.mde(pw.Design(100, discordance=0.0), 0.05) is None  # no discordant documents in the design
    assert pw.mde(pw.Design(30, sd=0.2, min_p=2 / 1001), 0.001) is None  # below the permutation test's smallest p
    assert pw.mde(pw.Design(1, sd=0.2), 0.05) is None


def test_mde_matches_connors_normal_approximation_at_large_n():
    n, r, level = 14_042, 0.25, 0.05
    za, zb = sps.norm.ppf(1 - level / 2), sps.norm.ppf(0.8)
    # Connor (1987): n δ² = (z_a √r + z_b √(r − δ²))², solved for δ
    connor = float(optimize.brentq(lambda d: d * math.sqrt(n) - (za * math.sqrt(r) + zb * math.sqrt(r - d * d)), 1e-6, r))
    assert pw.mde(pw.Design(n, discordance=r), level) == pytest.approx(connor, rel=0.02)


def test_mde_level_and_smallest_n():
    assert pw.mde_level(0.05, "holm", 57) == pytest.approx(0.05 / 57)
    assert pw.mde_level(0.05, "bh", 2) == pytest.approx(0.025)
    assert pw.mde_level(0.05, "none", 57) == 0.05 and pw.mde_level(0.05, "holm", 1) == 0.05
    assert pw.smallest_n(lambda n: n * n >= 1_000_001) == 1001
    assert pw.smallest_n(lambda n: False, limit=1_000) is None


def test_error_rate_script_runs_on_a_tiny_budget():
    """benchmarks/expectations_error_rates.py (the README's error rates) still runs against the current code, and its
    simulated verdicts equal compare_benchmark's."""
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "expectations_error_rates.py"), "--reps", "40", "--regression-reps", "10",
         "--check", "1"],
        capture_output=True, text=True, timeout=300, cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "simulated verdicts equal compare_benchmark's" in proc.stdout
    assert re.search(r"a rerun of the study fails the file \(truth drawn from the study's uncertainty\): [\d.]+ % at r = 0.25 "
                     r"\([\d.]+–[\d.]+ % for r = 0.2–0.3\)", proc.stdout)
    assert re.search(r"mmlu\[professional_law\]\s+1,534\s+[\d.]+", proc.stdout)


def test_non_binary_power_far_in_the_tail_is_one_not_nan():
    """scipy's noncentral t returns NaN far in its tail; the power there is 1 (an MDE of 398 points came of it)."""
    design = pw.Design(15, sd=0.35, min_p=2 / 10_001)
    assert all(pw.power(design, d, 0.05) == pytest.approx(1.0) for d in (1.0, 3.92, 3.97, 5.0))
    assert pw.mde(design, 0.05) == pytest.approx(0.2723, abs=1e-3)
