"""While a run executes, OpenTelemetry's current context holds that run's span.

So the spans other instrumentations make meanwhile (the model's HTTP request, a tool's
database query) nest under the step that caused them, with the ids our exported span
will carry. No context is attached and detached per run: a detach fails when a stream
is finalised in another context (the "Failed to detach context" of other tracers), and
an attach made in a callback leaks into the caller. Instead OpenTelemetry's runtime
context is wrapped once, and `get_current()` derives the run from where LangChain is:

- a run whose body LangChain runs in a context copy of its own (chains, lambdas,
  generators, tools, LangGraph nodes; worker threads and tasks inherit the copy): the
  copy's running config names it (`var_child_runnable_config`, its callback manager's
  `parent_run_id`);
- a model or retriever, whose body runs in its caller's context: the recorder marks it
  in a context variable when LangChain calls the recorder inline, in that context. When
  LangChain calls it in a task of its own instead (beside other non-inline handlers),
  a model or retriever is taken as current where it is the only one running under the
  step whose context this is; with several (concurrent models in one step), the step.

A run counts from its start to its end or its trace's end, so a stale mark or config
left in a context after the run is inert. A context attached inside a run (a span of the
user's own) wins over the run's. Only traces sent to an OpenTelemetry exporter register
runs; with none, `get_current()` costs one dictionary check.
"""

from __future__ import annotations

import threading
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from langchain_core.runnables.config import var_child_runnable_config
from opentelemetry import context as otel_context
from opentelemetry import trace as otel_trace
from opentelemetry.context import Context
from opentelemetry.context.context import _RuntimeContext

__all__ = ["install", "run_ended", "run_started", "span_id_of", "trace_ended"]

_SPAN_ID_MASK = (1 << 64) - 1


def span_id_of(run_id: str | UUID) -> int:
    """The OpenTelemetry span id of a run: the low 64 bits of its run id (random in
    LangChain's uuid7 ids), never 0."""
    value = (run_id if isinstance(run_id, UUID) else UUID(run_id)).int & _SPAN_ID_MASK
    return value or 1


@dataclass(slots=True)
class _LiveRun:
    trace_id: int
    span_id: int
    ambient: Context  # the current context when the run started
    depth: int
    previous_mark: UUID | None
    parent: UUID | None
    unmarked_leaf: bool  # a model or retriever the recorder could not mark
    _context: Context | None = field(default=None)

    @property
    def context(self) -> Context:
        """`ambient` with this run's span current (built on first use)."""
        if self._context is None:
            span_context = otel_trace.SpanContext(
                trace_id=self.trace_id,
                span_id=self.span_id,
                is_remote=False,
                trace_flags=otel_trace.TraceFlags(otel_trace.TraceFlags.SAMPLED),
            )
            span = otel_trace.NonRecordingSpan(span_context)
            self._context = otel_trace.set_span_in_context(span, self.ambient)
        return self._context


_runs: dict[UUID, _LiveRun] = {}
_runs_of_trace: dict[int, set[UUID]] = {}
_registry_lock = threading.Lock()
_unmarked_leaves: dict[UUID, set[UUID]] = {}  # parent run -> its unmarked models, retrievers
_marked_run: ContextVar[UUID | None] = ContextVar("lcel_trace_marked_run", default=None)


def run_started(
    run_id: UUID, parent_run_id: UUID | None, trace_id: str, *, leaf: bool, mark: bool
) -> None:
    """`run_id` of the trace `trace_id` starts; `leaf` for models and retrievers, `mark`
    when called in the run's own context (the recorder is inline)."""
    parent = _runs.get(parent_run_id) if parent_run_id is not None else None
    trace = int(trace_id, 16)
    run = _LiveRun(
        trace_id=trace,
        span_id=span_id_of(run_id),
        ambient=_inner().get_current(),
        depth=parent.depth + 1 if parent is not None else 0,
        previous_mark=_marked_run.get() if mark else None,
        parent=parent_run_id,
        unmarked_leaf=leaf and not mark,
    )
    with _registry_lock:
        _runs[run_id] = run
        _runs_of_trace.setdefault(trace, set()).add(run_id)
        if run.unmarked_leaf and parent_run_id is not None:
            _unmarked_leaves.setdefault(parent_run_id, set()).add(run_id)
    if mark:
        _marked_run.set(run_id)


def run_ended(run_id: UUID) -> None:
    """`run_id` ended (ok, error or cancelled): its context is no longer current."""
    with _registry_lock:
        run = _runs.pop(run_id, None)
        if run is not None:
            _forget(run_id, run)
    if run is not None and _marked_run.get() == run_id:
        _marked_run.set(run.previous_mark)


def trace_ended(trace_id: str) -> None:
    """Every run of the trace still registered (never ended) stops counting."""
    with _registry_lock:
        for run_id in list(_runs_of_trace.get(int(trace_id, 16), ())):
            run = _runs.pop(run_id, None)
            if run is not None:
                _forget(run_id, run)
        _runs_of_trace.pop(int(trace_id, 16), None)


def _forget(run_id: UUID, run: _LiveRun) -> None:
    """Drop a run's index entries (`_registry_lock` held)."""
    _runs_of_trace.get(run.trace_id, set()).discard(run_id)
    if run.unmarked_leaf and run.parent is not None:
        leaves = _unmarked_leaves.get(run.parent)
        if leaves is not None:
            leaves.discard(run_id)
            if not leaves:
                del _unmarked_leaves[run.parent]


def current_run_context() -> Context | None:
    """The context of the innermost run executing here, if one is registered."""
    if not _runs:
        return None
    best = None
    marked = _marked_run.get()
    if marked is not None:
        best = _runs.get(marked)
    config = var_child_runnable_config.get()
    if config:
        run_id = getattr(config.get("callbacks"), "parent_run_id", None)
        if run_id is not None:
            chain = _runs.get(run_id)
            if chain is not None and (best is None or chain.depth > best.depth):
                best = chain
                leaves = _unmarked_leaves.get(run_id)
                if leaves is not None and len(leaves) == 1:
                    (leaf,) = leaves
                    best = _runs.get(leaf, chain)
    if best is None:
        return None
    ambient = _inner().get_current()
    if ambient is not best.ambient:
        return None  # a context attached inside the run (a span of the user's own) wins
    return best.context


class _RunAwareRuntimeContext(_RuntimeContext):
    """OpenTelemetry's runtime context, with the executing run's span as current."""

    def __init__(self, inner: _RuntimeContext) -> None:
        self.inner = inner

    def attach(self, context: Context) -> Any:
        return self.inner.attach(context)

    def get_current(self) -> Context:
        if _runs:
            try:
                run_context = current_run_context()
            except Exception:  # never break the caller's instrumentation
                run_context = None
            if run_context is not None:
                return run_context
        return self.inner.get_current()

    def detach(self, token: Any) -> None:
        self.inner.detach(token)


def _inner() -> _RuntimeContext:
    runtime = otel_context._RUNTIME_CONTEXT
    return runtime.inner if isinstance(runtime, _RunAwareRuntimeContext) else runtime


def install() -> None:
    """Wrap OpenTelemetry's runtime context (once; idempotent, thread-safe)."""
    with _registry_lock:
        runtime = otel_context._RUNTIME_CONTEXT
        if not isinstance(runtime, _RunAwareRuntimeContext):
            otel_context._RUNTIME_CONTEXT = _RunAwareRuntimeContext(runtime)
