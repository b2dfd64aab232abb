"""Before a run: what each item can detect at its size (``python -m pytest_qwencmp plan``).

Given how many documents each task has (a :class:`Sizer`, such as
``lmeval.sizes.TaskSizes``), :func:`make_plan` gives per item its family, the
minimum detectable effect at the level the run applies, the smallest
regression a regression check catches, and the power of each expectation rule
(``power``, ``rules.assess``) — the same functions the run uses, with an
assumed discordance in place of the observed one. :func:`impossible_keys` says,
exactly and for plan and run alike, which keys can never pass (or never fail)
at the item's n whatever the models answer: the key is decided on the most
favourable tables its family can produce (every document won by B, resp. by
A), and the intervals are monotone in the counts, so nothing can do better.
:func:`plan_lines` and :func:`plan_document` word it for the terminal and for JSON.
With ``--sequential``, :func:`make_sequential_plan` adds the expected share of
documents a sequential run evaluates for given true differences (Monte Carlo
through the run's own rules, ``expected_share``), beside the fixed design's MDE.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Iterable, Protocol

from ..config.benchmarks import OVERALL, Benchmark, Registry
from ..config.expectations import Expectation, Expectations
from ..errors import QwencmpError
from . import power as pw
from .expected_share import benchmark_scenario, expected_share
from .keys import KEYS, key_threshold
from .multiplicity import ALPHA, adjust_family
from .paired import POINTS
from .paired_binary import paired_binary_test
from .rules import PowerNote, assess, key_families
from .sequential import SequentialDesign

DEFAULT_DISCORDANCE = 0.25


class Sizer(Protocol):
    """Leaf task -> documents for a benchmark; ``sources`` says where each dataset's sizes came from."""

    sources: Mapping[str, str]

    def __call__(self, benchmark: Benchmark) -> Mapping[str, int]: ...


@dataclass(frozen=True)
class Impossible:
    """A rule that can never pass (``outcome = "pass"``) or never fail (``"fail"``) at ``n`` documents."""

    rule: str
    value: Any
    n: int
    outcome: str
    needed_n: int | None  # the smallest n (every item of its family that size) at which it could; None: none

    @property
    def text(self) -> str:
        return impossible_text(self.to_record())

    def to_record(self) -> dict[str, Any]:
        return {"rule": self.rule, "value": self.value, "n": self.n, "outcome": self.outcome, "needed_n": self.needed_n}


def impossible_text(entry: Mapping[str, Any]) -> str:
    """``min_ci_lower 0 can never pass at n = 4, whatever the models answer (needs n ≥ 5)``, from an entry's record."""
    need = f"needs n ≥ {entry['needed_n']:,}" if entry.get("needed_n") else "no n suffices"
    value = "" if isinstance(entry["value"], bool) else f" {entry['value']:g}"
    return f"{entry['rule']}{value} can never {entry['outcome']} at n = {entry['n']:,}, whatever the models answer ({need})"


def impossible_lines(entries: Iterable[tuple[str, str, Mapping[str, Any]]]) -> list[str]:
    """``(benchmark, item, entry)`` triples grouped into one line per benchmark and identical rule, size and need.

    What ``plan`` prints and what the run's header (terminal, Markdown, HTML) shows, from the same entries.
    """
    groups: dict[tuple, list[str]] = {}
    for benchmark, item, entry in entries:
        key = (benchmark, entry["rule"], entry["value"], entry["outcome"], entry["n"], entry.get("needed_n"))
        groups.setdefault(key, []).append(item)
    lines = []
    for (benchmark, rule, value, outcome, n, needed), items in groups.items():
        entry = {"rule": rule, "value": value, "outcome": outcome, "n": n, "needed_n": needed}
        shown = ", ".join(items[:3]) + (", …" if len(items) > 3 else "")
        which = f"{benchmark}[{items[0]}]" if len(items) == 1 else f"{benchmark}: {len(items)} items ({shown})"
        lines.append(f"{which}: {impossible_text(entry)}")
    return lines


def best_case_p(threshold: float, alternative: str, n: int, *, binary: bool = True, resamples: int = 10_000) -> float:
    """The smallest one-sided p-value of the test of Δ = ``threshold`` (points) at ``n`` documents.

    Binary scores: the score test on the most favourable table — every document
    won by B (``alternative="greater"``) or by A (``"less"``); its bounds are
    monotone in the counts, so no table does better. Other scores (the
    permutation test): every difference equal and on the favourable side gives
    the smallest tail the sign vectors allow, 2^-n (exact) or 1/(resamples + 1).
    """
    if binary:
        b, c = (n, 0) if alternative == "greater" else (0, n)
        return float(paired_binary_test(b, c, n, threshold, alternative))
    if (threshold >= POINTS) if alternative == "greater" else (threshold <= -POINTS):
        return 1.0
    return 2.0 ** -n if n < 63 and (1 << n) <= resamples else 1.0 / (resamples + 1)


# The rules whose outcome a table can force: the threshold keys, and no_significant_regression (Δ = 0, on the A side).
_RULES = tuple(KEYS) + ("no_significant_regression",)


