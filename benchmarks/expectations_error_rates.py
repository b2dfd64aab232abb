"""Error rates of an expectations file, by simulation (a script, not a test).

Run: .venv/bin/python benchmarks/expectations_error_rates.py [--expectations FILE ...] [--reps 20000]

For the Qwen2.5-1.5B (A) → Qwen2.5-7B (B) reference study it simulates, per
item, paired 0/1 answers with the study's accuracies and the real dataset
sizes (``dataset_sizes.toml``: MMLU's 57 subject sizes, HellaSwag 10,042,
MBPP 500) and runs each simulated result through the plugin's own code — the
exact McNemar p-values and Clopper–Pearson intervals of ``statistics``, the
family adjustment (``family_levels``, Holm over the 57 subjects and over
HellaSwag's acc/acc_norm) and ``expectations.check`` — to measure:

* **rerun fails**: P(a rerun of the study fails the item), and the
  family-wise rate: P(a rerun fails at least one item of the suite);
* **5-pt regression passes**: P(the item passes when B is truly 5 points
  WORSE than A on it, everything else as in the study) — the miss rate of a
  regression check (for an item whose expectation claims an improvement, a
  regression must fail it, so the same number is its miss rate too);
* **fails when B ≡ A**: P(the item fails when B is exactly as good as A on every
  item — the everyday case of two equivalent checkpoints), and for MMLU the
  rate at which at least one of the 57 subjects fails then (the subject checks'
  family-wise false alarms; the superiority items fail such a B by design);
* the MDE and the regression each item catches with 80 % power (``power``).

Assumptions (stated in the output): the study gives per-subject accuracies for
abstract_algebra, anatomy and astronomy; the other 54 subjects get MMLU's
overall accuracies. ``overall`` is the size-weighted micro-average of the
simulated subjects, as lm-eval computes it. Per document, the two models
disagree with probability ``--discordance`` (default 0.25, the middle of the
0.2–0.3 measured for checkpoints ~10 points apart); acc and acc_norm are
simulated independently (they share documents in reality, which only makes
the family-wise rate smaller).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pytest_qwencmp.lmeval.sizes import TaskSizes  # noqa: E402
from pytest_qwencmp.stats import planning, power as pw  # noqa: E402
from pytest_qwencmp.stats import paired as stats  # noqa: E402
from pytest_qwencmp.config.benchmarks import OVERALL, load_registry  # noqa: E402
from pytest_qwencmp.config.expectations import load_expectations  # noqa: E402
from pytest_qwencmp.stats.rules import check  # noqa: E402

STUDY = {  # (A, B) in points, lm-eval FP16; MMLU subjects not listed use MMLU's overall numbers
    ("mmlu", OVERALL): (59.74, 71.90),
    ("mmlu", "abstract_algebra"): (35.00, 54.00),
    ("mmlu", "anatomy"): (71.05, 83.55),
    ("mmlu", "astronomy"): (61.00, 76.00),
    ("hellaswag", "acc"): (50.24, 60.01),
    ("hellaswag", "acc_norm"): (67.75, 78.93),
    ("mbpp", "pass@1"): (46.00, 62.20),
}
REGRESSION = 5.0
ALPHA = 0.05


def study_scores(benchmark: str, item: str) -> tuple[float, float]:
    return STUDY.get((benchmark, item), STUDY[("mmlu", OVERALL)] if benchmark == "mmlu" else None)


def cells(n: int, p_a: float, delta: float, r: float, reps: int, rng: np.random.Generator) -> np.ndarray:
    """reps x 4 counts (both right, only B right, only A right, neither) for true A accuracy p_a and B − A = delta."""
    b_only, a_only = (r + delta) / 2.0, (r - delta) / 2.0
    both = p_a - a_only
    probs = np.clip([both, b_only, a_only, 1.0 - both - b_only - a_only], 0.0, 1.0)
    return rng.multinomial(n, probs / probs.sum(), size=reps)


class Suite:
    """One benchmark's items, sizes and study numbers."""

    def __init__(self, benchmark, sizes):
        self.benchmark = benchmark
        self.items = benchmark.items
        self.family = [i for i in self.items if i.id.split(":")[0] != OVERALL]
        self.sizes = sizes

    def n(self, item) -> int:
        return self.sizes[item.task]

    def simulate(self, r: float, reps: int, rng, shifted: str | None = None, shift: float = 0.0) -> dict[str, np.ndarray]:
        """Per family item, reps x 4 counts; the overall item (if any) as the sum of the subjects.

        ``shifted``: the item whose true B − A is ``shift`` instead of the study's (``overall``: every
        subject, ``"*"``: every item).
        """
        counts = {}
        for item in self.family:
            a, b = study_scores(self.benchmark.name, item.id)
            delta = shift if shifted in (item.id, OVERALL, "*") else (b - a) / 100.0
            counts[item.id] = cells(self.n(item), a / 100.0, delta, r, reps, rng)
        for item in self.items:
            if item not in self.family:
                counts[item.id] = sum(counts[i.id] for i in self.family)
        return counts


