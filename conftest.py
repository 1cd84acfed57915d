# The harness's pytest plugin is registered through the `pytest11` entry point in
# pyproject.toml, so this file stays empty on purpose: fixtures live in
# harness/pytest_plugin.py, where installed users get them too.
