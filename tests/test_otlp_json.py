"""`OtlpJsonExporter` builds its spans from the same plan as `OtelExporter` (same names,
ids and parents) without a provider of its own, and writes each line whole even when
the operating system takes it a few bytes at a time."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from langchain_core.language_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import Runnable
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from lcel_trace import capture, trace
from lcel_trace.exporters import OtelExporter, OtlpJsonExporter
from lcel_trace.exporters.otel import _PendingTrace
from lcel_trace.span import TraceStart


def chain() -> Runnable[dict[str, str], str]:
    model = GenericFakeChatModel(messages=iter([AIMessage(content="a b c")] * 10))
    return ChatPromptTemplate.from_template("{q}") | model | StrOutputParser()


def test_otlp_json_spans_are_the_otel_exporters_spans(tmp_path: Path) -> None:
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    otel = OtelExporter(provider)
    path = tmp_path / "otlp.jsonl"
    with OtlpJsonExporter(path) as otlp:
        trace(chain(), exporters=[otel, otlp]).invoke({"q": "hi"})
        assert otel.force_flush(30)
    otel.shutdown()
    (line,) = path.read_text(encoding="utf-8").splitlines()
    written = json.loads(line)["resourceSpans"][0]["scopeSpans"][0]["spans"]
    sent = memory.get_finished_spans()
    assert sorted((s["name"], s["spanId"], s.get("parentSpanId")) for s in written) == sorted(
        (
            s.name,
            format(s.context.span_id, "016x"),
            format(s.parent.span_id, "016x") if s.parent else None,
        )
        for s in sent
    )
    assert {s["traceId"] for s in written} == {format(sent[0].context.trace_id, "032x")}


def test_a_line_is_written_whole_when_the_os_writes_a_few_bytes_at_a_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "otlp.jsonl"
    exporter = OtlpJsonExporter(path)
    with capture() as cap:
        trace(chain()).invoke({"q": "hi"})
    (recorded,) = cap.traces
    pending = _PendingTrace(
        start=TraceStart(recorded.trace_id, "t", recorded.start_ns, recorded.root_run_id or ""),
        spans=list(recorded.spans),
    )
    real_write = os.write
    calls = []

    def short_write(fd: int, data: bytes | memoryview) -> int:
        calls.append(len(data))
        return real_write(fd, bytes(data[:7]))

    monkeypatch.setattr(os, "write", short_write)
    exporter._emit(pending)
    monkeypatch.undo()
    exporter.shutdown()
    (line,) = path.read_text(encoding="utf-8").splitlines()
    assert len(calls) > 10  # it took many writes
    spans = json.loads(line)["resourceSpans"][0]["scopeSpans"][0]["spans"]
    assert len(spans) == 4
