"""trace(): output parity with the unwrapped runnable, and the span tree it records.

Every case runs the plain runnable and the traced one through the same entry point and
compares what the caller gets (values, types, chunk sequences, exceptions), then checks
the recorded tree: names, parents, run types, statuses, every span ended.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from langchain_core.callbacks import adispatch_custom_event, dispatch_custom_event
from langchain_core.language_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import (
    Runnable,
    RunnableGenerator,
    RunnableLambda,
    RunnableParallel,
)

from lcel_trace import Trace, capture, trace

JOKE = "Why did the parrot talk ? Because it could ."


def model() -> GenericFakeChatModel:
    return GenericFakeChatModel(messages=itertools.cycle([AIMessage(content=JOKE)]))


def joke_chain() -> Runnable[Any, Any]:
    return ChatPromptTemplate.from_template("joke about {topic}") | model() | StrOutputParser()


def shout(text_chunks: Iterator[str]) -> Iterator[str]:
    for chunk in text_chunks:
        yield chunk.upper()


def explode_mid_stream(chunks: Iterator[str]) -> Iterator[str]:
    for i, chunk in enumerate(chunks):
        if i == 3:
            raise ValueError("stream broke at chunk 3")
        yield chunk


async def aexplode_mid_stream(chunks: AsyncIterator[str]) -> AsyncIterator[str]:
    i = 0
    async for chunk in chunks:
        if i == 3:
            raise ValueError("stream broke at chunk 3")
        i += 1
        yield chunk


def fail(_: object) -> str:
    raise ConnectionError("primary is down")


def flaky() -> Callable[[object], str]:
    calls = itertools.count()

    def call(_: object) -> str:
        if next(calls) == 0:
            raise TimeoutError("first try times out")
        return "second try"

    return call


CASES: dict[str, Callable[[], Runnable[Any, Any]]] = {
    "prompt_model_parser": joke_chain,
    "chat_model_alone": model,
    "lambda": lambda: RunnableLambda(lambda d: {"echo": d}),
    "generator_step": lambda: joke_chain() | RunnableGenerator(shout),
    "parallel": lambda: RunnableParallel(joke=joke_chain(), size=RunnableLambda(len)),
    "fallbacks": lambda: RunnableLambda(fail).with_fallbacks([RunnableLambda(lambda _: "fb")]),
    "mid_stream_error": lambda: (
        joke_chain() | RunnableGenerator(explode_mid_stream, aexplode_mid_stream)
    ),
}
INPUT: dict[str, Any] = {"chat_model_alone": "hello", "lambda": {"a": 1}, "fallbacks": "x"}


def input_for(case: str) -> Any:
    return INPUT.get(case, {"topic": "parrots"})


def outcome(call: Callable[[], Any]) -> tuple[str, Any]:
    try:
        return "value", call()
    except Exception as exc:
        return "error", (type(exc), str(exc))


async def aoutcome(call: Callable[[], Any]) -> tuple[str, Any]:
    try:
        return "value", await call()
    except Exception as exc:
        return "error", (type(exc), str(exc))


async def acollect(stream: AsyncIterator[Any]) -> list[Any]:
    return [chunk async for chunk in stream]


def without_ids(value: Any) -> Any:
    """Messages carry their run's id; two calls never share one, traced or not."""
    if isinstance(value, list):
        return [without_ids(v) for v in value]
    if isinstance(value, BaseMessage):
        return value.model_copy(update={"id": None})
    return value


def same(a: tuple[str, Any], b: tuple[str, Any], *, ordered: bool = True) -> None:
    assert a[0] == b[0]
    if ordered:
        assert without_ids(a[1]) == without_ids(b[1])
    else:  # branches of a RunnableParallel interleave differently on every run
        assert sorted(map(repr, without_ids(a[1]))) == sorted(map(repr, without_ids(b[1])))
    if a[0] == "value":
        values = a[1] if isinstance(a[1], list) else [a[1]]
        others = b[1] if isinstance(b[1], list) else [b[1]]
        assert [type(v) for v in values] == [type(v) for v in others]


