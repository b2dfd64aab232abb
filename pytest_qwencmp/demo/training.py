"""The embedded demo's tokenizer and its two small models, trained on the demo data.

This module owns what the models learn and how: the evaluated items rendered
exactly as lm-eval renders them (MMLU and HellaSwag 0-shot, MBPP 2-shot, its
few-shot examples read from lm-eval's source), with the gold continuation; a
byte-level BPE tokenizer trained on that text; two one-layer
``Qwen2ForCausalLM`` models (``MODEL_A``, ``MODEL_B``) trained with the loss on
the gold answer only, and saved as HF folders. Model A is small and trained
briefly, so it knows only the items it saw often; model B is larger, trained
longer, and knows (nearly) all of them: B is genuinely better on every
benchmark. ``deterministic_torch`` (seeded, one thread, deterministic kernels)
makes two trainings byte-identical.

torch, transformers and tokenizers are imported only inside the functions that
train or save, so importing this module is cheap.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import math
import random
import re
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

from ..errors import QwencmpError
from .data import SEED

MBPP_NUM_FEWSHOT = 2

EOS_TOKEN = "<|endoftext|>"
VOCAB_SIZE = 2048
MAX_POSITIONS = 1024
# One thread: the tensors are tiny, and on a busy 2-core machine two spinning
# threads made training 5-25x slower (measured); a fixed count keeps builds identical.
BUILD_THREADS = 1

# The share of evaluated items that appear often in training (the weak model
# learns these), and how often they are repeated.
WELL_KNOWN_SHARE = 0.25
WELL_KNOWN_REPEATS = 4


@dataclass(frozen=True)
class ModelRecipe:
    """Size and training schedule of one demo model."""

    name: str
    hidden_size: int
    intermediate_size: int
    num_heads: int
    steps: int
    learning_rate: float = 1e-2
    warmup_steps: int = 5
    init_range: float = 0.1
    seed: int = SEED


@dataclass(frozen=True)
class BatchShape:
    """How many items of each benchmark go into one training step."""

    mmlu: int = 48
    hellaswag: int = 6
    mbpp: int = 6


MODEL_A = ModelRecipe("model_a", hidden_size=32, intermediate_size=128, num_heads=4, steps=40)
MODEL_B = ModelRecipe("model_b", hidden_size=128, intermediate_size=512, num_heads=4, steps=90, learning_rate=5e-3)


@dataclass(frozen=True)
class TrainingItem:
    """One evaluated item as the model sees it: lm-eval's context and the gold continuation."""

    benchmark: str
    context: str
    continuation: str
    repeats: int


# --------------------------------------------------------------------------- lm-eval's prompts


def mmlu_context(doc: Mapping) -> str:
    """lm-eval mmlu/default: the subject description, then the question and lettered choices."""
    subject = doc["subject"].replace("_", " ")
    description = f"The following are multiple choice questions (with answers) about {subject}.\n\n"
    c = doc["choices"]
    return f"{description}{doc['question'].strip()}\nA. {c[0]}\nB. {c[1]}\nC. {c[2]}\nD. {c[3]}\nAnswer:"


def mmlu_gold(doc: Mapping) -> str:
    return " " + "ABCD"[doc["answer"]]


def hellaswag_preprocess(text: str) -> str:
    """lm_eval/tasks/hellaswag/utils.py ``preprocess``."""
    text = text.strip().replace(" [title]", ". ")
    text = re.sub("\\[.*?\\]", "", text)
    return text.replace("  ", " ")


def hellaswag_context(doc: Mapping) -> str:
    return hellaswag_preprocess(doc["activity_label"] + ": " + doc["ctx_a"] + " " + doc["ctx_b"].capitalize())


def hellaswag_gold(doc: Mapping) -> str:
    return " " + hellaswag_preprocess(doc["endings"][int(doc["label"])])


def mbpp_question(doc: Mapping) -> str:
    tests = doc["test_list"]
    return (
        f"You are an expert Python programmer, and here is your task: {doc['text']} "
        f"Your code should pass these tests:\n\n{tests[0]}\n{tests[1]}\n{tests[2]}\n[BEGIN]\n"
    )


def mbpp_solution(doc: Mapping) -> str:
    return f"{doc['code']}\n[DONE]"


