"""Per-side model options (chat template, system instruction, adapter, --model-args), the checks made
before weights load, and the numerical-health rules: unit tests of the pure core."""

from __future__ import annotations

import json
import math
import re

import pytest

from pytest_qwencmp.config.benchmarks import load_registry
from pytest_qwencmp.errors import QwencmpError
from pytest_qwencmp.models.placement import ExecutionPlan
from pytest_qwencmp.config.sides import ModelOptions, describe_setup
from pytest_qwencmp.models.loading import placement
from pytest_qwencmp.evaluation.health import (
    NumericalHealthError,
    check_loglikelihoods,
    degenerate_kind,
    generation_warnings,
    nonfinite_documents,
)
from pytest_qwencmp.models.preflight import chat_template_names, check_chat_template, check_model, check_quantization
from pytest_qwencmp.config.settings import parse_settings

REGISTRY = load_registry()


def settings(**raw):
    return parse_settings({"model_a": "org/a", "model_b": "org/b", **raw}, REGISTRY.names())


def fails(fragment: str, **raw) -> None:
    with pytest.raises(QwencmpError, match=re.escape(fragment)):
        settings(**raw)


# --------------------------------------------------------------------------- prompting options


def test_plain_models_have_no_setup_so_their_cache_keys_do_not_change():
    s = settings()
    assert s.options("a") == s.options("b") == ModelOptions()
    assert s.options("a").setup() == {}
    assert s.options("a").prompting() == {"apply_chat_template": False, "fewshot_as_multiturn": False, "system_instruction": None}


def test_chat_template_follows_lm_eval_cli_semantics_per_side():
    s = settings(apply_chat_template_b=True)
    assert s.options("a").prompting()["apply_chat_template"] is False
    # lm-eval's CLI: fewshot_as_multiturn defaults to True once a chat template is applied
    assert s.options("b").prompting() == {"apply_chat_template": True, "fewshot_as_multiturn": True, "system_instruction": None}
    both = settings(apply_chat_template="chatml", fewshot_as_multiturn="false", system_instruction_b="Be brief.")
    assert both.options("a").prompting() == {"apply_chat_template": "chatml", "fewshot_as_multiturn": False, "system_instruction": None}
    assert both.options("b").system_instruction == "Be brief."
    assert both.options("b").lm_kwargs() == {"chat_template_args": {"chat_template": "chatml"}}  # the name reaches the tokenizer
    overridden = settings(apply_chat_template=True, apply_chat_template_a="tool_use", system_instruction="S")
    assert overridden.options("a").chat_template == "tool_use" and overridden.options("b").chat_template is True
    assert overridden.options("a").system_instruction == overridden.options("b").system_instruction == "S"


@pytest.mark.parametrize(
    "raw, fragment",
    [
        (dict(fewshot_as_multiturn="true"), "--fewshot-as-multiturn needs a chat template (lm-eval's rule)"),
        (dict(apply_chat_template=True, fewshot_as_multiturn="evals/"), "--fewshot-as-multiturn takes true or false, got 'evals/'"),
        (dict(apply_chat_template_b=" "), "names an empty template"),
        (dict(system_instruction="  "), "--system-instruction is empty"),
    ],
)
def test_bad_prompting_options_stop_with_one_paragraph(raw, fragment):
    fails(fragment, **raw)


# --------------------------------------------------------------------------- --model-args


def test_model_args_are_typed_and_routed_where_lm_eval_would_use_them():
    s = settings(model_args_b="trust_remote_code=True,attn_implementation=eager,max_length=4096,use_fast_tokenizer=false,"
                               "torch_dtype=bf16")
    options = s.options("b")
    assert options.model_args == (
        ("trust_remote_code", True), ("attn_implementation", "eager"), ("max_length", 4096),
        ("use_fast_tokenizer", False), ("dtype", "bfloat16"),
    )
    assert options.load_kwargs() == {"trust_remote_code": True, "attn_implementation": "eager"}
    assert options.tokenizer_kwargs() == {"trust_remote_code": True, "use_fast": False}
    assert options.lm_kwargs() == {"max_length": 4096}
    assert s.dtype_for("b") == "bfloat16" and s.dtype_for("a") == "float16"
    assert options.setup()["model_args"]["max_length"] == 4096


