"""compare_benchmark and the reports built on it, without models: synthetic per-document answers.

Checks that every item's interval agrees with its p-value and its adjusted interval with its adjusted
p-value and verdict, that MDEs and power notes come from ``power``, that the failure message is short,
that terminal, Markdown, HTML and JSON give the same counts, and that ``-rA`` shows the numbers.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from pytest_qwencmp.stats import power as pw
from pytest_qwencmp.config.benchmarks import builtin_registry
from pytest_qwencmp.comparison import compare_benchmark
from pytest_qwencmp.evaluation.scores import BenchmarkEvaluation, ItemScore
from pytest_qwencmp.config.expectations import NO_EXPECTATIONS, parse_expectations
from pytest_qwencmp.report.formatting import counts
from pytest_qwencmp.report.html import html_summary
from pytest_qwencmp.report.results import results_document
from pytest_qwencmp.report.text import markdown_tables, text_tables

REGISTRY = builtin_registry()


def evaluation(benchmark, side: str, answers: dict[str, np.ndarray]) -> BenchmarkEvaluation:
    """A BenchmarkEvaluation with the given per-document 0/1 answers per item (overall = all subjects)."""
    scores = []
    for item in benchmark.items:
        if item.id.split(":")[0] == "overall":
            values = np.concatenate([answers[i.id] for i in benchmark.items if i.id.split(":")[0] != "overall"])
        else:
            values = answers[item.id]
        keys = tuple(f"{item.task}/{k}" for k in range(values.size))
        scores.append(ItemScore(item.id, item.task, item.metric, float(values.mean()), float(values.std() / np.sqrt(values.size)),
                                int(values.size), keys, tuple(float(v) for v in values)))
    return BenchmarkEvaluation(benchmark.name, side, "key", {"label": f"model_{side}"}, tuple(scores), {}, {}, None,
                               "0.4.13", 0.0)


def synthetic(name: str, seed: int, n: int = 120, effects=(0.0, 0.05, 0.15, -0.2, 0.3)):
    """A and B evaluations of a built-in benchmark: per item a random effect from ``effects``, discordance ~0.3."""
    benchmark = REGISTRY.get(name)
    rng = np.random.default_rng(seed)
    a_answers, b_answers = {}, {}
    for item in benchmark.items:
        if item.id.split(":")[0] == "overall":
            continue
        size = int(rng.integers(n // 2, n * 2))
        effect = float(rng.choice(effects))
        a = (rng.random(size) < 0.55).astype(float)
        flip_up = (a == 0) & (rng.random(size) < 0.3 + max(effect, 0) * 2)
        flip_down = (a == 1) & (rng.random(size) < 0.2 + max(-effect, 0) * 2)
        b = np.where(flip_up, 1.0, np.where(flip_down, 0.0, a))
        a_answers[item.id], b_answers[item.id] = a, b
    return benchmark, evaluation(benchmark, "a", a_answers), evaluation(benchmark, "b", b_answers)


EXPECTATIONS = parse_expectations(
    """
    [mmlu]
    max_regression = 5.0
    [mmlu.overall]
    non_inferiority_margin = 1.0
    [hellaswag]
    min_ci_lower = 0.0
    """,
    Path("exp.toml"),
    REGISTRY,
)


def records(correction: str = "holm", seed: int = 1) -> list[dict]:
    rows = []
    for order, name in enumerate(("mmlu", "hellaswag", "mbpp")):
        benchmark, a, b = synthetic(name, seed + order)
        compared = compare_benchmark(benchmark, a, b, EXPECTATIONS, correction=correction)
        for index, item in enumerate(benchmark.items):
            record = compared[item.id].to_record()
            rows.append({**record, "order": index, "benchmark_order": order})
    return rows


def excludes_zero(low, high) -> bool:
    return low > 0 or high < 0


@pytest.mark.parametrize("correction", ["holm", "bh", "none"])
def test_every_record_tells_one_story(correction):
    rows = records(correction)
    assert len(rows) == 61
    verdicts = {"better": 0, "worse": 0}
    for r in rows:
        assert excludes_zero(r["ci_low"], r["ci_high"]) == (r["p_value"] < r["alpha"]), r["item"]
        assert excludes_zero(r["adjusted_ci_low"], r["adjusted_ci_high"]) == (r["adjusted_p"] < r["alpha"]), r["item"]
        expected = ("better" if r["adjusted_ci_low"] > 0 else "worse" if r["adjusted_ci_high"] < 0
                    else "no detectable difference")
        assert r["significance"] == expected, r["item"]
        verdicts[expected] = verdicts.get(expected, 0) + 1
        assert r["ci_low"] <= r["delta"] <= r["ci_high"]
        assert r["adjusted_ci_low"] <= r["ci_low"] and r["ci_high"] <= r["adjusted_ci_high"]  # adjusting only widens
        family = 1 if r["item"] == "overall" or r["benchmark"] == "mbpp" else 57 if r["benchmark"] == "mmlu" else 2
        assert r["family_size"] == family
        assert r["correction"] == (correction if family > 1 else "none")  # a word, never a fragment
        level = r["alpha"] / family if correction != "none" and family > 1 else r["alpha"]
        assert r["mde_level"] == pytest.approx(level)
    assert verdicts["better"] and verdicts["worse"] and verdicts["no detectable difference"]


def test_mde_and_power_notes_come_from_the_power_functions():
    benchmark, a, b = synthetic("mmlu", 4)
    compared = compare_benchmark(benchmark, a, b, EXPECTATIONS)
    subject = compared["anatomy"]
    paired = subject.paired
    design = pw.Design(paired.n, discordance=paired.discordance)
    assert subject.mde == pytest.approx(pw.mde(design, 0.05 / 57))
    assert subject.power_notes[0].rule == "max_regression"
    assert subject.underpowered  # a 5-point allowance cannot be checked on ~100 questions
    overall = compared["overall"]
    assert overall.mde == pytest.approx(pw.mde(pw.Design(overall.paired.n, discordance=overall.paired.discordance), 0.05))
    assert overall.adjusted_ci == (overall.paired.ci_low, overall.paired.ci_high)  # tested alone: no adjustment


def test_failure_message_is_two_to_four_short_lines():
    benchmark, a, b = synthetic("mmlu", 9, effects=(-0.4,))
    compared = compare_benchmark(benchmark, a, b, EXPECTATIONS)
    failed = [c for c in compared.values() if not c.verdict.passed]
    assert failed
    for c in failed:
        lines = c.describe().splitlines()
        assert 2 <= len(lines) <= 4 and all(len(line) <= 240 for line in lines), lines
        assert re.match(rf"mmlu\[{c.item_id}\] acc: A \(model_a\) \d+\.\d\d ± \d+\.\d\d, B \(model_b\) ", lines[0])
        assert "95% CI [" in lines[0] and "p = " in lines[0]
        if c.item_id != "overall":
            assert "holm-adjusted over 57 items: CI [" in lines[1] and "MDE" in lines[1]
        assert any(line.strip().startswith("Missed: ") for line in lines)
        with pytest.raises(AssertionError) as info:
            c.assert_meets_expectations()
        assert str(info.value) == c.describe()


def test_no_per_document_data_means_no_statistics():
    benchmark, a, b = synthetic("mbpp", 3)
    bare = [ItemScore(s.item_id, s.task, s.metric, s.value, s.stderr, s.n) for s in b.items]
    b = BenchmarkEvaluation(b.benchmark, "b", "key", b.model, tuple(bare), {}, {}, None, "0.4.13", 0.0)
    result = compare_benchmark(benchmark, a, b, NO_EXPECTATIONS)["pass@1"]
    record = result.to_record()
    assert record["p_value"] is None and record["adjusted_ci_low"] is None and record["mde"] is None
    assert record["significance"] == "n/a" and record["correction"] == "none" and not record["underpowered"]
    assert len(result.describe().splitlines()) == 1


def _numbers(pattern: str, text: str) -> list[tuple[int, ...]]:
    return [tuple(int(g) for g in m) for m in re.findall(pattern, text)]


def test_terminal_markdown_html_and_json_give_the_same_counts():
    rows = records()
    run = {"correction": "holm"}
    text = "\n".join(text_tables(rows))
    markdown = markdown_tables(rows, run)
    page = html_summary(rows, run, None)
    document = results_document(rows, run, {}, {})
    expected = []
    for name in ("mmlu", "hellaswag", "mbpp"):
        c = counts([r for r in rows if r["benchmark"] == name])
        assert c == {k: v for k, v in document["benchmarks"][name].items() if k not in ("title", "correction", "sampling_note", "impossible")}
        assert c["family"] == c["better"] + c["worse"] + c["undetermined"]
        expected.append((c["better"], c["worse"], c["undetermined"]))
    family = r"B significantly better on (\d+), worse on (\d+), no detectable difference on (\d+)"
    assert _numbers(family, text) == expected
    assert _numbers(family, markdown) == expected
    assert _numbers(r"B significantly better on <span[^>]*>(\d+)</span>, worse on <span[^>]*>(\d+)</span>, "
                    r"no detectable difference on <span[^>]*>(\d+)</span>", page) == expected
    assert _numbers(r"▲ (\d+)</span> / <span class=\"qc-worse\">▼ (\d+)</span> / <span class=\"qc-undet\">◆ (\d+)", page) == expected
    totals = [(counts([r for r in rows if r["benchmark"] == n])["passed"], counts([r for r in rows if r["benchmark"] == n])["failed"])
              for n in ("mmlu", "hellaswag", "mbpp")]
    assert _numbers(r"items?, (\d+) passed, (\d+) failed", text) == totals
    assert _numbers(r"items?, (\d+) passed, (\d+) failed", markdown) == totals
    # overall is never counted in the family: it has its own line, labelled as lm-eval's unadjusted group score
    assert "overall: lm-eval's group score, a size-weighted micro-average over all" in text
    assert "tested alone, unadjusted" in page


def test_short_summary_shows_the_numbers_of_passed_items(pytester):
    record = next(r for r in records() if r["item"] == "pass@1")
    record["passed"] = True
    pytester.makepyfile(
        test_fake=f"""
        import json
        RECORD = {json.dumps(json.dumps(record))}
        def test_item(request):
            request.node.user_properties.append(("qwencmp", RECORD))
        """
    )
    result = pytester.runpytest_inprocess("-rA", "-p", "no:cacheprovider", "-o", "console_output_style=classic")
    result.assert_outcomes(passed=1)
    out = result.stdout.str()
    line = next(line for line in out.splitlines() if line.startswith("PASSED test_fake.py::test_item"))
    assert " - B − A " in line  # the item's numbers beside its id (trimmed to the terminal width)
    assert "MBPP: 1 item, 1 passed, 0 failed" in out  # the summary table renders from the same record


def _identical(benchmark_name: str, n: int, samples: int = 1):
    """A and B answering every document alike (a quarter right), per-document values 0/1."""
    benchmark = REGISTRY.get(benchmark_name)
    answers = {i.id: (np.arange(n) % 4 == 0).astype(float) for i in benchmark.items if i.id.split(":")[0] != "overall"}
    a, b = evaluation(benchmark, "a", answers), evaluation(benchmark, "b", answers)
    if samples > 1:
        a, b = (BenchmarkEvaluation(e.benchmark, e.side, e.key, e.model, e.items, {}, {},
                                    {"do_sample": True, "temperature": 0.1}, "0.4.13", 0.0, samples=samples) for e in (a, b))
    return benchmark, a, b


@pytest.mark.parametrize("margin, passes", [(0.5, False), (4.9, False), (19.9, False), (20.1, True)])
def test_twenty_identical_documents_through_the_comparison(margin, passes):
    """Two identical models on 20 documents: the plugin's own comparison gives at least ±5 points (±20.05), and no
    non-inferiority margin below that passes; the failure message and the record show the same interval and p."""
    benchmark, a, b = _identical("mbpp", 20)
    rules = parse_expectations(f'[mbpp."pass@1"]\nnon_inferiority_margin = {margin}\n', Path("e.toml"), REGISTRY)
    result = compare_benchmark(benchmark, a, b, rules)["pass@1"]
    record = result.to_record()
    assert record["ci_low"] <= -5 and record["ci_high"] >= 5 and record["test"] == "tango-score-cc"
    assert (record["ci_low"], record["ci_high"]) == (-20.0453, 20.0453)
    key = record["keys"][0]
    assert key["key"] == "non_inferiority_margin" and key["passed"] is passes and record["passed"] is passes
    assert (key["low"], key["high"]) == (record["ci_low"], record["ci_high"])  # one 95 % interval, at the threshold too
    if not passes:
        assert f"the 95% CI starts at {key['low']:+.2f}, not above {-margin:+.2f}; p = {key['p']:.3g}" in result.describe()
        assert "Tango score (cc) p = 1" in result.describe()


def test_keys_that_can_never_pass_are_said_in_the_record_and_every_report():
    benchmark, a, b = _identical("hellaswag", 4)
    rules = parse_expectations("[hellaswag]\nmin_ci_lower = 0.0\n", Path("e.toml"), REGISTRY)
    compared = compare_benchmark(benchmark, a, b, rules)
    rows = [{**compared[i.id].to_record(), "order": k} for k, i in enumerate(benchmark.items)]
    entry = {"rule": "min_ci_lower", "value": 0.0, "n": 4, "outcome": "pass", "needed_n": 5}
    assert all(r["impossible"] == [entry] for r in rows)
    line = ("hellaswag: 2 items (acc, acc_norm): min_ci_lower 0 can never pass at n = 4, whatever the models answer "
            "(needs n ≥ 5)")
    assert line in markdown_tables(rows, {})
    assert line in html_summary(rows, {}, None)
    assert results_document(rows, {}, {}, {})["benchmarks"]["hellaswag"]["impossible"] == [line]
    assert "At this size: min_ci_lower 0 can never pass at n = 4" in compared["acc"].describe()


def test_several_samples_per_problem_use_the_permutation_test_and_say_so_once():
    benchmark, a, b = _identical("mbpp", 30, samples=5)
    result = compare_benchmark(benchmark, a, b, NO_EXPECTATIONS)["pass@1"]
    record = result.to_record()
    assert record["test"] == "paired-permutation"  # values of 0 and 1 here, but means of 5 samples: not a 0/1 table
    assert record["sampling"] == {"temperature": 0.1, "samples": 5}
    rows = [{**record, "order": 0}]
    note = "pass@1 is c/K per problem over K = 5 sampled answers (temperature 0.1"
    assert "\n".join(text_tables(rows)).count(note) == 1
    assert markdown_tables(rows, {}).count(note) == 1
    assert html_summary(rows, {}, None).count(note) == 1
    assert results_document(rows, {}, {}, {})["benchmarks"]["mbpp"]["sampling_note"].startswith(note)
    one = compare_benchmark(*_identical("mbpp", 30, samples=1)[:1], *_identical("mbpp", 30)[1:], NO_EXPECTATIONS)
    assert one["pass@1"].to_record()["sampling"] is None  # greedy (no gen_kwargs): nothing to say
