"""Optional dependencies of the data commands (export, sql, diff): a missing one is a
clear one-line error naming the extra, like any other bad input (exit 2)."""

from __future__ import annotations

import importlib
from types import ModuleType

ANALYSIS_HINT = "pip install 'lcel-trace[analysis]'"


def need(module: str, command: str) -> ModuleType:
    """Import `module` for `command`, or raise a `ValueError` that says what to install."""
    try:
        return importlib.import_module(module)
    except ImportError:
        top = module.split(".")[0]
        raise ValueError(f"lcel-trace {command} needs {top}: {ANALYSIS_HINT}") from None
