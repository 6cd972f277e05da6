"""`instrument()`: every outermost runnable call in the process becomes one trace.

The entry points (`invoke`, `ainvoke`, `batch`, `stream`, ...) of `Runnable` and of
every subclass that overrides them are replaced by thin wrappers; subclasses defined
later are patched as they are created (a `Runnable.__init_subclass__` hook). An
outermost call - no enclosing run in its config or in LangChain's context variable,
no recorder of a `trace()` call - goes through `TracedRunnable`'s method of the same
name, exactly as if the runnable had been wrapped with `trace()`; everything else
goes straight to the original method. A context variable marks "inside our own
traced call" so the traced wrapper's inner call reaches the original, and nested
calls made while it runs (threads and tasks that inherit the context included) are
left to the recorder, which already sees them. `uninstrument()` puts every patched
attribute back exactly as it was.
"""

from __future__ import annotations

import functools
import importlib
import threading
import weakref
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from typing import Any, Unpack, cast

from langchain_core.callbacks import BaseCallbackManager
from langchain_core.runnables.base import Runnable
from langchain_core.runnables.config import var_child_runnable_config

from lcel_trace import context
from lcel_trace._classes import subclasses_of
from lcel_trace._log import log, report_internal_error
from lcel_trace.context import SharedOptions, TraceOptions
from lcel_trace.export import TraceExporter
from lcel_trace.recorder import recorder_of
from lcel_trace.wrapper import (
    TracedRunnable,
    run_types_by_name,
    taps_cannot_switch_models,
    tracing_disabled,
)

# and `LcelTraceInstrumentor`, built on first use (opentelemetry-instrumentation is optional)
__all__ = ["instrument", "is_instrumented", "uninstrument"]

_INVOKES = ("invoke", "batch")
_AINVOKES = ("ainvoke", "abatch")
_STREAMS = ("stream", "transform", "stream_events")
_ASTREAMS = ("astream", "atransform", "astream_events", "astream_log")
ENTRY_POINTS = (*_INVOKES, *_AINVOKES, *_STREAMS, *_ASTREAMS)
"""The methods patched on `Runnable` and on every subclass that overrides one."""

_CACHE_LIMIT = 4096
_ABSENT = object()
_PATCHED_MARK = "__lcel_trace_original__"

_inside: ContextVar[bool] = ContextVar("lcel_trace_inside_instrumented_call", default=False)
_TRACED = {name: TracedRunnable.__dict__[name] for name in ENTRY_POINTS}


@dataclass
class _Patch:
    owner: type
    name: str
    original: object  # or _ABSENT
    patched: object


@dataclass
class _State:
    """What `instrument()` set up: the options every trace gets, and what it patched."""

    options: TraceOptions
    patches: list[_Patch] = field(default_factory=list)
    # id(runnable) -> (weak reference, its options, taps_safe): the walk over a
    # runnable's steps is done once per runnable, not once per call
    per_runnable: dict[int, tuple[weakref.ref[Any], TraceOptions, bool]] = field(
        default_factory=dict
    )

    def traced(self, runnable: Runnable[Any, Any]) -> TracedRunnable[Any, Any]:
        key = id(runnable)
        hit = self.per_runnable.get(key)
        if hit is not None and hit[0]() is runnable:
            return TracedRunnable(runnable, hit[1], taps_safe=hit[2])
        options = replace(self.options, name_run_types=run_types_by_name(runnable))
        taps_safe = taps_cannot_switch_models(runnable)
        try:
            ref = weakref.ref(runnable)
        except TypeError:
            ref = None
        if ref is not None:
            if len(self.per_runnable) >= _CACHE_LIMIT:
                self.per_runnable.clear()
            self.per_runnable[key] = (ref, options, taps_safe)
        return TracedRunnable(runnable, options, taps_safe=taps_safe)


_state: _State | None = None
_lock = threading.RLock()


def instrument(exporters: Sequence[TraceExporter] = (), **options: Unpack[SharedOptions]) -> None:
    """Trace every outermost runnable call in the process, as `trace()` would.

    Any thread, any task: a call with no enclosing run becomes one trace sent to
    `exporters`; calls inside it (config passed or not) are its spans, and calls
    already inside a `trace()` call stay in that trace. Calling it again replaces the
    options without patching twice. Does nothing when `LCEL_TRACE_DISABLED=1`.
    """
    global _state
    built = TraceOptions.build(exporters=exporters, **options)
    if tracing_disabled():
        log.info("instrument_skipped", reason="LCEL_TRACE_DISABLED is set")
        return
    with _lock:
        if _state is not None:
            _state = _State(options=built, patches=_state.patches)
            context.instrumented_processors = built.processors
            return
        state = _State(options=built)
        _state = state
        context.instrumented_processors = built.processors
        for cls in _runnable_classes():
            _patch_class(cls, state)
        _hook_subclasses(state)


