"""``python -m pytest_qwencmp plan``: sizes, MDEs and underpowered rules before a run, with no model loaded."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_qwencmp.cli import main

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
    assert "MMLU: 57 items form one family (holm): MDEs at α/57 = 0.00088" in out
    for item, n, mde in (("abstract_algebra", "100", "±20.0"), ("professional_law", "1,534", "±5.4"),
                         ("overall", "14,042", "±1.2"), ("acc", "10,042", "±1.5"), ("pass@1", "500", "±6.4")):
        assert row(out, item)[:2] == [n, mde], item
    assert "max_regression underpowered (needs n ≥ 1,658)" in out  # a 5-point subject check needs 1,658 questions
    document = json.loads(out_json.read_text())
    assert len(document["items"]) == 61 and document["assumptions"]["discordance"] == 0.25
    overall = next(i for i in document["items"] if i["item"] == "overall")
    assert overall["n"] == 14_042 and overall["family_size"] == 1 and overall["level"] == 0.05
    law = next(i for i in document["items"] if i["item"] == "professional_law")
    assert law["family_size"] == 57 and any(n["rule"] == "max_regression" and n["needed_n"] == 1_658 for n in law["notes"])


def test_plan_counts_rows_of_local_copies(demo_assets, capsys):
    assert main(["plan", f"--data-dir={demo_assets.data_dir}", "--benchmarks", "mmlu,mbpp", "--limit", "5",
                 "--expectations", str(REPO / "evals" / "demo-expectations.toml")]) == 0
    out = capsys.readouterr().out
    assert f"sizes of cais/mmlu: counted in the local copy {demo_assets.data_dir / 'cais' / 'mmlu'}" in out
    assert "HellaSwag" not in out
    assert row(out, "abstract_algebra")[:2] == ["5", "none"] and row(out, "overall")[0] == "285"  # 57 × min(8, 5)
    assert row(out, "pass@1")[:2] == ["5", "none"]  # 15 MBPP problems, limited to 5
    main(["plan", f"--data-dir={demo_assets.data_dir}", "--benchmarks", "hellaswag", "--discordance", "0.6"])
    assert row(capsys.readouterr().out, "acc")[:2] == ["40", "±37.9"]


def test_plan_demo_without_a_built_demo_uses_its_fixed_sizes(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(REPO)
    assert main(["plan", "--demo", f"--eval-cache-dir={tmp_path}"]) == 0
    out = capsys.readouterr().out
    assert "the demo's split sizes in pytest_qwencmp/demo/data.py (the demo is not built yet)" in out
    assert "expectations: evals/demo-expectations.toml" in out
    assert row(out, "overall")[0] == "456" and row(out, "acc")[0] == "40" and row(out, "pass@1")[0] == "15"
    assert not (tmp_path / "demo").exists()  # nothing was built


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
