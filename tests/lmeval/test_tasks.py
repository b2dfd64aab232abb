"""lmeval.tasks: the override --samples writes into lm-eval's own task definitions."""

from __future__ import annotations

import pytest
import yaml

from pytest_qwencmp.config.benchmarks import builtin_registry
from pytest_qwencmp.errors import QwencmpError
from pytest_qwencmp.lmeval.tasks import TaskSource, _repeats_override


def test_samples_keep_every_answer_under_lm_evals_own_metric_names(tmp_path):
    """K answers per document through `repeats`, all kept by `take_first_k` under the filter name `none`, so the
    task's metric scores every answer and its result keys (pass_at_1,none) are lm-eval's."""
    source = TaskSource(builtin_registry().get("mbpp"), None)
    source.build_manager(tmp_path, samples=4)
    override = yaml.safe_load((tmp_path / "overrides-mbpp" / "mbpp.yaml").read_text())
    assert override["task"] == "mbpp" and override["include"].endswith("mbpp/mbpp.yaml")
    assert override["repeats"] == 4
    assert override["filter_list"] == [{"name": "none", "filter": [{"function": "take_first_k", "k": 4}]}]
    assert "dataset_path" not in override  # the hub, as without --samples


@pytest.mark.parametrize("config, fragment", [
    ({"output_type": "multiple_choice"}, "--samples applies to generation tasks; lm-eval task 'x' is scored by multiple_choice"),
    ({"output_type": "generate_until", "filter_list": [{"name": "strict-match"}]},
     "--samples: lm-eval task 'x' has filters of its own (strict-match)"),
])
def test_samples_are_refused_where_they_cannot_mean_anything(config, fragment):
    with pytest.raises(QwencmpError) as info:
        _repeats_override("x", config, 3)
    assert fragment in info.value.message
