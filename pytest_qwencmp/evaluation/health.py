"""Numerical health of one evaluation: broken log-likelihoods fail it, degenerate generations warn.

Qwen2/Qwen2.5 in float16 can overflow: NaN logits, and generations of one
repeated character ("!!!!"). lm-eval still turns NaN log-likelihoods into an
accuracy (the argmax of NaNs), so a broken run would look like a bad model.
``check_loglikelihoods`` reads lm-eval's per-sample ``resps``/``filtered_resps``
and raises ``NumericalHealthError`` (one paragraph: model, benchmark, dtype, how
many documents) when any is not finite; ``generation_warnings`` returns a
warning when most generated outputs are empty or one character repeated.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any, Mapping

from ..config.benchmarks import Benchmark
from ..errors import QwencmpError

REPEATED_MIN_CHARS = 4  # "!!!!": shorter single-character answers can be legitimate
DEGENERATE_SHARE = 0.5  # warn when more than half of the outputs are degenerate


class NumericalHealthError(QwencmpError):
    """The model computed non-finite log-likelihoods: its scores mean nothing."""


def _numbers(value: Any) -> Iterable[float]:
    """Every float inside lm-eval's nested responses ((loglikelihood, is_greedy) pairs, lists of them)."""
    if isinstance(value, bool):
        return
    if isinstance(value, (int, float)):
        yield float(value)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _numbers(item)


def nonfinite_documents(benchmark: Benchmark, samples: Mapping[str, list]) -> tuple[int, int]:
    """(documents with a NaN or infinite log-likelihood, documents) over the benchmark's tasks."""
    bad = total = 0
    for task in benchmark.leaf_tasks:
        for row in samples.get(task, []):
            total += 1
            values = [*_numbers(row.get("resps")), *_numbers(row.get("filtered_resps"))]
            bad += any(not math.isfinite(v) for v in values)
    return bad, total


def check_loglikelihoods(benchmark: Benchmark, output: Mapping[str, Any], label: str, dtype: str, requested_dtype: str) -> None:
    """Raise ``NumericalHealthError`` when any document's log-likelihood is NaN or infinite."""
    if benchmark.generation:
        return
    bad, total = nonfinite_documents(benchmark, output.get("samples") or {})
    if not bad:
        return
    ran = dtype if dtype == requested_dtype else f"{dtype} ({requested_dtype} requested)"
    if dtype == "float16":
        hint = ("Qwen2 and Qwen2.5 are known to overflow in float16 (NaN logits): rerun with --dtype bfloat16, "
                "which has float32's range.")
    else:
        hint = (f"This happened in {dtype}, so it is not a float16 overflow: check the checkpoint for NaN or infinite "
                "weights; --dtype bfloat16 (or float32) rules out the precision.")
    raise NumericalHealthError(
        f"Model {label!r} computed non-finite log-likelihoods (NaN or infinity) on {bad} of {total} {benchmark.title} "
        f"documents, running in {ran}. lm-eval would still report an accuracy (it ranks NaNs as answers), so "
        f"{benchmark.title} fails for this model and the evaluation is not cached. {hint}"
    )


def _output_text(row: Mapping[str, Any]) -> str:
    value = row.get("filtered_resps") or row.get("resps") or ""
    while isinstance(value, (list, tuple)):
        value = value[0] if value else ""
    return str(value)


def degenerate_kind(text: str) -> str | None:
    """``"empty"``, ``"repeated"`` (one character, at least REPEATED_MIN_CHARS times) or None."""
    compact = "".join(text.split())
    if not compact:
        return "empty"
    if len(compact) >= REPEATED_MIN_CHARS and len(set(compact)) == 1:
        return "repeated"
    return None


def generation_warnings(benchmark: Benchmark, output: Mapping[str, Any], label: str, dtype: str) -> tuple[str, ...]:
    """A warning when more than half of a generation benchmark's outputs are degenerate; () otherwise."""
    if not benchmark.generation:
        return ()
    samples = output.get("samples") or {}
    texts = [_output_text(row) for task in benchmark.leaf_tasks for row in samples.get(task, [])]
    kinds = [degenerate_kind(t) for t in texts]
    empty, repeated = kinds.count("empty"), kinds.count("repeated")
    if not texts or (empty + repeated) <= DEGENERATE_SHARE * len(texts):
        return ()
    example = next((t.strip()[:20] for t, k in zip(texts, kinds) if k == "repeated"), "")
    parts = [f"{empty} empty"] if empty else []
    parts += [f"{repeated} one character repeated (e.g. {example!r})"] if repeated else []
    hint = "the float16 overflow signature of Qwen2/2.5: try --dtype bfloat16" if dtype == "float16" else "check the model"
    return (
        f"{label} on {benchmark.title}: {empty + repeated} of {len(texts)} generated outputs are degenerate "
        f"({', '.join(parts)}) in {dtype}; {hint}.",
    )
