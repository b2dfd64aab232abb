"""Before a run: what each item can detect at its size (``python -m pytest_qwencmp plan``).

Given how many documents each task has (a :class:`Sizer`, such as
``lmeval.sizes.TaskSizes``), :func:`make_plan` gives per item its family, the
minimum detectable effect at the level the run applies, the smallest
regression a regression check catches, and the power of each expectation rule
(``power``, ``rules.assess``) — the same functions the run uses, with an
assumed discordance in place of the observed one. :func:`plan_lines` and
:func:`plan_document` word it for the terminal and for JSON. With ``--sequential``,
:func:`make_sequential_plan` adds the expected share of documents a sequential run
evaluates for given true differences (Monte Carlo through the run's own rules,
``expected_share``), beside the fixed design's MDE.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Iterable, Protocol

from ..config.benchmarks import OVERALL, Benchmark, Registry
from ..config.expectations import Expectations
from ..errors import QwencmpError
from . import power as pw
from .expected_share import benchmark_scenario, expected_share
from .paired import POINTS
from .rules import PowerNote, assess
from .sequential import SequentialDesign

DEFAULT_DISCORDANCE = 0.25


class Sizer(Protocol):
    """Leaf task -> documents for a benchmark; ``sources`` says where each dataset's sizes came from."""

    sources: Mapping[str, str]

    def __call__(self, benchmark: Benchmark) -> Mapping[str, int]: ...


@dataclass(frozen=True)
class ItemPlan:
    """One item before the run: its size, family, MDE, the regression it catches and its rules' power."""

    benchmark: str
    item: str
    n: int
    family_size: int
    level: float
    mde: float | None  # points
    regression: float | None  # points: the smallest true regression detected (no_significant_regression / max_regression)
    notes: tuple[PowerNote, ...] = ()

    @property
    def underpowered(self) -> bool:
        return any(n.underpowered for n in self.notes)


@dataclass(frozen=True)
class Plan:
    items: tuple[ItemPlan, ...]
    discordance: float
    alpha: float
    power: float
    correction: str
    sources: Mapping[str, str] = field(default_factory=dict)  # dataset path -> where its sizes came from
    expectations: str | None = None


# --------------------------------------------------------------------------- the plan


def make_plan(
    registry: Registry,
    expectations: Expectations,
    sizes: Sizer,
    *,
    benchmarks: Iterable[str] | None = None,
    limit: int | None = None,
    discordance: float = DEFAULT_DISCORDANCE,
    alpha: float = 0.05,
    power: float = pw.DEFAULT_POWER,
    correction: str = "holm",
) -> Plan:
    """Per item: n, the MDE at the level the run applies, the regression it catches, and each rule's power.

    Every per-document score is taken to be binary (acc, acc_norm, pass@1 with
    one sample), with ``discordance`` the share of documents where exactly one
    model is right.
    """
    if not 0.0 < discordance <= 1.0:
        raise QwencmpError(f"--discordance {discordance} must lie in (0, 1]: the share of documents where exactly one model is right.")
    if not 0.0 < alpha < 1.0:
        raise QwencmpError(f"--alpha {alpha} must lie strictly between 0 and 1.")
    if not 0.0 < power < 1.0:
        raise QwencmpError(f"--power {power} must lie strictly between 0 and 1.")
    items: list[ItemPlan] = []
    for benchmark in registry.select(benchmarks).benchmarks:
        counted = dict(sizes(benchmark))
        if limit is not None:
            counted = {task: min(n, limit) for task, n in counted.items()}
        family = [i for i in benchmark.items if i.id.split(":")[0] != OVERALL]
        for item in benchmark.items:
            alone = item.id.split(":")[0] == OVERALL
            n = sum(counted.values()) if alone else counted[item.task]
            family_size = 1 if alone else len(family)
            level = pw.mde_level(alpha, "none" if alone else correction, family_size)
            design = pw.Design(n, discordance=discordance)
            expectation = expectations.for_item(benchmark.name, item.id)
            notes = assess(expectation, design, alpha=alpha, family_level=level, target=power, with_needed_n=True)
            mde = pw.mde(design, level, power)
            allowance = (expectation.max_regression or 0.0) / POINTS
            caught = pw.detectable(design, level, power, threshold=-allowance, side=-1)
            items.append(ItemPlan(
                benchmark=benchmark.name, item=item.id, n=n, family_size=family_size, level=level,
                mde=None if mde is None else mde * POINTS, regression=None if caught is None else -caught * POINTS,
                notes=notes,
            ))
    return Plan(tuple(items), discordance, alpha, power, correction, dict(sizes.sources),
                None if expectations.path is None else str(expectations.path))