def assert_well_formed(t: Trace) -> None:
    ids = {s.span_id for s in t.spans}
    assert len(ids) == len(t.spans)
    assert all(s.trace_id == t.trace_id for s in t.spans)
    assert all(s.end_ns >= s.start_ns for s in t.spans)
    assert all(s.status in ("ok", "error", "cancelled", "incomplete") for s in t.spans)
    assert all(s.parent_id in ids for s in t.spans if s is not t.root)
    assert t.root.parent_id is None


# -- parity, every entry point ------------------------------------------------------------


@pytest.mark.parametrize("case", sorted(CASES))
def test_sync_entry_points_give_what_the_unwrapped_runnable_gives(case: str) -> None:
    value = input_for(case)
    plain, traced = CASES[case](), trace(CASES[case]())
    with capture() as cap:
        same(outcome(lambda: traced.invoke(value)), outcome(lambda: plain.invoke(value)))
        same(
            outcome(lambda: list(traced.stream(value))),
            outcome(lambda: list(plain.stream(value))),
            ordered=case != "parallel",
        )
        same(
            outcome(lambda: traced.batch([value, value])),
            outcome(lambda: plain.batch([value, value])),
        )
    assert len(cap.traces) == 4  # invoke, stream, and one per batch input
    for t in cap.traces:
        assert_well_formed(t)


@pytest.mark.parametrize("case", sorted(CASES))
async def test_async_entry_points_give_what_the_unwrapped_runnable_gives(case: str) -> None:
    value = input_for(case)
    plain, traced = CASES[case](), trace(CASES[case]())
    with capture() as cap:
        same(
            await aoutcome(lambda: traced.ainvoke(value)),
            await aoutcome(lambda: plain.ainvoke(value)),
        )
        same(
            await aoutcome(lambda: acollect(traced.astream(value))),
            await aoutcome(lambda: acollect(plain.astream(value))),
            ordered=case != "parallel",
        )
        same(
            await aoutcome(lambda: traced.abatch([value, value])),
            await aoutcome(lambda: plain.abatch([value, value])),
        )
    assert len(cap.traces) == 4
    for t in cap.traces:
        assert_well_formed(t)


async def test_sync_calls_work_inside_a_running_event_loop_and_in_threads() -> None:
    traced = trace(joke_chain())
    assert traced.invoke({"topic": "x"}) == JOKE
    assert "".join(traced.stream({"topic": "x"})) == JOKE
    in_thread = await asyncio.to_thread(traced.invoke, {"topic": "x"})
    assert in_thread == JOKE


def test_chat_model_types_are_kept_message_and_chunks() -> None:
    traced = trace(model())
    message = traced.invoke("hi")
    assert type(message) is AIMessage
    assert message.content == JOKE
    chunks = list(traced.stream("hi"))
    assert all(type(c) is AIMessageChunk for c in chunks)
    assert "".join(str(c.content) for c in chunks) == JOKE


@pytest.mark.filterwarnings("ignore:astream_log is deprecated:DeprecationWarning")
async def test_astream_events_and_astream_log_match_the_unwrapped_streams() -> None:
    def shape(events: list[Any]) -> list[tuple[str, str, Any]]:
        return [(e["event"], e["name"], without_ids(e["data"].get("chunk"))) for e in events]

    plain = [e async for e in joke_chain().astream_events({"topic": "x"}, version="v2")]
    with capture() as cap:
        traced = [e async for e in trace(joke_chain()).astream_events({"topic": "x"}, version="v2")]
        patches = [p async for p in trace(joke_chain()).astream_log({"topic": "x"})]
    plain_patches = [p async for p in joke_chain().astream_log({"topic": "x"})]
    assert shape(traced) == shape(plain)
    assert len(patches) == len(plain_patches)
    assert [t.status for t in cap.traces] == ["ok", "ok"]
    assert [len(t.spans) for t in cap.traces] == [4, 4]


