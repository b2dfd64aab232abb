"""Sequential evaluation: decide each expectation after every look, stop when all are decided.

A group-sequential design with an alpha-spending function (``spending``), decided
per item through repeated confidence intervals (RCIs; Jennison & Turnbull 1989):

* **Looks.** A benchmark's documents are put in a seeded random order per stratum
  (an MMLU subject, or the whole task; :func:`document_order`) and evaluated in
  looks at fractions ``(1/8, 1/4, 1/2, 1)`` of every stratum (:func:`look_sizes`),
  so every MMLU subject is sampled at the same rate. An item's information fraction
  is its own ``n_k / N``; boundaries follow the fractions actually observed.
* **RCI.** At look k a key's interval is the fixed design's interval at the two-sided
  level ``2(1 − Φ(c_k))`` (``spending.rci_level``), ``c_k`` the boundary at the key's
  one-sided α: each side holds simultaneously over all looks with probability
  ≥ 1 − α. The interval functions are injected: ``paired_ci(b_only, a_only, n, level)``
  (the plugin's is :func:`binary_interval`, Tango's score interval of
  ``paired_binary``) and, for floors, ``score_ci(correct, n, level)`` (Wilson's score
  interval, :func:`score_interval`).
* **Decisions** (:func:`decide_look`; PASS / FAIL / CONTINUE; thresholds in points):

  ==============================  ======================  ======================  ======================
  key                             PASS at look k          FAIL at look k          last look
  ==============================  ======================  ======================  ======================
  ``min_ci_lower = t``            low > t                 high ≤ t (futility)     PASS iff low > t
  ``non_inferiority_margin = M``  low > −M                high ≤ −M (futility)    PASS iff low > −M
  ``max_regression = X``          low > −X                high < −X               FAIL iff high < −X
  ``no_significant_regression``   as ``max_regression = 0``
  ``min_improvement = t``         low > t                 high < t                point estimate ≥ t
  ``floor_a`` / ``floor_b = f``   score RCI low > f       score RCI high < f      score ≥ f
  ==============================  ======================  ======================  ======================

  The futility FAILs and ``max_regression``'s early PASS are non-binding: they only
  ever turn a would-be PASS into FAIL (resp. FAIL into PASS), never towards the
  controlled error; the boundaries ignore them. **Curtailment**: a key whose last-look
  verdict is already the same for every possible outcome of the documents still to
  come (all of them won by A, or all by B, at the narrowest and the widest last-look
  interval the key can get) is decided now, with that verdict — it cannot differ from
  running to the end. A decided key stays decided; an item is decided when a key
  FAILs or every key has PASSed.
* **Multiplicity.** Keys the fixed design decides on the family-adjusted interval
  (``max_regression``, ``non_inferiority_margin``, ``no_significant_regression``) start
  at ``α/m`` (m: the family's hypotheses). ``family_rule="holm"`` (default): the
  graphical Holm procedure for group-sequential designs (Maurer & Bretz 2013): a
  rejection (a ``max_regression`` FAIL, a ``non_inferiority_margin`` PASS) passes its α
  on, every open key then spends ``α/(m − R)`` with its boundaries recomputed, and the
  family's acceptances at that look are examined again (:func:`decide_family`).
  ``"bonferroni"``: each at ``α/m``. Curtailment never rejects a family key early (it
  would pass α on before the rejection happens); it may accept one.
* **Stopping.** A benchmark stops when every item with an expectation is decided
  (:func:`benchmark_stop`); a stratum is extended only while an undecided item with
  expectations needs it (:func:`strata_needed`).

Pure: numpy, scipy, ``keys``, ``paired_binary``, ``spending`` and ``config.expectations``.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import special

from ..config.expectations import Expectation
from ..config.settings import DEFAULT_LOOKS
from .keys import KEYS, key_threshold, passes_at
from .paired_binary import paired_binary_ci
from .spending import DEFAULT_SPENDING, SPENDING_NAMES, boundaries, check_fractions, check_spending, rci_level

__all__ = [
    "PASS", "FAIL", "CONTINUE", "VERDICT_NAMES", "RULES", "FAMILY_KEYS", "DEFAULT_LOOKS", "rule_threshold",
    "sequential_keys", "family_key_count", "decide_look", "binary_interval", "score_interval", "SequentialDesign",
    "LookCounts", "KeyDecision", "ItemDecision", "decide_item", "decide_family", "benchmark_stop",
    "strata_needed", "look_sizes", "planned_sizes", "document_order",
]

PASS, FAIL, CONTINUE = 1, -1, 0
VERDICT_NAMES = {PASS: "passed", FAIL: "failed", CONTINUE: "undecided"}
FAMILY_RULES = ("holm", "bonferroni", "none")
RULES = ("min_ci_lower", "non_inferiority_margin", "max_regression", "no_significant_regression",
         "min_improvement", "floor_a", "floor_b")
FAMILY_KEYS = ("max_regression", "non_inferiority_margin", "no_significant_regression")
PASS_SIDE = ("min_ci_lower", "non_inferiority_margin")  # a PASS rejects H0 (the claim is shown)
FAIL_ONLY = ("max_regression", "no_significant_regression")  # a FAIL rejects H0
POINT = ("min_improvement", "floor_a", "floor_b")  # point-estimate rules at the last look
FLOORS = ("floor_a", "floor_b")

PairedInterval = Callable[..., tuple]  # (b_only, a_only, n, level) -> (low, high), points of B − A
ScoreInterval = Callable[..., tuple]  # (correct, n, level) -> (low, high), points of one score


def rule_threshold(rule: str, value) -> float:
    """The threshold on B − A (on a score, for floors) in points that a rule's value means
    (a threshold key's is ``keys.key_threshold``'s)."""
    if rule in KEYS:
        return key_threshold(rule, value)[0]
    if rule == "no_significant_regression":
        return 0.0
    return float(value)


def sequential_keys(expectation: Expectation) -> tuple[tuple[str, float], ...]:
    """(rule, threshold) of every key a sequential run decides, in :data:`RULES` order
    (``baseline_tolerance`` is a baseline's, not the A-vs-B comparison's)."""
    out = []
    for rule in RULES:
        value = getattr(expectation, rule)
        if value is None or value is False:
            continue
        out.append((rule, rule_threshold(rule, value)))
    return tuple(out)


def family_key_count(expectation: Expectation) -> int:
    return sum(1 for rule, _ in sequential_keys(expectation) if rule in FAMILY_KEYS)


def decide_look(rule: str, threshold: float, low, high, *, final: bool, estimate=None):
    """One key at one look from its interval ``[low, high]`` (points; arrays elementwise):
    :data:`PASS`, :data:`FAIL` or :data:`CONTINUE` (never at the last look). ``estimate`` (the
    point estimate, points) is needed by the point-estimate rules at the last look."""
    low = np.asarray(low, dtype=np.float64)
    high = np.asarray(high, dtype=np.float64)
    t = float(threshold)
    # The last look of a threshold key is the fixed design's decision (keys.passes_at), read off the repeated CI.
    if rule in PASS_SIDE:
        out = (np.where(passes_at("greater", t, low, high), PASS, FAIL) if final
               else np.where(low > t, PASS, np.where(high <= t, FAIL, CONTINUE)))
    elif rule in FAIL_ONLY:
        out = (np.where(passes_at("less", t, low, high), PASS, FAIL) if final
               else np.where(high < t, FAIL, np.where(low > t, PASS, CONTINUE)))
    elif rule in POINT:
        if final:
            if estimate is None:
                raise ValueError(f"{rule}: the last look needs the point estimate")
            out = np.where(np.asarray(estimate) >= t, PASS, FAIL)
        else:
            out = np.where(low > t, PASS, np.where(high < t, FAIL, CONTINUE))
    else:
        raise ValueError(f"unknown rule {rule!r}; known: {', '.join(RULES)}")
    out = out.astype(np.int8)
    return int(out) if out.ndim == 0 else out


# --------------------------------------------------------------------------- interval functions


def binary_interval(b_only, a_only, n, level, *, exact: bool = True):
    """The plugin's paired interval for 0/1 scores at two-sided ``level`` (points): Tango's score
    interval with a ½ continuity correction (``paired_binary.paired_binary_ci``); ``level`` 0 (a
    look that spends nothing) gives (−100, 100). ``exact=False``: 3–4× faster, for simulations."""
    level = np.asarray(level, dtype=np.float64)
    if np.all(level <= 0.0):
        shape = np.broadcast(np.asarray(b_only), np.asarray(a_only), np.asarray(n)).shape
        return (-100.0, 100.0) if shape == () else (np.full(shape, -100.0), np.full(shape, 100.0))
    return paired_binary_ci(b_only, a_only, n, level=np.maximum(level, 1e-300), exact=exact)


def score_interval(correct, n, level):
    """Wilson's score interval of one model's accuracy at two-sided ``level``, in points
    (arrays elementwise); ``level`` 0 gives (0, 100)."""
    x = np.asarray(correct, dtype=np.float64)
    n = np.asarray(n, dtype=np.float64)
    level = np.asarray(level, dtype=np.float64)
    z = np.where(level > 0, -special.ndtri(np.maximum(level, 1e-300) / 2.0), np.inf)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = x / n
        z2n = z * z / n
        denom = 1.0 + z2n
        centre = (p + z2n / 2.0) / denom
        half = z * np.sqrt(p * (1.0 - p) / n + z2n / (4.0 * n)) / denom
    finite = np.isfinite(z) & (n > 0)
    low = np.where(finite, np.clip(100.0 * (centre - half), 0.0, 100.0), 0.0)
    high = np.where(finite, np.clip(100.0 * (centre + half), 0.0, 100.0), 100.0)
    if low.ndim == 0:
        return float(low), float(high)
    return low, high


# --------------------------------------------------------------------------- the design


@dataclass(frozen=True)
class SequentialDesign:
    """How a sequential run looks and decides.

    ``looks``: planned fractions of every stratum's documents (strictly increasing, ending at 1);
    ``alpha``: the one-sided level per key (0.025: one side of a 95 % interval); ``spending``: a
    name of ``spending.SPENDING`` (default Hwang–Shih–DeCani γ = −4); ``family_rule``: ``"holm"``
    (graphical Holm, Maurer & Bretz 2013) or ``"bonferroni"`` (each family key at α/m);
    ``futility``: early FAILs of pass-side keys (non-binding); ``curtail``: decide a key whose
    last-look verdict no outcome of the remaining documents can change.
    """

    looks: tuple[float, ...] = DEFAULT_LOOKS
    alpha: float = 0.025
    spending: str = DEFAULT_SPENDING
    family_rule: str = "holm"
    futility: bool = True
    curtail: bool = True

    def __post_init__(self):
        looks = check_fractions(self.looks)
        if looks[-1] != 1.0:
            raise ValueError("the last look must be at fraction 1 (all documents)")
        object.__setattr__(self, "looks", looks)
        if not 0.0 < self.alpha < 0.5:
            raise ValueError("alpha is one-sided and must lie in (0, 0.5)")
        check_spending(self.spending)
        if self.family_rule not in FAMILY_RULES:
            raise ValueError(f"family_rule must be one of {', '.join(FAMILY_RULES)}")

    @property
    def method(self) -> str:
        """One line for the reports and the JSON."""
        looks = ", ".join(fraction_text(t) for t in self.looks)
        family = {"bonferroni": "Bonferroni within each family (α/m per key)",
                  "holm": "graphical Holm within each family (Maurer & Bretz 2013)",
                  "none": "no multiplicity adjustment (each key at α)"}[self.family_rule]
        return (f"group-sequential: looks at {looks} of each benchmark's documents (seeded random order, the same "
                f"share of every subject); {SPENDING_NAMES[self.spending]} alpha spending, one-sided α = {self.alpha:g} "
                f"per key; repeated confidence intervals (Jennison & Turnbull 1989) of the fixed design's interval "
                f"(Wilson's for floors); {family}"
                + ("; non-binding futility" if self.futility else "")
                + ("; curtailment" if self.curtail else ""))

    def crit(self, fractions: Sequence[float], alpha: float) -> float:
        """The critical value at the last of ``fractions`` (the looks so far) for one-sided ``alpha``."""
        return boundaries(tuple(fractions), alpha, self.spending)[-1]


def fraction_text(t: float) -> str:
    for d in (1, 2, 3, 4, 5, 8, 10, 16, 20, 32):
        if abs(t * d - round(t * d)) < 1e-9:
            return f"{int(round(t * d))}/{d}" if d > 1 else str(int(round(t)))
    return f"{t:g}"


@dataclass(frozen=True)
class LookCounts:
    """An item's cumulative counts at one look (``look``: the benchmark's look number, from 1):
    documents, B-only, A-only, and each model's correct answers (for floors)."""

    look: int
    n: int
    b_only: int
    a_only: int
    correct_a: int | None = None
    correct_b: int | None = None


