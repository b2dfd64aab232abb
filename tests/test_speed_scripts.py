"""The GPU throughput script still runs against the current code (it can only be timed on a lent GPU).

Device time is scarce (15 minutes per task, when a task gets a GPU at all), so a script broken
by a refactor must be caught here, on CPU, with its ``--tiny`` workload. Nothing is timed.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow  # the whole benchmark script, plugin and bare lm-eval, on CPU
def test_gpu_throughput_script_runs_end_to_end_on_cpu(tmp_path):
    result = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "gpu_throughput.py"), "--tiny"],
        capture_output=True, text=True, timeout=600, cwd=tmp_path, env={**os.environ, "OUT": str(tmp_path)},
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    assert "deepspeed / transformers tokens/s:" in out
    for benchmark in ("mmlu", "hellaswag", "mbpp"):
        assert re.search(rf"{benchmark}\s+bare\s+[\d.]+\s+plugin\s+[\d.]+\s+ratio [\d.]+", out), benchmark
    sections = json.loads((tmp_path / "gpu_results.json").read_text())["sections"]
    assert sections and all(section["ok"] for section in sections.values()), sections
