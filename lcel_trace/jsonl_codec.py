"""The JSONL line codec: records to JSON lines and back, validated.

Format `lcel-trace/2` writes each value once: a run's inputs on its start event line
(or its end or error line, for steps that only report them there), its outputs on its
end event line, and a span line omits `inputs`/`outputs` when its writer put those very
values on the run's event lines; a reader takes them back from there (`FROM_EVENTS`
stands in until it does). A span line that carries the keys means those values, so a
line written alone (`encode_line`) is complete. `lcel-trace/1` lines (every value on the
span line too) are still read.

Writing never raises (content goes through `to_jsonable`, or is written by orjson as it
is where `serialize.proven_json` proves that the same text); reading treats every line
as untrusted and raises `ValueError` with a reason a person can act on.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, cast

try:
    import orjson
except ImportError:  # pragma: no cover - PyPy, or a stripped environment
    orjson = None  # type: ignore[assignment]

from lcel_trace.json_text import dumps_bytes
from lcel_trace.serialize import ESCAPE_KEY, convert, from_jsonable, proven_json, to_jsonable
from lcel_trace.span import (
    EVENT_KINDS,
    RUN_TYPES,
    STATUSES,
    Record,
    Span,
    SpanError,
    SpanEvent,
    TraceEnd,
    TraceEvent,
    TraceStart,
    Usage,
)

__all__ = [
    "FORMAT",
    "FROM_EVENTS",
    "READ_FORMATS",
    "RECORD_TYPES",
    "Record",  # defined in lcel_trace.span, named here for the codec's callers
    "encode_line",
    "from_line",
    "to_line",
]

FORMAT = "lcel-trace/2"
"""What the writer puts in `trace_start` lines."""
READ_FORMATS: frozenset[str] = frozenset(("lcel-trace/1", FORMAT))


class _FromEvents:
    """The value of a span's inputs or outputs its line left to the run's event lines."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<from the run's events>"


FROM_EVENTS: Any = _FromEvents()
RECORD_TYPES: frozenset[str] = frozenset(("trace_start", "event", "span", "trace_end"))
# Timestamps and counts are non-negative 64-bit integers, as the recorder writes them.
MAX_INT = 2**63


def encode_line(
    record: Record,
    max_attr_chars: int | None = None,
    memo: dict[Any, Any] | None = None,
    *,
    inputs: bool = True,
    outputs: bool = True,
) -> bytes:
    """One record as one compact UTF-8 JSON line, newline included; content strings
    longer than `max_attr_chars` characters are cut with a visible marker.

    `memo` (one per batch of records, which keep its values alive) lets a content value
    that several records share be converted once. `inputs=False` / `outputs=False` leave
    a span's values out: its writer wrote them on the run's event lines.

    Content goes to orjson as it is where `serialize.proven_json` proves the text the
    same as its converted form's; the bytes are those of `dumps_bytes(to_line(...))`.
    """
    if orjson is not None:
        kind, any_record = type(record), cast("Any", record)
        if kind is TraceEvent:
            line = _event_line(any_record)
            text = proven_json(line, max_attr_chars, memo, _EVENT_CONTENT, 0, b"\n")
        elif kind is Span:
            text = _fast_span_line(any_record, max_attr_chars, memo, inputs, outputs)
        else:
            text = _plain_line(_line(record, None, None, True, True))
        if text is not None:
            return text
    return dumps_bytes(_line(record, max_attr_chars, memo, inputs, outputs)) + b"\n"


_EVENT_CONTENT = b',"metadata":'
"""Where an event line's content starts: the fields before it are plain strings."""


def _fast_span_line(
    span: Span, max_attr_chars: int | None, memo: dict[Any, Any] | None, inputs: bool, outputs: bool
) -> bytes | None:
    """A span's line written by orjson with its content as it is, when `proven_json`
    proves it the same text; None when it cannot."""
    line = _raw_span_line(span, inputs, outputs)
    if (
        not (inputs or outputs or span.events or span.metadata or span.attributes)
        and type(span.metadata) is dict
        and type(span.attributes) is dict
    ):
        return _plain_line(line)  # no content: nothing to prove
    content = b',"inputs":' if inputs else b',"outputs":' if outputs else b',"tags":'
    return proven_json(line, max_attr_chars, memo, content, _span_nulls(span), b"\n")


def _plain_line(line: dict[str, Any]) -> bytes | None:
    """A line without content, as `dumps_bytes` writes it when orjson can."""
    try:
        return orjson.dumps(line) + b"\n"  # a new bytes of its size: orjson's keeps 4 KiB
    except TypeError:
        return None


