"""Run settings: the validated, immutable form of every option the plugin takes.

``parse_settings`` turns raw option values (strings from the command line or
ini file) into a ``RunSettings``; any bad value raises ``QwencmpError`` with one
paragraph naming the option and what to change. Nothing here imports torch.
"""

from __future__ import annotations

import re
from importlib.util import find_spec
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from ..errors import QwencmpError
from ..files import DEFAULT_LOCK_TIMEOUT
from .sides import ModelOptions, parse_model_options

DTYPES = ("float16", "bfloat16", "float32")
DTYPE_ALIASES = {"fp16": "float16", "half": "float16", "bf16": "bfloat16", "fp32": "float32", "float": "float32"}
BACKENDS = ("auto", "deepspeed", "hf")
DEFAULT_TEMPERATURE = 0.1
DEFAULT_TOP_P = 0.95
DEFAULT_SEED = 1234
DEFAULT_LOOKS = (0.125, 0.25, 0.5, 1.0)
_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?$")


@dataclass(frozen=True)
class ModelRef:
    """A model as the user named it: a hub id or a local directory, plus a revision."""

    name_or_path: str
    revision: str | None = None

    @property
    def is_local(self) -> bool:
        return Path(self.name_or_path).expanduser().is_dir()

    @property
    def path(self) -> Path:
        return Path(self.name_or_path).expanduser().resolve()

    @property
    def label(self) -> str:
        """A short display name: the hub id, or a local directory's name."""
        base = self.path.name if self.is_local else self.name_or_path
        return f"{base}@{self.revision}" if self.revision else base

    @classmethod
    def parse(cls, text: str, option: str, revision: str | None = None) -> "ModelRef":
        text = text.strip()
        if not text:
            raise QwencmpError(f"{option} is empty; give a hub id (Qwen/Qwen2.5-7B) or a local model directory.")
        if "@" in text and not Path(text).expanduser().exists():
            text, _, rev = text.rpartition("@")
            if revision and rev != revision:
                raise QwencmpError(f"{option} names revision {rev!r} and a revision option names {revision!r}; keep one.")
            revision = rev or None
        if Path(text).expanduser().is_file():
            raise QwencmpError(
                f"{option} {text!r} is a file, not a model directory; give the folder that holds the model's "
                f"config.json, tokenizer files and weights (for example {str(Path(text).parent) or '.'!r}), "
                "or a hub id such as Qwen/Qwen2.5-7B."
            )
        if not Path(text).expanduser().is_dir():
            if looks_like_path(text):
                raise QwencmpError(_no_such_folder(text, option))
            if not _HUB_ID.match(text):
                raise QwencmpError(
                    f"{option} {text!r} is neither an existing directory nor a valid hub id "
                    "(expected ORG/NAME such as Qwen/Qwen2.5-7B, optionally @REVISION)."
                )
        return cls(text, revision)


def looks_like_path(text: str) -> bool:
    """``text`` names a folder rather than a hub id: it starts with ``.``, ``/`` or ``~``, has more than one
    ``/``, or its first part is a folder here (``out/my-lora`` while ``out/`` exists)."""
    if text.startswith((".", "/", "~")) or text.count("/") > 1:
        return True
    head, slash, _ = text.partition("/")
    return bool(slash) and Path(head).expanduser().is_dir()


def _no_such_folder(text: str, option: str) -> str:
    """A path that names no folder: check the path (never a hub id instead: the user meant a folder)."""
    path = Path(text).expanduser()
    where = f" (relative paths start at {Path.cwd()})" if not path.is_absolute() else ""
    parent = next((p for p in path.absolute().parents if p.is_dir()), None)
    found = f"; the nearest existing folder is {parent}" if parent is not None and parent != path.absolute().parent else ""
    if option.startswith("--peft"):
        wanted = "the adapter's folder, the one peft's save_pretrained wrote (adapter_config.json and adapter weights)"
    else:
        wanted = "the model's folder, the one save_pretrained wrote (config.json, tokenizer files and weights)"
    return f"{option} {text!r} looks like a path, but no such folder exists{where}{found}. Check the path: give {wanted}."


@dataclass(frozen=True)
class GenerationSettings:
    """Sampling settings for generation benchmarks (the reference study's defaults)."""

    temperature: float = DEFAULT_TEMPERATURE
    top_p: float = DEFAULT_TOP_P

    @property
    def do_sample(self) -> bool:
        return self.temperature > 0

    def as_gen_kwargs(self) -> dict[str, Any]:
        """What lm-eval merges into every generate_until request.

        lm-eval's MBPP says ``do_sample: false``; unless ``do_sample`` is set
        here too, temperature and top_p would be silently dropped.
        """
        if not self.do_sample:
            return {"do_sample": False}
        return {"do_sample": True, "temperature": self.temperature, "top_p": self.top_p}


