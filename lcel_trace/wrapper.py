"""`trace()`: a real `Runnable` that records its wrapped runnable's runs as a trace.

Every entry point drives the wrapped runnable's *own* method of the same name with a
recorder attached to that call, so tracing never changes which code path LangChain
takes: `invoke` keeps invoke's retries and fallbacks, `stream` stays synchronous, and
the caller receives exactly the values, chunks and exceptions it would without
tracing. A traced call made inside another traced call (config passed or not: LangChain
carries the running config in a context variable) joins the outer trace.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from typing import Any, Unpack, cast

from langchain_core.callbacks import BaseCallbackHandler, BaseCallbackManager
from langchain_core.runnables import (
    Runnable,
    RunnableConfig,
    RunnableGenerator,
    RunnableLambda,
)
from langchain_core.runnables.base import coerce_to_runnable
from langchain_core.runnables.config import (
    ensure_config,
    get_config_list,
    var_child_runnable_config,
)
from langchain_core.runnables.graph import Graph
from langchain_core.runnables.utils import ConfigurableFieldSpec, Input, Output, _RootEventFilter
from langchain_core.tracers._streaming import _StreamingCallbackHandler
from langchain_core.utils.pydantic import TypeBaseModel

from lcel_trace import context
from lcel_trace._log import report_internal_error
from lcel_trace.clock import now_ns
from lcel_trace.context import (
    TraceOptions,
    TracingOptions,
    inside_recorded_event_stream,
    is_sampled,
    new_trace_id,
    otel_parent,
)
from lcel_trace.normalise import is_user_runnable
from lcel_trace.recorder import (
    AsyncRecorder,
    AsyncTappingRecorder,
    Recorder,
    TappingRecorder,
    recorder_of,
)
from lcel_trace.run_events import RunChunk, TraceSink
from lcel_trace.session import TraceSession
from lcel_trace.span import RunType
from lcel_trace.streams import Observe, TracedAsyncIterator, TracedIterator, awaiting, handed_back

__all__ = ["TracedRunnable", "trace", "tracing_disabled"]

_MODEL_STREAM_EVENTS = ("on_chat_model_stream", "on_llm_stream")
_DISABLED = os.environ.get("LCEL_TRACE_DISABLED", "").strip().lower() in {"1", "true", "yes"}


def tracing_disabled() -> bool:
    """True when `LCEL_TRACE_DISABLED=1` was set at import: every call then runs untraced."""
    return _DISABLED


def trace(
    runnable: Runnable[Input, Output] | Callable[..., Any] | Mapping[str, Any],
    **options: Unpack[TracingOptions],
) -> TracedRunnable[Input, Output]:
    """Wrap `runnable` so each call is recorded as one trace and sent to `exporters`.

    Options (keywords, declared once in `context.TracingOptions`): `exporters=()`,
    `name=None`, `redact=None` (maps any content value to what may leave the process,
    after the built-in secret scrubbing), `capture_content=True` (False drops inputs,
    outputs and chunks entirely), `max_attr_chars=4096`, `sample=1.0` (keeps that
    fraction of traces, chosen by trace id).
    """
    bound = coerce_to_runnable(cast("Any", runnable))
    built = TraceOptions.build(name_run_types=run_types_by_name(bound), **options)
    return TracedRunnable(bound, built, taps_safe=taps_cannot_switch_models(bound))


def run_types_by_name(root: Runnable[Any, Any], limit: int = 10_000) -> Mapping[str, RunType]:
    """Run names inside `root` that LangChain reports as plain chains but are really
    lambdas/generators ("lambda") or user-defined runnables ("custom")."""
    found: dict[str, RunType] = {}
    for node in _runnables_in(root, limit):
        if isinstance(node, (RunnableLambda, RunnableGenerator)):
            found.setdefault(node.get_name(), "lambda")
        elif not isinstance(node, TracedRunnable) and is_user_runnable(node):
            found.setdefault(node.get_name(), "custom")
    return found


def taps_cannot_switch_models(root: Runnable[Any, Any], limit: int = 10_000) -> bool:
    """True when tapping streams under `root` cannot make a model stream that would not
    have: every step is LangChain composition, prompts, parsers, models or LangChain's
    own retrievers, which stream their children when streamed. Lambdas, generators,
    tools, `.map()`, `with_retry` and user-defined runnables may *invoke* a model, and
    a streaming handler would switch that model to streaming."""
    from langchain_core.runnables.base import RunnableEachBase
    from langchain_core.runnables.retry import RunnableRetry
    from langchain_core.tools import BaseTool

    unsafe = (RunnableLambda, RunnableGenerator, RunnableEachBase, RunnableRetry, BaseTool)
    for node in _runnables_in(root, limit):
        if isinstance(node, unsafe) or _is_user_defined(node):
            return False
    return True


def _is_user_defined(node: Runnable[Any, Any]) -> bool:
    return not isinstance(node, TracedRunnable) and not type(node).__module__.startswith(
        ("langchain", "lcel_trace")
    )


def _runnables_in(root: Runnable[Any, Any], limit: int) -> Iterator[Runnable[Any, Any]]:
    seen: set[int] = set()
    stack: list[Any] = [root]
    while stack and len(seen) < limit:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, Runnable):
            yield node
            children: Any = getattr(node, "__dict__", {}).values()
        elif isinstance(node, Mapping):
            children = node.values()
        elif isinstance(node, (list, tuple)):
            children = node
        else:
            continue
        stack.extend(c for c in children if isinstance(c, (Runnable, Mapping, list, tuple)))


def _handlers_of(config: RunnableConfig | None) -> list[BaseCallbackHandler]:
    """The callback handlers a call with `config` runs with, including those LangChain
    carries in its context variable for calls made inside a running runnable."""
    callbacks = (config or {}).get("callbacks")
    if callbacks is None:
        callbacks = (var_child_runnable_config.get() or {}).get("callbacks")
    if isinstance(callbacks, BaseCallbackManager):
        return list(callbacks.handlers)
    if isinstance(callbacks, list):
        return [h for h in callbacks if isinstance(h, BaseCallbackHandler)]
    return []


def _needs_non_inline(handlers: list[BaseCallbackHandler], adds_handler: bool) -> bool:
    """Whether an async call's recorder must be non-inline so that it hides no model
    start from the other handlers: true when every other handler it will run beside
    is non-inline (those in the config, those LangChain's configure hooks add, and
    the one `astream_events`/`astream_log` add themselves)."""
    others = [*handlers, *_hooked_handlers()]
    if any(getattr(h, "run_inline", False) for h in others):
        return False
    return bool(others) or adds_handler


def _hooked_handlers() -> list[Any]:
    """Handlers LangChain's configure hooks will add (`collect_runs()`, tracing)."""
    try:
        from langchain_core.tracers.context import _configure_hooks
        from langchain_core.utils.env import env_var_is_set
    except ImportError:  # pragma: no cover - a LangChain without hooks
        return []
    found: list[Any] = []
    for var, _inheritable, handler_class, env_var in _configure_hooks:
        handler = var.get()
        if handler is not None:
            found.append(handler)
        elif env_var is not None and env_var_is_set(env_var) and handler_class is not None:
            found.append(handler_class)
    return found


