"""Sequential evaluation (--sequential) at real sizes: error rates at each key's boundary, and the share of documents.

    .venv/bin/python benchmarks/sequential_simulation.py [--quick] [--reps-keys N] [--reps-family N]
        [--reps-scenarios N] [--parts bounds,keys,family,scenarios] [--json FILE]

Not a test: a script whose tables go into the README. Every sequential number comes from the plugin's own
decision code (``stats.expected_share.simulate_benchmark``: repeated confidence intervals of Tango's score
interval, Wilson's for floors, futility, curtailment, graphical Holm) at the real sizes (MMLU 14,042 questions
over 57 subjects, HellaSwag 10,042, MBPP 500, from ``config/dataset_sizes.toml``). The fixed design is decided
on the same simulated documents — the last look's counts — as issue #17 decides it: each key a one-sided test
at its own threshold (``paired_binary_test``, Tango with the ½ correction), family keys by Holm on the p-values
of the hypotheses they test, ``min_ci_lower`` alone at 2.5 %, floors on the point estimate.

Parts:

* ``bounds``: critical values at looks 1/8, 1/4, 1/2, 1 per spending function, the width cost at the last look
  and the power where the fixed design has 80 % (exact, canonical process).
* ``keys``: each key with the true B − A exactly at its threshold (its controlled error: a false PASS for
  ``min_ci_lower`` / ``non_inferiority_margin``, a false FAIL for ``max_regression``), sequential against fixed
  on the same runs, and the miss rate where the fixed test fires 80 % of the time.
* ``family``: every MMLU subject at its ``max_regression = 5`` boundary at once, and HellaSwag's pair at the
  everyday ``max_regression = 2``: the family-wise false-FAIL rate.
* ``scenarios``: the expected share of documents with the shipped ``evals/expectations.toml``: the study's pair
  (Δ = +12.16 MMLU, +9.77 / +11.18 HellaSwag acc / acc_norm, +16.20 MBPP), a broken checkpoint (Δ = −20), two
  equivalent models (Δ = 0); with every verdict compared with the full run's.

Assumptions: documents independent; the two models disagree on a share r = 0.25 of them; HellaSwag's acc and
acc_norm are drawn independently on the same documents; MMLU per-subject differences: the study's for
abstract_algebra (+19.00), anatomy (+12.50) and astronomy (+15.00), the other 54 drawn once from N(12.16, 5²)
(seed 2026) and shifted so that the size-weighted overall is +12.16; A's scores: the study's (MMLU 59.74 overall,
HellaSwag 50.24 / 67.75, MBPP 46.00), which is what the floors are checked against.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
import tomllib
from dataclasses import replace
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pytest_qwencmp.config.benchmarks import builtin_registry  # noqa: E402
from pytest_qwencmp.config.expectations import Expectation, load_expectations  # noqa: E402
from pytest_qwencmp.stats import expected_share as es  # noqa: E402
from pytest_qwencmp.stats import sequential as sq  # noqa: E402
from pytest_qwencmp.stats.paired_binary import paired_binary_test  # noqa: E402
from pytest_qwencmp.stats.spending import boundaries, exit_probabilities, normal_mixture_boundaries  # noqa: E402
from scipy import special  # noqa: E402

SIZES = tomllib.loads((REPO / "pytest_qwencmp/config/dataset_sizes.toml").read_text())
SUBJECTS = {s: v["test"] for s, v in SIZES["cais/mmlu"].items()}
HELLASWAG_N = SIZES["Rowan/hellaswag"]["default"]["validation"]
MBPP_N = SIZES["google-research-datasets/mbpp"]["full"]["test"]
MMLU_N = sum(SUBJECTS.values())
ALPHA = 0.025
R = 0.25
PLAN = sq.DEFAULT_LOOKS


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- the fixed design on the same documents


def fixed_verdicts(bench: es.BenchmarkScenario, res: es.SimulationResult) -> dict[str, np.ndarray]:
    """Each item's fixed-design verdict (PASS / FAIL) on all its documents (issue #17's rules)."""
    reps = res.documents.size
    fails = {}
    family_p: list[tuple[str, str, np.ndarray]] = []
    for it in bench.items:
        c = res.final_counts[it.name]
        n, n11, b, a = c["n"], c["n11"], c["b"], c["c"]
        fail = np.zeros(reps, bool)
        for rule, t in sq.sequential_keys(it.rules):
            if rule in sq.FAMILY_KEYS and it.family is not None and len(bench.items) > 1:
                alternative = "less" if rule in sq.FAIL_ONLY else "greater"
                family_p.append((it.name, rule, paired_binary_test(b, a, n, t, alternative)))
            elif rule in sq.FAIL_ONLY:
                fail |= paired_binary_test(b, a, n, t, "less") < ALPHA
            elif rule in sq.PASS_SIDE:
                fail |= ~(paired_binary_test(b, a, n, t, "greater") < ALPHA)
            elif rule == "min_improvement":
                fail |= ~(100.0 * (b - a) / n >= t)
            else:
                fail |= ~(100.0 * (n11 + (a if rule == "floor_a" else b)) / n >= t)
        fails[it.name] = fail
    if family_p:  # Holm over the hypotheses the family keys test
        p = np.stack([x[2] for x in family_p], axis=1)
        m = p.shape[1]
        order = np.argsort(p, axis=1, kind="stable")
        ok = np.take_along_axis(p, order, axis=1) < ALPHA / (m - np.arange(m))
        rejected = np.empty_like(ok)
        np.put_along_axis(rejected, order, np.cumprod(ok, axis=1).astype(bool), axis=1)
        for j, (name, rule, _) in enumerate(family_p):
            fails[name] = fails[name] | (rejected[:, j] if rule in sq.FAIL_ONLY else ~rejected[:, j])
    return {name: np.where(fail, sq.FAIL, sq.PASS) for name, fail in fails.items()}


# --------------------------------------------------------------------------- bounds


def part_bounds() -> list[dict]:
    rows = []
    for spending in ("hsd-4", "obrien-fleming", "hsd-2", "pocock", "normal-mixture"):
        for m in (1, 57):
            level = ALPHA / m
            c = normal_mixture_boundaries(PLAN, level) if spending == "normal-mixture" else boundaries(PLAN, level, spending)
            z = -special.ndtri(level)
            drift = z + 0.8416
            up, _ = exit_probabilities(c, PLAN, drift)
            rows.append(dict(spending=spending, m=m, crit=[float(x) for x in c], fixed=float(z),
                             width_cost=float(c[-1] / z - 1), power=float(sum(up)),
                             expected_fraction=float(sum(t * u for t, u in zip(PLAN, up)) + 1 - sum(up))))
    return rows


# --------------------------------------------------------------------------- each key at its boundary


KEY_CELLS = [  # key, value, item, documents, family size m (family keys spend α/m)
    ("min_ci_lower", 9.5, "MMLU overall", MMLU_N, 1),
    ("min_ci_lower", 7.0, "HellaSwag acc", HELLASWAG_N, 1),
    ("min_ci_lower", 3.0, "MBPP pass@1", MBPP_N, 1),
    ("max_regression", 5.0, "MMLU overall", MMLU_N, 1),
    ("max_regression", 5.0, "an MMLU subject of 100, alone", 100, 1),
    ("max_regression", 5.0, "professional_law (1,534), alone", 1534, 1),
    ("max_regression", 2.0, "HellaSwag acc, family of 2", HELLASWAG_N, 2),
    ("non_inferiority_margin", 1.5, "MMLU overall", MMLU_N, 1),
    ("non_inferiority_margin", 5.0, "an MMLU subject of 100, alone", 100, 1),
    ("non_inferiority_margin", 3.0, "MBPP pass@1", MBPP_N, 1),
]


def _one_key(design, key, value, size, delta, reps, seed, m):
    """One item with one key at true B − A ``delta``; with m > 1 the other m − 1 family members sit on 1-document
    strata with the same key (they set the family size; at their boundary they hardly ever reject)."""
    rules = Expectation(**{key: value})
    family = "f" if key in sq.FAMILY_KEYS and m > 1 else None
    strata = {"s": es.StratumTruth(size, delta, R, 50.0)}
    items = [es.SimulatedItem("item", ("s",), rules, family)]
    for j in range(m - 1 if family else 0):
        strata[f"o{j}"] = es.StratumTruth(1, 0.0, R, 50.0)
        items.append(es.SimulatedItem(f"o{j}", (f"o{j}",), rules, family))
    bench = es.BenchmarkScenario("x", strata, tuple(items))
    res = es.simulate_benchmark(design, bench, reps, np.random.default_rng(seed))
    c = res.final_counts["item"]
    t = sq.rule_threshold(key, value)
    if key in sq.FAIL_ONLY:
        fixed = np.where(paired_binary_test(c["b"], c["c"], c["n"], t, "less") < ALPHA / m, sq.FAIL, sq.PASS)
    else:
        fixed = np.where(paired_binary_test(c["b"], c["c"], c["n"], t, "greater") < ALPHA / m, sq.PASS, sq.FAIL)
    seq = res.item_verdict["item"]
    ns = res.item_counts["item"][0]
    share = float(np.mean(ns[np.maximum(res.item_look["item"], 1) - 1] / size))
    return dict(seq_pass=float(np.mean(seq == sq.PASS)), seq_fail=float(np.mean(seq == sq.FAIL)),
                fixed_pass=float(np.mean(fixed == sq.PASS)), fixed_fail=float(np.mean(fixed == sq.FAIL)),
                agree=float(np.mean(seq == fixed)), share=share, reps=reps)


def part_keys(design, reps) -> list[dict]:
    rows = []
    for key, value, label, size, m in KEY_CELLS:
        started = time.time()
        t = sq.rule_threshold(key, value)
        at = _one_key(design, key, value, size, t, reps, 1, m)
        z = -special.ndtri(ALPHA / m) + 0.8416  # the fixed test's 80 % point, one side away from the threshold
        away = (-1 if key in sq.FAIL_ONLY else 1) * z * math.sqrt(R / size) * 100.0
        alt = float(np.clip(t + away, -100 * R + 0.01, 100 * R - 0.01))
        power = _one_key(design, key, value, size, alt, max(reps // 4, 1000), 2, m)
        rows.append(dict(key=key, value=value, item=label, n=size, m=m, boundary=at, alternative=power, alt=alt,
                         seconds=time.time() - started))
        error = "fail" if key in sq.FAIL_ONLY else "pass"
        log(f"{key} = {value:g} ({label}): false {error.upper()} at the boundary seq {at['seq_' + error]:.4f} fixed "
            f"{at['fixed_' + error]:.4f}; share {at['share']:.3f} / {power['share']:.3f} ({time.time() - started:.0f}s)")
    return rows


# --------------------------------------------------------------------------- family-wise


def part_family(design, reps) -> list[dict]:
    rows = []
    cases = [
        ("MMLU: the 57 subjects all at Δ = −5, max_regression = 5", "mmlu",
         {s: es.StratumTruth(n, -5.0, R, 59.74) for s, n in SUBJECTS.items()}, Expectation(max_regression=5.0)),
        ("HellaSwag: acc and acc_norm both at Δ = −2, max_regression = 2 (everyday)", "hellaswag",
         {m: es.StratumTruth(HELLASWAG_N, -2.0, R, 50.24) for m in ("acc", "acc_norm")}, Expectation(max_regression=2.0)),
    ]
    for label, name, strata, rules in cases:
        started = time.time()
        bench = es.BenchmarkScenario(name, strata, tuple(es.SimulatedItem(s, (s,), rules, "f") for s in strata),
                                     {"acc_norm": "acc"} if name == "hellaswag" else {})
        res = es.simulate_benchmark(design, bench, reps, np.random.default_rng(7))
        fixed = fixed_verdicts(bench, res)
        seq_any = np.any([res.item_verdict[s] == sq.FAIL for s in strata], axis=0)
        fixed_any = np.any([fixed[s] == sq.FAIL for s in strata], axis=0)
        rows.append(dict(case=label, seq=float(seq_any.mean()), fixed=float(fixed_any.mean()), reps=reps,
                         share=float(res.share.mean())))
        log(f"{label}: family-wise false FAIL seq {seq_any.mean():.4f} fixed {fixed_any.mean():.4f} ({time.time() - started:.0f}s)")
    return rows


# --------------------------------------------------------------------------- scenarios


def subject_deltas(seed: int = 2026) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    fixed = {"abstract_algebra": 19.0, "anatomy": 12.5, "astronomy": 15.0}
    cap = 100 * R - 0.5
    d = {s: fixed.get(s, float(rng.normal(12.16, 5.0))) for s in SUBJECTS}
    others = [s for s in SUBJECTS if s not in fixed]
    for _ in range(50):  # shift the others so that the size-weighted mean is 12.16, within the cap
        for s in others:
            d[s] = float(np.clip(d[s], -cap, cap))
        mean = sum(d[s] * SUBJECTS[s] for s in SUBJECTS) / MMLU_N
        if abs(mean - 12.16) < 1e-9:
            break
        shift = (12.16 - mean) * MMLU_N / sum(SUBJECTS[s] for s in others)
        for s in others:
            d[s] += shift
    return d


def subject_scores_a() -> dict[str, float]:
    fixed = {"abstract_algebra": 35.00, "anatomy": 71.05, "astronomy": 61.00}
    others = [s for s in SUBJECTS if s not in fixed]
    rest = (59.74 * MMLU_N - sum(fixed[s] * SUBJECTS[s] for s in fixed)) / sum(SUBJECTS[s] for s in others)
    return {s: fixed.get(s, rest) for s in SUBJECTS}


def scenario(kind: str, expectations) -> list[es.BenchmarkScenario]:
    """The three benchmarks with the shipped expectations: 'reference' (the study), 'broken' (−20), 'equivalent' (0)."""
    score_a = subject_scores_a()
    if kind == "reference":
        dm, dh, dp = subject_deltas(), {"acc": 9.77, "acc_norm": 11.18}, 16.20
    else:
        v = -20.0 if kind == "broken" else 0.0
        dm, dh, dp = {s: v for s in SUBJECTS}, {"acc": v, "acc_norm": v}, v
    rules = {(b, i.id): expectations.for_item(b, i.id) for b in ("mmlu", "hellaswag", "mbpp")
             for i in builtin_registry().get(b).items}
    mmlu = es.BenchmarkScenario(
        "mmlu", {s: es.StratumTruth(n, dm[s], R, score_a[s]) for s, n in SUBJECTS.items()},
        tuple(es.SimulatedItem(s, (s,), rules[("mmlu", s)], "f") for s in SUBJECTS)
        + (es.SimulatedItem("overall", tuple(SUBJECTS), rules[("mmlu", "overall")]),))
    hellaswag = es.BenchmarkScenario(
        "hellaswag", {m: es.StratumTruth(HELLASWAG_N, dh[m], R, {"acc": 50.24, "acc_norm": 67.75}[m]) for m in dh},
        tuple(es.SimulatedItem(m, (m,), rules[("hellaswag", m)], "f") for m in dh), {"acc_norm": "acc"})
    mbpp = es.BenchmarkScenario("mbpp", {"pass@1": es.StratumTruth(MBPP_N, dp, R, 46.0)},
                                (es.SimulatedItem("pass@1", ("pass@1",), rules[("mbpp", "pass@1")]),))
    return [mmlu, hellaswag, mbpp]


def part_scenarios(designs, expectations, reps) -> list[dict]:
    rows = []
    for label, design in designs:
        for kind in ("reference", "broken", "equivalent"):
            started = time.time()
            out = dict(design=label, kind=kind, reps=reps, benchmarks={})
            documents = np.zeros(reps)
            total = 0
            rng = np.random.default_rng(11)
            for bench in scenario(kind, expectations):
                res = es.simulate_benchmark(design, bench, reps, rng)
                fixed = fixed_verdicts(bench, res)
                decided = [it.name for it in bench.items if sq.sequential_keys(it.rules)]
                differ = [np.mean((res.item_verdict[n] != fixed[n])) for n in decided]
                looks = np.bincount(res.stop_look, minlength=len(design.looks) + 1)[1:] / reps
                out["benchmarks"][bench.name] = dict(
                    share=float(res.share.mean()), se=float(res.share.std(ddof=1) / math.sqrt(reps)),
                    verdicts_differ=float(np.mean(differ)) if differ else 0.0,
                    runs_all_agree=float(np.mean(np.all([res.item_verdict[n] == fixed[n] for n in decided], axis=0))),
                    stop_looks=looks.tolist(), documents_total=res.documents_total)
                documents += res.documents
                total += res.documents_total
            out["all"] = float((documents / total).mean())
            out["seconds"] = time.time() - started
            rows.append(out)
            log(f"[{label}] {kind}: share {out['all']:.3f}; " + ", ".join(
                f"{k} {v['share']:.3f} (verdicts ≠ full run {v['verdicts_differ']:.2%})" for k, v in out["benchmarks"].items())
                + f" ({out['seconds']:.0f}s)")
    return rows


# --------------------------------------------------------------------------- tables


def pct(x: float, digits: int = 2) -> str:
    return f"{100 * x:.{digits}f} %"


def tables(results: dict) -> str:
    out = []
    if "keys" in results:
        out += ["| key | item | n | m | controlled error at the boundary: sequential | fixed | miss at Δ (fixed 80 % point): sequential | fixed | share of documents at the boundary / at that Δ |",
                "|---|---|---:|---:|---:|---:|---|---:|---|"]
        for r in results["keys"]:
            at, alt = r["boundary"], r["alternative"]
            fail_only = r["key"] in sq.FAIL_ONLY
            err = "fail" if fail_only else "pass"
            miss = "pass" if fail_only else "fail"
            se = 100 * math.sqrt(max(at["seq_" + err] * (1 - at["seq_" + err]), 1e-12) / at["reps"])
            out.append(f"| `{r['key']} = {r['value']:g}` | {r['item']} | {r['n']:,} | {r['m']} | false {err.upper()} "
                       f"{pct(at['seq_' + err])} ± {se:.2f} | {pct(at['fixed_' + err])} | Δ = {r['alt']:+.2f}: "
                       f"{pct(alt['seq_' + miss], 1)} | {pct(alt['fixed_' + miss], 1)} | {at['share']:.2f} / {alt['share']:.2f} |")
        out.append("")
    if "family" in results:
        out += ["| every member at its boundary at once | family-wise false FAIL: sequential | fixed (Holm) | share |",
                "|---|---:|---:|---:|"]
        out += [f"| {r['case']} | {pct(r['seq'])} | {pct(r['fixed'])} | {r['share']:.2f} |" for r in results["family"]]
        out.append("")
    if "scenarios" in results:
        out += ["| design | scenario | all three | MMLU | HellaSwag | MBPP | item verdicts ≠ full run (MMLU / HellaSwag / MBPP) |",
                "|---|---|---:|---:|---:|---:|---|"]
        for r in results["scenarios"]:
            b = r["benchmarks"]
            out.append(f"| {r['design']} | {r['kind']} | {pct(r['all'], 1)} | "
                       + " | ".join(f"{pct(b[k]['share'], 1)}" for k in ("mmlu", "hellaswag", "mbpp"))
                       + " | " + " / ".join(pct(b[k]["verdicts_differ"], 1) for k in ("mmlu", "hellaswag", "mbpp")) + " |")
        out.append("")
    if "bounds" in results:
        out += ["| spending (looks 1/8, 1/4, 1/2, 1) | m | c₁ | c₂ | c₃ | c₄ | fixed | width at the last look | power at the fixed 80 % point | E[fraction] there |",
                "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for r in results["bounds"]:
            c = " | ".join("∞" if math.isinf(x) else f"{x:.3f}" for x in r["crit"])
            out.append(f"| {r['spending']} | {r['m']} | {c} | {r['fixed']:.3f} | {pct(r['width_cost'], 1)} | "
                       f"{pct(r['power'], 1)} | {r['expected_fraction']:.2f} |")
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small runs (a smoke check, not the README's numbers)")
    parser.add_argument("--parts", default="bounds,keys,family,scenarios")
    parser.add_argument("--reps-keys", type=int, default=40_000)
    parser.add_argument("--reps-family", type=int, default=10_000)
    parser.add_argument("--reps-scenarios", type=int, default=1_000)
    parser.add_argument("--json", metavar="FILE")
    args = parser.parse_args()
    if args.quick:
        args.reps_keys, args.reps_family, args.reps_scenarios = 2_000, 300, 60
    parts = set(args.parts.split(","))
    started = time.time()
    design = sq.SequentialDesign()
    results = {"machine": {"cpus": os.cpu_count(), "load_start": os.getloadavg()[0]}, "method": design.method,
               "args": vars(args)}
    if "bounds" in parts:
        results["bounds"] = part_bounds()
    if "keys" in parts:
        results["keys"] = part_keys(design, args.reps_keys)
    if "family" in parts:
        results["family"] = part_family(design, args.reps_family)
    if "scenarios" in parts:
        expectations = load_expectations(REPO / "evals" / "expectations.toml", builtin_registry())
        designs = [("HSD(−4), Holm (default)", design), ("LD O'Brien–Fleming, Holm", replace(design, spending="obrien-fleming")),
                   ("default without curtailment", replace(design, curtail=False))]
        results["scenarios"] = part_scenarios(designs if not args.quick else designs[:1], expectations, args.reps_scenarios)
    results["machine"]["load_end"] = os.getloadavg()[0]
    results["seconds"] = round(time.time() - started, 1)
    print(tables(results))
    print(f"\n{results['seconds']:.0f} s on {results['machine']['cpus']} CPUs, load average "
          f"{results['machine']['load_start']:.1f} → {results['machine']['load_end']:.1f}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
