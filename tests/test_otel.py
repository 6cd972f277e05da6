"""OtelExporter: recorded spans as OpenTelemetry spans with GenAI attributes, checked in
memory and end to end through the standard OTLP exporter into a real receiver."""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import json_format
from langchain_core.language_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnableLambda
from opentelemetry import context as otel_context
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from lcel_trace import Span, capture, trace
from lcel_trace.exporters import OtelExporter, OtlpJsonExporter
from lcel_trace.exporters.otel_attributes import (
    AttributeOptions,
    span_attributes,
    span_kind,
    span_name,
)
from tests.otlp_receiver import otlp_receiver

USAGE = {"input_tokens": 7, "output_tokens": 5, "total_tokens": 12}


def model() -> GenericFakeChatModel:
    message = AIMessage(
        content="a b c",
        usage_metadata=USAGE,  # type: ignore[arg-type]
        response_metadata={"model_name": "fake-1", "finish_reason": "stop"},
    )
    return GenericFakeChatModel(messages=itertools.cycle([message]))


def chain() -> Any:
    return ChatPromptTemplate.from_template("{q}") | model() | StrOutputParser()


@pytest.fixture
def memory() -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    provider = TracerProvider()
    spans = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    yield provider, spans
    provider.shutdown()


def by_name(spans: tuple[ReadableSpan, ...]) -> dict[str, ReadableSpan]:
    return {s.name: s for s in spans}


