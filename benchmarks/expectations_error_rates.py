"""Error rates of an expectations file, by simulation through the plugin's own statistics (a script, not a test).

Run: .venv/bin/python benchmarks/expectations_error_rates.py [--expectations FILE ...] [--reps 20000]
     .venv/bin/python benchmarks/expectations_error_rates.py --everyday   (derive evals/everyday-expectations.toml)

Per item the two models' 0/1 answers are simulated with the real dataset sizes
(``config/dataset_sizes.toml``: MMLU's 57 subject sizes, HellaSwag 10,042, MBPP
500): a document is discordant with probability r (the discordance), and a
discordant document favours B with probability (r + Δ)/(2r). Every simulated
result is decided exactly as the run decides it: each threshold key by the
one-sided score test of its own threshold (``paired_binary_test``, the
function behind ``PairedTest.tails``), adjusted in its key's family
(``rules.key_families``, ``multiplicity.adjust_family``, Holm), floors and
``min_improvement`` on the scores (``rules.check``'s comparisons). ``--check``
(on by default, 8 reruns) runs the same simulated answers through the real
``comparison.compare_benchmark`` and stops if any verdict differs.

Scenarios, each at discordance r ∈ {0.2, 0.25, 0.3} (the range measured for
checkpoints about 10 MMLU points apart and for fine-tunes against their base;
the rates are given as "central (range over r)"):

* **rerun of the study** (Qwen2.5-1.5B → 7B, lm-eval FP16): the TRUE accuracies
  are drawn per simulated rerun from the study's own uncertainty, not taken
  as its point estimates: (A, B − A) ~ bivariate normal around the study's
  numbers with A's stderr, the paired stderr of B − A, sqrt((r − Δ²)/n), and
  the correlation that makes B's stderr the study's — the study was itself one
  draw, so a rerun differs from it by both. MMLU subjects without
  numbers of their own (54 of 57) take MMLU overall's A and B − A, with their
  own sizes' uncertainty. overall is the size-weighted sum of the subjects, as
  lm-eval computes it. ``--point-truth`` uses the point estimates (the old way).
* **equivalent models** (B ≡ A: true Δ = 0 on every item, A's accuracy as in
  the study): the family-wise rate at which the file fails two equivalent
  checkpoints — what the everyday file is derived for (≤ 1 %).
* **a true 5-point regression** on one item (everything else as in the study):
  the rate at which that item still passes.

acc and acc_norm are simulated independently (they share documents in
reality, which only lowers the family-wise rate). ``--everyday`` derives the
everyday file's margins: for each aggregate item the smallest margin on a
half-point grid whose exact false-failure probability for equivalent models
(``power.power``, the run's own test, at the worst r = 0.3) is within its share
of a 1 % budget, then simulates the whole file. In a Holm family of m the
level is α/m either way: a non-inferiority margin must at worst clear it (the
first step), and a regression allowance, with every null true, is rejected
nowhere unless some p-value falls below α/m first (so the family's false
failures are at most the sum over its items at α/m).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pytest_qwencmp.comparison import compare_benchmark  # noqa: E402
from pytest_qwencmp.config.benchmarks import OVERALL, load_registry  # noqa: E402
from pytest_qwencmp.config.expectations import Expectations, load_expectations  # noqa: E402
from pytest_qwencmp.evaluation.scores import BenchmarkEvaluation, ItemScore  # noqa: E402
from pytest_qwencmp.lmeval.sizes import TaskSizes  # noqa: E402
from pytest_qwencmp.stats import power as pw  # noqa: E402
from pytest_qwencmp.stats.keys import KEYS, key_threshold  # noqa: E402
from pytest_qwencmp.stats.multiplicity import ALPHA, adjust_family  # noqa: E402
from pytest_qwencmp.stats.paired_binary import paired_binary_test  # noqa: E402
from pytest_qwencmp.stats.rules import key_families  # noqa: E402

STUDY = {  # (A, A stderr, B, B stderr) in points, lm-eval FP16, Qwen2.5-1.5B → 7B; stderr from n where not reported
    ("mmlu", OVERALL): (59.74, 0.39, 71.90, 0.35),
    ("mmlu", "abstract_algebra"): (35.00, None, 54.00, None),
    ("mmlu", "anatomy"): (71.05, None, 83.55, None),
    ("mmlu", "astronomy"): (61.00, None, 76.00, None),
    ("hellaswag", "acc"): (50.24, 0.50, 60.01, 0.49),
    ("hellaswag", "acc_norm"): (67.75, 0.47, 78.93, 0.41),
    ("mbpp", "pass@1"): (46.00, 2.23, 62.20, 2.17),
}
DISCORDANCES = (0.2, 0.25, 0.3)
REGRESSION = 5.0
EVERYDAY_BUDGET = 0.01  # family-wise false failures of two equivalent models, at the worst r
# The everyday file's aggregate claims and how the 1 % is shared: (benchmark, items, key, share of the budget).
EVERYDAY_CLAIMS = (
    ("mmlu", (OVERALL,), "non_inferiority_margin", 0.3),
    ("hellaswag", ("acc", "acc_norm"), "non_inferiority_margin", 0.3),
    ("mbpp", ("pass@1",), "max_regression", 0.3),
    ("mmlu", "subjects", "max_regression", 0.1),
)


class Suite:
    """One benchmark's items, sizes and study numbers."""

    def __init__(self, benchmark, sizes):
        self.benchmark = benchmark
        self.items = benchmark.items
        self.family = [i for i in self.items if i.id.split(":")[0] != OVERALL]
        self.sizes = sizes

    @property
    def name(self) -> str:
        return self.benchmark.name

    def n(self, item) -> int:
        return sum(self.sizes.values()) if item not in self.family else self.sizes[item.task]

    def study(self, item) -> tuple[float, float, float, int]:
        """(A, A's stderr, B − A, n) in points; subjects without numbers of their own take MMLU overall's."""
        a, a_se, b, _ = STUDY.get((self.name, item.id), STUDY[("mmlu", OVERALL)] if self.name == "mmlu" else None)
        n = self.n(item)
        if a_se is None or (self.name == "mmlu" and (self.name, item.id) not in STUDY):
            a_se = 100 * math.sqrt(a / 100 * (1 - a / 100) / n)
        return a, a_se, b - a, n

    def b_stderr(self, item) -> float:
        """B's stderr in points: the study's, or the binomial one at the item's size."""
        a, _, delta, n = self.study(item)
        reported = STUDY.get((self.name, item.id), (None,) * 4)[3]
        return reported if reported is not None else 100 * math.sqrt((a + delta) / 100 * (1 - (a + delta) / 100) / n)

    def truth_spread(self, item, r: float) -> tuple[float, float, float]:
        """(sd of A, sd of B − A, their correlation) of the study's estimates (fractions), at discordance r.

        A and B were scored on the same documents: var(B) = var(A) + var(B − A) + 2 cov(A, B − A), with
        var(B − A) the paired (r − Δ²)/n; the study's stderrs of A and B give the covariance.
        """
        _, a_se, delta, n = self.study(item)
        var_a, var_b = (a_se / 100) ** 2, (self.b_stderr(item) / 100) ** 2
        var_d = max(r - (delta / 100) ** 2, 1e-9) / n
        rho = (var_b - var_a - var_d) / 2 / math.sqrt(var_a * var_d)
        return math.sqrt(var_a), math.sqrt(var_d), max(-0.99, min(0.99, rho))

    def simulate(self, r: float, reps: int, rng, *, truth: str = "study", shifted: str | None = None,
                 shift: float = 0.0) -> dict[str, np.ndarray]:
        """Per item, ``reps × 3`` counts (b_only, a_only, both); ``overall`` the sum over the subjects.

        ``truth``: ``"study"`` draws each rerun's true A and B − A from the study's uncertainty, ``"point"``
        takes the study's numbers, ``"equal"`` B ≡ A. ``shifted``: the item (``"*"`` all) whose true B − A is
        ``shift`` (points) instead.
        """
        counts = {}
        for item in self.family:
            a, a_se, delta, n = self.study(item)
            pa = np.full(reps, a / 100)
            d = np.full(reps, 0.0 if truth == "equal" else delta / 100)
            if truth == "study":  # the truth drawn jointly from the study's uncertainty of A and of B − A
                sd_a, sd_d, rho = self.truth_spread(item, r)
                z1, z2 = rng.standard_normal(reps), rng.standard_normal(reps)
                pa = pa + sd_a * z1
                d = d + sd_d * (rho * z1 + math.sqrt(1 - rho * rho) * z2)
            if shifted in (item.id, OVERALL, "*"):  # overall is the sum of the subjects: shift them all
                d = np.full(reps, shift / 100)
            d = np.clip(d, -r, r)
            q_a = (r - d) / 2
            pa = np.clip(pa, q_a, 1 - r + q_a)  # A's accuracy must leave room for the discordant documents
            m = rng.binomial(n, r, reps)
            b = rng.binomial(m, (r + d) / (2 * r))
            both = rng.binomial(n - m, np.clip((pa - q_a) / (1 - r), 0, 1))
            counts[item.id] = np.stack([b, m - b, both], axis=1)
        for item in self.items:
            if item not in self.family:
                counts[item.id] = sum(counts[i.id] for i in self.family)
        return counts