@dataclass(frozen=True)
class KeyDecision:
    """One key's state: its verdict, the look that decided it (None: undecided), the RCI read there
    (or at the latest look) at two-sided ``level``, the one-sided α the key spent, whether it was curtailed."""

    rule: str
    threshold: float
    verdict: int
    look: int | None
    low: float
    high: float
    level: float
    alpha: float
    curtailed: bool = False


@dataclass(frozen=True)
class ItemDecision:
    verdict: int
    look: int | None
    keys: tuple[KeyDecision, ...]

    @property
    def decided(self) -> bool:
        return self.verdict != CONTINUE


def _interval(rule, counts: LookCounts, level, paired_ci, score_ci, b=None, c=None, n=None):
    """(low, high, estimate) of a key: the paired interval of B − A, or a side's score interval for a floor.
    ``b``, ``c``, ``n`` override the counts (a completion of the remaining documents)."""
    b = counts.b_only if b is None else b
    c = counts.a_only if c is None else c
    n = counts.n if n is None else n
    if rule in FLOORS:
        correct = counts.correct_a if rule == "floor_a" else counts.correct_b
        if correct is None or score_ci is None:
            raise ValueError(f"{rule} needs each model's correct count and a score interval function")
        low, high = (0.0, 100.0) if level <= 0 else score_ci(correct, n, level)
        return float(low), float(high), 100.0 * correct / n
    low, high = paired_ci(b, c, n, level)
    return float(low), float(high), 100.0 * (b - c) / n


