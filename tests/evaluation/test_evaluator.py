"""The evaluation runner: sampling settings reach `generate`, results are recorded, cache keys move."""

from __future__ import annotations

import os
import re
import time

import pytest

from pytest_qwencmp.config.benchmarks import builtin_registry
from pytest_qwencmp.errors import QwencmpError
from pytest_qwencmp.evaluation.cache import cache_key
from pytest_qwencmp.evaluation.scores import check_score_against_documents
from pytest_qwencmp.lmeval.code_eval import SandboxedCodeEval
from pytest_qwencmp.evaluation.evaluator import _check_sizes
from pytest_qwencmp.errors import QwencmpError

REGISTRY = builtin_registry()


@pytest.mark.parametrize(
    "raw, expected",
    [
        ({}, {"do_sample": True, "temperature": 0.1, "top_p": 0.95}),
        ({"temperature": "0"}, {"do_sample": False}),
    ],
)
def test_sampling_settings_reach_generate(demo_assets, fresh_cache, offline, monkeypatch, raw, expected, make_run):
    import transformers

    seen: list[dict] = []
    real_generate = transformers.GenerationMixin.generate

    def recording_generate(self, *args, **kwargs):
        seen.append(dict(kwargs))
        return real_generate(self, *args, **kwargs)

    monkeypatch.setattr(transformers.GenerationMixin, "generate", recording_generate)
    run = make_run(fresh_cache, limit="2", **raw)
    evaluation = run.evaluator.evaluate("a", "mbpp")
    assert seen, "generate was never called"
    for kwargs in seen:
        for key, value in expected.items():
            assert kwargs.get(key) == value, (key, kwargs)
        if not expected["do_sample"]:
            assert "temperature" not in kwargs or kwargs["temperature"] in (None, 0, 0.0)
    assert evaluation.gen_kwargs is not None
    for key, value in expected.items():
        assert evaluation.gen_kwargs[key] == value


def test_one_call_per_benchmark_and_model_loaded_once(demo_assets, fresh_cache, offline, monkeypatch, make_run):
    import lm_eval

    calls: list[list[str]] = []
    real = lm_eval.simple_evaluate

    def counting(*args, **kwargs):
        calls.append(list(kwargs["tasks"]))
        return real(*args, **kwargs)

    monkeypatch.setattr(lm_eval, "simple_evaluate", counting)
    run = make_run(fresh_cache, limit="1")
    for item in REGISTRY.get("mmlu").items:
        run.comparison("mmlu", item.id)
    run.comparison("hellaswag", "acc")
    run.comparison("hellaswag", "acc_norm")
    assert calls == [["mmlu"], ["mmlu"], ["hellaswag"], ["hellaswag"]]
    assert run.stats()["model_loads"] == 2 and run.stats()["evaluations"] == 4

    again = make_run(fresh_cache, limit="1")
    again.comparison("mmlu", "overall")
    stats = again.stats()
    counted = {k: stats[k] for k in ("model_loads", "evaluations", "cache_hits", "evaluation_seconds")}
    assert counted == {"model_loads": 0, "evaluations": 0, "cache_hits": 2, "evaluation_seconds": 0.0}
    assert stats["reused"] == {"a": {"mmlu": "cache"}, "b": {"mmlu": "cache"}} and stats["evaluated"] == {}
    assert run.stats()["evaluated"] == {"a": ["mmlu", "hellaswag"], "b": ["mmlu", "hellaswag"]}


def test_cache_key_covers_what_changes_numbers(demo_assets, fresh_cache, offline, make_run):
    base = make_run(fresh_cache)
    mbpp = REGISTRY.get("mbpp")
    key = cache_key(base.evaluator.key_parts("a", mbpp))
    variations = [
        {"limit": "3"}, {"num_fewshot": ["mbpp=3"]}, {"temperature": "0.2"}, {"top_p": "0.9"}, {"seed": "7"},
        {"dtype": "bfloat16"}, {"batch_size": "4"},
    ]
    for change in variations:
        assert cache_key(make_run(fresh_cache, **change).evaluator.key_parts("a", mbpp)) != key, change
    assert cache_key(base.evaluator.key_parts("b", mbpp)) != key
    hellaswag = REGISTRY.get("hellaswag")
    # Sampling settings do not change loglikelihood benchmarks, so they do not invalidate them.
    assert cache_key(make_run(fresh_cache, temperature="0.5").evaluator.key_parts("a", hellaswag)) == cache_key(
        base.evaluator.key_parts("a", hellaswag)
    )


