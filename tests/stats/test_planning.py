"""``python -m pytest_qwencmp plan``: sizes, MDEs and underpowered rules before a run, with no model loaded."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_qwencmp.cli import main
from pytest_qwencmp.config.expectations import Expectation
from pytest_qwencmp.stats.paired_binary import paired_binary_ci
from pytest_qwencmp.stats.planning import impossible_keys

REPO = Path(__file__).resolve().parents[2]

def row(out: str, item: str) -> list[str]:
    """The cells of one item's row in the plan's table."""
    match = re.search(rf"^  {re.escape(item)}  +(.*)$", out, re.M)
    assert match, item
    return re.split(r"  +", match.group(1).strip())


PROBE = """
import sys
from pytest_qwencmp.cli import main
status = main(sys.argv[1:])
heavy = [m for m in ("torch", "lm_eval", "transformers", "datasets", "deepspeed", "scipy.stats") if m in sys.modules]
print("HEAVY-MODULES:", heavy)
sys.exit(status)
"""


def test_plan_on_the_shipped_expectations_loads_nothing_heavy(tmp_path):
    out_json = tmp_path / "plan.json"
    proc = subprocess.run([sys.executable, "-c", PROBE, "plan", f"--json={out_json}"], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "HEAVY-MODULES: []" in out
    assert "expectations: evals/expectations.toml" in out
    assert "sizes of cais/mmlu: known sizes (pytest_qwencmp/config/dataset_sizes.toml" in out
    assert "MMLU: 57 items form one family (holm): MDEs for one item that differs, at the 99.91 % interval, 0.0439 % a side" in out
    for item, n, mde in (("abstract_algebra", "100", "±20.3"), ("professional_law", "1,534", "±5.3"),
                         ("overall", "14,042", "±1.2"), ("acc", "10,042", "±1.5"), ("pass@1", "500", "±6.3")):
        assert row(out, item)[:2] == [n, mde], item
    assert "max_regression underpowered (needs n ≥ 1,680)" in out  # a 5-point subject check needs 1,680 questions
    assert "can never" not in out  # the shipped expectations can all be decided at the real sizes
    document = json.loads(out_json.read_text())
    assert len(document["items"]) == 61 and document["assumptions"]["discordance"] == 0.25
    overall = next(i for i in document["items"] if i["item"] == "overall")
    assert overall["n"] == 14_042 and overall["family_size"] == 1 and overall["level"] == 0.05
    law = next(i for i in document["items"] if i["item"] == "professional_law")
    assert law["family_size"] == 57 and any(n["rule"] == "max_regression" and n["needed_n"] == 1_680 for n in law["notes"])
    assert all(i["impossible"] == [] for i in document["items"])


def test_plan_counts_rows_of_local_copies(demo_assets, capsys):
    assert main(["plan", f"--data-dir={demo_assets.data_dir}", "--benchmarks", "mmlu,mbpp", "--limit", "5",
                 "--expectations", str(REPO / "evals" / "demo-expectations.toml")]) == 0
    out = capsys.readouterr().out
    assert f"sizes of cais/mmlu: counted in the local copy {demo_assets.data_dir / 'cais' / 'mmlu'}" in out
    assert "HellaSwag" not in out
    assert row(out, "abstract_algebra")[:2] == ["5", "none"] and row(out, "overall")[0] == "285"  # 57 × min(8, 5)
    assert row(out, "pass@1")[:2] == ["5", "none"]  # 15 MBPP problems, limited to 5
    main(["plan", f"--data-dir={demo_assets.data_dir}", "--benchmarks", "hellaswag", "--discordance", "0.6"])
    assert row(capsys.readouterr().out, "acc")[:2] == ["40", "±37.0"]


def test_plan_demo_without_a_built_demo_uses_its_fixed_sizes(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(REPO)
    assert main(["plan", "--demo", f"--eval-cache-dir={tmp_path}"]) == 0
    out = capsys.readouterr().out
    assert "the demo's split sizes in pytest_qwencmp/demo/data.py (the demo is not built yet)" in out
    assert "expectations: evals/demo-expectations.toml" in out
    assert row(out, "overall")[0] == "456" and row(out, "acc")[0] == "40" and row(out, "pass@1")[0] == "15"
    assert not (tmp_path / "demo").exists()  # nothing was built


def test_plan_flags_expectations_that_can_never_pass_at_this_size(tmp_path, capsys, monkeypatch):
    """`plan --demo --limit 4`: min_ci_lower = 0 can never pass on 4 documents (the best table, 4 of 4 won by B,
    has a 95 % interval from −10.01), nor can the subjects' max_regression = 10 ever fail; the n each would need."""
    monkeypatch.chdir(REPO)
    assert main(["plan", "--demo", "--limit", "4", f"--eval-cache-dir={tmp_path}", f"--json={tmp_path / 'p.json'}"]) == 0
    out = capsys.readouterr().out
    assert "hellaswag: 2 items (acc, acc_norm): min_ci_lower 0 can never pass at n = 4, whatever the models answer (needs n ≥ 5)" in out
    assert "mbpp[pass@1]: min_ci_lower 0 can never pass at n = 4, whatever the models answer (needs n ≥ 5)" in out
    assert "max_regression 10 can never fail at n = 4" in out
    assert row(out, "pass@1")[3:] == ["min_ci_lower can never pass (needs n ≥ 5)"]
    items = json.loads((tmp_path / "p.json").read_text())["items"]
    never = {(i["benchmark"], i["item"]): [x["rule"] for x in i["impossible"]] for i in items if i["impossible"]}
    assert never[("hellaswag", "acc")] == ["min_ci_lower"] and never[("mbpp", "pass@1")] == ["min_ci_lower"]
    assert ("mmlu", "overall") not in never  # 228 questions: 40 points can be shown
    assert main(["plan", "--demo", "--limit", "5", f"--eval-cache-dir={tmp_path}"]) == 0  # at the n it said: possible
    assert "min_ci_lower 0 can never" not in capsys.readouterr().out