def failures(suite: Suite, counts: dict[str, np.ndarray], expectations: Expectations, correction: str,
             only: str | None = None) -> dict[str, np.ndarray]:
    """Per item (or just ``only``), a boolean array over reps: did the item fail, decided as the run decides it."""
    rule = {i.id: expectations.for_item(suite.name, i.id) for i in suite.items}
    n = {i.id: suite.n(i) for i in suite.items}
    reps = next(iter(counts.values())).shape[0]
    failed = {i.id: np.zeros(reps, dtype=bool) for i in suite.items}
    for item in suite.items:
        e, (b, c, both) = rule[item.id], counts[item.id].T
        score_a, score_b = 100 * (both + c) / n[item.id], 100 * (both + b) / n[item.id]
        bad = np.zeros(reps, dtype=bool)
        if e.min_improvement is not None:
            bad |= ~(score_b - score_a >= e.min_improvement)
        if e.floor_a is not None:
            bad |= ~(score_a >= e.floor_a)
        if e.floor_b is not None:
            bad |= ~(score_b >= e.floor_b)
        failed[item.id] |= bad
    for key in KEYS:
        carrying = [i.id for i in suite.items if getattr(rule[i.id], key) is not None]
        for family in key_families(carrying, key):
            if only is not None and only not in family:
                continue
            method = correction if len(family) > 1 else "none"
            p = []
            for item_id in family:
                t, side = key_threshold(key, getattr(rule[item_id], key))
                b, c, _ = counts[item_id].T
                p.append(paired_binary_test(b, c, n[item_id], t, side))
            p = np.stack(p, axis=1)
            if len(family) == 1:
                significant = p < ALPHA
            else:
                significant = np.array([adjust_family(row, method, ALPHA)[0] for row in p]) < ALPHA
            passed = significant if KEYS[key][1] == "greater" else ~significant
            for j, item_id in enumerate(family):
                failed[item_id] |= ~passed[:, j]
    if any(rule[i.id].no_significant_regression for i in suite.items):
        raise SystemExit("no_significant_regression is not simulated here; use max_regression = 0")
    return failed if only is None else {only: failed[only]}


