"""Repository-wide pytest configuration: deliberately empty of plugins.

The plugin itself is loaded through its pytest11 entry point (pyproject.toml).
pytester, which only the plugin's own tests need, is enabled in
``tests/conftest.py``, so ``pytest evals/ --help`` shows a user's suite without
pytester's options.
"""
