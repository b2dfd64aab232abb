"""The embedded demo's lifecycle: build once, cache, reuse.

This module owns ``build_demo_assets`` and what keeps it safe: the cache
folder ``cache_root/demo-<DEMO_VERSION>``, the file lock that makes one
process build while the others wait (and say so), the staging folder renamed
into place when done, and the ``manifest.json`` (version, sha256 and size of
every file) that tells a finished build from a partial or outdated one. A
folder whose manifest is missing, names another version, or lists a file that
is gone or resized is rebuilt.

What is built comes from two modules: ``data`` (synthetic MMLU,
HellaSwag and MBPP data in the hub schemas lm-eval reads, and their writers)
and ``training`` (the tokenizer and the two small models trained on that
data). The build is deterministic (seeded, one thread, deterministic kernels):
two builds give byte-identical files. Importing this module is cheap: torch,
transformers and tokenizers load only when a build trains or saves.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..files import holding, replace_folder
from .data import HELLASWAG_PATH, MBPP_PATH, MMLU_PATH, demo_documents, write_hellaswag, write_mbpp, write_mmlu
from .training import (
    MODEL_A,
    MODEL_B,
    demo_training_items,
    deterministic_torch,
    quiet_progress_bars,
    save_model,
    tokenizer_corpus,
    train_model,
    train_tokenizer,
)

DEMO_VERSION = "1"
DEMO_BUILD_TIMEOUT = 1800.0  # seconds to wait for another process's demo build (it takes about a minute)

MANIFEST = "manifest.json"


@dataclass(frozen=True)
class DemoAssets:
    """Where the built demo lives."""

    root: Path
    model_a: Path
    model_b: Path
    data_dir: Path


# --------------------------------------------------------------------------- cache


def build_demo_assets(
    cache_root: Path, *, rebuild: bool = False, progress: Callable[[str], None] = lambda line: None
) -> DemoAssets:
    """Return the demo assets under cache_root/f"demo-{DEMO_VERSION}", building them if missing.

    ``progress`` hears one line per build step (nothing when the assets are
    already built) and, while another process builds them, that this one waits.
    """
    cache_root = Path(cache_root)
    root = cache_root / f"demo-{DEMO_VERSION}"
    if not rebuild and is_complete(root):
        return assets_at(root)
    cache_root.mkdir(parents=True, exist_ok=True)
    with holding(cache_root / f"demo-{DEMO_VERSION}.lock", what="the embedded demo's build", timeout=DEMO_BUILD_TIMEOUT,
                 progress=progress):
        if not rebuild and is_complete(root):
            return assets_at(root)
        remove_stale_build_folders(cache_root)
        staging = sibling_folder(root, "building")
        try:
            build_into(staging, progress)
            write_manifest(staging)
            replace_folder(staging, root, retired_prefix=f".demo-{DEMO_VERSION}-old-")
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return assets_at(root)


def assets_at(root: Path) -> DemoAssets:
    return DemoAssets(root=root, model_a=root / MODEL_A.name, model_b=root / MODEL_B.name, data_dir=root / "data")


def is_complete(root: Path) -> bool:
    """A built folder has a manifest of this version, and every file it lists exists with its size."""
    try:
        manifest = json.loads((root / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if not isinstance(manifest, dict) or manifest.get("version") != DEMO_VERSION:
        return False
    files = manifest.get("files")
    if not isinstance(files, dict) or not files:
        return False
    for relative, entry in files.items():
        path = root / relative
        if not path.is_file() or path.stat().st_size != entry.get("size"):
            return False
    return True


def demo_data_dir(cache_dir: Path) -> Path | None:
    """The built demo's data folder under ``cache_dir`` (as ``--demo`` builds it), or None if not built."""
    root = Path(cache_dir) / "demo" / f"demo-{DEMO_VERSION}"
    return assets_at(root).data_dir if is_complete(root) else None


def remove_stale_build_folders(cache_root: Path) -> None:
    """Staging folders left by a killed build (only called while holding the lock)."""
    for pattern in (f".demo-{DEMO_VERSION}-building-*", f".demo-{DEMO_VERSION}-old-*"):
        for stale in cache_root.glob(pattern):
            shutil.rmtree(stale, ignore_errors=True)


def sibling_folder(root: Path, purpose: str) -> Path:
    """A new, uniquely named hidden folder beside ``root`` (same file system, so renames are atomic)."""
    folder = root.parent / f".demo-{DEMO_VERSION}-{purpose}-{uuid.uuid4().hex}"
    folder.mkdir()
    return folder


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_manifest(root: Path) -> None:
    files = {
        path.relative_to(root).as_posix(): {"sha256": file_sha256(path), "size": path.stat().st_size}
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }
    manifest = {"version": DEMO_VERSION, "files": files}
    (root / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n", encoding="utf-8")


def build_into(root: Path, progress: Callable[[str], None] = lambda line: None) -> None:
    """Write data, tokenizer and both models into ``root`` (an empty folder), one progress line per step."""
    started = time.perf_counter()
    progress("qwencmp: building the embedded demo (synthetic data and two small models; once, then cached)")
    mmlu, hellaswag, mbpp = demo_documents()
    data_dir = root / "data"
    write_mmlu(data_dir / MMLU_PATH, mmlu)
    write_hellaswag(data_dir / HELLASWAG_PATH, hellaswag)
    write_mbpp(data_dir / MBPP_PATH, mbpp)

    items = demo_training_items(mmlu, hellaswag, mbpp)
    corpus = tokenizer_corpus(items, mmlu, hellaswag, mbpp)
    with deterministic_torch(), quiet_progress_bars():
        tokenizer = train_tokenizer(corpus)
        for recipe in (MODEL_A, MODEL_B):
            progress(f"qwencmp: demo: training {recipe.name} ({recipe.steps} steps, hidden size {recipe.hidden_size})")
            model = train_model(recipe, tokenizer, items)
            save_model(model, tokenizer, root / recipe.name)
    progress(f"qwencmp: demo: built in {time.perf_counter() - started:.0f}s")