def _span_nulls(span: Span) -> int:
    """The nulls a span's line holds after its content starts, outside its content."""
    usage = span.usage
    nulls = (span.first_chunk_ns is None) + (span.first_token_ns is None) + (span.model is None)
    if usage is None:
        return nulls + 1
    return (
        nulls
        + (usage.input_tokens is None)
        + (usage.output_tokens is None)
        + (usage.total_tokens is None)
    )


def _content(value: Any, max_attr_chars: int | None, memo: dict[Any, Any] | None) -> Any:
    """A content value (inputs, outputs, run metadata), converted once per batch (never
    raises): records of one run share the very same objects."""
    if memo is None or value is None or isinstance(value, (str, int, float)):
        return to_jsonable(value, max_attr_chars)
    hit = memo.get((id(value), 0))
    if hit is None or hit[0] is not value:
        hit = memo[(id(value), 0)] = (value, to_jsonable(value, max_attr_chars))
    return hit[1]


def _data(data: Mapping[str, Any], max_attr_chars: int | None, memo: dict[Any, Any] | None) -> Any:
    """An event's data: as `to_jsonable(data)`, its values converted once per batch."""
    if memo is None or type(data) is not dict or "lc" in data or ESCAPE_KEY in data:
        return to_jsonable(data, max_attr_chars)
    out = {}
    try:
        for key, value in data.items():
            if type(key) is not str:
                return to_jsonable(data, max_attr_chars)
            if value is None or isinstance(value, (str, int, float)):
                out[key] = convert(value, max_attr_chars, 1)
                continue
            hit = memo.get((id(value), 1))
            if hit is None or hit[0] is not value:
                hit = memo[(id(value), 1)] = (value, convert(value, max_attr_chars, 1))
            out[key] = hit[1]
    except Exception:
        return to_jsonable(data, max_attr_chars)  # its never-raising form of the whole
    return out


def to_line(
    record: Record, max_attr_chars: int | None = None, memo: dict[Any, Any] | None = None
) -> dict[str, Any]:
    """One record as the JSON-safe dict its line holds."""
    return _line(record, max_attr_chars, memo, True, True)


def _line(
    record: Record,
    max_attr_chars: int | None,
    memo: dict[Any, Any] | None,
    inputs: bool,
    outputs: bool,
) -> dict[str, Any]:
    """The line's dict, its content converted."""
    if isinstance(record, Span):
        line = _raw_span_line(record, inputs, outputs)
        for key in ("inputs", "outputs", "metadata"):
            if key in line:
                line[key] = _content(line[key], max_attr_chars, memo)
        line["tags"] = list(record.tags)
        line["events"] = [
            {"name": e.name, "ts_ns": e.ts_ns, "data": to_jsonable(e.data, max_attr_chars)}
            for e in record.events
        ]
        line["attributes"] = to_jsonable(record.attributes, max_attr_chars)
        return line
    if isinstance(record, TraceEvent):
        line = _event_line(record)
        line["parent_ids"] = list(record.parent_ids)
        line["tags"] = list(record.tags)
        line["metadata"] = _content(record.metadata, max_attr_chars, memo)
        line["data"] = _data(record.data, max_attr_chars, memo)
        return line
    if isinstance(record, TraceStart):
        return {
            "type": "trace_start",
            "trace_id": record.trace_id,
            "format": FORMAT,
            "name": record.name,
            "start_ns": record.start_ns,
            "start_time": datetime.fromtimestamp(record.start_ns / 1e9, UTC).isoformat(),
            "root_run_id": record.root_run_id,
            "otel_parent_span_id": record.otel_parent_span_id,
            "versions": dict(record.versions),
            "max_attr_chars": record.max_attr_chars,
        }
    return {
        "type": "trace_end",
        "trace_id": record.trace_id,
        "status": record.status,
        "end_ns": record.end_ns,
        "span_count": record.span_count,
        "event_count": record.event_count,
        "error": _error_line(record.error),
    }


def _event_line(event: TraceEvent) -> dict[str, Any]:
    """An event's line with its content as it is (for `proven_json`, or to convert)."""
    return {
        "type": "event",
        "trace_id": event.trace_id,
        "kind": event.kind,
        "event": event.event,
        "run_id": event.run_id,
        "parent_ids": event.parent_ids,
        "name": event.name,
        "run_type": event.run_type,
        "tags": event.tags,
        "metadata": event.metadata,
        "data": event.data,
        "ts_ns": event.ts_ns,
    }


