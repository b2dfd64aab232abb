"""How many documents each task evaluates, before anything runs: for ``plan`` and for splitting shards.

Which dataset, config and split an lm-eval leaf task reads comes from
lm-eval's own task YAML files (located without importing lm-eval,
:func:`task_data`); the rows are counted in a local copy (``--data-dir``, or
the built demo) or, with no copy, taken from a fallback: by default
``config/dataset_sizes.toml`` (the Hugging Face dataset cards' numbers,
:func:`known_size`), for a demo not built yet the demo's fixed split sizes
(``demo.data.demo_size``). :class:`TaskSizes` does this per benchmark and
remembers where each dataset's sizes came from. No model, no lm-eval task
construction, no torch.
"""

from __future__ import annotations

import csv
import glob
import json
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from ..config.benchmarks import Benchmark
from ..errors import QwencmpError
from .tasks import data_files_for, lm_eval_tasks_root, readme_configs

SIZES_FILE = Path(__file__).parents[1] / "config" / "dataset_sizes.toml"
KNOWN_SIZES = "known sizes (pytest_qwencmp/config/dataset_sizes.toml, from the Hugging Face dataset cards)"


@dataclass(frozen=True)
class TaskData:
    """Which rows an lm-eval leaf task evaluates: dataset, config and split from its YAML."""

    task: str
    dataset_path: str
    dataset_name: str | None
    split: str
    fewshot_sampler: str = "default"  # lm-eval's fewshot_config.sampler ("default": random draws, in evaluation order)
    num_fewshot: int = 0  # the task's own default shots


# --------------------------------------------------------------------------- which data a task reads


class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """lm-eval's YAML with its ``!function`` tags read as nothing."""


_Loader.add_multi_constructor("!", lambda loader, suffix, node: None)


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)
    except (OSError, yaml.YAMLError):
        return {}
    return data if isinstance(data, dict) else {}


def _resolved(path: Path, depth: int = 0) -> dict[str, Any]:
    """A task YAML with its ``include`` chain applied (the file's own keys win)."""
    config = _read_yaml(path)
    include = config.get("include")
    if isinstance(include, str) and depth < 8:
        base = _resolved(path.parent / include, depth + 1)
        base.update({k: v for k, v in config.items() if k != "include"})
        return base
    return config


@lru_cache(maxsize=64)
def task_data(task_dirs: tuple[str, ...]) -> dict[str, TaskData]:
    """Leaf task name -> its dataset, config and evaluated split, for every task YAML in ``task_dirs``."""
    root = lm_eval_tasks_root()
    found: dict[str, TaskData] = {}
    for task_dir in task_dirs:
        for path in sorted((root / task_dir).rglob("*.yaml")):
            try:
                text = path.read_text(encoding="utf-8")
            except OSError:
                continue
            if "task" not in text:
                continue
            config = _resolved(path)
            task = config.get("task")
            split = config.get("test_split") or config.get("validation_split")
            if isinstance(task, str) and config.get("dataset_path") and split:
                name = config.get("dataset_name")
                fewshot = config.get("fewshot_config")
                sampler = fewshot.get("sampler") if isinstance(fewshot, dict) else None
                shots = config.get("num_fewshot")
                found[task] = TaskData(task, str(config["dataset_path"]), None if name is None else str(name), str(split),
                                       str(sampler or "default"), shots if isinstance(shots, int) else 0)
    return found


@lru_cache(maxsize=64)
def group_versions(task_dirs: tuple[str, ...], request: tuple[str, ...]) -> dict[str, str]:
    """The groups ``request`` names (and their subgroups) -> the version lm-eval reports for them
    (``str(metadata.version)``, else ``"N/A"``), read from the task YAML files as lm-eval's ``Group.version`` does."""
    root = lm_eval_tasks_root()
    groups: dict[str, dict[str, Any]] = {}
    for task_dir in task_dirs:
        for path in sorted((root / task_dir).rglob("*.yaml")):
            config = _read_yaml(path)
            if isinstance(config.get("group"), str) and "task" in config:
                groups[config["group"]] = config
    out: dict[str, str] = {}
    todo = [name for name in request if name in groups]
    while todo:
        name = todo.pop()
        if name in out:
            continue
        metadata = groups[name].get("metadata")
        version = metadata.get("version") if isinstance(metadata, dict) else None
        out[name] = "N/A" if version is None else str(version)
        members = groups[name].get("task")
        todo += [m for m in (members if isinstance(members, list) else []) if isinstance(m, str) and m in groups]
    return out