def active_recorder(config: RunnableConfig | None) -> Recorder | None:
    """The recorder of an enclosing traced call, when this call runs inside one."""
    for handler in _handlers_of(config):
        recorder = recorder_of(handler)
        if recorder is not None:
            return recorder
    return None


def enclosing_trace() -> tuple[TraceSink, str | None] | None:
    """The trace a call made here would join (the enclosing traced call's) and the run
    it would run under (the one LangChain's running config names), if any: how another
    producer (`trace_events`) joins that trace, through its declared door."""
    recorder = active_recorder(None)
    if recorder is None:
        return None
    callbacks = (var_child_runnable_config.get() or {}).get("callbacks")
    parent = callbacks.parent_run_id if isinstance(callbacks, BaseCallbackManager) else None
    return recorder.sink, str(parent) if parent is not None else None


def _with_recorder(
    config: RunnableConfig | None, recorder: BaseCallbackHandler, first: bool
) -> RunnableConfig:
    """`config` (as LangChain would complete it) with `recorder` attached, first in
    line when it must tap before another streaming handler."""
    config = ensure_config(config)
    callbacks = config.get("callbacks")
    if callbacks is None:
        config["callbacks"] = [recorder]
    elif isinstance(callbacks, list):
        config["callbacks"] = [recorder, *callbacks] if first else [*callbacks, recorder]
    else:
        manager = callbacks.copy()
        if first:
            manager.handlers = [recorder, *manager.handlers]
            manager.inheritable_handlers = [recorder, *manager.inheritable_handlers]
        else:
            manager.add_handler(recorder, inherit=True)
        config["callbacks"] = manager
    return config


