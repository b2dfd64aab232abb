"""Unit tests of baselines across runs (pytest_qwencmp.store.baselines): no model runs."""

from __future__ import annotations

import json
import math
import os
import subprocess
from pathlib import Path

import pytest
from scipy import special

from pytest_qwencmp.store import baselines as bl
from pytest_qwencmp.errors import QwencmpError
from pytest_qwencmp.evaluation.scores import BenchmarkEvaluation, ItemScore
from pytest_qwencmp.config.settings import RunSettings

SUBJECTS = ("abstract_algebra", "anatomy", "astronomy")
CREATED = "2025-01-02T03:04:05+00:00"
MACHINE = {"hostname": "ci-1", "platform": "Linux", "python": "3.11.9"}


# --------------------------------------------------------------------------
# builders


def score(item_id: str, task: str, values, *, metric: str = "acc", start: int = 0, keys=None) -> ItemScore:
    values = tuple(float(v) for v in values)
    keys = tuple(keys) if keys is not None else tuple(f"{task}/{i}" for i in range(start, start + len(values)))
    n = len(values)
    mean = sum(values) / n if n else float("nan")
    stderr = math.sqrt(mean * (1 - mean) / (n - 1)) if n > 1 else None
    return ItemScore(item_id, task, metric, mean, stderr, n, keys, values)


def pattern(n: int, correct: int, offset: int = 0) -> list[float]:
    """n binary values with `correct` ones, spread deterministically."""
    return [1.0 if ((i + offset) * 7919) % n < correct else 0.0 for i in range(n)]


def mmlu(side: str, per_subject: dict[str, list[float]], *, shots: int = 0, label: str | None = None,
         dtype: str = "float32", starts: dict[str, int] | None = None) -> BenchmarkEvaluation:
    starts = starts or {}
    items = []
    all_keys: list[str] = []
    all_values: list[float] = []
    for subject, values in per_subject.items():
        s = score(subject, f"mmlu_{subject}", values, start=starts.get(subject, 0))
        items.append(s)
        all_keys += s.doc_keys
        all_values += s.per_doc
    items.append(score("overall", "mmlu", all_values, keys=all_keys))
    return BenchmarkEvaluation(
        benchmark="mmlu",
        side=side,
        key=f"key-{side}",
        model=model_info(side, label, dtype),
        items=tuple(items),
        n_shot={f"mmlu_{s}": shots for s in per_subject},
        versions={f"mmlu_{s}": 1.0 for s in per_subject},
        gen_kwargs=None,
        lm_eval_version="0.4.9",
        wall_seconds=1.5,
    )


def hellaswag(side: str, acc: list[float], acc_norm: list[float]) -> BenchmarkEvaluation:
    return BenchmarkEvaluation(
        benchmark="hellaswag",
        side=side,
        key=f"hs-{side}",
        model=model_info(side),
        items=(score("acc", "hellaswag", acc), score("acc_norm", "hellaswag", acc_norm, metric="acc_norm")),
        n_shot={"hellaswag": 0},
        versions={"hellaswag": 1.0},
        gen_kwargs=None,
        lm_eval_version="0.4.9",
        wall_seconds=2.0,
    )


def mbpp(side: str, values: list[float]) -> BenchmarkEvaluation:
    return BenchmarkEvaluation(
        benchmark="mbpp",
        side=side,
        key=f"mbpp-{side}",
        model=model_info(side),
        items=(score("pass@1", "mbpp", values, metric="pass_at_1"),),
        n_shot={"mbpp": 2},
        versions={"mbpp": 1.0},
        gen_kwargs={"do_sample": True, "temperature": 0.1, "top_p": 0.95},
        lm_eval_version="0.4.9",
        wall_seconds=3.0,
    )


def model_info(side: str, label: str | None = None, dtype: str = "float32") -> dict:
    name = label or {"a": "Qwen/Qwen2.5-1.5B", "b": "Qwen/Qwen2.5-7B"}[side]
    return {
        "label": name,
        "name_or_path": name,
        "revision": "abc123" if side == "b" else None,
        "fingerprint": f"hub:{name}@deadbeef",
        "backend": "hf",
        "dtype": dtype,
        "requested_dtype": "float16",
        "device": "cpu",
        "parameters": 1000,
        "load_seconds": 4.2,
        "notice": "",
    }


def run_settings(**changes) -> RunSettings:
    return RunSettings(model_a=None, model_b=None, **changes)


