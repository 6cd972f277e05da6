"""LangGraph: a traced compiled `StateGraph` behaves exactly as untraced and records
LangChain's own run tree.

The graph has several nodes, a conditional edge, a node calling a traced sub-chain the
usual way (no config passed: LangChain carries the running config in a context variable)
and a node calling a chat model. Untraced means the whole graph, sub-chain included, runs
without lcel-trace. LangChain's run collector, attached to the same call, is the oracle
for the span tree (tests/test_fidelity.py); the chat model's `new_token` run events are the
oracle for whether it streamed, which tracing must never change.
"""

from __future__ import annotations

import asyncio
import itertools
import re
from collections.abc import Callable
from typing import Annotated, Any, TypedDict

import pytest
from langchain_core.language_models import FakeListChatModel, GenericFakeChatModel
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    AnyMessage,
    BaseMessage,
    HumanMessage,
)
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import Runnable, RunnableLambda
from langchain_core.tracers.run_collector import RunCollectorCallbackHandler
from langchain_core.tracers.schemas import Run
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.types import Command, interrupt

from lcel_trace import Trace, capture, trace
from tests.test_fidelity import (
    AsyncRunCollector,
    assert_matches_oracle,
    flatten,
    plain_outcome,
    run_both,
)

LONG_TOPIC = "parrots and the words they learn"  # classify routes it through `summarise`
SHORT_TOPIC = "owls"  # straight to `answer`
ANSWER = "red green blue"
SUMMARY = "talking birds"


class NodeFailedError(RuntimeError):
    """Raised by the node a test asks to fail."""


class State(TypedDict, total=False):
    topic: str
    route: str
    summary: str
    messages: Annotated[list[AnyMessage], add_messages]


def build_graph(*, trace_subchain: bool = True, fail_at: str | None = None) -> Runnable[Any, Any]:
    """classify -(conditional)-> summarise (a sub-chain) -> answer (a chat model) -> END,
    or classify -> answer for a short topic; `fail_at` names a node that raises."""
    subchain: Runnable[Any, str] = (
        ChatPromptTemplate.from_template("Summarise {topic}")
        | FakeListChatModel(responses=[SUMMARY])
        | StrOutputParser()
    )
    if trace_subchain:
        subchain = trace(subchain)
    model = GenericFakeChatModel(messages=itertools.cycle([AIMessage(content=ANSWER)]))

    def check(node: str) -> None:
        if node == fail_at:
            raise NodeFailedError(f"{node} failed")

    def classify(state: State) -> State:
        check("classify")
        return {"route": "long" if len(state["topic"]) > 10 else "short"}

    def summarise(state: State) -> State:
        check("summarise")
        return {"summary": subchain.invoke({"topic": state["topic"]})}

    async def asummarise(state: State) -> State:
        check("summarise")
        return {"summary": await subchain.ainvoke({"topic": state["topic"]})}

    def answer(state: State) -> State:
        check("answer")
        question = HumanMessage(content=state.get("summary", state["topic"]))
        return {"messages": [question, model.invoke([question])]}

    builder = StateGraph(State)
    builder.add_node("classify", classify)
    builder.add_node("summarise", RunnableLambda(summarise, afunc=asummarise))
    builder.add_node("answer", answer)
    builder.add_edge(START, "classify")
    builder.add_conditional_edges(
        "classify", lambda s: s["route"], {"long": "summarise", "short": "answer"}
    )
    builder.add_edge("summarise", "answer")
    builder.add_edge("answer", END)
    return builder.compile()


UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def normalised(value: Any, ids: dict[str, str] | None = None) -> Any:
    """The outcome with run and task ids (in message ids and `checkpoint_ns`) numbered in
    order of appearance, so two runs compare equal when their ids line up one to one."""
    ids = {} if ids is None else ids

    def number(match: re.Match[str]) -> str:
        return ids.setdefault(match.group(), f"<id{len(ids)}>")

    if isinstance(value, BaseMessage):
        return (type(value).__name__, value.content, normalised(value.id, ids))
    if isinstance(value, str):
        return UUID.sub(number, value)
    if isinstance(value, tuple | list):
        return type(value)(normalised(v, ids) for v in value)
    if isinstance(value, dict):
        return {k: normalised(v, ids) for k, v in value.items()}
    return value


CALLS = [
    ("invoke", None),
    ("ainvoke", None),
    *(
        (mode, stream_mode)
        for mode in ("stream", "astream")
        for stream_mode in ("values", "updates", "messages")
    ),
]
CALL_IDS = [f"{mode}-{stream_mode}" if stream_mode else mode for mode, stream_mode in CALLS]


def call_kwargs(stream_mode: str | None) -> dict[str, Any]:
    return {"stream_mode": stream_mode} if stream_mode else {}


@pytest.mark.parametrize("topic", [LONG_TOPIC, SHORT_TOPIC])
@pytest.mark.parametrize(("mode", "stream_mode"), CALLS, ids=CALL_IDS)
def test_traced_graph_gives_the_untraced_output_and_langchains_run_tree(
    mode: str, stream_mode: str | None, topic: str
) -> None:
    kwargs = call_kwargs(stream_mode)
    outcome, recorded, runs = run_both(build_graph(), {"topic": topic}, mode, **kwargs)
    plain = plain_outcome(build_graph(trace_subchain=False), {"topic": topic}, mode, **kwargs)
    assert normalised(outcome) == normalised(plain)
    assert_matches_oracle(recorded, runs)
    assert recorded.status == "ok"
    assert all(s.status == "ok" and s.end_ns >= s.start_ns for s in recorded.spans)


def path(recorded: Trace, span_id: str | None) -> tuple[str, ...]:
    """Names from the root down to the span."""
    if span_id is None:
        return ()
    span = next(s for s in recorded.spans if s.span_id == span_id)
    return (*path(recorded, span.parent_id), span.name)


@pytest.mark.parametrize(("mode", "stream_mode"), CALLS, ids=CALL_IDS)
def test_sub_chain_called_without_config_hangs_under_its_node_in_one_trace(
    mode: str, stream_mode: str | None
) -> None:
    _, recorded, _ = run_both(
        build_graph(), {"topic": LONG_TOPIC}, mode, **call_kwargs(stream_mode)
    )
    paths = {path(recorded, s.span_id) for s in recorded.spans}
    assert ("LangGraph", "summarise", "summarise", "RunnableSequence", "FakeListChatModel") in paths
    assert ("LangGraph", "answer", "GenericFakeChatModel") in paths
    assert {s.trace_id for s in recorded.spans} == {recorded.root.trace_id}


def tokens_streamed(runs: list[Run]) -> dict[str, int]:
    """Per model run name, how many tokens LangChain saw it stream."""
    return {
        r.name: sum(1 for e in r.events if e.get("name") == "new_token")
        for r in flatten(runs)
        if r.run_type == "llm"
    }


def plain_runs(mode: str, **kwargs: Any) -> list[Run]:
    """LangChain's run tree of the untraced graph (sub-chain untraced too)."""
    graph = build_graph(trace_subchain=False)
    collector: Any = AsyncRunCollector() if mode.startswith("a") else RunCollectorCallbackHandler()
    config: Any = {"callbacks": [collector]}
    value = {"topic": LONG_TOPIC}
    if mode == "invoke":
        graph.invoke(value, config, **kwargs)
    elif mode == "ainvoke":
        asyncio.run(graph.ainvoke(value, config, **kwargs))
    elif mode == "stream":
        list(graph.stream(value, config, **kwargs))
    else:

        async def consume() -> None:
            async for _ in graph.astream(value, config, **kwargs):
                pass

        asyncio.run(consume())
    return collector.traced_runs  # type: ignore[no-any-return]


