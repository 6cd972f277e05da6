"""A LangGraph ReAct-style agent, recorded once against a real HTTP model server, re-runs
offline from its cassette: same final answer, same trace tree, no HTTP request.

The agent is the usual loop: a `ChatOpenAI` node with bound tools, a `ToolNode` holding
a plain tool and a retriever tool, `tools_condition` between them. The bundled
OpenAI-compatible server scripts the model's answers (two tool calls, then the answer).
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.messages import AnyMessage, BaseMessage, HumanMessage
from langchain_core.retrievers import BaseRetriever
from langchain_core.tools import create_retriever_tool, tool
from langchain_openai import ChatOpenAI
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.prebuilt import ToolNode, tools_condition

from lcel_trace import Trace, capture, trace
from lcel_trace.cassette import CassetteMiss, cassette
from lcel_trace.testing.openai_server import OpenAIServer, Reply, ToolCall

QUESTION = "How many words can a parrot learn, plus three?"
SCRIPT = (
    Reply(tool_calls=(ToolCall("search_docs", '{"query": "parrot vocabulary"}'),)),
    Reply(tool_calls=(ToolCall("add", '{"a": 100, "b": 3}'),)),
    Reply("A parrot can learn about 100 words; plus three makes 103."),
)


SIDE_EFFECTS: list[str] = []
"""What the tools and the retriever did: a replay with tools replayed must leave it alone."""


class ParrotDocs(BaseRetriever):
    """A small in-memory retriever: the agent's knowledge base."""

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun
    ) -> list[Document]:
        SIDE_EFFECTS.append(f"search {query}")
        return [Document("Grey parrots learn about 100 words.", metadata={"source": "birds"})]


@tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    SIDE_EFFECTS.append(f"add {a} {b}")
    return a + b


def build_agent(
    base_url: str, *, asynchronous: bool = False
) -> CompiledStateGraph[Any, Any, Any, Any]:
    """The ReAct loop; with `asynchronous`, its model node awaits `ainvoke` (and the
    tool node, driven by `astream`, runs the tools' async paths)."""
    search = create_retriever_tool(ParrotDocs(), "search_docs", "Search the parrot notes.")
    tools = [search, add]
    model = ChatOpenAI(
        base_url=base_url, api_key="sk-test", model="fake-gpt", max_retries=0, stream_usage=True
    ).bind_tools(tools)

    def agent(state: MessagesState) -> dict[str, list[BaseMessage]]:
        return {"messages": [model.invoke(state["messages"])]}

    async def aagent(state: MessagesState) -> dict[str, list[BaseMessage]]:
        return {"messages": [await model.ainvoke(state["messages"])]}

    graph = StateGraph(MessagesState)
    graph.add_node("agent", aagent if asynchronous else agent)
    graph.add_node("tools", ToolNode(tools))
    graph.add_edge(START, "agent")
    graph.add_conditional_edges("agent", tools_condition)
    graph.add_edge("tools", "agent")
    return graph.compile()


def without_ids(messages: list[AnyMessage]) -> list[dict[str, Any]]:
    """Messages as data; ids of human and tool messages are fresh uuids on every run
    (LangGraph's `add_messages`), so they are left out; AI message ids are kept."""
    return [m.model_dump(exclude={"id"} if m.type != "ai" else set()) for m in messages]


def tree_of(recorded: Trace) -> list[tuple[Any, ...]]:
    """Each span, in start order, as (path of names from the root, run type, tokens,
    status, chunks)."""
    names = {s.span_id: s.name for s in recorded.spans}
    by_id = {s.span_id: s for s in recorded.spans}

    def path(span_id: str) -> tuple[str, ...]:
        span = by_id[span_id]
        parent = span.parent_id
        return (*path(parent), span.name) if parent in names else (span.name,)

    return [
        (path(s.span_id), s.run_type, s.usage, s.status, s.chunk_count)
        for s in sorted(recorded.spans, key=lambda s: s.start_ns)
    ]


@dataclass
class Recorded:
    path: Path
    server: OpenAIServer
    output: dict[str, Any]
    trace: Trace
    live_s: float


@pytest.fixture
def recorded(tmp_path: Path) -> Recorded:
    """The agent run once live inside a cassette (mode "once", no file yet: records),
    then the server is stopped."""
    path = tmp_path / "cassettes" / "agent.jsonl"
    with OpenAIServer(SCRIPT) as server:
        agent = trace(build_agent(server.base_url))
        with capture() as cap, cassette(path) as tape:
            started = time.perf_counter()
            output = agent.invoke({"messages": [HumanMessage(QUESTION)]})
            live_s = time.perf_counter() - started
        assert tape.recorded == 3
        assert len(server.requests) == 3
    return Recorded(path, server, output, cap.traces[0], live_s)


