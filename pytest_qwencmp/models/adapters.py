"""PEFT adapters (LoRA and the other methods peft loads) on top of a side's base model.

``attach_adapter`` wraps a loaded transformers model with ``peft.PeftModel.from_pretrained``
(as lm-eval's own ``HFLM(peft=...)`` does), optionally merged into the base
weights for backends that need plain linear layers. The adapter's identity in
the cache key is its weights' fingerprint (``weights.model_fingerprint``).
"""

from __future__ import annotations

import warnings
from contextlib import contextmanager
from typing import Any, Iterator

from ..errors import QwencmpError
from ..config.settings import ModelRef


@contextmanager
def peft_quietly() -> Iterator[None]:
    """peft asks the model ``is_gradient_checkpointing``, which transformers 5 deprecates with a FutureWarning
    on every adapter load: noise for the user, nothing they can act on."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        yield


def attach_adapter(model: Any, adapter: ModelRef, *, merge: bool = False) -> Any:
    """``model`` with the adapter applied; merged into the base weights when ``merge`` (DeepSpeed)."""
    try:
        from peft import PeftModel  # lazy: peft only when an adapter is attached
    except ImportError:  # pragma: no cover - settings checks this at start
        raise QwencmpError("A PEFT adapter was given, but the peft library is not installed; pip install peft.") from None
    source = str(adapter.path) if adapter.is_local else adapter.name_or_path
    kwargs = {"revision": adapter.revision} if adapter.revision else {}
    try:
        with peft_quietly():
            wrapped = PeftModel.from_pretrained(model, source, is_trainable=False, **kwargs)
    except Exception as exc:  # wrong base model (shape mismatch), unreadable files, unknown hub id...
        reason = " ".join(str(exc).split())[:400]
        raise QwencmpError(
            f"Could not apply the PEFT adapter {adapter.label!r}: {type(exc).__name__}: {reason}. Check that the "
            "adapter was trained on this base model (adapter_config.json names it as base_model_name_or_path)."
        ) from None
    wrapped.eval()
    return wrapped.merge_and_unload() if merge else wrapped
