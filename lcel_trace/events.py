"""`trace_events()`: record any `astream_events(version="v2")` stream as it is consumed.

The second producer of the pipeline (the first is the recorder `trace()` attaches):
hand it an event stream you already have (your app's own `astream_events`, a LangServe
`RemoteRunnable`'s, a replayed file) and iterate it as before. Every event is passed on
unchanged, the very same object, while each root run's events are fed to a
`TraceSession` of their own, so one stream of several root runs gives several traces.

What a consumed stream cannot tell, and what is done instead:

- **Time.** v2 events carry no timestamp, so an event is stamped when it arrives here
  (the v2 queue is unbounded: a slow consumer stamps late). An event that carries an
  integer `ts_ns` field (nanoseconds since the Unix epoch) is stamped with that instead.
- **Failures.** v2 reports no error for chains and models. When the stream raises, every
  span still open closes with that exception; when the consumer stops early (`break`,
  `aclose()`, a cancelled task) they close as `"cancelled"`.
- **Run types.** v2 reports lambdas and user-defined runnables as plain chains; pass
  `runnable=` (the runnable whose stream this is) to have them typed as `trace()` does.
- **v1 streams** carry no parents (`parent_ids` absent, or empty for every run): their
  events all go to one trace per root run and every run hangs directly under that root
  (a flat tree); this is logged once as `v1_event_stream_flat_tree`. A stream is taken
  for v1 when a second parentless run starts while the first is open before any event
  has shown a parent (so a merged stream of concurrent parentless v2 roots is too).

Consumed inside an enclosing traced call (a `trace()`d chain's step iterating a remote
stream), the events join that call's trace under the run that is consuming them,
instead of starting traces of their own; runs the enclosing recorder already sees
(a local runnable's stream inherits its callbacks) are left to it.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator, Mapping
from typing import Any, Unpack

from langchain_core.runnables import Runnable

from lcel_trace._log import report_internal_error, warn_once
from lcel_trace.clock import now_ns
from lcel_trace.context import (
    TraceOptions,
    TracingOptions,
    inside_recorded_event_stream,
    is_sampled,
    new_trace_id,
    otel_parent,
)
from lcel_trace.normalise import PHASE_KIND, run_type_of, split_event_name
from lcel_trace.run_events import RunChunk, RunCustom, RunEnd, RunEvent, RunStart, TraceSink
from lcel_trace.session import TraceSession
from lcel_trace.span import RunType
from lcel_trace.wrapper import enclosing_trace, run_types_by_name

__all__ = ["trace_events", "trace_events_sync"]


def trace_events(
    events: AsyncIterable[Any],
    *,
    runnable: Runnable[Any, Any] | None = None,
    **options: Unpack[TracingOptions],
) -> AsyncIterator[Any]:
    """Yield every event of `events` unchanged, recording one trace per root run.

    The options (`exporters`, `name`, `redact`, `capture_content`, `max_attr_chars`,
    `sample`: `context.TracingOptions`) mean what they mean for `trace()`; `runnable`,
    when given, is the runnable that produced the stream (used only to name the run
    types of its lambdas and user-defined steps). Options are checked now, the stream
    is read lazily.
    """
    return _traced_async(events, _options(runnable, options))


def trace_events_sync(
    events: Iterable[Any],
    *,
    runnable: Runnable[Any, Any] | None = None,
    **options: Unpack[TracingOptions],
) -> Iterator[Any]:
    """`trace_events` for a sync iterable of v2 events (e.g. `Runnable.stream_events`)."""
    return _traced_sync(events, _options(runnable, options))


def _options(runnable: Runnable[Any, Any] | None, options: TracingOptions) -> TraceOptions:
    """The options `trace()` would resolve for the same arguments."""
    run_types = run_types_by_name(runnable) if runnable is not None else None
    return TraceOptions.build(name_run_types=run_types, **options)


async def _traced_async(events: AsyncIterable[Any], options: TraceOptions) -> AsyncIterator[Any]:
    router = _Router(options)
    source = aiter(events)
    try:
        while True:
            token = inside_recorded_event_stream.set(True)
            try:
                raw = await anext(source)
            except StopAsyncIteration:
                break
            finally:
                inside_recorded_event_stream.reset(token)
            router.route(raw)
            yield raw
    except (GeneratorExit, asyncio.CancelledError):
        router.close(cancelled=True)
        await _aclose(source)
        raise
    except BaseException as exc:
        router.close(exc)
        raise
    router.close()


def _traced_sync(events: Iterable[Any], options: TraceOptions) -> Iterator[Any]:
    router = _Router(options)
    source = iter(events)
    try:
        while True:
            token = inside_recorded_event_stream.set(True)
            try:
                raw = next(source)
            except StopIteration:
                break
            finally:
                inside_recorded_event_stream.reset(token)
            router.route(raw)
            yield raw
    except GeneratorExit:
        router.close(cancelled=True)
        close = getattr(source, "close", None)
        if callable(close):
            close()
        raise
    except BaseException as exc:
        router.close(exc)
        raise
    router.close()


async def _aclose(source: AsyncIterator[Any]) -> None:
    aclose = getattr(source, "aclose", None)
    if aclose is None:
        return
    try:
        await aclose()
    except Exception as exc:  # the source's own cleanup failing is not the consumer's concern
        report_internal_error("trace_events.aclose", exc)


def _run_event(
    raw: Mapping[str, Any], ts_ns: int, name_run_types: Mapping[str, RunType]
) -> RunEvent:
    """One raw v2 event as the producer event a session takes. A start names its direct
    parent; later events name only their run (the session completes them from the
    start, so no later event carries a secret the start's name or metadata was cleaned
    of)."""
    run_id = str(raw["run_id"])
    event = str(raw["event"])
    data = raw.get("data")
    if event == "on_custom_event":
        return RunCustom(
            run_id, str(raw.get("name", "")), data, ts_ns, raw.get("tags"), raw.get("metadata")
        )
    data = data or {}
    family, phase = split_event_name(event)
    kind = PHASE_KIND.get(phase)
    if kind == "stream":
        return RunChunk(run_id, data.get("chunk"), ts_ns)
    if kind == "end" or kind == "error":
        return RunEnd(run_id, dict(data), ts_ns, kind)
    name = str(raw.get("name", ""))
    parents = raw.get("parent_ids")
    return RunStart(
        run_id,
        family,
        name,
        run_type_of(family, name, name_run_types),
        dict(data),
        ts_ns,
        str(parents[-1]) if parents else None,
        raw.get("tags"),
        raw.get("metadata"),
    )


class _Router:
    """Sends each event to the trace of its root run. Never raises into the stream."""

    def __init__(self, options: TraceOptions) -> None:
        self._options = options
        self._sessions: dict[str, TraceSession] = {}
        self._unsampled: set[str] = set()
        self._v1_root: str | None = None  # the root of the run most recently opened
        self._v1: bool | None = None
        self._seen_parents = False
        self._started = False
        self._join: _Join | None = None

    def route(self, raw: Any) -> None:
        try:
            if not self._started:
                self._started = True
                self._join = _Join.enclosing()
            if not isinstance(raw, Mapping) or "event" not in raw or "run_id" not in raw:
                return
            if self._join is not None:
                self._join.route(raw, self._ts(raw), self._options)
            else:
                self._route(raw)
        except Exception as exc:
            report_internal_error("trace_events.route", exc)

    def close(self, error: BaseException | None = None, *, cancelled: bool = False) -> None:
        """End every trace still open: with the stream's exception, or cancelled."""
        try:
            if self._join is not None:
                self._join.close(error, cancelled=cancelled)
            sessions, self._sessions = list(self._sessions.values()), {}
            for session in sessions:
                session.finish(error, cancelled=cancelled)
        except Exception as exc:
            report_internal_error("trace_events.close", exc)

    @staticmethod
    def _ts(raw: Mapping[str, Any]) -> int:
        ts = raw.get("ts_ns")
        return ts if isinstance(ts, int) and not isinstance(ts, bool) and ts > 0 else now_ns()

    def _route(self, raw: Mapping[str, Any]) -> None:
        run_id = str(raw["run_id"])
        event_name = str(raw["event"])
        parents = raw.get("parent_ids") or ()
        if parents:
            self._seen_parents = True
            root = str(parents[0])
        elif self._is_v1(raw, run_id, event_name):
            root = self._v1_root or run_id
        else:
            root = run_id
        session = self._sessions.get(root)
        if session is None:
            if root != run_id or not event_name.endswith("_start") or root in self._unsampled:
                return
            session = self._open(raw, run_id)
            if session is None:
                return
            self._v1_root = run_id
        session.feed(_run_event(raw, self._ts(raw), self._options.name_run_types))
        if run_id == root and event_name.endswith(("_end", "_error")):
            del self._sessions[root]
            if self._v1_root == root:
                self._v1_root = None
            session.finish()

    def _is_v1(self, raw: Mapping[str, Any], run_id: str, event_name: str) -> bool:
        """v1 streams report no parents (`parent_ids` empty or absent): told apart from
        a v2 root by a second parentless run starting inside the first, with no event
        of the stream ever having had a parent."""
        if self._v1 is None:
            nested_start = (
                event_name.endswith("_start")
                and self._v1_root is not None
                and self._v1_root != run_id
                and not self._seen_parents
            )
            if "parent_ids" not in raw or nested_start:
                self._v1 = True
                warn_once("v1_event_stream_flat_tree")
        return bool(self._v1)

    def _open(self, raw: Mapping[str, Any], run_id: str) -> TraceSession | None:
        parent = otel_parent()
        trace_id = parent.trace_id if parent else new_trace_id()
        if not is_sampled(trace_id, self._options.sample):
            self._unsampled.add(run_id)
            return None
        session = TraceSession(
            self._options,
            trace_id=trace_id,
            root_name=str(raw.get("name") or "events"),
            otel_parent_span_id=parent.span_id if parent else None,
            root_run_id=run_id,
        )
        self._sessions[run_id] = session
        return session


