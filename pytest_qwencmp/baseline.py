"""Baselines across runs: save a run, compare a later run with it.

This module owns the baseline file and everything decided from it:

* what a baseline holds (:class:`Baseline`, :class:`BaselineItem`): every
  item's score and per-document values for both models, the settings that
  change the numbers, the two models' identities (name, revision,
  fingerprint), the machine, the lm-eval version and the project's commit;
* building one from the run's evaluations (:func:`baseline_from_evaluations`,
  with :func:`number_settings`, :func:`machine_info`, :func:`project_commit`);
* the file: :func:`save_baseline` writes ``DIR/NAME.json`` atomically as
  deterministic JSON (sorted keys, one ``[doc_key, value]`` pair per line, so
  a baseline kept in git diffs document by document); :func:`load_baseline`
  reads it back or raises one clear :class:`QwencmpError` paragraph for a
  missing, truncated, corrupt or other-format file, listing the baselines
  the directory does hold (:func:`available_baselines`);
* whether two runs may be compared (:func:`settings_mismatches`,
  :func:`check_compatible`): different shots, limit, dtype, backend, device
  type, generation kwargs, seed, task versions, lm-eval version or data are
  refused unless the user passes ``--qwencmp-baseline-allow-mismatch``;
* the comparison (:func:`compare_to_baseline`): per item, the current run
  against the saved one with the paired machinery of ``statistics``, over the
  documents present in both (matched by doc key ``"task/doc_id"``), p-values
  adjusted across each benchmark's non-overall items, and a
  :class:`BaselineComparison` saying whether the item regressed beyond its
  tolerance.

It is pure: no pytest, no lm-eval, no model; the plugin decides when to save
and compare, and turns a regression into a failed item. Scores are fractions
(as in ``ItemScore``); tolerances and messages are in percentage points.

JSON layout (``format`` = :data:`BASELINE_FORMAT`)::

    {"format": 1, "name": ..., "created": "2025-01-01T00:00:00+00:00",
     "project_commit": "<sha>" | null, "machine": {...}, "models": {"a": {...}, "b": {...}},
     "settings": {"lm_eval_version": ..., "limit": ..., "seed": ..., "data": {bench: ...},
                  "runs": {side: {"dtype", "backend", "device_type",
                                  "benchmarks": {bench: {"num_fewshot", "task_versions", "gen_kwargs"}}}}},
     "items": [{"side", "benchmark", "item_id", "task", "metric", "value", "stderr", "n",
                "docs": [["task/doc_id", value], ...]}, ...]}

A non-finite score is written as ``null`` and read back as NaN.
"""

from __future__ import annotations

import json
import math
import os
import platform
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

from .benchmarks import OVERALL
from .errors import QwencmpError
from .evaluation import BenchmarkEvaluation, ItemScore, json_safe

if TYPE_CHECKING:  # pragma: no cover
    from .settings import RunSettings
    from .statistics import PairedComparison

__all__ = [
    "BASELINE_FORMAT",
    "SAVE_OPTION",
    "COMPARE_OPTION",
    "DIR_OPTION",
    "ALLOW_MISMATCH_OPTION",
    "BaselineItem",
    "Baseline",
    "BaselineComparison",
    "validate_name",
    "available_baselines",
    "baseline_path",
    "number_settings",
    "machine_info",
    "project_commit",
    "items_from_evaluations",
    "baseline_from_evaluations",
    "save_baseline",
    "load_baseline",
    "settings_mismatches",
    "check_compatible",
    "compare_to_baseline",
]

BASELINE_FORMAT = 1
POINTS = 100.0

# The option names the messages refer to; plugin.py registers options under these names.
SAVE_OPTION = "--qwencmp-baseline-save"
COMPARE_OPTION = "--qwencmp-baseline-compare"
DIR_OPTION = "--qwencmp-baseline-dir"
ALLOW_MISMATCH_OPTION = "--qwencmp-baseline-allow-mismatch"

_NAME = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,99}$")
_SIDE_LABEL = {"a": "model A", "b": "model B"}
_VOLATILE_MODEL_KEYS = ("load_seconds",)
# Regressions are judged on point deltas; a delta that equals -tolerance up to
# float rounding is "within" the tolerance.
_EPS_POINTS = 1e-9


# --------------------------------------------------------------------------
# records


