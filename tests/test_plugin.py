"""The plugin end to end, through in-process pytest runs (pytester) on the demo assets."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from pytest_qwencmp.cli import main

SCHEMA = Path(__file__).resolve().parents[1] / "pytest_qwencmp" / "report" / "results.schema.json"
STATS = re.compile(r"qwencmp: (\d+) model load\(s\), (\d+) evaluation\(s\) \([\d.]+s\), (\d+) cached evaluation\(s\) reused")


def stats(result) -> tuple[int, int, int]:
    match = STATS.search(result.stdout.str())
    assert match, result.stdout.str()[-3000:]
    return tuple(int(g) for g in match.groups())


def demo_args(cache: Path, *extra: str) -> list[str]:
    return ["--demo", f"--eval-cache-dir={cache}", "-p", "no:cacheprovider", *extra]


def test_collect_only_is_fast_and_loads_nothing(pytester, suite):
    pytester.makeconftest(
        """
        import sys
        def pytest_sessionfinish(session):
            heavy = [m for m in ("torch", "lm_eval", "transformers", "deepspeed") if m in sys.modules]
            print("HEAVY-MODULES:", heavy)
        """
    )
    result = pytester.runpytest_subprocess("--collect-only", "-q", "--model-a", "org/a", "--model-b", "org/b")
    result.assert_outcomes()
    out = result.stdout.str()
    assert "61 tests collected" in out
    for node in ("test_mmlu.py::test_mmlu[abstract_algebra]", "test_mmlu.py::test_mmlu[overall]",
                 "test_hellaswag.py::test_hellaswag[acc_norm]", "test_mbpp.py::test_mbpp[pass@1]"):
        assert node in out
    assert "HEAVY-MODULES: []" in out
    seconds = float(re.search(r"collected in ([\d.]+)s", out).group(1))
    assert seconds < 5  # generous on a loaded CI machine; the benchmark script measures it properly


def test_demo_run_compares_caches_and_reports(pytester, suite, fresh_cache, monkeypatch, tmp_path):
    step_summary = tmp_path / "step-summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(step_summary))
    suite(
        """
        [mmlu.overall]
        min_improvement = 1.0
        min_ci_lower = 10.0   # confidently better by at least 10 points
        [hellaswag]
        min_improvement = 1.0
        [mbpp."pass@1"]
        min_improvement = 1.0
        """
    )
    html = pytester.path / "report.html"
    junit = pytester.path / "junit.xml"
    results_json = pytester.path / "results.json"
    markdown = pytester.path / "summary.md"
    args = demo_args(fresh_cache, "--limit", "3", f"--html={html}", f"--junitxml={junit}",
                     f"--qwencmp-json={results_json}", f"--qwencmp-markdown={markdown}")
    first = pytester.runpytest_inprocess(*args)
    first.assert_outcomes(passed=61)
    assert stats(first) == (2, 6, 0)
    out = first.stdout.str()
    assert "qwencmp: model comparison" in out
    assert f"qwencmp: results JSON written to {results_json}" in out
    assert f"qwencmp: Markdown tables written to {markdown}" in out
    assert "qwencmp: Markdown tables appended to $GITHUB_STEP_SUMMARY" in out
    assert "float16 requested, but this CPU run used float32" in out
    assert re.search(r"overall\s+\d+\.\d\d ± \d+\.\d\d\s+\d+\.\d\d ± \d+\.\d\d\s+[+-]\d+\.\d\d", out)
    assert "generation: do_sample=True, temperature=0.1, top_p=0.95" in out

    page = html.read_text()
    assert 'id="qwencmp-mmlu"' in page and 'id="qwencmp-hellaswag"' in page and 'id="qwencmp-mbpp"' in page
    assert "Improvement" in page and "model_a" in page

    cases = ET.parse(junit).getroot().iter("testcase")
    properties = {c.get("name"): {p.get("name"): p.get("value") for p in c.iter("property")} for c in cases}
    overall = properties["test_mmlu[overall]"]
    from pytest_qwencmp.report.junit import OUTCOME_PROPERTIES, SCORE_PROPERTIES

    # The documented scalar properties only: the record (prompts, answers) stays in the results JSON.
    assert set(overall) == {f"qwencmp_{k}" for k in (*SCORE_PROPERTIES, *OUTCOME_PROPERTIES)} | {"qwencmp_verdict"}
    assert (overall["qwencmp_passed"], overall["qwencmp_significance"], overall["qwencmp_verdict"]) == ("true", "better", "PASS · better · underpowered")
    assert junit.stat().st_size < 61 * 2000
    assert float(overall["qwencmp_b"]) - float(overall["qwencmp_a"]) == pytest.approx(float(overall["qwencmp_delta"]), abs=1e-3)

    document = json.loads(results_json.read_text())
    jsonschema = pytest.importorskip("jsonschema")
    jsonschema.validate(document, json.loads(SCHEMA.read_text()))
    assert len(document["comparisons"]) == 61 and document["passed"] is True
    mmlu_a = document["models"]["a"]["lm_eval"]["mmlu"]["results"]["mmlu"]["acc,none"]
    assert document["comparisons"][57]["item"] == "overall"
    assert document["comparisons"][57]["a"] == pytest.approx(100 * mmlu_a, abs=1e-3)
    assert "| overall |" in markdown.read_text()
    assert step_summary.read_text().strip() == markdown.read_text().strip()  # appended for GitHub Actions

    # What decided the run is recorded everywhere: the batch size that ran, the expectations file and its hash.
    rules = pytester.path / "expectations.toml"
    digest = hashlib.sha256(rules.read_bytes()).hexdigest()
    assert document["settings"]["expectations"] == {"path": str(rules), "sha256": digest}
    for side in ("a", "b"):
        model = document["models"][side]
        assert model["requested_batch_size"] == 16  # --batch-size auto on CPU
        assert model["batch_size"] == {"mmlu": 16, "hellaswag": 16, "mbpp": 16}
        assert all(model["lm_eval"][name]["config"]["batch_size"] == 16 for name in ("mmlu", "hellaswag", "mbpp"))
    entries = [json.loads(json.loads(p.read_text())["payload"]) for p in fresh_cache.glob("evaluations/*/*.json")]
    assert len(entries) == 6 and all(entry["model"]["batch_size"] == 16 for entry in entries)  # the cache keeps it
    summary = out.split("qwencmp: model comparison")[1]
    assert re.search(r"model A: .* — hf backend, float32 on cpu, batch size 16, [\d,]+ parameters", summary), summary
    assert f"expectations: {rules} (sha256 {digest[:12]}…)" in summary
    assert f"expectations: {rules} (sha256 {digest[:12]}…)" in markdown.read_text() and "batch size 16" in markdown.read_text()
    assert "<th scope=\"row\">batch size</th><td>16</td><td>16</td>" in page and f"sha256 {digest[:12]}…" in page

    second = pytester.runpytest_inprocess(*args)
    second.assert_outcomes(passed=61)
    assert stats(second) == (0, 0, 6)
    assert json.loads(results_json.read_text())["comparisons"] == document["comparisons"]

    refreshed = pytester.runpytest_inprocess(*demo_args(fresh_cache, "--limit", "3", "--no-eval-cache", "--benchmarks", "hellaswag"))
    refreshed.assert_outcomes(passed=2, deselected=59)
    assert stats(refreshed) == (2, 2, 0)


def test_planted_regression_fails_with_the_numbers(pytester, suite, fresh_cache, demo_assets):
    expectations = suite(
        """
        [hellaswag]
        min_improvement = 5.0
        [mbpp."pass@1"]
        min_ci_lower = 0.0
        """
    )
    # B and A swapped: the weaker model is now the candidate.
    result = pytester.runpytest_inprocess(
        f"--model-a={demo_assets.model_b}", f"--model-b={demo_assets.model_a}",
        f"--data-dir={demo_assets.data_dir}", f"--eval-cache-dir={fresh_cache}",
        f"--expectations={expectations}", "--benchmarks", "hellaswag,mbpp", "--limit", "5", "-p", "no:cacheprovider",
    )
    result.assert_outcomes(failed=3, deselected=58)
    out = result.stdout.str()
    assert re.search(r"hellaswag\[acc\] acc: A \(model_b\) \d+\.\d\d ± \d+\.\d\d, B \(model_a\) \d+\.\d\d ± \d+\.\d\d, n = 5; "
                     r"B − A -\d+\.\d\d points, 95% CI \[", out)
    assert "Missed: improvement -" in out and "is below the required +5.00 points" in out
    assert "the 95% CI of B − A starts at" in out
    # The README's three short lines per failure: scores and test; adjusted test, verdict, MDE; what was missed.
    failures = out.split("= FAILURES =")[1].split("qwencmp: model comparison")[0]
    for block in re.split(r"_{5,} test_\w+\[[^\]]+\] _{5,}", failures)[1:]:
        lines = [line for line in block.splitlines() if line.startswith("E ")]
        assert len(lines) == 3 and all(len(line) <= 200 for line in lines), lines
        assert "Power:" not in block


def test_plan_and_the_run_say_the_same_about_keys_that_can_never_pass(pytester, suite, fresh_cache, capsys, tmp_path):
    """`plan --demo --limit 4` and the run at --limit 4 flag the same keys, with the same n needed, in the run's
    header (terminal settings lines, Markdown, HTML) and its JSON; the items then fail saying why."""
    repo = Path(__file__).resolve().parents[1]
    expectations = repo / "evals" / "demo-expectations.toml"
    assert main(["plan", "--demo", "--limit", "4", f"--eval-cache-dir={fresh_cache}", "--benchmarks", "hellaswag,mbpp",
                 f"--expectations={expectations}"]) == 0
    planned = [line.strip() for line in capsys.readouterr().out.splitlines() if "can never" in line and ": " in line.strip()]
    planned = [line for line in planned if line.startswith(("hellaswag", "mbpp"))]
    assert planned == [
        "hellaswag: 2 items (acc, acc_norm): min_ci_lower 0 can never pass at n = 4, whatever the models answer (needs n ≥ 5)",
        "mbpp[pass@1]: min_ci_lower 0 can never pass at n = 4, whatever the models answer (needs n ≥ 5)",
    ]
    html, markdown, results = tmp_path / "r.html", tmp_path / "r.md", tmp_path / "r.json"
    result = pytester.runpytest_inprocess(*demo_args(fresh_cache, "--limit", "4", "--benchmarks", "hellaswag,mbpp",
                                                     f"--expectations={expectations}", f"--html={html}",
                                                     f"--qwencmp-markdown={markdown}", f"--qwencmp-json={results}"))
    result.assert_outcomes(failed=3, deselected=58)
    out = result.stdout.str()
    header = out[out.index("qwencmp: model comparison"):out.index("HellaSwag: 2 items")]
    for line in planned:
        assert f"can never pass or fail at this size: {line}" in header
        assert line in markdown.read_text() and line in html.read_text()
    document = json.loads(results.read_text())
    assert document["benchmarks"]["mbpp"]["impossible"] == [planned[1]]
    assert report_body(out).count("At this size: min_ci_lower 0 can never pass at n = 4") == 3  # in each failure message


def test_xdist_workers_share_evaluations(pytester, suite, fresh_cache):
    pytest.importorskip("xdist")
    result = pytester.runpytest_inprocess(
        *demo_args(fresh_cache, "--limit", "2", "--benchmarks", "hellaswag,mbpp", "-n", "2", "-v")
    )
    result.assert_outcomes(passed=3)
    out = result.stdout.str()
    loads, evaluations, hits = stats(result)
    assert evaluations == 4  # (A, B) × 2 benchmarks, each once across both workers
    assert hits == 0  # grouped by benchmark: no worker waited for another's evaluation
    assert "scheduling tests via LoadScopeScheduling" in out
    assert loads <= 4
    assert "HellaSwag: 2 items" in out and "MBPP: 1 item," in out
    # -n alone became --dist loadscope: each benchmark's test module ran on one worker.
    workers: dict[str, set[str]] = {}
    for worker, benchmark in re.findall(r"\[(gw\d)\] \[\s*\d+%\] PASSED test_(\w+)\.py::", out):
        workers.setdefault(benchmark, set()).add(worker)
    assert set(workers) == {"hellaswag", "mbpp"} and all(len(w) == 1 for w in workers.values()), workers
    # The workers' progress reaches the controller's terminal while they run, not only their results at the end.
    live = out.split("qwencmp: model comparison")[0]
    for benchmark in ("HellaSwag", "MBPP"):
        for side in ("model_a", "model_b"):
            assert re.search(rf"^\[gw\d\] qwencmp: {benchmark} × {side}: evaluating \(hf, float32, cpu\)$", live, re.M), live
            assert re.search(rf"^\[gw\d\] qwencmp: {benchmark} × {side}: done in [\d.]+s$", live, re.M), live
    from pytest_qwencmp.models.placement import nvidia_driver_absent

    if nvidia_driver_absent():  # -n on CPU cores only: the header says it does not help
        assert "qwencmp: -n 2 on a machine without a GPU: the workers share its" in live
    assert not list((fresh_cache / "progress").glob("*.log"))  # the relay's file is gone with the session


@pytest.mark.slow  # two more xdist workers that import the model stack
def test_an_explicit_dist_mode_is_kept(pytester, suite, fresh_cache):
    pytest.importorskip("xdist")
    result = pytester.runpytest_inprocess(
        *demo_args(fresh_cache, "--limit", "2", "--benchmarks", "hellaswag", "-n", "2", "--dist", "load", "-v")
    )
    result.assert_outcomes(passed=2)
    assert "scheduling tests via LoadScheduling" in result.stdout.str()


def test_other_suites_keep_xdist_default_scheduling(pytester):
    pytest.importorskip("xdist")
    pytester.makepyfile(test_plain="def test_one():\n    assert 1 + 1 == 2\n")
    result = pytester.runpytest_inprocess("-n", "2", "-v", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    assert "scheduling tests via LoadScheduling" in result.stdout.str()  # installed, not comparing: hands off


def test_changed_local_data_is_picked_up(pytester, suite, fresh_cache, demo_assets, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(demo_assets.data_dir, data)
    common = [f"--model-a={demo_assets.model_a}", f"--model-b={demo_assets.model_b}", f"--data-dir={data}",
              f"--eval-cache-dir={fresh_cache}", "--benchmarks", "hellaswag", "--limit", "4", "-p", "no:cacheprovider"]
    before = pytester.runpytest_inprocess(*common)
    before.assert_outcomes(passed=2, deselected=59)
    assert "code sandbox" not in before.stdout.str()  # no generation benchmark ran: no word about the sandbox
    validation = next((data / "Rowan" / "hellaswag").rglob("*validation*.jsonl"))
    rows = [json.loads(line) for line in validation.read_text().splitlines()]
    for row in rows:
        row["label"] = str((int(row["label"]) + 1) % 4)  # every gold answer moves
    validation.write_text("".join(json.dumps(r) + "\n" for r in rows))
    after = pytester.runpytest_inprocess(*common)
    after.assert_outcomes(passed=2, deselected=59)
    assert stats(after)[1] == 2  # a new data fingerprint: both models evaluated again
    score = re.compile(r"^acc\s+(\S+) ± \S+\s+(\S+) ±", re.M)
    assert score.search(before.stdout.str()).groups() != score.search(after.stdout.str()).groups()


@pytest.mark.parametrize(
    "args, expectations, fragment",
    [
        ((), "[mmlu.overal]\nfloor_a = 1\n", "[mmlu.overal] names no item of mmlu; did you mean overall"),
        ((), "[mmlu]\nfloor_a = 'high'\n", "key 'mmlu.floor_a' must be a number"),
        (("--dtype", "int4"), "", "--dtype 'int4' is not supported"),
        (("--num-fewshot", "mbpp"), "", "--num-fewshot 'mbpp' must look like BENCHMARK=N"),
        (("--model-a", "x/y"), "", "--demo brings its own two models"),
        (("--tp", "2", "--backend", "hf"), "", "--tp 2 splits the model across processes with DeepSpeed, but --backend hf"),
        (("--tp-b", "2", "--device", "cuda"), "", "--device cuda was asked for but torch sees no CUDA device"),
    ],
)
def test_bad_input_stops_at_start_with_one_paragraph(pytester, suite, fresh_cache, args, expectations, fragment):
    suite(expectations)
    result = pytester.runpytest_inprocess(*demo_args(fresh_cache, *args))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    err = result.stderr.str()
    assert fragment in err
    assert "Traceback" not in err and len(err.strip().splitlines()) <= 2


def test_missing_models_are_a_usage_error(pytester, suite):
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "pytest-qwencmp: Two models are needed to compare: pass --model-a and --model-b" in result.stderr.str()


def test_test_without_marker_or_with_unknown_benchmark(pytester):
    pytester.makepyfile(test_x="def test_x(comparison):\n    pass\n")
    result = pytester.runpytest_inprocess("--collect-only", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.INTERRUPTED  # a collection error
    assert "has no @pytest.mark.qwencmp('BENCHMARK') marker" in result.stdout.str()
    assert "Traceback" not in result.stdout.str()
    pytester.makepyfile(test_x="import pytest\n@pytest.mark.qwencmp('arc')\ndef test_x(comparison):\n    pass\n")
    result = pytester.runpytest_inprocess("--collect-only", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    assert "Unknown benchmark 'arc'. Known benchmarks: mmlu, hellaswag, mbpp" in result.stdout.str()


def test_missing_local_dataset_fails_items_clearly(pytester, suite, fresh_cache, demo_assets, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(demo_assets.data_dir / "Rowan", data / "Rowan")  # no MBPP copy
    result = pytester.runpytest_inprocess(
        f"--model-a={demo_assets.model_a}", f"--model-b={demo_assets.model_b}", f"--data-dir={data}",
        f"--eval-cache-dir={fresh_cache}", "--benchmarks", "mbpp", "--limit", "2", "-p", "no:cacheprovider",
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    err = result.stderr.str()
    assert "reads the dataset 'google-research-datasets/mbpp', but the data directory has no copy of it" in err
    assert "Traceback" not in err + result.stdout.str()


def test_unknown_hub_model_fails_items_clearly(pytester, suite, fresh_cache, demo_assets, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    result = pytester.runpytest_inprocess(
        "--model-a", "no-such-org/no-such-model", f"--model-b={demo_assets.model_b}",
        f"--data-dir={demo_assets.data_dir}", f"--eval-cache-dir={fresh_cache}",
        "--benchmarks", "hellaswag", "--limit", "2", "-p", "no:cacheprovider",
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    err = result.stderr.str()
    assert err.count("it needs model 'no-such-org/no-such-model' (--model-a) from the Hugging Face hub, but HF_HUB_OFFLINE is set") == 1
    assert "`python -m pytest_qwencmp mirror --out DIR --model no-such-org/no-such-model --benchmarks none`" in err


def report_body(out: str) -> str:
    """A run's output before its short test summary, which repeats each failure message (in full on CI, where
    pytest does not trim it)."""
    return out.split("short test summary info")[0]


def reported_once(out: str, message: str) -> bool:
    """The message is in the report body once (the short summary may repeat it)."""
    return report_body(out).count(message) == 1


def closed_port_endpoint() -> str:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}"  # nothing listens there once closed


@pytest.mark.parametrize("model_a", ["no-such-org/no-such-model", "Qwen/Qwen2.5-1.5B", "EMPTY-DIR"])
def test_a_model_that_cannot_load_fails_once_in_seconds(pytester, suite, fresh_cache, demo_assets, monkeypatch, model_a):
    """The hub is unreachable (an endpoint where nothing listens), nothing is cached: one paragraph, the rest skipped."""
    import time

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", closed_port_endpoint())
    if model_a == "EMPTY-DIR":
        model_a = str(pytester.mkdir("empty-model"))
    started = time.monotonic()
    result = pytester.runpytest_inprocess(
        f"--model-a={model_a}", f"--model-b={demo_assets.model_b}", f"--eval-cache-dir={fresh_cache}", "-p", "no:cacheprovider",
    )
    elapsed = time.monotonic() - started
    assert result.ret == pytest.ExitCode.USAGE_ERROR  # found at the start: nothing loaded, nothing evaluated
    out = result.stdout.str() + "\n" + result.stderr.str()
    assert len(out.splitlines()) <= 40, out
    paragraphs = [line for line in out.splitlines() if line.startswith("ERROR: pytest-qwencmp:")]
    assert len(paragraphs) == 1, out
    if "empty-model" in model_a:
        assert "holds no config.json and weights" in paragraphs[0]
    else:  # everything that cannot be reached, in one paragraph: model A and the datasets (model B is local)
        assert f"it needs model {model_a!r} (--model-a) and the datasets" in paragraphs[0]
        assert "cais/mmlu" in paragraphs[0] and "cannot be reached: " in paragraphs[0]
        assert f"python -m pytest_qwencmp mirror --out DIR --model {model_a}`" in paragraphs[0]
        assert f"--data-dir=DIR --model-a=DIR/models/{model_a}" in paragraphs[0]
    assert "During handling" not in out and "Retrying in" not in out and "Traceback" not in out
    assert "evaluating (" not in out
    assert elapsed < 15


def test_datasets_that_cannot_be_downloaded_stop_the_session_at_once(pytester, suite, fresh_cache, demo_assets, monkeypatch, tmp_path):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-hf-home"))  # nothing downloaded before
    monkeypatch.setenv("HF_ENDPOINT", closed_port_endpoint())
    result = pytester.runpytest_inprocess(
        f"--model-a={demo_assets.model_a}", f"--model-b={demo_assets.model_b}", f"--eval-cache-dir={fresh_cache}",
        "-p", "no:cacheprovider",
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    err = result.stderr.str()
    assert err.count("ERROR: pytest-qwencmp: This run cannot start: it needs the datasets ") == 1
    assert "cais/mmlu" in err and "Rowan/hellaswag" in err and "google-research-datasets/mbpp" in err
    assert "Fix: where the hub can be reached, run `python -m pytest_qwencmp mirror --out DIR`" in err
    out = result.stdout.str()
    assert len((out + "\n" + err).splitlines()) <= 40 and "evaluating (" not in out  # no model ran


def test_a_corrupt_dataset_stops_the_session_at_start(pytester, suite, fresh_cache, demo_assets, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(demo_assets.data_dir, data)
    rows = data / "google-research-datasets/mbpp/full/test.jsonl"
    rows.write_text(rows.read_text().replace('"test_list"', '"tests"', 1))
    result = pytester.runpytest_inprocess(
        f"--model-a={demo_assets.model_a}", f"--model-b={demo_assets.model_b}", f"--data-dir={data}",
        f"--eval-cache-dir={fresh_cache}", "--benchmarks", "hellaswag,mbpp", "--limit", "2", "-p", "no:cacheprovider",
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    err = result.stderr.str()
    assert err.count(f"The local data of benchmark 'mbpp' is not usable: {rows}, line 1 `test_list` is missing") == 1
    assert "evaluating (" not in result.stdout.str() and not list(fresh_cache.glob("evaluations/*/*.json"))


def test_later_items_of_a_failed_benchmark_point_to_the_first_report(pytester, suite, fresh_cache, demo_assets, tmp_path):
    """A failure found only while evaluating (here: a copy without a README configs header, which the check at
    the start leaves to datasets) is reported in full once; the benchmark's other items name that report."""
    data = tmp_path / "data"
    shutil.copytree(demo_assets.data_dir, data)
    (data / "Rowan/hellaswag/README.md").unlink()
    (data / "Rowan/hellaswag/default/validation.jsonl").write_bytes(b"\x00\xff not text\n")
    result = pytester.runpytest_inprocess(
        f"--model-a={demo_assets.model_a}", f"--model-b={demo_assets.model_b}", f"--data-dir={data}",
        f"--eval-cache-dir={fresh_cache}", "--benchmarks", "hellaswag", "--limit", "2", "-p", "no:cacheprovider",
    )
    result.assert_outcomes(errors=2, deselected=59)
    out = result.stdout.str()
    assert reported_once(out, "The dataset of hellaswag could not be read (DatasetGenerationError: ")
    assert re.search(r"Not attempted again: The dataset of hellaswag could not be read .* — the same failure as "
                     r"test_hellaswag\.py::test_hellaswag\[acc\], reported in full there\.", out)
    assert "During handling" not in out