def _curtailed(rule, threshold, counts: LookCounts, total: int, full: tuple[float, ...], alpha: float,
               alpha_max: float, family: bool, design: SequentialDesign, paired_ci) -> int:
    """The last-look verdict when every outcome of the ``total − n`` remaining documents gives it, else CONTINUE.
    ``full``: the fractions so far and to come; the last-look level lies between ``alpha`` and ``alpha_max``."""
    r = total - counts.n
    b, c = counts.b_only, counts.a_only
    if rule in FLOORS:
        correct = counts.correct_a if rule == "floor_a" else counts.correct_b
        if 100.0 * correct / total >= threshold:
            return PASS
        return FAIL if 100.0 * (correct + r) / total < threshold else CONTINUE
    if rule == "min_improvement":
        if 100.0 * (b - c - r) / total >= threshold:
            return PASS
        return FAIL if 100.0 * (b + r - c) / total < threshold else CONTINUE
    wide = rci_level(design.crit(full, alpha))  # the widest last-look interval: the lowest level this key can have
    narrow = rci_level(design.crit(full, alpha_max))  # the narrowest: the highest level (every other key rejected)
    if rule in PASS_SIDE:
        if not family and paired_ci(b, c + r, total, wide)[0] > threshold:  # passes even if A wins every one left
            return PASS
        return FAIL if paired_ci(b + r, c, total, narrow)[0] <= threshold else CONTINUE
    if paired_ci(b, c + r, total, narrow)[1] >= threshold:  # fail-only: cannot fail even if A wins every one left
        return PASS
    return FAIL if not family and paired_ci(b + r, c, total, wide)[1] < threshold else CONTINUE