def _raw_span_line(span: Span, inputs: bool, outputs: bool) -> dict[str, Any]:
    """A span's line with its content as it is (for `proven_json`, or to convert),
    without the inputs or outputs its writer put on the run's event lines."""
    usage = span.usage
    line = {
        "type": "span",
        "trace_id": span.trace_id,
        "span_id": span.span_id,
        "parent_id": span.parent_id,
        "name": span.name,
        "run_type": span.run_type,
        "start_ns": span.start_ns,
        "end_ns": span.end_ns,
        "status": span.status,
        "error": _error_line(span.error),
        "inputs": span.inputs,
        "outputs": span.outputs,
        "tags": span.tags,
        "metadata": span.metadata,
        "chunk_count": span.chunk_count,
        "first_chunk_ns": span.first_chunk_ns,
        "first_token_ns": span.first_token_ns,
        "usage": None
        if usage is None
        else {
            "input_tokens": usage.input_tokens,
            "output_tokens": usage.output_tokens,
            "total_tokens": usage.total_tokens,
        },
        "model": span.model,
        "events": [{"name": e.name, "ts_ns": e.ts_ns, "data": e.data} for e in span.events],
        "attributes": span.attributes,
    }
    if not inputs:
        del line["inputs"]
    if not outputs:
        del line["outputs"]
    return line


def _error_line(error: SpanError | None) -> dict[str, str] | None:
    return None if error is None else {"type": error.type, "message": error.message}


# -- reading ----------------------------------------------------------------------------


def from_line(obj: Any) -> Record:
    """A record from one parsed JSON line; `ValueError` says what is wrong with it."""
    if not isinstance(obj, dict):
        raise ValueError(f"expected a JSON object, got {type(obj).__name__}")
    kind = obj.get("type")
    _str(obj, "trace_id")
    if kind == "span":
        return _read_span(obj)
    if kind == "event":
        return _read_event(obj)
    if kind == "trace_start":
        if obj.get("format") not in READ_FORMATS:
            expected = " or ".join(repr(f) for f in sorted(READ_FORMATS))
            raise ValueError(f"unsupported format {obj.get('format')!r} (expected {expected})")
        versions = obj.get("versions") or {}
        if not isinstance(versions, dict):
            raise ValueError("'versions' must be an object")
        return TraceStart(
            trace_id=obj["trace_id"],
            name=_str(obj, "name"),
            start_ns=_int(obj, "start_ns"),
            root_run_id=_str(obj, "root_run_id"),
            otel_parent_span_id=_opt_str(obj, "otel_parent_span_id"),
            versions={str(k): str(v) for k, v in versions.items()},
            max_attr_chars=_opt_int(obj, "max_attr_chars"),
        )
    if kind == "trace_end":
        return TraceEnd(
            trace_id=obj["trace_id"],
            status=cast("Any", _choice(obj, "status", STATUSES)),
            end_ns=_int(obj, "end_ns"),
            span_count=_int(obj, "span_count"),
            event_count=_int(obj, "event_count"),
            error=_read_error(obj.get("error")),
        )
    raise ValueError(f"unknown record type {kind!r}")


def _read_span(obj: dict[str, Any]) -> Span:
    usage_obj = obj.get("usage")
    usage = None
    if usage_obj is not None:
        if not isinstance(usage_obj, dict):
            raise ValueError("'usage' must be an object or null")
        usage = Usage(
            _opt_int(usage_obj, "input_tokens"),
            _opt_int(usage_obj, "output_tokens"),
            _opt_int(usage_obj, "total_tokens"),
        )
    events = obj.get("events") or []
    if not isinstance(events, list):
        raise ValueError("'events' must be a list")
    return Span(
        trace_id=obj["trace_id"],
        span_id=_str(obj, "span_id"),
        parent_id=_opt_str(obj, "parent_id"),
        name=_str(obj, "name"),
        run_type=cast("Any", _choice(obj, "run_type", RUN_TYPES)),
        start_ns=_int(obj, "start_ns"),
        end_ns=_int(obj, "end_ns"),
        status=cast("Any", _choice(obj, "status", STATUSES)),
        error=_read_error(obj.get("error")),
        inputs=_revive(obj, "inputs") if "inputs" in obj else FROM_EVENTS,
        outputs=_revive(obj, "outputs") if "outputs" in obj else FROM_EVENTS,
        tags=_str_tuple(obj, "tags"),
        metadata=_mapping(_revive(obj, "metadata", {}), "metadata"),
        chunk_count=_int(obj, "chunk_count"),
        first_chunk_ns=_opt_int(obj, "first_chunk_ns"),
        first_token_ns=_opt_int(obj, "first_token_ns"),
        usage=usage,
        model=_opt_str(obj, "model"),
        events=tuple(_read_span_event(e) for e in events),
        attributes=_mapping(_revive(obj, "attributes", {}), "attributes"),
    )


