"""pytest-qwencmp: compare two language models on the real lm-evaluation-harness benchmarks, as pytest tests.

A regular package (not a namespace package): pytest marks a plugin's top-level
packages for assertion rewriting from the distribution's file list, and without
this file it would take each module here (``__main__``, ``plugin`` …) for a
top-level module of its own.

The package is grouped by job: see README.md, "Layout", for the map of its rooms.
"""
