"""Every OpenTelemetry span, event, status and metric the OTel exporters make from a fixed
set of traces, compared with a golden file written by the mapping before its speed-up
(issue 27): names, kinds, ids, parents, times, status, events, every attribute key and
value in the order they were set, the order spans end in, and the metric points. A change
to what a user's collector receives shows up here as a diff, deliberate or not.

The traces are built by hand with fixed ids and times (a real run's ids and times differ
each time) from real LangChain objects: messages with tool calls, a tool's response, a
prompt value, documents, content blocks, an escaped `lc` key, long and non-ASCII text,
errors, cancelled and incomplete runs, an orphan, a remote OpenTelemetry parent, a lower
per-trace limit, custom events and stream chunks. Each exporter configuration sees all of
them. Re-write the golden only for a deliberate change to the mapping:

    .venv/bin/python -m tests.test_otel_golden
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from langchain_core.documents import Document
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.prompt_values import ChatPromptValue
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from lcel_trace.exporters import OtelExporter, OtlpJsonExporter
from lcel_trace.exporters.otel import OtelTraceMapping
from lcel_trace.span import (
    Record,
    Span,
    SpanError,
    SpanEvent,
    TraceEnd,
    TraceEvent,
    TraceStart,
    Usage,
)

GOLDEN = Path(__file__).parent / "data" / "otel_golden.json"
T0 = 1_800_000_000_000_000_000
MS = 1_000_000
CONFIGS: dict[str, dict[str, Any]] = {
    "default": {},
    "no content": {"capture_content": False},
    "openinference": {"conventions": ("gen_ai", "openinference")},
    "openinference, no content": {
        "conventions": ("gen_ai", "openinference"),
        "capture_content": False,
    },
    "chunks, short": {"chunk_events": True, "max_chunk_events": 2, "max_attr_chars": 40},
    "own keys": {
        "session_keys": ("thread_id",),
        "user_keys": ("uid",),
        "conventions": ("openinference", "gen_ai"),
    },
}


def _id(trace: int, run: int) -> str:
    """A run id shaped as LangChain's (a UUID), fixed by the trace and run number."""
    return f"{trace:08x}-0000-7000-8000-{run:012x}"


def _trace_id(trace: int) -> str:
    return f"{trace:032x}"


