"""pytest plugin: write each test's outcome and first failure line to a JSON file.

Loaded in both runs (`-p outcomes`, file named by `LCEL_SUITE_OUTCOMES`), so `run.py`
can compare the plain and traced runs test id by test id.
"""

from __future__ import annotations

import json
import os
from typing import Any

import pytest

_outcomes: dict[str, dict[str, str]] = {}


def _first_line(report: pytest.TestReport) -> str:
    crash = getattr(report.longrepr, "reprcrash", None)
    text = getattr(crash, "message", None) or str(report.longrepr or "")
    if isinstance(report.longrepr, tuple):  # a skip: (path, line, reason)
        text = str(report.longrepr[2])
    return next((line.strip() for line in text.splitlines() if line.strip()), "")[:300]


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    entry = _outcomes.setdefault(report.nodeid, {"outcome": "passed", "message": ""})
    if hasattr(report, "wasxfail"):
        entry["outcome"] = "xfailed" if report.skipped else "xpassed"
    elif report.failed:
        if entry["outcome"] not in ("failed", "error"):
            entry["outcome"] = "failed" if report.when == "call" else "error"
            entry["message"] = f"[{report.when}] {_first_line(report)}"
    elif report.skipped:
        entry["outcome"] = "skipped"
        entry["message"] = _first_line(report)


def pytest_collectreport(report: pytest.CollectReport) -> None:
    if report.failed:
        _outcomes[report.nodeid or "<collection>"] = {
            "outcome": "error",
            "message": f"[collect] {_first_line(report)}",  # type: ignore[arg-type]
        }


def pytest_sessionfinish(session: Any, exitstatus: int) -> None:
    path = os.environ.get("LCEL_SUITE_OUTCOMES")
    if path:
        with open(path, "w", encoding="utf-8") as f:
            json.dump({"exitstatus": int(exitstatus), "tests": _outcomes}, f, indent=1)
