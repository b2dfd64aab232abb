"""The pytest side of pytest-qwencmp: hooks and fixtures, nothing else.

Every decision lives in the core; this module maps it onto pytest. A
``@pytest.mark.qwencmp("mmlu")`` test using the ``comparison`` fixture becomes
one item per subject or metric (``pytest_generate_tests``); the session's
:class:`~pytest_qwencmp.session.ComparisonRun` answers each item; results
travel in ``user_properties`` (so xdist workers, JUnit XML and the controller
all see them) into :class:`~pytest_qwencmp.closing.Results`; the summary lines
and the files written at the end come from ``closing``. The plugin's state is
one :class:`QwencmpPlugin` in ``config.stash[QWENCMP]``.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from pathlib import Path

import pytest

from .closing import Results, finish, html_block, shard_ran_nothing, stopped_line, summary_lines
from .config.options import INI_TYPES, OPTIONS, dest, ini_help, option_value, raw_options
from .errors import QwencmpError, brief
from .files import ProgressFile
from .report.text import short_line
from .session import BULKY_PROPERTIES, SETUP_PROBLEM_PROPERTY, ComparisonRun, baseline_directory, build_run, shard_line
from .store.shards import ShardSpec

PLUGIN_NAME = "qwencmp-session"
PROGRESS_INPUT = "qwencmp_progress"  # workerinput key: the file an xdist worker appends its progress lines to
QWENCMP = pytest.StashKey["QwencmpPlugin"]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("qwencmp", "pytest-qwencmp: compare two language models on lm-eval benchmarks")
    for flag, kwargs, ini in OPTIONS:
        group.addoption(flag, dest=dest(flag), **kwargs)
        if ini:
            ini_type = INI_TYPES.get(ini, "string")
            parser.addini(ini, help=ini_help(flag, kwargs["help"]), type=ini_type, default=[] if ini_type == "linelist" else None)
    parser.addini("qwencmp_demo_expectations", help="Expectations file used with --demo (unless --expectations is given).", default=None)
    parser.addini("qwencmp_benchmark_files", help="TOML files that add benchmarks to the registry.", type="paths", default=[])


def _ini_base(config: pytest.Config) -> Path:
    return config.inipath.parent if config.inipath else config.rootpath


def _baseline_directory(config: pytest.Config) -> Path:
    value = option_value(config.getoption, config.getini, _ini_base(config), "--qwencmp-baseline-dir", "qwencmp_baseline_dir")
    return baseline_directory(value, config.rootpath)


def _worker_index(config: pytest.Config) -> int | None:
    """N for pytest-xdist worker gwN (each worker pins its own GPU), else None."""
    worker_id = getattr(config, "workerinput", {}).get("workerid", "")
    return int(worker_id[2:]) if worker_id.startswith("gw") and worker_id[2:].isdigit() else None


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "qwencmp(benchmark): run this test once per item (subject or metric) of the named benchmark; "
        "it receives the A-vs-B result through the `comparison` fixture.",
    )
    try:
        shard = config.getoption("qwencmp_shard")
        shard = ShardSpec.parse(shard) if shard else None
        run = build_run(
            raw_options(config.getoption, config.getini, _ini_base(config), config.rootpath),
            benchmark_files=config.getini("qwencmp_benchmark_files"),
            worker_index=_worker_index(config),
            baseline_compare=config.getoption("qwencmp_baseline_compare"),
            baseline_save=config.getoption("qwencmp_baseline_save"),
            baseline_dir=_baseline_directory(config),
            baseline_allow_mismatch=config.getoption("qwencmp_baseline_allow_mismatch"),
            reevaluate_imported=config.getoption("qwencmp_reevaluate_imported"),
            shard=shard,
        )
    except QwencmpError as exc:
        raise pytest.UsageError(f"pytest-qwencmp: {exc.message}") from None
    plugin = QwencmpPlugin(config, run, shard)
    config.stash[QWENCMP] = plugin
    config.pluginmanager.register(plugin, PLUGIN_NAME)
    if config.pluginmanager.hasplugin("html"):
        config.pluginmanager.register(HtmlSummary(plugin), PLUGIN_NAME + "-html")
    if config.pluginmanager.hasplugin("xdist"):
        config.pluginmanager.register(XdistBridge(plugin), PLUGIN_NAME + "-xdist")
        _schedule_by_module(config, run)


def _schedule_by_module(config: pytest.Config, run: ComparisonRun) -> None:
    """``-n N`` alone means ``--dist load``; make it ``loadscope`` unless the user chose a mode.

    With ``load``, every worker starts on the first benchmark's items and all but
    one wait on the same evaluation's cache lock. With ``loadscope`` a test
    module's items (``test_mmlu.py``: one benchmark) go to one worker, so the
    workers evaluate different benchmarks at once. (``loadgroup`` with
    ``xdist_group`` marks would be finer, but xdist 3.8 tags node ids in a way
    pytest 9.2 ignores, so its groups are not kept together.) Only for a
    comparison run: other test suites in the same environment keep ``load``.
    """
    if getattr(config.option, "dist", None) != "load" or hasattr(config, "workerinput"):
        return
    if not (run.settings.demo or run.settings.model_a or run.settings.model_b):
        return  # not a comparison run (the plugin is merely installed): leave xdist alone
    given = [*config.invocation_params.args, *os.environ.get("PYTEST_ADDOPTS", "").split(), *config.getini("addopts")]
    if not any(str(arg).startswith(("--dist", "-d")) for arg in given):
        config.option.dist = "loadscope"


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "comparison" not in metafunc.fixturenames:
        return
    marker = metafunc.definition.get_closest_marker("qwencmp")
    if marker is None or not marker.args:
        pytest.fail(
            f"pytest-qwencmp: {metafunc.definition.nodeid} uses the `comparison` fixture but has no "
            "@pytest.mark.qwencmp('BENCHMARK') marker naming the benchmark to compare on.",
            pytrace=False,
        )
    run = metafunc.config.stash[QWENCMP].run
    try:
        benchmark = run.registry.get(str(marker.args[0]))
    except QwencmpError as exc:
        problem = exc.message
    else:
        problem = None
    if problem:  # outside the except block: no exception chain in the report
        pytest.fail(f"pytest-qwencmp: {metafunc.definition.nodeid}: {problem}", pytrace=False)
    items = benchmark.items
    metafunc.parametrize("comparison", [(benchmark.name, i.id) for i in items], ids=[i.id for i in items], indirect=True)


def _item_key(item: pytest.Item) -> tuple[str, str] | None:
    callspec = getattr(item, "callspec", None)
    if callspec is None or "comparison" not in callspec.params:
        return None
    return callspec.params["comparison"]


class QwencmpPlugin:
    """The session's state in pytest: the comparison run, the items' results, the shard, the environment it set."""

    def __init__(self, config: pytest.Config, run: ComparisonRun, shard: ShardSpec | None = None) -> None:
        self.config = config
        self.run = run
        self.shard = shard
        self.results = Results()
        self._interrupted_line: Path | None = None  # a file name our progress lines broke off (pytest_runtest_logreport)
        self._saved_env: dict[str, str | None] = {}
        self._relay: ProgressFile | None = None  # on an xdist controller: the workers' progress lines, shown as they come
        self._terminal_lock = threading.Lock()  # the relay thread and the main thread write whole lines, one at a time
        run.progress = self._progress
        if run.settings.data_dir or run.settings.demo:
            self._set_env({"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"})

    @property
    def is_worker(self) -> bool:
        return hasattr(self.config, "workerinput")

    @property
    def is_controller(self) -> bool:
        """The pytest-xdist controller: it collects nothing; its workers run the items."""
        return not self.is_worker and self.config.pluginmanager.has_plugin("dsession")

    @property
    def compares(self) -> bool:
        """A comparison run (models given, or the demo), not merely a session with the plugin installed."""
        settings = self.run.settings
        return bool(settings.demo or settings.model_a or settings.model_b)

    def _check_at_start(self, benchmark_names=None) -> None:
        """Every setup problem that can be known before any model loads: one paragraph, pytest exits 4."""
        try:
            self.run.check_before_loading(benchmark_names, shard=self.shard if benchmark_names is None else None)
        except QwencmpError as exc:
            raise pytest.UsageError(f"pytest-qwencmp: {exc.message}") from None

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionstart(self) -> None:
        if self.is_controller and self.compares and not self.config.option.collectonly:
            # Workers cannot stop a session cleanly from their collection: the controller checks the
            # selected benchmarks (--benchmarks) before it starts them.
            self._check_at_start()
        if self.is_controller and self.compares:
            self._start_relay()
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if "TQDM_DISABLE" not in os.environ and not (reporter is not None and reporter.isatty()):
            # A CI log gets the plugin's one line per evaluation, not lm-eval's, datasets' and
            # transformers' progress bars (hundreds of lines in a log that cannot redraw them).
            # tqdm reads TQDM_* when it is imported: before any evaluation imports lm-eval.
            self._set_env({"TQDM_DISABLE": "1"})

    def _set_env(self, values: dict[str, str]) -> None:
        for key, value in values.items():
            self._saved_env.setdefault(key, os.environ.get(key))
            os.environ[key] = value

    def pytest_unconfigure(self) -> None:
        self._stop_relay()
        self.run.close()  # a tensor-parallel group's processes exit with the session
        for key, value in self._saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value

    def _start_relay(self) -> None:
        """xdist workers cannot write to the terminal: they append their progress lines to a file in the cache
        folder that a thread of the controller shows as they come (bounded: polled every 0.5 s, stopped and
        removed at the end of the session)."""
        folder = self.run.settings.cache_dir / "progress"
        for stale in folder.glob("*.log"):  # left by a controller that was killed
            with contextlib.suppress(OSError):
                if stale.stat().st_mtime < time.time() - 86400:
                    stale.unlink()
        self._relay = ProgressFile(folder / f"{os.getpid()}.log", show=self._write_line).start()

    def pytest_report_header(self) -> list[str]:
        """Under ``-n`` without a GPU: say that -n does not help here."""
        workers = self.config.getoption("numprocesses", None)
        notice = self.run.parallel_notice(workers) if self.is_controller and self.compares and isinstance(workers, int) else None
        return [notice] if notice else []

    def _stop_relay(self) -> None:
        relay, self._relay = self._relay, None
        if relay is not None:
            relay.stop()

    def _progress(self, line: str) -> None:
        """One line to the terminal now, also from inside a test's setup or call (output capture is suspended);
        on an xdist worker, to the controller's progress file."""
        if self.is_worker:
            path = self.config.workerinput.get(PROGRESS_INPUT)
            if path:
                ProgressFile.append(path, f"[{self.config.workerinput.get('workerid', '?')}] {line}")
            return
        capture = self.config.pluginmanager.get_plugin("capturemanager")
        with capture.global_and_fixture_disabled() if capture is not None else contextlib.nullcontext():
            self._write_line(line)

    def _write_line(self, line: str) -> None:
        """``line`` on a line of its own, after whatever pytest has begun writing."""
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is None:
            return
        with self._terminal_lock:
            if isinstance(reporter.currentfspath, Path):  # the file name pytest began the line with
                self._interrupted_line = reporter.currentfspath
            reporter.ensure_newline()
            writer = self.config.get_terminal_writer()
            if writer.width_of_current_line:  # -q's dots, -v's item id: our line starts a line of its own
                writer.line()
            reporter.write_line(line)

    def _resume_interrupted_line(self) -> None:
        """After progress lines, begin pytest's line again with its file name, so the item's result letter
        lands after it rather than alone on a line (``-v`` rewrites its item id by itself)."""
        interrupted, self._interrupted_line = self._interrupted_line, None
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if interrupted is None or reporter is None or reporter.currentfspath is not None:
            return
        self.config.get_terminal_writer().write(os.path.relpath(interrupted, reporter.startpath) + " ")
        reporter.currentfspath = interrupted

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, config: pytest.Config, items: list[pytest.Item]) -> None:
        selected_benchmarks = self.run.settings.benchmarks
        ours = [i for i in items if _item_key(i) is not None]
        if selected_benchmarks is not None:
            deselected = [i for i in ours if _item_key(i)[0] not in selected_benchmarks]
            if deselected:
                config.hook.pytest_deselected(items=deselected)
                items[:] = [i for i in items if i not in deselected]
                ours = [i for i in ours if i not in deselected]
        if self.shard is not None:
            ours = self._keep_this_shard(config, items, ours)
        if ours and not config.option.collectonly and not self.is_worker:
            self._check_at_start({_item_key(i)[0] for i in ours})  # under xdist, the controller checked at its start

    def _keep_this_shard(self, config: pytest.Config, items: list[pytest.Item], ours: list[pytest.Item]) -> list[pytest.Item]:
        """Deselect the items of the benchmarks other shards run; say once which shard runs what."""
        split = self.run.split_for_shard(self.shard, {_item_key(i)[0] for i in ours})
        others = [i for i in ours if _item_key(i)[0] not in split.mine]
        if others:
            config.hook.pytest_deselected(items=others)
            items[:] = [i for i in items if i not in others]
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None and not self.is_worker:
            reporter.write_line(shard_line(split, len(others), bool(config.getoption("qwencmp_json"))))
        return [i for i in ours if i not in others]

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo):
        """A passed item's report carries its numbers as text, so ``-rA`` shows them beside the item id."""
        report = yield
        if report.when == "call" and report.passed and report.longrepr is None:
            record = Results.record_of(item.user_properties)
            if record is not None:
                report.longrepr = short_line(record)
        return report

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if self._relay is not None:
            self._relay.relay()  # a worker's "done" line before the results it led to
        self._resume_interrupted_line()  # before the terminal reporter writes the item's letter
        self.results.take(report.user_properties, nodeid=report.nodeid, outcome=report.outcome, when=report.when)
        if self.is_worker:
            return  # the controller consumes them; workers must still send them
        report.user_properties = [(n, v) for n, v in report.user_properties if n not in BULKY_PROPERTIES]

    def pytest_terminal_summary(self, terminalreporter) -> None:
        line = stopped_line(self.run, self.results)
        if line:
            terminalreporter.write_line(line)
        lines = summary_lines(self.run, self.results)
        if lines:
            terminalreporter.write_sep("=", "qwencmp: model comparison")
            for line in lines:
                terminalreporter.write_line(line)

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if shard_ran_nothing(self.run, self.shard) and session.exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED:
            session.exitstatus = pytest.ExitCode.OK  # a shard with nothing to run (more jobs than benchmarks) succeeds
        if self.is_worker:
            return
        self._stop_relay()
        if self.results.setup_problem and session.exitstatus in (pytest.ExitCode.INTERRUPTED, pytest.ExitCode.TESTS_FAILED):
            session.exitstatus = pytest.ExitCode.USAGE_ERROR  # a worker stopped on a setup problem (a lock held too long)
        finish(
            self.run, self.results, shard=self.shard, project_root=self.config.rootpath,
            baseline_save=self.config.getoption("qwencmp_baseline_save"), baseline_dir=_baseline_directory(self.config),
            json_path=self.config.getoption("qwencmp_json"), markdown_path=self.config.getoption("qwencmp_markdown"),
            step_summary=os.environ.get("GITHUB_STEP_SUMMARY"),
        )