def check_against_the_plugin(suite: Suite, expectations: Expectations, correction: str, reps: int, rng) -> int:
    """The same simulated answers through ``compare_benchmark``: every verdict must equal :func:`failures`'s."""
    counts = suite.simulate(0.25, reps, rng)
    expected = failures(suite, counts, expectations, correction)
    for rep in range(reps):
        evaluations = []
        for side in ("a", "b"):
            items, all_keys, all_values = [], [], []
            for item in suite.family:
                b, c, both = counts[item.id][rep]
                n = suite.n(item)
                a_values = [0.0] * b + [1.0] * c + [1.0] * both + [0.0] * (n - b - c - both)
                b_values = [1.0] * b + [0.0] * c + [1.0] * both + [0.0] * (n - b - c - both)
                values = a_values if side == "a" else b_values
                keys = tuple(f"{item.task}/{k}" for k in range(n))
                items.append(ItemScore(item.id, item.task, item.metric, float(np.mean(values)), None, n, keys, tuple(values)))
                all_keys += keys
                all_values += values
            for item in suite.items:
                if item not in suite.family:
                    items.append(ItemScore(item.id, item.task, item.metric, float(np.mean(all_values)), None,
                                           len(all_values), tuple(all_keys), tuple(all_values)))
            evaluations.append(BenchmarkEvaluation(suite.name, side, "", {"label": side}, tuple(items), {}, {}, None, "", 0.0))
        compared = compare_benchmark(suite.benchmark, *evaluations, expectations, correction=correction)
        for item in suite.items:
            if compared[item.id].verdict.passed == bool(expected[item.id][rep]):
                raise SystemExit(f"the simulation's decision differs from the plugin's on {suite.name}[{item.id}], "
                                 f"rerun {rep}: {compared[item.id].verdict}")
    return reps * len(suite.items)


