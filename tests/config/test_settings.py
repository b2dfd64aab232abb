"""Option validation: every bad value is one clear paragraph naming the option."""

from pathlib import Path

import pytest

from pytest_qwencmp.errors import QwencmpError
from pytest_qwencmp.config.settings import GenerationSettings, ModelRef, parse_settings

KNOWN = ("mmlu", "hellaswag", "mbpp")


def settings(**raw):
    raw.setdefault("model_a", "Qwen/Qwen2.5-1.5B")
    raw.setdefault("model_b", "Qwen/Qwen2.5-7B")
    return parse_settings(raw, KNOWN)


def test_defaults_follow_the_reference_study():
    s = settings()
    assert s.dtype == "float16"
    assert s.generation == GenerationSettings(0.1, 0.95)
    assert s.generation.as_gen_kwargs() == {"do_sample": True, "temperature": 0.1, "top_p": 0.95}
    assert s.backend == "auto" and s.batch_size == "auto" and s.limit is None
    assert s.model_a == ModelRef("Qwen/Qwen2.5-1.5B") and s.model_b.label == "Qwen/Qwen2.5-7B"


def test_zero_temperature_means_greedy():
    assert settings(temperature="0").generation.as_gen_kwargs() == {"do_sample": False}


def test_revision_from_at_sign_and_option():
    assert settings(model_a="Qwen/Qwen2.5-1.5B@abc123").model_a == ModelRef("Qwen/Qwen2.5-1.5B", "abc123")
    assert settings(revision_b="v1").model_b.revision == "v1"
    with pytest.raises(QwencmpError, match="keep one"):
        settings(model_a="Qwen/Qwen2.5-1.5B@x", revision_a="y")


def test_local_directory_is_a_model(tmp_path):
    ref = settings(model_a=str(tmp_path)).model_a
    assert ref.is_local and ref.label == tmp_path.name


def test_a_regular_file_given_as_model_says_it_is_a_file(tmp_path):
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(b"x")
    with pytest.raises(QwencmpError) as info:
        settings(model_b=str(weights))
    message = info.value.message
    assert f"--model-b {str(weights)!r} is a file, not a model directory" in message
    assert repr(str(tmp_path)) in message and "no such directory" not in message


@pytest.mark.parametrize(
    "raw, fragment",
    [
        ({"model_a": "./no/such/dir"}, "--model-a './no/such/dir' looks like a path"),
        ({"model_b": "not a model!"}, "--model-b 'not a model!' is neither"),
        ({"dtype": "int3"}, "--dtype 'int3' is not supported"),
        ({"backend": "vllm"}, "--backend 'vllm' is not one of"),
        ({"device": "tpu"}, "--device 'tpu'"),
        ({"batch_size": "0"}, "--batch-size must be at least 1"),
        ({"batch_size": "big"}, "--batch-size must be a whole number"),
        ({"limit": "-3"}, "--limit must be at least 1"),
        ({"temperature": "hot"}, "--temperature must be a number"),
        ({"top_p": "1.5"}, "--top-p must be between"),
        ({"top_p": "0"}, "--top-p must be between"),
        ({"num_fewshot": ["mbpp"]}, "must look like BENCHMARK=N"),
        ({"num_fewshot": ["gsm8k=5"]}, "unknown benchmark 'gsm8k'"),
        ({"num_fewshot": ["mbpp=-1"]}, "must be at least 0"),
        ({"benchmarks": "mmlu,arc"}, "unknown benchmark(s) arc"),
        ({"data_dir": "/no/such/data"}, "--data-dir '/no/such/data' does not exist"),
        ({"expectations": "/no/such.toml"}, "does not exist; fix --expectations"),
        ({"demo": True, "models_from_ini": False}, "--demo brings its own two models"),
        ({"demo": True, "models_from_ini": True, "data_dir": "/no/such/data"}, "--demo brings its own data, so --data-dir=/no/such/data would not be read"),
        ({"tp": "0"}, "--tp must be at least 1"),
        ({"tp_b": "two"}, "--tp-b must be a whole number"),
    ],
)
def test_bad_values_fail_with_one_paragraph(raw, fragment):
    with pytest.raises(QwencmpError) as info:
        settings(**raw)
    message = info.value.message
    assert fragment in message
    assert "\n" not in message


