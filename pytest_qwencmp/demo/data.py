"""The embedded demo's synthetic benchmark data, in the exact hub schemas lm-eval reads.

This module owns the demo's documents and their files: ``cais/mmlu`` with all
57 subjects (questions about made-up entities), ``Rowan/hellaswag`` (made-up
activities and their endings) and ``google-research-datasets/mbpp`` config
``full`` (small functions whose asserts come from running the reference code),
generated from one seed, and written as local dataset folders: JSONL files
plus a README.md whose YAML front matter declares the configs, splits and
features. Pure Python: no torch, no datasets.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from types import MappingProxyType
from typing import Any, Callable, Iterable, Mapping, Sequence

from ..config.benchmarks import builtin_registry

MMLU_PATH = "cais/mmlu"
HELLASWAG_PATH = "Rowan/hellaswag"
MBPP_PATH = "google-research-datasets/mbpp"
MBPP_CONFIG = "full"

SEED = 20261

MMLU_SPLIT_SIZES = MappingProxyType({"test": 8, "dev": 5, "validation": 3})
HELLASWAG_SPLIT_SIZES = MappingProxyType({"train": 12, "validation": 40})
MBPP_SPLIT_SIZES = MappingProxyType({"test": 15, "train": 3, "validation": 3, "prompt": 3})
DEMO_SIZES = "the demo's split sizes in pytest_qwencmp/demo/data.py (the demo is not built yet)"
MBPP_FIRST_TASK_ID = MappingProxyType({"prompt": 1, "test": 11, "validation": 511, "train": 601})

MMLU_ENTITIES = 120  # facts shared by the 57 x 8 test questions (each entity in ~4 subjects)
HELLASWAG_NAME_WORDS = 8  # activity names are ordered pairs of these words
HELLASWAG_ENDING_WORDS = 3


def demo_documents() -> tuple[dict, dict, dict]:
    """The demo's MMLU, HellaSwag and MBPP documents (seeded: the same on every call)."""
    rng = random.Random(SEED)
    mmlu = make_mmlu_docs(rng, mmlu_subjects())
    hellaswag = make_hellaswag_docs(rng)
    mbpp = make_mbpp_docs(rng)
    return mmlu, hellaswag, mbpp


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


def demo_size(data) -> int | None:
    """The size of a split of the demo's data (``data``: an ``lmeval.sizes.TaskData``), for a demo not built yet."""
    splits = {MMLU_PATH: MMLU_SPLIT_SIZES, HELLASWAG_PATH: HELLASWAG_SPLIT_SIZES, MBPP_PATH: MBPP_SPLIT_SIZES}
    return splits.get(data.dataset_path, {}).get(data.split)
