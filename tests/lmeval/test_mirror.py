"""``python -m pytest_qwencmp mirror``: the --data-dir layout from a local source, models from the
hub cache, and the errors a user can meet.

The hub is unreachable here, so the source is a folder built in tmp_path in the hub layout: MMLU
as JSONL with a README (all 57 subjects, one or two rows per split, ``answer`` a class label as on
the hub), HellaSwag and MBPP as parquet files like the hub's own repositories. A model comes from
a hub cache built in tmp_path (``models--org--name/snapshots/<sha>`` + ``refs/main``) with
``HF_HUB_OFFLINE=1``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from pytest_qwencmp.lmeval import mirror
from pytest_qwencmp.cli import main

datasets = pytest.importorskip("datasets")
from datasets import ClassLabel, Dataset, Features, List, Value  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
SUBJECTS = mirror.mmlu_subjects()
FEW_SUBJECTS = ("anatomy", "virology")

MMLU_FEATURES = Features(
    {
        "question": Value("string"),
        "subject": Value("string"),
        "choices": List(Value("string")),
        "answer": ClassLabel(names=["A", "B", "C", "D"]),
    }
)
HELLASWAG_FEATURES = Features(
    {
        "ind": Value("int32"),
        "activity_label": Value("string"),
        "ctx_a": Value("string"),
        "ctx_b": Value("string"),
        "ctx": Value("string"),
        "endings": List(Value("string")),
        "source_id": Value("string"),
        "split": Value("string"),
        "split_type": Value("string"),
        "label": Value("string"),
    }
)
MBPP_FEATURES = Features(
    {
        "task_id": Value("int32"),
        "text": Value("string"),
        "code": Value("string"),
        "test_list": List(Value("string")),
        "test_setup_code": Value("string"),
        "challenge_test_list": List(Value("string")),
    }
)


# --------------------------------------------------------------------------- the source


def mmlu_rows(subject: str, split: str) -> list[dict[str, Any]]:
    count = 2 if split == "test" else 1
    return [
        {
            "question": f'{subject} {split} question {i} — «ünïcode» "quoted"?',
            "subject": subject,
            "choices": [f"{subject}-{k}" for k in "abcd"],
            "answer": (len(subject) + i) % 4,
        }
        for i in range(count)
    ]


def hellaswag_rows(split: str) -> list[dict[str, Any]]:
    return [
        {
            "ind": 100 * i + len(split),
            "activity_label": "Baking cookies",
            "ctx_a": f"A woman preheats the oven ({split} {i}).",
            "ctx_b": "she",
            "ctx": f"A woman preheats the oven ({split} {i}). she",
            "endings": ["mixes flour.", "sings.", "leaves.", "sleeps."],
            "source_id": f"activitynet~v_{i}",
            "split": split if split != "validation" else "val",
            "split_type": "indomain",
            "label": "" if split == "test" else str(i % 4),  # a STRING, empty on the hub's test split
        }
        for i in range(3)
    ]


def mbpp_rows(split: str) -> list[dict[str, Any]]:
    first = {"prompt": 1, "test": 11, "validation": 511, "train": 601}[split]
    return [
        {
            "task_id": first + i,
            "text": f"Write a function that adds {i}.",
            "code": f"def add_{i}(x):\n    return x + {i}",
            "test_list": [f"assert add_{i}(1) == {1 + i}", f"assert add_{i}(0) == {i}"],
            "test_setup_code": "",
            "challenge_test_list": [],
        }
        for i in range(2)
    ]


def write_card(folder: Path, configs: dict[str, dict[str, str]], features: Features) -> None:
    header = {
        "configs": [
            {"config_name": c, "data_files": [{"split": s, "path": p} for s, p in files.items()]}
            for c, files in configs.items()
        ],
        "dataset_info": [{"config_name": c, "features": features._to_yaml_list()} for c in configs],
    }
    text = "---\n" + yaml.safe_dump(header, sort_keys=False) + "---\n\n# test source\n"
    (folder / "README.md").write_text(text, encoding="utf-8")


def write_parquet_dataset(folder: Path, config: str, splits: dict[str, list[dict]], features: Features) -> None:
    """The hub's own layout: data/<split>-00000-of-00001.parquet + README configs."""
    files = {}
    for split, rows in splits.items():
        path = f"{config}/{split}-00000-of-00001.parquet"
        (folder / config).mkdir(parents=True, exist_ok=True)
        Dataset.from_list(rows, features=features).to_parquet(str(folder / path))
        files[split] = path
    write_card(folder, {config: files}, features)


