"""MBPP on the embedded demo with one sampled answer per problem against K: the MDE each gives (a script, not a test).

Run: .venv/bin/python benchmarks/samples_mde_demo.py [--samples 5] [--temperature 0.1]

Runs ``pytest evals/ --demo --benchmarks mbpp --temperature T`` twice in a fresh
cache — once with one answer per problem (pass@1 is 0 or 1 per problem, Tango's
score test) and once with ``--samples mbpp=K`` (pass@1 = c/K per problem, the
paired permutation test) — and prints, from each run's ``--qwencmp-json``, the
scores, B − A with its 95 % interval, the test, the discordance or standard
deviation of the differences and the MDE (80 % power, 95 % interval), with the
wall time of each run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run(cache: Path, out: Path, temperature: float, samples: int) -> tuple[dict, float]:
    args = [sys.executable, "-m", "pytest", "evals/", "--demo", "--benchmarks", "mbpp", f"--eval-cache-dir={cache}",
            f"--temperature={temperature}", f"--qwencmp-json={out}", "-p", "no:cacheprovider", "-q"]
    if samples > 1:
        args.append(f"--samples=mbpp={samples}")
    started = time.perf_counter()
    proc = subprocess.run(args, cwd=REPO, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if not out.exists():
        raise SystemExit(proc.stdout[-3000:] + proc.stderr[-3000:])
    return json.loads(out.read_text())["comparisons"][0], wall


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=5, metavar="K")
    parser.add_argument("--temperature", type=float, default=0.1)
    args = parser.parse_args(argv)
    load = os.getloadavg()
    print(f"machine: {os.cpu_count()} cores, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    with tempfile.TemporaryDirectory(prefix="qwencmp-samples-") as tmp:
        cache = Path(tmp) / "cache"
        for k in (1, args.samples):
            record, wall = run(cache, Path(tmp) / f"k{k}.json", args.temperature, k)
            print(f"K = {k}: A {record['a']:.2f} → B {record['b']:.2f} over {record['n']} problems, B − A "
                  f"{record['delta']:+.2f}, 95 % CI [{record['ci_low']:+.2f}, {record['ci_high']:+.2f}], "
                  f"{record['test']}, paired stderr {record['delta_stderr']:.2f}, MDE "
                  f"{'none' if record['mde'] is None else '±%.1f' % record['mde']} points "
                  f"(80 % power, 95 % interval); {wall:.0f} s (demo build included in the first run)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