def qa_trace() -> list[Record]:
    """A root chain: a prompt, a chat model asking for a tool, the tool, a second model
    call with the tool's answer, a parser reading the same AIMessage object the model
    returned; session and user ids in the root's metadata, a custom event."""
    t = 1
    tid, root = _trace_id(t), _id(t, 1)
    system = SystemMessage(content="You are terse.")
    human = HumanMessage(content="What is the weather in Zürich? ☀")
    call = AIMessage(
        content="",
        id="msg-1",
        tool_calls=[{"name": "weather", "args": {"city": "Zürich"}, "id": "call-1"}],
    )
    tool_reply = ToolMessage(content="12°C, clear", tool_call_id="call-1")
    answer = AIMessage(content="12°C and clear.", id="msg-2")
    prompt_value = ChatPromptValue(messages=[system, human])
    meta = {"session_id": "s-42", "user_id": 7, "tenant": {"name": "acme", "tier": [1, 2.5]}}
    usage = Usage(11, 5, 16)
    spans = [
        Span(
            tid,
            _id(t, 2),
            root,
            "ChatPromptTemplate",
            "prompt",
            T0 + 1 * MS,
            T0 + 2 * MS,
            "ok",
            inputs={"city": "Zürich"},
            outputs=prompt_value,
            tags=("seq:step:1",),
        ),
        Span(
            tid,
            _id(t, 3),
            root,
            "ChatOpenAI",
            "chat_model",
            T0 + 3 * MS,
            T0 + 9 * MS,
            "ok",
            inputs={"messages": [[system, human]]},
            outputs=call,
            tags=("seq:step:2",),
            metadata={"ls_provider": "openai", "ls_model_name": "unpriced-model", "thread_id": 9},
            chunk_count=4,
            first_chunk_ns=T0 + 4 * MS,
            first_token_ns=T0 + 5 * MS,
            usage=usage,
            model="unpriced-model",
            attributes={
                "provider": "openai",
                "request_model": "unpriced-model",
                "response_model": "unpriced-model-2026",
                "response_id": "resp-1",
                "finish_reason": "tool_calls",
                "request_params": {
                    "temperature": 0.2,
                    "max_tokens": 64,
                    "stop": ["\n\n"],
                    "seed": 3,
                    "unknown_param": "x",
                },
            },
        ),
        Span(
            tid,
            _id(t, 4),
            root,
            "weather",
            "tool",
            T0 + 10 * MS,
            T0 + 11 * MS,
            "ok",
            inputs="{'city': 'Zürich'}",
            outputs=tool_reply,
            metadata={"uid": "u-tool"},
            attributes={"tool_call_id": "call-1"},
        ),
        Span(
            tid,
            _id(t, 5),
            root,
            "ChatOpenAI",
            "chat_model",
            T0 + 12 * MS,
            T0 + 15 * MS,
            "ok",
            inputs={"messages": [[system, human, call, tool_reply]]},
            outputs=answer,
            metadata={"ls_provider": "openai"},
            usage=Usage(30, 6, None),
            model="unpriced-model",
            attributes={"provider": "openai", "finish_reason": "stop"},
        ),
        Span(
            tid,
            _id(t, 6),
            root,
            "StrOutputParser",
            "parser",
            T0 + 16 * MS,
            T0 + 17 * MS,
            "ok",
            inputs=answer,
            outputs="12°C and clear.",
            tags=("seq:step:3",),
        ),
        Span(
            tid,
            root,
            None,
            "RunnableSequence",
            "chain",
            T0,
            T0 + 18 * MS,
            "ok",
            inputs={"city": "Zürich"},
            outputs="12°C and clear.",
            metadata=meta,
            tags=("app",),
            events=(
                SpanEvent("progress", T0 + 8 * MS, {"step": 2, "note": "half way"}),
                SpanEvent("plain", T0 + 9 * MS, "just text"),
            ),
        ),
    ]
    stream = TraceEvent(
        tid,
        "stream",
        "on_chat_model_stream",
        _id(t, 3),
        (root,),
        "ChatOpenAI",
        "chat_model",
        (),
        {},
        {"chunks": [[T0 + 4 * MS, ""], [T0 + 5 * MS, "12"], [T0 + 6 * MS, {"t": "°C"}]]},
        T0 + 6 * MS,
    )
    return [
        TraceStart(tid, "weather-qa", T0, root),
        stream,
        *spans,
        TraceEnd(tid, "ok", T0 + 18 * MS, len(spans), 1),
    ]


def failing_trace() -> list[Record]:
    """A root lambda that failed under a remote OpenTelemetry parent, a model that failed,
    a cancelled retriever with documents, an incomplete text-completion run, an orphan
    whose parent is not in the trace, and a per-trace limit lower than the exporters'."""
    t = 2
    tid, root = _trace_id(t), _id(t, 1)
    boom = SpanError("ValueError", "bad input: " + "é" * 30)
    long = "x" * 80 + "ü" * 10
    spans = [
        Span(
            tid,
            _id(t, 2),
            root,
            "ChatAnthropic",
            "chat_model",
            T0 + 1 * MS,
            T0 + 3 * MS,
            "error",
            error=SpanError("RateLimitError", "slow down"),
            inputs={
                "messages": [
                    [
                        HumanMessage(
                            content=[
                                {"type": "text", "text": long},
                                {"type": "image_url", "image_url": {"url": "data:..."}},
                                "and a plain block",
                            ]
                        )
                    ]
                ]
            },
            metadata={"ls_provider": "anthropic", "session_id": "s-inner"},
            model="claude-unpriced",
            attributes={"provider": "anthropic", "request_model": "claude-unpriced"},
        ),
        Span(
            tid,
            _id(t, 3),
            root,
            "retriever",
            "retriever",
            T0 + 4 * MS,
            T0 + 5 * MS,
            "cancelled",
            inputs={"query": long},
            outputs=[Document(page_content="doc one", metadata={"source": "a.txt"})],
        ),
        Span(
            tid,
            _id(t, 4),
            root,
            "OpenAI",
            "llm",
            T0 + 6 * MS,
            T0 + 7 * MS,
            "incomplete",
            inputs={"prompts": ["Say hi"]},
            metadata={"lc": 1, "flag": True, "ratio": 0.5, "none": None},
            attributes={"request_model": "davinci-unpriced"},
        ),
        Span(
            tid,
            _id(t, 9),
            _id(t, 8),  # its parent was lost
            "orphan",
            "lambda",
            T0 + 8 * MS,
            T0 + 9 * MS,
            "ok",
            inputs={"lc": 1, "type": "not", "id": ["a", "secret"]},
            outputs=None,
        ),
        Span(
            tid,
            root,
            "00000000000000aa",
            "boom",
            "lambda",
            T0,
            T0 + 10 * MS,
            "error",
            error=boom,
            inputs=long,
            metadata={"conversation_id": "c-1", "uid": 99},
        ),
    ]
    return [
        TraceStart(
            tid, "boom", T0, root, otel_parent_span_id="00000000000000aa", max_attr_chars=24
        ),
        *spans,
        TraceEnd(tid, "error", T0 + 10 * MS, len(spans), 0, error=boom),
    ]


