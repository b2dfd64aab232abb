"""local_data: JSON Lines copies read into memory give lm-eval the rows datasets' JSON builder gives."""

from __future__ import annotations

import json

import pytest

from pytest_qwencmp.errors import QwencmpError
from pytest_qwencmp.lmeval.local_data import load_json_lines

ROWS = [
    {"question": "q1", "choices": ["a", "b", "c", "d"], "answer": 2, "tests": []},
    {"question": "q2", "choices": ["e", "f", "g", "h"], "answer": 0, "tests": []},
]


def write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return str(path)


def test_rows_and_types_match_the_json_builder(tmp_path):
    import datasets

    test, dev = write(tmp_path / "test.jsonl", ROWS), write(tmp_path / "dev.jsonl", ROWS[:1])
    ours = load_json_lines(qwencmp_files={"test": [test], "dev": [dev]}, version=1.0)  # lm-eval passes metadata too
    builder = datasets.load_dataset("json", data_files={"test": [test], "dev": [dev]}, cache_dir=str(tmp_path / "hf"))
    for split in ("test", "dev"):
        assert ours[split].to_list() == builder[split].to_list()
        assert ours[split].features == builder[split].features
    assert ours["test"]._fingerprint != ours["dev"]._fingerprint


def test_changed_content_changes_the_fingerprint(tmp_path):
    path = tmp_path / "test.jsonl"
    first = load_json_lines(qwencmp_files={"test": [write(path, ROWS)]})["test"]._fingerprint
    second = load_json_lines(qwencmp_files={"test": [write(path, ROWS[::-1])]})["test"]._fingerprint
    assert first != second


def test_a_broken_row_names_the_file_and_line(tmp_path):
    path = tmp_path / "test.jsonl"
    path.write_text(json.dumps(ROWS[0]) + "\n" + '{"question": "q2", "choi\n', encoding="utf-8")
    with pytest.raises(QwencmpError, match=r"test\.jsonl, line 2: not valid JSON"):
        load_json_lines(qwencmp_files={"test": [str(path)]})
