"""GPU throughput at the real Qwen2.5-1.5B / Qwen2.5-7B sizes, and the plugin vs bare lm-eval on a GPU
(a benchmark script, not a test; meant for one H200, finishes in a few minutes).

Sections (each guarded: a failure prints its traceback and the script goes on; a time budget skips
what would not fit):

  0. configs     the exact Qwen2.5-1.5B and Qwen2.5-7B configurations, parameter counts checked on
                 the meta device against the published totals (1,543,714,304 and 7,615,616,512).
  1. throughput  randomly initialised ``Qwen2ForCausalLM`` built directly on the device in fp16, with
                 plain transformers and with ``deepspeed.init_inference(model, dtype=torch.float16,
                 replace_with_kernel_inject=False)`` (the plugin's CUDA path; skipped when DeepSpeed
                 is not importable), on three lm-eval-shaped workloads made of random token ids:
                   mmlu       loglikelihood, ~600-token prompts, 1-token continuations, batch 16
                   hellaswag  loglikelihood, 80-token context + 20-token ending per request, batch 16 and 64
                   mbpp       generation, ~600-token prompts, 256 new tokens, batch 16 and 32,
                              the plugin's sampling (do_sample, temperature 0.1, top_p 0.95; greedy if
                              sampling fails on random logits), EOS suppressed so every row makes 256 tokens
                 Loglikelihood steps run as lm-eval's HFLM runs them: one forward over the padded batch,
                 then log_softmax over every position, then the continuation's log-probs and greedy check.
                 FLOPs: 2 x (non-embedding params + lm_head) x tokens for loglikelihood (logits at every
                 position); for generation 2 x non-embedding params x (prompt + new tokens) plus the lm_head
                 for one position per step; "+attn" adds the causal attention matmuls. MFU is against the
                 device's dense fp16 tensor peak (H100/H200 SXM 989.4 TFLOP/s, NVL 835.5; --peak-tflops).
  2. lm-eval     the plugin's path vs bare ``lm_eval.simple_evaluate`` on the SAME HFLM (the random 1.5B
                 model, the demo tokenizer -- ids < its ~2k vocabulary are valid for the 151,936-row
                 embedding -- and the demo's local MMLU / HellaSwag / MBPP data, real lm-eval task
                 definitions); plugin = ``ComparisonRun(...).evaluator.evaluate`` with the cache read off,
                 the preloaded HFLM handed to it in place of loading weights from disk. Skipped when lm-eval
                 is not importable.

Output: a summary table on stdout (progress lines flushed as it goes) and, when $OUT is set,
$OUT/gpu_results.json (rewritten after every section, so a timeout keeps what finished).

Run on the GPU machine:  python benchmarks/gpu_throughput.py [--budget-s 330] [--skip-7b] [--demo-cache DIR]
Smoke test on CPU:       .venv/bin/python benchmarks/gpu_throughput.py --tiny
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import tempfile
import time
import traceback
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # pytest_qwencmp need not be installed on the GPU machine

T0 = time.perf_counter()

# The published configurations (config.json of the base models on the hub), written out in full.
QWEN25_CONFIGS: dict[str, dict] = {
    "Qwen2.5-1.5B": dict(
        hidden_size=1536,
        intermediate_size=8960,
        num_hidden_layers=28,
        num_attention_heads=12,
        num_key_value_heads=2,
        vocab_size=151936,
        max_position_embeddings=131072,
        rope_theta=1000000.0,
        rms_norm_eps=1e-6,
        tie_word_embeddings=True,
        hidden_act="silu",
        initializer_range=0.02,
        attention_dropout=0.0,
        use_sliding_window=False,
        sliding_window=131072,
        max_window_layers=21,
        bos_token_id=151643,
        eos_token_id=151643,
        use_cache=True,
    ),
    "Qwen2.5-7B": dict(
        hidden_size=3584,
        intermediate_size=18944,
        num_hidden_layers=28,
        num_attention_heads=28,
        num_key_value_heads=4,
        vocab_size=152064,  # the 7B (like 14B/32B/72B) has 152,064 rows; 0.5B-3B have 151,936
        max_position_embeddings=131072,
        rope_theta=1000000.0,
        rms_norm_eps=1e-6,
        tie_word_embeddings=False,
        hidden_act="silu",
        initializer_range=0.02,
        attention_dropout=0.0,
        use_sliding_window=False,
        sliding_window=131072,
        max_window_layers=28,
        bos_token_id=151643,
        eos_token_id=151643,
        use_cache=True,
    ),
}
PUBLISHED_PARAMETERS = {"Qwen2.5-1.5B": 1_543_714_304, "Qwen2.5-7B": 7_615_616_512}

# --tiny: same architecture and vocabulary, toy widths, so the whole script runs on a CPU in about a minute.
TINY_OVERRIDES = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2)

FULL_WORKLOADS = {
    "mmlu": dict(kind="loglikelihood", context=600, continuation=1, batches=(16,), steps=6),
    "hellaswag": dict(kind="loglikelihood", context=80, continuation=20, batches=(16, 64), steps=8),
    "mbpp": dict(kind="generate", context=600, new_tokens=256, batches=(16, 32), steps=1),
}
TINY_WORKLOADS = {
    "mmlu": dict(kind="loglikelihood", context=48, continuation=1, batches=(4,), steps=2),
    "hellaswag": dict(kind="loglikelihood", context=16, continuation=4, batches=(4,), steps=2),
    "mbpp": dict(kind="generate", context=32, new_tokens=8, batches=(2,), steps=1),
}
PEAKS_TFLOPS = (("H200 NVL", 835.5), ("H100 NVL", 835.5), ("H200", 989.4), ("H100", 989.4), ("A100", 312.0))
SAMPLING = dict(do_sample=True, temperature=0.1, top_p=0.95)  # the plugin's generation defaults
LM_EVAL_BENCHMARKS = ("mmlu", "hellaswag", "mbpp")


def log(message: str) -> None:
    print(f"[{time.perf_counter() - T0:6.1f}s] {message}", flush=True)


class Results:
    """Everything measured so far; written to $OUT/gpu_results.json after each section."""

    def __init__(self, out_dir: str | None) -> None:
        self.path = Path(out_dir) / "gpu_results.json" if out_dir else None
        self.data: dict = {"sections": {}, "throughput": [], "lm_eval": [], "errors": [], "skipped": []}

    def save(self) -> None:
        if self.path is None:
            return
        self.data["elapsed_s"] = round(time.perf_counter() - T0, 1)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps(self.data, indent=2, default=str))
            tmp.replace(self.path)
        except OSError as exc:  # never lose the run over the report
            print(f"could not write {self.path}: {exc}", flush=True)


class Budget:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    @property
    def left(self) -> float:
        return self.seconds - (time.perf_counter() - T0)

    def allows(self, needed: float, what: str, results: Results) -> bool:
        if self.left >= needed:
            return True
        message = f"skipped {what}: {self.left:.0f}s of the budget left, needs ~{needed:.0f}s"
        log(message)
        results.data["skipped"].append(message)
        return False


@contextmanager
def section(name: str, results: Results):
    started = time.perf_counter()
    log(f"--- {name}")
    try:
        yield
        results.data["sections"][name] = {"ok": True, "seconds": round(time.perf_counter() - started, 1)}
    except Exception as exc:  # one failure must not lose the other sections
        traceback.print_exc()
        sys.stdout.flush()
        results.data["sections"][name] = {"ok": False, "seconds": round(time.perf_counter() - started, 1),
                                          "error": f"{type(exc).__name__}: {exc}"[:500]}
        results.data["errors"].append(f"{name}: {type(exc).__name__}: {exc}"[:500])
        log(f"section {name} FAILED: {type(exc).__name__}: {exc}")
    finally:
        results.save()


# --------------------------------------------------------------------------- models and FLOPs


def make_config(name: str, tiny: bool):
    from transformers import Qwen2Config

    values = dict(QWEN25_CONFIGS[name])
    if tiny:
        values.update(TINY_OVERRIDES)
    return Qwen2Config(**values)


def count_parameters(config) -> dict[str, int]:
    """Parameter counts from a meta-device instance (no memory, no init)."""
    import torch
    from transformers import Qwen2ForCausalLM

    with torch.device("meta"):
        model = Qwen2ForCausalLM(config)
    return parameter_counts(model)


def parameter_counts(model) -> dict[str, int]:
    total = sum(p.numel() for p in model.parameters())
    embedding = model.model.embed_tokens.weight.numel()
    head = model.lm_head.weight.numel()
    tied = model.lm_head.weight is model.model.embed_tokens.weight
    non_embedding = total - embedding - (0 if tied else head)
    return {"total": total, "non_embedding": non_embedding, "lm_head": head, "tied": tied}


def build_model(config, device: str, dtype):
    """A randomly initialised model created directly on ``device`` in ``dtype`` (no fp32 copy, no host copy)."""
    import torch
    from transformers import Qwen2ForCausalLM

    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            model = Qwen2ForCausalLM(config)
    finally:
        torch.set_default_dtype(previous)
    model = model.to(dtype=dtype)  # buffers too; a no-op for parameters already in dtype
    model.eval()
    model.requires_grad_(False)
    return model


def attention_width(config) -> int:
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    return config.num_attention_heads * head_dim


def loglikelihood_flops(params: dict, config, batch: int, length: int) -> tuple[float, float]:
    """(matmul FLOPs, attention FLOPs) of one forward over batch x length tokens, logits at every position."""
    dense = 2.0 * (params["non_embedding"] + params["lm_head"]) * batch * length
    attention = 2.0 * config.num_hidden_layers * attention_width(config) * length * length * batch  # causal QK^T + AV
    return dense, attention


def generate_flops(params: dict, config, batch: int, prompt: int, new: int) -> tuple[float, float]:
    dense = 2.0 * params["non_embedding"] * batch * (prompt + new) + 2.0 * params["lm_head"] * batch * new
    width = attention_width(config)
    attention = 2.0 * config.num_hidden_layers * width * prompt * prompt * batch  # prefill, causal
    attention += 4.0 * config.num_hidden_layers * width * batch * (new * prompt + new * (new - 1) / 2)  # decode
    return dense, attention


def peak_tflops(device: str, given: float | None) -> tuple[float | None, str]:
    if given:
        return given, "given"
    if not device.startswith("cuda"):
        return None, "cpu: no MFU"
    import torch

    name = torch.cuda.get_device_name()
    for key, peak in PEAKS_TFLOPS:
        if key in name:
            return peak, f"{name}: dense fp16 tensor peak"
    return None, f"{name}: unknown peak, pass --peak-tflops"


# --------------------------------------------------------------------------- workloads


def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def random_ids(batch: int, length: int, vocab: int, device: str, seed: int):
    import torch

    generator = torch.Generator(device="cpu").manual_seed(seed)
    # Avoid the special ids at the top of the vocabulary; any id below it is a valid input.
    return torch.randint(0, min(vocab, 151643), (batch, length), generator=generator).to(device)


def loglikelihood_step(model, ids, continuation: int):
    """lm-eval HFLM's loglikelihood work for one padded batch: forward, log_softmax, gather, greedy check."""
    import torch
    import torch.nn.functional as F

    logits = model(ids).logits
    logprobs = F.log_softmax(logits, dim=-1)
    targets = ids[:, -continuation:]
    span = logprobs[:, -continuation - 1:-1, :]
    chosen = torch.gather(span, 2, targets.unsqueeze(-1)).squeeze(-1).sum(-1)
    greedy = (span.argmax(dim=-1) == targets).all(dim=-1)
    return chosen, greedy


