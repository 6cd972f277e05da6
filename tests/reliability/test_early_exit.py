"""Stopping early never leaves a span open, a task or thread behind, or an error logged."""

from __future__ import annotations

import asyncio
import itertools
import logging
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.language_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import Runnable, RunnableLambda

from lcel_trace import Trace, capture, trace

WORDS = " ".join(f"w{i}" for i in range(50))


def chain() -> Runnable[dict[str, str], str]:
    model = GenericFakeChatModel(messages=itertools.cycle([AIMessage(content=WORDS)]))
    return ChatPromptTemplate.from_template("{q}") | model | StrOutputParser()


async def slow_words(_: AsyncIterator[object]) -> AsyncIterator[str]:
    for i in range(1000):
        await asyncio.sleep(0.001)
        yield f"w{i} "


def assert_cancelled_cleanly(t: Trace) -> None:
    assert t.status == "cancelled"
    assert all(s.end_ns >= s.start_ns for s in t.spans)
    assert {s.status for s in t.spans} <= {"ok", "cancelled"}
    assert t.root.status == "cancelled"


async def settle(before: set[asyncio.Task[object]]) -> None:
    """Give closing generators a few loop turns; a leaked task never finishes."""
    for _ in range(200):
        if asyncio.all_tasks() <= before:
            return
        await asyncio.sleep(0)


@pytest.mark.parametrize("k", [1, 2, 7])
async def test_break_after_k_chunks_ends_every_span_and_leaves_no_task(
    k: int, caplog: pytest.LogCaptureFixture
) -> None:
    before = asyncio.all_tasks()
    with caplog.at_level(logging.WARNING), capture() as cap:
        seen = []
        async for chunk in trace(chain()).astream({"q": "x"}):
            seen.append(chunk)
            if len(seen) == k:
                break
        assert len(cap.traces) == 1, "the trace did not end when the stream was dropped"
        await settle(before)
    assert seen == list(itertools.islice(chain().stream({"q": "x"}), k))
    assert_cancelled_cleanly(cap.traces[0])
    assert cap.traces[0].span("ChatPromptTemplate").status == "ok"
    assert asyncio.all_tasks() == before
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


async def test_aclose_and_wait_for_timeout_and_task_cancel_all_end_as_cancelled() -> None:
    traced = trace(RunnableLambda(lambda x: x) | slow_words)
    before_tasks = asyncio.all_tasks()
    with capture() as cap:
        stream = traced.astream("go")
        await anext(stream)  # type: ignore[call-overload]
        await stream.aclose()  # type: ignore[attr-defined]

        streaming = asyncio.Event()

        async def consume() -> None:
            async for _ in traced.astream("go"):
                streaming.set()

        with pytest.raises(TimeoutError):
            await asyncio.wait_for(consume(), timeout=0.05)
        streaming.clear()
        task = asyncio.create_task(consume())
        await streaming.wait()  # cancelled mid-stream, not before it started
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await settle(before_tasks)
    assert len(cap.traces) == 3
    for t in cap.traces:
        assert_cancelled_cleanly(t)
    assert asyncio.all_tasks() == before_tasks


def test_sync_stream_closed_early_leaves_no_thread_behind() -> None:
    threads_before = set(threading.enumerate())
    with capture() as cap:
        for _ in range(3):
            stream = trace(chain()).stream({"q": "x"})
            next(stream)
            stream.close()  # type: ignore[attr-defined]
        for chunk in trace(chain()).stream({"q": "x"}):
            if chunk.strip():
                break
    assert len(cap.traces) == 4
    for t in cap.traces:
        assert_cancelled_cleanly(t)
    leftover = {
        t
        for t in set(threading.enumerate()) - threads_before
        if not t.name.startswith("lcel-trace-export")
    }
    assert not leftover


def test_close_from_another_thread_while_the_last_next_runs_leaves_the_root_ok() -> None:
    """The consumer has every item and is inside the call that ends the root run; a close
    from another thread then cannot stop the stream (as with any running generator) and
    must not record a run that ended normally as cancelled."""

    def words(_: object) -> Iterator[str]:
        yield from ("a", "b", "c")

    streams: list[Iterator[str]] = []
    close_errors: list[BaseException] = []

    def close_now() -> None:
        try:
            streams[0].close()  # type: ignore[attr-defined]
        except ValueError as exc:  # "generator already executing", as untraced
            close_errors.append(exc)

    class CloseAtRootEnd(BaseCallbackHandler):
        def on_chain_end(self, outputs: Any, *, parent_run_id: Any = None, **_: Any) -> None:
            if parent_run_id is None:
                closer = threading.Thread(target=close_now)
                closer.start()
                closer.join()

    with capture() as cap:
        stream = trace(RunnableLambda(lambda x: x) | RunnableLambda(words)).stream(
            "go", {"callbacks": [CloseAtRootEnd()]}
        )
        streams.append(stream)
        assert list(stream) == ["a", "b", "c"]
    assert len(close_errors) == 1
    (t,) = cap.traces
    assert t.status == "ok"
    assert {s.status for s in t.spans} == {"ok"}