def outcomes(suite: Suite, counts: dict[str, np.ndarray], expectations, correction: str,
             only: str | None = None) -> dict[str, np.ndarray]:
    """Per item (or just ``only``), a boolean array over reps: did the item fail its expectation (the run's own checks)?"""
    ids = [i.id for i in suite.family]
    reps = next(iter(counts.values())).shape[0]
    b = {i: c[:, 1] for i, c in counts.items()}
    c_ = {i: c[:, 2] for i, c in counts.items()}
    n = {i: c.sum(axis=1)[0] for i, c in counts.items()}
    p = {i: stats.mcnemar_p(b[i], c_[i]) for i in counts}
    adjusted = {i: np.empty(reps) for i in ids}
    levels = {i: np.empty(reps) for i in ids}
    matrix = np.stack([p[i] for i in ids], axis=1)
    for rep in range(reps):
        for i, (adj, level) in zip(ids, stats.family_levels(matrix[rep], correction, ALPHA)):
            adjusted[i][rep], levels[i][rep] = adj, level
    failed = {}
    for item in suite.items:
        i = item.id
        if only is not None and i != only:
            continue
        alone = item not in suite.family
        adj_p = p[i] if alone else adjusted[i]
        level = np.full(reps, ALPHA) if alone else levels[i]
        low, high = stats.clopper_pearson_delta(b[i], c_[i], n[i], ALPHA)
        adj_low, adj_high = stats.clopper_pearson_delta(b[i], c_[i], n[i], level)
        both = counts[i][:, 0]
        score_a, score_b = (both + c_[i]) / n[i] * 100.0, (both + b[i]) / n[i] * 100.0
        delta = (b[i] - c_[i]) / n[i]
        expectation = expectations.for_item(suite.benchmark.name, i)
        out = np.zeros(reps, dtype=bool)
        for rep in range(reps):
            reject = adj_p[rep] < ALPHA
            verdict = check(
                expectation, score_a[rep], score_b[rep], ci_lower=low[rep] * 100.0,
                significantly_worse=bool(reject and delta[rep] < 0),
                adjusted_ci=(adj_low[rep] * 100.0, adj_high[rep] * 100.0),
            )
            out[rep] = not verdict.passed
        failed[i] = out
    return failed


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--expectations", action="append", metavar="FILE",
                        help="expectations file(s) to measure (default: evals/expectations.toml)")
    parser.add_argument("--reps", type=int, default=20_000, metavar="N", help="simulated reruns of the study (default 20000)")
    parser.add_argument("--regression-reps", type=int, default=2_000, metavar="N",
                        help="simulations per item of a 5-point regression (default 2000)")
    parser.add_argument("--discordance", type=float, default=planning.DEFAULT_DISCORDANCE, metavar="R")
    parser.add_argument("--correction", default="holm", choices=("holm", "bh", "none"))
    parser.add_argument("--seed", type=int, default=20261130)
    parser.add_argument("--markdown", action="store_true", help="print the per-item table as Markdown (for the README)")
    args = parser.parse_args(argv)
    registry = load_registry([REPO / "evals" / "benchmarks.toml"])
    suites = []
    for name in ("mmlu", "hellaswag", "mbpp"):
        benchmark = registry.get(name)
        suites.append(Suite(benchmark, TaskSizes()(benchmark)))
    files = [Path(f) for f in (args.expectations or [REPO / "evals" / "expectations.toml"])]
    r = args.discordance
    print(f"Assumptions: study accuracies per item (MMLU subjects without their own numbers: MMLU overall 59.74 → 71.90); "
          f"real dataset sizes; discordance {r}; α {ALPHA}; {args.correction}; {args.reps:,} reruns, "
          f"{args.regression_reps:,} regression simulations per item; seed {args.seed}.")
    for path in files:
        started = time.perf_counter()
        expectations = load_expectations(path, registry)
        rng = np.random.default_rng(args.seed)
        any_failed = np.zeros(args.reps, dtype=bool)
        rows = []
        subjects_fail = None
        for suite in suites:
            rerun = outcomes(suite, suite.simulate(r, args.reps, rng), expectations, args.correction)
            equal = outcomes(suite, suite.simulate(r, args.reps, rng, shifted="*"), expectations, args.correction)
            if suite.benchmark.name == "mmlu":
                subjects_fail = np.any([equal[i.id] for i in suite.family], axis=0).mean()
            for item in suite.items:
                any_failed |= rerun[item.id]
                shifted = suite.simulate(r, args.regression_reps, rng, shifted=item.id, shift=-REGRESSION / 100.0)
                missed = 1.0 - outcomes(suite, shifted, expectations, args.correction, only=item.id)[item.id].mean()
                alone = item not in suite.family
                level = pw.mde_level(ALPHA, "none" if alone else args.correction, 1 if alone else len(suite.family))
                n = sum(suite.sizes.values()) if alone else suite.n(item)
                design = pw.Design(n, discordance=r)
                mde = pw.mde(design, level)
                allowance = (expectations.for_item(suite.benchmark.name, item.id).max_regression or 0.0) / 100.0
                caught = pw.detectable(design, level, threshold=-allowance, side=-1)
                rows.append((suite.benchmark.name, item.id, n, rerun[item.id].mean(), missed, equal[item.id].mean(),
                             None if mde is None else mde * 100, None if caught is None else -caught * 100))
        fwer = any_failed.mean()
        se = np.sqrt(fwer * (1 - fwer) / args.reps)
        print(f"\n== {path} ({time.perf_counter() - started:.0f} s)")
        print(f"whole suite: a rerun of the study fails at least one item with probability {fwer:.2%} (± {se:.2%} MC s.e.)")
        worst = sorted(rows, key=lambda row: -row[3])[:5]
        print("largest per-item rerun failure rates: " + ", ".join(f"{b}[{i}] {f:.2%}" for b, i, _, f, *_ in worst))
        passing = [row for row in rows if row[4] > 0.2]
        print(f"items a true {REGRESSION:g}-point regression passes more than 20% of the time: {len(passing)} of {len(rows)}")
        print(f"equivalent checkpoints (B exactly as good as A everywhere): at least one of the 57 MMLU subjects fails "
              f"with probability {subjects_fail:.2%}")
        sep = " | " if args.markdown else "  "
        header = ("item", "n", "rerun fails", f"{REGRESSION:g}-pt regression passes", "fails when B ≡ A", "MDE",
                  "regression caught (80%)")
        if args.markdown:
            print("| " + " | ".join(header) + " |")
            print("|" + "|".join([":---"] + ["---:"] * 6) + "|")
        else:
            print(sep.join(header))
        for bench, item, n, fail, miss, same, mde, caught in rows:
            cells_ = (f"{bench}[{item}]", f"{n:,}", f"{fail:.2%}", f"{miss:.1%}", f"{same:.1%}",
                      "none" if mde is None else f"±{mde:.1f}", "none" if caught is None else f"≥ {caught:.1f}")
            print(("| " + " | ".join(cells_) + " |") if args.markdown else sep.join(cells_))
    return 0


if __name__ == "__main__":
    sys.exit(main())