def time_loglikelihood(model, config, params, device, batch, spec, peak) -> dict:
    import torch

    length = spec["context"] + spec["continuation"]
    batches = [random_ids(batch, length, config.vocab_size, device, seed=i) for i in range(spec["steps"] + 1)]
    with torch.inference_mode():
        loglikelihood_step(model, batches[0], spec["continuation"])  # warm-up (kernels, allocator)
        synchronize(device)
        started = time.perf_counter()
        for ids in batches[1:]:
            loglikelihood_step(model, ids, spec["continuation"])
        synchronize(device)
        seconds = time.perf_counter() - started
    tokens = batch * length * spec["steps"]
    dense, attention = loglikelihood_flops(params, config, batch, length)
    return finish_row(seconds, tokens, dense * spec["steps"], attention * spec["steps"], peak,
                      {"batch": batch, "seq_len": length, "steps": spec["steps"], "requests": batch * spec["steps"]})


def logits_are_finite(model, ids) -> bool:
    import torch

    with torch.inference_mode():
        return bool(torch.isfinite(model(ids[:, -64:]).logits[:, -1, :].float()).all())


def time_generate(model, config, params, device, batch, spec, peak) -> dict:
    import torch

    prompt = random_ids(batch, spec["context"], config.vocab_size, device, seed=7)
    mask = torch.ones_like(prompt)
    eos = config.eos_token_id

    def run(new_tokens: int, sampling: dict):
        return model.generate(input_ids=prompt, attention_mask=mask, max_new_tokens=new_tokens,
                              min_new_tokens=new_tokens, eos_token_id=eos, pad_token_id=eos, **sampling)

    sampling = dict(SAMPLING)
    with torch.inference_mode():
        # Sampling from non-finite logits trips a device-side assert in torch.multinomial, which would
        # poison the CUDA context for every later section: check the random model's logits first.
        if not logits_are_finite(model, prompt):
            log("      random-weight logits are not finite: timing greedy decoding instead of sampling")
            sampling = {"do_sample": False}
        run(4, sampling)  # warm-up
        synchronize(device)
        started = time.perf_counter()
        output = run(spec["new_tokens"], sampling)
        synchronize(device)
        seconds = time.perf_counter() - started
    new = output.shape[1] - prompt.shape[1]
    dense, attention = generate_flops(params, config, batch, spec["context"], new)
    row = finish_row(seconds, batch * new, dense, attention, peak,
                     {"batch": batch, "prompt_len": spec["context"], "new_tokens": new,
                      "decoding": "sample t=0.1 p=0.95" if sampling.get("do_sample") else "greedy"})
    row["ms_per_step"] = round(1e3 * seconds / max(new, 1), 2)
    row["tokens_incl_prompt_per_s"] = round(batch * (spec["context"] + new) / seconds, 1)
    return row


