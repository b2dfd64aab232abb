"""lmeval — the only door to lm-evaluation-harness and its datasets.

Owns: which lm-eval task folders and local dataset copies a benchmark reads
(``tasks``: TaskSource, override YAMLs, task-definition fingerprints), reading
local JSON Lines fast (``local_data``), one ``simple_evaluate`` request on a
loaded model (``harness``), MBPP's code_eval with model-written code run in
the sandbox (``code_eval``), checking local data before a run (``data_checks``),
saving datasets and models for air-gapped runners (``mirror``) and counting
how many documents each task has (``sizes``). lm-eval itself is imported only
inside functions, when an evaluation really runs. Never imports ``models``.
Import from the modules; nothing is re-exported here.
"""
