"""`import lcel_trace.auto`: turn global tracing on from the environment.

- `LCEL_TRACE_JSONL=path`: every outermost runnable call is appended to that JSONL file.
- `LCEL_TRACE_OTEL=1`: ... and exported through the global OpenTelemetry tracer
  provider (skipped when `OTEL_SDK_DISABLED=true`).
- `LCEL_TRACE_SAMPLE=0.25`, `LCEL_TRACE_CAPTURE_CONTENT=0`: `instrument()`'s options.
- `LCEL_TRACE_DISABLED=1`: no tracing at all, `trace()` included.

Nothing set, nothing happens. A bad value is logged and ignored: importing this module
never breaks the application.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping
from typing import Any

from lcel_trace._log import log
from lcel_trace.export import SpanExporter
from lcel_trace.instrumentation import instrument
from lcel_trace.wrapper import tracing_disabled

__all__ = ["configure_from_env"]

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def configure_from_env(environ: Mapping[str, str] = os.environ) -> list[SpanExporter]:
    """Instrument the process as the environment asks; returns the exporters started."""
    if tracing_disabled():
        return []
    exporters: list[SpanExporter] = []
    # the exporters/ folder, installed as lcel_trace.exporters
    backends: Any = importlib.import_module("lcel_trace.exporters")
    path = environ.get("LCEL_TRACE_JSONL", "").strip()
    if path:
        exporters.append(backends.JsonlExporter(path))
    if _flag(environ, "LCEL_TRACE_OTEL", default=False):
        if _flag(environ, "OTEL_SDK_DISABLED", default=False):
            log.info("auto_otel_skipped", reason="OTEL_SDK_DISABLED is set")
        else:
            exporters.append(backends.OtelExporter())
    if not exporters:
        return []
    instrument(
        exporters=exporters,
        sample=_sample(environ),
        capture_content=_flag(environ, "LCEL_TRACE_CAPTURE_CONTENT", default=True),
    )
    return exporters


def _flag(environ: Mapping[str, str], name: str, *, default: bool) -> bool:
    value = environ.get(name, "").strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    if value:
        log.warning("auto_bad_setting", setting=name, value=value, using=default)
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
        log.warning("auto_bad_setting", setting="LCEL_TRACE_SAMPLE", value=text, using=1.0)
        return 1.0
    return rate


configure_from_env()