def custom_root_trace() -> list[Record]:
    """A lone `custom` root with no trace name (the run's own name is the workflow's) and
    a stream of chunks longer than `max_chunk_events`."""
    t = 3
    tid, root = _trace_id(t), _id(t, 1)
    span = Span(
        tid,
        root,
        None,
        "my_step",
        "custom",
        T0,
        T0 + 2 * MS,
        "ok",
        inputs=[1, 2.5, True, None, "s"],
        outputs={"answer": ["a", "b"], "n": 3},
        chunk_count=3,
        first_chunk_ns=T0 + 1 * MS,
    )
    stream = TraceEvent(
        tid,
        "stream",
        "on_chain_stream",
        root,
        (),
        "my_step",
        "custom",
        (),
        {},
        {"chunks": [[T0 + MS, "a"], [T0 + MS + 1, "b"], [T0 + MS + 2, "c"]]},
        T0 + MS + 2,
    )
    return [TraceStart(tid, "", T0, root), stream, span, TraceEnd(tid, "ok", T0 + 2 * MS, 1, 1)]


def traces() -> list[list[Record]]:
    return [qa_trace(), failing_trace(), custom_root_trace()]


def feed(exporter: OtelTraceMapping, records: list[Record]) -> None:
    """The records in the order lcel-trace's worker hands them to a `records` exporter:
    spans one `export` call each, as they end."""
    for record in records:
        if isinstance(record, TraceStart):
            exporter.on_trace_start(record)
        elif isinstance(record, TraceEvent):
            exporter.on_event(record)
        elif isinstance(record, Span):
            exporter.export([record])
        else:
            exporter.on_trace_end(record)


