"""Real models as users bring them, end to end through pytester on demo variants: chat templates,
LoRA adapters, model arguments, numerical health, and the checks made before any weights load."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from pytest_qwencmp.demo import variants as demo_variants

from test_plugin import stats  # tests/ is on sys.path (rootdir conftest)


@pytest.fixture(scope="module")
def variants(demo_assets, tmp_path_factory):
    """Chat-templated, LoRA-adapted, NaN-poisoned and stuck variants of the demo models (a few seconds)."""
    root = tmp_path_factory.mktemp("variants")
    return {
        "chat_b": demo_variants.chat_variant(demo_assets.model_b, root / "chat_b"),
        "lora_a": demo_variants.lora_adapter(demo_assets.model_a, root / "lora_a"),
        "poisoned_a": demo_variants.poisoned_variant(demo_assets.model_a, root / "poisoned_a"),
        "stuck_a": demo_variants.stuck_variant(demo_assets.model_a, root / "stuck_a"),
    }


def run_args(assets, cache: Path, *extra: str) -> list[str]:
    return [f"--data-dir={assets.data_dir}", f"--eval-cache-dir={cache}", "-p", "no:cacheprovider", *extra]


def cached_evaluations(cache: Path) -> list[dict]:
    """The evaluations stored in the on-disk cache (payloads)."""
    return [json.loads(json.loads(p.read_text())["payload"]) for p in sorted((cache / "evaluations").rglob("*.json"))]


def test_base_vs_instruct_prompts_carry_the_template_and_key_the_cache(pytester, suite, demo_assets, variants, offline, tmp_path):
    cache, results = tmp_path / "cache", pytester.path / "results.json"
    args = run_args(demo_assets, cache, f"--model-a={demo_assets.model_b}", f"--model-b={variants['chat_b']}",
                    "--apply-chat-template-b", "--benchmarks=hellaswag", "--limit=3", f"--qwencmp-json={results}")
    first = pytester.runpytest_inprocess(*args)
    first.assert_outcomes(passed=2)
    assert stats(first) == (2, 2, 0)
    assert "  chat template: the tokenizer's template, few-shot examples as a multi-turn chat" in first.stdout.str()
    document = json.loads(results.read_text())
    assert document["models"]["a"]["setup"] == {}
    assert document["models"]["b"]["setup"] == {"apply_chat_template": True, "fewshot_as_multiturn": True}
    assert document["comparisons"][0]["model_b"] == "chat_b [chat]"
    by_side = {e["model"]["label"]: e for e in cached_evaluations(cache)}
    plain, templated = by_side["model_b"], by_side["chat_b [chat]"]
    assert len(templated["documents"]) == 3
    for doc in templated["documents"].values():  # lm-eval rendered the prompts through the chat template
        assert doc["prompt"].startswith("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n")
        assert doc["prompt"].endswith("<|im_end|>\n<|im_start|>assistant\n")
    assert not any("<|im_start|>" in doc["prompt"] for doc in plain["documents"].values())

    again = pytester.runpytest_inprocess(*args)
    assert stats(again) == (0, 0, 2)  # same setup: both evaluations come from the cache
    instructed = pytester.runpytest_inprocess(*args, "--system-instruction-b=Answer briefly.")
    assert stats(instructed) == (1, 1, 1)  # a new system instruction is a new evaluation of B only
    prompts = [d["prompt"] for e in cached_evaluations(cache) if e["model"]["setup"].get("system_instruction") for d in e["documents"].values()]
    assert prompts and all(p.startswith("<|im_start|>system\nAnswer briefly.<|im_end|>") for p in prompts)


def test_lora_adapter_changes_scores_and_its_weights_key_the_cache(pytester, suite, demo_assets, variants, offline, tmp_path):
    cache, results = tmp_path / "cache", pytester.path / "results.json"
    adapter = tmp_path / "adapter"
    shutil.copytree(variants["lora_a"], adapter)
    args = run_args(demo_assets, cache, f"--model-a={demo_assets.model_a}", f"--model-b={demo_assets.model_a}",
                    f"--peft-b={adapter}", "--benchmarks=hellaswag", "--limit=40", f"--qwencmp-json={results}")
    first = pytester.runpytest_inprocess(*args)
    first.assert_outcomes(passed=2)
    comparison = json.loads(results.read_text())
    setup = comparison["models"]["b"]["setup"]
    assert setup["adapter"] == str(adapter) and setup["adapter_fingerprint"].startswith("local:")
    assert comparison["models"]["b"]["label"] == "model_a+adapter"
    assert "  adapter: " + str(adapter) in first.stdout.str()
    per_doc = {e["model"]["label"]: e["items"][0]["per_doc"] for e in cached_evaluations(cache)}
    assert per_doc["model_a"] != per_doc["model_a+adapter"]  # the adapter really changes the answers


def test_poisoned_model_fails_its_items_with_one_paragraph_and_is_not_cached(pytester, suite, demo_assets, variants, offline, tmp_path):
    cache = tmp_path / "cache"
    result = pytester.runpytest_inprocess(*run_args(
        demo_assets, cache, f"--model-a={demo_assets.model_a}", f"--model-b={variants['poisoned_a']}",
        "--benchmarks=hellaswag", "--limit=2",
    ))
    outcomes = result.parseoutcomes()
    assert outcomes.get("passed", 0) == 0 and outcomes.get("errors", 0) + outcomes.get("failed", 0) == 2
    out = result.stdout.str()
    assert ("Model 'poisoned_a' computed non-finite log-likelihoods (NaN or infinity) on 2 of 2 HellaSwag documents, "
            "running in float32 (float16 requested).") in out
    assert "check the checkpoint for NaN or infinite weights" in out
    assert out.count("qwencmp: HellaSwag × poisoned_a: evaluating") == 1  # evaluated once for both items
    assert [e["model"]["label"] for e in cached_evaluations(cache)] == ["model_a"]  # the broken run is not cached


@pytest.mark.slow  # MBPP: 256 generated tokens and a sandboxed program per side
def test_repeated_character_generations_are_warned_in_terminal_json_and_html(pytester, suite, demo_assets, variants, offline, tmp_path):
    results, html = pytester.path / "results.json", pytester.path / "report.html"
    result = pytester.runpytest_inprocess(*run_args(
        demo_assets, tmp_path / "cache", f"--model-a={demo_assets.model_b}", f"--model-b={variants['stuck_a']}",
        "--benchmarks=mbpp", "--limit=1", "--temperature=0", f"--qwencmp-json={results}", f"--html={html}",
    ))
    warning = ("stuck_a on MBPP: 1 of 1 generated outputs are degenerate (1 one character repeated (e.g. "
               "'!!!!!!!!!!!!!!!!!!!!')) in float32; check the model.")
    assert f"qwencmp: WARNING: {warning}" in result.stdout.str()
    assert json.loads(results.read_text())["comparisons"][0]["warnings"] == [warning]
    assert "degenerate (1 one character repeated" in html.read_text()


def test_bad_model_setup_stops_at_start_with_one_paragraph(pytester, suite, demo_assets, tmp_path):
    quantized = tmp_path / "gptq"
    shutil.copytree(demo_assets.model_b, quantized)
    config = json.loads((quantized / "config.json").read_text())
    config["quantization_config"] = {"quant_method": "gptq", "bits": 4, "group_size": 128}
    (quantized / "config.json").write_text(json.dumps(config))
    cases = [
        ([f"--model-b={demo_assets.model_b}", "--apply-chat-template"], "--apply-chat-template asks for a chat template, but the tokenizer of model 'model_a' has none"),
        ([f"--model-b={demo_assets.model_b}", "--model-args-b=trust_remote_code=true,flash=1"], "--model-args-b names unknown key 'flash'"),
        ([f"--model-b={demo_assets.model_b}", "--dtype=bfloat16", "--model-args-a=dtype=float32"], "--model-args-a sets dtype, but --dtype already sets it"),
        ([f"--model-b={demo_assets.model_b}", f"--peft-b={demo_assets.model_a}"], "holds no adapter_config.json"),
        ([f"--model-b={quantized}"], "Model 'gptq' is quantized with gptq (quantization_config in its config.json), and this machine cannot load it"),
    ]
    for extra, fragment in cases:
        result = pytester.runpytest_inprocess(f"--model-a={demo_assets.model_a}", *extra, "-p", "no:cacheprovider")
        assert result.ret == pytest.ExitCode.USAGE_ERROR, extra
        err = result.stderr.str()
        assert err.count("ERROR: pytest-qwencmp: ") == 1 and fragment in err, (extra, err[-2000:])
        assert "Traceback" not in err + result.stdout.str()


def test_help_lists_the_model_setup_options_with_value_metavars(pytester):
    out = pytester.runpytest_inprocess("--help").stdout.str()
    for option in ("--apply-chat-template=[NAME]", "--apply-chat-template-a=[NAME]", "--apply-chat-template-b=[NAME]",
                   "--fewshot-as-multiturn=[BOOL]", "--system-instruction=TEXT", "--system-instruction-b=TEXT",
                   "--peft-a=DIR|ID", "--peft-b=DIR|ID", "--model-args-a=KEY=VALUE,...", "--model-args-b=KEY=VALUE,..."):
        assert option in out, option