def uninstrument() -> None:
    """Stop tracing calls that are not wrapped with `trace()`; restores every patched
    attribute. Calls already running finish their traces. Idempotent."""
    global _state
    with _lock:
        state, _state = _state, None
        context.instrumented_processors = ()
        if state is None:
            return
        for patch in reversed(state.patches):
            current = patch.owner.__dict__.get(patch.name, _ABSENT)
            if current is not patch.patched:
                log.warning(
                    "uninstrument_left_attribute",
                    cls=f"{patch.owner.__module__}.{patch.owner.__qualname__}",
                    attribute=patch.name,
                    reason="replaced by someone else since lcel-trace patched it",
                )
                continue
            if patch.original is _ABSENT:
                delattr(patch.owner, patch.name)
            else:
                setattr(patch.owner, patch.name, patch.original)


def is_instrumented() -> bool:
    """True between `instrument()` and `uninstrument()`."""
    return _state is not None


# -- which calls are outermost ------------------------------------------------------------


def _is_outermost(args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    """No enclosing run: neither the config given nor LangChain's context variable
    carries a child callback manager or a `trace()` recorder."""
    config = args[1] if len(args) > 1 else kwargs.get("config")
    if isinstance(config, list):
        config = config[0] if config else None
    callbacks = config.get("callbacks") if isinstance(config, dict) else None
    if callbacks is None:
        callbacks = (var_child_runnable_config.get() or {}).get("callbacks")
    if isinstance(callbacks, BaseCallbackManager):
        if callbacks.parent_run_id is not None:
            return False
        handlers: Sequence[object] = callbacks.handlers
    elif isinstance(callbacks, list):
        handlers = callbacks
    else:
        return True
    return not any(recorder_of(h) is not None for h in handlers)


def _traced_for(state: _State | None, self: Any, args: Any, kwargs: Any) -> Any:
    """The `TracedRunnable` an outermost call goes through, or None to run untraced."""
    if state is None or _inside.get():
        return None
    try:
        if not _is_outermost(args, kwargs):
            return None
        return state.traced(self)
    except Exception as exc:
        report_internal_error("instrument", exc)
        return None


# -- the wrappers -----------------------------------------------------------------------


def _guard_sync_stream(result: Any) -> Any:
    """A sync stream method's result, its steps run as part of our traced call; anything
    that is not an iterator (a v3 stream object) is handed back as it is."""
    return _guarded_iter(result) if hasattr(type(result), "__next__") else result


def _guard_async_stream(result: Any) -> Any:
    """An async stream method's result, its steps run as part of our traced call; anything
    that is not an async iterator (a v3 stream's awaitable, the coroutine of an
    `async def astream_events`) is handed back as it is."""
    return _guarded_aiter(result) if hasattr(type(result), "__anext__") else result


def _guarded_iter(source: Iterator[Any]) -> Iterator[Any]:
    """`source`, each step run as part of our traced call (an unsampled one included)."""
    try:
        while True:
            token = _inside.set(True)
            try:
                item = next(source)
            except StopIteration:
                return
            finally:
                _inside.reset(token)
            yield item
    finally:
        close = getattr(source, "close", None)
        if close is not None:
            close()


async def _guarded_aiter(source: AsyncIterator[Any]) -> AsyncIterator[Any]:
    try:
        while True:
            token = _inside.set(True)
            try:
                item = await anext(source)
            except StopAsyncIteration:
                return
            finally:
                _inside.reset(token)
            yield item
    finally:
        aclose = getattr(source, "aclose", None)
        if aclose is not None:
            await aclose()


def _wrapper(name: str, original: Callable[..., Any]) -> Callable[..., Any]:
    """The replacement for `original` (a `Runnable` subclass's `name` method)."""
    traced_method: Any = _TRACED[name]

    if name in _AINVOKES:

        async def patched_async(self: Any, *args: Any, **kwargs: Any) -> Any:
            traced = _traced_for(_state, self, args, kwargs)
            if traced is None:
                return await original(self, *args, **kwargs)
            token = _inside.set(True)
            try:
                return await traced_method(traced, *args, **kwargs)
            finally:
                _inside.reset(token)

        return functools.wraps(original)(patched_async)

    wrap_stream: Callable[[Any], Any] | None = None
    if name in _STREAMS:
        wrap_stream = _guard_sync_stream
    elif name in _ASTREAMS:
        wrap_stream = _guard_async_stream

    def patched(self: Any, *args: Any, **kwargs: Any) -> Any:
        traced = _traced_for(_state, self, args, kwargs)
        if traced is None:
            result = original(self, *args, **kwargs)
            if wrap_stream is not None and _inside.get():
                return wrap_stream(result)
            return result
        token = _inside.set(True)
        try:
            return traced_method(traced, *args, **kwargs)
        finally:
            _inside.reset(token)

    return functools.wraps(original)(patched)


def _guard_only(name: str, original: Callable[..., Any]) -> Callable[..., Any]:
    """For `trace()`'s own runnable: its call is ours, sampled or not, so the wrapped
    runnable's inner call is not traced a second time."""
    if name in _AINVOKES:

        async def guarded_async(self: Any, *args: Any, **kwargs: Any) -> Any:
            token = _inside.set(True)
            try:
                return await original(self, *args, **kwargs)
            finally:
                _inside.reset(token)

        return functools.wraps(original)(guarded_async)

    def guarded(self: Any, *args: Any, **kwargs: Any) -> Any:
        token = _inside.set(True)
        try:
            return original(self, *args, **kwargs)
        finally:
            _inside.reset(token)

    return functools.wraps(original)(guarded)


# -- patching ---------------------------------------------------------------------------


def _runnable_classes() -> list[type]:
    return [Runnable, *subclasses_of(Runnable)]


def _patch_class(cls: type, state: _State) -> None:
    make = _guard_only if issubclass(cls, TracedRunnable) else _wrapper
    for name in ENTRY_POINTS:
        original = cls.__dict__.get(name)
        if (
            original is None
            or not callable(original)
            or isinstance(original, (staticmethod, classmethod))
            or hasattr(original, _PATCHED_MARK)
        ):
            continue
        patched = make(name, original)
        setattr(patched, _PATCHED_MARK, original)
        setattr(cls, name, patched)
        state.patches.append(_Patch(cls, name, original, patched))


def _hook_subclasses(state: _State) -> None:
    """Patch the overrides of `Runnable` subclasses created from now on."""
    previous = Runnable.__dict__.get("__init_subclass__", _ABSENT)

    def __init_subclass__(cls: Any, /, **kwargs: Any) -> None:  # noqa: N807 - the hook's name
        if previous is _ABSENT:
            super(Runnable, cls).__init_subclass__(**kwargs)
        else:
            cast("Any", previous).__get__(None, cls)(**kwargs)
        with _lock:
            if _state is state:
                try:
                    _patch_class(cls, state)
                except Exception as exc:
                    report_internal_error("instrument", exc)

    hook: Any = classmethod(__init_subclass__)
    Runnable.__init_subclass__ = hook  # type: ignore[method-assign]
    state.patches.append(_Patch(Runnable, "__init_subclass__", previous, hook))


# -- OpenTelemetry's instrumentor interface -------------------------------------------------


def _instrumentor_class() -> type[Any]:
    # the module says `# type: ignore` at its top, so mypy sees no BaseInstrumentor
    from opentelemetry.instrumentation.instrumentor import (  # type: ignore[attr-defined]
        BaseInstrumentor,
    )

    class LcelTraceInstrumentor(BaseInstrumentor):  # type: ignore[misc]
        """`opentelemetry-instrument` (entry point `opentelemetry_instrumentor`): trace
        every outermost runnable call into the tracer provider it is given (the global
        one by default). Other keyword arguments are `instrument()`'s options."""

        def instrumentation_dependencies(self) -> tuple[str, ...]:
            return ("langchain-core >= 1.0",)

        def _instrument(self, **kwargs: Any) -> None:
            """The global (or given) tracer provider, plus what `lcel_trace.auto` reads:
            `LCEL_TRACE_JSONL`, `LCEL_TRACE_SAMPLE`, `LCEL_TRACE_CAPTURE_CONTENT`
            (keyword arguments win over the environment)."""
            from lcel_trace import env_settings

            # the exporters/ folder, installed as lcel_trace.exporters
            otel_exporter: Any = importlib.import_module("lcel_trace.exporters").OtelExporter
            options = env_settings.options_from_env()
            options.update(
                (k, kwargs[k])
                for k in ("name", "redact", "capture_content", "max_attr_chars", "sample")
                if k in kwargs
            )
            exporters = [otel_exporter(tracer_provider=kwargs.get("tracer_provider"))]
            instrument(exporters=[*exporters, *env_settings.jsonl_from_env()], **options)

        def _uninstrument(self, **kwargs: Any) -> None:
            uninstrument()

    LcelTraceInstrumentor.__module__ = __name__
    return LcelTraceInstrumentor


@functools.cache
def _cached_instrumentor_class() -> type[Any]:
    return _instrumentor_class()


def __getattr__(name: str) -> Any:
    # built on first use: opentelemetry-instrumentation is optional
    if name == "LcelTraceInstrumentor":
        return _cached_instrumentor_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
