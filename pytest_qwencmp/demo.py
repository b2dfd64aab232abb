"""The embedded demo: two small local models and synthetic benchmark data, built offline.

This module owns everything ``--demo`` needs that would otherwise come from the
Hugging Face hub:

* synthetic data in the exact hub schemas lm-eval reads (``cais/mmlu`` with all
  57 subjects, ``Rowan/hellaswag``, ``google-research-datasets/mbpp`` config
  ``full``), written as local dataset folders (JSONL files plus a README.md
  whose YAML front matter declares the configs, splits and features);
* a byte-level BPE tokenizer trained on that data;
* two one-layer ``Qwen2ForCausalLM`` models trained on the evaluated items,
  rendered exactly as lm-eval renders them (MMLU and HellaSwag 0-shot, MBPP
  2-shot), with the loss on the gold answer only. Model A is small and trained
  briefly, so it knows only the items it saw often; model B is larger, trained
  longer, and knows (nearly) all of them: B is genuinely better on every
  benchmark.

The build is deterministic (seeded, one thread, deterministic kernels:
two builds give byte-identical files), cached under
``cache_root/demo-<DEMO_VERSION>`` and safe under concurrency: one process
builds into a temporary sibling folder while holding a file lock, then renames
it into place; the others wait on the lock and reuse the result. A folder whose
``manifest.json`` (version, sha256 and size of every file) is missing, names
another version, or lists a file that is gone or resized is rebuilt.

torch, transformers and tokenizers are imported only inside the functions that
train or save, so importing this module is cheap.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import json
import math
import random
import shutil
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

from .errors import QwencmpError

DEMO_VERSION = "1"
DEMO_BUILD_TIMEOUT = 1800.0  # seconds to wait for another process's demo build (it takes about a minute)

MANIFEST = "manifest.json"
MMLU_PATH = "cais/mmlu"
HELLASWAG_PATH = "Rowan/hellaswag"
MBPP_PATH = "google-research-datasets/mbpp"
MBPP_CONFIG = "full"
MBPP_NUM_FEWSHOT = 2

SEED = 20261
EOS_TOKEN = "<|endoftext|>"
VOCAB_SIZE = 2048
MAX_POSITIONS = 1024
# One thread: the tensors are tiny, and on a busy 2-core machine two spinning
# threads made training 5-25x slower (measured); a fixed count keeps builds identical.
BUILD_THREADS = 1

MMLU_SPLIT_SIZES = MappingProxyType({"test": 8, "dev": 5, "validation": 3})
HELLASWAG_SPLIT_SIZES = MappingProxyType({"train": 12, "validation": 40})
MBPP_SPLIT_SIZES = MappingProxyType({"test": 15, "train": 3, "validation": 3, "prompt": 3})
MBPP_FIRST_TASK_ID = MappingProxyType({"prompt": 1, "test": 11, "validation": 511, "train": 601})

MMLU_ENTITIES = 120  # facts shared by the 57 x 8 test questions (each entity in ~4 subjects)
HELLASWAG_NAME_WORDS = 8  # activity names are ordered pairs of these words
HELLASWAG_ENDING_WORDS = 3

# The share of evaluated items that appear often in training (the weak model
# learns these), and how often they are repeated.
WELL_KNOWN_SHARE = 0.25
WELL_KNOWN_REPEATS = 4


@dataclass(frozen=True)
class DemoAssets:
    """Where the built demo lives."""

    root: Path
    model_a: Path
    model_b: Path
    data_dir: Path


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


# --------------------------------------------------------------------------- cache


def build_demo_assets(
    cache_root: Path, *, rebuild: bool = False, progress: Callable[[str], None] = lambda line: None
) -> DemoAssets:
    """Return the demo assets under cache_root/f"demo-{DEMO_VERSION}", building them if missing.

    ``progress`` hears one line per build step (nothing when the assets are
    already built) and, while another process builds them, that this one waits.
    """
    from .locks import holding

    cache_root = Path(cache_root)
    root = cache_root / f"demo-{DEMO_VERSION}"
    if not rebuild and is_complete(root):
        return assets_at(root)
    cache_root.mkdir(parents=True, exist_ok=True)
    with holding(cache_root / f"demo-{DEMO_VERSION}.lock", what="the embedded demo's build", timeout=DEMO_BUILD_TIMEOUT,
                 progress=progress):
        if not rebuild and is_complete(root):
            return assets_at(root)
        remove_stale_build_folders(cache_root)
        staging = sibling_folder(root, "building")
        try:
            build_into(staging, progress)
            write_manifest(staging)
            move_into_place(staging, root)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return assets_at(root)


def assets_at(root: Path) -> DemoAssets:
    return DemoAssets(root=root, model_a=root / MODEL_A.name, model_b=root / MODEL_B.name, data_dir=root / "data")


def is_complete(root: Path) -> bool:
    """A built folder has a manifest of this version, and every file it lists exists with its size."""
    try:
        manifest = json.loads((root / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if not isinstance(manifest, dict) or manifest.get("version") != DEMO_VERSION:
        return False
    files = manifest.get("files")
    if not isinstance(files, dict) or not files:
        return False
    for relative, entry in files.items():
        path = root / relative
        if not path.is_file() or path.stat().st_size != entry.get("size"):
            return False
    return True


def remove_stale_build_folders(cache_root: Path) -> None:
    """Staging folders left by a killed build (only called while holding the lock)."""
    for pattern in (f".demo-{DEMO_VERSION}-building-*", f".demo-{DEMO_VERSION}-old-*"):
        for stale in cache_root.glob(pattern):
            shutil.rmtree(stale, ignore_errors=True)


def sibling_folder(root: Path, purpose: str) -> Path:
    """A new, uniquely named hidden folder beside ``root`` (same file system, so renames are atomic)."""
    folder = root.parent / f".demo-{DEMO_VERSION}-{purpose}-{uuid.uuid4().hex}"
    folder.mkdir()
    return folder


def move_into_place(staging: Path, root: Path) -> None:
    """Rename the finished folder to its final name; an old one is moved aside first."""
    if root.exists():
        retired = root.parent / f".demo-{DEMO_VERSION}-old-{uuid.uuid4().hex}"
        root.rename(retired)
        staging.rename(root)
        shutil.rmtree(retired, ignore_errors=True)
    else:
        staging.rename(root)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_manifest(root: Path) -> None:
    files = {
        path.relative_to(root).as_posix(): {"sha256": file_sha256(path), "size": path.stat().st_size}
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }
    manifest = {"version": DEMO_VERSION, "files": files}
    (root / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n", encoding="utf-8")


def demo_documents() -> tuple[dict, dict, dict]:
    """The demo's MMLU, HellaSwag and MBPP documents (seeded: the same on every call)."""
    rng = random.Random(SEED)
    mmlu = make_mmlu_docs(rng, mmlu_subjects())
    hellaswag = make_hellaswag_docs(rng)
    mbpp = make_mbpp_docs(rng)
    return mmlu, hellaswag, mbpp