def test_bitsandbytes_settings_are_collected_for_a_quantization_config():
    options = settings(model_args_a="load_in_4bit=true,bnb_4bit_compute_dtype=bf16,bnb_4bit_quant_type=nf4").options("a")
    assert options.bnb_settings() == {"load_in_4bit": True, "bnb_4bit_compute_dtype": "bfloat16", "bnb_4bit_quant_type": "nf4"}
    assert options.load_kwargs() == {}
    assert settings(model_args_a="load_in_8bit=false").options("a").bnb_settings() == {}


@pytest.mark.parametrize(
    "raw, fragment",
    [
        (dict(model_args_a="flash=yes"), "--model-args-a names unknown key 'flash'; accepted keys: add_bos_token, attn_implementation"),
        (dict(model_args_b="max_length=1,max_length=2"), "--model-args-b gives 'max_length' twice (max_length=1 and max_length=2)"),
        (dict(model_args_b="dtype=bf16,torch_dtype=float32"), "gives 'dtype' twice (dtype=bf16 and torch_dtype=float32)"),
        (dict(dtype="bfloat16", model_args_a="dtype=float32"), "--model-args-a sets dtype, but --dtype already sets it"),
        (dict(model_args_a="pretrained=x"), "the model is given by --model-a/--model-b"),
        (dict(model_args_a="revision=v2"), "pin it with --revision-a/--revision-b or MODEL@REVISION"),
        (dict(model_args_b="peft=./lora"), "give the adapter with --peft-a/--peft-b"),
        (dict(model_args_b="batch_size=8"), "the batch size is set by --batch-size"),
        (dict(model_args_b="device_map=auto"), "the plugin places the weights itself"),
        (dict(model_args_b="gptqmodel=true"), "loads through transformers from the quantization_config"),
        (dict(model_args_a="max_length"), "--model-args-a 'max_length' is not KEY=VALUE"),
        (dict(model_args_a="max_length=long"), "--model-args-a max_length must be a whole number, got 'long'"),
        (dict(model_args_a="trust_remote_code=maybe"), "trust_remote_code must be true or false, got 'maybe'"),
        (dict(model_args_a="dtype=int8"), "--model-args-a dtype 'int8' is not a dtype"),
        (dict(model_args_a="load_in_4bit=true,load_in_8bit=true"), "sets both load_in_4bit and load_in_8bit"),
        (dict(model_args_a="bnb_4bit_quant_type=nf4"), "bnb_4bit_* settings without load_in_4bit=true"),
    ],
)
def test_unknown_duplicate_and_conflicting_model_args_stop_at_start(raw, fragment):
    fails(fragment, **raw)


# --------------------------------------------------------------------------- adapters


def test_adapter_folder_is_checked_before_anything_loads(tmp_path):
    fails("--peft-b './no-such-adapter' looks like a path, but no such folder exists", peft_b="./no-such-adapter")
    fails("Check the path: give the adapter's folder, the one peft's save_pretrained wrote", peft_b="./no-such-adapter")
    fails("holds no adapter_config.json", peft_a=str(tmp_path))
    (tmp_path / "adapter_config.json").write_text("{}")
    fails("holds no adapter weights", peft_a=str(tmp_path))
    (tmp_path / "adapter_model.safetensors").write_bytes(b"x")
    ref = settings(peft_a=str(tmp_path)).options("a").peft
    assert ref.is_local and ref.path == tmp_path
    hub = settings(peft_b="org/my-lora@v1").options("b").peft
    assert (hub.name_or_path, hub.revision) == ("org/my-lora", "v1")


def test_setup_records_adapter_with_its_fingerprint_and_reads_back_in_reports(tmp_path):
    (tmp_path / "adapter_config.json").write_text("{}")
    (tmp_path / "adapter_model.safetensors").write_bytes(b"x")
    options = settings(peft_b=str(tmp_path), apply_chat_template_b=True, system_instruction_b="Hi",
                       model_args_b="max_length=64").options("b")
    setup = options.setup("local:0123456789abcdef")
    assert setup == {
        "apply_chat_template": True, "fewshot_as_multiturn": True, "system_instruction": "Hi",
        "adapter": str(tmp_path), "adapter_fingerprint": "local:0123456789abcdef", "model_args": {"max_length": 64},
    }
    assert describe_setup(json.loads(json.dumps(setup))) == [
        ("adapter", f"{tmp_path} (local:0123456789ab)"),
        ("chat template", "the tokenizer's template, few-shot examples as a multi-turn chat"),
        ("system instruction", "'Hi'"),
        ("model args", "max_length=64"),
    ]


