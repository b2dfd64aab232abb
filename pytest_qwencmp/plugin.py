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

from .config.benchmarks import Registry, load_registry
from .errors import QwencmpError
from .config.expectations import load_expectations
from .report.junit import RECORD_PROPERTY, item_properties, record_property
from .report.text import (
    combine_stats,
    html_summary,
    markdown_tables,
    ordered_record,
    results_document,
    reuse_lines,
    settings_lines,
    short_line,
    text_tables,
)
from .session import ComparisonRun
from .config.settings import parse_settings
from .store.shards import ShardSpec, plan_shards

RUN_PROPERTY = "qwencmp_run"
LM_EVAL_PROPERTY = "qwencmp_lm_eval"
_BULKY_PROPERTIES = (RECORD_PROPERTY, RUN_PROPERTY, LM_EVAL_PROPERTY)  # consumed here, kept out of JUnit XML
PLUGIN_NAME = "qwencmp-session"
CORRECTIONS = ("holm", "bh", "none")

_OPTIONS: list[tuple[str, dict[str, Any], str | None]] = [
    ("--model-a", dict(metavar="MODEL", help="Model A (the baseline): hub id such as Qwen/Qwen2.5-1.5B or a local directory; ID@REV pins a revision."), "qwencmp_model_a"),
    ("--model-b", dict(metavar="MODEL", help="Model B (the candidate), as for --model-a."), "qwencmp_model_b"),
    ("--revision-a", dict(metavar="REV", help="Hub revision (branch, tag or commit) of model A."), None),
    ("--revision-b", dict(metavar="REV", help="Hub revision of model B."), None),
    ("--demo", dict(action="store_true", default=False, help="Run the embedded demo: two small local models and synthetic data, no GPU or network."), None),
    ("--data-dir", dict(metavar="DIR", help="Folder with local dataset copies in their hub layout (DIR/cais/mmlu, DIR/Rowan/hellaswag, DIR/google-research-datasets/mbpp); nothing then touches the hub."), "qwencmp_data_dir"),
    ("--benchmarks", dict(metavar="LIST", help="Comma-separated subset of benchmarks to run, e.g. mmlu,hellaswag."), "qwencmp_benchmarks"),
    ("--limit", dict(metavar="N", help="Documents per task (per MMLU subject), for smoke runs; numbers are then not comparable to full runs."), None),
    ("--num-fewshot", dict(action="append", default=None, metavar="BENCH=N", help="Few-shot examples for a benchmark, e.g. mbpp=2 (repeatable)."), "qwencmp_num_fewshot"),
    ("--dtype", dict(metavar="DTYPE", help="Weights dtype: float16, bfloat16 or float32 (default: float16, as in the reference study)."), "qwencmp_dtype"),
    ("--backend", dict(metavar="NAME", help="auto, deepspeed or hf (default: auto = DeepSpeed on CUDA, transformers on CPU)."), "qwencmp_backend"),
    ("--device", dict(metavar="DEVICE", help="auto, cpu, cuda or cuda:N (default: auto = cuda when a GPU is visible, else cpu)."), "qwencmp_device"),
    ("--batch-size", dict(metavar="N", help="Batch size for lm-eval: an integer or auto (default: auto = detected per benchmark and model on CUDA, 16 on CPU)."), "qwencmp_batch_size"),
    ("--tp", dict(metavar="N", help="Tensor parallelism: split each model across N GPUs with DeepSpeed (for models that do not fit one GPU)."), "qwencmp_tp"),
    ("--tp-a", dict(metavar="N", help="Tensor-parallel size for model A only (overrides --tp)."), "qwencmp_tp_a"),
    ("--tp-b", dict(metavar="N", help="Tensor-parallel size for model B only (overrides --tp)."), "qwencmp_tp_b"),
    ("--temperature", dict(metavar="T", help="Sampling temperature for generation benchmarks (default 0.1; 0 = greedy)."), "qwencmp_temperature"),
    ("--top-p", dict(metavar="P", help="Nucleus sampling top_p for generation benchmarks (default 0.95)."), "qwencmp_top_p"),
    ("--seed", dict(metavar="N", help="Seed for sampling and few-shot selection (default 1234)."), "qwencmp_seed"),
    ("--eval-cache-dir", dict(metavar="DIR", help="Where evaluation results and demo assets are cached (default .qwencmp in the rootdir)."), "qwencmp_cache_dir"),
    ("--no-eval-cache", dict(action="store_true", default=False, help="Ignore cached evaluations: evaluate again (the fresh results are cached)."), None),
    ("--expectations", dict(metavar="FILE", help="Expectations TOML file (default: qwencmp_expectations from the ini file)."), "qwencmp_expectations"),
    ("--correction", dict(metavar="METHOD", help="Multiple-comparison correction across a benchmark's subjects: holm (default), bh or none."), "qwencmp_correction"),
    ("--qwencmp-baseline-save", dict(metavar="NAME", help="Save this run (scores, per-document results, settings, models, machine, commit) as baseline NAME."), None),
    ("--qwencmp-baseline-compare", dict(metavar="NAME", help="Compare model B with its results in baseline NAME (paired, per item); regressions beyond baseline_tolerance fail."), None),
    ("--qwencmp-baseline-dir", dict(metavar="DIR", help="Where baselines are kept (default: qwencmp_baseline_dir, else .qwencmp/baselines)."), "qwencmp_baseline_dir"),
    ("--qwencmp-baseline-allow-mismatch", dict(action="store_true", default=False, help="Compare with a baseline even when number-changing settings differ (they are listed)."), None),
    ("--qwencmp-json", dict(metavar="FILE", help="Write all results (per-model lm-eval results, the comparison, the settings) as JSON; schema: pytest_qwencmp/report/results.schema.json."), None),
    ("--qwencmp-markdown", dict(metavar="FILE", help="Write the comparison tables as GitHub-flavoured Markdown (also appended to $GITHUB_STEP_SUMMARY when set)."), None),
    ("--lock-timeout", dict(metavar="SECONDS", help="How long to wait for another run (or xdist worker) that evaluates the same model and benchmark, then fail (default 7200)."), "qwencmp_lock_timeout"),
    ("--qwencmp-shard", dict(metavar="K/N", help="Run shard K of N: the selected benchmarks split over N jobs by expected cost (merge the jobs' --qwencmp-json files with `python -m pytest_qwencmp merge`)."), None),
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
    "qwencmp_shard",
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
        from .store.baselines import load_baseline

        baseline = load_baseline(baseline_directory(config), compare_name)
    save_name = config.getoption("qwencmp_baseline_save")
    if save_name:
        from .store.baselines import validate_name

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
        shard = config.getoption("qwencmp_shard")
        shard = ShardSpec.parse(shard) if shard else None
    except QwencmpError as exc:
        raise pytest.UsageError(f"pytest-qwencmp: {exc.message}") from None
    plugin = QwencmpPlugin(config, run, shard)
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
        problem = exc.message
    else:
        problem = None
    if problem:  # outside the except block: no exception chain in the report
        pytest.fail(f"pytest-qwencmp: {metafunc.definition.nodeid}: {problem}", pytrace=False)
    items = benchmark.items
    metafunc.parametrize("comparison", [(benchmark.name, i.id) for i in items], ids=[i.id for i in items], indirect=True)


class QwencmpPlugin:
    """Session state: the comparison run and the records collected for the summary."""

    def __init__(self, config: pytest.Config, run: ComparisonRun, shard: ShardSpec | None = None) -> None:
        self.config = config
        self.run = run
        self.shard = shard
        self.records: dict[str, dict[str, Any]] = {}
        self.run_info: dict[str, Any] = {}
        self.worker_stats: list[dict[str, Any]] = []
        self.worker_baseline_warnings: list[str] = []
        self.lm_eval_results: dict[str, dict[str, Any]] = {}
        self.closing_lines: list[str] = []
        self.attached_lm_eval: set[str] = set()
        self.started = time.perf_counter()
        self.not_run = 0  # items skipped once the session stopped (a model, or the data, cannot be had)
        self._interrupted_line: Path | None = None  # a file name our progress lines broke off (pytest_runtest_logreport)
        self._saved_env: dict[str, str | None] = {}
        run.progress = self._progress
        if run.settings.data_dir or run.settings.demo:
            self._set_env({"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"})

    def pytest_sessionstart(self) -> None:
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
        """One line to the terminal now, also from inside a test's setup or call (output capture is suspended)."""
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is None or self.is_worker:
            return
        capture = self.config.pluginmanager.get_plugin("capturemanager")
        with capture.global_and_fixture_disabled() if capture is not None else contextlib.nullcontext():
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
        if ours and not config.option.collectonly:
            try:
                if not self.run.settings.demo:
                    self.run.settings.model("a"), self.run.settings.model("b")
                self.run.plan_models()  # an impossible device/backend/--tp request stops here, once
                self.run.check_models()  # a missing chat template or quantization library, before any load
            except QwencmpError as exc:
                raise pytest.UsageError(f"pytest-qwencmp: {exc.message}") from None

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo):
        """A passed item's report carries its numbers as text, so ``-rA`` shows them beside the item id."""
        report = yield
        if report.when == "call" and report.passed and report.longrepr is None:
            for name, value in item.user_properties:
                if name == RECORD_PROPERTY:
                    report.longrepr = short_line(json.loads(value))
        return report
    def _keep_this_shard(self, config: pytest.Config, items: list[pytest.Item], ours: list[pytest.Item]) -> list[pytest.Item]:
        """Deselect the items of the benchmarks other shards run; say once which shard runs what."""
        selected = {_item_key(i)[0] for i in ours}
        settings = self.run.settings
        plan = plan_shards(
            self.shard,
            [b for b in self.run.registry.benchmarks if b.name in selected],
            data_dir=settings.data_dir, demo=settings.demo, limit=settings.limit,
        )
        self.run.shard_plan = plan
        others = [i for i in ours if _item_key(i)[0] not in plan.mine]
        if others:
            config.hook.pytest_deselected(items=others)
            items[:] = [i for i in items if i not in others]
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None and not self.is_worker:
            hint = "" if config.getoption("qwencmp_json") else "; write this shard's results with --qwencmp-json=FILE to merge them"
            reporter.write_line(f"{plan.describe()}; {len(others)} item(s) of other shards deselected{hint}")
        return [i for i in ours if i not in others]

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self._resume_interrupted_line()  # before the terminal reporter writes the item's letter
        for name, value in report.user_properties:
            if name == RECORD_PROPERTY and report.when == "call":
                record = json.loads(value)
                record["outcome"] = report.outcome
                record["nodeid"] = report.nodeid
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
        totals = combine_stats([self.run.stats(), *self.worker_stats])
        totals["wall_seconds"] = round(time.perf_counter() - self.started, 1)
        return totals

    def pytest_terminal_summary(self, terminalreporter) -> None:
        if self.run.failures.stopped and self.not_run:
            terminalreporter.write_line(
                f"qwencmp: {self.not_run} item(s) skipped, not run: {self.run.failures.stopped}"
            )
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
        for line in reuse_lines(s) + combine_stats(self.worker_stats)["ignored"]:  # this process said its own at once
            terminalreporter.write_line(line)
        plan = self.run_info.get("shard")
        if plan and self.run.shard_plan is None:  # under xdist the workers planned: say here what this shard ran
            mine = plan["benchmarks"][plan["index"] - 1]
            terminalreporter.write_line(f"qwencmp: shard {plan['index']}/{plan['count']} ran {', '.join(mine) or 'nothing'}")
        for warning in dict.fromkeys(self.run.baseline_warnings + self.worker_baseline_warnings):
            terminalreporter.write_line(f"qwencmp: baseline settings differ (allowed): {warning}")
        checks = [r["baseline"] for r in self.records.values() if isinstance(r.get("baseline"), dict)]
        if checks:
            regressed = sum(bool(c.get("regressed")) for c in checks)
            terminalreporter.write_line(
                f"qwencmp: model B compared with baseline {checks[0].get('baseline')!r} on {len(checks)} item(s): "
                f"{regressed} regressed beyond their tolerance (column \"B − baseline\" above)"
            )
        for warning in dict.fromkeys(w for r in self.records.values() for w in r.get("warnings", ())):
            terminalreporter.write_line(f"qwencmp: WARNING: {warning}")
        for line in self.closing_lines:
            terminalreporter.write_line(line)

    def markdown(self) -> str:
        return markdown_tables(self.records.values(), self.run_info)

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        shard_plan = self.run.shard_plan  # None on an xdist controller: its workers collect and plan
        if self.shard is not None and (shard_plan is None or not shard_plan.mine) and session.exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED:
            session.exitstatus = pytest.ExitCode.OK  # a shard with nothing to run (more jobs than benchmarks) succeeds
        if self.is_worker or not (self.records or shard_plan is not None):
            return
        save_name = self.config.getoption("qwencmp_baseline_save")
        if save_name and self.records:
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
            run_info = self.run_info or self.run.describe()
            document = results_document(self.records.values(), run_info, self.lm_eval_results, self.summary_stats())
            saved = self._saved_evaluations() if self.shard is not None else None  # what merge reads (~1 KB per document)
            if saved is not None:
                document["saved_evaluations"] = saved.to_json()
            _write_text(Path(json_path), json.dumps(document, indent=2, sort_keys=False))
            self.closing_lines.append(f"qwencmp: results JSON written to {Path(json_path).resolve()}")
        if not self.records:
            return
        markdown = None
        markdown_path = self.config.getoption("qwencmp_markdown")
        if markdown_path:
            markdown = self.markdown()
            _write_text(Path(markdown_path), markdown)
            self.closing_lines.append(f"qwencmp: Markdown tables written to {Path(markdown_path).resolve()}")
        step_summary = os.environ.get("GITHUB_STEP_SUMMARY")
        if step_summary:
            with open(step_summary, "a", encoding="utf-8") as handle:
                handle.write((markdown or self.markdown()) + "\n")
            self.closing_lines.append("qwencmp: Markdown tables appended to $GITHUB_STEP_SUMMARY")

    def _saved_evaluations(self):
        """This run's evaluations in the full saved form (what ``merge`` reads), or None with a closing line saying why."""
        benchmarks = list(dict.fromkeys(r["benchmark"] for r in self.records.values()))
        name = f"shard-{self.shard.index}-of-{self.shard.count}"
        try:
            saved = self.run.saved_evaluations(name, benchmarks, self.config.rootpath, full=True)
        except QwencmpError as exc:
            saved, reason = None, exc.message
        else:
            reason = "some evaluations are missing from the cache (did items fail to evaluate?)"
        if saved is None:
            self.closing_lines.append(f"qwencmp: the results JSON holds no per-document evaluations, so it cannot be merged: {reason}")
        return saved


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
    plugin: QwencmpPlugin = request.config.pluginmanager.get_plugin(PLUGIN_NAME)
    skip_reason = qwencmp_run.skip_reason(benchmark_name)
    if skip_reason:
        plugin.not_run += 1
        pytest.skip(skip_reason)
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    error: QwencmpError | None = None
    try:
        # lm-eval's progress bars pass through to the terminal while a benchmark is evaluated.
        with capture.global_and_fixture_disabled() if capture is not None else contextlib.nullcontext():
            result = qwencmp_run.comparison(benchmark_name, item_id)
    except QwencmpError as exc:
        error = exc
    if error is not None:  # reported once in full; later items name the first report (no exception chain)
        pytest.fail(qwencmp_run.failures.message(error, request.node.nodeid), pytrace=False)
    benchmark = qwencmp_run.registry.get(benchmark_name)
    record = ordered_record(result.to_record(), [i.id for i in benchmark.items], qwencmp_run.registry.names())
    evaluations = {side: qwencmp_run.evaluator.evaluate(side, benchmark_name) for side in ("a", "b")}
    warnings = [w for evaluation in evaluations.values() for w in evaluation.warnings]
    if warnings:
        record["warnings"] = warnings  # degenerate generations (numerical_health)
    node = request.node
    evaluated = {
        side: {k: evaluation.model.get(k) for k in ("backend", "dtype", "device", "tensor_parallel", "parameters", "notice", "setup")}
        for side, evaluation in evaluations.items()
    }
    node.user_properties.append((RUN_PROPERTY, json.dumps(qwencmp_run.describe(evaluated))))
    if benchmark_name not in plugin.attached_lm_eval:
        plugin.attached_lm_eval.add(benchmark_name)
        results = {side: evaluation.lm_eval_results for side, evaluation in evaluations.items()}
        node.user_properties.append((LM_EVAL_PROPERTY, json.dumps({"benchmark": benchmark_name, **results})))
    node.user_properties.append(record_property(record))
    node.user_properties += item_properties(record)
    return result