@dataclass(frozen=True)
class RunSettings:
    """Everything that decides what runs and what a number means."""

    model_a: ModelRef | None
    model_b: ModelRef | None
    benchmarks: tuple[str, ...] | None = None
    data_dir: Path | None = None
    limit: int | None = None
    num_fewshot: tuple[tuple[str, int], ...] = ()
    dtype: str = "float16"
    backend: str = "auto"
    device: str = "auto"
    batch_size: int | str = "auto"
    tensor_parallel_a: int = 1
    tensor_parallel_b: int = 1
    generation: GenerationSettings = field(default_factory=GenerationSettings)
    seed: int = DEFAULT_SEED
    cache_dir: Path = Path(".qwencmp")
    read_cache: bool = True
    expectations: Path | None = None
    demo: bool = False
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT  # seconds to wait for another run's evaluation of the same key
    model_options_a: ModelOptions = field(default_factory=ModelOptions)
    model_options_b: ModelOptions = field(default_factory=ModelOptions)
    samples: tuple[tuple[str, int], ...] = ()  # generation benchmarks: answers sampled per problem (--samples)
    sequential: bool = False  # --sequential: evaluate in looks, stop when every expectation is decided
    sequential_looks: tuple[float, ...] = DEFAULT_LOOKS

    def options(self, side: str) -> ModelOptions:
        """The side's chat template, system instruction, adapter and model arguments."""
        return self.model_options_a if side == "a" else self.model_options_b

    def dtype_for(self, side: str) -> str:
        """The dtype asked for one side: ``dtype=`` in its --model-args, else --dtype."""
        return self.options(side).dtype or self.dtype

    def shots_for(self, benchmark: str, default: int | None) -> int | None:
        return dict(self.num_fewshot).get(benchmark, default)

    def samples_for(self, benchmark: str) -> int:
        """How many answers are sampled per problem of a generation benchmark (1 unless --samples says)."""
        return dict(self.samples).get(benchmark, 1)

    def tensor_parallel(self, side: str) -> int:
        """How many processes (GPUs) the side's model is split across; 1 = not split."""
        return self.tensor_parallel_a if side == "a" else self.tensor_parallel_b

    def model(self, side: str) -> ModelRef:
        ref = self.model_a if side == "a" else self.model_b
        if ref is None:
            raise QwencmpError(
                "Two models are needed to compare: pass --model-a and --model-b "
                "(hub ids or local directories), set qwencmp_model_a / qwencmp_model_b in the ini file, "
                "or run the embedded demo with --demo."
            )
        return ref


def _as_int(value: Any, option: str, minimum: int) -> int:
    try:
        number = int(str(value).strip())
    except ValueError:
        raise QwencmpError(f"{option} must be a whole number, got {value!r}.") from None
    if number < minimum:
        raise QwencmpError(f"{option} must be at least {minimum}, got {number}.")
    return number


def _as_float(value: Any, option: str, low: float, high: float) -> float:
    try:
        number = float(str(value).strip())
    except ValueError:
        raise QwencmpError(f"{option} must be a number, got {value!r}.") from None
    if not low <= number <= high:
        raise QwencmpError(f"{option} must be between {low} and {high}, got {number}.")
    return number


def _parse_dtype(value: str) -> str:
    dtype = DTYPE_ALIASES.get(value.strip().lower(), value.strip().lower())
    if dtype not in DTYPES:
        raise QwencmpError(f"--dtype {value!r} is not supported; choose one of {', '.join(DTYPES)}.")
    return dtype


def _parse_device(value: str) -> str:
    device = value.strip().lower()
    if device in ("auto", "cpu", "cuda") or re.fullmatch(r"cuda:\d+", device):
        return device
    raise QwencmpError(f"--device {value!r} is not understood; use auto, cpu, cuda or cuda:N.")


def _parse_batch_size(value: Any) -> int | str:
    text = str(value).strip().lower()
    if text == "auto":
        return "auto"
    return _as_int(text, "--batch-size", 1)