class TracedRunnable(Runnable[Input, Output]):
    """The runnable `trace()` returns; behaves as `bound` does, and records each call."""

    def __init__(
        self, bound: Runnable[Input, Output], options: TraceOptions, *, taps_safe: bool
    ) -> None:
        self.bound = bound
        self.options = options
        self.name = options.name or bound.get_name()
        self._taps_safe = taps_safe

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

    def __getattr__(self, name: str) -> Any:
        """Whatever else the wrapped object offers (a compiled graph's `get_state`,
        `nodes`, ...), so the traced runnable can stand in for it; untraced, since
        these are not runnable calls."""
        if name.startswith("__") or name in ("bound", "options", "_taps_safe"):
            raise AttributeError(name)
        return getattr(self.bound, name)

    # -- sessions -------------------------------------------------------------------------

    def _begin(
        self,
        config: RunnableConfig | None,
        *,
        streaming: bool = False,
        counts_root: bool = False,
        is_async: bool = False,
        adds_handler: bool = False,
        finish_with_root: bool = False,
    ) -> tuple[TraceSession | None, RunnableConfig | None]:
        """Open a session for one call and attach its recorder, unless an enclosing
        traced call already records this one (or it is not sampled)."""
        if _DISABLED:
            return None, config
        try:
            if active_recorder(config) is not None or inside_recorded_event_stream.get():
                return None, config
            parent = otel_parent()
            trace_id = parent.trace_id if parent else new_trace_id()
            if not is_sampled(trace_id, self.options.sample):
                return None, config
            options = self.options
            if context.instrumented_processors:  # instrument()'s exporters get it too
                options = options.joined(context.instrumented_processors)
            user_run_id = (config or {}).get("run_id")
            session = TraceSession(
                options,
                trace_id=trace_id,
                root_name=(config or {}).get("run_name") or self.bound.get_name(),
                otel_parent_span_id=parent.span_id if parent else None,
                root_run_id=str(user_run_id) if user_run_id is not None else None,
                finish_with_root=finish_with_root,
            )
            handlers = _handlers_of(config)
            recorder, first = self._recorder_for(session, handlers, streaming, counts_root)
            handler: BaseCallbackHandler = recorder
            if is_async and _needs_non_inline(handlers, adds_handler):
                # beside only non-inline handlers, an inline recorder would hide
                # on_llm_start from them (AsyncCallbackManager.on_llm_start)
                if isinstance(recorder, TappingRecorder):
                    handler = AsyncTappingRecorder(recorder)
                else:
                    handler = AsyncRecorder(recorder)
            return session, _with_recorder(config, handler, first)
        except Exception as exc:
            report_internal_error("trace_start", exc)
            return None, config

    def _recorder_for(
        self,
        session: TraceSession,
        handlers: list[BaseCallbackHandler],
        streaming: bool,
        counts_root: bool,
    ) -> tuple[Recorder, bool]:
        """A tapping recorder where taps cannot change behaviour, else a plain one."""
        run_types = self.options.name_run_types
        if not streaming:
            return Recorder(session, run_types, root_counted_elsewhere=counts_root), False
        foreign = next((h for h in handlers if isinstance(h, _StreamingCallbackHandler)), None)
        if foreign is None and not self._taps_safe:
            return Recorder(session, run_types, root_counted_elsewhere=counts_root), False
        recorder = TappingRecorder(
            session, run_types, forward_to=foreign, root_counted_elsewhere=counts_root
        )
        return recorder, foreign is not None

    @staticmethod
    def _fail(session: TraceSession | None, exc: BaseException) -> None:
        if session is not None:
            session.finish(exc)

    # -- one value ------------------------------------------------------------------------

    def invoke(self, input: Input, config: RunnableConfig | None = None, **kwargs: Any) -> Output:
        session, config = self._begin(config)
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
        session, config = self._begin(config, is_async=True)
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
        sessions, configs = self._begin_many(inputs, config, is_async=True)
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
        self,
        inputs: list[Input],
        config: RunnableConfig | list[RunnableConfig] | None,
        *,
        is_async: bool = False,
    ) -> tuple[list[TraceSession | None], list[RunnableConfig]]:
        sessions: list[TraceSession | None] = []
        configs: list[RunnableConfig] = []
        for one in get_config_list(config, len(inputs)):
            session, attached = self._begin(one, is_async=is_async)
            sessions.append(session)
            configs.append(attached if attached is not None else one)
        return sessions, configs

    # -- streams: opened now, so call-time errors raise at call time ------------------------

    def _sync_stream(
        self, config: RunnableConfig | None, open_source: Callable[[Any], Iterator[Any]]
    ) -> Iterator[Any]:
        session, config = self._begin(config, streaming=True, counts_root=True)
        try:
            source = open_source(config)
        except BaseException as exc:
            self._fail(session, exc)
            raise
        return TracedIterator(session, source)

    def _async_stream(
        self,
        config: RunnableConfig | None,
        open_source: Callable[[Any], AsyncIterator[Any]],
        *,
        streaming: bool = True,
        observe: Observe | None = None,
        adds_handler: bool = False,
        keep: Callable[[Any], bool] | None = None,
    ) -> AsyncIterator[Any]:
        session, config = self._begin(
            config,
            streaming=streaming,
            counts_root=streaming,
            is_async=True,
            adds_handler=adds_handler,
        )
        try:
            source = open_source(config)
        except BaseException as exc:
            self._fail(session, exc)
            raise
        if not hasattr(type(source), "__anext__") and inspect.isawaitable(source):
            # an `async def astream_events` (LangGraph's RemoteGraph): the caller awaits it
            if session is not None:
                session.finish_with_root()
            return cast("AsyncIterator[Any]", awaiting(session, source))
        return TracedAsyncIterator(
            session, source, count_root=streaming, observe=observe, keep=keep
        )

    def stream(
        self, input: Input, config: RunnableConfig | None = None, **kwargs: Any | None
    ) -> Iterator[Output]:
        return self._sync_stream(config, lambda cfg: self.bound.stream(input, cfg, **kwargs))

    def transform(
        self, input: Iterator[Input], config: RunnableConfig | None = None, **kwargs: Any | None
    ) -> Iterator[Output]:
        return self._sync_stream(config, lambda cfg: self.bound.transform(input, cfg, **kwargs))

    def astream(
        self, input: Input, config: RunnableConfig | None = None, **kwargs: Any | None
    ) -> AsyncIterator[Output]:
        return self._async_stream(config, lambda cfg: self.bound.astream(input, cfg, **kwargs))

    def atransform(
        self,
        input: AsyncIterator[Input],
        config: RunnableConfig | None = None,
        **kwargs: Any | None,
    ) -> AsyncIterator[Output]:
        return self._async_stream(config, lambda cfg: self.bound.atransform(input, cfg, **kwargs))

    def astream_events(  # one signature for LangChain's overloads
        self, input: Any, config: RunnableConfig | None = None, **kwargs: Any
    ) -> Any:
        """The wrapped runnable's own event stream, with the arguments given (a bound
        `version` included); the trace comes from the recorder, which sees every run.

        Version "v3" gives an awaitable stream object, not an iterator: it is handed
        back as it is, and the trace ends when the root run does."""
        if self._event_version(kwargs) == "v3":
            session, config = self._begin(config, is_async=True, finish_with_root=True)
            try:
                awaitable = self.bound.astream_events(input, config, **kwargs)
            except BaseException as exc:
                self._fail(session, exc)
                raise
            return awaiting(session, awaitable)
        keep = None
        if self._event_version(kwargs) in ("v2", None):
            keep = _event_filter(kwargs, input)
        if keep is not None:
            # LangChain drops filtered-out runs' events, chunks included, before we could
            # count them: ask for every event, and hand on only those the filter keeps
            kwargs = {k: v for k, v in kwargs.items() if k not in _EVENT_FILTERS}
        return self._async_stream(
            config,
            lambda cfg: self.bound.astream_events(input, cfg, **kwargs),
            streaming=False,
            observe=_observe_event_chunks,
            adds_handler=True,
            keep=keep,
        )

    def _event_version(self, kwargs: Mapping[str, Any]) -> Any:
        if "version" in kwargs:
            return kwargs["version"]
        return (getattr(self.bound, "kwargs", None) or {}).get("version")

    def stream_events(
        self, input: Any, config: RunnableConfig | None = None, **kwargs: Any
    ) -> Iterator[Any]:
        """The wrapped runnable's own sync event stream object (LangChain's v3 protocol),
        handed back as it is; the recorder sees its runs and the trace ends with the root."""
        session, config = self._begin(config, finish_with_root=True)
        try:
            stream = self.bound.stream_events(input, config, **kwargs)
        except BaseException as exc:
            self._fail(session, exc)
            raise
        return handed_back(session, stream)

    def astream_log(
        self, input: Any, config: RunnableConfig | None = None, **kwargs: Any
    ) -> AsyncIterator[Any]:
        """The wrapped runnable's own run log, traced like `astream_events`."""
        return self._async_stream(
            config,
            lambda cfg: self.bound.astream_log(input, cfg, **kwargs),
            streaming=False,
            observe=_observe_log_chunks,
            adds_handler=True,
        )


