"""What a new user meets first: the README's own command forms, output, help text."""

from __future__ import annotations

import re
import subprocess
import sys

from conftest import REPO


def test_python_dash_m_pytest_from_the_project_root_gives_no_rewrite_warning():
    """``python -m pytest evals/`` (the README's form) must not warn that ``__main__`` cannot be rewritten.

    pytest marks a plugin's top-level modules for assertion rewriting from the
    distribution's file list (the project's egg-info in the rootdir); without a
    package ``__init__`` every module of ours looked top-level, ``__main__`` among them.
    """
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "evals/", "--collect-only", "-q", "-p", "no:cacheprovider"],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "61 tests collected" in result.stdout
    assert "PytestAssertRewriteWarning" not in result.stdout + result.stderr


def test_a_users_suite_help_shows_no_pytester_options():
    """``pytest evals/ --help`` lists the qwencmp group, not the options of the plugin's own test tooling."""
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "evals/", "--help", "-p", "no:cacheprovider"],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "pytest-qwencmp" in result.stdout
    assert "--runpytest" not in result.stdout and "--lsof" not in result.stdout


def test_mirror_help_suggests_the_option_form_the_readme_recommends():
    """Path options given as ``--data-dir=OUT``: with a space, pytest may take OUT as a rootdir candidate."""
    from pytest_qwencmp.cli import build_parser

    commands = build_parser()._subparsers._group_actions[0].choices
    text = commands["mirror"].format_help()
    assert "--data-dir=OUT" in text and "--data-dir OUT" not in text
    assert "--model-a=OUT/models/" in text


def test_option_help_reads_as_values_and_states_defaults(pytester):
    """Metavars name what to type (MODEL, DIR, N), not dest names; defaults are stated; README names the group."""
    out = pytester.runpytest_inprocess("--help").stdout.str()
    for shown in ("--model-a=MODEL", "--model-b=MODEL", "--data-dir=DIR", "--limit=N", "--batch-size=N",
                  "--eval-cache-dir=DIR", "--expectations=FILE", "--device=DEVICE", "--backend=NAME"):
        assert shown in out, shown
    assert "QWENCMP_" not in out  # argparse's fallback metavar: the option's dest in capitals
    section = out[out.index("pytest-qwencmp:"):]
    for option, default in (("--batch-size", "default: auto"), ("--device", "default: auto"), ("--backend", "default: auto")):
        text = " ".join(section[section.index(option):].split("\n  --")[0].split())
        assert default in text, (option, text)
    group_title = out[out.index("pytest-qwencmp:"):].split(":")[0]
    assert f"`{group_title}` group" in (REPO / "README.md").read_text()


def test_a_logged_cold_run_has_no_bars_and_a_cached_rerun_imports_no_model_stack(pytester, suite, fresh_cache):
    """Output that is not a terminal (a CI log) gets one line per evaluation, not tqdm's bars; a rerun
    with nothing to evaluate imports no torch, transformers, lm-eval, datasets or deepspeed."""
    pytester.makeconftest(
        """
        import sys
        def pytest_sessionfinish(session):
            heavy = [m for m in ("torch", "transformers", "lm_eval", "datasets", "deepspeed") if m in sys.modules]
            print("HEAVY-MODULES:", heavy)
        """
    )
    args = ["--demo", f"--eval-cache-dir={fresh_cache}", "-p", "no:cacheprovider", "--benchmarks", "hellaswag,mbpp", "--limit", "2"]
    cold = pytester.runpytest_subprocess(*args)
    cold.assert_outcomes(passed=3, deselected=58)
    out = cold.stdout.str() + cold.stderr.str()
    progress = [line for line in out.splitlines() if "qwencmp: " in line and " × model_" in line]
    assert len(progress) == 8, progress  # start and end of 2 benchmarks x 2 models
    assert all(line.startswith("qwencmp: ") for line in progress), progress  # not glued to pytest's dots
    assert len(cold.stdout.lines) <= 48, cold.stdout.str()  # a CI log: no bars, settings on a few lines (46 measured)
    lone = [line for line in out.splitlines() if re.fullmatch(r"[.FEsx]+\s*(\[\s*\d+%\])?", line)]
    assert lone == [], lone  # each result letter follows its file name, also after progress lines
    assert re.search(r"^evals/test_hellaswag\.py \.\.\s+\[", out, re.M) or re.search(r"^test_hellaswag\.py \.\.\s+\[", out, re.M), out
    sandbox = [line for line in out.splitlines() if line.startswith("code sandbox:")]
    assert len(sandbox) == 1 and len(sandbox[0]) <= 120, sandbox  # MBPP ran: one short line (details in the HTML)
    notes = [line for line in out.splitlines() if "float16 requested, but this CPU run used float32" in line]
    assert notes == ["note (both models): float16 requested, but this CPU run used float32 (hf backend)"], notes
    for bar in ("it/s]", "Running loglikelihood requests", "Running generate_until", "Loading weights", "Map:"):
        assert bar not in out, bar

    rerun = pytester.runpytest_subprocess(*args)
    rerun.assert_outcomes(passed=3, deselected=58)
    out = rerun.stdout.str()
    assert "0 model load(s), 0 evaluation(s)" in out and "4 cached evaluation(s) reused" in out
    assert "HEAVY-MODULES: []" in out