def full_run(b_subject_correct: int = 80) -> list[BenchmarkEvaluation]:
    return [
        mmlu("a", {s: pattern(100, 60, i) for i, s in enumerate(SUBJECTS)}),
        mmlu("b", {s: pattern(100, b_subject_correct, i) for i, s in enumerate(SUBJECTS)}),
        hellaswag("a", pattern(50, 30), pattern(50, 33)),
        hellaswag("b", pattern(50, 35), pattern(50, 38)),
        mbpp("a", pattern(20, 5)),
        mbpp("b", pattern(20, 9)),
    ]


def make_baseline(evaluations, name: str = "main", settings: RunSettings | None = None, commit="0" * 40) -> bl.Baseline:
    settings = settings or run_settings(limit=100)
    return bl.baseline_from_evaluations(
        name,
        evaluations,
        bl.number_settings(evaluations, settings),
        machine=MACHINE,
        project_commit=commit,
        created=CREATED,
    )


def flipped(values: list[float], count: int) -> list[float]:
    """`count` correct documents turned wrong."""
    out = list(values)
    flipped_so_far = 0
    for i, v in enumerate(out):
        if v == 1.0 and flipped_so_far < count:
            out[i] = 0.0
            flipped_so_far += 1
    assert flipped_so_far == count
    return out


# --------------------------------------------------------------------------
# save / load


def test_round_trip_save_load_equals(tmp_path):
    baseline = make_baseline(full_run())
    path = bl.save_baseline(baseline, tmp_path / "baselines")
    assert path == tmp_path / "baselines" / "main.json"
    loaded = bl.load_baseline(tmp_path / "baselines", "main")
    assert loaded == baseline
    assert bl.load_baseline(path) == baseline  # a file path works too
    # What the baseline records.
    assert set(loaded.models) == {"a", "b"}
    assert loaded.models["b"]["revision"] == "abc123"
    assert loaded.models["b"]["fingerprint"] == "hub:Qwen/Qwen2.5-7B@deadbeef"
    assert "load_seconds" not in loaded.models["b"]
    assert loaded.machine == MACHINE
    assert loaded.project_commit == "0" * 40
    assert loaded.settings["lm_eval_version"] == "0.4.9"
    assert loaded.settings["runs"]["b"]["benchmarks"]["mmlu"]["num_fewshot"] == 0
    assert loaded.settings["runs"]["b"]["benchmarks"]["mbpp"]["gen_kwargs"]["temperature"] == 0.1
    assert loaded.settings["limit"] == 100
    item = loaded.item("b", "mmlu", "overall")
    assert item.n == 300 and len(item.per_doc) == 300 and item.doc_keys[0] == "mmlu_abstract_algebra/0"
    assert item == full_run()[1].item("overall")  # the saved item is the evaluation's ItemScore
    assert loaded.benchmarks() == ("hellaswag", "mbpp", "mmlu")


def test_json_is_deterministic_sorted_and_one_document_per_line(tmp_path):
    first = bl.save_baseline(make_baseline(full_run()), tmp_path / "x").read_text()
    second = bl.save_baseline(make_baseline(list(reversed(full_run()))), tmp_path / "y").read_text()
    assert first == second  # order of the evaluations does not matter
    data = json.loads(first)
    assert list(data) == sorted(data)
    assert data["format"] == bl.BASELINE_FORMAT
    assert '   ["mmlu_abstract_algebra/0", ' in first  # one [doc_key, value] pair per line
    keys = [(i["side"], i["benchmark"], i["item_id"]) for i in data["items"]]
    assert keys == sorted(keys)


def test_non_finite_scores_are_written_as_null_and_read_as_nan(tmp_path):
    evaluation = mmlu("b", {"anatomy": [1.0, 0.0]})
    evaluation = BenchmarkEvaluation(**{**evaluation.__dict__, "items": (ItemScore("anatomy", "mmlu_anatomy", "acc", float("nan"), None, 0),)})
    path = bl.save_baseline(make_baseline([evaluation]), tmp_path)
    assert '"value": null' in path.read_text()
    loaded = bl.load_baseline(path)
    assert math.isnan(loaded.item("b", "mmlu", "anatomy").value)


