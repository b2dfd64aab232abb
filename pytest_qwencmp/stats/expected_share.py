"""How many documents a sequential run evaluates, by simulation through the run's own decision rules.

:func:`simulate_benchmark` draws ``reps`` runs of one benchmark whose strata (MMLU
subjects, or the whole task) have given true differences, discordance and scores
(:class:`StratumTruth`), and decides every item look by look with exactly the rules of
``sequential`` (RCIs, futility, curtailment, graphical Holm or Bonferroni), vectorised
over the runs. :func:`expected_share` gives the expected share of documents evaluated
per benchmark (:func:`benchmark_scenario` builds a benchmark's strata and items as the run
sees them) — what ``python -m pytest_qwencmp plan --sequential`` prints — and
``benchmarks/sequential_simulation.py`` measures error rates with it. Documents are
independent; the four cells (both right, B only, A only, both wrong) are multinomial.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from ..config.benchmarks import OVERALL, Benchmark
from ..config.expectations import Expectation, Expectations
from .sequential import (CONTINUE, FAIL, FAIL_ONLY, FAMILY_KEYS, FLOORS, PASS, PASS_SIDE, PairedInterval,
                         ScoreInterval, SequentialDesign, binary_interval, decide_look, family_key_count,
                         planned_sizes, score_interval, sequential_keys)
from .spending import rci_level

__all__ = ["StratumTruth", "SimulatedItem", "BenchmarkScenario", "SimulationResult", "simulate_benchmark",
           "expected_share", "fast_binary_interval", "benchmark_scenario"]


@dataclass(frozen=True)
class StratumTruth:
    """A stratum's documents: how many, true B − A and A's true score (points), and the discordance r
    (the share of documents exactly one model gets right)."""

    size: int
    delta: float
    discordance: float = 0.25
    score_a: float = 50.0

    def cells(self) -> tuple[float, float, float, float]:
        """(both right, B only, A only, both wrong) probabilities."""
        d, r, pa = self.delta / 100.0, self.discordance, self.score_a / 100.0
        if abs(d) > r + 1e-12:
            raise ValueError(f"|delta| = {abs(self.delta)} points exceeds the discordance {r:.0%}")
        pb, pc = (r + d) / 2.0, (r - d) / 2.0
        p11 = pa - pc
        p00 = 1.0 - p11 - pb - pc
        if p11 < -1e-12 or p00 < -1e-12:
            raise ValueError(f"score_a {self.score_a} is impossible with delta {self.delta} and discordance {r}")
        return max(p11, 0.0), max(pb, 0.0), max(pc, 0.0), max(p00, 0.0)


@dataclass(frozen=True)
class SimulatedItem:
    """An item: the strata it is computed from, its expectation, its family (None: tested alone)."""

    name: str
    strata: tuple[str, ...]
    rules: Expectation
    family: str | None = None


@dataclass(frozen=True)
class BenchmarkScenario:
    """A benchmark's strata and items. ``same_documents`` maps a stratum that is another metric of some
    stratum's documents (HellaSwag acc_norm of acc) to that stratum, so documents are counted once."""

    name: str
    strata: Mapping[str, StratumTruth]
    items: tuple[SimulatedItem, ...]
    same_documents: Mapping[str, str] = field(default_factory=dict)


@dataclass
class SimulationResult:
    """Per simulated run: each item's and key's verdict and look (0: undecided), documents evaluated, and
    each item's counts at the last look (``final_counts[item]``: n, and arrays n11, b, c)."""

    benchmark: str
    item_verdict: dict[str, np.ndarray]
    item_look: dict[str, np.ndarray]
    key_verdict: dict[tuple[str, str], np.ndarray]
    key_look: dict[tuple[str, str], np.ndarray]
    documents: np.ndarray
    documents_total: int
    stop_look: np.ndarray
    final_counts: dict[str, dict[str, object]]
    item_counts: dict[str, tuple[np.ndarray, np.ndarray]]  # item -> (planned n per look, cumulative (K, reps, [n11, b, c]))

    @property
    def share(self) -> np.ndarray:
        return self.documents / self.documents_total