def _parse_per_benchmark(entries: list[str], known: tuple[str, ...], option: str, minimum: int,
                         example: str) -> tuple[tuple[str, int], ...]:
    """``BENCH=N`` entries (repeatable, comma-separated) as sorted ``(benchmark, N)`` pairs."""
    values: dict[str, int] = {}
    for entry in entries:
        for part in str(entry).replace(",", " ").split():
            name, sep, count = part.partition("=")
            if not sep:
                raise QwencmpError(f"{option} {part!r} must look like BENCHMARK=N, for example {example}.")
            if name not in known:
                raise QwencmpError(f"{option} names unknown benchmark {name!r}; known: {', '.join(known)}.")
            values[name] = _as_int(count, f"{option} {name}", minimum)
    return tuple(sorted(values.items()))


def _parse_fewshot(entries: list[str], known: tuple[str, ...]) -> tuple[tuple[str, int], ...]:
    return _parse_per_benchmark(entries, known, "--num-fewshot", 0, "mbpp=2")


def _parse_samples(entries: list[str], known: tuple[str, ...], generation: "GenerationSettings",
                   generates: Mapping[str, bool] | None) -> tuple[tuple[str, int], ...]:
    """``--samples mbpp=K``: K answers per problem of a generation benchmark, sampled (not greedy)."""
    samples = _parse_per_benchmark(entries, known, "--samples", 1, "mbpp=5")
    for name, k in samples:
        if generates is not None and not generates.get(name, False):
            raise QwencmpError(
                f"--samples {name}={k}: {name} is scored by log-likelihood, not by generated answers, so every sample "
                "would be the same; --samples applies to generation benchmarks such as mbpp."
            )
        if k > 1 and not generation.do_sample:
            raise QwencmpError(
                f"--samples {name}={k} with --temperature 0: greedy decoding gives the same answer every time, so the "
                f"{k} samples would be one; set a sampling temperature (the default is 0.1) or drop --samples."
            )
    return tuple((name, k) for name, k in samples if k > 1)


def _parse_benchmarks(value: Any, known: tuple[str, ...]) -> tuple[str, ...] | None:
    if value in (None, "", []):
        return None
    parts = value if isinstance(value, list) else [value]
    names = [n for p in parts for n in str(p).replace(",", " ").split()]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise QwencmpError(f"--benchmarks names unknown benchmark(s) {', '.join(unknown)}; known: {', '.join(known)}.")
    return tuple(dict.fromkeys(names))


def parse_settings(raw: Mapping[str, Any], known_benchmarks: tuple[str, ...],
                   generates: Mapping[str, bool] | None = None) -> RunSettings:
    """Validate raw option values; ``raw`` holds strings/None keyed by setting name.

    ``generates``: benchmark -> whether it is scored on generated answers (for ``--samples``).
    """
    demo = bool(raw.get("demo"))
    model_a = raw.get("model_a")
    model_b = raw.get("model_b")
    if demo and (model_a or model_b) and not raw.get("models_from_ini"):
        raise QwencmpError("--demo brings its own two models; drop --model-a/--model-b or drop --demo.")
    data_dir = raw.get("data_dir")
    if demo and data_dir and not raw.get("data_dir_from_ini"):
        raise QwencmpError(
            f"--demo brings its own data, so --data-dir={data_dir} would not be read: drop --data-dir to run the "
            "demo, or drop --demo and name the models to run on that data (--model-a=DIR --model-b=DIR)."
        )
    if demo:
        data_dir = None  # an ini file's qwencmp_data_dir is for real runs; the demo reads the data it builds
    if data_dir:
        data_dir = Path(data_dir).expanduser().resolve()
        if not data_dir.is_dir():
            raise QwencmpError(
                f"--data-dir {str(data_dir)!r} does not exist; point it at a folder holding local dataset copies "
                "in their hub layout (for example DIR/cais/mmlu, DIR/Rowan/hellaswag)."
            )
    limit = raw.get("limit")
    expectations = raw.get("expectations")
    if expectations:
        expectations = Path(expectations).expanduser().resolve()
        if not expectations.is_file():
            raise QwencmpError(f"Expectations file {str(expectations)!r} does not exist; fix --expectations.")
    options = parse_model_options(
        raw,
        {side: _parse_adapter(raw.get(f"peft_{side}"), f"--peft-{side}") for side in ("a", "b")},
        dtype_option_given=raw.get("dtype") not in (None, ""),
        parse_dtype=_parse_dtype,
    )
    generation = GenerationSettings(
        temperature=_as_float(raw.get("temperature", DEFAULT_TEMPERATURE), "--temperature", 0.0, 5.0),
        top_p=_as_top_p(raw.get("top_p", DEFAULT_TOP_P)),
    )
    samples = _parse_samples(list(raw.get("samples") or []), known_benchmarks, generation, generates)
    return RunSettings(
        model_a=None if demo or not model_a else ModelRef.parse(str(model_a), "--model-a", raw.get("revision_a")),
        model_b=None if demo or not model_b else ModelRef.parse(str(model_b), "--model-b", raw.get("revision_b")),
        benchmarks=_parse_benchmarks(raw.get("benchmarks"), known_benchmarks),
        data_dir=data_dir or None,
        limit=None if limit in (None, "") else _as_int(limit, "--limit", 1),
        num_fewshot=_parse_fewshot(list(raw.get("num_fewshot") or []), known_benchmarks),
        dtype=_parse_dtype(str(raw.get("dtype") or "float16")),
        backend=_parse_backend(str(raw.get("backend") or "auto")),
        device=_parse_device(str(raw.get("device") or "auto")),
        batch_size=_parse_batch_size(raw.get("batch_size") or "auto"),
        tensor_parallel_a=_parse_tensor_parallel(raw, "a"),
        tensor_parallel_b=_parse_tensor_parallel(raw, "b"),
        generation=generation,
        seed=_as_int(raw.get("seed", DEFAULT_SEED), "--seed", 0),
        cache_dir=Path(raw.get("cache_dir") or ".qwencmp").expanduser().resolve(),
        read_cache=not raw.get("no_cache"),
        expectations=expectations or None,
        demo=demo,
        lock_timeout=_as_float(raw.get("lock_timeout") or DEFAULT_LOCK_TIMEOUT, "--lock-timeout", 1.0, 1e7),
        model_options_a=options["a"],
        model_options_b=options["b"],
        samples=samples,
        sequential=_as_bool(raw.get("sequential"), "--sequential (ini qwencmp_sequential)"),
        sequential_looks=parse_looks(raw.get("sequential_looks")),
    )


