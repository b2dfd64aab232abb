"""Coverage of the paired intervals and the error of each expectation key at its boundary (a script, not a test).

Run from the repository root:

    nice -n 10 .venv/bin/python benchmarks/paired_coverage.py --reps 2000
    ... --quick            (200 tables a cell, no enumeration, no permutation part: ~10 s)
    ... --markdown         (per-cell tables as Markdown, for the README; --tables: as text)
    ... --fine --timing    (the exact sup on a fine grid; a million tables timed)

Binary metrics. Per document, the two models disagree with probability ``r``
(the discordance); a disagreement favours B with probability ``s`` (the
split). So ``(b_only, a_only, rest) ~ Multinomial(n; r·s, r·(1−s), 1 − r)`` and
the true difference is ``Δ = r·(2s − 1)``. Grid: n ∈ {20, 100, 300, 1,534,
14,042}, r ∈ {0, 1, 2, 5, 10, 20, 30 %}, s ∈ {0, 0.5, 0.6, 0.75, 0.9, 1}
(s and 1 − s are mirror images: every method here is exactly symmetric,
``paired_binary_ci(c, b) == −paired_binary_ci(b, c)[::-1]``, so s = 0 is s = 1
mirrored; it is simulated anyway).

Two measurements of the same quantities:

* **simulated**: ``--reps`` multinomial tables a cell (the same tables for
  every method), vectorised across the tables of all cells;
* **exact** (``--no-exact`` skips it): every table with its multinomial
  probability, ``m ~ Bin(n, r)``, ``b | m ~ Bin(m, s)``, truncated where the
  tails fall below 1e-13 (the mass kept is printed), so no Monte Carlo error.

Printed per method: coverage of the two-sided 95 % interval per cell (min,
mean, the worst cells), and for each key at its boundary, single item,
unadjusted (nominal one-sided error 2.5 %):

* ``min_ci_lower = t``: passes iff CI low > t. Error = P(pass) at Δ = t;
* ``non_inferiority_margin = M``: passes iff CI low > −M. Error = P(pass) at Δ = −M;
* ``max_regression = X``: fails iff CI high < −X. Error = P(fail) at Δ = −X;

with r swept over the grid where r ≥ |Δ| (s = (1 + Δ/r)/2). "before" is the
plugin's former interval (``exact-conditional``) with its former comparisons
(``min_ci_lower`` passed on ``low >= t``); "after" the score methods with the
strict comparisons that match their tests. Targets (issue 17): coverage ≥ 93 %
in every cell and ≥ 95 % on average; each one-sided error ≤ 3.5 % where
n·r ≥ 30 and ≤ 5 % everywhere.

``--fine`` adds the exact sup over a fine grid (n ∈ {20, 50, 100, 200, 300,
600, 1,534}, r = 0.5 % … 30 % by 0.5 %, s = 0.5 … 1 by 0.02): where the
discreteness of small counts bites between the grid points.

Every interval is the package's own: ``pytest_qwencmp.stats.paired_binary_ci``
(the plugin's interval is this function's, method ``score-cc``), and "before"
is the same function's ``exact-conditional`` method, the plugin's former
interval (Clopper–Pearson on the discordant documents).

Non-binary metrics: the plugin's sign-flip permutation test with its
Hartigan inversion (``pytest_qwencmp.stats.paired_test``, 10,000 sign vectors),
on per-document values in {0, 1/K, …, 1} (K = 5:
pass@1 estimated from 5 samples). Per document a pass rate θ ~ Beta(α, β)
for A, θ' = θ + d·(1 − θ) (d ≥ 0) or θ·(1 + d) (d < 0) for B, and K
independent samples of each; the true Δ is d·E[1 − θ] (d ≥ 0) or d·E[θ].
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
from scipy import stats

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pytest_qwencmp.stats import paired_binary_ci, paired_test  # noqa: E402


NS = (20, 100, 300, 1534, 14042)
RS = (0.0, 0.01, 0.02, 0.05, 0.10, 0.20, 0.30)
SS = (0.0, 0.5, 0.6, 0.75, 0.9, 1.0)
KEYS = (  # (key, threshold t in points, true Δ at the boundary, side the key reads)
    *[("min_ci_lower", t, t, "low") for t in (0.0, 1.5, 5.0, 9.5)],
    *[("non_inferiority_margin", m, -m, "low") for m in (0.5, 1.5, 5.0)],
    *[("max_regression", x, -x, "high") for x in (0.0, 2.0, 5.0)],
)
METHODS = {  # label -> (method, old comparisons?)
    "before: exact-conditional (the plugin's old interval and comparisons)": ("exact-conditional", True),
    "after: score-cc (default: Tango's score interval, ½ continuity correction)": ("score-cc", False),
    "option: score (plain Tango 1998)": ("score", False),
}
CHUNK = 1_000_000


def ci(b, c, n, method, **kw):
    """paired_binary_ci in chunks of a million tables (memory)."""
    parts = [paired_binary_ci(b[i:i + CHUNK], c[i:i + CHUNK], n[i:i + CHUNK], method=method, **kw)
             for i in range(0, b.size, CHUNK)]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


COVERAGE_TARGET, MEAN_TARGET, BIG_TARGET, ALL_TARGET = 0.93, 0.95, 0.035, 0.05


# --------------------------------------------------------------------------- the cells


def coverage_cells():
    cells = []
    for n in NS:
        for r in RS:
            for s in (SS if r > 0 else (0.5,)):
                cells.append((n, r, s))
    return cells


def key_cells():
    cells = []
    for key, t, delta, side in KEYS:
        for n in NS:
            for r in RS:
                if r * 100.0 < abs(delta) - 1e-9 or (r == 0 and delta != 0):
                    continue
                s = 0.5 if r == 0 else min(1.0, max(0.0, (1.0 + delta / 100.0 / r) / 2.0))
                cells.append((key, t, delta, side, n, r, s))
    return cells


def decide(low, high, key, delta, old):
    """The key's wrong decision at its boundary Δ = delta: passes (low-side keys) or fails (max_regression)."""
    if key == "min_ci_lower" and old:
        return low >= delta  # the old check: `not ci_lower >= t` failed, so ci_lower == t passed
    if key in ("min_ci_lower", "non_inferiority_margin"):
        return low > delta
    return high < delta


