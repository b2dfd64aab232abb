"""Moving one model's cached evaluations between machines: export, import, and why a near miss is unused.

A reference model's evaluations (model A: a release, the base model) are the
same on every pull request. :func:`export_side` writes the cache entries one
side evaluated to a directory — one file per entry in the saved-evaluations
format (``format``, full form: the evaluation, its cache key and the key parts
it was computed from) — that an artifact or ``actions/cache`` carries to
another machine. :func:`import_directory` puts them into a fresh cache: each
entry is checked (its key must be the hash of its key parts, exactly as
``Evaluator.key_parts`` makes keys) and stored under its key with its origin,
so a run whose settings give the same key reuses it and says so
("imported from DIR").

An entry is reused only when everything that changes a number matches: that
is what the content key means. When a side's evaluation misses and an
imported entry for the same side and benchmark exists,
:meth:`ImportedEntries.explain_miss` diffs the two key parts with the one
settings check (``compatibility.settings_mismatches``) and returns one line
saying why the entry was not used.

Layout inside the cache root: entries under ``evaluations/`` as usual, and a
small record per imported entry under ``imported/KEY.json`` (key parts, side,
benchmark, origin) that the near-miss explanation reads.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..evaluation.cache import EvaluationCache, cache_key
from .compatibility import RUN_SETTINGS, number_settings, settings_mismatches
from ..errors import QwencmpError
from ..evaluation.scores import BenchmarkEvaluation
from ..files import write_atomic
from .format import SavedEvaluations, SavedFormatError, machine_info, read_saved, saved_from_evaluations

if TYPE_CHECKING:  # pragma: no cover
    from ..config.benchmarks import Benchmark

IMPORTED_FOLDER = "imported"
ENTRY_KIND = "exported cache entry"
SIDES = ("a", "b")


@dataclass(frozen=True)
class Exported:
    """What :func:`export_side` wrote, and what it passed over."""

    written: tuple[Path, ...]
    without_parts: int  # entries of an older version (no key parts stored): cannot be checked elsewhere


@dataclass(frozen=True)
class Imported:
    """What :func:`import_directory` did with one file's entry."""

    path: Path
    benchmark: str
    side: str
    key: str
    stored: bool  # False: skipped (see ``note``)
    note: str


def _entries(cache: EvaluationCache) -> Iterable[tuple[str, dict[str, Any]]]:
    """(key, payload) of every readable entry, in key order."""
    for path in sorted(cache.directory.glob("*/*.json")):
        payload = cache.load(path.stem)
        if payload is not None:
            yield path.stem, payload


def _data_identity(parts: Mapping[str, Any]) -> Any:
    data = parts.get("data")
    return cache_key(data) if isinstance(data, dict) else data


def export_side(
    cache: EvaluationCache,
    side: str,
    out_dir: Path,
    *,
    benchmarks: Iterable[str] | None = None,
    keys: Iterable[str] | None = None,
) -> Exported:
    """Write every cached entry that ``side`` evaluated (optionally only ``benchmarks`` / ``keys``) to ``out_dir``.

    Files are named ``BENCHMARK-SIDE-KEY16.json``; an existing file of that
    name is replaced atomically, other files are left alone.
    """
    if side not in SIDES:
        raise QwencmpError(f"--side must be a or b, got {side!r}.")
    wanted_benchmarks = None if benchmarks is None else set(benchmarks)
    wanted_keys = None if keys is None else set(keys)
    written: list[Path] = []
    without_parts = 0
    for key, payload in _entries(cache):
        if payload.get("side") != side or (wanted_keys is not None and key not in wanted_keys):
            continue
        if wanted_benchmarks is not None and payload.get("benchmark") not in wanted_benchmarks:
            continue
        parts = payload.get("key_parts")
        if not isinstance(parts, dict) or cache_key(parts) != key:
            without_parts += 1
            continue
        try:
            evaluation = BenchmarkEvaluation.from_payload(payload, side)
        except (KeyError, TypeError, ValueError):
            continue
        settings = number_settings([evaluation], data={evaluation.benchmark: _data_identity(parts)})
        settings.update({name: parts[name] for name in RUN_SETTINGS if name in parts})
        saved = saved_from_evaluations(
            f"{evaluation.benchmark}-{side}",
            [evaluation],
            settings,
            machine=payload.get("machine") or machine_info(),
            full=True,
            key_parts={(side, evaluation.benchmark): parts},
        )
        path = Path(out_dir) / f"{evaluation.benchmark}-{side}-{key[:16]}.json"
        written.append(write_atomic(path, saved.dumps(), what="exported cache entry"))
    return Exported(tuple(written), without_parts)


