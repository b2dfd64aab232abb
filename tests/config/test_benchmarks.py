"""The benchmarks registry: built-ins, user additions, validation."""

import pytest

from pytest_qwencmp.config.benchmarks import builtin_registry, load_registry, registry_from_toml
from pytest_qwencmp.errors import QwencmpError


def test_builtin_items_match_the_product():
    registry = builtin_registry()
    assert registry.names() == ("mmlu", "hellaswag", "mbpp")
    mmlu = registry.get("mmlu")
    ids = [i.id for i in mmlu.items]
    assert len(ids) == 58 and ids[0] == "abstract_algebra" and ids[-1] == "overall"
    assert mmlu.item("anatomy").task == "mmlu_anatomy" and mmlu.item("overall").task == "mmlu"
    assert len(mmlu.leaf_tasks) == 57 and mmlu.request == ("mmlu",)
    assert [i.id for i in registry.get("hellaswag").items] == ["acc", "acc_norm"]
    mbpp = registry.get("mbpp")
    assert [(i.id, i.metric) for i in mbpp.items] == [("pass@1", "pass_at_1")]
    assert mbpp.num_fewshot == 2 and mbpp.generation


def test_user_benchmarks_extend_the_registry(tmp_path):
    extra = tmp_path / "benchmarks.toml"
    extra.write_text('[arc_challenge]\ntask_dirs = ["arc"]\nrequest = ["arc_challenge"]\nmetrics = ["acc", "acc_norm"]\nnum_fewshot = 25\n')
    registry = load_registry([extra])
    assert registry.names()[-1] == "arc_challenge"
    arc = registry.get("arc_challenge")
    assert [(i.id, i.task) for i in arc.items] == [("acc", "arc_challenge"), ("acc_norm", "arc_challenge")]


@pytest.mark.parametrize(
    "text, fragment",
    [
        ('[x]\nrequest = "x"\nmetricz = ["acc"]\n', "unknown key(s) metricz"),
        ("[x]\nmetrics = ['acc']\n", "needs 'request'"),
        ('[x]\nrequest = ["x"]\nsubjects = ["a"]\n', "needs 'subtask_template'"),
        ('[x]\nrequest = ["x"]\nnum_fewshot = -1\n', "'num_fewshot' must be a whole number"),
        ("[x\n", "is not valid TOML"),
    ],
)
def test_bad_benchmark_files(tmp_path, text, fragment):
    path = tmp_path / "b.toml"
    path.write_text(text)
    with pytest.raises(QwencmpError) as info:
        registry_from_toml(path)
    assert fragment in info.value.message


def test_unknown_names_are_explained():
    with pytest.raises(QwencmpError, match="Known benchmarks: mmlu, hellaswag, mbpp"):
        builtin_registry().get("arc")
    with pytest.raises(QwencmpError, match="has no item 'anatomyy'"):
        builtin_registry().get("mmlu").item("anatomyy")
