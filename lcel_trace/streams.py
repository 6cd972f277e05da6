"""The iterators a traced stream returns: they end the trace the moment the consumer stops.

At exhaustion, on error, on `close()`/`aclose()`, on cancellation, or when the consumer
drops the iterator after a `break`. The wrapped stream is opened before the iterator
is returned, so an error the wrapped method raises at call time is raised at call time.
The root run's chunks are counted here, as they pass, with no extra generator layer.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any, Generic, TypeAlias, TypeVar

from lcel_trace._log import report_internal_error, warn_once
from lcel_trace.run_events import ChunkSink
from lcel_trace.session import TraceSession

__all__ = ["TracedAsyncIterator", "TracedIterator", "awaiting", "handed_back"]

T = TypeVar("T")
Observe = Callable[[TraceSession, Any], None]
_closing_tasks: set[asyncio.Task[None]] = set()
_Ending: TypeAlias = "weakref.finalize[[TraceSession], object]"


class _TraceEnding:
    """What both iterators share: the session, the root's chunk counter, ending once."""

    def __init__(self, session: TraceSession | None, *, count_root: bool) -> None:
        self._session = session
        self._count_root = count_root and session is not None
        self._root_sink: ChunkSink | None = None

        self._done = False
        self._lock = threading.Lock()

    def _count(self, item: Any) -> None:
        sink = self._root_sink
        if sink is None:
            session = self._session
            root = session.root_run_id if session is not None else None
            if root is None:
                return

            sink = self._root_sink = session.chunk_sink(root)  # type: ignore[union-attr]
        sink(item)

    def _claim_end(self) -> bool:
        """True for the one caller that gets to end the trace."""
        with self._lock:
            if self._done:
                return False
            self._done = True
            return True

    def _end(self, error: BaseException | None = None, *, cancelled: bool = False) -> None:
        if self._claim_end() and self._session is not None:
            self._session.finish(error, cancelled=cancelled)


class TracedIterator(_TraceEnding, Iterator[T], Generic[T]):
    """A sync stream that ends its trace when exhausted, failed, closed or dropped."""

    def __init__(
        self, session: TraceSession | None, source: Iterator[T], *, count_root: bool = True
    ) -> None:
        super().__init__(session, count_root=count_root)
        self._source = source
        self._stream = iter(source)

    def __iter__(self) -> Iterator[T]:
        return self

    def __next__(self) -> T:
        if self._done:
            raise StopIteration
        try:
            item = next(self._stream)
        except StopIteration:
            self._end()
            raise
        except BaseException as exc:
            self._end(exc)
            raise
        sink = self._root_sink
        if sink is not None:
            sink(item)
        elif self._count_root:
            self._count(item)
        return item

    def close(self) -> None:
        """Stop the wrapped stream; runs still open end as `cancelled`."""
        # End the trace first: LangChain's sync path reports a closed stream as a run
        # that ended normally, but this run was stopped, not finished. A generator running
        # in another thread cannot be stopped: let it raise, as it would untraced, and
        # leave the trace to end however that run ends.
        if getattr(self._stream, "gi_running", False):
            self._stream.close()  # type: ignore[attr-defined]
        if not self._claim_end():
            return
        if self._session is not None:
            self._session.finish(cancelled=True)
        for iterator in (self._stream, self._source):
            close = getattr(iterator, "close", None)
            if close is not None:
                close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()


