"""sandbox — running model-written code (MBPP) as hostile input.

Owns: the limits and the protections, and how they are described (``policy``),
the trusted program around a candidate and the verdict on its report
(``wrapper``), launching one program under rlimits with a wall-clock kill and
capped output (``launch``), and probing what this machine allows plus running
many programs (``executor``). Import from the modules; nothing is re-exported here.
"""
