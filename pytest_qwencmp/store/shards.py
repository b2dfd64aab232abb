"""Splitting one comparison over N CI jobs: ``--qwencmp-shard K/N``.

The unit of work is a benchmark: both models' evaluations of a benchmark stay
in one job, so a benchmark's multiple-comparison family (its subjects) never
spans shards and each job's comparison is complete for what it ran.

The split is deterministic — every job computes the same plan from the same
selection and data — and balances the EXPECTED COST of each benchmark:

    cost = documents × choices            (log-likelihood benchmarks: one request per answer choice)
    cost = documents × GENERATION_WEIGHT  (generation benchmarks: one generated answer ≈ 100 requests)

Documents are counted per leaf task (each MMLU subject), capped by
``--limit``, from the local data when ``--data-dir`` gives it (the rows of
``DIR/<dataset>/<config>/<split>.jsonl``), from the demo's fixed sizes with
``--demo``, else from the real datasets' known sizes (MMLU 14,042 test
questions × 4 choices, HellaSwag 10,042 × 4, MBPP 500 generated programs);
a benchmark of unknown size counts 1,000 documents per leaf task. Benchmarks
go, most expensive first, to the job with the least cost so far (ties to the
lower job number): the longest-processing-time rule, within 4/3 of the best
possible split.

Nothing here imports lm-eval or torch: the plan is made at collection time.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config.benchmarks import Benchmark
from ..demo.data import HELLASWAG_SPLIT_SIZES, MBPP_SPLIT_SIZES, MMLU_SPLIT_SIZES
from ..errors import QwencmpError

OPTION = "--qwencmp-shard"
GENERATION_WEIGHT = 100  # one generated answer (up to 256 new tokens) costs about 100 log-likelihood requests
DEFAULT_DOCUMENTS = 1000  # per leaf task, for a benchmark whose size is not known
DEFAULT_CHOICES = 4


@dataclass(frozen=True)
class KnownSize:
    """Where a built-in benchmark's evaluated split lives and how big the real one is."""

    dataset: str  # hub path, also the folder under --data-dir
    config: str | None  # None: one config per subject (the subject's name)
    split: str
    documents: int  # the real split, all leaf tasks together
    choices: int | None  # None: a generated answer per document


KNOWN_SIZES: Mapping[str, KnownSize] = {
    "mmlu": KnownSize("cais/mmlu", None, "test", 14042, 4),
    "hellaswag": KnownSize("Rowan/hellaswag", "default", "validation", 10042, 4),
    "mbpp": KnownSize("google-research-datasets/mbpp", "full", "test", 500, None),
}


def _demo_sizes() -> dict[str, int]:
    return {"mmlu": MMLU_SPLIT_SIZES["test"], "hellaswag": HELLASWAG_SPLIT_SIZES["validation"], "mbpp": MBPP_SPLIT_SIZES["test"]}


@dataclass(frozen=True)
class ShardSpec:
    """This job's number ``index`` (1-based) of ``count`` jobs."""

    index: int
    count: int

    @classmethod
    def parse(cls, text: str) -> "ShardSpec":
        match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(text))
        if match is None:
            raise QwencmpError(
                f"{OPTION} {text!r} must look like K/N: this job's number K of N jobs, for example "
                f"{OPTION} 2/3 (in a GitHub Actions matrix: {OPTION} ${{{{ matrix.shard }}}}/3)."
            )
        index, count = int(match.group(1)), int(match.group(2))
        if count < 1 or not 1 <= index <= count:
            raise QwencmpError(f"{OPTION} {text!r} is out of range: K and N must satisfy 1 ≤ K ≤ N (got K={index}, N={count}).")
        return cls(index, count)

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


@dataclass(frozen=True)
class Cost:
    """A benchmark's expected cost and what it was estimated from."""

    documents: int
    per_document: int  # choices, or GENERATION_WEIGHT for generated answers
    basis: str  # "local data", "demo data", "known size", "default size"

    @property
    def value(self) -> int:
        return self.documents * self.per_document


def _count_rows(path: Path) -> int | None:
    try:
        with path.open("rb") as handle:
            return sum(1 for line in handle if line.strip())
    except OSError:
        return None


