"""Tensor parallelism through a really launched group: ranks, gloo and DeepSpeed AutoTP on CPU.

No GPU here, so the group runs on CPU (DeepSpeed supports fp32 there); the
launch, the rank loop, the request/reply protocol, the sharding and the
failure paths are the same code a CUDA run uses.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import time
from pathlib import Path

import pytest

from pytest_qwencmp.errors import QwencmpError
from pytest_qwencmp.session import ComparisonRun
from pytest_qwencmp.models.tensor_parallel import (
    ADDRESS_ENV,
    AUTHKEY_ENV,
    GroupFailed,
    ProcessGroup,
    prune_logs,
    rank_environment,
    shm_extension_lock,
)

SCHEMA = Path(__file__).resolve().parents[2] / "pytest_qwencmp" / "report" / "results.schema.json"


def deepspeed_run(make_run, cache: Path, **raw) -> ComparisonRun:
    """A run of the demo (conftest's ``make_run``) through DeepSpeed on CPU, batch 8: where every run here starts."""
    return make_run(cache, **{"backend": "deepspeed", "device": "cpu", "batch_size": "8", **raw})


def test_rank_environment_is_torch_distributed_and_maps_gpus_through_visible_devices():
    base = {"CUDA_VISIBLE_DEVICES": "4,5,6,7", "PATH": "/bin"}
    env = rank_environment(base, 1, 2, (2, 3), 29511, "/tmp/x/sock", b"\x01\x02")
    assert env["CUDA_VISIBLE_DEVICES"] == "6,7"
    assert {k: env[k] for k in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_SIZE", "MASTER_ADDR", "MASTER_PORT")} == {
        "RANK": "1", "LOCAL_RANK": "1", "WORLD_SIZE": "2", "LOCAL_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29511"}
    assert (env[ADDRESS_ENV], env[AUTHKEY_ENV], env["PATH"]) == ("/tmp/x/sock", "0102", "/bin")
    assert env["QWENCMP_TP_PARENT_PID"] == str(os.getpid())
    assert rank_environment({}, 0, 2, (0, 1), 1, "a", b"k")["CUDA_VISIBLE_DEVICES"] == "0,1"
    assert "CUDA_VISIBLE_DEVICES" not in rank_environment({}, 0, 2, (), 1, "a", b"k")
    assert base == {"CUDA_VISIBLE_DEVICES": "4,5,6,7", "PATH": "/bin"}  # not modified


def test_an_eight_gpu_runner_puts_each_model_on_its_own_gpus(monkeypatch, demo_assets, tmp_path, make_run):
    import pytest_qwencmp.models.placement as placement_module

    monkeypatch.setattr(placement_module, "cuda_available", lambda: True)
    monkeypatch.setattr(placement_module, "cuda_device_count", lambda: 8)
    monkeypatch.setattr(placement_module, "deepspeed_available", lambda: True)
    run = deepspeed_run(make_run, tmp_path, device="auto", tp_b="4")
    plans = run.plan_models()
    assert (plans["a"].device, plans["a"].tensor_parallel) == ("cuda:0", 1)
    assert (plans["b"].device, plans["b"].gpus, plans["b"].tensor_parallel) == ("cuda:1,2,3,4", (1, 2, 3, 4), 4)
    assert plans["a"].dtype == plans["b"].dtype == "float16"
    assert type(run.handle("b")).__name__ == "TensorParallelHandle" and type(run.handle("a")).__name__ == "ModelHandle"


def read_line_within(stream, seconds: float) -> str:
    """The next line of a child's pipe, or "" after ``seconds`` (readline alone would wait forever)."""
    import selectors

    selector = selectors.DefaultSelector()
    selector.register(stream, selectors.EVENT_READ)
    try:
        return stream.readline() if selector.select(timeout=seconds) else ""
    finally:
        selector.close()


def test_a_stale_extension_lock_is_named_at_once_and_start_up_times_out(tmp_path, monkeypatch):
    """Ranks that never come up (here: they sleep, as they do behind a stale torch_extensions lock)."""
    import sys

    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path / "extensions"))
    lock = shm_extension_lock()
    assert lock == tmp_path / "extensions" / "deepspeed_shm_comm" / "lock"
    lock.write_text("")  # left by a build interrupted with Ctrl-C
    os.utime(lock, (time.time() - 3600, time.time() - 3600))
    lines = []
    group = ProcessGroup(2, (), tmp_path / "logs", "model_b", progress=lines.append, start_timeout=2,
                         command=[sys.executable, "-c", "import time; time.sleep(120)"])
    started = time.monotonic()
    with pytest.raises(GroupFailed) as info:
        group.start()
    assert time.monotonic() - started < 15
    assert lines[0].startswith("qwencmp: starting 2 tensor-parallel processes for model 'model_b' (DeepSpeed set-up, up to 2s)")
    assert f"the lock file {lock} exists since" in lines[0] and "delete that file" in lines[0]
    message = info.value.message
    assert "The tensor-parallel group for model 'model_b' did not start within 2s" in message
    assert f"Most likely cause: the lock file {lock} exists since" in message and "\n" not in message
    assert group.ranks and all(rank.poll() is not None for rank in group.ranks)  # stopped, nothing left waiting


