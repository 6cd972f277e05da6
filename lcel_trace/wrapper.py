"""`trace()`: a real `Runnable` that records its wrapped runnable's runs as a trace.

Every entry point drives the wrapped runnable's *own* method of the same name with
a recorder attached to that call, so tracing never changes which code path LangChain
takes: `invoke` keeps invoke's retries and fallbacks, `stream` stays synchronous,
and the caller receives exactly the values, chunks and exceptions it would without
tracing. The streaming entry points return iterator objects that end the trace the
moment the consumer stops: at exhaustion, on error, on `close()`/`aclose()`, or when
the consumer drops the iterator after a `break`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from typing import Any, Generic, Literal, TypeVar, cast
from uuid import UUID

from langchain_core.runnables import (
    Runnable,
    RunnableConfig,
    RunnableGenerator,
    RunnableLambda,
)
from langchain_core.runnables.base import coerce_to_runnable
from langchain_core.runnables.config import get_config_list
from langchain_core.runnables.graph import Graph
from langchain_core.runnables.schema import StreamEvent
from langchain_core.runnables.utils import ConfigurableFieldSpec, Input, Output
from langchain_core.utils.pydantic import TypeBaseModel
from langchain_core.utils.uuid import uuid7

from lcel_trace._log import warn_once
from lcel_trace.assemble import EPOCH_OFFSET_NS
from lcel_trace.export import SpanExporter
from lcel_trace.recorder import StreamingRecorder
from lcel_trace.redact import Redact, Redactor
from lcel_trace.session import (
    TraceSession,
    TraceSettings,
    _otel_parent,
    find_recorder,
    is_sampled,
    new_trace_id,
)
from lcel_trace.span import RunType

T = TypeVar("T")
DEFAULT_MAX_ATTR_CHARS = 4096
_CHAT_FAMILIES = ("on_chat_model_stream", "on_llm_stream")
_closing_tasks: set[asyncio.Task[None]] = set()


def trace(
    runnable: Runnable[Input, Output] | Callable[..., Any] | Mapping[str, Any],
    *,
    exporters: Sequence[SpanExporter] = (),
    name: str | None = None,
    redact: Redact | None = None,
    capture_content: bool = True,
    max_attr_chars: int = DEFAULT_MAX_ATTR_CHARS,
    sample: float = 1.0,
) -> Runnable[Input, Output]:
    """Wrap `runnable` so each call is recorded as one trace and sent to `exporters`.

    `redact` maps any content value to what may leave the process (applied after the
    built-in secret scrubbing); `capture_content=False` drops inputs, outputs and
    chunks entirely. `sample` keeps that fraction of traces, chosen by trace id.
    """
    bound = coerce_to_runnable(cast("Any", runnable))
    exporters = tuple(exporters)
    for exporter in exporters:
        missing = [m for m in ("export", "force_flush", "shutdown") if not hasattr(exporter, m)]
        if missing:
            raise TypeError(
                f"{type(exporter).__name__} is not a SpanExporter: it lacks {', '.join(missing)}"
            )
    if not 0.0 <= sample <= 1.0:
        raise ValueError(f"sample must be between 0.0 and 1.0, got {sample}")
    if max_attr_chars < 1:
        raise ValueError(f"max_attr_chars must be positive, got {max_attr_chars}")
    settings = TraceSettings(
        exporters=exporters,
        redactor=Redactor(redact, capture_content=capture_content),
        max_attr_chars=max_attr_chars,
        sample=sample,
        name_run_types=run_types_by_name(bound),
        name=name,
    )
    return TracedRunnable(bound, settings)


def run_types_by_name(root: Runnable[Any, Any], limit: int = 10_000) -> Mapping[str, RunType]:
    """Run names inside `root` that LangChain reports as plain chains but are really
    lambdas/generators ("lambda") or user-defined runnables ("custom")."""
    found: dict[str, RunType] = {}
    seen: set[int] = set()
    stack: list[Any] = [root]
    while stack and len(seen) < limit:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, Runnable):
            if isinstance(node, (RunnableLambda, RunnableGenerator)):
                found.setdefault(node.get_name(), "lambda")
            elif not isinstance(node, TracedRunnable) and not type(node).__module__.startswith(
                ("langchain", "lcel_trace")
            ):
                found.setdefault(node.get_name(), "custom")
            children: Any = getattr(node, "__dict__", {}).values()
        elif isinstance(node, Mapping):
            children = node.values()
        elif isinstance(node, (list, tuple)):
            children = node
        else:
            continue
        stack.extend(c for c in children if isinstance(c, (Runnable, Mapping, list, tuple)))
    return found


class TracedRunnable(Runnable[Input, Output]):
    """The runnable `trace()` returns; behaves as `bound` does, and records each call."""

    def __init__(self, bound: Runnable[Input, Output], settings: TraceSettings) -> None:
        self.bound = bound
        self.settings = settings
        self.name = settings.name or bound.get_name()

    # -- what the wrapped runnable is ---------------------------------------------------

    @property
    def InputType(self) -> type[Input]:  # noqa: N802 - LangChain's name
        return self.bound.InputType

    @property
    def OutputType(self) -> type[Output]:  # noqa: N802 - LangChain's name
        return self.bound.OutputType

    def get_input_schema(self, config: RunnableConfig | None = None) -> TypeBaseModel:
        return self.bound.get_input_schema(config)

    def get_output_schema(self, config: RunnableConfig | None = None) -> TypeBaseModel:
        return self.bound.get_output_schema(config)

    @property
    def config_specs(self) -> list[ConfigurableFieldSpec]:
        return self.bound.config_specs

    def get_graph(self, config: RunnableConfig | None = None) -> Graph:
        return self.bound.get_graph(config)

    def __repr__(self) -> str:
        return f"trace({self.bound!r})"

    # -- sessions -------------------------------------------------------------------------

    def _begin(
        self, config: RunnableConfig | None, *, streaming: bool
    ) -> tuple[TraceSession | None, RunnableConfig | None]:
        """Open a session for one call, unless an enclosing traced call already records it."""
        if find_recorder(config) is not None:
            return None, config
        try:
            parent = _otel_parent()
            trace_id = parent[0] if parent else new_trace_id()
            if not is_sampled(trace_id, self.settings.sample):
                return None, config
            config_run_id = (config or {}).get("run_id")
            root_run_id = config_run_id if isinstance(config_run_id, UUID) else uuid7()
            session = TraceSession(
                self.settings,
                root_run_id=root_run_id,
                trace_id=trace_id,
                otel_parent_span_id=parent[1] if parent else None,
                root_name=(config or {}).get("run_name") or self.bound.get_name(),
                streaming=streaming,
            )
            return session, session.attach(config)
        except Exception as exc:
            warn_once("trace_start_failed", error=repr(exc))
            return None, config

    # -- one value ------------------------------------------------------------------------

    def invoke(self, input: Input, config: RunnableConfig | None = None, **kwargs: Any) -> Output:
        session, config = self._begin(config, streaming=False)
        if session is None:
            return self.bound.invoke(input, config, **kwargs)
        try:
            output = self.bound.invoke(input, config, **kwargs)
        except BaseException as exc:
            session.finish(exc)
            raise
        session.finish()
        return output

    async def ainvoke(
        self, input: Input, config: RunnableConfig | None = None, **kwargs: Any
    ) -> Output:
        session, config = self._begin(config, streaming=False)
        if session is None:
            return await self.bound.ainvoke(input, config, **kwargs)
        try:
            output = await self.bound.ainvoke(input, config, **kwargs)
        except BaseException as exc:
            session.finish(exc)
            raise
        session.finish()
        return output

    # -- many values: one trace per input ----------------------------------------------------

    def batch(
        self,
        inputs: list[Input],
        config: RunnableConfig | list[RunnableConfig] | None = None,
        *,
        return_exceptions: bool = False,
        **kwargs: Any | None,
    ) -> list[Output]:
        if not inputs:
            return self.bound.batch(inputs, config, return_exceptions=return_exceptions, **kwargs)
        sessions, configs = self._begin_many(inputs, config)
        try:
            outputs = self.bound.batch(
                inputs, configs, return_exceptions=return_exceptions, **kwargs
            )
        except BaseException as exc:
            _finish_many(sessions, None, exc)
            raise
        _finish_many(sessions, outputs, None)
        return outputs

    async def abatch(
        self,
        inputs: list[Input],
        config: RunnableConfig | list[RunnableConfig] | None = None,
        *,
        return_exceptions: bool = False,
        **kwargs: Any | None,
    ) -> list[Output]:
        if not inputs:
            return await self.bound.abatch(
                inputs, config, return_exceptions=return_exceptions, **kwargs
            )
        sessions, configs = self._begin_many(inputs, config)
        try:
            outputs = await self.bound.abatch(
                inputs, configs, return_exceptions=return_exceptions, **kwargs
            )
        except BaseException as exc:
            _finish_many(sessions, None, exc)
            raise
        _finish_many(sessions, outputs, None)
        return outputs

    def _begin_many(
        self, inputs: list[Input], config: RunnableConfig | list[RunnableConfig] | None
    ) -> tuple[list[TraceSession | None], list[RunnableConfig]]:
        sessions: list[TraceSession | None] = []
        configs: list[RunnableConfig] = []
        for one in get_config_list(config, len(inputs)):
            session, attached = self._begin(one, streaming=False)
            sessions.append(session)
            configs.append(attached if attached is not None else one)
        return sessions, configs

    # -- streams --------------------------------------------------------------------------

    def stream(
        self, input: Input, config: RunnableConfig | None = None, **kwargs: Any | None
    ) -> Iterator[Output]:
        return _TracedIterator(self, lambda cfg: self.bound.stream(input, cfg, **kwargs), config)

    def transform(
        self, input: Iterator[Input], config: RunnableConfig | None = None, **kwargs: Any | None
    ) -> Iterator[Output]:
        return _TracedIterator(self, lambda cfg: self.bound.transform(input, cfg, **kwargs), config)

    def astream(
        self, input: Input, config: RunnableConfig | None = None, **kwargs: Any | None
    ) -> AsyncIterator[Output]:
        return _TracedAsyncIterator(
            self, lambda cfg: self.bound.astream(input, cfg, **kwargs), config, streaming=True
        )

    def atransform(
        self,
        input: AsyncIterator[Input],
        config: RunnableConfig | None = None,
        **kwargs: Any | None,
    ) -> AsyncIterator[Output]:
        return _TracedAsyncIterator(
            self, lambda cfg: self.bound.atransform(input, cfg, **kwargs), config, streaming=True
        )

    def astream_events(  # type: ignore[override]  # one signature for LangChain's overloads
        self,
        input: Any,
        config: RunnableConfig | None = None,
        *,
        version: Literal["v1", "v2", "v3"] = "v2",
        **kwargs: Any,
    ) -> AsyncIterator[StreamEvent] | Awaitable[Any]:
        """The wrapped runnable's own event stream (filters applied by LangChain, as
        without tracing); the trace comes from the recorder, which sees every run."""
        if version == "v3":
            warn_once("astream_events_v3_untraced")
            return self.bound.astream_events(input, config, version="v3", **kwargs)

        def observe(session: TraceSession, event: Any) -> None:
            name = event.get("event", "")
            if name.endswith("_stream") and name not in _CHAT_FAMILIES:
                session.observe_chunk(str(event.get("run_id")), event.get("data", {}).get("chunk"))

        return _TracedAsyncIterator(
            self,
            lambda cfg: self.bound.astream_events(input, cfg, version=version, **kwargs),
            config,
            streaming=False,
            observe=observe,
        )

    def stream_events(
        self,
        input: Any,
        config: RunnableConfig | None = None,
        *,
        version: Literal["v1", "v2", "v3"] = "v2",
        **kwargs: Any,
    ) -> Iterator[Any]:
        """The wrapped runnable's own sync event stream (LangChain supports only the v3
        protocol here, on chat models and graphs); passed through, not yet traced."""
        warn_once("stream_events_untraced", version=version)
        return self.bound.stream_events(input, config, version=version, **kwargs)

    def astream_log(
        self, input: Any, config: RunnableConfig | None = None, **kwargs: Any
    ) -> AsyncIterator[Any]:
        """The wrapped runnable's own run log, traced like `astream_events`."""

        def observe(session: TraceSession, patch: Any) -> None:
            for op in getattr(patch, "ops", ()):
                if op.get("op") == "add" and op.get("path") == "/streamed_output/-":
                    session.observe_chunk(session.root_run_id, op.get("value"))

        return _TracedAsyncIterator(
            self,
            lambda cfg: self.bound.astream_log(input, cfg, **kwargs),
            config,
            streaming=False,
            observe=observe,
        )


