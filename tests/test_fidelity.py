"""Fidelity: the span tree equals LangChain's own run tree, for every kind of runnable.

The oracle is LangChain's own run collector, attached to the very same call:
the same runs (by id), names, parent edges, run types and failures must appear in both.
A run still going when the call raised is closed with the call's exception (the span
says `closed_at_trace_end`), whatever LangChain reports for it afterwards.
Where LangChain itself reports a run without its parent (with_fallbacks under invoke),
lcel-trace adopts the run under the innermost running run and says so with the span
attribute `parent_inferred`; the oracle accepts exactly that difference.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Iterator
from typing import Any, TypedDict

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from langchain_core.documents import Document
from langchain_core.language_models import (
    FakeListChatModel,
    FakeListLLM,
    FakeStreamingListLLM,
    GenericFakeChatModel,
)
from langchain_core.messages import AIMessage
from langchain_core.output_parsers import JsonOutputParser, PydanticOutputParser, StrOutputParser
from langchain_core.prompts import ChatPromptTemplate, PromptTemplate
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import (
    ConfigurableField,
    Runnable,
    RunnableBranch,
    RunnableGenerator,
    RunnableLambda,
    RunnableParallel,
    RunnablePassthrough,
)
from langchain_core.tools import StructuredTool, tool
from langchain_core.tracers.base import AsyncBaseTracer
from langchain_core.tracers.run_collector import RunCollectorCallbackHandler
from langchain_core.tracers.schemas import Run
from langgraph.graph import END, START, StateGraph
from pydantic import BaseModel

from lcel_trace import Trace, capture, trace

ORACLE_RUN_TYPE = {"chat_model": "llm", "lambda": "chain", "custom": "chain"}


def flatten(runs: list[Run]) -> list[Run]:
    out: list[Run] = []
    stack = list(runs)
    while stack:
        run = stack.pop()
        out.append(run)
        stack.extend(run.child_runs)
    return out


def assert_matches_oracle(recorded: Trace, runs: list[Run]) -> None:
    """Same runs, names, parents, run types and failures as LangChain's own tracer."""
    oracle = {str(r.id): r for r in flatten(runs)}
    spans = {s.span_id: s for s in recorded.spans}
    assert set(spans) == set(oracle), recorded.tree().render()
    for span_id, span in spans.items():
        run = oracle[span_id]
        assert span.name == run.name
        assert ORACLE_RUN_TYPE.get(span.run_type, span.run_type) == run.run_type
        expected_parent = str(run.parent_run_id) if run.parent_run_id else None
        if span is recorded.root:
            assert expected_parent is None or expected_parent not in spans
        elif expected_parent is None:
            assert span.attributes.get("parent_inferred") is True
            assert span.parent_id in spans
        else:
            assert span.parent_id == expected_parent
        failed = run.error is not None and "GeneratorExit" not in (run.error or "")
        if span.attributes.get("closed_at_trace_end"):
            # still running when the call ended (a sibling branch in a worker thread):
            # closed then with the call's exception, or as incomplete if the call
            # succeeded (a fallback took over), whatever LangChain saw afterwards
            expected = recorded.status if recorded.status != "ok" else "incomplete"
            assert span.status == expected
        else:
            assert (span.status == "error") == failed, (span.name, span.status, run.error)
        assert span.end_ns >= span.start_ns


class AsyncRunCollector(AsyncBaseTracer):
    """LangChain's tracer machinery, async flavour: keeps every finished root run."""

    def __init__(self) -> None:
        super().__init__()
        self.traced_runs: list[Run] = []

    async def _persist_run(self, run: Run) -> None:
        self.traced_runs.append(run)


