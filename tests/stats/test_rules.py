"""How expectation rules are decided (stats.rules, stats.keys): each key at its own threshold, in its key's family,
just inside and just outside its boundary; what check() reports; how powerful each rule is (assess)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import stats as sps

from pytest_qwencmp.config.benchmarks import builtin_registry
from pytest_qwencmp.config.expectations import Expectation, load_expectations
from pytest_qwencmp.stats import power as pw
from pytest_qwencmp.stats.keys import KEYS, decide_key, key_threshold
from pytest_qwencmp.stats.multiplicity import adjust_family
from pytest_qwencmp.stats.paired import paired_test
from pytest_qwencmp.stats.paired_binary import paired_binary_ci, paired_binary_test
from pytest_qwencmp.stats.rules import assess, check, decide_keys, key_families

REPO = Path(__file__).resolve().parents[2]
REGISTRY = builtin_registry()


def table_test(b_only: int, a_only: int, n: int):
    """The run's paired test of a table: B-only, A-only and n documents (the rest answered alike)."""
    rest = n - b_only - a_only
    a = [0.0] * b_only + [1.0] * a_only + [1.0] * (rest // 2) + [0.0] * (rest - rest // 2)
    b = [1.0] * b_only + [0.0] * a_only + [1.0] * (rest // 2) + [0.0] * (rest - rest // 2)
    return paired_test(a, b)


def decided(tests: dict, rules: dict, **kwargs) -> dict:
    return {item: {k.key: k for k in found} for item, found in decide_keys(tests, rules, **kwargs).items()}


# --------------------------------------------------------------------------- each key at its boundary


LOW_TABLES = [(40, 10, 300), (700, 0, 14_042), (3, 9, 100), (0, 0, 20), (12, 3, 40)]


@pytest.mark.parametrize("key, sign", [("min_ci_lower", 1.0), ("non_inferiority_margin", -1.0)])
@pytest.mark.parametrize("table", LOW_TABLES)
def test_low_side_keys_alone_just_inside_and_just_outside(key, sign, table):
    """min_ci_lower = t passes iff the 95 % interval's low bound lies above t (non_inferiority_margin: above −M)."""
    low, _ = paired_binary_ci(*table)
    test = table_test(*table)
    for offset, passes in ((-0.01, True), (+0.01, False), (-0.5, True), (+0.5, False), (0.0, False)):
        value = sign * (low + offset)
        if key == "non_inferiority_margin" and value < 0:
            continue
        result = decided({"x": test}, {"x": Expectation(**{key: value})})["x"][key]
        assert result.passed is passes, (key, table, offset)
        assert (result.p < 0.025) is passes and result.level == 0.05 and result.family_size == 1
        assert decide_key(key, value, result.low, result.high) is passes
        verdict = check(Expectation(**{key: value}), 50, 50, keys=[result])
        assert verdict.passed is passes and len(verdict.checked) == 1


@pytest.mark.parametrize("table", [(10, 40, 300), (0, 700, 14_042), (9, 3, 100), (0, 0, 20), (2, 30, 60)])
def test_max_regression_alone_just_inside_and_just_outside(table):
    """max_regression = X fails iff the interval's high bound lies below −X, i.e. X < −high."""
    _, high = paired_binary_ci(*table)
    test = table_test(*table)
    for offset, fails in ((-0.01, True), (+0.01, False), (-0.5, True), (+0.5, False), (0.0, False)):
        value = -high + offset
        if value < 0:
            continue
        result = decided({"x": test}, {"x": Expectation(max_regression=value)})["x"]["max_regression"]
        assert result.passed is (not fails), (table, offset)
        assert (result.p < 0.025) is fails
        assert check(Expectation(max_regression=value), 50, 40, keys=[result]).passed is (not fails)


@pytest.mark.parametrize("key", ["non_inferiority_margin", "max_regression"])
def test_keys_in_a_holm_family_just_inside_and_just_outside_their_adjusted_bound(key):
    """Five subjects carry the key: each is decided by its own threshold's p-value, Holm-adjusted over the five, and
    reads its interval at the level Holm gives it; moving one threshold across that bound flips only its verdict.
    (min_ci_lower reads each item's own 95 % interval: every item must pass it.)"""
    rng = np.random.default_rng(3)
    tables = [(int(b), int(c), 400) for b, c in zip(rng.integers(20, 60, 5), rng.integers(20, 60, 5))]
    tests = {f"s{i}": table_test(*t) for i, t in enumerate(tables)}
    base = {f"s{i}": Expectation(**{key: 2.0}) for i in range(5)}
    first = decided(tests, base)
    levels = {i: first[i][key].level for i in tests}
    assert {first[i][key].family_size for i in tests} == {5}
    for item in tests:
        t, side = key_threshold(key, 2.0)
        b, c, n = tables[int(item[1])]
        low, high = paired_binary_ci(b, c, n, level=levels[item], at=t)
        bound = low if side == "greater" else high
        for offset in (-0.01, +0.01):
            value = abs(bound + offset) if key != "min_ci_lower" else bound + offset
            if key != "min_ci_lower" and bound + offset > 0:
                continue
            rules = dict(base, **{item: Expectation(**{key: value})})
            result = decided(tests, rules)[item][key]
            assert decide_key(key, value, result.low, result.high) == result.passed
            assert (result.adjusted_p < 0.025) == (result.passed if side == "greater" else not result.passed)
            p = [tests[i].tails(key_threshold(key, getattr(rules[i], key))[0])[0 if side == "greater" else 1] for i in tests]
            adjusted, _ = adjust_family(p, "holm", 0.025)
            assert result.adjusted_p == adjusted[list(tests).index(item)]


def test_adjusted_keys_agree_with_their_intervals_on_random_families():
    """Random families and thresholds: for every item the key's verdict, its adjusted p-value and its interval agree."""
    rng = np.random.default_rng(11)
    checked = 0
    for _ in range(60):
        m = int(rng.integers(1, 12))
        tests, rules = {}, {}
        key = str(rng.choice(list(KEYS)))
        for i in range(m):
            n = int(rng.choice([20, 100, 300, 1534]))
            disc = rng.binomial(n, rng.uniform(0, 0.4))
            b = int(rng.binomial(disc, rng.uniform(0, 1)))
            tests[f"s{i}"] = table_test(b, int(disc - b), n)
            value = float(rng.uniform(0, 8)) if key != "min_ci_lower" else float(rng.uniform(-8, 8))
            rules[f"s{i}"] = Expectation(**{key: value})
        for item, results in decided(tests, rules, correction=str(rng.choice(["holm", "bh", "none"]))).items():
            r = results[key]
            assert decide_key(key, r.value, r.low, r.high) == r.passed
            significant = r.adjusted_p < 0.025
            assert r.passed == (significant if r.alternative == "greater" else not significant)
            checked += 1
    assert checked > 200


def test_key_families_are_the_items_carrying_the_key():
    ids = ["anatomy", "astronomy", "overall"]
    assert key_families(ids, "max_regression") == [["anatomy", "astronomy"], ["overall"]]
    assert key_families(ids, "non_inferiority_margin") == [["anatomy", "astronomy"], ["overall"]]
    assert key_families(ids, "min_ci_lower") == [["anatomy"], ["astronomy"], ["overall"]]
    tests = {i: table_test(30, 10, 200) for i in ("a", "b", "c")}
    rules = {"a": Expectation(max_regression=5.0), "b": Expectation(max_regression=5.0), "c": Expectation()}
    found = decided(tests, rules)
    assert found["a"]["max_regression"].family_size == 2 and found["c"] == {}


def test_twenty_identical_documents_pass_no_margin_below_five_points():
    test = table_test(0, 0, 20)
    low, high = test.key_interval(0.05, 0.0)
    assert low <= -5 and high >= 5  # ±20.05 with the continuity correction
    for margin in (0.5, 1.5, 5.0, 20.0):
        r = decided({"x": test}, {"x": Expectation(non_inferiority_margin=margin)})["x"]["non_inferiority_margin"]
        assert not r.passed and r.p >= 0.025
    assert not decided({"x": test}, {"x": Expectation(min_ci_lower=-5.0)})["x"]["min_ci_lower"].passed
    assert decided({"x": test}, {"x": Expectation(max_regression=0.0)})["x"]["max_regression"].passed


# --------------------------------------------------------------------------- check


def test_check_reports_every_missed_rule_with_its_test():
    rule = Expectation(min_improvement=5, floor_a=50, floor_b=60, min_ci_lower=1, no_significant_regression=True,
                       max_regression=1, non_inferiority_margin=1)
    tests = {"x": table_test(2, 40, 200)}
    keys = decide_keys(tests, {"x": rule})["x"]
    verdict = check(rule, 40.0, 42.0, keys=keys, significantly_worse=True)
    assert not verdict.passed and len(verdict.failures) == 7
    assert "improvement +2.00 is below the required +5.00 points" in verdict.failures[0]
    low = next(k for k in keys if k.key == "min_ci_lower").low
    assert f"the 95% CI of B − A starts at {low:+.2f}, not above the required +1.00 points (p = " in verdict.failures[3]
    assert "B not shown within 1.00 points of A (the 95% CI starts at " in verdict.failures[4]
    assert "B significantly worse by more than 1.00 points (the 95% CI [" in verdict.failures[5]
    assert "for Δ ≥ -1.00" in verdict.failures[5]
    good = decide_keys({"x": table_test(60, 5, 200)}, {"x": rule})["x"]
    assert check(rule, 55.0, 65.0, keys=good).passed


def test_a_key_without_per_document_data_fails():
    verdict = check(Expectation(max_regression=5.0), 60, 50)
    assert not verdict.passed and "max_regression needs per-document data" in verdict.failures[0]
    assert check(Expectation(), 50, 10).passed


STUDY = {  # (A, B, n, family the item's keys sit in) of the Qwen2.5-1.5B → 7B study
    ("mmlu", "overall"): (59.74, 71.90, 14_042),
    ("mmlu", "abstract_algebra"): (35.00, 54.00, 100),
    ("hellaswag", "acc"): (50.24, 60.01, 10_042),
    ("hellaswag", "acc_norm"): (67.75, 78.93, 10_042),
    ("mbpp", "pass@1"): (46.00, 62.20, 500),
}


def typical(a: float, b: float, n: int, discordance: float = 0.25):
    b_only = round(n * (discordance + (b - a) / 100) / 2)
    a_only = round(n * discordance) - b_only
    return table_test(b_only, a_only, n), a, a + (b_only - a_only) / n * 100


@pytest.mark.parametrize("name", ["expectations.toml", "everyday-expectations.toml"])
def test_shipped_files_on_the_study_and_on_a_regression(name):
    """The study's typical tables pass the study file; falling back to A fails every claimed improvement; a
    25-point regression fails both files everywhere."""
    e = load_expectations(REPO / "evals" / name, REGISTRY)
    for (bench, item), (a, b, n) in STUDY.items():
        rule = e.for_item(bench, item)
        for target, expected in ((b, True), (a, None), (a - 25, False)):
            test, score_a, score_b = typical(a, target, n)
            keys = decide_keys({item: test}, {item: rule})[item]
            passed = check(rule, score_a, score_b, keys=keys).passed
            if expected is None:  # B as good as A: the study file's claims of improvement fail, the everyday file passes
                expected = name.startswith("everyday") or (bench == "mmlu" and item != "overall")
            assert passed is expected, (name, bench, item, target)


# --------------------------------------------------------------------------- power of the rules


def test_assess_marks_rules_that_cannot_work_at_this_size():
    rules = Expectation(max_regression=5.0, non_inferiority_margin=5.0, no_significant_regression=True,
                        min_improvement=0.0, floor_a=50.0)
    small = {n.rule: n for n in assess(rules, pw.Design(100, discordance=0.25), alpha=0.05, family_level=0.05 / 57,
                                        with_needed_n=True)}
    large = {n.rule: n for n in assess(rules, pw.Design(14_042, discordance=0.25), alpha=0.05, family_level=0.05,
                                        with_needed_n=True)}
    assert set(small) == {"max_regression", "non_inferiority_margin", "no_significant_regression", "min_improvement"}
    assert small["max_regression"].underpowered and small["non_inferiority_margin"].underpowered
    assert small["min_improvement"].underpowered  # a point estimate floor at 0: B as good as A fails half the time
    assert "with probability 50%" in small["min_improvement"].text
    assert not small["no_significant_regression"].underpowered  # a test of "no difference" states its power only
    assert "catches a true regression of 20.3 points or more with 80% power" in small["no_significant_regression"].text
    assert small["max_regression"].needed_n == 1_680 and small["max_regression"].text.endswith("— underpowered")
    assert [rule for rule, n in large.items() if n.underpowered] == ["min_improvement"]  # a coin flip at any n
    assert large["min_improvement"].needed_n is None
    # the needed n is the smallest at which the rule stops being underpowered
    at_needed = assess(Expectation(max_regression=5.0), pw.Design(1_680, discordance=0.25), alpha=0.05,
                       family_level=0.05 / 57)
    below = assess(Expectation(max_regression=5.0), pw.Design(1_679, discordance=0.25), alpha=0.05,
                   family_level=0.05 / 57)
    assert not at_needed[0].underpowered and below[0].underpowered


def test_power_is_the_probability_of_the_keys_own_decision():
    """power.power at a key's threshold is the probability that decide_keys passes it (exactly, by enumeration)."""
    n, r, delta, margin = 60, 0.25, 0.0, 10.0
    total = 0.0
    for m in range(n + 1):
        weight = sps.binom.pmf(m, n, r)
        b = np.arange(m + 1)
        p = paired_binary_test(b, m - b, n, -margin, "greater")
        total += weight * float(np.sum(sps.binom.pmf(b, m, 0.5) * (p < 0.025)))
    assert pw.power(pw.Design(n, discordance=r), delta, 0.05, threshold=-margin / 100) == pytest.approx(total, abs=1e-12)


class _AtTheLevel:
    """A test whose one-sided p-value at any threshold is exactly 2.5 %, its interval's bound exactly on it."""

    def tails(self, threshold):
        return 0.025, 0.025

    def key_interval(self, level, threshold):
        return threshold, threshold


@pytest.mark.parametrize("key", list(KEYS))
def test_a_p_value_exactly_at_two_and_a_half_percent_does_not_decide(key):
    """Strict: p = 0.025 exactly shows nothing — the low-side keys do not pass, max_regression does not fail."""
    result = decided({"x": _AtTheLevel()}, {"x": Expectation(**{key: 1.0})})["x"][key]
    assert result.adjusted_p == 0.025 and result.passed is (key == "max_regression")
    assert decide_key(key, 1.0, result.low, result.high) == result.passed