def mbpp_context(doc: Mapping, fewshot: Sequence[Mapping]) -> str:
    """lm-eval mbpp: ``MBPP_NUM_FEWSHOT`` fixed examples (first_n), then the task."""
    shots = "".join(mbpp_question(shot) + mbpp_solution(shot) + "\n\n" for shot in fewshot[:MBPP_NUM_FEWSHOT])
    return shots + mbpp_question(doc)


def mbpp_fewshot_examples() -> list[dict]:
    """The examples lm-eval's mbpp task puts in front, read from its source without importing it.

    (Importing ``lm_eval.tasks.mbpp.utils`` loads HF's ``code_eval`` from the hub.)
    """
    spec = importlib.util.find_spec("lm_eval")
    if spec is None or not spec.submodule_search_locations:
        raise QwencmpError("The demo needs lm-eval installed (pip install 'lm-eval[hf]').")
    source_file = Path(list(spec.submodule_search_locations)[0]) / "tasks" / "mbpp" / "utils.py"
    tree = ast.parse(source_file.read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == "list_fewshot_samples":
            for statement in node.body:
                if isinstance(statement, ast.Return) and statement.value is not None:
                    return ast.literal_eval(statement.value)
    raise QwencmpError(f"{source_file} no longer defines list_fewshot_samples(); the demo cannot render MBPP.")


# --------------------------------------------------------------------------- training items


def demo_training_items(mmlu, hellaswag, mbpp) -> list[TrainingItem]:
    """What the demo models are trained on (also used to fine-tune demo variants)."""
    return training_items(mmlu, hellaswag, mbpp, mbpp_fewshot_examples(), random.Random(SEED + 1))


def items_for(benchmark: str, rows: Sequence[tuple[str, str, str]], rng: random.Random) -> list[TrainingItem]:
    """TrainingItems from (knowledge key, context, gold) rows; a seeded share of the keys is well known."""
    keys = sorted({key for key, _, _ in rows})
    known = set(rng.sample(keys, max(1, round(len(keys) * WELL_KNOWN_SHARE))))
    return [
        TrainingItem(benchmark, context, gold, WELL_KNOWN_REPEATS if key in known else 1)
        for key, context, gold in rows
    ]


def training_items(mmlu, hellaswag, mbpp, fewshot, rng: random.Random) -> list[TrainingItem]:
    """The evaluated items, rendered as lm-eval renders them, with their gold continuations.

    What is well known: an MMLU entity (its question, in every subject), a HellaSwag
    activity, an MBPP problem.
    """
    mmlu_rows = [
        (doc["question"], mmlu_context(doc), mmlu_gold(doc))
        for subject in sorted(mmlu)
        for doc in mmlu[subject]["test"]
    ]
    hellaswag_rows = [(d["activity_label"], hellaswag_context(d), hellaswag_gold(d)) for d in hellaswag["validation"]]
    mbpp_rows = [(d["text"], mbpp_context(d, fewshot), mbpp_solution(d)) for d in mbpp["test"]]
    return (
        items_for("mmlu", mmlu_rows, rng)
        + items_for("hellaswag", hellaswag_rows, rng)
        + items_for("mbpp", mbpp_rows, rng)
    )


def tokenizer_corpus(items: Sequence[TrainingItem], mmlu, hellaswag, mbpp) -> list[str]:
    corpus = [item.context + item.continuation for item in items]
    for subject in sorted(mmlu):
        for split in ("dev", "validation"):
            corpus += [mmlu_context(d) + mmlu_gold(d) for d in mmlu[subject][split]]
    corpus += [hellaswag_context(d) + hellaswag_gold(d) for d in hellaswag["train"]]
    corpus += [mbpp_question(d) + mbpp_solution(d) for split in ("train", "validation", "prompt") for d in mbpp[split]]
    return corpus


# --------------------------------------------------------------------------- tokenizer and models


@contextmanager
def deterministic_torch() -> Iterator[None]:
    """Deterministic kernels on ``BUILD_THREADS`` threads; restores the caller's settings and RNG."""
    import torch  # lazy: torch only when a model is built, loaded or run

    threads = torch.get_num_threads()
    deterministic = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    with torch.random.fork_rng(devices=[]):
        torch.set_num_threads(BUILD_THREADS)
        torch.use_deterministic_algorithms(True)
        try:
            yield
        finally:
            torch.set_num_threads(threads)
            torch.use_deterministic_algorithms(deterministic, warn_only=warn_only)


@contextmanager
def quiet_progress_bars() -> Iterator[None]:
    """No 'Writing model shards' bars while saving; restores the caller's setting."""
    from transformers.utils import logging  # lazy: transformers (and torch) only when a model is loaded or built

    enabled = logging.is_progress_bar_enabled()
    logging.disable_progress_bar()
    try:
        yield
    finally:
        if enabled:
            logging.enable_progress_bar()


def train_tokenizer(corpus: Sequence[str]):
    """A byte-level BPE over the demo text, as the ``Qwen2Tokenizer`` that AutoTokenizer rebuilds.

    AutoTokenizer loads a qwen2 model's tokenizer as ``Qwen2Tokenizer`` from its
    vocab and merges, with Qwen2's own pre-tokenizer; training with that same
    pre-tokenizer and returning that class keeps training and evaluation
    tokenization identical.
    """
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers  # lazy: tokenizers only when the demo's tokenizer is trained
    from transformers import Qwen2Tokenizer  # lazy: transformers (and torch) only when a model is loaded or built

    qwen2 = Qwen2Tokenizer().backend_tokenizer
    bpe = Tokenizer(models.BPE())
    bpe.normalizer = qwen2.normalizer
    bpe.pre_tokenizer = qwen2.pre_tokenizer
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=[EOS_TOKEN],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(corpus, trainer=trainer)
    model = json.loads(bpe.to_str())["model"]
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model["merges"]]
    return Qwen2Tokenizer(vocab=model["vocab"], merges=merges, model_max_length=MAX_POSITIONS)