def finish_row(seconds, tokens, dense, attention, peak, extra) -> dict:
    row = dict(extra)
    row.update({
        "seconds": round(seconds, 4),
        "tokens_per_s": round(tokens / seconds, 1),
        "tflops": round(dense / seconds / 1e12, 2),
        "tflops_with_attn": round((dense + attention) / seconds / 1e12, 2),
    })
    if peak:
        row["mfu"] = round(dense / seconds / 1e12 / peak, 4)
        row["mfu_with_attn"] = round((dense + attention) / seconds / 1e12 / peak, 4)
    return row


def measure_backend(label, model, config, params, device, workloads, peak, results, budget) -> None:
    for name, spec in workloads.items():
        for batch in spec["batches"]:
            need = 25 if spec["kind"] == "generate" else 5
            if not budget.allows(need, f"{label} {name} batch {batch}", results):
                continue
            try:
                if spec["kind"] == "loglikelihood":
                    row = time_loglikelihood(model, config, params, device, batch, spec, peak)
                else:
                    row = time_generate(model, config, params, device, batch, spec, peak)
            except Exception as exc:  # e.g. out of memory at one batch size: keep the others
                traceback.print_exc()
                results.data["errors"].append(f"{label} {name} b{batch}: {type(exc).__name__}: {exc}"[:300])
                if device.startswith("cuda"):
                    import torch

                    torch.cuda.empty_cache()
                continue
            row.update({"model": label.split(" / ")[0], "backend": label.split(" / ")[1], "workload": name})
            results.data["throughput"].append(row)
            log(f"    {label:28s} {name:9s} b{batch:<3d} {row['tokens_per_s']:>11,.0f} tok/s  "
                f"{row['tflops']:7.1f} TFLOP/s" + (f"  MFU {100 * row['mfu']:5.1f}%" if "mfu" in row else ""))
            results.save()


