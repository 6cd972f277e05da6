"""The assembler: v2-shaped events in, finished spans out.

`SpanAssembler` is pure bookkeeping with no I/O and no clock of its own: every event
carries its timestamp. It redacts nothing: a span's content is the content its events
were recorded with (the session's redaction stage made it safe once, for the event's
record and the span alike). It is the one place that knows who a run is (name, type,
parents) while it runs, so producers need no run table of their own, and it is fed the
same way by the callback recorder, by a consumed `astream_events` stream and by the
file reader.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from lcel_trace.normalise import (
    error_message,
    fold_chunks,
    has_content,
    is_cancellation,
    request_facts,
    response_facts,
    split_event_name,
)
from lcel_trace.serialize import qualified_name
from lcel_trace.span import (
    RunType,
    Span,
    SpanError,
    SpanEvent,
    Status,
    TraceEvent,
    Usage,
)

__all__ = ["MAX_AGGREGATED_CHUNKS", "RunIdentity", "SpanAssembler"]

MAX_AGGREGATED_CHUNKS = 10_000
"""Chunks kept per aggregated run, so a run that never ends can still show its output;
beyond this the output of an unfinished run is cut short (memory stays bounded)."""


@dataclass(frozen=True, slots=True)
class RunIdentity:
    """Who a running run is: what every event of that run repeats."""

    run_id: str
    family: str
    name: str
    run_type: RunType
    tags: tuple[str, ...]
    metadata: Mapping[str, Any]
    parent_ids: tuple[str, ...]


class _SpanBuilder:
    """A span still running: the mutable counterpart of `Span` (a plain slotted class:
    one is made per run, on the caller's path)."""

    __slots__ = (
        "attributes",
        "chunk_count",
        "chunks",
        "events",
        "first_chunk_ns",
        "first_token_ns",
        "has_inputs",
        "identity",
        "inputs",
        "parent_id",
        "start_ns",
    )

    def __init__(self, identity: RunIdentity, parent_id: str | None, start_ns: int) -> None:
        self.identity = identity
        self.parent_id = parent_id
        self.start_ns = start_ns
        self.inputs: Any = None
        self.has_inputs = False
        self.chunk_count = 0
        self.first_chunk_ns: int | None = None
        self.first_token_ns: int | None = None
        self.chunks: list[Any] | None = None
        self.events: list[SpanEvent] | None = None  # made by the first custom event
        self.attributes: dict[str, Any] = {}

    def add_event(self, event: SpanEvent) -> None:
        if self.events is None:
            self.events = []
        self.events.append(event)


class SpanAssembler:
    """Turns the events of one trace into `Span`s, closing every span exactly once.

    The first run to start is the trace's root; its parent is `root_parent_id` (the
    OpenTelemetry span the trace hangs under). `feed` returns the span an end or
    error event finishes; `abort` closes whatever is still open (innermost first).
    """

    def __init__(
        self,
        trace_id: str,
        *,
        redact_folded: Callable[[Any], Any] | None = None,
        root_parent_id: str | None = None,
        root_run_id: str | None = None,
        aggregate_root: bool = True,
    ) -> None:
        self.trace_id = trace_id
        self.root_run_id = root_run_id
        self._redact_folded = redact_folded or _as_recorded
        self._root_parent_id = root_parent_id
        self._aggregate_root = aggregate_root
        self._open: dict[str, _SpanBuilder] = {}
        self._closed: set[str] = set()

    @property
    def open_count(self) -> int:
        return len(self._open)

    def identity(self, run_id: str) -> RunIdentity | None:
        """Who `run_id` is, while it runs."""
        builder = self._open.get(run_id)
        return builder.identity if builder is not None else None

    def has_seen(self, run_id: str) -> bool:
        """Whether `run_id` started in this trace (running or ended)."""
        return run_id in self._open or run_id in self._closed

    def feed(self, event: TraceEvent, happened: Mapping[str, Any] | None = None) -> Span | None:
        """Apply one event; return the span it finished, if any.

        `event.data` is the event's content as recorded (inputs, outputs, custom data,
        errors as type and message: what the span carries); `happened` is its data as it
        happened, when the recorder has it (the facts, usage and the model, and whether
        an error was a cancellation, come from that); None for a file's events."""
        kind = event.kind
        content = event.data
        data = content if happened is None else happened
        if kind == "start":
            self._start(event, content, data)
            return None
        if kind == "stream":
            for ts, chunk in content.get("chunks", ()):
                self.chunk(event.run_id, ts, chunk)
            return None
        if kind == "custom":
            builder = self._open.get(event.run_id)
            if builder is not None:
                builder.add_event(SpanEvent(event.name, event.ts_ns, content))
            return None
        if kind == "end":
            return self._end(event, content, data)
        if kind == "error":
            return self._fail(event, content, data)
        return None

    def chunk(self, run_id: str, ts_ns: int, chunk: Any) -> None:
        """Count one streamed chunk (the hot path: no allocation unless aggregating)."""
        builder = self._open.get(run_id)
        if builder is None:
            return
        if builder.first_token_ns is None:
            if builder.first_chunk_ns is None:
                builder.first_chunk_ns = ts_ns
            if has_content(chunk):
                builder.first_token_ns = ts_ns
        builder.chunk_count += 1
        if builder.chunks is not None and len(builder.chunks) < MAX_AGGREGATED_CHUNKS:
            builder.chunks.append(chunk)

    def counter(self, run_id: str, clock: Callable[[], int]) -> Callable[[Any], None]:
        """`chunk` for one run's chunks as they happen, bound to that run: reads `clock`
        only for the chunks that set its first-chunk and first-token times (the
        per-token path of a run whose chunks nobody records)."""
        builder = self._open.get(run_id)
        if builder is None:  # not started yet (or over): look the run up chunk by chunk

            def count_when_open(chunk: Any) -> None:
                self.chunk(run_id, clock(), chunk)

            return count_when_open

        def count(chunk: Any) -> None:
            if builder.first_token_ns is None:
                ts_ns = clock()
                if builder.first_chunk_ns is None:
                    builder.first_chunk_ns = ts_ns
                if has_content(chunk):
                    builder.first_token_ns = ts_ns
            builder.chunk_count += 1
            if builder.chunks is not None and len(builder.chunks) < MAX_AGGREGATED_CHUNKS:
                builder.chunks.append(chunk)

        return count

    def abort(
        self, status: Status, error: BaseException | SpanError | None, ts_ns: int
    ) -> list[Span]:
        """Close every open span, innermost (latest started) first."""
        span_error = self._span_error(error) if error is not None else None
        finished = []
        for run_id in sorted(self._open, key=lambda r: self._open[r].start_ns, reverse=True):
            builder = self._open[run_id]
            builder.attributes["closed_at_trace_end"] = True
            outputs = self._folded(builder)
            finished.append(self._finish(builder, ts_ns, status, span_error, outputs))
        return finished

    def _folded(self, builder: _SpanBuilder) -> Any:
        """The output a run streamed, for a run that did not report one at its end."""
        return self._redact_folded(fold_chunks(builder.chunks)) if builder.chunks else None

    def _start(
        self, event: TraceEvent, content: Mapping[str, Any], data: Mapping[str, Any]
    ) -> None:
        run_id = event.run_id
        if run_id in self._open or run_id in self._closed:
            return
        if self.root_run_id is None:
            self.root_run_id = run_id
        if run_id == self.root_run_id:
            parent_id = self._root_parent_id
        elif event.parent_ids:
            parent_id = event.parent_ids[-1]
        else:  # LangChain lost the link (a context copy): the run is inside this call
            parent_id = self.root_run_id
        identity = RunIdentity(
            run_id=run_id,
            family=split_event_name(event.event)[0],
            name=event.name,
            run_type=event.run_type,
            tags=event.tags,
            metadata=event.metadata,
            parent_ids=event.parent_ids,
        )
        builder = _SpanBuilder(identity=identity, parent_id=parent_id, start_ns=event.ts_ns)
        if "input" in content:  # as it was when the run started
            builder.inputs = content["input"]
            builder.has_inputs = True
        if self._aggregate_root and run_id == self.root_run_id:
            builder.chunks = []
        if event.run_type in ("chat_model", "llm"):
            builder.attributes.update(request_facts(event.metadata, data))
        if parent_id == self.root_run_id and not event.parent_ids:
            builder.attributes["parent_inferred"] = True
        if event.run_type == "tool" and data.get("tool_call_id"):
            builder.attributes["tool_call_id"] = data["tool_call_id"]
        self._open[run_id] = builder

    def _closing(self, event: TraceEvent, content: Mapping[str, Any]) -> _SpanBuilder | None:
        """The open span an end or error event closes, given the inputs that streamed
        steps only report at their end."""
        builder = self._open.get(event.run_id)
        if builder is not None and not builder.has_inputs and "input" in content:
            builder.inputs = content["input"]
            builder.has_inputs = True
        return builder

    def _end(
        self, event: TraceEvent, content: Mapping[str, Any], data: Mapping[str, Any]
    ) -> Span | None:
        builder = self._closing(event, content)
        if builder is None:
            return None
        usage = None
        if builder.identity.run_type in ("chat_model", "llm"):
            usage = response_facts(data.get("output"), builder.attributes)
        return self._finish(builder, event.ts_ns, "ok", None, content.get("output"), usage)

    def _fail(
        self, event: TraceEvent, content: Mapping[str, Any], data: Mapping[str, Any]
    ) -> Span | None:
        builder = self._closing(event, content)
        if builder is None:
            return None
        status: Status = "cancelled" if is_cancellation(data.get("error")) else "error"
        span_error = self._span_error(content.get("error")) if status == "error" else None
        return self._finish(builder, event.ts_ns, status, span_error, self._folded(builder))

    def _finish(
        self,
        builder: _SpanBuilder,
        end_ns: int,
        status: Status,
        error: SpanError | None,
        outputs: Any,
        usage: Usage | None = None,
    ) -> Span:
        identity = builder.identity
        del self._open[identity.run_id]
        self._closed.add(identity.run_id)
        attributes = builder.attributes
        model = attributes.get("response_model") or attributes.get("request_model")
        return Span(
            trace_id=self.trace_id,
            span_id=identity.run_id,
            parent_id=builder.parent_id,
            name=identity.name,
            run_type=identity.run_type,
            start_ns=builder.start_ns,
            end_ns=max(end_ns, builder.start_ns),
            status=status,
            error=error,
            inputs=builder.inputs,
            outputs=outputs,
            tags=identity.tags,
            metadata=identity.metadata,
            chunk_count=builder.chunk_count,
            first_chunk_ns=builder.first_chunk_ns,
            first_token_ns=builder.first_token_ns,
            usage=usage,
            model=model,
            events=tuple(builder.events) if builder.events else (),
            attributes=attributes,
        )

    @staticmethod
    def _span_error(error: object) -> SpanError:
        """A recorded error (type and message, as its event's record has them) as a span's."""
        if isinstance(error, SpanError):
            return error
        if isinstance(error, BaseException):
            return SpanError(qualified_name(type(error)), error_message(error))
        if isinstance(error, Mapping) and "error_type" in error:
            return SpanError(str(error["error_type"]), str(error.get("message", "")))
        return SpanError("Error", str(error))


def _as_recorded(value: Any) -> Any:
    return value