# --------------------------------------------------------------------------- before the weights load


def test_chat_templates_are_found_without_loading_the_tokenizer(tmp_path):
    assert chat_template_names(tmp_path) == ()
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"chat_template": [{"name": "default", "template": "x"},
                                                                                 {"name": "tool_use", "template": "y"}]}))
    assert chat_template_names(tmp_path) == ("default", "tool_use")
    (tmp_path / "additional_chat_templates").mkdir()
    (tmp_path / "additional_chat_templates" / "rag.jinja").write_text("z")
    assert chat_template_names(tmp_path) == ("default", "tool_use", "rag")
    check_chat_template("m", tmp_path, "rag", "--apply-chat-template")
    with pytest.raises(QwencmpError, match=r"does not have; it has: default, tool_use, rag\."):
        check_chat_template("m", tmp_path, "chatml", "--apply-chat-template")


def test_a_base_tokenizer_without_template_is_one_paragraph(demo_assets, tmp_path):
    with pytest.raises(QwencmpError, match=r"--apply-chat-template-b asks for a chat template, but the tokenizer of model 'model_b' has none"):
        check_chat_template("model_b", demo_assets.model_b, True, "--apply-chat-template-b")
    (tmp_path / "chat_template.jinja").write_text("{{ messages }}")
    with pytest.raises(QwencmpError, match=r"single template: use --apply-chat-template without a name"):
        check_chat_template("m", tmp_path, "chatml", "--apply-chat-template")
    with pytest.raises(QwencmpError, match=r"is an existing path: write --apply-chat-template=NAME"):
        check_chat_template("m", tmp_path, str(tmp_path), "--apply-chat-template")


def test_quantized_checkpoint_names_the_missing_package_before_loading(tmp_path):
    from importlib.util import find_spec

    if find_spec("optimum") is not None:
        pytest.skip("optimum is installed here: the GPTQ check would pass")
    (tmp_path / "config.json").write_text(json.dumps({"quantization_config": {"quant_method": "gptq", "bits": 4}}))
    with pytest.raises(QwencmpError) as info:
        check_model("q", tmp_path, ModelOptions(), "cpu", "--apply-chat-template")
    message = info.value.message
    assert message.startswith("Model 'q' is quantized with gptq (quantization_config in its config.json), and this machine cannot load it")
    assert "pip install optimum" in message and "Install gptqmodel and optimum" in message
    check_quantization("q", {"quant_method": "not-a-method"}, pre_quantized=True, device="cpu", source="x")  # transformers skips it


# --------------------------------------------------------------------------- loading


def test_a_single_gpu_gets_its_weights_straight_from_the_checkpoint():
    def plan(device, tp=1):
        return ExecutionPlan("hf", "float16", device, 16, tensor_parallel=tp)

    assert placement(plan("cuda:1")) == {"device_map": {"": "cuda:1"}}
    assert placement(plan("cuda")) == {"device_map": {"": "cuda"}}
    assert placement(plan("cpu")) == {}
    assert placement(plan("cuda:0,1", tp=2)) == {}  # DeepSpeed AutoTP shards from host memory


def test_per_side_dtype_from_model_args_reaches_the_plan():
    from pytest_qwencmp.config.expectations import load_expectations
    from pytest_qwencmp.session import ComparisonRun

    s = parse_settings({"model_a": "org/a", "model_b": "org/b", "model_args_b": "dtype=bfloat16", "device": "cpu"}, REGISTRY.names())
    plans = ComparisonRun(s, REGISTRY, load_expectations(None, REGISTRY)).plan_models()
    assert (plans["a"].dtype, plans["b"].dtype) == ("float32", "bfloat16")  # A: float16 asked, float32 on CPU


# --------------------------------------------------------------------------- numerical health


def samples(task, values):
    return {task: [{"doc_id": i, "resps": [[(v, False)] for v in row], "filtered_resps": [(v, False) for v in row]}
                   for i, row in enumerate(values)]}