def demo_training_items(mmlu, hellaswag, mbpp) -> list[TrainingItem]:
    """What the demo models are trained on (also used to fine-tune demo variants)."""
    return training_items(mmlu, hellaswag, mbpp, mbpp_fewshot_examples(), random.Random(SEED + 1))


def build_into(root: Path, progress: Callable[[str], None] = lambda line: None) -> None:
    """Write data, tokenizer and both models into ``root`` (an empty folder), one progress line per step."""
    started = time.perf_counter()
    progress("qwencmp: building the embedded demo (synthetic data and two small models; once, then cached)")
    mmlu, hellaswag, mbpp = demo_documents()
    data_dir = root / "data"
    write_mmlu(data_dir / MMLU_PATH, mmlu)
    write_hellaswag(data_dir / HELLASWAG_PATH, hellaswag)
    write_mbpp(data_dir / MBPP_PATH, mbpp)

    items = demo_training_items(mmlu, hellaswag, mbpp)
    corpus = tokenizer_corpus(items, mmlu, hellaswag, mbpp)
    with deterministic_torch(), quiet_progress_bars():
        tokenizer = train_tokenizer(corpus)
        for recipe in (MODEL_A, MODEL_B):
            progress(f"qwencmp: demo: training {recipe.name} ({recipe.steps} steps, hidden size {recipe.hidden_size})")
            model = train_model(recipe, tokenizer, items)
            save_model(model, tokenizer, root / recipe.name)
    progress(f"qwencmp: demo: built in {time.perf_counter() - started:.0f}s")


