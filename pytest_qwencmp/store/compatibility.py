"""Which settings change a run's numbers, and the one check of whether two runs agree on them.

Three features ask the same question — may these evaluations stand together?
A baseline against the current run, the shards of a merge against each other,
and an imported cache entry against the run that would reuse it. They all
answer it here:

* :func:`number_settings` records the settings that change a number, as a
  JSON mapping (what actually ran: per model its weights' fingerprint, dtype,
  backend, device type, tensor-parallel size, and per benchmark the shots,
  task versions, generation kwargs and samples per problem; per model its adapter and setup —
  chat template, system instruction, model arguments; the lm-eval version,
  limit, seed and data). Adding a number-changing setting is one line: a name in
  :data:`MODEL_SETTINGS` (recorded in each evaluation's model description),
  :data:`BENCHMARK_SETTINGS` (per evaluation) or :data:`RUN_SETTINGS` (a
  ``RunSettings`` attribute).
* :func:`settings_mismatches` compares two such mappings — or any two JSON
  mappings, such as two evaluations' cache key parts — and returns one
  human-readable line per difference, naming the two sides as the caller
  words them ("baseline"/"now", "shard-1.json"/"shard-2.json", "imported
  entry"/"this run").

Pure: no pytest, no lm-eval, no model.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from ..files import json_safe

if TYPE_CHECKING:  # pragma: no cover
    from ..evaluation.scores import BenchmarkEvaluation
    from ..config.settings import RunSettings

__all__ = [
    "MODEL_SETTINGS",
    "BENCHMARK_SETTINGS",
    "RUN_SETTINGS",
    "IDENTITY",
    "ADAPTER_IDENTITY",
    "SETUP",
    "SAMPLES",
    "number_settings",
    "settings_mismatches",
]

# From each evaluation's model description (ModelInfo): per side, one value unless evaluations disagree.
MODEL_SETTINGS = ("dtype", "backend", "tensor_parallel")
# From each evaluation, per (side, benchmark): recorded name -> BenchmarkEvaluation attribute.
BENCHMARK_SETTINGS = {"task_versions": "versions", "gen_kwargs": "gen_kwargs"}
# Per (side, benchmark): answers sampled per problem (--samples), each document's value their mean.
SAMPLES = "samples"
# From RunSettings, for the whole run.
RUN_SETTINGS = ("limit", "seed")
# Per side, the weights' fingerprint. Shards and cache entries must agree on it;
# a baseline comparison ignores it (model B is meant to change).
IDENTITY = "model"
# Per side, the PEFT adapter's fingerprint (None without one): identity too, ignored like IDENTITY by baselines.
ADAPTER_IDENTITY = "adapter"
# Per side, how the model is prompted and loaded (ModelOptions.setup() less the adapter): chat template,
# few-shot as multi-turn, system instruction, model arguments. A number-changing setting like dtype.
SETUP = "setup"

_SIDE_LABEL = {"a": "model A", "b": "model B"}


def _single_or_mapping(n_shot: Mapping[str, Any]) -> Any:
    values = list(n_shot.values())
    if values and all(v == values[0] for v in values):
        return values[0]
    return dict(n_shot) if n_shot else None


def number_settings(
    evaluations: Iterable["BenchmarkEvaluation"] = (),
    settings: "RunSettings | None" = None,
    *,
    data: Mapping[str, Any] | str | None = None,
) -> dict[str, Any]:
    """The settings that change a run's numbers, as a JSON mapping.

    From the evaluations (what actually ran): per side the weights'
    fingerprint (``model``) and its PEFT adapter's (``adapter``), the
    :data:`MODEL_SETTINGS`, the device type the weights ran with and the
    model's ``setup`` (chat template, system instruction, model arguments), and per (side, benchmark) the shots (lm-eval's
    ``n-shot``; one number when all tasks agree), the task versions (lm-eval's
    ``versions``) and the generation kwargs; the lm-eval version. From
    ``settings``: the :data:`RUN_SETTINGS` (``limit``, ``seed``). ``data``
    identifies the data each benchmark read: a mapping benchmark ->
    fingerprint (for example ``TaskSource(benchmark, data_dir).data_fingerprints()``)
    or one value for all; by default ``"hub"`` without a data directory and
    ``"local"`` with one (which cannot tell two local copies apart: pass
    fingerprints).

    Keys that cannot be known are left out; :func:`settings_mismatches`
    compares only what both sides record, so a partial mapping (say, from
    ``settings`` alone before anything ran) may be checked early and the full
    one later. Batch size and the machine are not included: they are recorded
    with saved evaluations but do not refuse a comparison.
    """
    out: dict[str, Any] = {}
    runs: dict[str, Any] = {}
    versions: set[str] = set()
    benchmarks: set[str] = set()
    execution: dict[str, dict[str, set[str]]] = {}
    setups: dict[str, list[dict[str, Any]]] = {}
    for evaluation in evaluations:
        benchmarks.add(evaluation.benchmark)
        run = runs.setdefault(evaluation.side, {"benchmarks": {}})
        model = evaluation.model or {}
        seen = execution.setdefault(evaluation.side, {})
        for key in MODEL_SETTINGS:
            if model.get(key) is not None:
                seen.setdefault(key, set()).add(str(model[key]))
        if model.get("device") is not None:
            seen.setdefault("device_type", set()).add(str(model["device"]).split(":")[0])
        if model.get("fingerprint") is not None:
            seen.setdefault(IDENTITY, set()).add(str(model["fingerprint"]))
        if "setup" in model:  # recorded since per-side model options exist; older saved files have none
            setup = dict(model.get("setup") or {})
            setup.pop("adapter", None)  # where the adapter was read from: its fingerprint says what it is
            seen.setdefault(ADAPTER_IDENTITY, set()).add(str(setup.pop("adapter_fingerprint", None) or "none"))
            if setup not in setups.setdefault(evaluation.side, []):
                setups[evaluation.side].append(setup)
        run["benchmarks"][evaluation.benchmark] = {"num_fewshot": _single_or_mapping(evaluation.n_shot)}
        for name, attribute in BENCHMARK_SETTINGS.items():
            value = getattr(evaluation, attribute)
            run["benchmarks"][evaluation.benchmark][name] = None if value is None else dict(value)
        run["benchmarks"][evaluation.benchmark][SAMPLES] = int(evaluation.samples)
        if evaluation.lm_eval_version:
            versions.add(str(evaluation.lm_eval_version))
    for side, seen in execution.items():
        for key, values in seen.items():  # one value unless the side's evaluations disagree
            runs[side][key] = next(iter(values)) if len(values) == 1 else sorted(values)
    for side, found in setups.items():
        runs[side][SETUP] = found[0] if len(found) == 1 else found
    if versions:
        out["lm_eval_version"] = versions.pop() if len(versions) == 1 else sorted(versions)
    if settings is not None:
        for name in RUN_SETTINGS:
            out[name] = getattr(settings, name)
    if isinstance(data, Mapping):
        out["data"] = dict(data)
    elif data is not None:
        out["data"] = {name: data for name in sorted(benchmarks)}
    elif settings is not None and benchmarks:
        out["data"] = {name: ("local" if settings.data_dir else "hub") for name in sorted(benchmarks)}
    if runs:
        out["runs"] = runs
    return json_safe(out)


# --------------------------------------------------------------------------
# the check


SHOWN_CHARS = 40  # a value longer than this (a fingerprint, a whole mapping) is cut: messages stay one short paragraph


def _show(value: Any) -> str:
    if value is None:
        return "none"
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return text if len(text) <= SHOWN_CHARS else text[: SHOWN_CHARS - 1] + "…"


def _leaf_diffs(base: Any, now: Any, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any, Any]]:
    """The differing leaves of two JSON values (missing keys show as None)."""
    if isinstance(base, dict) and isinstance(now, dict):
        diffs = []
        for key in sorted(set(base) | set(now)):
            diffs += _leaf_diffs(base.get(key), now.get(key), path + (key,))
        return diffs
    if base == now:
        return []
    return [(path, base, now)]


def _describe_diffs(diffs: list[tuple[tuple[str, ...], Any, Any]], names: tuple[str, str], most: int = 3) -> str:
    first, second = names
    if len(diffs) == 1 and not diffs[0][0]:
        _, base, now = diffs[0]
        return f"{first} {_show(base)}, {second} {_show(now)}"
    parts = [f"{'/'.join(path)} {first} {_show(base)}, {second} {_show(now)}" for path, base, now in diffs[:most]]
    if len(diffs) > most:
        parts.append(f"and {len(diffs) - most} more")
    return "; ".join(parts)


def settings_mismatches(
    reference: Any,
    current: Mapping[str, Any],
    *,
    sides: Iterable[str] | None = None,
    ignore: Iterable[str] = (),
    names: tuple[str, str] = ("baseline", "now"),
    strict: bool = False,
) -> list[str]:
    """Human-readable differences in the settings that change the numbers; [] if compatible.

    ``reference`` and ``current`` are :func:`number_settings`-shaped mappings
    (``reference`` may also be anything with a ``settings`` mapping, such as
    saved evaluations) or any two JSON mappings. Only what both record is
    compared — settings, benchmarks and sides missing on either side are
    skipped (a run of fewer benchmarks is compatible with a baseline of more) —
    unless ``strict``, where a key only one side has is a difference too.
    ``sides`` limits the per-model settings to those models (default: both);
    ``ignore`` names settings (at any level) not to compare. A difference that
    concerns only some of the compared models names them, e.g. ``"dtype
    (model B): baseline float16, now bfloat16"``; others read ``"mmlu
    num_fewshot: baseline 5, now 0"``. ``names`` words the two sides.
    """
    base = json_safe(getattr(reference, "settings", reference))
    now = json_safe(current)
    wanted = None if sides is None else set(sides)
    skipped = set(ignore)

    def keys(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[str]:
        both = (set(a) | set(b)) if strict else (set(a) & set(b))
        return sorted(both - skipped)

    found: list[tuple[str, str | None, str]] = []  # (label, side, text)
    for key in keys(base, now):
        here, there = base.get(key), now.get(key)
        if key == "runs" and isinstance(here, dict) and isinstance(there, dict):
            for side in keys(here, there):
                if wanted is not None and side not in wanted:
                    continue
                run_b, run_n = here.get(side) or {}, there.get(side) or {}
                if not isinstance(run_b, dict) or not isinstance(run_n, dict):
                    continue
                for setting in keys(run_b, run_n):
                    cfg_b, cfg_n = run_b.get(setting), run_n.get(setting)
                    if setting == "benchmarks" and isinstance(cfg_b, dict) and isinstance(cfg_n, dict):
                        for bench in keys(cfg_b, cfg_n):
                            per_b, per_n = cfg_b.get(bench) or {}, cfg_n.get(bench) or {}
                            if not isinstance(per_b, dict) or not isinstance(per_n, dict):
                                continue
                            for name in keys(per_b, per_n):
                                diffs = _leaf_diffs(per_b.get(name), per_n.get(name))
                                if diffs:
                                    found.append((f"{bench} {name}", side, _describe_diffs(diffs, names)))
                        continue
                    diffs = _leaf_diffs(cfg_b, cfg_n)
                    if diffs:
                        found.append((setting, side, _describe_diffs(diffs, names)))
        elif key == "data" and isinstance(here, dict) and isinstance(there, dict):
            for bench in keys(here, there):
                diffs = _leaf_diffs(here.get(bench), there.get(bench))
                if diffs:
                    found.append((f"{bench} data", None, _describe_diffs(diffs, names)))
        else:
            diffs = _leaf_diffs(here, there)
            if diffs:
                found.append((key, None, _describe_diffs(diffs, names)))

    # Merge the same difference seen for both models into one line.
    compared_sides: set[str] = set()
    if isinstance(base.get("runs"), dict) and isinstance(now.get("runs"), dict):
        compared_sides = {s for s in keys(base["runs"], now["runs"]) if wanted is None or s in wanted}
    grouped: dict[tuple[str, str], list[str]] = {}
    for label, side, text in found:
        grouped.setdefault((label, text), [])
        if side is not None:
            grouped[(label, text)].append(side)
    lines = []
    for (label, text), group_sides in grouped.items():
        suffix = ""
        if group_sides and set(group_sides) != compared_sides:
            suffix = " (" + " and ".join(_SIDE_LABEL.get(s, f"side {s}") for s in sorted(group_sides)) + ")"
        lines.append(f"{label}{suffix}: {text}")
    return lines