def test_agent_replays_offline_with_the_same_answer_tree_and_no_request(
    recorded: Recorded, capsys: pytest.CaptureFixture[str]
) -> None:
    agent = trace(build_agent(recorded.server.base_url))  # the server is stopped
    with capture() as cap, cassette(recorded.path, "replay") as tape:
        started = time.perf_counter()
        output = agent.invoke({"messages": [HumanMessage(QUESTION)]})
        replay_s = time.perf_counter() - started
    assert tape.replayed == 3
    assert len(recorded.server.requests) == 3  # none since recording
    assert without_ids(output["messages"]) == without_ids(recorded.output["messages"])
    assert output["messages"][-1].content == SCRIPT[-1].content
    replayed = cap.traces[0]
    assert tree_of(replayed) == tree_of(recorded.trace)
    names = {s.name for s in replayed.spans}
    assert {"ChatOpenAI", "search_docs", "ParrotDocs", "add", "tools", "agent"} <= names
    with capsys.disabled():
        print(
            f"\ncassette agent: live {recorded.live_s * 1e3:.1f} ms, "
            f"replay {replay_s * 1e3:.1f} ms ({recorded.live_s / replay_s:.1f}x)"
        )


def test_tools_and_retrievers_replay_too_so_their_side_effects_do_not_run(
    tmp_path: Path,
) -> None:
    path = tmp_path / "agent-tools.jsonl"
    everything = ("models", "tools", "retrievers")
    with OpenAIServer(SCRIPT) as server:
        agent = trace(build_agent(server.base_url))
        SIDE_EFFECTS.clear()
        with capture() as live_cap, cassette(path, replay=everything) as tape:
            live = agent.invoke({"messages": [HumanMessage(QUESTION)]})
        assert tape.recorded == 6  # three model calls, two tools, the retriever
        assert SIDE_EFFECTS == ["search parrot vocabulary", "add 100 3"]
    live_tree = tree_of(live_cap.traces[0])

    SIDE_EFFECTS.clear()
    with capture() as cap, cassette(path, "replay", replay=everything) as tape:
        replayed = agent.invoke({"messages": [HumanMessage(QUESTION)]})
    assert SIDE_EFFECTS == []
    assert tape.replayed == 5  # the retriever tool answers without calling its retriever
    assert without_ids(replayed["messages"]) == without_ids(live["messages"])
    assert tree_of(cap.traces[0]) == [row for row in live_tree if row[0][-1] != "ParrotDocs"]

    SIDE_EFFECTS.clear()
    with capture() as cap, cassette(path, "replay", replay=("models", "retrievers")) as tape:
        replayed = agent.invoke({"messages": [HumanMessage(QUESTION)]})
    assert SIDE_EFFECTS == ["add 100 3"]  # tools run, the retriever is replayed
    assert tape.replayed == 4
    assert without_ids(replayed["messages"]) == without_ids(live["messages"])
    assert tree_of(cap.traces[0]) == live_tree

    listed = subprocess.run(
        [sys.executable, "-m", "lcel_trace", "cassette", str(path)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert listed.stdout.startswith("6 recorded calls, 6 distinct requests")
    assert "tool add" in listed.stdout
    assert "retriever ParrotDocs" in listed.stdout


def test_agent_replays_under_astream_with_the_recorded_chunks(tmp_path: Path) -> None:
    path = tmp_path / "agent-stream.jsonl"

    async def run(base_url: str) -> list[tuple[Any, ...]]:
        agent = build_agent(base_url, asynchronous=True)
        seen = []
        async for chunk, meta in agent.astream(
            {"messages": [HumanMessage(QUESTION)]}, stream_mode="messages"
        ):
            seen.append(
                (
                    meta["langgraph_node"],
                    type(chunk).__name__,
                    chunk.content,
                    getattr(chunk, "tool_call_chunks", None),
                    getattr(chunk, "usage_metadata", None),
                    chunk.response_metadata,
                )
            )
        return seen

    everything = ("models", "tools", "retrievers")
    with OpenAIServer(SCRIPT) as server:
        SIDE_EFFECTS.clear()
        with cassette(path, replay=everything):
            live = asyncio.run(run(server.base_url))
        assert len(server.requests) == 3
        assert SIDE_EFFECTS == ["search parrot vocabulary", "add 100 3"]
    SIDE_EFFECTS.clear()
    with cassette(path, "replay", replay=everything) as tape:
        replayed = asyncio.run(run(server.base_url))
    assert tape.replayed == 5
    assert SIDE_EFFECTS == []
    assert len(server.requests) == 3
    assert replayed == live
    assert sum(1 for row in live if row[0] == "agent") > 3  # the model really streamed


def test_a_changed_prompt_is_a_miss_naming_the_difference(recorded: Recorded) -> None:
    agent = build_agent(recorded.server.base_url)
    with cassette(recorded.path, "replay"), pytest.raises(CassetteMiss) as missed:
        agent.invoke({"messages": [HumanMessage(QUESTION.replace("three", "four"))]})
    message = str(missed.value)
    assert (
        "first difference: messages[0].content: recorded "
        "'How many words can a parrot learn, plus three?' / now "
        "'How many words can a parrot learn, plus four?'"
    ) in message
    assert "mode='new'" in message
    assert missed.value.nearest is not None
    assert len(recorded.server.requests) == 3