def fast_binary_interval(b_only, a_only, n, level):
    """``sequential.binary_interval`` without the last-bit polish (agrees to ~1e−11 points): for simulations."""
    return binary_interval(b_only, a_only, n, level, exact=False)


def _by_level(fn, args, level: np.ndarray):
    """Call an interval function once per distinct level (it may take only a scalar level)."""
    low = np.empty(level.size)
    high = np.empty(level.size)
    for value in np.unique(level):
        sel = level == value
        lo, hi = fn(*[a[sel] if np.ndim(a) else a for a in args], float(value))
        low[sel], high[sel] = lo, hi
    return low, high


def _levels(design: SequentialDesign, fractions: tuple[float, ...], alpha: np.ndarray) -> np.ndarray:
    """Per run, the RCI's two-sided level at the last of ``fractions`` for its one-sided ``alpha``."""
    distinct, where = np.unique(alpha, return_inverse=True)
    return np.array([rci_level(design.crit(fractions, float(a))) for a in distinct])[where]


def _draw(strata: Mapping[str, StratumTruth], looks, reps, rng):
    """Per stratum: planned documents per look, and cumulative counts (K, reps, [n11, b, c])."""
    out = {}
    for name, truth in strata.items():
        ns = planned_sizes(truth.size, looks)
        cells = list(truth.cells())
        cum = np.zeros((len(looks), reps, 3))
        acc = np.zeros((reps, 3))
        prev = 0
        for k, n in enumerate(ns):
            if n > prev:
                acc = acc + rng.multinomial(n - prev, cells, size=reps)[:, :3]
            cum[k] = acc
            prev = n
        out[name] = (np.array(ns), cum)
    return out