def deepspeed_engine(model, device: str, dtype):
    import torch

    try:
        import deepspeed
    except Exception as exc:  # not installed here, or broken
        return None, f"DeepSpeed not importable ({type(exc).__name__}: {str(exc)[:120]})"
    if device.startswith("cuda"):
        os.environ.setdefault("LOCAL_RANK", "0")
        torch.cuda.set_device(torch.cuda.current_device())
    engine = deepspeed.init_inference(model, dtype=dtype, replace_with_kernel_inject=False)
    synchronize(device)
    same = engine.module is model
    return engine, f"deepspeed {deepspeed.__version__}; engine.module is the transformers model: {same}"


def free() -> None:
    """Give the memory of dropped models back (call after the last reference is gone)."""
    gc.collect()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except Exception:
        pass


# --------------------------------------------------------------------------- lm-eval: plugin vs bare


def demo_assets(given: str | None, scratch: Path):
    from pytest_qwencmp.demo.build import assets_at, build_demo_assets, is_complete

    candidates = [Path(given)] if given else [REPO / ".qwencmp" / "demo"]
    for root in candidates:
        built = assets_at(root / "demo-1") if (root / "demo-1").is_dir() else None
        if built and is_complete(built.root):
            return built, 0.0
        if root.name.startswith("demo-") and is_complete(root):
            return assets_at(root), 0.0
    started = time.perf_counter()
    assets = build_demo_assets(scratch / "demo")
    return assets, time.perf_counter() - started


