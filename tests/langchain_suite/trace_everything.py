"""pytest plugin: route every outermost runnable call through `lcel_trace.trace()`.

Loaded with `-p trace_everything` into langchain-core's own unit tests (see `run.py`).
Each entry point (`invoke`, `ainvoke`, `batch`, `abatch`, `stream`, `astream`,
`transform`, `atransform`, `astream_events`, `astream_log`, and `stream_events` too) is
replaced on `Runnable` and on every subclass that defines its own, including classes the
tests define later (through `Runnable.__init_subclass__`). A call made while no traced
call is running goes to `trace(self).<method>(...)`; every call made inside one (the
traced wrapper calling the original, a chain calling its steps, `super()` calls) goes
straight to the original method, so only the outermost call is traced, once.

Every test runs inside `lcel_trace.capture()`; when the test body has passed, each
recorded trace must be consistent (every span ended, a known status, every parent in
the trace, a span for the root run), each `invoke`/`ainvoke` must have given exactly one
trace whose status matches how the call ended, and lcel-trace must not have caught an
internal error; otherwise the test fails.
"""

from __future__ import annotations

import functools
import inspect
import json
import os
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Iterator
from contextvars import ContextVar
from typing import Any

import pytest
from langchain_core.runnables.base import Runnable

from lcel_trace import Capture, Trace, capture, trace
from lcel_trace import _log as lcel_log
from lcel_trace.span import STATUSES
from lcel_trace.wrapper import TracedRunnable, active_recorder

SYNC_CALLS = ("invoke", "batch")
ASYNC_CALLS = ("ainvoke", "abatch")
SYNC_STREAMS = ("stream", "transform", "stream_events")
ASYNC_STREAMS = ("astream", "atransform", "astream_events", "astream_log")
ENTRY_POINTS = SYNC_CALLS + ASYNC_CALLS + SYNC_STREAMS + ASYNC_STREAMS
# Kinds older lcel-trace versions logged for their own failures (newer ones count
# every internal error in `internal_error_count()`).
LEGACY_INTERNAL_FAILURES = (
    "trace_start_failed",
    "trace_finish_failed",
    "recorder_failed",
    "observe_failed",
)
_OTEL_SPAN_ID = re.compile(r"[0-9a-f]{16}")

_inside: ContextVar[bool] = ContextVar("trace_everything_inside", default=False)
_call_problems: list[str] = []
_patched: set[type] = set()
stats = {"traced_calls": 0, "traces_checked": 0}


