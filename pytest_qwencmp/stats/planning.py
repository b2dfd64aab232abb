"""Before a run: what each item can detect at its dataset size (``python -m pytest_qwencmp plan``).

No model, no lm-eval task construction, no torch: the sizes come from counting
the rows of local dataset copies (``--data-dir``, or the built demo) or, with
no copy, from ``dataset_sizes.toml`` (the Hugging Face dataset cards' numbers),
and each item's power from the same functions the run uses (``power``,
``expectations.assess``) with an assumed discordance in place of the observed
one. Which dataset, config and split a task reads is read from lm-eval's own
task YAML files (located without importing lm-eval).
"""

from __future__ import annotations

import csv
import glob
import json
import tomllib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable, Mapping

import yaml

from . import power as pw
from ..config.benchmarks import OVERALL, Benchmark, Registry
from ..errors import QwencmpError
from ..config.expectations import Expectations
from .paired import POINTS
from .rules import PowerNote, assess
from ..lmeval.tasks import data_files_for, lm_eval_tasks_root, readme_configs

SIZES_FILE = Path(__file__).parents[1] / "config" / "dataset_sizes.toml"
DEFAULT_DISCORDANCE = 0.25
KNOWN_SIZES = "known sizes (pytest_qwencmp/config/dataset_sizes.toml, from the Hugging Face dataset cards)"


@dataclass(frozen=True)
class TaskData:
    """Which rows an lm-eval leaf task evaluates: dataset, config and split from its YAML."""

    task: str
    dataset_path: str
    dataset_name: str | None
    split: str


@dataclass(frozen=True)
class ItemPlan:
    """One item before the run: its size, family, MDE, the regression it catches and its rules' power."""

    benchmark: str
    item: str
    n: int
    family_size: int
    level: float
    mde: float | None  # points
    regression: float | None  # points: the smallest true regression detected (no_significant_regression / max_regression)
    notes: tuple[PowerNote, ...] = ()

    @property
    def underpowered(self) -> bool:
        return any(n.underpowered for n in self.notes)


@dataclass(frozen=True)
class Plan:
    items: tuple[ItemPlan, ...]
    discordance: float
    alpha: float
    power: float
    correction: str
    sources: Mapping[str, str] = field(default_factory=dict)  # dataset path -> where its sizes came from
    expectations: str | None = None


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
                found[task] = TaskData(task, str(config["dataset_path"]), None if name is None else str(name), str(split))
    return found


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
        import pyarrow.parquet as pq

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


def demo_size(data: TaskData) -> int | None:
    """The size of a split of the embedded demo's data, from ``pytest_qwencmp.demo_data`` (for a demo not built yet)."""
    from ..demo import data as demo_data

    splits = {demo_data.MMLU_PATH: demo_data.MMLU_SPLIT_SIZES, demo_data.HELLASWAG_PATH: demo_data.HELLASWAG_SPLIT_SIZES,
              demo_data.MBPP_PATH: demo_data.MBPP_SPLIT_SIZES}.get(data.dataset_path, {})
    return splits.get(data.split)


DEMO_SIZES = "the demo's split sizes in pytest_qwencmp/demo/data.py (the demo is not built yet)"


def demo_data_dir(cache_dir: Path) -> Path | None:
    """The built demo's data folder under ``cache_dir`` (as ``--demo`` builds it), or None if not built."""
    from ..demo import build as demo

    root = Path(cache_dir) / "demo" / f"demo-{demo.DEMO_VERSION}"
    return demo.assets_at(root).data_dir if demo.is_complete(root) else None


Fallback = tuple  # (function TaskData -> int | None, description of where those sizes come from)


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


# --------------------------------------------------------------------------- the plan