def rate(x: np.ndarray) -> str:
    return f"{100 * float(np.mean(x)):.2f} %"


def measure(path: Path, suites: list[Suite], registry, args) -> dict[str, float]:
    """Print a file's error rates; returns the family-wise rates per scenario and r."""
    started = time.perf_counter()
    expectations = load_expectations(path, registry)
    rng = np.random.default_rng(args.seed)
    if args.check:
        checked = sum(check_against_the_plugin(s, expectations, args.correction, args.check, rng) for s in suites)
        print(f"\n== {path.name}: {checked} simulated verdicts equal compare_benchmark's")
    summary: dict[str, float] = {}
    per_item: dict[tuple[str, str], dict[str, float]] = {}
    truth = "point" if args.point_truth else "study"
    for r in DISCORDANCES:
        rerun_any = np.zeros(args.reps, dtype=bool)
        equal_any = np.zeros(args.reps, dtype=bool)
        for suite in suites:
            rerun = failures(suite, suite.simulate(r, args.reps, rng, truth=truth), expectations, args.correction)
            equal = failures(suite, suite.simulate(r, args.reps, rng, truth="equal"), expectations, args.correction)
            for item in suite.items:
                rerun_any |= rerun[item.id]
                equal_any |= equal[item.id]
                row = per_item.setdefault((suite.name, item.id), {})
                row[f"rerun {r}"] = float(np.mean(rerun[item.id]))
                row[f"equal {r}"] = float(np.mean(equal[item.id]))
                if r == 0.25 and args.regression_reps:
                    shifted = suite.simulate(r, args.regression_reps, rng, truth=truth, shifted=item.id, shift=-REGRESSION)
                    row["regression passes"] = 1.0 - float(np.mean(
                        failures(suite, shifted, expectations, args.correction, only=item.id)[item.id]))
        summary[f"rerun {r}"], summary[f"equal {r}"] = float(np.mean(rerun_any)), float(np.mean(equal_any))
    se = math.sqrt(0.01 * 0.99 / args.reps)
    print(f"\n== {path} ({time.perf_counter() - started:.0f} s; {args.reps:,} simulated runs per scenario and r; "
          f"Monte Carlo s.e. ≈ {100 * se:.2f} points at 1 %)")
    for scenario, words in (("rerun", f"a rerun of the study fails the file ({'truth = the study' if args.point_truth else 'truth drawn from the study'}'s uncertainty)"),
                            ("equal", "two equivalent models (B ≡ A) fail the file")):
        values = [summary[f"{scenario} {r}"] for r in DISCORDANCES]
        print(f"{words}: {100 * summary[f'{scenario} 0.25']:.2f} % at r = 0.25 "
              f"({100 * min(values):.2f}–{100 * max(values):.2f} % for r = 0.2–0.3)")
    sep = " | " if args.markdown else "  "
    header = ("item", "n", "rerun fails (r 0.2–0.3)", "B ≡ A fails (r 0.2–0.3)", f"true −{REGRESSION:g} passes (r 0.25)",
              "MDE (r 0.25)")
    if args.markdown:
        print("| " + " | ".join(header) + " |")
        print("|" + "|".join([":---"] + ["---:"] * (len(header) - 1)) + "|")
    else:
        print(sep.join(header))
    for suite in suites:
        for item in suite.items:
            row = per_item[(suite.name, item.id)]
            alone = item not in suite.family
            level = pw.mde_level(2 * ALPHA, "none" if alone else args.correction, 1 if alone else len(suite.family))
            mde = pw.mde(pw.Design(suite.n(item), discordance=0.25), level)
            if not args.all_items and suite.name == "mmlu" and not alone and (suite.name, item.id) not in STUDY \
                    and item.id not in ("high_school_psychology", "professional_law"):
                continue
            cells = (f"{suite.name}[{item.id}]", f"{suite.n(item):,}",
                     _range([row[f"rerun {r}"] for r in DISCORDANCES]), _range([row[f"equal {r}"] for r in DISCORDANCES]),
                     "—" if "regression passes" not in row else f"{100 * row['regression passes']:.1f} %",
                     "none" if mde is None else f"±{100 * mde:.1f}")
            print(("| " + " | ".join(cells) + " |") if args.markdown else sep.join(cells))
    return summary


