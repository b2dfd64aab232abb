"""SandboxedCodeEval keeps HF code_eval's semantics; lm-eval's real MBPP task uses it."""

from __future__ import annotations

import itertools
import json
import sys
import textwrap
import time

import numpy as np
import pytest

from pytest_qwencmp.lmeval.code_eval import (
    SandboxedCodeEval,
    estimate_pass_at_k,
    install_sandboxed_code_eval,
    mbpp_utils_path,
)
from pytest_qwencmp.errors import QwencmpError
from pytest_qwencmp.sandbox.policy import Limits

MODULE = "lm_eval.tasks.mbpp.utils"


def hf_estimate_pass_at_k(num_samples, num_correct, k):
    """HF evaluate's metrics/code_eval/code_eval.py estimator, verbatim."""

    def estimator(n: int, c: int, k: int) -> float:
        if n - c < k:
            return 1.0
        return 1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1))

    if isinstance(num_samples, int):
        num_samples_it = itertools.repeat(num_samples, len(num_correct))
    else:
        assert len(num_samples) == len(num_correct)
        num_samples_it = iter(num_samples)
    return np.array([estimator(int(n), int(c), k) for n, c in zip(num_samples_it, num_correct)])


@pytest.mark.parametrize(
    "n, c, k",
    [(1, 0, 1), (1, 1, 1), (10, 3, 1), (10, 3, 5), (10, 0, 5), (10, 10, 10),
     (20, 1, 10), (100, 37, 10), (200, 13, 100), (5, 4, 3)],
)
def test_pass_at_k_estimator_matches_hf(n, c, k):
    assert estimate_pass_at_k(n, c, k) == pytest.approx(
        hf_estimate_pass_at_k([n], [c], k)[0], rel=1e-12, abs=1e-15
    )


def test_pass_at_1_is_the_fraction_correct():
    assert estimate_pass_at_k(8, 3, 1) == pytest.approx(3 / 8)


ADD = "def add(a, b):\n    return a + b"
MUL = "def add(a, b):\n    return a * b"
BAD = "def add(a, b) return a"


def test_compute_has_hf_semantics_and_return_shape():
    code_eval = SandboxedCodeEval(Limits(wall_seconds=5))
    references = ["assert add(2, 3) == 5", "assert add(2, 2) == 4", "assert add(1, 1) == 3"]
    predictions = [[ADD, MUL], [MUL, ADD], [BAD, ADD]]
    pass_at_k, results = code_eval.compute(
        references=references, predictions=predictions, k=[1, 2, 10]
    )
    # Per task: add(2,3): [pass, fail]; add(2,2): [pass, pass] (2*2 == 2+2); add(1,1)==3: none.
    assert set(pass_at_k) == {"pass@1", "pass@2"}  # no pass@10 with 2 candidates, like HF
    correct = [1, 2, 0]
    for kk in (1, 2):
        expected = hf_estimate_pass_at_k(np.array([2, 2, 2]), np.array(correct), kk).mean()
        assert pass_at_k[f"pass@{kk}"] == pytest.approx(expected)
    assert pass_at_k["pass@1"] == pytest.approx((0.5 + 1.0 + 0.0) / 3)

    assert sorted(results) == [0, 1, 2]
    for task_id, entries in results.items():
        assert [cid for cid, _ in entries] == [0, 1]
        for cid, entry in entries:
            assert entry["task_id"] == task_id and entry["completion_id"] == cid
            assert isinstance(entry["passed"], bool)
            assert entry["result"] in {"passed", "failed", "timeout", "killed", "error"}
    assert [e["passed"] for _, e in results[0]] == [True, False]
    assert [e["result"] for _, e in results[2]] == ["failed", "failed"]
    assert code_eval.calls == 1 and code_eval.programs_run == 6


def test_compute_applies_hf_timeout_per_program():
    code_eval = SandboxedCodeEval()
    start = time.monotonic()
    pass_at_k, results = code_eval.compute(
        references=["assert slow() == 1"],
        predictions=[["import time\ndef slow():\n    time.sleep(30)\n    return 1"]],
        k=[1],
        timeout=0.5,
    )
    assert time.monotonic() - start < 5
    assert pass_at_k == {"pass@1": 0.0}
    assert results[0][0][1]["result"] == "timeout"
    assert code_eval.limits_for(3.0).wall_seconds == 4.0  # HF waits timeout + 1 s too


def test_compute_rejects_malformed_input():
    code_eval = SandboxedCodeEval()
    with pytest.raises(ValueError):
        code_eval.compute(references=["assert True"], predictions=[])
    with pytest.raises(TypeError):
        code_eval.compute(references=["assert True"], predictions=["pass"])
    with pytest.raises(QwencmpError):
        SandboxedCodeEval(workers=0)


