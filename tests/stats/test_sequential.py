"""Sequential decisions: RCI coverage under peeking, each key at its boundary, curtailment, graphical Holm,
looks, and the vectorised simulation against the scalar decision code."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import special

from pytest_qwencmp.config.expectations import Expectation
from pytest_qwencmp.stats import expected_share as es
from pytest_qwencmp.stats import sequential as sq
from pytest_qwencmp.stats.spending import boundaries, rci_level

PLAN = sq.DEFAULT_LOOKS


def history(total, b_share, c_share, looks=PLAN, correct=None):
    """Cumulative counts at each planned look with B-only and A-only at fixed shares of the documents."""
    return [sq.LookCounts(k + 1, n, int(b_share * n), int(c_share * n),
                          *(() if correct is None else (int(correct[0] * n), int(correct[1] * n))))
            for k, n in enumerate(sq.look_sizes(total, looks))]


# --------------------------------------------------------------------------- RCIs under peeking


def _paths(n, delta, r, reps, seed):
    rng = np.random.default_rng(seed)
    pb, pc = (r + delta) / 2, (r - delta) / 2
    prev, acc = 0, np.zeros((reps, 3))
    for nk in sq.look_sizes(n, PLAN):
        acc = acc + rng.multinomial(nk - prev, [pb, pc, 1 - pb - pc], size=reps)
        yield nk, acc[:, 0].copy(), acc[:, 1].copy()
        prev = nk


@pytest.mark.parametrize("n,delta,r", [(2000, 0.05, 0.25), (500, -0.10, 0.3)])
def test_rci_covers_simultaneously_under_peeking(n, delta, r):
    """Each side of the RCIs misses the truth at SOME look at most 2.5 % of the time (plus 4 Monte Carlo SE), so they
    cover simultaneously ≥ 95 %; four peeks at plain 95 % intervals miss more than 4 % on one side."""
    reps = 10_000
    crit = boundaries(PLAN, 0.025)
    miss_low, miss_high, naive = (np.zeros(reps, bool) for _ in range(3))
    for k, (nk, b, c) in enumerate(_paths(n, delta, r, reps, seed=1)):
        low, high = sq.binary_interval(b, c, nk, rci_level(crit[k]), exact=False)
        miss_low |= low > 100 * delta
        miss_high |= high < 100 * delta
        naive |= sq.binary_interval(b, c, nk, 0.05, exact=False)[0] > 100 * delta
    se = math.sqrt(0.025 * 0.975 / reps)
    assert np.mean(miss_low) < 0.025 + 4 * se and np.mean(miss_high) < 0.025 + 4 * se
    assert np.mean(naive) > 0.04


def test_interval_functions():
    assert sq.binary_interval(3, 1, 20, 0.0) == (-100.0, 100.0)
    assert sq.binary_interval(700, 0, 14042, 0.05) == pytest.approx((4.63, 5.36), abs=0.01)
    low, high = sq.score_interval(7, 8, 0.05)
    assert low == pytest.approx(100 * 0.5291, abs=0.02) and high == pytest.approx(100 * 0.9776, abs=0.02)  # Wilson
    assert sq.score_interval(7, 8, 0.0) == (0.0, 100.0)
    low, high = sq.score_interval(np.array([0, 20]), np.array([20, 20]), 0.05)
    assert low[0] == pytest.approx(0.0) and high[1] == pytest.approx(100.0) and high[0] < 20 and low[1] > 80


# --------------------------------------------------------------------------- each key at its boundary

EPS = 1e-6


@pytest.mark.parametrize("rule,value", [("min_ci_lower", 9.5), ("non_inferiority_margin", 1.5), ("min_improvement", 2.0)])
def test_pass_side_keys_at_their_boundary(rule, value):
    t = sq.rule_threshold(rule, value)

    def d(low, high, final=False, est=None):
        return sq.decide_look(rule, t, low, high, final=final, estimate=est)

    assert d(t + EPS, t + 5) == sq.PASS
    assert d(t, t + 5) == sq.CONTINUE  # low == t does not pass
    if rule == "min_improvement":
        assert d(t - 5, t - EPS) == sq.FAIL and d(t - 5, t) == sq.CONTINUE
        assert d(t - 5, t + 5, final=True, est=t) == sq.PASS
        assert d(t - 5, t + 5, final=True, est=t - EPS) == sq.FAIL
    else:
        assert d(t - 5, t) == sq.FAIL  # futility: high ≤ t
        assert d(t - 5, t + EPS) == sq.CONTINUE
        assert d(t, t + 5, final=True) == sq.FAIL
        assert d(t + EPS, t + 5, final=True) == sq.PASS


@pytest.mark.parametrize("rule,value", [("max_regression", 5.0), ("no_significant_regression", True)])
def test_fail_only_keys_at_their_boundary(rule, value):
    t = sq.rule_threshold(rule, value)

    def d(low, high, final=False):
        return sq.decide_look(rule, t, low, high, final=final)

    assert d(t - 5, t - EPS) == sq.FAIL
    assert d(t - 5, t) == sq.CONTINUE
    assert d(t + EPS, t + 5) == sq.PASS  # early pass only once the interval excludes the regression
    assert d(t, t + 5) == sq.CONTINUE
    assert d(t - 5, t + 5, final=True) == sq.PASS
    assert d(t - 5, t - EPS, final=True) == sq.FAIL


def test_floor_keys_and_arrays():
    out = sq.decide_look("floor_b", 70.1, np.array([70.2, 60.0, 69.0]), np.array([80.0, 70.0, 75.0]), final=False)
    assert out.tolist() == [sq.PASS, sq.FAIL, sq.CONTINUE]
    assert sq.decide_look("floor_b", 70.1, np.array([69.0]), np.array([75.0]), final=True,
                         estimate=np.array([70.1])).tolist() == [sq.PASS]
    with pytest.raises(ValueError):
        sq.decide_look("floor_b", 70.1, 69.0, 75.0, final=True)
    with pytest.raises(ValueError):
        sq.decide_look("max_improvement", 1.0, 0.0, 1.0, final=True)


def test_keys_of_an_expectation():
    e = Expectation(min_ci_lower=9.5, max_regression=5.0, floor_b=70.1, baseline_tolerance=1.0,
                    no_significant_regression=False)
    assert sq.sequential_keys(e) == (("min_ci_lower", 9.5), ("max_regression", -5.0), ("floor_b", 70.1))
    assert sq.family_key_count(e) == 1 and sq.sequential_keys(Expectation()) == ()


# --------------------------------------------------------------------------- items


def _stub(calls):
    """An interval function that records its level and returns estimate ± z·2 points."""

    def ci(b, c, n, level):
        calls.append(level)
        z = float(-special.ndtri(level / 2))
        est = 100.0 * (b - c) / n
        return est - 2 * z, est + 2 * z

    return ci


def test_decide_item_uses_the_item_boundary_and_alpha():
    design = sq.SequentialDesign(spending="obrien-fleming", curtail=False)  # c = 6.23, 4.33, 2.96, 1.97
    calls = []
    total = 800
    planned = sq.planned_sizes(total, design.looks)
    h = history(total, 0.25, 0.05)  # +20 points; ± 2·c_k excludes 9.5 once c_k < 5.25: look 2
    dec = sq.decide_item(h, planned, Expectation(min_ci_lower=9.5), design, _stub(calls))
    assert dec.verdict == sq.PASS and dec.look == 2
    crit = boundaries(tuple(x.n / total for x in h[:2]), 0.025, design.spending)[-1]
    assert calls[-1] == pytest.approx(rci_level(crit))
    dec = sq.decide_item(h, planned, Expectation(max_regression=5.0), design, _stub([]), family_size=57)
    assert dec.keys[0].alpha == pytest.approx(0.025 / 57) and dec.keys[0].verdict == sq.PASS
    dec = sq.decide_item(h[:1], planned, Expectation(min_ci_lower=9.5), design, _stub([]))
    assert dec.verdict == sq.CONTINUE and not dec.decided
    bad = history(total, 0.02, 0.22)  # a failing key decides the item at once, whatever is still open
    dec = sq.decide_item(bad, planned, Expectation(min_ci_lower=9.5, max_regression=5.0), design, _stub([]))
    assert dec.verdict == sq.FAIL and dec.look == 1
    with pytest.raises(ValueError):
        sq.decide_item(list(reversed(h)), planned, Expectation(min_ci_lower=1.0), design, _stub([]))


def test_the_last_look_is_the_fixed_rule_at_the_spent_level():
    design = sq.SequentialDesign()
    total = 14042
    h = history(total, 0.175, 0.075)  # +10 points observed; min_ci_lower = 9.5 is open until the end
    dec = sq.decide_item(h, sq.planned_sizes(total, design.looks), Expectation(min_ci_lower=9.5), design)
    assert dec.decided and dec.look == 4
    c_k = boundaries(tuple(x.n / total for x in h), 0.025, design.spending)[-1]
    low, high = sq.binary_interval(h[-1].b_only, h[-1].a_only, total, rci_level(c_k))
    key = dec.keys[0]
    assert (key.low, key.high) == pytest.approx((low, high))
    assert key.verdict == (sq.PASS if low > 9.5 else sq.FAIL)
    assert 1.96 < c_k < 1.99  # under 1.5 % of width at the last look


def test_futility_is_optional():
    total = 1000
    h = history(total, 0.05, 0.15)
    planned = sq.planned_sizes(total, PLAN)
    dec = sq.decide_item(h, planned, Expectation(min_ci_lower=3.0), sq.SequentialDesign(futility=False, curtail=False))
    assert dec.look == 4 and dec.verdict == sq.FAIL
    dec = sq.decide_item(h, planned, Expectation(min_ci_lower=3.0), sq.SequentialDesign())
    assert dec.look < 4 and dec.verdict == sq.FAIL


def test_floors_use_the_score_interval():
    total = 10042
    h = history(total, 0.2, 0.05, correct=(0.5, 0.3))
    dec = sq.decide_item(h, sq.planned_sizes(total, PLAN), Expectation(floor_b=57.8), sq.SequentialDesign())
    assert dec.verdict == sq.FAIL and dec.look == 1
    with pytest.raises(ValueError):
        sq.decide_item(h, sq.planned_sizes(total, PLAN), Expectation(floor_b=57.8), sq.SequentialDesign(), score_ci=None)


def test_curtailment_decides_what_the_rest_cannot_change():
    """40 documents, 20 seen, B won 7 and A 1: the interval at look 3 does not yet exclude −10, but even if A wins all
    20 left, the last-look interval at the most lenient level reaches above −10: max_regression passes now; without
    curtailment the key waits for the last look. At 8 documents the key can never fail: decided at the first look."""
    planned = sq.planned_sizes(40, PLAN)
    assert planned == (5, 10, 20, 40)
    h = [sq.LookCounts(1, 5, 1, 0), sq.LookCounts(2, 10, 2, 0), sq.LookCounts(3, 20, 7, 1)]
    rules = Expectation(max_regression=10.0)
    family = {"x": h, "y": h}, {"x": planned, "y": planned}, {"x": rules, "y": rules}
    dec = sq.decide_family(*family, sq.SequentialDesign())
    assert dec["x"].verdict == sq.PASS and dec["x"].look == 3 and dec["x"].keys[0].curtailed
    assert dec["x"].keys[0].low <= -10.0  # the RCI alone would not have decided it
    full_crit = boundaries((5 / 40, 10 / 40, 20 / 40, 1.0), 0.025)[-1]
    assert sq.binary_interval(7, 21, 40, rci_level(full_crit))[1] >= -10.0
    assert sq.decide_family(*family, sq.SequentialDesign(curtail=False))["x"].verdict == sq.CONTINUE
    tiny = [sq.LookCounts(1, 1, 1, 0)]
    dec = sq.decide_family({"x": tiny, "y": tiny}, {"x": (1, 2, 4, 8), "y": (1, 2, 4, 8)}, {"x": rules, "y": rules},
                           sq.SequentialDesign())
    assert dec["x"].look == 1 and dec["x"].keys[0].curtailed  # b = 1, c = 7 of 8 at best reaches −75 ± 77
    # floors and min_improvement: arithmetic on the remaining documents
    h = [sq.LookCounts(1, 90, 40, 10, correct_a=20, correct_b=50)]
    dec = sq.decide_item(h, (90, 100), Expectation(floor_b=50.0, floor_a=30.5, min_improvement=20.0), sq.SequentialDesign())
    by_rule = {k.rule: k for k in dec.keys}
    assert by_rule["floor_b"].verdict == sq.PASS and by_rule["floor_b"].curtailed  # ≥ 50 of 100 whatever comes
    assert by_rule["floor_b"].low < 50.0  # the Wilson RCI alone would not have passed it
    assert by_rule["floor_a"].verdict == sq.FAIL and by_rule["floor_a"].curtailed  # at most 30 of 100
    assert by_rule["floor_a"].high > 30.5
    assert by_rule["min_improvement"].verdict == sq.PASS and by_rule["min_improvement"].curtailed  # (40 − 10 − 10)/100
    assert by_rule["min_improvement"].low < 20.0


def test_curtailment_never_rejects_a_holm_family_key_early():
    """A subject certain to fail at the last look under Holm is left to its boundary (a rejection passes α on)."""
    planned = (10, 20, 40, 80)
    h = [sq.LookCounts(1, 10, 0, 10)]  # A won all 10: certain to fail max_regression 5? Not before look 4 by curtailment
    rules = Expectation(max_regression=5.0)
    dec = sq.decide_family({"x": h, "y": h}, {"x": planned, "y": planned}, {"x": rules, "y": rules}, sq.SequentialDesign())
    assert not dec["x"].keys[0].curtailed


def test_family_holm_passes_alpha_on():
    design_b = sq.SequentialDesign(family_rule="bonferroni")
    design_h = sq.SequentialDesign()
    total = 400
    planned = sq.planned_sizes(total, PLAN)
    hx = history(total, 0.0, 0.3)  # −30 points: rejected early
    hy = history(total, 0.05, 0.2)  # −15 points: only a larger α rejects it
    rules = {"x": Expectation(max_regression=5.0), "y": Expectation(max_regression=5.0)}
    hist, plans = {"x": hx, "y": hy}, {"x": planned, "y": planned}
    bonf = sq.decide_family(hist, plans, rules, design_b)
    holm = sq.decide_family(hist, plans, rules, design_h)
    assert bonf["x"].verdict == holm["x"].verdict == sq.FAIL
    assert holm["y"].keys[0].alpha == pytest.approx(0.025)  # x rejected: y spends α/(2 − 1)
    assert bonf["y"].keys[0].alpha == pytest.approx(0.0125)
    assert holm["y"].look <= bonf["y"].look


def test_correction_none_spends_alpha_per_key():
    total = 400
    planned = sq.planned_sizes(total, PLAN)
    h = history(total, 0.05, 0.2)
    rules = {"x": Expectation(max_regression=5.0), "y": Expectation(max_regression=5.0)}
    out = sq.decide_family({"x": h, "y": h}, {"x": planned, "y": planned}, rules, sq.SequentialDesign(family_rule="none"))
    assert out["x"].keys[0].alpha == 0.025 and out["y"].keys[0].alpha == 0.025
    assert "no multiplicity adjustment" in sq.SequentialDesign(family_rule="none").method


def test_benchmark_stop_and_strata():
    open_ = sq.ItemDecision(sq.CONTINUE, None, ())
    passed = sq.ItemDecision(sq.PASS, 2, ())
    failed = sq.ItemDecision(sq.FAIL, 1, ())
    rules = {"overall": Expectation(min_ci_lower=9.5), "a": Expectation(max_regression=5.0), "b": Expectation()}
    strata = {"overall": ("a", "b"), "a": ("a",), "b": ("b",)}
    assert not sq.benchmark_stop({"overall": passed, "a": open_, "b": open_}, rules)
    assert sq.strata_needed({"overall": passed, "a": open_, "b": open_}, rules, strata) == {"a"}  # b never holds it
    assert sq.benchmark_stop({"overall": passed, "a": passed, "b": open_}, rules)
    assert sq.benchmark_stop({"overall": failed, "a": failed, "b": open_}, rules)
    assert sq.strata_needed({"overall": open_, "a": passed, "b": open_}, rules, strata) == {"a", "b"}


# --------------------------------------------------------------------------- looks and the design


def test_look_sizes_and_order():
    assert sq.look_sizes(14042, PLAN) == (1755, 3511, 7021, 14042)
    assert sq.look_sizes(100, PLAN) == (13, 25, 50, 100)
    assert sq.look_sizes(3, PLAN) == (1, 2, 3)
    assert sq.planned_sizes(3, PLAN) == (1, 1, 2, 3)
    order = sq.document_order("anatomy", 135, seed=1234)
    assert sorted(order) == list(range(135)) and order == sq.document_order("anatomy", 135, seed=1234)
    assert order != sq.document_order("anatomy", 135, seed=1235)
    assert order != sq.document_order("astronomy", 135, seed=1234)


def test_design_validation_and_method():
    d = sq.SequentialDesign()
    assert "Hwang–Shih–DeCani" in d.method and "1/8, 1/4, 1/2, 1" in d.method and "graphical Holm" in d.method
    for bad in (dict(looks=(0.5, 0.9)), dict(looks=(0.5, 0.25, 1.0)), dict(alpha=0.6), dict(spending="x"),
                dict(family_rule="bh")):
        with pytest.raises(ValueError):
            sq.SequentialDesign(**bad)


# --------------------------------------------------------------------------- the simulation


def _bench(delta, rules, size=500, r=0.25):
    return es.BenchmarkScenario("b", {"s": es.StratumTruth(size, delta, r, 50.0)}, (es.SimulatedItem("item", ("s",), rules),))


def _histories(res, item, i):
    ns, cum = res.item_counts[item]
    out, seen = [], []
    for k in range(len(ns)):
        if seen and ns[k] == seen[-1]:
            continue
        seen.append(ns[k])
        n11, b, c = (int(x) for x in cum[k, i])
        out.append(sq.LookCounts(k + 1, int(ns[k]), b, c, n11 + c, n11 + b))
    return out, tuple(int(x) for x in ns)


@pytest.mark.parametrize("design", [sq.SequentialDesign(), sq.SequentialDesign(family_rule="bonferroni"),
                                    sq.SequentialDesign(spending="obrien-fleming", futility=False, curtail=False)],
                         ids=["default", "bonferroni", "obf-plain"])
def test_simulation_agrees_with_the_scalar_decisions(design):
    """A family of three subjects (max_regression, one with a floor), an aggregate over them, and a tiny subject where
    curtailment bites: the vectorised simulation and decide_family / decide_item give the same verdicts and looks."""
    strata = {"s1": es.StratumTruth(150, -12.0, 0.25, 50.0), "s2": es.StratumTruth(400, 3.0, 0.25, 50.0),
              "s3": es.StratumTruth(90, -20.0, 0.3, 50.0), "s4": es.StratumTruth(8, 10.0, 0.3, 50.0)}
    fam = {s: Expectation(max_regression=5.0) for s in strata}
    fam["s2"] = Expectation(max_regression=5.0, floor_b=45.0)
    items = tuple(es.SimulatedItem(s, (s,), fam[s], "f") for s in strata)
    items += (es.SimulatedItem("overall", tuple(strata), Expectation(min_ci_lower=-8.0, max_regression=5.0)),)
    reps = 12
    res = es.simulate_benchmark(design, es.BenchmarkScenario("b", strata, items), reps, np.random.default_rng(4),
                                paired_ci=sq.binary_interval)
    for i in range(reps):
        hist, plans = {}, {}
        for it in items:
            hist[it.name], plans[it.name] = _histories(res, it.name, i)
        got = sq.decide_family({s: hist[s] for s in strata}, {s: plans[s] for s in strata}, fam, design)
        for s in strata:
            assert (got[s].verdict, got[s].look or 0) == (res.item_verdict[s][i], res.item_look[s][i]), (s, i)
        ov = sq.decide_item(hist["overall"], plans["overall"], items[-1].rules, design)
        assert (ov.verdict, ov.look or 0) == (res.item_verdict["overall"][i], res.item_look["overall"][i])


def test_false_pass_at_the_boundary_and_futility():
    """min_ci_lower = 3 at a true Δ of exactly 3 points: sequential false passes ≤ 2.5 % (+ 3 MC SE); futility only ever
    removes passes (same random numbers) and saves documents."""
    reps = 4000
    bench = _bench(3.0, Expectation(min_ci_lower=3.0))
    with_f = es.simulate_benchmark(sq.SequentialDesign(), bench, reps, np.random.default_rng(9))
    without = es.simulate_benchmark(sq.SequentialDesign(futility=False), bench, reps, np.random.default_rng(9))
    passed_f = with_f.item_verdict["item"] == sq.PASS
    passed_nf = without.item_verdict["item"] == sq.PASS
    assert np.all(passed_nf[passed_f])
    assert passed_f.mean() < 0.025 + 3 * math.sqrt(0.025 * 0.975 / reps)
    assert with_f.share.mean() < without.share.mean()


def test_expected_share():
    scen = [_bench(20.0, Expectation(min_ci_lower=3.0), size=14042),
            es.BenchmarkScenario("c", {"s": es.StratumTruth(1000, 0.0)}, (es.SimulatedItem("item", ("s",), Expectation()),))]
    out = es.expected_share(sq.SequentialDesign(), scen, reps=100, seed=1)
    assert set(out) == {"b", "c", "all"}
    assert out["b"][0] == pytest.approx(0.125, abs=1e-3)  # +20 against a 3-point requirement: the first look decides
    assert out["c"][0] == pytest.approx(0.125)  # no expectations: the first look only
