"""The plugin's numbers equal the `lm_eval` CLI's on the same model and data."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from pytest_qwencmp.config.benchmarks import builtin_registry
from pytest_qwencmp.config.expectations import NO_EXPECTATIONS
from pytest_qwencmp.lmeval.tasks import TaskSource
from pytest_qwencmp.session import ComparisonRun
from pytest_qwencmp.config.settings import parse_settings

REGISTRY = builtin_registry()


def cli_results(model_dir, override_dir, task: str, out_dir) -> dict:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    command = [
        sys.executable, "-m", "lm_eval", "run", "--model", "hf",
        "--model_args", f"pretrained={model_dir},dtype=float32", "--tasks", task,
        "--include_path", str(override_dir), "--batch_size", "16", "--device", "cpu",
        "--num_fewshot", "0", "--seed", "1234", "--output_path", str(out_dir),
    ]
    completed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert completed.returncode == 0, completed.stderr[-3000:]
    (result_file,) = out_dir.rglob("results_*.json")
    return json.loads(result_file.read_text())["results"]


PARITY_BENCHMARKS = ("mmlu", "hellaswag")


@pytest.fixture(scope="module")
def both_sides(demo_assets, demo_cache, tmp_path_factory):
    """The plugin's lm-eval results and the CLI's (one `lm_eval run` over both benchmarks), on model A."""
    work = tmp_path_factory.mktemp("parity")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_HUB_OFFLINE", "1")
        patch.setenv("HF_DATASETS_OFFLINE", "1")
        settings = parse_settings(
            {"model_a": str(demo_assets.model_a), "model_b": str(demo_assets.model_b),
             "data_dir": str(demo_assets.data_dir), "cache_dir": str(work / "cache")},
            REGISTRY.names(),
        )
        run = ComparisonRun(settings, REGISTRY, NO_EXPECTATIONS)
        plugin = {name: run.evaluator.evaluate("a", name).lm_eval_results["results"] for name in PARITY_BENCHMARKS}
        for name in PARITY_BENCHMARKS:  # the same override folders the plugin builds, one per benchmark
            TaskSource(REGISTRY.get(name), demo_assets.data_dir).build_manager(work / "tasks")
        cli = cli_results(demo_assets.model_a, work / "tasks", ",".join(PARITY_BENCHMARKS), work / "out")
    return plugin, cli


@pytest.mark.parametrize("benchmark", PARITY_BENCHMARKS)
def test_plugin_scores_equal_lm_eval_cli(benchmark, both_sides):
    plugin_results, cli = both_sides
    plugin = plugin_results[benchmark]
    metrics = ("acc,none", "acc_stderr,none", "acc_norm,none", "acc_norm_stderr,none")
    compared = 0
    for task, values in plugin.items():
        assert task in cli, task
        for metric in metrics:
            if metric in values:
                assert values[metric] == cli[task][metric], (task, metric)
                compared += 1
    assert compared >= (58 * 2 if benchmark == "mmlu" else 4)
