"""The embedded demo: assets build once, load as HF models and hub-schema datasets, and are reproducible."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from pytest_qwencmp.demo import build as demo, data as demo_data, training as demo_training
from pytest_qwencmp.config.benchmarks import builtin_registry

WEIGHT_FILES = ("model_a/model.safetensors", "model_b/model.safetensors")


@pytest.fixture(scope="module")
def torch_settings_before():
    """A thread count unlike the build's, restored after this module."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(demo_training.BUILD_THREADS + 1)
    yield torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def built(tmp_path_factory, torch_settings_before):
    """This module's own build (the session's ``demo_assets`` is the second one), and the lines it reported."""
    cache_root = tmp_path_factory.mktemp("demo-cache")
    lines: list[str] = []
    assets = demo.build_demo_assets(cache_root, progress=lines.append)
    return cache_root, assets, lines


@pytest.fixture(scope="module")
def assets(built) -> demo.DemoAssets:
    return built[1]


@pytest.fixture(scope="module")
def datasets_cache(tmp_path_factory) -> str:
    """A private datasets cache: the shared one can serve stale data for a reused folder name."""
    return str(tmp_path_factory.mktemp("hf-datasets-cache"))


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load(folder: Path, cache_dir: str, name: str | None = None):
    import datasets

    return datasets.load_dataset(str(folder), name=name, cache_dir=cache_dir)


def test_layout_and_manifest(built, assets):
    cache_root, _, _ = built
    assert assets.root == cache_root / f"demo-{demo.DEMO_VERSION}"
    for model_dir in (assets.model_a, assets.model_b):
        for name in ("config.json", "generation_config.json", "model.safetensors", "tokenizer.json"):
            assert (model_dir / name).is_file()
    for path in (demo_data.MMLU_PATH, demo_data.HELLASWAG_PATH, demo_data.MBPP_PATH):
        assert (assets.data_dir / path / "README.md").is_file()
    manifest = json.loads((assets.root / "manifest.json").read_text())
    assert manifest["version"] == demo.DEMO_VERSION
    for relative in WEIGHT_FILES:
        assert manifest["files"][relative]["sha256"] == sha256(assets.root / relative)
    assert not list(cache_root.glob(".demo-*")), "no staging folder is left behind"


def test_build_restores_torch_settings(built, torch_settings_before):
    import torch

    assert (torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()) == torch_settings_before


def test_models_and_tokenizers_load(assets):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    hidden_sizes = {}
    for model_dir in (assets.model_a, assets.model_b):
        tokenizer = AutoTokenizer.from_pretrained(model_dir)
        model = AutoModelForCausalLM.from_pretrained(model_dir)
        assert type(model).__name__ == "Qwen2ForCausalLM"
        assert model.config.num_hidden_layers == 1
        assert tokenizer.eos_token == demo_training.EOS_TOKEN and tokenizer.eos_token_id is not None
        assert tokenizer.pad_token_id is not None
        assert model.config.vocab_size == len(tokenizer)
        text = "What is the colour of Bako?\nA. red\nAnswer: A"
        ids = tokenizer(text, return_tensors="pt").input_ids
        assert tokenizer.decode(ids[0]) == text
        with torch.no_grad():
            assert model(ids).logits.shape == (1, ids.shape[1], len(tokenizer))
        hidden_sizes[model_dir.name] = model.config.hidden_size
    assert hidden_sizes == {"model_a": 32, "model_b": 128}


def test_loaded_tokenizer_splits_like_the_training_one(assets):
    """Training mirrored lm-eval's tokenization; the saved tokenizer must reproduce it."""
    import random

    from transformers import AutoTokenizer

    rng = random.Random(demo_data.SEED)
    mmlu = demo_data.make_mmlu_docs(rng, demo_data.mmlu_subjects())
    hellaswag = demo_data.make_hellaswag_docs(rng)
    mbpp = demo_data.make_mbpp_docs(rng)
    fewshot = demo_training.mbpp_fewshot_examples()
    items = demo_training.training_items(mmlu, hellaswag, mbpp, fewshot, random.Random(demo_data.SEED + 1))
    trained = demo_training.train_tokenizer(demo_training.tokenizer_corpus(items, mmlu, hellaswag, mbpp))
    loaded = AutoTokenizer.from_pretrained(assets.model_b)
    for item in items[::25]:
        assert demo_training.encode_pair(loaded, item.context, item.continuation) == demo_training.encode_pair(
            trained, item.context, item.continuation
        )


