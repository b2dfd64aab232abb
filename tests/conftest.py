"""The plugin's own tests: shared fixtures (the demo built once per session, a run on it, the offline
environment, an eval suite in a pytester folder) and the `slow` marker.

``tests/`` mirrors the package: one folder per room (config/, stats/, lmeval/, models/, evaluation/,
store/, report/, sandbox/, demo/), the plugin, session, CLI and comparison at the top. Test file
names are unique across folders (pytest's default ``prepend`` import mode imports them by name).
"""

from __future__ import annotations

import os
import re
import shutil
import textwrap
from pathlib import Path

import pytest
from xdist.scheduler import LoadScopeScheduling

from pytest_qwencmp.config.benchmarks import builtin_registry
from pytest_qwencmp.config.expectations import NO_EXPECTATIONS
from pytest_qwencmp.config.settings import parse_settings
from pytest_qwencmp.demo.build import build_demo_assets
from pytest_qwencmp.session import ComparisonRun

# The plugin's own tests drive pytest through pytester; the users' suite (evals/) does not need it.
pytest_plugins = ["pytester"]

REPO = Path(__file__).resolve().parents[1]

# Modules whose module-scoped fixture is costly (a demo build, two shard runs, a datasets source, an lm-eval CLI
# run, model variants): under -n they stay on one worker, which builds the fixture once.
KEEP_TOGETHER = frozenset({
    "tests/demo/test_demo.py",
    "tests/lmeval/test_mirror.py",
    "tests/lmeval/test_parity.py",
    "tests/models/test_model_setup.py",
    "tests/store/test_merge.py",
})


def pytest_addoption(parser):
    parser.addoption("--run-slow", action="store_true", default=False,
                     help="also run the heavy end-to-end checks marked slow (or select them with -m slow)")


def pytest_configure(config):
    # One OpenMP thread per process: `-n 2` already puts a worker on each core, and torch's two threads per worker
    # (plus the subprocesses the tests start) oversubscribe them; OpenMP's waiting threads then spin, and the tiny
    # demo models' many small ops cost many times their CPU time. An OMP_NUM_THREADS set by the caller is kept.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    # pytest prints the short test summary untrimmed when CI is set (GitHub Actions and the project's CI set it), so
    # the runs the tests start print the same here as on CI: a check that counts a message sees what CI will see.
    os.environ["CI"] = os.environ.get("CI") or "true"
    config.addinivalue_line(
        "markers",
        "slow: a heavy end-to-end check (tens of seconds or more); skipped unless asked for: `pytest tests --run-slow` "
        "(everything) or `pytest tests -m slow` (only these)",
    )


class ModulesTogether(LoadScopeScheduling):
    """``-n`` for this suite: every test is a unit of its own, as with ``--dist load``, except a KEEP_TOGETHER
    module, which is one unit. xdist's scope reordering (largest unit first) starts those long units first, and
    the single tests even out the workers at the end."""

    def _split_scope(self, nodeid: str) -> str:
        module = nodeid.split("::", 1)[0]
        return module if module in KEEP_TOGETHER else nodeid


def pytest_xdist_make_scheduler(config, log):
    """The suite's own scheduler when ``-n`` is given without a ``--dist`` mode; an explicit mode is kept."""
    given = [*config.invocation_params.args, *os.environ.get("PYTEST_ADDOPTS", "").split()]
    if config.getoption("dist") == "load" and not any(str(arg).startswith(("--dist", "-d")) for arg in given):
        return ModulesTogether(config, log)
    return None


def slow_asked_for(config) -> bool:
    """``--run-slow``, or an ``-m`` expression that names the marker (``-m slow``, ``-m "slow and not x"``).

    Any other ``-m`` expression (``-m "not network"``) leaves the slow checks out, as without ``-m``.
    """
    return config.getoption("--run-slow") or "slow" in re.findall(r"[A-Za-z_][\w]*", config.getoption("markexpr") or "")


def pytest_collection_modifyitems(config, items):
    """Heavy end-to-end checks run only when asked for (``--run-slow`` or ``-m slow``), so the default suite stays fast."""
    if slow_asked_for(config):
        return
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


REGISTRY = builtin_registry()


@pytest.fixture
def offline(monkeypatch):
    """The environment the plugin sets for local data: nothing may reach the hub."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")


@pytest.fixture(scope="session")
def demo_cache(tmp_path_factory) -> Path:
    """An evaluation cache folder that already holds the built demo assets, built once per session.

    Under xdist the folder is the session's, shared by its workers (their base temporary folders are siblings):
    the first worker to need the demo builds it, another one waits on the build's own lock. The tests only read
    it or copy it (``fresh_cache``).
    """
    base = tmp_path_factory.getbasetemp()
    cache = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "qwencmp-cache"
    build_demo_assets(cache / "demo")
    return cache


@pytest.fixture(scope="session")
def demo_assets(demo_cache):
    return build_demo_assets(demo_cache / "demo")


@pytest.fixture
def make_run(demo_assets):
    """A factory: ``make_run(cache, **raw)`` is a ComparisonRun of the demo models on the demo data.

    ``raw`` are option values as ``parse_settings`` takes them (``limit="1"``, ``tp_b="2"``, ``model_b=...``).
    """
    def make(cache: Path, **raw) -> ComparisonRun:
        values = {"model_a": str(demo_assets.model_a), "model_b": str(demo_assets.model_b),
                  "data_dir": str(demo_assets.data_dir), "cache_dir": str(cache), **raw}
        return ComparisonRun(parse_settings(values, REGISTRY.names()), REGISTRY, NO_EXPECTATIONS)

    return make


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
