"""The evaluation cache: keys, atomic writes, corruption, concurrency."""

import json
import multiprocessing
import time

from pytest_qwencmp.evaluation.cache import EvaluationCache, cache_key


def test_key_is_order_independent_and_sensitive_to_every_part():
    base = {"model": "m", "num_fewshot": 2, "limit": None, "generation": {"temperature": 0.1, "top_p": 0.95}}
    assert cache_key(base) == cache_key(dict(reversed(list(base.items()))))
    for change in ({"num_fewshot": 3}, {"limit": 10}, {"model": "n"}, {"generation": {"temperature": 0.2, "top_p": 0.95}}):
        assert cache_key({**base, **change}) != cache_key(base)


def test_round_trip_and_disabled_read(tmp_path):
    cache = EvaluationCache(tmp_path)
    key = cache_key({"x": 1})
    assert cache.load(key) is None
    cache.store(key, {"score": 0.5, "docs": [1.0, 0.0]})
    assert cache.load(key) == {"score": 0.5, "docs": [1.0, 0.0]}
    assert EvaluationCache(tmp_path, read_enabled=False).load(key) is None
    assert not list(cache.path_for(key).parent.glob("*.tmp"))


def test_a_cache_folder_created_here_is_marked_for_backup_tools_and_git(tmp_path):
    cache = EvaluationCache(tmp_path / "new" / ".qwencmp")
    cache.store(cache_key({"x": 3}), {"score": 0.5})
    tag = (cache.root / "CACHEDIR.TAG").read_text()
    assert tag.startswith("Signature: 8a477f597d28d172789f06886806bc55")
    assert (cache.root / ".gitignore").read_text().splitlines()[-1] == "*"
    existing = tmp_path / "existing"
    existing.mkdir()
    EvaluationCache(existing).store(cache_key({"x": 3}), {"score": 0.5})
    assert not (existing / "CACHEDIR.TAG").exists() and not (existing / ".gitignore").exists()  # not ours: left as it is


def test_corrupt_and_truncated_entries_are_misses(tmp_path):
    cache = EvaluationCache(tmp_path)
    key = cache_key({"x": 2})
    path = cache.store(key, {"score": 0.5})
    text = path.read_text()
    path.write_text(text[: len(text) // 2])  # truncated
    assert cache.load(key) is None
    envelope = json.loads(text)
    envelope["payload"] = envelope["payload"].replace("0.5", "0.9")  # tampered: checksum mismatch
    path.write_text(json.dumps(envelope))
    assert cache.load(key) is None
    cache.store(key, {"score": 0.7})
    assert cache.load(key) == {"score": 0.7}


def _compute_once(root, key, log):
    cache = EvaluationCache(root)
    with cache.locked(key):
        if cache.load(key) is None:
            with open(log, "a") as handle:
                handle.write("computed\n")
            time.sleep(0.3)
            cache.store(key, {"value": 42})
    return cache.load(key)


def test_two_processes_compute_once(tmp_path):
    key = cache_key({"x": 3})
    log = tmp_path / "log"
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_compute_once, args=(tmp_path, key, log)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
    assert [p.exitcode for p in procs] == [0, 0]
    assert log.read_text().count("computed") == 1
    assert EvaluationCache(tmp_path).load(key) == {"value": 42}