def bare_lm_eval(lm, benchmark, settings):
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
                model=lm, tasks=list(benchmark.request), num_fewshot=shots, limit=settings.limit,
                task_manager=manager, log_samples=True, gen_kwargs=gen_kwargs, random_seed=settings.seed,
                numpy_random_seed=settings.seed, torch_random_seed=settings.seed,
                fewshot_random_seed=settings.seed, confirm_run_unsafe_code=True,
            )
        del manager
    return output, time.perf_counter() - started


def plugin_run_with(lm, info_fields: dict, settings, registry):
    """A ComparisonRun whose model A is the already-built HFLM (no weights on disk to load)."""
    from pytest_qwencmp.config.expectations import load_expectations
    from pytest_qwencmp.models.placement import PlacementRequest, plan_execution
    from pytest_qwencmp.models.loading import ModelHandle, ModelInfo, ModelSpec
    from pytest_qwencmp.session import ComparisonRun

    class PreloadedHandle(ModelHandle):
        @property
        def fingerprint(self) -> str:
            return info_fields["fingerprint"]

        def _load(self):
            self._lm = lm
            return ModelInfo(**info_fields)

    run = ComparisonRun(settings, registry, load_expectations(None, registry))
    plan = plan_execution(PlacementRequest(dtype=settings.dtype, backend=settings.backend, device=settings.device,
                                           batch_size=settings.batch_size, has_cuda=settings.device.startswith("cuda"),
                                           has_deepspeed=False))
    run._handles = {side: PreloadedHandle(side, ModelSpec(settings.model(side), plan, settings.dtype)) for side in ("a", "b")}
    return run


