"""`instrument()` / `uninstrument()`: every outermost runnable call is one trace, as if
wrapped with `trace()`; nested calls join it; everything patched is put back exactly."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
import threading
from collections import defaultdict
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from langchain_core.callbacks import CallbackManager
from langchain_core.language_models import FakeListChatModel
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import (
    Runnable,
    RunnableConfig,
    RunnableGenerator,
    RunnableLambda,
    RunnableParallel,
)

import lcel_trace
from lcel_trace import Span, capture, trace
from lcel_trace.export import processor_for
from lcel_trace.instrumentation import ENTRY_POINTS, is_instrumented
from lcel_trace.recorder import recorder_of
from lcel_trace.replay import read_traces


class CollectingExporter:
    def __init__(self) -> None:
        self.spans: list[Span] = []
        self._lock = threading.Lock()

    def export(self, spans: Sequence[Span]) -> None:
        with self._lock:
            self.spans.extend(spans)

    def force_flush(self, timeout_s: float | None = None) -> bool:
        return processor_for(self).drain(timeout_s)

    def shutdown(self) -> None:
        return None

    def traces(self) -> dict[str, list[Span]]:
        assert self.force_flush(10)
        grouped: dict[str, list[Span]] = defaultdict(list)
        for span in self.spans:
            grouped[span.trace_id].append(span)
        return dict(grouped)


def chain() -> Runnable[Any, str]:
    model = FakeListChatModel(responses=["parrots talk back"])
    return ChatPromptTemplate.from_template("about {topic}") | model | StrOutputParser()


def _all_runnable_classes() -> list[type]:
    found: list[type] = []
    stack: list[type] = [Runnable]
    while stack:
        cls = stack.pop()
        if cls not in found:
            found.append(cls)
            stack.extend(cls.__subclasses__())
    return found


def _snapshot() -> dict[tuple[type, str], object]:
    names = (*ENTRY_POINTS, "__init_subclass__")
    return {
        (cls, name): cls.__dict__[name]
        for cls in _all_runnable_classes()
        for name in names
        if name in cls.__dict__
    }


@pytest.fixture
def exporter() -> Iterator[CollectingExporter]:
    collecting = CollectingExporter()
    lcel_trace.instrument(exporters=[collecting])
    try:
        yield collecting
    finally:
        lcel_trace.uninstrument()


def test_each_outermost_call_is_one_trace(exporter: CollectingExporter) -> None:
    runnable = chain()
    runnable.invoke({"topic": "a"})
    list(runnable.stream({"topic": "b"}))
    runnable.batch([{"topic": "c"}, {"topic": "d"}])
    traces = exporter.traces()
    assert len(traces) == 4  # a batch of two is two traces
    for spans in traces.values():
        roots = [s for s in spans if s.parent_id is None]
        assert [r.name for r in roots] == ["RunnableSequence"]
        assert sorted(s.name for s in spans) == sorted(
            ["RunnableSequence", "ChatPromptTemplate", "FakeListChatModel", "StrOutputParser"]
        )
        assert {s.status for s in spans} == {"ok"}


@pytest.mark.filterwarnings("ignore:astream_log is deprecated")
async def test_async_entry_points_are_traced(exporter: CollectingExporter) -> None:
    runnable = chain()
    await runnable.ainvoke({"topic": "a"})
    assert [c async for c in runnable.astream({"topic": "b"})]
    await runnable.abatch([{"topic": "c"}, {"topic": "d"}])
    events = [e async for e in runnable.astream_events({"topic": "e"}, version="v2")]
    assert events[0]["event"] == "on_chain_start"
    assert [p async for p in runnable.astream_log({"topic": "f"})]
    traces = exporter.traces()
    assert len(traces) == 6
    assert all(len(spans) == 4 for spans in traces.values())


def test_calls_in_many_threads_are_one_trace_each(exporter: CollectingExporter) -> None:
    runnable = chain()
    barrier = threading.Barrier(8)

    def call() -> None:
        barrier.wait(10)
        for _ in range(5):
            runnable.invoke({"topic": "threads"})

    threads = [threading.Thread(target=call) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    traces = exporter.traces()
    assert len(traces) == 40
    assert all(len(spans) == 4 for spans in traces.values())


async def test_concurrent_tasks_are_one_trace_each(exporter: CollectingExporter) -> None:
    runnable = chain()

    async def streamed(i: int) -> str:
        return "".join([c async for c in runnable.astream({"topic": str(i)})])

    outputs = await asyncio.gather(
        *(runnable.ainvoke({"topic": str(i)}) for i in range(10)),
        *(streamed(i) for i in range(10)),
    )
    assert set(outputs) == {"parrots talk back"}
    traces = exporter.traces()
    assert len(traces) == 20
    assert all(len(spans) == 4 for spans in traces.values())


def test_call_inside_a_lambda_joins_the_outer_trace(exporter: CollectingExporter) -> None:
    inner = chain()
    outer = RunnableLambda(lambda x: inner.invoke(x), name="outer")
    assert outer.invoke({"topic": "nested"}) == "parrots talk back"
    (spans,) = exporter.traces().values()
    by_name = {s.name: s for s in spans}
    assert by_name["outer"].parent_id is None
    assert by_name["RunnableSequence"].parent_id == by_name["outer"].span_id


def test_call_inside_a_thread_of_a_lambda_joins_with_the_context(
    exporter: CollectingExporter,
) -> None:
    from langchain_core.runnables.config import ContextThreadPoolExecutor

    inner = chain()

    def fan_out(x: dict[str, str]) -> list[str]:
        with ContextThreadPoolExecutor(max_workers=2) as pool:
            return list(pool.map(inner.invoke, [x, x]))

    RunnableLambda(fan_out, name="fan_out").invoke({"topic": "x"})
    (spans,) = exporter.traces().values()
    assert sum(s.name == "RunnableSequence" for s in spans) == 2


def test_trace_inside_instrument_is_traced_once_and_reaches_both_exporters(
    exporter: CollectingExporter,
) -> None:
    own = CollectingExporter()
    traced = trace(chain(), exporters=[own], name="mine")
    traced.invoke({"topic": "a"})
    list(traced.stream({"topic": "b"}))
    assert len(own.traces()) == 2
    assert exporter.traces().keys() == own.traces().keys()
    assert sorted(s.span_id for s in exporter.spans) == sorted(s.span_id for s in own.spans)


def test_unsampled_trace_is_not_picked_up_by_instrument(exporter: CollectingExporter) -> None:
    own = CollectingExporter()
    traced = trace(chain(), exporters=[own], sample=0.0)
    traced.invoke({"topic": "a"})
    list(traced.stream({"topic": "b"}))
    assert exporter.traces() == {}
    assert own.traces() == {}


def test_unsampled_streams_start_no_trace_of_their_inner_calls() -> None:
    collecting = CollectingExporter()
    lcel_trace.instrument(exporters=[collecting], sample=0.0)
    try:
        assert "".join(chain().stream({"topic": "a"})) == "parrots talk back"
        RunnableLambda(lambda x: chain().invoke(x)).invoke({"topic": "b"})
    finally:
        lcel_trace.uninstrument()
    assert collecting.traces() == {}


def _parity_chains() -> list[Runnable[Any, Any]]:
    def gen(chunks: Iterator[str]) -> Iterator[str]:
        for chunk in chunks:
            yield chunk.upper()

    async def agen(chunks: AsyncIterator[str]) -> AsyncIterator[str]:
        async for chunk in chunks:
            yield chunk.upper()

    failing = RunnableLambda(lambda x: 1 / 0)
    return [
        chain(),
        RunnableParallel(a=chain(), b=RunnableLambda(lambda x: x["topic"] * 2)),
        chain() | RunnableGenerator(gen, agen),
        failing.with_fallbacks([RunnableLambda(lambda x: "fallback")]),
    ]


def _per_branch(chunks: list[Any]) -> Any:
    """Parallel branches stream concurrently: their chunks' order within a branch is
    fixed, their interleaving is not."""
    if not chunks or not all(isinstance(c, dict) for c in chunks):
        return chunks
    branches: dict[str, list[Any]] = defaultdict(list)
    for chunk in chunks:
        for key, value in chunk.items():
            branches[key].append(value)
    return dict(branches)


def _outputs(runnable: Runnable[Any, Any]) -> list[Any]:
    value = {"topic": "parity"}

    async def async_outputs() -> list[Any]:
        return [
            await runnable.ainvoke(value),
            _per_branch([c async for c in runnable.astream(value)]),
            await runnable.abatch([value, value]),
        ]

    return [
        runnable.invoke(value),
        _per_branch(list(runnable.stream(value))),
        runnable.batch([value, value]),
        *asyncio.run(async_outputs()),
    ]


def test_outputs_are_those_of_the_uninstrumented_runnable() -> None:
    expected = [_outputs(r) for r in _parity_chains()]
    collecting = CollectingExporter()
    lcel_trace.instrument(exporters=[collecting])
    try:
        actual = [_outputs(r) for r in _parity_chains()]
    finally:
        lcel_trace.uninstrument()
    assert actual == expected
    assert len(collecting.traces()) == 4 * 8


def test_errors_are_those_of_the_uninstrumented_runnable(exporter: CollectingExporter) -> None:
    failing = RunnableLambda(lambda x: 1 / 0)
    with pytest.raises(ZeroDivisionError, match="division by zero"):
        failing.invoke(1)
    with pytest.raises(ZeroDivisionError, match="division by zero"):
        list(failing.stream(1))
    traces = exporter.traces()
    assert len(traces) == 2
    assert all([s.status for s in spans] == ["error"] for spans in traces.values())


def test_capture_sees_instrumented_traces() -> None:
    lcel_trace.instrument()
    try:
        with capture() as cap:
            chain().invoke({"topic": "captured"})
    finally:
        lcel_trace.uninstrument()
    assert [t.root.name for t in cap.traces] == ["RunnableSequence"]


def test_subclass_defined_after_instrument_is_traced_and_restored(
    exporter: CollectingExporter,
) -> None:
    class Shout(Runnable[str, str]):
        def invoke(self, input: str, config: RunnableConfig | None = None, **kw: Any) -> str:
            return self._call_with_config(str.upper, input, config)

    patched = Shout.__dict__["invoke"]
    original = patched.__lcel_trace_original__
    assert original.__qualname__.endswith("Shout.invoke")
    assert Shout().invoke("hey") == "HEY"
    (spans,) = exporter.traces().values()
    assert [s.name for s in spans] == ["Shout"]
    lcel_trace.uninstrument()
    assert Shout.__dict__["invoke"] is original


def test_uninstrument_restores_every_class_exactly() -> None:
    before = _snapshot()
    originals = {cls: cls.__dict__.get("invoke") for cls in _all_runnable_classes()}
    lcel_trace.instrument()
    assert Runnable.invoke is not originals[Runnable]
    lcel_trace.uninstrument()
    assert _snapshot() == before
    for cls, original in originals.items():
        assert cls.__dict__.get("invoke") is original
    assert "__init_subclass__" not in Runnable.__dict__
    assert not is_instrumented()
    handlers = CallbackManager.configure().handlers
    assert not [h for h in handlers if recorder_of(h) is not None]


def test_instrument_is_idempotent(exporter: CollectingExporter) -> None:
    patched = Runnable.invoke
    lcel_trace.instrument(exporters=[exporter])
    assert Runnable.invoke is patched
    chain().invoke({"topic": "once"})
    assert len(exporter.traces()) == 1
    lcel_trace.uninstrument()
    lcel_trace.uninstrument()
    assert not is_instrumented()


def test_instrument_rejects_bad_options_like_trace() -> None:
    with pytest.raises(ValueError, match="sample"):
        lcel_trace.instrument(sample=2.0)
    with pytest.raises(TypeError, match="not a trace exporter"):
        lcel_trace.instrument(exporters=[object()])  # type: ignore[list-item]
    assert not is_instrumented()


def test_langgraph_nodes_join_the_graph_trace(exporter: CollectingExporter) -> None:
    from typing import TypedDict

    from langgraph import graph as graph_module

    class State(TypedDict):
        topic: str
        answer: str

    inner = chain()
    builder: Any = graph_module.StateGraph(State)
    builder.add_node("ask", lambda s: {"answer": inner.invoke({"topic": s["topic"]})})
    builder.add_edge(graph_module.START, "ask")
    builder.add_edge("ask", graph_module.END)
    graph = builder.compile()
    assert graph.invoke({"topic": "graphs"})["answer"] == "parrots talk back"
    traces = exporter.traces()
    assert len(traces) == 1


def _run(code: str, env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "app.py"
    script.write_text(code, encoding="utf-8")
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("LCEL_TRACE_", "OTEL_"))}
    return subprocess.run(
        [sys.executable, str(script)],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


CHAIN_APP = textwrap.dedent("""
    from langchain_core.language_models import FakeListChatModel
    from langchain_core.output_parsers import StrOutputParser
    from langchain_core.prompts import ChatPromptTemplate
    import lcel_trace.auto  # noqa: F401

    model = FakeListChatModel(responses=["parrots talk back"])
    chain = ChatPromptTemplate.from_template("about {topic}") | model | StrOutputParser()
    print(chain.invoke({"topic": "auto"}))
    print("".join(chain.stream({"topic": "auto"})))