# --------------------------------------------------------------------------- synthetic data

_SYLLABLES = (
    "ba", "ko", "ri", "zu", "mel", "tor", "vin", "qua", "les", "dra", "fen", "gol", "pim",
    "sha", "ux", "yor", "nel", "cas", "tiv", "lom", "bre", "kul", "sor", "wex", "fal", "min",
    "jot", "rav", "hu", "dex", "pel", "gri",
)
# Each made-up entity has one arbitrary fact: one of the four options of one attribute.
_MMLU_ATTRIBUTES: tuple[tuple[str, tuple[str, str, str, str]], ...] = (
    ("colour", ("red", "green", "blue", "yellow")),
    ("home port", ("Avonmere", "Bellhaven", "Corrin", "Dunmoor")),
    ("guild", ("weavers", "smiths", "bakers", "masons")),
    ("lucky stone", ("amber", "jade", "onyx", "opal")),
    ("favourite dish", ("soup", "bread", "stew", "pie")),
    ("rival", ("the Owl", "the Fox", "the Bear", "the Crow")),
)


def made_up_word(rng: random.Random, syllables: int) -> str:
    return "".join(rng.choice(_SYLLABLES) for _ in range(syllables))


def unique_words(rng: random.Random, count: int, syllables: int, taken: set[str]) -> list[str]:
    """``count`` new made-up words, none already in ``taken`` (which is updated)."""
    words: list[str] = []
    while len(words) < count:
        word = made_up_word(rng, syllables)
        if word not in taken:
            taken.add(word)
            words.append(word)
    return words


def mmlu_subjects() -> tuple[str, ...]:
    from .benchmarks import builtin_registry

    return builtin_registry().get("mmlu").subjects


def make_mmlu_facts(rng: random.Random, count: int) -> list[tuple[str, int, int]]:
    """(entity, attribute index, answer index) for ``count`` made-up entities."""
    entities = unique_words(rng, count, 3, set())
    return [(e.capitalize(), rng.randrange(len(_MMLU_ATTRIBUTES)), rng.randrange(4)) for e in entities]


def make_mmlu_docs(rng: random.Random, subjects: Sequence[str]) -> dict[str, dict[str, list[dict]]]:
    """Per subject and split, questions about the facts; the test splits go round all entities."""
    facts = make_mmlu_facts(rng, MMLU_ENTITIES)
    queue: list[tuple[str, int, int]] = []
    docs: dict[str, dict[str, list[dict]]] = {}
    for subject in subjects:
        docs[subject] = {}
        for split, size in MMLU_SPLIT_SIZES.items():
            rows = []
            for _ in range(size):
                if split != "test":
                    rows.append(mmlu_doc(subject, rng.choice(facts)))
                    continue
                if not queue:
                    queue = rng.sample(facts, len(facts))
                rows.append(mmlu_doc(subject, queue.pop()))
            docs[subject][split] = rows
    return docs


def mmlu_doc(subject: str, fact: tuple[str, int, int]) -> dict:
    entity, attribute, answer = fact
    name, options = _MMLU_ATTRIBUTES[attribute]
    return {
        "question": f"What is the {name} of {entity}?",
        "subject": subject,
        "choices": list(options),
        "answer": answer,
    }