def _range(values: list[float]) -> str:
    low, high = 100 * min(values), 100 * max(values)
    return f"{low:.2f} %" if f"{low:.2f}" == f"{high:.2f}" else f"{low:.2f}–{high:.2f} %"


def derive_everyday(suites: list[Suite], correction: str) -> dict[tuple[str, str], tuple[str, float]]:
    """The everyday file's margins: per claim the smallest half-point margin within its share of the 1 % budget."""
    by_name = {s.name: s for s in suites}
    chosen: dict[tuple[str, str], tuple[str, float]] = {}
    r = max(DISCORDANCES)
    print(f"\n== deriving the everyday file: equivalent models (true Δ = 0), r = {r} (the worst of 0.2–0.3), "
          f"budget {100 * EVERYDAY_BUDGET:g} % family-wise")
    for benchmark, items, key, share in EVERYDAY_CLAIMS:
        suite = by_name[benchmark]
        members = [i for i in suite.family] if items == "subjects" else [suite.benchmark.item(i) for i in items]
        alone = items != "subjects" and all(m not in suite.family for m in members)
        family_size = 1 if alone else len(members)
        budget = EVERYDAY_BUDGET * share / len(members)
        level = 2 * ALPHA / family_size

        def wrong(margin: float, r: float) -> float:
            """The largest false-failure probability over the claim's items at this margin and r."""
            worst = 0.0
            for item in members:
                design = pw.Design(suite.n(item), discordance=r)
                if key == "non_inferiority_margin":  # fails unless the low bound clears −M, at worst at Holm's α/m
                    worst = max(worst, 1.0 - pw.power(design, 0.0, level, threshold=-margin / 100, side=1))
                else:  # max_regression: with every null true, Holm rejects nothing unless some p < α/m first
                    worst = max(worst, pw.power(design, 0.0, level, threshold=-margin / 100, side=-1))
            return worst

        margin = 0.0
        while wrong(margin, r) > budget:
            margin += 0.5
        names = "every subject" if items == "subjects" else ", ".join(f"{benchmark}[{i}]" for i in items)
        caught = []
        by_size = sorted(members, key=suite.n)
        for item in (by_size[:1] + by_size[-1:] if items == "subjects" else members[:1]):
            found = pw.detectable(pw.Design(suite.n(item), discordance=0.25), level, threshold=-margin / 100,
                                  side=-1 if key == "max_regression" else 1)
            caught.append(f"n = {suite.n(item):,}: " + ("none" if found is None else f"{100 * found:+.1f}"))
        what = "true B − A failing it with 80 % power" if key == "max_regression" else "true B − A passing it with 80 % power"
        print(f"  {names}: {key} = {margin:g} — an equivalent B fails it {_range([wrong(margin, x) for x in DISCORDANCES])} "
              f"per item for r = 0.2–0.3 (its share: {100 * budget:.3f} %); {what} (r 0.25): {'; '.join(caught)}")
        for item in members:
            chosen[(benchmark, item.id)] = (key, margin)
    return chosen


def _truth_weights(mean: float, sd: float, nodes: int = 24) -> tuple[np.ndarray, np.ndarray]:
    """Gauss–Hermite nodes and weights for E[f(X)], X ~ N(mean, sd)."""
    x, w = np.polynomial.hermite_e.hermegauss(nodes)
    return mean + sd * x, w / w.sum()


def replication_failures(suite: Suite, item, key: str, value: float, r: float) -> float:
    """P(an independent evaluation of the study's two models fails ``key = value`` on ``item``), exactly.

    The truth is drawn from the study's uncertainty (module docstring): for a floor, a score is the truth
    ~ N(study, stderr) plus the evaluation's own sampling, so ~ N(study, √2·stderr); for a key, the power
    of the run's own test (``power.power``) averaged over the true B − A ~ N(study Δ, paired stderr).
    """
    a, a_se, delta, n = suite.study(item)
    if key in ("floor_a", "floor_b"):
        mean, sd = (a, a_se) if key == "floor_a" else (a + delta, suite.b_stderr(item))
        return float(0.5 * math.erfc((mean - value) / (sd * math.sqrt(2)) / math.sqrt(2)))
    threshold, side = key_threshold(key, value)
    design = pw.Design(n, discordance=r)
    truths, weights = _truth_weights(delta / 100, math.sqrt(max(r - (delta / 100) ** 2, 1e-9) / n))
    sign = 1 if side == "greater" else -1
    beyond = np.array([pw.power(design, float(d), 2 * ALPHA, threshold=threshold / 100, side=sign) for d in truths])
    return float(np.sum(weights * (1.0 - beyond if side == "greater" else beyond)))