def _as_bool(value: Any, option: str) -> bool:
    if value in (None, ""):
        return False
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise QwencmpError(f"{option} must be true or false, got {value!r}.")


def parse_looks(value: Any) -> tuple[float, ...]:
    """``--sequential-looks``: fractions of each task's documents (``0.125,0.25,0.5,1`` or ``1/8,1/4,1/2,1``)."""
    if value in (None, ""):
        return DEFAULT_LOOKS
    looks = []
    for part in str(value).replace(" ", "").split(","):
        top, slash, bottom = part.partition("/")
        try:
            looks.append(float(top) / float(bottom) if slash else float(top))
        except (ValueError, ZeroDivisionError):
            looks = None
            break
    if not looks or any(not 0 < t <= 1 for t in looks) or any(b <= a for a, b in zip(looks, looks[1:])) or looks[-1] != 1:
        raise QwencmpError(
            f"--sequential-looks {value!r} must be fractions of each task's documents, strictly increasing and ending "
            "at 1 (all documents), comma-separated: for example 0.125,0.25,0.5,1 (the default) or 1/4,1/2,1."
        )
    return tuple(looks)


def _parse_adapter(value: Any, option: str) -> ModelRef | None:
    """A PEFT adapter folder (adapter_config.json and weights) or hub id; checked before anything loads."""
    if value in (None, ""):
        return None
    ref = ModelRef.parse(str(value), option)
    if ref.is_local:
        if not (ref.path / "adapter_config.json").is_file():
            raise QwencmpError(
                f"{option} {str(value)!r} holds no adapter_config.json; point it at a folder written by a PEFT "
                "adapter's save_pretrained (adapter_config.json and adapter_model.safetensors)."
            )
        if not any(ref.path.glob("adapter_model.*")):
            raise QwencmpError(f"{option} {str(value)!r} holds no adapter weights (adapter_model.safetensors or .bin).")
    if find_spec("peft") is None:
        raise QwencmpError(f"{option} loads a PEFT adapter, but the peft library is not installed; pip install peft.")
    return ref


def _parse_tensor_parallel(raw: Mapping[str, Any], side: str) -> int:
    """``--tp-a``/``--tp-b`` for one side, else ``--tp`` for both, else 1."""
    for key, option in ((f"tp_{side}", f"--tp-{side}"), ("tp", "--tp")):
        value = raw.get(key)
        if value not in (None, ""):
            return _as_int(value, option, 1)
    return 1


def _parse_backend(value: str) -> str:
    backend = value.strip().lower()
    if backend not in BACKENDS:
        raise QwencmpError(f"--backend {value!r} is not one of {', '.join(BACKENDS)}.")
    return backend


def _as_top_p(value: Any) -> float:
    top_p = _as_float(value, "--top-p", 0.0, 1.0)
    if top_p == 0.0:
        raise QwencmpError("--top-p must be between 0 (exclusive) and 1, got 0.0.")
    return top_p