def _item_step(design, rules, history, planned, k, state, alphas, alpha_max, family, paired_ci, score_ci):
    """Update ``state`` (rule -> KeyDecision) with the item's k-th look (0-based)."""
    counts = history[k]
    total = planned[-1]
    final = counts.n >= total
    fractions = tuple(h.n / total for h in history[: k + 1])
    full = fractions + tuple(p / total for p in sorted({p for p in planned if p > counts.n}))
    for rule, threshold in sequential_keys(rules):
        prev = state.get(rule)
        if prev is not None and prev.verdict != CONTINUE:
            continue
        alpha = alphas[rule]
        level = rci_level(design.crit(fractions, alpha))
        low, high, estimate = _interval(rule, counts, level, paired_ci, score_ci)
        verdict = decide_look(rule, threshold, low, high, final=final, estimate=estimate)
        if not design.futility and rule in PASS_SIDE and verdict == FAIL and not final:
            verdict = CONTINUE
        curtailed = False
        if verdict == CONTINUE and design.curtail:
            verdict = _curtailed(rule, threshold, counts, total, full, alpha, alpha_max[rule],
                                 family and rule in FAMILY_KEYS, design, paired_ci)
            curtailed = verdict != CONTINUE
        state[rule] = KeyDecision(rule, threshold, verdict, counts.look if verdict != CONTINUE else None,
                                  low, high, level, alpha, curtailed)
    return state


