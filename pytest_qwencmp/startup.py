"""What a session checks at its start, before any model loads and before anything is evaluated.

:func:`check_at_start` looks at the selected benchmarks once and raises the
first problem found as one ``QwencmpError`` paragraph (pytest exits 4):

1. what this run must still evaluate (not in the cache), and whether the local
   model and adapter folders it needs are complete;
2. the local dataset copies those evaluations read (``--data-dir``): every row
   of the splits lm-eval reads (``lmeval.data_checks``: a truncated file, a
   value out of range), every benchmark at once;
3. everything that would have to come from the hub but cannot (``HF_HUB_OFFLINE``,
   or the hub does not answer): both models, their PEFT adapters and the
   benchmark datasets, named together with the offline fix;
4. a baseline (``--qwencmp-baseline-compare``) whose number-changing settings
   differ from this run's :func:`planned_settings`; and an imported cache entry
   (``cache import``) this run would not reuse because its settings differ.

The planned settings are ``store.compatibility.number_settings`` of the
evaluations the run will make, from what is known before any model runs; lm-eval's
task versions (and the demo's data, built on first use) are known only after the
evaluation, and the end of the run compares them as before. The demo's own
models and data need no reachability or data check.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .config.benchmarks import Benchmark, Registry
from .config.settings import ModelRef, RunSettings
from .errors import QwencmpError
from .evaluation.cache import cache_key
from .evaluation.evaluator import Evaluator
from .evaluation.scores import BenchmarkEvaluation
from .lmeval.data_checks import check_benchmark_data, datasets_to_download
from .lmeval.tasks import TaskSource, lm_eval_version
from .models.placement import ExecutionPlan
from .models.sources import ADAPTER, MODEL, SourceKind, check_local_folder, hub_cache_dir, in_hub_cache
from .store.baselines import check_compatible
from .store.compatibility import ADAPTER_IDENTITY, number_settings
from .store.exchange import ImportedEntries

SIDES = ("a", "b")
REEVALUATE_OPTION = "--qwencmp-reevaluate-imported"


def check_at_start(
    settings: RunSettings,
    registry: Registry,
    plans: Mapping[str, ExecutionPlan],
    names: Sequence[str],
    evaluator: Evaluator | None,
    *,
    baseline=None,
    allow_mismatch: bool = False,
    reevaluate_imported: bool = False,
) -> list[str]:
    """Raise ``QwencmpError`` for the first problem with the selected benchmarks ``names``; else return
    the baseline's allowed differences (``--qwencmp-baseline-allow-mismatch``), [] when there are none.

    ``evaluator`` may be None for the demo (its models and data are built on first use): then only
    the baseline is checked.
    """
    if evaluator is not None and not settings.demo:
        pending = pending_evaluations(evaluator, names)
        benchmarks = [registry.get(n) for n in names if any(n in pending[side] for side in SIDES)]
        if settings.data_dir is not None:
            problem = data_problem(benchmarks, settings.data_dir)
            if problem:
                raise QwencmpError(problem)
        problem = unreachable(evaluator, pending, benchmarks)
        if problem:
            raise QwencmpError(problem)
        evaluator.data_checked(b.name for b in benchmarks)
    warnings: list[str] = []
    if baseline is not None:
        data = data_identity(evaluator, names) if evaluator is not None and not settings.demo else None
        warnings = check_compatible(baseline, planned_settings(settings, registry, plans, names, data=data),
                                    allow_mismatch=allow_mismatch)
    if evaluator is not None and not reevaluate_imported:
        problem = imported_mismatch(evaluator, names)
        if problem:
            raise QwencmpError(problem)
    return warnings


def pending_evaluations(evaluator: Evaluator, names: Sequence[str]) -> dict[str, list[str]]:
    """Per side, the benchmarks not yet in the cache. A local model folder that cannot be a model raises
    its one paragraph (``models.sources``), as does a benchmark whose local data folder is missing."""
    return {side: [n for n in names if not evaluator.in_cache(side, n)] for side in SIDES}


def data_problem(benchmarks: Sequence[Benchmark], data_dir) -> str | None:
    """Every selected benchmark's local copy checked at once (``data_checks``); one paragraph, or None."""
    messages = []
    for benchmark in benchmarks:
        try:
            check_benchmark_data(benchmark, data_dir)
        except QwencmpError as exc:
            messages.append(exc.message)
    if not messages:
        return None
    return " ".join(messages) + " Nothing was loaded or evaluated."


def _hub_needs(evaluator: Evaluator, pending: Mapping[str, list[str]]) -> list[tuple[str, ModelRef, SourceKind]]:
    """(option, ref, kind) of each model and adapter a pending evaluation reads that is not on this machine;
    a local folder that is incomplete raises its paragraph."""
    needs = []
    for side in SIDES:
        if not pending[side]:
            continue
        handle = evaluator.handles[side]
        refs = [(f"--model-{side}", handle.spec.ref, MODEL)]
        if handle.spec.options.peft is not None:
            refs.append((f"--peft-{side}", handle.spec.options.peft, ADAPTER))
        for option, ref, kind in refs:
            if ref.is_local:
                check_local_folder(ref, option, kind)
            elif not in_hub_cache(ref, kind.config_file):
                needs.append((option, ref, kind))
    return needs


