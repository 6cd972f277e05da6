"""`trace_events()`: any v2 event stream, passed on unchanged, recorded one trace per root."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterable
from typing import Any

import pytest
from langchain_core.language_models import FakeListChatModel, GenericFakeChatModel
from langchain_core.messages import AIMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import Runnable, RunnableLambda
from opentelemetry.sdk.trace import TracerProvider

from lcel_trace import capture, trace
from lcel_trace._log import occurrences
from lcel_trace.events import trace_events, trace_events_sync


def chat_chain() -> Runnable[Any, Any]:
    model = GenericFakeChatModel(messages=iter([AIMessage(content="one two three")]))
    return ChatPromptTemplate.from_template("{q}") | model | StrOutputParser()


async def events_of(runnable: Runnable[Any, Any], value: Any) -> list[dict[str, Any]]:
    return [dict(e) async for e in runnable.astream_events(value, version="v2")]


async def replayed(events: Iterable[Any]) -> AsyncIterator[Any]:
    for event in events:
        yield event


def fail(_: Any) -> Any:
    raise RuntimeError("step failed")


async def test_every_event_is_passed_on_as_the_very_same_object() -> None:
    events = await events_of(chat_chain(), {"q": "x"})
    with capture():
        seen = [e async for e in trace_events(replayed(events))]
    assert len(seen) == len(events)
    assert all(a is b for a, b in zip(seen, events, strict=True))


async def test_the_recorded_tree_has_every_run_with_its_parent_and_chunks() -> None:
    with capture() as cap:
        async for _ in trace_events(chat_chain().astream_events({"q": "x"}, version="v2")):
            pass
    (recorded,) = cap.traces
    assert recorded.status == "ok"
    root = recorded.root
    assert root is not None
    assert root.parent_id is None
    children = {s.name: s for s in recorded.spans if s.parent_id == root.span_id}
    assert set(children) == {"ChatPromptTemplate", "GenericFakeChatModel", "StrOutputParser"}
    assert children["GenericFakeChatModel"].run_type == "chat_model"
    assert children["GenericFakeChatModel"].chunk_count > 1
    assert root.chunk_count == children["StrOutputParser"].chunk_count
    assert root.outputs == "one two three"


async def test_a_stream_of_several_root_runs_records_one_trace_per_root() -> None:
    first = await events_of(RunnableLambda(str, name="first"), 1)
    second = await events_of(RunnableLambda(str, name="second"), 2)
    with capture() as cap:
        async for _ in trace_events(replayed([*first, *second])):
            pass
    assert [t.root.name for t in cap.traces if t.root] == ["first", "second"]
    assert len({t.trace_id for t in cap.traces}) == 2


async def test_a_failing_stream_closes_every_open_span_with_its_exception() -> None:
    chain = RunnableLambda(str) | RunnableLambda(fail, name="fail") | RunnableLambda(str)
    with capture() as cap, pytest.raises(RuntimeError, match="step failed"):
        async for _ in trace_events(chain.astream_events(1, version="v2")):
            pass
    (recorded,) = cap.traces
    assert recorded.status == "error"
    by_name = {s.name: s for s in recorded.spans}
    assert by_name["str"].status == "ok"
    for name in ("fail", "RunnableSequence"):
        assert by_name[name].status == "error"
        assert by_name[name].error is not None
        assert by_name[name].error.message == "step failed"


async def test_a_consumer_that_stops_early_closes_open_spans_as_cancelled() -> None:
    with capture() as cap:
        stream = trace_events(chat_chain().astream_events({"q": "x"}, version="v2"))
        async with contextlib.aclosing(stream):  # type: ignore[type-var]
            async for event in stream:
                if event["event"] == "on_chat_model_stream":
                    break
    (recorded,) = cap.traces
    by_name = {s.name: s for s in recorded.spans}
    assert by_name["ChatPromptTemplate"].status == "ok"
    assert by_name["GenericFakeChatModel"].status == "cancelled"
    assert by_name["RunnableSequence"].status == "cancelled"
    assert recorded.status == "cancelled"


async def test_a_cancelled_consumer_task_closes_open_spans_as_cancelled() -> None:
    started = asyncio.Event()

    async def slow(events: list[dict[str, Any]]) -> AsyncIterator[Any]:
        yield events[0]
        started.set()
        await asyncio.Event().wait()  # never: the task is cancelled here

    events = await events_of(chat_chain(), {"q": "x"})

    async def consume() -> None:
        async for _ in trace_events(slow(events)):
            pass

    with capture() as cap:
        task = asyncio.create_task(consume())
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    (recorded,) = cap.traces
    assert [s.status for s in recorded.spans] == ["cancelled"]


@pytest.mark.filterwarnings("ignore:astream_events version='v1' is deprecated")
async def test_v1_streams_record_a_flat_tree_and_say_so_once() -> None:
    before = occurrences("v1_event_stream_flat_tree")
    events = [e async for e in chat_chain().astream_events({"q": "x"}, version="v1")]
    with capture() as cap:
        async for _ in trace_events(replayed(events)):
            pass
    (recorded,) = cap.traces
    root = recorded.root
    assert root is not None
    assert root.name == "RunnableSequence"
    assert all(s.parent_id == root.span_id for s in recorded.spans if s is not root)
    assert len(recorded.spans) == 4
    assert occurrences("v1_event_stream_flat_tree") > before


async def test_an_event_carrying_ts_ns_is_stamped_with_it() -> None:
    events = await events_of(RunnableLambda(str, name="stamped"), 1)
    stamped = [{**e, "ts_ns": 1_000_000_000 + i} for i, e in enumerate(events)]
    with capture() as cap:
        async for _ in trace_events(replayed(stamped)):
            pass
    (span,) = cap.traces[0].spans
    assert (span.start_ns, span.end_ns) == (1_000_000_000, 1_000_000_000 + len(events) - 1)


async def test_the_trace_nests_under_the_callers_open_telemetry_span() -> None:
    tracer = TracerProvider().get_tracer("test")
    with capture() as cap, tracer.start_as_current_span("outer") as outer:
        async for _ in trace_events(RunnableLambda(str).astream_events(1, version="v2")):
            pass
    context = outer.get_span_context()
    (recorded,) = cap.traces
    assert recorded.trace_id == format(context.trace_id, "032x")
    assert recorded.root is not None
    assert recorded.root.parent_id == format(context.span_id, "016x")


async def test_a_remote_stream_consumed_inside_a_traced_call_joins_its_trace() -> None:
    remote = await events_of(chat_chain(), {"q": "x"})  # run ids this process never saw

    async def consume(_: Any) -> str:
        out = ""
        async for event in trace_events(replayed(remote)):
            if event["event"] == "on_chain_stream" and not event["parent_ids"]:
                out += event["data"]["chunk"]
        return out

    with capture() as cap:
        assert await trace(RunnableLambda(consume, name="client")).ainvoke(1) == "one two three"
    (recorded,) = cap.traces
    client = recorded.root
    assert client is not None
    assert client.name == "client"
    by_name = {s.name: s for s in recorded.spans}
    assert by_name["RunnableSequence"].parent_id == client.span_id
    assert by_name["GenericFakeChatModel"].parent_id == by_name["RunnableSequence"].span_id
    assert by_name["GenericFakeChatModel"].chunk_count > 1
    assert {s.status for s in recorded.spans} == {"ok"}


async def test_a_local_stream_inside_a_traced_call_is_left_to_its_recorder() -> None:
    async def consume(_: Any) -> int:
        return len([e async for e in trace_events(chat_chain().astream_events({"q": "x"}))])

    with capture() as cap:
        await trace(RunnableLambda(consume, name="outer")).ainvoke(1)
    (recorded,) = cap.traces
    names = sorted(s.name for s in recorded.spans)
    assert names == sorted(
        [
            "outer",
            "RunnableSequence",
            "ChatPromptTemplate",
            "GenericFakeChatModel",
            "StrOutputParser",
        ]
    )
    model = next(s for s in recorded.spans if s.run_type == "chat_model")
    assert model.chunk_count == 5  # counted once, not once per producer


def test_the_sync_twin_records_a_sync_iterable() -> None:
    events = asyncio.run(events_of(chat_chain(), {"q": "x"}))
    with capture() as cap:
        seen = list(trace_events_sync(iter(events)))
    assert all(a is b for a, b in zip(seen, events, strict=True))
    (recorded,) = cap.traces
    assert recorded.status == "ok"
    assert len(recorded.spans) == 4


def test_the_sync_twin_closes_open_spans_as_cancelled_when_closed_early() -> None:
    events = asyncio.run(events_of(chat_chain(), {"q": "x"}))
    with capture() as cap:
        stream = trace_events_sync(events)
        next(stream)
        stream.close()  # type: ignore[attr-defined]
    (recorded,) = cap.traces
    assert [s.status for s in recorded.spans] == ["cancelled"]


def test_an_unsampled_stream_is_passed_on_and_not_recorded() -> None:
    events = asyncio.run(events_of(chat_chain(), {"q": "x"}))
    with capture() as cap:
        assert list(trace_events_sync(events, sample=0.0)) == events
    assert cap.traces == []


def test_bad_options_raise_at_call_time() -> None:
    with pytest.raises(ValueError, match="sample"):
        trace_events_sync([], sample=2.0)
    with pytest.raises(TypeError, match="not a trace exporter"):
        trace_events(replayed([]), exporters=[object()])  # type: ignore[list-item]


async def test_a_traced_sub_chain_inside_a_trace_events_stream_records_one_trace() -> None:
    sub = trace(ChatPromptTemplate.from_template("{q}") | FakeListChatModel(responses=["x"]))
    outer = RunnableLambda(lambda x: sub.invoke({"q": x}), name="outer") | RunnableLambda(str)
    with capture() as cap:
        stream: Any = outer.astream_events("hi", version="v2")
        async for _ in trace_events(stream, runnable=outer):
            pass
    assert [t.root.name for t in cap.traces] == ["RunnableSequence"]  # one trace, not two
    (recorded,) = cap.traces
    # outer sequence, its two lambdas, the sub-chain and its prompt and model: once each
    assert len({s.span_id for s in recorded.spans}) == len(recorded.spans) == 6


async def test_secrets_in_metadata_repeated_by_later_events_are_scrubbed_too(
    tmp_path: Any,
) -> None:
    from lcel_trace.exporters import JsonlExporter

    chain = RunnableLambda(lambda x: x, name="echo").with_config(
        metadata={"api_key": "sk-live-abcdefghijklmnopqrstuvwxyz"}
    )
    path = tmp_path / "events.jsonl"
    with JsonlExporter(path) as jsonl:
        async for _ in trace_events(chain.astream_events("hi", version="v2"), exporters=[jsonl]):
            pass
    text = path.read_text()
    assert '"echo"' in text
    assert "abcdefghijklmnopqrstuvwxyz" not in text