def _read_span_event(obj: Any) -> SpanEvent:
    if not isinstance(obj, dict):
        raise ValueError("span events must be objects")
    return SpanEvent(_str(obj, "name"), _int(obj, "ts_ns"), _revive(obj, "data"))


def _read_event(obj: dict[str, Any]) -> TraceEvent:
    parent_ids = obj.get("parent_ids") or []
    if not isinstance(parent_ids, list) or not all(isinstance(p, str) for p in parent_ids):
        raise ValueError("'parent_ids' must be a list of strings")
    kind = _choice(obj, "kind", EVENT_KINDS)
    data = _mapping(_revive(obj, "data", {}), "data")
    if kind == "stream":
        _check_chunks(data.get("chunks", []))
    return TraceEvent(
        trace_id=obj["trace_id"],
        kind=cast("Any", kind),
        event=_str(obj, "event"),
        run_id=_str(obj, "run_id"),
        parent_ids=tuple(parent_ids),
        name=_str(obj, "name"),
        run_type=cast("Any", _choice(obj, "run_type", RUN_TYPES)),
        tags=_str_tuple(obj, "tags"),
        metadata=_mapping(_revive(obj, "metadata", {}), "metadata"),
        data=data,
        ts_ns=_int(obj, "ts_ns"),
    )


def _read_error(obj: Any) -> SpanError | None:
    if obj is None:
        return None
    if not isinstance(obj, dict):
        raise ValueError("'error' must be an object or null")
    return SpanError(_str(obj, "type"), _str(obj, "message"))


def _str(obj: Mapping[str, Any], key: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str):
        raise ValueError(f"{key!r} must be a string, got {_type_name(value)}")
    return value


def _opt_str(obj: Mapping[str, Any], key: str) -> str | None:
    return None if obj.get(key) is None else _str(obj, key)


def _int(obj: Mapping[str, Any], key: str) -> int:
    value = obj.get(key)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"{key!r} must be an integer, got {_type_name(value)}")
    if not 0 <= value < MAX_INT:
        raise ValueError(f"{key!r} must be in [0, 2**63), got {_short(value)}")
    return value


def _short(value: int) -> str:
    bits = value.bit_length()
    return str(value) if bits <= 96 else f"an integer of {bits} bits"


def _revive(obj: Mapping[str, Any], key: str, default: Any = None) -> Any:
    """`from_jsonable` on one field; LangChain's loader can fail in any way on hostile
    content, so every failure becomes a `ValueError` naming the field."""
    value = obj.get(key)
    if default is not None and not value:
        value = default
    try:
        return from_jsonable(value)
    except ValueError:
        raise
    except Exception as exc:
        raise ValueError(f"cannot rebuild {key!r}: {type(exc).__name__}: {exc}") from None


def _check_chunks(chunks: Any) -> None:
    """Stream records hold `[ts_ns, chunk]` pairs."""
    if not isinstance(chunks, list):
        raise ValueError("stream 'chunks' must be a list of [ts_ns, chunk] pairs")
    for pair in chunks:
        if not isinstance(pair, list) or len(pair) != 2:
            raise ValueError("stream 'chunks' must be a list of [ts_ns, chunk] pairs")
        _int({"chunk ts_ns": pair[0]}, "chunk ts_ns")


def _opt_int(obj: Mapping[str, Any], key: str) -> int | None:
    return None if obj.get(key) is None else _int(obj, key)


def _choice(obj: Mapping[str, Any], key: str, allowed: frozenset[str]) -> str:
    value = _str(obj, key)
    if value not in allowed:
        raise ValueError(f"{key!r} must be one of {sorted(allowed)}, got {value!r}")
    return value


def _str_tuple(obj: Mapping[str, Any], key: str) -> tuple[str, ...]:
    value = obj.get(key) or []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{key!r} must be a list of strings")
    return tuple(value)


def _mapping(value: Any, key: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise ValueError(f"{key!r} must be an object")
    return value


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__