def lm_eval_section(model, device, dtype_name, args, results, budget, scratch: Path) -> None:
    try:
        import lm_eval  # noqa: F401
        from lm_eval.models.huggingface import HFLM
    except Exception as exc:
        message = f"lm-eval section skipped: lm-eval not importable ({type(exc).__name__}: {str(exc)[:120]})"
        log(message)
        results.data["skipped"].append(message)
        return
    import logging

    from transformers import AutoTokenizer

    from pytest_qwencmp.config.benchmarks import load_registry
    from pytest_qwencmp.config.settings import parse_settings

    os.environ.update({"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"})
    logging.getLogger("lm_eval.evaluator").setLevel(logging.ERROR)
    assets, build_s = demo_assets(args.demo_cache, scratch)
    log(f"    demo assets {'built in %.1fs' % build_s if build_s else 'reused'}: {assets.root}")
    tokenizer = AutoTokenizer.from_pretrained(str(assets.model_b))
    lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=args.lm_eval_batch, device=device)
    registry = load_registry([REPO / "evals" / "benchmarks.toml"])
    raw = {"model_a": str(assets.model_a), "model_b": str(assets.model_b), "data_dir": str(assets.data_dir),
           "cache_dir": str(scratch / "plugin-cache"), "no_cache": True, "limit": args.lm_eval_limit,
           "device": device, "backend": "hf", "dtype": dtype_name, "batch_size": str(args.lm_eval_batch),
           "models_from_ini": False}
    settings = parse_settings(raw, registry.names())
    info = dict(label="random-qwen2.5-1.5b", name_or_path="random-init", revision=None,
                fingerprint="random-init:" + results.data.get("lm_eval_model", "qwen2.5-1.5b"), backend="hf",
                dtype=dtype_name, requested_dtype=dtype_name, device=device,
                parameters=sum(p.numel() for p in model.parameters()), load_seconds=0.0, notice="")
    results.data["lm_eval_setup"] = {"model": info["fingerprint"], "tokenizer": "demo tokenizer (vocab %d)" % len(tokenizer),
                                     "batch_size": args.lm_eval_batch, "limit": args.lm_eval_limit,
                                     "data": "demo data (synthetic, lm-eval schemas), real lm-eval task definitions"}
    # Warm-up (untimed): the first HFLM batch, the first task build, imports of task helpers.
    bare_lm_eval(lm, registry.get("hellaswag"), parse_settings(dict(raw, limit=2), registry.names()))
    order_plan = ("bare", "plugin", "plugin", "bare") if args.lm_eval_rounds > 1 else ("bare", "plugin")
    finite = logits_are_finite(model, random_ids(1, 64, len(tokenizer), device, seed=3))
    for name in LM_EVAL_BENCHMARKS:
        benchmark = registry.get(name)
        if benchmark.generation and not finite:
            message = f"lm-eval {name} skipped: the random model's logits are not finite (sampling would assert)"
            log(message)
            results.data["skipped"].append(message)
            continue
        need = {"mmlu": 20, "hellaswag": 5, "mbpp": 15}[name]
        if not budget.allows(2 * need, f"lm-eval {name}", results):
            continue
        times = {"bare": [], "plugin": []}
        for step, which in enumerate(order_plan):
            if step >= 2 and not budget.allows(max(times["bare"] + times["plugin"]) + 5,
                                               f"lm-eval {name} second round", results):
                break
            gc.collect()
            if which == "bare":
                output, seconds = bare_lm_eval(lm, benchmark, settings)
                del output
            else:
                # A fresh cache dir per run: the plugin keeps prepared datasets under its cache dir,
                # and reusing them would make its runs do less work than the bare ones.
                fresh = replace(settings, cache_dir=scratch / f"plugin-cache-{name}-{step}")
                run = plugin_run_with(lm, info, fresh, registry)
                started = time.perf_counter()
                run.evaluator.evaluate("a", name)
                seconds = time.perf_counter() - started
                del run
            times[which].append(seconds)
        bare = sum(times["bare"]) / len(times["bare"])
        plugin = sum(times["plugin"]) / len(times["plugin"])
        row = {"benchmark": name, "bare_s": round(bare, 3), "plugin_s": round(plugin, 3), "ratio": round(plugin / bare, 4),
               "bare_runs": [round(t, 3) for t in times["bare"]], "plugin_runs": [round(t, 3) for t in times["plugin"]]}
        results.data["lm_eval"].append(row)
        log(f"    lm-eval {name:9s} bare {bare:7.2f}s  plugin {plugin:7.2f}s  ratio {plugin / bare:.3f}")
        results.save()
    del lm


# --------------------------------------------------------------------------- summary


