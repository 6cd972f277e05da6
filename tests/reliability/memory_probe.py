"""Stream N chunks through trace() with JSONL and OTel exporters; print peak RSS in KiB.

Run as a script by test_long_streams.py, one process per N, so peaks do not mix.
"""

from __future__ import annotations

import resource
import sys
from collections.abc import Iterator

from langchain_core.runnables import RunnableGenerator
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from lcel_trace import trace
from lcel_trace.exporters import JsonlExporter, OtelExporter


def main(chunks: int, path: str, record_chunks: str) -> None:
    # Integer chunks: LangChain itself sums every run's chunks into its final output,
    # and string concatenation would make the plain stream quadratic on its own.
    def produce(_: Iterator[object]) -> Iterator[int]:
        yield from range(chunks)

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(InMemorySpanExporter()))
    with (
        JsonlExporter(path, record_chunks=record_chunks) as exporter,  # type: ignore[arg-type]
        OtelExporter(provider) as otel,
    ):
        traced = trace(RunnableGenerator(produce), exporters=[exporter, otel])
        seen = sum(1 for _ in traced.stream(None))
    assert seen == chunks, (seen, chunks)
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2], sys.argv[3])
