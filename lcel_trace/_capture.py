"""`capture()`: collect finished traces in memory, for tests and notebooks.

The set of active captures lives in a context variable, so a trace is delivered
to every capture that was active where its call started, including calls made in
tasks and worker threads that inherited that context.
"""

from __future__ import annotations

import threading
from contextvars import ContextVar, Token
from types import TracebackType
from typing import Self

from lcel_trace.span import Span, Trace

_active: ContextVar[tuple[Capture, ...]] = ContextVar("lcel_trace_captures", default=())


def active_captures() -> tuple[Capture, ...]:
    return _active.get()


class Capture:
    """Traces finished while this capture was active, in the order they finished."""

    def __init__(self) -> None:
        self._traces: list[Trace] = []
        self._lock = threading.Lock()
        self._token: Token[tuple[Capture, ...]] | None = None

    @property
    def traces(self) -> list[Trace]:
        with self._lock:
            return list(self._traces)

    @property
    def spans(self) -> list[Span]:
        """Every span of every captured trace."""
        return [span for trace in self.traces for span in trace.spans]

    def add(self, trace: Trace) -> None:
        with self._lock:
            self._traces.append(trace)

    def clear(self) -> None:
        with self._lock:
            self._traces.clear()

    def __enter__(self) -> Self:
        self._token = _active.set((*_active.get(), self))
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        token, self._token = self._token, None
        try:
            if token is not None:
                _active.reset(token)
                return
        except ValueError:
            pass  # exited in another context than it was entered in
        _active.set(tuple(c for c in _active.get() if c is not self))

    async def __aenter__(self) -> Self:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)


def capture() -> Capture:
    """A context manager (sync or async) collecting the traces started inside it."""
    return Capture()
