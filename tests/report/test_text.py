"""The terminal's summary lines (report.py): each fact once, in as few lines as it takes."""

from __future__ import annotations

from pytest_qwencmp.report.text import reuse_lines, settings_lines


def model(notice: str | None) -> dict:
    return {"name_or_path": "m", "backend": "hf", "dtype": "float32", "device": "cpu", "parameters": 1000, "notice": notice}


def test_the_same_notice_for_both_models_is_said_once():
    notice = "float16 requested, but this CPU run used float32 (hf backend)"
    lines = settings_lines({"models": {"a": model(notice), "b": model(notice)}})
    assert [line for line in lines if notice in line] == [f"note (both models): {notice}"]
    different = settings_lines({"models": {"a": model(notice), "b": model(None)}})
    assert [line for line in different if notice in line] == [f"  note: {notice}"]  # under model A's line


def test_reuse_is_one_line_when_both_models_did_the_same():
    evaluated = {"evaluated": {"a": ["hellaswag", "mbpp"], "b": ["hellaswag", "mbpp"]}, "reused": {}}
    assert reuse_lines(evaluated) == []  # nothing reused: the counts line ("4 evaluation(s), 0 reused") says it
    same = {"evaluated": {}, "reused": {"a": {"mbpp": "cache"}, "b": {"mbpp": "cache"}}}
    assert reuse_lines(same) == ["qwencmp: models A and B: reused mbpp from the cache"]
    mixed = {"evaluated": {"b": ["mbpp"]}, "reused": {"a": {"mbpp": "cache"}}}
    assert reuse_lines(mixed) == ["qwencmp: model A: reused mbpp from the cache", "qwencmp: model B: evaluated mbpp"]
    assert reuse_lines({}) == []


def test_the_sandbox_line_only_when_a_generation_benchmark_ran():
    assert not any(line.startswith("code sandbox") for line in settings_lines({"models": {}}))
    lines = settings_lines({"models": {}, "code_sandbox": "no network", "code_sandbox_details": "network: none (...)"})
    assert lines == ["code sandbox: no network"]  # the details are for the HTML report


def test_run_settings_share_lines():
    run = {"models": {}, "num_fewshot": {"mmlu": 0, "mbpp": 2}, "generation": {"temperature": 0.1}, "seed": 1234,
           "data": "/data", "lm_eval_version": "0.4.13", "correction": "holm", "limit": None}
    assert settings_lines(run) == [
        "num fewshot: mmlu=0, mbpp=2 · generation: temperature=0.1 · seed: 1234",
        "data: /data · lm eval version: 0.4.13 · correction: holm",
    ]
