"""--sequential end to end (pytester, the demo): looks, the report's counts, and a following full run evaluating only the rest."""

from __future__ import annotations

import json

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
                         (["--sequential-looks", "0.5,0.25,1"], "strictly increasing")):
        result = pytester.runpytest_inprocess("--demo", "-p", "no:cacheprovider", "--sequential", *extra)
        assert result.ret == 4, extra
        err = result.stderr.str()
        assert words in err and err.count("pytest-qwencmp:") == 1 and "Traceback" not in err, err
