"""How much narrower is the paired CI than the unpaired one? (a measurement script, not a test)

For every item of a demo comparison, prints the 95 % CI width of B − A from the
paired per-document analysis (what pytest-qwencmp reports) next to the width an
unpaired analysis of the same two scores gives (Δ ± 1.96·√(sa² + sb²), what
lm-eval's model_comparator does). Two pairs are measured on the demo data:

- demo A vs demo B: B answers nearly everything correctly, so the two models'
  answers are barely correlated;
- demo A vs demo A run in bfloat16: the same model in two dtypes, answers
  strongly correlated — the case pairing is for (two checkpoints of one model).

Run: .venv/bin/python benchmarks/paired_vs_unpaired.py [--cache-dir DIR]
"""

from __future__ import annotations

import argparse
import os
import statistics as pystats
from pathlib import Path

from pytest_qwencmp.config.benchmarks import builtin_registry
from pytest_qwencmp.comparison import compare_benchmark
from pytest_qwencmp.demo.build import build_demo_assets
from pytest_qwencmp.config.expectations import NO_EXPECTATIONS
from pytest_qwencmp.session import ComparisonRun
from pytest_qwencmp.config.settings import parse_settings
from pytest_qwencmp.stats.paired import Score, compare_unpaired

REGISTRY = builtin_registry()


def widths(run_a: ComparisonRun, side_a: str, run_b: ComparisonRun, side_b: str, benchmark: str):
    evaluation_a = run_a.evaluator.evaluate(side_a, benchmark)
    evaluation_b = run_b.evaluator.evaluate(side_b, benchmark)
    rows = []
    for item_id, c in compare_benchmark(REGISTRY.get(benchmark), evaluation_a, evaluation_b, NO_EXPECTATIONS).items():
        if c.paired is None:
            continue
        low, high = compare_unpaired(Score(c.a.value, c.a.stderr or 0.0, c.a.n), Score(c.b.value, c.b.stderr or 0.0, c.b.n))
        rows.append((item_id, (c.paired.ci_high - c.paired.ci_low) * 100, (high - low) * 100))
    return rows


def report(title: str, rows) -> None:
    print(f"\n{title}")
    narrower = sum(1 for _, p, u in rows if p < u)
    print(f"  items: {len(rows)}; paired CI narrower on {narrower}")
    ratios = [p / u for _, p, u in rows if u > 0]
    if ratios:
        print(f"  median width ratio paired/unpaired: {pystats.median(ratios):.3f}")
    for item_id, p, u in rows:
        if item_id.startswith("overall") or len(rows) <= 3:
            print(f"  {item_id:10s} paired {p:6.2f} points   unpaired {u:6.2f} points   ratio {p / u if u else float('nan'):.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache-dir", default=".qwencmp")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    cache = Path(args.cache_dir).resolve()
    assets = build_demo_assets(cache / "demo")
    base = {"model_a": str(assets.model_a), "model_b": str(assets.model_b), "data_dir": str(assets.data_dir), "cache_dir": str(cache)}
    fp32 = ComparisonRun(parse_settings(base, REGISTRY.names()), REGISTRY, NO_EXPECTATIONS)
    bf16 = ComparisonRun(parse_settings({**base, "dtype": "bfloat16"}, REGISTRY.names()), REGISTRY, NO_EXPECTATIONS)
    for benchmark in ("mmlu", "hellaswag", "mbpp"):
        report(f"{benchmark}: demo A vs demo B (float32)", widths(fp32, "a", fp32, "b", benchmark))
        report(f"{benchmark}: demo A float32 vs demo A bfloat16", widths(fp32, "a", bf16, "a", benchmark))


if __name__ == "__main__":
    main()