def _number(value: float | None, spec: str = ".1f") -> str:
    return "none" if value is None else format(value, spec)


def plan_lines(plan: Plan, registry: Registry) -> list[str]:
    """The plan as terminal text: assumptions and sources, then one table per benchmark."""
    lines = [
        "pytest-qwencmp plan: what each item can detect, before anything runs",
        f"  assumptions: binary per-document scores; discordance {plan.discordance:g} (share of documents where exactly "
        f"one model is right); α {plan.alpha:g}; power {plan.power:.0%}; correction {plan.correction}",
        f"  expectations: {plan.expectations or 'none'}",
    ]
    lines += [f"  sizes of {path}: {where}" for path, where in plan.sources.items()]
    for name in dict.fromkeys(i.benchmark for i in plan.items):
        rows = [i for i in plan.items if i.benchmark == name]
        family = [i for i in rows if i.item.split(":")[0] != OVERALL]
        title = registry.get(name).title
        lines.append("")
        if len(family) > 1:
            how = f"{len(family)} items form one family ({plan.correction}): MDEs at α/{len(family)} = {family[0].level:.2g}"
        else:
            how = f"{len(family)} item, tested alone at α = {plan.alpha:g}"
        if len(family) != len(rows):
            how += f"; overall (the size-weighted micro-average) alone at α = {plan.alpha:g}"
        lines.append(f"{title}: {how}")
        table = [("item", "n", "MDE", "regression caught", "expectations")]
        for i in rows:
            weak = [f"{n.rule} underpowered (needs n ≥ {n.needed_n:,})" if n.needed_n else f"{n.rule} underpowered (no n suffices)"
                    for n in i.notes if n.underpowered]
            table.append((i.item, f"{i.n:,}", "±" + _number(i.mde) if i.mde is not None else "none",
                          "≥ " + _number(i.regression) if i.regression is not None else "none",
                          "; ".join(weak) or ("ok" if i.notes else "—")))
        widths = [max(len(row[c]) for row in table) for c in range(5)]
        for row in table:
            lines.append("  " + "  ".join(cell.rjust(w) if c in (1, 2, 3) else cell.ljust(w)
                                          for c, (cell, w) in enumerate(zip(row, widths))).rstrip())
    weak_items = [i for i in plan.items if i.underpowered]
    lines.append("")
    lines.append(f"{len(weak_items)} of {len(plan.items)} items have an underpowered expectation. MDE: the smallest true "
                 f"B − A detected with {plan.power:.0%} power; regression caught: the smallest true regression that "
                 "fails no_significant_regression / max_regression with that power. --json FILE keeps every rule's note.")
    return lines


def plan_document(plan: Plan) -> dict[str, Any]:
    """The plan as JSON-able data (``--json FILE``)."""
    return {
        "assumptions": {"discordance": plan.discordance, "alpha": plan.alpha, "power": plan.power,
                        "correction": plan.correction, "scores": "binary"},
        "expectations": plan.expectations,
        "sources": dict(plan.sources),
        "items": [
            {"benchmark": i.benchmark, "item": i.item, "n": i.n, "family_size": i.family_size, "level": i.level,
             "mde": i.mde, "regression_caught": i.regression, "underpowered": i.underpowered,
             "notes": [{"rule": n.rule, "text": n.text, "underpowered": n.underpowered, "needed_n": n.needed_n}
                       for n in i.notes]}
            for i in plan.items
        ],
    }


# --------------------------------------------------------------------------- plan --sequential


@dataclass(frozen=True)
class SequentialPlan:
    """``plan --sequential``: per benchmark and assumed true B − A, the expected share of documents a sequential run
    evaluates (Monte Carlo mean, standard error), beside the fixed design's MDE of its headline item."""

    design: SequentialDesign
    deltas: tuple[str, ...]  # the scenarios, as given
    documents: Mapping[str, int]
    mde: Mapping[str, tuple[str, float | None]]  # benchmark -> (headline item, MDE points)
    shares: Mapping[tuple[str, str], tuple[float, float]]  # (scenario, benchmark or "all") -> (mean, se)
    reps: int
    discordance: float
    score_a: float