def test_with_config_composition_and_schemas_behave_as_the_unwrapped() -> None:
    plain, traced = joke_chain(), trace(joke_chain())
    assert traced.input_schema.model_json_schema() == plain.input_schema.model_json_schema()
    assert traced.output_schema.model_json_schema() == plain.output_schema.model_json_schema()
    composed = traced | RunnableLambda(len)
    assert composed.invoke({"topic": "x"}) == len(JOKE)
    with capture() as cap:
        renamed = traced.with_config(run_name="joke", tags=["t1"], metadata={"team": "a"})
        assert renamed.invoke({"topic": "x"}) == JOKE
    root = cap.traces[0].root
    assert (root.name, root.tags, dict(root.metadata)) == ("joke", ("t1",), {"team": "a"})


def test_batch_of_n_gives_n_traces_within_max_concurrency() -> None:
    with capture() as cap:
        outputs = trace(joke_chain()).batch(
            [{"topic": str(i)} for i in range(6)], {"max_concurrency": 2}
        )
    assert outputs == [JOKE] * 6
    assert len({t.trace_id for t in cap.traces}) == 6


# -- the trees ----------------------------------------------------------------------------


def tree_of(runnable: Runnable[Any, Any], value: Any, mode: str = "invoke") -> Trace:
    with capture() as cap:
        try:
            if mode == "invoke":
                trace(runnable).invoke(value)
            else:
                list(trace(runnable).stream(value))
        except Exception:
            pass
    (recorded,) = cap.traces
    assert_well_formed(recorded)
    return recorded


@pytest.mark.parametrize("mode", ["invoke", "stream"])
def test_prompt_model_parser_tree(mode: str) -> None:
    t = tree_of(joke_chain(), {"topic": "parrots"}, mode)
    assert t.tree().shape() == {
        "RunnableSequence": [
            {"ChatPromptTemplate": []},
            {"GenericFakeChatModel": []},
            {"StrOutputParser": []},
        ]
    }
    assert [s.run_type for s in t.children(t.root)] == ["prompt", "chat_model", "parser"]
    assert all(s.status == "ok" for s in t.spans)
    assert t.root.outputs == JOKE
    if mode == "stream":
        assert t.root.chunk_count == len(list(joke_chain().stream({"topic": "x"})))
        assert t.root.first_chunk_ns is not None
        assert t.root.start_ns <= t.root.first_chunk_ns <= t.root.end_ns


def test_chat_model_alone_is_one_chat_model_span_with_its_message() -> None:
    t = tree_of(model(), "hi")
    assert t.tree().shape() == {"GenericFakeChatModel": []}
    assert t.root.run_type == "chat_model"
    assert isinstance(t.root.outputs, AIMessage)


def test_lambda_and_generator_steps_are_lambda_spans() -> None:
    t = tree_of(joke_chain() | RunnableGenerator(shout), {"topic": "x"}, "stream")
    assert t.span("shout").run_type == "lambda"
    # a generator may invoke a model, so its steps are not tapped; the root is counted
    assert t.span("shout").chunk_count == 0
    assert t.root.chunk_count > 0
    assert tree_of(RunnableLambda(lambda d: d), {"a": 1}).root.run_type == "lambda"


def test_parallel_branches_hang_under_the_parallel_span() -> None:
    t = tree_of(RunnableParallel(joke=joke_chain(), size=RunnableLambda(len)), {"topic": "x"})
    assert t.root.name == "RunnableParallel<joke,size>"
    children = {s.name for s in t.children(t.root)}
    assert children == {"RunnableSequence", "len"}


@pytest.mark.parametrize("mode", ["invoke", "stream"])
def test_fallback_primary_failure_closes_span_as_error(mode: str) -> None:
    t = tree_of(RunnableLambda(fail).with_fallbacks([RunnableLambda(lambda _: "fb")]), "x", mode)
    primary, fallback = t.children(t.root)
    assert (primary.name, primary.status) == ("fail", "error")
    assert primary.error is not None
    assert (primary.error.type, primary.error.message) == ("ConnectionError", "primary is down")
    assert fallback.status == "ok"
    assert t.status == t.root.status == "ok"


