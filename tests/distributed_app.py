"""The two processes of tests/test_distributed_trace.py, one distributed trace between them.

Both export their spans over OTLP/HTTP to the same receiver and propagate context with
OpenTelemetry's own instrumentations and W3C `traceparent` headers; lcel-trace adds
nothing on the wire.

`serve MODEL_URL OTLP_ENDPOINT`: a LangServe app serving
`trace(prompt | ChatOpenAI | StrOutputParser(), exporters=[OtelExporter()])` at `/chain`,
FastAPI instrumented (ASGI server spans), httpx and httpx2 instrumented (the `openai` SDK
under ChatOpenAI is built on httpx2). It prints its port on the first line of stdout;
`/healthz` answers once it serves and `/sent` lists the spans this process has exported
(neither is traced). Each span is sent as it ends, so SIGTERM stops it losing none.

`call CHAIN_URL OTLP_ENDPOINT`: opens a span `client-request`, calls the served chain with
a `RemoteRunnable` (httpx instrumented), flushes, and prints one JSON line: the output,
the client span's ids and the spans this process has exported.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import threading
from typing import Any

from opentelemetry import trace as otel_trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor


class SentSpans(SpanProcessor):
    """Lists the spans that went out: added after the OTLP processor, whose `on_end`
    has exported a span by the time this one sees it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._spans: list[dict[str, Any]] = []

    def on_end(self, span: ReadableSpan) -> None:
        context = span.get_span_context()
        assert context is not None
        with self._lock:
            self._spans.append(
                {
                    "name": span.name,
                    "trace_id": format(context.trace_id, "032x"),
                    "span_id": format(context.span_id, "016x"),
                    "parent_span_id": format(span.parent.span_id, "016x") if span.parent else "",
                    "kind": span.kind.name,
                    "run_type": (span.attributes or {}).get("lcel.run_type"),
                }
            )

    def spans(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._spans)


def tracer_provider(service: str, endpoint: str) -> tuple[TracerProvider, SentSpans]:
    """A global SDK provider sending each span as it ends to `endpoint`."""
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    sent = SentSpans()
    provider.add_span_processor(sent)
    otel_trace.set_tracer_provider(provider)
    return provider, sent


def serve(model_url: str, endpoint: str) -> None:
    import uvicorn
    from fastapi import FastAPI
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
    from opentelemetry.instrumentation.httpx import (
        HTTPX2ClientInstrumentor,
        HTTPXClientInstrumentor,
    )

    _, sent = tracer_provider("lcel-trace-server", endpoint)
    # before ChatOpenAI exists: it makes its HTTP clients when constructed
    HTTPXClientInstrumentor().instrument()
    HTTPX2ClientInstrumentor().instrument()

    from langchain_core.output_parsers import StrOutputParser
    from langchain_core.prompts import ChatPromptTemplate
    from langchain_openai import ChatOpenAI
    from langserve import add_routes

    from lcel_trace import trace
    from lcel_trace.exporters import OtelExporter

    model = ChatOpenAI(base_url=model_url, api_key="test", model="fake-gpt")
    chain = ChatPromptTemplate.from_template("Tell me about {topic}") | model | StrOutputParser()
    app = FastAPI()
    add_routes(app, trace(chain, exporters=[OtelExporter()]), path="/chain")

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/sent")
    def sent_spans() -> list[dict[str, Any]]:
        return sent.spans()

    FastAPIInstrumentor.instrument_app(
        app, excluded_urls="/healthz,/sent", exclude_spans=["receive", "send"]
    )

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    print(sock.getsockname()[1], flush=True)
    server = uvicorn.Server(
        uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False)
    )
    server.run(sockets=[sock])


def call(chain_url: str, endpoint: str) -> None:
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

    provider, sent = tracer_provider("lcel-trace-client", endpoint)
    HTTPXClientInstrumentor().instrument()

    from langserve import RemoteRunnable

    remote = RemoteRunnable(chain_url)
    with otel_trace.get_tracer("distributed-client").start_as_current_span(
        "client-request"
    ) as span:
        output = remote.invoke({"topic": "parrots"})
    provider.shutdown()
    context = span.get_span_context()
    result = {
        "output": output,
        "trace_id": format(context.trace_id, "032x"),
        "span_id": format(context.span_id, "016x"),
        "sent": sent.spans(),
    }
    print(json.dumps(result), flush=True)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("role", choices=["serve", "call"])
    parser.add_argument("url", help="serve: the OpenAI-compatible base URL; call: the chain's")
    parser.add_argument("endpoint", help="the OTLP/HTTP traces endpoint (…/v1/traces)")
    args = parser.parse_args(argv)
    (serve if args.role == "serve" else call)(args.url, args.endpoint)


if __name__ == "__main__":
    main(sys.argv[1:])
