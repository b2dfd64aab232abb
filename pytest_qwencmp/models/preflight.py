"""What can be checked about a model before its weights load: chat templates and quantization libraries.

A tokenizer folder says whether it has a chat template (``chat_template.jinja``,
``tokenizer_config.json``'s ``chat_template``, ``additional_chat_templates/``)
without loading it; a checkpoint's ``config.json`` says whether it is quantized
(``quantization_config``) and transformers' own quantizer says, without weights,
whether this machine has the library that method needs. ``check_model`` turns
each problem into one paragraph before any model runs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

from ..errors import QwencmpError
from ..config.sides import ModelOptions

# What to install for a quantization method (transformers' quant_method names).
QUANTIZATION_PACKAGES = {
    "gptq": "gptqmodel and optimum (pip install gptqmodel optimum)",
    "awq": "gptqmodel (pip install gptqmodel)",
    "bitsandbytes": "bitsandbytes (pip install bitsandbytes)",
    "compressed-tensors": "compressed-tensors (pip install compressed-tensors)",
    "hqq": "hqq (pip install hqq)",
    "quanto": "optimum-quanto (pip install optimum-quanto)",
    "torchao": "torchao (pip install torchao)",
    "eetq": "eetq (pip install eetq)",
    "aqlm": "aqlm (pip install aqlm)",
    "fbgemm_fp8": "fbgemm-gpu (pip install fbgemm-gpu)",
}


def _json(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def chat_template_names(folder: Path) -> tuple[str, ...]:
    """The chat templates a tokenizer folder holds, without loading it: ``default`` for the main one,
    plus named ones; empty when it has none (a base model's tokenizer)."""
    names: list[str] = []
    if (folder / "chat_template.jinja").is_file() or isinstance(_json(folder / "chat_template.json").get("chat_template"), str):
        names.append("default")
    configured = _json(folder / "tokenizer_config.json").get("chat_template")
    if isinstance(configured, str) and configured.strip():
        names.append("default")
    elif isinstance(configured, list):
        names += [str(t["name"]) for t in configured if isinstance(t, dict) and t.get("name")]
    extra = folder / "additional_chat_templates"
    if extra.is_dir():
        names += sorted(p.stem for p in extra.glob("*.jinja"))
    return tuple(dict.fromkeys(names))


def no_chat_template(label: str, option: str, where: str) -> QwencmpError:
    return QwencmpError(
        f"{option} asks for a chat template, but the tokenizer of model {label!r} has none ({where}): it is "
        "probably a base model. Template only the instruct side (--apply-chat-template-a or -b), or point the "
        "model at a checkpoint whose tokenizer has a chat template (chat_template.jinja or chat_template in "
        "tokenizer_config.json)."
    )


def check_chat_template(label: str, folder: Path, requested: bool | str, option: str) -> None:
    """``requested`` (True or a template name) must exist in the tokenizer folder."""
    names = chat_template_names(folder)
    if not names:
        raise no_chat_template(label, option, f"no chat template in {folder}")
    if isinstance(requested, str) and requested not in names:
        hint = (
            f" ({requested!r} is an existing path: write {option}=NAME, or put the option after the test paths)"
            if Path(requested).exists()
            else ""
        )
        single = names == ("default",)
        raise QwencmpError(
            f"{option}={requested} names a chat template that the tokenizer of model {label!r} does not have{hint}; "
            + (f"it has a single template: use {option} without a name." if single else f"it has: {', '.join(names)}.")
        )


def quantization_config(folder: Path) -> dict[str, Any] | None:
    """The checkpoint's ``quantization_config`` from config.json (GPTQ, AWQ, bitsandbytes, …), if any."""
    config = _json(folder / "config.json")
    value = config.get("quantization_config") or (config.get("text_config") or {}).get("quantization_config")
    return value if isinstance(value, dict) else None


def check_quantization(label: str, config: Mapping[str, Any], *, pre_quantized: bool, device: str, source: str) -> None:
    """Ask transformers' quantizer for ``config`` whether this machine can load it; one paragraph if not.

    Runs the quantizer's own ``validate_environment`` (the check transformers makes
    before reading weights), so the answer is the library's, not a guess.
    """
    method = str(config.get("quant_method") or ("bitsandbytes" if config.get("load_in_4bit") or config.get("load_in_8bit") else "unknown"))
    from transformers.quantizers.auto import AutoHfQuantizer  # lazy: transformers (and torch) only when a model is loaded or built

    if not AutoHfQuantizer.supports_quant_method(dict(config)):
        return  # transformers ignores a method it does not know (with a warning) and loads the weights as they are
    try:
        quantizer = AutoHfQuantizer.from_config(dict(config), pre_quantized=pre_quantized)
        quantizer.validate_environment(device_map={"": device}, weights_only=True, dtype=None)
    except (ImportError, RuntimeError, ValueError, TypeError, KeyError) as exc:
        reason = " ".join(str(exc).split())[:300]
        package = QUANTIZATION_PACKAGES.get(method)
        install = f"Install {package}" if package else "Install the library its quantization method needs"
        raise QwencmpError(
            f"Model {label!r} is quantized with {method} ({source}), and this machine cannot load it: {reason}. "
            f"{install}, or compare an unquantized checkpoint. (Several quantization kernels exist only for CUDA GPUs.)"
        ) from None


def check_model(label: str, folder: Path | None, options: ModelOptions, device: str, chat_option: str) -> None:
    """Everything knowable before the weights load; ``folder`` is None for a hub model not downloaded yet."""
    if folder is not None and options.chat_template:
        check_chat_template(label, folder, options.chat_template, chat_option)
    if folder is not None and (config := quantization_config(folder)) is not None:
        check_quantization(label, config, pre_quantized=True, device=device, source="quantization_config in its config.json")
    if options.bnb_settings():
        check_quantization(label, options.bnb_settings(), pre_quantized=False, device=device, source="--model-args")
