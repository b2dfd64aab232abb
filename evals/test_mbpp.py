"""MBPP: pass@1 of 2-shot generations, executed in the plugin's sandbox."""

import pytest


@pytest.mark.qwencmp("mbpp")
def test_mbpp(comparison):
    comparison.assert_meets_expectations()
