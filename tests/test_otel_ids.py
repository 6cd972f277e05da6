"""Exporters sharing one provider keep their spans' ids: the OpenTelemetry SDK hands every
`get_tracer("lcel-trace")` the same `Tracer`, so each `OtelExporter` on that provider
meets the same id generator, and each emits on a worker thread of its own."""

from __future__ import annotations

import sys
import threading
from typing import Any

from langchain_core.runnables import RunnableLambda
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from lcel_trace import trace
from lcel_trace.exporters import OtelExporter
from lcel_trace.otel_context import span_id_of


def _chain() -> Any:
    return RunnableLambda(lambda x: x + 1) | RunnableLambda(lambda x: x * 2)


def test_two_exporters_on_one_provider_give_every_span_its_runs_ids() -> None:
    provider = TracerProvider()
    memory = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    exporters = [OtelExporter(provider), OtelExporter(provider)]
    calls = 150

    def run(exporter: OtelExporter) -> None:
        traced = trace(_chain(), exporters=[exporter])
        for i in range(calls):
            traced.invoke(i)

    threads = [threading.Thread(target=run, args=(e,)) for e in exporters]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # threads take turns often: a shared "next id" would show
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for exporter in exporters:
            assert exporter.force_flush(30)
    finally:
        sys.setswitchinterval(interval)
    emitted = memory.get_finished_spans()
    assert len(emitted) == 2 * calls * 3
    assert len({otel.context.span_id for otel in emitted}) == len(emitted)
    for otel in emitted:
        run_id = otel.attributes["lcel.run_id"]
        assert otel.context.span_id == span_id_of(run_id), run_id
        assert format(otel.context.trace_id, "032x") == otel.attributes["lcel.trace_id"]
    provider.shutdown()


def test_exporters_made_again_and_again_on_one_provider_share_one_id_generator() -> None:
    provider = TracerProvider()
    first = OtelExporter(provider)
    for _ in range(20):
        OtelExporter(provider)
    generator = first._tracer.id_generator
    assert generator is OtelExporter(provider)._tracer.id_generator
    # wrapped once, around the provider's own generator: not a chain of wrappers
    assert generator.inner is provider.id_generator
    provider.shutdown()
