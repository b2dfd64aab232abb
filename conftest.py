"""Repository-wide pytest configuration.

The plugin itself is loaded through its pytest11 entry point (pyproject.toml);
here we only enable pytester for the plugin's own tests in tests/.
"""

pytest_plugins = ["pytester"]
