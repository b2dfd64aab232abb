"""Per-document results: documents evaluated apart equal one call's, and no document is evaluated twice."""

from __future__ import annotations

import math
import shutil

import pytest

from pytest_qwencmp.config.benchmarks import builtin_registry
from pytest_qwencmp.evaluation.cache import cache_key
from pytest_qwencmp.evaluation.documents import StoredDocuments, item_scores, wanted_documents
from pytest_qwencmp.lmeval.sizes import shots_depend_on_order
from pytest_qwencmp.store.compatibility import number_settings

REGISTRY = builtin_registry()
MMLU = REGISTRY.get("mmlu")


def _close(x, y):
    return (x is None and y is None) or (x is not None and y is not None and math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-12))


def test_a_full_run_after_part_of_the_documents_evaluates_only_the_rest(demo_assets, fresh_cache, tmp_path, offline, make_run):
    """Half of every subject first (as a sequential look would), then the whole benchmark: only the other half is
    evaluated, and the assembled evaluation equals one plain lm-eval call's in every number lm-eval reports."""
    run = make_run(fresh_cache, limit="4")
    half = {task: (1, 3) for task in MMLU.leaf_tasks}
    part = run.evaluator.evaluate_documents("b", "mmlu", half, what="look 1 of 2")
    assert run.evaluator.stats.documents == {"b": 114}
    assert all(s.n == 2 for s in part.items if s.item_id != "overall") and part.item("overall").n == 114
    whole = run.evaluator.evaluate("b", "mmlu")
    assert run.evaluator.stats.documents == {"b": 228} and run.evaluator.stats.evaluations == 2
    assert "assembled by pytest-qwencmp" in whole.lm_eval_results["qwencmp"]

    plain_cache = tmp_path / "plain"
    shutil.copytree(fresh_cache / "demo", plain_cache / "demo", symlinks=True)
    plain = make_run(plain_cache, limit="4").evaluator.evaluate("b", "mmlu")
    assert [s.item_id for s in whole.items] == [s.item_id for s in plain.items]
    for mine, theirs in zip(whole.items, plain.items):
        assert mine.doc_keys == theirs.doc_keys and mine.per_doc == theirs.per_doc, mine.item_id
        assert _close(mine.value, theirs.value) and _close(mine.stderr, theirs.stderr), mine.item_id
    assert dict(whole.versions) == dict(plain.versions) and whole.documents == plain.documents
    assert {t: whole.n_shot[t] for t in MMLU.leaf_tasks} == {t: plain.n_shot[t] for t in MMLU.leaf_tasks}
    # baselines, shards and imported entries see the same settings (lm-eval also lists some groups' shots)
    assert number_settings([whole]) == number_settings([plain])

    again = make_run(fresh_cache, limit="4")  # a rerun reads the whole evaluation's entry
    assert again.evaluator.evaluate("b", "mmlu").from_cache and again.stats()["evaluations"] == 0


def test_documents_come_from_a_whole_evaluation_entry(demo_assets, fresh_cache, offline, make_run):
    """An evaluation entry (made here, or imported from another machine) serves a look's documents: no lm-eval call."""
    run = make_run(fresh_cache, limit="3")
    run.evaluator.evaluate("a", "hellaswag")
    (fresh_cache / "documents").rename(fresh_cache / "documents-gone")  # only the whole entry is left
    look = make_run(fresh_cache, limit="3")
    part = look.evaluator.evaluate_documents("a", "hellaswag", {"hellaswag": (0, 2)})
    assert look.stats()["evaluations"] == 0 and part.item("acc").n == 2
    assert part.item("acc").doc_keys == ("hellaswag/0", "hellaswag/2")


def test_prompts_that_depend_on_the_other_documents_are_not_reused(demo_assets, fresh_cache, make_run):
    """HellaSwag with shots draws them at random in evaluation order: a document alone would get other examples."""
    hellaswag = REGISTRY.get("hellaswag")
    assert shots_depend_on_order(hellaswag, 0) == [] and shots_depend_on_order(MMLU, 5) == []
    assert shots_depend_on_order(hellaswag, 2) == ["hellaswag"]
    assert not make_run(fresh_cache, num_fewshot=["hellaswag=2"]).evaluator.reuses_documents(hellaswag)
    assert make_run(fresh_cache).evaluator.reuses_documents(REGISTRY.get("mbpp"))  # first_n: fixed examples


def test_the_limit_is_not_part_of_a_documents_key(demo_assets, fresh_cache, make_run):
    evaluator = make_run(fresh_cache, limit="2").evaluator
    other = make_run(fresh_cache, limit="5").evaluator
    assert cache_key(evaluator.key_parts("a", MMLU)) != cache_key(other.key_parts("a", MMLU))
    assert cache_key(evaluator.documents_key_parts("a", MMLU)) == cache_key(other.documents_key_parts("a", MMLU))
    assert cache_key(evaluator.documents_key_parts("a", MMLU)) != cache_key(other.documents_key_parts("b", MMLU))


def test_overall_on_a_share_of_each_subject_is_the_size_weighted_mean():
    """Subjects of 100 and 300 documents, 10 and 30 evaluated at unequal accuracies: the overall is the stratified mean
    (weights 1/4, 3/4), not the pooled one, with the stratified standard error."""
    tasks = MMLU.leaf_tasks[:2]
    values = {f"{tasks[0]}/{i}": {"acc": float(i < 9)} for i in range(10)}  # 90 %
    values.update({f"{tasks[1]}/{i}": {"acc": float(i < 15)} for i in range(20)})  # 75 %
    stored = StoredDocuments(values, {}, {})
    bench = MMLU.__class__(**{**MMLU.__dict__, "subjects": MMLU.subjects[:2]})
    scores = {s.item_id: s for s in item_scores(bench, stored, {tasks[0]: range(10), tasks[1]: range(20)},
                                                 {tasks[0]: 100, tasks[1]: 300})}
    assert scores["overall"].value == pytest.approx(0.25 * 0.9 + 0.75 * 0.75)
    assert scores["overall"].n == 30 and scores[MMLU.subjects[0]].value == pytest.approx(0.9)
    var0, var1 = 0.9 * 0.1 * 10 / 9, 0.75 * 0.25 * 20 / 19
    assert scores["overall"].stderr == pytest.approx(math.sqrt(0.25 ** 2 * var0 / 10 + 0.75 ** 2 * var1 / 20))
    assert wanted_documents({"t": 5}, 3) == {"t": (0, 1, 2)} and wanted_documents({"t": 2}, None) == {"t": (0, 1)}