@pytest.mark.parametrize(("mode", "stream_mode"), CALLS, ids=CALL_IDS)
def test_tracing_does_not_change_whether_the_models_stream(
    mode: str, stream_mode: str | None
) -> None:
    kwargs = call_kwargs(stream_mode)
    _, recorded, runs = run_both(build_graph(), {"topic": LONG_TOPIC}, mode, **kwargs)
    expected = tokens_streamed(plain_runs(mode, **kwargs))
    assert tokens_streamed(runs) == expected
    assert {s.name: s.chunk_count for s in recorded.spans if s.run_type == "chat_model"} == expected
    # only stream_mode="messages" makes LangGraph stream its models
    assert any(expected.values()) == (stream_mode == "messages")


@pytest.mark.parametrize("mode", ["stream", "astream"])
def test_messages_mode_streams_the_same_chunks_and_metadata_as_untraced(mode: str) -> None:
    outcome, _, _ = run_both(build_graph(), {"topic": LONG_TOPIC}, mode, stream_mode="messages")
    plain = plain_outcome(
        build_graph(trace_subchain=False), {"topic": LONG_TOPIC}, mode, stream_mode="messages"
    )
    assert [type(chunk).__name__ for chunk, _ in outcome] == [
        type(chunk).__name__ for chunk, _ in plain
    ]
    tokens = [chunk for chunk, _ in outcome if isinstance(chunk, AIMessageChunk)]
    assert "".join(str(chunk.content) for chunk in tokens) == SUMMARY + ANSWER
    assert len(tokens) > 2
    assert normalised(outcome) == normalised(plain)
    assert [meta["langgraph_node"] for _, meta in outcome] == [
        meta["langgraph_node"] for _, meta in plain
    ]


Caller = Callable[[Runnable[Any, Any]], Any]


def invoke_graph(graph: Runnable[Any, Any]) -> Any:
    return graph.invoke({"topic": LONG_TOPIC})


def ainvoke_graph(graph: Runnable[Any, Any]) -> Any:
    return asyncio.run(graph.ainvoke({"topic": LONG_TOPIC}))


def stream_graph(graph: Runnable[Any, Any]) -> Any:
    return list(graph.stream({"topic": LONG_TOPIC}, stream_mode="messages"))


def astream_graph(graph: Runnable[Any, Any]) -> Any:
    async def consume() -> list[Any]:
        return [c async for c in graph.astream({"topic": LONG_TOPIC}, stream_mode="updates")]

    return asyncio.run(consume())


CALLERS = [invoke_graph, ainvoke_graph, stream_graph, astream_graph]


@pytest.mark.parametrize("fail_at", ["classify", "summarise", "answer"])
@pytest.mark.parametrize("call", CALLERS, ids=lambda c: c.__name__)
def test_a_failing_node_gives_an_error_span_and_the_same_exception(
    call: Caller, fail_at: str
) -> None:
    with pytest.raises(NodeFailedError) as untraced:
        call(build_graph(trace_subchain=False, fail_at=fail_at))
    with capture() as cap, pytest.raises(NodeFailedError) as traced:
        call(trace(build_graph(fail_at=fail_at)))
    assert str(traced.value) == str(untraced.value) == f"{fail_at} failed"
    (recorded,) = cap.traces
    assert recorded.status == "error"
    node = next(
        s for s in recorded.spans if s.name == fail_at and s.parent_id == recorded.root.span_id
    )
    assert node.status == "error"
    assert node.error is not None
    assert node.error.type == f"{NodeFailedError.__module__}.NodeFailedError"
    assert node.error.message == f"{fail_at} failed"
    assert all(s.end_ns >= s.start_ns for s in recorded.spans)
    for span in recorded.spans:
        failed = span is recorded.root or fail_at in path(recorded, span.span_id)
        assert span.status == ("error" if failed else "ok"), span.name


