"""The pytest side of pytest-qwencmp: options, parametrization, fixtures, reporting.

Thin by design: every decision lives in the core (settings, benchmarks,
expectations, run, report); this module maps it onto pytest — a
``@pytest.mark.qwencmp("mmlu")`` test using the ``comparison`` fixture becomes
one item per subject or metric, results travel in ``user_properties`` (so
xdist workers, JUnit XML and the controller all see them), and the tables
land in the terminal summary and the pytest-html report.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from .benchmarks import Registry, load_registry
from .errors import QwencmpError
from .expectations import load_expectations
from .report import html_summary, markdown_tables, results_document, settings_lines, text_tables
from .run import ComparisonRun
from .settings import parse_settings

RECORD_PROPERTY = "qwencmp"
RUN_PROPERTY = "qwencmp_run"
LM_EVAL_PROPERTY = "qwencmp_lm_eval"
_BULKY_PROPERTIES = (RUN_PROPERTY, LM_EVAL_PROPERTY)  # consumed here, kept out of JUnit XML
PLUGIN_NAME = "qwencmp-session"
CORRECTIONS = ("holm", "bh", "none")

_OPTIONS: list[tuple[str, dict[str, Any], str | None]] = [
    ("--model-a", dict(help="Model A (the baseline): hub id such as Qwen/Qwen2.5-1.5B or a local directory; ID@REV pins a revision."), "qwencmp_model_a"),
    ("--model-b", dict(help="Model B (the candidate), as for --model-a."), "qwencmp_model_b"),
    ("--revision-a", dict(help="Hub revision (branch, tag or commit) of model A."), None),
    ("--revision-b", dict(help="Hub revision of model B."), None),
    ("--demo", dict(action="store_true", default=False, help="Run the embedded demo: two small local models and synthetic data, no GPU or network."), None),
    ("--data-dir", dict(help="Folder with local dataset copies in their hub layout (DIR/cais/mmlu, DIR/Rowan/hellaswag, DIR/google-research-datasets/mbpp); nothing then touches the hub."), "qwencmp_data_dir"),
    ("--benchmarks", dict(help="Comma-separated subset of benchmarks to run, e.g. mmlu,hellaswag."), "qwencmp_benchmarks"),
    ("--limit", dict(help="Documents per task (per MMLU subject), for smoke runs; numbers are then not comparable to full runs."), None),
    ("--num-fewshot", dict(action="append", default=None, metavar="BENCH=N", help="Few-shot examples for a benchmark, e.g. mbpp=2 (repeatable)."), "qwencmp_num_fewshot"),
    ("--dtype", dict(help="Weights dtype: float16 (default), bfloat16 or float32."), "qwencmp_dtype"),
    ("--backend", dict(help="auto (DeepSpeed on CUDA, transformers on CPU), deepspeed or hf."), "qwencmp_backend"),
    ("--device", dict(help="auto, cpu, cuda or cuda:N."), "qwencmp_device"),
    ("--batch-size", dict(help="Batch size for lm-eval, or auto."), "qwencmp_batch_size"),
    ("--tp", dict(metavar="N", help="Tensor parallelism: split each model across N GPUs with DeepSpeed (for models that do not fit one GPU)."), "qwencmp_tp"),
    ("--tp-a", dict(metavar="N", help="Tensor-parallel size for model A only (overrides --tp)."), "qwencmp_tp_a"),
    ("--tp-b", dict(metavar="N", help="Tensor-parallel size for model B only (overrides --tp)."), "qwencmp_tp_b"),
    ("--temperature", dict(help="Sampling temperature for generation benchmarks (default 0.1; 0 = greedy)."), "qwencmp_temperature"),
    ("--top-p", dict(help="Nucleus sampling top_p for generation benchmarks (default 0.95)."), "qwencmp_top_p"),
    ("--seed", dict(help="Seed for sampling and few-shot selection (default 1234)."), "qwencmp_seed"),
    ("--eval-cache-dir", dict(help="Where evaluation results and demo assets are cached (default .qwencmp in the rootdir)."), "qwencmp_cache_dir"),
    ("--no-eval-cache", dict(action="store_true", default=False, help="Ignore cached evaluations: evaluate again (the fresh results are cached)."), None),
    ("--expectations", dict(help="Expectations TOML file (default: qwencmp_expectations from the ini file)."), "qwencmp_expectations"),
    ("--correction", dict(help="Multiple-comparison correction across a benchmark's subjects: holm (default), bh or none."), "qwencmp_correction"),
    ("--qwencmp-baseline-save", dict(metavar="NAME", help="Save this run (scores, per-document results, settings, models, machine, commit) as baseline NAME."), None),
    ("--qwencmp-baseline-compare", dict(metavar="NAME", help="Compare model B with its results in baseline NAME (paired, per item); regressions beyond baseline_tolerance fail."), None),
    ("--qwencmp-baseline-dir", dict(metavar="DIR", help="Where baselines are kept (default: qwencmp_baseline_dir, else .qwencmp/baselines)."), "qwencmp_baseline_dir"),
    ("--qwencmp-baseline-allow-mismatch", dict(action="store_true", default=False, help="Compare with a baseline even when number-changing settings differ (they are listed)."), None),
    ("--qwencmp-json", dict(metavar="FILE", help="Write all results (per-model lm-eval results, the comparison, the settings) as JSON; schema: pytest_qwencmp/results.schema.json."), None),
    ("--qwencmp-markdown", dict(metavar="FILE", help="Write the comparison tables as GitHub-flavoured Markdown (also appended to $GITHUB_STEP_SUMMARY when set)."), None),
    ("--apply-chat-template", dict(nargs="?", const=True, default=None, metavar="NAME", help="Apply the tokenizer's chat template to both models' prompts, as lm-eval's --apply_chat_template; --apply-chat-template=NAME picks a named template."), None),
    ("--apply-chat-template-a", dict(nargs="?", const=True, default=None, metavar="NAME", help="Chat template for model A only (as --apply-chat-template)."), None),
    ("--apply-chat-template-b", dict(nargs="?", const=True, default=None, metavar="NAME", help="Chat template for model B only, e.g. base (A, plain) vs instruct (B, templated)."), None),
    ("--fewshot-as-multiturn", dict(nargs="?", const="true", default=None, metavar="BOOL", help="With a chat template, few-shot examples as a multi-turn chat (lm-eval's default: true); =false puts them in one user turn."), None),
    ("--system-instruction", dict(metavar="TEXT", help="System instruction for both models (a system turn with a chat template, else prepended text), as lm-eval's --system_instruction."), None),
    ("--system-instruction-a", dict(metavar="TEXT", help="System instruction for model A only."), None),
    ("--system-instruction-b", dict(metavar="TEXT", help="System instruction for model B only."), None),
    ("--peft-a", dict(metavar="DIR|ID", help="PEFT (LoRA) adapter applied on model A: a folder with adapter_config.json, or a hub id (ID@REV pins a revision)."), None),
    ("--peft-b", dict(metavar="DIR|ID", help="PEFT (LoRA) adapter applied on model B, e.g. --model-b = --model-a plus --peft-b to test a fine-tune."), None),
    ("--model-args-a", dict(metavar="KEY=VALUE,...", help="Model A's settings in lm-eval's --model_args syntax: trust_remote_code, attn_implementation, max_length, load_in_4bit, dtype, ..."), None),
    ("--model-args-b", dict(metavar="KEY=VALUE,...", help="Model B's settings, as --model-args-a."), None),
]
_PATH_INI = {"qwencmp_data_dir", "qwencmp_cache_dir", "qwencmp_expectations", "qwencmp_baseline_dir"}
_REPORTING_OPTIONS = (
    "qwencmp_json", "qwencmp_markdown", "qwencmp_baseline_save", "qwencmp_baseline_compare",
    "qwencmp_baseline_dir", "qwencmp_baseline_allow_mismatch",
)


def _dest(flag: str) -> str:
    name = flag[2:].replace("-", "_")
    return name if name.startswith("qwencmp_") else "qwencmp_" + name


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("qwencmp", "pytest-qwencmp: compare two language models on lm-eval benchmarks")
    for flag, kwargs, ini in _OPTIONS:
        group.addoption(flag, dest=_dest(flag), **kwargs)
        if ini:
            ini_type = "linelist" if ini == "qwencmp_num_fewshot" else "string"
            parser.addini(ini, help=kwargs["help"], type=ini_type, default=[] if ini_type == "linelist" else None)
    parser.addini("qwencmp_demo_expectations", help="Expectations file used with --demo.", default=None)
    parser.addini("qwencmp_benchmark_files", help="TOML files that add benchmarks to the registry.", type="paths", default=[])


def _ini_base(config: pytest.Config) -> Path:
    return config.inipath.parent if config.inipath else config.rootpath


def _value(config: pytest.Config, flag: str, ini: str | None) -> Any:
    value = config.getoption(_dest(flag))
    if value not in (None, []) or ini is None:
        return value
    ini_value = config.getini(ini)
    if ini_value in (None, "", []):
        return None
    if ini in _PATH_INI:
        return str(_ini_base(config) / str(ini_value))
    return ini_value


def _raw_options(config: pytest.Config) -> dict[str, Any]:
    raw = {flag[2:].replace("-", "_"): _value(config, flag, ini) for flag, _, ini in _OPTIONS}
    raw["cache_dir"] = raw.pop("eval_cache_dir") or str(config.rootpath / ".qwencmp")
    raw["no_cache"] = raw.pop("no_eval_cache")
    for name in _REPORTING_OPTIONS:
        raw.pop(name)
    raw["models_from_ini"] = config.getoption("qwencmp_model_a") is None and config.getoption("qwencmp_model_b") is None
    if raw["demo"] and config.getoption("qwencmp_expectations") is None:
        demo_file = config.getini("qwencmp_demo_expectations")
        raw["expectations"] = str(_ini_base(config) / demo_file) if demo_file else None
    for key in ("temperature", "top_p", "seed"):
        if raw[key] is None:
            raw.pop(key)
    return raw


def _build_run(config: pytest.Config) -> ComparisonRun:
    registry: Registry = load_registry(config.getini("qwencmp_benchmark_files"))
    raw = _raw_options(config)
    settings = parse_settings(raw, registry.names())
    correction = (raw.get("correction") or "holm").lower()
    if correction not in CORRECTIONS:
        raise QwencmpError(f"--correction {correction!r} is not one of {', '.join(CORRECTIONS)}.")
    expectations = load_expectations(settings.expectations, registry)
    baseline = None
    compare_name = config.getoption("qwencmp_baseline_compare")
    if compare_name:
        from .baseline import load_baseline

        baseline = load_baseline(baseline_directory(config), compare_name)
    save_name = config.getoption("qwencmp_baseline_save")
    if save_name:
        from .baseline import validate_name

        validate_name(save_name)
    return ComparisonRun(
        settings, registry, expectations, correction=correction, worker_index=_worker_index(config),
        baseline=baseline, baseline_allow_mismatch=config.getoption("qwencmp_baseline_allow_mismatch"),
    )


def baseline_directory(config: pytest.Config) -> Path:
    value = _value(config, "--qwencmp-baseline-dir", "qwencmp_baseline_dir")
    return Path(value).expanduser().resolve() if value else config.rootpath / ".qwencmp" / "baselines"


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
        run = _build_run(config)
    except QwencmpError as exc:
        raise pytest.UsageError(f"pytest-qwencmp: {exc.message}") from None
    plugin = QwencmpPlugin(config, run)
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
    plugin: QwencmpPlugin = metafunc.config.pluginmanager.get_plugin(PLUGIN_NAME)
    try:
        benchmark = plugin.run.registry.get(str(marker.args[0]))
    except QwencmpError as exc:
        pytest.fail(f"pytest-qwencmp: {metafunc.definition.nodeid}: {exc.message}", pytrace=False)
    items = benchmark.items
    metafunc.parametrize("comparison", [(benchmark.name, i.id) for i in items], ids=[i.id for i in items], indirect=True)


class QwencmpPlugin:
    """Session state: the comparison run and the records collected for the summary."""

    def __init__(self, config: pytest.Config, run: ComparisonRun) -> None:
        self.config = config
        self.run = run
        self.records: dict[str, dict[str, Any]] = {}
        self.run_info: dict[str, Any] = {}
        self.worker_stats: list[dict[str, Any]] = []
        self.worker_baseline_warnings: list[str] = []
        self.lm_eval_results: dict[str, dict[str, Any]] = {}
        self.closing_lines: list[str] = []
        self.attached_lm_eval: set[str] = set()
        self.started = time.perf_counter()
        self._saved_env: dict[str, str | None] = {}
        run.progress = self._progress
        if run.settings.data_dir or run.settings.demo:
            self._set_env({"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"})

    def _set_env(self, values: dict[str, str]) -> None:
        for key, value in values.items():
            self._saved_env.setdefault(key, os.environ.get(key))
            os.environ[key] = value

    def pytest_unconfigure(self) -> None:
        self.run.close()  # a tensor-parallel group's processes exit with the session
        for key, value in self._saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value

    @property
    def is_worker(self) -> bool:
        return hasattr(self.config, "workerinput")

    def _progress(self, line: str) -> None:
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None and not self.is_worker:
            reporter.ensure_newline()
            reporter.write_line(line)

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
        if ours and not config.option.collectonly:
            try:
                if not self.run.settings.demo:
                    self.run.settings.model("a"), self.run.settings.model("b")
                self.run.plan_models()  # an impossible device/backend/--tp request stops here, once
                self.run.check_models()  # a missing chat template or quantization library, before any load
            except QwencmpError as exc:
                raise pytest.UsageError(f"pytest-qwencmp: {exc.message}") from None

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        for name, value in report.user_properties:
            if name == RECORD_PROPERTY and report.when == "call":
                record = json.loads(value)
                record["outcome"] = report.outcome
                self.records[report.nodeid] = record
            elif name == RUN_PROPERTY:
                self.run_info = json.loads(value)
            elif name == LM_EVAL_PROPERTY:
                payload = json.loads(value)
                self.lm_eval_results[payload["benchmark"]] = payload
        if self.is_worker:
            return  # the controller consumes them; workers must still send them
        report.user_properties = [(n, v) for n, v in report.user_properties if n not in _BULKY_PROPERTIES]

    def summary_stats(self) -> dict[str, Any]:
        totals = dict(self.run.stats())
        for worker in self.worker_stats:
            for key in ("model_loads", "evaluations", "cache_hits", "evaluation_seconds"):
                totals[key] = round(totals.get(key, 0) + worker.get(key, 0), 2)
        totals["wall_seconds"] = round(time.perf_counter() - self.started, 1)
        return totals

    def pytest_terminal_summary(self, terminalreporter) -> None:
        if not self.records:
            return
        terminalreporter.write_sep("=", "qwencmp: model comparison")
        for line in settings_lines(self.run_info):
            terminalreporter.write_line(line)
        terminalreporter.write_line("")
        for line in text_tables(self.records.values()):
            terminalreporter.write_line(line)
        s = self.summary_stats()
        terminalreporter.write_line(
            f"qwencmp: {s['model_loads']} model load(s), {s['evaluations']} evaluation(s) "
            f"({s['evaluation_seconds']:.1f}s), {s['cache_hits']} cached evaluation(s) reused; "
            f"session {s['wall_seconds']:.1f}s"
        )
        for warning in dict.fromkeys(self.run.baseline_warnings + self.worker_baseline_warnings):
            terminalreporter.write_line(f"qwencmp: baseline settings differ (allowed): {warning}")
        for warning in dict.fromkeys(w for r in self.records.values() for w in r.get("warnings", ())):
            terminalreporter.write_line(f"qwencmp: WARNING: {warning}")
        for line in self.closing_lines:
            terminalreporter.write_line(line)

    def markdown(self) -> str:
        return markdown_tables(self.records.values(), self.run_info)

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if self.is_worker or not self.records:
            return
        save_name = self.config.getoption("qwencmp_baseline_save")
        if save_name:
            benchmarks = list(dict.fromkeys(r["benchmark"] for r in self.records.values()))
            try:
                path = self.run.save_baseline(save_name, baseline_directory(self.config), benchmarks, self.config.rootpath)
            except QwencmpError as exc:
                path, reason = None, exc.message
            else:
                reason = "some evaluations are missing from the cache (did items fail to evaluate?)"
            self.closing_lines.append(
                f"qwencmp: saved baseline {save_name!r} to {path}" if path else f"qwencmp: baseline {save_name!r} NOT saved: {reason}"
            )
        json_path = self.config.getoption("qwencmp_json")
        if json_path:
            document = results_document(self.records.values(), self.run_info, self.lm_eval_results, self.summary_stats())
            _write_text(Path(json_path), json.dumps(document, indent=2, sort_keys=False))
        markdown = None
        markdown_path = self.config.getoption("qwencmp_markdown")
        if markdown_path:
            markdown = self.markdown()
            _write_text(Path(markdown_path), markdown)
        step_summary = os.environ.get("GITHUB_STEP_SUMMARY")
        if step_summary:
            with open(step_summary, "a", encoding="utf-8") as handle:
                handle.write((markdown or self.markdown()) + "\n")


class HtmlSummary:
    """pytest-html hook: the comparison tables and settings at the top of report.html."""

    def __init__(self, plugin: QwencmpPlugin) -> None:
        self.plugin = plugin

    def pytest_html_results_summary(self, prefix: list, summary: list, postfix: list, session) -> None:
        if self.plugin.records:
            prefix.append(html_summary(self.plugin.records.values(), self.plugin.run_info, self.plugin.summary_stats()))


class XdistBridge:
    """Carries each worker's load/evaluation counters and baseline warnings to the controller's summary."""

    def __init__(self, plugin: QwencmpPlugin) -> None:
        self.plugin = plugin

    def pytest_sessionfinish(self, session) -> None:
        if self.plugin.is_worker:
            session.config.workeroutput["qwencmp_stats"] = json.dumps(self.plugin.run.stats())
            session.config.workeroutput["qwencmp_baseline_warnings"] = json.dumps(self.plugin.run.baseline_warnings)

    def pytest_testnodedown(self, node, error) -> None:
        output = getattr(node, "workeroutput", {}) or {}
        if "qwencmp_stats" in output:
            self.plugin.worker_stats.append(json.loads(output["qwencmp_stats"]))
        if "qwencmp_baseline_warnings" in output:
            self.plugin.worker_baseline_warnings += json.loads(output["qwencmp_baseline_warnings"])


def _write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def _item_key(item: pytest.Item) -> tuple[str, str] | None:
    callspec = getattr(item, "callspec", None)
    if callspec is None or "comparison" not in callspec.params:
        return None
    return callspec.params["comparison"]


@pytest.fixture(scope="session")
def qwencmp_run(pytestconfig: pytest.Config) -> ComparisonRun:
    """The session's comparison run (settings, registry, expectations, models, cache)."""
    return pytestconfig.pluginmanager.get_plugin(PLUGIN_NAME).run


