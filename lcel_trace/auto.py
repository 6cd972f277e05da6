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

import os
from collections.abc import Mapping

from lcel_trace._log import log
from lcel_trace.env_settings import backends, flag, jsonl_from_env, options_from_env
from lcel_trace.export import TraceExporter
from lcel_trace.instrumentation import instrument
from lcel_trace.wrapper import tracing_disabled

__all__ = ["configure_from_env"]


def configure_from_env(environ: Mapping[str, str] = os.environ) -> list[TraceExporter]:
    """Instrument the process as the environment asks; returns the exporters started."""
    if tracing_disabled():
        return []
    exporters = jsonl_from_env(environ)
    if flag(environ, "LCEL_TRACE_OTEL", default=False):
        if flag(environ, "OTEL_SDK_DISABLED", default=False):
            log.info("auto_otel_skipped", reason="OTEL_SDK_DISABLED is set")
        else:
            exporters.append(backends().OtelExporter())
    if not exporters:
        return []
    instrument(exporters=exporters, **options_from_env(environ))
    return exporters


try:
    configure_from_env()
except Exception as exc:  # importing this module never breaks the application
    log.error("auto_failed", error=repr(exc))
