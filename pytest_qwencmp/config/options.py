"""The plugin's options: names, help texts, ini keys, and their raw values for ``parse_settings``.

``OPTIONS`` lists every command-line option as ``(flag, argparse keywords, ini
key or None)``; the plugin registers them with pytest. :func:`raw_options`
reads their values through two callables (the command line's value of a dest,
the ini file's value of a key), so it needs no pytest: a path-valued ini key
is taken relative to the ini file's folder, ``--demo`` picks the demo's
expectations file, and the reporting options (JSON, Markdown, baselines,
shards) are left to the session. Nothing here imports torch.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

OPTIONS: list[tuple[str, dict[str, Any], str | None]] = [
    ("--model-a", dict(metavar="MODEL", help="Model A (the baseline): hub id such as Qwen/Qwen2.5-1.5B or a local directory; ID@REV pins a revision."), "qwencmp_model_a"),
    ("--model-b", dict(metavar="MODEL", help="Model B (the candidate), as for --model-a."), "qwencmp_model_b"),
    ("--revision-a", dict(metavar="REV", help="Hub revision (branch, tag or commit) of model A."), None),
    ("--revision-b", dict(metavar="REV", help="Hub revision of model B."), None),
    ("--demo", dict(action="store_true", default=False, help="Run the embedded demo: two small local models and synthetic data, no GPU or network."), None),
    ("--data-dir", dict(metavar="DIR", help="Folder with local dataset copies in their hub layout (DIR/cais/mmlu, DIR/Rowan/hellaswag, DIR/google-research-datasets/mbpp); nothing then touches the hub."), "qwencmp_data_dir"),
    ("--benchmarks", dict(metavar="LIST", help="Comma-separated subset of benchmarks to run, e.g. mmlu,hellaswag."), "qwencmp_benchmarks"),
    ("--limit", dict(metavar="N", help="Documents per task (per MMLU subject), for smoke runs; numbers are then not comparable to full runs."), None),
    ("--num-fewshot", dict(action="append", default=None, metavar="BENCH=N", help="Few-shot examples for a benchmark, e.g. mbpp=2 (repeatable)."), "qwencmp_num_fewshot"),
    ("--samples", dict(action="append", default=None, metavar="BENCH=K", help="Sample K answers per problem of a generation benchmark, e.g. mbpp=5 (repeatable): pass@1 per problem is then c/K (Chen et al. 2021), compared with the paired permutation test. Default 1."), "qwencmp_samples"),
    ("--dtype", dict(metavar="DTYPE", help="Weights dtype: float16, bfloat16 or float32 (default: float16, as in the reference study)."), "qwencmp_dtype"),
    ("--backend", dict(metavar="NAME", help="auto, deepspeed or hf (default: auto = DeepSpeed on CUDA, transformers on CPU)."), "qwencmp_backend"),
    ("--device", dict(metavar="DEVICE", help="auto, cpu, cuda or cuda:N (default: auto = cuda when a GPU is visible, else cpu)."), "qwencmp_device"),
    ("--batch-size", dict(metavar="N", help="Batch size for lm-eval: an integer or auto (default: auto = detected per benchmark and model on CUDA, 16 on CPU)."), "qwencmp_batch_size"),
    ("--tp", dict(metavar="N", help="Tensor parallelism: split each model across N GPUs with DeepSpeed (for models that do not fit one GPU)."), "qwencmp_tp"),
    ("--tp-a", dict(metavar="N", help="Tensor-parallel size for model A only (overrides --tp)."), "qwencmp_tp_a"),
    ("--tp-b", dict(metavar="N", help="Tensor-parallel size for model B only (overrides --tp)."), "qwencmp_tp_b"),
    ("--temperature", dict(metavar="T", help="Sampling temperature for generation benchmarks (default 0.1; 0 = greedy)."), "qwencmp_temperature"),
    ("--top-p", dict(metavar="P", help="Nucleus sampling top_p for generation benchmarks (default 0.95)."), "qwencmp_top_p"),
    ("--seed", dict(metavar="N", help="Seed for sampling and few-shot selection (default 1234)."), "qwencmp_seed"),
    ("--eval-cache-dir", dict(metavar="DIR", help="Where evaluation results and demo assets are cached (default .qwencmp in the rootdir)."), "qwencmp_cache_dir"),
    ("--no-eval-cache", dict(action="store_true", default=False, help="Ignore cached evaluations: evaluate again (the fresh results are cached)."), None),
    ("--expectations", dict(metavar="FILE", help="Expectations TOML file: the rules that decide each item's pass or fail."), "qwencmp_expectations"),
    ("--correction", dict(metavar="METHOD", help="Multiple-comparison correction across a benchmark's subjects: holm (default), bh or none."), "qwencmp_correction"),
    ("--sequential", dict(action="store_true", default=None, help="Stop when decided: evaluate each benchmark's documents in seeded random looks and stop once every item with an expectation is decided (group-sequential, error rates kept)."), "qwencmp_sequential"),
    ("--sequential-looks", dict(metavar="FRACTIONS", help="With --sequential: the looks, as fractions of each task's documents (default 0.125,0.25,0.5,1)."), "qwencmp_sequential_looks"),
    ("--qwencmp-baseline-save", dict(metavar="NAME", help="Save this run (scores, per-document results, settings, models, machine, commit) as baseline NAME."), None),
    ("--qwencmp-baseline-compare", dict(metavar="NAME", help="Compare model B with its results in baseline NAME (paired, per item); regressions beyond baseline_tolerance fail."), None),
    ("--qwencmp-baseline-dir", dict(metavar="DIR", help="Where baselines are kept (default .qwencmp/baselines in the rootdir)."), "qwencmp_baseline_dir"),
    ("--qwencmp-baseline-allow-mismatch", dict(action="store_true", default=False, help="Compare with a baseline even when number-changing settings differ (they are listed)."), None),
    ("--qwencmp-reevaluate-imported", dict(action="store_true", default=False, help="Evaluate anew what an imported cache entry (cache import) holds under other number-changing settings, instead of stopping at the start."), None),
    ("--qwencmp-json", dict(metavar="FILE", help="Write all results (per-model lm-eval results, the comparison, the settings) as JSON; schema: pytest_qwencmp/report/results.schema.json."), None),
    ("--qwencmp-markdown", dict(metavar="FILE", help="Write the comparison tables as GitHub-flavoured Markdown (also appended to $GITHUB_STEP_SUMMARY when set)."), None),
    ("--lock-timeout", dict(metavar="SECONDS", help="How long to wait for another run (or xdist worker) that evaluates the same model and benchmark, then fail (default 7200)."), "qwencmp_lock_timeout"),
    ("--qwencmp-shard", dict(metavar="K/N", help="Run shard K of N: the selected benchmarks split over N jobs by expected cost (merge the jobs' --qwencmp-json files with `python -m pytest_qwencmp merge`)."), None),
    ("--apply-chat-template", dict(nargs="?", const=True, default=None, metavar="NAME", help="Apply the tokenizer's chat template to both models' prompts, as lm-eval's --apply_chat_template; --apply-chat-template=NAME picks a named template."), None),
    ("--apply-chat-template-a", dict(nargs="?", const=True, default=None, metavar="NAME", help="Chat template for model A only (as --apply-chat-template)."), None),
    ("--apply-chat-template-b", dict(nargs="?", const=True, default=None, metavar="NAME", help="Chat template for model B only, e.g. base (A, plain) vs instruct (B, templated)."), None),
    ("--fewshot-as-multiturn", dict(nargs="?", const="true", default=None, metavar="BOOL", help="With a chat template, few-shot examples as a multi-turn chat (lm-eval's default: true); =false puts them in one user turn."), None),
    ("--system-instruction", dict(metavar="TEXT", help="System instruction for both models (a system turn with a chat template, else prepended text), as lm-eval's --system_instruction."), None),
    ("--system-instruction-a", dict(metavar="TEXT", help="System instruction for model A only."), None),
    ("--system-instruction-b", dict(metavar="TEXT", help="System instruction for model B only."), None),
    ("--peft-a", dict(metavar="DIR|ID", help="PEFT (LoRA) adapter applied on model A: a folder with adapter_config.json, or a hub id (ID@REV pins a revision)."), None),
    ("--peft-b", dict(metavar="DIR|ID", help="PEFT (LoRA) adapter applied on model B, e.g. --model-b = --model-a plus --peft-b to test a fine-tune."), None),
    ("--model-args-a", dict(metavar="KEY=VALUE,...", help="Model A's settings in lm-eval's --model_args syntax: trust_remote_code, attn_implementation, max_length, load_in_4bit, dtype, ..."), None),
    ("--model-args-b", dict(metavar="KEY=VALUE,...", help="Model B's settings, as --model-args-a."), None),
]
INI_TYPES = {"qwencmp_num_fewshot": "linelist", "qwencmp_samples": "linelist", "qwencmp_sequential": "bool"}  # the others are strings
PATH_INI = {"qwencmp_data_dir", "qwencmp_cache_dir", "qwencmp_expectations", "qwencmp_baseline_dir"}
REPORTING_OPTIONS = (
    "qwencmp_json", "qwencmp_markdown", "qwencmp_baseline_save", "qwencmp_baseline_compare",
    "qwencmp_baseline_dir", "qwencmp_baseline_allow_mismatch", "qwencmp_reevaluate_imported",
    "qwencmp_shard",
)


def ini_help(flag: str, help_text: str) -> str:
    """An ini key's help: the option it stands for, then that option's help (never the key itself)."""
    return f"{flag} when the command line does not give it. {help_text}"


def dest(flag: str) -> str:
    """The argparse dest of ``--flag``: ``qwencmp_`` plus its name."""
    name = flag[2:].replace("-", "_")
    return name if name.startswith("qwencmp_") else "qwencmp_" + name


def option_value(option: Callable[[str], Any], ini: Callable[[str], Any], ini_base: Path, flag: str, key: str | None) -> Any:
    """The command line's value of ``flag``, else its ini key's (a path key relative to ``ini_base``), else None."""
    value = option(dest(flag))
    if value not in (None, []) or key is None:
        return value
    ini_value = ini(key)
    if ini_value in (None, "", []):
        return None
    if key in PATH_INI:
        return str(ini_base / str(ini_value))
    return ini_value


def raw_options(option: Callable[[str], Any], ini: Callable[[str], Any], ini_base: Path, rootpath: Path) -> dict[str, Any]:
    """Every comparison option's raw value, keyed as ``parse_settings`` reads them."""
    raw = {flag[2:].replace("-", "_"): option_value(option, ini, ini_base, flag, key) for flag, _, key in OPTIONS}
    raw["cache_dir"] = raw.pop("eval_cache_dir") or str(rootpath / ".qwencmp")
    raw["no_cache"] = raw.pop("no_eval_cache")
    for name in REPORTING_OPTIONS:
        raw.pop(name)
    raw["models_from_ini"] = option("qwencmp_model_a") is None and option("qwencmp_model_b") is None
    raw["data_dir_from_ini"] = option("qwencmp_data_dir") is None
    if raw["demo"] and option("qwencmp_expectations") is None:
        demo_file = ini("qwencmp_demo_expectations")
        raw["expectations"] = str(ini_base / demo_file) if demo_file else None
    for key in ("temperature", "top_p", "seed"):
        if raw[key] is None:
            raw.pop(key)
    return raw
