"""Helpers shared by the benchmark scripts (not a test module, not part of the plugin)."""

from __future__ import annotations

import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PYTHON = sys.executable

SUMMARY_LINE = re.compile(
    r"qwencmp: (?P<loads>\d+) model load\(s\), (?P<evaluations>\d+) evaluation\(s\) \((?P<eval_s>[\d.]+)s\), "
    r"(?P<hits>\d+) cached evaluation\(s\) reused; session (?P<session_s>[\d.]+)s"
)
COLLECTED_IN = re.compile(r"collected in (?P<s>[\d.]+)s|in (?P<s2>[\d.]+)s")


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else float("nan")


def work_root(given: str | None, prefix: str) -> tuple[Path, bool]:
    """A scratch folder outside the repo; (path, created_here) so the caller can remove it."""
    if given:
        path = Path(given).expanduser().resolve()
        path.mkdir(parents=True, exist_ok=True)
        return path, False
    return Path(tempfile.mkdtemp(prefix=prefix)), True


def offline_env(threads: int | None) -> dict[str, str]:
    """The environment the plugin sets for --demo runs, plus a fixed torch thread count."""
    env = dict(os.environ)
    env.update({"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"})
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
        env["MKL_NUM_THREADS"] = str(threads)
    return env


def apply_env(threads: int | None) -> None:
    """Set offline_env() in this process (call before importing torch / datasets)."""
    for key in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TOKENIZERS_PARALLELISM", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        value = offline_env(threads).get(key)
        if value is not None:
            os.environ[key] = value


def build_demo(cache_root: Path):
    """Build (or reuse) the demo under cache_root/'demo'; returns (assets, seconds)."""
    from pytest_qwencmp.demo.build import build_demo_assets

    started = time.perf_counter()
    assets = build_demo_assets(cache_root / "demo")
    return assets, time.perf_counter() - started


def seed_cache_with_demo(shared_cache_root: Path, fresh_cache_root: Path) -> None:
    """A fresh --eval-cache-dir that already holds the built demo (so a session does not rebuild it)."""
    fresh_cache_root.mkdir(parents=True, exist_ok=True)
    shutil.copytree(shared_cache_root / "demo", fresh_cache_root / "demo", dirs_exist_ok=True)


def run_pytest(args: list[str], *, env: dict[str, str], cwd: Path = REPO, timeout: float = 1800) -> tuple[float, subprocess.CompletedProcess]:
    """Run `python -m pytest ARGS` in a subprocess; (wall seconds, completed process)."""
    started = time.perf_counter()
    proc = subprocess.run(
        [PYTHON, "-m", "pytest", *args], cwd=str(cwd), env=env, capture_output=True, text=True, timeout=timeout
    )
    return time.perf_counter() - started, proc


def parse_summary(text: str) -> dict | None:
    match = None
    for match in SUMMARY_LINE.finditer(text):
        pass
    if match is None:
        return None
    return {
        "model_loads": int(match["loads"]),
        "evaluations": int(match["evaluations"]),
        "evaluation_seconds": float(match["eval_s"]),
        "cache_hits": int(match["hits"]),
        "session_seconds": float(match["session_s"]),
    }


def pytest_cache_option(root: Path) -> list[str]:
    """Keep pytest's own cache (lastfailed, ...) out of the repo's .pytest_cache."""
    return ["-o", f"cache_dir={root / 'pytest-cache'}"]


def tail(text: str, lines: int = 15) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])
