"""The benchmarks registry: which lm-eval tasks make up a benchmark and which
(task, metric) pairs become pytest items.

Benchmarks are data. The built-in ones (MMLU, HellaSwag, MBPP) live in
``benchmarks.toml`` beside this module; a suite adds its own with the same keys
in a TOML file of its own (``evals/benchmarks.toml``). Nothing here imports
lm-eval, so collecting items costs no task indexing.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

from ..errors import QwencmpError

BUILTIN_FILE = Path(__file__).with_name("benchmarks.toml")
OVERALL = "overall"

_KNOWN_KEYS = {
    "title",
    "task_dirs",
    "request",
    "metrics",
    "num_fewshot",
    "subjects",
    "subtask_template",
    "overall_task",
    "generation",
}


@dataclass(frozen=True)
class Item:
    """One pytest item: a score that lm-eval reports for one task and metric."""

    benchmark: str
    id: str
    task: str
    metric: str
    label: str

    @property
    def result_key(self) -> str:
        """The key of this metric in lm-eval's per-task results (filter 'none')."""
        return f"{self.metric},none"


@dataclass(frozen=True)
class Benchmark:
    """A benchmark: what to ask lm-eval for, and the items it is judged by."""

    name: str
    title: str
    task_dirs: tuple[str, ...]
    request: tuple[str, ...]
    metrics: tuple[tuple[str, str], ...]  # (label, lm-eval metric name)
    num_fewshot: int | None
    subjects: tuple[str, ...] = ()
    subtask_template: str = ""
    overall_task: str = ""
    generation: bool = False

    @property
    def items(self) -> tuple[Item, ...]:
        """Every item of the benchmark, subjects first, then ``overall``."""
        items: list[Item] = []
        single_metric = len(self.metrics) == 1
        if self.subjects:
            for subject in self.subjects:
                task = self.subtask_template.format(subject=subject)
                for label, metric in self.metrics:
                    item_id = subject if single_metric else f"{subject}:{label}"
                    items.append(Item(self.name, item_id, task, metric, item_id))
            if self.overall_task:
                for label, metric in self.metrics:
                    item_id = OVERALL if single_metric else f"{OVERALL}:{label}"
                    items.append(Item(self.name, item_id, self.overall_task, metric, item_id))
        else:
            task = self.request[0]
            for label, metric in self.metrics:
                items.append(Item(self.name, label, task, metric, label))
        return tuple(items)

    def item(self, item_id: str) -> Item:
        for item in self.items:
            if item.id == item_id:
                return item
        known = ", ".join(i.id for i in self.items[:8])
        raise QwencmpError(
            f"Benchmark {self.name!r} has no item {item_id!r}; its items are {known}"
            f"{', …' if len(self.items) > 8 else ''}."
        )

    def to_table(self) -> dict[str, Any]:
        """This benchmark as a ``benchmarks.toml`` table: ``benchmark_from_table(name, table, ...)`` rebuilds it."""
        table: dict[str, Any] = {
            "title": self.title,
            "task_dirs": list(self.task_dirs),
            "request": list(self.request),
            "metrics": {label: metric for label, metric in self.metrics},
            "generation": self.generation,
        }
        if self.num_fewshot is not None:
            table["num_fewshot"] = self.num_fewshot
        if self.subjects:
            table.update(subjects=list(self.subjects), subtask_template=self.subtask_template)
        if self.overall_task:
            table["overall_task"] = self.overall_task
        return table

    @property
    def leaf_tasks(self) -> tuple[str, ...]:
        """The lm-eval leaf tasks whose data this benchmark reads."""
        if self.subjects:
            return tuple(self.subtask_template.format(subject=s) for s in self.subjects)
        return self.request


@dataclass(frozen=True)
class Registry:
    """All benchmarks known to a run, by name, in definition order."""

    benchmarks: tuple[Benchmark, ...]

    def names(self) -> tuple[str, ...]:
        return tuple(b.name for b in self.benchmarks)

    def get(self, name: str) -> Benchmark:
        for benchmark in self.benchmarks:
            if benchmark.name == name:
                return benchmark
        raise QwencmpError(
            f"Unknown benchmark {name!r}. Known benchmarks: {', '.join(self.names())}. "
            "Add new ones to evals/benchmarks.toml (see README.md)."
        )

    def select(self, names: Iterable[str] | None) -> "Registry":
        if names is None:
            return self
        return Registry(tuple(self.get(n) for n in names))

    def merged_with(self, other: "Registry") -> "Registry":
        """This registry with ``other``'s benchmarks added or replacing by name."""
        replaced = {b.name: b for b in other.benchmarks}
        kept = tuple(replaced.pop(b.name, b) for b in self.benchmarks)
        return Registry(kept + tuple(b for b in other.benchmarks if b.name in replaced))