@pytest.mark.slow  # launches a rank group and kills its parent
def test_idle_ranks_exit_when_the_pytest_process_that_launched_them_is_killed(tmp_path):
    # Idle ranks see the socket close; busy ones get SIGTERM from PR_SET_PDEATHSIG (not observable here).
    import subprocess
    import sys

    launcher = subprocess.Popen(
        [sys.executable, "-c", (
            "import sys, time; from pathlib import Path\n"
            "from pytest_qwencmp.models.tensor_parallel import ProcessGroup\n"
            f"group = ProcessGroup(2, (), Path({str(tmp_path)!r}), 'm', start_timeout=120)\n"
            "group.start()\n"
            "print('PIDS', *(r.pid for r in group.ranks), flush=True)\n"
            "time.sleep(600)\n"
        )],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        line = ""
        deadline = time.monotonic() + 150  # the group's own start-up bound is 120 s
        while not line.startswith("PIDS"):  # rank 0 shares this stdout
            line = read_line_within(launcher.stdout, max(0.0, deadline - time.monotonic()))
            assert line, "the launcher exited early, or printed nothing within its start-up bound"
        pids = [int(p) for p in line.split()[1:]]
        assert len(pids) == 2 and all(Path(f"/proc/{pid}").exists() for pid in pids)
    finally:
        launcher.kill()  # SIGKILL: no cleanup code runs in the parent
        launcher.wait()
    deadline = time.monotonic() + 30
    while any(Path(f"/proc/{pid}").exists() for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(Path(f"/proc/{pid}").exists() for pid in pids)


def test_old_group_logs_are_pruned_newest_kept(tmp_path):
    prune_logs(tmp_path / "absent", keep=2)  # nothing to do
    for age, name in enumerate(["newest", "middle", "oldest"]):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "rank-1.log").write_text("x")
        os.utime(folder, (time.time() - 100 * age, time.time() - 100 * age))
    prune_logs(tmp_path, keep=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["middle", "newest"]


@pytest.mark.slow  # two rank groups on CPU (gloo)
def test_split_model_scores_what_the_whole_model_scores(demo_assets, demo_cache, offline, tmp_path, make_run):
    whole = deepspeed_run(make_run, tmp_path / "whole", limit="6")
    split = deepspeed_run(make_run, tmp_path / "split", limit="6", tp_b="2")
    try:
        for benchmark in ("hellaswag", "mbpp"):
            expected = whole.evaluator.evaluate("b", benchmark)
            got = split.evaluator.evaluate("b", benchmark)
            assert [s.item_id for s in got.items] == [s.item_id for s in expected.items]
            for ours, theirs in zip(got.items, expected.items):
                assert ours.doc_keys == theirs.doc_keys and ours.per_doc == theirs.per_doc
                assert ours.value == theirs.value
            assert (got.model["backend"], got.model["tensor_parallel"], got.model["device"]) == ("deepspeed", 2, "cpu")
            assert expected.model["tensor_parallel"] == 1
        assert split.stats()["model_loads"] == 1  # one group, loaded once, served both benchmarks
        group = split.handle("b")._group
        ranks, folder = list(group.ranks), group._folder
        assert len(ranks) == 2 and all(rank.poll() is None for rank in ranks)
        # DeepSpeed's AutoTP split the layers on rank 1 too (rank 0 writes to the terminal).
        assert "AutoTP" in (group.log_dir / "rank-1.log").read_text()
    finally:
        split.close()
    assert all(rank.poll() is not None for rank in ranks)
    assert not folder.exists()  # the private socket folder is removed
    split.close()  # twice is harmless


@pytest.mark.slow  # two rank groups
def test_a_rank_that_dies_fails_the_side_in_one_paragraph_and_keeps_finished_results(demo_assets, offline, tmp_path, make_run):
    cache = tmp_path / "cache"
    run = deepspeed_run(make_run, cache, limit="3", tp_b="2")
    try:
        finished = run.evaluator.evaluate("b", "hellaswag")
        group = run.handle("b")._group
        ranks = list(group.ranks)
        os.kill(ranks[1].pid, signal.SIGKILL)
        with pytest.raises(QwencmpError) as info:
            run.evaluator.evaluate("b", "mbpp")
        message = info.value.message
        assert "tensor-parallel group of 2 processes for model 'model_b' ended while evaluating mbpp: " in message
        assert "rank 1 with code -9" in message and str(group.log_dir) in message and "\n" not in message
        started = time.monotonic()
        with pytest.raises(QwencmpError) as again:
            run.evaluator.evaluate("b", "mmlu")
        assert again.value.message == message and time.monotonic() - started < 5
        assert all(rank.poll() is not None for rank in ranks)
    finally:
        run.close()
    resumed = deepspeed_run(make_run, cache, limit="3", tp_b="2")
    assert resumed.evaluator.evaluate("b", "hellaswag").items == finished.items
    stats = resumed.stats()
    assert {k: stats[k] for k in ("model_loads", "evaluations", "cache_hits", "evaluation_seconds")} == {
        "model_loads": 0, "evaluations": 0, "cache_hits": 1, "evaluation_seconds": 0.0
    }
    assert stats["reused"] == {"b": {"hellaswag": "cache"}}


@pytest.mark.slow  # a rank group
def test_weights_that_cannot_be_read_are_one_paragraph_and_the_group_exits(demo_assets, offline, tmp_path, make_run):
    broken = tmp_path / "broken-model"
    shutil.copytree(demo_assets.model_b, broken)
    weights = broken / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])  # truncated by an interrupted copy
    run = deepspeed_run(make_run, tmp_path / "cache", model_b=str(broken), limit="2", tp_b="2")
    try:
        with pytest.raises(QwencmpError) as info:
            run.evaluator.evaluate("b", "hellaswag")
        message = info.value.message
        assert message.startswith("Could not load model 'broken-model' (local directory): SafetensorError")
        assert "\n" not in message
        group = run.handle("b")._group
        assert group.ranks and all(rank.poll() is not None for rank in group.ranks)  # stopped, not left waiting
        with pytest.raises(QwencmpError, match="Could not load model 'broken-model'"):
            run.evaluator.evaluate("b", "mbpp")
        assert run.stats()["model_loads"] == 0
    finally:
        run.close()


