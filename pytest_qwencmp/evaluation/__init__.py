"""evaluation — one (model, benchmark) evaluation, at most once, through the on-disk cache.

Owns: the per-document score type and an evaluation's result (``scores``:
ItemScore — the one per-document score class — and BenchmarkEvaluation), the
evaluator that runs or reuses evaluations and keeps the session's counters
(``evaluator``), the content-keyed cache with its locks (``cache``; a cache
folder it creates carries CACHEDIR.TAG and a ``.gitignore``) and the
numerical-health checks of model outputs (``health``). Import from the
modules; nothing is re-exported here.
"""
