"""Where a cold `pytest evals/ --demo` spends its wall time (a benchmark script, not a test).

Two runs, each on a fresh evaluation cache (nothing built, nothing evaluated):

  1. plain: the wall time a user waits, and the plugin's per-evaluation "done in" lines;
  2. profiled: the same command under pyinstrument (statistical, wall-clock, ~1 ms samples),
     whose call tree is cut into the parts of the run, top-down, first match wins:

     demo build        pytest_qwencmp.demo.build.build_demo_assets (training the two demo models, data)
     model loads       transformers' from_pretrained + HFLM (pytest_qwencmp.models.loading.load_model)
     evaluations       lm-eval's simple_evaluate, split into
       task setup      TaskManager indexing, task construction, datasets' loading (lm_eval.tasks,
                       lm_eval.api.task, datasets), the plugin's local-data overrides
       model compute   torch (forward passes, generation)
       code execution  MBPP candidates run in the sandbox (pytest_qwencmp.sandbox.executor, .launch)
       lm-eval other   the rest of simple_evaluate (requests, metrics, aggregation)
     plugin, per evaluation  cache keys and fingerprints, result extraction, cache writes
     statistics        pytest_qwencmp.comparison.compare_benchmark
     report            the terminal tables, pytest-html's page with ours, JSON/Markdown
     imports           module imports not inside one of the parts above
     pytest & rest     everything else (pytest's own start-up, collection, hooks)

Run:  .venv/bin/python benchmarks/bench_cold_demo.py [--threads N] [--work-dir DIR] [--json FILE]
      [--pytest-args '...'] [--repo DIR]  (--repo: profile another checkout, e.g. an older commit)
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import offline_env, work_root  # noqa: E402

DONE_LINE = re.compile(r"qwencmp: (?P<what>.+?): done in (?P<s>[\d.]+)s")

# Leaf parts (the paths of this layout and of the one before the package was regrouped, for --repo):
# (name, predicate on (file path, function)); the first part whose predicate matches
# a frame, walking down from the root, takes that frame's whole time.
_PARTS = (
    ("demo build", lambda f, fn: f.endswith(("pytest_qwencmp/demo/build.py", "pytest_qwencmp/demo.py")) and fn == "build_demo_assets"),
    ("model loads", lambda f, fn: f.endswith(("pytest_qwencmp/models/loading.py", "pytest_qwencmp/models.py")) and fn == "load_model"),
    ("evaluations", lambda f, fn: f.endswith(("pytest_qwencmp/lmeval/harness.py", "pytest_qwencmp/harness.py")) and fn == "run_request"),
    ("statistics", lambda f, fn: f.endswith("pytest_qwencmp/comparison.py") and fn == "compare_benchmark"),
    ("report", lambda f, fn: (
        (f.endswith("pytest_qwencmp/plugin.py") and fn in ("pytest_terminal_summary", "pytest_sessionfinish", "pytest_html_results_summary"))
        or ("pytest_html" in f and fn in ("pytest_sessionfinish", "_generate_report"))
    )),
    ("imports", lambda f, fn: fn == "_find_and_load" and "importlib" in f),
)
# Containers: what is left inside them (not a leaf part) is theirs, not "pytest & rest".
_CONTAINERS = (
    ("plugin, per evaluation", lambda f, fn: f.endswith(("pytest_qwencmp/evaluation/evaluator.py", "pytest_qwencmp/evaluation.py")) and fn in ("_evaluate", "key_parts", "load_cached")),
)
_EVALUATION_PARTS = (
    ("task setup", lambda f, fn: any(k in f for k in ("lm_eval/tasks/", "lm_eval/api/task.py", "/datasets/", "pytest_qwencmp/lmeval/tasks.py", "pytest_qwencmp/lm_tasks.py"))),
    ("model compute", lambda f, fn: "/torch/" in f or "/transformers/" in f),
    ("code execution", lambda f, fn: f.endswith(tuple(f"pytest_qwencmp/{m}.py" for m in ("sandbox/executor", "sandbox/launch", "lmeval/code_eval", "executor", "sandbox_launch", "code_eval")))),
    ("imports", lambda f, fn: fn == "_find_and_load" and "importlib" in f),
)
REST = "pytest & rest"


def _attribute(frame, parts, containers, totals: dict[str, float], owner: str) -> None:
    path, function = frame.file_path or "", frame.function or ""
    for name, matches in parts:
        if matches(path, function):
            totals[name] = totals.get(name, 0.0) + frame.time
            return
    for name, matches in containers:
        if matches(path, function):
            owner = name
            break
    totals[owner] = totals.get(owner, 0.0) + frame.total_self_time
    for child in frame.children:
        _attribute(child, parts, containers, totals, owner)


def _find(frame, predicate, found: list) -> None:
    if predicate(frame.file_path or "", frame.function or ""):
        found.append(frame)
        return
    for child in frame.children:
        _find(child, predicate, found)


def breakdown(session_file: Path) -> dict[str, float]:
    """Seconds per part of the run, from a pyinstrument session file."""
    from pyinstrument.session import Session

    root = Session.load(str(session_file)).root_frame()
    totals: dict[str, float] = {}
    _attribute(root, _PARTS, _CONTAINERS, totals, REST)
    evaluations: list = []
    _find(root, _PARTS[2][1], evaluations)
    inner: dict[str, float] = {}
    for frame in evaluations:
        _attribute(frame, _EVALUATION_PARTS, (), inner, "lm-eval other")
    return {"total": root.time, **totals, **{f"evaluations: {k}": v for k, v in inner.items()}}


def run(repo: Path, cache: Path, env: dict[str, str], extra: list[str], profile_to: Path | None) -> tuple[float, str]:
    command = [sys.executable]
    if profile_to is not None:
        command += ["-m", "pyinstrument", "-r", "pyisession", "-o", str(profile_to), "-i", "0.002"]
    command += ["-m", "pytest", "evals/", "--demo", f"--eval-cache-dir={cache}", "-q", "-p", "no:cacheprovider", *extra]
    run_env = dict(env, PYTHONPATH=str(repo))
    started = time.perf_counter()
    done = subprocess.run(command, cwd=repo, env=run_env, capture_output=True, text=True, timeout=1800)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"bench_cold_demo: the run failed (rc {done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return wall, done.stdout + done.stderr


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=None, help="torch threads (OMP_NUM_THREADS); default: torch's own choice, as a user runs")
    parser.add_argument("--work-dir", default=None, help="scratch folder (default: a new temp folder, removed afterwards)")
    parser.add_argument("--json", default=None, help="also write the numbers to this JSON file")
    parser.add_argument("--pytest-args", default="", help="extra pytest arguments for both runs")
    parser.add_argument("--repo", default=str(Path(__file__).resolve().parents[1]), help="the checkout to run (default: this one)")
    args = parser.parse_args()

    repo = Path(args.repo).resolve()
    root, created = work_root(args.work_dir, "qwencmp-bench-cold-")
    env = offline_env(args.threads)
    env.pop("PYTHONPATH", None)
    extra = args.pytest_args.split()
    results: dict[str, object] = {"repo": str(repo), "machine": f"{os.cpu_count()} CPUs"}
    try:
        plain_cache = root / "plain-cache"
        shutil.rmtree(plain_cache, ignore_errors=True)
        wall, output = run(repo, plain_cache, env, extra, None)
        evaluations = {m["what"]: float(m["s"]) for m in DONE_LINE.finditer(output)}
        results["plain_wall_s"] = round(wall, 2)
        results["evaluations_s"] = evaluations
        print(f"cold run (plain): {wall:.1f}s wall; evaluations: " + ", ".join(f"{k} {v:.1f}s" for k, v in evaluations.items()))

        profiled_cache = root / "profiled-cache"
        shutil.rmtree(profiled_cache, ignore_errors=True)
        session_file = root / "cold.pyisession"
        wall_profiled, _ = run(repo, profiled_cache, env, extra, session_file)
        parts = breakdown(session_file)
        results["profiled_wall_s"] = round(wall_profiled, 2)
        results["breakdown_s"] = {k: round(v, 2) for k, v in parts.items()}
        total = parts["total"]
        print(f"cold run (profiled): {wall_profiled:.1f}s wall, {total:.1f}s sampled in the pytest process")
        for name, seconds in parts.items():
            if name != "total":
                print(f"  {name:<34} {seconds:7.2f}s  {100 * seconds / total:5.1f}%")
    finally:
        if created:
            shutil.rmtree(root, ignore_errors=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
