"""What actually runs: backend, dtype and device planning, and model fingerprints."""

import re

import pytest

from pytest_qwencmp.errors import QwencmpError
from pytest_qwencmp.models.placement import PlacementRequest, plan_execution, spread_gpus
from pytest_qwencmp.config.settings import ModelRef
from pytest_qwencmp.models.weights import model_fingerprint


def plan(**kw):
    args = dict(dtype="float16", backend="auto", device="auto", batch_size="auto", has_cuda=False, has_deepspeed=True)
    args.update(kw)
    return plan_execution(PlacementRequest(**args))


def test_cuda_runs_deepspeed_fp16():
    p = plan(has_cuda=True)
    assert (p.backend, p.dtype, p.device, p.batch_size, p.notice) == ("deepspeed", "float16", "cuda", "auto", "")


def test_cuda_backend_hf_forces_transformers():
    assert plan(has_cuda=True, backend="hf").backend == "hf"


def test_cpu_maps_fp16_to_float32_with_a_notice():
    p = plan()
    assert (p.backend, p.dtype, p.device, p.batch_size) == ("hf", "float32", "cpu", 16)
    assert "float16 requested, but this CPU run used float32" in p.notice


def test_cpu_deepspeed_keeps_bf16():
    p = plan(backend="deepspeed", dtype="bfloat16")
    assert (p.backend, p.dtype, p.notice) == ("deepspeed", "bfloat16", "")


def test_impossible_requests_fail_clearly():
    with pytest.raises(QwencmpError, match="no CUDA device"):
        plan(device="cuda")
    with pytest.raises(QwencmpError, match="DeepSpeed is not installed"):
        plan(has_cuda=True, backend="deepspeed", has_deepspeed=False)


def test_local_fingerprint_follows_content(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(QwencmpError, match="holds no weights"):
        model_fingerprint(ModelRef(str(tmp_path)))
    (tmp_path / "model.safetensors").write_bytes(b"abc")
    first = model_fingerprint(ModelRef(str(tmp_path)))
    assert first == model_fingerprint(ModelRef(str(tmp_path)))
    (tmp_path / "model.safetensors").write_bytes(b"abd")
    assert model_fingerprint(ModelRef(str(tmp_path))) != first


def test_hub_fingerprint_names_revision():
    assert model_fingerprint(ModelRef("Qwen/Qwen2.5-7B", "v1")).startswith("hub:Qwen/Qwen2.5-7B@v1")


def test_xdist_workers_pin_one_gpu_each():
    devices = [plan(has_cuda=True, worker_index=i, cuda_devices=4).device for i in range(6)]
    assert devices == ["cuda:0", "cuda:1", "cuda:2", "cuda:3", "cuda:0", "cuda:1"]
    assert plan(has_cuda=True, worker_index=3, cuda_devices=1).device == "cuda"
    assert plan(has_cuda=True, worker_index=1, cuda_devices=4, device="cuda:0").device == "cuda:0"
    assert plan(worker_index=1, cuda_devices=0).device == "cpu"


def test_tensor_parallel_gives_each_xdist_worker_its_own_gpu_slice():
    slices = [plan(has_cuda=True, cuda_devices=8, tensor_parallel=4, worker_index=w) for w in (None, 0, 1, 2)]
    assert [p.gpus for p in slices] == [(0, 1, 2, 3), (0, 1, 2, 3), (4, 5, 6, 7), (0, 1, 2, 3)]
    assert [p.device for p in slices[:3]] == ["cuda:0,1,2,3", "cuda:0,1,2,3", "cuda:4,5,6,7"]
    p = slices[0]
    assert (p.backend, p.dtype, p.tensor_parallel, p.batch_size) == ("deepspeed", "float16", 4, 16)
    assert p.notice == "batch size 16: with --tp 4 lm-eval does not detect it (the ranks must stay in step); set --batch-size N to tune"
    explicit = plan(has_cuda=True, cuda_devices=8, tensor_parallel=4, batch_size=64)
    assert (explicit.batch_size, explicit.notice) == (64, "")
    assert p.summary == "deepspeed, float16, cuda:0,1,2,3, tensor parallel x4"
    assert plan(has_cuda=True, cuda_devices=3, tensor_parallel=2, worker_index=1).gpus == (2, 0)


def test_tensor_parallel_on_cpu_runs_deepspeed_in_float32_with_a_notice():
    p = plan(tensor_parallel=2)
    assert (p.backend, p.dtype, p.device, p.gpus, p.batch_size) == ("deepspeed", "float32", "cpu", (), 16)
    assert "float16 requested, but this CPU run used float32 (deepspeed backend)" in p.notice


@pytest.mark.parametrize(
    "kw, fragment",
    [
        (dict(backend="hf"), "--tp 2 splits the model across processes with DeepSpeed, but --backend hf"),
        (dict(has_deepspeed=False), "--tp 2 needs DeepSpeed, which is not installed"),
        (dict(has_cuda=True, cuda_devices=1), "--tp 2 needs 2 GPUs but torch sees 1"),
        (dict(has_cuda=True, cuda_devices=4, device="cuda:1"), "--device cuda:1 names one GPU, but --tp 2 needs 2"),
        (dict(device="cuda"), "no CUDA device"),
    ],
)
def test_impossible_tensor_parallel_requests_fail_clearly(kw, fragment):
    with pytest.raises(QwencmpError, match=re.escape(fragment)):
        plan(tensor_parallel=2, **kw)


def test_split_and_whole_models_get_their_own_gpus_when_there_are_enough():
    assert spread_gpus({"a": 1, "b": 4}, 8) == {"a": (0,), "b": (1, 2, 3, 4)}
    assert spread_gpus({"a": 2, "b": 2}, 8, worker_index=1) == {"a": (4, 5), "b": (6, 7)}
    assert spread_gpus({"a": 1, "b": 4}, 4) == {"a": (0,), "b": (0, 1, 2, 3)}  # too few: they share
    whole = plan(has_cuda=True, cuda_devices=8, gpus=(0,))
    split = plan(has_cuda=True, cuda_devices=8, tensor_parallel=4, gpus=(1, 2, 3, 4))
    assert (whole.device, split.device, split.gpus) == ("cuda:0", "cuda:1,2,3,4", (1, 2, 3, 4))
    assert plan(has_cuda=True, cuda_devices=8, device="cuda:5", gpus=(0,)).device == "cuda:5"  # explicit wins
    assert plan(gpus=(0,)).device == "cpu"


def test_parameter_count_is_read_from_safetensors_headers_and_unknown_when_unreadable(demo_assets, tmp_path):
    import shutil

    from pytest_qwencmp.models.weights import read_parameter_count

    assert read_parameter_count(ModelRef(str(demo_assets.model_b))) == 690_688
    broken = tmp_path / "broken"
    shutil.copytree(demo_assets.model_b, broken)
    (broken / "model.safetensors").write_bytes((broken / "model.safetensors").read_bytes()[:1000])
    assert read_parameter_count(ModelRef(str(broken))) is None
    assert read_parameter_count(ModelRef("Qwen/Not-Downloaded-Here")) is None  # not in the local HF cache