@pytest.mark.parametrize(("mode", "stream_mode"), CALLS, ids=CALL_IDS)
def test_a_failing_node_matches_langchains_run_tree(mode: str, stream_mode: str | None) -> None:
    kwargs = call_kwargs(stream_mode)
    outcome, recorded, runs = run_both(
        build_graph(fail_at="answer"), {"topic": LONG_TOPIC}, mode, **kwargs
    )
    assert outcome == (NodeFailedError, "answer failed")
    assert_matches_oracle(recorded, runs)


@pytest.mark.parametrize("call", CALLERS, ids=lambda c: c.__name__)
def test_the_caller_gets_the_very_exception_the_node_raised(call: Caller) -> None:
    raised = NodeFailedError("this one")

    def boom(state: State) -> State:
        raise raised

    builder = StateGraph(State)
    builder.add_node("boom", boom)
    builder.add_edge(START, "boom")
    builder.add_edge("boom", END)
    with capture(), pytest.raises(NodeFailedError) as traced:
        call(trace(builder.compile()))
    assert traced.value is raised


class Question(TypedDict, total=False):
    topic: str
    reply: str


def interrupting_graph() -> Runnable[Any, Any]:
    """One node that asks a human (`interrupt`), checkpointed in memory."""

    def ask(state: Question) -> Question:
        return {"reply": str(interrupt(f"what about {state['topic']}?"))}

    builder = StateGraph(Question)
    builder.add_node("ask", ask)
    builder.add_edge(START, "ask")
    builder.add_edge("ask", END)
    return builder.compile(checkpointer=InMemorySaver())


INTERRUPT_ID = re.compile(r"id='[0-9a-f]{32}'")


@pytest.mark.parametrize("mode", ["invoke", "stream", "ainvoke", "astream"])
def test_interrupt_and_resume_behave_as_untraced_and_match_langchains_run_tree(mode: str) -> None:
    thread: Any = {"configurable": {"thread_id": "t"}}
    plain_graph = interrupting_graph().with_config(thread)
    plain = [
        plain_outcome(plain_graph, {"topic": "owls"}, mode),
        plain_outcome(plain_graph, Command(resume="hoot"), mode),
    ]
    traced_graph = interrupting_graph().with_config(thread)
    asked, asked_trace, asked_runs = run_both(traced_graph, {"topic": "owls"}, mode)
    resumed, resumed_trace, resumed_runs = run_both(traced_graph, Command(resume="hoot"), mode)
    assert [INTERRUPT_ID.sub("id", repr(o)) for o in (asked, resumed)] == [
        INTERRUPT_ID.sub("id", repr(o)) for o in plain
    ]
    assert "hoot" in repr(resumed)
    assert_matches_oracle(asked_trace, asked_runs)
    assert_matches_oracle(resumed_trace, resumed_runs)
    # LangGraph stops the node with GraphInterrupt and the graph returns normally
    assert asked_trace.status == resumed_trace.status == "ok"
    assert asked_trace.span("ask").status == "error"
    assert resumed_trace.span("ask").status == "ok"


def test_the_traced_graph_offers_the_graphs_state_api() -> None:
    from langgraph.checkpoint.memory import InMemorySaver
    from langgraph.graph import END, START, StateGraph

    class Counter(TypedDict):
        n: int

    builder = StateGraph(Counter)
    builder.add_node("inc", lambda s: {"n": s["n"] + 1})
    builder.add_edge(START, "inc")
    builder.add_edge("inc", END)
    graph = builder.compile(checkpointer=InMemorySaver())
    traced = trace(graph)
    config: Any = {"configurable": {"thread_id": "t1"}}
    assert traced.invoke({"n": 1}, config) == {"n": 2}
    assert traced.get_state(config).values == {"n": 2}
    assert set(traced.nodes) == set(graph.nodes)
    with pytest.raises(AttributeError):
        _ = traced.no_such_attribute
