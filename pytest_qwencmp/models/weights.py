"""What can be known about a model's weights without loading them.

``model_fingerprint`` is the weights' identity in cache keys: a content hash of
a local folder's weight and JSON files, or the resolved revision of a hub id.
``weights_folder`` says where the files are on this machine, and
``read_parameter_count`` reads the parameter count from the safetensors headers.
None of these imports torch or transformers.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from ..errors import ModelUnavailable
from .sources import WEIGHT_SUFFIXES
from ..config.settings import ModelRef

_CONTENT_HASH_LIMIT = 64 << 20  # hash whole files up to 64 MiB; larger ones by size, mtime, head and tail


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    size = path.stat().st_size
    with path.open("rb") as handle:
        if size <= _CONTENT_HASH_LIMIT:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        else:
            digest.update(f"{size}:{path.stat().st_mtime_ns}".encode())
            digest.update(handle.read(1 << 20))
            handle.seek(size - (1 << 20))
            digest.update(handle.read(1 << 20))
    return digest.hexdigest()


def model_fingerprint(ref: ModelRef) -> str:
    """Identity of the weights: a content hash for local folders, the resolved revision for hub ids."""
    if ref.is_local:
        folder = ref.path
        files = sorted(p for p in folder.rglob("*") if p.is_file() and (p.suffix in WEIGHT_SUFFIXES or p.suffix == ".json"))
        if not any(p.suffix in WEIGHT_SUFFIXES for p in files):
            raise ModelUnavailable(
                f"Model directory {folder} holds no weights (no *.safetensors or *.bin files), so model "
                f"{ref.label!r} cannot be loaded. Fix: point --model-a/--model-b at a folder written by "
                "save_pretrained or a complete hub snapshot (`python -m pytest_qwencmp mirror --out DIR --model "
                "ORG/NAME` writes one to DIR/models/ORG/NAME)."
            )
        digest = hashlib.sha256()
        for path in files:
            digest.update(str(path.relative_to(folder)).encode() + b"\0" + _file_digest(path).encode())
        return "local:" + digest.hexdigest()
    revision = ref.revision or "main"
    return f"hub:{ref.name_or_path}@{_resolve_hub_revision(ref.name_or_path, revision)}"


def _resolve_hub_revision(repo_id: str, revision: str) -> str:
    """The commit a branch or tag points to in the local HF cache, else the name as given."""
    try:
        from huggingface_hub.constants import HF_HUB_CACHE  # lazy: huggingface_hub only when the hub or its cache is asked
    except ImportError:  # pragma: no cover
        return revision
    ref_file = Path(HF_HUB_CACHE) / f"models--{repo_id.replace('/', '--')}" / "refs" / revision
    try:
        return ref_file.read_text().strip() or revision
    except OSError:
        return revision


def weights_folder(ref: ModelRef) -> Path | None:
    """Where the model's files are on this machine: its local directory, or its snapshot in the
    Hugging Face cache; ``None`` when a hub model is not downloaded yet."""
    if ref.is_local:
        return ref.path
    try:
        from huggingface_hub import snapshot_download  # lazy: huggingface_hub only when the hub or its cache is asked

        return Path(snapshot_download(ref.name_or_path, revision=ref.revision, local_files_only=True))
    except Exception:  # not in the cache (or no huggingface_hub): unknown
        return None


def read_parameter_count(ref: ModelRef) -> int | None:
    """Parameter count from the safetensors headers (local folder or cached snapshot), without loading weights."""
    folder = weights_folder(ref)
    if folder is None:
        return None
    total = 0
    try:
        for path in folder.glob("*.safetensors"):
            with path.open("rb") as handle:
                header_len = int.from_bytes(handle.read(8), "little")
                header = json.loads(handle.read(header_len))
            for name, meta in header.items():
                if name != "__metadata__":
                    count = 1
                    for dim in meta["shape"]:
                        count *= dim
                    total += count
    except (OSError, ValueError, KeyError, TypeError, AttributeError):  # unreadable: loading will say why
        return None
    return total or None
