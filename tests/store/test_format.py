"""The saved-evaluations format (full form) and the one settings check in its other uses (no model runs)."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from pytest_qwencmp.store import compatibility, format as saved
from pytest_qwencmp.evaluation.scores import BenchmarkEvaluation, ItemScore
from pytest_qwencmp.store.compatibility import number_settings, settings_mismatches
from pytest_qwencmp.store.format import evaluation_record
from test_baselines import full_run, mbpp, pattern, run_settings  # same folder: on sys.path

MACHINE = {"hostname": "gpu-7"}


def detailed(evaluation: BenchmarkEvaluation) -> BenchmarkEvaluation:
    """An evaluation with what the full form carries beyond scores: documents and lm-eval's results."""
    documents = {k: {"prompt": f"Q {k}", "target": "t", "answer": "ä\nb"} for k in evaluation.items[0].doc_keys[:3]}
    results = {"results": {evaluation.benchmark: {"acc,none": 0.5, "acc_stderr,none": "N/A"}}, "n-shot": dict(evaluation.n_shot)}
    return replace(evaluation, documents=documents, lm_eval_results=results, from_cache=True)


def full_saved(evaluations, **changes):
    parts = {(e.side, e.benchmark): {"model": e.model["fingerprint"], "limit": 100, "benchmark": e.benchmark} for e in evaluations}
    return saved.saved_from_evaluations(
        "shard-1-of-2", evaluations, compatibility.number_settings(evaluations, run_settings(limit=100)),
        machine=MACHINE, created="2025-01-02T03:04:05+00:00", full=True, key_parts=parts,
        benchmarks={"mbpp": {"order": 2, "definition": {"request": ["mbpp"]}}},
        comparison={"correction": "holm", "expectations": None}, **changes,
    )


def test_full_form_rebuilds_every_evaluation_exactly():
    evaluations = [detailed(e) for e in full_run()]
    original = full_saved(evaluations)
    assert original.is_full
    again = saved.parse_saved_text(original.dumps(), "shard results")
    assert again == original
    rebuilt = {(e.side, e.benchmark): e for e in again.evaluations()}
    assert set(rebuilt) == {(e.side, e.benchmark) for e in evaluations}
    for evaluation in evaluations:
        assert rebuilt[(evaluation.side, evaluation.benchmark)] == evaluation  # scores, order, documents, lm-eval results
    record = again.records[("b", "mmlu")]
    assert record["key_parts"]["model"] == "hub:Qwen/Qwen2.5-7B@deadbeef" and record["item_ids"][-1] == "overall"
    assert again.comparison == {"correction": "holm", "expectations": None}
    assert again.benchmarks_defined["mbpp"]["order"] == 2


def test_lean_form_is_what_a_baseline_holds():
    lean = saved.saved_from_evaluations("main", full_run(), {}, machine=MACHINE)
    data = json.loads(lean.dumps())
    assert not lean.is_full and lean.evaluations() == ()
    assert set(data) == {"format", "name", "created", "project_commit", "machine", "models", "settings", "items"}


@pytest.mark.parametrize(
    "change, problem",
    [
        (lambda d: d["evaluations"][0].pop("item_ids"), "evaluation 1 lacks item_ids"),
        (lambda d: d["evaluations"][0].update(item_ids=["nope"]), "names items without scores: nope"),
        (lambda d: d["evaluations"].append(dict(d["evaluations"][0])), "repeats a/hellaswag"),
        (lambda d: d["evaluations"][0].update(documents=[]), "'documents' must be an object"),
        (lambda d: d.update(evaluations={}), "'evaluations' must be a list"),
    ],
)
def test_malformed_records_are_named(change, problem):
    data = json.loads(full_saved([detailed(e) for e in full_run()]).dumps())
    change(data)
    with pytest.raises(saved.SavedFormatError, match="is malformed: .*" + problem.replace("[", r"\[")):
        saved.saved_from_json(data, "shard results")


def test_a_new_number_changing_setting_is_one_line(monkeypatch):
    """Adding a field to MODEL_SETTINGS makes it recorded and compared; nothing else changes."""
    a = mbpp("b", pattern(20, 9))
    b = replace(a, model={**a.model, "chat_template": "chatml"})
    monkeypatch.setattr(compatibility, "MODEL_SETTINGS", compatibility.MODEL_SETTINGS + ("chat_template",))
    before, after = compatibility.number_settings([replace(a, model={**a.model, "chat_template": None})]), compatibility.number_settings([b])
    assert compatibility.settings_mismatches(after, after) == []
    assert compatibility.number_settings([b])["runs"]["b"]["chat_template"] == "chatml"
    before["runs"]["b"]["chat_template"] = "plain"
    assert compatibility.settings_mismatches(before, after, names=("shard-1.json", "shard-2.json")) == [
        "chat_template: shard-1.json plain, shard-2.json chatml"
    ]