def _finish_many(
    sessions: list[TraceSession | None],
    outputs: list[Any] | None,
    error: BaseException | None,
) -> None:
    for i, session in enumerate(sessions):
        if session is None:
            continue
        result = outputs[i] if outputs is not None else None
        session.finish(result if isinstance(result, BaseException) else error)


class _TracedIterator(Iterator[T], Generic[T]):
    """A sync stream that ends its trace when exhausted, failed, closed or dropped."""

    def __init__(
        self,
        owner: TracedRunnable[Any, Any],
        open_source: Callable[[RunnableConfig | None], Iterator[T]],
        config: RunnableConfig | None,
    ) -> None:
        self._owner = owner
        self._open_source = open_source
        self._config = config
        self._session: TraceSession | None = None
        self._source: Iterator[T] | None = None
        self._stream: Iterator[T] | None = None
        self._root_sink: Callable[[str, int, Any], None] | None = None
        self._root_id = ""
        self._done = False

    def __iter__(self) -> Iterator[T]:
        return self

    def __next__(self) -> T:
        if self._stream is None:
            if self._done:
                raise StopIteration
            self._open()
        assert self._stream is not None
        try:
            item = next(self._stream)
        except StopIteration:
            self._end(None)
            raise
        except BaseException as exc:
            self._end(exc)
            raise
        if self._root_sink is not None:
            self._root_sink(self._root_id, EPOCH_OFFSET_NS + time.perf_counter_ns(), item)
        return item

    def _open(self) -> None:
        session, config = self._owner._begin(self._config, streaming=True)
        self._session = session
        try:
            self._source = source = self._open_source(config)
        except BaseException as exc:
            self._end(exc)
            raise
        recorder = session.recorder if session is not None else None
        if isinstance(recorder, StreamingRecorder):  # the root's chunks are counted here
            self._root_id = recorder.root_run_id
            self._root_sink = recorder.claim_tap(self._root_id)
        self._stream = iter(source)

    def _end(self, error: BaseException | None) -> None:
        if self._done:
            return
        self._done = True
        if self._session is not None:
            self._session.finish(error)

    def close(self) -> None:
        """Stop the wrapped stream; runs still open end as `cancelled`."""
        if self._done:
            return
        self._done = True
        # End the trace first: LangChain's sync path reports a closed stream as a run
        # that ended normally, but this run was stopped, not finished.
        if self._session is not None:
            self._session.finish(cancelled=True)
        for iterator in (self._stream, self._source):
            close = getattr(iterator, "close", None)
            if close is not None:
                close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()