def run_both(
    runnable: Runnable[Any, Any], value: Any, mode: str, **kwargs: Any
) -> tuple[Any, Trace, list[Run]]:
    """Call the traced runnable once, with LangChain's own run collector in the same
    call's callbacks (its async flavour for async calls); `kwargs` go to the call
    (a LangGraph `stream_mode`, say)."""
    traced = trace(runnable)
    collector: Any = AsyncRunCollector() if mode.startswith("a") else RunCollectorCallbackHandler()
    config: Any = {"callbacks": [collector]}
    outcome: Any
    with capture() as cap:
        try:
            if mode == "invoke":
                outcome = traced.invoke(value, config, **kwargs)
            elif mode == "batch":
                outcome = traced.batch([value], config, **kwargs)[0]
            elif mode == "stream":
                outcome = list(traced.stream(value, config, **kwargs))
            elif mode == "ainvoke":
                outcome = asyncio.run(traced.ainvoke(value, config, **kwargs))
            else:

                async def consume() -> list[Any]:
                    return [c async for c in traced.astream(value, config, **kwargs)]

                outcome = asyncio.run(consume())
        except Exception as exc:
            outcome = (type(exc), str(exc))
    (recorded,) = cap.traces
    return outcome, recorded, collector.traced_runs


def plain_outcome(runnable: Runnable[Any, Any], value: Any, mode: str, **kwargs: Any) -> Any:
    try:
        if mode == "invoke":
            return runnable.invoke(value, **kwargs)
        if mode == "batch":
            return runnable.batch([value], **kwargs)[0]
        if mode == "stream":
            return list(runnable.stream(value, **kwargs))
        if mode == "ainvoke":
            return asyncio.run(runnable.ainvoke(value, **kwargs))

        async def consume() -> list[Any]:
            return [c async for c in runnable.astream(value, **kwargs)]

        return asyncio.run(consume())
    except Exception as exc:
        return (type(exc), str(exc))


INTERLEAVED_STREAMS = {"parallel two deep"}
"""Cases whose streamed chunks come from concurrent branches, in whatever order they finish."""


def comparable(value: Any) -> Any:
    if isinstance(value, list):
        return [comparable(v) for v in value]
    if isinstance(value, AIMessage) or (hasattr(value, "id") and hasattr(value, "content")):
        return (type(value).__name__, value.content)
    return value


# -- the pieces ----------------------------------------------------------------------------


class Library(BaseRetriever):
    def _get_relevant_documents(self, query: str, *, run_manager: Any) -> list[Document]:
        return [Document(page_content=f"about {query}")]


@tool
def shout(text: str) -> str:
    """Upper-case the text."""
    return text.upper()


@tool
async def ashout(text: str) -> str:
    """Upper-case the text, asynchronously."""
    return text.upper()


@tool
def broken_tool(text: str) -> str:
    """Always fails."""
    raise ValueError("tool broke")


def add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


def chat() -> GenericFakeChatModel:
    return GenericFakeChatModel(messages=itertools.cycle([AIMessage(content="red green blue")]))


def gen_upper(chunks: Iterator[str]) -> Iterator[str]:
    for chunk in chunks:
        yield chunk.upper()


async def agen_upper(chunks: AsyncIterator[str]) -> AsyncIterator[str]:
    async for chunk in chunks:
        yield chunk.upper()


async def aecho(x: Any) -> Any:
    return x


def fail(_: Any) -> Any:
    raise RuntimeError("step failed")


def flaky() -> Runnable[Any, Any]:
    """Fails its first call, then works (a fresh counter for every chain built)."""
    calls = itertools.count()

    def call(x: Any) -> Any:
        if next(calls) == 0:
            raise TimeoutError("try again")
        return x

    return RunnableLambda(call, name="flaky")


class Country(BaseModel):
    name: str
    population: int


class Draft(TypedDict, total=False):
    topic: str
    route: str
    text: str