@dataclasses.dataclass
class _Join:
    """Feeds a stream into the trace of the enclosing traced call (through that trace's
    door, `TraceSink`), under the run that consumes it; runs that trace already has (a
    local runnable's stream inherits the enclosing call's callbacks) are left to it."""

    sink: TraceSink
    consumer: str | None
    joined: set[str] = dataclasses.field(default_factory=set)
    seen: set[str] = dataclasses.field(default_factory=set)
    open: list[str] = dataclasses.field(default_factory=list)

    @classmethod
    def enclosing(cls) -> _Join | None:
        found = enclosing_trace()
        return cls(*found) if found is not None else None

    def route(self, raw: Mapping[str, Any], ts: int, options: TraceOptions) -> None:
        run_id = str(raw["run_id"])
        parents = raw.get("parent_ids") or ()
        root = str(parents[0]) if parents else run_id
        if root in self.seen:
            return
        event = _run_event(raw, ts, options.name_run_types)
        if root not in self.joined:
            if root != run_id or type(event) is not RunStart:
                return
            self.joined.add(run_id)
        if type(event) is RunStart and event.parent_run_id is None:
            event = event._replace(parent_run_id=self.consumer)
        taken = self.sink.feed(event)
        if type(event) is RunStart:
            if not taken:  # the enclosing trace has it already: its recorder sees it
                self.joined.discard(run_id)
                self.seen.add(run_id)
            else:
                self.open.append(run_id)
        elif type(event) is RunEnd and run_id in self.open:
            self.open.remove(run_id)

    def close(self, error: BaseException | None, *, cancelled: bool) -> None:
        """Close the joined runs still open, innermost first (the enclosing call goes on)."""
        if error is None and not cancelled:
            return
        reason: BaseException = asyncio.CancelledError() if cancelled or error is None else error
        ts = now_ns()
        for run_id in reversed(self.open):
            self.sink.feed(RunEnd(run_id, {"error": reason}, ts, "error"))
        self.open.clear()
