"""Regression tests for parity defects real apps hit (issue: Fidelity II, items 1-9).

Each test compares the traced call with the same call untraced, as seen from outside:
what the caller gets, when it raises, and what other callback handlers see.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID

import pytest
from langchain_core.callbacks import AsyncCallbackHandler, BaseCallbackHandler
from langchain_core.language_models import FakeListLLM, GenericFakeChatModel
from langchain_core.messages import AIMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate, PromptTemplate
from langchain_core.runnables import (
    Runnable,
    RunnableConfig,
    RunnableGenerator,
    RunnableLambda,
    RunnableParallel,
    RunnablePassthrough,
)

from lcel_trace import capture, trace


def chat_model() -> GenericFakeChatModel:
    return GenericFakeChatModel(messages=iter([AIMessage(content="why did the parrot talk")]))


def joke_chain() -> Runnable[Any, str]:
    prompt = ChatPromptTemplate.from_messages([("human", "joke about {topic}")])
    return prompt | chat_model() | StrOutputParser()


class Seen(BaseCallbackHandler):
    """A user's handler (non-inline, the default): what it was told, in order."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, UUID]] = []

    def on_chain_start(self, serialized: Any, inputs: Any, *, run_id: UUID, **kw: Any) -> None:
        self.calls.append(("chain_start", run_id))

    def on_llm_start(self, serialized: Any, prompts: Any, *, run_id: UUID, **kw: Any) -> None:
        self.calls.append(("llm_start", run_id))

    def on_chat_model_start(self, serialized: Any, msgs: Any, *, run_id: UUID, **kw: Any) -> None:
        self.calls.append(("chat_model_start", run_id))

    def on_llm_new_token(self, token: str, *, run_id: UUID, **kw: Any) -> None:
        self.calls.append(("token", run_id))

    def on_llm_end(self, response: Any, *, run_id: UUID, **kw: Any) -> None:
        self.calls.append(("llm_end", run_id))

    def kinds(self) -> list[str]:
        return [kind for kind, _ in self.calls]


class InlineSeen(Seen):
    run_inline = True


class AsyncSeen(AsyncCallbackHandler):
    def __init__(self) -> None:
        self.kinds: list[str] = []

    async def on_llm_start(self, serialized: Any, prompts: Any, **kw: Any) -> None:
        self.kinds.append("llm_start")

    async def on_chat_model_start(self, serialized: Any, msgs: Any, **kw: Any) -> None:
        self.kinds.append("chat_model_start")

    async def on_llm_end(self, response: Any, **kw: Any) -> None:
        self.kinds.append("llm_end")


# 1. exceptions raised at call time stay at call time ------------------------------------


async def _only_async(chunks: AsyncIterator[str]) -> AsyncIterator[str]:
    async for chunk in chunks:
        yield chunk


@pytest.mark.parametrize("method", ["stream", "transform"])
def test_call_time_error_of_stream_raises_at_call_time(method: str) -> None:
    runnable = RunnableGenerator(_only_async)
    argument: Any = "x" if method == "stream" else iter(["x"])
    with pytest.raises(NotImplementedError):
        getattr(runnable, method)(argument)
    argument = "x" if method == "stream" else iter(["x"])
    with capture() as cap, pytest.raises(NotImplementedError):
        getattr(trace(runnable), method)(argument)
    (recorded,) = cap.traces
    assert recorded.status == "error"


# 2. a bound version is honoured --------------------------------------------------------


@pytest.mark.filterwarnings("ignore::langchain_core._api.deprecation.LangChainDeprecationWarning")
async def test_bound_astream_events_version_is_honoured() -> None:
    plain = [e["event"] async for e in joke_chain().bind(version="v1").astream_events("x")]
    with capture() as cap:
        bound = joke_chain().bind(version="v1")
        traced = [e["event"] async for e in trace(bound).astream_events("x")]
    assert traced == plain
    assert len(cap.traces) == 1


# 3. run ids are LangChain's, never reused -------------------------------------------------


class TwoChildren(Runnable[str, list[str]]):
    """A user runnable that hands its own config, unchanged, to two children."""

    def invoke(self, input: str, config: RunnableConfig | None = None, **kw: Any) -> list[str]:
        first = RunnableLambda(lambda s: s + "1", name="first")
        second = RunnableLambda(lambda s: s + "2", name="second")
        return [first.invoke(input, config), second.invoke(input, config)]