def state_graph(*, fail: bool = False) -> Runnable[Any, Any]:
    """A compiled LangGraph: a node, a conditional edge, a node running a sub-chain
    (no config passed), a last node that fails when asked. No chat model: the matrix also
    feeds test_event_api_equivalence, where `astream_events` makes a model inside a graph
    stream and `trace()` leaves it invoked (tests/test_langgraph.py covers models)."""
    subchain = PromptTemplate.from_template("about {topic}") | RunnableLambda(lambda p: p.text)

    def finish(state: Draft) -> Draft:
        if fail:
            raise RuntimeError("node failed")
        return {"text": state.get("text", state["topic"]).upper()}

    builder = StateGraph(Draft)
    builder.add_node("route", lambda s: {"route": "long" if len(s["topic"]) > 3 else "short"})
    builder.add_node("write", lambda s: {"text": subchain.invoke({"topic": s["topic"]})})
    builder.add_node("finish", finish)
    builder.add_edge(START, "route")
    builder.add_conditional_edges(
        "route", lambda s: s["route"], {"long": "write", "short": "finish"}
    )
    builder.add_edge("write", "finish")
    builder.add_edge("finish", END)
    return builder.compile()


COUNTRIES = (
    '{"countries": [{"name": "France", "population": 67}, {"name": "Spain", "population": 47}]}'
)

MATRIX: dict[str, tuple[Any, Any]] = {
    "generic chat model": (chat, "hi"),
    "list chat model": (lambda: FakeListChatModel(responses=["one two"]), "hi"),
    "llm": (lambda: FakeListLLM(responses=["plain text"]), "hi"),
    "streaming llm": (lambda: FakeStreamingListLLM(responses=["streamed text"]), "hi"),
    "chat prompt | model | str parser": (
        lambda: ChatPromptTemplate.from_template("{q}") | chat() | StrOutputParser(),
        {"q": "x"},
    ),
    "prompt template | llm": (
        lambda: PromptTemplate.from_template("{q}") | FakeListLLM(responses=["r"]),
        {"q": "x"},
    ),
    "json parser streaming countries": (
        lambda: FakeListChatModel(responses=[COUNTRIES]) | JsonOutputParser(),
        "countries and populations",
    ),
    "pydantic parser": (
        lambda: (
            FakeListChatModel(responses=['{"name": "France", "population": 67}'])
            | PydanticOutputParser(pydantic_object=Country)
        ),
        "a country",
    ),
    "sync, async, generator and async generator lambdas": (
        lambda: (
            RunnableLambda(lambda x: x)
            | RunnableLambda(lambda x: x, afunc=aecho)
            | RunnableLambda(gen_upper, afunc=agen_upper)
        ),
        "abc",
    ),
    "passthrough and assign": (
        lambda: RunnablePassthrough() | RunnablePassthrough.assign(n=lambda d: len(d["q"])),
        {"q": "four"},
    ),
    "parallel two deep": (
        lambda: RunnableParallel(
            a=RunnableLambda(str),
            b=RunnableParallel(c=RunnableLambda(len), d=RunnablePassthrough()),
        ),
        "xyz",
    ),
    "branch": (
        lambda: RunnableBranch(
            (lambda x: x > 0, RunnableLambda(lambda x: "pos")), RunnableLambda(lambda x: "neg")
        ),
        5,
    ),
    "fallbacks": (lambda: RunnableLambda(fail).with_fallbacks([RunnableLambda(str)]), 1),
    "retry": (lambda: flaky().with_retry(stop_after_attempt=3), "r"),
    "with_config": (
        lambda: RunnableLambda(str).with_config(run_name="named", tags=["t"], metadata={"m": 1}),
        7,
    ),
    "bind": (lambda: chat().bind(stop=["never"]), "hi"),
    "configurable fields": (
        lambda: FakeListLLM(responses=["a"]).configurable_fields(
            responses=ConfigurableField(id="responses")
        ),
        "hi",
    ),
    "sync tool": (lambda: shout, "loud"),
    "async tool": (lambda: ashout, "loud"),
    "failing tool": (lambda: broken_tool, "x"),
    "structured tool": (lambda: StructuredTool.from_function(add), {"a": 1, "b": 2}),
    "retriever": (Library, "parrots"),
    "langgraph state graph": (state_graph, {"topic": "parrots"}),
    "langgraph failing node": (lambda: state_graph(fail=True), {"topic": "parrots"}),
    "failing step mid-sequence": (
        lambda: RunnableLambda(str) | RunnableLambda(fail) | RunnableLambda(str),
        1,
    ),
}
ASYNC_ONLY_BROKEN = {"sync, async, generator and async generator lambdas"}


