"""The saved-evaluations format: one file layout for baselines, shard results and exported cache entries.

A saved set of evaluations (:class:`SavedEvaluations`) is what a run measured
plus what decides its numbers:

* every item's score and per-document values for each model (the one
  per-document score class, ``evaluation.scores.ItemScore``, keyed
  ``(side, benchmark, item_id)``);
* the settings that change a number (``compatibility.number_settings``), the
  models' identities (name, revision, fingerprint, dtype, …), the machine and
  the project's commit;
* in the FULL form, each (side, benchmark) evaluation's own record — cache key
  and key parts, model, item order, shots, task versions, generation kwargs,
  lm-eval's results object, the documents the reports show — enough to rebuild
  every ``BenchmarkEvaluation`` exactly (:meth:`SavedEvaluations.evaluations`),
  plus the benchmark definitions and the comparison settings (correction,
  expectations) a merge needs.

A baseline is the LEAN form (no per-evaluation records, so a baseline kept in
git diffs document by document); a shard's ``--qwencmp-json`` carries the full
form under ``saved_evaluations``; an exported cache entry is a full form with
one evaluation. The same reader validates all three.

This module owns the records, building them from evaluations
(:func:`saved_from_evaluations`), the deterministic JSON text (sorted keys,
one ``[doc_key, value]`` pair per line) and the ONE reader: :func:`read_saved`
(a baseline, an exported entry) and :func:`read_results` (the saved
evaluations inside a results JSON), over :func:`parse_saved_text` and
:func:`saved_from_json`. Every problem raises :class:`SavedFormatError`, one
clause about the file ("it is not valid JSON …") that each caller puts in its
own one-paragraph error with its own advice. It also records the machine
(:func:`machine_info`) and the commit (:func:`project_commit`). Pure: no
pytest, no lm-eval, no model.

JSON layout (``format`` = :data:`SAVED_FORMAT`)::

    {"format": 1, "name": ..., "created": "2025-01-01T00:00:00+00:00",
     "project_commit": "<sha>" | null, "machine": {...}, "models": {"a": {...}, "b": {...}},
     "settings": {number_settings},
     "items": [{"side", "benchmark", "item_id", "task", "metric", "value", "stderr", "n",
                "docs": [["task/doc_id", value], ...]}, ...],
     # full form only:
     "evaluations": [{"side", "benchmark", "key", "key_parts", "model", "item_ids", "n_shot",
                      "versions", "gen_kwargs", "lm_eval_version", "wall_seconds",
                      "documents", "lm_eval_results", "samples"}, ...],
     "benchmarks": {name: {"order": 0, "definition": {benchmarks.toml keys}}},
     "comparison": {"correction": "holm", "expectations": {"name": ..., "text": ...} | null}}

A non-finite score is written as ``null`` and read back as NaN.
"""

from __future__ import annotations

import json
import math
import platform
import re
import subprocess
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..evaluation.scores import BenchmarkEvaluation, ItemScore
from ..files import json_safe

__all__ = [
    "SAVED_FORMAT",
    "SavedFormatError",
    "item_to_json",
    "item_from_json",
    "read_saved",
    "read_results",
    "RESULTS_KEY",
    "SavedEvaluations",
    "items_from_evaluations",
    "evaluation_record",
    "saved_from_evaluations",
    "parse_saved_text",
    "saved_from_json",
    "machine_info",
    "project_commit",
]

SAVED_FORMAT = 1
_VOLATILE_MODEL_KEYS = ("load_seconds",)
_RECORD_REQUIRED = (
    "side", "benchmark", "key", "model", "item_ids", "n_shot", "versions", "gen_kwargs", "lm_eval_version", "wall_seconds",
)


class SavedFormatError(ValueError):
    """A saved-evaluations file or object is unusable; ``str(exc)`` is one clause about it ("it is empty …", with a period)."""


# --------------------------------------------------------------------------
# items: ItemScore keyed (side, benchmark, item_id)


