"""What a new user meets first: the README's own command forms, output, help text."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys

import pytest

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


# --------------------------------------------------------------------------- a setup problem: one paragraph, first


def one_paragraph_at_start(result, cache) -> str:
    """The session stopped at its start: exit 4, one short paragraph, no traceback, nothing loaded or evaluated."""
    out, err = result.stdout.str(), result.stderr.str()
    assert result.ret == pytest.ExitCode.USAGE_ERROR, out + err
    assert len((out + "\n" + err).splitlines()) <= 40, out + err
    assert err.count("ERROR: pytest-qwencmp: ") == 1 and len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in out + err and "site-packages" not in out + err
    assert "evaluating (" not in out and not list(cache.glob("evaluations/*/*.json"))  # no model ran, nothing cached
    return err


def _truncate_jsonl(path):
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:4]) + lines[4][:30])
    return path, "line 5 is not valid JSON"


def _out_of_range(path):
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    rows[2]["answer"] = 7
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path, "line 3 `answer` is 7; MMLU answers are 0–3"


def _truncated_parquet(path):
    pq = pytest.importorskip("pyarrow.parquet")
    import pyarrow as pa

    rows = [json.loads(line) for line in path.read_text().splitlines()]
    parquet = path.with_suffix(".parquet")
    pq.write_table(pa.Table.from_pylist(rows), parquet)
    parquet.write_bytes(parquet.read_bytes()[: parquet.stat().st_size // 2])
    path.unlink()
    card = path.parents[1] / "README.md"  # cais/mmlu/README.md
    card.write_text(card.read_text().replace(f"{path.parent.name}/{path.name}", f"{path.parent.name}/{parquet.name}"))
    return parquet, "is not a readable Parquet file"


@pytest.mark.parametrize("spoil", [_truncate_jsonl, _out_of_range, _truncated_parquet], ids=["truncated-jsonl", "answer-7", "truncated-parquet"])
def test_bad_local_data_stops_the_session_at_its_start(pytester, suite, fresh_cache, demo_assets, tmp_path, spoil):
    """A truncated file or a value out of range: one paragraph naming the file (and line), exit 4, before any model
    loads — not 58 errors after the other benchmarks ran (first contact, round 2)."""
    data = tmp_path / "data"
    shutil.copytree(demo_assets.data_dir, data)
    path, fragment = spoil(data / "cais/mmlu/anatomy/test.jsonl")
    result = pytester.runpytest_inprocess(
        f"--model-a={demo_assets.model_a}", f"--model-b={demo_assets.model_b}", f"--data-dir={data}",
        f"--eval-cache-dir={fresh_cache}", "-p", "no:cacheprovider",
    )
    err = one_paragraph_at_start(result, fresh_cache)
    assert f"The local data of benchmark 'mmlu' is not usable: {path}" in err and fragment in err, err
    assert "Nothing was loaded or evaluated." in err


def test_a_lock_held_too_long_ends_the_session_with_one_paragraph(pytester, suite, fresh_cache, demo_assets, make_run):
    """Another process keeps an evaluation's lock past --lock-timeout: one paragraph, exit 4, no item after it."""
    from filelock import FileLock

    from pytest_qwencmp.config.benchmarks import builtin_registry
    from pytest_qwencmp.evaluation.cache import EvaluationCache, cache_key

    run = make_run(fresh_cache, limit="2", benchmarks="hellaswag")
    key = cache_key(run.evaluator.key_parts("a", builtin_registry().get("hellaswag")))
    lock = EvaluationCache(fresh_cache).path_for(key).with_suffix(".lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    holder = FileLock(str(lock))
    holder.acquire()
    try:
        result = pytester.runpytest_inprocess(
            f"--model-a={demo_assets.model_a}", f"--model-b={demo_assets.model_b}", f"--data-dir={demo_assets.data_dir}",
            f"--eval-cache-dir={fresh_cache}", "--benchmarks=hellaswag", "--limit=2", "--lock-timeout=1", "-p", "no:cacheprovider",
        )
    finally:
        holder.release()
    out = result.stdout.str() + "\n" + result.stderr.str()
    assert result.ret == pytest.ExitCode.USAGE_ERROR, out
    assert len(out.splitlines()) <= 40 and "Traceback" not in out, out
    assert out.count("pytest-qwencmp: Gave up waiting for the evaluation of HellaSwag × model_a after 1s") == 1, out
    assert "--lock-timeout SECONDS" in out and "PASSED" not in out and "FAILED" not in out


@pytest.mark.parametrize("offline", ["HF_HUB_OFFLINE", "closed endpoint"])
def test_offline_headline_names_everything_that_cannot_be_reached(pytester, suite, fresh_cache, monkeypatch, tmp_path, offline):
    """The README's headline command without network: both models, the adapter and the datasets, one paragraph."""
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-hf-home"))  # nothing downloaded here before
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HUB_CACHE", "HF_DATASETS_CACHE"):
        monkeypatch.delenv(name, raising=False)
    if offline == "HF_HUB_OFFLINE":
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
        reason = "HF_HUB_OFFLINE is set"
    else:
        import socket

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            endpoint = f"http://127.0.0.1:{probe.getsockname()[1]}"  # nothing listens there once closed
        monkeypatch.setenv("HF_ENDPOINT", endpoint)
        reason = f"the hub ({endpoint}) cannot be reached: "
    result = pytester.runpytest_inprocess(
        "--model-a", "Qwen/Qwen2.5-1.5B", "--model-b", "Qwen/Qwen2.5-7B", "--peft-b", "someone/qwen-lora",
        f"--eval-cache-dir={fresh_cache}", "-p", "no:cacheprovider",
    )
    err = one_paragraph_at_start(result, fresh_cache)
    assert ("it needs model 'Qwen/Qwen2.5-1.5B' (--model-a), model 'Qwen/Qwen2.5-7B' (--model-b), PEFT adapter "
            "'someone/qwen-lora' (--peft-b) and the datasets ") in err, err
    assert all(path in err for path in ("cais/mmlu", "Rowan/hellaswag", "google-research-datasets/mbpp")), err
    assert reason in err
    assert ("`python -m pytest_qwencmp mirror --out DIR --model Qwen/Qwen2.5-1.5B --model Qwen/Qwen2.5-7B "
            "--model someone/qwen-lora`") in err
    assert ("--data-dir=DIR --model-a=DIR/models/Qwen/Qwen2.5-1.5B --model-b=DIR/models/Qwen/Qwen2.5-7B "
            "--peft-b=DIR/models/someone/qwen-lora") in err


def test_the_demo_with_another_data_dir_is_refused(pytester, suite, fresh_cache, tmp_path):
    """--demo reads only the data it builds: --data-dir=OTHER is refused rather than silently ignored."""
    result = pytester.runpytest_inprocess("--demo", f"--data-dir={tmp_path}", f"--eval-cache-dir={fresh_cache}", "-p", "no:cacheprovider")
    err = one_paragraph_at_start(result, fresh_cache)
    assert f"--demo brings its own data, so --data-dir={tmp_path} would not be read" in err


def test_ini_keys_help_never_points_at_itself(pytester):
    """An ini key's help names the option it stands for, not the ini key (``qwencmp_expectations``: "the default of
    qwencmp_expectations" was circular)."""
    out = pytester.runpytest_inprocess("--help").stdout.str()
    section = out[out.index("[pytest] configuration options"):]
    blocks = re.split(r"\n  (?=qwencmp_\w+ \()", section)
    keys = [b for b in blocks if b.startswith("qwencmp_")]
    assert len(keys) >= 15
    for block in keys:
        key = block.split(" ")[0]
        assert block.count(key) == 1, block  # the key itself, not its own help