def print_summary(results: Results) -> None:
    data = results.data
    print("\n================ summary ================", flush=True)
    if data.get("peak"):
        print(f"device: {data.get('device')}; MFU against {data['peak']['tflops']} TFLOP/s ({data['peak']['source']})")
    if data["throughput"]:
        header = (f"{'model':20s} {'backend':12s} {'workload':9s} {'batch':>5s} {'tokens/s':>12s} {'TFLOP/s':>8s} "
                  f"{'MFU':>6s} {'MFU+attn':>8s} {'ms/step':>8s}")
        print(header)
        print("-" * len(header))
        for row in data["throughput"]:
            mfu = f"{100 * row['mfu']:5.1f}%" if "mfu" in row else "   n/a"
            mfu_attn = f"{100 * row['mfu_with_attn']:7.1f}%" if "mfu_with_attn" in row else "     n/a"
            step = f"{row['ms_per_step']:8.1f}" if "ms_per_step" in row else " " * 8
            print(f"{row['model']:20s} {row['backend']:12s} {row['workload']:9s} {row['batch']:>5d} "
                  f"{row['tokens_per_s']:>12,.0f} {row['tflops']:>8.1f} {mfu:>6s} {mfu_attn:>8s} {step}")
        print("  (tokens/s: input tokens for loglikelihood, NEW tokens for generation)")
    pairs = {}
    for row in data["throughput"]:
        pairs.setdefault((row["model"], row["workload"], row["batch"]), {})[row["backend"]] = row["tokens_per_s"]
    ratios = [(k, v["deepspeed"] / v["transformers"]) for k, v in pairs.items() if "deepspeed" in v and "transformers" in v]
    if ratios:
        print("deepspeed / transformers tokens/s: " + ", ".join(f"{m} {w} b{b} {r:.3f}" for (m, w, b), r in ratios))
    if data["lm_eval"]:
        print("\nplugin vs bare lm-eval on the same HFLM (seconds; goal plugin/bare <= 1.05):")
        for row in data["lm_eval"]:
            print(f"  {row['benchmark']:9s} bare {row['bare_s']:7.2f}  plugin {row['plugin_s']:7.2f}  ratio {row['ratio']:.3f}")
        bare = sum(r["bare_s"] for r in data["lm_eval"])
        plugin = sum(r["plugin_s"] for r in data["lm_eval"])
        data["lm_eval_total"] = {"bare_s": round(bare, 3), "plugin_s": round(plugin, 3), "ratio": round(plugin / bare, 4)}
        print(f"  {'TOTAL':9s} bare {bare:7.2f}  plugin {plugin:7.2f}  ratio {plugin / bare:.3f}")
    for message in data["skipped"]:
        print(f"skipped: {message}")
    for message in data["errors"]:
        print(f"error: {message}")
    print(f"total wall {time.perf_counter() - T0:.1f}s", flush=True)


