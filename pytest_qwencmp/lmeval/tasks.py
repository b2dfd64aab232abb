"""Where lm-eval's REAL task definitions come from, and which data they read.

For a benchmark this module builds a ``TaskManager`` that indexes only the
benchmark's own task folders (milliseconds instead of the ~7 s full index).
With a local data directory it adds, for every leaf task, a small override
YAML that *includes* lm-eval's own task file and changes only where the data
comes from (the local copy's files as its README ``configs:`` names them, read
by datasets' packaged JSON/Parquet/CSV builder, or the folder itself) plus a
private datasets cache keyed by the data's content. Prompts, metrics and
aggregation stay exactly lm-eval's, and nothing touches the hub.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import cached_property, lru_cache
from importlib.metadata import version
from importlib.util import find_spec
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from ..config.benchmarks import Benchmark
from ..errors import DataError, QwencmpError
from ..files import write_atomic

if TYPE_CHECKING:  # pragma: no cover
    from lm_eval.tasks import TaskManager


@lru_cache(maxsize=1)
def lm_eval_tasks_root() -> Path:
    """lm-eval's task folder, found without importing lm-eval (and datasets with it)."""
    spec = find_spec("lm_eval")
    if spec is None or not spec.submodule_search_locations:
        raise QwencmpError("lm-eval is not installed; pip install 'lm-eval[hf]' (the plugin needs 0.4.13 or newer).")
    return Path(list(spec.submodule_search_locations)[0]) / "tasks"


@lru_cache(maxsize=1)
def lm_eval_version() -> str:
    return version("lm_eval")