def unreachable(evaluator: Evaluator, pending: Mapping[str, list[str]], benchmarks: Sequence[Benchmark]) -> str | None:
    """One paragraph naming every model, adapter and dataset this run must download but cannot; None if none."""
    needs = _hub_needs(evaluator, pending)
    datasets = {} if evaluator.settings.data_dir is not None else datasets_to_download(list(benchmarks), evaluator.cache.root)
    if not needs and not datasets:
        return None
    blocked = evaluator.hub.blocked()
    if blocked is None:
        return None
    named = [f"{kind.noun} {ref.label!r} ({option})" for option, ref, kind in needs]
    paths = sorted({p for found in datasets.values() for p in found})
    if paths:
        named.append(f"the dataset{'s' if len(paths) > 1 else ''} {', '.join(paths)} ({', '.join(datasets)})")
    mirror = "".join(f" --model {ref.name_or_path}" + (f"@{ref.revision}" if ref.revision else "") for _, ref, _ in needs)
    run_with = " ".join([*(["--data-dir=DIR"] if paths else []),
                         *(f"{option}=DIR/models/{ref.name_or_path}" for option, ref, _ in needs)])
    return (
        f"This run cannot start: it needs {_join(named)} from the Hugging Face hub, but {blocked}, and "
        f"{'they are' if len(named) > 1 else 'it is'} not in this machine's Hugging Face cache ({hub_cache_dir()}). "
        f"Fix: where the hub can be reached, run `python -m pytest_qwencmp mirror --out DIR{mirror}"
        f"{'' if paths else ' --benchmarks none'}`, copy DIR to this machine and run with {run_with}. "
        "Nothing was loaded or evaluated."
    )


def _join(parts: Sequence[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def data_identity(evaluator: Evaluator, names: Sequence[str]) -> dict[str, str] | None:
    """Per benchmark, the identity of the local data it reads (as baselines record it); None from the hub."""
    settings = evaluator.settings
    if settings.data_dir is None:
        return None
    return {
        name: cache_key(TaskSource(evaluator.registry.get(name), settings.data_dir, index_dir=settings.cache_dir).data_fingerprints())
        for name in names
    }


def planned_settings(
    settings: RunSettings,
    registry: Registry,
    plans: Mapping[str, ExecutionPlan],
    names: Sequence[str],
    *,
    data: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """``number_settings`` of the evaluations this run plans, from what is known before any model runs.

    Left out (so not compared until the end): lm-eval's task versions, the shots of a benchmark that
    takes its task's default, the adapter's identity, and the data when ``data`` is None for the demo.
    """
    evaluations = []
    for side in SIDES:
        plan = plans[side]
        model = {"dtype": plan.dtype, "backend": plan.backend, "tensor_parallel": plan.tensor_parallel,
                 "device": plan.device, "setup": settings.options(side).setup()}
        for name in names:
            benchmark = registry.get(name)
            shots = settings.shots_for(name, benchmark.num_fewshot)
            evaluations.append(BenchmarkEvaluation(
                benchmark=name, side=side, key="", model=model, items=(),
                n_shot={name: shots} if shots is not None else {}, versions={},
                gen_kwargs=settings.generation.as_gen_kwargs() if benchmark.generation else None,
                lm_eval_version=lm_eval_version(), wall_seconds=0.0,
            ))
    planned = number_settings(evaluations, settings, data=data)
    if settings.demo:
        planned.pop("data", None)  # the demo's data are built on first use: compared at the end
    for run in (planned.get("runs") or {}).values():
        run.pop(ADAPTER_IDENTITY, None)
        for name, per in run.get("benchmarks", {}).items():
            per.pop("task_versions", None)
            if per.get("num_fewshot") is None:
                per.pop("num_fewshot", None)
    return planned


def imported_mismatch(evaluator: Evaluator, names: Sequence[str]) -> str | None:
    """One paragraph when this run would evaluate again what an imported entry holds under other settings."""
    imported = ImportedEntries(evaluator.cache.root)
    if not imported.records():
        return None
    found: dict[tuple[str, str], list[str]] = {}  # (side, the difference) -> benchmarks
    for side in SIDES:
        for name in names:
            if evaluator.in_cache(side, name):
                continue
            benchmark = evaluator.registry.get(name)
            for difference in imported.differences(side, benchmark, evaluator.key_parts(side, benchmark)):
                found.setdefault((side, difference), []).append(name)
    if not found:
        return None
    lines = "; ".join(f"model {side.upper()}'s {_join(names_)}: {difference}" for (side, difference), names_ in found.items())
    return (
        f"This run would evaluate again what was imported into {evaluator.cache.root} to be reused, because "
        f"settings that change the numbers differ — {lines}. Run with the settings the entries were evaluated "
        f"with, or pass {REEVALUATE_OPTION} to evaluate anew with this run's. Nothing was loaded or evaluated."
    )
