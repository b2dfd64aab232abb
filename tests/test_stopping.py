"""--sequential: a benchmark's looks end to end (pytester, the demo) — the report's counts, a following full run
evaluating only the rest, the refusals — and the verdicts' wording."""

from __future__ import annotations

import json

from pytest_qwencmp.stats.sequential import FAIL, PASS, ItemDecision, KeyDecision
from pytest_qwencmp.stopping import decision_verdict, look_counts
from pytest_qwencmp.evaluation.scores import ItemScore
from test_plugin import demo_args


def _record(document, benchmark, item):
    return next(r for r in document["comparisons"] if r["benchmark"] == benchmark and r["item"] == item)


def test_sequential_stops_when_decided_and_a_full_run_evaluates_only_the_rest(pytester, suite, fresh_cache):
    """HellaSwag (40 documents) with min_ci_lower = 0: B (100 %) against A (42.5 %) is confidently better after 20
    documents (look 3 of 4), so both items are decided there; the full run that follows evaluates the other 20 per model
    and reaches the same verdicts."""
    suite(
        """
        [hellaswag]
        min_ci_lower = 0.0
        """
    )
    results = pytester.path / "results.json"
    sequential = pytester.runpytest_inprocess(*demo_args(fresh_cache, "--benchmarks", "hellaswag", "--sequential",
                                                         f"--qwencmp-json={results}"))
    sequential.assert_outcomes(passed=2, deselected=59)
    out = sequential.stdout.str()
    assert ("Sequential: evaluated 20 of 40 documents (50 %) in 3 looks; stopped: all 2 items with expectations "
            "decided.") in out
    assert "HellaSwag × model_b: look 3 of 4: evaluating 10 of 20 documents (10 already evaluated" in out
    assert "look 4 of 4" not in out
    assert "PASS · better · look 3/4" in out
    document = json.loads(results.read_text())
    account = document["benchmarks"]["hellaswag"]["sequential"]
    assert (account["documents_evaluated"], account["documents_total"], account["looks"]) == (20, 40, 3)
    assert "Hwang–Shih–DeCani" in account["method"] and document["settings"]["sequential"] == account["method"]
    assert document["stats"]["documents_evaluated"] == {"a": 20, "b": 20}
    acc = _record(document, "hellaswag", "acc")
    assert acc["n"] == 20 and acc["sequential"]["look"] == 3 and acc["sequential"]["documents_total"] == 40
    key = acc["sequential"]["keys"][0]
    assert key["rule"] == "min_ci_lower" and key["verdict"] == "passed" and key["rci_low"] > 0.0
    assert 0 < key["level"] < 0.05  # a repeated CI: wider than the fixed 95 % one

    full = pytester.runpytest_inprocess(*demo_args(fresh_cache, "--benchmarks", "hellaswag", f"--qwencmp-json={results}"))
    full.assert_outcomes(passed=2, deselected=59)
    assert "HellaSwag × model_a: evaluating 20 of 40 documents (20 already evaluated" in full.stdout.str()
    again = json.loads(results.read_text())
    assert again["stats"]["documents_evaluated"] == {"a": 20, "b": 20}  # only the documents the looks left out
    assert _record(again, "hellaswag", "acc")["n"] == 40 and "sequential" not in _record(again, "hellaswag", "acc")
    assert [r["passed"] for r in again["comparisons"]] == [r["passed"] for r in document["comparisons"]]


def test_sequential_refuses_what_it_cannot_do(pytester, suite):
    for extra, words in ((["--correction", "bh"], "--correction holm"), (["--qwencmp-shard", "1/2"], "--qwencmp-shard"),
                         (["--num-fewshot", "hellaswag=2"], "--num-fewshot hellaswag=0"),
                         (["--sequential-looks", "0.5,0.25,1"], "strictly increasing"),
                         (["--samples", "mbpp=3"], "--sequential does not combine with --samples mbpp=3")):
        result = pytester.runpytest_inprocess("--demo", "-p", "no:cacheprovider", "--sequential", *extra)
        assert result.ret == 4, extra
        err = result.stderr.str()
        assert words in err and err.count("pytest-qwencmp:") == 1 and "Traceback" not in err, err
    pytester.makefile(".toml", pyproject="[tool.pytest.ini_options]\nqwencmp_sequential = true\n")  # the ini key too
    result = pytester.runpytest_inprocess("--demo", "-p", "no:cacheprovider", "--correction", "bh")
    assert result.ret == 4 and "--sequential does not combine with --correction bh" in result.stderr.str()


def test_verdicts_quote_the_interval_and_the_look():
    decision = ItemDecision(FAIL, 2, (
        KeyDecision("min_ci_lower", 9.5, FAIL, 2, 8.1, 12.0, 0.006, 0.025),
        KeyDecision("floor_b", 70.1, FAIL, 2, 60.0, 69.0, 0.006, 0.025, curtailed=True),
        KeyDecision("max_regression", -5.0, PASS, 1, -3.0, 4.0, 0.001, 0.0004)))
    verdict = decision_verdict(decision, lambda look: f"{look * 100} of 400 documents")
    assert not verdict.passed and len(verdict.failures) == 2 and len(verdict.checked) == 3
    assert verdict.failures[0] == ("min_ci_lower: the repeated 99.4% CI of B − A [+8.10, +12.00] at look 2 "
                                   "(200 of 400 documents) does not start above +9.50")
    assert "no outcome of the remaining documents can bring B's score to the floor 70.10" in verdict.failures[1]
    assert decision_verdict(ItemDecision(PASS, 1, decision.keys[2:]), str).passed


def test_look_counts():
    a = ItemScore("x", "t", "acc", 0.5, None, 4, ("t/0", "t/1", "t/2", "t/3"), (1.0, 0.0, 1.0, 0.0))
    b = ItemScore("x", "t", "acc", 0.5, None, 4, a.doc_keys, (1.0, 1.0, 0.0, 0.0))
    counts = look_counts(3, a, b)
    assert (counts.look, counts.n, counts.b_only, counts.a_only, counts.correct_a, counts.correct_b) == (3, 4, 1, 1, 2, 2)