def test_impossible_keys_is_exact_at_the_boundary():
    """The needed n is the first n at which the best table passes, and one fewer cannot."""
    rules = {"x": Expectation(min_ci_lower=30.0)}
    found = impossible_keys(["x"], rules.__getitem__, {"x": 5})["x"][0]
    needed = found.needed_n
    assert found.outcome == "pass" and needed > 5
    assert paired_binary_ci(needed, 0, needed, at=30.0)[0] > 30.0 >= paired_binary_ci(needed - 1, 0, needed - 1, at=30.0)[0]
    assert impossible_keys(["x"], rules.__getitem__, {"x": needed})["x"] == ()
    assert impossible_keys(["x"], lambda i: Expectation(min_ci_lower=100.0), {"x": 10**6})["x"][0].needed_n is None
    family = {f"s{i}": Expectation(non_inferiority_margin=0.0) for i in range(57)}  # Holm over 57: 2.5 %/57 a side
    sizes = {k: 7 for k in family}
    assert all(v[0].needed_n == 13 for v in impossible_keys(list(family), family.__getitem__, sizes).values())
    low, _ = paired_binary_ci(13, 0, 13, level=0.05 / 57, at=0.0)  # all tied at their best: Holm's first level for all
    assert low > 0 >= paired_binary_ci(12, 0, 12, level=0.05 / 57, at=0.0)[0]


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--discordance", "1.5"], "--discordance 1.5 must lie in (0, 1]"),
        (["--alpha", "0"], "--alpha 0.0 must lie strictly between 0 and 1"),
        (["--benchmarks", "arc"], "Unknown benchmark 'arc'. Known benchmarks: mmlu, hellaswag, mbpp"),
        (["--expectations", "missing.toml"], "Cannot read expectations file missing.toml"),
        (["--data-dir", "/nonexistent/qwencmp-data"], None),  # no copy there: the known sizes, said so
    ],
)
def test_plan_bad_input_is_one_paragraph(args, fragment, capsys, monkeypatch):
    monkeypatch.chdir(REPO)
    status = main(["plan", "--benchmarks", "mbpp", *args] if "--benchmarks" not in args else ["plan", *args])
    captured = capsys.readouterr()
    if fragment is None:
        assert status == 0 and "no countable local copy under /nonexistent/qwencmp-data: known sizes" in captured.out
        return
    assert status == 2
    assert fragment in captured.err and "Traceback" not in captured.err
    assert len(captured.err.strip().splitlines()) == 1


def test_plan_sequential_prints_the_expected_share_beside_the_mde(tmp_path, capsys):
    """A broken checkpoint and equivalent models (60 simulated runs each): HellaSwag stops at its first look (1/8) when
    B is 20 points worse, and nearly always when B ≡ A (min_ci_lower = 7 fails at once); MMLU runs nearly to the end
    when B ≡ A (100-question subjects cannot accept a 5-point allowance early)."""
    out_json = tmp_path / "plan.json"
    assert main(["plan", "--sequential", "--delta", "0", "--delta", "hellaswag=-20", "--score-a", "60", "--reps", "60",
                 "--benchmarks", "hellaswag,mmlu", f"--json={out_json}"]) == 0
    out = capsys.readouterr().out
    assert "Sequential (--sequential): the expected share of documents evaluated" in out
    assert "Hwang–Shih–DeCani (γ = −4)" in out and "A's true score 60" in out
    cells = row(out, "HellaSwag")
    assert cells[:2] == ["10,042", "±1.5 (acc)"]
    shares = json.loads(out_json.read_text())["sequential"]["expected_share"]
    assert shares["hellaswag=-20"]["hellaswag"]["mean"] == pytest.approx(0.125, abs=0.002)
    assert shares["0"]["hellaswag"]["mean"] < 0.2
    assert shares["0"]["mmlu"]["mean"] > 0.95
    assert main(["plan", "--sequential", "--delta", "mmlu=40"]) == 2  # beyond the discordance: one paragraph
    assert "raise --discordance" in capsys.readouterr().err
    assert main(["plan", "--sequential", "--correction", "bh"]) == 2