class TracedAsyncIterator(_TraceEnding, AsyncIterator[T], Generic[T]):
    """An async stream that ends its trace when exhausted, failed, cancelled, closed or
    dropped. Dropped after a `break`, it ends the trace at once and closes the wrapped
    stream in a task on the same loop, instead of waiting for garbage collection."""

    def __init__(
        self,
        session: TraceSession | None,
        source: AsyncIterator[T],
        *,
        count_root: bool = True,
        observe: Observe | None = None,
        keep: Callable[[Any], bool] | None = None,
    ) -> None:
        super().__init__(session, count_root=count_root)
        self._source = source
        self._stream = aiter(source)
        self._observe = observe if session is not None else None
        self._keep = keep
        self._loop: asyncio.AbstractEventLoop | None = None

    def __aiter__(self) -> AsyncIterator[T]:
        return self

    async def __anext__(self) -> T:
        if self._done:
            raise StopAsyncIteration
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        while True:
            try:
                item = await self._stream.__anext__()
            except StopAsyncIteration:
                self._end()
                raise
            except BaseException as exc:
                self._end(exc)
                raise
            sink = self._root_sink
            if sink is not None:
                sink(item)
            elif self._count_root:
                self._count(item)
            if self._observe is not None:
                try:
                    self._observe(self._session, item)  # type: ignore[arg-type]
                except Exception as exc:
                    report_internal_error("observe", exc)
            if self._keep is None or self._keep(item):
                return item

    async def aclose(self) -> None:
        """Stop the wrapped stream; runs still open end as `cancelled`."""
        if not self._claim_end():
            return
        if self._session is not None:
            self._session.finish(cancelled=True)
        await _aclose_all(self._stream, self._source)

    def __del__(self) -> None:
        if not self._claim_end():
            return
        with contextlib.suppress(Exception):
            if self._session is not None:
                self._session.finish(cancelled=True)
            loop = self._loop
            if loop is not None and not loop.is_closed():
                loop.call_soon_threadsafe(_spawn_close, loop, self._stream, self._source)


def _spawn_close(loop: asyncio.AbstractEventLoop, *iterators: AsyncIterator[Any] | None) -> None:
    task = loop.create_task(_aclose_all(*iterators))
    _closing_tasks.add(task)
    task.add_done_callback(_closing_tasks.discard)


async def _aclose_all(*iterators: AsyncIterator[Any] | None) -> None:
    for iterator in iterators:
        aclose = getattr(iterator, "aclose", None)
        if aclose is None:
            continue
        try:
            await aclose()
        except Exception as exc:
            warn_once("stream_close_failed", error=repr(exc))


# -- what a stream method returns that is not an iterator ----------------------------------


def handed_back(session: TraceSession | None, stream: T) -> T:
    """A stream *object* (LangChain's v3 event streams), handed back as it is.

    The session ends with its root run (it was opened with `finish_with_root`), on
    error, or, when the caller drops the object before the root run ends (never
    iterated, or abandoned), as `cancelled` at that moment, like a dropped iterator."""
    if session is not None:
        _end_when_dropped(stream, session)
    return stream


def awaiting(session: TraceSession | None, awaitable: Awaitable[T]) -> Awaitable[T]:
    """An awaitable a stream method returned (`await astream_events(..., version="v3")`,
    an `async def astream_events`): the caller's `await` gets what it gives, or its
    exception, which ends the trace; a stream object it gives is `handed_back`; dropped
    unawaited, the trace ends as `cancelled`."""
    if session is None:
        return awaitable

    async def await_it() -> T:
        try:
            result = await awaitable
        except BaseException as exc:
            session.finish(exc)
            raise
        finally:
            if dropped is not None:
                dropped.detach()
        return handed_back(session, result)

    coroutine = await_it()
    dropped = _end_when_dropped(coroutine, session)
    return coroutine


def _end_when_dropped(
    owner: object, session: TraceSession
) -> weakref.finalize[[TraceSession], object] | None:
    """End `session` as cancelled when `owner` is garbage; a no-op once it has ended.
    Not at interpreter exit (the exit flush delivers what ended before it)."""
    try:
        ending = weakref.finalize(owner, _cancel, session)
    except TypeError:  # no weak references to it: the trace ends with its root run
        return None
    ending.atexit = False
    return ending


def _cancel(session: TraceSession) -> None:
    if not session.finished:
        session.finish(cancelled=True)