def test_progress_reaches_the_terminal_while_output_is_captured(pytester, fresh_cache):
    """Progress from a fixture (the demo build runs in one) is shown live, not in a "Captured stdout" section."""
    pytester.makeconftest(
        """
        import pytest

        @pytest.fixture
        def talk(qwencmp_run):
            qwencmp_run.progress("qwencmp: PROGRESS-DURING-SETUP")
            print("ordinary output stays captured")
        """
    )
    pytester.makepyfile(test_talk="def test_x(talk):\n    assert False\n")
    result = pytester.runpytest_inprocess("--demo", f"--eval-cache-dir={fresh_cache}", "-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    live, report = out.split("= FAILURES =", 1)
    assert "qwencmp: PROGRESS-DURING-SETUP" in live and "PROGRESS-DURING-SETUP" not in report
    assert "ordinary output stays captured" in report


def test_baselines_save_compare_and_refuse_mismatches(pytester, suite, fresh_cache, demo_assets, tmp_path):
    suite("[defaults]\nbaseline_tolerance = 1.0\n")
    baselines = tmp_path / "baselines"
    common = [f"--data-dir={demo_assets.data_dir}", f"--eval-cache-dir={fresh_cache}", "--benchmarks", "hellaswag,mbpp",
              "--limit", "5", f"--qwencmp-baseline-dir={baselines}", "-p", "no:cacheprovider",
              f"--expectations={pytester.path / 'expectations.toml'}"]
    models = [f"--model-a={demo_assets.model_a}", f"--model-b={demo_assets.model_b}"]
    saved = pytester.runpytest_inprocess(*models, *common, "--qwencmp-baseline-save", "main")
    saved.assert_outcomes(passed=3, deselected=58)
    assert "qwencmp: saved baseline 'main' to" in saved.stdout.str()
    document = json.loads((baselines / "main.json").read_text())
    assert document["name"] == "main" and document["settings"]["limit"] == 5

    same = pytester.runpytest_inprocess(*models, *common, "--qwencmp-baseline-compare", "main")
    same.assert_outcomes(passed=3, deselected=58)
    assert stats(same) == (0, 0, 4)
    out = same.stdout.str()
    assert "baseline: model B against 'main' (" in out  # the settings name the baseline
    assert "qwencmp: model B compared with baseline 'main' on 3 item(s): 0 regressed beyond their tolerance" in out
    assert re.search(r"MDE\s+B − baseline 'main'\s+Verdict", out)  # a column per table: B now − B then
    assert re.search(r"^acc\s.*\s\+0\.00\s+PASS", out, re.M), out

    # The candidate is now the weaker model: B fell against its own baseline.
    worse = [f"--model-a={demo_assets.model_a}", f"--model-b={demo_assets.model_a}"]
    regressed = pytester.runpytest_inprocess(*worse, *common, "--qwencmp-baseline-compare", "main")
    regressed.assert_outcomes(failed=3, deselected=58)
    out = regressed.stdout.str()
    assert "B regressed against baseline 'main'" in out
    assert "on 3 item(s): 3 regressed beyond their tolerance" in out
    assert re.search(r"^acc\s.*\s-\d+\.\d\d( \(worse\))? REGRESSED\s+FAIL", out, re.M), out

    # Other settings than the baseline's: refused at the start, before anything is evaluated.
    changed = [c if c != "5" else "4" for c in common]
    entries = sorted(fresh_cache.glob("evaluations/*/*.json"))
    refused = pytester.runpytest_inprocess(*models, *changed, "--qwencmp-baseline-compare", "main")
    assert refused.ret == pytest.ExitCode.USAGE_ERROR
    err = refused.stderr.str()
    assert err.count("ERROR: pytest-qwencmp: This run cannot be compared with baseline 'main'") == 1
    assert "limit: baseline 5, now 4" in err and "--qwencmp-baseline-allow-mismatch" in err
    assert len((refused.stdout.str() + "\n" + err).splitlines()) <= 40 and "evaluating (" not in refused.stdout.str()
    assert sorted(fresh_cache.glob("evaluations/*/*.json")) == entries  # nothing evaluated, nothing written
    allowed = pytester.runpytest_inprocess(*models, *changed, "--qwencmp-baseline-compare", "main", "--qwencmp-baseline-allow-mismatch")
    allowed.assert_outcomes(passed=3, deselected=58)
    assert "baseline settings differ (allowed)" in allowed.stdout.str()
    in_workers = pytester.runpytest_inprocess(
        *models, *changed, "--qwencmp-baseline-compare", "main", "--qwencmp-baseline-allow-mismatch", "-n", "2"
    )
    in_workers.assert_outcomes(passed=3)
    assert "baseline settings differ (allowed): limit: baseline 5, now 4" in in_workers.stdout.str()  # from the workers

    missing = pytester.runpytest_subprocess(*models, *common, "--qwencmp-baseline-compare", "nightly")
    assert missing.ret == pytest.ExitCode.USAGE_ERROR
    assert "main" in missing.stderr.str()  # lists the baselines that exist
