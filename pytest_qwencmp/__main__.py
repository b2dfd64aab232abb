"""``python -m pytest_qwencmp COMMAND``: helpers that run outside pytest.

Commands:

* ``mirror`` — save the benchmark datasets (and optionally model snapshots) into a
  folder that ``pytest --data-dir`` reads, for runners without hub access.

Each command is a function ``(args) -> exit status`` registered in
``build_parser``. A problem the user must fix prints one paragraph on stderr and
exits with status 2.
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from .errors import QwencmpError

PROG = "python -m pytest_qwencmp"
USAGE_ERROR = 2


def cmd_mirror(args: argparse.Namespace) -> int:
    from . import mirror

    plan = mirror.make_plan(
        out=args.out,
        benchmarks=args.benchmarks,
        models=args.model,
        source=args.source,
        subjects=args.mmlu_subjects,
    )
    mirror.run_mirror(plan)
    print(f"Mirrored into {plan.out}.")
    if plan.datasets:
        print(f"  datasets: pytest evals/ --data-dir={plan.out}")
    for model in plan.models:
        print(f"  model {model.label}: --model-a={plan.out / mirror.MODELS_FOLDER / model.repo_id} (or --model-b=…)")
    return 0


def add_mirror_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "mirror",
        help="save the benchmark datasets (and models) for air-gapped runners",
        description=(
            "Save MMLU (cais/mmlu, all 57 subjects), HellaSwag (Rowan/hellaswag) and MBPP "
            "(google-research-datasets/mbpp, config full) into OUT in the layout --data-dir reads: "
            "OUT/<hub path>/<config>/<split>.jsonl plus a README.md declaring configs and features. "
            "Models go to OUT/models/<org>/<name>. Each dataset and model is written to a temporary "
            "sibling folder and renamed into place."
        ),
        epilog=(
            "The data come from the hub; with HF_HUB_OFFLINE=1, from the local datasets and hub caches. "
            "Then, on the air-gapped runner: pytest evals/ --data-dir=OUT "
            "--model-a=OUT/models/Qwen/Qwen2.5-1.5B --model-b=OUT/models/Qwen/Qwen2.5-7B "
            "(path options with '=': pytest picks its rootdir from bare path arguments)"
        ),
    )
    parser.add_argument("--out", required=True, metavar="DIR", help="the folder to write (created if missing)")
    parser.add_argument(
        "--benchmarks",
        default="mmlu,hellaswag,mbpp",
        metavar="LIST",
        help="comma-separated benchmarks to mirror (default: mmlu,hellaswag,mbpp; 'none': models only)",
    )
    parser.add_argument(
        "--model",
        action="append",
        default=[],
        metavar="ID[@REV]",
        help="also save this hub model snapshot (repeatable), e.g. Qwen/Qwen2.5-7B@main",
    )
    parser.add_argument(
        "--source",
        default="hub",
        metavar="hub|DIR",
        help="where datasets come from: 'hub' (default) or a folder holding DIR/<hub path> copies",
    )
    parser.add_argument(
        "--mmlu-subjects",
        default=None,
        metavar="LIST",
        help="mirror only these MMLU subjects (comma-separated; default: all 57)",
    )
    parser.set_defaults(func=cmd_mirror)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="pytest-qwencmp helpers that run outside pytest.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_mirror_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except QwencmpError as exc:
        print(f"{PROG} {args.command}: error: {exc}", file=sys.stderr)
        return USAGE_ERROR
    except KeyboardInterrupt:
        print(f"{PROG} {args.command}: interrupted; earlier copies are left as they were.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