def simulate_benchmark(design: SequentialDesign, bench: BenchmarkScenario, reps: int = 1000,
                       rng: np.random.Generator | None = None, paired_ci: PairedInterval = fast_binary_interval,
                       score_ci: ScoreInterval = score_interval) -> SimulationResult:
    """Simulate ``reps`` sequential runs of one benchmark through the decision rules of ``sequential``."""
    rng = rng or np.random.default_rng(0)
    K = len(design.looks)
    counts = _draw(bench.strata, design.looks, reps, rng)
    items = bench.items
    families: dict[str, list[SimulatedItem]] = {}
    for it in items:
        if it.family is not None:
            families.setdefault(it.family, []).append(it)
    m_of = {f: sum(family_key_count(it.rules) for it in its) for f, its in families.items()}
    icounts = {it.name: (sum(counts[s][0] for s in it.strata), sum(counts[s][1] for s in it.strata)) for it in items}
    keys = {it.name: sequential_keys(it.rules) for it in items}
    key_verdict = {(it.name, r): np.zeros(reps, np.int8) for it in items for r, _ in keys[it.name]}
    key_look = {(it.name, r): np.zeros(reps, np.int16) for it in items for r, _ in keys[it.name]}
    item_verdict = {it.name: np.zeros(reps, np.int8) for it in items}
    item_look = {it.name: np.zeros(reps, np.int16) for it in items}
    rejected = {f: np.zeros(reps, np.int32) for f in families}
    holm = design.family_rule == "holm"
    stopped = np.zeros(reps, bool)
    stop_look = np.full(reps, K, np.int16)

    def in_family(it, rule):
        return rule in FAMILY_KEYS and it.family is not None and m_of[it.family] > 1 and design.family_rule != "none"

    for k in range(K):
        open_items = {it.name: (item_verdict[it.name] == CONTINUE) & ~stopped for it in items}
        while True:
            new_rej = {f: np.zeros(reps, bool) for f in families}
            for it in items:
                ns, cum = icounts[it.name]
                total = int(ns[-1])
                if k > 0 and ns[k] == ns[k - 1]:
                    continue  # no new documents for this item at this look
                if not open_items[it.name].any():
                    continue
                n = int(ns[k])
                final = n >= total
                seen = sorted({int(x) for x in ns[: k + 1]})
                fractions = tuple(x / total for x in seen)
                full = fractions + tuple(x / total for x in sorted({int(x) for x in ns if x > n}))
                n11, b, c = cum[k, :, 0], cum[k, :, 1], cum[k, :, 2]
                for rule, thr in keys[it.name]:
                    kv = key_verdict[(it.name, rule)]
                    todo = open_items[it.name] & (kv == CONTINUE)
                    if not todo.any():
                        continue
                    sel = np.flatnonzero(todo)
                    family = in_family(it, rule)
                    if family:
                        m = m_of[it.family]
                        alpha = design.alpha / np.maximum(1, m - rejected[it.family][sel]) if holm else np.full(sel.size, design.alpha / m)
                        alpha_max = design.alpha if holm else design.alpha / m
                    else:
                        alpha, alpha_max = np.full(sel.size, design.alpha), design.alpha
                    level = _levels(design, fractions, alpha)
                    if rule in FLOORS:
                        correct = (n11 + (c if rule == "floor_a" else b))[sel]
                        low, high = _by_level(score_ci, (correct, np.full(sel.size, n)), level)
                        estimate = 100.0 * correct / n
                    else:
                        low, high = _by_level(paired_ci, (b[sel], c[sel], np.full(sel.size, n)), level)
                        estimate = 100.0 * (b[sel] - c[sel]) / n
                    v = np.atleast_1d(decide_look(rule, thr, low, high, final=final, estimate=estimate))
                    if not design.futility and rule in PASS_SIDE and not final:
                        v = np.where(v == FAIL, CONTINUE, v)
                    if design.curtail and not final:
                        v = _curtail(v, rule, thr, n11[sel], b[sel], c[sel], total - n, total, full, alpha,
                                     alpha_max, family and holm, design, paired_ci)
                    newly = v != CONTINUE
                    kv[sel[newly]] = v[newly]
                    key_look[(it.name, rule)][sel[newly]] = k + 1
                    if holm and family:
                        rej = (v == FAIL) if rule in FAIL_ONLY else (v == PASS)
                        if rej.any():
                            np.add.at(rejected[it.family], sel[rej], 1)
                            new_rej[it.family][sel[rej]] = True
            if not holm or not any(x.any() for x in new_rej.values()):
                break
            for it in items:  # α rose where a hypothesis was rejected: that look's acceptances are examined again
                if it.family is None or not new_rej[it.family].any():
                    continue
                for rule, _ in keys[it.name]:
                    if rule not in FAMILY_KEYS:
                        continue
                    kv = key_verdict[(it.name, rule)]
                    accepted = (kv == PASS) if rule in FAIL_ONLY else (kv == FAIL)
                    redo = new_rej[it.family] & open_items[it.name] & accepted & (key_look[(it.name, rule)] == k + 1)
                    kv[redo] = CONTINUE
                    key_look[(it.name, rule)][redo] = 0
        for it in items:
            vs = [key_verdict[(it.name, r)] for r, _ in keys[it.name]]
            if vs:
                anyfail = np.any([v == FAIL for v in vs], axis=0)
                allpass = np.all([v == PASS for v in vs], axis=0)
                newly = open_items[it.name] & (anyfail | allpass)
                item_verdict[it.name][newly] = np.where(anyfail[newly], FAIL, PASS)
                item_look[it.name][newly] = k + 1
        relevant = [it for it in items if keys[it.name]]
        stop_now = np.all([item_verdict[it.name] != CONTINUE for it in relevant], axis=0) if relevant else np.ones(reps, bool)
        stop_look[stop_now & ~stopped] = k + 1
        stopped |= stop_now

    # a stratum is extended at look k while an undecided item with expectations needs it (the first look always runs)
    strata_look = {s: np.ones(reps, np.int16) for s in bench.strata}
    for it in items:
        if not keys[it.name]:
            continue
        lk = np.minimum(np.where(item_look[it.name] == 0, stop_look, item_look[it.name]), stop_look)
        for s in it.strata:
            strata_look[s] = np.maximum(strata_look[s], lk)
    groups: dict[str, np.ndarray] = {}
    for s in bench.strata:
        g = bench.same_documents.get(s, s)
        groups[g] = np.maximum(groups.get(g, np.zeros(reps)), counts[s][0][strata_look[s] - 1])
    documents = sum(groups.values())
    total = sum(t.size for s, t in bench.strata.items() if bench.same_documents.get(s, s) == s)
    final_counts = {it.name: {"n": int(icounts[it.name][0][-1]), "n11": icounts[it.name][1][-1, :, 0],
                              "b": icounts[it.name][1][-1, :, 1], "c": icounts[it.name][1][-1, :, 2]} for it in items}
    return SimulationResult(bench.name, item_verdict, item_look, key_verdict, key_look, np.asarray(documents, float),
                            int(total), stop_look, final_counts, icounts)