def test_atomic_write_leaves_no_temporary_files(tmp_path):
    directory = tmp_path / "baselines"
    bl.save_baseline(make_baseline(full_run(), name="main"), directory)
    bl.save_baseline(make_baseline(full_run(70), name="main"), directory)  # replaces
    bl.save_baseline(make_baseline(full_run(), name="release-1.0"), directory)
    assert sorted(p.name for p in directory.iterdir()) == ["main.json", "release-1.0.json"]
    assert bl.load_baseline(directory, "main").item("b", "mmlu", "anatomy").value == pytest.approx(0.70)
    assert bl.available_baselines(directory) == ["main", "release-1.0"]


def test_failed_write_keeps_the_old_file_and_removes_the_temporary(tmp_path, monkeypatch):
    directory = tmp_path / "baselines"
    old = bl.save_baseline(make_baseline(full_run()), directory).read_text()

    def broken_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(QwencmpError, match="No space left on device"):
        bl.save_baseline(make_baseline(full_run(70)), directory)
    assert [p.name for p in directory.iterdir()] == ["main.json"]
    assert (directory / "main.json").read_text() == old


@pytest.mark.parametrize("name", ["", ".hidden", "../escape", "a/b", "with space", "x" * 101, "naïve"])
def test_bad_names_are_refused(tmp_path, name):
    with pytest.raises(QwencmpError, match="Baseline name"):
        bl.save_baseline(_renamed(name), tmp_path)


def _renamed(name: str) -> bl.Baseline:
    from dataclasses import replace

    return replace(make_baseline(full_run()), name=name)


@pytest.fixture
def saved(tmp_path) -> Path:
    directory = tmp_path / "baselines"
    bl.save_baseline(make_baseline(full_run(), name="main"), directory)
    bl.save_baseline(make_baseline(full_run(), name="nightly"), directory)
    return directory


@pytest.mark.parametrize(
    "content, problem",
    [
        ("", "is empty"),
        ('{"format": 1, "name": "broken", "items": [', "is not valid JSON"),
        ("<<<<<<< HEAD\n{}\n=======\n", "is not valid JSON"),
        ("[1, 2]", "expected a JSON object"),
        ('{"format": 0, "name": "broken"}', "baseline format 0, written by an older pytest-qwencmp"),
        ('{"format": 99, "name": "broken"}', "baseline format 99, written by a newer pytest-qwencmp"),
        ('{"name": "broken"}', "not a pytest-qwencmp baseline"),
        ('{"format": 1, "name": "broken"}', "is malformed: it lacks created"),
    ],
)
def test_corrupt_truncated_and_other_format_files_are_clear_errors(saved, content, problem):
    (saved / "broken.json").write_text(content)
    with pytest.raises(QwencmpError) as info:
        bl.load_baseline(saved, "broken")
    message = info.value.message
    assert problem in message
    assert str(saved / "broken.json") in message
    assert "Baselines available in" in message and "broken, main, nightly" in message
    assert bl.SAVE_OPTION in message
    assert "\n" not in message