def _hash_tree(paths: list[Path], root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(paths):
        if path.is_file() and "__pycache__" not in path.parts:
            digest.update(str(path.relative_to(root)).encode())
            digest.update(b"\0")
            digest.update(path.read_bytes())
            digest.update(b"\0")
    return digest.hexdigest()


@lru_cache(maxsize=64)
def task_definitions_fingerprint(task_dirs: tuple[str, ...]) -> str:
    """A hash of lm-eval's task files (YAML and helpers) for these task folders."""
    root = lm_eval_tasks_root()
    files: list[Path] = []
    for task_dir in task_dirs:
        folder = root / task_dir
        if not folder.is_dir():
            raise QwencmpError(
                f"lm-eval {lm_eval_version()} has no task folder {task_dir!r} (looked in {root}); "
                "fix 'task_dirs' of this benchmark in benchmarks.toml."
            )
        files.extend(p for p in folder.rglob("*") if p.suffix in (".yaml", ".py", "") and p.is_file())
    return _hash_tree(files, root)


def data_fingerprint(folder: Path) -> str:
    """A hash of a local dataset folder's file names and contents."""
    return _hash_tree([p for p in folder.rglob("*") if p.is_file()], folder)


@dataclass(frozen=True)
class TaskSource:
    """The lm-eval task folders to index and, offline, the local dataset for each leaf task.

    ``index_dir`` (the evaluation cache's folder) keeps which hub dataset each
    leaf task reads, keyed by the hash of lm-eval's task files, so that a rerun
    whose evaluations are all cached computes its cache keys without importing
    lm-eval (and datasets with it).
    """

    benchmark: Benchmark
    data_dir: Path | None
    index_dir: Path | None = None

    def task_folders(self) -> list[Path]:
        root = lm_eval_tasks_root()
        return [root / d for d in self.benchmark.task_dirs]

    def _base_manager(self) -> "TaskManager":
        return self._base

    @cached_property
    def _base(self) -> "TaskManager":
        """The index of the benchmark's own task folders: built once per ``TaskSource`` (a new one sees changed files)."""
        from lm_eval.tasks import TaskManager  # lazy: lm-eval (torch, datasets) only when an evaluation runs

        return TaskManager(include_defaults=False, include_path=[str(p) for p in self.task_folders()])

    def local_datasets(self) -> dict[str, Path]:
        """For each hub dataset the benchmark reads, its local copy under ``data_dir``."""
        if self.data_dir is None:
            return {}
        return {hub: self.data_dir / hub for hub in self.hub_datasets().values()}

    def hub_datasets(self) -> dict[str, str]:
        """Leaf task -> the ``dataset_path`` lm-eval's own YAML names (remembered under ``index_dir``)."""
        remembered = self._remembered_index()
        if remembered is not None:
            return remembered
        found = {task: str(config.get("dataset_path", "")) for task, config in self.task_configs().items()}
        self._remember_index(found)
        return found

    def _index_file(self) -> Path | None:
        if self.index_dir is None:
            return None
        identity = json.dumps(
            [lm_eval_version(), task_definitions_fingerprint(self.benchmark.task_dirs), list(self.benchmark.leaf_tasks)]
        )
        return self.index_dir / "task-index" / f"{hashlib.sha256(identity.encode()).hexdigest()[:32]}.json"

    def _remembered_index(self) -> dict[str, str] | None:
        path = self._index_file()
        if path is None:
            return None
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(data, dict) or set(data) != set(self.benchmark.leaf_tasks):
            return None
        return {str(k): str(v) for k, v in data.items()}

    def _remember_index(self, found: dict[str, str]) -> None:
        path = self._index_file()
        if path is None:
            return
        try:
            write_atomic(path, json.dumps(found, sort_keys=True), what="the task index")
        except QwencmpError:
            pass  # a read-only cache only costs the next run the lookup

    def task_configs(self) -> dict[str, dict[str, Any]]:
        """Leaf task -> lm-eval's own task YAML (includes resolved, ``!function`` tags left unresolved)."""
        from lm_eval.tasks._yaml_loader import load_yaml  # lazy: lm-eval (torch, datasets) only when an evaluation runs

        manager = self._base_manager()
        found: dict[str, dict[str, Any]] = {}
        for task in self.benchmark.leaf_tasks:
            entry = manager.task_index.get(task)
            if entry is None or entry.yaml_path is None:
                raise QwencmpError(
                    f"lm-eval {lm_eval_version()} has no task {task!r} in {', '.join(self.benchmark.task_dirs)}; "
                    f"fix benchmark [{self.benchmark.name}] (request, subjects or task_dirs)."
                )
            found[task] = load_yaml(entry.yaml_path, resolve_func=False)
        return found

    def data_fingerprints(self) -> dict[str, str]:
        """Content hashes of the local dataset copies (empty when reading the hub)."""
        return {hub: data_fingerprint(path) for hub, path in self.check_local_data().items()}

    def check_local_data(self) -> dict[str, Path]:
        local = self.local_datasets()
        for hub, path in local.items():
            if not path.is_dir():
                raise DataError(
                    f"Benchmark {self.benchmark.name!r} reads the dataset {hub!r}, but the data directory has no "
                    f"copy of it at {path}. Put the dataset there in its hub layout (the files plus README.md with "
                    "a 'configs:' header, as `python -m pytest_qwencmp mirror` or a hub snapshot writes them), "
                    "or drop --data-dir to read the hub."
                )
        return local

    def build_manager(
        self, work_dir: Path, datasets_cache: Path | None = None, fingerprints: dict[str, str] | None = None,
        samples: int = 1,
    ) -> "TaskManager":
        """A TaskManager over the real task folders, with overrides where the run needs them.

        Offline (a data directory), each leaf task reads its local copy: prepared under
        ``datasets_cache`` (default: inside ``work_dir``) in a folder named by the data's
        content hash, ``fingerprints`` when the caller just computed them
        (``data_fingerprints``), else hashed here. ``samples`` > 1 (``--samples``) makes
        each leaf task draw that many answers per document through lm-eval's own
        ``repeats``, all kept (``take_first_k``, under the filter name ``none`` so that the
        metric keys stay lm-eval's): the task's metric then scores every answer, and
        MBPP's ``pass_at_1`` is c/K per problem.
        """
        if self.data_dir is None and samples == 1:
            return self._base_manager()
        from lm_eval.tasks import TaskManager  # lazy: lm-eval (torch, datasets) only when an evaluation runs
        from lm_eval.tasks._yaml_loader import load_yaml  # lazy: as above

        local = self.check_local_data() if self.data_dir is not None else {}
        base = self._base_manager()
        override_dir = work_dir / f"overrides-{self.benchmark.name}"
        override_dir.mkdir(parents=True, exist_ok=True)
        if local and (fingerprints is None or set(fingerprints) != set(local)):
            fingerprints = {hub: data_fingerprint(path) for hub, path in local.items()}
        readmes: dict[str, list[dict[str, Any]]] = {}
        for task in self.benchmark.leaf_tasks:
            entry = base.task_index[task]
            config = load_yaml(entry.yaml_path, resolve_func=False)
            override: dict[str, Any] = {"include": str(entry.yaml_path), "task": task}
            function = None
            if local:
                function = self._local_data_override(config, override, local, readmes, fingerprints,
                                                     datasets_cache or work_dir / "datasets-cache")
            if samples > 1:
                override.update(_repeats_override(task, config, samples))
            _write_yaml(override_dir / f"{task}.yaml", override, function=function)
        return TaskManager(
            include_defaults=False,
            include_path=[str(p) for p in self.task_folders()] + [str(override_dir)],
        )

    def _local_data_override(self, config: dict[str, Any], override: dict[str, Any], local: dict[str, Path],
                             readmes: dict[str, list[dict[str, Any]]], fingerprints: dict[str, str],
                             datasets_cache: Path) -> str | None:
        """Point ``override`` at the local copy of the task's dataset; returns a ``custom_dataset`` function or None."""
        hub = str(config.get("dataset_path", ""))
        dataset_kwargs: dict[str, Any] = dict(config.get("dataset_kwargs") or {})
        # A private datasets cache per content hash: HF's offline cache is keyed by the
        # folder NAME and would otherwise serve stale data after the files change.
        dataset_kwargs["cache_dir"] = str(datasets_cache / fingerprints[hub][:16])
        if hub not in readmes:
            readmes[hub] = readme_configs(local[hub])
        direct = data_files_for(local[hub], readmes[hub], config.get("dataset_name"))
        function = None
        if direct is not None and direct[0] == "json" and all(
            p.endswith(".jsonl") and not any(c in p for c in "*?[") for paths in direct[1].values() for p in paths
        ):
            # JSON Lines: read into memory by local_data (lm-eval's custom_dataset hook), the
            # same rows in file order, without datasets' per-subject builder and Arrow cache.
            function = LOCAL_JSON_LINES
            dataset_kwargs = {"qwencmp_files": direct[1]}
        elif direct is not None:
            # Other files: datasets' packaged builder reads them directly, the same rows as
            # load_dataset(dir, name=...), without re-parsing the README for every subject.
            builder, files = direct
            override.update(dataset_path=builder, dataset_name=None)
            dataset_kwargs["data_files"] = files
        else:
            override["dataset_path"] = str(local[hub])
        override["dataset_kwargs"] = dataset_kwargs
        return function


def _repeats_override(task: str, config: dict[str, Any], samples: int) -> dict[str, Any]:
    """lm-eval's own ``repeats`` with every answer kept, for ``--samples``; a task with filters of its own is refused."""
    if config.get("output_type") != "generate_until":
        raise QwencmpError(f"--samples applies to generation tasks; lm-eval task {task!r} is scored by "
                           f"{config.get('output_type') or 'log-likelihood'}, where every sample is the same.")
    if config.get("filter_list"):
        raise QwencmpError(f"--samples: lm-eval task {task!r} has filters of its own "
                           f"({', '.join(str(f.get('name')) for f in config['filter_list'])}); K answers per document "
                           "are kept only for tasks that score their raw answers (such as mbpp). Drop --samples for it.")
    return {"repeats": samples, "filter_list": [{"name": "none", "filter": [{"function": "take_first_k", "k": samples}]}]}


_BUILDERS = {".json": "json", ".jsonl": "json", ".parquet": "parquet", ".csv": "csv"}
LOCAL_JSON_LINES = "pytest_qwencmp.lmeval.local_data.load_json_lines"  # local_data.FUNCTION, named without importing it


def readme_configs(folder: Path) -> list[dict[str, Any]]:
    """The ``configs:`` list of a local dataset's README.md front matter (empty if none)."""
    try:
        text = (folder / "README.md").read_text(encoding="utf-8")
    except OSError:
        return []
    if not text.startswith("---"):
        return []
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: a real MMLU card parses ~10x faster
    try:
        header = yaml.load(text.split("---", 2)[1], Loader=loader) or {}
    except yaml.YAMLError:
        return []
    configs = header.get("configs") if isinstance(header, dict) else None
    return [c for c in configs if isinstance(c, dict)] if isinstance(configs, list) else []


def split_patterns(folder: Path, configs: list[dict[str, Any]], name: str | None) -> dict[str, list[str]] | None:
    """{split: absolute file patterns} for config ``name`` as the README header lists it, or None if it does not."""
    wanted = name or "default"
    for config in configs:
        if config.get("config_name", "default") != wanted:
            continue
        data_files = config.get("data_files")
        if isinstance(data_files, str) or (isinstance(data_files, list) and data_files and not isinstance(data_files[0], dict)):
            data_files = [{"split": "train", "path": data_files}]  # a bare file list is the train split
        if not isinstance(data_files, list):
            return None
        files: dict[str, list[str]] = {}
        for entry in data_files:
            if not isinstance(entry, dict) or "split" not in entry or "path" not in entry:
                return None
            paths = entry["path"] if isinstance(entry["path"], list) else [entry["path"]]
            files[str(entry["split"])] = [str(folder / p) for p in paths]
        return files
    return None


def data_files_for(folder: Path, configs: list[dict[str, Any]], name: str | None) -> tuple[str, dict[str, list[str]]] | None:
    """(packaged builder, {split: absolute file patterns}) for config ``name``, or None to load the folder."""
    files = split_patterns(folder, configs, name)
    if files is None:
        return None
    suffixes = {Path(p).suffix for patterns in files.values() for p in patterns}
    builders = {_BUILDERS.get(suffix) for suffix in suffixes}
    if len(builders) != 1 or None in builders:
        return None
    return builders.pop(), files


def _write_yaml(path: Path, data: dict[str, Any], function: str | None = None) -> None:
    """``data`` as YAML; ``function`` becomes the task's ``custom_dataset: !function …``."""
    text = yaml.safe_dump(data, sort_keys=False)
    if function is not None:
        text += f"custom_dataset: !function {function}\n"
    if not path.exists() or path.read_text(encoding="utf-8") != text:
        write_atomic(path, text, what="a task override")
