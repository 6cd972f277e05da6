"""The settings `LCEL_TRACE_*` environment variables give global tracing, read in one place
for `import lcel_trace.auto` and `opentelemetry-instrument`'s instrumentor.

A bad value is logged with the variable and the value, and ignored: reading the
environment never breaks the application.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping
from typing import Any

from lcel_trace._log import log
from lcel_trace.export import TraceExporter

__all__ = ["backends", "flag", "jsonl_from_env", "options_from_env"]

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def jsonl_from_env(environ: Mapping[str, str] = os.environ) -> list[TraceExporter]:
    """The JSONL exporter `LCEL_TRACE_JSONL` asks for, if any and if it can be opened; a
    path that cannot be written is logged (variable, value, reason) and left out."""
    path = environ.get("LCEL_TRACE_JSONL", "").strip()
    if not path:
        return []
    try:
        exporter: TraceExporter = backends().JsonlExporter(path)
    except (OSError, ValueError) as exc:
        _bad_setting("LCEL_TRACE_JSONL", path, "no JSONL file", reason=str(exc))
        return []
    return [exporter]


def options_from_env(environ: Mapping[str, str] = os.environ) -> dict[str, Any]:
    """`instrument()`'s options that `LCEL_TRACE_SAMPLE` and `LCEL_TRACE_CAPTURE_CONTENT`
    set (bad values logged and ignored)."""
    return {
        "sample": _sample(environ),
        "capture_content": flag(environ, "LCEL_TRACE_CAPTURE_CONTENT", default=True),
    }


def backends() -> Any:
    """`lcel_trace.exporters`, imported when first needed."""
    # the exporters/ folder, installed as lcel_trace.exporters
    return importlib.import_module("lcel_trace.exporters")


def flag(environ: Mapping[str, str], name: str, *, default: bool) -> bool:
    value = environ.get(name, "").strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    if value:
        _bad_setting(name, value, default)
    return default


def _sample(environ: Mapping[str, str]) -> float:
    text = environ.get("LCEL_TRACE_SAMPLE", "").strip()
    if not text:
        return 1.0
    try:
        rate = float(text)
    except ValueError:
        rate = -1.0
    if not 0.0 <= rate <= 1.0:
        _bad_setting("LCEL_TRACE_SAMPLE", text, 1.0, reason="not a number from 0 to 1")
        return 1.0
    return rate


def _bad_setting(name: str, value: str, using: Any, *, reason: str | None = None) -> None:
    """One warning that names the variable, its value and what is used instead, in the
    message itself (read without a structured log handler) and as fields."""
    why = f" ({reason})" if reason else ""
    log.warning(
        f"lcel-trace: ignoring {name}={value!r}{why}; using {using}",
        kind="auto_bad_setting",
        setting=name,
        value=value,
        using=using,
    )
