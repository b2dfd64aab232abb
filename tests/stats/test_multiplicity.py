"""Tests of stats.multiplicity: Holm/BH on the keys' own one-sided p-values, intervals that agree, the verdict family."""

from __future__ import annotations

from unittest import mock

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from statsmodels.stats.multitest import multipletests

from pytest_qwencmp.stats.keys import KEYS, key_threshold
from pytest_qwencmp.stats.multiplicity import adjust_family, adjust_items, adjust_p_values
from pytest_qwencmp.stats.paired import paired_test
from pytest_qwencmp.stats.paired_binary import paired_binary_ci, paired_binary_test

ALPHA = 0.025  # one-sided: one side of a 95 % interval


def random_p(rng, m):
    p = rng.uniform(0, 1, m) ** rng.uniform(1, 8)
    p[rng.random(m) < 0.1] = 0.0
    p[rng.random(m) < 0.1] = 1.0
    if m > 3:
        p[1] = p[0]  # a tie
    return p


@pytest.mark.parametrize("method, sm", [("holm", "holm"), ("bh", "fdr_bh")])
def test_adjusted_p_values_are_statsmodels(method, sm):
    rng = np.random.default_rng(1)
    for m in (1, 2, 5, 57, 200):
        for _ in range(3):
            p = random_p(rng, m)
            adjusted, levels = adjust_family(p, method, ALPHA)
            with mock.patch("gc.collect", lambda *args, **kwargs: 0):  # statsmodels' Holm collects on every call
                reference = multipletests(p, method=sm)[1]
            np.testing.assert_allclose(adjusted, reference, rtol=1e-15, atol=0)
            assert np.all((levels > 0) & (levels <= 2 * ALPHA))


def holm_levels_by_definition(p, alpha):
    """Holm's one-sided level per item, straight from the step-down: rank k rejected at alpha/(m − k + 1),
    tied p-values at the level of the first of them, everything after the stop at the stopping rank's."""
    m = len(p)
    order = sorted(range(m), key=lambda i: p[i])
    stop = next((rank for rank, i in enumerate(order) if p[i] * (m - rank) >= alpha), m)
    levels = []
    for i in range(m):
        rank = order.index(i)
        first = min(r for r, j in enumerate(order) if p[j] == p[i])
        levels.append(alpha / (m - (first if rank < stop else stop)))
    return np.array(levels)


def test_holm_levels_are_the_step_down_by_definition_on_the_two_sided_scale():
    rng = np.random.default_rng(2)
    for m in (1, 2, 5, 57):
        for _ in range(40):
            p = random_p(rng, m) / 2  # one-sided p-values of at most 1/2 (an estimate on the tested side)
            _, levels = adjust_family(p, "holm", ALPHA)
            if np.any(np.isclose(np.sort(p) * (m - np.arange(m)), ALPHA)):
                continue  # a product at alpha to rounding: the tie rule decides (tested below)
            np.testing.assert_allclose(levels, 2 * holm_levels_by_definition(list(p), ALPHA), rtol=1e-14)


def test_bh_levels_are_the_rejections_times_alpha_over_m():
    rng = np.random.default_rng(21)
    for m in (1, 3, 57):
        p = random_p(rng, m) / 2
        adjusted, levels = adjust_family(p, "bh", ALPHA)
        rejected = int(np.sum(adjusted < ALPHA))
        np.testing.assert_allclose(levels, 2 * max(rejected, 1) * ALPHA / m, rtol=1e-14)


def test_none_and_a_family_of_one_are_the_95_percent_interval():
    adjusted, levels = adjust_family([0.01, 0.3], "none", ALPHA)
    assert list(adjusted) == [0.01, 0.3] and list(levels) == [0.05, 0.05]
    for method in ("holm", "bh"):
        adjusted, levels = adjust_family([0.01], method, ALPHA)
        assert list(adjusted) == [0.01] and list(levels) == [0.05]
    assert [x.size for x in adjust_family([], "holm")] == [0, 0]


@pytest.mark.parametrize("bad", [dict(p_values=[0.1, 1.2]), dict(p_values=[np.nan]), dict(p_values=[[0.1]]),
                                 dict(p_values=[0.1], method="bonferroni"), dict(p_values=[0.1], alpha=0.5)])
def test_invalid_input_raises(bad):
    with pytest.raises(ValueError):
        adjust_family(**bad)


def test_a_p_value_exactly_at_its_level_follows_the_adjusted_decision():
    # Holm, m = 2: the first item's level is α/2; p = α/2 is not below it, and 2p = α is not below α
    adjusted, levels = adjust_family([ALPHA / 2, 0.5], "holm", ALPHA)
    assert not adjusted[0] < ALPHA and not ALPHA / 2 < levels[0] / 2
    p = np.nextafter(ALPHA / 2, 0)  # just below: rejected, and below its level
    adjusted, levels = adjust_family([p, 0.5], "holm", ALPHA)
    assert adjusted[0] < ALPHA and p < levels[0] / 2
    # a product that rounds: 3 · p < α in floating point while p ≥ α/3 (or the reverse)
    rng = np.random.default_rng(3)
    for _ in range(20_000):
        m = int(rng.integers(2, 60))
        p = np.full(m, 0.9)
        p[0] = ALPHA / m * (1 + rng.integers(-4, 5) * 2.0 ** -52)
        adjusted, levels = adjust_family(p, "holm", ALPHA)
        assert (p[0] < levels[0] / 2) == (adjusted[0] < ALPHA)