def _fail(source: str, name: str, problem: str) -> QwencmpError:
    return QwencmpError(f"{source}: benchmark [{name}] {problem}")


def _str_list(value: Any, source: str, name: str, key: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
        raise _fail(source, name, f"key '{key}' must be a non-empty list of strings.")
    return tuple(value)


def benchmark_from_table(name: str, table: Mapping[str, Any], source: str) -> Benchmark:
    """Validate one ``[name]`` table and build its ``Benchmark``."""
    if not isinstance(table, Mapping):
        raise _fail(source, name, "must be a table of keys.")
    unknown = sorted(set(table) - _KNOWN_KEYS)
    if unknown:
        raise _fail(
            source, name, f"has unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(_KNOWN_KEYS))}."
        )
    if "request" not in table:
        raise _fail(source, name, "needs 'request': the lm-eval task or group names to evaluate.")
    request = _str_list(table["request"], source, name, "request")
    task_dirs = _str_list(table.get("task_dirs", list(request)), source, name, "task_dirs")
    raw_metrics = table.get("metrics", ["acc"])
    if isinstance(raw_metrics, Mapping):
        metrics = tuple((str(k), v) for k, v in raw_metrics.items())
        if not metrics or not all(isinstance(v, str) and v for _, v in metrics):
            raise _fail(source, name, "key 'metrics' must map item labels to lm-eval metric names.")
    else:
        metrics = tuple((m, m) for m in _str_list(raw_metrics, source, name, "metrics"))
    num_fewshot = table.get("num_fewshot")
    if num_fewshot is not None and (not isinstance(num_fewshot, int) or num_fewshot < 0):
        raise _fail(source, name, "key 'num_fewshot' must be a whole number ≥ 0.")
    subjects: tuple[str, ...] = ()
    template = ""
    if "subjects" in table:
        subjects = _str_list(table["subjects"], source, name, "subjects")
        template = table.get("subtask_template", "")
        if not isinstance(template, str) or "{subject}" not in template:
            raise _fail(source, name, "has 'subjects' and so needs 'subtask_template' containing '{subject}'.")
        if len(set(subjects)) != len(subjects):
            raise _fail(source, name, "lists a subject twice in 'subjects'.")
    overall = table.get("overall_task", "")
    if not isinstance(overall, str):
        raise _fail(source, name, "key 'overall_task' must be a string.")
    generation = table.get("generation", False)
    if not isinstance(generation, bool):
        raise _fail(source, name, "key 'generation' must be true or false.")
    title = table.get("title", name)
    if not isinstance(title, str):
        raise _fail(source, name, "key 'title' must be a string.")
    return Benchmark(
        name=name,
        title=title,
        task_dirs=task_dirs,
        request=request,
        metrics=metrics,
        num_fewshot=num_fewshot,
        subjects=subjects,
        subtask_template=template,
        overall_task=overall,
        generation=generation,
    )


def registry_from_toml(path: Path) -> Registry:
    """Read a benchmarks file; a malformed one raises ``QwencmpError`` naming file and key."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise QwencmpError(f"Benchmarks file {path} does not exist.") from None
    except tomllib.TOMLDecodeError as exc:
        raise QwencmpError(f"{path} is not valid TOML: {exc}.") from None
    return Registry(tuple(benchmark_from_table(n, t, str(path)) for n, t in data.items()))


def builtin_registry() -> Registry:
    """MMLU, HellaSwag and MBPP as lm-eval defines them."""
    return registry_from_toml(BUILTIN_FILE)


def load_registry(extra_files: Iterable[Path] = ()) -> Registry:
    """The built-in benchmarks plus (or overridden by) those in ``extra_files``."""
    registry = builtin_registry()
    for path in extra_files:
        registry = registry.merged_with(registry_from_toml(path))
    return registry
