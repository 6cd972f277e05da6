"""A custom exporter in a dozen lines: count spans per status, note each trace's end.

Every exporter receives frozen records on a background thread of its own: `export`
gets finished spans; a `BaseExporter` subclass may override the other hooks
(`on_trace_start`, `on_event`, `on_trace_end`, `on_idle`) and declare more in its
`capabilities`; the contract is `lcel_trace.export.TraceExporter`.
Run: `.venv/bin/python examples/custom_exporter.py`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from langchain_core.runnables import RunnableLambda

from lcel_trace import Span, TraceEnd, trace
from lcel_trace.exporters import BaseExporter


class StatusCounter(BaseExporter):
    """Counts finished spans by status; keeps one line per finished trace."""

    def __init__(self) -> None:
        super().__init__()
        self.statuses: Counter[str] = Counter()
        self.ended: list[str] = []

    def export(self, spans: Sequence[Span]) -> None:
        self.statuses.update(span.status for span in spans)

    def on_trace_end(self, end: TraceEnd) -> None:
        self.ended.append(f"trace {end.trace_id} {end.status}: {end.span_count} spans")


def main() -> None:
    counter = StatusCounter()
    double = trace(
        RunnableLambda(lambda x: x * 2) | RunnableLambda(lambda x: x + 1), exporters=[counter]
    )
    print(double.invoke(20))
    counter.force_flush(10)  # the exporter's thread has seen everything now
    print(*counter.ended, sep="\n")
    print(dict(counter.statuses))
    counter.shutdown()


if __name__ == "__main__":
    main()
