"""config — what the user asked for, read and validated; nothing here runs anything.

Owns: the plugin's options and their ini keys (``options``), the validated run
settings (``settings``: RunSettings, parse_settings), each side's model setup
beyond its weights (``sides``: chat template, adapter, model arguments), the
benchmark registry (``benchmarks`` + ``benchmarks.toml``, and the published
dataset sizes in ``dataset_sizes.toml``) and the expectations file
(``expectations``: parsed into frozen dataclasses; how rules are decided is
``stats.rules``). Imports nothing of the package but ``errors`` and ``files``.
Import from the modules; nothing is re-exported here.
"""
