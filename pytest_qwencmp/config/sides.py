"""How each side's model is set up beyond its weights, parsed and validated; nothing here imports torch.

``ModelOptions`` holds, for model A or B, what lm-eval's own CLI takes for a
model: the chat template (``--apply_chat_template[=NAME]``), few-shot examples
as a multi-turn chat, a system instruction, a PEFT adapter, and
``--model_args``-style ``key=value`` settings. ``parse_model_args`` checks such a
string against the keys this plugin can honour when it loads the model itself;
``parse_model_options`` builds both sides from the raw option values. Any bad
or conflicting value raises ``QwencmpError`` with one paragraph.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping

from ..errors import QwencmpError

if TYPE_CHECKING:  # pragma: no cover
    from .settings import ModelRef

_TRUE = ("true", "1", "yes", "on")
_FALSE = ("false", "0", "no", "off")


@dataclass(frozen=True)
class ModelArg:
    """One accepted ``--model-args`` key: its value type and where the value goes."""

    kind: str  # "bool" | "int" | "str" | "dtype"
    target: str  # "load" (from_pretrained) | "tokenizer" | "load+tokenizer" | "lm" (lm-eval's HFLM) | "bnb" | "dtype"
    name: str = ""  # the keyword at the target, when it differs from the key


MODEL_ARGS: Mapping[str, ModelArg] = {
    "trust_remote_code": ModelArg("bool", "load+tokenizer"),
    "attn_implementation": ModelArg("str", "load"),
    "use_fast_tokenizer": ModelArg("bool", "tokenizer", "use_fast"),
    "max_length": ModelArg("int", "lm"),
    "truncation": ModelArg("bool", "lm"),
    "add_bos_token": ModelArg("bool", "lm"),
    "prefix_token_id": ModelArg("int", "lm"),
    "max_batch_size": ModelArg("int", "lm"),
    "logits_cache": ModelArg("bool", "lm"),
    "softmax_dtype": ModelArg("dtype", "lm"),
    "think_end_token": ModelArg("str", "lm"),
    "enable_thinking": ModelArg("bool", "lm"),
    "load_in_4bit": ModelArg("bool", "bnb"),
    "load_in_8bit": ModelArg("bool", "bnb"),
    "bnb_4bit_compute_dtype": ModelArg("dtype", "bnb"),
    "bnb_4bit_quant_type": ModelArg("str", "bnb"),
    "bnb_4bit_use_double_quant": ModelArg("bool", "bnb"),
    "dtype": ModelArg("dtype", "dtype"),
}
MODEL_ARG_ALIASES = {"torch_dtype": "dtype"}

# lm-eval --model_args keys that an option of this plugin already sets, or that cannot apply
# to a model the plugin loads and places itself.
_TAKEN = {
    "pretrained": "the model is given by --model-a/--model-b",
    "revision": "pin it with --revision-a/--revision-b or MODEL@REVISION",
    "peft": "give the adapter with --peft-a/--peft-b",
    "device": "the device is set by --device",
    "batch_size": "the batch size is set by --batch-size",
    "parallelize": "the plugin places the weights itself (--device, --tp N for several GPUs)",
    "device_map": "the plugin places the weights itself (--device, --tp N for several GPUs)",
    "gpus": "the plugin places the weights itself (--device, --tp N for several GPUs)",
    "tp_plan": "tensor parallelism is set by --tp/--tp-a/--tp-b",
    "max_memory_per_gpu": "the plugin places the weights itself (--device, --tp N for several GPUs)",
    "max_cpu_memory": "the plugin places the weights itself (--device, --tp N for several GPUs)",
    "offload_folder": "the plugin places the weights itself (--device, --tp N for several GPUs)",
    "autogptq": "a GPTQ or AWQ checkpoint loads through transformers from the quantization_config in its config.json; no flag is needed",
    "gptqmodel": "a GPTQ or AWQ checkpoint loads through transformers from the quantization_config in its config.json; no flag is needed",
    "delta": "delta weights are not supported; merge them into a checkpoint, or use a PEFT adapter with --peft-a/--peft-b",
    "backend": "the plugin loads causal language models only",
}


@dataclass(frozen=True)
class ModelOptions:
    """One side's setup: prompting as lm-eval applies it, an adapter, and model arguments.

    ``chat_template`` is lm-eval's ``apply_chat_template``: False, True (the
    tokenizer's template) or a template name. ``model_args`` holds validated
    (key, typed value) pairs in the order given.
    """

    chat_template: bool | str = False
    fewshot_as_multiturn: bool = False
    system_instruction: str | None = None
    peft: ModelRef | None = None
    model_args: tuple[tuple[str, Any], ...] = ()

    def label(self, model_label: str) -> str:
        """The side's display name: the model's, plus its adapter and chat template (``Qwen2.5-7B+my-lora [chat]``),
        so a model compared with itself plus an adapter or template reads as two models."""
        label = model_label + (f"+{self.peft.label}" if self.peft is not None else "")
        if self.chat_template:
            label += " [chat]" if self.chat_template is True else f" [chat:{self.chat_template}]"
        bits = self.bnb_settings()
        label += " [4-bit]" if bits.get("load_in_4bit") else " [8-bit]" if bits.get("load_in_8bit") else ""
        return label + (f" [{self.dtype}]" if self.dtype else "")

    @property
    def dtype(self) -> str | None:
        """A dtype given in ``--model-args`` (only allowed when --dtype is not given)."""
        return dict(self.model_args).get("dtype")

    def prompting(self) -> dict[str, Any]:
        """The keywords ``lm_eval.simple_evaluate`` takes for this side, as lm-eval's CLI passes them."""
        return {
            "apply_chat_template": self.chat_template,
            "fewshot_as_multiturn": self.fewshot_as_multiturn,
            "system_instruction": self.system_instruction,
        }

    def _for(self, target: str) -> dict[str, Any]:
        return {
            MODEL_ARGS[key].name or key: value
            for key, value in self.model_args
            if target in MODEL_ARGS[key].target.split("+")
        }

    def load_kwargs(self) -> dict[str, Any]:
        """Keywords for ``AutoModelForCausalLM.from_pretrained`` (bitsandbytes settings apart: ``bnb_settings``)."""
        return self._for("load")

    def tokenizer_kwargs(self) -> dict[str, Any]:
        return self._for("tokenizer")

    def lm_kwargs(self) -> dict[str, Any]:
        """Keywords for lm-eval's ``HFLM`` (and the named chat template, which HFLM hands to the tokenizer)."""
        kwargs = self._for("lm")
        if isinstance(self.chat_template, str):
            kwargs["chat_template_args"] = {"chat_template": self.chat_template}
        return kwargs

    def bnb_settings(self) -> dict[str, Any]:
        """``BitsAndBytesConfig`` keywords from ``load_in_4bit``/``load_in_8bit``…, empty when not quantizing."""
        settings = self._for("bnb")
        return settings if settings.get("load_in_4bit") or settings.get("load_in_8bit") else {}

    def setup(self, adapter_fingerprint: str | None = None) -> dict[str, Any]:
        """What differs from a plain model, as JSON data: for the cache key, the report and baselines.

        Empty for a plain model, so plain runs keep their cache keys.
        """
        out: dict[str, Any] = {}
        if self.chat_template:
            out["apply_chat_template"] = self.chat_template
            out["fewshot_as_multiturn"] = self.fewshot_as_multiturn
        if self.system_instruction is not None:
            out["system_instruction"] = self.system_instruction
        if self.peft is not None:
            out["adapter"] = self.peft.name_or_path + (f"@{self.peft.revision}" if self.peft.revision else "")
            if adapter_fingerprint:
                out["adapter_fingerprint"] = adapter_fingerprint
        if self.model_args:
            out["model_args"] = dict(self.model_args)
        return out