def test_retry_that_succeeds_on_the_second_try_records_both_attempts() -> None:
    t = tree_of(RunnableLambda(flaky()).with_retry(stop_after_attempt=3), "x")
    attempts = t.children(t.root)
    assert [a.status for a in attempts] == ["error", "ok"]
    assert attempts[0].error is not None
    assert attempts[0].error.type == "TimeoutError"
    assert t.root.outputs == "second try"


@pytest.mark.parametrize("mode", ["stream", "astream"])
async def test_exception_mid_stream_closes_open_spans_as_error(mode: str) -> None:
    traced = trace(joke_chain() | RunnableGenerator(explode_mid_stream, aexplode_mid_stream))

    async def consume() -> list[str]:
        if mode == "stream":
            return list(traced.stream({"topic": "x"}))
        return await acollect(traced.astream({"topic": "x"}))

    with capture() as cap, pytest.raises(ValueError, match="stream broke at chunk 3"):
        await consume()
    (t,) = cap.traces
    assert_well_formed(t)
    assert t.status == "error"
    broken = t.span("explode_mid_stream")
    assert broken.status == "error"
    assert broken.error is not None
    assert broken.error.message == "stream broke at chunk 3"
    assert t.root.status == "error"
    assert t.span("ChatPromptTemplate").status == "ok"
    assert t.root.chunk_count == 3


async def test_consumer_breaking_after_two_chunks_cancels_what_was_running() -> None:
    with capture() as cap:
        seen = []
        async for chunk in trace(joke_chain()).astream({"topic": "x"}):
            seen.append(chunk)
            if len(seen) == 2:
                break
        assert len(cap.traces) == 1
    (t,) = cap.traces
    assert t.status == "cancelled"
    assert t.span("ChatPromptTemplate").status == "ok"
    assert t.root.status == "cancelled"
    assert t.root.chunk_count == 2
    assert {s.status for s in t.spans} == {"ok", "cancelled"}


async def test_fifty_concurrent_ainvokes_never_mix_spans() -> None:
    traced = trace(joke_chain())
    with capture() as cap:
        outputs = await asyncio.gather(*(traced.ainvoke({"topic": str(i)}) for i in range(50)))
    assert outputs == [JOKE] * 50
    assert len({t.trace_id for t in cap.traces}) == 50
    for t in cap.traces:
        assert_well_formed(t)
        assert len(t.spans) == 4
        assert t.root.inputs == {"topic": t.root.inputs["topic"]}


async def test_custom_events_land_on_the_span_that_dispatched_them() -> None:
    def sync_step(x: str) -> str:
        dispatch_custom_event("progress", {"pct": 50})
        return x

    async def async_step(x: str) -> str:
        await adispatch_custom_event("progress", {"pct": 100})
        return x

    chain = RunnableLambda(sync_step) | RunnableLambda(async_step)
    with capture() as cap:
        await trace(chain).ainvoke("go")
    (t,) = cap.traces
    assert [(e.name, e.data) for e in t.span("sync_step").events] == [
        ("progress", {"data": {"pct": 50}})
    ]
    assert [(e.name, e.data) for e in t.span("async_step").events] == [
        ("progress", {"data": {"pct": 100}})
    ]


def test_traced_runnable_nested_in_a_traced_runnable_is_one_trace() -> None:
    inner = trace(RunnableLambda(lambda x: x + "!"), name="inner")
    outer = trace(RunnableLambda(lambda x: x) | inner)
    with capture() as cap:
        assert outer.invoke("hi") == "hi!"
    (t,) = cap.traces
    assert (
        t.tree().shape() == {"RunnableSequence": [{"<lambda>": []}, {"<lambda>": []}]}
        or len(t.children(t.root)) == 2
    )
    assert {s.trace_id for s in t.spans} == {t.trace_id}


def test_streamed_step_inputs_come_from_its_end_event() -> None:
    t = tree_of(joke_chain(), {"topic": "x"}, "stream")
    parser = t.span("StrOutputParser")
    assert isinstance(parser.inputs, AIMessageChunk)
    assert parser.inputs.content == JOKE