def group_ranks_running() -> list[int]:
    """pids of tensor-parallel ranks (this module as a script) launched by this process (not by other test runs)."""
    found = []
    mine = f"QWENCMP_TP_PARENT_PID={os.getpid()}".encode()
    for entry in Path("/proc").iterdir():
        try:
            command = (entry / "cmdline").read_bytes().split(b"\0") if entry.name.isdigit() else []
            if b"pytest_qwencmp.models.tensor_parallel" in command and mine in (entry / "environ").read_bytes().split(b"\0"):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


@pytest.mark.slow  # a pytest run with two rank groups
def test_pytest_run_with_a_split_model_reports_it_and_leaves_no_process(pytester, suite, fresh_cache):
    suite(
        """
        [hellaswag]
        min_improvement = 1.0
        """
    )
    results_json = pytester.path / "results.json"
    result = pytester.runpytest_inprocess(
        "--demo", f"--eval-cache-dir={fresh_cache}", "-p", "no:cacheprovider", "--benchmarks", "hellaswag",
        "--limit", "6", "--tp-b", "2", "--device", "cpu", f"--qwencmp-json={results_json}",
    )
    result.assert_outcomes(passed=2, deselected=59)
    out = result.stdout.str()
    assert "HellaSwag × model_b: evaluating (deepspeed, float32, cpu, tensor parallel x2)" in out
    assert re.search(r"model B: .*model_b — deepspeed backend, float32 on cpu, tensor parallel x2", out)
    assert re.search(r"model A: .*model_a — hf backend, float32 on cpu, batch size \d+, [\d,]+ parameters", out)
    assert "qwencmp: 2 model load(s), 2 evaluation(s)" in out
    document = json.loads(results_json.read_text())
    assert (document["models"]["a"]["tensor_parallel"], document["models"]["b"]["tensor_parallel"]) == (1, 2)
    jsonschema = pytest.importorskip("jsonschema")
    jsonschema.validate(document, json.loads(SCHEMA.read_text()))
    assert group_ranks_running() == []  # the session's end stopped the group