def test_mmlu_schema(assets, datasets_cache):
    import datasets

    folder = assets.data_dir / demo_data.MMLU_PATH
    subjects = builtin_registry().get("mmlu").subjects
    assert len(subjects) == 57
    assert sorted(datasets.get_dataset_config_names(str(folder))) == sorted(subjects)
    for subject in ("abstract_algebra", "high_school_government_and_politics"):
        data = load(folder, datasets_cache, subject)
        assert {split: len(rows) for split, rows in data.items()} == {"test": 8, "dev": 5, "validation": 3}
        for row in data["test"]:
            assert list(row) == ["question", "subject", "choices", "answer"]
            assert isinstance(row["question"], str) and row["question"].endswith("?")
            assert row["subject"] == subject
            assert len(row["choices"]) == 4 and all(isinstance(c, str) for c in row["choices"])
            assert type(row["answer"]) is int and 0 <= row["answer"] <= 3


def test_hellaswag_schema(assets, datasets_cache):
    data = load(assets.data_dir / demo_data.HELLASWAG_PATH, datasets_cache)
    assert len(data["validation"]) == 40 and len(data["train"]) > 0
    fields = ["ind", "activity_label", "ctx_a", "ctx_b", "ctx", "endings", "source_id", "split", "split_type", "label"]
    for row in data["validation"]:
        assert list(row) == fields
        assert type(row["ind"]) is int
        assert isinstance(row["label"], str) and row["label"] in {"0", "1", "2", "3"}
        assert len(row["endings"]) == 4 and len(set(row["endings"])) == 4
        assert row["ctx"] == f"{row['ctx_a']} {row['ctx_b']}"


