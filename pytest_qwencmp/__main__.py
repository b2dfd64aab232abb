"""``python -m pytest_qwencmp COMMAND``: helpers that run outside pytest.

Commands:

* ``mirror`` — save the benchmark datasets (and optionally model snapshots) into a
  folder that ``pytest --data-dir`` reads, for runners without hub access.
* ``plan`` — before a run, with no model loaded: per item the number of documents,
  the minimum detectable effect and which expectations cannot be tested at that size.

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


def cmd_plan(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from . import planning
    from .benchmarks import load_registry
    from .expectations import load_expectations

    extra = [Path(p) for p in args.benchmark_file] or [p for p in (Path("evals/benchmarks.toml"),) if p.is_file()]
    registry = load_registry(extra)
    default = Path("evals/demo-expectations.toml" if args.demo else "evals/expectations.toml")
    expectations_path = Path(args.expectations) if args.expectations else (default if default.is_file() else None)
    expectations = load_expectations(expectations_path, registry)
    benchmarks = None
    if args.benchmarks:
        benchmarks = [b.strip() for b in args.benchmarks.split(",") if b.strip()]
        for name in benchmarks:
            registry.get(name)  # an unknown name is one clear error
    data_dir = Path(args.data_dir).expanduser() if args.data_dir else None
    fallback = (planning.known_size, planning.KNOWN_SIZES)
    if args.demo:
        data_dir = planning.demo_data_dir(Path(args.eval_cache_dir))
        if data_dir is None:
            fallback = (planning.demo_size, planning.DEMO_SIZES)
    plan = planning.make_plan(
        registry, expectations, data_dir=data_dir, benchmarks=benchmarks, limit=args.limit,
        discordance=args.discordance, alpha=args.alpha, power=args.power, correction=args.correction,
        fallback=fallback,
    )
    print("\n".join(planning.plan_lines(plan, registry)))
    if args.json:
        Path(args.json).write_text(json.dumps(planning.plan_document(plan), indent=2) + "\n", encoding="utf-8")
    return 0


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return value


def add_plan_parser(commands: argparse._SubParsersAction) -> None:
    from .planning import DEFAULT_DISCORDANCE

    parser = commands.add_parser(
        "plan",
        help="before a run: what each item can detect at its size (no model loaded)",
        description=(
            "Print, per benchmark item, its number of documents, the minimum detectable effect (MDE: the smallest "
            "true B − A found with the given power at the level the run applies: α/m for a family of m under "
            "holm or bh), the smallest regression a regression check catches, and which expectations are "
            "underpowered at that size with the n they would need. Sizes are counted in local dataset copies "
            "(--data-dir, or the built demo with --demo) or taken from the dataset cards' published sizes. "
            "Scores are taken to be binary per document (acc, acc_norm, pass@1)."
        ),
    )
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--data-dir", metavar="DIR", help="local dataset copies in their hub layout (as for pytest --data-dir)")
    source.add_argument("--demo", action="store_true", help="the embedded demo's data (counted if built, else its fixed sizes)")
    parser.add_argument("--expectations", metavar="FILE",
                        help="expectations TOML (default: evals/expectations.toml, or evals/demo-expectations.toml with --demo)")
    parser.add_argument("--benchmarks", metavar="LIST", help="comma-separated subset, e.g. mmlu,hellaswag")
    parser.add_argument("--benchmark-file", action="append", default=[], metavar="FILE",
                        help="a TOML file adding benchmarks (repeatable; default: evals/benchmarks.toml when present)")
    parser.add_argument("--limit", type=_positive_int, metavar="N", help="documents per task, as pytest --limit N")
    parser.add_argument("--discordance", type=float, default=DEFAULT_DISCORDANCE, metavar="R",
                        help=f"share of documents where exactly one model is right (default {DEFAULT_DISCORDANCE}: "
                             "0.2-0.3 is typical of two checkpoints 10 points apart on MMLU)")
    parser.add_argument("--alpha", type=float, default=0.05, metavar="A", help="significance level (default 0.05)")
    parser.add_argument("--power", type=float, default=0.8, metavar="P", help="power for the MDE (default 0.8)")
    parser.add_argument("--correction", default="holm", choices=("holm", "bh", "none"),
                        help="multiple-comparison correction the run will use (default holm)")
    parser.add_argument("--eval-cache-dir", default=".qwencmp", metavar="DIR",
                        help="where --demo looks for the built demo (default .qwencmp, as pytest)")
    parser.add_argument("--json", metavar="FILE", help="also write the plan, with every rule's note, as JSON")
    parser.set_defaults(func=cmd_plan)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="pytest-qwencmp helpers that run outside pytest.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_mirror_parser(commands)
    add_plan_parser(commands)
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
