"""Base vs instruct and base vs LoRA on the embedded demo: the model-setup options end to end
(a benchmark script, not a test; about 3-5 minutes on 2 CPU cores).

  base vs instruct   A = demo model B, plain prompts; B = the same weights with a ChatML chat template
                     on the tokenizer, run with --apply-chat-template-b (lm-eval renders every prompt
                     through the template). The demo models were trained on plain prompts, so the
                     template is expected to hurt: this shows the option changes what the model sees.
  base vs LoRA       A = demo model A; B = demo model A plus a rank-8 LoRA adapter fine-tuned 30 steps on
                     the demo's training items (--peft-b): a fine-tune that should help.

Each comparison runs ``pytest evals/`` on all three benchmarks with ``--qwencmp-json`` and prints
A, B and the paired difference per headline item.

  python benchmarks/model_setup_demo.py [--work-dir DIR] [--demo-cache DIR] [--limit N] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import build_demo, offline_env, run_pytest, work_root  # noqa: E402

HEADLINE = {("mmlu", "overall"), ("hellaswag", "acc"), ("hellaswag", "acc_norm"), ("mbpp", "pass@1")}


def compare(name: str, work: Path, data_dir: Path, args: list[str], limit: int | None) -> dict:
    results = work / f"{name}.json"
    (work / "no-expectations.toml").write_text("")
    wall, done = run_pytest(
        ["evals/", "-q", "-p", "no:cacheprovider", f"--data-dir={data_dir}", f"--eval-cache-dir={work / 'cache'}",
         f"--expectations={work / 'no-expectations.toml'}", f"--qwencmp-json={results}", *args,
         *([f"--limit={limit}"] if limit else [])],
        env=offline_env(None),
    )
    if not results.exists():
        raise SystemExit(f"{name}: no results\n{done.stdout[-4000:]}\n{done.stderr[-2000:]}")
    document = json.loads(results.read_text())
    rows = [
        {k: c.get(k) for k in ("benchmark", "item", "model_a", "model_b", "a", "b", "delta", "ci_low", "ci_high", "significance", "warnings")}
        for c in document["comparisons"] if (c["benchmark"], c["item"]) in HEADLINE
    ]
    print(f"\n{name}  ({wall:.0f}s)  A = {rows[0]['model_a']}, B = {rows[0]['model_b']}")
    for r in rows:
        print(f"  {r['benchmark']:9} {r['item']:8}  A {r['a']:6.2f}  B {r['b']:6.2f}  B-A {r['delta']:+7.2f}  "
              f"95% CI [{r['ci_low']:+.2f}, {r['ci_high']:+.2f}]  {r['significance']}")
        for warning in r.get("warnings") or []:
            print(f"            warning: {warning}")
    return {"wall_seconds": round(wall, 1), "setup_b": document["models"]["b"].get("setup"), "rows": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work-dir", help="scratch folder (default: a new temp dir, removed afterwards)")
    parser.add_argument("--demo-cache", help="a cache folder that already holds demo/ (skips the demo build)")
    parser.add_argument("--limit", type=int, default=None, help="documents per task (default: all)")
    parser.add_argument("--json", help="write the figures to this file")
    args = parser.parse_args()
    work, created = work_root(args.work_dir, "qwencmp-model-setup-")
    try:
        from pytest_qwencmp.demo import variants as demo_variants

        assets, _ = build_demo(Path(args.demo_cache) if args.demo_cache else work / "cache")
        chat = demo_variants.chat_variant(assets.model_b, work / "variants" / "model_b_chat")
        lora = demo_variants.lora_adapter(assets.model_a, work / "variants" / "model_a_lora")
        figures = {
            "base_vs_instruct": compare("base vs instruct", work, assets.data_dir,
                                        [f"--model-a={assets.model_b}", f"--model-b={chat}", "--apply-chat-template-b"], args.limit),
            "base_vs_lora": compare("base vs LoRA", work, assets.data_dir,
                                    [f"--model-a={assets.model_a}", f"--model-b={assets.model_a}", f"--peft-b={lora}"], args.limit),
        }
        if args.json:
            Path(args.json).write_text(json.dumps(figures, indent=2))
    finally:
        if created:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
