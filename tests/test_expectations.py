"""Expectations files: parsing, validation messages, resolution and checks."""

from pathlib import Path

import pytest

from pytest_qwencmp.benchmarks import builtin_registry
from pytest_qwencmp.errors import QwencmpError
from pytest_qwencmp.expectations import Expectation, check, load_expectations, parse_expectations

REPO = Path(__file__).resolve().parents[1]
REGISTRY = builtin_registry()


def parse(text):
    return parse_expectations(text, Path("exp.toml"), REGISTRY)


def test_item_overrides_benchmark_overrides_defaults():
    e = parse(
        """
        [defaults]
        no_significant_regression = true
        min_improvement = 0
        [mmlu]
        min_improvement = -5
        [mmlu.overall]
        min_improvement = 10.5
        floor_b = 70
        """
    )
    assert e.for_item("mmlu", "overall") == Expectation(
        min_improvement=10.5, floor_b=70.0, no_significant_regression=True, source="exp.toml: [mmlu.overall]"
    )
    assert e.for_item("mmlu", "anatomy").min_improvement == -5.0
    assert e.for_item("hellaswag", "acc").min_improvement == 0.0


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("[mmlu\n", "exp.toml is not valid TOML"),
        ("[mmlu]\nmin_improvment = 1\n", "unknown key 'mmlu.min_improvment'"),
        ("[arc]\nfloor_a = 1\n", "[arc] is not a known benchmark"),
        ("[mmlu.anatomyy]\nfloor_a = 1\n", "[mmlu.anatomyy] names no item of mmlu; did you mean anatomy"),
        ("[hellaswag.acc]\nfloor_a = 0.5974\nfloor_b = 101\n", "'hellaswag.acc.floor_b' = 101 is out of range"),
        ("[mbpp.'pass@1']\nmin_improvement = 'ten'\n", "'mbpp.pass@1.min_improvement' must be a number"),
        ("[defaults]\nno_significant_regression = 1\n", "must be true or false"),
        ("mmlu = 3\n", "top-level key 'mmlu' must be a benchmark table"),
    ],
)
def test_malformed_files_name_file_key_and_problem(text, fragment):
    with pytest.raises(QwencmpError) as info:
        parse(text)
    assert fragment in info.value.message


@pytest.mark.parametrize("name", ["expectations.toml", "demo-expectations.toml"])
def test_shipped_expectation_files_are_valid(name):
    path = REPO / "evals" / name
    if not path.exists():
        pytest.skip(f"{name} not present")
    e = load_expectations(path, REGISTRY)
    assert not e.for_item("mmlu", "overall").is_empty()


def test_reference_study_passes_its_own_expectations_and_a_regression_fails():
    e = load_expectations(REPO / "evals" / "expectations.toml", REGISTRY)
    study = {
        ("mmlu", "overall"): (59.74, 71.90),
        ("mmlu", "abstract_algebra"): (35.00, 54.00),
        ("mmlu", "anatomy"): (71.05, 83.55),
        ("mmlu", "astronomy"): (61.00, 76.00),
        ("hellaswag", "acc"): (50.24, 60.01),
        ("hellaswag", "acc_norm"): (67.75, 78.93),
        ("mbpp", "pass@1"): (46.00, 62.20),
    }
    for (bench, item), (a, b) in study.items():
        assert check(e.for_item(bench, item), a, b).passed, (bench, item)
        # B falling back to A's level is a real regression of the claim "7B beats 1.5B"
        assert not check(e.for_item(bench, item), a, a).passed or item in {"abstract_algebra", "anatomy", "astronomy"}
    # a 7B that lost 3 points of MMLU overall fails
    assert not check(e.for_item("mmlu", "overall"), 59.74, 68.90).passed


def test_check_reports_every_missed_rule():
    rule = Expectation(min_improvement=5, floor_a=50, floor_b=60, min_ci_lower=1, no_significant_regression=True)
    verdict = check(rule, 40.0, 42.0, ci_lower=-1.0, significantly_worse=True)
    assert not verdict.passed
    assert len(verdict.failures) == 5
    assert "improvement +2.00 is below the required +5.00 points" in verdict.failures[0]
    assert check(rule, 55.0, 65.0, ci_lower=2.0).passed


def test_no_file_means_no_expectations():
    e = load_expectations(None, REGISTRY)
    assert e.for_item("mmlu", "overall").is_empty()
    assert check(e.for_item("mmlu", "overall"), 50, 10).passed
