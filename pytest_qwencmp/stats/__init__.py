"""stats — the public statistics API: paired tests and intervals, multiplicity, power, rules, planning.

Owns every number that turns two models' per-document scores into a verdict:
``paired`` (score_of, paired_test, compare_paired: the exact McNemar test and a
seeded sign-flip permutation test, each with the interval that inverts it),
``multiplicity`` (adjust_family: one benchmark's items adjusted together;
adjust_p_values, family_levels, verdict), ``power`` (power, MDE), ``rules``
(how each expectation key is decided, and how powerful it is at an item's
size) and ``planning`` (what each item can detect given its n). Scores are
fractions; ``POINTS`` (100) turns them into percentage points. Imports only
numpy, scipy.special and ``config``. Usable on its own, e.g. in a notebook::

    from pytest_qwencmp.stats import compare_paired, adjust_family, mde
"""

from .multiplicity import CORRECTIONS, Adjusted, adjust_family, adjust_p_values, family_levels, verdict
from .paired import (
    POINTS,
    PairedComparison,
    PairedTest,
    Score,
    compare_paired,
    compare_unpaired,
    paired_test,
    score_of,
)
from .power import Design, mde, mde_level

__all__ = [
    "Adjusted",
    "CORRECTIONS",
    "Design",
    "POINTS",
    "PairedComparison",
    "PairedTest",
    "Score",
    "adjust_family",
    "adjust_p_values",
    "compare_paired",
    "compare_unpaired",
    "family_levels",
    "mde",
    "mde_level",
    "paired_test",
    "score_of",
    "verdict",
]
