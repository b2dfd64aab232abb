"""The plugin's overhead over bare ``lm_eval.simple_evaluate`` on IDENTICAL work (a benchmark script, not a test).

For each benchmark (mmlu, hellaswag, mbpp) and one demo model, in one process, on CPU:

  bare    transformers + ``HFLM(pretrained=model, tokenizer, batch_size=16, device="cpu")`` and
          ``simple_evaluate`` with a TaskManager built as the plugin builds it
          (``TaskSource(benchmark, data_dir).build_manager(tmpdir)``), the same num_fewshot, limit,
          gen_kwargs, seeds, ``log_samples=True``, ``confirm_run_unsafe_code=True`` and the sandboxed
          code_eval (so MBPP runs offline);
  plugin  ``ComparisonRun(...).evaluator.evaluate(side, benchmark)`` with the cache read disabled
          (``no_cache``) in a fresh cache dir: cache key, task manager, the same simple_evaluate,
          result extraction and the cache write. (A fresh cache dir per round also means the
          plugin's persistent prepared-datasets cache starts empty, as the bare path's does.)

Model loading is timed separately (outside both), rounds alternate the order, medians are reported.
Then one whole ``pytest evals/ --demo`` session (subprocess, fresh evaluation cache, demo prebuilt)
is compared with the sum of the bare evaluations of both models.

Run:  .venv/bin/python benchmarks/bench_overhead.py [--rounds 3] [--side b] [--threads 1] [--limit N]
Goal: plugin / bare <= 1.05 per benchmark and in total.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))

from _common import (  # noqa: E402
    REPO,
    apply_env,
    build_demo,
    median,
    offline_env,
    parse_summary,
    pytest_cache_option,
    run_pytest,
    seed_cache_with_demo,
    tail,
    work_root,
)

BENCHMARKS = ("mmlu", "hellaswag", "mbpp")
GOAL = 1.05


def make_settings(assets, cache_dir: Path, limit: int | None):
    from pytest_qwencmp.config.benchmarks import load_registry
    from pytest_qwencmp.config.settings import parse_settings

    registry = load_registry([REPO / "evals" / "benchmarks.toml"])
    raw = {
        "model_a": str(assets.model_a),
        "model_b": str(assets.model_b),
        "data_dir": str(assets.data_dir),
        "cache_dir": str(cache_dir),
        "no_cache": True,
        "limit": limit,
        "models_from_ini": False,
    }
    return parse_settings(raw, registry.names()), registry


# --------------------------------------------------------------------------- bare lm-eval


def load_bare(model_dir: Path, batch_size: int = 16):
    import torch
    from lm_eval.models.huggingface import HFLM
    from transformers import AutoModelForCausalLM, AutoTokenizer

    started = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32)
    model.eval()
    lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size, device="cpu")
    return lm, time.perf_counter() - started


def bare_evaluate(lm, benchmark, settings):
    """What a user would write by hand: same task manager, same arguments, same sandboxed code_eval."""
    import lm_eval

    from pytest_qwencmp.lmeval.code_eval import SandboxedCodeEval, sandboxed_code_eval
    from pytest_qwencmp.lmeval.tasks import TaskSource

    shots = settings.shots_for(benchmark.name, benchmark.num_fewshot)
    gen_kwargs = settings.generation.as_gen_kwargs() if benchmark.generation else None
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bare-tasks-") as tmp:
        manager = TaskSource(benchmark, settings.data_dir).build_manager(Path(tmp))
        with sandboxed_code_eval(SandboxedCodeEval()):
            output = lm_eval.simple_evaluate(
                model=lm,
                tasks=list(benchmark.request),
                num_fewshot=shots,
                limit=settings.limit,
                task_manager=manager,
                log_samples=True,
                gen_kwargs=gen_kwargs,
                random_seed=settings.seed,
                numpy_random_seed=settings.seed,
                torch_random_seed=settings.seed,
                fewshot_random_seed=settings.seed,
                confirm_run_unsafe_code=True,
            )
    return output, time.perf_counter() - started


# --------------------------------------------------------------------------- plugin path


def new_run(settings, registry):
    from pytest_qwencmp.config.expectations import load_expectations
    from pytest_qwencmp.session import ComparisonRun

    return ComparisonRun(settings, registry, load_expectations(None, registry))


def same_scores(benchmark, bare_output, evaluation) -> bool:
    from pytest_qwencmp.evaluation.scores import extract_item_scores

    bare = {s.item_id: (round(s.value, 12), s.per_doc, s.doc_keys) for s in extract_item_scores(benchmark, bare_output)}
    plug = {s.item_id: (round(s.value, 12), s.per_doc, s.doc_keys) for s in evaluation.items}
    return bare == plug


def breakdown(run, side: str, benchmark, bare_output, evaluation, scratch: Path) -> dict[str, float]:
    """The plugin's work outside simple_evaluate, each part timed on its own (seconds)."""
    from pytest_qwencmp.evaluation import scores
    from pytest_qwencmp.evaluation.cache import EvaluationCache, cache_key
    from pytest_qwencmp.files import json_safe
    from pytest_qwencmp.lmeval.tasks import TaskSource, task_definitions_fingerprint

    evaluator = run.evaluator
    parts: dict[str, float] = {}
    task_definitions_fingerprint.cache_clear()
    t = time.perf_counter()
    key = cache_key(evaluator.key_parts(side, benchmark))
    parts["cache key (cold: task-definition hash)"] = time.perf_counter() - t
    t = time.perf_counter()
    cache_key(evaluator.key_parts(side, benchmark))
    parts["cache key (warm)"] = time.perf_counter() - t
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        TaskSource(benchmark, run.settings.data_dir).build_manager(Path(tmp))
        parts["(both paths) task manager build"] = time.perf_counter() - t
    t = time.perf_counter()
    scores.extract_item_scores(benchmark, bare_output)
    parts["extract item scores"] = time.perf_counter() - t
    t = time.perf_counter()
    scores.documents(benchmark, bare_output)
    parts["document views"] = time.perf_counter() - t
    t = time.perf_counter()
    json_safe({k: bare_output.get(k, {}) for k in ("results", "groups", "n-shot", "n-samples", "versions", "higher_is_better", "config")})
    parts["json-safe lm-eval results"] = time.perf_counter() - t
    cache = EvaluationCache(scratch, read_enabled=False)
    payload = evaluation.to_payload()
    t = time.perf_counter()
    with cache.locked(key):
        pass
    parts["file lock"] = time.perf_counter() - t
    t = time.perf_counter()
    path = cache.store(key, payload)
    parts[f"cache write ({path.stat().st_size / 1024:.0f} KiB, fsync)"] = time.perf_counter() - t
    return parts