def family_tables(rng, size):
    n = rng.choice([20, 100, 135, 152, 300, 545, 1534, 10_042, 14_042], size)
    r = rng.uniform(0, 0.4, size)
    m = rng.binomial(n, r)
    b = rng.binomial(m, rng.uniform(0, 1, size))
    return b, m - b, n


def adjust_families(p, sizes, method):
    adjusted, levels, start = np.empty(p.size), np.empty(p.size), 0
    for size in sizes:
        sl = slice(start, start + size)
        adjusted[sl], levels[sl] = adjust_family(p[sl], method, ALPHA)
        start += size
    return adjusted, levels


@pytest.mark.parametrize("method", ["holm", "bh", "none"])
def test_thresholds_outside_the_adjusted_interval_iff_adjusted_p_below_alpha_100k_tables(method):
    """100,000 tables in families of 1–60 items, each with a key and a threshold (random, or exactly at
    the bound of its interval at the level its family gave it, where p sits at its level): for every
    item, the key's threshold lies beyond its adjusted interval on the key's side ⟺ adjusted p < α."""
    rng = np.random.default_rng({"holm": 4, "bh": 5, "none": 6}[method])
    total = 100_000
    b, c, n = family_tables(rng, total)
    keys = rng.choice(list(KEYS), total)
    low_side = np.isin(keys, ["min_ci_lower", "non_inferiority_margin"])
    sizes = []
    while sum(sizes) < total:
        sizes.append(int(rng.choice([1, 2, 5, 57, int(rng.integers(1, 61))])))
    sizes[-1] -= sum(sizes) - total
    value = rng.uniform(-3, 12, total)
    threshold = np.empty(total)
    for key in KEYS:
        threshold[keys == key] = key_threshold(key, 1.0)[0] * value[keys == key]

    def one_sided(t):
        return np.where(low_side, paired_binary_test(b, c, n, t, "greater"), paired_binary_test(b, c, n, t, "less"))

    # pass 1: random thresholds; pass 2: half of them moved exactly onto the bound at their family level
    _, levels = adjust_families(one_sided(threshold), sizes, method)
    low, high = paired_binary_ci(b, c, n, level=levels)
    at_bound = rng.random(total) < 0.5
    threshold = np.where(at_bound, np.where(low_side, low, high), threshold)
    p = one_sided(threshold)
    adjusted, levels = adjust_families(p, sizes, method)
    lo, hi = paired_binary_ci(b, c, n, level=levels, at=threshold)
    outside = np.where(low_side, lo > threshold, hi < threshold)
    assert np.array_equal(outside, adjusted < ALPHA)
    assert np.array_equal(outside, p < levels / 2)
    assert 0.05 < np.mean(outside) < 0.95  # both outcomes well represented
    edge = np.abs(p / (levels / 2) - 1) < 1e-9
    assert np.sum(edge) > 500, np.sum(edge)  # and many items exactly at the knife's edge (here: Holm 20,480, BH 915, none 50,037)


def test_holm_controls_the_family_wise_error_of_threshold_keys():
    """57 subjects of 100–1,534 questions, every one exactly at its non-inferiority boundary (Δ = −M):
    Holm on the keys' own p-values passes some subject in ≤ 2.5 % of families (simulated)."""
    rng = np.random.default_rng(7)
    sizes = np.array([100] * 40 + [135, 152, 545, 1534] * 4 + [300])
    margin, r, reps = 3.0, 0.25, 400
    s = (1 - margin / 100 / r) / 2
    wrong = 0
    for _ in range(reps):
        t = np.array([rng.multinomial(k, [r * s, r * (1 - s), 1 - r]) for k in sizes])
        p = paired_binary_test(t[:, 0], t[:, 1], sizes, -margin, "greater")
        adjusted, _ = adjust_family(p, "holm", ALPHA)
        wrong += np.any(adjusted < ALPHA)
    assert wrong / reps <= 0.025 + 2 * np.sqrt(0.025 * 0.975 / reps)


def test_the_verdict_family_is_holm_on_the_two_sided_p_values_at_five_percent():
    """adjust_items: the verdict's family is the tests of "no difference", two-sided at 5 % (2.5 % a side): its
    adjusted p-values are statsmodels' Holm on the two-sided p-values, and an item alone is its own 95 % test."""
    tables = [(30, 12, 200), (25, 20, 200), (40, 5, 200), (18, 30, 200), (22, 21, 200)]
    tests = {f"s{i}": paired_test([0.0] * b + [1.0] * c + [1.0] * (n - b - c), [1.0] * b + [0.0] * c + [1.0] * (n - b - c))
             for i, (b, c, n) in enumerate(tables)}
    adjusted = adjust_items(tests, "holm")
    p = [t.p_value for t in tests.values()]
    with mock.patch("gc.collect", lambda *args, **kwargs: 0):
        reference = multipletests(p, method="holm")[1]
    assert [adjusted[i].adjusted_p for i in tests] == pytest.approx(list(reference), rel=1e-12)
    first = min(tests, key=lambda i: tests[i].p_value)
    assert adjusted[first].level == pytest.approx(0.05 / 5) and adjusted[first].family_size == 5
    alone = {"overall": tests["s0"]}  # 30 against 12 of 200: p ≈ 0.009, significant on its own
    result = adjust_items(alone, "holm")["overall"]
    assert result.adjusted_p == tests["s0"].p_value and result.level == 0.05 and result.significance == "better"
    borderline = {"overall": paired_test([0.0] * 19 + [1.0] * 8 + [1.0] * 73, [1.0] * 19 + [0.0] * 8 + [1.0] * 73)}
    p = borderline["overall"].p_value
    assert 0.025 < p < 0.05 and adjust_items(borderline, "holm")["overall"].significance == "better"  # 5 % two-sided