""")


def test_auto_with_jsonl_path_writes_every_outermost_call(tmp_path: Path) -> None:
    out = tmp_path / "runs.jsonl"
    done = _run(CHAIN_APP, {"LCEL_TRACE_JSONL": str(out)}, tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["parrots talk back"] * 2
    traces = read_traces(out)
    assert [t.root.name for t in traces] == ["RunnableSequence"] * 2


def test_auto_without_settings_traces_nothing(tmp_path: Path) -> None:
    done = _run(
        CHAIN_APP
        + "\nfrom lcel_trace.instrumentation import is_instrumented\nprint(is_instrumented())\n",
        {},
        tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "False"


def test_disabled_turns_off_auto_and_trace(tmp_path: Path) -> None:
    out = tmp_path / "runs.jsonl"
    explicit = tmp_path / "explicit.jsonl"
    code = CHAIN_APP + textwrap.dedent(f"""
    from lcel_trace import trace
    from lcel_trace.exporters import JsonlExporter
    exporter = JsonlExporter({str(explicit)!r})
    print(trace(chain, exporters=[exporter]).invoke({{"topic": "off"}}))
    exporter.shutdown()
    """)
    done = _run(code, {"LCEL_TRACE_JSONL": str(out), "LCEL_TRACE_DISABLED": "1"}, tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["parrots talk back"] * 3
    assert not out.exists() or out.read_text() == ""
    assert not explicit.exists() or explicit.read_text() == ""


def test_auto_otel_exports_to_the_global_provider(tmp_path: Path) -> None:
    code = (
        textwrap.dedent("""
    from opentelemetry import trace as otel
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    otel.set_tracer_provider(provider)
    """)
        + CHAIN_APP
        + textwrap.dedent("""
    import lcel_trace
    assert lcel_trace.flush_all(10)
    print(sorted({s.name for s in memory.get_finished_spans()}))
    """)
    )
    done = _run(code, {"LCEL_TRACE_OTEL": "1"}, tmp_path)
    assert done.returncode == 0, done.stderr
    names = done.stdout.splitlines()[-1]
    assert "'invoke_workflow RunnableSequence'" in names
    assert "'chat'" in names

    disabled = _run(code, {"LCEL_TRACE_OTEL": "1", "OTEL_SDK_DISABLED": "true"}, tmp_path)
    assert disabled.returncode == 0, disabled.stderr
    assert disabled.stdout.splitlines()[-1] == "[]"


def test_a_trace_call_made_while_instrumented_reaches_instruments_exporters_too() -> None:
    """The rule: instrument()'s exporters receive every trace, trace()'s own calls included;
    a trace() call's own exporters receive only its traces."""
    everywhere, own = CollectingExporter(), CollectingExporter()
    chain = ChatPromptTemplate.from_template("{x}") | FakeListChatModel(responses=["ok"] * 4)
    traced = trace(chain | StrOutputParser(), exporters=[own])
    lcel_trace.instrument(exporters=[everywhere])
    try:
        assert traced.invoke({"x": "a"}) == "ok"
        assert (chain | StrOutputParser()).invoke({"x": "b"}) == "ok"
    finally:
        lcel_trace.uninstrument()
    assert len(own.traces()) == 1
    assert len(everywhere.traces()) == 2
    (own_trace,) = own.traces().values()
    assert {s.span_id for s in own_trace} <= {s.span_id for s in everywhere.spans}
    assert traced.invoke({"x": "c"}) == "ok"  # uninstrumented again: its own only
    assert len(own.traces()) == 2
    assert len(everywhere.traces()) == 2