def parse_deltas(text: str, names: Iterable[str]) -> dict[str, float]:
    """``--delta``: one number for every benchmark (``-20``), or ``mmlu=12.16,hellaswag=9.77`` (others 0)."""
    names = list(names)
    try:
        if "=" not in text:
            return {name: float(text) for name in names}
        out = {name: 0.0 for name in names}
        for part in text.split(","):
            name, _, value = part.partition("=")
            if name.strip() not in out:
                raise QwencmpError(f"--delta {text!r} names benchmark {name.strip()!r}; known: {', '.join(names)}.")
            out[name.strip()] = float(value)
        return out
    except ValueError:
        raise QwencmpError(f"--delta {text!r} must be points of B − A: one number, or BENCH=POINTS,… "
                           "(for example mmlu=12.16,hellaswag=9.77,mbpp=16.2).") from None


def make_sequential_plan(registry: Registry, expectations: Expectations, sizes: Sizer, deltas: Iterable[str], plan: Plan,
                         design: SequentialDesign, *, benchmarks: Iterable[str] | None = None,
                         limit: int | None = None, score_a: float = 50.0, reps: int = 400,
                         seed: int = 0) -> SequentialPlan:
    """Simulate ``reps`` sequential runs per scenario (``deltas``, as :func:`parse_deltas` reads them) through the run's
    own decision rules (``expected_share``); ``plan`` (from :func:`make_plan`) gives the fixed design's MDEs."""
    chosen = registry.select(benchmarks).benchmarks
    counted = {b.name: {t: n if limit is None else min(n, limit) for t, n in sizes(b).items()} for b in chosen}
    shares: dict[tuple[str, str], tuple[float, float]] = {}
    for text in deltas:
        delta = parse_deltas(text, [b.name for b in chosen])
        try:
            scenario = [benchmark_scenario(b, expectations, counted[b.name], delta[b.name], plan.discordance, score_a)
                        for b in chosen]
            for b in scenario:
                for truth in b.strata.values():
                    truth.cells()
        except ValueError as exc:
            raise QwencmpError(f"--delta {text!r}: {exc}; raise --discordance (the share of documents where exactly one "
                               "model is right bounds |B − A|) or change --score-a.") from None
        for name, value in expected_share(design, scenario, reps=reps, seed=seed).items():
            shares[(text, name)] = value
    mde = {}
    for b in chosen:
        rows = [i for i in plan.items if i.benchmark == b.name]
        head = next((i for i in rows if i.item.split(":")[0] == OVERALL), rows[0])
        mde[b.name] = (head.item, head.mde)
    return SequentialPlan(design, tuple(deltas), {b.name: sum(counted[b.name].values()) for b in chosen}, mde, shares,
                          reps, plan.discordance, score_a)


def sequential_plan_lines(splan: SequentialPlan, registry: Registry) -> list[str]:
    """``plan --sequential`` as terminal text: one row per benchmark, one column per assumed B − A."""
    lines = ["", "Sequential (--sequential): the expected share of documents evaluated, if the true B − A were …",
             f"  design: {splan.design.method}",
             f"  {splan.reps} simulated runs per scenario through the run's own decision rules; discordance "
             f"{splan.discordance:g}; A's true score {splan.score_a:g} in every task (floors depend on it); documents "
             "independent, each metric of a task drawn independently"]
    head = ("benchmark", "documents", "fixed MDE", *(f"Δ {d}" for d in splan.deltas))
    table = [head]
    for name, documents in splan.documents.items():
        item, mde = splan.mde[name]
        table.append((registry.get(name).title, f"{documents:,}", f"±{_number(mde)} ({item})" if mde is not None else f"none ({item})",
                      *(f"{100 * splan.shares[(d, name)][0]:.0f} % ± {100 * splan.shares[(d, name)][1]:.1f}" for d in splan.deltas)))
    table.append(("all", f"{sum(splan.documents.values()):,}", "",
                  *(f"{100 * splan.shares[(d, 'all')][0]:.0f} % ± {100 * splan.shares[(d, 'all')][1]:.1f}" for d in splan.deltas)))
    widths = [max(len(row[c]) for row in table) for c in range(len(head))]
    for row in table:
        lines.append("  " + "  ".join(cell.ljust(w) if c == 0 else cell.rjust(w) for c, (cell, w) in enumerate(zip(row, widths))).rstrip())
    lines.append("  A benchmark stops when every item with an expectation is decided; items without one never hold it. "
                 "Floors need the scores well clear of them to stop early.")
    return lines


def sequential_plan_document(splan: SequentialPlan) -> dict[str, Any]:
    return {"design": splan.design.method, "reps": splan.reps, "discordance": splan.discordance, "score_a": splan.score_a,
            "documents": dict(splan.documents), "mde": {k: {"item": v[0], "mde": v[1]} for k, v in splan.mde.items()},
            "expected_share": {d: {name: {"mean": m, "se": se} for (dd, name), (m, se) in splan.shares.items() if dd == d}
                               for d in splan.deltas}}