# --------------------------------------------------------------------------- simulated


def simulate(cells, reps, rng):
    """Stacked (b, c, n) for ``reps`` multinomial tables per (n, r, s) cell."""
    b, c, n = [], [], []
    for nn, r, s in cells:
        t = rng.multinomial(nn, [r * s, r * (1.0 - s), 1.0 - r], size=reps)
        b.append(t[:, 0]); c.append(t[:, 1]); n.append(np.full(reps, nn))
    return np.concatenate(b), np.concatenate(c), np.concatenate(n)


def simulated(reps, seed):
    rng = np.random.default_rng(seed)
    cov_cells = coverage_cells()
    kc = key_cells()
    b, c, n = simulate(cov_cells, reps, rng)
    kb, kcc, kn = simulate([(x[4], x[5], x[6]) for x in kc], reps, rng)
    out = {}
    for label, (method, old) in METHODS.items():
        started = time.perf_counter()
        low, high = ci(b, c, n, method, exact=False)  # the float polish changes nothing here (< 1e-11 points)
        elapsed = time.perf_counter() - started
        delta = np.repeat([100.0 * r * (2 * s - 1) for _, r, s in cov_cells], reps)
        covered = ((low <= delta) & (delta <= high)).reshape(len(cov_cells), reps).mean(axis=1)
        low_k, high_k = ci(kb, kcc, kn, method, exact=False)
        errors = []
        for i, (key, t, delta_k, side, nn, r, s) in enumerate(kc):
            sl = slice(i * reps, (i + 1) * reps)
            errors.append(decide(low_k[sl], high_k[sl], key, delta_k, old).mean())
        out[label] = (dict(zip(cov_cells, covered)), dict(zip(kc, errors)), elapsed, b.size)
    return out


# --------------------------------------------------------------------------- exact


