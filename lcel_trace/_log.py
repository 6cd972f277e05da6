"""The library's own logs: structlog events routed to the standard `logging` module.

A library must not configure structlog for its user nor print to stdout, so the
logger is wrapped explicitly around `logging.getLogger("lcel_trace")`. Failures are
reported once per kind, then as counts, so a dead collector cannot flood the log.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import Counter
from typing import Any

import structlog

from lcel_trace.scrub import scrub_text

_stdlib_logger = logging.getLogger("lcel_trace")


def _scrub_secrets(_logger: Any, _method: str, event_dict: Any) -> Any:
    """Error texts can quote credentials (a collector echoing a key): scrub every field."""
    return {k: scrub_text(v) if isinstance(v, str) else v for k, v in event_dict.items()}


log: Any = structlog.wrap_logger(
    _stdlib_logger,
    processors=[
        structlog.processors.format_exc_info,
        _scrub_secrets,
        structlog.stdlib.render_to_log_kwargs,
    ],
    wrapper_class=structlog.stdlib.BoundLogger,
)

_counts: Counter[str] = Counter()
_lock = threading.Lock()
_internal_errors = 0


def report_internal_error(where: str, exc: BaseException) -> None:
    """A bug in lcel-trace itself, caught so the caller's chain goes on: logged with its
    traceback the first time per place, then counted (`internal_error_count`)."""
    global _internal_errors
    key = f"internal_error:{where}"
    with _lock:
        _internal_errors += 1
        _counts[key] += 1
        count = _counts[key]
    if count == 1 or _is_power_of_ten(count):
        log.error("internal_error", where=where, occurrences=count, exc_info=exc)


def internal_error_count() -> int:
    """How many internal errors lcel-trace has caught and swallowed in this process."""
    with _lock:
        return _internal_errors


def _reset_lock_after_fork() -> None:
    global _lock
    _lock = threading.Lock()


os.register_at_fork(after_in_child=_reset_lock_after_fork)


def warn_once(kind: str, *, source: str = "", **fields: Any) -> None:
    """Log the first failure of a kind (per source), then only at its 10th, 100th...

    `source` separates independent emitters, such as two exporters, so one noisy
    exporter cannot hide the first failure of another.
    """
    key = f"{kind}:{source}"
    with _lock:
        _counts[key] += 1
        count = _counts[key]
    if count == 1 or _is_power_of_ten(count):
        if source:
            fields["source"] = source
        log.warning(kind, occurrences=count, **fields)


def occurrences(kind: str, source: str = "") -> int:
    """How many times a kind of failure has been seen in this process."""
    with _lock:
        return _counts[f"{kind}:{source}"]


def _is_power_of_ten(n: int) -> bool:
    while n >= 10 and n % 10 == 0:
        n //= 10
    return n == 1