@pytest.mark.parametrize("mode", ["invoke", "batch", "stream", "ainvoke", "astream"])
@pytest.mark.parametrize("case", sorted(MATRIX))
def test_span_tree_equals_langchains_run_tree_and_output_is_unchanged(case: str, mode: str) -> None:
    build, value = MATRIX[case]
    outcome, recorded, runs = run_both(build(), value, mode)
    plain = plain_outcome(build(), value, mode)
    if case in INTERLEAVED_STREAMS and mode in ("stream", "astream"):
        # parallel branches stream as they finish: LangChain's own order varies run to run
        assert sorted(map(repr, comparable(outcome))) == sorted(map(repr, comparable(plain)))
    else:
        assert comparable(outcome) == comparable(plain)
    assert_matches_oracle(recorded, runs)


def test_with_config_names_tags_and_metadata_appear_on_the_span() -> None:
    _, recorded, _ = run_both(MATRIX["with_config"][0](), 7, "invoke")
    assert recorded.root.name == "named"
    assert recorded.root.tags == ("t",)
    assert recorded.root.metadata == {"m": 1}


def test_json_parser_streams_partial_json_and_the_parser_span_shows_it() -> None:
    outcome, recorded, _ = run_both(MATRIX["json parser streaming countries"][0](), "q", "stream")
    assert outcome[-1] == {
        "countries": [{"name": "France", "population": 67}, {"name": "Spain", "population": 47}]
    }
    assert len(outcome) > 3
    parser = recorded.span("JsonOutputParser")
    assert parser.chunk_count == len(outcome)
    assert parser.outputs == outcome[-1]


def test_message_chunks_add_up_to_the_invoked_message() -> None:
    chunks = list(trace(chat()).stream("hi"))
    total: Any = chunks[0]
    for chunk in chunks[1:]:
        total = total + chunk
    assert total.content == trace(chat()).invoke("hi").content


# -- random chain shapes -------------------------------------------------------------------


def leaf(kind: str, index: int) -> Runnable[Any, Any]:
    if kind == "fail":
        return RunnableLambda(fail, name=f"fail{index}")
    if kind == "gen":
        return RunnableGenerator(gen_upper, agen_upper, name=f"gen{index}")
    return RunnableLambda(lambda x: f"{x}.", name=f"step{index}")


shapes = st.recursive(
    st.sampled_from(["step", "step", "gen", "fail"]),
    lambda inner: st.tuples(
        st.sampled_from(["seq", "par", "fallback"]), st.lists(inner, min_size=1, max_size=3)
    ),
    max_leaves=8,
)


def build_shape(shape: Any, counter: Iterator[int]) -> Runnable[Any, Any]:
    if isinstance(shape, str):
        return leaf(shape, next(counter))
    kind, parts = shape
    built = [build_shape(p, counter) for p in parts]
    if kind == "seq" or len(built) == 1:
        sequence = built[0]
        for step in built[1:]:
            sequence = sequence | step
        return sequence
    if kind == "par":
        # branches finish in any order; sorting keeps the output comparable
        return RunnableParallel({f"k{i}": b for i, b in enumerate(built)}) | RunnableLambda(
            lambda d: sorted(d.items())
        )
    return built[0].with_fallbacks(built[1:])


@settings(max_examples=60, deadline=None)
@given(shape=shapes, mode=st.sampled_from(["invoke", "stream", "astream"]))
def test_random_chain_shapes_keep_parity_tree_and_every_span_ends(shape: Any, mode: str) -> None:
    runnable = build_shape(shape, itertools.count())
    outcome, recorded, runs = run_both(runnable, "x", mode)
    assert comparable(outcome) == comparable(
        plain_outcome(build_shape(shape, itertools.count()), "x", mode)
    )
    assert_matches_oracle(recorded, runs)
    assert all(s.status in ("ok", "error", "cancelled", "incomplete") for s in recorded.spans)
