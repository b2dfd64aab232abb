"""``python -m pytest_qwencmp COMMAND``: helpers that run outside pytest.

Commands:

* ``mirror`` — save the benchmark datasets (and optionally model snapshots) into a
  folder that ``pytest --data-dir`` reads, for runners without hub access.
* ``plan`` — before a run, with no model loaded: per item the number of documents,
  the minimum detectable effect and which expectations cannot be tested at that size;
  ``--sequential``: the expected share of documents a sequential run evaluates.
* ``merge`` — combine the ``--qwencmp-json`` files of ``--qwencmp-shard`` jobs into
  one comparison and its reports (exit 0: every item passed, 1: some failed,
  4: the shards cannot be merged).
* ``cache export`` / ``cache import`` — carry one model's cached evaluations to
  another machine (a reference model evaluated once for many runs).

Each command is a function ``(args) -> exit status``, listed with its help and
arguments in ``COMMANDS``. A problem the user must fix prints one paragraph on
stderr and exits with status 2 (``merge``: 4, pytest's status for unusable input).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from .comparison import merge_shards
from .config.benchmarks import load_registry
from .config.expectations import load_expectations
from .config.settings import parse_looks
from .demo.build import demo_data_dir
from .demo.data import DEMO_SIZES, demo_size
from .errors import QwencmpError
from .evaluation.cache import EvaluationCache
from .files import write_atomic
from .report.text import reuse_lines, settings_lines, text_tables
from .stats import planning
from .stats.sequential import SequentialDesign
from .store.exchange import export_side, import_directory
from .store.format import SavedFormatError, read_results

PROG = "python -m pytest_qwencmp"
USAGE_ERROR = 2


def cmd_mirror(args: argparse.Namespace) -> int:
    from .lmeval import mirror  # lazy: PyYAML and the hub's libraries; the merge job installs numpy, scipy, filelock, jinja2 only

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


def _mirror_arguments(parser: argparse.ArgumentParser) -> None:
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
    from .lmeval.sizes import TaskSizes  # lazy: PyYAML (lm-eval's task files); the merge job installs numpy, scipy, filelock, jinja2 only

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
    sizes = TaskSizes(data_dir)
    if args.demo:
        data_dir = demo_data_dir(Path(args.eval_cache_dir))
        sizes = TaskSizes(data_dir) if data_dir is not None else TaskSizes(None, (demo_size, DEMO_SIZES))
    plan = planning.make_plan(
        registry, expectations, sizes, benchmarks=benchmarks, limit=args.limit,
        discordance=args.discordance, alpha=args.alpha, power=args.power, correction=args.correction,
    )
    print("\n".join(planning.plan_lines(plan, registry)))
    document = planning.plan_document(plan)
    if args.sequential:
        if args.correction == "bh":
            raise QwencmpError("--sequential does not combine with --correction bh (a run refuses it too): use holm or none.")
        design = SequentialDesign(looks=parse_looks(args.sequential_looks),
                                  family_rule="none" if args.correction == "none" else "holm")
        splan = planning.make_sequential_plan(registry, expectations, sizes, args.delta or ["0"], plan, design,
                                              benchmarks=benchmarks, limit=args.limit, score_a=args.score_a,
                                              reps=args.reps, seed=args.seed)
        print("\n".join(planning.sequential_plan_lines(splan, registry)))
        document["sequential"] = planning.sequential_plan_document(splan)
    if args.json:
        write_atomic(Path(args.json), json.dumps(document, indent=2) + "\n", what="the plan")
    return 0


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return value


def _plan_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--data-dir", metavar="DIR", help="local dataset copies in their hub layout (as for pytest --data-dir)")
    source.add_argument("--demo", action="store_true", help="the embedded demo's data (counted if built, else its fixed sizes)")
    parser.add_argument("--expectations", metavar="FILE",
                        help="expectations TOML (default: evals/expectations.toml, or evals/demo-expectations.toml with --demo)")
    parser.add_argument("--benchmarks", metavar="LIST", help="comma-separated subset, e.g. mmlu,hellaswag")
    parser.add_argument("--benchmark-file", action="append", default=[], metavar="FILE",
                        help="a TOML file adding benchmarks (repeatable; default: evals/benchmarks.toml when present)")
    parser.add_argument("--limit", type=_positive_int, metavar="N", help="documents per task, as pytest --limit N")
    parser.add_argument("--discordance", type=float, default=planning.DEFAULT_DISCORDANCE, metavar="R",
                        help=f"share of documents where exactly one model is right (default {planning.DEFAULT_DISCORDANCE}: "
                             "0.2-0.3 is typical of two checkpoints 10 points apart on MMLU)")
    parser.add_argument("--alpha", type=float, default=0.05, metavar="A", help="two-sided level of the intervals (default 0.05: 95 %% intervals, each key a one-sided test at 2.5 %%)")
    parser.add_argument("--power", type=float, default=0.8, metavar="P", help="power for the MDE (default 0.8)")
    parser.add_argument("--correction", default="holm", choices=("holm", "bh", "none"),
                        help="multiple-comparison correction the run will use (default holm)")
    parser.add_argument("--eval-cache-dir", default=".qwencmp", metavar="DIR",
                        help="where --demo looks for the built demo (default .qwencmp, as pytest)")
    parser.add_argument("--json", metavar="FILE", help="also write the plan, with every rule's note, as JSON")
    sequential = parser.add_argument_group("sequential runs (pytest --sequential)")
    sequential.add_argument("--sequential", action="store_true",
                            help="also print the expected share of documents a sequential run evaluates (Monte Carlo)")
    sequential.add_argument("--delta", action="append", metavar="POINTS|BENCH=POINTS,…",
                            help="a true B − A to simulate: one number for every benchmark, or per benchmark "
                                 "(mmlu=12.16,hellaswag=9.77,mbpp=16.2; others 0); repeatable, one column each (default 0)")
    sequential.add_argument("--score-a", type=float, default=50.0, metavar="POINTS",
                            help="model A's true score in every task, for the floors (default 50)")
    sequential.add_argument("--sequential-looks", metavar="FRACTIONS", help="the looks, as pytest --sequential-looks")
    sequential.add_argument("--reps", type=_positive_int, default=400, metavar="N", help="simulated runs per scenario (default 400)")
    sequential.add_argument("--seed", type=int, default=0, metavar="N", help="seed of the simulation (default 0)")
    parser.set_defaults(func=cmd_plan)
MERGE_ERROR = 4


def cmd_merge(args: argparse.Namespace) -> int:
    merged = merge_shards(args.shards, expectations=args.expectations, correction=args.correction)
    for line in [*settings_lines(merged.run_info), "", *text_tables(merged.records), *reuse_lines(merged.stats)]:
        print(line)
    written = merged.write(json_path=args.json, html_path=args.html, markdown_path=args.markdown, junit_path=args.junitxml)
    step_summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if step_summary:
        with open(step_summary, "a", encoding="utf-8") as handle:
            handle.write(merged.markdown() + "\n")
    failed = sum(1 for r in merged.records if not r["passed"])
    print(
        f"qwencmp merge: {len(merged.shards)} file(s), {len(merged.records)} items, {len(merged.records) - failed} passed, "
        f"{failed} failed" + (f"; wrote {', '.join(str(p) for p in written)}" if written else "")
    )
    return 1 if failed else 0


def _merge_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("shards", nargs="+", metavar="SHARD.json", type=Path, help="each shard's --qwencmp-json file")
    parser.add_argument("--expectations", type=Path, metavar="FILE", help="judge with this expectations file (default: the one the shards used)")
    parser.add_argument("--correction", metavar="NAME", help="multiple-comparison correction: holm, bh or none (default: the shards')")
    parser.add_argument("--json", type=Path, metavar="FILE", help="write the merged results JSON (the --qwencmp-json schema)")
    parser.add_argument("--html", type=Path, metavar="FILE", help="write a standalone HTML report")
    parser.add_argument("--markdown", type=Path, metavar="FILE", help="write the tables as Markdown (also appended to $GITHUB_STEP_SUMMARY when set)")
    parser.add_argument("--junitxml", type=Path, metavar="FILE", help="write JUnit XML: one testcase per item, with the plugin's properties")
    parser.set_defaults(func=cmd_merge, error_status=MERGE_ERROR)


def _results_keys(path: Path, side: str) -> list[str]:
    """The cache keys of ``side``'s evaluations recorded in a results JSON's saved evaluations."""
    try:
        _, saved = read_results(path)
    except SavedFormatError as exc:
        raise QwencmpError(
            f"--results {path} cannot be used: {exc} Give the --qwencmp-json file of a --qwencmp-shard K/N run "
            "(--qwencmp-shard 1/1 for a single job)."
        ) from None
    return [record["key"] for (s, _), record in saved.records.items() if s == side]


def cmd_cache_export(args: argparse.Namespace) -> int:
    cache = EvaluationCache(args.cache_dir.expanduser().resolve())
    if not cache.directory.is_dir():
        raise QwencmpError(f"{args.cache_dir} holds no evaluation cache ({cache.directory} does not exist); give --cache-dir the folder pytest used (--eval-cache-dir, default .qwencmp).")
    benchmarks = [b for b in args.benchmarks.replace(",", " ").split()] if args.benchmarks else None
    keys = _results_keys(args.results, args.side) if args.results else None
    exported = export_side(cache, args.side, args.out, benchmarks=benchmarks, keys=keys)
    for path in exported.written:
        print(f"  {path}")
    print(f"Exported {len(exported.written)} evaluation(s) of model {args.side.upper()} to {args.out}.")
    if exported.without_parts:
        print(f"  {exported.without_parts} older entr{'y' if exported.without_parts == 1 else 'ies'} of model {args.side.upper()} "
              "were skipped: they were written before entries recorded their settings (evaluate again to refresh them).")
    if not exported.written:
        print(f"  Nothing to export: run pytest first, with --eval-cache-dir={args.cache_dir}.")
    return 0


def cmd_cache_import(args: argparse.Namespace) -> int:
    cache = EvaluationCache(args.cache_dir.expanduser().resolve())
    imported = import_directory(cache, args.directory)
    for entry in imported:
        print(f"  {entry.benchmark} of model {entry.side.upper()} ({entry.key[:16]}): {'stored, ' if entry.stored else ''}{entry.note}")
    stored = sum(1 for e in imported if e.stored)
    print(f"Imported {stored} evaluation(s) into {cache.directory}; a run with the same settings reuses them.")
    return 0


def _cache_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    export = actions.add_parser("export", help="write one side's cached evaluations to a folder")
    export.add_argument("--side", required=True, choices=("a", "b"), help="the model whose evaluations to export")
    export.add_argument("--out", required=True, type=Path, metavar="DIR", help="the folder to write (created if missing)")
    export.add_argument("--cache-dir", type=Path, default=Path(".qwencmp"), metavar="DIR", help="the evaluation cache (pytest's --eval-cache-dir; default .qwencmp)")
    export.add_argument("--benchmarks", metavar="LIST", help="only these benchmarks (comma-separated)")
    export.add_argument("--results", type=Path, metavar="FILE", help="only the evaluations this run's --qwencmp-json used")
    export.set_defaults(func=cmd_cache_export)
    imp = actions.add_parser("import", help="store exported evaluations in a cache")
    imp.add_argument("directory", type=Path, metavar="DIR", help="the folder 'cache export' wrote")
    imp.add_argument("--cache-dir", type=Path, default=Path(".qwencmp"), metavar="DIR", help="the evaluation cache to fill (default .qwencmp)")
    imp.set_defaults(func=cmd_cache_import)


@dataclass(frozen=True)
class Command:
    """One command as ``--help`` shows it, and the function that adds its arguments (and names what runs it)."""

    name: str
    arguments: Callable[[argparse.ArgumentParser], None]
    help: str
    description: str
    epilog: str | None = None


COMMANDS = (
    Command(
        "mirror", _mirror_arguments,
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
    ),
    Command(
        "plan", _plan_arguments,
        help="before a run: what each item can detect at its size (no model loaded)",
        description=(
            "Print, per benchmark item, its number of documents, the minimum detectable effect (MDE: the smallest "
            "true B − A found with the given power at the level the run applies: the 95 % interval, or 5 %/m "
            "two-sided for one item of a family of m under holm or bh), the smallest regression a regression check "
            "catches, which expectations are underpowered at that size, and which can never pass (or never fail) "
            "whatever the models answer, with the n they would need. Sizes are counted in local dataset copies "
            "(--data-dir, or the built demo with --demo) or taken from the dataset cards' published sizes. "
            "Scores are taken to be binary per document (acc, acc_norm, pass@1)."
        ),
    ),
    Command(
        "merge", _merge_arguments,
        help="combine the results of --qwencmp-shard jobs into one comparison",
        description=(
            "Read the --qwencmp-json files of every shard of one run (pytest --qwencmp-shard K/N), check that they "
            "belong together (the same plan, models and number-changing settings; every item exactly once) and "
            "compare each benchmark exactly as a single run would: the same statistics, corrections, verdicts and "
            "reports. Needs no GPU, model or lm-eval task: it runs on a GitHub-hosted runner."
        ),
        epilog="Exit status: 0 every item met its expectations, 1 some did not, 4 the files cannot be merged (one paragraph says why).",
    ),
    Command(
        "cache", _cache_arguments,
        help="export or import one model's cached evaluations",
        description=(
            "Carry a model's evaluations to another machine, so a reference model is evaluated once: 'export' writes "
            "the entries one side evaluated (the evaluation, its cache key and the settings behind it) to a folder an "
            "artifact or actions/cache carries; 'import' checks them and stores them in a cache. A run reuses an "
            "entry only when everything that changes a number matches; otherwise it says which setting differs."
        ),
    ),
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="pytest-qwencmp helpers that run outside pytest.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.arguments(commands.add_parser(command.name, help=command.help, description=command.description,
                                              epilog=command.epilog))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and args.command == "merge" and not any(e.startswith("-") for e in extra):
        args.shards += [Path(e) for e in extra]  # `merge a.json --expectations=F b.json`: options anywhere
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        return args.func(args)
    except QwencmpError as exc:
        print(f"{PROG} {args.command}: error: {exc}", file=sys.stderr)
        return getattr(args, "error_status", USAGE_ERROR)
    except KeyboardInterrupt:
        print(f"{PROG} {args.command}: interrupted; earlier copies are left as they were.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