def _local_counts(benchmark: Benchmark, known: KnownSize, data_dir: Path) -> list[int] | None:
    """Rows per leaf task in the local copy, or None when the files are not where the mirror layout puts them."""
    folder = data_dir / known.dataset
    configs = list(benchmark.subjects) if benchmark.subjects else [known.config or "default"]
    counts = [_count_rows(folder / config / f"{known.split}.jsonl") for config in configs]
    return None if any(c is None for c in counts) else [int(c) for c in counts]


def estimate_cost(benchmark: Benchmark, *, data_dir: Path | None = None, demo: bool = False, limit: int | None = None) -> Cost:
    """The expected cost of evaluating ``benchmark`` on one model (see the module docstring)."""
    known = KNOWN_SIZES.get(benchmark.name)
    tasks = len(benchmark.leaf_tasks) or 1
    counts: list[int] | None = None
    basis = "default size"
    if demo and benchmark.name in _demo_sizes():
        counts, basis = [_demo_sizes()[benchmark.name]] * tasks, "demo data"
    elif data_dir is not None and known is not None:
        counts = _local_counts(benchmark, known, data_dir)
        basis = "local data" if counts is not None else basis
    if counts is None and known is not None:
        share, extra = divmod(known.documents, tasks)
        counts, basis = [share + (1 if i < extra else 0) for i in range(tasks)], "known size"
    if counts is None:
        counts = [DEFAULT_DOCUMENTS] * tasks
    documents = sum(min(c, limit) if limit is not None else c for c in counts)
    if known is not None:
        per_document = GENERATION_WEIGHT if known.choices is None else known.choices
    else:
        per_document = GENERATION_WEIGHT if benchmark.generation else DEFAULT_CHOICES
    return Cost(documents, per_document, basis)


def split_by_cost(costs: Mapping[str, int], count: int) -> tuple[tuple[str, ...], ...]:
    """``count`` groups of the names in ``costs`` (in their given order), balanced by cost, deterministically."""
    position = {name: i for i, name in enumerate(costs)}
    loads = [0] * count
    groups: list[list[str]] = [[] for _ in range(count)]
    for name in sorted(costs, key=lambda n: (-costs[n], position[n])):
        target = min(range(count), key=lambda j: (loads[j], j))
        groups[target].append(name)
        loads[target] += costs[name]
    return tuple(tuple(sorted(group, key=position.__getitem__)) for group in groups)


@dataclass(frozen=True)
class ShardSplit:
    """Which benchmarks each of the N jobs runs, and this job's share."""

    spec: ShardSpec
    shards: tuple[tuple[str, ...], ...]
    costs: Mapping[str, Cost]

    @property
    def mine(self) -> tuple[str, ...]:
        return self.shards[self.spec.index - 1]

    def describe(self) -> str:
        """One line: what this shard runs, what the others run, and the estimates behind the split."""
        def listing(names: Iterable[str]) -> str:
            names = list(names)
            return ", ".join(names) if names else "nothing"

        others = "; ".join(
            f"{i}/{self.spec.count} runs {listing(group)}" for i, group in enumerate(self.shards, 1) if i != self.spec.index
        )
        bases = sorted({cost.basis for cost in self.costs.values()})
        estimate = ", ".join(f"{name} {cost.value:,}" for name, cost in self.costs.items())
        return (
            f"qwencmp: shard {self.spec} runs {listing(self.mine)}"
            + (f"; shard {others}" if others else "")
            + f" (expected cost {estimate}: documents × choices, × {GENERATION_WEIGHT} per generated answer; "
            f"{' and '.join(bases)})"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.spec.index,
            "count": self.spec.count,
            "benchmarks": [list(group) for group in self.shards],
            "costs": {name: cost.value for name, cost in self.costs.items()},
        }


def split_benchmarks(
    spec: ShardSpec,
    benchmarks: Iterable[Benchmark],
    *,
    data_dir: Path | None = None,
    demo: bool = False,
    limit: int | None = None,
) -> ShardSplit:
    """Split the selected ``benchmarks`` (in registry order) over ``spec.count`` jobs."""
    costs = {b.name: estimate_cost(b, data_dir=data_dir, demo=demo, limit=limit) for b in benchmarks}
    shards = split_by_cost({name: cost.value for name, cost in costs.items()}, spec.count)
    return ShardSplit(spec, shards, costs)