def test_mbpp_schema_and_reference_code_passes(assets, datasets_cache):
    data = load(assets.data_dir / demo_data.MBPP_PATH, datasets_cache, demo_data.MBPP_CONFIG)
    assert len(data["test"]) == 15
    assert {"train", "validation", "prompt"} <= set(data)
    fields = ["task_id", "text", "code", "test_list", "test_setup_code", "challenge_test_list"]
    programs = []
    for row in data["test"]:
        assert list(row) == fields
        assert type(row["task_id"]) is int
        assert len(row["test_list"]) == 3 and all(t.startswith("assert ") for t in row["test_list"])
        assert row["test_setup_code"] == "" and row["challenge_test_list"] == []
        programs.append(row["code"] + "\n" + "\n".join(row["test_list"]))
    result = subprocess.run([sys.executable, "-c", "\n\n".join(programs)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_prompts_are_rendered_as_lm_eval_renders_them():
    doc = {"question": " Q? ", "subject": "high_school_physics", "choices": ["w", "x", "y", "z"], "answer": 2}
    assert demo_training.mmlu_context(doc) == (
        "The following are multiple choice questions (with answers) about high school physics.\n\n"
        "Q?\nA. w\nB. x\nC. y\nD. z\nAnswer:"
    )
    assert demo_training.mmlu_gold(doc) == " C"
    fewshot = demo_training.mbpp_fewshot_examples()
    assert [shot["task_id"] for shot in fewshot[:2]] == [2, 3]
    mbpp_doc = {"text": "Do it.", "code": "def f():\n  pass", "test_list": ["assert a", "assert b", "assert c"]}
    context = demo_training.mbpp_context(mbpp_doc, fewshot)
    assert context.count("[DONE]\n\n") == 2 and fewshot[2]["code"] not in context
    assert context.endswith(
        "here is your task: Do it. Your code should pass these tests:\n\nassert a\nassert b\nassert c\n[BEGIN]\n"
    )


def test_second_call_reuses(built, assets):
    cache_root, _, _ = built
    weights = assets.model_b / "model.safetensors"
    mtime = weights.stat().st_mtime_ns
    started = time.monotonic()
    again = demo.build_demo_assets(cache_root)
    assert time.monotonic() - started < 1.0
    assert again == assets
    assert weights.stat().st_mtime_ns == mtime


def test_two_builds_are_byte_identical(assets, demo_assets):
    """This module's build (other torch thread settings before it) and the session's, in two folders."""
    other = demo_assets
    assert other.root != assets.root
    for relative in WEIGHT_FILES:
        assert sha256(other.root / relative) == sha256(assets.root / relative)
    assert (other.root / "manifest.json").read_bytes() == (assets.root / "manifest.json").read_bytes()


def fake_build(calls: list):
    def build_into(root: Path, progress=None) -> None:
        calls.append(root)
        time.sleep(0.3)
        (root / "model_a").mkdir()
        (root / "model_a" / "weights.bin").write_bytes(b"weights")

    return build_into


def test_concurrent_callers_build_once(tmp_path, monkeypatch):
    calls: list = []
    monkeypatch.setattr(demo, "build_into", fake_build(calls))
    results: list = []
    threads = [threading.Thread(target=lambda: results.append(demo.build_demo_assets(tmp_path))) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(calls) == 1
    assert len(results) == 4 and len(set(results)) == 1
    assert demo.is_complete(results[0].root)
    assert not list(tmp_path.glob(".demo-*")), "no staging folder is left behind"


def test_incomplete_folder_is_rebuilt_and_rebuild_forces(tmp_path, monkeypatch):
    calls: list = []
    monkeypatch.setattr(demo, "build_into", fake_build(calls))
    root = tmp_path / f"demo-{demo.DEMO_VERSION}"
    (root / "model_a").mkdir(parents=True)
    (root / "model_a" / "half-written").write_bytes(b"")
    assert not demo.is_complete(root)
    demo.build_demo_assets(tmp_path)
    assert len(calls) == 1 and demo.is_complete(root)
    assert not (root / "model_a" / "half-written").exists()
    demo.build_demo_assets(tmp_path)
    assert len(calls) == 1
    demo.build_demo_assets(tmp_path, rebuild=True)
    assert len(calls) == 2 and demo.is_complete(root)
    (root / "model_a" / "weights.bin").write_bytes(b"truncated")
    assert not demo.is_complete(root), "a file whose size changed marks the folder incomplete"


def test_the_build_reports_each_step(built):
    _, _, lines = built
    assert lines[0] == "qwencmp: building the embedded demo (synthetic data and two small models; once, then cached)"
    assert [line.split(" (")[0] for line in lines[1:3]] == ["qwencmp: demo: training model_a", "qwencmp: demo: training model_b"]
    assert lines[-1].startswith("qwencmp: demo: built in ") and len(lines) == 4


def test_waiting_for_another_process_that_builds_the_demo_says_so(tmp_path, monkeypatch):
    calls: list = []
    monkeypatch.setattr(demo, "build_into", fake_build(calls))
    lines: list = []
    builder = threading.Thread(target=lambda: demo.build_demo_assets(tmp_path))
    real_build = demo.build_into

    def slow_build(root, progress=None):
        time.sleep(1.0)
        real_build(root, progress)

    monkeypatch.setattr(demo, "build_into", slow_build)
    builder.start()
    time.sleep(0.3)  # the builder holds the lock now
    demo.build_demo_assets(tmp_path, progress=lines.append)
    builder.join()
    assert len(calls) == 1
    assert lines and lines[0].startswith("qwencmp: waiting for the embedded demo's build: process ")
    assert f"holds {tmp_path / ('demo-' + demo.DEMO_VERSION + '.lock')}" in lines[0]


def test_importing_the_modules_is_cheap():
    code = (
        "import sys, pytest_qwencmp.demo.build, pytest_qwencmp.demo.data, pytest_qwencmp.demo.training; "
        "print(sorted(m for m in ('torch', 'transformers', 'tokenizers') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=Path(__file__).parents[2])
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_the_demo_expectations_state_the_demo_models_true_sizes(demo_assets):
    """The header of evals/demo-expectations.toml names the models' parameter counts; they must be true."""
    import re as _re

    from pytest_qwencmp.models.weights import read_parameter_count
    from pytest_qwencmp.config.settings import ModelRef

    header = (Path(__file__).resolve().parents[2] / "evals" / "demo-expectations.toml").read_text(encoding="utf-8")
    stated = [int(k) * 1000 for k in _re.findall(r"\((?:A|B), (\d+)k\b", header)]
    counted = [read_parameter_count(ModelRef.parse(str(folder), "--model")) for folder in (demo_assets.model_a, demo_assets.model_b)]
    assert len(stated) == 2 and all(abs(s - c) < 500 for s, c in zip(stated, counted)), (stated, counted)
