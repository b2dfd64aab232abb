"""The one exception type the core raises for problems a user must fix.

Every ``QwencmpError`` carries a single paragraph that names what is wrong and
what to change; the plugin turns it into a pytest usage error or a failed item,
never into a long traceback.
"""

from __future__ import annotations


class QwencmpError(Exception):
    """A user-facing problem: bad option, missing data, malformed file, OOM."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split()))

    @property
    def message(self) -> str:
        return str(self)


class OutOfMemory(QwencmpError):
    """The accelerator ran out of memory: the process's CUDA state may be unusable afterwards."""