def _item_verdict(state: Mapping[str, KeyDecision]) -> tuple[int, int | None]:
    decisions = list(state.values())
    fails = [d.look for d in decisions if d.verdict == FAIL]
    if fails:
        return FAIL, min(fails)
    if decisions and all(d.verdict == PASS for d in decisions):
        return PASS, max(d.look for d in decisions)
    return CONTINUE, None


def _check_history(history: Sequence[LookCounts], planned: Sequence[int]) -> None:
    total = planned[-1] if planned else 0
    if total <= 0:
        raise ValueError("an item needs at least one document")
    if any(b.n <= a.n or b.look <= a.look for a, b in zip(history, history[1:])) or any(
            h.n > total or h.n <= 0 for h in history):
        raise ValueError("looks must have strictly increasing document counts within (0, total]")


def _alpha(design: SequentialDesign, rule: str, family_size: int, rejected: int = 0) -> float:
    if rule in FAMILY_KEYS and family_size > 1:
        return design.alpha / max(1, family_size - rejected)
    return design.alpha


def decide_item(history: Sequence[LookCounts], planned: Sequence[int], rules: Expectation,
                design: SequentialDesign, paired_ci: PairedInterval = binary_interval,
                score_ci: ScoreInterval | None = score_interval, *, family_size: int = 1) -> ItemDecision:
    """Decide one item from its cumulative counts at the looks so far (``history``); ``planned``: the
    item's cumulative documents at each planned look (the last: all of them). Family keys spend
    ``α/m`` with ``m = family_size`` (Bonferroni; :func:`decide_family` applies the design's family
    rule). Pure and idempotent: call it again after every look."""
    _check_history(history, planned)
    keys = sequential_keys(rules)
    alphas = {rule: _alpha(design, rule, family_size) for rule, _ in keys}
    alpha_max = {rule: alphas[rule] if family_size > 1 and rule in FAMILY_KEYS else design.alpha for rule, _ in keys}
    state: dict[str, KeyDecision] = {}
    verdict, look = CONTINUE, None
    for k in range(len(history)):
        _item_step(design, rules, history, planned, k, state, alphas, alpha_max, False, paired_ci, score_ci)
        verdict, look = _item_verdict(state)
        if verdict != CONTINUE:
            break
    return ItemDecision(verdict, look, tuple(state[r] for r, _ in keys))


def _rejects(d: KeyDecision) -> bool:
    """Whether a family key's decision rejected its null hypothesis (what Holm passes on)."""
    if d.rule in FAIL_ONLY:
        return d.verdict == FAIL
    return d.verdict == PASS and d.rule in PASS_SIDE


