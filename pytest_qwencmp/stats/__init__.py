"""stats — the public statistics API: paired tests and intervals, multiplicity, power, rules, planning.

Owns every number that turns two models' per-document scores into a verdict:
``paired_binary`` (paired_binary_ci, paired_binary_test: Tango's score interval
and test for paired 0/1 scores, in points, numpy elementwise), ``paired``
(score_of, paired_test, compare_paired: that test per item, and a seeded
sign-flip permutation test for other metrics, each with the interval that
inverts it at any threshold), ``keys`` (what each threshold key tests;
decide_key), ``multiplicity`` (adjust_family: a family's one-sided p-values
adjusted, with interval levels that agree; adjust_items, verdict), ``power``
(power, MDE), ``rules`` (each key decided at its threshold in its family, and
how powerful it is) and ``planning`` (what each item can detect given its n,
and which keys can never pass or fail). Scores are fractions in ``paired``;
``paired_binary``, ``keys``, reports and expectations speak percentage points
(``POINTS`` = 100). Imports only numpy, scipy.special and ``config``. Usable on
its own, e.g. in a notebook::

    from pytest_qwencmp.stats import paired_binary_ci, compare_paired, adjust_family, mde
"""

from .keys import decide_key, key_threshold
from .multiplicity import CORRECTIONS, Adjusted, adjust_family, adjust_items, adjust_p_values, verdict
from .paired import (
    POINTS,
    TEST_NAMES,
    PairedComparison,
    PairedTest,
    Score,
    compare_paired,
    compare_unpaired,
    paired_test,
    score_of,
)
from .paired_binary import key_verdict, paired_binary_ci, paired_binary_test
from .power import Design, mde, mde_level

__all__ = [
    "Adjusted",
    "CORRECTIONS",
    "Design",
    "POINTS",
    "PairedComparison",
    "PairedTest",
    "Score",
    "TEST_NAMES",
    "adjust_family",
    "adjust_items",
    "adjust_p_values",
    "compare_paired",
    "compare_unpaired",
    "decide_key",
    "key_threshold",
    "key_verdict",
    "mde",
    "mde_level",
    "paired_binary_ci",
    "paired_binary_test",
    "paired_test",
    "score_of",
    "verdict",
]
