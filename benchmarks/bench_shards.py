"""Shards, merge and a reference model evaluated once, on the demo (a benchmark script, not a test).

  1. a single full run: `pytest evals/ --demo` on a fresh evaluation cache (the demo already built);
  2. the same comparison as N shards (`--qwencmp-shard K/N`), one after another, each in its own
     process with its own fresh cache (in CI they run at the same time on N runners: the wall time of
     the matrix is the slowest shard plus the merge);
  3. `python -m pytest_qwencmp merge` of the shards' --qwencmp-json files; its comparisons must equal
     the single run's, field by field;
  4. model A's evaluations exported from the shards' caches (`cache export --side a`), imported into
     a fresh cache (`cache import`), and the single run again: only model B is evaluated.

Every step is a subprocess, timed from start to exit. The plugin's summary line is parsed from
each pytest run.

Run:  .venv/bin/python benchmarks/bench_shards.py [--shards 2] [--threads 1] [--limit N] [--work-dir DIR]
Goal: merged comparisons == single run's; the B-only run loads one model and evaluates 3 (of 6).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))

from _common import PYTHON, REPO, apply_env, build_demo, offline_env, parse_summary, pytest_cache_option, run_pytest, seed_cache_with_demo, tail, work_root  # noqa: E402


def run_cli(args: list[str], env: dict[str, str]) -> tuple[float, subprocess.CompletedProcess]:
    started = time.perf_counter()
    proc = subprocess.run([PYTHON, "-m", "pytest_qwencmp", *args], cwd=str(REPO), env=env, capture_output=True, text=True, timeout=900)
    return time.perf_counter() - started, proc


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shards", type=int, default=2, help="number of shards N (default 2)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (OMP_NUM_THREADS) for every run (default 1)")
    parser.add_argument("--limit", default=None, help="--limit for every run (default: the whole demo)")
    parser.add_argument("--work-dir", default=None, help="scratch folder (default: a new temp folder, removed afterwards)")
    parser.add_argument("--json", default=None, help="also write the numbers to this JSON file")
    args = parser.parse_args()

    apply_env(args.threads)
    env = offline_env(args.threads)
    root, created = work_root(args.work_dir, "qwencmp-bench-shards-")
    shared = root / "shared"
    _, build_s = build_demo(shared)
    print(f"bench_shards: work dir {root}, demo ready in {build_s:.1f}s, torch threads {args.threads}", flush=True)
    limit = ["--limit", args.limit] if args.limit else []
    numbers: dict[str, float] = {}
    summaries: dict[str, object] = {}

    def pytest_step(label: str, cache: Path, *extra: str) -> subprocess.CompletedProcess:
        if cache.exists():
            shutil.rmtree(cache)
        seed_cache_with_demo(shared, cache)
        command = ["evals/", "--demo", f"--eval-cache-dir={cache}", "-q", *pytest_cache_option(root), *limit, *extra]
        wall, proc = run_pytest(command, env=env)
        text = proc.stdout + proc.stderr
        numbers[label], summaries[label] = round(wall, 2), parse_summary(text)
        print(f"  {label:<12} {wall:7.2f}s  exit {proc.returncode}  {summaries[label]}", flush=True)
        if proc.returncode not in (0, 1):
            print(tail(text, 30))
        return proc

    pytest_step("single", root / "cache-single", f"--qwencmp-json={root / 'single.json'}")
    shard_files = []
    for k in range(1, args.shards + 1):
        shard_files.append(root / f"shard-{k}.json")
        pytest_step(f"shard {k}/{args.shards}", root / f"cache-shard-{k}", f"--qwencmp-shard={k}/{args.shards}",
                    f"--qwencmp-json={shard_files[-1]}")

    wall, proc = run_cli(["merge", *map(str, shard_files), "--json", str(root / "merged.json"), "--html", str(root / "merged.html")], env)
    numbers["merge"] = round(wall, 2)
    print(f"  {'merge':<12} {wall:7.2f}s  exit {proc.returncode}", flush=True)
    if proc.returncode not in (0, 1):
        print(tail(proc.stdout + proc.stderr, 30))
    single = json.loads((root / "single.json").read_text())["comparisons"]
    merged = json.loads((root / "merged.json").read_text())["comparisons"] if (root / "merged.json").exists() else None
    equal = merged == single

    exported = root / "a-cache"
    shutil.rmtree(exported, ignore_errors=True)
    started = time.perf_counter()
    for k in range(1, args.shards + 1):
        run_cli(["cache", "export", "--side", "a", f"--cache-dir={root / f'cache-shard-{k}'}", f"--out={exported}"], env)
    fresh = root / "cache-b-only"
    shutil.rmtree(fresh, ignore_errors=True)
    seed_cache_with_demo(shared, fresh)
    run_cli(["cache", "import", str(exported), f"--cache-dir={fresh}"], env)
    numbers["export+import"] = round(time.perf_counter() - started, 2)
    print(f"  {'export+import':<12} {numbers['export+import']:7.2f}s", flush=True)
    command = ["evals/", "--demo", f"--eval-cache-dir={fresh}", "-q", *pytest_cache_option(root), *limit]
    wall, proc = run_pytest(command, env=env)
    text = proc.stdout + proc.stderr
    numbers["B only"], summaries["B only"] = round(wall, 2), parse_summary(text)
    print(f"  {'B only':<12} {wall:7.2f}s  exit {proc.returncode}  {summaries['B only']}", flush=True)
    reuse = [line for line in text.splitlines() if line.startswith("qwencmp: model ")]
    for line in reuse:
        print(f"    {line}")
    b_only = summaries["B only"] or {}
    ok = equal and b_only.get("model_loads") == 1 and b_only.get("evaluations") == 3

    slowest = max(numbers[f"shard {k}/{args.shards}"] for k in range(1, args.shards + 1))
    print("\nResults")
    print(f"  single run                        {numbers['single']:8.2f}s")
    for k in range(1, args.shards + 1):
        print(f"  shard {k}/{args.shards}                         {numbers[f'shard {k}/{args.shards}']:8.2f}s")
    print(f"  merge                             {numbers['merge']:8.2f}s")
    print(f"  matrix wall (slowest shard+merge) {slowest + numbers['merge']:8.2f}s")
    print(f"  B-only run (A imported)           {numbers['B only']:8.2f}s")
    print(f"  merged comparisons == single run's: {equal}; B-only: {b_only.get('model_loads')} model load(s), "
          f"{b_only.get('evaluations')} evaluation(s) -> {'OK' if ok else 'UNEXPECTED'}")
    if args.json:
        Path(args.json).write_text(json.dumps({"seconds": numbers, "summaries": summaries, "merged_equal": equal, "ok": ok}, indent=2))
    if created:
        shutil.rmtree(root, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