@dataclass(frozen=True)
class BaselineItem:
    """One model's (``side``) score on one item, with its per-document values.

    ``value`` and ``stderr`` are fractions as lm-eval reports them; ``per_doc[i]``
    is the value of document ``doc_keys[i]`` (``"task/doc_id"``).
    """

    side: str
    benchmark: str
    item_id: str
    task: str
    metric: str
    value: float
    stderr: float | None
    n: int
    doc_keys: tuple[str, ...] = ()
    per_doc: tuple[float, ...] = ()

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.side, self.benchmark, self.item_id)

    @classmethod
    def from_score(cls, side: str, benchmark: str, score: ItemScore) -> "BaselineItem":
        return cls(
            side=side,
            benchmark=benchmark,
            item_id=score.item_id,
            task=score.task,
            metric=score.metric,
            value=float(score.value),
            stderr=None if score.stderr is None else float(score.stderr),
            n=int(score.n),
            doc_keys=tuple(str(k) for k in score.doc_keys),
            per_doc=tuple(float(v) for v in score.per_doc),
        )

    def to_item_score(self) -> ItemScore:
        return ItemScore(self.item_id, self.task, self.metric, self.value, self.stderr, self.n, self.doc_keys, self.per_doc)

    def to_json(self) -> dict[str, Any]:
        return {
            "side": self.side,
            "benchmark": self.benchmark,
            "item_id": self.item_id,
            "task": self.task,
            "metric": self.metric,
            "value": _finite_or_none(self.value),
            "stderr": None if self.stderr is None else _finite_or_none(self.stderr),
            "n": self.n,
            "docs": [[k, _finite_or_none(v)] for k, v in zip(self.doc_keys, self.per_doc)],
        }

    @classmethod
    def from_json(cls, data: Any, where: str) -> "BaselineItem":
        if not isinstance(data, Mapping):
            raise ValueError(f"{where} is not an object")
        missing = [k for k in ("side", "benchmark", "item_id", "task", "metric", "value", "stderr", "n", "docs") if k not in data]
        if missing:
            raise ValueError(f"{where} lacks {', '.join(missing)}")
        docs = data["docs"]
        if not isinstance(docs, list) or not all(
            isinstance(d, list) and len(d) == 2 and isinstance(d[0], str) for d in docs
        ):
            raise ValueError(f"{where}: 'docs' must be a list of [doc_key, value] pairs")
        for field_name in ("side", "benchmark", "item_id", "task", "metric"):
            if not isinstance(data[field_name], str):
                raise ValueError(f"{where}: {field_name!r} must be a string")
        return cls(
            side=data["side"],
            benchmark=data["benchmark"],
            item_id=data["item_id"],
            task=data["task"],
            metric=data["metric"],
            value=_number_or_nan(data["value"], f"{where} value"),
            stderr=None if data["stderr"] is None else _number_or_nan(data["stderr"], f"{where} stderr"),
            n=_integer(data["n"], f"{where} n"),
            doc_keys=tuple(d[0] for d in docs),
            per_doc=tuple(_number_or_nan(d[1], f"{where} document {d[0]}") for d in docs),
        )


@dataclass(frozen=True)
class Baseline:
    """A saved run: what it scored, under which settings, models, machine and commit.

    ``settings`` holds only the settings that change the numbers (see
    :func:`number_settings`); ``models`` maps ``"a"``/``"b"`` to the model's
    label, name_or_path, revision, fingerprint, dtype, backend, device, …;
    ``items`` maps ``(side, benchmark, item_id)`` to its :class:`BaselineItem`.
    All mappings hold JSON values only (lists, not tuples), so a baseline
    equals itself after :func:`save_baseline` and :func:`load_baseline`.
    """

    name: str
    created: str
    settings: Mapping[str, Any]
    models: Mapping[str, Mapping[str, Any]]
    machine: Mapping[str, Any]
    project_commit: str | None
    items: Mapping[tuple[str, str, str], BaselineItem]
    format: int = BASELINE_FORMAT

    def item(self, side: str, benchmark: str, item_id: str) -> BaselineItem | None:
        return self.items.get((side, benchmark, item_id))

    def benchmarks(self) -> tuple[str, ...]:
        return tuple(sorted({key[1] for key in self.items}))

    def describe(self) -> str:
        """``'NAME' (saved 2025-…, commit abc1234)``: how messages name the baseline."""
        commit = f", commit {self.project_commit[:12]}" if self.project_commit else ""
        return f"baseline '{self.name}' (saved {self.created}{commit})"

    def to_json(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "name": self.name,
            "created": self.created,
            "project_commit": self.project_commit,
            "machine": json_safe(self.machine),
            "models": json_safe(self.models),
            "settings": json_safe(self.settings),
            "items": [self.items[key].to_json() for key in sorted(self.items)],
        }

    def dumps(self) -> str:
        """Deterministic JSON text: sorted keys, one document pair per line."""
        return _emit(self.to_json(), 0) + "\n"


# --------------------------------------------------------------------------
# JSON helpers


def _finite_or_none(value: float) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def _number_or_nan(value: Any, where: str) -> float:
    if value is None:
        return float("nan")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{where} must be a number, got {value!r}")
    return float(value)


def _integer(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{where} must be an integer, got {value!r}")
    return value


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, (str, int, float, bool))