def make_plan(
    registry: Registry,
    expectations: Expectations,
    *,
    data_dir: Path | None = None,
    benchmarks: Iterable[str] | None = None,
    limit: int | None = None,
    discordance: float = DEFAULT_DISCORDANCE,
    alpha: float = 0.05,
    power: float = pw.DEFAULT_POWER,
    correction: str = "holm",
    fallback: Fallback = (known_size, KNOWN_SIZES),
) -> Plan:
    """Per item: n, the MDE at the level the run applies, the regression it catches, and each rule's power.

    Every per-document score is taken to be binary (acc, acc_norm, pass@1 with
    one sample), with ``discordance`` the share of documents where exactly one
    model is right.
    """
    if not 0.0 < discordance <= 1.0:
        raise QwencmpError(f"--discordance {discordance} must lie in (0, 1]: the share of documents where exactly one model is right.")
    if not 0.0 < alpha < 1.0:
        raise QwencmpError(f"--alpha {alpha} must lie strictly between 0 and 1.")
    if not 0.0 < power < 1.0:
        raise QwencmpError(f"--power {power} must lie strictly between 0 and 1.")
    found: dict[str, str] = {}
    items: list[ItemPlan] = []
    for benchmark in registry.select(benchmarks).benchmarks:
        sizes = task_sizes(benchmark, data_dir, found, fallback)
        if limit is not None:
            sizes = {task: min(n, limit) for task, n in sizes.items()}
        family = [i for i in benchmark.items if i.id.split(":")[0] != OVERALL]
        for item in benchmark.items:
            alone = item.id.split(":")[0] == OVERALL
            n = sum(sizes.values()) if alone else sizes[item.task]
            family_size = 1 if alone else len(family)
            level = pw.mde_level(alpha, "none" if alone else correction, family_size)
            design = pw.Design(n, discordance=discordance)
            expectation = expectations.for_item(benchmark.name, item.id)
            notes = assess(expectation, design, alpha=alpha, family_level=level, target=power, with_needed_n=True)
            mde = pw.mde(design, level, power)
            allowance = (expectation.max_regression or 0.0) / POINTS
            caught = pw.detectable(design, level, power, threshold=-allowance, side=-1)
            items.append(ItemPlan(
                benchmark=benchmark.name, item=item.id, n=n, family_size=family_size, level=level,
                mde=None if mde is None else mde * POINTS, regression=None if caught is None else -caught * POINTS,
                notes=notes,
            ))
    return Plan(tuple(items), discordance, alpha, power, correction, found,
                None if expectations.path is None else str(expectations.path))


def _number(value: float | None, spec: str = ".1f") -> str:
    return "none" if value is None else format(value, spec)


def plan_lines(plan: Plan, registry: Registry) -> list[str]:
    """The plan as terminal text: assumptions and sources, then one table per benchmark."""
    lines = [
        "pytest-qwencmp plan: what each item can detect, before anything runs",
        f"  assumptions: binary per-document scores; discordance {plan.discordance:g} (share of documents where exactly "
        f"one model is right); α {plan.alpha:g}; power {plan.power:.0%}; correction {plan.correction}",
        f"  expectations: {plan.expectations or 'none'}",
    ]
    lines += [f"  sizes of {path}: {where}" for path, where in plan.sources.items()]
    for name in dict.fromkeys(i.benchmark for i in plan.items):
        rows = [i for i in plan.items if i.benchmark == name]
        family = [i for i in rows if i.item.split(":")[0] != OVERALL]
        title = registry.get(name).title
        lines.append("")
        if len(family) > 1:
            how = f"{len(family)} items form one family ({plan.correction}): MDEs at α/{len(family)} = {family[0].level:.2g}"
        else:
            how = f"{len(family)} item, tested alone at α = {plan.alpha:g}"
        if len(family) != len(rows):
            how += f"; overall (the size-weighted micro-average) alone at α = {plan.alpha:g}"
        lines.append(f"{title}: {how}")
        table = [("item", "n", "MDE", "regression caught", "expectations")]
        for i in rows:
            weak = [f"{n.rule} underpowered (needs n ≥ {n.needed_n:,})" if n.needed_n else f"{n.rule} underpowered (no n suffices)"
                    for n in i.notes if n.underpowered]
            table.append((i.item, f"{i.n:,}", "±" + _number(i.mde) if i.mde is not None else "none",
                          "≥ " + _number(i.regression) if i.regression is not None else "none",
                          "; ".join(weak) or ("ok" if i.notes else "—")))
        widths = [max(len(row[c]) for row in table) for c in range(5)]
        for row in table:
            lines.append("  " + "  ".join(cell.rjust(w) if c in (1, 2, 3) else cell.ljust(w)
                                          for c, (cell, w) in enumerate(zip(row, widths))).rstrip())
    weak_items = [i for i in plan.items if i.underpowered]
    lines.append("")
    lines.append(f"{len(weak_items)} of {len(plan.items)} items have an underpowered expectation. MDE: the smallest true "
                 f"B − A detected with {plan.power:.0%} power; regression caught: the smallest true regression that "
                 "fails no_significant_regression / max_regression with that power. --json FILE keeps every rule's note.")
    return lines


def plan_document(plan: Plan) -> dict[str, Any]:
    """The plan as JSON-able data (``--json FILE``)."""
    return {
        "assumptions": {"discordance": plan.discordance, "alpha": plan.alpha, "power": plan.power,
                        "correction": plan.correction, "scores": "binary"},
        "expectations": plan.expectations,
        "sources": dict(plan.sources),
        "items": [
            {"benchmark": i.benchmark, "item": i.item, "n": i.n, "family_size": i.family_size, "level": i.level,
             "mde": i.mde, "regression_caught": i.regression, "underpowered": i.underpowered,
             "notes": [{"rule": n.rule, "text": n.text, "underpowered": n.underpowered, "needed_n": n.needed_n}
                       for n in i.notes]}
            for i in plan.items
        ],
    }
