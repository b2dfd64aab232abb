"""What a session has already reported as failed, so that each problem is reported once.

``FailureMemory.message(error, where)`` is the full paragraph the first time a
problem is reported and a one-line reference to that first report after it.
An error that ``stops_session`` (a model that cannot be loaded, a tensor-parallel
group that is gone, datasets that cannot be fetched) also stops the session's
remaining work that would need a model:
``stopped`` says why, in one line. Nothing finished is lost: work whose results
are cached for both models still runs. It knows nothing of pytest; one instance
lives per session.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .errors import QwencmpError

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
