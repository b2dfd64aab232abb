"""Local copies of the benchmark datasets (and models) for air-gapped runners.

``python -m pytest_qwencmp mirror --out DIR`` writes, for each benchmark, its
Hugging Face dataset into ``DIR/<hub path>`` in exactly the layout
``--data-dir DIR`` reads:

* ``cais/mmlu`` — one config per MMLU subject (all 57 by default), splits
  test / dev / validation;
* ``Rowan/hellaswag`` — config ``default``, splits train / validation / test;
* ``google-research-datasets/mbpp`` — config ``full``, splits train / test /
  validation / prompt.

A source must have the splits lm-eval's task definitions read (MMLU test and
dev, HellaSwag train and validation, MBPP test); the others are copied when the
source has them (the hub has them all).

Each dataset folder holds ``<config>/<split>.jsonl`` plus a ``README.md`` whose
YAML front matter declares the configs (``configs:`` with ``data_files``) and
the original features (``dataset_info:``), so that
``datasets.load_dataset(str(DIR / "cais/mmlu"), name="anatomy")`` gives back
every split with the original field names and types (MMLU ``answer`` an int
class label, HellaSwag ``label`` a string, MBPP ``test_list`` a list). The
output depends only on the data, not on where it came from or when: a mirror of
a mirror is byte-identical.

The data come from the hub, or, with ``HF_HUB_OFFLINE=1``, from the local
datasets cache; ``source=DIR`` reads another folder in the same layout (or any
folder ``datasets.load_dataset`` reads, per hub path). ``datasets`` works in a
private temporary cache: nothing lands in ``~/.cache``, and nothing stale is
served for a local folder whose files changed (its offline cache is keyed by
the folder's name).

Models (``ID[@REV]``) are saved with ``huggingface_hub.snapshot_download`` into
``DIR/models/<org>/<name>``; when the hub cannot be reached they are copied out
of the local hub cache instead.

Each dataset and model is built in a hidden temporary sibling folder and
renamed into place, so a failed or interrupted run leaves earlier copies
intact. Problems a user must fix raise ``MirrorError`` (one paragraph).
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import yaml

from ..config.benchmarks import builtin_registry
from ..errors import QwencmpError
from ..files import replace_folder
from ..hub import HubAccess, hub_offline
from .data_checks import dataset_in_local_cache, datasets_cache_dir

HUB = "hub"
MODELS_FOLDER = "models"
STAGING_TAG = ".mirror-"
MMLU_SPLITS = ("test", "dev", "validation")
HELLASWAG_SPLITS = ("train", "validation", "test")
MBPP_SPLITS = ("train", "test", "validation", "prompt")
# The splits lm-eval's task definitions read (test/fewshot/training/validation_split): a source
# without one of them is an error; the other splits are copied when the source has them.
MMLU_REQUIRED = ("test", "dev")
HELLASWAG_REQUIRED = ("train", "validation")
MBPP_REQUIRED = ("test",)

_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?$")

Log = Callable[[str], None]


class MirrorError(QwencmpError):
    """A mirror that cannot be made as asked: bad option, unreachable source, missing data."""


@dataclass(frozen=True)
class DatasetSpec:
    """One hub dataset a benchmark reads: which configs and splits to copy."""

    benchmark: str
    hub_path: str
    configs: tuple[str, ...]
    splits: tuple[str, ...]  # all the hub has, in the hub's order
    required: tuple[str, ...]  # those lm-eval reads


@dataclass(frozen=True)
class SnapshotSpec:
    """A model snapshot to save: a hub id and an optional revision."""

    repo_id: str
    revision: str | None = None

    @property
    def label(self) -> str:
        return f"{self.repo_id}@{self.revision}" if self.revision else self.repo_id


@dataclass(frozen=True)
class MirrorPlan:
    """Everything one mirror run writes, validated before any work starts."""

    out: Path
    source: Path | None  # None: the hub (or, offline, the local datasets cache)
    datasets: tuple[DatasetSpec, ...]
    models: tuple[SnapshotSpec, ...]


# --------------------------------------------------------------------------- planning


def mmlu_subjects() -> tuple[str, ...]:
    return builtin_registry().get("mmlu").subjects


def known_benchmarks() -> tuple[str, ...]:
    return ("mmlu", "hellaswag", "mbpp")


def dataset_spec(benchmark: str, subjects: Sequence[str] | None = None) -> DatasetSpec:
    """What to copy for a benchmark (all MMLU subjects unless ``subjects`` says otherwise)."""
    if benchmark == "mmlu":
        return DatasetSpec("mmlu", "cais/mmlu", tuple(subjects or mmlu_subjects()), MMLU_SPLITS, MMLU_REQUIRED)
    if benchmark == "hellaswag":
        return DatasetSpec("hellaswag", "Rowan/hellaswag", ("default",), HELLASWAG_SPLITS, HELLASWAG_REQUIRED)
    if benchmark == "mbpp":
        return DatasetSpec("mbpp", "google-research-datasets/mbpp", ("full",), MBPP_SPLITS, MBPP_REQUIRED)
    raise MirrorError(
        f"Unknown benchmark {benchmark!r}: the mirror knows {', '.join(known_benchmarks())} "
        "(pass --benchmarks none to mirror models only)."
    )


def split_list(text: str | Sequence[str] | None) -> list[str]:
    """'a, b,c' or ['a', 'b,c'] -> ['a', 'b', 'c']."""
    if text is None:
        return []
    parts = [text] if isinstance(text, str) else list(text)
    return [p.strip() for part in parts for p in part.split(",") if p.strip()]


def parse_benchmarks(text: str | Sequence[str] | None) -> tuple[str, ...]:
    """'mmlu,MBPP' -> ('mmlu', 'mbpp'); '' or 'none' -> () (models only)."""
    names = [n.lower() for n in split_list(text)]
    if names in ([], ["none"]):
        return ()
    for name in names:
        if name not in known_benchmarks():
            dataset_spec(name)  # raises the error naming the known ones
    return tuple(dict.fromkeys(names))


def parse_subjects(text: str | Sequence[str] | None) -> tuple[str, ...] | None:
    names = split_list(text)
    if not names:
        return None
    known = mmlu_subjects()
    unknown = [n for n in names if n not in known]
    if unknown:
        raise MirrorError(
            f"Unknown MMLU subject(s) {', '.join(unknown)}; the subjects are the 57 lm-eval names such as "
            f"{', '.join(known[:3])} (see pytest_qwencmp/config/benchmarks.toml)."
        )
    return tuple(dict.fromkeys(names))


def parse_model(spec: str) -> SnapshotSpec:
    """'org/name' or 'org/name@revision'."""
    repo_id, _, revision = spec.strip().partition("@")
    if not _REPO_ID.match(repo_id) or (spec.strip().endswith("@") and not revision):
        raise MirrorError(
            f"--model {spec!r} is not a hub model id: give ORG/NAME or ORG/NAME@REVISION, "
            "e.g. Qwen/Qwen2.5-1.5B@main (local model folders need no mirroring)."
        )
    return SnapshotSpec(repo_id, revision or None)


def resolve_source(source: str | Path | None) -> Path | None:
    if source is None or str(source) == HUB:
        return None
    path = Path(source).expanduser().resolve()
    if not path.is_dir():
        raise MirrorError(
            f"The source folder {str(path)!r} does not exist. Pass --source DIR with local dataset copies in "
            "their hub layout (DIR/cais/mmlu, DIR/Rowan/hellaswag, DIR/google-research-datasets/mbpp), "
            "or --source hub."
        )
    return path


def make_plan(
    out: str | Path,
    benchmarks: str | Sequence[str] | None = "mmlu,hellaswag,mbpp",
    models: Sequence[str] = (),
    source: str | Path | None = HUB,
    subjects: str | Sequence[str] | None = None,
) -> MirrorPlan:
    """Check every option and the source before anything is read or written."""
    names = parse_benchmarks(benchmarks)
    chosen_subjects = parse_subjects(subjects)
    if chosen_subjects and "mmlu" not in names:
        raise MirrorError("MMLU subjects were given, but mmlu is not among the benchmarks to mirror.")
    specs = tuple(dataset_spec(n, chosen_subjects) for n in names)
    model_specs = tuple(dict.fromkeys(parse_model(m) for m in models))
    repo_ids = [m.repo_id for m in model_specs]
    twice = sorted({r for r in repo_ids if repo_ids.count(r) > 1})
    if twice:
        raise MirrorError(
            f"--model names {', '.join(twice)} more than once with different revisions; the copy holds one "
            "folder per model (models/<org>/<name>), so mirror one revision per --out."
        )
    if not specs and not model_specs:
        raise MirrorError("Nothing to mirror: no benchmarks and no --model.")
    out_path = Path(out).expanduser().resolve()
    if out_path.exists() and not out_path.is_dir():
        raise MirrorError(f"--out {str(out_path)!r} exists and is not a folder.")
    source_path = resolve_source(source)
    if source_path is not None and specs:
        if source_path == out_path:
            raise MirrorError(f"--source and --out are the same folder ({source_path}); pick another --out.")
        missing = [s.hub_path for s in specs if not (source_path / s.hub_path).is_dir()]
        if missing:
            raise MirrorError(
                f"The source folder {source_path} has no copy of {', '.join(missing)} "
                f"(looked for {', '.join(str(source_path / m) for m in missing)}). A source holds each dataset "
                "at DIR/<hub path>, as this command or a hub snapshot writes it."
            )
    return MirrorPlan(out_path, source_path, specs, model_specs)


# --------------------------------------------------------------------------- running


def stdout_log(message: str) -> None:
    """Progress goes to stdout, so that stderr holds nothing but a problem."""
    print(message, file=sys.stdout, flush=True)


def check_hub(plan: MirrorPlan, hub: HubAccess | None = None) -> str | None:
    """Before any work, in a second or so: why the hub cannot be used (None: it answers, or nothing needs it).

    Offline (``HF_HUB_OFFLINE``) the datasets come from the local datasets cache, so one it lacks stops the
    mirror here; an unreachable hub stops it here too, instead of after ``datasets``' retries.
    """
    wants_hub = bool(plan.models) or (bool(plan.datasets) and plan.source is None)
    if not wants_hub:
        return None
    blocked = (hub or HubAccess()).blocked()
    if blocked is None:
        return None
    uncached = [spec.hub_path for spec in plan.datasets if plan.source is None and not dataset_in_local_cache(spec.hub_path)]
    if hub_offline():
        if uncached:
            raise MirrorError(
                f"HF_HUB_OFFLINE is set, so the datasets come from the local datasets cache ({datasets_cache_dir()}), "
                f"which holds no copy of {', '.join(uncached)}. Run the mirror where the hub can be reached and carry "
                "the folder over, or pass --source DIR."
            )
        return blocked
    if plan.datasets and plan.source is None:
        cached = "" if uncached else " The datasets are in this machine's Hugging Face caches: set HF_HUB_OFFLINE=1 to copy them from there."
        raise MirrorError(
            f"The mirror cannot read the datasets: {blocked}.{cached} Run the mirror where the hub can be reached "
            "and carry the folder over, or pass --source DIR with a copy made elsewhere by this command."
        )
    return blocked


def run_mirror(plan: MirrorPlan, log: Log = stdout_log, hub: HubAccess | None = None) -> list[Path]:
    """Write every dataset and model of the plan; returns the folders written."""
    blocked = check_hub(plan, hub)
    written: list[Path] = []
    with quiet_libraries(with_datasets=bool(plan.datasets)):
        if plan.datasets:
            with tempfile.TemporaryDirectory(prefix="qwencmp-mirror-cache-") as cache:
                for spec in plan.datasets:
                    written.append(mirror_dataset(spec, plan.source, plan.out, Path(cache), log, offline=blocked is not None))
        for model in plan.models:
            written.append(mirror_model(model, plan.out, log, blocked))
    return written


def mirror(
    out: str | Path,
    benchmarks: str | Sequence[str] | None = "mmlu,hellaswag,mbpp",
    models: Sequence[str] = (),
    source: str | Path | None = HUB,
    subjects: str | Sequence[str] | None = None,
    log: Log = stdout_log,
) -> list[Path]:
    """Plan and run a mirror in one call (the CLI and tests use this)."""
    return run_mirror(make_plan(out, benchmarks, models, source, subjects), log)


@contextlib.contextmanager
def quiet_libraries(with_datasets: bool = True) -> Iterator[None]:
    """No info logs or warnings from datasets and huggingface_hub, no datasets progress bars
    (download progress bars of models stay); all restored afterwards."""
    from huggingface_hub.utils import logging as hub_logging  # lazy: huggingface_hub only when the hub or its cache is asked

    hub_verbosity = hub_logging.get_verbosity()
    hub_logging.set_verbosity_error()
    with contextlib.ExitStack() as restore:
        restore.callback(hub_logging.set_verbosity, hub_verbosity)
        if with_datasets:
            import datasets.utils  # lazy: datasets (pyarrow) only when a dataset is read or mirrored
            from datasets.utils import logging as ds_logging  # lazy: datasets (pyarrow) only when a dataset is read or mirrored

            restore.callback(ds_logging.set_verbosity, ds_logging.get_verbosity())
            if not datasets.utils.are_progress_bars_disabled():
                restore.callback(datasets.utils.enable_progress_bars)
            ds_logging.set_verbosity_error()
            datasets.utils.disable_progress_bars()
        yield


# --------------------------------------------------------------------------- datasets


def mirror_dataset(spec: DatasetSpec, source: Path | None, out: Path, cache_dir: Path, log: Log, offline: bool = False) -> Path:
    """Copy every config and split of one dataset into ``out/<hub path>`` (``offline``: from the local datasets cache)."""
    final = out / spec.hub_path
    if source is not None:
        origin = str(source / spec.hub_path)
    else:
        origin = "the local datasets cache (HF_HUB_OFFLINE is set)" if offline else "the Hugging Face hub"
    log(f"mirror: {spec.hub_path}: reading {len(spec.configs)} config(s) from {origin}")
    with staging_folder(final) as staging:
        features: dict[str, list[dict[str, Any]]] = {}
        rows: dict[str, dict[str, int]] = {}
        for config in spec.configs:
            splits = load_config(spec, config, source, cache_dir)
            features[config], rows[config] = write_config(staging / config, spec, config, splits)
            absent = [s for s in spec.splits if s not in rows[config]]
            if absent:
                log(
                    f"mirror: {spec.hub_path}: config {config!r} has no {', '.join(absent)} split "
                    "(lm-eval does not read it)"
                )
        write_card(staging, spec, features, rows)
        replace_folder(staging, final, retired_prefix=f".{final.name}{STAGING_TAG}old-")
    total = sum(sum(r.values()) for r in rows.values())
    log(f"mirror: {spec.hub_path}: {total} rows in {len(spec.configs)} config(s) -> {final}")
    return final


def load_config(spec: DatasetSpec, config: str, source: Path | None, cache_dir: Path) -> Mapping[str, Any]:
    """One config of a dataset as a DatasetDict holding (at least) the splits lm-eval reads."""
    if source is None:
        loaded = load_from_hub(spec, config, cache_dir)
    else:
        loaded = load_local(source / spec.hub_path, spec, config, cache_dir)
    missing = [s for s in spec.required if s not in loaded]
    if missing:
        raise MirrorError(
            f"{spec.hub_path} config {config!r} from {'the hub' if source is None else source / spec.hub_path} "
            f"has no split(s) {', '.join(missing)} (it has {', '.join(loaded) or 'none'}); lm-eval reads "
            f"{', '.join(spec.required)}."
        )
    return loaded


def load_local(path: Path, spec: DatasetSpec, config: str, cache_dir: Path) -> Mapping[str, Any]:
    import datasets  # lazy: datasets (pyarrow) only when a dataset is read or mirrored

    try:
        return datasets.load_dataset(str(path), name=config, cache_dir=str(cache_dir))
    except Exception as exc:  # datasets raises many types for unreadable or incomplete folders
        raise MirrorError(
            f"Could not read config {config!r} of {spec.hub_path} from {path}: {first_line(exc)}"
        ) from None


def load_from_hub(spec: DatasetSpec, config: str, cache_dir: Path) -> Mapping[str, Any]:
    """The hub, through a private cache; offline, the dataset as the local datasets cache holds it."""
    import datasets  # lazy: datasets (pyarrow) only when a dataset is read or mirrored

    try:
        return datasets.load_dataset(spec.hub_path, name=config, cache_dir=str(cache_dir))
    except ConnectionError as exc:
        if not hub_offline():
            raise MirrorError(
                f"Could not reach the Hugging Face hub for {spec.hub_path} ({first_line(exc)}). On a machine "
                "without hub access, set HF_HUB_OFFLINE=1 to copy the datasets from the local datasets cache, or "
                "pass --source DIR with a copy made elsewhere by this command."
            ) from None
    except Exception as exc:
        raise MirrorError(
            f"Could not load config {config!r} of {spec.hub_path} from the hub: {first_line(exc)}"
        ) from None
    # Offline mode: datasets goes straight to its (default) cache, without network attempts.
    try:
        return datasets.load_dataset(spec.hub_path, name=config)
    except Exception as exc:
        raise MirrorError(
            f"Offline mode is on (HF_HUB_OFFLINE) and the local datasets cache ({datasets.config.HF_DATASETS_CACHE}) "
            f"has no copy of config {config!r} of {spec.hub_path} ({first_line(exc)}). Run the mirror where the hub "
            "is reachable and carry the folder over, or pass --source DIR."
        ) from None


def first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def write_config(
    folder: Path, spec: DatasetSpec, config: str, splits: Mapping[str, Any]
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """``<config>/<split>.jsonl`` for each split the source has; returns the features (as card
    YAML) and the row count per split written."""
    folder.mkdir(parents=True, exist_ok=True)
    features = None
    counts: dict[str, int] = {}
    for split in (s for s in spec.splits if s in splits):
        dataset = splits[split]
        if features is None:
            features = dataset.features
        elif dataset.features != features:
            raise MirrorError(
                f"{spec.hub_path} config {config!r}: split {split!r} has other fields or types than "
                f"split {next(iter(counts))!r}; a config's splits must share one schema."
            )
        counts[split] = write_jsonl(folder / f"{split}.jsonl", dataset, f"{spec.hub_path} {config}/{split}")
    return features._to_yaml_list(), counts


def write_jsonl(path: Path, dataset: Any, what: str) -> int:
    """One JSON object per line, fields in schema order; returns the number of rows."""
    count = 0
    with path.open("w", encoding="utf-8", newline="\n") as handle:
        for batch in dataset.iter(batch_size=1000):
            columns = list(batch)
            for values in zip(*(batch[c] for c in columns), strict=True):
                try:
                    line = json.dumps(dict(zip(columns, values, strict=True)), ensure_ascii=False, allow_nan=False)
                except (TypeError, ValueError) as exc:
                    raise MirrorError(f"{what}: row {count} cannot be written as JSON ({exc}).") from None
                handle.write(line + "\n")
                count += 1
    return count


def card_text(spec: DatasetSpec, features: Mapping[str, list], rows: Mapping[str, Mapping[str, int]]) -> str:
    """README.md: the YAML front matter ``datasets`` reads, then a short human note."""
    header = {
        "configs": [
            {
                "config_name": config,
                "data_files": [{"split": split, "path": f"{config}/{split}.jsonl"} for split in rows[config]],
            }
            for config in spec.configs
        ],
        "dataset_info": [{"config_name": config, "features": features[config]} for config in spec.configs],
    }
    front = yaml.safe_dump(header, sort_keys=False, allow_unicode=True)
    totals = {split: sum(rows[c].get(split, 0) for c in spec.configs) for split in spec.splits}
    lines = [
        "---",
        front.rstrip("\n"),
        "---",
        "",
        f"# {spec.hub_path} (local copy)",
        "",
        f"A copy of the Hugging Face dataset [{spec.hub_path}](https://huggingface.co/datasets/{spec.hub_path}) "
        "written by `python -m pytest_qwencmp mirror`, for `pytest --data-dir`. The data, field names and types "
        "are the original's; see the original dataset card for its description, citation and license.",
        "",
        f"{len(spec.configs)} config(s); rows per split: "
        + ", ".join(f"{split} {totals[split]}" for split in spec.splits if any(split in r for r in rows.values()))
        + ".",
        "",
    ]
    return "\n".join(lines)


def write_card(folder: Path, spec: DatasetSpec, features: Mapping[str, list], rows: Mapping[str, Mapping[str, int]]):
    (folder / "README.md").write_text(card_text(spec, features, rows), encoding="utf-8", newline="\n")


# --------------------------------------------------------------------------- models


def mirror_model(model: SnapshotSpec, out: Path, log: Log, blocked: str | None = None) -> Path:
    """``snapshot_download`` into ``out/models/<org>/<name>``, or a copy from the local hub cache (at once when
    ``blocked`` says why the hub cannot be used)."""
    final = out / MODELS_FOLDER / model.repo_id
    log(f"mirror: model {model.label}: {'copying from the local hub cache' if blocked else 'fetching'}")
    with staging_folder(final) as staging:
        how = fetch_snapshot(model, staging, blocked)
        shutil.rmtree(staging / ".cache", ignore_errors=True)  # snapshot_download's local_dir bookkeeping
        replace_folder(staging, final, retired_prefix=f".{final.name}{STAGING_TAG}old-")
    log(f"mirror: model {model.label}: {how} -> {final}")
    return final


def fetch_snapshot(model: SnapshotSpec, dest: Path, blocked: str | None = None) -> str:
    """Fill ``dest`` with the model's files; says where they came from. ``blocked`` (why the hub cannot be
    used): straight from the local hub cache, without a download attempt."""
    from huggingface_hub import constants, snapshot_download  # lazy: huggingface_hub only when the hub or its cache is asked
    from huggingface_hub.errors import (  # lazy: huggingface_hub only when the hub or its cache is asked
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    unreachable: BaseException | str | None = blocked
    try:
        if blocked is None:
            snapshot_download(model.repo_id, revision=model.revision, local_dir=dest)
            return "downloaded from the hub"
    except RevisionNotFoundError:
        raise MirrorError(f"The model {model.repo_id} has no revision {model.revision!r} on the hub.") from None
    except RepositoryNotFoundError as exc:  # also gated repositories without a token
        raise MirrorError(
            f"The model {model.repo_id} does not exist on the hub or needs a token ({first_line(exc)})."
        ) from None
    except LocalEntryNotFoundError as exc:
        unreachable = exc
    # Offline or unreachable: snapshot_download with local_dir does not look in the hub cache,
    # so resolve the cached snapshot first and copy it (following its symlinks into the blobs).
    try:
        cached = Path(snapshot_download(model.repo_id, revision=model.revision, local_files_only=True))
    except (LocalEntryNotFoundError, OSError, ValueError) as exc:
        raise MirrorError(
            f"Could not fetch the model {model.label}: the hub cannot be used "
            f"({unreachable if isinstance(unreachable, str) else first_line(unreachable)}) and "
            f"the local hub cache ({constants.HF_HUB_CACHE}) has no complete snapshot of it ({first_line(exc)}). "
            "Run the mirror where the hub is reachable, or download the model there first."
        ) from None
    shutil.copytree(cached, dest, dirs_exist_ok=True)
    return f"copied from the local hub cache ({cached})"


# --------------------------------------------------------------------------- atomic folders


@contextlib.contextmanager
def staging_folder(final: Path) -> Iterator[Path]:
    """A hidden empty sibling of ``final`` to build in; removed afterwards unless renamed into place
    (and so are the parent folders it created, when a failure leaves them empty)."""
    created = [p for p in (final.parent, *final.parent.parents) if not p.exists()]
    final.parent.mkdir(parents=True, exist_ok=True)
    for stale in final.parent.glob(f".{final.name}{STAGING_TAG}*"):  # left by a killed run
        shutil.rmtree(stale, ignore_errors=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{final.name}{STAGING_TAG}", dir=final.parent))
    try:
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        for folder in created:  # deepest first; stops at the first one that holds something
            try:
                folder.rmdir()
            except OSError:
                break
