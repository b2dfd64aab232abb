"""Local JSON Lines dataset copies, read straight into memory for lm-eval's tasks.

With ``--data-dir`` every leaf task's override (``tasks``) names
:func:`load_json_lines` as lm-eval's ``custom_dataset``: lm-eval calls it
instead of ``datasets.load_dataset`` and gets the same rows, in file order, as
``datasets.Dataset`` objects — without datasets' builder machinery (config
resolution, hashing, an Arrow cache written per MMLU subject), which cost
most of a cold MMLU evaluation's task set-up. Prompts, metrics, few-shot
sampling and ``process_docs`` stay lm-eval's own.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import QwencmpError

FUNCTION = f"{__name__}.load_json_lines"  # what an override YAML names with `!function`


def read_rows(path: str, digest: "hashlib._Hash | None" = None) -> list[dict[str, Any]]:
    """The JSON objects of one ``.jsonl`` file, one per non-empty line (its bytes fed to ``digest``)."""
    rows: list[dict[str, Any]] = []
    try:
        with open(path, "rb") as handle:
            for number, raw in enumerate(handle, start=1):
                if digest is not None:
                    digest.update(raw)
                line = raw.decode("utf-8")
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except ValueError as exc:
                    raise QwencmpError(
                        f"{path}, line {number}: not valid JSON ({exc}). The local dataset copy (--data-dir) is "
                        "damaged: fix that line, or re-create the copy with `python -m pytest_qwencmp mirror`."
                    ) from None
                if not isinstance(row, dict):
                    raise QwencmpError(f"{path}, line {number}: expected a JSON object per line, got {type(row).__name__}.")
                rows.append(row)
    except OSError as exc:
        raise QwencmpError(f"Cannot read the local dataset file {path}: {exc.strerror}.") from None
    except UnicodeDecodeError as exc:
        raise QwencmpError(f"{path} is not UTF-8 text ({exc.reason}); is it a JSON Lines file?") from None
    return rows


def load_json_lines(qwencmp_files: Mapping[str, Sequence[str]] | None = None, **_task_metadata: Any):
    """``{split: [file, …]}`` as a ``datasets.DatasetDict`` (lm-eval's ``custom_dataset`` hook).

    Each split is an in-memory Arrow table whose column types pyarrow infers
    from the rows, as datasets' JSON builder does. Its fingerprint is the hash
    of the files' bytes: given explicitly, it spares datasets from hashing the
    whole table by pickling it (most of the cost for 57 small MMLU subjects).
    lm-eval also passes the task's ``metadata`` as keyword arguments; they are
    not needed here.
    """
    import datasets  # lazy: datasets (pyarrow) only when a dataset is read or mirrored
    import pyarrow as pa  # lazy: pyarrow only for a Parquet file
    from datasets.table import InMemoryTable  # lazy: datasets (pyarrow) only when a dataset is read or mirrored

    if not qwencmp_files:
        raise QwencmpError("load_json_lines: no files were given for this task (a broken --data-dir override).")
    splits = {}
    for split, paths in qwencmp_files.items():
        digest = hashlib.sha256(str(split).encode())
        rows = [row for path in paths for row in read_rows(str(path), digest)]
        table = InMemoryTable(pa.Table.from_pylist(rows))
        splits[str(split)] = datasets.Dataset(table, split=str(split), fingerprint=digest.hexdigest()[:32])
    return datasets.DatasetDict(splits)