def test_children_sharing_a_config_get_their_own_run_ids() -> None:
    plain, traced = Seen(), Seen()
    TwoChildren().invoke("x", {"callbacks": [plain]})
    with capture() as cap:
        trace(TwoChildren()).invoke("x", {"callbacks": [traced]})
    assert len({run_id for _, run_id in plain.calls}) == 2
    assert len({run_id for _, run_id in traced.calls}) == 2
    names = sorted(s.name for s in cap.traces[0].spans)
    assert names == ["first", "second"]


# 4. a model invoked inside a streamed chain does not switch to streaming -----------------


def test_model_invoked_in_a_lambda_does_not_stream_under_traced_stream() -> None:
    def ask(text: str, config: RunnableConfig) -> str:
        return str(chat_model().invoke(text, config).content)

    chain = RunnableLambda(ask) | StrOutputParser()
    plain, traced = Seen(), Seen()
    assert list(chain.stream("x", {"callbacks": [plain]})) == list(
        trace(chain).stream("x", {"callbacks": [traced]})
    )
    assert plain.kinds().count("token") == 0
    assert traced.kinds() == plain.kinds()


async def test_model_invoked_in_a_lambda_does_not_stream_under_traced_astream() -> None:
    async def ask(text: str, config: RunnableConfig) -> str:
        return str((await chat_model().ainvoke(text, config)).content)

    chain = RunnableLambda(ask) | StrOutputParser()
    plain, traced = Seen(), Seen()
    out_plain = [c async for c in chain.astream("x", {"callbacks": [plain]})]
    out_traced = [c async for c in trace(chain).astream("x", {"callbacks": [traced]})]
    assert out_traced == out_plain
    assert traced.kinds() == plain.kinds()
    assert "token" not in traced.kinds()


# 5. a traced call inside a traced call joins it, config passed or not ------------------------


def test_traced_chain_invoked_inside_a_lambda_body_joins_the_outer_trace() -> None:
    inner = trace(joke_chain())
    outer = trace(RunnableLambda(lambda topic: inner.invoke({"topic": topic}), name="body"))
    with capture() as cap:
        outer.invoke("parrots")
    (recorded,) = cap.traces
    body = recorded.span("body")
    assert recorded.span("RunnableSequence").parent_id == body.span_id


async def test_traced_chain_awaited_inside_an_async_lambda_joins_the_outer_trace() -> None:
    inner = trace(joke_chain())

    async def body(topic: str) -> str:
        return await inner.ainvoke({"topic": topic})

    with capture() as cap:
        await trace(RunnableLambda(body, name="body")).ainvoke("parrots")
    (recorded,) = cap.traces
    assert recorded.span("RunnableSequence").parent_id == recorded.span("body").span_id


# 6 and the recorder's inline-ness: every handler sees what it sees untraced ---------------


def _llm_chain() -> Runnable[Any, str]:
    return PromptTemplate.from_template("say {x}") | FakeListLLM(responses=["ok"])


def _chat_chain() -> Runnable[Any, str]:
    return ChatPromptTemplate.from_messages([("human", "say {x}")]) | chat_model()


@pytest.mark.parametrize("build", [_llm_chain, _chat_chain], ids=["llm", "chat_model"])
@pytest.mark.parametrize("mode", ["invoke", "ainvoke", "astream"])
def test_inline_and_non_inline_handlers_see_what_they_see_untraced(build: Any, mode: str) -> None:
    def run(runnable: Runnable[Any, Any], handlers: list[Any]) -> None:
        config: RunnableConfig = {"callbacks": handlers}
        if mode == "invoke":
            runnable.invoke({"x": "hi"}, config)
        elif mode == "ainvoke":
            asyncio.run(runnable.ainvoke({"x": "hi"}, config))
        else:

            async def consume() -> None:
                async for _ in runnable.astream({"x": "hi"}, config):
                    pass

            asyncio.run(consume())

    plain = [InlineSeen(), Seen()]
    run(build(), plain)
    traced = [InlineSeen(), Seen()]
    with capture() as cap:
        run(trace(build()), traced)
    for before, after in zip(plain, traced, strict=True):
        assert after.kinds() == before.kinds()
    run_types = {s.run_type for s in cap.traces[0].spans}
    assert run_types & {"llm", "chat_model"}


@pytest.mark.parametrize("build", [_llm_chain, _chat_chain], ids=["llm", "chat_model"])
async def test_only_non_inline_handlers_still_see_async_model_starts(build: Any) -> None:
    plain, traced = AsyncSeen(), AsyncSeen()
    await build().ainvoke({"x": "hi"}, {"callbacks": [plain]})
    with capture() as cap:
        await trace(build()).ainvoke({"x": "hi"}, {"callbacks": [traced]})
    assert traced.kinds == plain.kinds
    assert {s.run_type for s in cap.traces[0].spans} & {"llm", "chat_model"}


