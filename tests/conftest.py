"""Shared fixtures for the plugin's own tests: the demo assets, built once per session."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pytest

from pytest_qwencmp.demo.build import build_demo_assets

# The plugin's own tests drive pytest through pytester; the users' suite (evals/) does not need it.
pytest_plugins = ["pytester"]

REPO = Path(__file__).resolve().parents[1]


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "slow: a heavy end-to-end check (tens of seconds or more); skipped by default, run with `pytest tests -m slow`",
    )


def pytest_collection_modifyitems(config, items):
    """Heavy end-to-end checks run only when asked for (``-m slow``), so the default suite stays fast."""
    if config.getoption("markexpr"):
        return  # an explicit -m decides
    slow = [item for item in items if item.get_closest_marker("slow")]
    if slow:
        config.hook.pytest_deselected(items=slow)
        items[:] = [item for item in items if not item.get_closest_marker("slow")]


@pytest.fixture(scope="session", autouse=True)
def heavy_modules_imported_once():
    """Import lm-eval's stack in the outer process before any in-process pytester run.

    pytester restores ``sys.modules`` after each in-process run; modules first
    imported inside a run would be imported again in the next one, and pyarrow
    (under ``datasets``) refuses to register its extension types twice.
    """
    import datasets  # noqa: F401
    import evaluate  # noqa: F401
    import lm_eval.evaluator  # noqa: F401
    import lm_eval.models.huggingface  # noqa: F401
    import lm_eval.tasks  # noqa: F401
    import transformers  # noqa: F401


@pytest.fixture
def offline(monkeypatch):
    """The environment the plugin sets for local data: nothing may reach the hub."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")


@pytest.fixture(scope="session")
def demo_build(tmp_path_factory) -> tuple[Path, list[str]]:
    """The demo built once per session into a fresh cache folder, and the progress lines the build reported."""
    cache = tmp_path_factory.mktemp("qwencmp-cache")
    lines: list[str] = []
    build_demo_assets(cache / "demo", progress=lines.append)
    return cache, lines


@pytest.fixture(scope="session")
def demo_cache(demo_build) -> Path:
    """An evaluation cache folder that already holds the built demo assets."""
    return demo_build[0]


@pytest.fixture(scope="session")
def demo_assets(demo_cache):
    return build_demo_assets(demo_cache / "demo")


@pytest.fixture
def fresh_cache(demo_cache, tmp_path) -> Path:
    """A cache folder with the demo assets but no evaluations yet."""
    cache = tmp_path / "cache"
    shutil.copytree(demo_cache / "demo", cache / "demo", symlinks=True)
    return cache


@pytest.fixture
def suite(pytester):
    """Write an eval suite like evals/ into the pytester folder; returns a writer for expectations."""
    for name in ("test_mmlu.py", "test_hellaswag.py", "test_mbpp.py"):
        pytester.makepyfile(**{name[:-3]: (REPO / "evals" / name).read_text()})
    pytester.makefile(".toml", pyproject=textwrap.dedent(
        """
        [tool.pytest.ini_options]
        qwencmp_demo_expectations = "expectations.toml"
        """
    ))

    def write_expectations(text: str) -> Path:
        path = pytester.path / "expectations.toml"
        path.write_text(textwrap.dedent(text))
        return path

    write_expectations("")
    return write_expectations