def _curtail(v, rule, thr, n11, b, c, r, total, full, alpha, alpha_max, family, design, paired_ci):
    """``sequential._curtailed``, vectorised over the runs still undecided in ``v``."""
    open_ = v == CONTINUE
    if not open_.any():
        return v
    if rule in FLOORS:
        correct = n11 + (c if rule == "floor_a" else b)
        passes, fails = 100.0 * correct / total >= thr, 100.0 * (correct + r) / total < thr
    elif rule == "min_improvement":
        passes, fails = 100.0 * (b - c - r) / total >= thr, 100.0 * (b + r - c) / total < thr
    else:
        wide = _levels(design, full, alpha)
        narrow = np.full(b.size, rci_level(design.crit(full, alpha_max)))
        n = np.full(b.size, total)
        if rule in PASS_SIDE:
            passes = np.zeros(b.size, bool) if family else _by_level(paired_ci, (b, c + r, n), wide)[0] > thr
            fails = _by_level(paired_ci, (b + r, c, n), narrow)[0] <= thr
        else:
            passes = _by_level(paired_ci, (b, c + r, n), narrow)[1] >= thr
            fails = np.zeros(b.size, bool) if family else _by_level(paired_ci, (b + r, c, n), wide)[1] < thr
    return np.where(open_ & passes, PASS, np.where(open_ & fails, FAIL, v)).astype(np.int8)


def expected_share(design: SequentialDesign, scenario: Sequence[BenchmarkScenario], *, reps: int = 400,
                   seed: int = 0, paired_ci: PairedInterval = fast_binary_interval) -> dict[str, tuple[float, float]]:
    """Expected share of documents evaluated per benchmark, and ``"all"`` (weighted by documents), as
    (mean, Monte Carlo standard error)."""
    rng = np.random.default_rng(seed)
    out = {}
    all_docs = np.zeros(reps)
    all_total = 0
    for bench in scenario:
        res = simulate_benchmark(design, bench, reps, rng, paired_ci)
        out[bench.name] = (float(res.share.mean()), _se(res.share))
        all_docs += res.documents
        all_total += res.documents_total
    out["all"] = (float((all_docs / max(all_total, 1)).mean()), _se(all_docs / max(all_total, 1)))
    return out


def _se(x: np.ndarray) -> float:
    return float(x.std(ddof=1) / math.sqrt(x.size)) if x.size > 1 else 0.0


def benchmark_scenario(benchmark: Benchmark, expectations: Expectations, sizes: Mapping[str, int], delta: float,
                       discordance: float, score_a: float) -> BenchmarkScenario:
    """A benchmark as the run sees it: each leaf task a stratum of its size with true B − A ``delta`` and A's score
    ``score_a`` (points); its non-overall items one family, ``overall`` alone over all strata; a benchmark's metrics
    on the same task (HellaSwag acc, acc_norm) drawn independently on the same documents."""
    strata: dict[str, StratumTruth] = {}
    same: dict[str, str] = {}
    items = []
    for item in benchmark.items:
        rules = expectations.for_item(benchmark.name, item.id)
        if item.id.split(":")[0] == OVERALL and benchmark.subjects:
            items.append(SimulatedItem(item.id, tuple(f"{t}:{item.metric}" for t in benchmark.leaf_tasks), rules))
            continue
        stratum = f"{item.task}:{item.metric}"
        strata[stratum] = StratumTruth(sizes[item.task], delta, discordance, score_a)
        first = f"{item.task}:{benchmark.metrics[0][1]}"
        if stratum != first:
            same[stratum] = first
        items.append(SimulatedItem(item.id, (stratum,), rules, "family"))
    return BenchmarkScenario(benchmark.name, strata, tuple(items), same)
