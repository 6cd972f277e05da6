"""pytest plugin: `lcel_trace.instrument()` switched on for the whole test session.

Loaded with `-p instrument_everything` into another library's own unit tests (see
`run.py`). At configure time it calls `instrument(exporters=[ValidatingExporter()])`,
as an application would at start-up, so every outermost runnable call in every test
becomes a trace sent to that exporter. After each test (setup, call and teardown, so
event loops are closed and abandoned streams collected), the test fails (a teardown
error) when:

- a trace started during the test never ended (its `TraceSession` is still open after
  a garbage collection), or ended without its end reaching the exporter;
- a trace's records are inconsistent: start and end exactly once, statuses known,
  times ordered, span ids unique, the root run has a span, every other span's parent
  is inside the trace, `TraceEnd.span_count` matches the spans delivered, no record
  for a trace that is not open;
- lcel-trace caught an internal error (`_log.internal_error_count()`) or logged
  anything at ERROR level, or the exporter's queue dropped records or saw a failed call
  (its warnings are counted in the terminal summary).
"""

from __future__ import annotations

import functools
import gc
import json
import logging
import os
import re
import threading
from collections.abc import Callable, Generator, Sequence
from typing import Any

import pytest

import lcel_trace
from lcel_trace import _log as lcel_log
from lcel_trace import session as lcel_session
from lcel_trace.export import BaseExporter, exporter_stats

try:
    from lcel_trace.export import ExporterCapabilities

    _DECLARES_CAPABILITIES = "receives" in ExporterCapabilities.__dataclass_fields__
except ImportError:
    _DECLARES_CAPABILITIES = False
from lcel_trace.span import STATUSES, Span, TraceEnd, TraceEvent, TraceStart

FLUSH_TIMEOUT_S = 30.0
_OTEL_SPAN_ID = re.compile(r"[0-9a-f]{16}")


class _Open:
    """What has arrived so far for one trace whose end has not."""

    __slots__ = ("events", "spans", "start")

    def __init__(self, start: TraceStart) -> None:
        self.start = start
        self.spans: list[Span] = []
        self.events = 0


def check_records(start: TraceStart, spans: Sequence[Span], end: TraceEnd) -> list[str]:
    """What is inconsistent in one trace's records (empty when they are sound)."""
    where = f"trace {start.name!r}"
    problems: list[str] = []
    if end.status not in STATUSES:
        problems.append(f"{where}: status {end.status!r}")
    if end.end_ns < start.start_ns:
        problems.append(f"{where}: ends before it starts")
    if end.span_count != len(spans):
        problems.append(f"{where}: TraceEnd says {end.span_count} spans, {len(spans)} arrived")
    ids = {s.span_id for s in spans}
    if len(ids) != len(spans):
        problems.append(f"{where}: duplicate span ids")
    if spans and start.root_run_id not in ids:
        problems.append(f"{where}: no span for the root run {start.root_run_id}")
    for span in spans:
        label = f"{where} span {span.name!r}"
        if span.end_ns < span.start_ns:
            problems.append(f"{label}: end_ns {span.end_ns} < start_ns {span.start_ns}")
        if span.status not in STATUSES:
            problems.append(f"{label}: status {span.status!r}")
        if span.span_id == start.root_run_id:
            if span.parent_id is not None and not _OTEL_SPAN_ID.fullmatch(span.parent_id):
                problems.append(f"{label}: root parent {span.parent_id!r} is not an OTel span")
        elif span.parent_id not in ids:
            problems.append(f"{label}: parent {span.parent_id!r} not in the trace")
    return problems


class ValidatingExporter(BaseExporter):
    """Checks every record it is handed; the test harness reads what it found."""

    # Every record, every event and every run's chunks: the most work lcel-trace can be
    # asked to do per call (older lcel-trace versions read `record_chunks` instead).
    if _DECLARES_CAPABILITIES:
        capabilities = ExporterCapabilities(receives="records", events=True, chunks="all")
    else:
        record_chunks = "all"

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._open: dict[str, _Open] = {}
        self._ended: set[str] = set()
        self._problems: list[str] = []
        self.traces_checked = 0
        self.spans_checked = 0

    def _problem(self, text: str) -> None:
        self._problems.append(text)

    def on_trace_start(self, start: TraceStart) -> None:
        with self._lock:
            if start.trace_id in self._open or start.trace_id in self._ended:
                self._problem(f"trace {start.name!r} started twice")
                return
            self._open[start.trace_id] = _Open(start)

    def on_event(self, event: TraceEvent) -> None:
        with self._lock:
            pending = self._open.get(event.trace_id)
            if pending is None:
                self._problem(f"event {event.event!r} for a trace that is not open")
            else:
                pending.events += 1

    def export(self, spans: Sequence[Span]) -> None:
        with self._lock:
            for span in spans:
                pending = self._open.get(span.trace_id)
                if pending is None:
                    self._problem(f"span {span.name!r} for a trace that is not open")
                else:
                    pending.spans.append(span)

    def on_trace_end(self, end: TraceEnd) -> None:
        with self._lock:
            pending = self._open.pop(end.trace_id, None)
            if pending is None:
                self._problem(f"end of a trace that is not open ({end.trace_id})")
                return
            self._ended.add(end.trace_id)
            self._problems.extend(check_records(pending.start, pending.spans, end))
            self.traces_checked += 1
            self.spans_checked += len(pending.spans)

    def take_problems(self) -> list[str]:
        with self._lock:
            problems, self._problems = self._problems, []
            return problems

    def ended(self, trace_id: str) -> bool:
        with self._lock:
            return trace_id in self._ended

    def open_trace_ids(self) -> set[str]:
        with self._lock:
            return set(self._open)