def test_nonfinite_loglikelihoods_fail_with_model_benchmark_dtype_and_count():
    hellaswag = REGISTRY.get("hellaswag")
    output = {"samples": samples("hellaswag", [[-1.0, -2.0], [math.nan, math.nan], [-3.0, -math.inf]])}
    assert nonfinite_documents(hellaswag, output["samples"]) == (2, 3)
    with pytest.raises(NumericalHealthError) as info:
        check_loglikelihoods(hellaswag, output, "qwen-7b", "float16", "float16")
    assert info.value.message.startswith(
        "Model 'qwen-7b' computed non-finite log-likelihoods (NaN or infinity) on 2 of 3 HellaSwag documents, running in float16."
    )
    assert "rerun with --dtype bfloat16" in info.value.message
    with pytest.raises(NumericalHealthError, match=r"running in float32 \(float16 requested\).*not a float16 overflow"):
        check_loglikelihoods(hellaswag, output, "m", "float32", "float16")
    check_loglikelihoods(hellaswag, {"samples": samples("hellaswag", [[-1.0, -0.5]])}, "m", "float16", "float16")


def test_degenerate_generations_warn_only_when_most_outputs_are_degenerate():
    assert [degenerate_kind(t) for t in ("", "  \n", "!!!!", "! ! ! !", "!!!", "11", "def f(): pass")] == [
        "empty", "empty", "repeated", "repeated", None, None, None]
    mbpp = REGISTRY.get("mbpp")

    def output(texts):
        return {"samples": {"mbpp": [{"doc_id": i, "resps": [[t]], "filtered_resps": [t]} for i, t in enumerate(texts)]}}

    assert generation_warnings(mbpp, output(["!!!!!!", "", "def f(): return 1"]), "B", "float16") == (
        "B on MBPP: 2 of 3 generated outputs are degenerate (1 empty, 1 one character repeated (e.g. '!!!!!!')) in "
        "float16; the float16 overflow signature of Qwen2/2.5: try --dtype bfloat16.",
    )
    assert generation_warnings(mbpp, output(["!!!!!!", "def f(): return 1"]), "B", "float16") == ()  # half is not most
    assert generation_warnings(REGISTRY.get("hellaswag"), output(["", ""]), "B", "float16") == ()


def test_cache_key_follows_adapter_weights_template_and_instruction_but_not_for_plain_models(demo_assets, tmp_path):
    import shutil

    from pytest_qwencmp.evaluation.cache import EvaluationCache, cache_key
    from pytest_qwencmp.evaluation.evaluator import Evaluator
    from pytest_qwencmp.models.loading import ModelHandle, ModelSpec

    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text("{}")
    (adapter / "adapter_model.safetensors").write_bytes(b"weights-1")
    plan = ExecutionPlan("hf", "float32", "cpu", 16)
    benchmark = REGISTRY.get("hellaswag")

    def key(**raw):
        s = parse_settings({"model_a": str(demo_assets.model_a), "model_b": str(demo_assets.model_a), **raw}, REGISTRY.names())
        handles = {side: ModelHandle(side, ModelSpec(s.model(side), plan, "float32", s.options(side))) for side in ("a", "b")}
        evaluator = Evaluator(s, REGISTRY, EvaluationCache(tmp_path / "cache"), handles)
        return evaluator.key_parts("a", benchmark), cache_key(evaluator.key_parts("b", benchmark))

    plain_parts, plain = key()
    assert "setup" not in plain_parts  # plain models keep the keys they had before these options existed
    with_adapter = key(peft_b=str(adapter))[1]
    (adapter / "adapter_model.safetensors").write_bytes(b"weights-2")
    keys = [plain, with_adapter, key(peft_b=str(adapter))[1], key(apply_chat_template_b=True)[1],
            key(apply_chat_template_b=True, fewshot_as_multiturn="false")[1], key(system_instruction_b="Be brief.")[1],
            key(model_args_b="max_length=512")[1]]
    assert len(set(keys)) == len(keys)
    moved = tmp_path / "adapter-elsewhere"
    shutil.copytree(adapter, moved)
    assert key(peft_b=str(moved))[1] == keys[2]  # the same adapter weights read from another folder: the same key
    shutil.rmtree(adapter)