_EVENT_FILTERS = (
    "include_names",
    "include_types",
    "include_tags",
    "exclude_names",
    "exclude_types",
    "exclude_tags",
)


def _event_filter(kwargs: Mapping[str, Any], value: Any) -> Callable[[Any], bool] | None:
    """LangChain's own v2 event filter for the filters given, or None without any.

    As LangChain does for the first event it sends, the first event kept carries the
    call's input, and the end of that run does not repeat it."""
    filters = {k: kwargs[k] for k in _EVENT_FILTERS if kwargs.get(k) is not None}
    if not filters:
        return None
    root_filter = _RootEventFilter(**filters)
    first_run_id: list[Any] = []

    def keep(event: Any) -> bool:
        try:
            name = event["event"]
            # the type LangChain filters on: the run's type, or a custom event's name
            kind = event["name"] if name == "on_custom_event" else name[3:].rpartition("_")[0]
            if not root_filter.include_event(event, kind):
                return False
            data = event["data"]
            if not first_run_id:
                first_run_id.append(event["run_id"])
                data["input"] = value
            elif event["run_id"] == first_run_id[0] and name.endswith("_end") and "input" in data:
                del data["input"]
        except Exception as exc:
            report_internal_error("event_filter", exc)
        return True

    return keep


def _observe_event_chunks(session: TraceSession, event: Any) -> None:
    """Steps' stream chunks, as the event stream reports them (v1 and v2 dicts only:
    models report theirs through the recorder)."""
    if not isinstance(event, Mapping):
        return
    name = event.get("event", "")
    if isinstance(name, str) and name.endswith("_stream") and name not in _MODEL_STREAM_EVENTS:
        data = event.get("data") or {}
        session.feed(RunChunk(str(event.get("run_id")), data.get("chunk"), now_ns()))


def _observe_log_chunks(session: TraceSession, patch: Any) -> None:
    root = session.root_run_id
    if root is None:
        return
    for op in getattr(patch, "ops", ()):
        if op.get("op") == "add" and op.get("path") == "/streamed_output/-":
            session.feed(RunChunk(root, op.get("value"), now_ns()))


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