def decide_family(histories: Mapping[str, Sequence[LookCounts]], planned: Mapping[str, Sequence[int]],
                  rules: Mapping[str, Expectation], design: SequentialDesign,
                  paired_ci: PairedInterval = binary_interval,
                  score_ci: ScoreInterval | None = score_interval) -> dict[str, ItemDecision]:
    """Decide the items of one correction family, look by look (``LookCounts.look``).

    Bonferroni: each item by :func:`decide_item` with ``m`` = the family's family-key count (``"none"``: m = 1). Holm
    (graphical, Maurer & Bretz 2013): at each look, the family hypotheses rejected so far pass
    their α on — every other family key spends ``α/(m − R)`` — repeated at the look until no new
    rejection, the look's acceptances examined again each time.
    """
    names = list(histories)
    m = sum(family_key_count(rules[name]) for name in names) if design.family_rule != "none" else 1
    if design.family_rule != "holm" or m <= 1:
        return {name: decide_item(histories[name], planned[name], rules[name], design, paired_ci, score_ci,
                                  family_size=m) for name in names}
    for name in names:
        _check_history(histories[name], planned[name])
    keys = {name: sequential_keys(rules[name]) for name in names}
    alpha_max = {name: {rule: design.alpha for rule, _ in keys[name]} for name in names}
    states: dict[str, dict[str, KeyDecision]] = {name: {} for name in names}
    done: dict[str, ItemDecision] = {}

    def rejected_now() -> int:
        return sum(1 for name in names for d in states[name].values() if d.rule in FAMILY_KEYS and _rejects(d))

    for look in sorted({h.look for name in names for h in histories[name]}):
        at = {name: next((k for k, h in enumerate(histories[name]) if h.look == look), None) for name in names}
        while True:
            before = rejected_now()
            for name in names:
                if name in done or at[name] is None:
                    continue
                alphas = {rule: _alpha(design, rule, m, before) for rule, _ in keys[name]}
                _item_step(design, rules[name], histories[name], planned[name], at[name], states[name], alphas,
                           alpha_max[name], True, paired_ci, score_ci)
            if rejected_now() == before:
                break
            for name in names:  # α rose: this look's acceptances are examined again at the new level
                if name in done:
                    continue
                for rule, d in list(states[name].items()):
                    if rule in FAMILY_KEYS and d.look == look and d.verdict != CONTINUE and not _rejects(d):
                        states[name].pop(rule)
        for name in names:
            if name not in done:
                verdict, decided_at = _item_verdict(states[name])
                if verdict != CONTINUE:
                    done[name] = ItemDecision(verdict, decided_at, tuple(states[name][r] for r, _ in keys[name]))
    for name in names:
        if name not in done:
            verdict, decided_at = _item_verdict(states[name])
            done[name] = ItemDecision(verdict, decided_at, tuple(states[name][r] for r, _ in keys[name]
                                                                 if r in states[name]))
    return done


def benchmark_stop(decisions: Mapping[str, ItemDecision], rules: Mapping[str, Expectation]) -> bool:
    """True when every item with an expectation is decided (items without one never hold a benchmark)."""
    return all(decisions[name].decided for name in decisions if sequential_keys(rules[name]))


def strata_needed(decisions: Mapping[str, ItemDecision], rules: Mapping[str, Expectation],
                  strata: Mapping[str, Sequence[str]]) -> set[str]:
    """The strata (MMLU subjects) the next look must extend: those of the undecided items with expectations
    (``strata[item]``: the strata an item is computed from; MMLU ``overall`` needs all of them)."""
    out: set[str] = set()
    for name, decision in decisions.items():
        if sequential_keys(rules[name]) and not decision.decided:
            out.update(strata[name])
    return out


# --------------------------------------------------------------------------- the looks


def look_sizes(total: int, looks: Sequence[float]) -> tuple[int, ...]:
    """Documents of a stratum of ``total`` by each look: ``round(t·N)`` (halves up), at least 1, all of them at
    the last look; a look that would repeat a count is dropped."""
    out: list[int] = []
    for t in looks:
        n = max(1, min(total, int(math.floor(t * total + 0.5))))
        if not out or n > out[-1]:
            out.append(n)
    if out[-1] != total:
        out.append(total)
    return tuple(out)


def planned_sizes(total: int, looks: Sequence[float]) -> tuple[int, ...]:
    """Documents of a stratum of ``total`` by each planned look, one entry per look (a repeated count kept)."""
    return tuple(max(1, min(total, int(math.floor(t * total + 0.5)))) for t in looks[:-1]) + (total,)


def document_order(stratum: str, size: int, seed: int) -> tuple[int, ...]:
    """A seeded random order of a stratum's document indices, the same on every machine and numpy
    version: documents sorted by SHA-256 of ``"{seed}:{stratum}:{index}"``."""
    keys = [hashlib.sha256(f"{seed}:{stratum}:{i}".encode()).digest()[:8] for i in range(size)]
    return tuple(sorted(range(size), key=keys.__getitem__))
