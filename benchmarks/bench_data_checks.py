"""What the local-data check costs on real-size copies (a benchmark script, not a test).

Before the first evaluation that must run, the plugin checks every selected
benchmark's local copy (``pytest_qwencmp.lmeval.data_checks``): the splits lm-eval's
task reads are listed and present, and every row is a JSON object with the
fields and values the benchmark allows. This script writes synthetic copies
of the real sizes in the layout ``python -m pytest_qwencmp mirror`` writes
(JSONL per config and split plus a README ``configs:`` header):

  * MMLU: 57 subjects, 14,042 test rows, 285 dev rows, 1,531 validation rows;
  * HellaSwag: 39,905 train rows, 10,042 validation rows;
  * MBPP (full): 500 test, 374 train, 90 validation, 10 prompt rows;

with row texts of realistic length, and times ``check_benchmark_data`` per
benchmark: the first call (lm-eval's task index for the benchmark's folders
included) and the median of the next ``--rounds`` calls.

Run:  .venv/bin/python benchmarks/bench_data_checks.py [--rounds 3] [--work-dir DIR] [--json FILE]
Goal: each benchmark's check well under a second on 2 CPU cores (it runs once per session).
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pytest_qwencmp.config.benchmarks import builtin_registry  # noqa: E402
from pytest_qwencmp.lmeval.data_checks import check_benchmark_data  # noqa: E402
from pytest_qwencmp.lmeval.mirror import card_text, dataset_spec  # noqa: E402

MMLU_TEST, MMLU_DEV_PER_SUBJECT, MMLU_VALIDATION = 14_042, 5, 1_531
HELLASWAG_TRAIN, HELLASWAG_VALIDATION = 39_905, 10_042
MBPP_SPLITS = {"test": 500, "train": 374, "validation": 90, "prompt": 10}
WORDS = "the of a model paired test item subject answer choice value system cell river law market".split()


def text(rng: random.Random, chars: int) -> str:
    out: list[str] = []
    while sum(len(w) + 1 for w in out) < chars:
        out.append(rng.choice(WORDS))
    return " ".join(out)


def spread(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def write_rows(path: Path, rows) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with path.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
            count += 1
    return count


def write_mmlu(root: Path, rng: random.Random) -> None:
    spec = dataset_spec("mmlu")
    folder = root / spec.hub_path
    counts: dict[str, dict[str, int]] = {}
    sizes = {"test": spread(MMLU_TEST, len(spec.configs)), "dev": [MMLU_DEV_PER_SUBJECT] * len(spec.configs),
             "validation": spread(MMLU_VALIDATION, len(spec.configs))}
    for index, subject in enumerate(spec.configs):
        counts[subject] = {}
        for split in ("test", "dev", "validation"):
            rows = ({"question": text(rng, 300), "subject": subject, "choices": [text(rng, 40) for _ in range(4)],
                     "answer": rng.randrange(4)} for _ in range(sizes[split][index]))
            counts[subject][split] = write_rows(folder / subject / f"{split}.jsonl", rows)
    features = [{"name": "question", "dtype": "string"}, {"name": "subject", "dtype": "string"},
                {"name": "choices", "sequence": "string"}, {"name": "answer", "dtype": "int64"}]
    (folder / "README.md").write_text(card_text(spec, {c: features for c in spec.configs}, counts))


def write_hellaswag(root: Path, rng: random.Random) -> None:
    spec = dataset_spec("hellaswag")
    folder = root / spec.hub_path
    counts = {}
    for split, size in (("train", HELLASWAG_TRAIN), ("validation", HELLASWAG_VALIDATION)):
        rows = ({"ind": i, "activity_label": text(rng, 20), "ctx_a": text(rng, 160), "ctx_b": text(rng, 40),
                 "ctx": text(rng, 200), "endings": [text(rng, 110) for _ in range(4)], "source_id": f"src~{i}",
                 "split": split, "split_type": "indomain", "label": str(rng.randrange(4))} for i in range(size))
        counts[split] = write_rows(folder / "default" / f"{split}.jsonl", rows)
    features = [{"name": n, "dtype": "string"} for n in ("activity_label", "ctx_a", "ctx_b", "ctx", "label")]
    (folder / "README.md").write_text(card_text(spec, {"default": features}, {"default": counts}))


def write_mbpp(root: Path, rng: random.Random) -> None:
    spec = dataset_spec("mbpp")
    folder = root / spec.hub_path
    counts = {}
    for split, size in MBPP_SPLITS.items():
        rows = ({"task_id": i, "text": text(rng, 90), "code": "def f(x):\n    return x\n" * 4,
                 "test_list": [f"assert f({j}) == {j}" for j in range(3)], "test_setup_code": "",
                 "challenge_test_list": []} for i in range(size))
        counts[split] = write_rows(folder / "full" / f"{split}.jsonl", rows)
    features = [{"name": "text", "dtype": "string"}, {"name": "test_list", "sequence": "string"}]
    (folder / "README.md").write_text(card_text(spec, {"full": features}, {"full": counts}))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--work-dir", default=None, help="scratch folder (default: a temp folder, removed afterwards)")
    parser.add_argument("--json", default=None, help="also write the numbers to this JSON file")
    args = parser.parse_args()
    work = Path(args.work_dir) if args.work_dir else Path(tempfile.mkdtemp(prefix="qwencmp-bench-data-"))
    try:
        rng = random.Random(7)
        started = time.perf_counter()
        write_mmlu(work, rng)
        write_hellaswag(work, rng)
        write_mbpp(work, rng)
        print(f"wrote real-size copies in {time.perf_counter() - started:.1f}s under {work}")
        registry = builtin_registry()
        results = {}
        for name in ("mmlu", "hellaswag", "mbpp"):
            size = sum(p.stat().st_size for p in (work / dataset_spec(name).hub_path).rglob("*.jsonl"))
            timings = []
            for _ in range(args.rounds + 1):
                begin = time.perf_counter()
                check_benchmark_data(registry.get(name), work)
                timings.append(time.perf_counter() - begin)
            results[name] = {"mb": round(size / 1e6, 1), "first_s": round(timings[0], 3),
                             "median_s": round(statistics.median(timings[1:]), 3)}
            print(f"{name:10s} {size / 1e6:6.1f} MB  first {timings[0]:.3f}s  then median {results[name]['median_s']:.3f}s")
        if args.json:
            Path(args.json).write_text(json.dumps(results, indent=2))
    finally:
        if not args.work_dir:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
