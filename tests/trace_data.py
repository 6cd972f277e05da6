"""Synthetic trace files for the table, cost, diff, source and benchmark tests: records
built as the recorder builds them and written by the real line encoder, with latencies,
models and token counts chosen by the test (a real chain cannot be told how slow to be)."""

from __future__ import annotations

import gzip
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path

from lcel_trace.records import Record, encode_line
from lcel_trace.span import Span, SpanError, TraceEnd, TraceStart, Usage

T0 = 1_800_000_000_000_000_000
MS = 1_000_000


def qa_trace(
    *,
    name: str = "qa",
    question: str = "q",
    answer: str = "a",
    model: str | None = "gpt-4o-mini",
    provider: str | None = "openai",
    input_tokens: int | None = 1000,
    output_tokens: int | None = 100,
    latency_ms: float = 10.0,
    model_ms: float | None = None,
    error: bool = False,
    start_ns: int = T0,
    extra_step: str | None = None,
    padding: str = "",
) -> list[Record]:
    """One trace: a root chain (inputs `{"question": ...}`, output the answer) calling one
    chat model, optionally a second step; the root takes `latency_ms`."""
    trace_id = uuid.uuid4().hex
    root_id, model_id = str(uuid.uuid4()), str(uuid.uuid4())
    end_ns = start_ns + int(latency_ms * MS)
    model_end = start_ns + int((model_ms if model_ms is not None else latency_ms * 0.8) * MS)
    status = "error" if error else "ok"
    failure = SpanError("RuntimeError", "model failed") if error else None
    usage = (
        None
        if input_tokens is None and output_tokens is None
        else Usage(
            input_tokens,
            output_tokens,
            None if input_tokens is None or output_tokens is None else input_tokens + output_tokens,
        )
    )
    metadata = {"ls_provider": provider} if provider else {}
    records: list[Record] = [TraceStart(trace_id, name, start_ns, root_id)]
    records.append(
        Span(
            trace_id=trace_id,
            span_id=model_id,
            parent_id=root_id,
            name="ChatOpenAI",
            run_type="chat_model",
            start_ns=start_ns + MS // 10,
            end_ns=model_end,
            status=status,
            error=failure,
            inputs={"messages": [[question + padding]]},
            outputs=None if error else answer,
            metadata=metadata,
            chunk_count=3,
            first_chunk_ns=start_ns + 2 * MS,
            first_token_ns=start_ns + 2 * MS,
            usage=usage,
            model=model,
            attributes={"provider": provider} if provider else {},
        )
    )
    if extra_step is not None:
        records.append(
            Span(
                trace_id=trace_id,
                span_id=str(uuid.uuid4()),
                parent_id=root_id,
                name=extra_step,
                run_type="tool",
                start_ns=model_end,
                end_ns=end_ns,
                status="ok",
            )
        )
    records.append(
        Span(
            trace_id=trace_id,
            span_id=root_id,
            parent_id=None,
            name="RunnableSequence",
            run_type="chain",
            start_ns=start_ns,
            end_ns=end_ns,
            status=status,
            error=failure,
            inputs={"question": question},
            outputs=None if error else answer,
            tags=("demo",),
            metadata={"user": "u1"},
        )
    )
    records.append(TraceEnd(trace_id, status, end_ns, len(records) - 1, 0, failure))
    return records


def lines(records: Iterable[Record]) -> Iterator[bytes]:
    for record in records:
        yield encode_line(record)


def write(path: Path, traces: Iterable[list[Record]], *, compress: bool = False) -> Path:
    """Write traces one after the other (gzipped when asked) and return the path."""
    opener = gzip.open if compress else open
    with opener(path, "wb") as handle:
        for records in traces:
            handle.writelines(lines(records))
    return path
