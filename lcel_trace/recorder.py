"""The callback handler attached to the real call: v2-shaped events, stamped as they happen.

`astream_events` reads its events from an unbounded queue, so a slow consumer sees
them late, and it drops the errors of everything but tools. This handler rides on
the same callback machinery, inside the call itself: each event is stamped at the
moment LangChain reports it, real exceptions arrive through the `on_*_error`
callbacks, and no queue or extra task stands between the chain and its caller.

`StreamingRecorder` also taps stream output like LangChain's own v2 handler, so
chain steps (parsers, sequences) report their chunks. It is only attached to
streaming calls: a tap makes chat models stream, and `invoke` must stay `invoke`.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, TypeVar
from uuid import UUID

from langchain_core.callbacks import AsyncCallbackManager, BaseCallbackHandler
from langchain_core.messages import AIMessageChunk
from langchain_core.outputs import ChatGenerationChunk, GenerationChunk, LLMResult

from lcel_trace._log import warn_once
from lcel_trace.assemble import EPOCH_OFFSET_NS, now_ns, run_type_of
from lcel_trace.redact import scrub, scrub_text
from lcel_trace.span import EventKind, RunType, TraceEvent

if TYPE_CHECKING:
    from lcel_trace.session import TraceSession

T = TypeVar("T")


class _RunInfo:
    __slots__ = ("family", "id", "inputs", "metadata", "name", "parent_ids", "run_type", "tags")

    def __init__(
        self,
        run_id: UUID,
        family: str,
        name: str,
        run_type: RunType,
        tags: tuple[str, ...],
        metadata: dict[str, Any],
        parent_ids: tuple[str, ...],
        inputs: Any,
    ) -> None:
        self.id = str(run_id)
        self.family = family
        self.name = name
        self.run_type = run_type
        self.tags = tags
        self.metadata = metadata
        self.parent_ids = parent_ids
        self.inputs = inputs


def _run_name(name: str | None, serialized: dict[str, Any] | None) -> str:
    if name is not None:
        return name
    if serialized:
        if "name" in serialized:
            return str(serialized["name"])
        if serialized.get("id"):
            return str(serialized["id"][-1])
    return "Unnamed"


# langchain-core 1.8's AsyncCallbackManager.on_llm_start calls only the inline handlers
# when any is attached, so an inline recorder would hide non-chat LLM starts from every
# other handler (LangSmith's tracer, say). The recorder looks non-inline to that one
# method; ahandle_event, which it then calls, still runs the recorder inline.
_SKIPS_OTHERS_WHEN_INLINE = AsyncCallbackManager.on_llm_start.__code__


class Recorder(BaseCallbackHandler):
    """Turns LangChain callbacks for one trace into stamped `TraceEvent`s for its session."""

    raise_error = False

    @property
    def run_inline(self) -> bool:  # type: ignore[override]  # LangChain's is a plain attribute
        """Inline (called in the caller's task, no thread hop), except where that hides
        other handlers from an event (see `_SKIPS_OTHERS_WHEN_INLINE`)."""
        caller = sys._getframe(1)
        if caller.f_code.co_name == "<listcomp>" and caller.f_back is not None:
            caller = caller.f_back
        return caller.f_code is not _SKIPS_OTHERS_WHEN_INLINE

    def __init__(self, session: TraceSession, name_run_types: Mapping[str, RunType]) -> None:
        self._session = session
        self._name_run_types = name_run_types
        self._runs: dict[UUID, _RunInfo] = {}
        self._tapped: set[UUID] = set()
        self._running: list[UUID] = []
        self._trace_id = session.trace_id
        self.root_run_id = session.root_run_id

    @property
    def trace_id(self) -> str:
        return self._trace_id

    def run_info(self, run_id: str) -> _RunInfo | None:
        """What the recorder knows of a run (name, type, parents), if it has seen it."""
        return self._runs.get(UUID(run_id))

    # -- plumbing ---------------------------------------------------------------------

    def _emit(
        self, kind: EventKind, event: str, run_id: UUID, info: _RunInfo, data: dict[str, Any]
    ) -> None:
        self._session.on_event(
            TraceEvent(
                trace_id=self._trace_id,
                kind=kind,
                event=event,
                run_id=info.id,
                parent_ids=info.parent_ids,
                name=info.name,
                run_type=info.run_type,
                tags=info.tags,
                metadata=info.metadata,
                data=data,
                ts_ns=now_ns(),
            )
        )

    def _open(
        self,
        family: str,
        run_id: UUID,
        parent_run_id: UUID | None,
        name: str,
        tags: list[str] | None,
        metadata: dict[str, Any] | None,
        data: dict[str, Any],
    ) -> None:
        if parent_run_id is None and self._running and str(run_id) != self.root_run_id:
            # LangChain loses the parent link on some invoke paths (with_fallbacks runs
            # its candidates through a context copy): adopt the innermost running run.
            parent_run_id = self._running[-1]
            data["parent_inferred"] = True
        parent = self._runs.get(parent_run_id) if parent_run_id is not None else None
        parent_ids = (*parent.parent_ids, str(parent_run_id)) if parent is not None else ()
        info = _RunInfo(
            run_id=run_id,
            family=family,
            name=name,
            run_type=run_type_of(family, name, self._name_run_types),
            tags=tuple(scrub_text(tag) for tag in tags or ()),
            metadata=scrub(dict(metadata or {})),
            parent_ids=parent_ids,
            inputs=data.get("input"),
        )
        self._runs[run_id] = info
        self._running.append(run_id)
        self._emit("start", f"on_{family}_start", run_id, info, data)

    def _close(self, run_id: UUID, phase: str, data: dict[str, Any]) -> None:
        info = self._runs.get(run_id)
        if info is None:
            return
        with contextlib.suppress(ValueError):
            self._running.remove(run_id)
        if "input" not in data and info.inputs is not None:
            data["input"] = info.inputs
        kind: EventKind = "end" if phase == "end" else "error"
        self._emit(kind, f"on_{info.family}_{phase}", run_id, info, data)

    def _guard(self, where: str, exc: Exception) -> None:
        warn_once("recorder_failed", callback=where, error=repr(exc))

    # -- chains, prompts, parsers ---------------------------------------------------

    def on_chain_start(
        self,
        serialized: dict[str, Any] | None,
        inputs: Any,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        run_type: str | None = None,
        name: str | None = None,
        **kwargs: Any,
    ) -> None:
        try:
            family = run_type or "chain"
            data: dict[str, Any] = {} if inputs == {"input": ""} else {"input": inputs}
            self._open(
                family, run_id, parent_run_id, _run_name(name, serialized), tags, metadata, data
            )
        except Exception as exc:
            self._guard("on_chain_start", exc)

    def on_chain_end(
        self, outputs: Any, *, run_id: UUID, inputs: Any = None, **kwargs: Any
    ) -> None:
        try:
            data: dict[str, Any] = {"output": outputs}
            if inputs is not None:
                data["input"] = inputs
            self._close(run_id, "end", data)
        except Exception as exc:
            self._guard("on_chain_end", exc)

    def on_chain_error(
        self, error: BaseException, *, run_id: UUID, inputs: Any = None, **kwargs: Any
    ) -> None:
        try:
            data: dict[str, Any] = {"error": error}
            if inputs is not None:
                data["input"] = inputs
            self._close(run_id, "error", data)
        except Exception as exc:
            self._guard("on_chain_error", exc)

    # -- models -----------------------------------------------------------------------

    def on_chat_model_start(
        self,
        serialized: dict[str, Any] | None,
        messages: list[list[Any]],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        name: str | None = None,
        **kwargs: Any,
    ) -> None:
        try:
            data: dict[str, Any] = {"input": {"messages": messages}}
            if kwargs.get("invocation_params"):
                data["invocation_params"] = kwargs["invocation_params"]
            self._open(
                "chat_model",
                run_id,
                parent_run_id,
                _run_name(name, serialized),
                tags,
                metadata,
                data,
            )
        except Exception as exc:
            self._guard("on_chat_model_start", exc)

    def on_llm_start(
        self,
        serialized: dict[str, Any] | None,
        prompts: list[str],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        name: str | None = None,
        **kwargs: Any,
    ) -> None:
        try:
            data: dict[str, Any] = {"input": {"prompts": prompts}}
            if kwargs.get("invocation_params"):
                data["invocation_params"] = kwargs["invocation_params"]
            self._open(
                "llm", run_id, parent_run_id, _run_name(name, serialized), tags, metadata, data
            )
        except Exception as exc:
            self._guard("on_llm_start", exc)

    def on_llm_new_token(
        self,
        token: Any,
        *,
        chunk: GenerationChunk | ChatGenerationChunk | None = None,
        run_id: UUID,
        **kwargs: Any,
    ) -> None:
        info = self._runs.get(run_id)
        if info is None or run_id in self._tapped:
            return
        try:
            if isinstance(chunk, ChatGenerationChunk):
                value: Any = chunk.message
            elif chunk is not None:
                value = chunk
            elif info.run_type == "chat_model":
                value = AIMessageChunk(content=token)
            else:
                value = GenerationChunk(text=token if isinstance(token, str) else "")
            self._session.on_chunk(info.id, EPOCH_OFFSET_NS + time.perf_counter_ns(), value)
        except Exception as exc:
            self._guard("on_llm_new_token", exc)

    def on_llm_end(self, response: LLMResult, *, run_id: UUID, **kwargs: Any) -> None:
        try:
            info = self._runs.get(run_id)
            if info is None:
                return
            output: Any
            if info.run_type == "chat_model":
                output = next(
                    (
                        gen.message
                        for gens in response.generations
                        for gen in gens
                        if hasattr(gen, "message")
                    ),
                    None,
                )
            else:
                output = {
                    "generations": [
                        [
                            {"text": g.text, "generation_info": g.generation_info, "type": g.type}
                            for g in gens
                        ]
                        for gens in response.generations
                    ],
                    "llm_output": response.llm_output,
                }
            self._close(run_id, "end", {"output": output})
        except Exception as exc:
            self._guard("on_llm_end", exc)

    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        try:
            self._close(run_id, "error", {"error": error})
        except Exception as exc:
            self._guard("on_llm_error", exc)

    # -- tools and retrievers -----------------------------------------------------------

    def on_tool_start(
        self,
        serialized: dict[str, Any] | None,
        input_str: str,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        name: str | None = None,
        inputs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        try:
            data: dict[str, Any] = {"input": inputs if inputs is not None else input_str}
            if kwargs.get("tool_call_id"):
                data["tool_call_id"] = kwargs["tool_call_id"]
            self._open(
                "tool", run_id, parent_run_id, _run_name(name, serialized), tags, metadata, data
            )
        except Exception as exc:
            self._guard("on_tool_start", exc)

    def on_tool_end(self, output: Any, *, run_id: UUID, **kwargs: Any) -> None:
        try:
            self._close(run_id, "end", {"output": output})
        except Exception as exc:
            self._guard("on_tool_end", exc)

    def on_tool_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        try:
            self._close(run_id, "error", {"error": error})
        except Exception as exc:
            self._guard("on_tool_error", exc)

    def on_retriever_start(
        self,
        serialized: dict[str, Any] | None,
        query: str,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        name: str | None = None,
        **kwargs: Any,
    ) -> None:
        try:
            self._open(
                "retriever",
                run_id,
                parent_run_id,
                _run_name(name, serialized),
                tags,
                metadata,
                {"input": {"query": query}},
            )
        except Exception as exc:
            self._guard("on_retriever_start", exc)

    def on_retriever_end(self, documents: Any, *, run_id: UUID, **kwargs: Any) -> None:
        try:
            self._close(run_id, "end", {"output": documents})
        except Exception as exc:
            self._guard("on_retriever_end", exc)

    def on_retriever_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        try:
            self._close(run_id, "error", {"error": error})
        except Exception as exc:
            self._guard("on_retriever_error", exc)

    # -- custom events ------------------------------------------------------------------

    def on_custom_event(
        self,
        name: str,
        data: Any,
        *,
        run_id: UUID,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        try:
            info = self._runs.get(run_id)
            parent_ids = (*info.parent_ids, str(run_id)) if info is not None else ()
            self._session.on_event(
                TraceEvent(
                    trace_id=self._trace_id,
                    kind="custom",
                    event="on_custom_event",
                    run_id=str(run_id),
                    parent_ids=parent_ids,
                    name=name,
                    run_type="custom",
                    tags=tuple(scrub_text(tag) for tag in tags or ()),
                    metadata=scrub(dict(metadata or {})),
                    data={"data": data},
                    ts_ns=now_ns(),
                )
            )
        except Exception as exc:
            self._guard("on_custom_event", exc)

    def __deepcopy__(self, memo: dict[int, Any] | None = None) -> Recorder:
        return self

    def __copy__(self) -> Recorder:
        return self


class StreamingRecorder(Recorder):
    """A `Recorder` that also taps stream output, so chain steps report their chunks."""

    def claim_tap(self, run_id: str) -> Callable[[str, int, Any], None]:
        """Let the caller count `run_id`'s chunks itself (the wrapper's own iterator does,
        for the root): no tap generator, one layer less per chunk. Returns the sink."""
        self._tapped.add(UUID(run_id))
        return self._session.chunk_sink(run_id)

    def tap_output_aiter(self, run_id: UUID, output: AsyncIterator[T]) -> AsyncIterator[T]:
        if run_id in self._tapped:
            return output
        self._tapped.add(run_id)
        return self._tap_async(str(run_id), output)

    def tap_output_iter(self, run_id: UUID, output: Iterator[T]) -> Iterator[T]:
        if run_id in self._tapped:
            return output
        self._tapped.add(run_id)
        return self._tap_sync(str(run_id), output)

    # The per-chunk hot path: the clock inlined, the sink chosen once per run.

    async def _tap_async(self, run_id: str, output: AsyncIterator[T]) -> AsyncIterator[T]:
        sink, clock = self._session.chunk_sink(run_id), time.perf_counter_ns
        async for chunk in output:
            sink(run_id, EPOCH_OFFSET_NS + clock(), chunk)
            yield chunk

    def _tap_sync(self, run_id: str, output: Iterator[T]) -> Iterator[T]:
        sink, clock = self._session.chunk_sink(run_id), time.perf_counter_ns
        for chunk in output:
            sink(run_id, EPOCH_OFFSET_NS + clock(), chunk)
            yield chunk