def _normalised(score: ItemScore) -> ItemScore:
    """``score`` with plain Python values (floats, ints, tuples of str), as it reads back from JSON."""
    return ItemScore(
        item_id=score.item_id,
        task=score.task,
        metric=score.metric,
        value=float(score.value),
        stderr=None if score.stderr is None else float(score.stderr),
        n=int(score.n),
        doc_keys=tuple(str(k) for k in score.doc_keys),
        per_doc=tuple(float(v) for v in score.per_doc),
    )


def item_to_json(side: str, benchmark: str, score: ItemScore) -> dict[str, Any]:
    return {
        "side": side,
        "benchmark": benchmark,
        "item_id": score.item_id,
        "task": score.task,
        "metric": score.metric,
        "value": _finite_or_none(score.value),
        "stderr": None if score.stderr is None else _finite_or_none(score.stderr),
        "n": score.n,
        "docs": [[k, _finite_or_none(v)] for k, v in zip(score.doc_keys, score.per_doc)],
    }


def item_from_json(data: Any, where: str) -> tuple[tuple[str, str, str], ItemScore]:
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
    score = ItemScore(
        item_id=data["item_id"],
        task=data["task"],
        metric=data["metric"],
        value=_number_or_nan(data["value"], f"{where} value"),
        stderr=None if data["stderr"] is None else _number_or_nan(data["stderr"], f"{where} stderr"),
        n=_integer(data["n"], f"{where} n"),
        doc_keys=tuple(d[0] for d in docs),
        per_doc=tuple(_number_or_nan(d[1], f"{where} document {d[0]}") for d in docs),
    )
    return (data["side"], data["benchmark"], data["item_id"]), score


@dataclass(frozen=True)
class SavedEvaluations:
    """Saved evaluations: what they scored, under which settings, models, machine and commit.

    ``settings`` holds only the settings that change the numbers; ``models``
    maps ``"a"``/``"b"`` to the model's label, name_or_path, revision,
    fingerprint, dtype, backend, device, …; ``items`` maps ``(side, benchmark,
    item_id)`` to its ``ItemScore``. The full form adds ``records``
    (``(side, benchmark)`` -> that evaluation's record, see
    :func:`evaluation_record`), ``benchmarks`` (definitions and registry order)
    and ``comparison`` (correction, expectations). All mappings hold JSON values
    only, so a saved set equals itself after writing and reading.
    """

    name: str
    created: str
    settings: Mapping[str, Any]
    models: Mapping[str, Mapping[str, Any]]
    machine: Mapping[str, Any]
    project_commit: str | None
    items: Mapping[tuple[str, str, str], ItemScore]
    format: int = SAVED_FORMAT
    records: Mapping[tuple[str, str], Mapping[str, Any]] = field(default_factory=dict)
    benchmarks_defined: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    comparison: Mapping[str, Any] = field(default_factory=dict)

    def item(self, side: str, benchmark: str, item_id: str) -> ItemScore | None:
        return self.items.get((side, benchmark, item_id))

    def benchmarks(self) -> tuple[str, ...]:
        return tuple(sorted({key[1] for key in self.items}))

    def describe(self, kind: str = "baseline") -> str:
        """``baseline 'NAME' (saved 2025-…, commit abc1234)``: how messages name the saved set."""
        commit = f", commit {self.project_commit[:12]}" if self.project_commit else ""
        return f"{kind} '{self.name}' (saved {self.created}{commit})"

    @property
    def is_full(self) -> bool:
        """Whether every (side, benchmark) with items has its evaluation record (the full form)."""
        return bool(self.records) and {(k[0], k[1]) for k in self.items} <= set(self.records)

    def evaluations(self) -> tuple[BenchmarkEvaluation, ...]:
        """Every evaluation rebuilt exactly as it ran (full form only), in (benchmark, side) order."""
        out = []
        for side, benchmark in sorted(self.records, key=lambda k: (k[1], k[0])):
            record = self.records[(side, benchmark)]
            out.append(
                BenchmarkEvaluation(
                    benchmark=benchmark,
                    side=side,
                    key=record["key"],
                    model=record["model"],
                    items=tuple(self.items[(side, benchmark, i)] for i in record["item_ids"]),
                    n_shot=record["n_shot"],
                    versions=record["versions"],
                    gen_kwargs=record["gen_kwargs"],
                    lm_eval_version=record["lm_eval_version"],
                    wall_seconds=float(record["wall_seconds"]),
                    documents=record.get("documents", {}),
                    lm_eval_results=record.get("lm_eval_results", {}),
                    from_cache=True,
                    samples=int(record.get("samples", 1)),
                )
            )
        return tuple(out)

    def to_json(self) -> dict[str, Any]:
        data = {
            "format": self.format,
            "name": self.name,
            "created": self.created,
            "project_commit": self.project_commit,
            "machine": json_safe(self.machine),
            "models": json_safe(self.models),
            "settings": json_safe(self.settings),
            "items": [item_to_json(*key[:2], self.items[key]) for key in sorted(self.items)],
        }
        if self.records:
            data["evaluations"] = [json_safe(self.records[key]) for key in sorted(self.records)]
        if self.benchmarks_defined:
            data["benchmarks"] = json_safe(self.benchmarks_defined)
        if self.comparison:
            data["comparison"] = json_safe(self.comparison)
        return data

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
# building


