"""First vs second run of the demo suite on a fresh evaluation cache (a benchmark script, not a test).

  1. build the demo assets into a fresh cache dir (timed on its own: the first run of a user's
     `pytest evals/ --demo` would pay this once),
  2. `pytest evals/ --demo --eval-cache-dir=<that dir>`: the first run evaluates 2 models x 3 benchmarks,
  3. the same command again: every evaluation must come from the cache, no model is loaded.

Both runs are subprocesses (the `--opt=value` form keeps pytest's rootdir at the repo). The plugin's
summary line ("qwencmp: N model load(s), N evaluation(s) (...s), N cached evaluation(s) reused;
session ...s") is parsed from each run.

Run:  .venv/bin/python benchmarks/bench_cache.py [--threads 1] [--work-dir DIR]
Goal: second run evaluates 0 and loads 0 models; second/first wall well under 0.5 (it is bounded
below by interpreter start-up, imports and collection).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))

from _common import apply_env, offline_env, parse_summary, pytest_cache_option, run_pytest, tail, work_root  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=1, help="torch threads (OMP_NUM_THREADS) for build and runs (default 1)")
    parser.add_argument("--work-dir", default=None, help="scratch folder (default: a new temp folder, removed afterwards)")
    parser.add_argument("--json", default=None, help="also write the numbers to this JSON file")
    parser.add_argument("--pytest-args", default="", help="extra arguments for both runs, e.g. '-n 2'")
    args = parser.parse_args()

    apply_env(args.threads)
    root, created = work_root(args.work_dir, "qwencmp-bench-cache-")
    cache_dir = root / "eval-cache"
    if cache_dir.exists():
        shutil.rmtree(cache_dir)
    print(f"bench_cache: fresh cache dir {cache_dir}, torch threads {args.threads}", flush=True)

    started = time.perf_counter()
    import torch  # noqa: F401  (import cost reported apart from the build)
    import transformers  # noqa: F401

    from pytest_qwencmp.demo.build import build_demo_assets

    imports_s = time.perf_counter() - started
    started = time.perf_counter()
    assets = build_demo_assets(cache_dir / "demo")
    build_s = time.perf_counter() - started
    print(f"demo build: {build_s:.2f}s (after {imports_s:.2f}s of torch/transformers imports) -> {assets.root}", flush=True)

    command = ["evals/", "--demo", f"--eval-cache-dir={cache_dir}", "-q", *pytest_cache_option(root), *args.pytest_args.split()]
    runs = []
    for label in ("first", "second"):
        print(f"{label} run: pytest {' '.join(command)} ...", flush=True)
        wall, proc = run_pytest(command, env=offline_env(args.threads))
        text = proc.stdout + proc.stderr
        summary = parse_summary(text)
        outcome = next((line for line in reversed(text.splitlines()) if " in " in line and ("passed" in line or "failed" in line)), "")
        print(f"  wall {wall:.2f}s, exit code {proc.returncode}, {outcome.strip('= ')}", flush=True)
        print(f"  plugin summary: {summary}", flush=True)
        if summary is None or proc.returncode not in (0, 1):
            print(tail(text, 30))
        runs.append({"label": label, "wall_s": wall, "exit_code": proc.returncode, "summary": summary, "outcome": outcome})

    first, second = runs
    ratio = second["wall_s"] / first["wall_s"]
    print("\nResults")
    print(f"  demo build (once per cache dir)      {build_s:8.2f}s")
    print(f"  first run  (6 evaluations)           {first['wall_s']:8.2f}s wall"
          + (f", evaluations {first['summary']['evaluation_seconds']:.2f}s" if first["summary"] else ""))
    print(f"  second run (cache)                   {second['wall_s']:8.2f}s wall")
    print(f"  ratio second/first                   {ratio:8.3f}")
    s2 = second["summary"] or {}
    ok = s2.get("model_loads") == 0 and s2.get("evaluations") == 0
    print(f"  second run: {s2.get('model_loads')} model load(s), {s2.get('evaluations')} evaluation(s), "
          f"{s2.get('cache_hits')} cached evaluation(s) reused -> {'OK (expected 0 and 0)' if ok else 'UNEXPECTED'}")
    if args.json:
        Path(args.json).write_text(json.dumps({"demo_build_s": build_s, "imports_s": imports_s, "runs": runs,
                                               "ratio": ratio, "second_run_ok": ok}, indent=2))
    if created:
        shutil.rmtree(root, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