_HELLASWAG_THINGS = ("rope", "bucket", "brush", "ladder", "basket", "lantern", "hammer", "blanket")
_HELLASWAG_ACTIONS = ("begin", "stop", "look around", "wave", "kneel down", "smile")


def make_hellaswag_docs(rng: random.Random) -> dict[str, list[dict]]:
    """Made-up activities, each with its own ending; one activity per validation item.

    The wrong endings are other activities' endings, so all endings are equally
    familiar; the scene is generic and each name pairs two shared words. Only
    knowing which ending follows which whole name helps.
    """
    taken: set[str] = set()
    name_words = unique_words(rng, HELLASWAG_NAME_WORDS, 2, taken)
    pairs = rng.sample([(a, b) for a in name_words for b in name_words if a != b], HELLASWAG_SPLIT_SIZES["validation"])
    activities = []
    for first, second in pairs:
        ending = " ".join(unique_words(rng, HELLASWAG_ENDING_WORDS, 2, taken)) + "."
        activities.append({"label": f"{first} {second}".capitalize(), "ending": ending})
    docs: dict[str, list[dict]] = {}
    index = 0
    for split, size in HELLASWAG_SPLIT_SIZES.items():
        docs[split] = []
        for number in range(size):
            docs[split].append(hellaswag_doc(rng, index, split, activities[number % len(activities)], activities))
            index += 1
    return docs


def hellaswag_doc(
    rng: random.Random, index: int, split: str, activity: Mapping[str, Any], activities: Sequence[Mapping]
) -> dict:
    others = [a for a in activities if a is not activity]
    label = rng.randrange(4)
    endings = [other["ending"] for other in rng.sample(others, 3)]
    endings.insert(label, activity["ending"])
    first, second = rng.sample(_HELLASWAG_THINGS, 2)
    ctx_a = f"A person takes the {first} and the {second}."
    ctx_b = f"then they {rng.choice(_HELLASWAG_ACTIONS)}"
    return {
        "ind": index,
        "activity_label": activity["label"],
        "ctx_a": ctx_a,
        "ctx_b": ctx_b,
        "ctx": f"{ctx_a} {ctx_b}",
        "endings": endings,
        "source_id": f"demo~{index:04d}",
        "split": "val" if split == "validation" else split,
        "split_type": "indomain",
        "label": str(label),
    }