def tables(n, r, s, eps=1e-13):
    """Every (b, c) with P > 0 under m ~ Bin(n, r), b | m ~ Bin(m, s), tails below eps dropped."""
    if r == 0:
        return np.zeros(1), np.zeros(1), np.ones(1)
    m = np.arange(int(stats.binom.ppf(eps, n, r)), int(stats.binom.isf(eps, n, r)) + 1)
    pm = stats.binom.pmf(m, n, r)
    lo = np.maximum(stats.binom.ppf(eps, m, s), 0).astype(np.int64)
    hi = np.maximum(np.minimum(stats.binom.isf(eps, m, s), m).astype(np.int64), lo)
    count = hi - lo + 1
    mm = np.repeat(m, count)
    b = np.repeat(lo, count) + np.arange(count.sum()) - np.repeat(np.cumsum(count) - count, count)
    return b.astype(np.float64), (mm - b).astype(np.float64), np.repeat(pm, count) * stats.binom.pmf(b, mm, s)


def exact(method, old, cov_cells, kc):
    cover, mass = {}, 1.0
    for nn, r, s in cov_cells:
        b, c, p = tables(nn, r, s)
        low, high = paired_binary_ci(b, c, nn, method=method, exact=False)
        d = 100.0 * r * (2 * s - 1)
        cover[(nn, r, s)] = p[(low <= d) & (d <= high)].sum()
        mass = min(mass, p.sum())
    errors = {}
    for cell in kc:
        key, t, delta, side, nn, r, s = cell
        b, c, p = tables(nn, r, s)
        low, high = paired_binary_ci(b, c, nn, method=method, exact=False)
        errors[cell] = p[decide(low, high, key, delta, old)].sum()
    return cover, errors, mass


def fine(method):
    """Exact one-sided error and coverage on a fine grid of (n, r, s): the sup between grid points."""
    worst_all = worst_big = (0.0, None)
    worst_cov = (1.0, None)
    over5 = over35 = cells = 0
    for nn in (20, 50, 100, 200, 300, 600, 1534):
        for r in [round(float(x), 4) for x in np.arange(0.005, 0.3001, 0.005)]:
            for s in [round(float(x), 4) for x in np.linspace(0.5, 1.0, 26)]:
                b, c, p = tables(nn, r, s)
                low, high = paired_binary_ci(b, c, nn, method=method, exact=False)
                d = 100.0 * r * (2 * s - 1)
                one = max(p[low > d].sum(), p[high < d].sum())
                cov = p[(low <= d) & (d <= high)].sum()
                cells += 1
                over5 += one > ALL_TARGET
                if one > worst_all[0]:
                    worst_all = (one, (nn, r, s))
                if nn * r >= 30:
                    over35 += one > BIG_TARGET
                    if one > worst_big[0]:
                        worst_big = (one, (nn, r, s))
                if cov < worst_cov[0]:
                    worst_cov = (cov, (nn, r, s))
    return worst_all, worst_big, worst_cov, over5, over35, cells


# --------------------------------------------------------------------------- printing


def pct(x, digits=1):
    return f"{100.0 * x:.{digits}f}"


def print_coverage(label, cover, md):
    values = np.array(list(cover.values()))
    worst = sorted(cover.items(), key=lambda kv: kv[1])[:4]
    below = sum(v < COVERAGE_TARGET for v in values)
    print(f"  coverage of the 95 % interval: min {pct(values.min())} %, mean {pct(values.mean())} % over "
          f"{len(values)} cells; {below} cells below 93 %; worst: "
          + ", ".join(f"n={n:,} r={r:.0%} s={s:g}: {pct(v)} %" for (n, r, s), v in worst))
    if md is None:
        return
    head = ["n", "r"] + [f"s={s:g}" for s in SS]
    rows = []
    for n in NS:
        for r in RS:
            cells = [pct(cover[(n, r, s)]) if (n, r, s) in cover else "" for s in SS] if r > 0 else \
                    [pct(cover[(n, r, 0.5)])] + [""] * (len(SS) - 1)
            rows.append([f"{n:,}", f"{r:.0%}"] + cells)
    table(head, rows, md)


def key_summary(errors):
    """Per key: (max where n·r >= 30, its cell), (max everywhere, its cell)."""
    out = {}
    for key in ("min_ci_lower", "non_inferiority_margin", "max_regression"):
        items = [(cell, e) for cell, e in errors.items() if cell[0] == key]
        big = [(cell, e) for cell, e in items if cell[4] * cell[5] >= 30] or [(None, 0.0)]
        out[key] = (max(big, key=lambda kv: kv[1]), max(items, key=lambda kv: kv[1]))
    return out