def test_tensor_parallel_per_side_overrides_the_shared_size():
    assert (settings().tensor_parallel("a"), settings().tensor_parallel("b")) == (1, 1)
    both = settings(tp="4")
    assert (both.tensor_parallel("a"), both.tensor_parallel("b")) == (4, 4)
    split = settings(tp="2", tp_b="8")
    assert (split.tensor_parallel("a"), split.tensor_parallel("b")) == (2, 8)
    only_b = settings(tp_b="2")
    assert (only_b.tensor_parallel("a"), only_b.tensor_parallel("b")) == (1, 2)


def test_fewshot_and_benchmark_subsets_parse():
    s = settings(num_fewshot=["mbpp=3", "mmlu=5"], benchmarks="mmlu, hellaswag")
    assert s.shots_for("mbpp", 2) == 3 and s.shots_for("hellaswag", 0) == 0
    assert s.benchmarks == ("mmlu", "hellaswag")


def test_missing_models_are_reported_when_needed():
    s = parse_settings({}, KNOWN)
    with pytest.raises(QwencmpError) as info:
        s.model("a")
    assert info.value.message.startswith("Two models are needed to compare: pass --model-a and --model-b")
    assert "pytest-qwencmp" not in info.value.message  # the plugin prefixes its name once


def test_demo_ignores_an_ini_files_data_dir(tmp_path):
    """--data-dir on the command line with --demo is refused (the demo reads its own data); the ini file's is ignored."""
    s = parse_settings({"demo": True, "data_dir": str(tmp_path), "data_dir_from_ini": True}, KNOWN)
    assert s.demo and s.data_dir is None


def test_a_missing_path_is_called_a_path_to_check(tmp_path, monkeypatch):
    """A name that is a path (./x, a/b/c, or out/x where out/ exists) is not suggested as a hub id: check the path."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "out").mkdir()
    for given in ("./my-model", "out/my-model", "a/b/c"):
        with pytest.raises(QwencmpError) as info:
            settings(model_b=given)
        message = info.value.message
        assert f"--model-b {given!r} looks like a path, but no such folder exists" in message, message
        assert f"relative paths start at {tmp_path}" in message and "Check the path" in message
        assert "Qwen/" not in message  # no hub id is offered for a folder that is not there
    assert settings(model_b="org/name").model_b.name_or_path == "org/name"  # org/ is no folder here: a hub id


def test_demo_drops_models_and_paths_resolve(tmp_path):
    s = parse_settings({"demo": True, "cache_dir": str(tmp_path / "c")}, KNOWN)
    assert s.demo and s.model_a is None
    assert s.cache_dir == (tmp_path / "c").resolve()
    assert isinstance(s.cache_dir, Path)


def test_samples_per_generation_benchmark():
    generates = {"mmlu": False, "hellaswag": False, "mbpp": True}
    parse = lambda **raw: parse_settings({"model_a": "a/b", "model_b": "c/d", **raw}, KNOWN, generates)  # noqa: E731
    s = parse(samples=["mbpp=5"])
    assert s.samples == (("mbpp", 5),) and s.samples_for("mbpp") == 5 and s.samples_for("mmlu") == 1
    assert parse(samples=["mbpp=1"]).samples == ()  # one sample is the default: nothing to record
    for raw, fragment in (
        (dict(samples=["mmlu=3"]), "--samples mmlu=3: mmlu is scored by log-likelihood"),
        (dict(samples=["mbpp=3"], temperature="0"), "--samples mbpp=3 with --temperature 0: greedy decoding"),
        (dict(samples=["mbpp"]), "--samples 'mbpp' must look like BENCHMARK=N, for example mbpp=5"),
        (dict(samples=["mbpp=0"]), "--samples mbpp must be at least 1"),
        (dict(samples=["arc=2"]), "--samples names unknown benchmark 'arc'"),
    ):
        with pytest.raises(QwencmpError) as info:
            parse(**raw)
        assert fragment in info.value.message


def test_sequential_options():
    assert not settings().sequential and settings().sequential_looks == (0.125, 0.25, 0.5, 1.0)
    s = settings(sequential=True, sequential_looks="1/4, 1/2, 1")
    assert s.sequential and s.sequential_looks == (0.25, 0.5, 1.0)
    assert settings(sequential="true").sequential and not settings(sequential="false").sequential  # the ini key
    for bad in ("0.5,0.25,1", "0.25,0.5", "0,1", "a,1", "1/0,1", "0.5,1.5"):
        with pytest.raises(QwencmpError, match="--sequential-looks"):
            settings(sequential_looks=bad)
    with pytest.raises(QwencmpError, match="--sequential"):
        settings(sequential="maybe")