class HtmlSummary:
    """pytest-html hook: the comparison tables and settings at the top of report.html."""

    def __init__(self, plugin: QwencmpPlugin) -> None:
        self.plugin = plugin

    def pytest_html_results_summary(self, prefix: list, summary: list, postfix: list, session) -> None:
        block = html_block(self.plugin.run, self.plugin.results)
        if block:
            prefix.append(block)


class XdistBridge:
    """Carries each worker's load/evaluation counters and baseline warnings to the controller's summary."""

    def __init__(self, plugin: QwencmpPlugin) -> None:
        self.plugin = plugin

    def pytest_sessionfinish(self, session) -> None:
        if self.plugin.is_worker:
            session.config.workeroutput.update(self.plugin.results.worker_output(self.plugin.run))

    def pytest_configure_node(self, node) -> None:
        """Tell each worker where to write its progress lines (the controller shows them)."""
        if self.plugin._relay is not None:
            node.workerinput[PROGRESS_INPUT] = str(self.plugin._relay.path)

    def pytest_testnodedown(self, node, error) -> None:
        self.plugin.results.take_worker_output(getattr(node, "workeroutput", {}) or {})


@pytest.fixture(scope="session")
def qwencmp_run(pytestconfig: pytest.Config) -> ComparisonRun:
    """The session's comparison run (settings, registry, expectations, models, cache)."""
    return pytestconfig.stash[QWENCMP].run


