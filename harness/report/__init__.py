"""Results history and the nightly regression report.

- :mod:`harness.report.history`         the SQLite results history (safe with concurrent writers)
- :mod:`harness.report.pytest_history`  the pytest plugin that records each test's outcome
- :mod:`harness.report.analysis`        regressions, fixes, flakes, matrix and trends
- :mod:`harness.report.render`          the self-contained HTML page (inline CSS + SVG)
- :mod:`harness.report.summary`         the Markdown summary for a CI job summary or chat
- :mod:`harness.report.cli`             ``python -m harness report``
- :mod:`harness.report.nightly`         ``python -m harness nightly``: the matrix runner
"""
