"""The exception types the core raises for problems a user must fix.

Every ``QwencmpError`` carries a single paragraph that names what is wrong and
what to change; the plugin turns it into a pytest usage error or a failed item,
never into a long traceback. Its subclasses say how far a problem reaches: a
model that cannot be loaded (``ModelUnavailable``) stops everything that needs
it; a bad dataset (``DataError``) stops one benchmark.
"""

from __future__ import annotations


class QwencmpError(Exception):
    """A user-facing problem: bad option, missing data, malformed file, OOM."""

    stops_session = False  # True: nothing this session still has to evaluate can succeed

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
