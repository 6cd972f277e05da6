"""Hypothesis strategies for lcel-trace records: random spans, events and traces."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st
from langchain_core.documents import Document
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage

from lcel_trace.span import RUN_TYPES, STATUSES, Span, SpanError, SpanEvent, TraceEvent, Usage

ids = st.uuids().map(str)
trace_ids = st.binary(min_size=16, max_size=16).map(bytes.hex)
names = st.text(min_size=1, max_size=20)
timestamps = st.integers(min_value=1_700_000_000_000_000_000, max_value=1_900_000_000_000_000_000)
plain = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53), max_value=2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=10,
)
langchain_objects = st.one_of(
    st.text(max_size=30).map(lambda t: AIMessage(content=t)),
    st.text(max_size=30).map(lambda t: AIMessageChunk(content=t)),
    st.text(max_size=30).map(lambda t: HumanMessage(content=t)),
    st.text(max_size=30).map(lambda t: Document(page_content=t, metadata={"source": "s"})),
)
content: st.SearchStrategy[Any] = st.one_of(
    plain, langchain_objects, st.lists(langchain_objects, max_size=3)
)


@st.composite
def spans(draw: st.DrawFn, trace_id: str | None = None) -> Span:
    start = draw(timestamps)
    status = draw(st.sampled_from(sorted(STATUSES)))
    return Span(
        trace_id=trace_id or draw(trace_ids),
        span_id=draw(ids),
        parent_id=draw(st.none() | ids),
        name=draw(names),
        run_type=draw(st.sampled_from(sorted(RUN_TYPES))),  # type: ignore[arg-type]
        start_ns=start,
        end_ns=start + draw(st.integers(0, 10**10)),
        status=status,  # type: ignore[arg-type]
        error=SpanError(draw(names), draw(st.text(max_size=30))) if status == "error" else None,
        inputs=draw(content),
        outputs=draw(content),
        tags=tuple(draw(st.lists(names, max_size=3))),
        metadata=draw(
            st.dictionaries(
                st.text(min_size=1, max_size=8).filter(lambda k: k != "lc"), plain, max_size=3
            )
        ),
        chunk_count=draw(st.integers(0, 1000)),
        first_chunk_ns=draw(st.none() | st.just(start + 1)),
        usage=draw(
            st.none()
            | st.builds(Usage, st.integers(0, 10**6), st.integers(0, 10**6), st.integers(0, 10**6))
        ),
        model=draw(st.none() | names),
        events=tuple(draw(st.lists(st.builds(SpanEvent, names, timestamps, plain), max_size=2))),
        attributes=draw(
            st.dictionaries(st.sampled_from(["finish_reason", "provider"]), names, max_size=2)
        ),
    )


@st.composite
def events(draw: st.DrawFn, trace_id: str) -> TraceEvent:
    kind = draw(st.sampled_from(["start", "end", "error", "custom", "stream"]))
    data: dict[str, Any]
    if kind == "stream":
        data = {
            "chunks": [[draw(timestamps), draw(content)] for _ in range(draw(st.integers(1, 3)))]
        }
    else:
        data = {"input": draw(content)} if kind == "start" else {"output": draw(content)}
    return TraceEvent(
        trace_id=trace_id,
        kind=kind,  # type: ignore[arg-type]
        event=f"on_chain_{kind}",
        run_id=draw(ids),
        parent_ids=tuple(draw(st.lists(ids, max_size=2))),
        name=draw(names),
        run_type=draw(st.sampled_from(sorted(RUN_TYPES))),  # type: ignore[arg-type]
        tags=tuple(draw(st.lists(names, max_size=2))),
        metadata=draw(
            st.dictionaries(
                st.text(min_size=1, max_size=8).filter(lambda k: k != "lc"), plain, max_size=2
            )
        ),
        data=data,
        ts_ns=draw(timestamps),
    )
