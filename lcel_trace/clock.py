"""The one clock every record is stamped with: wall-clock nanoseconds, never going back.

LangChain's v2 events carry no time of their own, so lcel-trace stamps each event
where it happens. A monotonic counter offset once to the wall clock keeps spans
ordered even if the system clock is adjusted mid-trace.
"""

from __future__ import annotations

import time

__all__ = ["EPOCH_OFFSET_NS", "now_ns"]

EPOCH_OFFSET_NS = time.time_ns() - time.perf_counter_ns()
_perf_counter_ns = time.perf_counter_ns


def now_ns() -> int:
    """Nanoseconds since the Unix epoch, from a monotonic source."""
    return EPOCH_OFFSET_NS + _perf_counter_ns()