# --------------------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiny", action="store_true", help="toy widths and workloads (CPU smoke test)")
    parser.add_argument("--device", default=None, help="default: cuda if available, else cpu")
    parser.add_argument("--budget-s", type=float, default=330.0, help="stop starting sections after this (default 330)")
    parser.add_argument("--peak-tflops", type=float, default=None, help="dense fp16 peak for MFU (default: by device name)")
    parser.add_argument("--dtype", choices=("auto", "float16", "bfloat16", "float32"), default="auto",
                        help="auto: float16 on CUDA, float32 on CPU")
    parser.add_argument("--skip-7b", action="store_true")
    parser.add_argument("--skip-deepspeed", action="store_true")
    parser.add_argument("--skip-lm-eval", action="store_true")
    parser.add_argument("--demo-cache", default=None, help="a built demo (DIR holding demo-1/, or demo-1 itself); "
                        "default REPO/.qwencmp/demo, else built into a temp dir (~20 s of CPU)")
    parser.add_argument("--lm-eval-batch", type=int, default=16)
    parser.add_argument("--lm-eval-limit", type=int, default=None, help="documents per task (default: all demo docs)")
    parser.add_argument("--lm-eval-rounds", type=int, default=2, help="1: bare, plugin; 2: bare, plugin, plugin, bare")
    args = parser.parse_args()

    results = Results(os.environ.get("OUT"))
    budget = Budget(args.budget_s)
    scratch = Path(tempfile.mkdtemp(prefix="qwencmp-gpu-"))
    if args.tiny and args.lm_eval_limit is None:
        args.lm_eval_limit = 2
        args.lm_eval_rounds = 1
    log("importing torch / transformers")
    import torch

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if args.dtype == "auto":  # CPUs do not run fp16 usefully (and DeepSpeed's CPU accelerator refuses it)
        dtype_name = "float16" if device.startswith("cuda") else "float32"
    else:
        dtype_name = args.dtype
    dtype = getattr(torch, dtype_name)
    workloads = TINY_WORKLOADS if args.tiny else FULL_WORKLOADS
    peak, peak_source = peak_tflops(device, args.peak_tflops)
    import transformers

    results.data.update({
        "device": torch.cuda.get_device_name() if device.startswith("cuda") else "cpu",
        "torch": torch.__version__, "transformers": transformers.__version__, "dtype": dtype_name, "tiny": args.tiny,
        "peak": {"tflops": peak, "source": peak_source}, "workloads": workloads,
    })
    log(f"device {results.data['device']}, torch {torch.__version__}, transformers {transformers.__version__}, "
        f"{dtype_name}, peak {peak} TFLOP/s ({peak_source})")

    with section("configs", results):
        checks = {}
        for name in QWEN25_CONFIGS:
            counts = count_parameters(make_config(name, tiny=False))
            checks[name] = dict(counts, published=PUBLISHED_PARAMETERS[name],
                                matches=counts["total"] == PUBLISHED_PARAMETERS[name])
            log(f"    {name}: {counts['total']:,} parameters ({counts['non_embedding']:,} non-embedding, "
                f"tied={counts['tied']}); published {PUBLISHED_PARAMETERS[name]:,}: "
                f"{'match' if checks[name]['matches'] else 'MISMATCH'}")
        results.data["configs"] = {"values": QWEN25_CONFIGS, "parameter_check": checks}

    # The 1.5B model stays on the device after its throughput runs (3 GiB) and serves the lm-eval
    # comparison at the end, so the throughput numbers of both sizes come first within the budget.
    lm_eval_model = None
    names = ["Qwen2.5-1.5B"] + ([] if args.skip_7b else ["Qwen2.5-7B"])
    for name in names:
        label = f"{name}{' (tiny)' if args.tiny else ''}"
        model = None
        need = 40 if name.endswith("7B") else 25
        if not budget.allows(need, f"{label}", results):
            continue
        with section(f"{label} init", results):
            config = make_config(name, args.tiny)
            started = time.perf_counter()
            model = build_model(config, device, dtype)
            synchronize(device)
            params = parameter_counts(model)
            init_s = time.perf_counter() - started
            memory = torch.cuda.memory_allocated() / 2**30 if device.startswith("cuda") else None
            results.data.setdefault("models", {})[label] = dict(params, init_s=round(init_s, 2), memory_gib=memory,
                                                                attn_implementation=getattr(model.config, "_attn_implementation", None))
            log(f"    {label}: {params['total']:,} parameters built on {device} in {init_s:.1f}s"
                + (f", {memory:.1f} GiB allocated" if memory else "") + f", attention {model.config._attn_implementation}")
        if model is None:
            continue
        with section(f"{label} transformers", results):
            measure_backend(f"{label} / transformers", model, config, params, device, workloads, peak, results, budget)
        engine = None
        if not args.skip_deepspeed:
            with section(f"{label} deepspeed", results):
                if budget.allows(need, f"{label} deepspeed", results):
                    engine, note = deepspeed_engine(model, device, dtype)
                    log(f"    {note}")
                    results.data.setdefault("deepspeed", {})[label] = note
                    if engine is not None:
                        measure_backend(f"{label} / deepspeed", engine.module, config, params, device, workloads,
                                        peak, results, budget)
                    else:
                        results.data["skipped"].append(f"{label} deepspeed: {note}")
        if name == "Qwen2.5-1.5B" and not args.skip_lm_eval:
            # What the plugin hands HFLM on this path: DeepSpeed's engine.module when DeepSpeed ran, else the model.
            lm_eval_model = (label, engine.module if engine is not None else model)
        engine = None
        model = None
        free()

    if lm_eval_model is not None:
        label, model = lm_eval_model
        with section(f"lm-eval plugin vs bare ({label})", results):
            results.data["lm_eval_model"] = label
            if budget.allows(30, "lm-eval plugin vs bare", results):
                lm_eval_section(model, device, dtype_name, args, results, budget, scratch)
        lm_eval_model = model = None
        free()

    print_summary(results)
    results.save()
    if results.path:
        log(f"wrote {results.path}")
    import shutil

    shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
