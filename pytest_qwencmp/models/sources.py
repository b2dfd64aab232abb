"""Can a model be loaded on this machine, and from where — decided in seconds, before any weights are read.

A local directory must hold ``config.json`` and weights. A hub id is loaded
from the local Hugging Face cache when it is there and the hub cannot be
reached (or ``HF_HUB_OFFLINE`` is set), from the hub otherwise. Whether the hub
can be reached is probed once per session with a short TCP connect
(``HubAccess``), so an offline machine learns in about a second what
``from_pretrained`` would take ~46 s of retries to say. Every "no" is a
``ModelUnavailable`` paragraph naming the fix, including the project's own
offline path (``python -m pytest_qwencmp mirror``, ``--data-dir``, local model
directories). Nothing here imports torch or transformers.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ModelUnavailable
from ..hub import HubAccess, hub_endpoint, hub_offline
from ..config.settings import ModelRef

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf")


@dataclass(frozen=True)
class ModelSource:
    """Where a model will be read from."""

    local_files_only: bool  # True: local directory or the HF cache only, no network
    where: str  # "local directory", "Hugging Face cache", "hub"


def hub_cache_dir() -> str:
    from huggingface_hub.constants import HF_HUB_CACHE  # lazy: huggingface_hub only when the hub or its cache is asked

    return str(HF_HUB_CACHE)


def in_hub_cache(ref: ModelRef, config_file: str = "config.json") -> bool:
    """The hub repository's ``config_file`` (at its revision) is in the local Hugging Face cache."""
    try:
        from huggingface_hub import try_to_load_from_cache  # lazy: huggingface_hub only when the hub or its cache is asked

        found = try_to_load_from_cache(ref.name_or_path, config_file, revision=ref.revision)
    except Exception:  # no huggingface_hub, malformed id: not cached
        return False
    return isinstance(found, str)


@dataclass(frozen=True)
class SourceKind:
    """What is being checked: a model (``config.json`` and weights) or a PEFT adapter (``adapter_config.json``)."""

    noun: str  # "model", "PEFT adapter"
    config_file: str
    folder_words: str  # what writes a good local folder
    failure: str  # what cannot happen without it


MODEL = SourceKind("model", "config.json", "a folder written by save_pretrained or a complete hub snapshot", "be loaded")
ADAPTER = SourceKind(
    "PEFT adapter", "adapter_config.json", "a folder written by peft's save_pretrained (adapter_config.json and "
    "adapter weights) or a complete hub snapshot", "be applied",
)


def offline_fix(ref: ModelRef, option: str, kind: SourceKind = MODEL) -> str:
    """The offline path, in one sentence, for a model or adapter that is not on this machine."""
    name = ref.name_or_path
    return (
        f"give {option} a local {kind.noun} directory ({kind.folder_words}), or, where the hub "
        f"can be reached, run `python -m pytest_qwencmp mirror --out DIR --model {name}` (it also saves the "
        f"benchmark datasets), copy DIR to this machine and run with --data-dir=DIR {option}=DIR/models/{name}"
    )


def check_local_folder(ref: ModelRef, option: str, kind: SourceKind = MODEL) -> None:
    """A local model (or adapter) directory holds its config and weights (an empty or half-copied folder does not)."""
    folder = ref.path
    has_config = (folder / kind.config_file).is_file()
    has_weights = any(p.suffix in WEIGHT_SUFFIXES for p in folder.rglob("*") if p.is_file())
    if has_config and has_weights:
        return
    missing = " and ".join(x for x, ok in ((kind.config_file, has_config), ("weights (*.safetensors or *.bin)", has_weights)) if not ok)
    raise ModelUnavailable(
        f"{kind.noun[0].upper()}{kind.noun[1:]} directory {folder} ({option}) holds no {missing}, so {kind.noun} "
        f"{ref.label!r} cannot {kind.failure}. Fix: point {option} at {kind.folder_words} "
        f"(`python -m pytest_qwencmp mirror --out DIR --model ORG/NAME` writes one to DIR/models/ORG/NAME)."
    )


def check_model_source(ref: ModelRef, option: str, hub: HubAccess, kind: SourceKind = MODEL) -> ModelSource:
    """Where ``ref`` (a model, or with ``kind=ADAPTER`` a PEFT adapter) can be read from here, or
    ``ModelUnavailable`` naming the fix. Reads no weights."""
    if ref.is_local:
        check_local_folder(ref, option, kind)
        return ModelSource(True, "local directory")
    cached = in_hub_cache(ref, kind.config_file)
    what = f"Could not load {kind.noun} {ref.label!r} ({option}, a hub id)"
    if hub_offline():
        if cached:
            return ModelSource(True, "Hugging Face cache")
        raise ModelUnavailable(
            f"{what}: HF_HUB_OFFLINE is set (--data-dir and --demo set it), so nothing is downloaded, and the "
            f"{kind.noun} is not in this machine's Hugging Face cache ({hub_cache_dir()}). Fix: {offline_fix(ref, option, kind)}."
        )
    reason = hub.unreachable()
    if reason is None:
        return ModelSource(False, "hub")
    if cached:
        return ModelSource(True, "Hugging Face cache")
    raise ModelUnavailable(
        f"{what}: it is not in this machine's Hugging Face cache "
        f"({hub_cache_dir()}) and the hub ({hub_endpoint()}) cannot be reached ({reason}). "
        f"Fix: {offline_fix(ref, option, kind)}; or check the spelling of the id."
    )