def _handle(run: ComparisonRun, side: str):
    try:
        return run.handle(side)
    except QwencmpError as exc:
        message = exc.message
    pytest.fail(message, pytrace=False)  # outside the except block: no exception chain in the report


@pytest.fixture(scope="session")
def model_a(qwencmp_run: ComparisonRun):
    """Model A's handle; it loads its weights once, on first use (not at all if every result is cached)."""
    return _handle(qwencmp_run, "a")


@pytest.fixture(scope="session")
def model_b(qwencmp_run: ComparisonRun):
    """Model B's handle; it loads its weights once, on first use."""
    return _handle(qwencmp_run, "b")


@pytest.fixture
def comparison(request: pytest.FixtureRequest, qwencmp_run: ComparisonRun, model_a, model_b):
    """A vs B on this item: scores, paired statistics, expectation and verdict (an ItemComparison)."""
    benchmark_name, item_id = request.param
    skip_reason = qwencmp_run.skip_reason(benchmark_name)
    if skip_reason:
        request.config.stash[QWENCMP].results.not_run += 1
        pytest.skip(skip_reason)
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    error: QwencmpError | None = None
    try:
        # lm-eval's progress bars pass through to the terminal while a benchmark is evaluated.
        with capture.global_and_fixture_disabled() if capture is not None else contextlib.nullcontext():
            result = qwencmp_run.comparison(benchmark_name, item_id)
    except QwencmpError as exc:
        error = exc
    if error is not None and error.ends_session:  # a setup problem found only now (a lock held too long): stop here
        if not request.config.stash[QWENCMP].is_worker:
            pytest.exit(f"pytest-qwencmp: {error.message}", returncode=pytest.ExitCode.USAGE_ERROR)
        # A worker cannot exit the session: it fails this item with the paragraph and stops (xdist's own
        # -x mechanism); the controller then ends with status 4 (pytest_sessionfinish).
        request.node.user_properties.append((SETUP_PROBLEM_PROPERTY, brief(error.message)))
        request.session.shouldstop = f"pytest-qwencmp: {brief(error.message)}"
        pytest.fail(error.message, pytrace=False)
    if error is not None:  # reported once in full; later items name the first report (no exception chain)
        pytest.fail(qwencmp_run.failures.message(error, request.node.nodeid), pytrace=False)
    request.node.user_properties += qwencmp_run.item_properties(result)
    return result
