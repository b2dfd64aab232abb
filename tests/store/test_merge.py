"""Shards end to end on the demo: separate processes and caches, `merge`, and model A's cache carried to a fresh one.

The module fixture runs the two shards of one comparison (`--demo --benchmarks hellaswag,mbpp --limit 2`) at the
same time, each in its own process with its own cache directory. The tests then merge the shards and compare the
result with a single run of the whole comparison, break the inputs on purpose, and carry model A's evaluations to a
fresh cache. The full three-benchmark version, where the single run also evaluates on its own, is marked slow.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import pytest

from pytest_qwencmp.cli import main
from pytest_qwencmp.config.benchmarks import builtin_registry
from pytest_qwencmp.store.exchange import ImportedEntries

REPO = Path(__file__).resolve().parents[2]
SCHEMA = REPO / "pytest_qwencmp" / "report" / "results.schema.json"
# A fails its MBPP floor (it never finishes a program): the merge must report the same failure as the single run.
EXPECTATIONS = """
[hellaswag]
floor_b = 0.0
[mbpp."pass@1"]
floor_a = 50.0
"""
HEAVY = ("torch", "lm_eval", "transformers", "datasets", "deepspeed")


@dataclass(frozen=True)
class Sharded:
    root: Path
    args: tuple[str, ...]

    def path(self, name: str) -> Path:
        return self.root / name

    def cache(self, name: str) -> Path:
        return self.root / f"cache-{name}"

    def single_run_outputs(self) -> list[str]:
        return ["--qwencmp-json=full.json", "--junitxml=full.xml", "--qwencmp-markdown=full.md"]


def write_suite(root: Path) -> None:
    for name in ("test_mmlu.py", "test_hellaswag.py", "test_mbpp.py"):
        shutil.copy(REPO / "evals" / name, root / name)
    (root / "pyproject.toml").write_text('[tool.pytest.ini_options]\nqwencmp_demo_expectations = "expectations.toml"\n')
    (root / "expectations.toml").write_text(textwrap.dedent(EXPECTATIONS))


def start(root: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", *args],
        cwd=root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=dict(os.environ),
    )


def finish(process: subprocess.Popen, allowed=(0, 1)) -> str:
    out, _ = process.communicate(timeout=900)
    assert process.returncode in allowed, out[-4000:]
    return out


def run_sharded(root: Path, demo_cache: Path, args: tuple[str, ...], shards: int = 2, single: bool = False) -> Sharded:
    """Every shard (and, with ``single``, the single run too) at the same time, each with a fresh cache of its own."""
    write_suite(root)
    sharded = Sharded(root, args)
    names = [*(["full"] if single else []), *(f"shard-{k}" for k in range(1, shards + 1))]
    for name in names:
        shutil.copytree(demo_cache / "demo", sharded.cache(name) / "demo", symlinks=True)
    processes = [start(root, *args, *sharded.single_run_outputs(), f"--eval-cache-dir={sharded.cache('full')}")] if single else []
    for k in range(1, shards + 1):
        processes.append(start(root, *args, f"--eval-cache-dir={sharded.cache(f'shard-{k}')}", f"--qwencmp-shard={k}/{shards}",
                               f"--qwencmp-json=shard-{k}.json"))
    outputs = [process.communicate(timeout=900)[0] for process in processes]  # every process ends before any check
    for name, process, out in zip(names, processes, outputs):
        (root / f"{name}.log").write_text(out)
        assert process.returncode in (0, 1), f"{name}:\n{out[-4000:]}"
    return sharded


@pytest.fixture(scope="module")
def sharded(demo_cache, tmp_path_factory) -> Sharded:
    return run_sharded(tmp_path_factory.mktemp("sharded"), demo_cache, ("--demo", "--benchmarks", "hellaswag,mbpp", "--limit", "2"))


def merge(capsys, *args) -> tuple[int, str, str]:
    status = main(["merge", *map(str, args)])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def junit_cases(path: Path) -> dict[str, dict]:
    cases = {}
    for case in ET.parse(path).getroot().iter("testcase"):
        cases[f"{case.get('classname')}::{case.get('name')}"] = {
            "properties": [(p.get("name"), p.get("value")) for p in case.iter("property")],
            "failed": case.find("failure") is not None,
        }
    return cases


def tables(markdown: str) -> list[str]:
    return [line for line in markdown.splitlines() if line.startswith(("|", "###"))]


# ----------------------------------------------------------------------------- merge


def single_run(sharded: Sharded, pytester, tmp_path: Path) -> Path:
    """The single full run of the same comparison, in-process, with a cache holding what the two shards evaluated.

    (Cheap: nothing is evaluated again. The slow test below has the single run evaluate on its own.)
    """
    cache = tmp_path / "cache-full"
    shutil.copytree(sharded.cache("shard-1") / "demo", cache / "demo", symlinks=True)
    for k in (1, 2):
        shutil.copytree(sharded.cache(f"shard-{k}") / "evaluations", cache / "evaluations", dirs_exist_ok=True)
    write_suite(pytester.path)
    outputs = [f"--qwencmp-json={tmp_path / 'full.json'}", f"--junitxml={tmp_path / 'full.xml'}",
               f"--qwencmp-markdown={tmp_path / 'full.md'}"]
    result = pytester.runpytest_inprocess(*sharded.args, f"--eval-cache-dir={cache}", *outputs, "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, failed=1, deselected=58)  # A misses its MBPP floor
    assert "qwencmp: 0 model load(s), 0 evaluation(s) (0.0s), 4 cached evaluation(s) reused" in result.stdout.str()
    return tmp_path


def test_merged_shards_equal_the_single_run(sharded, pytester, capsys, tmp_path):
    full = single_run(sharded, pytester, tmp_path)
    shard_log = sharded.path("shard-1.log").read_text() + sharded.path("shard-2.log").read_text()
    assert "qwencmp: shard 1/2 runs mbpp; shard 2/2 runs hellaswag" in shard_log
    out = {name: tmp_path / name for name in ("merged.json", "merged.html", "merged.md", "merged.xml")}
    status, stdout, _ = merge(capsys, sharded.path("shard-1.json"), sharded.path("shard-2.json"), "--json", out["merged.json"],
                              "--html", out["merged.html"], "--markdown", out["merged.md"], "--junitxml", out["merged.xml"])
    assert status == 1  # model A misses its MBPP floor, as in the single run
    assert "qwencmp merge: 2 file(s), 3 items, 2 passed, 1 failed" in stdout

    single = json.loads((full / "full.json").read_text())
    merged = json.loads(out["merged.json"].read_text())
    assert [(c["benchmark"], c["item"]) for c in single["comparisons"]] == [
        ("hellaswag", "acc"), ("hellaswag", "acc_norm"), ("mbpp", "pass@1")
    ]
    for mine, theirs in zip(merged["comparisons"], single["comparisons"]):
        for key in ("a", "b", "delta", "ci_low", "ci_high", "p_value", "adjusted_p", "significance", "passed", "outcome", "examples"):
            assert key in theirs and mine[key] == theirs[key], key
    assert merged["comparisons"] == single["comparisons"]  # every field, to the last digit
    assert merged["passed"] is False and merged["benchmarks"] == single["benchmarks"]
    assert merged["settings"]["merged_from"] == ["shard-1.json (shard 1/2)", "shard-2.json (shard 2/2)"]
    for side in ("a", "b"):  # lm-eval's own results objects (their config names each run's model folder)
        for name in ("hellaswag", "mbpp"):
            assert merged["models"][side]["lm_eval"][name]["results"] == single["models"][side]["lm_eval"][name]["results"]
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads(SCHEMA.read_text())
    jsonschema.validate(merged, schema)
    jsonschema.validate(single, schema)

    # JUnit: the same testcases with the same properties as pytest's own --junitxml of the single run.
    assert junit_cases(out["merged.xml"]) == junit_cases(full / "full.xml")
    assert tables(out["merged.md"].read_text()) == tables((full / "full.md").read_text())
    page = out["merged.html"].read_text()
    assert page.startswith("<!DOCTYPE html>") and 'id="qwencmp-hellaswag"' in page and 'id="qwencmp-mbpp"' in page


def test_merge_judges_with_other_expectations_and_says_when_all_pass(sharded, capsys, tmp_path):
    lenient = tmp_path / "lenient.toml"
    lenient.write_text("[defaults]\nfloor_a = 0.0\n")
    status, stdout, _ = merge(capsys, sharded.path("shard-2.json"), sharded.path("shard-1.json"), "--expectations", lenient)
    assert status == 0 and "3 items, 3 passed, 0 failed" in stdout
    status, _, _ = merge(capsys, sharded.path("shard-1.json"), sharded.path("shard-2.json"), "--correction", "bonferroni")
    assert status == 4


def edited(sharded: Sharded, tmp_path: Path, name: str, change) -> Path:
    document = json.loads(sharded.path(name).read_text())
    change(document)
    path = tmp_path / name
    path.write_text(json.dumps(document))
    return path


def assert_one_paragraph(status: int, err: str, *fragments: str) -> None:
    assert status == 4, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    for fragment in fragments:
        assert fragment in err, err


def test_settings_that_differ_between_shards_are_one_paragraph(sharded, capsys, tmp_path):
    def bfloat16_b(document):
        document["saved_evaluations"]["settings"]["runs"]["b"]["dtype"] = "bfloat16"
        document["saved_evaluations"]["settings"]["limit"] = 3

    other = edited(sharded, tmp_path, "shard-2.json", bfloat16_b)
    status, _, err = merge(capsys, sharded.path("shard-1.json"), other)
    assert_one_paragraph(status, err, "Cannot merge shard-1.json, shard-2.json: shard-1.json and shard-2.json differ in settings "
                         "that change the numbers — limit: shard-1.json 2, shard-2.json 3; "
                         "dtype (model B): shard-1.json float32, shard-2.json bfloat16.", "rerun a failed or missing shard")
    assert len(err) < 400, err  # short: what differs and the fix


def test_options_may_come_between_the_shard_files(sharded, capsys, tmp_path):
    """`merge a.json --expectations=F b.json`: the files after an option are shards too."""
    rules = tmp_path / "rules.toml"
    rules.write_text("[mbpp]\nfloor_a = 0\n")
    status, out, err = merge(capsys, sharded.path("shard-1.json"), f"--expectations={rules}", sharded.path("shard-2.json"),
                             "--json", tmp_path / "merged.json")
    assert status in (0, 1) and err == "", err
    document = json.loads((tmp_path / "merged.json").read_text())
    assert {r["benchmark"] for r in document["comparisons"]} == {"hellaswag", "mbpp"}
    assert document["settings"]["expectations"]["path"] == str(rules)  # the file that judged the merge
    assert document["settings"]["expectations"]["sha256"] == hashlib.sha256(rules.read_bytes()).hexdigest()
    with pytest.raises(SystemExit) as stopped:  # argparse's usage error, as for any unknown option
        merge(capsys, sharded.path("shard-1.json"), "--no-such-option", sharded.path("shard-2.json"))
    assert stopped.value.code == 2 and "unrecognized arguments: --no-such-option" in capsys.readouterr().err


def test_a_missing_or_repeated_shard_or_item_is_one_paragraph(sharded, capsys, tmp_path):
    status, _, err = merge(capsys, sharded.path("shard-1.json"))
    assert_one_paragraph(status, err, "shard 2/2 (hellaswag) is missing")
    status, _, err = merge(capsys, sharded.path("shard-1.json"), sharded.path("shard-1.json"), sharded.path("shard-2.json"))
    assert_one_paragraph(status, err, "shard 1/2 is given 2 times", "1 item(s) are in more than one file (mbpp[pass@1])")
    many = [sharded.path("shard-1.json")] * 2 + [sharded.path("shard-2.json")] * 2  # every item twice: still short
    status, _, err = merge(capsys, *many)
    assert_one_paragraph(status, err, "item(s) are in more than one file")
    assert len(err) < 700, err
    partial = edited(sharded, tmp_path, "shard-2.json", lambda d: d["comparisons"].pop())
    status, _, err = merge(capsys, sharded.path("shard-1.json"), partial)
    assert_one_paragraph(status, err, "1 of the 2 items of hellaswag are missing (hellaswag[acc_norm])")


@pytest.mark.parametrize(
    "content, fragment",
    [
        (None, "the file does not exist"),
        ("{", "it is not valid JSON"),
        ('{"items": []}', "it is not a pytest-qwencmp results file"),
        ('{"comparisons": [], "settings": {}}', "it holds no per-document evaluations"),
        ('{"comparisons": [], "settings": {}, "saved_evaluations": {"format": 7}}', "its saved_evaluations block has saved-evaluations format 7, written by a newer pytest-qwencmp"),
    ],
)
def test_unusable_files_are_one_paragraph(capsys, tmp_path, content, fragment):
    path = tmp_path / "shard.json"
    if content is not None:
        path.write_text(content)
    status, _, err = merge(capsys, path)
    assert_one_paragraph(status, err, f"Cannot merge {path}: {fragment}")


def test_merge_loads_no_model_stack(sharded, tmp_path):
    script = (
        "import sys\nfrom pytest_qwencmp.cli import main\n"
        f"status = main(['merge', {str(sharded.path('shard-1.json'))!r}, {str(sharded.path('shard-2.json'))!r}, "
        f"'--json', {str(tmp_path / 'm.json')!r}])\n"
        f"print('HEAVY', sorted(m for m in {HEAVY!r} if m in sys.modules))\nsys.exit(status)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, env=dict(os.environ))
    assert done.returncode == 1, done.stderr
    assert "HEAVY []" in done.stdout


# ----------------------------------------------------------------------------- model A evaluated once


def test_model_a_imported_into_a_fresh_cache_leaves_only_b_to_evaluate(sharded, pytester, capsys, tmp_path):
    exported = tmp_path / "a-cache"
    for k in (1, 2):
        assert main(["cache", "export", "--side", "a", f"--cache-dir={sharded.cache(f'shard-{k}')}", f"--out={exported}",
                     f"--results={sharded.path(f'shard-{k}.json')}"]) == 0
    assert sorted(p.name.split("-")[0] for p in exported.iterdir()) == ["hellaswag", "mbpp"]
    fresh = tmp_path / "fresh"
    shutil.copytree(sharded.cache("shard-1") / "demo", fresh / "demo", symlinks=True)
    assert main(["cache", "import", str(exported), f"--cache-dir={fresh}"]) == 0
    assert "Imported 2 evaluation(s)" in capsys.readouterr().out

    write_suite(pytester.path)
    result = pytester.runpytest_inprocess(*sharded.args, f"--eval-cache-dir={fresh}", "--qwencmp-json=b-only.json", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, failed=1, deselected=58)
    out = result.stdout.str()
    assert "qwencmp: 1 model load(s), 2 evaluation(s)" in out and "2 cached evaluation(s) reused" in out
    assert f"qwencmp: model A: reused hellaswag, mbpp imported from {exported}" in out
    assert "qwencmp: model B: evaluated hellaswag, mbpp" in out
    document = json.loads((pytester.path / "b-only.json").read_text())
    assert document["stats"]["evaluated"] == {"b": ["hellaswag", "mbpp"]}
    assert set(document["stats"]["reused"]["a"]) == {"hellaswag", "mbpp"}
    merge(capsys, sharded.path("shard-1.json"), sharded.path("shard-2.json"), "--json", tmp_path / "merged.json")
    assert document["comparisons"] == json.loads((tmp_path / "merged.json").read_text())["comparisons"]

    # A near miss: the same model and benchmark under another limit is not used, and one line says why.
    record = next(r for r in ImportedEntries(fresh).records() if r["benchmark"] == "hellaswag")
    parts = {**record["key_parts"], "limit": 5}
    (line,) = ImportedEntries(fresh).explain_miss("a", builtin_registry().get("hellaswag"), parts)
    assert line.startswith(f"qwencmp: HellaSwag × model_a: not reusing the entry imported from {exported}")
    assert line.endswith("settings that change the numbers differ: limit: imported entry 2, this run 5")
    assert ImportedEntries(fresh).explain_miss("b", builtin_registry().get("hellaswag"), parts) == []

    # A run under another limit would evaluate model A again instead of reusing it: it stops at the start.
    entries = sorted(fresh.glob("evaluations/*/*.json"))
    other_limit = [a if a != "2" else "3" for a in sharded.args]
    refused = pytester.runpytest_inprocess(*other_limit, f"--eval-cache-dir={fresh}", "-p", "no:cacheprovider")
    assert refused.ret == pytest.ExitCode.USAGE_ERROR
    err = refused.stderr.str()
    assert err.count(f"ERROR: pytest-qwencmp: This run would evaluate again what was imported into {fresh}") == 1
    assert re.search(r"model A's hellaswag( and mbpp)?: limit: imported entry 2, this run 3 \(the entry imported from", err), err
    assert "pass --qwencmp-reevaluate-imported to evaluate anew" in err and len(err.splitlines()) <= 2
    assert "evaluating (" not in refused.stdout.str() and sorted(fresh.glob("evaluations/*/*.json")) == entries


def test_an_edited_or_foreign_entry_is_refused(sharded, capsys, tmp_path):
    exported = tmp_path / "a-cache"
    main(["cache", "export", "--side", "a", f"--cache-dir={sharded.cache('shard-1')}", f"--out={exported}"])
    (entry,) = exported.iterdir()
    data = json.loads(entry.read_text())
    data["evaluations"][0]["key_parts"]["limit"] = None  # claims a full run
    entry.write_text(json.dumps(data))
    status = main(["cache", "import", str(exported), f"--cache-dir={tmp_path / 'c'}"])
    err = capsys.readouterr().err
    assert status == 2 and "its cache key is not the hash of the key parts stored with it" in err
    entry.unlink()
    shutil.copy(sharded.path("shard-1.json"), exported / "results.json")
    assert main(["cache", "import", str(exported), f"--cache-dir={tmp_path / 'c'}"]) == 2
    assert "Only files written by `python -m pytest_qwencmp cache export` can be imported" in capsys.readouterr().err
    assert main(["cache", "import", str(tmp_path / "nowhere")]) == 2
    assert "is not a directory" in capsys.readouterr().err


# ----------------------------------------------------------------------------- the whole demo


@pytest.mark.slow
def test_three_benchmarks_two_shards_and_a_mismatched_shard(demo_cache, tmp_path, capsys):
    sharded = run_sharded(tmp_path, demo_cache, ("--demo",), single=True)
    status, _, _ = merge(capsys, sharded.path("shard-1.json"), sharded.path("shard-2.json"), "--json", tmp_path / "merged.json")
    single = json.loads(sharded.path("full.json").read_text())["comparisons"]
    assert status == 1 and len(single) == 61
    assert json.loads((tmp_path / "merged.json").read_text())["comparisons"] == single
    # A real mismatch: shard 2 run again with another seed, in its own process.
    finish(start(tmp_path, "--demo", f"--eval-cache-dir={sharded.cache('shard-2')}", "--qwencmp-shard=2/2", "--seed=7",
                 "--qwencmp-json=shard-2-seed7.json"))
    status, _, err = merge(capsys, sharded.path("shard-1.json"), sharded.path("shard-2-seed7.json"))
    assert_one_paragraph(status, err, "seed: shard-1.json 1234, shard-2-seed7.json 7")


@pytest.mark.slow
def test_a_shard_run_with_xdist_workers_merges_too(sharded, pytester, capsys, tmp_path):
    pytest.importorskip("xdist")
    cache = tmp_path / "cache"
    shutil.copytree(sharded.cache("shard-2"), cache, symlinks=True)  # its evaluations are cached: no model loads
    write_suite(pytester.path)
    result = pytester.runpytest_inprocess(*sharded.args, f"--eval-cache-dir={cache}", "--qwencmp-shard=2/2",
                                          f"--qwencmp-json={tmp_path / 'shard-2.json'}", "-n", "2", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)
    assert "qwencmp: shard 2/2 ran hellaswag" in result.stdout.str()
    status, _, err = merge(capsys, sharded.path("shard-1.json"), tmp_path / "shard-2.json", "--json", tmp_path / "merged.json")
    assert status == 1, err
    alone, _, _ = merge(capsys, sharded.path("shard-1.json"), sharded.path("shard-2.json"), "--json", tmp_path / "alone.json")
    assert json.loads((tmp_path / "merged.json").read_text())["comparisons"] == json.loads((tmp_path / "alone.json").read_text())["comparisons"]