def encode_pair(tokenizer, context: str, continuation: str) -> tuple[list[int], int]:
    """Token ids of context+continuation and where the continuation starts, split as lm-eval's HFLM does."""
    spaces = len(context) - len(context.rstrip())
    if spaces:
        context, continuation = context[:-spaces], context[-spaces:] + continuation
    whole = tokenizer.encode(context + continuation)
    start = len(tokenizer.encode(context))
    return whole, start


@dataclass(frozen=True)
class EncodedBenchmark:
    """One benchmark's training items as tensors.

    ``prefix`` holds the tokens every item starts with (MBPP's few-shot examples),
    computed once per step; ``ids`` the rest of each item, right-padded;
    ``predicts_gold`` marks the positions of ``ids`` whose next token is gold.
    """

    prefix: Any
    ids: Any
    predicts_gold: Any
    repeats: tuple[int, ...]


def common_prefix_length(sequences: Sequence[Sequence[int]]) -> int:
    shortest = min(len(s) for s in sequences)
    for position in range(shortest):
        if len({s[position] for s in sequences}) > 1:
            return position
    return shortest


def encode_benchmark(tokenizer, items: Sequence[TrainingItem], min_shared: int = 32) -> EncodedBenchmark:
    """Encode items as lm-eval splits them; a common start of ``min_shared`` tokens or more becomes ``prefix``."""
    import torch  # lazy: torch only when a model is built, loaded or run

    encoded = [encode_pair(tokenizer, item.context, item.continuation) for item in items]
    shared = common_prefix_length([ids[:start] for ids, start in encoded])
    if shared < min_shared:
        shared = 0
    length = max(len(ids) for ids, _ in encoded) - shared
    ids = torch.full((len(items), length), tokenizer.pad_token_id, dtype=torch.long)
    predicts_gold = torch.zeros((len(items), length), dtype=torch.bool)
    for row, (tokens, start) in enumerate(encoded):
        rest = tokens[shared:]
        ids[row, : len(rest)] = torch.tensor(rest)
        predicts_gold[row, start - shared - 1 : len(rest) - 1] = True
    prefix = torch.tensor([encoded[0][0][:shared]], dtype=torch.long) if shared else None
    return EncodedBenchmark(prefix, ids, predicts_gold, tuple(item.repeats for item in items))


