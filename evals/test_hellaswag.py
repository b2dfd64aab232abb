"""HellaSwag: one item per metric, acc and acc_norm."""

import pytest


@pytest.mark.qwencmp("hellaswag")
def test_hellaswag(comparison):
    comparison.assert_meets_expectations()