def items_from_evaluations(evaluations: Iterable[BenchmarkEvaluation]) -> dict[tuple[str, str, str], ItemScore]:
    """Every item score of the evaluations, keyed ``(side, benchmark, item_id)``."""
    items: dict[tuple[str, str, str], ItemScore] = {}
    for evaluation in evaluations:
        for score in evaluation.items:
            items[(evaluation.side, evaluation.benchmark, score.item_id)] = _normalised(score)
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


def evaluation_record(evaluation: BenchmarkEvaluation, key_parts: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The full form's record of one evaluation: everything but its item scores (those are ``items``)."""
    record = {
        "side": evaluation.side,
        "benchmark": evaluation.benchmark,
        "key": evaluation.key,
        "model": dict(evaluation.model),
        "item_ids": [score.item_id for score in evaluation.items],
        "n_shot": dict(evaluation.n_shot),
        "versions": dict(evaluation.versions),
        "gen_kwargs": None if evaluation.gen_kwargs is None else dict(evaluation.gen_kwargs),
        "lm_eval_version": evaluation.lm_eval_version,
        "wall_seconds": evaluation.wall_seconds,
        "documents": dict(evaluation.documents),
        "lm_eval_results": dict(evaluation.lm_eval_results),
        "samples": evaluation.samples,
    }
    if key_parts is not None:
        record["key_parts"] = dict(key_parts)
    return json_safe(record)


def saved_from_evaluations(
    name: str,
    evaluations: Iterable[BenchmarkEvaluation],
    settings_that_matter: Mapping[str, Any],
    *,
    machine: Mapping[str, Any] | None = None,
    project_commit: str | None = None,
    created: str | None = None,
    full: bool = False,
    key_parts: Mapping[tuple[str, str], Mapping[str, Any]] | None = None,
    benchmarks: Mapping[str, Mapping[str, Any]] | None = None,
    comparison: Mapping[str, Any] | None = None,
) -> SavedEvaluations:
    """A :class:`SavedEvaluations` of these evaluations (both sides, every benchmark given).

    ``settings_that_matter`` is normally ``compatibility.number_settings`` of
    the same evaluations; ``machine`` defaults to :func:`machine_info`; pass
    ``project_commit=project_commit()`` (the function) yourself: this one runs
    no git. ``created`` defaults to now, in UTC, ISO 8601. ``full`` adds each
    evaluation's record (``key_parts`` maps ``(side, benchmark)`` to the
    evaluation's cache key parts), ``benchmarks`` and ``comparison``.
    """
    evaluations = list(evaluations)
    records: dict[tuple[str, str], dict[str, Any]] = {}
    if full:
        for evaluation in evaluations:
            parts = (key_parts or {}).get((evaluation.side, evaluation.benchmark))
            records[(evaluation.side, evaluation.benchmark)] = evaluation_record(evaluation, parts)
    return SavedEvaluations(
        name=name,
        created=created or datetime.now(timezone.utc).isoformat(timespec="seconds"),
        settings=json_safe(settings_that_matter),
        models=json_safe(_models_of(evaluations)),
        machine=json_safe(machine_info() if machine is None else machine),
        project_commit=project_commit,
        items=items_from_evaluations(evaluations),
        records=records,
        benchmarks_defined=json_safe(benchmarks or {}) if full else {},
        comparison=json_safe(comparison or {}) if full else {},
    )


# --------------------------------------------------------------------------
# reading


def parse_saved_text(text: str, kind: str = "baseline") -> SavedEvaluations:
    """Parse a saved-evaluations file's text; :class:`SavedFormatError` says what is wrong (``kind`` names the file's role)."""
    return saved_from_json(_json_text(text), kind)


def _json_text(text: str) -> Any:
    if not text.strip():
        raise SavedFormatError("it is empty (an interrupted write or a truncated copy).")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise SavedFormatError(
            f"it is not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno}): it is truncated, "
            "corrupt or holds merge-conflict markers."
        ) from None


def saved_from_json(data: Any, kind: str = "baseline") -> SavedEvaluations:
    """Validate a decoded saved-evaluations object; :class:`SavedFormatError` says what is wrong."""
    if not isinstance(data, dict):
        raise SavedFormatError(f"it does not hold a {kind} (expected a JSON object).")
    found = data.get("format")
    if found != SAVED_FORMAT:
        if isinstance(found, int) and not isinstance(found, bool):
            age = "an older" if found < SAVED_FORMAT else "a newer"
            raise SavedFormatError(
                f"it has {kind} format {found}, written by {age} pytest-qwencmp; this version reads format "
                f"{SAVED_FORMAT} only."
            )
        raise SavedFormatError(f"it has no {kind} format number: it is not a pytest-qwencmp {kind}.")
    try:
        return _from_json(data)
    except (ValueError, TypeError, KeyError) as exc:
        raise SavedFormatError(f"it is malformed: {exc}.") from None


# --------------------------------------------------------------------------
# the one reader of files


RESULTS_KEY = "saved_evaluations"  # where a results JSON (--qwencmp-json of a shard) carries its evaluations


def _read_text(path: Path, kind: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SavedFormatError("the file does not exist.") from None
    except OSError as exc:
        raise SavedFormatError(f"it cannot be read ({exc.strerror or exc}).") from None
    except UnicodeDecodeError:
        raise SavedFormatError(f"it is not UTF-8 text: it is not a {kind} or it is corrupt.") from None


def _with_records(saved: SavedEvaluations) -> SavedEvaluations:
    if saved.items and not saved.is_full:
        raise SavedFormatError(
            "it holds scores without their evaluation records (the lean form a baseline keeps), not the full form."
        )
    return saved


def read_saved(path: Path, kind: str = "baseline", *, full: bool = False) -> SavedEvaluations:
    """Read a saved-evaluations file (a baseline; with ``full``, an exported cache entry); :class:`SavedFormatError`
    (one clause about the file) when it cannot be used."""
    saved = parse_saved_text(_read_text(path, kind), kind)
    return _with_records(saved) if full else saved


def read_results(path: Path) -> tuple[dict[str, Any], SavedEvaluations]:
    """Read a results JSON (``--qwencmp-json`` of a ``--qwencmp-shard`` job): the document and its saved evaluations
    in the full form; :class:`SavedFormatError` (one clause about the file) when it cannot be used."""
    document = _json_text(_read_text(path, "results file"))
    if not isinstance(document, dict) or not isinstance(document.get("comparisons"), list) or not isinstance(document.get("settings"), dict):
        raise SavedFormatError("it is not a pytest-qwencmp results file (written by --qwencmp-json).")
    if RESULTS_KEY not in document:
        raise SavedFormatError(
            "it holds no per-document evaluations (it was written without --qwencmp-shard K/N, by an older "
            "pytest-qwencmp, or by a run that could not read its evaluations back from the cache)."
        )
    try:
        saved = _with_records(saved_from_json(document[RESULTS_KEY], "saved-evaluations"))
    except SavedFormatError as exc:
        raise SavedFormatError(f"its {RESULTS_KEY} block {str(exc).removeprefix('it ')}") from None
    return document, saved


def _from_json(data: Mapping[str, Any]) -> SavedEvaluations:
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
    items: dict[tuple[str, str, str], ItemScore] = {}
    for index, raw in enumerate(data["items"]):
        key, item = item_from_json(raw, f"item {index + 1}")
        if key in items:
            raise ValueError(f"item {index + 1} repeats {key[0]}/{key[1]}[{key[2]}]")
        items[key] = item
    records = _records_from_json(data.get("evaluations", []), items)
    for key in ("benchmarks", "comparison"):
        if not isinstance(data.get(key, {}), dict):
            raise ValueError(f"'{key}' must be an object")
    return SavedEvaluations(
        name=data["name"],
        created=data["created"],
        settings=data["settings"],
        models=data["models"],
        machine=data["machine"],
        project_commit=data["project_commit"],
        items=items,
        format=data["format"],
        records=records,
        benchmarks_defined=data.get("benchmarks", {}),
        comparison=data.get("comparison", {}),
    )


def _records_from_json(raw_records: Any, items: Mapping[tuple[str, str, str], ItemScore]) -> dict[tuple[str, str], dict[str, Any]]:
    if not isinstance(raw_records, list):
        raise ValueError("'evaluations' must be a list")
    records: dict[tuple[str, str], dict[str, Any]] = {}
    for index, record in enumerate(raw_records):
        where = f"evaluation {index + 1}"
        if not isinstance(record, dict):
            raise ValueError(f"{where} is not an object")
        missing = [k for k in _RECORD_REQUIRED if k not in record]
        if missing:
            raise ValueError(f"{where} lacks {', '.join(missing)}")
        for name in ("side", "benchmark", "key", "lm_eval_version"):
            if not isinstance(record[name], str):
                raise ValueError(f"{where}: {name!r} must be a string")
        for name in ("model", "n_shot", "versions", "documents", "lm_eval_results", "key_parts"):
            if name in record and not isinstance(record[name], dict):
                raise ValueError(f"{where}: {name!r} must be an object")
        if record["gen_kwargs"] is not None and not isinstance(record["gen_kwargs"], dict):
            raise ValueError(f"{where}: 'gen_kwargs' must be an object or null")
        if "samples" in record and (isinstance(record["samples"], bool) or not isinstance(record["samples"], int)
                                    or record["samples"] < 1):
            raise ValueError(f"{where}: 'samples' must be a whole number ≥ 1")
        _number_or_nan(record["wall_seconds"], f"{where} wall_seconds")
        side, benchmark = record["side"], record["benchmark"]
        if not isinstance(record["item_ids"], list) or not all(isinstance(i, str) for i in record["item_ids"]):
            raise ValueError(f"{where}: 'item_ids' must be a list of strings")
        absent = [i for i in record["item_ids"] if (side, benchmark, i) not in items]
        if absent:
            raise ValueError(f"{where} ({side}/{benchmark}) names items without scores: {', '.join(absent[:5])}")
        if (side, benchmark) in records:
            raise ValueError(f"{where} repeats {side}/{benchmark}")
        records[(side, benchmark)] = record
    return records


# --------------------------------------------------------------------------
# where a run happened


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