# (function name, task text, reference code, the three test inputs); a tuple input is an argument list.
_MBPP_PROBLEMS: tuple[tuple[str, str, str, tuple], ...] = (
    ("max_of_list", "Write a function to find the largest number in a list.",
     "def max_of_list(nums):\n  return max(nums)",
     ([3, 9, 4], [-2, -7], [10, 0, 5, 8])),
    ("min_of_list", "Write a function to find the smallest number in a list.",
     "def min_of_list(nums):\n  return min(nums)",
     ([3, 9, 4], [-2, -7], [10, 0, 5, 8])),
    ("sum_of_list", "Write a function to add up all the numbers in a list.",
     "def sum_of_list(nums):\n  return sum(nums)",
     ([3, 9, 4], [-2, -7], [10, 0, 5, 8])),
    ("reverse_text", "Write a function to reverse a string.",
     "def reverse_text(s):\n  return s[::-1]",
     ('abc', 'python', 'level')),
    ("shout", "Write a function to convert a string to upper case.",
     "def shout(s):\n  return s.upper()",
     ('abc', 'Python', 'a b')),
    ("whisper", "Write a function to convert a string to lower case.",
     "def whisper(s):\n  return s.lower()",
     ('ABC', 'Python', 'A B')),
    ("list_length", "Write a function to count the items in a list.",
     "def list_length(items):\n  return len(items)",
     ([1, 2, 3], [], ['a', 'b'])),
    ("sort_numbers", "Write a python function to sort a list of numbers in ascending order.",
     "def sort_numbers(nums):\n  return sorted(nums)",
     ([3, 1, 2], [5, -1], [9, 9, 0])),
    ("is_even", "Write a python function to check whether a number is even.",
     "def is_even(n):\n  return n % 2 == 0",
     (4, 7, 0)),
    ("square", "Write a function to find the square of a number.",
     "def square(n):\n  return n * n",
     (3, -4, 0)),
    ("first_item", "Write a function to get the first element of a list.",
     "def first_item(items):\n  return items[0]",
     ([4, 5], ['x', 'y'], [0])),
    ("last_item", "Write a function to get the last element of a list.",
     "def last_item(items):\n  return items[-1]",
     ([4, 5], ['x', 'y'], [0])),
    ("word_count", "Write a function to count the words in a sentence.",
     "def word_count(text):\n  return len(text.split())",
     ('one two', 'a b c d', 'hello')),
    ("absolute", "Write a python function to find the absolute value of a number.",
     "def absolute(n):\n  return abs(n)",
     (-3, 5, 0)),
    ("unique_sorted", "Write a function to remove duplicates from a list and sort it.",
     "def unique_sorted(nums):\n  return sorted(set(nums))",
     ([3, 1, 3], [2, 2], [5, 4, 5, 1])),
    ("double", "Write a function to multiply a number by two.",
     "def double(n):\n  return n * 2",
     (3, -4, 10)),
    ("is_empty", "Write a function to check whether a list is empty.",
     "def is_empty(items):\n  return len(items) == 0",
     ([], [1], [0, 0])),
    ("join_words", "Write a function to join a list of words with spaces.",
     "def join_words(words):\n  return ' '.join(words)",
     (['a', 'b'], ['hi'], ['x', 'y', 'z'])),
    ("count_vowels", "Write a function to count the vowels in a string.",
     "def count_vowels(s):\n  return sum(c in 'aeiou' for c in s)",
     ('apple', 'sky', 'queue')),
    ("product", "Write a function to multiply two numbers.",
     "def product(a, b):\n  return a * b",
     ((2, 3), (0, 5), (-1, 4))),
    ("larger", "Write a function to find the larger of two numbers.",
     "def larger(a, b):\n  return max(a, b)",
     ((2, 3), (9, 5), (-1, -4))),
    ("starts_with_a", "Write a function to check whether a string starts with the letter a.",
     "def starts_with_a(s):\n  return s.startswith('a')",
     ('apple', 'banana', 'axe')),
    ("evens_only", "Write a function to keep the even numbers of a list.",
     "def evens_only(nums):\n  return [x for x in nums if x % 2 == 0]",
     ([1, 2, 3, 4], [5, 7], [0, 6])),
    ("cube", "Write a function to find the cube of a number.",
     "def cube(n):\n  return n ** 3",
     (2, -3, 0)),
)


def make_mbpp_docs(rng: random.Random) -> dict[str, list[dict]]:
    """Small distinct functions; the asserts come from running the reference code."""
    problems = list(_MBPP_PROBLEMS)
    rng.shuffle(problems)
    docs: dict[str, list[dict]] = {}
    position = 0
    for split, size in MBPP_SPLIT_SIZES.items():
        docs[split] = [mbpp_doc(MBPP_FIRST_TASK_ID[split] + n, *problems[position + n]) for n in range(size)]
        position += size
    return docs


def mbpp_doc(task_id: int, name: str, text: str, code: str, inputs: tuple) -> dict:
    function = run_reference(code, name)
    tests = []
    for value in inputs:
        args = value if isinstance(value, tuple) else (value,)
        tests.append(f"assert {name}({', '.join(map(repr, args))}) == {function(*args)!r}")
    return {
        "task_id": task_id,
        "text": text,
        "code": code,
        "test_list": tests,
        "test_setup_code": "",
        "challenge_test_list": [],
    }


def run_reference(code: str, name: str) -> Callable[[Any], Any]:
    namespace: dict[str, Any] = {}
    exec(compile(code, f"<demo mbpp {name}>", "exec"), namespace)  # our own template code
    return namespace[name]