# ----------------------------------------------------------------- lm-eval wiring
@pytest.fixture
def offline(offline, monkeypatch):
    """conftest's offline environment, and model-written code not allowed to run until a test allows it."""
    monkeypatch.delenv("HF_ALLOW_CODE_EVAL", raising=False)


@pytest.fixture
def restore_mbpp_module():
    """Leave lm-eval's cached MBPP module as this test found it."""
    saved = sys.modules.get(MODULE)
    saved_metric = getattr(saved, "pass_at_k", None)
    yield
    if saved is None:
        sys.modules.pop(MODULE, None)
    else:
        sys.modules[MODULE] = saved
        saved.pass_at_k = saved_metric


def test_install_routes_the_real_mbpp_metric(offline, restore_mbpp_module):
    import evaluate
    import lm_eval.tasks
    from lm_eval.tasks._yaml_loader import load_yaml

    sys.modules.pop(MODULE, None)  # force a fresh import of utils.py
    real_load = evaluate.load
    code_eval = SandboxedCodeEval()
    install_sandboxed_code_eval(code_eval)
    assert evaluate.load is real_load  # the patch is undone
    assert code_eval.calls == 1  # utils.py's import-time self-test ran through it
    module = sys.modules[MODULE]
    assert module.pass_at_k is code_eval

    mbpp_dir = mbpp_utils_path().parent
    tm = lm_eval.tasks.TaskManager(include_defaults=False, include_path=[str(mbpp_dir)])
    entry = tm.task_index["mbpp"]
    # How lm-eval's TaskFactory loads a task's config (resolving !function).
    config = load_yaml(entry.yaml_path, resolve_func=True)
    (metric,) = config["metric_list"]
    pass_at_1 = metric["metric"]
    assert pass_at_1 is module.pass_at_1

    assert pass_at_1(references=["assert add(2, 3) == 5"], predictions=[[ADD]]) == 1.0
    assert pass_at_1(references=["assert add(2, 3) == 5"], predictions=[[MUL]]) == 0.0
    assert pass_at_1(references="assert add(2, 3) == 5", predictions=[ADD]) == 1.0
    assert code_eval.calls == 4

    # Already loaded (here: by the first install): a second install re-routes it.
    other = SandboxedCodeEval()
    install_sandboxed_code_eval(other)
    assert sys.modules[MODULE] is module and module.pass_at_k is other
    assert other.calls == 0  # the cached module was reused, not re-imported
    assert pass_at_1(references=["assert add(1, 1) == 2"], predictions=[[ADD]]) == 1.0
    assert other.calls == 1 and code_eval.calls == 4


def test_real_mbpp_task_scores_through_the_sandbox(offline, restore_mbpp_module, tmp_path):
    """Build lm-eval's real MBPP task (its YAML included as is, only the data
    local) and score generations with the task's own process_results."""
    import lm_eval.tasks

    mbpp_yaml = mbpp_utils_path().parent / "mbpp.yaml"
    data = tmp_path / "mbpp.jsonl"
    doc = {
        "task_id": 11,
        "text": "Write a function add_one.",
        "code": "def add_one(x):\n    return x + 1",
        "test_list": ["assert add_one(1) == 2", "assert add_one(2) == 3", "assert add_one(-1) == 0"],
        "test_setup_code": "",
        "challenge_test_list": [],
    }
    data.write_text(json.dumps(doc) + "\n")
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    (tasks / "mbpp_local.yaml").write_text(
        textwrap.dedent(
            f"""\
            include: {mbpp_yaml}
            task: mbpp_local
            dataset_path: json
            dataset_name: null
            dataset_kwargs:
              data_files:
                test: {data}
              cache_dir: {tmp_path / "hf-cache"}
            """
        )
    )
    code_eval = SandboxedCodeEval()
    install_sandboxed_code_eval(code_eval)
    tm = lm_eval.tasks.TaskManager(include_defaults=False, include_path=[str(tasks)])
    task = tm.load(["mbpp_local"])["tasks"]["mbpp_local"]
    (loaded,) = list(task.test_docs())
    calls = code_eval.calls
    good = task.process_results(loaded, [["def add_one(x):\n    return x + 1"]])
    wrong = task.process_results(loaded, [["def add_one(x):\n    return x"]])
    hostile = task.process_results(loaded, [["import os\nos._exit(0)"]])
    assert good == {"pass_at_1": 1.0}
    assert wrong == {"pass_at_1": 0.0}
    assert hostile == {"pass_at_1": 0.0}
    assert code_eval.calls == calls + 3
