"""Local dataset copies are checked before any model runs: file, line and what is wrong, in one paragraph."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from pytest_qwencmp.config.benchmarks import builtin_registry
from pytest_qwencmp.lmeval.data_checks import check_benchmark_data
from pytest_qwencmp.errors import DataError

REGISTRY = builtin_registry()


@pytest.fixture
def data(demo_assets, tmp_path) -> Path:
    copy = tmp_path / "data"
    shutil.copytree(demo_assets.data_dir, copy)
    return copy


def rewrite_rows(path: Path, change) -> None:
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    change(rows)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def problem(benchmark: str, data: Path) -> str:
    with pytest.raises(DataError) as info:
        check_benchmark_data(REGISTRY.get(benchmark), data)
    message = info.value.message
    assert "\n" not in message and "python -m pytest_qwencmp mirror --out DIR --benchmarks " + benchmark in message
    return message


def test_the_demo_copies_pass(data):
    for name in ("mmlu", "hellaswag", "mbpp"):
        check_benchmark_data(REGISTRY.get(name), data)


def test_a_truncated_row_names_file_and_line(data):
    test = data / "cais/mmlu/anatomy/test.jsonl"
    lines = test.read_text().splitlines(keepends=True)
    lines[4] = lines[4][: len(lines[4]) // 2] + "\n"  # an interrupted copy
    test.write_text("".join(lines))
    message = problem("mmlu", data)
    assert f"{test}, line 5 is not valid JSON" in message and "truncated or corrupted" in message


def test_random_bytes_are_not_text(data):
    validation = data / "Rowan/hellaswag/default/validation.jsonl"
    validation.write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff\xfe\x00garbage")
    assert f"{validation}, line 1 is not UTF-8 text" in problem("hellaswag", data)


def test_an_mmlu_copy_without_its_dev_split(data):
    for dev in (data / "cais/mmlu").glob("*/dev.jsonl"):
        dev.unlink()
    card = data / "cais/mmlu/README.md"
    text = card.read_text()
    assert "split: dev" in text
    # First only the files are gone: the card still lists them.
    assert "lists split 'dev' of config 'abstract_algebra' at " in problem("mmlu", data)
    card.write_text(re.sub(r"  - split: dev\n    path: [^\n]+\n", "", text))
    message = problem("mmlu", data)
    assert f"{card} lists no split 'dev' for config 'abstract_algebra', but lm-eval's task reads that split" in message
    assert "56 more problems" in message  # every subject, counted, reported once


@pytest.mark.parametrize(
    "benchmark, relative, line, change, fragment",
    [
        ("mmlu", "cais/mmlu/astronomy/test.jsonl", 3, lambda row: row.update(answer=7),
         "`answer` is 7; MMLU answers are 0–3"),
        ("mmlu", "cais/mmlu/astronomy/dev.jsonl", 1, lambda row: row.update(choices=["a", "b"]),
         '`choices` is ["a", "b"]; it must be a list of exactly 4 texts'),
        ("hellaswag", "Rowan/hellaswag/default/validation.jsonl", 2, lambda row: row.update(label="4"),
         "`label` is '4'; HellaSwag labels are \"0\"–\"3\""),
        ("hellaswag", "Rowan/hellaswag/default/train.jsonl", 1, lambda row: row.pop("endings"),
         "`endings` is missing"),
        ("mbpp", "google-research-datasets/mbpp/full/test.jsonl", 6, lambda row: row.pop("test_list"),
         "`test_list` is missing (the MBPP prompt shows test_list[0..2]"),
    ],
)
def test_valid_json_that_is_wrong_for_the_benchmark(data, benchmark, relative, line, change, fragment):
    path = data / relative
    rewrite_rows(path, lambda rows: change(rows[line - 1]))
    message = problem(benchmark, data)
    assert f"The local data of benchmark {benchmark!r} is not usable: {path}, line {line} {fragment}" in message
    assert "python -m pytest_qwencmp mirror --out DIR --benchmarks" in message  # the fix


def test_a_row_that_is_not_an_object(data):
    path = data / "google-research-datasets/mbpp/full/test.jsonl"
    path.write_text(path.read_text() + "[1, 2, 3]\n")
    assert f"{path}, line 16 is [1, 2, 3], not an object" in problem("mbpp", data)


def test_an_empty_split_is_a_problem(data):
    path = data / "google-research-datasets/mbpp/full/test.jsonl"
    path.write_text("")
    assert f"{path} holds no rows, but it is split 'test' of config 'full'" in problem("mbpp", data)


def test_a_hub_snapshot_in_parquet_with_glob_patterns_is_read(data):
    """The hub's own layout: `abstract_algebra/test-*` patterns over Parquet shards."""
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    mmlu = data / "cais/mmlu"
    card = mmlu / "README.md"
    text = card.read_text()
    for jsonl in sorted(mmlu.glob("*/*.jsonl")):
        rows = [json.loads(line) for line in jsonl.read_text().splitlines()]
        if jsonl.parent.name == "virology" and jsonl.stem == "test":
            rows[1]["answer"] = -1
        pq.write_table(pa.Table.from_pylist(rows), jsonl.with_name(f"{jsonl.stem}-00000-of-00001.parquet"))
        jsonl.unlink()
    card.write_text(re.sub(r"path: (\w+)/(\w+)\.jsonl", r"path: \1/\2-*", text))
    message = problem("mmlu", data)
    assert f"{mmlu / 'virology/test-00000-of-00001.parquet'}, row 2 `answer` is -1" in message
    (mmlu / "virology/test-00000-of-00001.parquet").write_bytes(b"PAR1 not really")
    assert "virology/test-00000-of-00001.parquet is not a readable Parquet file" in problem("mmlu", data)


def test_without_data_dir_an_unreachable_hub_is_known_at_once(tmp_path, monkeypatch):
    from pytest_qwencmp.lmeval.data_checks import check_hub_data
    from pytest_qwencmp.errors import HubUnreachable
    from pytest_qwencmp.hub import HubAccess

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv("HF_DATASETS_CACHE", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    benchmarks = [REGISTRY.get("hellaswag"), REGISTRY.get("mbpp")]
    asked = []
    unreachable = HubAccess(probe=lambda endpoint, timeout: asked.append(endpoint) or "Connection refused")
    found = check_hub_data(benchmarks, unreachable)
    assert isinstance(found["hellaswag"], HubUnreachable) and found["mbpp"] is found["hellaswag"]
    message = found["mbpp"].message
    assert message.startswith("The benchmark data cannot be downloaded: no --data-dir was given, so lm-eval would fetch "
                              "the data of hellaswag, mbpp")
    assert "cannot be reached (Connection refused)" in message and "python -m pytest_qwencmp mirror --out DIR" in message
    (tmp_path / "hf-home" / "hub" / "datasets--Rowan--hellaswag").mkdir(parents=True)  # downloaded before
    assert check_hub_data(benchmarks, unreachable)["hellaswag"] is None
    assert check_hub_data(benchmarks, HubAccess(probe=lambda endpoint, timeout: None)) == {"hellaswag": None, "mbpp": None}
    assert len(asked) == 1  # one probe per HubAccess (session)
