"""In CI a skipped test fails, naming why it would have skipped; locally it still skips.

CI is on when the environment variable ``CI`` is set to anything but empty, ``0``, ``false`` or
``no`` (``.ci/run`` exports ``CI=true``, as most CI services do). A slow test whose asset cannot be
fetched then fails instead of hiding behind a green run. An expected failure (xfail) is not a skip
and is left alone. conftest.py imports both hooks; ``pytest -p ci_skips`` loads them on their own.
"""

from __future__ import annotations

import os

import pytest

OFF = ("", "0", "false", "no")


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in OFF


def skip_reason(longrepr: object) -> str:
    """The reason a skip report carries (its longrepr is ``(path, line, "Skipped: reason")``)."""
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


def _fail(report: pytest.CollectReport | pytest.TestReport) -> None:
    reason = skip_reason(report.longrepr)
    report.longrepr = f"in CI (CI={os.environ['CI']}) no test may skip; this one would skip: {reason}"
    report.outcome = "failed"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> pytest.TestReport:
    """A test that skips in setup (a skip mark, a fixture) or in its body."""
    report = yield
    if report.skipped and not hasattr(report, "wasxfail") and in_ci():
        _fail(report)
    return report


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> pytest.CollectReport:
    """A module that skips as a whole (``pytest.skip(allow_module_level=True)``, ``importorskip``)."""
    report = yield
    if report.skipped and in_ci():
        _fail(report)
    return report