def _outermost(self: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    """Not inside a traced call: neither the flag nor, for a call made while a v3 stream
    object the traced call handed back is consumed (outside the flag), an enclosing
    run's recorder in the config or LangChain's context (as lcel-trace itself decides)."""
    if _inside.get() or isinstance(self, TracedRunnable):
        return False
    config = args[1] if len(args) > 1 else kwargs.get("config")
    if isinstance(config, list):
        config = config[0] if config else None
    return active_recorder(config if isinstance(config, dict) else None) is None


def _wrap_call(name: str, original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def entry(self: Any, *args: Any, **kwargs: Any) -> Any:
        if not _outermost(self, args, kwargs):
            return original(self, *args, **kwargs)
        stats["traced_calls"] += 1
        token = _inside.set(True)
        try:
            with capture() as own:
                try:
                    result = getattr(trace(self), name)(*args, **kwargs)
                except BaseException as exc:
                    _expect_outcome(own, self, name, exc)
                    raise
            _expect_outcome(own, self, name, None)
            return result
        finally:
            _inside.reset(token)

    return entry


def _wrap_async_call(name: str, original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    async def entry(self: Any, *args: Any, **kwargs: Any) -> Any:
        if not _outermost(self, args, kwargs):
            return await original(self, *args, **kwargs)
        stats["traced_calls"] += 1
        token = _inside.set(True)
        try:
            with capture() as own:
                try:
                    result = await getattr(trace(self), name)(*args, **kwargs)
                except BaseException as exc:
                    _expect_outcome(own, self, name, exc)
                    raise
            _expect_outcome(own, self, name, None)
            return result
        finally:
            _inside.reset(token)

    return entry


def _expect_outcome(own: Capture, runnable: Any, name: str, error: BaseException | None) -> None:
    """An `invoke`/`ainvoke` gives one trace, `ok` when it returned and `error` (or
    `cancelled`) when it raised; a `batch` that raised has a trace that says so."""
    traces = own.traces
    label = f"{type(runnable).__name__}.{name}"
    if name in ("invoke", "ainvoke"):
        if len(traces) != 1:
            _call_problems.append(f"{label} gave {len(traces)} traces, not 1")
            return
        status = traces[0].status
        expected = ("ok",) if error is None else ("error", "cancelled")
        if status not in expected:
            what = "returned" if error is None else f"raised {type(error).__name__}"
            _call_problems.append(f"{label} {what} but its trace's status is {status!r}")
    elif error is not None and traces and not any(t.status != "ok" for t in traces):
        _call_problems.append(f"{label} raised {type(error).__name__}; all its traces are 'ok'")


class _Inside:
    """Marks the current context as inside a traced call, restoring what was there."""

    __slots__ = ("_previous",)

    def __enter__(self) -> None:
        self._previous = _inside.get()
        _inside.set(True)

    def __exit__(self, *exc: object) -> None:
        _inside.set(self._previous)


class _InsideIterator(Iterator[Any]):
    """The traced stream, advanced with the flag set (the wrapped stream opens lazily)."""

    def __init__(self, stream: Iterator[Any]) -> None:
        self._stream = stream

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        with _Inside():
            return next(self._stream)

    def __getattr__(self, name: str) -> Any:  # what the traced stream offers besides
        return getattr(self._stream, name)

    def close(self) -> None:
        with _Inside():
            close = getattr(self._stream, "close", None)
            if close is not None:
                close()


class _InsideAsyncIterator(AsyncIterator[Any]):
    """The traced async stream, advanced with the flag set."""

    def __init__(self, stream: AsyncIterator[Any]) -> None:
        self._stream = stream

    def __aiter__(self) -> AsyncIterator[Any]:
        return self

    async def __anext__(self) -> Any:
        with _Inside():
            return await self._stream.__anext__()

    def __getattr__(self, name: str) -> Any:  # what the traced stream offers besides
        return getattr(self._stream, name)

    async def aclose(self) -> None:
        with _Inside():
            aclose = getattr(self._stream, "aclose", None)
            if aclose is not None:
                await aclose()


def _wrap_stream(name: str, original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def entry(self: Any, *args: Any, **kwargs: Any) -> Any:
        if not _outermost(self, args, kwargs):
            return original(self, *args, **kwargs)
        stats["traced_calls"] += 1
        with _Inside():
            result = getattr(trace(self), name)(*args, **kwargs)
        return _InsideIterator(result) if _plain_lcel_trace_stream(result) else result

    return entry


def _wrap_async_stream(name: str, original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def entry(self: Any, *args: Any, **kwargs: Any) -> Any:
        if not _outermost(self, args, kwargs):
            return original(self, *args, **kwargs)
        stats["traced_calls"] += 1
        with _Inside():
            result = getattr(trace(self), name)(*args, **kwargs)
        if _plain_lcel_trace_stream(result):
            return _InsideAsyncIterator(result)
        if inspect.isawaitable(result):  # astream_events(version="v3") gives an awaitable
            return _await_inside(result)
        return result

    return entry


_NEUTRAL_MODULES = ("lcel_trace", "builtins", "abc", "typing", "collections", "_collections_abc")


def _plain_lcel_trace_stream(result: Any) -> bool:
    """Whether `result` is one of lcel-trace's own stream objects and nothing more, so
    wrapping it cannot hide a type the caller checks (a v3 `ChatModelStream`, say: that
    is handed back as it is)."""
    if not (hasattr(result, "__next__") or hasattr(result, "__anext__")):
        return False
    return all(k.__module__.split(".")[0] in _NEUTRAL_MODULES for k in type(result).__mro__)


async def _await_inside(awaitable: Awaitable[Any]) -> Any:
    with _Inside():
        return await awaitable


_WRAPPERS: dict[str, Callable[[str, Callable[..., Any]], Callable[..., Any]]] = {
    **dict.fromkeys(SYNC_CALLS, _wrap_call),
    **dict.fromkeys(ASYNC_CALLS, _wrap_async_call),
    **dict.fromkeys(SYNC_STREAMS, _wrap_stream),
    **dict.fromkeys(ASYNC_STREAMS, _wrap_async_stream),
}


def patch_class(cls: type) -> None:
    """Replace the entry points `cls` defines itself or takes from a class outside the
    `Runnable` tree (a mixin), never lcel-trace's own."""
    if cls in _patched or issubclass(cls, TracedRunnable):
        return
    _patched.add(cls)
    for name in ENTRY_POINTS:
        owner = next((k for k in cls.__mro__ if name in k.__dict__), None)
        if owner is None or (owner is not cls and issubclass(owner, Runnable)):
            continue
        original = owner.__dict__[name]
        if callable(original) and not getattr(original, "__trace_everything__", False):
            entry = _WRAPPERS[name](name, original)
            entry.__trace_everything__ = True  # type: ignore[attr-defined]
            type.__setattr__(cls, name, entry)


def patch_tree(root: type = Runnable) -> None:
    stack = [root]
    while stack:
        cls = stack.pop()
        patch_class(cls)
        stack.extend(cls.__subclasses__())


def _on_new_subclass(cls: type, **kwargs: Any) -> None:
    super(Runnable, cls).__init_subclass__(**kwargs)
    patch_class(cls)


def check_trace(t: Trace) -> list[str]:
    """What is inconsistent in one recorded trace (empty when it is sound)."""
    problems: list[str] = []
    where = f"trace {t.name!r}"
    if t.status not in STATUSES:
        problems.append(f"{where}: status {t.status!r}")
    if t.end_ns < t.start_ns:
        problems.append(f"{where}: ends before it starts")
    ids = [s.span_id for s in t.spans]
    if len(set(ids)) != len(ids):
        problems.append(f"{where}: duplicate span ids")
    if t.spans and t.root_run_id not in ids:
        problems.append(f"{where}: no span for the root run {t.root_run_id}")
    for span in t.spans:
        label = f"{where} span {span.name!r}"
        if span.end_ns < span.start_ns:
            problems.append(f"{label}: end_ns {span.end_ns} < start_ns {span.start_ns}")
        if span.status not in STATUSES:
            problems.append(f"{label}: status {span.status!r}")
        if span.span_id == t.root_run_id:
            if span.parent_id is not None and not _OTEL_SPAN_ID.fullmatch(span.parent_id):
                problems.append(f"{label}: root parent {span.parent_id!r} is not an OTel span")
        elif span.parent_id not in ids:
            problems.append(f"{label}: parent {span.parent_id!r} not in the trace")
    return problems


def pytest_configure(config: pytest.Config) -> None:
    patch_tree()
    Runnable.__init_subclass__ = classmethod(_on_new_subclass)  # type: ignore[assignment]


def pytest_runtest_setup(item: pytest.Item) -> None:
    patch_tree()  # classes created without passing through __init_subclass__


def _internal_failures() -> int:
    """How many failures lcel-trace has caught inside itself so far in this process."""
    count = getattr(lcel_log, "internal_error_count", None)
    total = count() if count is not None else 0
    return total + sum(lcel_log.occurrences(kind) for kind in LEGACY_INTERNAL_FAILURES)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    failures_before = _internal_failures()
    _call_problems.clear()
    with capture() as cap:
        result = yield
    problems = [p for t in cap.traces for p in check_trace(t)]
    problems += _call_problems
    stats["traces_checked"] += len(cap.traces)
    if _internal_failures() > failures_before:
        problems.append("lcel-trace caught an internal error (see the log)")
    if problems:
        raise AssertionError("lcel-trace trace consistency: " + "; ".join(problems[:5]))
    return result


def pytest_terminal_summary(terminalreporter: Any) -> None:
    terminalreporter.write_line(
        f"trace_everything: {stats['traced_calls']} outermost calls traced, "
        f"{stats['traces_checked']} traces checked, {len(_patched)} runnable classes seen"
    )
    path = os.environ.get("LCEL_SUITE_TRACE_STATS")
    if path:
        with open(path, "w", encoding="utf-8") as f:
            json.dump({**stats, "classes_seen": len(_patched)}, f)
