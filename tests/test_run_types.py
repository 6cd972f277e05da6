"""What kind of step a span says it is: LangGraph graphs and nodes are chains, as
LangChain reports them; `custom` is kept for the user's own `Runnable` subclasses."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, TypedDict

import pytest
from langchain_core.language_models import FakeListChatModel
from langchain_core.runnables import Runnable, RunnableConfig
from langgraph.graph import END, START, StateGraph

from lcel_trace import Trace, capture, instrument, trace, uninstrument


class State(TypedDict, total=False):
    topic: str
    answer: str


class Shout(Runnable[State, State]):
    """A user's own Runnable subclass, used as a graph node."""

    def invoke(self, input: State, config: RunnableConfig | None = None, **kwargs: Any) -> State:
        return self._call_with_config(self._shout, input, config)  # a run of its own

    def _shout(self, state: State) -> State:
        return {"answer": state["answer"].upper()}


def graph() -> Any:
    model = FakeListChatModel(responses=["parrots talk"])

    def ask(state: State) -> State:
        return {"answer": str(model.invoke(state["topic"]).content)}

    inner = StateGraph(State)
    inner.add_node("polish", lambda state: {"answer": state["answer"] + "!"})
    inner.add_edge(START, "polish")
    inner.add_edge("polish", END)

    outer = StateGraph(State)
    outer.add_node("ask", ask)
    outer.add_node("shout", Shout())
    outer.add_node("polish_graph", inner.compile(name="polisher"))
    outer.add_edge(START, "ask")
    outer.add_edge("ask", "shout")
    outer.add_edge("shout", "polish_graph")
    outer.add_edge("polish_graph", END)
    return outer.compile(name="agent")


def run_types(recorded: Trace) -> dict[str, str]:
    return {span.name: span.run_type for span in recorded.spans}


EXPECTED = {
    "agent": "chain",  # the compiled graph
    "ask": "chain",
    "FakeListChatModel": "chat_model",
    "shout": "chain",  # LangGraph's node run around the user's runnable
    "polish_graph": "chain",  # a subgraph as a node
    "polisher": "chain",
    "polish": "chain",
}


@pytest.fixture
def instrumented() -> Iterator[None]:
    instrument()
    try:
        yield
    finally:
        uninstrument()


def test_a_traced_langgraph_graph_and_its_nodes_are_chains() -> None:
    with capture() as cap:
        assert trace(graph()).invoke({"topic": "parrots"}) == {
            "topic": "parrots",
            "answer": "PARROTS TALK!",
        }
    (recorded,) = cap.traces
    assert {k: v for k, v in run_types(recorded).items() if k in EXPECTED} == EXPECTED
    assert recorded.root.name == "agent"
    assert recorded.root.run_type == "chain"


@pytest.mark.usefixtures("instrumented")
def test_an_instrumented_langgraph_graph_and_its_nodes_are_chains() -> None:
    with capture() as cap:
        graph().invoke({"topic": "parrots"})
    (recorded,) = cap.traces
    assert {k: v for k, v in run_types(recorded).items() if k in EXPECTED} == EXPECTED


def test_a_users_own_runnable_subclass_is_custom() -> None:
    with capture() as cap:
        trace(Shout() | (lambda state: state["answer"])).invoke({"answer": "hi"})
    assert run_types(cap.traces[0]) == {
        "RunnableSequence": "chain",
        "Shout": "custom",
        "RunnableLambda": "lambda",
    }