def test_one_otel_span_per_span_with_tree_times_and_genai_attributes(
    memory: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    provider, memory_spans = memory
    exporter = OtelExporter(provider)
    with capture() as cap:
        trace(chain(), exporters=[exporter], name="greeting").invoke({"q": "hi"})
    assert exporter.force_flush(5)
    (recorded,) = cap.traces
    spans = by_name(memory_spans.get_finished_spans())
    # `chat {model}`: the request model when the provider names one, else the response's
    assert set(spans) == {
        "invoke_workflow greeting",
        "ChatPromptTemplate",
        "chat fake-1",
        "StrOutputParser",
    }
    root, chat = spans["invoke_workflow greeting"], spans["chat fake-1"]
    assert root.parent is None
    # no OTel span was active: the collector's trace id is lcel-trace's own
    assert format(root.context.trace_id, "032x") == recorded.trace_id
    assert root.attributes["lcel.trace_name"] == "greeting"
    assert root.attributes["lcel.run_name"] == "RunnableSequence"
    assert root.attributes["gen_ai.operation.name"] == "invoke_workflow"
    assert root.attributes["gen_ai.workflow.name"] == "greeting"
    assert "lcel.trace_name" not in chat.attributes
    for name in ("ChatPromptTemplate", "chat fake-1", "StrOutputParser"):
        assert spans[name].parent is not None
        assert spans[name].parent.span_id == root.context.span_id
        assert spans[name].context.trace_id == root.context.trace_id
    for span in recorded.spans:
        otel = next(s for s in spans.values() if s.attributes["lcel.run_id"] == span.span_id)
        assert (otel.start_time, otel.end_time) == (span.start_ns, span.end_ns)
        assert otel.attributes["lcel.trace_id"] == recorded.trace_id
    assert chat.kind == SpanKind.CLIENT
    assert root.kind == SpanKind.INTERNAL
    assert chat.attributes["gen_ai.operation.name"] == "chat"
    assert chat.attributes["gen_ai.provider.name"] == "genericfakechatmodel"
    assert chat.attributes["gen_ai.usage.input_tokens"] == 7
    assert chat.attributes["gen_ai.usage.output_tokens"] == 5
    assert chat.attributes["gen_ai.response.model"] == "fake-1"
    assert tuple(chat.attributes["gen_ai.response.finish_reasons"]) == ("stop",)
    assert chat.attributes["lcel.run_type"] == "chat_model"
    assert root.attributes["lcel.output"] == "a b c"


def test_streamed_model_span_has_time_to_first_chunk(
    memory: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    provider, memory_spans = memory
    exporter = OtelExporter(provider)
    list(trace(chain(), exporters=[exporter]).stream({"q": "hi"}))
    exporter.force_flush(5)
    chat = by_name(memory_spans.get_finished_spans())["chat"]  # no usage chunk: no model name
    assert chat.attributes["gen_ai.request.stream"] is True
    assert chat.attributes["gen_ai.response.time_to_first_chunk"] > 0
    assert chat.attributes["lcel.chunk_count"] == 5


def test_failure_is_error_status_with_exception_event_and_cancel_is_distinct(
    memory: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    provider, memory_spans = memory
    exporter = OtelExporter(provider)

    def boom(_: object) -> str:
        raise ValueError("bad input")

    with pytest.raises(ValueError, match="bad input"):
        trace(RunnableLambda(boom), exporters=[exporter]).invoke("x")
    stream = trace(chain(), exporters=[exporter]).stream({"q": "x"})
    next(stream)
    stream.close()  # type: ignore[attr-defined]
    exporter.force_flush(5)
    spans = memory_spans.get_finished_spans()
    failed = next(s for s in spans if s.name == "invoke_workflow boom")
    assert failed.status.status_code == StatusCode.ERROR
    assert failed.attributes["error.type"] == "ValueError"
    (event,) = [e for e in failed.events if e.name == "exception"]
    assert event.attributes["exception.message"] == "bad input"
    cancelled = next(s for s in spans if s.name == "invoke_workflow RunnableSequence")
    assert cancelled.attributes["lcel.status"] == "cancelled"
    assert cancelled.status.status_code == StatusCode.UNSET


async def test_root_nests_under_the_active_otel_span_from_tasks_and_threads(
    memory: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    provider, memory_spans = memory
    exporter = OtelExporter(provider)
    traced = trace(chain(), exporters=[exporter])
    tracer = provider.get_tracer("app")
    with tracer.start_as_current_span("request") as request:
        await traced.ainvoke({"q": "task"})
        await asyncio.create_task(traced.ainvoke({"q": "child task"}))
        ctx = otel_context.get_current()

        def in_thread() -> None:
            token = otel_context.attach(ctx)  # how a web framework hands a request over
            try:
                traced.invoke({"q": "thread"})
            finally:
                otel_context.detach(token)

        worker = threading.Thread(target=in_thread)
        worker.start()
        worker.join()
    exporter.force_flush(5)
    roots = [
        s for s in memory_spans.get_finished_spans() if s.name == "invoke_workflow RunnableSequence"
    ]
    assert len(roots) == 3
    for root in roots:
        assert root.context.trace_id == request.get_span_context().trace_id
        assert root.parent is not None
        assert root.parent.span_id == request.get_span_context().span_id
        assert root.attributes["lcel.trace_id"] == format(root.context.trace_id, "032x")


def test_content_is_left_out_or_truncated_as_configured(
    memory: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    provider, memory_spans = memory
    quiet = OtelExporter(provider, capture_content=False)
    short = OtelExporter(provider, max_attr_chars=10)
    # Each exporter has its own thread: flush after each call to keep the spans in order.
    trace(RunnableLambda(lambda s: s), exporters=[quiet]).invoke("x" * 100)
    quiet.force_flush(5)
    trace(RunnableLambda(lambda s: s), exporters=[short]).invoke("y" * 100)
    short.force_flush(5)
    trace(RunnableLambda(lambda s: s), exporters=[quiet], max_attr_chars=20).invoke("z" * 100)
    quiet.force_flush(5)
    without, truncated, by_trace = memory_spans.get_finished_spans()
    assert "lcel.input" not in without.attributes
    assert truncated.attributes["lcel.input"] == "y" * 10 + "…[truncated 90 chars]"
    assert "lcel.input" not in by_trace.attributes  # capture_content=False still wins
    limited = OtelExporter(provider)
    trace(RunnableLambda(lambda s: s), exporters=[limited], max_attr_chars=20).invoke("w" * 100)
    limited.force_flush(5)
    last = memory_spans.get_finished_spans()[-1]
    assert last.attributes["lcel.input"] == "w" * 20 + "…[truncated 80 chars]"


def test_openinference_attributes_on_request(
    memory: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    provider, memory_spans = memory
    exporter = OtelExporter(provider, conventions=("gen_ai", "openinference"))
    trace(chain(), exporters=[exporter]).invoke({"q": "hi"})
    exporter.force_flush(5)
    spans = by_name(memory_spans.get_finished_spans())
    assert spans["chat fake-1"].attributes["openinference.span.kind"] == "LLM"
    assert spans["chat fake-1"].attributes["llm.token_count.total"] == 12
    root = spans["invoke_workflow RunnableSequence"]
    assert root.attributes["openinference.span.kind"] == "CHAIN"
    assert root.attributes["output.value"] == "a b c"
    with pytest.raises(ValueError, match="unknown conventions"):
        OtelExporter(provider, conventions=("zipkin",))


def test_messages_in_the_genai_format_and_flattened_for_openinference(
    memory: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    provider, memory_spans = memory
    call = {"name": "lookup", "args": {"city": "Oslo"}, "id": "call_1", "type": "tool_call"}
    reply = AIMessage(
        content="checking " + "x" * 50,
        tool_calls=[call],
        response_metadata={"finish_reason": "tool_calls"},
    )
    chat = GenericFakeChatModel(messages=iter([reply]))
    prompt = ChatPromptTemplate.from_messages([("system", "be brief"), ("human", "{q}")])
    exporter = OtelExporter(provider, conventions=("gen_ai", "openinference"), max_attr_chars=20)
    trace(prompt | chat, exporters=[exporter]).invoke({"q": "weather?"})
    exporter.force_flush(5)
    span = by_name(memory_spans.get_finished_spans())["chat"]
    assert json.loads(span.attributes["gen_ai.input.messages"]) == [
        {"role": "system", "parts": [{"type": "text", "content": "be brief"}]},
        {"role": "user", "parts": [{"type": "text", "content": "weather?"}]},
    ]
    # long text is cut inside its part, so the attribute stays valid JSON
    assert json.loads(span.attributes["gen_ai.output.messages"]) == [
        {
            "role": "assistant",
            "parts": [
                {"type": "text", "content": "checking " + "x" * 11 + "…[truncated 39 chars]"},
                {"type": "tool_call", "id": "call_1", "name": "lookup", "arguments": call["args"]},
            ],
            "finish_reason": "tool_calls",
        }
    ]
    attrs = span.attributes
    assert attrs["llm.input_messages.0.message.role"] == "system"
    assert attrs["llm.input_messages.1.message.content"] == "weather?"
    assert attrs["llm.output_messages.0.message.role"] == "assistant"
    prefix = "llm.output_messages.0.message.tool_calls.0.tool_call"
    assert attrs[f"{prefix}.function.name"] == "lookup"
    assert json.loads(attrs[f"{prefix}.function.arguments"]) == {"city": "Oslo"}
    assert attrs[f"{prefix}.id"] == "call_1"


def test_metrics_are_recorded_as_genai_histograms(
    memory: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    provider, _ = memory
    reader = InMemoryMetricReader()
    meters = MeterProvider(metric_readers=[reader])
    exporter = OtelExporter(provider, meter_provider=meters)
    traced = trace(chain(), exporters=[exporter])
    traced.invoke({"q": "hi"})  # usage comes with the whole message
    list(traced.stream({"q": "hi"}))  # time to first chunk comes with streaming
    exporter.force_flush(5)
    data = reader.get_metrics_data()
    assert data is not None
    points = {
        metric.name: metric.data.data_points
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for metric in sm.metrics
    }
    assert set(points) == {
        "gen_ai.client.operation.duration",
        "gen_ai.client.token.usage",
        "gen_ai.client.operation.time_to_first_chunk",
    }
    tokens = {p.attributes["gen_ai.token.type"]: p.sum for p in points["gen_ai.client.token.usage"]}
    assert tokens == {"input": 7, "output": 5}
    meters.shutdown()


def test_end_to_end_through_otlp_http_into_a_real_receiver() -> None:
    with otlp_receiver() as receiver:
        provider = TracerProvider()
        provider.add_span_processor(
            BatchSpanProcessor(OTLPSpanExporter(endpoint=receiver.endpoint))
        )
        exporter = OtelExporter(provider)
        with capture() as cap:
            traced = trace(chain(), exporters=[exporter])
            traced.invoke({"q": "one"})
            list(traced.stream({"q": "two"}))
        assert exporter.force_flush(10)
        exporter.shutdown()  # before its provider: a later flush_all must not flush that
        provider.shutdown()
    assert receiver.requests >= 1
    assert len(receiver.spans) == 8
    for recorded in cap.traces:
        received = [s for s in receiver.spans if s.attributes["lcel.trace_id"] == recorded.trace_id]
        assert len(received) == 4
        ids = {s.span_id for s in received}
        assert sum(1 for s in received if s.parent_span_id not in ids) == 1
        chat = next(s for s in received if s.attributes["lcel.run_type"] == "chat_model")
        assert chat.attributes["gen_ai.operation.name"] == "chat"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_dead_collector_never_changes_or_breaks_the_chain() -> None:
    provider = TracerProvider()
    dead = OTLPSpanExporter(endpoint=f"http://127.0.0.1:{free_port()}/v1/traces", timeout=1)
    provider.add_span_processor(BatchSpanProcessor(dead, schedule_delay_millis=50))
    exporter = OtelExporter(provider)
    traced = trace(chain(), exporters=[exporter])
    assert [traced.invoke({"q": str(i)}) for i in range(5)] == ["a b c"] * 5
    assert list(traced.stream({"q": "x"})) == list(chain().stream({"q": "x"}))
    exporter.shutdown()
    provider.shutdown()


def test_otlp_json_lines_decode_with_the_proto_json_mapping(tmp_path: Path) -> None:
    path = tmp_path / "otlp.jsonl"
    with OtlpJsonExporter(path) as exporter, capture() as cap:
        traced = trace(chain(), exporters=[exporter])
        traced.invoke({"q": "one"})
        list(traced.stream({"q": "two"}))
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 2  # one ExportTraceServiceRequest per trace
    # streamed, the fake model reports no model name, so the span is plain `chat`
    for line, recorded, chat in zip(lines, cap.traces, ["chat fake-1", "chat"], strict=True):
        raw = json.loads(line)
        spans = raw["resourceSpans"][0]["scopeSpans"][0]["spans"]
        assert all(len(s["traceId"]) == 32 and len(s["spanId"]) == 16 for s in spans)
        for s in spans:  # the proto JSON mapping wants base64 bytes: convert back and parse
            for key in ("traceId", "spanId", "parentSpanId"):
                if s.get(key):
                    s[key] = base64.b64encode(bytes.fromhex(s[key])).decode()
        request = json_format.ParseDict(raw, ExportTraceServiceRequest())
        decoded = request.resource_spans[0].scope_spans[0].spans
        assert len(decoded) == len(recorded.spans) == 4
        ids = {s.span_id for s in decoded}
        (root,) = [s for s in decoded if s.parent_span_id not in ids]
        assert root.name == "invoke_workflow RunnableSequence"
        assert {s.name for s in decoded} - {root.name} == {
            "ChatPromptTemplate",
            chat,
            "StrOutputParser",
        }


def test_session_and_user_from_run_metadata_on_every_span(
    memory: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    provider, memory_spans = memory
    both = OtelExporter(provider, conventions=("gen_ai", "openinference"))
    traced = trace(chain(), exporters=[both])
    for turn in ("hi", "and then?"):
        traced.invoke({"q": turn}, config={"metadata": {"session_id": "s-1", "user_id": "u-7"}})
    both.force_flush(5)
    spans = memory_spans.get_finished_spans()
    assert len(spans) == 8  # two turns of one conversation, four spans each
    assert len({s.context.trace_id for s in spans}) == 2
    for span in spans:
        assert span.attributes["gen_ai.conversation.id"] == "s-1"
        assert span.attributes["session.id"] == "s-1"
        assert span.attributes["user.id"] == "u-7"
    memory_spans.clear()
    genai_only = OtelExporter(provider)
    trace(chain(), exporters=[genai_only]).invoke(
        {"q": "hi"}, config={"metadata": {"thread_id": 42, "user_id": "u-7"}}
    )
    genai_only.force_flush(5)
    for span in memory_spans.get_finished_spans():
        assert span.attributes["gen_ai.conversation.id"] == "42"  # thread_id counts too
        assert "session.id" not in span.attributes  # OpenInference's only when asked for
        assert "user.id" not in span.attributes


def test_the_roots_session_wins_and_a_span_without_one_falls_back_to_its_own(
    memory: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    provider, memory_spans = memory
    exporter = OtelExporter(provider, conventions=("gen_ai", "openinference"))
    inner = RunnableLambda(lambda s: s).with_config(
        run_name="inner", metadata={"conversation_id": "c-inner", "user_id": "u-inner"}
    )
    steps = RunnableLambda(lambda s: s).with_config(run_name="outer") | inner
    trace(steps, exporters=[exporter]).invoke("x", config={"metadata": {"session_id": "s-root"}})
    exporter.force_flush(5)
    spans = by_name(memory_spans.get_finished_spans())
    assert {s.attributes["gen_ai.conversation.id"] for s in spans.values()} == {"s-root"}
    assert spans["inner"].attributes["user.id"] == "u-inner"  # the root names no user
    assert "user.id" not in spans["outer"].attributes
    memory_spans.clear()
    trace(steps, exporters=[exporter]).invoke("x")
    exporter.force_flush(5)
    spans = by_name(memory_spans.get_finished_spans())
    assert spans["inner"].attributes["gen_ai.conversation.id"] == "c-inner"
    assert spans["inner"].attributes["session.id"] == "c-inner"
    assert "gen_ai.conversation.id" not in spans["outer"].attributes


def test_session_and_user_keys_are_configurable(
    memory: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    provider, memory_spans = memory
    exporter = OtelExporter(
        provider,
        conventions=("gen_ai", "openinference"),
        session_keys=("chat", "session_id"),
        user_keys=("account",),
    )
    metadata = {"session_id": "default", "chat": "c-9", "account": "acme", "user_id": "u"}
    trace(chain(), exporters=[exporter]).invoke({"q": "hi"}, config={"metadata": metadata})
    exporter.force_flush(5)
    for span in memory_spans.get_finished_spans():
        assert span.attributes["gen_ai.conversation.id"] == "c-9"  # first key listed wins
        assert span.attributes["user.id"] == "acme"
    memory_spans.clear()
    no_sessions = OtelExporter(provider, session_keys=(), user_keys=())
    trace(chain(), exporters=[no_sessions]).invoke({"q": "hi"}, config={"metadata": metadata})
    no_sessions.force_flush(5)
    spans = memory_spans.get_finished_spans()
    assert spans
    assert all("gen_ai.conversation.id" not in s.attributes for s in spans)
    with pytest.raises(ValueError, match="sequence of metadata keys"):
        OtelExporter(provider, session_keys="session_id")


def test_attribute_mapping_is_a_pure_function_given_the_limit_each_call(
    memory: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    span = Span(
        trace_id="a" * 32,
        span_id="run-1",
        parent_id=None,
        name="step",
        run_type="lambda",
        start_ns=1,
        end_ns=2,
        status="ok",
        inputs="z" * 30,
        metadata={"thread_id": "t-1"},
    )
    options = AttributeOptions(conventions=frozenset(("gen_ai", "openinference")))
    short = span_attributes(span, options, limit=5)
    whole = span_attributes(
        span, options, limit=100, workflow="flow", root_metadata={"session_id": "root"}
    )
    assert short["lcel.input"] == "zzzzz…[truncated 25 chars]"
    assert whole["lcel.input"] == "z" * 30
    assert (short["session.id"], whole["session.id"]) == ("t-1", "root")
    assert whole["gen_ai.workflow.name"] == "flow"
    assert span_attributes(span, options, limit=5) == short  # same in, same out
    assert span_name(span, "flow") == "invoke_workflow flow"
    assert span_name(span) == "step"
    assert span_kind(span) == SpanKind.INTERNAL
    # the exporter's own limit, whatever limit the last trace had
    provider, _ = memory
    exporter = OtelExporter(provider, max_attr_chars=8)
    trace(RunnableLambda(lambda s: s), exporters=[exporter], max_attr_chars=3).invoke("q" * 50)
    exporter.force_flush(5)
    assert exporter.attributes(span)["lcel.input"] == "z" * 8 + "…[truncated 22 chars]"