def batch_schedule(repeats: Sequence[int], batch: int, steps: int, rng: random.Random) -> list[list[int]]:
    """Row indices per step: epochs over the items (each listed ``repeats`` times), shuffled."""
    pool: list[int] = []
    schedule: list[list[int]] = []
    for _ in range(steps):
        if len(pool) < batch:
            epoch = [row for row, count in enumerate(repeats) for _ in range(count)]
            rng.shuffle(epoch)
            pool += epoch
        schedule.append(sorted(pool[:batch]))
        del pool[:batch]
    return schedule


def learning_rate_factor(step: int, recipe: ModelRecipe) -> float:
    """Linear warmup, then cosine decay to zero."""
    if step < recipe.warmup_steps:
        return (step + 1) / recipe.warmup_steps
    progress = (step - recipe.warmup_steps) / max(1, recipe.steps - recipe.warmup_steps)
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def new_model(recipe: ModelRecipe, tokenizer):
    """A seeded, randomly initialised one-layer Qwen2 of the recipe's size."""
    import torch  # lazy: torch only when a model is built, loaded or run
    from transformers import Qwen2Config, Qwen2ForCausalLM  # lazy: transformers (and torch) only when a model is loaded or built

    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=recipe.hidden_size,
        intermediate_size=recipe.intermediate_size,
        num_hidden_layers=1,
        num_attention_heads=recipe.num_heads,
        num_key_value_heads=recipe.num_heads,
        max_position_embeddings=MAX_POSITIONS,
        tie_word_embeddings=False,
        bos_token_id=tokenizer.eos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        initializer_range=recipe.init_range,
    )
    torch.manual_seed(recipe.seed)
    return Qwen2ForCausalLM(config).float()


def gold_loss(model, ids, predicts_gold, prefix=None):
    """Mean cross-entropy of the gold continuation tokens only (lm head on those positions).

    With a ``prefix``, its keys and values are computed once and shared by the batch.
    """
    import torch.nn.functional as F  # lazy: torch only when a model is built, loaded or run

    cache = None
    if prefix is not None:
        cache = model.model(input_ids=prefix, use_cache=True).cache
        cache.batch_repeat_interleave(ids.shape[0])
    hidden = model.model(input_ids=ids, cache=cache, use_cache=cache is not None).last_hidden_state
    logits = model.lm_head(hidden[predicts_gold])
    targets = ids[:, 1:][predicts_gold[:, :-1]]
    return F.cross_entropy(logits, targets)


def train_model(recipe: ModelRecipe, tokenizer, items: Sequence[TrainingItem], shape: BatchShape = BatchShape()):
    """AdamW on the gold continuations; every step takes a batch of each benchmark."""
    return fit(new_model(recipe, tokenizer), recipe, tokenizer, items, shape)


def fit(model, recipe: ModelRecipe, tokenizer, items: Sequence[TrainingItem], shape: BatchShape = BatchShape()):
    """Train ``model``'s trainable parameters per ``recipe`` (steps, learning rate, seed) on ``items``."""
    import torch  # lazy: torch only when a model is built, loaded or run

    model.train()
    rng = random.Random(recipe.seed)
    plans = []
    for benchmark in ("mmlu", "hellaswag", "mbpp"):
        encoded = encode_benchmark(tokenizer, [i for i in items if i.benchmark == benchmark])
        plans.append((encoded, batch_schedule(encoded.repeats, getattr(shape, benchmark), recipe.steps, rng)))
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=recipe.learning_rate, weight_decay=0.0)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: learning_rate_factor(step, recipe))
    for step in range(recipe.steps):
        loss = sum(step_loss(model, encoded, schedule[step]) for encoded, schedule in plans)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
    model.eval()
    return model


def step_loss(model, encoded: EncodedBenchmark, rows: Sequence[int]):
    """The gold loss of the given rows, with the padding past their last gold token cut off."""
    import torch  # lazy: torch only when a model is built, loaded or run

    index = torch.tensor(rows)
    ids, predicts_gold = encoded.ids[index], encoded.predicts_gold[index]
    length = int(predicts_gold.any(dim=0).nonzero().max()) + 2
    return gold_loss(model, ids[:, :length], predicts_gold[:, :length], encoded.prefix)


def save_model(model, tokenizer, folder: Path) -> None:
    """safetensors weights, config, greedy generation config and the tokenizer, in one HF folder."""
    from transformers import GenerationConfig  # lazy: transformers (and torch) only when a model is loaded or built

    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.eos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        do_sample=False,
    )
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
