"""Is a benchmark's local dataset copy usable? Checked once per session, cheaply, before any model runs.

For every leaf task, lm-eval's own task YAML names the dataset config and the
splits the task reads (``test_split``, ``validation_split``, ``training_split``,
``fewshot_split``); the copy's README ``configs:`` header names each split's
files. ``check_benchmark_data`` verifies that every such split is listed and
its files exist, streams every row (JSONL line by line, Parquet in batches)
to see that it is a JSON object, and, for the datasets of the built-in
benchmarks, that each row has the fields the real task reads with values the
benchmark allows (``ROW_RULES``: MMLU ``answer`` 0–3 over 4 choices, HellaSwag
``label`` "0"–"3" over 4 endings, MBPP ``test_list`` of at least 3 asserts).
The first problem becomes a ``DataError`` paragraph naming the file, the line
and what is wrong; the benchmark's items fail, the other benchmarks still run.
A copy without a ``configs:`` header is left to ``datasets`` to read (and
``harness.translate_error`` to explain).

Without a local copy, lm-eval downloads the data: ``check_hub_data`` says at
once (``HubUnreachable``) when the hub cannot be reached and the datasets are
not in the local Hugging Face caches, instead of lm-eval's ~23 s of retries
per benchmark.
"""

from __future__ import annotations

import glob
import json
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config.benchmarks import Benchmark
from ..errors import DataError, HubUnreachable
from .tasks import TaskSource, readme_configs, split_patterns
from ..hub import HubAccess, hub_endpoint, hub_offline

SPLIT_KEYS = ("test_split", "validation_split", "training_split", "fewshot_split")
_LABELS = {"0", "1", "2", "3"}


def _show(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:57] + "…"


def _text(row: Mapping[str, Any], field: str) -> str | None:
    if field not in row:
        return f"`{field}` is missing"
    if not isinstance(row[field], str):
        return f"`{field}` is {_show(row[field])}, not text"
    return None


def _texts(row: Mapping[str, Any], field: str, count: int, exact: bool, why: str) -> str | None:
    value = row.get(field)
    if field not in row:
        return f"`{field}` is missing ({why})"
    ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
    ok = ok and (len(value) == count if exact else len(value) >= count)
    if not ok:
        size = f"exactly {count}" if exact else f"at least {count}"
        return f"`{field}` is {_show(value)}; it must be a list of {size} texts ({why})"
    return None


def mmlu_row(row: Mapping[str, Any]) -> str | None:
    problem = _text(row, "question") or _texts(row, "choices", 4, True, "the MMLU prompt shows choices A–D")
    if problem:
        return problem
    answer = row.get("answer")
    if isinstance(answer, bool) or not isinstance(answer, int) or not 0 <= answer <= 3:
        return f"`answer` is {_show(answer) if 'answer' in row else 'missing'}; MMLU answers are 0–3, the index of the correct choice"
    return None


def hellaswag_row(row: Mapping[str, Any]) -> str | None:
    for field in ("activity_label", "ctx_a", "ctx_b"):
        problem = _text(row, field)
        if problem:
            return problem
    problem = _texts(row, "endings", 4, True, "HellaSwag scores 4 endings")
    if problem:
        return problem
    label = row.get("label")
    if isinstance(label, bool) or str(label) not in _LABELS:
        return f"`label` is {_show(label) if 'label' in row else 'missing'}; HellaSwag labels are \"0\"–\"3\", the index of the right ending"
    return None


def mbpp_row(row: Mapping[str, Any]) -> str | None:
    return (
        _text(row, "text")
        or _text(row, "code")
        or _texts(row, "test_list", 3, False, "the MBPP prompt shows test_list[0..2] and pass@1 runs them")
    )


# Rules for the datasets the built-in benchmarks read (their hub paths); other datasets get the generic checks.
ROW_RULES: dict[str, Callable[[Mapping[str, Any]], str | None]] = {
    "cais/mmlu": mmlu_row,
    "Rowan/hellaswag": hellaswag_row,
    "google-research-datasets/mbpp": mbpp_row,
}


@dataclass(frozen=True)
class SplitFiles:
    """One split a task reads: where the README says it is, and the files found there."""

    hub: str
    config: str
    split: str
    patterns: tuple[str, ...]
    files: tuple[Path, ...]