CONTROL_TEST = """
import json, os, sys, time
sys.path.insert(0, {bench_dir!r})
from pathlib import Path


def test_bare_evaluations_inside_pytest():
    import logging
    import torch
    import bench_overhead as bo
    from pytest_qwencmp.demo.build import assets_at

    torch.set_num_threads({threads})
    logging.getLogger("lm_eval.evaluator").setLevel(logging.ERROR)
    assets = assets_at(Path({assets_root!r}))
    settings, registry = bo.make_settings(assets, Path({scratch!r}), {limit!r})
    times = {{}}
    for side, folder in (("a", assets.model_a), ("b", assets.model_b)):
        lm, _ = bo.load_bare(folder)
        for name in {names!r}:
            _, seconds = bo.bare_evaluate(lm, registry.get(name), settings)
            times[side + "/" + name] = seconds
        del lm
    Path(os.environ["QWENCMP_CONTROL_OUT"]).write_text(json.dumps(times))
"""


def bare_inside_pytest(root: Path, demo_cache: Path, assets, names, args) -> dict | None:
    folder = root / "control"
    folder.mkdir(parents=True, exist_ok=True)
    test_file = folder / "test_control.py"
    test_file.write_text(CONTROL_TEST.format(bench_dir=str(Path(__file__).resolve().parent), threads=args.threads,
                                             assets_root=str(assets.root), scratch=str(folder / "unused"),
                                             limit=args.limit, names=list(names)))
    out = folder / "times.json"
    env = dict(offline_env(args.threads), QWENCMP_CONTROL_OUT=str(out))
    wall, proc = run_pytest([str(test_file), "-q", *pytest_cache_option(root)], env=env, cwd=folder)
    if proc.returncode != 0 or not out.exists():
        print(f"  control run failed (exit code {proc.returncode}):\n{tail(proc.stdout + proc.stderr, 30)}")
        return None
    return {tuple(k.split("/")): v for k, v in json.loads(out.read_text()).items()}