def test_corrupt_cache_entry_is_recomputed(demo_assets, fresh_cache, offline, make_run):
    run = make_run(fresh_cache, limit="1")
    first = run.evaluator.evaluate("a", "hellaswag")
    path = run.evaluator.cache.path_for(first.key)
    path.write_text(path.read_text()[:100])  # truncated by a crash or a full disk
    again = make_run(fresh_cache, limit="1")
    rebuilt = again.evaluator.evaluate("a", "hellaswag")  # from the per-document results: nothing evaluated
    assert again.stats()["evaluations"] == 0 and not rebuilt.from_cache
    assert rebuilt.items == first.items
    documents = again.evaluator.documents_cache
    for entry in (path, documents.path_for(cache_key(again.evaluator.documents_key_parts("a", REGISTRY.get("hellaswag"))))):
        entry.write_text(entry.read_text()[:100])
    third = make_run(fresh_cache, limit="1")
    second = third.evaluator.evaluate("a", "hellaswag")
    assert third.stats()["evaluations"] == 1 and not second.from_cache
    assert second.items == first.items


def test_ctrl_c_keeps_finished_evaluations(demo_assets, fresh_cache, offline, monkeypatch, make_run):
    import lm_eval

    real = lm_eval.simple_evaluate

    def interrupted_on_mbpp(*args, **kwargs):
        if kwargs["tasks"] == ["mbpp"]:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(lm_eval, "simple_evaluate", interrupted_on_mbpp)
    run = make_run(fresh_cache, limit="1")
    run.comparison("hellaswag", "acc")
    with pytest.raises(KeyboardInterrupt):
        run.comparison("mbpp", "pass@1")
    monkeypatch.setattr(lm_eval, "simple_evaluate", real)
    resumed = make_run(fresh_cache, limit="1")
    resumed.comparison("hellaswag", "acc")
    resumed.comparison("mbpp", "pass@1")  # the interrupted key's lock was released
    assert resumed.stats()["cache_hits"] == 2 and resumed.stats()["evaluations"] == 2


