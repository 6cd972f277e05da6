"""What a producer hands a trace: the one door into a `TraceSession`.

A producer (the callback recorder `trace()` attaches, `trace_events()` consuming a v2
stream) reports what it sees, in the shape it sees it, with one of four small events:
a run started, ended or failed, streamed a chunk, or dispatched a custom event. It
states only what it knows at that moment; the session completes the rest from its own
run table (a run's name, tags, metadata and ancestry on every later event, the
ancestry of a new run from its parent), scrubs what leaves the process and turns the
result into `TraceEvent`s and spans. A producer therefore keeps no run table and knows
nothing of the assembler behind the session.

`TraceSink` declares everything a producer may call; `TraceSession` is the one
implementation. Events are named tuples: built on every callback, so they stay cheap.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal, NamedTuple, Protocol

from lcel_trace.span import RunType

__all__ = ["ChunkSink", "RunChunk", "RunCustom", "RunEnd", "RunEvent", "RunStart", "TraceSink"]


class RunStart(NamedTuple):
    """A run started. `family` is the v2 event family (`chain`, `chat_model`, `llm`,
    `tool`, `retriever`, `prompt`, `parser`); `parent_run_id` the run it runs under, as
    LangChain reports it (the session works out the whole ancestry)."""

    run_id: str
    family: str
    name: str
    run_type: RunType
    data: dict[str, Any]
    ts_ns: int
    parent_run_id: str | None = None
    tags: Sequence[str] | None = None
    metadata: Any = None


class RunEnd(NamedTuple):
    """A run ended (`kind="end"`, `data["output"]`) or failed (`kind="error"`,
    `data["error"]` the exception); `data["input"]` when only the end reports it."""

    run_id: str
    data: dict[str, Any]
    ts_ns: int
    kind: Literal["end", "error"] = "end"


class RunChunk(NamedTuple):
    """One chunk a run streamed."""

    run_id: str
    chunk: Any
    ts_ns: int


class RunCustom(NamedTuple):
    """A custom event (`dispatch_custom_event`) a run dispatched, with its payload."""

    run_id: str
    name: str
    data: Any
    ts_ns: int
    tags: Sequence[str] | None = None
    metadata: Any = None


RunEvent = RunStart | RunEnd | RunChunk | RunCustom

ChunkSink = Callable[[Any], None]
"""Takes one run's chunks as they happen, stamped when they arrive."""


class TraceSink(Protocol):
    """What a producer may ask of the trace it feeds, and nothing more."""

    @property
    def trace_id(self) -> str:
        """The trace's id (also OpenTelemetry's, when the trace is sent there)."""
        ...

    @property
    def root_run_id(self) -> str | None:
        """The trace's root run, once known."""
        ...

    @property
    def sets_otel_context(self) -> bool:
        """Whether runs are made OpenTelemetry's current span while they execute."""
        ...

    def feed(self, event: RunEvent) -> bool:
        """Take one event; False when the trace does not take it: a start of a run it
        already has (another producer reported it first), an event of a run it does not
        have, or anything after the trace ended."""
        ...

    def chunk_sink(self, run_id: str) -> ChunkSink:
        """`feed(RunChunk(run_id, chunk, now))` bound to one run, for the per-token path."""
        ...
