"""store — evaluations kept for later: ONE saved-evaluations format and ONE reader.

Owns: the format and its reader (``format``: SavedEvaluations, read_saved,
read_results, SavedFormatError — every problem worded once), baselines across
runs (``baselines``), splitting a run over N jobs (``shards``: ShardSpec,
split_benchmarks), reading and checking shards before a merge (``merge``),
moving one side's cached evaluations between machines (``exchange``), and the
one check of whether two runs' number-changing settings agree
(``compatibility``). Exports the reader, the public way to read a baseline,
a shard's results or an exported cache entry::

    from pytest_qwencmp.store import read_saved, read_results
"""

from .format import SavedEvaluations, SavedFormatError, read_results, read_saved

__all__ = ["SavedEvaluations", "SavedFormatError", "read_results", "read_saved"]