STUDY_CLAIMS = (  # (benchmark, item, key, grid step): what the study's file claims, each within 1/12 of the budget
    *[(b, i, k, 0.5 if k == "min_ci_lower" else 0.1) for b, i in (("mmlu", OVERALL), ("hellaswag", "acc"),
                                                                   ("hellaswag", "acc_norm"), ("mbpp", "pass@1"))
      for k in ("min_ci_lower", "floor_a", "floor_b")],
)
STUDY_BUDGET = 0.01


def derive_study(suites: list[Suite]) -> None:
    """The study file's thresholds: per claim the strictest value on its grid whose replication failure rate
    (truth drawn from the study's uncertainty, worst r of 0.2–0.3) is within its share of a 1 % budget."""
    by_name = {s.name: s for s in suites}
    share = STUDY_BUDGET / len(STUDY_CLAIMS)
    print(f"\n== deriving the study file: a replication (truth drawn from the study's uncertainty) fails each claim "
          f"≤ {100 * share:.3f} % at the worst r of 0.2–0.3 ({100 * STUDY_BUDGET:g} % for the {len(STUDY_CLAIMS)} claims)")
    for benchmark, item_id, key, step in STUDY_CLAIMS:
        suite = by_name[benchmark]
        item = suite.benchmark.item(item_id)
        a, _, delta, _ = suite.study(item)
        start = {"min_ci_lower": delta, "floor_a": a, "floor_b": a + delta}[key]
        value = math.floor(start / step) * step
        while max(replication_failures(suite, item, key, value, r) for r in DISCORDANCES) > share:
            value = round(value - step, 1)
        rates = [replication_failures(suite, item, key, value, r) for r in DISCORDANCES]
        print(f"  {benchmark}[{item_id}] {key} = {value:g}: a replication fails it {_range(rates)} (r 0.2–0.3)")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--expectations", action="append", metavar="FILE",
                        help="expectations file(s) to measure (default: evals/expectations.toml)")
    parser.add_argument("--reps", type=int, default=20_000, metavar="N", help="simulated runs per scenario and r (default 20000)")
    parser.add_argument("--regression-reps", type=int, default=2_000, metavar="N",
                        help="simulations per item of a 5-point regression (default 2000; 0 skips)")
    parser.add_argument("--correction", default="holm", choices=("holm", "bh", "none"))
    parser.add_argument("--seed", type=int, default=20261204)
    parser.add_argument("--check", type=int, default=8, metavar="K",
                        help="reruns also decided by compare_benchmark, which must agree (default 8; 0 skips)")
    parser.add_argument("--point-truth", action="store_true", help="the study's point estimates as the truth (the old way)")
    parser.add_argument("--everyday", action="store_true", help="derive the everyday file's margins, then measure it")
    parser.add_argument("--derive-study", action="store_true", help="derive the study file's thresholds, then measure it")
    parser.add_argument("--all-items", action="store_true", help="every MMLU subject in the table, not a sample")
    parser.add_argument("--markdown", action="store_true", help="the per-item table as Markdown (for the README)")
    args = parser.parse_args(argv)
    registry = load_registry([REPO / "evals" / "benchmarks.toml"])
    suites = [Suite(registry.get(name), TaskSizes()(registry.get(name))) for name in ("mmlu", "hellaswag", "mbpp")]
    print(f"Assumptions: real dataset sizes; discordance r ∈ {{{', '.join(map(str, DISCORDANCES))}}}; each key one-sided "
          f"at {100 * ALPHA:g} % (one side of a 95 % interval); {args.correction} within each key's family; seed {args.seed}; "
          f"MMLU subjects without numbers of their own: MMLU overall's 59.74 → 71.90.")
    if args.everyday:
        derive_everyday(suites, args.correction)
        files = [REPO / "evals" / "everyday-expectations.toml"]
    elif args.derive_study:
        derive_study(suites)
        files = [REPO / "evals" / "expectations.toml"]
    else:
        files = [Path(f) for f in (args.expectations or [REPO / "evals" / "expectations.toml"])]
    for path in files:
        measure(path, suites, registry, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