def build_source(root: Path, subjects=SUBJECTS, mbpp_splits=mirror.MBPP_SPLITS) -> Path:
    mmlu = root / "cais" / "mmlu"
    configs = {}
    for subject in subjects:
        (mmlu / subject).mkdir(parents=True)
        configs[subject] = {}
        for split in mirror.MMLU_SPLITS:
            lines = [json.dumps(r, ensure_ascii=False) for r in mmlu_rows(subject, split)]
            (mmlu / subject / f"{split}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
            configs[subject][split] = f"{subject}/{split}.jsonl"
    write_card(mmlu, configs, MMLU_FEATURES)
    write_parquet_dataset(
        root / "Rowan" / "hellaswag",
        "default",
        {s: hellaswag_rows(s) for s in mirror.HELLASWAG_SPLITS},
        HELLASWAG_FEATURES,
    )
    write_parquet_dataset(
        root / "google-research-datasets" / "mbpp", "full", {s: mbpp_rows(s) for s in mbpp_splits}, MBPP_FEATURES
    )
    return root


def load(path: Path, name: str | None, cache: Path):
    """load_dataset with a private cache (the offline cache is keyed by folder name)."""
    return datasets.load_dataset(str(path), name=name, cache_dir=str(cache))


def tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def front_matter(readme: Path) -> dict[str, Any]:
    text = readme.read_text(encoding="utf-8")
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n")[1])


def one_paragraph(stderr: str) -> str:
    text = stderr.strip()
    assert text, "expected an error message on stderr"
    assert "Traceback" not in text, text
    assert "\n\n" not in text and len(text.splitlines()) == 1, text
    return text


def cli(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest_qwencmp", "mirror", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd or ROOT,
        timeout=180,
    )


def isolated_env(tmp: Path, **extra: str) -> dict[str, str]:
    """No shared HF caches, no hub: nothing the test did not build is visible."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env.update(HF_HOME=str(tmp / "hf-home"), HF_HUB_OFFLINE="1", **extra)
    return env


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    return build_source(tmp_path_factory.mktemp("source"))


@pytest.fixture(scope="module")
def full_mirror(source, tmp_path_factory) -> Path:
    """All three benchmarks, all 57 MMLU subjects, mirrored in-process."""
    out = tmp_path_factory.mktemp("out") / "data"
    messages: list[str] = []
    written = mirror.mirror(out, source=source, log=messages.append)
    assert written == [out / "cais/mmlu", out / "Rowan/hellaswag", out / "google-research-datasets/mbpp"]
    assert any("cais/mmlu" in m and "57 config(s)" in m for m in messages), messages
    return out


# --------------------------------------------------------------------------- layout and content


def test_layout_is_what_data_dir_reads(full_mirror):
    for hub_path, configs, splits in [
        ("cais/mmlu", SUBJECTS, mirror.MMLU_SPLITS),
        ("Rowan/hellaswag", ("default",), mirror.HELLASWAG_SPLITS),
        ("google-research-datasets/mbpp", ("full",), mirror.MBPP_SPLITS),
    ]:
        folder = full_mirror / hub_path
        header = front_matter(folder / "README.md")
        assert [c["config_name"] for c in header["configs"]] == list(configs)
        for entry in header["configs"]:
            assert [f["split"] for f in entry["data_files"]] == list(splits)
            for f in entry["data_files"]:
                assert (folder / f["path"]).is_file()
        assert [i["config_name"] for i in header["dataset_info"]] == list(configs)
    # Nothing but the datasets: no staging leftovers, no datasets cache in the output.
    assert sorted(p.name for p in full_mirror.iterdir()) == ["Rowan", "cais", "google-research-datasets"]
    assert not [p for p in full_mirror.rglob(".*")]


def test_every_mmlu_subject_has_the_source_rows(full_mirror):
    for subject in SUBJECTS:
        for split in mirror.MMLU_SPLITS:
            lines = (full_mirror / "cais/mmlu" / subject / f"{split}.jsonl").read_text(encoding="utf-8").splitlines()
            assert [json.loads(line) for line in lines] == mmlu_rows(subject, split)


@pytest.mark.parametrize(
    "hub_path, name, features, splits",
    [
        ("cais/mmlu", "anatomy", MMLU_FEATURES, mirror.MMLU_SPLITS),
        ("cais/mmlu", "world_religions", MMLU_FEATURES, mirror.MMLU_SPLITS),
        ("Rowan/hellaswag", None, HELLASWAG_FEATURES, mirror.HELLASWAG_SPLITS),
        ("google-research-datasets/mbpp", "full", MBPP_FEATURES, mirror.MBPP_SPLITS),
    ],
    ids=["mmlu-anatomy", "mmlu-world_religions", "hellaswag", "mbpp"],
)
def test_load_dataset_gives_back_the_source(full_mirror, source, tmp_path, hub_path, name, features, splits):
    copy = load(full_mirror / hub_path, name, tmp_path / "cache-copy")
    original = load(source / hub_path, name, tmp_path / "cache-source")
    assert list(copy) == list(splits)
    for split in splits:
        assert copy[split].features == features == original[split].features
        assert copy[split].to_list() == original[split].to_list()
        assert len(copy[split]) > 0
    first = copy[splits[0]][0]
    if hub_path == "cais/mmlu":
        assert isinstance(first["answer"], int) and isinstance(first["choices"], list)
    elif hub_path == "Rowan/hellaswag":
        assert all(isinstance(row["label"], str) for row in copy["validation"])
        assert copy["test"][0]["label"] == ""
    else:
        assert isinstance(first["test_list"], list) and isinstance(first["task_id"], int)


def test_cli_subset_and_a_mirror_of_a_mirror_is_identical(full_mirror, source, tmp_path):
    out = tmp_path / "cli"
    result = cli(
        "--out",
        str(out),
        "--source",
        str(source),
        "--mmlu-subjects",
        ",".join(FEW_SUBJECTS),
        env=isolated_env(tmp_path),
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert f"--data-dir={out}" in result.stdout
    assert sorted(p.name for p in (out / "cais/mmlu").iterdir() if p.is_dir()) == sorted(FEW_SUBJECTS)
    # Same data, same bytes, wherever it came from: the subset matches the full in-process mirror ...
    for hub_path in ("Rowan/hellaswag", "google-research-datasets/mbpp"):
        assert tree(out / hub_path) == tree(full_mirror / hub_path)
    for subject in FEW_SUBJECTS:
        assert tree(out / "cais/mmlu" / subject) == tree(full_mirror / "cais/mmlu" / subject)
    # ... and mirroring the mirror changes nothing.
    again = tmp_path / "again"
    mirror.mirror(again, source=out, subjects=FEW_SUBJECTS, log=lambda _: None)
    assert tree(again) == tree(out)
    # No cache written outside the private temporary one.
    assert not (tmp_path / "hf-home").exists()


def test_changed_source_data_is_picked_up(source, tmp_path):
    """The PITFALL: datasets' offline cache is keyed by folder name. Same folder, new rows, new copy."""
    src = tmp_path / "src"
    shutil.copytree(source / "google-research-datasets", src / "google-research-datasets")
    out = tmp_path / "out"
    env = isolated_env(tmp_path, HF_DATASETS_OFFLINE="1")
    assert cli("--out", str(out), "--source", str(src), "--benchmarks", "mbpp", env=env).returncode == 0
    changed = {s: mbpp_rows(s) for s in mirror.MBPP_SPLITS}
    changed["test"][0]["text"] = "Write a function that multiplies."
    write_parquet_dataset(src / "google-research-datasets/mbpp", "full", changed, MBPP_FEATURES)
    result = cli("--out", str(out), "--source", str(src), "--benchmarks", "mbpp", env=env)
    assert result.returncode == 0, result.stderr
    first = json.loads((out / "google-research-datasets/mbpp/full/test.jsonl").read_text().splitlines()[0])
    assert first["text"] == "Write a function that multiplies."


def test_a_failed_run_leaves_the_earlier_copy_intact(full_mirror, tmp_path, capsys):
    out = tmp_path / "out"
    shutil.copytree(full_mirror / "google-research-datasets", out / "google-research-datasets")
    before = tree(out)
    # lm-eval's MBPP reads the test split: a source without it is refused.
    broken = build_source(tmp_path / "broken", subjects=FEW_SUBJECTS, mbpp_splits=("train", "validation", "prompt"))
    capsys.readouterr()  # datasets' progress bars from building the source
    assert main(["mirror", "--out", str(out), "--source", str(broken), "--benchmarks", "mbpp"]) == 2
    message = one_paragraph(capsys.readouterr().err)
    assert "no split(s) test" in message and "google-research-datasets/mbpp" in message
    assert tree(out) == before
    assert not list(out.rglob(".*"))


def test_a_split_lm_eval_does_not_read_may_be_absent(tmp_path):
    """The demo data, for one, has no HellaSwag test split; the copy lists the splits it has."""
    src = build_source(tmp_path / "src", subjects=FEW_SUBJECTS, mbpp_splits=("train", "test", "validation"))
    messages: list[str] = []
    mirror.mirror(tmp_path / "out", benchmarks="mbpp", source=src, log=messages.append)
    folder = tmp_path / "out" / "google-research-datasets" / "mbpp"
    header = front_matter(folder / "README.md")
    assert [f["split"] for f in header["configs"][0]["data_files"]] == ["train", "test", "validation"]
    assert any("no prompt split" in m for m in messages), messages
    copy = load(folder, "full", tmp_path / "cache")
    assert list(copy) == ["train", "test", "validation"]


def test_lm_eval_reads_the_copy_through_data_dir(full_mirror, tmp_path):
    """The REAL task definitions, pointed at the copy the way --data-dir does it."""
    pytest.importorskip("lm_eval")
    from pytest_qwencmp.config.benchmarks import builtin_registry
    from pytest_qwencmp.lmeval.tasks import TaskSource

    for benchmark, task, expected in [
        ("hellaswag", "hellaswag", hellaswag_rows("validation")),
        ("mmlu", "mmlu_anatomy", mmlu_rows("anatomy", "test")),
    ]:
        source = TaskSource(builtin_registry().get(benchmark), full_mirror)
        loaded = source.build_manager(tmp_path / benchmark).load([task])
        docs = list(loaded["tasks"][task].eval_docs)
        assert [{k: d[k] for k in expected[0]} for d in docs] == expected


# --------------------------------------------------------------------------- models


def build_hub_cache(cache: Path, repo_id: str, files: dict[str, str], sha: str = "0123456789abcdef" * 2 + "01234567"):
    """The hub cache layout snapshot_download resolves offline: blobs, a snapshot of links, refs/main."""
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    for relative, content in files.items():
        blob = repo / "blobs" / f"blob{abs(hash(relative))}"
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_text(content, encoding="utf-8")
        link = repo / "snapshots" / sha / relative
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(sha, encoding="utf-8")
    return sha


def test_model_snapshot_from_the_offline_hub_cache(tmp_path):
    files = {
        "config.json": json.dumps({"model_type": "qwen2", "hidden_size": 8}),
        "tokenizer_config.json": "{}",
        "nested/extra.txt": "nested file",
    }
    hub_cache = tmp_path / "hub-cache"
    sha = build_hub_cache(hub_cache, "tiny-org/tiny-model", files)
    out = tmp_path / "out"
    env = isolated_env(tmp_path, HF_HUB_CACHE=str(hub_cache))
    model_dir = out / "models" / "tiny-org" / "tiny-model"
    for spec in ("tiny-org/tiny-model", f"tiny-org/tiny-model@{sha}"):  # refs/main, then the commit itself
        result = cli("--out", str(out), "--benchmarks", "none", "--model", spec, env=env)
        assert result.returncode == 0, result.stderr
        assert f"model {spec}: --model-a={model_dir}" in result.stdout
        assert tree(model_dir) == {k: v.encode() for k, v in files.items()}
        assert not any(p.is_symlink() for p in model_dir.rglob("*"))  # real files, not links into a cache
        assert sorted(p.name for p in out.iterdir()) == ["models"]
        assert not list(out.rglob(".*"))

    missing = cli("--out", str(out), "--benchmarks", "none", "--model", "tiny-org/absent@v1", env=env)
    assert missing.returncode == 2
    message = one_paragraph(missing.stderr)
    assert "tiny-org/absent@v1" in message and "cache" in message
    assert tree(model_dir) == {k: v.encode() for k, v in files.items()}  # untouched


# --------------------------------------------------------------------------- errors


def test_missing_source_is_one_paragraph_and_exit_2(tmp_path):
    result = cli("--out", str(tmp_path / "out"), "--source", str(tmp_path / "nowhere"), env=isolated_env(tmp_path))
    assert result.returncode == 2
    message = one_paragraph(result.stderr)
    assert "nowhere" in message and "does not exist" in message
    assert not (tmp_path / "out").exists()


def test_source_without_a_dataset_names_it(tmp_path, capsys):
    (tmp_path / "src" / "cais" / "mmlu").mkdir(parents=True)
    assert main(["mirror", "--out", str(tmp_path / "out"), "--source", str(tmp_path / "src")]) == 2
    message = one_paragraph(capsys.readouterr().err)
    assert "Rowan/hellaswag" in message and "google-research-datasets/mbpp" in message


@pytest.mark.parametrize(
    "args, expected",
    [
        (["--benchmarks", "mmlu,arc"], "Unknown benchmark 'arc'"),
        (["--mmlu-subjects", "anatomy,astrology"], "astrology"),
        (["--benchmarks", "none"], "Nothing to mirror"),
        (["--benchmarks", "none", "--model", "./local/folder"], "not a hub model id"),
        (["--model", "org/m@v1", "--model", "org/m@v2"], "org/m more than once"),
        (["--benchmarks", "hellaswag", "--mmlu-subjects", "anatomy"], "mmlu is not among"),
    ],
    ids=["unknown-benchmark", "unknown-subject", "nothing", "bad-model-id", "two-revisions", "subjects-without-mmlu"],
)
def test_bad_options_are_one_paragraph_and_exit_2(tmp_path, capsys, args, expected):
    assert main(["mirror", "--out", str(tmp_path / "out"), *args]) == 2
    message = one_paragraph(capsys.readouterr().err)
    assert expected in message
    assert not (tmp_path / "out").exists()


def test_unknown_benchmark_from_the_command_line(tmp_path):
    result = cli("--out", str(tmp_path / "out"), "--benchmarks", "gsm8k", env=isolated_env(tmp_path))
    assert result.returncode == 2
    assert "Unknown benchmark 'gsm8k'" in one_paragraph(result.stderr)


def test_hub_unreachable_offline_without_a_cached_copy(tmp_path):
    """HF_HUB_OFFLINE=1 and an empty cache: the hub is not tried, the cache has nothing."""
    result = cli(
        "--out",
        str(tmp_path / "out"),
        "--benchmarks",
        "mbpp",
        env=isolated_env(tmp_path, HF_DATASETS_CACHE=str(tmp_path / "datasets-cache")),
    )
    assert result.returncode == 2
    message = one_paragraph(result.stderr)
    assert "google-research-datasets/mbpp" in message and "local datasets cache" in message
    assert not (tmp_path / "out").exists()  # no empty folders left behind either


def test_offline_hub_source_reads_the_local_datasets_cache(source, full_mirror, tmp_path):
    """With HF_HUB_OFFLINE=1 the hub source falls back to what the datasets cache holds."""
    # A datasets cache entry as load_dataset("google-research-datasets/mbpp", "full") leaves it:
    # prepare a local folder named mbpp, then give its cache folder the hub repository's name.
    shutil.copytree(source / "google-research-datasets" / "mbpp", tmp_path / "mbpp")
    cache = tmp_path / "datasets-cache"
    load(tmp_path / "mbpp", "full", cache)
    (cache / "mbpp").rename(cache / "google-research-datasets___mbpp")
    out = tmp_path / "out"
    result = cli("--out", str(out), "--benchmarks", "mbpp", env=isolated_env(tmp_path, HF_DATASETS_CACHE=str(cache)))
    assert result.returncode == 0, result.stderr
    assert "from the local datasets cache (HF_HUB_OFFLINE is set)" in result.stdout
    folder = out / "google-research-datasets" / "mbpp"
    assert tree(folder) == tree(full_mirror / "google-research-datasets" / "mbpp")  # same bytes as from a folder
    copy = load(folder, "full", tmp_path / "cache-copy")
    original = load(source / "google-research-datasets" / "mbpp", "full", tmp_path / "cache-source")
    for split in mirror.MBPP_SPLITS:
        assert copy[split].features == MBPP_FEATURES
        assert copy[split].to_list() == original[split].to_list()
