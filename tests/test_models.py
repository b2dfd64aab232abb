"""What actually runs: backend, dtype and device planning, and model fingerprints."""

import pytest

from pytest_qwencmp.errors import QwencmpError
from pytest_qwencmp.models import model_fingerprint, plan_execution
from pytest_qwencmp.settings import ModelRef


def plan(**kw):
    args = dict(dtype="float16", backend="auto", device="auto", batch_size="auto", has_cuda=False, has_deepspeed=True)
    args.update(kw)
    return plan_execution(**args)


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