def _handle(run: ComparisonRun, side: str):
    try:
        return run.handle(side)
    except QwencmpError as exc:
        pytest.fail(exc.message, pytrace=False)


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
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    try:
        # lm-eval's progress bars pass through to the terminal while a benchmark is evaluated.
        with capture.global_and_fixture_disabled() if capture is not None else contextlib.nullcontext():
            result = qwencmp_run.comparison(benchmark_name, item_id)
    except QwencmpError as exc:
        pytest.fail(exc.message, pytrace=False)
    benchmark = qwencmp_run.registry.get(benchmark_name)
    record = result.to_record()
    warnings = [w for side in ("a", "b") for w in qwencmp_run.evaluator.evaluate(side, benchmark_name).warnings]
    if warnings:
        record["warnings"] = warnings  # degenerate generations (numerical_health)
    record["order"] = [i.id for i in benchmark.items].index(item_id)
    record["benchmark_order"] = list(qwencmp_run.registry.names()).index(benchmark_name)
    node = request.node
    node.user_properties.append((RECORD_PROPERTY, json.dumps(record)))
    evaluated = {}
    for side in ("a", "b"):
        evaluation = qwencmp_run.evaluator.evaluate(side, benchmark_name)
        evaluated[side] = {k: evaluation.model.get(k) for k in ("backend", "dtype", "device", "tensor_parallel", "parameters", "notice", "setup")}
    node.user_properties.append((RUN_PROPERTY, json.dumps(qwencmp_run.describe(evaluated))))
    plugin: QwencmpPlugin = request.config.pluginmanager.get_plugin(PLUGIN_NAME)
    if benchmark_name not in plugin.attached_lm_eval:
        plugin.attached_lm_eval.add(benchmark_name)
        results = {
            side: qwencmp_run.evaluator.evaluate(side, benchmark_name).lm_eval_results for side in ("a", "b")
        }
        node.user_properties.append((LM_EVAL_PROPERTY, json.dumps({"benchmark": benchmark_name, **results})))
    for key in ("a", "b", "delta", "ci_low", "ci_high", "adjusted_p"):
        node.user_properties.append((f"qwencmp_{key}", record[key]))
    node.user_properties.append(("qwencmp_verdict", "pass" if record["passed"] else "fail"))
    return result
