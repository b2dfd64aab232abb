"""demo — the embedded demo: two small Qwen2-architecture models and synthetic data, built once.

Owns: the build, its cache folder and manifest (``build``), synthetic data in
the exact MMLU / HellaSwag / MBPP hub schemas and their sizes (``data``), the
tokenizer and the two trained models (``training``) and derived variants for
tests (``variants``: chat template, adapter). torch and transformers are
imported only while building. Import from the modules; nothing is re-exported here.
"""