async def test_llm_span_recorded_beside_langsmiths_inline_tracer() -> None:
    from langchain_core.tracers.langchain import LangChainTracer
    from langsmith import Client

    client = Client(api_url="http://127.0.0.1:9", api_key="not-a-key", auto_batch_tracing=False)
    tracer = LangChainTracer(client=client, project_name="lcel-trace-test")
    tracer.run_inline = True
    seen = InlineSeen()
    with capture() as cap:
        await trace(_llm_chain()).ainvoke({"x": "hi"}, {"callbacks": [tracer, seen]})
    assert "llm_start" in seen.kinds()
    assert [s.run_type for s in cap.traces[0].spans].count("llm") == 1


# 7. stream facts kept inside someone else's astream_events --------------------------------


async def test_stream_facts_kept_inside_an_outer_astream_events() -> None:
    def build(inner: Runnable[Any, Any]) -> Runnable[Any, Any]:
        return RunnableParallel(joke=inner, topic=RunnablePassthrough())

    plain_events = [
        (e["event"], e["name"])
        async for e in build(joke_chain()).astream_events({"topic": "x"}, version="v2")
    ]
    with capture() as cap:
        traced_events = [
            (e["event"], e["name"])
            async for e in build(trace(joke_chain())).astream_events({"topic": "x"}, version="v2")
        ]
    assert traced_events == plain_events
    parser = cap.traces[0].span("StrOutputParser")
    assert parser.chunk_count == sum(
        1 for event, name in plain_events if event == "on_parser_stream"
    )
    assert parser.chunk_count > 1


# 8. OTel provider resolved when spans are emitted -------------------------------------------


def test_otel_exporter_made_before_the_provider_is_set_uses_lcel_trace_ids() -> None:
    script = textwrap.dedent(
        """
        from opentelemetry import trace as otel_trace
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
        from langchain_core.runnables import RunnableLambda
        from lcel_trace import capture, trace
        from lcel_trace.exporters import OtelExporter

        exporter = OtelExporter()
        memory = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(memory))
        otel_trace.set_tracer_provider(provider)
        with capture() as cap:
            trace(RunnableLambda(lambda x: x), exporters=[exporter]).invoke(1)
        exporter.force_flush(10)
        (span,) = memory.get_finished_spans()
        assert format(span.context.trace_id, "032x") == cap.traces[0].trace_id
        print("same ids")
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "same ids" in done.stdout


# 9. threads: one trace, many worker threads, every parent right ------------------------------


def test_parallel_branches_in_worker_threads_keep_their_parents() -> None:
    def branch(i: int) -> Runnable[Any, Any]:
        return RunnableLambda(lambda x: x, name=f"leaf{i}") | RunnableLambda(
            lambda x: x, name=f"tail{i}"
        )

    parallel = RunnableParallel({f"b{i}": branch(i) for i in range(8)})
    traced = trace(parallel)
    with capture() as cap:
        for _ in range(25):
            traced.invoke(1)
    assert len(cap.traces) == 25
    for recorded in cap.traces:
        by_id = {s.span_id: s for s in recorded.spans}
        for i in range(8):
            leaf, tail = recorded.span(f"leaf{i}"), recorded.span(f"tail{i}")
            assert leaf.parent_id == tail.parent_id
            assert by_id[leaf.parent_id or ""].name == "RunnableSequence"


# the guard: a recorder bug is logged with its traceback and counted, never raised --------


@pytest.mark.internal_errors_expected
def test_a_recorder_bug_is_counted_logged_with_traceback_and_never_raised(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from lcel_trace._log import internal_error_count
    from lcel_trace.recorder import Recorder

    def broken(self: Recorder, *args: Any, **kwargs: Any) -> None:
        raise RuntimeError("recorder bug")

    monkeypatch.setattr(Recorder, "_close", broken)
    before = internal_error_count()
    assert trace(RunnableLambda(lambda x: x + 1)).invoke(1) == 2
    assert internal_error_count() > before
    (logged,) = [r for r in caplog.records if r.getMessage() == "internal_error"]
    traceback_text = str(getattr(logged, "exception", ""))
    assert "Traceback" in traceback_text
    assert "RuntimeError: recorder bug" in traceback_text
