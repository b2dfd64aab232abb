"""Score lm-eval's MBPP with the sandboxed executor instead of HF's ``code_eval``.

lm-eval's ``lm_eval/tasks/mbpp/utils.py`` calls ``evaluate.load("code_eval")`` at
import time. That metric script lives on the Hugging Face hub (so the import
fails offline), needs ``HF_ALLOW_CODE_EVAL=1``, and runs model-written code in
the evaluating process's children under ``reliability_guard()``, which its own
docstring says is not a security sandbox. :class:`SandboxedCodeEval` is a
drop-in for that metric object with the same ``compute`` semantics (program =
candidate + newline + test code, unbiased pass@k estimator, per-task results),
whose programs run through :mod:`pytest_qwencmp.sandbox.executor`.
:func:`install_sandboxed_code_eval` makes the real MBPP task use it.
"""

from __future__ import annotations

import math
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any, Iterator, Sequence
from unittest import mock

from ..errors import QwencmpError
from ..sandbox.executor import detect_sandbox, run_programs
from ..sandbox.policy import ExecutionResult, Limits, Sandbox

__all__ = ["SandboxedCodeEval", "estimate_pass_at_k", "install_sandboxed_code_eval", "sandboxed_code_eval"]

#: Added to ``timeout`` for interpreter and sandbox start-up; HF's code_eval
#: likewise waits ``timeout + 1`` seconds for each program's process.
STARTUP_ALLOWANCE_S = 1.0


def estimate_pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k for one task with ``n`` samples of which ``c`` passed.

    The estimator of Chen et al. (2021) that HF's ``code_eval`` uses:
    ``1 - prod_{i=n-c+1}^{n} (1 - k / i)``, and 1.0 when ``n - c < k``.
    """
    if n - c < k:
        return 1.0
    prod = 1.0
    for i in range(n - c + 1, n + 1):
        prod *= 1.0 - k / i
    return 1.0 - prod


class SandboxedCodeEval:
    """Drop-in replacement for the object ``evaluate.load("code_eval")`` returns.

    ``limits`` bound every program (memory, file size, processes, CPU, output);
    the per-program time limit is HF's ``timeout`` argument of :meth:`compute`
    plus :data:`STARTUP_ALLOWANCE_S`, capped by ``limits.wall_seconds`` (and the
    CPU limit is capped to match). ``workers`` overrides ``num_workers``; either
    way the executor never runs more programs at once than there are CPUs.
    ``calls`` counts :meth:`compute` calls (handy to check the routing).
    """

    name = "code_eval"

    def __init__(
        self,
        limits: Limits = Limits(),
        workers: int | None = None,
        *,
        sandbox: Sandbox | None = None,
    ) -> None:
        if workers is not None and (
            isinstance(workers, bool) or not isinstance(workers, int) or workers < 1
        ):
            raise QwencmpError(
                f"The number of code-execution workers must be a positive integer, got {workers!r}."
            )
        self.limits = limits
        self.workers = workers
        self._sandbox = sandbox
        self.calls = 0
        self.programs_run = 0

    @property
    def sandbox(self) -> Sandbox:
        """The protections the programs run under (probed once per process)."""
        if self._sandbox is None:
            self._sandbox = detect_sandbox()
        return self._sandbox

    def limits_for(self, timeout: float) -> Limits:
        """The limits one program gets for HF's per-program ``timeout``."""
        if not timeout or timeout <= 0:
            raise QwencmpError(f"code_eval timeout must be a positive number of seconds, got {timeout!r}.")
        wall = min(self.limits.wall_seconds, float(timeout) + STARTUP_ALLOWANCE_S)
        cpu = max(1, min(self.limits.cpu_seconds, math.ceil(wall)))
        return replace(self.limits, wall_seconds=wall, cpu_seconds=cpu)

    def compute(
        self,
        references: Sequence[str] | None = None,
        predictions: Sequence[Sequence[str]] | None = None,
        k: Sequence[int] | int = (1, 10, 100),
        num_workers: int = 4,
        timeout: float = 3.0,
    ) -> tuple[dict[str, float], dict[int, list[tuple[int, dict[str, Any]]]]]:
        """Same semantics and return shape as HF's ``code_eval.compute``.

        Returns ``(pass_at_k, results)``: ``pass_at_k`` maps ``"pass@K"`` to the
        mean unbiased estimate over tasks, for every ``K`` that is at most the
        number of candidates of every task; ``results`` maps a task index to its
        ``(candidate index, {"task_id", "completion_id", "passed", "result",
        "detail"})`` pairs in candidate order, ``result`` being the executor's
        status (``"passed"``, ``"failed"``, ``"timeout"``, ...).
        """
        if references is None or predictions is None:
            raise TypeError("compute() needs references= and predictions=")
        if isinstance(references, str) or isinstance(predictions, str):
            raise TypeError("references and predictions must be lists, not a single string")
        if len(references) != len(predictions):
            raise ValueError(
                f"code_eval got {len(predictions)} prediction lists for {len(references)} references"
            )
        ks = [k] if isinstance(k, int) else list(k)
        self.calls += 1

        programs: list[str] = []
        index: list[tuple[int, int]] = []
        for task_id, (candidates, test_case) in enumerate(zip(predictions, references)):
            if isinstance(candidates, str):
                raise TypeError(
                    f"predictions[{task_id}] must be a list of candidate programs, not a string"
                )
            for completion_id, candidate in enumerate(candidates):
                programs.append(candidate + "\n" + test_case)
                index.append((task_id, completion_id))

        workers = self.workers if self.workers is not None else max(1, int(num_workers))
        outcomes: list[ExecutionResult] = (
            run_programs(programs, self.limits_for(timeout), workers, sandbox=self.sandbox)
            if programs
            else []
        )
        self.programs_run += len(programs)

        # Every task appears, even one without candidates.
        results: dict[int, list[tuple[int, dict[str, Any]]]] = defaultdict(
            list, {task_id: [] for task_id in range(len(references))}
        )
        for (task_id, completion_id), outcome in zip(index, outcomes):
            results[task_id].append(
                (
                    completion_id,
                    {
                        "task_id": task_id,
                        "completion_id": completion_id,
                        "passed": outcome.passed,
                        "result": outcome.status,
                        "detail": outcome.detail,
                    },
                )
            )

        total = [len(results[t]) for t in range(len(references))]
        correct = [sum(r["passed"] for _, r in results[t]) for t in range(len(references))]
        pass_at_k: dict[str, float] = {}
        for kk in ks:
            if total and all(n >= kk for n in total):
                estimates = [estimate_pass_at_k(n, c, kk) for n, c in zip(total, correct)]
                pass_at_k[f"pass@{kk}"] = sum(estimates) / len(estimates)
        return pass_at_k, results

    def __repr__(self) -> str:
        return f"SandboxedCodeEval(limits={self.limits!r}, workers={self.workers!r})"