def describe(cell):
    if cell is None:
        return "-"
    key, t, delta, side, n, r, s = cell
    return f"t={t:g}, n={n:,}, r={r:.0%}"


def print_keys(label, errors, md):
    for key, ((cb, eb), (ca, ea)) in key_summary(errors).items():
        print(f"  {key:<23} max error where n·r ≥ 30: {pct(eb, 2)} % ({describe(cb)}); "
              f"everywhere: {pct(ea, 2)} % ({describe(ca)})")
    if md is None:
        return
    head = ["key", "n"] + [f"r={r:.0%}" for r in RS]
    rows = []
    for key, t, delta, side in KEYS:
        for n in NS:
            row = [f"{key} = {t:g}", f"{n:,}"]
            for r in RS:
                cell = next((c for c in errors if c[:5] == (key, t, delta, side, n) and c[5] == r), None)
                row.append("" if cell is None else pct(errors[cell], 2) + ("" if n * r >= 30 else "*"))
            rows.append(row)
    table(head, rows, md)
    print("  (* n·r < 30: target 5 %; otherwise 3.5 %)")


def table(head, rows, md):
    if md:
        print("| " + " | ".join(head) + " |")
        print("|" + "|".join(["---"] * 2 + ["---:"] * (len(head) - 2)) + "|")
        for row in rows:
            print("| " + " | ".join(row) + " |")
    else:
        widths = [max(len(str(x)) for x in col) for col in zip(head, *rows)]
        for row in [head] + rows:
            print("  " + "  ".join(str(x).rjust(w) for x, w in zip(row, widths)))


# --------------------------------------------------------------------------- permutation (non-binary)


def permutation_coverage(reps_by_n, seed, k=5, resamples=10_000):
    rng = np.random.default_rng(seed)
    scenarios = {"spread θ~Beta(2,2)": (2.0, 2.0), "skewed θ~Beta(0.3,0.5)": (0.3, 0.5)}
    deltas = (0.0, 2.0, 5.0, -5.0, 10.0)
    rows = []
    for n, reps in reps_by_n.items():
        for name, (a, bb) in scenarios.items():
            mean = a / (a + bb)
            for delta in deltas:
                d = delta / 100.0 / (1.0 - mean) if delta >= 0 else delta / 100.0 / mean
                if abs(d) > 1:
                    continue
                started = time.perf_counter()
                cover = lows = highs = 0
                for rep in range(reps):
                    theta = rng.beta(a, bb, size=n)
                    theta_b = theta + d * (1.0 - theta) if d >= 0 else theta * (1.0 + d)
                    xa = rng.binomial(k, theta) / k
                    xb = rng.binomial(k, theta_b) / k
                    cmp_ = paired_test(xa, xb, seed=rep, resamples=resamples).comparison(0.95)
                    lo, hi = cmp_.ci_low * 100.0, cmp_.ci_high * 100.0
                    cover += lo <= delta <= hi
                    lows += lo > delta
                    highs += hi < delta
                rows.append((n, name, delta, reps, cover / reps, lows / reps, highs / reps,
                             (time.perf_counter() - started) / reps))
                print(f"  n={n:>4} {name:<24} Δ={delta:+5.1f}: coverage {pct(cover / reps)} % "
                      f"(low > Δ {pct(lows / reps)} %, high < Δ {pct(highs / reps)} %) "
                      f"[{reps} tables, {1000 * rows[-1][-1]:.0f} ms each]", flush=True)
    return rows


# --------------------------------------------------------------------------- timing


def timing(seed):
    rng = np.random.default_rng(seed)
    size = 1_000_000
    n = rng.integers(1, 20_000, size)
    m = rng.binomial(n, rng.uniform(0, 0.4, size))
    b = rng.binomial(m, rng.uniform(0, 1, size))
    for label, (method, _) in METHODS.items():
        for exact_ in (True, False):
            started = time.perf_counter()
            paired_binary_ci(b, m - b, n, method=method, exact=exact_)
            print(f"  {method:<18} exact={str(exact_):<5}: 1,000,000 random tables (n 1–20,000) in "
                  f"{time.perf_counter() - started:.1f} s")