def _value(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def _attributes(attributes: Any) -> list[list[Any]]:
    """Every key and value in the order set: a reordering shows too."""
    return [[key, _value(value)] for key, value in (attributes or {}).items()]


def describe(span: ReadableSpan) -> dict[str, Any]:
    context = span.context
    assert context is not None
    return {
        "name": span.name,
        "kind": span.kind.name,
        "trace_id": format(context.trace_id, "032x"),
        "span_id": format(context.span_id, "016x"),
        "parent": None if span.parent is None else format(span.parent.span_id, "016x"),
        "parent_remote": None if span.parent is None else span.parent.is_remote,
        "start": span.start_time,
        "end": span.end_time,
        "status": [span.status.status_code.name, span.status.description],
        "events": [[e.name, e.timestamp, _attributes(e.attributes)] for e in span.events],
        "attributes": _attributes(span.attributes),
    }


def _metrics(reader: InMemoryMetricReader) -> list[Any]:
    data = reader.get_metrics_data()
    points: list[Any] = []
    for resource_metrics in data.resource_metrics if data else ():
        for scope in resource_metrics.scope_metrics:
            for metric in scope.metrics:
                for point in metric.data.data_points:
                    points.append(
                        [
                            metric.name,
                            metric.unit,
                            sorted(_attributes(point.attributes)),
                            point.count,  # type: ignore[union-attr]
                            point.sum,  # type: ignore[union-attr]
                            point.min,  # type: ignore[union-attr]
                            point.max,  # type: ignore[union-attr]
                        ]
                    )
    return sorted(points, key=json.dumps)


def otel_output(options: dict[str, Any]) -> dict[str, Any]:
    """What `OtelExporter` with `options` gives a provider and a meter for every trace."""
    provider = TracerProvider()
    memory = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    reader = InMemoryMetricReader()
    meters = MeterProvider(metric_readers=[reader])
    exporter = OtelExporter(provider, meter_provider=meters, **options)
    try:
        for records in traces():
            feed(exporter, records)
        return {
            "spans": [describe(span) for span in memory.get_finished_spans()],
            "metrics": _metrics(reader),
        }
    finally:
        provider.shutdown()
        meters.shutdown()


def otlp_output(options: dict[str, Any], path: Path) -> list[Any]:
    """`OtlpJsonExporter`'s lines for every trace (a fixed resource: no SDK version)."""
    exporter = OtlpJsonExporter(path, resource=Resource({"service.name": "golden"}), **options)
    for records in traces():
        feed(exporter, records)
    exporter.shutdown()
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def everything(tmp: Path) -> dict[str, Any]:
    return {
        name: {
            "otel": otel_output(options),
            "otlp_json": otlp_output(options, tmp / f"{len(name)}-{abs(hash(name))}.jsonl"),
        }
        for name, options in CONFIGS.items()
    }


@pytest.mark.parametrize("config", list(CONFIGS))
def test_spans_events_statuses_and_metrics_match_the_golden(config: str, tmp_path: Path) -> None:
    golden = json.loads(GOLDEN.read_text(encoding="utf-8"))
    assert set(golden) == set(CONFIGS)
    expected = golden[config]
    options = CONFIGS[config]
    got = {
        "otel": json.loads(json.dumps(otel_output(options))),
        "otlp_json": otlp_output(options, tmp_path / "otlp.jsonl"),
    }
    assert got["otel"]["spans"], "the exporter made no spans"
    for index, (mine, theirs) in enumerate(
        zip(got["otel"]["spans"], expected["otel"]["spans"], strict=True)
    ):
        assert mine == theirs, f"span {index} ({theirs['name']}) differs"
    assert got["otel"]["metrics"] == expected["otel"]["metrics"]
    assert got["otlp_json"] == expected["otlp_json"]


def test_the_golden_covers_what_the_mapping_can_emit() -> None:
    """The fixtures reach every attribute family, so the golden pins more than defaults."""
    golden = json.loads(GOLDEN.read_text(encoding="utf-8"))
    keys = {
        key
        for config in golden.values()
        for span in config["otel"]["spans"]
        for key, _ in span["attributes"]
    }
    for key in (
        "gen_ai.input.messages",
        "gen_ai.output.messages",
        "gen_ai.request.temperature",
        "gen_ai.request.stop_sequences",
        "gen_ai.tool.call.id",
        "gen_ai.conversation.id",
        "gen_ai.response.time_to_first_chunk",
        "llm.input_messages.3.message.tool_call_id",
        "llm.output_messages.0.message.tool_calls.0.tool_call.function.arguments",
        "session.id",
        "user.id",
        "error.type",
        "lcel.metadata.tenant",
        "input.value",
    ):
        assert key in keys, key
    events = {
        e[0] for config in golden.values() for s in config["otel"]["spans"] for e in s["events"]
    }
    assert events == {"progress", "plain", "lcel.chunk", "exception"}
    assert any(config["otel"]["metrics"] for config in golden.values())


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        GOLDEN.write_text(
            json.dumps(everything(Path(tmp)), ensure_ascii=False, indent=1) + "\n",
            encoding="utf-8",
        )
    print(f"wrote {GOLDEN}")
