"""One OpenTelemetry tree: while a run executes, its span is OpenTelemetry's current span,
so the spans other instrumentations make (here httpx's, around `ChatOpenAI`'s real HTTP
requests to the bundled OpenAI-compatible server) nest under the step that caused them,
and the `traceparent` the server receives names them. Real instrumentation packages, a
real HTTP server, the SDK's in-memory span exporter."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from typing import Any

import pytest
from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import RunnableLambda
from langchain_openai import ChatOpenAI
from opentelemetry import context as otel_context
from opentelemetry import trace as otel_trace
from opentelemetry.instrumentation.httpx import HTTPX2ClientInstrumentor, HTTPXClientInstrumentor
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from lcel_trace import flush_all, trace
from lcel_trace.exporters import OtelExporter
from lcel_trace.testing.openai_server import OpenAIServer

REPLY = "Polly wants a punchline."


@pytest.fixture(scope="module")
def provider() -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    instrumentors = [HTTPXClientInstrumentor(), HTTPX2ClientInstrumentor()]
    for instrumentor in instrumentors:
        instrumentor.instrument(tracer_provider=provider)
    try:
        yield provider, memory
    finally:
        for instrumentor in instrumentors:
            instrumentor.uninstrument()


@pytest.fixture(scope="module")
def server() -> Iterator[OpenAIServer]:
    with OpenAIServer([REPLY] * 50) as server:
        yield server


@pytest.fixture
def spans(
    provider: tuple[TracerProvider, InMemorySpanExporter],
) -> Any:
    memory = provider[1]
    memory.clear()

    def finished() -> list[ReadableSpan]:
        assert flush_all(30)
        return list(memory.get_finished_spans())

    return finished


def chain_for(provider: TracerProvider, server: OpenAIServer) -> Any:
    model = ChatOpenAI(
        base_url=server.base_url, api_key="test", model="fake-gpt", stream_usage=True
    )
    prompt = ChatPromptTemplate.from_template("Tell me a joke about {topic}")
    return trace(prompt | model | StrOutputParser(), exporters=[OtelExporter(provider)])


def parent_name(span: ReadableSpan, by_id: dict[int, ReadableSpan]) -> str | None:
    if span.parent is None:
        return None
    parent = by_id.get(span.parent.span_id)
    return parent.name if parent is not None else "<outside>"


def http_spans(spans: list[ReadableSpan]) -> list[ReadableSpan]:
    return [s for s in spans if s.name.startswith("POST")]


def assert_http_under_chat(spans: list[ReadableSpan], calls: int) -> None:
    by_id = {s.context.span_id: s for s in spans}
    posts = http_spans(spans)
    assert len(posts) == calls, [s.name for s in spans]
    for post in posts:
        assert parent_name(post, by_id) == "chat fake-gpt", [
            (s.name, parent_name(s, by_id)) for s in spans
        ]
        chat = by_id[post.parent.span_id]  # type: ignore[union-attr]
        assert post.context.trace_id == chat.context.trace_id
    assert len({s.context.trace_id for s in spans}) == calls


@pytest.mark.parametrize("entry", ["invoke", "stream"])
def test_the_model_http_span_nests_under_the_chat_span_sync(
    provider: Any, server: OpenAIServer, spans: Any, entry: str
) -> None:
    chain = chain_for(provider[0], server)
    if entry == "invoke":
        assert chain.invoke({"topic": "parrots"}) == REPLY
    else:
        assert "".join(chain.stream({"topic": "parrots"})) == REPLY
    assert_http_under_chat(spans(), 1)


# one loop for the async tests: langchain-openai caches its async HTTP client per URL
@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.parametrize("entry", ["ainvoke", "astream"])
async def test_the_model_http_span_nests_under_the_chat_span_async(
    provider: Any, server: OpenAIServer, spans: Any, entry: str
) -> None:
    chain = chain_for(provider[0], server)
    if entry == "ainvoke":
        assert await chain.ainvoke({"topic": "parrots"}) == REPLY
    else:
        assert "".join([c async for c in chain.astream({"topic": "parrots"})]) == REPLY
    assert_http_under_chat(spans(), 1)


def test_each_batch_input_is_one_trace_with_its_http_span_under_its_chat_span(
    provider: Any, server: OpenAIServer, spans: Any
) -> None:
    chain = chain_for(provider[0], server)
    assert chain.batch([{"topic": t} for t in ("a", "b", "c")]) == [REPLY] * 3
    assert_http_under_chat(spans(), 3)


@pytest.mark.asyncio(loop_scope="module")
async def test_each_abatch_input_is_one_trace_with_its_http_span_under_its_chat_span(
    provider: Any, server: OpenAIServer, spans: Any
) -> None:
    chain = chain_for(provider[0], server)
    assert await chain.abatch([{"topic": t} for t in ("a", "b", "c")]) == [REPLY] * 3
    assert_http_under_chat(spans(), 3)


@pytest.mark.asyncio(loop_scope="module")
async def test_a_cancelled_stream_restores_the_context_of_its_task(
    provider: Any, server: OpenAIServer, spans: Any
) -> None:
    before = otel_context.get_current()
    started = asyncio.Event()

    async def consume() -> None:
        async for _ in chain_for(provider[0], server).astream({"topic": "parrots"}):
            started.set()
            await asyncio.Event().wait()  # until cancelled

    task = asyncio.create_task(consume())
    await asyncio.wait_for(started.wait(), 30)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert otel_context.get_current() is before
    finished = spans()
    statuses = {s.attributes.get("lcel.status") for s in finished if "lcel.status" in s.attributes}
    assert "cancelled" in statuses
    assert not otel_trace.get_current_span().get_span_context().is_valid


@pytest.mark.asyncio(loop_scope="module")
async def test_concurrent_calls_do_not_cross(
    provider: Any, server: OpenAIServer, spans: Any
) -> None:
    chain = chain_for(provider[0], server)
    await asyncio.gather(*(chain.ainvoke({"topic": str(i)}) for i in range(6)))
    assert_http_under_chat(spans(), 6)


def test_the_server_receives_a_traceparent_under_the_chat_span(
    provider: Any, server: OpenAIServer, spans: Any
) -> None:
    before = len(server.request_headers)
    chain_for(provider[0], server).invoke({"topic": "parrots"})
    finished = spans()
    (headers,) = server.request_headers[before:]
    _, trace_id, span_id, _ = headers["traceparent"].split("-")
    by_id = {s.context.span_id: s for s in finished}
    post = by_id[int(span_id, 16)]
    assert post.name.startswith("POST")
    assert f"{post.context.trace_id:032x}" == trace_id
    assert parent_name(post, by_id) == "chat fake-gpt"


def test_a_span_the_user_starts_in_a_step_nests_under_it_and_context_is_restored(
    provider: Any, spans: Any
) -> None:
    tracer = provider[0].get_tracer("app")

    def step(x: str) -> str:
        with tracer.start_as_current_span("user work"):
            return x

    class SqlRetriever(BaseRetriever):
        def _get_relevant_documents(
            self, query: str, *, run_manager: CallbackManagerForRetrieverRun
        ) -> list[Document]:
            with tracer.start_as_current_span("SELECT docs"):
                rows = sqlite3.connect(":memory:").execute("SELECT ?", (query,)).fetchall()
            return [Document(page_content=str(row[0])) for row in rows]

    before = otel_context.get_current()
    chain = trace(RunnableLambda(step) | SqlRetriever(), exporters=[OtelExporter(provider[0])])
    assert [d.page_content for d in chain.invoke("q")] == ["q"]
    assert otel_context.get_current() is before
    assert not otel_trace.get_current_span().get_span_context().is_valid
    finished = spans()
    by_id = {s.context.span_id: s for s in finished}
    parents = {s.name: parent_name(s, by_id) for s in finished}
    assert parents["user work"] == "step"
    assert parents["SELECT docs"] == "SqlRetriever"


def test_an_abandoned_stream_leaves_no_run_context_behind(
    provider: Any, server: OpenAIServer, spans: Any
) -> None:
    before = otel_context.get_current()
    stream = chain_for(provider[0], server).stream({"topic": "parrots"})
    next(stream)
    stream.close()
    assert otel_context.get_current() is before
    assert not otel_trace.get_current_span().get_span_context().is_valid


def test_an_agent_served_by_fastapi_is_one_trace_from_the_request_to_every_http_call(
    provider: Any,
) -> None:
    """A LangGraph ReAct agent behind FastAPI (ASGI instrumentation): the request's span,
    the graph, its nodes, each model call's HTTP span under its `chat` span, and the
    tool's own HTTP call (requests instrumentation) under `execute_tool`."""
    import requests
    from fastapi import FastAPI
    from langchain_core.tools import tool
    from langgraph.graph import START, MessagesState, StateGraph
    from langgraph.prebuilt import ToolNode, tools_condition
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
    from opentelemetry.instrumentation.requests import RequestsInstrumentor
    from starlette.testclient import TestClient

    from lcel_trace.testing.openai_server import Reply, ToolCall

    tool_reply = Reply(tool_calls=(ToolCall("weather", '{"city": "Oslo"}'),))
    with OpenAIServer([tool_reply, "Sunny in Oslo."] * 3) as server:

        @tool
        def weather(city: str) -> str:
            """The weather in a city (asks a service over HTTP)."""
            models = requests.get(f"{server.base_url}/models", timeout=30)
            return f"sunny in {city} ({models.status_code})"

        model = ChatOpenAI(base_url=server.base_url, api_key="test", model="fake-gpt")
        bound = model.bind_tools([weather])

        async def call_model(state: MessagesState) -> dict[str, Any]:
            return {"messages": [await bound.ainvoke(state["messages"])]}

        graph = StateGraph(MessagesState)
        graph.add_node("agent", call_model)
        graph.add_node("tools", ToolNode([weather]))
        graph.add_edge(START, "agent")
        graph.add_conditional_edges("agent", tools_condition)
        graph.add_edge("tools", "agent")
        agent = trace(
            graph.compile(),
            exporters=[OtelExporter(provider[0])],
            name="agent",
        )
        app = FastAPI()

        @app.get("/ask")
        async def ask(q: str) -> dict[str, str]:
            state = await agent.ainvoke({"messages": [("user", q)]})
            return {"answer": state["messages"][-1].content}

        FastAPIInstrumentor.instrument_app(app, tracer_provider=provider[0])
        requests_instrumentor = RequestsInstrumentor()
        requests_instrumentor.instrument(tracer_provider=provider[0])
        provider[1].clear()
        try:
            with TestClient(app) as client:
                response = client.get("/ask", params={"q": "weather in Oslo?"})
        finally:
            requests_instrumentor.uninstrument()
            FastAPIInstrumentor.uninstrument_app(app)
        assert response.json() == {"answer": "Sunny in Oslo."}

    assert flush_all(30)
    finished = list(provider[1].get_finished_spans())
    by_id = {s.context.span_id: s for s in finished}
    server_spans = [s for s in finished if s.name == "GET /ask"]
    assert len(server_spans) == 1, [s.name for s in finished]
    (request,) = server_spans
    tree = "\n".join(f"{s.name} <- {parent_name(s, by_id)}" for s in finished)
    print(tree)
    under_request = [s for s in finished if s.context.trace_id == request.context.trace_id]
    model_posts = [s for s in finished if s.name == "POST"]
    assert len(model_posts) == 2, tree
    assert {parent_name(s, by_id) for s in model_posts} == {"chat fake-gpt"}, tree
    (tool_get,) = [s for s in finished if s.name == "GET"]
    assert parent_name(tool_get, by_id) == "execute_tool weather", tree
    # one trace: every span reaches the request's span through its parents
    for span in under_request:
        walk = span
        while walk.parent is not None and walk.parent.span_id in by_id:
            walk = by_id[walk.parent.span_id]
        assert walk is request or walk.name == "GET /ask http send", tree
    assert {s.context.trace_id for s in finished if s.name.startswith(("POST", "GET", "chat"))} == {
        request.context.trace_id
    }, tree