def shots_depend_on_order(benchmark: Benchmark, shots: int | None) -> list[str]:
    """The benchmark's leaf tasks whose few-shot examples depend on which documents are evaluated with them.

    lm-eval's ``default`` sampler draws each document's examples from one seeded generator in evaluation order,
    so a document evaluated alone gets other examples than in a full run; ``first_n`` (MMLU, MBPP) does not. With
    zero shots (or a task that takes none) nothing depends on it. A task not described is listed (unknown).
    """
    described = task_data(benchmark.task_dirs)
    if shots == 0:
        return []
    return [task for task in benchmark.leaf_tasks if task not in described or (
        described[task].fewshot_sampler != "first_n" and (shots or described[task].num_fewshot) > 0)]


# --------------------------------------------------------------------------- counting rows


def _count_file(path: Path) -> int:
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        with path.open("rb") as handle:
            return sum(1 for line in handle if line.strip())
    if suffix == ".json":
        data = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(data, dict) and isinstance(data.get("data"), list):
            data = data["data"]
        return len(data) if isinstance(data, list) else 1
    if suffix == ".parquet":
        import pyarrow.parquet as pq  # lazy: pyarrow only for a Parquet file

        return int(pq.read_metadata(path).num_rows)
    if suffix == ".csv":
        with path.open(newline="", encoding="utf-8") as handle:
            return max(0, sum(1 for _ in csv.reader(handle)) - 1)
    raise ValueError(f"cannot count rows of {path.name}")


def count_local_rows(folder: Path, data: TaskData, configs: list[dict[str, Any]] | None = None) -> int | None:
    """Rows of ``data``'s split in a local copy (hub layout: files + README ``configs:``); None if not countable.

    ``configs``: the folder's README ``configs:`` when the caller already read them (one read per dataset).
    """
    direct = data_files_for(folder, readme_configs(folder) if configs is None else configs, data.dataset_name)
    if direct is None:
        return None
    _, files = direct
    patterns = files.get(data.split)
    if not patterns:
        return None
    paths = [Path(p) for pattern in patterns for p in sorted(glob.glob(pattern))]
    if not paths:
        return None
    try:
        return sum(_count_file(p) for p in paths)
    except (OSError, ValueError):
        return None


@lru_cache(maxsize=1)
def _known_sizes() -> dict[str, Any]:
    return tomllib.loads(SIZES_FILE.read_text(encoding="utf-8"))


def known_size(data: TaskData) -> int | None:
    """The row count of ``data``'s split from ``dataset_sizes.toml``, if listed."""
    configs = _known_sizes().get(data.dataset_path, {})
    value = configs.get(data.dataset_name or "default", {}).get(data.split)
    return int(value) if isinstance(value, int) else None


Fallback = tuple[Callable[[TaskData], "int | None"], str]  # (TaskData -> its size or None, where those sizes come from)


def task_sizes(benchmark: Benchmark, data_dir: Path | None, sources: dict[str, str],
               fallback: Fallback = (known_size, KNOWN_SIZES)) -> dict[str, int]:
    """Leaf task -> documents it evaluates; records in ``sources`` where each dataset's sizes came from."""
    described = task_data(benchmark.task_dirs)
    sizes: dict[str, int] = {}
    readmes: dict[Path, list[dict[str, Any]]] = {}
    for task in benchmark.leaf_tasks:
        data = described.get(task)
        if data is None:
            raise QwencmpError(
                f"Benchmark [{benchmark.name}]: lm-eval has no task {task!r} with a dataset and split in "
                f"{', '.join(benchmark.task_dirs)}; fix its request, subjects or task_dirs in benchmarks.toml."
            )
        count = None
        if data_dir is not None:
            folder = data_dir / data.dataset_path
            if folder.is_dir() and folder not in readmes:
                readmes[folder] = readme_configs(folder)
            count = count_local_rows(folder, data, readmes[folder]) if folder.is_dir() else None
            if count is not None:
                sources.setdefault(data.dataset_path, f"counted in the local copy {folder}")
        if count is None:
            sized, described_as = fallback
            count = sized(data)
            if count is None:
                raise QwencmpError(
                    f"No size known for {data.dataset_path} ({data.dataset_name or 'default'}, split {data.split}) "
                    f"of task {task!r}: give a local copy with --data-dir DIR (its hub layout, as "
                    "`python -m pytest_qwencmp mirror` writes it)."
                )
            where = described_as if data_dir is None else f"no countable local copy under {data_dir}: {described_as}"
            sources.setdefault(data.dataset_path, where)
        sizes[task] = count
    return sizes


class TaskSizes:
    """Leaf task -> documents, per benchmark (a ``stats.planning.Sizer``): counted under ``data_dir``, else ``fallback``.

    ``sources`` maps each dataset path to where its sizes came from, in the order first sized.
    """

    def __init__(self, data_dir: Path | None = None, fallback: Fallback = (known_size, KNOWN_SIZES)) -> None:
        self.data_dir = data_dir
        self.fallback = fallback
        self.sources: dict[str, str] = {}

    def __call__(self, benchmark: Benchmark) -> dict[str, int]:
        return task_sizes(benchmark, self.data_dir, self.sources, self.fallback)
