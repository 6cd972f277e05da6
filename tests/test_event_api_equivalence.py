"""`trace_events()` over LangChain's v2 stream gives the spans `trace()` records.

The two producers of the one pipeline: the recorder `trace()` attaches to the real call,
and `lcel_trace.events.trace_events` consuming `astream_events(version="v2")`. Over the
whole fidelity matrix both must give the same span tree, names, run types, chunk counts,
time-to-first-chunk presence, usage and model.

Statuses are compared only where no step fails: v2 reports no failure except a tool's,
so from events alone a failed step is a start with no end, closed with the stream's
exception (or as incomplete when the call recovered, as with fallbacks), while the
recorder gets the real exception (test_fidelity checks those against LangChain's tree).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest
from langchain_core.runnables import Runnable

from lcel_trace import Span, capture, trace
from lcel_trace.events import trace_events
from lcel_trace.wrapper import taps_cannot_switch_models
from tests.test_fidelity import ASYNC_ONLY_BROKEN, MATRIX

FAILING = {"fallbacks", "retry", "failing tool", "failing step mid-sequence", *ASYNC_ONLY_BROKEN}


def event_api_spans(runnable: Runnable[Any, Any], value: Any) -> list[Span]:
    """Spans `trace_events` records from LangChain's v2 stream for one call."""

    async def consume() -> None:
        stream = runnable.astream_events(value, version="v2")
        async for _ in trace_events(stream, runnable=runnable):
            pass

    with capture() as cap, contextlib.suppress(Exception):
        asyncio.run(consume())
    (recorded,) = cap.traces
    assert all(s.end_ns >= s.start_ns for s in recorded.spans)
    return list(recorded.spans)


def recorder_spans(runnable: Runnable[Any, Any], value: Any) -> list[Span]:
    async def consume() -> None:
        async for _ in trace(runnable).astream(value):
            pass

    with capture() as cap, contextlib.suppress(Exception):
        asyncio.run(consume())
    (recorded,) = cap.traces
    return list(recorded.spans)


def shape(
    spans: list[Span], *, steps_tapped: bool = True, statuses: bool = True
) -> list[tuple[Any, ...]]:
    """What both paths must agree on, per span, keyed by its path of names from the root.

    Stream facts of chain steps are compared only where the recorder taps them: it does
    not when a step could invoke a model (a lambda, say), since a tap would switch that
    model to streaming. The root's and the models' stream facts are always compared.
    """
    by_id = {s.span_id: s for s in spans}

    def streamed(span: Span) -> bool:
        return steps_tapped or span.parent_id is None or span.run_type in ("chat_model", "llm")

    def path(span: Span) -> tuple[str, ...]:
        parent = by_id.get(span.parent_id or "")
        return (*path(parent), span.name) if parent else (span.name,)

    return sorted(
        (
            path(s),
            s.run_type,
            s.status if statuses else None,
            s.chunk_count if streamed(s) else None,
            s.first_chunk_ns is not None if streamed(s) else None,
            s.usage,
            s.model,
        )
        for s in spans
    )


@pytest.mark.parametrize("case", sorted(MATRIX))
def test_trace_events_over_the_v2_stream_gives_the_spans_trace_records(case: str) -> None:
    build, value = MATRIX[case]
    from_events = event_api_spans(build(), value)
    from_recorder = recorder_spans(build(), value)
    assert from_recorder
    tapped = taps_cannot_switch_models(build())
    statuses = case not in FAILING
    assert shape(from_recorder, steps_tapped=tapped, statuses=statuses) == shape(
        from_events, steps_tapped=tapped, statuses=statuses
    )


def test_the_comparison_sees_streamed_chunks() -> None:
    build, value = MATRIX["chat prompt | model | str parser"]
    counts = {s.run_type: s.chunk_count for s in event_api_spans(build(), value)}
    assert counts["chat_model"] > 1
    assert counts["parser"] == counts["chat_model"]
