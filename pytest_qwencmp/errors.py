"""The exception types the core raises for problems a user must fix.

Every ``QwencmpError`` carries a single paragraph that names what is wrong and
what to change; the plugin turns it into a pytest usage error or a failed item,
never into a long traceback. Its subclasses say how far a problem reaches: a
model that cannot be loaded (``ModelUnavailable``) stops everything that needs
it; a bad dataset (``DataError``) stops one benchmark.

``FailureMemory.message(error, where)`` is what a session reports: the full
paragraph the first time a problem is reported and a one-line reference to
that first report after it. An error that ``stops_session`` (a model that
cannot be loaded, a tensor-parallel group that is gone, datasets that cannot
be fetched) also stops the session's remaining work that would need a model:
``stopped`` says why, in one line. Nothing finished is lost: work whose
results are cached for both models still runs. One instance lives per session.
"""

from __future__ import annotations

from dataclasses import dataclass, field


class QwencmpError(Exception):
    """A user-facing problem: bad option, missing data, malformed file, OOM."""

    stops_session = False  # True: nothing this session still has to evaluate can succeed
    ends_session = False  # True: a setup problem found only while running (a lock held too long): pytest exits 4

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split()))

    @property
    def message(self) -> str:
        return str(self)


class OutOfMemory(QwencmpError):
    """The accelerator ran out of memory: the process's CUDA state may be unusable afterwards."""


class ModelUnavailable(QwencmpError):
    """A model cannot be loaded (or its process group is gone): nothing that needs it can run this session."""

    stops_session = True


class DataError(QwencmpError):
    """A benchmark's local dataset copy is missing, unreadable or wrong for the benchmark."""


class HubUnreachable(DataError):
    """No --data-dir, the hub cannot be reached and the datasets are not cached: no evaluation can fetch its data."""

    stops_session = True


BRIEF_CHARS = 110


def brief(message: str) -> str:
    """The head of a paragraph: up to its first colon or sentence end, at most ``BRIEF_CHARS`` characters."""
    cut = len(message)
    for mark in (": ", ". ", "; "):
        index = message.find(mark)
        if 0 < index < cut:
            cut = index
    head = message[:cut].rstrip(".")
    return head if len(head) <= BRIEF_CHARS else head[: BRIEF_CHARS - 1].rstrip() + "…"


@dataclass
class FailureMemory:
    """Failures reported so far in this session (by message) and, once a model is unavailable, why work stops."""

    first_reported: dict[str, str] = field(default_factory=dict)  # message -> where it was reported in full
    stopped: str | None = None

    def message(self, error: QwencmpError, where: str) -> str:
        """What to report for ``error`` at ``where`` (an item name)."""
        first = self.first_reported.setdefault(error.message, where)
        if error.stops_session and self.stopped is None:
            self.stopped = f"{brief(error.message)} (reported in full at {first})"
        if first == where:
            return error.message
        return f"Not attempted again: {brief(error.message)} — the same failure as {first}, reported in full there."
