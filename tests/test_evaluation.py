"""The evaluation runner: sampling settings reach `generate`, results are recorded, cache keys move."""

from __future__ import annotations

import pytest

from pytest_qwencmp.benchmarks import builtin_registry
from pytest_qwencmp.cache import cache_key
from pytest_qwencmp.expectations import NO_EXPECTATIONS
from pytest_qwencmp.run import ComparisonRun
from pytest_qwencmp.settings import parse_settings

REGISTRY = builtin_registry()


def make_run(demo_assets, cache, **raw):
    values = {"model_a": str(demo_assets.model_a), "model_b": str(demo_assets.model_b),
              "data_dir": str(demo_assets.data_dir), "cache_dir": str(cache), **raw}
    return ComparisonRun(parse_settings(values, REGISTRY.names()), REGISTRY, NO_EXPECTATIONS)


@pytest.mark.parametrize(
    "raw, expected",
    [
        ({}, {"do_sample": True, "temperature": 0.1, "top_p": 0.95}),
        ({"temperature": "0"}, {"do_sample": False}),
    ],
)
def test_sampling_settings_reach_generate(demo_assets, fresh_cache, offline, monkeypatch, raw, expected):
    import transformers

    seen: list[dict] = []
    real_generate = transformers.GenerationMixin.generate

    def recording_generate(self, *args, **kwargs):
        seen.append(dict(kwargs))
        return real_generate(self, *args, **kwargs)

    monkeypatch.setattr(transformers.GenerationMixin, "generate", recording_generate)
    run = make_run(demo_assets, fresh_cache, limit="2", **raw)
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


def test_one_call_per_benchmark_and_model_loaded_once(demo_assets, fresh_cache, offline, monkeypatch):
    import lm_eval

    calls: list[list[str]] = []
    real = lm_eval.simple_evaluate

    def counting(*args, **kwargs):
        calls.append(list(kwargs["tasks"]))
        return real(*args, **kwargs)

    monkeypatch.setattr(lm_eval, "simple_evaluate", counting)
    run = make_run(demo_assets, fresh_cache, limit="1")
    for item in REGISTRY.get("mmlu").items:
        run.comparison("mmlu", item.id)
    run.comparison("hellaswag", "acc")
    run.comparison("hellaswag", "acc_norm")
    assert calls == [["mmlu"], ["mmlu"], ["hellaswag"], ["hellaswag"]]
    assert run.stats()["model_loads"] == 2 and run.stats()["evaluations"] == 4

    again = make_run(demo_assets, fresh_cache, limit="1")
    again.comparison("mmlu", "overall")
    stats = again.stats()
    counted = {k: stats[k] for k in ("model_loads", "evaluations", "cache_hits", "evaluation_seconds")}
    assert counted == {"model_loads": 0, "evaluations": 0, "cache_hits": 2, "evaluation_seconds": 0.0}
    assert stats["reused"] == {"a": {"mmlu": "cache"}, "b": {"mmlu": "cache"}} and stats["evaluated"] == {}
    assert run.stats()["evaluated"] == {"a": ["mmlu", "hellaswag"], "b": ["mmlu", "hellaswag"]}


def test_cache_key_covers_what_changes_numbers(demo_assets, fresh_cache, offline):
    base = make_run(demo_assets, fresh_cache)
    mbpp = REGISTRY.get("mbpp")
    key = cache_key(base.evaluator.key_parts("a", mbpp))
    variations = [
        {"limit": "3"}, {"num_fewshot": ["mbpp=3"]}, {"temperature": "0.2"}, {"top_p": "0.9"}, {"seed": "7"},
        {"dtype": "bfloat16"}, {"batch_size": "4"},
    ]
    for change in variations:
        assert cache_key(make_run(demo_assets, fresh_cache, **change).evaluator.key_parts("a", mbpp)) != key, change
    assert cache_key(base.evaluator.key_parts("b", mbpp)) != key
    hellaswag = REGISTRY.get("hellaswag")
    # Sampling settings do not change loglikelihood benchmarks, so they do not invalidate them.
    assert cache_key(make_run(demo_assets, fresh_cache, temperature="0.5").evaluator.key_parts("a", hellaswag)) == cache_key(
        base.evaluator.key_parts("a", hellaswag)
    )


def test_corrupt_cache_entry_is_recomputed(demo_assets, fresh_cache, offline):
    run = make_run(demo_assets, fresh_cache, limit="1")
    first = run.evaluator.evaluate("a", "hellaswag")
    path = run.evaluator.cache.path_for(first.key)
    path.write_text(path.read_text()[:100])  # truncated by a crash or a full disk
    again = make_run(demo_assets, fresh_cache, limit="1")
    second = again.evaluator.evaluate("a", "hellaswag")
    assert again.stats()["evaluations"] == 1 and not second.from_cache
    assert second.items == first.items


def test_ctrl_c_keeps_finished_evaluations(demo_assets, fresh_cache, offline, monkeypatch):
    import lm_eval

    real = lm_eval.simple_evaluate

    def interrupted_on_mbpp(*args, **kwargs):
        if kwargs["tasks"] == ["mbpp"]:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(lm_eval, "simple_evaluate", interrupted_on_mbpp)
    run = make_run(demo_assets, fresh_cache, limit="1")
    run.comparison("hellaswag", "acc")
    with pytest.raises(KeyboardInterrupt):
        run.comparison("mbpp", "pass@1")
    monkeypatch.setattr(lm_eval, "simple_evaluate", real)
    resumed = make_run(demo_assets, fresh_cache, limit="1")
    resumed.comparison("hellaswag", "acc")
    resumed.comparison("mbpp", "pass@1")  # the interrupted key's lock was released
    assert resumed.stats()["cache_hits"] == 2 and resumed.stats()["evaluations"] == 2


def test_cuda_out_of_memory_becomes_one_actionable_paragraph():
    from pytest_qwencmp.errors import OutOfMemory
    from pytest_qwencmp.harness import translate_error as _translate

    class OutOfMemoryError(RuntimeError):
        pass

    class FakeLM:
        batch_size = 64

    error = _translate(OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB"), REGISTRY.get("mmlu"), "Qwen/Qwen2.5-7B", FakeLM())
    assert "CUDA ran out of memory evaluating mmlu on Qwen/Qwen2.5-7B with batch size 64" in str(error)
    assert "Lower --batch-size" in str(error) and "Finished evaluations are cached" in str(error)
    assert isinstance(error, OutOfMemory)  # a tensor-parallel group ends on it: its ranks are out of step
    unrelated = ValueError("something else")
    assert _translate(unrelated, REGISTRY.get("mmlu"), "x", FakeLM()) is unrelated


def test_malformed_local_dataset_is_one_clear_paragraph(demo_assets, fresh_cache, offline, tmp_path):
    import shutil

    from pytest_qwencmp.errors import QwencmpError

    data = tmp_path / "data"
    shutil.copytree(demo_assets.data_dir, data)
    validation = next((data / "Rowan" / "hellaswag").rglob("*validation*.jsonl"))
    validation.write_text('{"ind": 1, "ctx": "broken\n{{{ not json at all\n')
    run = make_run(demo_assets, fresh_cache, data_dir=str(data), limit="1")
    with pytest.raises(QwencmpError) as info:
        run.evaluator.evaluate("a", "hellaswag")
    message = info.value.message
    assert "The dataset of hellaswag could not be read" in message and "--data-dir" in message
    assert "\n" not in message