def describe_setup(setup: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(label, text) rows for a report, from ``ModelOptions.setup()``; empty for a plain model."""
    rows = []
    if setup.get("adapter"):
        fingerprint = str(setup.get("adapter_fingerprint") or "")
        short = f" ({fingerprint.split(':')[0]}:{fingerprint.split(':')[-1][:12]})" if fingerprint else ""
        rows.append(("adapter", f"{setup['adapter']}{short}"))
    if setup.get("apply_chat_template"):
        template = setup["apply_chat_template"]
        name = "the tokenizer's template" if template is True else f"template {template!r}"
        shots = "few-shot examples as a multi-turn chat" if setup.get("fewshot_as_multiturn") else "few-shot examples in one user turn"
        rows.append(("chat template", f"{name}, {shots}"))
    if setup.get("system_instruction") is not None:
        rows.append(("system instruction", repr(setup["system_instruction"])))
    if setup.get("model_args"):
        rows.append(("model args", ",".join(f"{k}={_text(v)}" for k, v in setup["model_args"].items())))
    return rows


def _text(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def parse_model_args(
    text: str, option: str, *, dtype_option_given: bool, parse_dtype: Callable[[str], str]
) -> tuple[tuple[str, Any], ...]:
    """``key=value,key2=value2`` (lm-eval's ``--model_args`` syntax) into validated, typed pairs."""
    pairs: list[tuple[str, Any]] = []
    seen: dict[str, str] = {}
    for part in str(text).split(","):
        part = part.strip()
        if not part:
            continue
        key, sep, value = part.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key:
            raise QwencmpError(f"{option} {part!r} is not KEY=VALUE; write it as lm-eval's --model_args, e.g. trust_remote_code=true,max_length=4096.")
        canonical = MODEL_ARG_ALIASES.get(key, key)
        if canonical in seen:
            raise QwencmpError(f"{option} gives {canonical!r} twice ({seen[canonical]} and {key}={value}); keep one.")
        if canonical in _TAKEN:
            raise QwencmpError(f"{option} sets {key!r}, which this plugin does not take there: {_TAKEN[canonical]}.")
        if canonical not in MODEL_ARGS:
            raise QwencmpError(
                f"{option} names unknown key {key!r}; accepted keys: {', '.join(sorted(MODEL_ARGS))} "
                "(lm-eval --model_args names; keys the plugin sets through its own options are refused)."
            )
        if canonical == "dtype" and dtype_option_given:
            raise QwencmpError(f"{option} sets dtype, but --dtype already sets it for both models; keep one of them.")
        seen[canonical] = f"{key}={value}"
        pairs.append((canonical, _typed(value, MODEL_ARGS[canonical].kind, f"{option} {key}", parse_dtype)))
    bnb = dict(p for p in pairs if MODEL_ARGS[p[0]].target == "bnb")
    if bnb.get("load_in_4bit") and bnb.get("load_in_8bit"):
        raise QwencmpError(f"{option} sets both load_in_4bit and load_in_8bit; choose one.")
    if any(k.startswith("bnb_4bit") for k in bnb) and not bnb.get("load_in_4bit"):
        raise QwencmpError(f"{option} sets bnb_4bit_* settings without load_in_4bit=true; add it or drop them.")
    return tuple(pairs)


def _typed(value: str, kind: str, where: str, parse_dtype: Callable[[str], str]) -> Any:
    if kind == "bool":
        if value.lower() in _TRUE:
            return True
        if value.lower() in _FALSE:
            return False
        raise QwencmpError(f"{where} must be true or false, got {value!r}.")
    if kind == "int":
        try:
            number = int(value)
        except ValueError:
            raise QwencmpError(f"{where} must be a whole number, got {value!r}.") from None
        if number < 0:
            raise QwencmpError(f"{where} must not be negative, got {number}.")
        return number
    if kind == "dtype":
        try:
            return parse_dtype(value)
        except QwencmpError:
            raise QwencmpError(f"{where} {value!r} is not a dtype; use float16, bfloat16 or float32.") from None
    if not value:
        raise QwencmpError(f"{where} is empty.")
    return value


def _flag(value: Any, option: str) -> bool | None:
    if value in (None, ""):
        return None
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise QwencmpError(f"{option} takes true or false, got {value!r}.")


def _chat_template(raw: Mapping[str, Any], side: str) -> tuple[bool | str, str]:
    """The side's ``apply_chat_template`` value and the option that set it."""
    for key, option in ((f"apply_chat_template_{side}", f"--apply-chat-template-{side}"), ("apply_chat_template", "--apply-chat-template")):
        value = raw.get(key)
        if value in (None, False):
            continue
        if value is True:
            return True, option
        name = str(value).strip()
        if not name:
            raise QwencmpError(f"{option}= names an empty template; give a name or leave out '=' to use the tokenizer's template.")
        return name, option
    return False, ""


def parse_model_options(
    raw: Mapping[str, Any],
    adapters: Mapping[str, "ModelRef | None"],
    *,
    dtype_option_given: bool,
    parse_dtype: Callable[[str], str],
) -> dict[str, ModelOptions]:
    """Both sides' ``ModelOptions`` from raw option values (``apply_chat_template``, ``model_args_a``, …)
    and the already validated adapters (``--peft-a``/``--peft-b``)."""
    multiturn = _flag(raw.get("fewshot_as_multiturn"), "--fewshot-as-multiturn")
    options = {}
    for side in ("a", "b"):
        template, _ = _chat_template(raw, side)
        instruction = raw.get(f"system_instruction_{side}")
        if instruction is None:
            instruction = raw.get("system_instruction")
        if instruction is not None and not str(instruction).strip():
            raise QwencmpError("--system-instruction is empty; give the instruction text or leave the option out.")
        args = raw.get(f"model_args_{side}")
        options[side] = ModelOptions(
            chat_template=template,
            # lm-eval's CLI: on by default with a chat template; without one it has no effect.
            fewshot_as_multiturn=bool(template) and (multiturn is None or multiturn),
            system_instruction=None if instruction is None else str(instruction),
            peft=adapters.get(side),
            model_args=() if not args else parse_model_args(
                " ".join(args) if isinstance(args, list) else str(args), f"--model-args-{side}",
                dtype_option_given=dtype_option_given, parse_dtype=parse_dtype,
            ),
        )
    if multiturn and not any(o.chat_template for o in options.values()):
        raise QwencmpError(
            "--fewshot-as-multiturn needs a chat template (lm-eval's rule): add --apply-chat-template, "
            "or --apply-chat-template-a/-b for one side."
        )
    return options