# --------------------------------------------------------------------------- writing the hub layouts


def write_jsonl(path: Path, rows: Iterable[Mapping]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="\n") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")


def features_yaml(features: Sequence[tuple[str, str]]) -> list[str]:
    """YAML lines of a dataset_info feature list; kind is a dtype or 'list:<dtype>'."""
    lines = ["  features:"]
    for name, kind in features:
        lines.append(f"  - name: {name}")
        if kind.startswith("list:"):
            lines.append(f"    sequence: {kind[5:]}")
        else:
            lines.append(f"    dtype: {kind}")
    return lines


def write_readme(
    folder: Path, title: str, configs: Mapping[str, Sequence[str]], features: Sequence[tuple[str, str]]
) -> None:
    """README.md whose front matter declares each config's splits (files ``<config>/<split>.jsonl``)."""
    lines = ["---", "configs:"]
    for config, splits in configs.items():
        lines.append(f"- config_name: {config}")
        lines.append("  data_files:")
        for split in splits:
            lines.append(f"  - split: {split}")
            lines.append(f"    path: {config}/{split}.jsonl")
    lines.append("dataset_info:")
    for config in configs:
        lines.append(f"- config_name: {config}")
        lines.extend(features_yaml(features))
    lines += ["---", "", f"# {title}", "",
              "Synthetic demo data generated by pytest-qwencmp in the hub schema; not the real benchmark.", ""]
    (folder / "README.md").write_text("\n".join(lines), encoding="utf-8")


MMLU_FEATURES = (("question", "string"), ("subject", "string"), ("choices", "list:string"), ("answer", "int64"))
HELLASWAG_FEATURES = (
    ("ind", "int64"), ("activity_label", "string"), ("ctx_a", "string"), ("ctx_b", "string"), ("ctx", "string"),
    ("endings", "list:string"), ("source_id", "string"), ("split", "string"), ("split_type", "string"),
    ("label", "string"),
)
MBPP_FEATURES = (
    ("task_id", "int64"), ("text", "string"), ("code", "string"), ("test_list", "list:string"),
    ("test_setup_code", "string"), ("challenge_test_list", "list:string"),
)


def write_dataset(folder: Path, title: str, configs: Mapping[str, Mapping[str, list[dict]]], features) -> None:
    for config, splits in configs.items():
        for split, rows in splits.items():
            write_jsonl(folder / config / f"{split}.jsonl", rows)
    write_readme(folder, title, {c: list(s) for c, s in configs.items()}, features)


def write_mmlu(folder: Path, docs: Mapping[str, Mapping[str, list[dict]]]) -> None:
    write_dataset(folder, "Demo MMLU (cais/mmlu schema)", docs, MMLU_FEATURES)


def write_hellaswag(folder: Path, docs: Mapping[str, list[dict]]) -> None:
    write_dataset(folder, "Demo HellaSwag (Rowan/hellaswag schema)", {"default": docs}, HELLASWAG_FEATURES)


def write_mbpp(folder: Path, docs: Mapping[str, list[dict]]) -> None:
    write_dataset(folder, "Demo MBPP (google-research-datasets/mbpp schema)", {MBPP_CONFIG: docs}, MBPP_FEATURES)


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
    import re

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
    import torch

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
    from transformers.utils import logging

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
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import Qwen2Tokenizer

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
    import torch

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
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

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
    import torch.nn.functional as F

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
    import torch

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
    import torch

    index = torch.tensor(rows)
    ids, predicts_gold = encoded.ids[index], encoded.predicts_gold[index]
    length = int(predicts_gold.any(dim=0).nonzero().max()) + 2
    return gold_loss(model, ids[:, :length], predicts_gold[:, :length], encoded.prefix)


def save_model(model, tokenizer, folder: Path) -> None:
    """safetensors weights, config, greedy generation config and the tokenizer, in one HF folder."""
    from transformers import GenerationConfig

    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.eos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        do_sample=False,
    )
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
