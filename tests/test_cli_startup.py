"""`lcel-trace --help` and `--version` start without importing LangChain."""

from __future__ import annotations

import subprocess
import sys

import pytest

PROBE = """
import runpy, sys
sys.argv = ["lcel-trace", {flag!r}]
try:
    runpy.run_module("lcel_trace", run_name="__main__")
except SystemExit as exit:
    code = exit.code
heavy = sorted(m for m in ("langchain_core", "rich", "opentelemetry") if m in sys.modules)
print("HEAVY", heavy, "EXIT", code, file=sys.stderr)
"""


@pytest.mark.parametrize("flag", ["--help", "--version"])
def test_help_and_version_do_not_import_langchain_core(flag: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROBE.format(flag=flag)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.stdout.startswith("usage: lcel-trace" if flag == "--help" else "lcel-trace ")
    assert "HEAVY [] EXIT 0" in done.stderr


def test_public_names_import_on_first_use() -> None:
    probe = (
        "import sys, lcel_trace\n"
        "assert 'langchain_core' not in sys.modules\n"
        "from lcel_trace.instrumentation import is_instrumented\n"
        "for name in [*lcel_trace.__all__, 'instrument', 'uninstrument']:\n"
        "    exec(f'from lcel_trace import {name}')\n"
        "    assert getattr(lcel_trace, name) is not None, name\n"
        "print(lcel_trace.capture.__module__, lcel_trace.instrument.__module__)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["lcel_trace._capture", "lcel_trace.instrumentation"]
