"""Expectations files: parsing, validation messages and resolution (how the rules are decided: tests/stats/test_rules.py)."""

from pathlib import Path

import pytest

from pytest_qwencmp.config.benchmarks import builtin_registry
from pytest_qwencmp.errors import QwencmpError
from pytest_qwencmp.config.expectations import Expectation, load_expectations, parse_expectations

REPO = Path(__file__).resolve().parents[2]
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
        ("[mmlu]\nmax_regression = -5\n", "'mmlu.max_regression' = -5 is out of range [0, 100]"),
        ("[hellaswag.acc]\nnon_inferiority_margin = 'two'\n", "'hellaswag.acc.non_inferiority_margin' must be a number"),
        ("[mmlu]\nmax_regresion = 5\n", "unknown key 'mmlu.max_regresion'"),
        ("mmlu = 3\n", "top-level key 'mmlu' must be a benchmark table"),
    ],
)
def test_malformed_files_name_file_key_and_problem(text, fragment):
    with pytest.raises(QwencmpError) as info:
        parse(text)
    assert fragment in info.value.message


@pytest.mark.parametrize("name", ["expectations.toml", "demo-expectations.toml", "everyday-expectations.toml"])
def test_shipped_expectation_files_are_valid(name):
    path = REPO / "evals" / name
    if not path.exists():
        pytest.skip(f"{name} not present")
    e = load_expectations(path, REGISTRY)
    assert not e.for_item("mmlu", "overall").is_empty()


def test_no_file_means_no_expectations():
    e = load_expectations(None, REGISTRY)
    assert e.for_item("mmlu", "overall").is_empty()
