"""Speed of the paired statistics (a benchmark script, not a test).

Run: .venv/bin/python benchmarks/bench_statistics.py
Goals: binary n=14,042 (full MMLU) < 50 ms; non-binary n=500 with 10k resamples (test and its
inverted interval) < 1 s; an adjusted interval of that test at another level < 10 ms; the MDE of
a 14,042-question item < 100 ms.
"""

import time

import numpy as np

from pytest_qwencmp.stats import power as power_module
from pytest_qwencmp.stats.power import Design, mde
from pytest_qwencmp.stats.multiplicity import adjust_family, adjust_p_values
from pytest_qwencmp.stats.paired import compare_paired, paired_test


def best_of(runs, fn):
    best = float("inf")
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - started)
    return best


def main():
    rng = np.random.default_rng(0)
    a = (rng.random(14_042) < 0.7).astype(float)
    b = np.where(rng.random(14_042) < 0.05, 1 - a, a)
    binary = best_of(5, lambda: compare_paired(a, b))
    x = rng.random(500)
    y = x + rng.normal(0.01, 0.1, 500)
    continuous = best_of(2, lambda: compare_paired(x, y, resamples=10_000))
    test = paired_test(x, y, resamples=10_000)
    adjusted = best_of(20, lambda: test.interval(0.05 / 57, reject=False))
    p = list(rng.random(57))
    holm = best_of(20, lambda: adjust_p_values(p, "holm"))
    levels = best_of(20, lambda: adjust_family(p, "holm", 0.025))
    def fresh_mde():
        for cached in (power_module.detectable, power_module._critical_counts, power_module._discordant_counts):
            cached.cache_clear()
        return mde(Design(14_042, discordance=0.25), 0.05)

    power = best_of(3, fresh_mde)
    print(f"binary n=14042: {binary * 1e3:.2f} ms (goal < 50 ms, ratio {binary / 0.05:.3f})")
    print(f"non-binary n=500, 10k resamples: {continuous * 1e3:.1f} ms (goal < 1000 ms, ratio {continuous / 1.0:.3f})")
    print(f"adjusted interval of that test at 5 %/57 two-sided: {adjusted * 1e3:.2f} ms (goal < 10 ms)")
    print(f"Holm over 57 p-values: {holm * 1e3:.3f} ms; with the 57 adjusted levels: {levels * 1e3:.3f} ms")
    print(f"MDE of a 14,042-question binary item (uncached): {power * 1e3:.1f} ms (goal < 100 ms)")


if __name__ == "__main__":
    main()
