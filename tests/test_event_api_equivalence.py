"""The recorder path gives the spans the event API would give, without its per-chunk cost.

lcel-trace does not consume `astream_events(version="v2")`: it attaches a recorder to the
real call, which sees the same callbacks v2 is built from (issue #9's "fast path" is
the default path). To show nothing is lost, this test feeds LangChain's own v2 event
stream for the same chain through the same normaliser and assembler and compares the
spans: tree, names, run types, statuses, chunk counts, time to first chunk, usage and
model, over the fidelity matrix.

Cases where a step fails are left out on purpose: v2 reports no failure except a tool's,
so from events alone a failed step is a start with no end (the recorder gets the real
exception; test_fidelity checks those against LangChain's run tree).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from langchain_core.runnables import Runnable

from lcel_trace import Span, capture, trace
from lcel_trace.assemble import SpanAssembler
from lcel_trace.clock import now_ns
from lcel_trace.normalise import normalise
from lcel_trace.wrapper import run_types_by_name, taps_cannot_switch_models
from tests.test_fidelity import ASYNC_ONLY_BROKEN, MATRIX

FAILING = {"fallbacks", "retry", "failing tool", "failing step mid-sequence", *ASYNC_ONLY_BROKEN}
TRACE_ID = "0" * 31 + "1"


def event_api_spans(runnable: Runnable[Any, Any], value: Any) -> list[Span]:
    """Spans built from LangChain's `astream_events(version="v2")` for one call."""
    run_types = run_types_by_name(runnable)

    async def collect() -> list[Span]:
        assembler = SpanAssembler(TRACE_ID)
        spans = []
        async for raw in runnable.astream_events(value, version="v2"):
            span = assembler.feed(normalise(raw, TRACE_ID, now_ns(), run_types))
            if span is not None:
                spans.append(span)
        assert assembler.open_count == 0
        return spans

    return asyncio.run(collect())


def recorder_spans(runnable: Runnable[Any, Any], value: Any) -> list[Span]:
    async def collect() -> None:
        async for _ in trace(runnable).astream(value):
            pass

    with capture() as cap:
        asyncio.run(collect())
    (recorded,) = cap.traces
    return list(recorded.spans)


def shape(spans: list[Span], *, steps_tapped: bool = True) -> list[tuple[Any, ...]]:
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
            s.status,
            s.chunk_count if streamed(s) else None,
            s.first_chunk_ns is not None if streamed(s) else None,
            s.usage,
            s.model,
        )
        for s in spans
    )


@pytest.mark.parametrize("case", sorted(set(MATRIX) - FAILING))
def test_recorder_spans_equal_spans_from_the_v2_event_stream(case: str) -> None:
    build, value = MATRIX[case]
    from_events = event_api_spans(build(), value)
    from_recorder = recorder_spans(build(), value)
    assert from_recorder
    tapped = taps_cannot_switch_models(build())
    assert shape(from_recorder, steps_tapped=tapped) == shape(from_events, steps_tapped=tapped)


def test_the_comparison_sees_streamed_chunks() -> None:
    build, value = MATRIX["chat prompt | model | str parser"]
    counts = {s.run_type: s.chunk_count for s in event_api_spans(build(), value)}
    assert counts["chat_model"] > 1
    assert counts["parser"] == counts["chat_model"]