# --------------------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="repetitions; medians are reported (default 3)")
    parser.add_argument("--side", choices=("a", "b"), default="b", help="demo model for the per-benchmark comparison")
    parser.add_argument("--benchmarks", default=",".join(BENCHMARKS))
    parser.add_argument("--limit", type=int, default=None, help="documents per task (default: all demo documents)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads here and in the pytest session (default 1)")
    parser.add_argument("--work-dir", default=None, help="scratch folder (default: a new temp folder, removed afterwards)")
    parser.add_argument("--demo-cache", default=None, help="cache root holding (or to hold) demo/ (default: under --work-dir)")
    parser.add_argument("--no-session", action="store_true", help="skip the whole-session comparison")
    parser.add_argument("--json", default=None, help="also write the numbers to this JSON file")
    args = parser.parse_args()

    apply_env(args.threads)
    import logging
    import shutil

    import torch

    # Import everything both paths use before timing anything, so neither pays the first import.
    import lm_eval  # noqa: F401
    import lm_eval.tasks  # noqa: F401
    from lm_eval.models.huggingface import HFLM  # noqa: F401
    from transformers import AutoModelForCausalLM  # noqa: F401

    import pytest_qwencmp.lmeval.code_eval  # noqa: F401
    import pytest_qwencmp.evaluation.evaluator  # noqa: F401

    torch.set_num_threads(args.threads)
    # The plugin silences lm-eval's per-subject "num_fewshot set explicitly" warnings; do so for both paths.
    logging.getLogger("lm_eval.evaluator").setLevel(logging.ERROR)

    root, created = work_root(args.work_dir, "qwencmp-bench-overhead-")
    demo_cache = Path(args.demo_cache).resolve() if args.demo_cache else root / "shared"
    names = [n.strip() for n in args.benchmarks.split(",") if n.strip()]
    other = "a" if args.side == "b" else "b"
    print(f"bench_overhead: work dir {root}, {args.rounds} round(s), side {args.side}, torch threads {args.threads}", flush=True)
    assets, demo_s = build_demo(demo_cache)
    print(f"demo assets ready in {demo_s:.1f}s ({assets.root})", flush=True)

    settings, registry = make_settings(assets, root / "unused", args.limit)
    model_dir = {"a": assets.model_a, "b": assets.model_b}
    bare_t: dict[tuple[str, str], list[float]] = {}
    plugin_t: dict[str, list[float]] = {n: [] for n in names}
    inner_t: dict[str, list[float]] = {n: [] for n in names}
    load_t: dict[str, list[float]] = {"bare": [], "plugin": []}
    identical: dict[str, bool] = {}
    last: dict[str, tuple] = {}

    for r in range(args.rounds):
        round_dir = root / f"round-{r}"
        run = new_run(replace(settings, cache_dir=round_dir / "plugin-cache"), registry)
        t = time.perf_counter()
        run.handle(args.side).load()
        load_t["plugin"].append(time.perf_counter() - t)
        lm, s = load_bare(model_dir[args.side])
        load_t["bare"].append(s)
        for i, name in enumerate(names):
            benchmark = registry.get(name)
            order = ("bare", "plugin") if (r + i) % 2 == 0 else ("plugin", "bare")
            for which in order:
                gc.collect()  # start each timed call without the previous evaluation's garbage
                if which == "bare":
                    output, s = bare_evaluate(lm, benchmark, settings)
                    bare_t.setdefault((args.side, name), []).append(s)
                else:
                    t = time.perf_counter()
                    evaluation = run.evaluator.evaluate(args.side, name)
                    plugin_t[name].append(time.perf_counter() - t)
                    inner_t[name].append(evaluation.wall_seconds)
            identical[name] = identical.get(name, True) and same_scores(benchmark, output, evaluation)
            last[name] = (run, benchmark, output, evaluation)
            print(
                f"  round {r + 1} {name:9s}: bare {bare_t[(args.side, name)][-1]:7.2f}s  plugin {plugin_t[name][-1]:7.2f}s  "
                f"(order {'/'.join(order)})",
                flush=True,
            )
        del lm
        if not args.no_session:  # bare evaluations of the other model, for the session comparison
            lm_other, _ = load_bare(model_dir[other])
            for name in names:
                _, s = bare_evaluate(lm_other, registry.get(name), settings)
                bare_t.setdefault((other, name), []).append(s)
                print(f"  round {r + 1} {name:9s}: bare model {other} {s:7.2f}s", flush=True)
            del lm_other

    print("\nWhere the plugin's extra time would go (each part timed alone, last round's outputs):", flush=True)
    parts_by_bench = {}
    for name in names:
        run, benchmark, output, evaluation = last[name]
        parts_by_bench[name] = breakdown(run, args.side, benchmark, output, evaluation, root / "breakdown")
        for part, seconds in parts_by_bench[name].items():
            print(f"  {name:9s} {part:45s} {seconds * 1e3:9.1f} ms")

    rows = []
    print(f"\nPer benchmark, model {args.side} (medians of {args.rounds}; seconds):")
    header = f"{'benchmark':10s} {'bare':>8s} {'plugin':>8s} {'ratio':>7s} {'plugin inner':>13s} {'outer':>7s} {'same scores':>12s}"
    print(header)
    print("-" * len(header))
    for name in names:
        b = median(bare_t[(args.side, name)])
        p = median(plugin_t[name])
        inner = median(inner_t[name])
        outer = median([pt - it for pt, it in zip(plugin_t[name], inner_t[name])])
        rows.append({"benchmark": name, "bare_s": b, "plugin_s": p, "ratio": p / b, "plugin_inner_s": inner,
                     "plugin_outer_s": outer, "identical_scores": identical[name],
                     "bare_runs": bare_t[(args.side, name)], "plugin_runs": plugin_t[name]})
        flag = "" if p / b <= GOAL else "  <-- over goal"
        print(f"{name:10s} {b:8.2f} {p:8.2f} {p / b:7.3f} {inner:13.2f} {outer:7.3f} {str(identical[name]):>12s}{flag}")
    total_b = sum(r["bare_s"] for r in rows)
    total_p = sum(r["plugin_s"] for r in rows)
    print(f"{'TOTAL':10s} {total_b:8.2f} {total_p:8.2f} {total_p / total_b:7.3f}")
    print(f"ratio plugin/bare total = {total_p / total_b:.3f} (goal <= {GOAL})")
    print("  (inner = the plugin's own timing of task manager + simple_evaluate; outer = plugin - inner:"
          " cache key, lock, extraction, cache write)")
    print(f"model load (outside the timings, median): bare {median(load_t['bare']):.2f}s, plugin {median(load_t['plugin']):.2f}s")
    over = [r for r in rows if r["ratio"] > GOAL]
    for r in over:
        parts = parts_by_bench[r["benchmark"]]
        biggest = max(parts.items(), key=lambda kv: kv[1])
        noise = max(r["bare_runs"]) - min(r["bare_runs"])
        print(f"  {r['benchmark']}: over goal by {r['plugin_s'] - r['bare_s']:.2f}s; measured outer work "
              f"{r['plugin_outer_s']:.2f}s (largest part: {biggest[0]} {biggest[1] * 1e3:.0f} ms); "
              f"spread of bare runs {noise:.2f}s (noise)")

    result = {"rows": rows, "total_bare_s": total_b, "total_plugin_s": total_p, "ratio": total_p / total_b,
              "breakdown_s": parts_by_bench, "threads": args.threads, "rounds": args.rounds, "side": args.side}

    if not args.no_session:
        session_dir = root / "session-cache"
        seed_cache_with_demo(demo_cache, session_dir)
        print("\nWhole session: pytest evals/ --demo (fresh evaluation cache, demo prebuilt) ...", flush=True)
        wall, proc = run_pytest(
            ["evals/", "--demo", f"--eval-cache-dir={session_dir}", "-q", *pytest_cache_option(root)],
            env=offline_env(args.threads),
        )
        summary = parse_summary(proc.stdout + proc.stderr)
        bare_sum = sum(median(bare_t[(side, n)]) for side in ("a", "b") for n in names)
        print(f"  exit code {proc.returncode}; plugin summary: {summary}")
        if summary is None:
            print(tail(proc.stdout + proc.stderr, 30))
        print(f"  session wall {wall:.2f}s vs sum of bare evaluations (both models, medians) {bare_sum:.2f}s: "
              f"ratio {wall / bare_sum:.3f}")
        if summary:
            print(f"  (the plugin's own evaluation time {summary['evaluation_seconds']:.2f}s: ratio "
                  f"{summary['evaluation_seconds'] / bare_sum:.3f}; the rest is interpreter start, imports, model "
                  f"loads, statistics and reporting)")
        result["session"] = {"wall_s": wall, "bare_sum_s": bare_sum, "ratio": wall / bare_sum, "summary": summary,
                             "exit_code": proc.returncode}

        # Control: the SAME bare evaluations, but inside a pytest process (no plugin items), to separate
        # "lm-eval runs slower inside pytest" from the plugin's own overhead.
        print("\nControl: the bare evaluations of both models inside a pytest process ...", flush=True)
        control = bare_inside_pytest(root, demo_cache, assets, names, args)
        if control:
            in_pytest = sum(control.values())
            print(f"  bare evaluations inside pytest: {in_pytest:.2f}s (in this plain process: {bare_sum:.2f}s, "
                  f"x{in_pytest / bare_sum:.2f})")
            for (side, name), seconds in sorted(control.items()):
                print(f"    model {side} {name:9s} {seconds:7.2f}s (plain process median "
                      f"{median(bare_t[(side, name)]):.2f}s)")
            if summary:
                print(f"  plugin session evaluations / bare evaluations inside pytest: "
                      f"{summary['evaluation_seconds'] / in_pytest:.3f}")
            result["session"]["bare_inside_pytest_s"] = in_pytest
            result["session"]["bare_inside_pytest"] = {f"{k[0]}/{k[1]}": v for k, v in control.items()}

    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2, default=str))
    if created:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