class _Problem(Exception):
    def __init__(self, where: str, what: str) -> None:
        super().__init__(where, what)
        self.where = where
        self.what = what


def _jsonl_rows(path: Path) -> Iterator[tuple[str, Any]]:
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            where = f"{path}, line {number}"
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise _Problem(where, "is not UTF-8 text (random bytes, or a binary file saved as .jsonl?)") from None
            try:
                yield where, json.loads(text)
            except json.JSONDecodeError as exc:
                raise _Problem(where, f"is not valid JSON ({exc.msg}, column {exc.colno}); the file looks truncated "
                                      "or corrupted") from None


def _json_rows(path: Path) -> Iterator[tuple[str, Any]]:
    """A .json file: JSON Lines (as datasets also accepts), or one array of rows."""
    with path.open("rb") as handle:
        head = handle.read(64).lstrip()
    if not head.startswith(b"["):
        yield from _jsonl_rows(path)
        return
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise _Problem(str(path), f"is not valid JSON ({exc}); the file looks truncated or corrupted") from None
    for number, row in enumerate(rows, start=1):
        yield f"{path}, row {number}", row


def _parquet_rows(path: Path) -> Iterator[tuple[str, Any]]:
    try:
        import pyarrow.parquet as pq  # lazy: pyarrow only for a Parquet file
    except ImportError:  # pragma: no cover - datasets depends on pyarrow
        return
    try:
        number = 0
        for batch in pq.ParquetFile(path).iter_batches(batch_size=4096):
            for row in batch.to_pylist():
                number += 1
                yield f"{path}, row {number}", row
    except _Problem:
        raise
    except Exception as exc:  # ArrowInvalid and friends: not a Parquet file, or a truncated one
        raise _Problem(str(path), f"is not a readable Parquet file ({type(exc).__name__}: {' '.join(str(exc).split())[:150]})") from None


def _rows(path: Path) -> Iterator[tuple[str, Any]] | None:
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        return _jsonl_rows(path)
    if suffix == ".json":
        return _json_rows(path)
    if suffix == ".parquet":
        return _parquet_rows(path)
    return None  # CSV and others: flat text rows, left to datasets


def split_files(source: TaskSource) -> tuple[list[SplitFiles], list[str]]:
    """The splits the benchmark's tasks read, with their files; and the datasets left unchecked (no configs header)."""
    local = source.check_local_data()
    configs_by_hub: dict[str, list[dict[str, Any]]] = {}
    found: dict[tuple[str, str, str], SplitFiles] = {}
    unchecked: list[str] = []
    for task, config in source.task_configs().items():
        hub = str(config.get("dataset_path", ""))
        folder = local.get(hub)
        if folder is None:
            continue
        if hub not in configs_by_hub:
            configs_by_hub[hub] = readme_configs(folder)
        name = config.get("dataset_name")
        files = split_patterns(folder, configs_by_hub[hub], name)
        if files is None:
            if hub not in unchecked:
                unchecked.append(hub)
            continue
        for key in SPLIT_KEYS:
            split = config.get(key)
            if not split or (hub, str(name), str(split)) in found:
                continue
            patterns = tuple(files.get(str(split), ()))
            matched = sorted({Path(p) for pattern in patterns for p in glob.glob(pattern, recursive=True) if Path(p).is_file()})
            found[(hub, str(name), str(split))] = SplitFiles(hub, str(name or "default"), str(split), patterns, tuple(matched))
    return list(found.values()), unchecked


