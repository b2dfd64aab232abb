"""The terminal's summary lines (report.py): each fact once, in as few lines as it takes."""

from __future__ import annotations

from pytest_qwencmp.report import reuse_lines, settings_lines


def model(notice: str | None) -> dict:
    return {"name_or_path": "m", "backend": "hf", "dtype": "float32", "device": "cpu", "parameters": 1000, "notice": notice}


def test_the_same_notice_for_both_models_is_said_once():
    notice = "float16 requested, but this CPU run used float32 (hf backend)"
    lines = settings_lines({"models": {"a": model(notice), "b": model(notice)}})
    assert [line for line in lines if notice in line] == [f"note (both models): {notice}"]
    different = settings_lines({"models": {"a": model(notice), "b": model(None)}})
    assert [line for line in different if notice in line] == [f"  note: {notice}"]  # under model A's line


def test_reuse_is_one_line_when_both_models_did_the_same():
    same = {"evaluated": {"a": ["hellaswag", "mbpp"], "b": ["hellaswag", "mbpp"]}, "reused": {}}
    assert reuse_lines(same) == ["qwencmp: models A and B: evaluated hellaswag, mbpp"]
    mixed = {"evaluated": {"b": ["mbpp"]}, "reused": {"a": {"mbpp": "cache"}}}
    assert reuse_lines(mixed) == ["qwencmp: model A: reused mbpp from the cache", "qwencmp: model B: evaluated mbpp"]
    assert reuse_lines({}) == []


def test_the_sandbox_line_only_when_a_generation_benchmark_ran():
    assert not any(line.startswith("code sandbox") for line in settings_lines({"models": {}}))
    lines = settings_lines({"models": {}, "code_sandbox": "no network", "code_sandbox_details": "network: none (...)"})
    assert lines == ["code sandbox: no network"]  # the details are for the HTML report