EXPORTER: ValidatingExporter | None = None
_sessions: list[Any] = []  # TraceSessions created since the last test's check
_reported_open: set[str] = set()
stats = {"sessions": 0, "tests_with_problems": 0}
_BEFORE = pytest.StashKey[tuple[int, int, int]]()


def _track_sessions() -> None:
    """Keep each `TraceSession` made from now on until the test that made it is checked
    (a trace that never ends sends nothing to any exporter: only its session shows it)."""
    cls = lcel_session.TraceSession
    original: Callable[..., None] = cls.__init__

    @functools.wraps(original)
    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        _sessions.append(self)
        stats["sessions"] += 1

    cls.__init__ = init  # type: ignore[method-assign]


def _counters() -> tuple[int, int, int]:
    assert EXPORTER is not None
    queue = exporter_stats(EXPORTER)
    return lcel_log.internal_error_count(), queue.dropped_records, queue.failed_calls


class _ErrorLog(logging.Handler):
    """Keeps what lcel-trace logs at ERROR or above (an internal error, a failed exit
    flush...) until the test it happened in is checked; counts its warnings by kind."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.errors: list[str] = []
        self.warnings: dict[str, int] = {}

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if record.levelno >= logging.ERROR:
            self.errors.append(message[:200])
        else:
            self.warnings[message] = self.warnings.get(message, 0) + 1


ERROR_LOG = _ErrorLog()


def pytest_configure(config: pytest.Config) -> None:
    global EXPORTER
    EXPORTER = ValidatingExporter()
    logging.getLogger("lcel_trace").addHandler(ERROR_LOG)
    _track_sessions()
    lcel_trace.instrument(exporters=[EXPORTER])


def _label(session: Any) -> str:
    """A session's trace name (private: only for the message) and id."""
    return f"{getattr(session, '_name', '?')!r} ({session.trace_id})"


def _unfinished(sessions: list[Any]) -> list[Any]:
    return [s for s in sessions if not s.finished]


def check_test() -> list[str]:
    """Every trace made since the last check ended and reached the exporter whole."""
    assert EXPORTER is not None
    sessions = list(_sessions)
    _sessions.clear()
    problems: list[str] = []
    if _unfinished(sessions):
        gc.collect()  # abandoned streams are finalised (and must end their traces)
    for session in _unfinished(sessions):
        problems.append(f"trace {_label(session)} never ended")
        _reported_open.add(session.trace_id)
    if not EXPORTER.force_flush(FLUSH_TIMEOUT_S):
        problems.append(f"the exporter did not drain within {FLUSH_TIMEOUT_S:.0f} s")
    problems += EXPORTER.take_problems()
    for session in sessions:
        if session.finished and not EXPORTER.ended(session.trace_id):
            problems.append(
                f"trace {_label(session)} ended, but its end never reached the exporter"
            )
    for trace_id in EXPORTER.open_trace_ids() - _reported_open:
        problems.append(f"trace {trace_id} started at the exporter and never ended there")
        _reported_open.add(trace_id)
    problems += [f"lcel-trace logged an error: {e}" for e in ERROR_LOG.errors]
    ERROR_LOG.errors.clear()
    return problems


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(
    item: pytest.Item, nextitem: pytest.Item | None
) -> Generator[None, None, Any]:
    before = _counters()
    item.stash[_BEFORE] = before
    return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(
    item: pytest.Item, nextitem: pytest.Item | None
) -> Generator[None, None, Any]:
    result = yield
    problems = check_test()
    internal, dropped, failed = (
        now - then for now, then in zip(_counters(), item.stash[_BEFORE], strict=True)
    )
    if internal:
        problems.append(f"lcel-trace caught {internal} internal error(s) (see the log)")
    if dropped:
        problems.append(f"the exporter's queue dropped {dropped} record(s)")
    if failed:
        problems.append(f"{failed} call(s) into the exporter failed")
    if problems:
        stats["tests_with_problems"] += 1
        raise AssertionError("lcel-trace instrument(): " + "; ".join(problems[:5]))
    return result


def pytest_terminal_summary(terminalreporter: Any) -> None:
    assert EXPORTER is not None
    terminalreporter.write_line(
        f"instrument_everything: {stats['sessions']} traces started, "
        f"{EXPORTER.traces_checked} traces and {EXPORTER.spans_checked} spans checked, "
        f"{stats['tests_with_problems']} tests with problems"
    )
    for kind, count in sorted(ERROR_LOG.warnings.items()):
        terminalreporter.write_line(f"instrument_everything: lcel-trace warned {kind!r} x{count}")
    path = os.environ.get("LCEL_SUITE_TRACE_STATS")
    if path:
        with open(path, "w", encoding="utf-8") as f:
            json.dump(
                {
                    "traces_started": stats["sessions"],
                    "traces_checked": EXPORTER.traces_checked,
                    "spans_checked": EXPORTER.spans_checked,
                },
                f,
            )