def _emit(value: Any, level: int) -> str:
    """Pretty JSON with sorted keys; a list of scalars stays on one line."""
    if isinstance(value, dict):
        if not value:
            return "{}"
        pad = " " * (level + 1)
        body = ",\n".join(f"{pad}{json.dumps(k)}: {_emit(value[k], level + 1)}" for k in sorted(value))
        return "{\n" + body + "\n" + " " * level + "}"
    if isinstance(value, list):
        if all(_is_scalar(v) for v in value):
            return json.dumps(value, allow_nan=False, ensure_ascii=False)
        pad = " " * (level + 1)
        body = ",\n".join(pad + _emit(v, level + 1) for v in value)
        return "[\n" + body + "\n" + " " * level + "]"
    return json.dumps(value, allow_nan=False, ensure_ascii=False)


# --------------------------------------------------------------------------
# names and files


def validate_name(name: str) -> str:
    """A baseline name: letters, digits, ``.``, ``_``, ``-`` (not starting with ``.``), at most 100."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise QwencmpError(
            f"Baseline name {name!r} is not allowed: use 1 to 100 letters, digits, '.', '_' or '-', "
            "not starting with '.' (for example 'main' or 'qwen2.5-7b_2025-01'); it becomes the file NAME.json."
        )
    return name


def baseline_path(directory: Path, name: str) -> Path:
    return Path(directory) / f"{validate_name(name)}.json"


def available_baselines(directory: Path) -> list[str]:
    """The names of the baseline files (``NAME.json``) in ``directory``, sorted; [] if none or no directory."""
    try:
        entries = list(Path(directory).iterdir())
    except OSError:
        return []
    return sorted(p.stem for p in entries if p.suffix == ".json" and p.is_file() and _NAME.match(p.stem))


def _available_text(directory: Path) -> str:
    names = available_baselines(directory)
    if names:
        return f"Baselines available in {directory}: {', '.join(names)}."
    return f"No baselines are saved in {directory}; save one with {SAVE_OPTION} NAME."


# --------------------------------------------------------------------------
# what a run records


def _single_or_mapping(n_shot: Mapping[str, Any]) -> Any:
    values = list(n_shot.values())
    if values and all(v == values[0] for v in values):
        return values[0]
    return dict(n_shot) if n_shot else None


def number_settings(
    evaluations: Iterable[BenchmarkEvaluation] = (),
    settings: "RunSettings | None" = None,
    *,
    data: Mapping[str, Any] | str | None = None,
) -> dict[str, Any]:
    """The settings that change a run's numbers, as a JSON mapping.

    From the evaluations (what actually ran): per side the dtype, backend,
    tensor-parallel size and device type the weights ran with, and per (side, benchmark) the shots
    (lm-eval's ``n-shot``; one number when all tasks agree), the task versions
    (lm-eval's ``versions``) and the generation kwargs; the lm-eval version.
    From ``settings``: ``limit`` and ``seed``. ``data`` identifies the data
    each benchmark read: a mapping benchmark -> fingerprint (for example
    ``TaskSource(benchmark, data_dir).data_fingerprints()``) or one value for
    all; by default ``"hub"`` without a data directory and ``"local"`` with
    one (which cannot tell two local copies apart: pass fingerprints).

    Keys that cannot be known are left out; :func:`settings_mismatches`
    compares only what both sides record, so a partial mapping (say, from
    ``settings`` alone before anything ran) may be checked early and the full
    one later. Batch size and the machine are not included: they are recorded
    in the baseline but do not refuse a comparison.
    """
    out: dict[str, Any] = {}
    runs: dict[str, Any] = {}
    versions: set[str] = set()
    benchmarks: set[str] = set()
    execution: dict[str, dict[str, set[str]]] = {}
    for evaluation in evaluations:
        benchmarks.add(evaluation.benchmark)
        run = runs.setdefault(evaluation.side, {"benchmarks": {}})
        model = evaluation.model or {}
        seen = execution.setdefault(evaluation.side, {})
        for key in ("dtype", "backend", "tensor_parallel"):
            if model.get(key) is not None:
                seen.setdefault(key, set()).add(str(model[key]))
        if model.get("device") is not None:
            seen.setdefault("device_type", set()).add(str(model["device"]).split(":")[0])
        run["benchmarks"][evaluation.benchmark] = {
            "num_fewshot": _single_or_mapping(evaluation.n_shot),
            "task_versions": dict(evaluation.versions),
            "gen_kwargs": None if evaluation.gen_kwargs is None else dict(evaluation.gen_kwargs),
        }
        if evaluation.lm_eval_version:
            versions.add(str(evaluation.lm_eval_version))
    for side, seen in execution.items():
        for key, values in seen.items():  # one value unless the side's evaluations disagree
            runs[side][key] = next(iter(values)) if len(values) == 1 else sorted(values)
    if versions:
        out["lm_eval_version"] = versions.pop() if len(versions) == 1 else sorted(versions)
    if settings is not None:
        out["limit"] = settings.limit
        out["seed"] = settings.seed
    if isinstance(data, Mapping):
        out["data"] = dict(data)
    elif data is not None:
        out["data"] = {name: data for name in sorted(benchmarks)}
    elif settings is not None and benchmarks:
        out["data"] = {name: ("local" if settings.data_dir else "hub") for name in sorted(benchmarks)}
    if runs:
        out["runs"] = runs
    return json_safe(out)


def machine_info() -> dict[str, Any]:
    """Hostname, OS, CPU architecture, Python; torch, CUDA and the GPU when torch is already imported."""
    info: dict[str, Any] = {
        "hostname": platform.node(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "python": platform.python_version(),
    }
    torch = sys.modules.get("torch")  # never import torch just for this
    if torch is not None:
        try:
            info["torch"] = str(torch.__version__)
            info["cuda"] = getattr(torch.version, "cuda", None)
            if torch.cuda.is_available() and torch.cuda.is_initialized():
                info["gpu"] = torch.cuda.get_device_name(torch.cuda.current_device())
        except Exception:  # pragma: no cover - purely informational
            pass
    return info


def project_commit(cwd: Path | str | None = None, *, timeout: float = 5.0) -> str | None:
    """``git rev-parse HEAD`` of the repository holding ``cwd`` (default: the current directory), or None."""
    try:
        done = subprocess.run(
            ["git", "rev-parse", "--verify", "-q", "HEAD"],
            cwd=None if cwd is None else str(cwd),
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    sha = done.stdout.strip()
    if done.returncode != 0 or not re.fullmatch(r"[0-9a-f]{40}|[0-9a-f]{64}", sha):
        return None
    return sha


def items_from_evaluations(evaluations: Iterable[BenchmarkEvaluation]) -> dict[tuple[str, str, str], BaselineItem]:
    """Every item score of the evaluations, keyed ``(side, benchmark, item_id)``."""
    items: dict[tuple[str, str, str], BaselineItem] = {}
    for evaluation in evaluations:
        for score in evaluation.items:
            item = BaselineItem.from_score(evaluation.side, evaluation.benchmark, score)
            items[item.key] = item
    return items


def _models_of(evaluations: Iterable[BenchmarkEvaluation]) -> dict[str, dict[str, Any]]:
    """side -> the model's description (first evaluation first; later ones fill gaps)."""
    models: dict[str, dict[str, Any]] = {}
    for evaluation in evaluations:
        model = models.setdefault(evaluation.side, {})
        for key, value in (evaluation.model or {}).items():
            if key not in _VOLATILE_MODEL_KEYS and model.get(key) is None:
                model[key] = value
    return models


def baseline_from_evaluations(
    name: str,
    evaluations: Iterable[BenchmarkEvaluation],
    settings_that_matter: Mapping[str, Any],
    *,
    machine: Mapping[str, Any] | None = None,
    project_commit: str | None = None,
    created: str | None = None,
) -> Baseline:
    """A :class:`Baseline` of these evaluations (both sides, every benchmark run).

    ``settings_that_matter`` is normally :func:`number_settings` of the same
    evaluations; ``machine`` defaults to :func:`machine_info`; pass
    ``project_commit=project_commit()`` (the function) yourself: this one
    runs no git. ``created`` defaults to now, in UTC, ISO 8601.
    """
    evaluations = list(evaluations)
    return Baseline(
        name=validate_name(name),
        created=created or datetime.now(timezone.utc).isoformat(timespec="seconds"),
        settings=json_safe(settings_that_matter),
        models=json_safe(_models_of(evaluations)),
        machine=json_safe(machine_info() if machine is None else machine),
        project_commit=project_commit,
        items=items_from_evaluations(evaluations),
    )


# --------------------------------------------------------------------------
# save / load


def save_baseline(baseline: Baseline, directory: Path) -> Path:
    """Write ``directory/NAME.json`` atomically (temporary file + ``os.replace``); returns the path.

    The directory is created if needed; an existing baseline of that name is
    replaced in one step, so readers see the old file or the new one, never a
    partial write.
    """
    path = baseline_path(directory, baseline.name)
    text = baseline.dumps()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{baseline.name}.", suffix=".tmp")
    except OSError as exc:
        raise QwencmpError(f"Cannot write baseline {baseline.name!r} to {path.parent}: {exc.strerror or exc}.") from None
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise QwencmpError(f"Cannot write baseline {path}: {exc.strerror or exc}.") from None
        raise
    return path


def _resolve_file(directory_or_file: Path, name: str | None) -> tuple[Path, Path]:
    """(file, directory) for the arguments of :func:`load_baseline`."""
    location = Path(directory_or_file)
    if name is None:
        if location.is_file():
            return location, location.parent
        if location.is_dir():
            raise QwencmpError(
                f"Name the baseline to compare with ({COMPARE_OPTION} NAME). {_available_text(location)}"
            )
        if location.suffix == ".json":
            raise QwencmpError(f"Baseline file {location} does not exist. {_available_text(location.parent)}")
        raise QwencmpError(
            f"Baseline directory {location} does not exist; save a baseline first with {SAVE_OPTION} NAME "
            f"(and {DIR_OPTION} DIR)."
        )
    if name.endswith(".json"):
        name = name[: -len(".json")]
    path = baseline_path(location, name)
    if not location.is_dir():
        raise QwencmpError(
            f"There is no baseline {name!r}: the baseline directory {location} does not exist. "
            f"Save one first with {SAVE_OPTION} {name}, or point {DIR_OPTION} at the directory that holds it."
        )
    if not path.is_file():
        raise QwencmpError(f"There is no baseline {name!r} ({path} does not exist). {_available_text(location)}")
    return path, location


def load_baseline(directory_or_file: Path, name: str | None = None) -> Baseline:
    """Read a baseline: ``directory/NAME.json`` or, with ``name=None``, the file given.

    Missing, unreadable, truncated or corrupt files and files of another
    format raise :class:`QwencmpError` with one paragraph that names the file,
    the problem and what to do, and lists the baselines the directory holds.
    """
    path, directory = _resolve_file(directory_or_file, name)

    def fail(problem: str) -> QwencmpError:
        return QwencmpError(
            f"Baseline file {path} {problem} Restore it (for example from git) or save it again with "
            f"{SAVE_OPTION} {path.stem}. {_available_text(directory)}"
        )

    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise fail(f"cannot be read ({exc.strerror or exc}).") from None
    except UnicodeDecodeError:
        raise fail("is not UTF-8 text: it is not a baseline or it is corrupt.") from None
    if not text.strip():
        raise fail("is empty (an interrupted write or a truncated copy).")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise fail(
            f"is not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno}): it is truncated, "
            "corrupt or holds merge-conflict markers."
        ) from None
    if not isinstance(data, dict):
        raise fail("does not hold a baseline (expected a JSON object).")
    found = data.get("format")
    if found != BASELINE_FORMAT:
        if isinstance(found, int) and not isinstance(found, bool):
            age = "an older" if found < BASELINE_FORMAT else "a newer"
            raise fail(
                f"has baseline format {found}, written by {age} pytest-qwencmp; this version reads format "
                f"{BASELINE_FORMAT} only."
            )
        raise fail("has no baseline format number: it is not a pytest-qwencmp baseline.")
    try:
        return _baseline_from_json(data)
    except (ValueError, TypeError, KeyError) as exc:
        raise fail(f"is malformed: {exc}.") from None


def _baseline_from_json(data: Mapping[str, Any]) -> Baseline:
    missing = [k for k in ("name", "created", "settings", "models", "machine", "project_commit", "items") if k not in data]
    if missing:
        raise ValueError(f"it lacks {', '.join(missing)}")
    for key in ("settings", "models", "machine"):
        if not isinstance(data[key], dict):
            raise ValueError(f"'{key}' must be an object")
    if not isinstance(data["name"], str) or not isinstance(data["created"], str):
        raise ValueError("'name' and 'created' must be strings")
    if data["project_commit"] is not None and not isinstance(data["project_commit"], str):
        raise ValueError("'project_commit' must be a string or null")
    if not isinstance(data["items"], list):
        raise ValueError("'items' must be a list")
    items: dict[tuple[str, str, str], BaselineItem] = {}
    for index, raw in enumerate(data["items"]):
        item = BaselineItem.from_json(raw, f"item {index + 1}")
        if item.key in items:
            raise ValueError(f"item {index + 1} repeats {item.side}/{item.benchmark}[{item.item_id}]")
        items[item.key] = item
    return Baseline(
        name=data["name"],
        created=data["created"],
        settings=data["settings"],
        models=data["models"],
        machine=data["machine"],
        project_commit=data["project_commit"],
        items=items,
        format=data["format"],
    )


# --------------------------------------------------------------------------
# compatibility


def _show(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True)


def _leaf_diffs(base: Any, now: Any, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any, Any]]:
    """The differing leaves of two JSON values (missing keys show as None)."""
    if isinstance(base, dict) and isinstance(now, dict):
        diffs = []
        for key in sorted(set(base) | set(now)):
            diffs += _leaf_diffs(base.get(key), now.get(key), path + (key,))
        return diffs
    if base == now:
        return []
    return [(path, base, now)]


def _describe_diffs(diffs: list[tuple[tuple[str, ...], Any, Any]], most: int = 3) -> str:
    if len(diffs) == 1 and not diffs[0][0]:
        _, base, now = diffs[0]
        return f"baseline {_show(base)}, now {_show(now)}"
    parts = [f"{'/'.join(path)} baseline {_show(base)}, now {_show(now)}" for path, base, now in diffs[:most]]
    if len(diffs) > most:
        parts.append(f"and {len(diffs) - most} more")
    return "; ".join(parts)


def settings_mismatches(
    baseline: Baseline,
    current_settings: Mapping[str, Any],
    *,
    sides: Iterable[str] | None = None,
) -> list[str]:
    """Human-readable differences in the settings that change the numbers; [] if compatible.

    Compares :func:`number_settings`-shaped mappings. Only what both record is
    compared: settings, benchmarks and sides missing on either side are
    skipped (a run of fewer benchmarks is compatible with a baseline of
    more). ``sides`` limits the per-model settings to those models (default:
    both). A difference that concerns only some of the compared models names
    them, e.g. ``"dtype (model B): baseline float16, now bfloat16"``; others
    read ``"mmlu num_fewshot: baseline 5, now 0"``.
    """
    base = json_safe(baseline.settings)
    now = json_safe(current_settings)
    wanted = None if sides is None else set(sides)
    found: list[tuple[str, str | None, str]] = []  # (label, side, text)

    for key in sorted(set(base) & set(now)):
        if key == "runs" and isinstance(base[key], dict) and isinstance(now[key], dict):
            for side in sorted(set(base[key]) & set(now[key])):
                if wanted is not None and side not in wanted:
                    continue
                run_b, run_n = base[key][side], now[key][side]
                if not isinstance(run_b, dict) or not isinstance(run_n, dict):
                    continue
                for setting in sorted(set(run_b) & set(run_n)):
                    if setting == "benchmarks" and isinstance(run_b[setting], dict) and isinstance(run_n[setting], dict):
                        for bench in sorted(set(run_b[setting]) & set(run_n[setting])):
                            cfg_b, cfg_n = run_b[setting][bench], run_n[setting][bench]
                            if not isinstance(cfg_b, dict) or not isinstance(cfg_n, dict):
                                continue
                            for name in sorted(set(cfg_b) & set(cfg_n)):
                                diffs = _leaf_diffs(cfg_b[name], cfg_n[name])
                                if diffs:
                                    found.append((f"{bench} {name}", side, _describe_diffs(diffs)))
                        continue
                    diffs = _leaf_diffs(run_b[setting], run_n[setting])
                    if diffs:
                        found.append((setting, side, _describe_diffs(diffs)))
        elif key == "data" and isinstance(base[key], dict) and isinstance(now[key], dict):
            for bench in sorted(set(base[key]) & set(now[key])):
                diffs = _leaf_diffs(base[key][bench], now[key][bench])
                if diffs:
                    found.append((f"{bench} data", None, _describe_diffs(diffs)))
        else:
            diffs = _leaf_diffs(base[key], now[key])
            if diffs:
                found.append((key, None, _describe_diffs(diffs)))

    # Merge the same difference seen for both models into one line.
    compared_sides: set[str] = set()
    if isinstance(base.get("runs"), dict) and isinstance(now.get("runs"), dict):
        compared_sides = {s for s in set(base["runs"]) & set(now["runs"]) if wanted is None or s in wanted}
    grouped: dict[tuple[str, str], list[str]] = {}
    for label, side, text in found:
        grouped.setdefault((label, text), [])
        if side is not None:
            grouped[(label, text)].append(side)
    lines = []
    for (label, text), group_sides in grouped.items():
        suffix = ""
        if group_sides and set(group_sides) != compared_sides:
            suffix = " (" + " and ".join(_SIDE_LABEL.get(s, f"side {s}") for s in sorted(group_sides)) + ")"
        lines.append(f"{label}{suffix}: {text}")
    return lines


def check_compatible(
    baseline: Baseline,
    current_settings: Mapping[str, Any],
    *,
    allow_mismatch: bool,
    sides: Iterable[str] | None = None,
) -> list[str]:
    """Refuse a comparison whose number-changing settings differ, unless ``allow_mismatch``.

    Raises :class:`QwencmpError` listing every difference and naming
    ``--qwencmp-baseline-allow-mismatch``; with ``allow_mismatch`` returns
    the differences (warnings for the report) instead. [] when compatible.
    """
    mismatches = settings_mismatches(baseline, current_settings, sides=sides)
    if mismatches and not allow_mismatch:
        raise QwencmpError(
            f"This run cannot be compared with {baseline.describe()}: settings that change the numbers differ — "
            + "; ".join(mismatches)
            + f". Rerun with the baseline's settings, save a new baseline with {SAVE_OPTION} NAME, or pass "
            f"{ALLOW_MISMATCH_OPTION} to compare anyway (only documents present in both runs are paired)."
        )
    return mismatches


# --------------------------------------------------------------------------
# comparison


@dataclass(frozen=True)
class BaselineComparison:
    """One item of one model (``side``): the current run against the baseline.

    ``baseline_value`` and ``current_value`` are the items' full scores
    (fractions); ``paired`` compares them over the ``matched_docs`` documents
    present in both runs (``mean_a`` = baseline, ``mean_b`` = current,
    ``delta`` = current − baseline), None when no document matches or either
    run lacks per-document values. ``adjusted_p`` is corrected across the
    benchmark's non-overall items (``correction``; an overall item keeps its
    raw p). ``significance`` is "better", "worse", "no detectable difference"
    or "n/a" for the current run relative to the baseline. ``regressed``:
    the delta (paired over matched documents when available, else of the
    full scores) is below ``-tolerance_points``, or the current run is
    significantly worse after correction (when that rule is on).
    """

    benchmark: str
    item_id: str
    side: str
    metric: str
    baseline_name: str
    baseline_model: str
    current_model: str
    baseline_value: float
    current_value: float
    baseline_stderr: float | None
    current_stderr: float | None
    paired: "PairedComparison | None"
    matched_docs: int
    baseline_docs: int
    current_docs: int
    adjusted_p: float | None
    correction: str
    significance: str
    tolerance_points: float
    regressed: bool
    message: str

    @property
    def delta_points(self) -> float:
        """current − baseline in points: paired over matched documents when available."""
        if self.paired is not None:
            return self.paired.delta * POINTS
        return (self.current_value - self.baseline_value) * POINTS

    def assert_not_regressed(self) -> None:
        """Raise AssertionError with :attr:`message` when the item regressed."""
        __tracebackhide__ = True
        if self.regressed:
            raise AssertionError(self.message)

    def to_record(self) -> dict[str, Any]:
        """A JSON-able row for reports (points, rounded)."""
        p = self.paired
        return {
            "benchmark": self.benchmark,
            "item": self.item_id,
            "side": self.side,
            "metric": self.metric,
            "baseline": self.baseline_name,
            "baseline_model": self.baseline_model,
            "current_model": self.current_model,
            "baseline_value": round(self.baseline_value * POINTS, 4),
            "current_value": round(self.current_value * POINTS, 4),
            "delta": round(self.delta_points, 4),
            "ci_low": None if p is None else round(p.ci_low * POINTS, 4),
            "ci_high": None if p is None else round(p.ci_high * POINTS, 4),
            "p_value": None if p is None else p.p_value,
            "adjusted_p": self.adjusted_p,
            "correction": self.correction,
            "significance": self.significance,
            "matched_docs": self.matched_docs,
            "baseline_docs": self.baseline_docs,
            "current_docs": self.current_docs,
            "tolerance": self.tolerance_points,
            "regressed": self.regressed,
        }


CurrentScores = Union[
    Baseline,
    Iterable[BenchmarkEvaluation],
    Mapping[tuple[str, str, str], Union[ItemScore, BaselineItem]],
]
Tolerance = Union[float, int, Mapping[tuple[str, str], float], Callable[[str, str], "float | None"]]


def _current_items(current: CurrentScores) -> tuple[dict[tuple[str, str, str], BaselineItem], dict[str, str]]:
    """(items keyed (side, benchmark, item_id), side -> model label) from any accepted form."""
    if isinstance(current, Baseline):
        labels = {s: str(m.get("label", "")) for s, m in current.models.items()}
        return dict(current.items), labels
    if isinstance(current, Mapping):
        items = {}
        for key, score in current.items():
            side, benchmark, _item_id = key
            items[tuple(key)] = score if isinstance(score, BaselineItem) else BaselineItem.from_score(side, benchmark, score)
        return items, {}
    evaluations = list(current)
    labels = {e.side: str((e.model or {}).get("label", "")) for e in evaluations}
    return items_from_evaluations(evaluations), labels


def _tolerance_for(tolerance: Tolerance, benchmark: str, item_id: str, default: float) -> float:
    if callable(tolerance):
        value = tolerance(benchmark, item_id)
    elif isinstance(tolerance, Mapping):
        value = tolerance.get((benchmark, item_id), tolerance.get((benchmark, "*"), default))
    else:
        value = tolerance
    value = default if value is None else float(value)
    if not math.isfinite(value) or value < 0:
        raise QwencmpError(f"The baseline tolerance of {benchmark}[{item_id}] must be a non-negative number of points, got {value}.")
    return value


def _match(base: BaselineItem, now: BaselineItem) -> tuple[list[float], list[float]]:
    """The two runs' values on the documents both scored, in the baseline's order."""
    if not base.per_doc or not now.per_doc:
        return [], []
    current = dict(zip(now.doc_keys, now.per_doc))
    xs, ys = [], []
    for key, value in zip(base.doc_keys, base.per_doc):
        if key in current and math.isfinite(value) and math.isfinite(current[key]):
            xs.append(value)
            ys.append(current[key])
    return xs, ys


def _score_text(value: float, stderr: float | None) -> str:
    err = f" ± {stderr * POINTS:.2f}" if stderr is not None and math.isfinite(stderr) else ""
    return f"{value * POINTS:.2f}{err}"


def compare_to_baseline(
    baseline: Baseline,
    current: CurrentScores,
    *,
    side: str = "b",
    tolerance_points: Tolerance = 1.0,
    correction: str = "holm",
    alpha: float = 0.05,
    fail_on_significant: bool = True,
    seed: int = 0,
) -> dict[tuple[str, str], BaselineComparison]:
    """Every item of ``side`` scored both now and in ``baseline``, compared; keyed (benchmark, item_id).

    ``current`` is the run's evaluations, a mapping ``(side, benchmark,
    item_id) -> ItemScore | BaselineItem``, or another :class:`Baseline`.
    Items only in one of the two runs are left out of the result (the caller
    reports them as "no baseline"). Documents are matched by doc key; the
    paired statistics (``statistics.compare_paired``, baseline as A, current
    as B, ``seed`` for resampling metrics) use matched documents only.
    ``tolerance_points`` is one number, a mapping ``(benchmark, item_id) ->
    points`` (``(benchmark, "*")`` for a whole benchmark; unlisted items get
    1.0), or a callable ``(benchmark, item_id) -> points | None`` (None:
    1.0) — for example the expectations' tolerance per item.
    ``fail_on_significant=False`` judges by the tolerance alone.

    This does not check the settings: call :func:`check_compatible` first.
    """
    from . import statistics as stats

    now_items, now_labels = _current_items(current)
    base_labels = {s: str(m.get("label", "")) for s, m in baseline.models.items()}
    pairs: dict[str, dict[str, tuple[BaselineItem, BaselineItem, Any, int]]] = {}
    for key in sorted(baseline.items):
        item_side, benchmark, item_id = key
        if item_side != side or key not in now_items:
            continue
        base, now = baseline.items[key], now_items[key]
        xs, ys = _match(base, now)
        paired = stats.compare_paired(xs, ys, seed=seed) if xs else None
        pairs.setdefault(benchmark, {})[item_id] = (base, now, paired, len(xs))

    results: dict[tuple[str, str], BaselineComparison] = {}
    for benchmark, by_item in pairs.items():
        family = [i for i, (*_, p, _n) in by_item.items() if p is not None and i.split(":")[0] != OVERALL]
        raw = [by_item[i][2].p_value for i in family]
        adjusted = dict(zip(family, stats.adjust_p_values(raw, method=correction)))
        for item_id, (base, now, paired, matched) in by_item.items():
            adjusted_p = adjusted.get(item_id, None if paired is None else paired.p_value)
            method = correction if item_id in adjusted and len(family) > 1 else "un"
            significance = "n/a" if paired is None else stats.verdict(paired, adjusted_p, alpha)
            tolerance = _tolerance_for(tolerance_points, benchmark, item_id, 1.0)
            delta = paired.delta * POINTS if paired is not None else (now.value - base.value) * POINTS
            beyond = math.isfinite(delta) and delta < -tolerance - _EPS_POINTS
            significant = fail_on_significant and significance == stats.VERDICT_WORSE
            regressed = bool(beyond or significant)

            label = _SIDE_LABEL.get(side, f"side {side}")
            who = now_labels.get(side) or base_labels.get(side) or ""
            parts = [
                f"{benchmark}[{item_id}] {base.metric} of {label}{f' ({who})' if who else ''}: "
                f"{baseline.describe()} {_score_text(base.value, base.stderr)}"
                f"{f' ({base_labels[side]})' if base_labels.get(side) and base_labels.get(side) != who else ''}, "
                f"now {_score_text(now.value, now.stderr)}; "
            ]
            if paired is not None:
                parts.append(
                    f"now − baseline = {delta:+.2f} points over {matched} matched documents "
                    f"({len(base.per_doc)} in the baseline, {len(now.per_doc)} now) "
                    f"(± {paired.stderr * POINTS:.2f} paired stderr, 95% CI [{paired.ci_low * POINTS:+.2f}, "
                    f"{paired.ci_high * POINTS:+.2f}], p = {adjusted_p:.3g} {method}-adjusted, {significance}). "
                )
            else:
                why = (
                    "no document of the baseline matches one of this run"
                    if base.per_doc and now.per_doc
                    else "per-document values are missing"
                )
                parts.append(f"now − baseline = {delta:+.2f} points on the full scores ({why}; no paired test). ")
            parts.append(f"Tolerance: {tolerance:.2f} points")
            if not fail_on_significant:
                parts.append(" (significance not required)")
            if regressed:
                reasons = []
                if beyond:
                    reasons.append(f"fell {-delta:.2f} points, beyond the tolerance of {tolerance:.2f}")
                if significant:
                    reasons.append(
                        f"significantly worse after {correction} correction" if method != "un"
                        else "significantly worse (p not adjusted: tested alone)"
                    )
                parts.append("; REGRESSED: " + " and ".join(reasons) + ".")
            else:
                parts.append("; no regression.")
            results[(benchmark, item_id)] = BaselineComparison(
                benchmark=benchmark,
                item_id=item_id,
                side=side,
                metric=base.metric,
                baseline_name=baseline.name,
                baseline_model=base_labels.get(side, ""),
                current_model=who,
                baseline_value=base.value,
                current_value=now.value,
                baseline_stderr=base.stderr,
                current_stderr=now.stderr,
                paired=paired,
                matched_docs=matched,
                baseline_docs=len(base.per_doc),
                current_docs=len(now.per_doc),
                adjusted_p=adjusted_p,
                correction=method,
                significance=significance,
                tolerance_points=tolerance,
                regressed=regressed,
                message="".join(parts),
            )
    return results
