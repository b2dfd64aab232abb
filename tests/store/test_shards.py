"""--qwencmp-shard K/N: the spec, the cost model, the split, and the plugin's deselection (collect-only)."""

from __future__ import annotations

import itertools
import json

import pytest

from pytest_qwencmp.store import shards
from pytest_qwencmp.config.benchmarks import builtin_registry, benchmark_from_table
from pytest_qwencmp.errors import QwencmpError

REGISTRY = builtin_registry()
MMLU, HELLASWAG, MBPP = (REGISTRY.get(n) for n in ("mmlu", "hellaswag", "mbpp"))


@pytest.mark.parametrize("text, expected", [("1/1", (1, 1)), ("2/3", (2, 3)), (" 3 / 3 ", (3, 3))])
def test_spec_parses_k_of_n(text, expected):
    spec = shards.ShardSpec.parse(text)
    assert (spec.index, spec.count) == expected and str(spec) == f"{expected[0]}/{expected[1]}"


@pytest.mark.parametrize(
    "text, fragment",
    [("0/2", "1 ≤ K ≤ N (got K=0, N=2)"), ("3/2", "(got K=3, N=2)"), ("1/0", "(got K=1, N=0)"),
     ("2", "must look like K/N"), ("a/b", "must look like K/N"), ("-1/2", "must look like K/N")],
)
def test_spec_refuses_what_is_not_k_of_n(text, fragment):
    with pytest.raises(QwencmpError) as info:
        shards.ShardSpec.parse(text)
    assert fragment in info.value.message and "--qwencmp-shard" in info.value.message


def test_known_sizes_are_the_real_datasets():
    mmlu, hellaswag, mbpp = (shards.estimate_cost(b) for b in (MMLU, HELLASWAG, MBPP))
    assert (mmlu.documents, mmlu.per_document, mmlu.basis) == (14042, 4, "known size")
    assert (hellaswag.documents, hellaswag.per_document) == (10042, 4)
    assert (mbpp.documents, mbpp.per_document, mbpp.value) == (500, shards.GENERATION_WEIGHT, 500 * shards.GENERATION_WEIGHT)
    # --limit caps every leaf task: 57 MMLU subjects.
    assert shards.estimate_cost(MMLU, limit=10).documents == 570
    assert shards.estimate_cost(HELLASWAG, limit=10).documents == 10


def test_demo_sizes_need_no_built_demo():
    assert shards.estimate_cost(MMLU, demo=True) == shards.Cost(57 * 8, 4, "demo data")
    assert shards.estimate_cost(MBPP, demo=True, limit=3) == shards.Cost(3, shards.GENERATION_WEIGHT, "demo data")


def test_local_data_is_counted(demo_assets):
    for benchmark, documents in ((MMLU, 57 * 8), (HELLASWAG, 40), (MBPP, 15)):
        cost = shards.estimate_cost(benchmark, data_dir=demo_assets.data_dir)
        assert (cost.documents, cost.basis) == (documents, "local data")
    assert shards.estimate_cost(HELLASWAG, data_dir=demo_assets.data_dir, limit=7).documents == 7


def test_unknown_sizes_fall_back(tmp_path):
    arc = benchmark_from_table("arc_challenge", {"request": ["arc_challenge"], "metrics": ["acc"]}, "test")
    gsm = benchmark_from_table("gsm8k", {"request": ["gsm8k"], "metrics": ["exact_match"], "generation": True}, "test")
    assert shards.estimate_cost(arc) == shards.Cost(shards.DEFAULT_DOCUMENTS, shards.DEFAULT_CHOICES, "default size")
    assert shards.estimate_cost(gsm).per_document == shards.GENERATION_WEIGHT
    # A data directory without this benchmark's files: the known size, not zero.
    assert shards.estimate_cost(HELLASWAG, data_dir=tmp_path).basis == "known size"


def _best_makespan(costs: dict[str, int], count: int) -> int:
    best = None
    for assignment in itertools.product(range(count), repeat=len(costs)):
        loads = [0] * count
        for name, target in zip(costs, assignment):
            loads[target] += costs[name]
        best = max(loads) if best is None else min(best, max(loads))
    return best