def impossible_keys(
    item_ids: Iterable[str],
    expectation: Callable[[str], Expectation],
    sizes: Mapping[str, int],
    *,
    correction: str = "holm",
    alpha: float = ALPHA,
    binary: Mapping[str, bool] | None = None,
    resamples: int = 10_000,
) -> dict[str, tuple[Impossible, ...]]:
    """Per item, the rules that can never pass (or, for regression checks, never fail) at its size.

    Each rule's family (``rules.key_families``; ``no_significant_regression``:
    the benchmark's non-overall items) is put on its most favourable tables at
    once and adjusted as the run adjusts it; the adjusted p-value of every
    adjustment is monotone in each p-value, so a rule that fails there fails on
    every outcome. ``binary`` (per item, default all): the test the item gets.
    ``needed_n`` is the smallest n at which the rule could, with every item of
    its family that size.
    """
    ids = list(item_ids)
    binary = binary or {}
    found: dict[str, list[Impossible]] = {i: [] for i in ids}
    for rule in _RULES:
        if rule == "no_significant_regression":
            carrying = [i for i in ids if expectation(i).no_significant_regression]
            families = [f for f in key_families(ids, "max_regression") if set(f) & set(carrying)]
            setting = lambda i: (0.0, "less")  # noqa: E731
        else:
            carrying = [i for i in ids if getattr(expectation(i), rule) is not None]
            families = key_families(carrying, rule)
            setting = lambda i, rule=rule: key_threshold(rule, getattr(expectation(i), rule))  # noqa: E731
        for family in families:
            method = correction if len(family) > 1 else "none"
            seen: dict[tuple[int, ...], list[bool]] = {}  # the search for needed_n asks the same sizes for every item

            def possible(ns: list[int], family=family, seen=seen) -> list[bool]:
                if tuple(ns) not in seen:
                    p = [best_case_p(*setting(i), n, binary=binary.get(i, True), resamples=resamples)
                         for i, n in zip(family, ns)]
                    seen[tuple(ns)] = [bool(a < alpha) for a in adjust_family(p, method, alpha)[0]]
                return seen[tuple(ns)]

            for i, ok in zip(family, possible([sizes[i] for i in family])):
                if ok or i not in carrying:
                    continue
                needed = pw.smallest_n(lambda n, i=i: possible([n] * len(family))[family.index(i)], limit=10_000_000)
                value = getattr(expectation(i), rule)
                outcome = "pass" if rule in KEYS and KEYS[rule][1] == "greater" else "fail"
                found[i].append(Impossible(rule, value, sizes[i], outcome, needed))
    return {i: tuple(v) for i, v in found.items()}


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
    impossible: tuple[Impossible, ...] = ()

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
        item_sizes = {i.id: sum(counted.values()) if i.id.split(":")[0] == OVERALL else counted[i.task]
                      for i in benchmark.items}
        impossible = impossible_keys(item_sizes, lambda i: expectations.for_item(benchmark.name, i), item_sizes,
                                     correction=correction, alpha=alpha / 2.0)
        for item in benchmark.items:
            alone = item.id.split(":")[0] == OVERALL
            n = item_sizes[item.id]
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
                notes=notes, impossible=impossible[item.id],
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
        f"one model is right); {pw.level_phrase(plan.alpha)} (each key a one-sided test at {100 * plan.alpha / 2:g} %); "
        f"power {plan.power:.0%}; correction {plan.correction}",
        f"  expectations: {plan.expectations or 'none'}",
    ]
    lines += [f"  sizes of {path}: {where}" for path, where in plan.sources.items()]
    for name in dict.fromkeys(i.benchmark for i in plan.items):
        rows = [i for i in plan.items if i.benchmark == name]
        family = [i for i in rows if i.item.split(":")[0] != OVERALL]
        title = registry.get(name).title
        lines.append("")
        if len(family) > 1:
            how = (f"{len(family)} items form one family ({plan.correction}): MDEs for one item that differs, at the "
                   f"{pw.level_phrase(family[0].level)}")
        else:
            how = f"{len(family)} item, tested alone at the {pw.level_phrase(plan.alpha)}"
        if len(family) != len(rows):
            how += f"; overall (the size-weighted micro-average) alone at the {pw.level_phrase(plan.alpha)}"
        lines.append(f"{title}: {how}")
        table = [("item", "n", "MDE", "regression caught", "expectations")]
        for i in rows:
            weak = [f"{n.rule} underpowered (needs n ≥ {n.needed_n:,})" if n.needed_n else f"{n.rule} underpowered (no n suffices)"
                    for n in i.notes if n.underpowered]
            weak = [f"{x.rule} can never {x.outcome} ({'needs n ≥ ' + format(x.needed_n, ',') if x.needed_n else 'no n suffices'})"
                    for x in i.impossible] + weak
            table.append((i.item, f"{i.n:,}", "±" + _number(i.mde) if i.mde is not None else "none",
                          "≥ " + _number(i.regression) if i.regression is not None else "none",
                          "; ".join(weak) or ("ok" if i.notes else "—")))
        widths = [max(len(row[c]) for row in table) for c in range(5)]
        for row in table:
            lines.append("  " + "  ".join(cell.rjust(w) if c in (1, 2, 3) else cell.ljust(w)
                                          for c, (cell, w) in enumerate(zip(row, widths))).rstrip())
    weak_items = [i for i in plan.items if i.underpowered]
    lines.append("")
    never = impossible_lines((i.benchmark, i.item, x.to_record()) for i in plan.items for x in i.impossible)
    if never:
        lines.append(f"{sum(1 for i in plan.items if i.impossible)} of {len(plan.items)} items have an expectation that can "
                     "never pass (or never fail) at their size, whatever the models answer:")
        lines += [f"  {line}" for line in never]
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
                       for n in i.notes],
             "impossible": [{**x.to_record(), "text": x.text} for x in i.impossible]}
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