def _first_problem(splits: list[SplitFiles], data_dir: Path) -> tuple[_Problem, int] | None:
    """The first problem found and how many more there are (all files are read, each row once)."""
    first: _Problem | None = None
    more = 0

    def note(problem: _Problem) -> None:
        nonlocal first, more
        if first is None:
            first = problem
        else:
            more += 1

    seen: set[Path] = set()
    for split in splits:
        card = data_dir / split.hub / "README.md"
        if not split.patterns:
            note(_Problem(str(card), f"lists no split {split.split!r} for config {split.config!r}, but lm-eval's task "
                                     f"reads that split (the copy is incomplete)"))
            continue
        if not split.files:
            note(_Problem(str(card), f"lists split {split.split!r} of config {split.config!r} at "
                                     f"{', '.join(split.patterns)}, but no such file exists"))
            continue
        rule = ROW_RULES.get(split.hub)
        rows_in_split = 0
        for path in split.files:
            rows = _rows(path)
            if rows is None:
                rows_in_split += 1  # not read here: do not call the split empty
                continue
            try:
                for where, row in rows:
                    rows_in_split += 1
                    if path in seen:
                        continue
                    if not isinstance(row, dict):
                        note(_Problem(where, f"is {_show(row)}, not an object with the dataset's fields"))
                    elif rule is not None:
                        what = rule(row)
                        if what:
                            note(_Problem(where, what))
            except _Problem as problem:
                note(problem)
                rows_in_split += 1
            seen.add(path)
        if rows_in_split == 0:
            note(_Problem(", ".join(str(p) for p in split.files), f"holds no rows, but it is split {split.split!r} "
                                                                 f"of config {split.config!r}, which lm-eval's task reads"))
    return (first, more) if first is not None else None


def check_benchmark_data(benchmark: Benchmark, data_dir: Path) -> None:
    """Raise ``DataError`` (one paragraph: file, line, what is wrong, how to fix) if the local copy is unusable."""
    source = TaskSource(benchmark, data_dir)
    splits, _unchecked = split_files(source)
    found = _first_problem(splits, data_dir)
    if found is None:
        return
    problem, more = found
    also = f" The copy has {more} more problem{'s' if more != 1 else ''} besides this one." if more else ""
    raise DataError(
        f"The local data of benchmark {benchmark.name!r} is not usable: {problem.where} {problem.what}.{also} "
        f"Fix that file, or write a fresh copy with `python -m pytest_qwencmp mirror --out DIR --benchmarks "
        f"{benchmark.name}` and pass --data-dir=DIR."
    )


def _hf_home() -> Path:
    return Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface")).expanduser()


def datasets_cache_dir() -> Path:
    """The ``datasets`` library's cache folder (``HF_DATASETS_CACHE``), found without importing it."""
    return Path(os.environ.get("HF_DATASETS_CACHE", _hf_home() / "datasets")).expanduser()


def dataset_in_local_cache(hub_path: str) -> bool:
    """A hub dataset has been downloaded here before (hub cache or datasets cache): lm-eval may find it offline."""
    hub_cache = Path(os.environ.get("HF_HUB_CACHE", _hf_home() / "hub")).expanduser()
    return (hub_cache / f"datasets--{hub_path.replace('/', '--')}").is_dir() or (
        datasets_cache_dir() / hub_path.replace("/", "___")
    ).is_dir()


def datasets_to_download(benchmarks: list[Benchmark], index_dir: Path | None = None) -> dict[str, list[str]]:
    """Per benchmark, the hub datasets lm-eval would have to download: those not in this machine's
    Hugging Face caches (benchmarks with none are left out)."""
    missing = {
        b.name: sorted({p for p in TaskSource(b, None, index_dir=index_dir).hub_datasets().values() if not dataset_in_local_cache(p)})
        for b in benchmarks
    }
    return {name: paths for name, paths in missing.items() if paths}


def check_hub_data(benchmarks: list[Benchmark], hub: HubAccess) -> dict[str, DataError | None]:
    """Per benchmark read from the hub: ``HubUnreachable`` (one object for all) if its data cannot be fetched, else None."""
    fine: dict[str, DataError | None] = {b.name: None for b in benchmarks}
    if hub_offline():
        return fine  # lm-eval fails at once and harness.translate_error explains it
    missing = datasets_to_download(benchmarks)
    reason = hub.unreachable() if missing else None
    if reason is None:
        return fine
    error = HubUnreachable(
        f"The benchmark data cannot be downloaded: no --data-dir was given, so lm-eval would fetch the data of "
        f"{', '.join(missing)} "
        f"({', '.join(p for paths in missing.values() for p in paths)}) from the hub, but the hub ({hub_endpoint()}) "
        f"cannot be reached ({reason}) and they are not in this machine's Hugging Face caches. Fix: where the hub "
        "can be reached, run `python -m pytest_qwencmp mirror --out DIR` (add --model ORG/NAME for the models), "
        "copy DIR to this machine and pass --data-dir=DIR."
    )
    return {**fine, **{name: error for name in missing}}
