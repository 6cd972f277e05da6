"""Stream methods that return something other than an iterator (LangChain's v3 event
stream objects, an `async def astream_events`) are handed back as they are, under
`trace()` and `instrument()`, and their traces end: with the root run, on error, or as
`cancelled` when the object is dropped. A stream left open at interpreter exit does not
hang the process."""

from __future__ import annotations

import asyncio
import gc
import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from langchain_core.language_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.runnables import Runnable, RunnableConfig

import lcel_trace
from lcel_trace import capture, trace
from lcel_trace.exporters import JsonlExporter


def fake_model() -> GenericFakeChatModel:
    return GenericFakeChatModel(messages=iter([AIMessage("a b c")] * 10))


async def until(condition: Any, deadline_s: float = 30.0) -> None:
    """Wait for `condition()` (a trace ended by a callback LangChain runs in a task)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline_s
    while not condition():
        assert loop.time() < end, "condition not met before the deadline"
        await asyncio.sleep(0.01)


@pytest.fixture
def instrumented() -> Iterator[None]:
    lcel_trace.instrument()
    try:
        yield
    finally:
        lcel_trace.uninstrument()


def test_v3_stream_events_under_instrument_is_the_models_own_stream_object(
    instrumented: None,
) -> None:
    untraced_type = type(fake_model().stream_events("hi", version="v3"))
    with capture() as cap:
        stream = fake_model().stream_events("hi", version="v3")
        assert type(stream) is untraced_type
        assert stream.output.content == [{"type": "text", "text": "a b c", "index": 0}]
    assert [(t.name, t.status) for t in cap.traces] == [("GenericFakeChatModel", "ok")]


async def test_awaited_v3_astream_events_under_instrument_gives_the_stream_object(
    instrumented: None,
) -> None:
    with capture() as cap:
        stream = await fake_model().astream_events("hi", version="v3")
        message = await stream
        assert message.content == [{"type": "text", "text": "a b c", "index": 0}]
        await until(lambda: bool(cap.traces))
    assert [(t.name, t.status) for t in cap.traces] == [("GenericFakeChatModel", "ok")]


class AwaitedEvents(Runnable[str, str]):
    """Like LangGraph's RemoteGraph: `astream_events` is a coroutine function."""

    def invoke(self, input: str, config: RunnableConfig | None = None, **kwargs: Any) -> str:
        return input

    async def astream_events(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        raise NotImplementedError("events are not streamed by this runnable")


async def test_a_coroutine_function_astream_events_raises_its_own_error_through_trace() -> None:
    with capture() as cap, pytest.raises(NotImplementedError, match="not streamed"):
        await trace(AwaitedEvents()).astream_events("x", version="v2")
    assert [t.status for t in cap.traces] == ["error"]


async def test_a_coroutine_function_astream_events_raises_its_own_error_instrumented(
    instrumented: None,
) -> None:
    with pytest.raises(NotImplementedError, match="not streamed"):
        await AwaitedEvents().astream_events("x", version="v2")


def test_a_v3_stream_object_dropped_unconsumed_ends_its_trace_cancelled() -> None:
    traced = trace(fake_model())
    with capture() as cap:
        stream = traced.stream_events("hi", version="v3")
        del stream
        gc.collect()
        assert [(t.name, t.status) for t in cap.traces] == [("GenericFakeChatModel", "cancelled")]


def test_a_v3_stream_object_dropped_unconsumed_ends_its_trace_instrumented(
    instrumented: None,
) -> None:
    with capture() as cap:
        fake_model().stream_events("hi", version="v3")
        gc.collect()
        assert [t.status for t in cap.traces] == ["cancelled"]


def test_a_stream_left_open_at_exit_does_not_hang_and_ends_cancelled(tmp_path: Path) -> None:
    """The iterator's finaliser runs while the interpreter shuts down; Python 3.11's
    `Thread.start()` waits forever then, so the exporter may not start a thread."""
    script = tmp_path / "open_stream.py"
    script.write_text(
        textwrap.dedent(
            """
            from langchain_core.language_models import GenericFakeChatModel
            from langchain_core.messages import AIMessage
            from langchain_core.output_parsers import StrOutputParser
            from lcel_trace import trace
            from lcel_trace.exporters import JsonlExporter

            model = GenericFakeChatModel(messages=iter([AIMessage("a b c d e")]))
            traced = trace(model | StrOutputParser(), exporters=[JsonlExporter("out.jsonl")])
            stream = traced.stream("hi")  # a global, still open at exit
            for chunk in stream:
                break
            print("body done", flush=True)
            """
        )
    )
    result = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "body done\n"
    lines = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert lines[-1]["type"] == "trace_end"
    assert lines[-1]["status"] == "cancelled"


async def test_filtered_astream_events_still_counts_every_steps_chunks() -> None:
    chain = fake_model() | StrOutputParser()
    async for _ in chain.astream("hi"):
        pass
    with capture() as plain:
        async for _ in trace(chain).astream("hi"):
            pass
    with capture() as filtered:
        events = [
            e
            async for e in trace(chain).astream_events(
                "hi", version="v2", include_types=["chat_model"]
            )
        ]
    untraced = [
        e async for e in chain.astream_events("hi", version="v2", include_types=["chat_model"])
    ]
    assert [e["event"] for e in events] == [e["event"] for e in untraced]
    assert {e["event"].split("_")[1] for e in events} == {"chat"}
    counts = [
        next(s.chunk_count for s in cap.traces[0].spans if s.run_type == "parser")
        for cap in (plain, filtered)
    ]
    assert counts[0] == 5
    assert counts == [5, 5]


def test_a_key_after_a_hyphen_in_a_trace_or_run_name_is_redacted(tmp_path: Path) -> None:
    key = "sk-proj-Abc123defGHI456jklMNO789pqr"
    path = tmp_path / "out.jsonl"
    exporter = JsonlExporter(path)
    chain = (fake_model() | StrOutputParser()).with_config(run_name=f"job-{key}")
    trace(chain, exporters=[exporter], name=f"nightly-{key}").invoke("hi")
    exporter.shutdown()
    text = path.read_text()
    assert "job-" in text
    assert "nightly-" in text
    assert "Abc123def" not in text
