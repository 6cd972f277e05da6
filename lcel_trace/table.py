"""Spans as a table: one Arrow row per span, read from trace files in bounded memory.

    >>> table = spans("runs/")                  # files, directories, globs, .jsonl.gz
    >>> df = table.to_pandas()                  # or polars.from_arrow(table)

The columns (`SCHEMA`, version `SCHEMA_VERSION`) are a contract: a column may be added
in a later version, never renamed, retyped or dropped. In order:

=================  ==============================  =========================================
column             type                            meaning
=================  ==============================  =========================================
trace_id           string                          32 hex digits, shared by a trace's spans
span_id            string                          the LangChain run id
parent_id          string (null for a root)        the parent run id (or OTel span id)
trace_name         string                          the trace's name (`trace(name=...)`)
name               string                          the run name
run_type           string                          chain, chat_model, llm, tool, ...
level              string                          "root" or "nested"
status             string                          ok, error, cancelled, incomplete
start_time         timestamp[ns, UTC]              when the run started
end_time           timestamp[ns, UTC]              when it ended
duration_ms        float64                         end - start
ttfc_ms            float64                         time to first chunk (streamed runs)
ttft_ms            float64                         time to first token (model runs)
chunk_count        int64                           chunks streamed
input_tokens       int64                           as the provider reported (null: unknown)
output_tokens      int64
total_tokens       int64
model              string                          the model name
provider           string                          LangChain's `ls_provider`
cost_usd           float64                         total price (null: unknown, never 0)
cost_input_usd     float64
cost_output_usd    float64
price_source       string                          e.g. "genai-prices 0.2.5" (null: unpriced)
error_type         string                          the exception's class name
error_message      string
tags               list<string>
metadata           string                          the run metadata as JSON text
inputs             string (content=True only)      inputs as JSON text (LangChain's form)
outputs            string (content=True only)      outputs as JSON text
=================  ==============================  =========================================

Needs the `analysis` extra (`pip install 'lcel-trace[analysis]'`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from typing import Any

try:
    import pyarrow as pa
except ImportError:  # pragma: no cover - exercised in a clean venv by test_packaging
    raise ImportError(
        "lcel_trace.table needs pyarrow: pip install 'lcel-trace[analysis]'"
    ) from None

from lcel_trace.cost import span_cost
from lcel_trace.json_text import dumps_text
from lcel_trace.reader import stream_traces
from lcel_trace.serialize import to_jsonable
from lcel_trace.span import Span, Trace

__all__ = ["BATCH_ROWS", "SCHEMA", "SCHEMA_VERSION", "record_batches", "schema", "spans"]

SCHEMA_VERSION = "1"
BATCH_ROWS = 8192
"""Rows per record batch: the unit of memory while reading."""

_TIME = pa.timestamp("ns", tz="UTC")
_FIELDS: list[tuple[str, pa.DataType]] = [
    ("trace_id", pa.string()),
    ("span_id", pa.string()),
    ("parent_id", pa.string()),
    ("trace_name", pa.string()),
    ("name", pa.string()),
    ("run_type", pa.string()),
    ("level", pa.string()),
    ("status", pa.string()),
    ("start_time", _TIME),
    ("end_time", _TIME),
    ("duration_ms", pa.float64()),
    ("ttfc_ms", pa.float64()),
    ("ttft_ms", pa.float64()),
    ("chunk_count", pa.int64()),
    ("input_tokens", pa.int64()),
    ("output_tokens", pa.int64()),
    ("total_tokens", pa.int64()),
    ("model", pa.string()),
    ("provider", pa.string()),
    ("cost_usd", pa.float64()),
    ("cost_input_usd", pa.float64()),
    ("cost_output_usd", pa.float64()),
    ("price_source", pa.string()),
    ("error_type", pa.string()),
    ("error_message", pa.string()),
    ("tags", pa.list_(pa.string())),
    ("metadata", pa.string()),
]
_CONTENT_FIELDS: list[tuple[str, pa.DataType]] = [("inputs", pa.string()), ("outputs", pa.string())]
_METADATA = {b"lcel_trace.schema": f"spans/{SCHEMA_VERSION}".encode()}


def schema(*, content: bool = False) -> pa.Schema:
    """The table's schema; with `content`, the `inputs` and `outputs` columns too."""
    fields = _FIELDS + (_CONTENT_FIELDS if content else [])
    return pa.schema([pa.field(name, kind) for name, kind in fields], metadata=_METADATA)


