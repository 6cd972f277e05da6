"""Log correlation: tie your own log lines to the trace and span they were written in.

`add_trace_context` is a structlog processor; `TraceContextFilter` does the same for the
standard `logging` module. Both read the run LangChain is executing right now from its
own context (the config it hands to every step, inherited by tasks and worker threads),
so they cost nothing on the traced call's path and need no context of their own.
"""

from __future__ import annotations

import logging
from collections.abc import MutableMapping
from typing import Any

from langchain_core.callbacks import BaseCallbackManager
from langchain_core.runnables.config import var_child_runnable_config

from lcel_trace.recorder import recorder_of


def current_trace_context() -> dict[str, str]:
    """`trace_id` and `span_id` of the traced run executing in this context, else `{}`.

    Adds `otel_trace_id`/`otel_span_id` when an OpenTelemetry span is active too.
    """
    found: dict[str, str] = {}
    config = var_child_runnable_config.get()
    callbacks = config.get("callbacks") if config else None
    if isinstance(callbacks, BaseCallbackManager):
        for handler in callbacks.handlers:
            recorder = recorder_of(handler)
            if recorder is not None:
                found["trace_id"] = recorder.trace_id
                if callbacks.parent_run_id is not None:
                    found["span_id"] = str(callbacks.parent_run_id)
                break
    try:
        from opentelemetry import trace as otel_trace

        span_context = otel_trace.get_current_span().get_span_context()
    except Exception:  # never let correlation break a log call
        return found
    if span_context.is_valid:
        found["otel_trace_id"] = format(span_context.trace_id, "032x")
        found["otel_span_id"] = format(span_context.span_id, "016x")
    return found


def add_trace_context(
    logger: Any, method_name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: add `trace_id`/`span_id` (and OTel ids) to the event, without
    overwriting fields the caller set itself."""
    for key, value in current_trace_context().items():
        event_dict.setdefault(key, value)
    return event_dict


class TraceContextFilter(logging.Filter):
    """stdlib logging filter: sets `record.trace_id`/`record.span_id` ("-" outside a
    traced run), so a format string can show them: `%(trace_id)s %(span_id)s`."""

    def filter(self, record: logging.LogRecord) -> bool:
        context = current_trace_context()
        record.trace_id = context.get("trace_id", "-")
        record.span_id = context.get("span_id", "-")
        return True