# --------------------------------------------------------------------------- main


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=2000, help="simulated tables per cell (default 2000)")
    parser.add_argument("--seed", type=int, default=20261205)
    parser.add_argument("--no-exact", action="store_true", help="skip the exact enumeration")
    parser.add_argument("--fine", action="store_true", help="also the exact sup over a fine (n, r, s) grid (~5 min)")
    parser.add_argument("--permutation-reps", type=int, default=1000,
                        help="tables per cell for the permutation test (default 1000; 0 skips)")
    parser.add_argument("--permutation-only", action="store_true", help="only the non-binary (permutation) part")
    parser.add_argument("--timing", action="store_true", help="time a million tables per method")
    parser.add_argument("--quick", action="store_true", help="200 tables a cell, no enumeration, no permutation part")
    parser.add_argument("--markdown", action="store_true", help="per-cell tables as Markdown")
    parser.add_argument("--tables", action="store_true", help="print the per-cell tables (text)")
    args = parser.parse_args(argv)
    if args.quick:
        args.reps, args.no_exact, args.permutation_reps = 200, True, 0
    md = True if args.markdown else (False if args.tables else None)
    load = os.getloadavg()
    print(f"machine: {os.cpu_count()} cores, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; "
          f"numpy {np.__version__}; seed {args.seed}")
    started = time.perf_counter()
    if args.permutation_only:
        args.no_exact, args.fine, args.timing = True, False, False
    sim = {} if args.permutation_only else simulated(args.reps, args.seed)
    cov_cells, kc = coverage_cells(), key_cells()
    if sim:
        print(f"\n== simulated: {args.reps:,} multinomial tables per cell ({len(cov_cells)} coverage cells, "
              f"{len(kc)} key-boundary cells; Monte Carlo s.e. ≈ {pct(np.sqrt(.95 * .05 / args.reps), 2)} points "
              f"on a coverage, {pct(np.sqrt(.025 * .975 / args.reps), 2)} on a 2.5 % error) "
              f"[{time.perf_counter() - started:.0f} s]")
    for label, (cover, errors, elapsed, count) in sim.items():
        print(f"\n{label}  [{count:,} intervals in {elapsed:.2f} s]")
        print_coverage(label, cover, md)
        print_keys(label, errors, md)
    if not args.no_exact:
        print("\n== exact (every table weighted by its probability; no Monte Carlo error)")
        for label, (method, old) in METHODS.items():
            t0 = time.perf_counter()
            cover, errors, mass = exact(method, old, cov_cells, kc)
            print(f"\n{label}  [probability mass kept ≥ {mass:.12f}; {time.perf_counter() - t0:.0f} s]")
            print_coverage(label, cover, md)
            print_keys(label, errors, md)
    if args.fine:
        print("\n== exact, fine grid: n ∈ {20, 50, 100, 200, 300, 600, 1,534} × r = 0.5 %…30 % by 0.5 % × s = 0.5…1 by 0.02")
        for label, (method, old) in METHODS.items():
            if old:
                continue
            t0 = time.perf_counter()
            (ea, ca), (eb, cb), (cv, cc), over5, over35, cells = fine(method)
            print(f"{label}: max one-sided error {pct(ea, 2)} % at n, r, s = {ca}; where n·r ≥ 30 "
                  f"{pct(eb, 2)} % at {cb}; min coverage {pct(cv, 2)} % at {cc}; cells over 5 %: {over5} of "
                  f"{cells}; n·r ≥ 30 cells over 3.5 %: {over35} [{time.perf_counter() - t0:.0f} s]")
    if args.timing:
        print("\n== timing")
        timing(args.seed + 2)
    if args.permutation_reps:
        r = args.permutation_reps
        print(f"\n== non-binary: the permutation test (10,000 sign vectors, Hartigan inversion), values in "
              f"{{0, 1/5, …, 1}} (pass@1 from 5 samples)")
        permutation_coverage({20: r, 100: r, 500: r}, args.seed + 1)
    print(f"\ntotal {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
