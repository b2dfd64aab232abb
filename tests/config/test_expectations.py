"""Expectations files: parsing, validation messages, resolution and checks."""

from pathlib import Path

import pytest

from pytest_qwencmp.stats import power as pw
from pytest_qwencmp.config.benchmarks import builtin_registry
from pytest_qwencmp.errors import QwencmpError
from pytest_qwencmp.config.expectations import Expectation, load_expectations, parse_expectations
from pytest_qwencmp.stats.rules import assess, check
from pytest_qwencmp.stats.paired import clopper_pearson_delta

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


@pytest.mark.parametrize("name", ["expectations.toml", "demo-expectations.toml"])
def test_shipped_expectation_files_are_valid(name):
    path = REPO / "evals" / name
    if not path.exists():
        pytest.skip(f"{name} not present")
    e = load_expectations(path, REGISTRY)
    assert not e.for_item("mmlu", "overall").is_empty()


STUDY = {  # (A, B, n, level of the item's adjusted interval: Holm's α/57 for one subject alone, α/2, α)
    ("mmlu", "overall"): (59.74, 71.90, 14_042, 0.05),
    ("mmlu", "abstract_algebra"): (35.00, 54.00, 100, 0.05 / 57),
    ("mmlu", "professional_law"): (59.74, 71.90, 1_534, 0.05 / 57),
    ("hellaswag", "acc"): (50.24, 60.01, 10_042, 0.025),
    ("hellaswag", "acc_norm"): (67.75, 78.93, 10_042, 0.025),
    ("mbpp", "pass@1"): (46.00, 62.20, 500, 0.05),
}


def typical_result(a: float, b: float, n: int, level: float, discordance: float = 0.25):
    """The check's inputs for the expected 2x2 table of A and B (points), as the run computes them."""
    b_only = round(n * (discordance + (b - a) / 100) / 2)
    a_only = round(n * discordance) - b_only
    low, _ = clopper_pearson_delta(b_only, a_only, n, 0.05)
    adjusted = clopper_pearson_delta(b_only, a_only, n, level)
    delta = (b_only - a_only) / n * 100
    return dict(ci_lower=low * 100, adjusted_ci=(adjusted[0] * 100, adjusted[1] * 100),
                significantly_worse=adjusted[1] < 0), a, a + delta


def test_reference_study_passes_its_own_expectations_and_a_regression_fails():
    e = load_expectations(REPO / "evals" / "expectations.toml", REGISTRY)
    for (bench, item), (a, b, n, level) in STUDY.items():
        inputs, score_a, score_b = typical_result(a, b, n, level)
        assert check(e.for_item(bench, item), score_a, score_b, **inputs).passed, (bench, item)
        # B falling back to A's level fails every claim of an improvement; a subject fails only a large regression
        inputs, score_a, score_b = typical_result(a, a, n, level)
        assert check(e.for_item(bench, item), score_a, score_b, **inputs).passed == (bench == "mmlu" and item != "overall")
        inputs, score_a, score_b = typical_result(a, a - 25, n, level)
        assert not check(e.for_item(bench, item), score_a, score_b, **inputs).passed, (bench, item)
    # a 7B that lost 3 points of MMLU overall (still +9.16) misses "confidently better by 9.5"
    inputs, score_a, score_b = typical_result(59.74, 68.90, 14_042, 0.05)
    assert not check(e.for_item("mmlu", "overall"), score_a, score_b, **inputs).passed


def test_regression_keys_use_the_adjusted_interval():
    x = Expectation(max_regression=5.0)
    assert check(x, 60, 50, adjusted_ci=(-15.0, -5.5)).failures == (
        "B significantly worse by more than 5.00 points (adjusted CI [-15.00, -5.50] lies below -5.00)",
    )
    assert check(x, 60, 50, adjusted_ci=(-15.0, -4.0)).passed  # could be a regression of only 4: not shown beyond 5
    assert "needs per-document data" in check(x, 60, 50).failures[0]
    m = Expectation(non_inferiority_margin=2.0)
    assert check(m, 60, 60, adjusted_ci=(-1.5, 1.5)).passed
    assert check(m, 60, 60, adjusted_ci=(-2.0, 1.5)).failures == (
        "B not shown within 2.00 points of A (adjusted CI starts at -2.00, not above -2.00)",
    )


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
    assert "catches a true regression of 20.0 points or more with 80% power" in small["no_significant_regression"].text
    assert small["max_regression"].needed_n == 1_658 and small["max_regression"].text.endswith("— underpowered")
    assert [rule for rule, n in large.items() if n.underpowered] == ["min_improvement"]  # a coin flip at any n
    assert large["min_improvement"].needed_n is None
    # the needed n is the smallest at which the rule stops being underpowered
    at_needed = assess(Expectation(max_regression=5.0), pw.Design(1_658, discordance=0.25), alpha=0.05,
                       family_level=0.05 / 57)
    below = assess(Expectation(max_regression=5.0), pw.Design(1_657, discordance=0.25), alpha=0.05,
                   family_level=0.05 / 57)
    assert not at_needed[0].underpowered and below[0].underpowered


def test_check_reports_every_missed_rule():
    rule = Expectation(min_improvement=5, floor_a=50, floor_b=60, min_ci_lower=1, no_significant_regression=True,
                       max_regression=1, non_inferiority_margin=1)
    verdict = check(rule, 40.0, 42.0, ci_lower=-1.0, significantly_worse=True, adjusted_ci=(-9.0, -2.0))
    assert not verdict.passed
    assert len(verdict.failures) == 7
    assert "improvement +2.00 is below the required +5.00 points" in verdict.failures[0]
    assert check(rule, 55.0, 65.0, ci_lower=2.0, adjusted_ci=(1.0, 19.0)).passed


def test_no_file_means_no_expectations():
    e = load_expectations(None, REGISTRY)
    assert e.for_item("mmlu", "overall").is_empty()
    assert check(e.for_item("mmlu", "overall"), 50, 10).passed
