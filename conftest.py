"""Root conftest: the tests opt in to the package's pytest plugin (the ``lunar_server`` fixture).

pytest reads ``pytest_plugins`` only from the root conftest; installing the package loads no plugin.
"""

pytest_plugins = ["langchain_lunar.testing.pytest_plugin"]
