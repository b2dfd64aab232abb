"""Variants of the embedded demo models, for the model-setup options and their tests.

Each builder writes a small Hugging Face folder next to the demo (seconds, no
network) and leaves the demo itself untouched:

- ``chat_variant``: the same weights with a ChatML chat template (Qwen's format)
  on the tokenizer, for base-vs-instruct comparisons (``--apply-chat-template-b``);
- ``lora_adapter``: a LoRA adapter on a demo model, fine-tuned a few steps on the
  demo's own training items (``--peft-b``): a fine-tune that really changes scores;
- ``poisoned_variant``: one NaN in the final norm, so every logit is NaN, as in a
  float16 overflow (numerical health);
- ``stuck_variant``: every token embedded alike and the LM head pointing at one
  token, so the model writes that character over and over ("!!!!").
"""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

from ..models.adapters import peft_quietly
from .data import demo_documents
from .training import MODEL_A, ModelRecipe, deterministic_torch, demo_training_items, fit, quiet_progress_bars

# Qwen's ChatML format (a default system turn, then <|im_start|>role ... <|im_end|> turns).
CHATML_TEMPLATE = (
    "{%- for message in messages %}"
    "{%- if loop.first and message['role'] != 'system' %}"
    "{{- '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}"
    "{%- endif %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)
LORA_RECIPE = replace(MODEL_A, name="lora", steps=30, learning_rate=1e-2, warmup_steps=3)
LORA_RANK = 8
LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def _copy(model_dir: Path, out: Path) -> Path:
    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(model_dir, out)
    return out


def chat_variant(model_dir: Path, out: Path, template: str = CHATML_TEMPLATE) -> Path:
    """``model_dir`` with a chat template (``chat_template.jinja``) beside its tokenizer."""
    _copy(model_dir, out)
    (out / "chat_template.jinja").write_text(template, encoding="utf-8")
    return out


def lora_adapter(model_dir: Path, out: Path, recipe: ModelRecipe = LORA_RECIPE) -> Path:
    """A LoRA adapter (rank 8 on every projection) on ``model_dir``, trained ``recipe.steps`` steps on the demo
    items; deterministic. Written with peft's ``save_pretrained`` (adapter_config.json + adapter_model.safetensors)."""
    from peft import LoraConfig, get_peft_model  # lazy: peft, transformers and torch only when a variant is built
    from transformers import AutoModelForCausalLM, AutoTokenizer  # lazy: transformers (and torch) only when a model is loaded or built

    items = demo_training_items(*demo_documents())
    with deterministic_torch(), quiet_progress_bars():
        import torch  # lazy: torch only when a model is built, loaded or run

        tokenizer = AutoTokenizer.from_pretrained(model_dir)
        base = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
        torch.manual_seed(recipe.seed)
        config = LoraConfig(r=LORA_RANK, lora_alpha=2 * LORA_RANK, lora_dropout=0.0, target_modules=list(LORA_TARGETS))
        with peft_quietly():
            model = get_peft_model(base, config)
        fit(model.base_model.model, recipe, tokenizer, items)
        if out.exists():
            shutil.rmtree(out)
        model.save_pretrained(out)
    return out


def _edit_weights(model_dir: Path, out: Path, edit) -> Path:
    """Copy ``model_dir`` to ``out`` with ``edit(model)`` applied to its weights."""
    import torch  # lazy: torch only when a model is built, loaded or run
    from transformers import AutoModelForCausalLM  # lazy: transformers (and torch) only when a model is loaded or built

    _copy(model_dir, out)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    with torch.no_grad():
        edit(model)
    with quiet_progress_bars():
        model.save_pretrained(out)
    return out


def poisoned_variant(model_dir: Path, out: Path) -> Path:
    """One NaN in the final RMSNorm's weight: every hidden state, so every logit, is NaN."""

    def poison(model) -> None:
        model.model.norm.weight[0] = float("nan")

    return _edit_weights(model_dir, out, poison)


def stuck_variant(model_dir: Path, out: Path, character: str = "!") -> Path:
    """A model that writes ``character`` forever: all tokens embed alike (so every position has the same
    hidden state), and the LM head scores only ``character``'s token, 100 logits above the rest."""
    import torch  # lazy: torch only when a model is built, loaded or run
    from transformers import AutoTokenizer  # lazy: transformers (and torch) only when a model is loaded or built

    token = AutoTokenizer.from_pretrained(model_dir).convert_tokens_to_ids(character)

    def stick(model) -> None:
        embeddings = model.get_input_embeddings().weight
        embeddings.copy_(embeddings[token].expand_as(embeddings))
        hidden = model.model(input_ids=torch.tensor([[token]])).last_hidden_state[0, -1]
        head = model.get_output_embeddings().weight
        head.zero_()
        head[token] = hidden * (100.0 / float(hidden @ hidden))

    return _edit_weights(model_dir, out, stick)
