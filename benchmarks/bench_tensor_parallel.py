"""A model split across N processes vs the same model whole (a benchmark script, not a test).

For one model (default: the demo's model B), through the plugin's own path
(``ComparisonRun(...).evaluator.evaluate``, cache read off):

- **whole**: DeepSpeed, one process (``--tp 1``), the model in this process;
- **split**: ``--tp N``: N ranks launched by the plugin, DeepSpeed AutoTP shards.

It reports the start-up (launching the ranks and loading the model), each
benchmark's evaluation time, the shutdown, the split/whole ratios, and whether
every document's score is the same. On CPU (gloo) the split model is slower:
the point there is that it runs the real launch and scores identically. On a
machine with N GPUs (``--device cuda``, a model too big for one GPU) the same
script measures the real trade.

Run:  .venv/bin/python benchmarks/bench_tensor_parallel.py [--tp 2] [--device cpu] [--limit N]
      [--benchmarks hellaswag,mbpp,mmlu] [--model-dir DIR --data-dir DIR] [--threads 1]
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

from _common import apply_env, build_demo, work_root  # noqa: E402


def measure(model_dir: Path, data_dir: Path, cache: Path, tp: int, device: str, limit, benchmarks: list[str], dtype: str):
    from pytest_qwencmp.config.benchmarks import builtin_registry
    from pytest_qwencmp.config.expectations import NO_EXPECTATIONS
    from pytest_qwencmp.session import ComparisonRun
    from pytest_qwencmp.config.settings import parse_settings

    registry = builtin_registry()
    raw = {"model_a": str(model_dir), "model_b": str(model_dir), "data_dir": str(data_dir), "cache_dir": str(cache),
           "backend": "deepspeed", "device": device, "dtype": dtype, "batch_size": "16" if device == "cpu" else "auto",
           "tp_b": str(tp), "no_cache": True, "limit": limit}
    run = ComparisonRun(parse_settings(raw, registry.names()), registry, NO_EXPECTATIONS)
    handle = run.handle("b")
    started = time.perf_counter()
    handle.load()
    timings = {"start-up (launch + load)": time.perf_counter() - started}
    evaluations = {}
    for name in benchmarks:
        started = time.perf_counter()
        evaluations[name] = run.evaluator.evaluate("b", name)
        timings[name] = time.perf_counter() - started
    started = time.perf_counter()
    run.close()
    timings["shutdown"] = time.perf_counter() - started
    return timings, evaluations


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tp", type=int, default=2)
    parser.add_argument("--device", default="cpu", help="cpu (gloo) or cuda (NCCL, needs --tp GPUs)")
    parser.add_argument("--dtype", default="float32", help="float32 on CPU; float16 on CUDA")
    parser.add_argument("--limit", default=None)
    parser.add_argument("--benchmarks", default="hellaswag,mbpp,mmlu")
    parser.add_argument("--model-dir", default=None, help="a local model (default: the demo's model B)")
    parser.add_argument("--data-dir", default=None, help="local datasets (default: the demo's)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--work-dir", default=None)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    apply_env(args.threads)
    root, created = work_root(args.work_dir, "qwencmp-bench-tp-")
    try:
        if args.model_dir:
            model_dir, data_dir = Path(args.model_dir), Path(args.data_dir)
        else:
            assets, seconds = build_demo(root)
            model_dir, data_dir = assets.model_b, assets.data_dir
            print(f"demo assets ready in {seconds:.1f}s")
        names = [n for n in args.benchmarks.split(",") if n]
        whole_t, whole_e = measure(model_dir, data_dir, root / "whole", 1, args.device, args.limit, names, args.dtype)
        split_t, split_e = measure(model_dir, data_dir, root / "split", args.tp, args.device, args.limit, names, args.dtype)
        print(f"\n{model_dir.name}: whole (1 process) vs split (--tp {args.tp}), {args.device}, {args.dtype}; seconds")
        print(f"{'phase':<26}{'whole':>8}{'split':>8}{'ratio':>8}  same per-document scores")
        print("-" * 72)
        report = {}
        for phase in whole_t:
            same = ""
            if phase in whole_e:
                a, b = whole_e[phase], split_e[phase]
                same = str(all(x.per_doc == y.per_doc and x.value == y.value for x, y in zip(a.items, b.items))
                           and len(a.items) == len(b.items))
            ratio = split_t[phase] / whole_t[phase] if whole_t[phase] else float("nan")
            print(f"{phase:<26}{whole_t[phase]:8.2f}{split_t[phase]:8.2f}{ratio:8.2f}  {same}")
            report[phase] = {"whole": whole_t[phase], "split": split_t[phase], "ratio": ratio, "same_scores": same or None}
        if args.json:
            Path(args.json).write_text(json.dumps(report, indent=2))
    finally:
        if created:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
