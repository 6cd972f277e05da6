"""The callback producer: LangChain callbacks in, v2-shaped events out, stamped as they happen.

`astream_events` reads its events from an unbounded queue, so a slow consumer sees
them late, and it drops the errors of everything but tools. This handler rides on the
same callback machinery, inside the call itself: each event is stamped at the moment
LangChain reports it, real exceptions arrive through the `on_*_error` callbacks, and
no queue or extra task stands between the chain and its caller. It reports what each
callback says through the session's one door (`run_events.TraceSink.feed`) and keeps no
run table: who a run is (name, tags, ancestry) is the session's to know.

`TappingRecorder` also taps chain steps' stream output, as LangChain's own v2 handler
does. Being a streaming handler makes a chat model that is *invoked* under it stream,
so the wrapper attaches it only where that cannot change behaviour (see `wrapper.py`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from typing import Any, Literal, TypeVar
from uuid import UUID

from langchain_core.callbacks import AsyncCallbackHandler, BaseCallbackHandler
from langchain_core.messages import AIMessageChunk
from langchain_core.outputs import ChatGenerationChunk, GenerationChunk, LLMResult

from lcel_trace import otel_context
from lcel_trace._log import report_internal_error
from lcel_trace.clock import now_ns
from lcel_trace.normalise import run_type_of
from lcel_trace.run_events import RunCustom, RunEnd, RunStart, TraceSink
from lcel_trace.span import RunType

__all__ = [
    "AsyncRecorder",
    "AsyncTappingRecorder",
    "Recorder",
    "TappingRecorder",
    "recorder_of",
]

T = TypeVar("T")


_TokenTarget = tuple[bool, Callable[[Any], None]] | None
"""Per model run: whether it is a chat model, and its chunk sink (None when its tokens
are counted elsewhere)."""
_UNSEEN: Any = object()


def _run_name(name: str | None, serialized: Mapping[str, Any] | None) -> str:
    if name is not None:
        return name
    if serialized:
        if "name" in serialized:
            return str(serialized["name"])
        if serialized.get("id"):
            return str(serialized["id"][-1])
    return "Unnamed"


def _llm_output(response: LLMResult, is_chat: bool) -> Any:
    """A model's end output as v2 reports it: the message for chat models, the
    generations for completion models."""
    if is_chat:
        for generations in response.generations:
            for generation in generations:
                message = getattr(generation, "message", None)
                if message is not None:
                    return message
        return None
    return {
        "generations": [
            [
                {"text": g.text, "generation_info": g.generation_info, "type": g.type}
                for g in generations
            ]
            for generations in response.generations
        ],
        "llm_output": response.llm_output,
    }


_OWN_CONTEXTLESS_FAMILIES = frozenset({"chat_model", "llm", "retriever"})
"""Runs whose body LangChain runs in the caller's context, not a copy naming the run:
the recorder marks them current itself (see `otel_context`)."""


class Recorder(BaseCallbackHandler):
    """Turns LangChain callbacks for one trace into stamped run events for its sink.

    Inline (called in the caller's task, no thread hop). LangChain's
    `AsyncCallbackManager.on_llm_start` calls only the inline handlers when any is
    attached, so beside the recorder a non-inline handler misses that one callback for
    completion-style LLMs under async calls, exactly as it does beside LangSmith's
    tracer; chat models and every other callback are unaffected.
    """

    run_inline = True
    raise_error = False

    def __init__(
        self,
        sink: TraceSink,
        name_run_types: Mapping[str, RunType],
        *,
        root_counted_elsewhere: bool = False,
    ) -> None:
        self.sink = sink
        self._sets_otel_context = sink.sets_otel_context
        self.marks_context = True  # called inline, in each run's own context
        self._name_run_types = name_run_types
        self._root_counted_elsewhere = root_counted_elsewhere
        self._tapped: set[str] = set()
        self._token_targets: dict[UUID, _TokenTarget] = {}
        self._chat_models: set[UUID] = set()  # running chat models: how to shape a token
        # The text of each running run's id, made once (`UUID.__str__` is costly, and an
        # id is needed at its run's start, its children's starts and its end), found by
        # the id object's identity (hashing a UUID is costly too).
        self._keys: dict[int, tuple[UUID, str]] = {}

    @property
    def trace_id(self) -> str:
        return self.sink.trace_id

    # -- the two shapes of event ----------------------------------------------------

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
        sink = self.sink
        key = str(run_id)
        self._keys[id(run_id)] = (run_id, key)
        parent_key = self._key(parent_run_id) if parent_run_id is not None else None
        sink.feed(  # the session completes the ancestry, scrubs name, tags and metadata
            RunStart(
                key,
                family,
                name,
                run_type_of(family, name, self._name_run_types),
                data,
                now_ns(),
                parent_key,
                tags,
                metadata,
            )
        )
        if self._sets_otel_context:
            leaf = family in _OWN_CONTEXTLESS_FAMILIES
            otel_context.run_started(
                run_id, parent_run_id, sink.trace_id, leaf=leaf, mark=leaf and self.marks_context
            )

    def _close(self, run_id: UUID, kind: Literal["end", "error"], data: dict[str, Any]) -> None:
        if self._sets_otel_context:
            otel_context.run_ended(run_id)
        known = self._keys.pop(id(run_id), None)
        key = known[1] if known is not None and known[0] is run_id else str(run_id)
        self.sink.feed(RunEnd(key, data, now_ns(), kind))

    def _key(self, run_id: UUID) -> str:
        known = self._keys.get(id(run_id))
        return known[1] if known is not None and known[0] is run_id else str(run_id)

    # -- starts ---------------------------------------------------------------------

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
            # Streamed steps start with the placeholder {"input": ""}: v2 leaves it out.
            data: dict[str, Any] = {} if inputs == {"input": ""} else {"input": inputs}
            family = run_type or "chain"
            self._open(
                family, run_id, parent_run_id, _run_name(name, serialized), tags, metadata, data
            )
        except Exception as exc:  # a recorder bug must never reach the chain
            report_internal_error("recorder.on_chain_start", exc)

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
            data = self._model_start_data({"messages": messages}, kwargs)
            name = _run_name(name, serialized)
            self._chat_models.add(run_id)
            self._open("chat_model", run_id, parent_run_id, name, tags, metadata, data)
        except Exception as exc:  # a recorder bug must never reach the chain
            report_internal_error("recorder.on_chat_model_start", exc)

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
            data = self._model_start_data({"prompts": prompts}, kwargs)
            self._open(
                "llm", run_id, parent_run_id, _run_name(name, serialized), tags, metadata, data
            )
        except Exception as exc:  # a recorder bug must never reach the chain
            report_internal_error("recorder.on_llm_start", exc)

    @staticmethod
    def _model_start_data(inputs: dict[str, Any], kwargs: dict[str, Any]) -> dict[str, Any]:
        data: dict[str, Any] = {"input": inputs}
        if kwargs.get("invocation_params"):
            data["invocation_params"] = kwargs["invocation_params"]
        return data

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
        except Exception as exc:  # a recorder bug must never reach the chain
            report_internal_error("recorder.on_tool_start", exc)

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
            data = {"input": {"query": query}}
            name = _run_name(name, serialized)
            self._open("retriever", run_id, parent_run_id, name, tags, metadata, data)
        except Exception as exc:  # a recorder bug must never reach the chain
            report_internal_error("recorder.on_retriever_start", exc)

    # -- ends and errors -------------------------------------------------------------

    def on_chain_end(self, outputs: Any, *, run_id: UUID, inputs: Any = None, **kw: Any) -> None:
        try:
            data: dict[str, Any] = {"output": outputs}
            if inputs is not None:
                data["input"] = inputs
            self._close(run_id, "end", data)
        except Exception as exc:  # a recorder bug must never reach the chain
            report_internal_error("recorder.on_chain_end", exc)

    def on_chain_error(
        self, error: BaseException, *, run_id: UUID, inputs: Any = None, **kw: Any
    ) -> None:
        try:
            data: dict[str, Any] = {"error": error}
            if inputs is not None:
                data["input"] = inputs
            self._close(run_id, "error", data)
        except Exception as exc:  # a recorder bug must never reach the chain
            report_internal_error("recorder.on_chain_error", exc)

    def on_llm_end(self, response: LLMResult, *, run_id: UUID, **kwargs: Any) -> None:
        try:
            is_chat = run_id in self._chat_models
            self._forget_model(run_id)
            self._close(run_id, "end", {"output": _llm_output(response, is_chat)})
        except Exception as exc:  # a recorder bug must never reach the chain
            report_internal_error("recorder.on_llm_end", exc)

    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        try:
            self._forget_model(run_id)
            self._close(run_id, "error", {"error": error})
        except Exception as exc:  # a recorder bug must never reach the chain
            report_internal_error("recorder.on_llm_error", exc)

    def on_tool_end(self, output: Any, *, run_id: UUID, **kwargs: Any) -> None:
        try:
            self._close(run_id, "end", {"output": output})
        except Exception as exc:  # a recorder bug must never reach the chain
            report_internal_error("recorder.on_tool_end", exc)

    def on_tool_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        try:
            self._close(run_id, "error", {"error": error})
        except Exception as exc:  # a recorder bug must never reach the chain
            report_internal_error("recorder.on_tool_error", exc)

    def on_retriever_end(self, documents: Any, *, run_id: UUID, **kwargs: Any) -> None:
        try:
            self._close(run_id, "end", {"output": documents})
        except Exception as exc:  # a recorder bug must never reach the chain
            report_internal_error("recorder.on_retriever_end", exc)

    def on_retriever_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        try:
            self._close(run_id, "error", {"error": error})
        except Exception as exc:  # a recorder bug must never reach the chain
            report_internal_error("recorder.on_retriever_error", exc)

    # -- stream chunks and custom events ------------------------------------------------

    def on_llm_new_token(
        self,
        token: Any,
        *,
        chunk: GenerationChunk | ChatGenerationChunk | None = None,
        run_id: UUID,
        **kwargs: Any,
    ) -> None:
        try:
            # The per-token hot path: who the run is and where its chunks go, looked up once.
            target = self._token_targets.get(run_id, _UNSEEN)
            if target is _UNSEEN:
                target = self._token_targets[run_id] = self._token_target(run_id)
            if target is None:
                return
            is_chat, sink = target
            if isinstance(chunk, ChatGenerationChunk):
                value: Any = chunk.message
            elif chunk is not None:
                value = chunk
            elif is_chat:
                value = AIMessageChunk(content=token)
            else:
                value = GenerationChunk(text=token if isinstance(token, str) else "")
            sink(value)
        except Exception as exc:  # a recorder bug must never reach the chain
            report_internal_error("recorder.on_llm_new_token", exc)

    def _token_target(self, run_id: UUID) -> _TokenTarget:
        key = self._key(run_id)
        if key in self._tapped or (self._root_counted_elsewhere and key == self.sink.root_run_id):
            return None
        return run_id in self._chat_models, self.sink.chunk_sink(key)

    def _forget_model(self, run_id: UUID) -> None:
        self._chat_models.discard(run_id)
        self._token_targets.pop(run_id, None)

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
            self.sink.feed(RunCustom(self._key(run_id), name, data, now_ns(), tags, metadata))
        except Exception as exc:  # a recorder bug must never reach the chain
            report_internal_error("recorder.on_custom_event", exc)

    # LangChain copies configs (and their handler lists) freely: stay one object.
    def __deepcopy__(self, memo: dict[int, Any] | None = None) -> Recorder:
        return self

    def __copy__(self) -> Recorder:
        return self


class TappingRecorder(Recorder):
    """A `Recorder` that also taps chain steps' stream output, so they report chunks.

    LangChain lets only the first streaming handler on a run tap it; when another
    streaming handler was attached before us (someone's `astream_events` around the
    traced call), the recorder goes first and hands each stream on to it, so both see
    every chunk. The root's chunks are counted by the traced iterator itself.
    """

    def __init__(
        self,
        sink: TraceSink,
        name_run_types: Mapping[str, RunType],
        *,
        forward_to: Any = None,
        root_counted_elsewhere: bool = True,
    ) -> None:
        super().__init__(sink, name_run_types, root_counted_elsewhere=root_counted_elsewhere)
        self._forward_to = forward_to

    def tap_output_aiter(self, run_id: UUID, output: AsyncIterator[T]) -> AsyncIterator[T]:
        if self._forward_to is not None:
            output = self._forward_to.tap_output_aiter(run_id, output)
        key = self._claim(run_id)
        return output if key is None else self._tap_async(key, output)

    def tap_output_iter(self, run_id: UUID, output: Iterator[T]) -> Iterator[T]:
        if self._forward_to is not None:
            output = self._forward_to.tap_output_iter(run_id, output)
        key = self._claim(run_id)
        return output if key is None else self._tap_sync(key, output)

    def _claim(self, run_id: UUID) -> str | None:
        """The run id to count chunks for, or None when someone else counts them."""
        key = str(run_id)
        if key in self._tapped:
            return None
        if self._root_counted_elsewhere and key == self.sink.root_run_id:
            return None
        self._tapped.add(key)
        return key

    async def _tap_async(self, run_id: str, output: AsyncIterator[T]) -> AsyncIterator[T]:
        sink = self.sink.chunk_sink(run_id)
        async for chunk in output:
            sink(chunk)
            yield chunk

    def _tap_sync(self, run_id: str, output: Iterator[T]) -> Iterator[T]:
        sink = self.sink.chunk_sink(run_id)
        for chunk in output:
            sink(chunk)
            yield chunk


_CALLBACKS = (
    "on_chain_start",
    "on_chat_model_start",
    "on_llm_start",
    "on_tool_start",
    "on_retriever_start",
    "on_chain_end",
    "on_chain_error",
    "on_llm_end",
    "on_llm_error",
    "on_tool_end",
    "on_tool_error",
    "on_retriever_end",
    "on_retriever_error",
    "on_llm_new_token",
    "on_custom_event",
)


class AsyncRecorder(AsyncCallbackHandler):
    """A recorder for async calls whose other handlers are all non-inline.

    LangChain's `AsyncCallbackManager.on_llm_start` calls only inline handlers when any
    is attached, so an inline recorder would hide that callback from the others. This
    one is not inline; being async, LangChain awaits it in the caller's task (no thread
    hop), as it does LangChain's own `astream_events` handler.
    """

    run_inline = False
    raise_error = False

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder
        recorder.marks_context = False  # LangChain calls us in a task of our own

    @property
    def trace_id(self) -> str:
        return self.recorder.trace_id

    def __deepcopy__(self, memo: dict[int, Any] | None = None) -> AsyncRecorder:
        return self

    def __copy__(self) -> AsyncRecorder:
        return self


def _forwarding(name: str) -> Callable[..., Any]:
    async def forward(self: AsyncRecorder, *args: Any, **kwargs: Any) -> None:
        getattr(self.recorder, name)(*args, **kwargs)

    forward.__name__ = name
    return forward


for _name in _CALLBACKS:
    setattr(AsyncRecorder, _name, _forwarding(_name))


class AsyncTappingRecorder(AsyncRecorder):
    """An `AsyncRecorder` around a `TappingRecorder`: a streaming handler too."""

    recorder: TappingRecorder

    def __init__(self, recorder: TappingRecorder) -> None:
        super().__init__(recorder)

    def tap_output_aiter(self, run_id: UUID, output: AsyncIterator[T]) -> AsyncIterator[T]:
        return self.recorder.tap_output_aiter(run_id, output)

    def tap_output_iter(self, run_id: UUID, output: Iterator[T]) -> Iterator[T]:
        return self.recorder.tap_output_iter(run_id, output)


def recorder_of(handler: object) -> Recorder | None:
    """The lcel-trace recorder `handler` is (or wraps), if any."""
    if isinstance(handler, Recorder):
        return handler
    if isinstance(handler, AsyncRecorder):
        return handler.recorder
    return None