def test_truncated_real_baseline_is_a_clear_error(saved):
    text = (saved / "main.json").read_text()
    (saved / "main.json").write_text(text[: len(text) // 2])
    with pytest.raises(QwencmpError, match=r"is not valid JSON .* truncated"):
        bl.load_baseline(saved, "main")


def test_malformed_item_is_a_clear_error(saved):
    data = json.loads((saved / "main.json").read_text())
    data["items"][0]["docs"] = [["doc/0", "yes"]]
    (saved / "main.json").write_text(json.dumps(data))
    with pytest.raises(QwencmpError, match=r"is malformed: item 1 document doc/0 must be a number"):
        bl.load_baseline(saved, "main")


def test_missing_baseline_lists_the_available_ones(saved, tmp_path):
    with pytest.raises(QwencmpError, match=r"no baseline 'release'.*Baselines available in .*: main, nightly\."):
        bl.load_baseline(saved, "release")
    with pytest.raises(QwencmpError, match=r"Name the baseline .*main, nightly"):
        bl.load_baseline(saved)
    with pytest.raises(QwencmpError, match=r"directory .*nowhere does not exist.*--qwencmp-baseline-save main"):
        bl.load_baseline(tmp_path / "nowhere", "main")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(QwencmpError, match=r"No baselines are saved in .*--qwencmp-baseline-save NAME"):
        bl.load_baseline(empty, "main")
    assert bl.load_baseline(saved, "main.json").name == "main"


# --------------------------------------------------------------------------
# settings


def test_number_settings_records_what_ran():
    evaluations = full_run()
    found = bl.number_settings(evaluations, run_settings(limit=10, seed=7))
    assert found["limit"] == 10 and found["seed"] == 7
    assert found["lm_eval_version"] == "0.4.9"
    assert found["data"] == {"hellaswag": "hub", "mbpp": "hub", "mmlu": "hub"}
    run_b = found["runs"]["b"]
    assert (run_b["dtype"], run_b["backend"], run_b["device_type"]) == ("float32", "hf", "cpu")
    assert run_b["benchmarks"]["mbpp"] == {
        "num_fewshot": 2,
        "task_versions": {"mbpp": 1.0},
        "gen_kwargs": {"do_sample": True, "temperature": 0.1, "top_p": 0.95},
        "samples": 1,
    }
    assert run_b["benchmarks"]["mmlu"]["task_versions"]["mmlu_anatomy"] == 1.0
    fingerprints = bl.number_settings(evaluations, run_settings(), data={"mmlu": "sha-1"})
    assert fingerprints["data"] == {"mmlu": "sha-1"}


def test_identical_settings_are_compatible():
    baseline = make_baseline(full_run())
    current = bl.number_settings(full_run(70), run_settings(limit=100))
    assert bl.settings_mismatches(baseline, current) == []
    assert bl.check_compatible(baseline, current, allow_mismatch=False) == []


def changed_run() -> list[BenchmarkEvaluation]:
    evaluations = full_run()
    evaluations[0] = mmlu("a", {s: pattern(100, 60, i) for i, s in enumerate(SUBJECTS)}, shots=5)
    evaluations[1] = BenchmarkEvaluation(
        **{
            **mmlu("b", {s: pattern(100, 80, i) for i, s in enumerate(SUBJECTS)}, shots=5, dtype="bfloat16").__dict__,
            "versions": {"mmlu_abstract_algebra": 2.0, "mmlu_anatomy": 2.0, "mmlu_astronomy": 1.0},
        }
    )
    for i in (3, 5):  # model B ran in bfloat16 on every benchmark
        evaluations[i] = BenchmarkEvaluation(**{**evaluations[i].__dict__, "model": model_info("b", dtype="bfloat16")})
    return evaluations


def test_settings_mismatch_is_refused_naming_each_difference():
    baseline = make_baseline(full_run())
    current = bl.number_settings(changed_run(), run_settings(limit=50))
    mismatches = bl.settings_mismatches(baseline, current)
    assert "mmlu num_fewshot: baseline 0, now 5" in mismatches  # both models: one line
    assert "dtype (model B): baseline float32, now bfloat16" in mismatches
    assert "limit: baseline 100, now 50" in mismatches
    assert (
        "mmlu task_versions (model B): mmlu_abstract_algebra baseline 1.0, now 2.0; "
        "mmlu_anatomy baseline 1.0, now 2.0" in mismatches
    )
    assert len(mismatches) == 4
    with pytest.raises(QwencmpError) as info:
        bl.check_compatible(baseline, current, allow_mismatch=False)
    message = info.value.message
    for line in mismatches:
        assert line in message
    assert "--qwencmp-baseline-allow-mismatch" in message
    assert "baseline 'main' (saved 2025-01-02T03:04:05+00:00, commit 000000000000)" in message


def test_settings_mismatch_allowed_with_the_override_returns_warnings():
    baseline = make_baseline(full_run())
    current = bl.number_settings(changed_run(), run_settings(limit=50))
    warnings = bl.check_compatible(baseline, current, allow_mismatch=True)
    assert warnings == bl.settings_mismatches(baseline, current) and len(warnings) == 4


def test_a_model_split_across_gpus_is_a_mismatch_and_older_baselines_without_it_are_not():
    def split_b(evaluations, size):
        return [
            BenchmarkEvaluation(**{**e.__dict__, "model": {**e.model, "tensor_parallel": size}}) if e.side == "b" else e
            for e in evaluations
        ]

    baseline = make_baseline(split_b(full_run(), 1))
    current = bl.number_settings(split_b(full_run(), 4), run_settings(limit=100))
    assert bl.settings_mismatches(baseline, current) == ["tensor_parallel (model B): baseline 1, now 4"]
    older = make_baseline(full_run())  # saved before the size was recorded
    assert bl.settings_mismatches(older, current) == []


def test_settings_of_other_models_benchmarks_and_unknown_keys_are_not_compared():
    baseline = make_baseline(full_run())
    current = bl.number_settings(changed_run(), run_settings(limit=100))
    # Only model A compared: the dtype and task versions of B do not matter.
    assert bl.settings_mismatches(baseline, current, sides=["a"]) == ["mmlu num_fewshot: baseline 0, now 5"]
    # A run of MBPP alone is compatible with a baseline of three benchmarks.
    only_mbpp = bl.number_settings([e for e in full_run() if e.benchmark == "mbpp"], run_settings(limit=100))
    assert bl.settings_mismatches(baseline, only_mbpp) == []
    # An early, partial mapping (nothing evaluated yet) checks what it knows.
    assert bl.settings_mismatches(baseline, bl.number_settings((), run_settings(limit=100))) == []
    assert bl.settings_mismatches(baseline, bl.number_settings((), run_settings(limit=100, seed=1))) == [
        "seed: baseline 1234, now 1"
    ]
    assert bl.settings_mismatches(baseline, {"lm_eval_version": "0.4.10"}) == [
        "lm_eval_version: baseline 0.4.9, now 0.4.10"
    ]


def test_many_changed_task_versions_are_summarised():
    baseline = make_baseline(full_run())
    current = json.loads(json.dumps(baseline.settings))
    for side in ("a", "b"):
        current["runs"][side]["benchmarks"]["mmlu"]["task_versions"] = {f"mmlu_{s}": 3.0 for s in SUBJECTS + ("x", "y")}
    (line,) = bl.settings_mismatches(baseline, current)
    assert line.startswith("mmlu task_versions: mmlu_abstract_algebra baseline 1.0, now 3.0;")
    assert line.endswith("and 2 more")


# --------------------------------------------------------------------------
# comparison


def single(side_values: dict[str, list[float]], *, side="b", start=0) -> list[BenchmarkEvaluation]:
    return [mmlu(side, {"anatomy": values}, starts={"anatomy": start}) for side, values in side_values.items()]


def test_identical_run_has_zero_delta_p_one_and_no_regression():
    evaluations = full_run()
    baseline = make_baseline(evaluations)
    results = bl.compare_to_baseline(baseline, evaluations)
    assert set(results) == {("mmlu", s) for s in SUBJECTS + ("overall",)} | {
        ("hellaswag", "acc"), ("hellaswag", "acc_norm"), ("mbpp", "pass@1")
    }
    for result in results.values():
        assert result.side == "b"
        assert result.paired is not None and result.paired.delta == 0.0
        assert result.paired.p_value == 1.0 and result.adjusted_p == 1.0
        assert result.delta_points == 0.0
        assert result.significance == "no detectable difference"
        assert not result.regressed
        assert result.matched_docs == result.baseline_docs == result.current_docs
        result.assert_not_regressed()
    assert results[("mmlu", "overall")].matched_docs == 300
    assert results[("mmlu", "anatomy")].correction == "holm"
    assert results[("mmlu", "overall")].correction == "none"


def test_planted_regression_fails_with_scores_ci_and_tolerance():
    base_values = pattern(100, 80)
    baseline = make_baseline(single({"b": base_values}))
    current = single({"b": flipped(base_values, 30)})
    result = bl.compare_to_baseline(baseline, current, tolerance_points=1.0)[("mmlu", "anatomy")]
    assert result.regressed
    assert result.baseline_value == pytest.approx(0.80) and result.current_value == pytest.approx(0.50)
    assert result.delta_points == pytest.approx(-30.0)
    assert result.paired.a_only == 30 and result.paired.b_only == 0
    assert result.significance == "worse"
    message = result.message
    assert "80.00" in message and "50.00" in message
    low, high = result.paired.ci_low * 100, result.paired.ci_high * 100
    assert f"95% CI [{low:+.2f}, {high:+.2f}]" in message
    assert "Tolerance: 1.00 points" in message
    assert "REGRESSED: fell 30.00 points, beyond the tolerance of 1.00 and significantly worse" in message
    assert "baseline 'main'" in message and "100 matched documents" in message
    with pytest.raises(AssertionError, match="REGRESSED"):
        result.assert_not_regressed()
    record = result.to_record()
    assert record["regressed"] is True and record["delta"] == pytest.approx(-30.0)
    json.dumps(record)


def test_change_within_tolerance_and_improvement_pass():
    base_values = pattern(100, 80)
    baseline = make_baseline(single({"b": base_values}))
    one_worse = bl.compare_to_baseline(baseline, single({"b": flipped(base_values, 1)}), tolerance_points=2.0)
    result = one_worse[("mmlu", "anatomy")]
    assert result.delta_points == pytest.approx(-1.0)
    assert not result.regressed and result.significance == "no detectable difference"
    assert "Tolerance: 2.00 points; no regression." in result.message
    # Exactly at the tolerance is within it.
    assert not bl.compare_to_baseline(baseline, single({"b": flipped(base_values, 1)}))[("mmlu", "anatomy")].regressed
    better = [1.0] * 100
    improved = bl.compare_to_baseline(baseline, single({"b": better}))[("mmlu", "anatomy")]
    assert improved.significance == "better" and not improved.regressed


def test_drop_beyond_tolerance_fails_even_when_not_significant():
    base_values = pattern(20, 10)
    baseline = make_baseline(single({"b": base_values}))
    result = bl.compare_to_baseline(baseline, single({"b": flipped(base_values, 2)}))[("mmlu", "anatomy")]
    assert result.significance == "no detectable difference"
    assert result.regressed and "fell 10.00 points, beyond the tolerance of 1.00" in result.message
    assert "significantly worse" not in result.message


def test_significant_regression_within_tolerance_fails_unless_switched_off():
    base_values = [1.0] * 2000
    baseline = make_baseline(single({"b": base_values}))
    current = single({"b": flipped(base_values, 15)})  # -0.75 points, McNemar p ~ 6e-5
    strict = bl.compare_to_baseline(baseline, current)[("mmlu", "anatomy")]
    assert strict.significance == "worse" and strict.regressed
    assert "beyond the tolerance" not in strict.message
    lenient = bl.compare_to_baseline(baseline, current, fail_on_significant=False)[("mmlu", "anatomy")]
    assert not lenient.regressed and "(significance not required)" in lenient.message


def test_partial_document_overlap_pairs_matched_documents_only():
    base_values = pattern(100, 70)
    baseline = make_baseline(single({"b": base_values}))  # --limit 100
    # Now --limit 60: the first 60 documents, 10 of which regressed.
    now_values = flipped(base_values[:60], 10)
    result = bl.compare_to_baseline(baseline, single({"b": now_values}))[("mmlu", "anatomy")]
    assert (result.matched_docs, result.baseline_docs, result.current_docs) == (60, 100, 60)
    assert result.paired.n == 60
    assert result.paired.mean_a == pytest.approx(sum(base_values[:60]) / 60)
    assert result.delta_points == pytest.approx(-10 / 60 * 100)
    assert result.baseline_value == pytest.approx(0.70)
    assert "60 matched documents (100 in the baseline, 60 now)" in result.message
    # Shifted window: documents 50..149 now, 50 of them in the baseline.
    shifted = single({"b": pattern(100, 70)}, start=50)
    result = bl.compare_to_baseline(baseline, shifted)[("mmlu", "anatomy")]
    assert (result.matched_docs, result.baseline_docs, result.current_docs) == (50, 100, 100)
    assert result.paired.mean_a == pytest.approx(sum(base_values[50:]) / 50)
    assert result.paired.mean_b == pytest.approx(sum(pattern(100, 70)[:50]) / 50)


def test_no_matching_documents_falls_back_to_the_full_scores():
    baseline = make_baseline(single({"b": pattern(100, 80)}))
    disjoint = single({"b": pattern(100, 50)}, start=1000)
    result = bl.compare_to_baseline(baseline, disjoint)[("mmlu", "anatomy")]
    assert result.paired is None and result.matched_docs == 0 and result.adjusted_p is None
    assert result.significance == "n/a"
    assert result.regressed and result.delta_points == pytest.approx(-30.0)
    assert "no document of the baseline matches one of this run" in result.message


def test_p_values_are_corrected_across_subjects_not_overall():
    base = {s: pattern(100, 80, i) for i, s in enumerate(SUBJECTS)}
    now = dict(base, anatomy=flipped(base["anatomy"], 6))
    baseline = make_baseline([mmlu("b", base)])
    results = bl.compare_to_baseline(baseline, [mmlu("b", now)], tolerance_points=50.0)
    anatomy = results[("mmlu", "anatomy")]
    mcnemar_cc = 2 * special.ndtr(-(6 - 0.5) / 6**0.5)  # 0 against 6 discordant documents: McNemar with a ½ correction
    assert anatomy.paired.p_value == pytest.approx(mcnemar_cc)
    assert anatomy.adjusted_p == pytest.approx(3 * mcnemar_cc)  # Holm over 3 subjects
    assert anatomy.significance == "no detectable difference" and not anatomy.regressed
    overall = results[("mmlu", "overall")]
    assert overall.adjusted_p == overall.paired.p_value and overall.correction == "none"
    none = bl.compare_to_baseline(baseline, [mmlu("b", now)], tolerance_points=50.0, correction="none")
    assert none[("mmlu", "anatomy")].adjusted_p == pytest.approx(mcnemar_cc)
    assert none[("mmlu", "anatomy")].significance == "worse" and none[("mmlu", "anatomy")].regressed


def test_side_tolerances_and_other_current_forms():
    evaluations = full_run()
    baseline = make_baseline(evaluations)
    later = make_baseline(full_run(70), name="later")
    # Another baseline as the current run; model A compared.
    a_side = bl.compare_to_baseline(baseline, later, side="a")
    assert all(r.side == "a" and not r.regressed for r in a_side.values())
    # A mapping of ItemScores; per-item tolerances by mapping and by callable.
    scores = {("b", e.benchmark, s.item_id): s for e in full_run(70) for s in e.items}
    by_map = bl.compare_to_baseline(baseline, scores, tolerance_points={("mmlu", "*"): 15.0, ("mmlu", "anatomy"): 5.0})
    assert by_map[("mmlu", "astronomy")].tolerance_points == 15.0
    assert by_map[("mmlu", "anatomy")].tolerance_points == 5.0
    assert by_map[("mbpp", "pass@1")].tolerance_points == 1.0
    by_callable = bl.compare_to_baseline(baseline, scores, tolerance_points=lambda bench, item: 20.0 if bench == "mmlu" else None)
    overall = by_callable[("mmlu", "overall")]  # -10 points over 300 documents: within 20, but significant
    assert overall.tolerance_points == 20.0 and overall.regressed
    assert "REGRESSED: significantly worse (p not adjusted: tested alone)" in overall.message
    assert by_callable[("hellaswag", "acc")].tolerance_points == 1.0
    # Items only in one run are left out.
    only_mmlu = bl.compare_to_baseline(baseline, [e for e in evaluations if e.benchmark == "mmlu"])
    assert {k[0] for k in only_mmlu} == {"mmlu"}
    with pytest.raises(QwencmpError, match="non-negative"):
        bl.compare_to_baseline(baseline, evaluations, tolerance_points=-1.0)


# --------------------------------------------------------------------------
# provenance


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=Test", "-c", "user.email=test@example.com", "-c", "commit.gpgsign=false", *args],
        cwd=cwd, check=True, capture_output=True, text=True,
    ).stdout.strip()


def test_project_commit_from_a_git_repository(tmp_path, monkeypatch):
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    (repo / "file.txt").write_text("x")
    _git(repo, "add", "file.txt")
    _git(repo, "commit", "-q", "-m", "first")
    head = _git(repo, "rev-parse", "HEAD")
    monkeypatch.chdir(repo)
    assert bl.project_commit() == head
    assert bl.project_commit(repo) == head
    baseline = bl.baseline_from_evaluations("main", full_run(), {}, project_commit=bl.project_commit())
    assert baseline.project_commit == head
    assert head[:12] in baseline.describe()


def test_project_commit_is_none_outside_a_repository(tmp_path, monkeypatch):
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    outside = tmp_path / "plain"
    outside.mkdir()
    monkeypatch.chdir(outside)
    assert bl.project_commit() is None
    empty_repo = tmp_path / "fresh"
    empty_repo.mkdir()
    _git(empty_repo, "init", "-q")
    assert bl.project_commit(empty_repo) is None  # no commit yet
    monkeypatch.setenv("PATH", str(tmp_path / "no-git-here"))
    assert bl.project_commit() is None


def test_machine_info_and_created_defaults():
    info = bl.machine_info()
    assert {"hostname", "platform", "python", "machine"} <= set(info)
    json.dumps(info)
    baseline = bl.baseline_from_evaluations("main", full_run(), bl.number_settings(full_run(), run_settings()))
    assert baseline.created.endswith("+00:00") and baseline.machine == bl.json_safe(info)
    assert os.path.basename(str(bl.baseline_path(Path("d"), "main"))) == "main.json"
