"""The GitHub Actions workflow: valid against GitHub's schema, and right where it matters.

The schema check uses the copy of SchemaStore's ``github-workflow.json`` that
check-jsonschema vendors (``--builtin-schema vendor.github-workflows``): no
network. The semantic checks read the YAML with PyYAML.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / ".github" / "workflows" / "evals.yml"
STUDY_PAIR = ("Qwen/Qwen2.5-1.5B", "Qwen/Qwen2.5-7B")

# An expression that puts event data controlled by whoever triggers the run into a script.
UNTRUSTED_EXPRESSION = re.compile(r"\$\{\{[^}]*\b(inputs\.|github\.event\.|github\.head_ref)[^}]*\}\}")


def load(path: Path = WORKFLOW) -> dict[str, Any]:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def triggers(workflow: dict[str, Any]) -> dict[str, Any]:
    # YAML 1.1 (PyYAML) reads the bare key `on` as the boolean True.
    return workflow.get("on", workflow.get(True))


def steps(workflow: dict[str, Any], job: str) -> list[dict[str, Any]]:
    return workflow["jobs"][job]["steps"]


def run_scripts(workflow: dict[str, Any]):
    for job_name, job in workflow["jobs"].items():
        for step in job.get("steps", []):
            if "run" in step:
                yield job_name, step.get("name", "?"), step["run"]


def pytest_evals_step(workflow: dict[str, Any]) -> dict[str, Any]:
    found = [s for s in steps(workflow, "evals") if "run" in s and "pytest" in s["run"] and "evals/" in s["run"]]
    assert len(found) == 1, "the evals job should have exactly one step that runs pytest on evals/"
    return found[0]


def validate(path: Path) -> subprocess.CompletedProcess[str]:
    """check-jsonschema against its vendored GitHub workflow schema (offline)."""
    return subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.github-workflows", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def workflow() -> dict[str, Any]:
    return load()


# --------------------------------------------------------------------------- schema


def test_check_jsonschema_is_installed():
    try:
        import check_jsonschema  # noqa: F401
    except ImportError:  # pragma: no cover - a broken test environment
        pytest.fail("check-jsonschema is a test dependency: pip install -e '.[test]'")


def test_workflow_is_valid_against_github_schema():
    result = validate(WORKFLOW)
    assert result.returncode == 0, result.stdout + result.stderr


def _without_runs_on(wf: dict[str, Any]) -> None:
    del wf["jobs"]["plugin-tests"]["runs-on"]
    del wf["jobs"]["plugin-tests"]["steps"]


def _runs_on_integer(wf: dict[str, Any]) -> None:
    wf["jobs"]["evals"]["runs-on"] = 42


def _step_with_uses_and_run(wf: dict[str, Any]) -> None:
    wf["jobs"]["evals"]["steps"][0]["run"] = "echo both"


@pytest.mark.parametrize(
    "breakage",
    [_without_runs_on, _runs_on_integer, _step_with_uses_and_run],
    ids=["job-without-runs-on-and-steps", "runs-on-integer", "step-with-uses-and-run"],
)
def test_schema_check_rejects_a_broken_workflow(tmp_path, breakage):
    broken = load()
    breakage(broken)
    path = tmp_path / "broken.yml"
    path.write_text(yaml.safe_dump(broken, sort_keys=False), encoding="utf-8")
    result = validate(path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Schema validation errors were encountered" in result.stdout + result.stderr


# --------------------------------------------------------------------------- semantics


def test_triggers(workflow):
    on = triggers(workflow)
    assert set(on) == {"workflow_dispatch", "schedule", "pull_request"}
    assert on["schedule"] and all("cron" in entry for entry in on["schedule"])
    assert {"pytest_qwencmp/**", "tests/**", "pyproject.toml"} <= set(on["pull_request"]["paths"])


def test_dispatch_inputs_default_to_the_study_pair(workflow):
    inputs = triggers(workflow)["workflow_dispatch"]["inputs"]
    assert (inputs["model_a"]["default"], inputs["model_b"]["default"]) == STUDY_PAIR
    for optional in ("benchmarks", "limit", "extra_args"):
        assert inputs[optional]["required"] is False
    # A scheduled run has no inputs: the job env falls back to the same pair.
    env = workflow["jobs"]["evals"]["env"]
    assert STUDY_PAIR[0] in env["MODEL_A"] and STUDY_PAIR[1] in env["MODEL_B"]


def test_gpu_job_runs_on_self_hosted_gpu_only_when_asked(workflow):
    job = workflow["jobs"]["evals"]
    assert {"self-hosted", "gpu"} <= set(job["runs-on"])
    assert "workflow_dispatch" in job["if"] and "schedule" in job["if"]
    assert "pull_request" not in job["if"]


def test_gpu_job_caches_pip_and_the_hf_cache_keyed_by_the_models(workflow):
    evals_steps = steps(workflow, "evals")
    setup_python = [s for s in evals_steps if str(s.get("uses", "")).startswith("actions/setup-python@")]
    assert setup_python and setup_python[0]["with"]["cache"] == "pip"
    hf_cache = [
        s
        for s in evals_steps
        if str(s.get("uses", "")).startswith("actions/cache@") and "huggingface" in str(s["with"]["path"])
    ]
    assert len(hf_cache) == 1
    key = hf_cache[0]["with"]["key"]
    assert "MODEL_A" in key and "MODEL_B" in key


def test_gpu_job_installs_the_project(workflow):
    scripts = "\n".join(s["run"] for s in steps(workflow, "evals") if "run" in s)
    assert "pip install -e ." in scripts


def test_pytest_command_line(workflow):
    script = pytest_evals_step(workflow)["run"]
    for option in (
        "--model-a",
        "--model-b",
        "--html=report.html",
        "--self-contained-html",
        "--junitxml=junit.xml",
        "--qwencmp-json=results.json",
        "--qwencmp-markdown=summary.md",
    ):
        assert option in script, option
    assert '"$MODEL_A"' in script and '"$MODEL_B"' in script


def test_report_upload_always_runs_and_lists_the_three_files(workflow):
    uploads = [s for s in steps(workflow, "evals") if str(s.get("uses", "")).startswith("actions/upload-artifact@")]
    assert len(uploads) == 1
    upload = uploads[0]
    assert upload["uses"] == "actions/upload-artifact@v4"
    assert upload["if"] == "always()"
    listed = set(upload["with"]["path"].split())
    assert {"report.html", "results.json", "junit.xml"} <= listed
    # The upload comes after the step that writes the files.
    evals_steps = steps(workflow, "evals")
    assert evals_steps.index(upload) > evals_steps.index(pytest_evals_step(workflow))


def test_no_untrusted_expression_inside_a_run_script(workflow):
    offenders = [
        f"{job}/{name}: {match.group(0)}"
        for job, name, script in run_scripts(workflow)
        for match in UNTRUSTED_EXPRESSION.finditer(script)
    ]
    assert not offenders, offenders
    # ... and the inputs do reach the job, through env.
    env = workflow["jobs"]["evals"]["env"]
    for name, value in {"BENCHMARKS": "benchmarks", "LIMIT": "limit", "EXTRA_ARGS": "extra_args"}.items():
        assert f"inputs.{value}" in env[name]


def test_untrusted_expression_pattern_catches_interpolation():
    assert UNTRUSTED_EXPRESSION.search('pytest --model-a "${{ inputs.model_a }}"')
    assert UNTRUSTED_EXPRESSION.search("echo ${{github.event.inputs.limit}}")
    assert not UNTRUSTED_EXPRESSION.search('pytest --model-a "$MODEL_A" ${{ runner.os }}')


def test_plugin_tests_job(workflow):
    job = workflow["jobs"]["plugin-tests"]
    assert job["runs-on"] == "ubuntu-latest"
    assert "if" not in job  # it runs on pull requests as well as with the evals
    setup_python = [s for s in job["steps"] if str(s.get("uses", "")).startswith("actions/setup-python@")]
    assert setup_python and str(setup_python[0]["with"]["python-version"]) == "3.11"
    scripts = "\n".join(s["run"] for s in job["steps"] if "run" in s)
    assert "--index-url https://download.pytorch.org/whl/cpu" in scripts
    assert "pip install -e '.[test]'" in scripts
    assert scripts.index("download.pytorch.org") < scripts.index("pip install -e '.[test]'")
    assert "python -m pytest tests -n 2" in scripts  # the README's test command
    assert "python -m pytest tests -m slow" in scripts  # and what it leaves out


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_hostile_inputs_reach_pytest_as_plain_arguments(workflow, tmp_path):
    """The pytest step, run by bash with pytest replaced by printf: inputs are data, never code."""
    script = pytest_evals_step(workflow)["run"].replace("python -m pytest", "printf '%s\\n'")
    marker = tmp_path / "pwned"
    env = dict(
        os.environ,
        MODEL_A="Qwen/Qwen2.5-1.5B",
        MODEL_B=f'x"; touch {marker}; echo "',
        BENCHMARKS="mmlu,mbpp",
        LIMIT="5",
        EXTRA_ARGS=f"-k overall $(touch {marker}) `touch {marker}` *",
    )
    result = subprocess.run(["bash", "-e", "-c", script], env=env, cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    args = result.stdout.splitlines()
    assert not marker.exists()
    assert args[:5] == ["evals/", "--model-a", "Qwen/Qwen2.5-1.5B", "--model-b", env["MODEL_B"]]
    assert args[args.index("--benchmarks") + 1] == "mmlu,mbpp" and args[args.index("--limit") + 1] == "5"
    # Split on spaces, nothing else: no command substitution, no glob expansion.
    assert args[-7:] == ["-k", "overall", "$(touch", f"{marker})", "`touch", f"{marker}`", "*"]

    # Empty optional inputs add nothing.
    env.update(BENCHMARKS="", LIMIT="", EXTRA_ARGS="")
    result = subprocess.run(["bash", "-e", "-c", script], env=env, cwd=tmp_path, capture_output=True, text=True)
    assert "--benchmarks" not in result.stdout.splitlines() and "--limit" not in result.stdout.splitlines()


# --------------------------------------------------------------------------- the matrix form (evals-matrix.yml)

MATRIX = ROOT / ".github" / "workflows" / "evals-matrix.yml"


@pytest.fixture(scope="module")
def matrix() -> dict[str, Any]:
    return load(MATRIX)


def named_step(workflow: dict[str, Any], job: str, fragment: str) -> dict[str, Any]:
    (found,) = [s for s in steps(workflow, job) if fragment in str(s.get("run", "")) + str(s.get("uses", ""))]
    return found


def test_matrix_workflow_is_valid_against_github_schema():
    result = validate(MATRIX)
    assert result.returncode == 0, result.stdout + result.stderr


def test_matrix_runs_shard_k_of_n_on_gpu_runners(matrix):
    assert set(triggers(matrix)) == {"workflow_dispatch"}
    assert triggers(matrix)["workflow_dispatch"]["inputs"]["model_a"]["default"] == STUDY_PAIR[0]
    job = matrix["jobs"]["shard"]
    assert {"self-hosted", "gpu"} <= set(job["runs-on"]) and job["needs"] == "plan"
    assert job["strategy"]["fail-fast"] is False  # one failing shard must not cancel the others
    assert job["strategy"]["matrix"]["shard"] == "${{ fromJSON(needs.plan.outputs.shards) }}"
    assert job["env"]["SHARD"] == "${{ matrix.shard }}/${{ needs.plan.outputs.count }}"
    script = named_step(matrix, "shard", 'python -m pytest "${args[@]}"')["run"]
    for fragment in ('--qwencmp-shard "$SHARD"', '--qwencmp-json="$RESULTS"', '"$MODEL_A"', '"$MODEL_B"'):
        assert fragment in script, fragment
    upload = named_step(matrix, "shard", "actions/upload-artifact@")
    assert upload["if"] == "always()" and upload["with"]["path"] == "shard-${{ matrix.shard }}.json"
    assert job["env"]["RESULTS"] == upload["with"]["path"]


@pytest.mark.skipif(shutil.which("bash") is None or shutil.which("python3") is None, reason="needs bash and python3")
@pytest.mark.parametrize("shards, expected", [("3", ["count=3", "shards=[1, 2, 3]"]), ("1", ["count=1", "shards=[1]"]),
                                              ("0", None), ("$(touch pwned)", None), ("65", None)])
def test_plan_step_turns_n_into_the_matrix(matrix, tmp_path, shards, expected):
    script = named_step(matrix, "plan", "GITHUB_OUTPUT")["run"]
    output = tmp_path / "output"
    env = dict(os.environ, SHARDS=shards, GITHUB_OUTPUT=str(output))
    result = subprocess.run(["bash", "-e", "-c", script], env=env, cwd=tmp_path, capture_output=True, text=True)
    assert not (tmp_path / "pwned").exists()
    if expected is None:
        assert result.returncode != 0 and "shards must be a whole number from 1 to 64" in result.stderr
    else:
        assert result.returncode == 0, result.stderr
        assert output.read_text().splitlines() == expected


def test_model_a_cache_is_restored_imported_exported_and_saved(matrix):
    job_steps = steps(matrix, "shard")
    restore = named_step(matrix, "shard", "actions/cache/restore@")
    imported = named_step(matrix, "shard", "pytest_qwencmp cache import")
    compare = named_step(matrix, "shard", 'python -m pytest "${args[@]}"')
    exported = named_step(matrix, "shard", "pytest_qwencmp cache export")
    save = named_step(matrix, "shard", "actions/cache/save@")
    order = [job_steps.index(s) for s in (restore, imported, compare, exported, save)]
    assert order == sorted(order)
    key = restore["with"]["key"]
    assert save["with"]["key"] == key and save["with"]["path"] == restore["with"]["path"] == "qwencmp-a-cache"
    for part in ("env.MODEL_A", "hashFiles(", "matrix.shard", "needs.plan.outputs.count", "github.run_id"):
        assert part in key, part
    assert "MODEL_B" not in key  # A's evaluations do not depend on the candidate
    assert restore["with"]["restore-keys"].strip() == key[: key.index("${{ github.run_id }}")]
    assert "--side a" in exported["run"] and '--results "$RESULTS"' in exported["run"]
    assert exported["if"] == save["if"] == "always()"
    assert "--cache-dir .qwencmp" in imported["run"] and "--eval-cache-dir=.qwencmp" in compare["run"]


def test_merge_job_runs_on_a_hosted_runner_and_publishes_the_report(matrix):
    job = matrix["jobs"]["merge"]
    assert job["runs-on"] == "ubuntu-latest" and "shard" in job["needs"]
    assert job["if"].startswith("always()")  # a failed shard still gets its missing-shard paragraph
    install = named_step(matrix, "merge", "pip install --no-deps")["run"]
    assert "torch" not in install and "lm-eval" not in install
    download = named_step(matrix, "merge", "actions/download-artifact@")
    upload_name = named_step(matrix, "shard", "actions/upload-artifact@")["with"]["name"]
    assert download["with"]["pattern"] == upload_name.replace("${{ matrix.shard }}", "*")
    script = named_step(matrix, "merge", "pytest_qwencmp merge")["run"]
    for option in ("--html report.html", "--json results.json", "--markdown summary.md", "--junitxml junit.xml"):
        assert option in script, option
    report = [s for s in steps(matrix, "merge") if str(s.get("uses", "")).startswith("actions/upload-artifact@")]
    assert len(report) == 1 and report[0]["if"] == "always()"
    assert {"report.html", "results.json", "junit.xml", "summary.md"} <= set(report[0]["with"]["path"].split())


def test_matrix_inputs_reach_scripts_only_through_env(matrix):
    offenders = [
        f"{job}/{name}: {match.group(0)}"
        for job, name, script in run_scripts(matrix)
        for match in UNTRUSTED_EXPRESSION.finditer(script)
    ]
    assert not offenders, offenders


def test_ci_runs_exactly_the_readme_test_command():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Running the plugin's own tests", 1)[1]
    command = section.split("```", 2)[1].strip()
    ci_lines = [line for line in (ROOT / ".ci" / "run").read_text().splitlines() if line and not line.startswith(("#", "set ", "cd "))]
    assert ci_lines == [command]