def mbpp_utils_path() -> Path:
    """``lm_eval/tasks/mbpp/utils.py``, resolved as lm-eval's YAML loader resolves it."""
    try:
        import lm_eval.tasks  # lazy: lm-eval (torch, datasets) only when an evaluation runs
    except ImportError as exc:  # pragma: no cover - lm-eval is a dependency
        raise QwencmpError(
            "lm-eval is not installed; install the plugin's dependencies (lm-eval 0.4.13)."
        ) from exc
    path = (Path(lm_eval.tasks.__file__).parent / "mbpp" / "utils.py").resolve()
    if not path.is_file():
        raise QwencmpError(
            f"lm-eval's MBPP task module is missing ({path}); the installed lm-eval "
            f"is not the version this plugin supports (0.4.13)."
        )
    return path


def install_sandboxed_code_eval(code_eval: SandboxedCodeEval) -> None:
    """Make lm-eval's built-in MBPP task score with ``code_eval`` instead of HF's hub-hosted metric.

    Loads ``lm_eval/tasks/mbpp/utils.py`` through lm-eval's own
    ``_load_module_with_cache`` (so the cached module is exactly the one the
    task's ``!function utils.pass_at_1`` resolves to) while ``evaluate.load``
    is patched to return ``code_eval`` for ``"code_eval"``; then sets the
    module's ``pass_at_k`` to ``code_eval`` (also when the module had already
    been loaded for real). Works offline and without ``HF_ALLOW_CODE_EVAL``.
    The module's import-time self-test runs one program through ``code_eval``.

    lm-eval reloads the module only if the file's mtime changes; call this
    again after such a change (or in each process that builds MBPP tasks).
    """
    from lm_eval.tasks import _yaml_loader  # lazy: lm-eval (torch, datasets) only when an evaluation runs

    path = mbpp_utils_path()
    with _evaluate_load_returning(code_eval):
        module = _yaml_loader._load_module_with_cache(path)
    module.pass_at_k = code_eval


@contextmanager
def _evaluate_load_returning(code_eval: SandboxedCodeEval) -> Iterator[None]:
    """Patch ``evaluate.load`` so that ``"code_eval"`` yields ``code_eval``; restored on exit."""
    import evaluate  # lazy: evaluate only when MBPP's code is scored

    real_load = evaluate.load

    def load(path_or_name: Any, *args: Any, **kwargs: Any) -> Any:
        if path_or_name == "code_eval":
            return code_eval
        return real_load(path_or_name, *args, **kwargs)

    with mock.patch.object(evaluate, "load", load):
        yield


@contextmanager
def sandboxed_code_eval(code_eval: SandboxedCodeEval) -> Iterator[SandboxedCodeEval]:
    """For the duration of an evaluation, every ``evaluate.load("code_eval")`` gets ``code_eval``.

    Installs it into lm-eval's MBPP module (see :func:`install_sandboxed_code_eval`)
    and also patches ``evaluate.load`` while the block runs, so other code tasks
    a suite adds (HumanEval and friends load ``code_eval`` the same way when their
    task module is first imported) run through the sandbox too. ``evaluate.load``
    is restored afterwards.
    """
    install_sandboxed_code_eval(code_eval)
    with _evaluate_load_returning(code_eval):
        yield code_eval
