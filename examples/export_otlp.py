"""Send a traced chain's spans to an OTLP collector (Phoenix, Jaeger, an OpenTelemetry
Collector...), configured the standard way: OTEL_EXPORTER_OTLP_ENDPOINT (default
http://localhost:4318), OTEL_SERVICE_NAME, OTEL_EXPORTER_OTLP_HEADERS.

    OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4318 .venv/bin/python examples/export_otlp.py

Needs the `otlp` extra (`pip install 'lcel-trace[otlp]'`; the dev install has it).
"""

from __future__ import annotations

import os
import sys

from langchain_core.language_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from lcel_trace import capture, trace
from lcel_trace.exporters import OtelExporter


class CheckedExporter(SpanExporter):
    """Delegates to the OTLP exporter and remembers whether any batch was refused."""

    def __init__(self, inner: SpanExporter) -> None:
        self.inner = inner
        self.failed = 0

    def export(self, spans):  # type: ignore[no-untyped-def]
        result = self.inner.export(spans)
        if result is not SpanExportResult.SUCCESS:
            self.failed += len(spans)
        return result

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.inner.force_flush(timeout_millis)


def main() -> int:
    endpoint = os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "http://localhost:4318")
    provider = TracerProvider(
        resource=Resource.create({"openinference.project.name": "lcel-trace"})
    )
    # The OTLP exporter reads OTEL_EXPORTER_OTLP_* itself; the traces path is appended here.
    otlp = CheckedExporter(OTLPSpanExporter(endpoint=endpoint.rstrip("/") + "/v1/traces"))
    provider.add_span_processor(BatchSpanProcessor(otlp, export_timeout_millis=15_000))
    model = GenericFakeChatModel(messages=iter([AIMessage(content="Parrots talk back .")]))
    chain = ChatPromptTemplate.from_template("Tell me about {topic}") | model | StrOutputParser()
    exporter = OtelExporter(provider, conventions=("gen_ai", "openinference"))
    with capture() as cap:
        for chunk in trace(chain, exporters=[exporter], name="joke").stream({"topic": "parrots"}):
            print(chunk, end="", flush=True)
    print()
    # lcel-trace hands its spans to the provider; the provider's flush sends them
    delivered = exporter.force_flush(10) and provider.force_flush(20_000) and not otlp.failed
    provider.shutdown()
    print(f"trace {cap.traces[0].trace_id} sent to {endpoint}: {'ok' if delivered else 'FAILED'}")
    return 0 if delivered else 1


if __name__ == "__main__":
    sys.exit(main())
