# The harness's pytest plugin is registered through the `pytest11` entry point in
# pyproject.toml, so its fixtures live in harness/pytest_plugin.py, where installed users
# get them too. This file only enables pytester for the plugin's own tests.
pytest_plugins = ["pytester"]