SCHEMA = schema()


def spans(
    paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]], *, content: bool = False
) -> pa.Table:
    """Every span in the trace files `paths` names, one row each (`SCHEMA`).

    Read in record batches of `BATCH_ROWS`; the table itself is columnar and much
    smaller than the JSON. For more traces than fit in memory, write the batches out
    one at a time (`record_batches`, or `lcel-trace export`)."""
    return pa.Table.from_batches(
        list(record_batches(paths, content=content)), schema=schema(content=content)
    )


def record_batches(
    paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    *,
    content: bool = False,
    batch_rows: int = BATCH_ROWS,
) -> Iterator[pa.RecordBatch]:
    """The rows of `spans(paths)` as record batches, read as they are yielded: memory
    holds one batch and the traces still open."""
    return batches_of(stream_traces(paths), content=content, batch_rows=batch_rows)


def batches_of(
    traces: Iterable[Trace], *, content: bool = False, batch_rows: int = BATCH_ROWS
) -> Iterator[pa.RecordBatch]:
    """Record batches of the spans of `traces` (already read, or streamed)."""
    target = schema(content=content)
    columns: dict[str, list[Any]] = {name: [] for name in target.names}
    rows = 0
    for trace in traces:
        root_id = _root_id(trace)
        for span in trace.spans:
            _add_row(columns, trace, span, span.span_id == root_id, content)
            rows += 1
            if rows >= batch_rows:
                yield pa.RecordBatch.from_pydict(columns, schema=target)
                columns = {name: [] for name in target.names}
                rows = 0
    if rows:
        yield pa.RecordBatch.from_pydict(columns, schema=target)


def _add_row(
    columns: dict[str, list[Any]], trace: Trace, span: Span, is_root: bool, content: bool
) -> None:
    usage, error = span.usage, span.error
    cost = span_cost(span)
    first_chunk, first_token = span.time_to_first_chunk_ns, span.time_to_first_token_ns
    provider = span.attributes.get("provider") or span.metadata.get("ls_provider")
    values: dict[str, Any] = {
        "trace_id": span.trace_id,
        "span_id": span.span_id,
        "parent_id": span.parent_id,
        "trace_name": trace.name,
        "name": span.name,
        "run_type": span.run_type,
        "level": "root" if is_root else "nested",
        "status": span.status,
        "start_time": span.start_ns,
        "end_time": span.end_ns,
        "duration_ms": span.duration_ns / 1e6,
        "ttfc_ms": None if first_chunk is None else first_chunk / 1e6,
        "ttft_ms": None if first_token is None else first_token / 1e6,
        "chunk_count": span.chunk_count,
        "input_tokens": usage.input_tokens if usage else None,
        "output_tokens": usage.output_tokens if usage else None,
        "total_tokens": usage.total_tokens if usage else None,
        "model": span.model,
        "provider": provider if isinstance(provider, str) else None,
        "cost_usd": cost.total_usd if cost else None,
        "cost_input_usd": cost.input_usd if cost else None,
        "cost_output_usd": cost.output_usd if cost else None,
        "price_source": cost.source if cost else None,
        "error_type": error.type if error else None,
        "error_message": error.message if error else None,
        "tags": list(span.tags),
        "metadata": dumps_text(to_jsonable(dict(span.metadata))),
    }
    if content:
        values["inputs"] = None if span.inputs is None else dumps_text(to_jsonable(span.inputs))
        values["outputs"] = None if span.outputs is None else dumps_text(to_jsonable(span.outputs))
    for name, value in values.items():
        columns[name].append(value)


def _root_id(trace: Trace) -> str | None:
    try:
        return trace.root.span_id
    except LookupError:
        return None