def _origin(directory: Path, machine: Mapping[str, Any], created: str) -> str:
    host = machine.get("hostname") or "an unnamed machine"
    return f"imported from {directory}, evaluated on {host}, exported {created}"


def import_directory(cache: EvaluationCache, directory: Path) -> list[Imported]:
    """Store every entry exported into ``directory`` in ``cache``; one :class:`Imported` per entry.

    A file that is not an exported entry, or whose key is not the hash of its
    key parts (edited or truncated after export), raises :class:`QwencmpError`
    naming the file; nothing of it is stored. An entry whose key the cache
    already holds is left as it is (the same key means the same numbers).
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise QwencmpError(
            f"There is nothing to import: {directory} is not a directory. Give the folder written by "
            "`python -m pytest_qwencmp cache export --out DIR` (restored by actions/cache or downloaded as an artifact)."
        )
    results: list[Imported] = []
    records_dir = cache.root / IMPORTED_FOLDER
    for path in sorted(directory.glob("*.json")):
        saved = _read_entry(path)
        origin = _origin(directory.resolve(), saved.machine, saved.created)
        for evaluation in saved.evaluations():
            record = saved.records[(evaluation.side, evaluation.benchmark)]
            parts = record.get("key_parts")
            if not isinstance(parts, dict) or cache_key(parts) != evaluation.key:
                raise QwencmpError(
                    f"{path} cannot be imported: its cache key is not the hash of the key parts stored with it, "
                    "so the settings it claims cannot be trusted (edited or damaged after export). "
                    "Delete it and export it again from the machine that evaluated it."
                )
            key = evaluation.key
            already = cache.load(key) is not None
            if not already:
                payload = {
                    **evaluation.to_payload(),
                    "side": evaluation.side,
                    "key_parts": parts,
                    "origin": origin,
                    "machine": dict(saved.machine),
                }
                cache.store(key, payload)
            write_atomic(
                records_dir / f"{key}.json",
                json.dumps(
                    {"key": key, "side": evaluation.side, "benchmark": evaluation.benchmark,
                     "label": str(evaluation.model.get("label", "")), "origin": origin, "key_parts": parts},
                    sort_keys=True,
                ),
                what="import record",
            )
            results.append(Imported(path, evaluation.benchmark, evaluation.side, key, not already,
                                    "already in the cache" if already else origin))
    return results


def _read_entry(path: Path) -> SavedEvaluations:
    try:
        return read_saved(path, ENTRY_KIND, full=True)
    except SavedFormatError as exc:
        raise QwencmpError(
            f"{path}: {exc} Only files written by `python -m pytest_qwencmp cache export` can be imported; "
            "remove this one from the folder or export it again."
        ) from None


@dataclass(frozen=True)
class ImportedEntries:
    """The records of entries imported into the cache at ``root``: why one of them did not match."""

    root: Path

    def records(self) -> list[dict[str, Any]]:
        out = []
        for path in sorted((Path(self.root) / IMPORTED_FOLDER).glob("*.json")):
            try:
                record = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            if isinstance(record, dict) and isinstance(record.get("key_parts"), dict):
                out.append(record)
        return out

    def _closest(self, side: str, benchmark: "Benchmark", parts: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]] | None:
        """The imported record of this side and benchmark whose settings differ least from ``parts``, and how."""
        closest: tuple[int, dict[str, Any], list[str]] | None = None
        for record in self.records():
            if record.get("side") != side or record.get("benchmark") != benchmark.name:
                continue
            diffs = settings_mismatches(record["key_parts"], parts, names=("imported entry", "this run"), strict=True)
            if diffs and (closest is None or len(diffs) < closest[0]):
                closest = (len(diffs), record, diffs)
        return None if closest is None else closest[1:]

    def differences(self, side: str, benchmark: "Benchmark", parts: Mapping[str, Any]) -> list[str]:
        """How this side's imported entry of the benchmark differs from ``parts``, as one text (with where it was
        imported from) in a list; [] when none was imported or it matches."""
        found = self._closest(side, benchmark, parts)
        if found is None:
            return []
        record, diffs = found
        return [f"{'; '.join(diffs)} (the entry {record.get('origin', 'imported')})"]

    def explain_miss(self, side: str, benchmark: "Benchmark", parts: Mapping[str, Any]) -> list[str]:
        """One line when an imported entry of this side and benchmark exists but its settings differ; else []."""
        found = self._closest(side, benchmark, parts)
        if found is None:
            return []
        record, diffs = found
        label = record.get("label") or f"model {side.upper()}"
        return [
            f"qwencmp: {benchmark.title} × {label}: not reusing the entry {record.get('origin', 'imported')} — "
            f"settings that change the numbers differ: {'; '.join(diffs)}"
        ]