class _TracedAsyncIterator(AsyncIterator[T], Generic[T]):
    """An async stream that ends its trace when exhausted, failed, cancelled, closed or
    dropped. Dropped after a `break`, it ends the trace at once and closes the wrapped
    stream in a task on the same loop, instead of waiting for garbage collection."""

    def __init__(
        self,
        owner: TracedRunnable[Any, Any],
        open_source: Callable[[RunnableConfig | None], AsyncIterator[T]],
        config: RunnableConfig | None,
        *,
        streaming: bool,
        observe: Callable[[TraceSession, T], None] | None = None,
    ) -> None:
        self._owner = owner
        self._open_source = open_source
        self._config = config
        self._streaming = streaming
        self._observe = observe
        self._session: TraceSession | None = None
        self._source: AsyncIterator[T] | None = None
        self._stream: AsyncIterator[T] | None = None
        self._root_sink: Callable[[str, int, Any], None] | None = None
        self._root_id = ""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._done = False

    def __aiter__(self) -> AsyncIterator[T]:
        return self

    async def __anext__(self) -> T:
        if self._stream is None:
            if self._done:
                raise StopAsyncIteration
            self._open()
        assert self._stream is not None
        try:
            item = await self._stream.__anext__()
        except StopAsyncIteration:
            self._end(None)
            raise
        except BaseException as exc:
            self._end(exc)
            raise
        if self._root_sink is not None:
            self._root_sink(self._root_id, EPOCH_OFFSET_NS + time.perf_counter_ns(), item)
        if self._observe is not None and self._session is not None:
            try:
                self._observe(self._session, item)
            except Exception as exc:
                warn_once("observe_failed", error=repr(exc))
        return item

    def _open(self) -> None:
        self._loop = asyncio.get_running_loop()
        session, config = self._owner._begin(self._config, streaming=self._streaming)
        self._session = session
        try:
            self._source = source = self._open_source(config)
        except BaseException as exc:
            self._end(exc)
            raise
        recorder = session.recorder if session is not None else None
        if isinstance(recorder, StreamingRecorder):  # the root's chunks are counted here
            self._root_id = recorder.root_run_id
            self._root_sink = recorder.claim_tap(self._root_id)
        self._stream = aiter(source)

    def _end(self, error: BaseException | None) -> None:
        if self._done:
            return
        self._done = True
        if self._session is not None:
            self._session.finish(error)

    async def aclose(self) -> None:
        """Stop the wrapped stream; runs still open end as `cancelled`."""
        if self._done:
            return
        self._done = True
        if self._session is not None:
            self._session.finish(cancelled=True)
        await _aclose_all(self._stream, self._source)

    def __del__(self) -> None:
        if self._done or self._stream is None:
            return
        self._done = True
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
