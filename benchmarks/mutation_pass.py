"""Mutation testing by hand over stats/ and the expectation checks (a development tool, not a test).

Run: nice -n 10 .venv/bin/python benchmarks/mutation_pass.py [NAME-PART ...]

Each mutation changes one line of a copy of the checkout (the package, tests, evals, benchmarks) in a
temporary folder, then runs the test files that should notice it there (``PYTHONPATH`` puts the copy ahead
of the editable install; ``-x``: stop at the first failure). A mutation is *killed* when a test fails and
*survives* otherwise; the table at the end says which test killed it. The mutations are the ways these
statistics have been or could plausibly be wrong: a key loosened by half a point, a key decided at the
wrong level or on the wrong side, the test of 0 used for a threshold key, the continuity correction or the
float polish gone, a family adjusted on the wrong p-values, power computed for another decision, the
"can never pass" check on the wrong table. (mutmut 3 would run the whole suite per mutant: days on 2 cores.)
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
COPY = ("pytest_qwencmp", "tests", "evals", "benchmarks", "conftest.py", "pyproject.toml")
PB = "pytest_qwencmp/stats/paired_binary.py"
KEYS = "pytest_qwencmp/stats/keys.py"
RULES = "pytest_qwencmp/stats/rules.py"
MULT = "pytest_qwencmp/stats/multiplicity.py"
PAIRED = "pytest_qwencmp/stats/paired.py"
POWER = "pytest_qwencmp/stats/power.py"
PLAN = "pytest_qwencmp/stats/planning.py"
T_PB = ["tests/stats/test_paired_binary.py"]
T_RULES = ["tests/stats/test_rules.py"]
T_MULT = ["tests/stats/test_multiplicity.py"]
T_PAIRED = ["tests/stats/test_paired.py"]
T_POWER = ["tests/stats/test_power.py", "-k", "not plan_mdes and not tiny_budget"]
T_PLAN = ["tests/stats/test_planning.py", "-k", "impossible or never"]
T_CMP = ["tests/test_comparison.py"]

MUTATIONS = [  # (name, file, old, new, tests)
    # the keys
    ("min_ci_lower loosened by 0.5 points (the plugin's path)", KEYS,
     "    return sign * float(value), alternative",
     "    return sign * float(value) - (0.5 if key == 'min_ci_lower' else 0.0), alternative", T_RULES + T_CMP),
    ("non_inferiority_margin loosened by 0.5 points", KEYS,
     "    return sign * float(value), alternative",
     "    return sign * float(value) - (0.5 if key == 'non_inferiority_margin' else 0.0), alternative", T_RULES + T_CMP),
    ("max_regression loosened by 0.5 points", KEYS,
     "    return sign * float(value), alternative",
     "    return sign * float(value) - (0.5 if key == 'max_regression' else 0.0), alternative", T_RULES + T_CMP),
    ("decide_key: >= instead of >", KEYS, "        return bool(low > threshold)", "        return bool(low >= threshold)",
     T_RULES),
    ("key_verdict loosened by 0.5 points", PB, "    t = sign * np.asarray(value, dtype=np.float64)",
     "    t = sign * np.asarray(value, dtype=np.float64) - 0.5", T_PB),
    ("key_verdict decided at α instead of α/2", PB, "    significant = np.asarray(p < alpha / 2.0)",
     "    significant = np.asarray(p < alpha)", T_PB),
    ("key_verdict with <= instead of <", PB, "    significant = np.asarray(p < alpha / 2.0)",
     "    significant = np.asarray(p <= alpha / 2.0)", T_PB),
    # the rules: families and levels
    ("a key decided with <= instead of <", RULES, "                significant = bool(adj < alpha)",
     "                significant = bool(adj <= alpha)", T_RULES),
    ("a key decided at 5 % one-sided", RULES, "                significant = bool(adj < alpha)",
     "                significant = bool(adj < 2 * alpha)", T_RULES + T_CMP),
    ("keys tested at Δ = 0, not at their threshold", RULES,
     "            p = [tests[i].tails(t)[0 if side == \"greater\" else 1] for i, (t, side) in zip(family, thresholds)]",
     "            p = [tests[i].tails(0.0)[0 if side == \"greater\" else 1] for i, (t, side) in zip(family, thresholds)]",
     T_RULES),
    ("a key's interval at 95 % whatever its family's level", RULES,
     "                low, high = tests[i].key_interval(float(level), t)",
     "                low, high = tests[i].key_interval(0.05, t)", T_RULES),
    ("max_regression not adjusted over its family", RULES,
     'ADJUSTED_KEYS = ("non_inferiority_margin", "max_regression")', 'ADJUSTED_KEYS = ("non_inferiority_margin",)',
     T_RULES),
    ("a key's failure not reported", RULES, "        if failure:\n", "        if False:\n", T_RULES),
    ("keys decided at 5 % one-sided by the comparison", "pytest_qwencmp/comparison.py",
     "    keys = decide_keys(tests, rules, correction=correction, alpha=alpha / 2.0)",
     "    keys = decide_keys(tests, rules, correction=correction, alpha=alpha)", T_CMP + T_RULES),
    # multiplicity
    ("family: tie-breaking nudge removed", MULT,
     "    one_sided = np.where(reject & ~(p < one_sided), np.nextafter(p, np.inf), one_sided)\n", "", T_MULT),
    ("family: one-sided levels returned as two-sided", MULT, "    return adjusted, 2.0 * one_sided",
     "    return adjusted, one_sided", T_MULT),
    ("family: Holm levels of rejected items from the stopping rank", MULT,
     "            ranks = np.where(np.arange(m) < stop, first_of_tie, stop)", "            ranks = np.full(m, stop)", T_MULT),
    ("family: BH with r + 1 rejections", MULT,
     "            lev = np.full(m, max(int(np.count_nonzero(adj < alpha)), 1) * alpha / m)",
     "            lev = np.full(m, (int(np.count_nonzero(adj < alpha)) + 1) * alpha / m)", T_MULT),
    ("verdict family on two-sided p at 2.5 %", MULT,
     "    adjusted_one, levels = adjust_family([tests[i].p_value / 2.0 for i in family], correction, level / 2.0)",
     "    adjusted_one, levels = adjust_family([tests[i].p_value for i in family], correction, level / 2.0)",
     T_MULT + T_CMP),
    # the interval and its test
    ("interval polished at a 20 % larger tail than its test", PB, "        tail = alpha / 2.0\n\n        def accept_low",
     "        tail = alpha / 2.0 * 1.2\n\n        def accept_low", T_PB),
    ("no continuity correction in the default (plain Tango)", PB, '_CC = {"score": 0.0, "score-cc": 0.5}',
     '_CC = {"score": 0.0, "score-cc": 0.0}', T_PB),
    ("continuity correction doubled", PB, '_CC = {"score": 0.0, "score-cc": 0.5}', '_CC = {"score": 0.0, "score-cc": 1.0}',
     T_PB),
    ("`at` nudge removed", PB, "        if at is not None:\n            t = np.broadcast_to",
     "        if False:\n            t = np.broadcast_to", T_PB),
    ("float polish removed (approximate roots only)", PB,
     "    if exact and b.size:\n        tail = alpha / 2.0\n\n        def accept_low",
     "    if False:\n        tail = alpha / 2.0\n\n        def accept_low", T_PB),
    ("one orientation removed from the interval", PB, "    flip = c0 > b0\n", "    flip = c0 < -1\n", T_PB),
    ("±100 guard removed from the test", PB,
     "    greater = np.where(points < -POINTS, 0.0, np.where(points > POINTS, 1.0, greater))\n", "    greater = greater\n",
     T_PB),
    ("no-discordance interval collapsed to [0, 0]", PB, "    low[none] = -half[none]\n    high[none] = half[none]\n",
     "    low[none] = 0.0\n    high[none] = 0.0\n", T_PB),
    ("McNemar special case at Δ = 0 removed", PB, "        var = np.where(x == 0.0, b + c, var)", "        var = var", T_PB),
    # each item's test
    ("PairedTest.tails: sides swapped", PAIRED,
     '            return (paired_binary_test(self.b_only, self.a_only, self.n, threshold, "greater"),\n'
     '                    paired_binary_test(self.b_only, self.a_only, self.n, threshold, "less"))',
     '            return (paired_binary_test(self.b_only, self.a_only, self.n, threshold, "less"),\n'
     '                    paired_binary_test(self.b_only, self.a_only, self.n, threshold, "greater"))', T_PAIRED),
    ("key_interval ignores the threshold", PAIRED,
     "            return paired_binary_ci(self.b_only, self.a_only, self.n, level=level, at=threshold)",
     "            return paired_binary_ci(self.b_only, self.a_only, self.n, level=level)", T_PAIRED + T_RULES),
    ("permutation tails: breakpoints at the threshold counted on the wrong side", PAIRED,
     '        upper = int(np.searchsorted(self.breakpoints, delta, side="right"))',
     '        upper = int(np.searchsorted(self.breakpoints, delta, side="left"))', T_PAIRED),
    ("--samples ignored: 0/1 means of K samples get the binary test", "pytest_qwencmp/comparison.py",
     "binary=False if samples > 1 else None)", "binary=None)", T_CMP),
    # power and planning
    ("power of another decision (≤ the level, not < half of it)", POWER,
     '        passes = open_ & (mid <= m) & (paired_binary_test(b, c, n, points, "greater") < level / 2.0)',
     '        passes = open_ & (mid <= m) & (paired_binary_test(b, c, n, points, "greater") <= level)', T_POWER),
    ("power: a discordant document favours A with B's probability", POWER,
     "    pi = 0.5 if r <= 0.0 else min(1.0, max(0.0, (r + delta) / (2.0 * r)))",
     "    pi = 0.5 if r <= 0.0 else min(1.0, max(0.0, (r - delta) / (2.0 * r)))", T_POWER),
    ("can-never-pass checked on the worst table", PLAN, '        b, c = (n, 0) if alternative == "greater" else (0, n)',
     '        b, c = (0, n) if alternative == "greater" else (n, 0)', T_PLAN),
    ("can-never-pass checked at 5 % one-sided", PLAN,
     "                return [bool(a < alpha) for a in adjust_family(p, method, alpha)[0]]",
     "                return [bool(a < 2 * alpha) for a in adjust_family(p, method, 2 * alpha)[0]]", T_PLAN),
    ("lm-eval's score checked to 1e-3 only", "pytest_qwencmp/evaluation/scores.py",
     "SCORE_TOLERANCE = 1e-9", "SCORE_TOLERANCE = 1e-3", ["tests/evaluation/test_evaluator.py", "-k", "rounding"]),
]


def main() -> int:
    only = sys.argv[1:]
    rows = []
    load = os.getloadavg()
    print(f"machine: {os.cpu_count()} cores, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}", flush=True)
    started_all = time.perf_counter()
    for name, file, old, new, tests in MUTATIONS:
        if only and not any(o in name for o in only):
            continue
        with tempfile.TemporaryDirectory(prefix="qwencmp-mutant-") as tmp:
            root = Path(tmp)
            for entry in COPY:
                source = REPO / entry
                if source.is_dir():
                    shutil.copytree(source, root / entry, ignore=shutil.ignore_patterns("__pycache__"))
                else:
                    shutil.copy(source, root / entry)
            text = (root / file).read_text()
            if text.count(old) != 1:
                print(f"!! {name}: pattern found {text.count(old)} times", flush=True)
                rows.append((name, "not applied"))
                continue
            (root / file).write_text(text.replace(old, new))
            env = {**os.environ, "PYTHONPATH": str(root)}
            started = time.perf_counter()
            run = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests],
                                 cwd=root, env=env, capture_output=True, text=True)
            failed = [line for line in run.stdout.splitlines() if line.startswith(("FAILED", "ERROR"))]
            killer = failed[0].split("::", 1)[1].split(" ")[0] if failed else ("(collection)" if run.returncode else "")
            verdict = "killed" if run.returncode != 0 else "SURVIVED"
            rows.append((name, f"{verdict} by {killer}" if killer else verdict))
            print(f"{verdict:<8} {name} ({time.perf_counter() - started:.0f} s) {killer}", flush=True)
    print(f"\n{sum(r[1].startswith('killed') for r in rows)} of {len(rows)} killed "
          f"({time.perf_counter() - started_all:.0f} s)\n")
    for name, verdict in rows:
        print(f"| {name} | {verdict} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
