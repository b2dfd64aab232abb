"""MMLU: one item per subject (57) plus `overall`, scored by lm-eval's acc."""

import pytest


@pytest.mark.qwencmp("mmlu")
def test_mmlu(comparison):
    comparison.assert_meets_expectations()
