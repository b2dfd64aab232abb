"""Collection cost of the eval suite, and proof that collecting imports no torch / lm-eval (a benchmark script, not a test).

  * `pytest evals/ --collect-only -q --model-a org/a --model-b org/b` (subprocess, repo as rootdir):
    wall time (median of N runs) and pytest's own "collected in" seconds;
  * the same for a bare `pytest --collect-only -q` of an empty folder (interpreter + pytest + plugin
    start-up), and of the empty folder with `-p no:qwencmp` (pytest alone), for comparison;
  * one more collection of evals/ with a tiny probe plugin (`-p`) that records at unconfigure which
    heavy modules (torch, lm_eval, transformers, datasets, deepspeed, ...) sit in sys.modules;
  * `python -X importtime -c "import pytest; import pytest_qwencmp.plugin"`: what importing the plugin
    costs on top of pytest.

Run:  .venv/bin/python benchmarks/bench_collection.py [--runs 5]
Goal: no heavy module imported while collecting; evals/ collection wall within ~1.5x of the
empty-folder start-up.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))

from _common import PYTHON, REPO, median, offline_env, run_pytest, tail  # noqa: E402

HEAVY = ("torch", "lm_eval", "transformers", "datasets", "deepspeed", "evaluate", "accelerate", "tokenizers",
         "numpy", "scipy", "statsmodels", "pandas", "pyarrow", "safetensors", "huggingface_hub")
MUST_NOT = ("torch", "lm_eval", "transformers", "datasets", "deepspeed")
COLLECTED = re.compile(r"(?:(\d+) tests? collected|no tests ran|no tests collected)[^\n]*? in (\d+(?:\.\d+)?)s")

PROBE = '''
import json, os, sys

def pytest_unconfigure(config):
    heavy = %r
    loaded = sorted(name for name in heavy if name in sys.modules)
    with open(os.environ["QWENCMP_PROBE_OUT"], "w") as handle:
        json.dump({"loaded": loaded, "modules": len(sys.modules)}, handle)
''' % (HEAVY,)


def collect(args: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float | None, int, str]:
    wall, proc = run_pytest(args, env=env, cwd=cwd, timeout=600)
    text = proc.stdout + proc.stderr
    match = COLLECTED.search(text)
    return wall, float(match.group(2)) if match else None, proc.returncode, text


def series(configs: list[tuple[str, list[str], Path]], env: dict[str, str], runs: int) -> list[dict]:
    """Each configuration `runs` times, interleaved (round-robin) so machine-load drift hits all alike."""
    walls = {label: [] for label, _, _ in configs}
    own = {label: [] for label, _, _ in configs}
    items = {}
    for _ in range(runs):
        for label, args, cwd in configs:
            wall, collected_in, code, text = collect(args, cwd, env)
            if code not in (0, 5):  # 5 = nothing collected (the empty folder)
                print(f"  {label}: exit code {code}\n{tail(text, 20)}")
            walls[label].append(wall)
            own[label].append(collected_in)
            count = re.search(r"(\d+) tests? collected", text)
            items[label] = int(count.group(1)) if count else 0
    results = []
    for label, _, _ in configs:
        result = {"label": label, "wall_s": median(walls[label]), "collected_in_s": median(own[label]),
                  "walls": walls[label], "items": items[label]}
        print(f"  {label:44s} wall {result['wall_s']:6.3f}s (median of {runs}; min {min(walls[label]):.3f}, "
              f"max {max(walls[label]):.3f})   pytest's 'in' {result['collected_in_s']:.3f}s   items {result['items']}",
              flush=True)
        results.append(result)
    return results


def import_time(module: str, env: dict[str, str]) -> tuple[float, list[tuple[float, str]]]:
    """Cumulative import time of `module` with pytest already imported (as in a session), and its heaviest parts."""
    proc = subprocess.run([PYTHON, "-X", "importtime", "-c", f"import pytest; import {module}"], cwd=str(REPO),
                          env=env, capture_output=True, text=True, timeout=300)
    rows = []
    for line in proc.stderr.splitlines():
        parts = line.split("|")
        if len(parts) == 3 and parts[1].strip().isdigit():
            rows.append((int(parts[1]) / 1e6, parts[2].rstrip()))
    # -X importtime lists children before their parent: the module's own subtree precedes its line.
    index = next((i for i, (_, name) in enumerate(rows) if name.strip() == module), None)
    if index is None:
        return float("nan"), []
    def depth(name: str) -> int:
        return len(name) - len(name.lstrip())

    start = index
    while start > 0 and depth(rows[start - 1][1]) > depth(rows[index][1]):
        start -= 1
    children = sorted(((s, n.strip()) for s, n in rows[start:index]), reverse=True)
    return rows[index][0], children[:6]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="subprocess runs per measurement (median; default 5)")
    parser.add_argument("--json", default=None, help="also write the numbers to this JSON file")
    args = parser.parse_args()

    env = offline_env(None)
    scratch = Path(tempfile.mkdtemp(prefix="qwencmp-bench-collect-"))
    try:
        empty = scratch / "empty"
        empty.mkdir()
        cache = ["-o", f"cache_dir={scratch / 'pytest-cache'}"]
        print(f"bench_collection: {args.runs} runs each (python {sys.version.split()[0]})", flush=True)
        suite, bare, no_plugin = series([
            ("pytest evals/ --collect-only (org/a vs org/b)",
             ["evals/", "--collect-only", "-q", "--model-a", "org/a", "--model-b", "org/b", *cache], REPO),
            ("empty folder --collect-only (plugin loaded)", ["--collect-only", "-q", *cache], empty),
            ("empty folder --collect-only -p no:qwencmp", ["--collect-only", "-q", "-p", "no:qwencmp", *cache], empty),
        ], env, args.runs)

        probe_dir = scratch / "probe"
        probe_dir.mkdir()
        (probe_dir / "qwencmp_import_probe.py").write_text(PROBE)
        probe_env = dict(env, PYTHONPATH=os.pathsep.join(filter(None, [str(probe_dir), env.get("PYTHONPATH")])),
                         QWENCMP_PROBE_OUT=str(scratch / "probe.json"))
        _, _, code, text = collect(["evals/", "--collect-only", "-q", "--model-a", "org/a", "--model-b", "org/b",
                                    "-p", "qwencmp_import_probe", *cache], REPO, probe_env)
        probe = json.loads((scratch / "probe.json").read_text()) if (scratch / "probe.json").exists() else None
        if probe is None:
            print(f"  probe plugin wrote nothing (exit code {code})\n{tail(text, 20)}")

        plugin_import_s, top = import_time("pytest_qwencmp.plugin", env)

        print("\nResults")
        print(f"  evals/ collection wall (median)           {suite['wall_s']:7.3f}s   pytest's 'collected in' {suite['collected_in_s']:.3f}s"
              f"   ({suite['items']} items)")
        print(f"  empty-folder start-up, plugin loaded      {bare['wall_s']:7.3f}s   pytest's 'in' {bare['collected_in_s']:.3f}s")
        print(f"  empty-folder start-up, -p no:qwencmp      {no_plugin['wall_s']:7.3f}s")
        print(f"  ratio evals/ collection / empty start-up  {suite['wall_s'] / bare['wall_s']:7.3f}")
        print(f"  plugin's share of start-up                {bare['wall_s'] - no_plugin['wall_s']:+7.3f}s")
        print(f"  import pytest_qwencmp.plugin with pytest already loaded (-X importtime, cumulative) "
              f"{plugin_import_s * 1e3:.0f} ms; heaviest parts:")
        for seconds, name in top:
            print(f"      {seconds * 1e3:7.1f} ms  {name}")
        ok = probe is not None and not any(m in probe["loaded"] for m in MUST_NOT)
        if probe is not None:
            print(f"  heavy modules in sys.modules after collection: {', '.join(probe['loaded']) or 'none'} "
                  f"({probe['modules']} modules in all)")
        print(f"  torch / lm_eval / transformers / datasets / deepspeed imported during collection: "
              f"{'NO (as required)' if ok else 'YES or unknown -- see above'}")
        if args.json:
            Path(args.json).write_text(json.dumps({"suite": suite, "empty": bare, "empty_no_plugin": no_plugin,
                                                   "probe": probe, "plugin_import_s": plugin_import_s,
                                                   "ok": ok}, indent=2))
        return 0 if ok else 1
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