def test_strict_checks_key_parts_both_ways_and_names_the_sides():
    entry = {"model": "local:1", "limit": 3, "dtype": "float32", "data": {"Rowan/hellaswag": "f1"}}
    run = {"model": "local:1", "limit": 2, "dtype": "float32", "data": {"Rowan/hellaswag": "f2"}, "chat_template": "x"}
    lines = compatibility.settings_mismatches(entry, run, names=("imported entry", "this run"), strict=True)
    assert lines == [
        "chat_template: imported entry none, this run x",
        "Rowan/hellaswag data: imported entry f1, this run f2",
        "limit: imported entry 3, this run 2",
    ]
    assert compatibility.settings_mismatches(entry, run, names=("imported entry", "this run")) == lines[1:]  # not strict: common keys
    assert compatibility.settings_mismatches(entry, entry, strict=True) == []


def test_model_identity_is_compared_between_shards_but_not_against_a_baseline():
    from pytest_qwencmp.store import baselines as bl

    base = compatibility.number_settings(full_run(), run_settings())
    other = [replace(e, model={**e.model, "fingerprint": "hub:Qwen/Qwen2.5-7B@cafe"}) if e.side == "b" else e for e in full_run()]
    now = compatibility.number_settings(other, run_settings())
    assert compatibility.settings_mismatches(base, now) == ["model (model B): baseline hub:Qwen/Qwen2.5-7B@deadbeef, now hub:Qwen/Qwen2.5-7B@cafe"]
    as_baseline = bl.baseline_from_evaluations("main", full_run(), base, machine=MACHINE)
    assert bl.settings_mismatches(as_baseline, now) == []


def test_a_sides_setup_is_compared_and_its_adapter_is_identity():
    """Chat template, system instruction and model args change numbers everywhere; the adapter's weights are
    identity (shards and cache entries agree on it, a baseline of model B does not); its path is neither."""
    from pytest_qwencmp.store import baselines as bl

    def with_setup(evaluations, **setup):
        return [replace(e, model={**e.model, "setup": dict(setup)}) if e.side == "b" else replace(e, model={**e.model, "setup": {}}) for e in evaluations]

    plain = compatibility.number_settings(with_setup(full_run()), run_settings())
    templated = compatibility.number_settings(
        with_setup(full_run(), apply_chat_template=True, fewshot_as_multiturn=True), run_settings()
    )
    assert plain["runs"]["b"]["setup"] == {} and plain["runs"]["b"]["adapter"] == "none"
    assert compatibility.settings_mismatches(plain, templated) == [
        'setup (model B): apply_chat_template baseline none, now true; fewshot_as_multiturn baseline none, now true'
    ]
    tuned = compatibility.number_settings(
        with_setup(full_run(), adapter="/runs/lora-7", adapter_fingerprint="local:abc"), run_settings()
    )
    moved = compatibility.number_settings(
        with_setup(full_run(), adapter="/elsewhere/lora-7", adapter_fingerprint="local:abc"), run_settings()
    )
    assert compatibility.settings_mismatches(tuned, moved) == []  # the same adapter read from another folder
    assert compatibility.settings_mismatches(plain, tuned, names=("shard-1.json", "shard-2.json")) == [
        "adapter (model B): shard-1.json none, shard-2.json local:abc"
    ]
    as_baseline = bl.baseline_from_evaluations("main", with_setup(full_run()), plain, machine=MACHINE)
    assert bl.settings_mismatches(as_baseline, tuned) == []
    assert bl.settings_mismatches(as_baseline, templated) != []


def test_samples_travel_with_saved_evaluations_and_are_a_number_changing_setting():
    item = ItemScore("pass@1", "mbpp", "pass_at_1", 0.4, 0.1, 2, ("mbpp/0", "mbpp/1"), (0.4, 0.4))
    five = BenchmarkEvaluation("mbpp", "b", "k", {"label": "b"}, (item,), {"mbpp": 2}, {"mbpp": 1.0},
                               {"do_sample": True}, "0.4.13", 1.0, samples=5)
    one = BenchmarkEvaluation("mbpp", "b", "k", {"label": "b"}, (item,), {"mbpp": 2}, {"mbpp": 1.0},
                              {"do_sample": True}, "0.4.13", 1.0)
    assert evaluation_record(five)["samples"] == 5
    assert BenchmarkEvaluation.from_payload(five.to_payload(), "b").samples == 5

    assert settings_mismatches(number_settings([one]), number_settings([five])) == ["mbpp samples: baseline 1, now 5"]
