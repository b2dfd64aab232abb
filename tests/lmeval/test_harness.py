"""``lmeval.harness``: what an lm-eval call ran with, read back from the model object after the call."""

from __future__ import annotations

from pytest_qwencmp.lmeval.harness import _detected_batch_sizes, batch_size_that_ran


class AutoBatchLM:
    """lm-eval's HFLM as far as batch sizes go: ``batch_size`` "auto", and a detection that picks a size per call."""

    batch_size = "auto"

    def __init__(self, sizes):
        self._sizes = list(sizes)

    def _detect_batch_size(self, requests=None, pos=0):
        return self._sizes.pop(0)

    def loglikelihood(self, requests):  # what HFLM's request methods do with "auto": detect, then batch
        return self._detect_batch_size(requests)


def test_the_sizes_lm_evals_auto_detection_picked_are_recorded():
    lm = AutoBatchLM([64, 32])
    with _detected_batch_sizes(lm) as detected:
        lm.loglikelihood(["a"])
        lm.loglikelihood(["b"])
    assert detected == [64, 32]
    assert batch_size_that_ran(lm.batch_size, detected) == [32, 64]  # several: all of them, sorted
    assert batch_size_that_ran("auto", [48, 48]) == 48
    assert "_detect_batch_size" not in vars(lm)  # the class's method again after the call


def test_a_fixed_size_is_what_ran_and_nothing_detected_is_unknown():
    assert batch_size_that_ran(16, []) == 16
    assert batch_size_that_ran("auto", []) is None  # no request reached the detection

    class FixedLM:
        batch_size = 8

    with _detected_batch_sizes(FixedLM()) as detected:  # no detection method: nothing to record
        pass
    assert detected == []