@pytest.mark.parametrize(
    "costs, count",
    [
        ({"mmlu": 56168, "hellaswag": 40168, "mbpp": 50000}, 2),
        ({"a": 7, "b": 5, "c": 4, "d": 3, "e": 3}, 2),
        ({"a": 9, "b": 8, "c": 2, "d": 2, "e": 1, "f": 1}, 3),
        ({"x": 5, "y": 5}, 4),
    ],
)
def test_split_covers_everything_once_and_balances(costs, count):
    groups = shards.split_by_cost(costs, count)
    assert len(groups) == count
    assert sorted(n for g in groups for n in g) == sorted(costs)
    makespan = max(sum(costs[n] for n in g) for g in groups)
    assert makespan <= _best_makespan(costs, count) * 4 / 3  # the longest-processing-time bound
    assert shards.split_by_cost(costs, count) == groups  # deterministic


def test_the_real_three_benchmarks_on_two_jobs():
    plan = shards.split_benchmarks(shards.ShardSpec(1, 2), [MMLU, HELLASWAG, MBPP])
    assert plan.shards == (("mmlu",), ("hellaswag", "mbpp"))  # 56,168 against 40,168 + 50,000: the best split
    assert plan.mine == ("mmlu",)
    line = plan.describe()
    assert line.startswith("qwencmp: shard 1/2 runs mmlu; shard 2/2 runs hellaswag, mbpp (expected cost mmlu 56,168")
    assert "known size" in line
    assert plan.to_json() == {"index": 1, "count": 2, "benchmarks": [["mmlu"], ["hellaswag", "mbpp"]],
                              "costs": {"mmlu": 56168, "hellaswag": 40168, "mbpp": 50000}}
    empty = shards.split_benchmarks(shards.ShardSpec(4, 4), [MMLU, HELLASWAG, MBPP])
    assert empty.mine == () and "shard 4/4 runs nothing" in empty.describe()


# ----------------------------------------------------------------------------- through pytest


def test_each_shard_keeps_its_benchmarks_and_says_so(pytester, suite, tmp_path):
    common = ["--demo", f"--eval-cache-dir={tmp_path / 'cache'}", "-p", "no:cacheprovider", "--collect-only", "-q"]
    first = pytester.runpytest_inprocess(*common, "--qwencmp-shard", "1/2")
    out = first.stdout.str()
    assert "qwencmp: shard 1/2 runs mmlu; shard 2/2 runs hellaswag, mbpp" in out
    assert "3 item(s) of other shards deselected" in out and "--qwencmp-json=FILE" in out
    assert "58/61 tests collected (3 deselected)" in out
    second = pytester.runpytest_inprocess(*common, "--qwencmp-shard", "2/2")
    assert "58 deselected" in second.stdout.str() and "test_hellaswag[acc]" in second.stdout.str()
    assert not (tmp_path / "cache" / "demo").exists()  # planning builds nothing


def test_a_shard_with_nothing_to_run_succeeds_and_writes_its_plan(pytester, suite, tmp_path):
    results = tmp_path / "shard-3.json"
    result = pytester.runpytest_inprocess(
        "--demo", f"--eval-cache-dir={tmp_path / 'cache'}", "-p", "no:cacheprovider", "--benchmarks", "hellaswag,mbpp",
        "--qwencmp-shard", "3/3", f"--qwencmp-json={results}",
    )
    assert result.ret == pytest.ExitCode.OK
    assert "shard 3/3 runs nothing" in result.stdout.str()
    document = json.loads(results.read_text())
    assert document["comparisons"] == [] and document["settings"]["shard"]["benchmarks"] == [["mbpp"], ["hellaswag"], []]


@pytest.mark.parametrize("value", ["0/2", "two"])
def test_a_bad_shard_is_a_usage_error(pytester, suite, value):
    result = pytester.runpytest_subprocess("--demo", "--collect-only", "-p", "no:cacheprovider", "--qwencmp-shard", value)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    err = result.stderr.str()
    assert "pytest-qwencmp: --qwencmp-shard" in err and "Traceback" not in err
