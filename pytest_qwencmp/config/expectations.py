"""Expectations: what a run must show, read from a TOML file the user edits.

All numbers are percentage points. A benchmark table's plain keys apply to
all of its items; a sub-table per item overrides them; ``[defaults]`` applies
to every benchmark::

    [mmlu]
    max_regression = 5.0            # fail only when B is shown worse by more than 5 points
    [mmlu.overall]
    min_ci_lower = 9.0              # B shown better by more than 9 points
    floor_a = 58.0                  # and neither may fall below its floor
    floor_b = 70.3

A malformed file raises ``QwencmpError`` naming the file, the key and the
problem. This module only reads the file into frozen dataclasses; how each
rule is decided and how powerful it is at an item's size is
``stats.rules`` (``check``, ``assess``).
"""

from __future__ import annotations

import hashlib
import math
import tomllib
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, Mapping

from .benchmarks import Registry
from ..errors import QwencmpError

RULE_KEYS = {
    "min_improvement": "minimum of B − A on the point estimate, in points (negative allows a bounded regression)",
    "floor_a": "lowest acceptable score of model A, in points",
    "floor_b": "lowest acceptable score of model B, in points",
    "min_ci_lower": "passes only when the paired 95% CI of B − A starts above this many points (a one-sided test at 2.5 % of Δ ≤ t)",
    "no_significant_regression": "true: fail when B is significantly worse than A after multiple-comparison correction",
    "baseline_tolerance": "with --qwencmp-baseline-compare: largest allowed drop of B against the saved baseline, in points",
    "max_regression": "fail only when B is shown worse than A by more than this many points (a one-sided test at 2.5 % of Δ ≥ −X, adjusted over the benchmark's items that carry it)",
    "non_inferiority_margin": "pass only when B is shown within this many points of A (a one-sided test at 2.5 % of Δ ≤ −M, adjusted over the benchmark's items that carry it)",
}
_MARGINS = ("floor_a", "floor_b", "baseline_tolerance", "max_regression", "non_inferiority_margin")


@dataclass(frozen=True)
class Expectation:
    """The rules one item must satisfy; None means 'not required'."""

    min_improvement: float | None = None
    floor_a: float | None = None
    floor_b: float | None = None
    min_ci_lower: float | None = None
    no_significant_regression: bool | None = None
    baseline_tolerance: float | None = None
    max_regression: float | None = None
    non_inferiority_margin: float | None = None
    source: str = ""

    def is_empty(self) -> bool:
        return all(getattr(self, f.name) is None for f in fields(self) if f.name != "source")

    def overlaid_with(self, other: "Expectation") -> "Expectation":
        """``other``'s set rules win over this one's."""
        changes = {f.name: getattr(other, f.name) for f in fields(other) if f.name != "source" and getattr(other, f.name) is not None}
        return replace(self, **changes, source=other.source or self.source)


@dataclass(frozen=True)
class Expectations:
    """All expectations of a suite, resolved per (benchmark, item)."""

    path: Path | None
    defaults: Expectation
    benchmarks: Mapping[str, Expectation]
    items: Mapping[tuple[str, str], Expectation]

    def for_item(self, benchmark: str, item_id: str) -> Expectation:
        resolved = self.defaults
        if benchmark in self.benchmarks:
            resolved = resolved.overlaid_with(self.benchmarks[benchmark])
        if (benchmark, item_id) in self.items:
            resolved = resolved.overlaid_with(self.items[(benchmark, item_id)])
        return resolved


NO_EXPECTATIONS = Expectations(None, Expectation(), {}, {})


def _rules(table: Mapping[str, Any], where: str, path: Path) -> Expectation:
    values: dict[str, Any] = {}
    for key, value in table.items():
        if isinstance(value, Mapping):
            continue
        if key not in RULE_KEYS:
            raise QwencmpError(
                f"{path}: unknown key '{where}.{key}'. Allowed keys: "
                + "; ".join(f"{k} ({doc})" for k, doc in RULE_KEYS.items())
                + "."
            )
        if key == "no_significant_regression":
            if not isinstance(value, bool):
                raise QwencmpError(f"{path}: key '{where}.{key}' must be true or false, got {value!r}.")
            values[key] = value
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise QwencmpError(f"{path}: key '{where}.{key}' must be a number of percentage points, got {value!r}.")
        low, high = (0.0, 100.0) if key in _MARGINS else (-100.0, 100.0)
        if not low <= value <= high:
            raise QwencmpError(
                f"{path}: key '{where}.{key}' = {value} is out of range [{low:g}, {high:g}]; "
                "expectations are in percentage points (59.74, not 0.5974)."
            )
        values[key] = float(value)
    return Expectation(**values, source=f"{path.name}: [{where}]")


def parse_expectations(text: str, path: Path, registry: Registry) -> Expectations:
    """Parse and validate; every problem names the file, the key and what is wrong."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise QwencmpError(f"{path} is not valid TOML: {exc}. Fix the syntax (see README.md, 'Expectations').") from None
    defaults = Expectation()
    per_benchmark: dict[str, Expectation] = {}
    per_item: dict[tuple[str, str], Expectation] = {}
    for name, table in data.items():
        if name == "defaults":
            if not isinstance(table, Mapping) or any(isinstance(v, Mapping) for v in table.values()):
                raise QwencmpError(f"{path}: [defaults] must be a table of rules without sub-tables.")
            defaults = _rules(table, "defaults", path)
            continue
        if not isinstance(table, Mapping):
            raise QwencmpError(f"{path}: top-level key '{name}' must be a benchmark table like [{name}].")
        if name not in registry.names():
            raise QwencmpError(
                f"{path}: [{name}] is not a known benchmark; known: {', '.join(registry.names())} "
                "(add new benchmarks in evals/benchmarks.toml)."
            )
        benchmark = registry.get(name)
        item_ids = {item.id for item in benchmark.items}
        per_benchmark[name] = _rules(table, name, path)
        for item_id, sub in table.items():
            if not isinstance(sub, Mapping):
                continue
            if item_id not in item_ids:
                close = sorted(i for i in item_ids if i.startswith(item_id[:4]))[:5]
                raise QwencmpError(
                    f"{path}: [{name}.{item_id}] names no item of {name}"
                    + (f"; did you mean {', '.join(close)}?" if close else f"; its items are {', '.join(sorted(item_ids)[:6])}, …")
                )
            if any(isinstance(v, Mapping) for v in sub.values()):
                raise QwencmpError(f"{path}: [{name}.{item_id}] must not contain further tables.")
            per_item[(name, item_id)] = _rules(sub, f"{name}.{item_id}", path)
    return Expectations(path, defaults, per_benchmark, per_item)


def load_expectations(path: Path | None, registry: Registry) -> Expectations:
    if path is None:
        return NO_EXPECTATIONS
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise QwencmpError(f"Cannot read expectations file {path}: {exc.strerror}.") from None
    return parse_expectations(text, path, registry)


def expectations_identity(path: Path | None, text: str | None = None) -> dict[str, Any] | None:
    """Which expectations file judged a run, as every report records it: its path and the sha256 of its
    bytes (of ``text``, UTF-8, when given instead of the file); None without a file."""
    if path is None:
        return None
    try:
        data = text.encode("utf-8") if text is not None else Path(path).read_bytes()
    except OSError:
        return {"path": str(path), "sha256": None}
    return {"path": str(path), "sha256": hashlib.sha256(data).hexdigest()}