def test_cuda_out_of_memory_becomes_one_actionable_paragraph():
    from pytest_qwencmp.errors import OutOfMemory
    from pytest_qwencmp.lmeval.harness import translate_error as _translate

    class OutOfMemoryError(RuntimeError):
        pass

    class FakeLM:
        batch_size = 64

    error = _translate(OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB"), REGISTRY.get("mmlu"), "Qwen/Qwen2.5-7B", FakeLM())
    assert "CUDA ran out of memory evaluating mmlu on Qwen/Qwen2.5-7B with batch size 64" in str(error)
    assert "Lower --batch-size below 64" in str(error) and "Finished evaluations are cached" in str(error)
    FakeLM.batch_size = "auto"  # detected by lm-eval: a smaller fixed size is the way out
    detected = str(_translate(OutOfMemoryError("CUDA out of memory"), REGISTRY.get("mmlu"), "Qwen/Qwen2.5-7B", FakeLM()))
    assert "with the batch size lm-eval detected (--batch-size auto" in detected and "Set a fixed, smaller --batch-size N" in detected
    assert isinstance(error, OutOfMemory)  # a tensor-parallel group ends on it: its ranks are out of step
    unrelated = ValueError("something else")
    assert _translate(unrelated, REGISTRY.get("mmlu"), "x", FakeLM()) is unrelated


def test_malformed_local_dataset_is_one_clear_paragraph(demo_assets, fresh_cache, offline, tmp_path, make_run):
    import shutil

    from pytest_qwencmp.errors import DataError

    data = tmp_path / "data"
    shutil.copytree(demo_assets.data_dir, data)
    validation = next((data / "Rowan" / "hellaswag").rglob("*validation*.jsonl"))
    validation.write_text('{"ind": 1, "ctx": "broken\n{{{ not json at all\n')
    run = make_run(fresh_cache, data_dir=str(data), limit="1")
    with pytest.raises(DataError) as info:
        run.evaluator.evaluate("a", "hellaswag")
    message = info.value.message
    assert f"The local data of benchmark 'hellaswag' is not usable: {validation}, line 1 is not valid JSON" in message
    assert "--data-dir" in message and "\n" not in message


def test_a_failed_evaluation_is_remembered_and_no_model_ran_on_bad_data(demo_assets, fresh_cache, offline, tmp_path, monkeypatch, make_run):
    import shutil

    import lm_eval

    from pytest_qwencmp.errors import DataError

    data = tmp_path / "data"
    shutil.copytree(demo_assets.data_dir, data)
    test = data / "cais/mmlu/anatomy/test.jsonl"
    test.write_text(test.read_text().replace('"answer": ', '"answer": 1', 1))  # 0 -> 10, 1 -> 11...
    calls = []
    real = lm_eval.simple_evaluate
    monkeypatch.setattr(lm_eval, "simple_evaluate", lambda **kw: calls.append(kw["tasks"]) or real(**kw))
    lines = []
    run = make_run(fresh_cache, data_dir=str(data), limit="1")
    run.progress = lines.append
    with pytest.raises(DataError) as first:
        run.comparison("mmlu", "anatomy")
    assert f"{test}, line 1 `answer` is 1" in first.value.message
    started = time.monotonic()
    for item in ("astronomy", "overall"):
        with pytest.raises(DataError) as again:
            run.comparison("mmlu", item)
        assert again.value is first.value
    assert time.monotonic() - started < 1
    assert calls == [] and run.stats()["model_loads"] == 0  # checked before any model ran
    run.comparison("hellaswag", "acc")  # the other benchmarks still run
    assert calls == [["hellaswag"], ["hellaswag"]]
    assert [line.split(": ", 2)[-1].split(" in ")[0] for line in lines if "HellaSwag" in line] == [
        "evaluating (hf, float32, cpu)", "done", "evaluating (hf, float32, cpu)", "done"]


def test_an_unexpected_failure_shows_its_traceback_once_then_one_line(demo_assets, fresh_cache, offline, monkeypatch, make_run):
    import lm_eval

    from pytest_qwencmp.errors import QwencmpError

    def broken(**kwargs):
        raise RuntimeError("lm-eval broke")

    monkeypatch.setattr(lm_eval, "simple_evaluate", broken)
    lines = []
    run = make_run(fresh_cache, limit="1")
    run.progress = lines.append
    with pytest.raises(RuntimeError, match="lm-eval broke"):
        run.evaluator.evaluate("a", "hellaswag")
    assert re.fullmatch(r"qwencmp: HellaSwag × model_a: failed after [\d.]+s", lines[-1])
    with pytest.raises(QwencmpError, match=r"failed earlier in this session \(RuntimeError: lm-eval broke\); it is not attempted again"):
        run.evaluator.evaluate("a", "hellaswag")


def test_a_lock_held_by_another_run_is_announced_and_bounded(demo_assets, fresh_cache, offline, make_run):
    import threading

    from pytest_qwencmp.files import LockTimeout

    run = make_run(fresh_cache, limit="1", lock_timeout="1")
    lines = []
    run.progress = lines.append
    evaluator = run.evaluator
    key = cache_key(evaluator.key_parts("a", REGISTRY.get("mbpp")))
    entered, release = threading.Event(), threading.Event()

    def other_run():
        with evaluator.cache.locked(key, what="the evaluation of MBPP × model_a"):
            entered.set()
            release.wait(30)

    holder = threading.Thread(target=other_run, daemon=True)
    holder.start()
    assert entered.wait(10)
    try:
        with pytest.raises(LockTimeout) as info:
            evaluator.evaluate("a", "mbpp")
    finally:
        release.set()
        holder.join()
    lock = evaluator.cache.path_for(key).with_suffix(".lock")
    assert lines[0].startswith(f"qwencmp: waiting for the evaluation of MBPP × model_a: process {os.getpid()} on ")
    assert f"holds {lock} (waits up to 1s; --lock-timeout SECONDS, ini qwencmp_lock_timeout)" in lines[0]
    assert f"Gave up waiting for the evaluation of MBPP × model_a after 1s: {lock} is still held" in info.value.message
    assert run.stats()["model_loads"] == 0


def test_after_a_model_fails_only_what_needs_no_model_still_runs(demo_assets, fresh_cache, offline, make_run):
    from pytest_qwencmp.errors import ModelUnavailable

    make_run(fresh_cache, limit="1").comparison("hellaswag", "acc")  # both sides cached
    run = make_run(fresh_cache, limit="1")
    assert run.skip_reason("mbpp") is None  # nothing has failed
    error = ModelUnavailable("Could not load model 'x' (--model-b, a hub id): it is gone. Fix: bring it back.")
    assert run.failures.message(error, "test_mbpp[pass@1]") == error.message
    assert run.skip_reason("mbpp") == (
        "not run: Could not load model 'x' (--model-b, a hub id) (reported in full at test_mbpp[pass@1])")
    assert run.skip_reason("hellaswag") is None  # cached for both models: still compared
    assert run.comparison("hellaswag", "acc_norm").benchmark == "hellaswag"
    assert run.stats()["model_loads"] == 0 and run.stats()["cache_hits"] == 2
    assert run.failures.message(error, "test_mmlu[anatomy]").startswith("Not attempted again: Could not load model 'x'")


def test_a_score_that_is_not_the_mean_of_its_documents_fails_the_benchmark_once(demo_assets, fresh_cache, offline,
                                                                                 monkeypatch, make_run):
    """A tampered evaluation: lm-eval's HellaSwag acc moved by 1e-6 from the mean of the per-document values."""
    import lm_eval  # lazy: lm-eval only for the tests that evaluate

    calls = []
    real = lm_eval.simple_evaluate

    def tampered(*args, **kwargs):
        calls.append(kwargs["tasks"])
        output = real(*args, **kwargs)
        output["results"]["hellaswag"]["acc,none"] += 1e-6
        return output

    monkeypatch.setattr(lm_eval, "simple_evaluate", tampered)
    run = make_run(fresh_cache, limit="3")
    with pytest.raises(QwencmpError) as first:
        run.comparison("hellaswag", "acc")
    message = first.value.message
    assert "lm-eval reports acc = " in message and "hellaswag[acc] (task hellaswag)" in message
    assert "the mean of the 3 per-document values the paired statistics use is" in message
    assert "beyond 1e-09" in message and "\n" not in message
    with pytest.raises(QwencmpError) as again:
        run.comparison("hellaswag", "acc_norm")
    assert again.value is first.value and len(calls) == 1  # the same error, not evaluated twice
    assert not any(fresh_cache.glob("evaluations/**/*.json"))  # a broken evaluation is not cached


def test_scores_within_rounding_of_the_mean_pass_the_check():
    benchmark = REGISTRY.get("mmlu")
    item = benchmark.item("overall")
    values = [1.0, 0.0, 1.0] * 1000
    check_score_against_documents(benchmark, item, 2 / 3 + 1e-12, values)  # rounding of a size-weighted mean
    check_score_against_documents(benchmark, item, None, values)  # no score: nothing to compare
    with pytest.raises(QwencmpError, match="differ by 2e-09"):
        check_score_against_documents(benchmark, item, 2 / 3 + 2e-9, values)


def test_samples_draw_k_answers_per_problem_and_score_each(demo_assets, fresh_cache, offline, monkeypatch, make_run):
    """--samples mbpp=3: lm-eval's repeats through a task override; each problem's value is c/3, lm-eval's pass@1 their
    mean; K is part of the cache key and of the evaluation."""
    from lm_eval.models.huggingface import HFLM  # lazy: lm-eval only for the tests that evaluate

    requests, scored = [], []
    real_generate, real_compute = HFLM.generate_until, SandboxedCodeEval.compute

    def counting_generate(self, reqs, *args, **kwargs):
        requests.extend(reqs)
        return real_generate(self, reqs, *args, **kwargs)

    def counting_compute(self, *args, **kwargs):
        scored.append(len(kwargs["predictions"][0]))
        return real_compute(self, *args, **kwargs)

    monkeypatch.setattr(HFLM, "generate_until", counting_generate)
    monkeypatch.setattr(SandboxedCodeEval, "compute", counting_compute)
    run = make_run(fresh_cache, limit="4", samples=["mbpp=3"])
    evaluation = run.evaluator.evaluate("a", "mbpp")
    assert len(requests) == 4 * 3  # three sampled answers per problem
    assert scored.count(3) == 4  # and every one of them run against the problem's tests
    assert evaluation.samples == 3
    values = evaluation.item("pass@1").per_doc
    assert len(values) == 4 and all(v * 3 == round(v * 3) for v in values)
    samples = evaluation.lm_eval_results  # lm-eval's own results: its pass@1 is the mean of the per-problem values
    assert samples["results"]["mbpp"]["pass_at_1,none"] == pytest.approx(sum(values) / 4, abs=1e-12)
    mbpp = REGISTRY.get("mbpp")
    plain = make_run(fresh_cache, limit="4")
    assert run.evaluator.key_parts("a", mbpp)["samples"] == 3 and "samples" not in plain.evaluator.key_parts("a", mbpp)
    assert cache_key(run.evaluator.key_parts("a", mbpp)) != cache_key(plain.evaluator.key_parts("a", mbpp))


def test_a_task_of_another_size_than_counted_is_refused():
    """Documents are chosen from the sizes counted before the call; lm-eval's own count must agree."""
    hellaswag = REGISTRY.get("hellaswag")
    output = {"n-samples": {"hellaswag": {"original": 40, "effective": 5}}}
    _check_sizes(hellaswag, output, {"hellaswag": 40}, None)
    _check_sizes(hellaswag, output, {"hellaswag": 10}, 10)
    with pytest.raises(QwencmpError, match="has 40 documents, but this run counted 10,042"):
        _check_sizes(hellaswag, output, {"hellaswag": 10042}, None)
