"""Cassettes: a recorded trace re-runs a chain or agent offline, deterministically.

    from lcel_trace.cassette import cassette

    with cassette("tests/cassettes/agent.jsonl"):       # records the first time,
        agent.invoke({"messages": [("user", "hi")]})  # replays every time after

Inside a cassette every chat model and completion LLM call answers from the model spans
of a trace file, keyed on a canonical form of the request (see
`lcel_trace._cassette_keys`). The answer is given where the provider's own code would
produce it (see `lcel_trace._cassette_patch`), so LangChain's callbacks, ids, streaming
and post-processing all run as they do live: `invoke` returns the recorded message,
`stream` yields the recorded chunks (at the recorded pace times `speed`, 0 = at once), a
recorded error is raised again, and the replayed run is traced like any other. Any
`lcel-trace/1` file serves: one a `JsonlExporter` wrote in production, or one this module
recorded (one trace per model call, chunks kept: `record_chunks="all"`).

Modes, as VCR.py users know them: "once" (record when the file does not exist, else
replay only), "replay" (never call a model; a miss raises `CassetteMiss`), "record"
(always call and append), "new" (replay what matches, record the rest). With
`replay=("models", "tools", "retrievers")` tool and retriever calls are recorded and
replayed too (keyed on name and input), so an agent's side effects do not run.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import importlib
import inspect
import json
import os
import sys
import threading
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from contextvars import Token
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self, TypeVar, cast
from uuid import UUID, uuid4

from langchain_core.documents import Document
from langchain_core.language_models import BaseChatModel, BaseLLM
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    BaseMessageChunk,
    ToolMessage,
)
from langchain_core.messages.tool import tool_call_chunk
from langchain_core.messages.utils import message_chunk_to_message
from langchain_core.outputs import (
    ChatGeneration,
    ChatGenerationChunk,
    ChatResult,
    Generation,
    GenerationChunk,
    LLMResult,
)
from langchain_core.retrievers import BaseRetriever
from langchain_core.tools import BaseTool
from langchain_core.utils.utils import LC_ID_PREFIX

from lcel_trace import _cassette_patch
from lcel_trace._cassette_file import (
    CallKind,
    Recording,
    UnusableCassetteError,
    read_recordings,
)
from lcel_trace._cassette_keys import (
    VOLATILE_PARAMS,
    differences,
    live_chat_request,
    live_llm_request,
    live_retriever_request,
    live_tool_request,
    request_key,
)
from lcel_trace._cassette_patch import StrayCallWarning
from lcel_trace.clock import now_ns
from lcel_trace.context import TraceOptions, new_trace_id
from lcel_trace.export import TraceExporter
from lcel_trace.recorder import Recorder
from lcel_trace.redact import Redact, Redactor
from lcel_trace.replay import RecordedError, _Pacer
from lcel_trace.run_events import RunChunk
from lcel_trace.session import TraceSession
from lcel_trace.span import SpanError

__all__ = [
    "MODES",
    "VOLATILE_PARAMS",
    "Cassette",
    "CassetteMiss",
    "Mode",
    "StrayCallWarning",
    "UnusableCassetteError",
    "cassette",
]

Mode = Literal["once", "replay", "record", "new"]
MODES: tuple[Mode, ...] = ("once", "replay", "record", "new")
_REPLAYABLE: dict[str, tuple[CallKind, ...]] = {
    "models": ("chat_model", "llm"),
    "tools": ("tool",),
    "retrievers": ("retriever",),
}
_INJECTED = frozenset({"run_manager", "callbacks", "config"})
_F = TypeVar("_F", bound=Callable[..., Any])
_SHOWN_CHARS = 80
_END: Any = object()


class CassetteMiss(Exception):  # noqa: N818 - the name DESIGN §2 fixes
    """A call with no recording left to answer it (mode "replay", or "once" with an
    existing file). The message names the nearest recorded request, the first
    difference, and how to re-record."""

    def __init__(
        self,
        message: str,
        *,
        path: str,
        key: str,
        request: Mapping[str, Any],
        nearest: Recording | None,
        diffs: Sequence[tuple[str, Any, Any]],
    ) -> None:
        super().__init__(message)
        self.path = path
        self.key = key
        self.request = request
        self.nearest = nearest
        self.differences = list(diffs)


def cassette(
    path: str | os.PathLike[str],
    mode: Mode = "once",
    *,
    replay: Sequence[str] = ("models",),
    speed: float = 0.0,
    redact: Redact | None = None,
) -> Cassette:
    """A context manager (sync and async) and decorator in which model calls answer
    from the trace file at `path` (see the module docstring for `mode`).

    `replay` names what answers from the file: "models" (chat models and completion
    LLMs), "tools", "retrievers"; the rest runs live. `speed` scales recorded timing
    (1.0 = as recorded, 0 = no waiting); `redact` is the `redact=` hook the recording
    was made with, applied to live requests before they are compared (and to what
    record mode writes)."""
    return Cassette(path, mode=mode, replay=replay, speed=speed, redact=redact)


class Cassette:
    """One cassette file and how to use it; see `cassette()`. Each `with` (or each call
    of a decorated function) reads the file afresh and replays from its start."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        mode: Mode = "once",
        replay: Sequence[str] = ("models",),
        speed: float = 0.0,
        redact: Redact | None = None,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}; got {mode!r}")
        if isinstance(replay, str) or not replay or any(k not in _REPLAYABLE for k in replay):
            raise ValueError(
                f"replay={replay!r}: a tuple of {', '.join(map(repr, _REPLAYABLE))}, "
                "e.g. ('models', 'tools', 'retrievers')"
            )
        if not speed >= 0:
            raise ValueError(f"speed must be >= 0 (0 = as fast as possible), got {speed}")
        self.path = Path(path)
        self.mode: Mode = mode
        self.replay = tuple(replay)
        self._kinds = frozenset(kind for name in replay for kind in _REPLAYABLE[name])
        self.speed = float(speed)
        self.redact = redact
        self._redactor = Redactor(redact)
        self._tokens: list[Token[_cassette_patch.Interceptor | None]] = []
        self._lock = threading.Lock()
        self._replaying = False
        self._recording = False
        self._queues: dict[str, deque[Recording]] = {}
        self._recordings: list[Recording] = []
        self._writer: _Writer | None = None
        self.replayed = 0
        """How many calls were answered from the file (since the last `with`)."""
        self.recorded = 0
        """How many calls were made live and recorded (since the last `with`)."""

    def __repr__(self) -> str:
        return f"cassette({str(self.path)!r}, mode={self.mode!r})"

    @property
    def unplayed(self) -> list[Recording]:
        """The recordings not replayed (yet) in this `with`: calls the code no longer
        makes, when the block is done."""
        with self._lock:
            left = [recording for queue in self._queues.values() for recording in queue]
        return sorted(left, key=lambda r: r.start_ns)

    # -- entering and leaving -----------------------------------------------------------

    def __enter__(self) -> Self:
        self._open()
        _cassette_patch.install()
        self._tokens.append(_cassette_patch.active_interceptor().set(self))
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        token = self._tokens.pop()
        try:
            _cassette_patch.active_interceptor().reset(token)
        except ValueError:  # left in another context than it was entered in
            _cassette_patch.active_interceptor().set(None)
        _cassette_patch.uninstall()
        self._close()

    async def __aenter__(self) -> Self:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)

    def __call__(self, function: _F) -> _F:
        """Use as a decorator: each call of `function` runs inside a fresh cassette."""

        def fresh() -> Cassette:
            return Cassette(
                self.path, mode=self.mode, replay=self.replay, speed=self.speed, redact=self.redact
            )

        if inspect.iscoroutinefunction(function):

            @functools.wraps(function)
            async def run_async(*args: Any, **kwargs: Any) -> Any:
                async with fresh():
                    return await function(*args, **kwargs)

            return cast("_F", run_async)

        @functools.wraps(function)
        def run(*args: Any, **kwargs: Any) -> Any:
            with fresh():
                return function(*args, **kwargs)

        return cast("_F", run)

    def _open(self) -> None:
        exists = self.path.exists()
        if self.mode == "replay" and not exists:
            raise FileNotFoundError(
                f"cassette {self.path} does not exist and mode is 'replay': record it first "
                "with mode='once' (pytest: --lcel-record-mode=once)"
            )
        self._replaying = self.mode in ("replay", "new") or (self.mode == "once" and exists)
        self._recording = self.mode in ("record", "new") or (self.mode == "once" and not exists)
        if self._recording and self.path.suffix == ".gz":
            raise ValueError(
                f"cassette {self.path}: a .gz cassette can be replayed, not recorded to; "
                "record to a .jsonl file (mode='replay' reads this one)"
            )
        recordings = (
            read_recordings(self.path, kinds=self._kinds) if self._replaying and exists else []
        )
        with self._lock:
            self._recordings = recordings
            self._queues = {}
            for recording in recordings:
                self._queues.setdefault(recording.key, deque()).append(recording)
            self.replayed = self.recorded = 0

    def _close(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.close()

    # -- one call ---------------------------------------------------------------------------

    def call(
        self,
        target: Any,
        method: str,
        original: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        """Answer one provider-method call (see `_cassette_patch.Interceptor`)."""
        if isinstance(target, (BaseTool, BaseRetriever)):
            kind: CallKind = "tool" if isinstance(target, BaseTool) else "retriever"
            if kind not in self._kinds:
                return original(*args, **kwargs)
            side = _SideCall(self, target, kind, method, args, kwargs)
            return self._answer(side, side.request, original, args, kwargs)
        model_kind: CallKind = "chat_model" if isinstance(target, BaseChatModel) else "llm"
        if model_kind not in self._kinds:
            return original(*args, **kwargs)
        first, stop, run_manager, rest = _split(args, kwargs)
        call = _Call(self, target, method, first, stop, run_manager, rest)
        if call.kind == "llm" and method in ("_generate", "_agenerate"):
            return call.llm_batch(original, args, kwargs)
        return self._answer(call, call.requests[0], original, args, kwargs)

    def _answer(
        self,
        call: _Call | _SideCall,
        request: Mapping[str, Any],
        original: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        recording = self._take(call.kind, request) if self._replaying else None
        if recording is not None:
            return call.replay(recording)
        if not self._recording:
            raise self._miss(call.kind, request, call.name)
        return call.record(original, args, kwargs)

    def _take(self, kind: CallKind, request: Mapping[str, Any]) -> Recording | None:
        key = request_key(request)
        with self._lock:
            queue = self._queues.get(key)
            if queue:
                self.replayed += 1
                return queue.popleft()
        return None

    def _give_back(self, recordings: list[Recording]) -> None:
        """Put taken recordings back, first in line again (a batch that runs live)."""
        with self._lock:
            for recording in reversed(recordings):
                self._queues.setdefault(recording.key, deque()).appendleft(recording)
                self.replayed -= 1

    def _writer_for(self, calls: int = 1) -> _Writer:
        with self._lock:
            if self._writer is None:
                self._writer = _Writer(self.path, self._redactor, self.redact)
            self.recorded += calls
            return self._writer

    def _miss(self, kind: CallKind, request: Mapping[str, Any], name: str) -> CassetteMiss:
        key = request_key(request)
        model_name = (request.get("model") or {}).get("name")
        label = f"{name} {model_name!r}" if model_name else name
        if kind in ("tool", "retriever"):
            label = f"{kind} {name!r}"
        same = [r for r in self._recordings if r.key == key]
        lines = [f"no recording left for this {label} request (key {key}) in {self.path}"]
        nearest: Recording | None = None
        diffs: list[tuple[str, Any, Any]] = []
        if same:
            lines.append(
                f"  it was recorded {len(same)} time(s) and every one was already replayed: "
                "the code now asks it more often than when it was recorded"
            )
            nearest = same[-1]
        else:
            candidates = [r for r in self._recordings if r.kind == kind] or self._recordings
            if candidates:
                nearest = min(candidates, key=lambda r: len(differences(r.request, request)))
                diffs = differences(nearest.request, request)
                position = self._recordings.index(nearest) + 1
                lines.append(
                    f"  nearest recorded: key {nearest.key} ({nearest.label}, call {position} "
                    f"of {len(self._recordings)}, trace {nearest.trace_id})"
                )
                if diffs:
                    path, before, after = diffs[0]
                    more = f" (and {len(diffs) - 1} more)" if len(diffs) > 1 else ""
                    lines.append(
                        f"  first difference: {path}: recorded {_shown(before)} / now "
                        f"{_shown(after)}{more}"
                    )
            else:
                lines.append(f"  the file holds no recorded {kind.replace('_', ' ')} calls")
        lines.append(
            "  to re-record: mode='new' records what changed and keeps the rest "
            "(pytest: --lcel-record-mode=new); or delete the file and run with mode='once'"
        )
        return CassetteMiss(
            "\n".join(lines),
            path=str(self.path),
            key=key,
            request=request,
            nearest=nearest,
            diffs=diffs,
        )


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _SHOWN_CHARS else text[: _SHOWN_CHARS - 1] + "…"


def _split(
    args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[Any, list[str] | None, Any, dict[str, Any]]:
    """A provider method's `(messages_or_prompt, stop=None, run_manager=None, **kwargs)`."""
    rest = dict(kwargs)
    positional = list(args)
    name = next((n for n in ("messages", "prompts", "prompt") if n in rest), "messages")
    first = positional.pop(0) if positional else rest.pop(name, None)
    stop = positional.pop(0) if positional else rest.pop("stop", None)
    run_manager = positional.pop(0) if positional else rest.pop("run_manager", None)
    return first, stop, run_manager, rest


# -- the calls ---------------------------------------------------------------------------


class _Call:
    """One intercepted provider call: its canonical request(s), replayed or recorded."""

    def __init__(
        self,
        owner: Cassette,
        model: BaseChatModel | BaseLLM,
        method: str,
        first: Any,
        stop: list[str] | None,
        run_manager: Any,
        rest: dict[str, Any],
    ) -> None:
        self.owner = owner
        self.model = model
        self.method = method
        self.is_async = method in ("_agenerate", "_astream")
        self.streams = method in ("_stream", "_astream")
        self.kind: CallKind = "chat_model" if isinstance(model, BaseChatModel) else "llm"
        self.name = type(model).__name__
        self.run_id: UUID = getattr(run_manager, "run_id", None) or uuid4()
        self.params = _invocation_params(model, stop, rest)
        self.metadata = _ls_params(model, stop, rest)
        redactor = owner._redactor
        if self.kind == "chat_model":
            self.inputs: list[Any] = [list(first or ())]
            self.requests = [
                live_chat_request(self.inputs[0], self.params, self.metadata, self.name, redactor)
            ]
        else:
            self.inputs = list(first) if isinstance(first, list) else [first]
            self.requests = [
                live_llm_request(p, self.params, self.metadata, self.name, redactor)
                for p in self.inputs
            ]

    # -- replay -------------------------------------------------------------------------

    def replay(self, recording: Recording) -> Any:
        pacer = _Pacer(self.owner.speed)
        if self.streams:
            chunks = _replay_chunks(recording, self.kind)
            if self.is_async:
                return _async_chunks(chunks, recording, pacer)
            return _sync_chunks(chunks, recording, pacer)
        answer = _chat_result if self.kind == "chat_model" else _llm_result
        if self.is_async:
            return _async_answer(lambda: answer([recording]), recording, pacer)
        pacer.wait_sync(recording.start_ns)
        pacer.wait_sync(recording.end_ns)
        return answer([recording])

    def llm_batch(
        self, original: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        """A completion `_generate` over several prompts: all replayed, or all live."""
        owner = self.owner
        found: list[Recording] = []
        if owner._replaying:
            for request in self.requests:
                recording = owner._take("llm", request)
                if recording is None:
                    owner._give_back(found)
                    if not owner._recording:
                        raise owner._miss("llm", request, self.name)
                    break
                found.append(recording)
        if owner._replaying and len(found) == len(self.requests):
            pacer = _Pacer(owner.speed)
            if self.is_async:
                return _async_answer(lambda: _llm_result(found), found[0], pacer)
            return _llm_result(found)
        return self.record(original, args, kwargs)

    # -- record ---------------------------------------------------------------------------

    def record(
        self, original: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        writer = self.owner._writer_for(len(self.inputs))
        runs = [writer.start(self, value) for value in self.inputs]
        if self.streams:
            with _cassette_patch.live_call(self.model):
                source = original(*args, **kwargs)
            if self.is_async:
                return _record_async_stream(source, runs[0], self.kind)
            return _record_sync_stream(source, runs[0], self.kind)
        if self.is_async:
            return _record_async_answer(original(*args, **kwargs), runs, self.kind)
        try:
            with _cassette_patch.live_call(self.model):
                result = original(*args, **kwargs)
        except BaseException as exc:
            for run in runs:
                run.fail(exc)
            raise
        _end_runs(runs, result, self.kind)
        return result


class _SideCall:
    """One intercepted tool or retriever call (`replay=` "tools", "retrievers"): keyed on
    the name and the input a trace records, answered with the recorded output."""

    def __init__(
        self,
        owner: Cassette,
        target: BaseTool | BaseRetriever,
        kind: CallKind,
        method: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> None:
        self.owner = owner
        self.target = target
        self.kind = kind
        self.is_async = method.startswith("_a")
        self.run_id = uuid4()
        self.tool_call_id: str | None = None
        if isinstance(target, BaseTool):
            self.name = target.name
            self.recorded_input = self._tool_input(target, args, kwargs)
            self.request = live_tool_request(self.name, self.recorded_input, owner._redactor)
        else:
            self.name = target.get_name()
            self.recorded_input = args[0] if args else kwargs.get("query")
            self.request = live_retriever_request(self.name, self.recorded_input, owner._redactor)

    def _tool_input(self, tool: BaseTool, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """The input as `BaseTool.run` reports it to callbacks (injected arguments out)."""
        given = _cassette_patch.tool_call_input()
        if given is not None:
            raw, self.tool_call_id = given
        else:
            raw = {k: v for k, v in kwargs.items() if k not in _INJECTED}
            if not raw:
                raw = args[0] if len(args) == 1 else list(args)
        if isinstance(raw, dict):
            try:
                return tool._filter_injected_args(raw)
            except Exception:
                return raw
        return raw

    def replay(self, recording: Recording) -> Any:
        pacer = _Pacer(self.owner.speed)
        value = self._answer
        if self.is_async:
            return _async_answer(lambda: value(recording), recording, pacer)
        pacer.wait_sync(recording.start_ns)
        pacer.wait_sync(recording.end_ns)
        return value(recording)

    def _answer(self, recording: Recording) -> Any:
        if recording.error is not None:
            raise rebuilt_error(recording.error)
        output = recording.output
        if self.kind == "retriever":
            return [d.model_copy(deep=True) if isinstance(d, Document) else d for d in output]
        content, artifact = output, None
        if isinstance(output, ToolMessage):
            content, artifact = output.content, output.artifact
        if cast("BaseTool", self.target).response_format == "content_and_artifact":
            return content, artifact
        return content

    def record(
        self, original: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        run = self.owner._writer_for().start_side(self)
        if self.is_async:
            return self._record_async(run, original(*args, **kwargs))
        try:
            with _cassette_patch.live_call(self.target):
                result = original(*args, **kwargs)
        except BaseException as exc:
            run.fail(exc)
            raise
        run.end_output(self._output(result))
        return result

    async def _record_async(self, run: _Run, awaitable: Any) -> Any:
        try:
            with _cassette_patch.live_call(self.target):
                result = await awaitable
        except BaseException as exc:
            run.fail(exc, cancelled=isinstance(exc, asyncio.CancelledError))
            raise
        run.end_output(self._output(result))
        return result

    def _output(self, result: Any) -> Any:
        """What the run reports as its output: a tool's as `BaseTool.run` formats it."""
        if self.kind == "retriever" or not isinstance(self.target, BaseTool):
            return result
        content, artifact = result, None
        if self.target.response_format == "content_and_artifact" and isinstance(result, tuple):
            content, artifact = result
        try:
            from langchain_core.tools.base import _format_output

            return _format_output(content, artifact, self.tool_call_id, self.name, "success")
        except Exception:  # a LangChain without it: the content as it came
            return content


def _invocation_params(
    model: BaseChatModel | BaseLLM, stop: list[str] | None, rest: dict[str, Any]
) -> dict[str, Any]:
    """What LangChain reports as the call's `invocation_params` (as a trace records it)."""
    try:
        if isinstance(model, BaseChatModel):
            return dict(model._get_invocation_params(stop=stop, **rest))
        params = dict(model._dict_for_compat())
        params["stop"] = stop
        return {**params, **rest}
    except Exception:
        return {"stop": stop, **rest}


def _ls_params(
    model: BaseChatModel | BaseLLM, stop: list[str] | None, rest: dict[str, Any]
) -> dict[str, Any]:
    try:
        return dict(model._get_ls_params(stop=stop, **rest))
    except Exception:
        return {}


# -- answers ------------------------------------------------------------------------------


def _fresh_id(message: BaseMessage) -> BaseMessage:
    """A deep copy, recorded id and all (LangChain mutates what a model returns)."""
    return message.model_copy(deep=True)


def _message_of(recording: Recording) -> AIMessage:
    output = recording.output
    if output is None and recording.chunks:
        output = _joined([chunk for _, chunk in recording.chunks])
    if isinstance(output, AIMessageChunk):
        output = message_chunk_to_message(output)
    if not isinstance(output, AIMessage):
        raise UnusableCassetteError(
            f"recorded call {recording.label} (trace {recording.trace_id}) holds no answer "
            f"message (found {type(output).__name__})"
        )
    return cast("AIMessage", _fresh_id(output))


def _joined(chunks: list[Any]) -> Any:
    total = chunks[0]
    for chunk in chunks[1:]:
        total = total + chunk
    return total


def _chat_result(recordings: list[Recording]) -> ChatResult:
    recording = recordings[0]
    if recording.error is not None:
        raise rebuilt_error(recording.error)
    return ChatResult(generations=[ChatGeneration(message=_message_of(recording))])


def _llm_result(recordings: list[Recording]) -> LLMResult:
    generations: list[list[Generation]] = []
    llm_output: dict[str, Any] | None = None
    for recording in recordings:
        if recording.error is not None:
            raise rebuilt_error(recording.error)
        output = recording.output if isinstance(recording.output, Mapping) else {}
        recorded = output.get("generations") or []
        first = recorded[0] if recorded and isinstance(recorded[0], list) else []
        texts = [g for g in first if isinstance(g, Mapping)]
        if not texts and recording.chunks:
            joined = _joined([chunk for _, chunk in recording.chunks])
            texts = [{"text": joined.text, "generation_info": joined.generation_info}]
        generations.append(
            [
                Generation(text=str(g.get("text", "")), generation_info=g.get("generation_info"))
                for g in texts
            ]
        )
        if llm_output is None and isinstance(output.get("llm_output"), dict):
            llm_output = output["llm_output"]
    return LLMResult(generations=generations, llm_output=llm_output)


def _replay_chunks(recording: Recording, kind: CallKind) -> list[tuple[int, Any]]:
    """The chunks to stream: as recorded; one chunk holding the whole answer when the
    call was not streamed when recorded; refused when it streamed but its chunks were
    not kept."""
    if recording.chunks:
        if kind == "chat_model":
            replayed = [
                (ts, ChatGenerationChunk(message=cast("AIMessageChunk", _fresh_id(chunk))))
                for ts, chunk in recording.chunks
                if isinstance(chunk, BaseMessageChunk)
            ]
            return replayed + _closing_chunk(recording)
        return [
            (ts, chunk if isinstance(chunk, GenerationChunk) else GenerationChunk(text=str(chunk)))
            for ts, chunk in recording.chunks
        ]
    if recording.chunk_count:
        raise UnusableCassetteError(
            f"recorded call {recording.label} (trace {recording.trace_id}) streamed "
            f"{recording.chunk_count} chunks but the file does not keep them, so it cannot "
            "be replayed as a stream: record with JsonlExporter(..., record_chunks='all') "
            "(cassette record mode does), or call the model with invoke"
        )
    if recording.error is not None:
        return []
    if kind == "chat_model":
        message = _message_of(recording)
        whole = AIMessageChunk(
            content=message.content,
            additional_kwargs=message.additional_kwargs,
            response_metadata=message.response_metadata,
            usage_metadata=message.usage_metadata,
            id=message.id,
            name=message.name,
            tool_call_chunks=[
                tool_call_chunk(
                    name=call["name"], args=json.dumps(call["args"]), id=call.get("id"), index=i
                )
                for i, call in enumerate(message.tool_calls)
            ],
        )
        return [(recording.end_ns, ChatGenerationChunk(message=whole))]
    generation = _llm_result([recording]).generations[0][0]
    chunk = GenerationChunk(text=generation.text, generation_info=generation.generation_info)
    return [(recording.end_ns, chunk)]


def _closing_chunk(recording: Recording) -> list[tuple[int, Any]]:
    """The empty `chunk_position="last"` chunk LangChain adds after a provider's last
    chunk, with the recorded run's id: record mode keeps the provider's chunks only."""
    ts_ns, last = recording.chunks[-1]
    if recording.error is not None or not isinstance(last, AIMessageChunk):
        return []
    if last.chunk_position or not (isinstance(last.id, str) and last.id.startswith(LC_ID_PREFIX)):
        return []
    content: Any = "" if isinstance(last.content, str) else []
    closing = AIMessageChunk(content=content, chunk_position="last", id=last.id)
    return [(ts_ns, ChatGenerationChunk(message=closing))]


def _sync_chunks(
    chunks: list[tuple[int, Any]], recording: Recording, pacer: _Pacer
) -> Iterator[Any]:
    pacer.wait_sync(recording.start_ns)
    for ts_ns, chunk in chunks:
        pacer.wait_sync(ts_ns)
        yield chunk
    if recording.error is not None:
        raise rebuilt_error(recording.error)


async def _async_chunks(
    chunks: list[tuple[int, Any]], recording: Recording, pacer: _Pacer
) -> AsyncIterator[Any]:
    await pacer.wait(recording.start_ns)
    for ts_ns, chunk in chunks:
        await pacer.wait(ts_ns)
        yield chunk
    if recording.error is not None:
        raise rebuilt_error(recording.error)


async def _async_answer(answer: Callable[[], Any], recording: Recording, pacer: _Pacer) -> Any:
    await pacer.wait(recording.start_ns)
    await pacer.wait(recording.end_ns)
    return answer()


def rebuilt_error(error: SpanError) -> BaseException:
    """The recorded error as its own type when that type is already imported and can be
    made without running its own code (no custom `__new__`; a custom `__init__` is
    skipped); otherwise a `RecordedError` naming it. Nothing is imported by name from
    the file."""
    cls = _exception_class(error.type)
    if cls is not None and _builtin_slot(cls, "__new__"):
        try:
            if _builtin_slot(cls, "__init__"):
                return cls(error.message)
            instance = cls.__new__(cls)
            BaseException.__init__(instance, error.message)
            return instance
        except Exception:
            pass
    return RecordedError(error.type, error.message)


def _builtin_slot(cls: type, name: str) -> bool:
    """Whether `cls` gets `name` from a built-in exception class (runs no Python code)."""
    owner = next(klass for klass in cls.__mro__ if name in klass.__dict__)
    return owner.__module__ == "builtins"


def _exception_class(qualified: str) -> type[Exception] | None:
    parts = qualified.split(".")
    for cut in range(len(parts) - 1, -1, -1):
        module = sys.modules.get(".".join(parts[:cut]) if cut else "builtins")
        if module is None:
            continue
        found: Any = module
        for name in parts[cut:]:
            found = getattr(found, name, None)
        if isinstance(found, type) and issubclass(found, Exception):
            return found
        return None
    return None


# -- recording ------------------------------------------------------------------------------


class _Writer:
    """Writes recorded model calls to the cassette file, one trace per call, through the
    same pipeline as every trace (recorder, session, `JsonlExporter` with every chunk)."""

    def __init__(self, path: Path, redactor: Redactor, redact: Redact | None) -> None:
        # lcel_trace.exporters is the top-level exporters/ folder, mapped at install time
        exporters = importlib.import_module("lcel_trace.exporters")
        path.parent.mkdir(parents=True, exist_ok=True)
        self.exporter: TraceExporter = exporters.JsonlExporter(path, record_chunks="all")
        self.options = TraceOptions.build(exporters=[self.exporter], redact=redact)

    def _session(self, name: str, run_id: UUID) -> TraceSession:
        # A clean context: the user's capture() blocks must not receive our traces.
        return contextvars.Context().run(
            TraceSession,
            self.options,
            trace_id=new_trace_id(),
            root_name=name,
            root_run_id=str(run_id),
        )

    def start(self, call: _Call, value: Any) -> _Run:
        session = self._session(call.name, call.run_id)
        run = _Run(session, Recorder(session, {}), call.run_id, call.model, call.kind)
        if call.kind == "chat_model":
            run.recorder.on_chat_model_start(
                None,
                [value],
                run_id=call.run_id,
                name=call.name,
                metadata=call.metadata,
                invocation_params=call.params,
            )
        else:
            run.recorder.on_llm_start(
                None,
                [value],
                run_id=call.run_id,
                name=call.name,
                metadata=call.metadata,
                invocation_params=call.params,
            )
        return run

    def start_side(self, call: _SideCall) -> _Run:
        session = self._session(call.name, call.run_id)
        run = _Run(session, Recorder(session, {}), call.run_id, call.target, call.kind)
        if call.kind == "tool":
            tool_input = call.recorded_input
            run.recorder.on_tool_start(
                None,
                tool_input if isinstance(tool_input, str) else str(tool_input),
                run_id=call.run_id,
                name=call.name,
                inputs=tool_input if isinstance(tool_input, dict) else None,
                tool_call_id=call.tool_call_id,
            )
        else:
            run.recorder.on_retriever_start(
                None, call.recorded_input, run_id=call.run_id, name=call.name
            )
        return run

    def close(self) -> None:
        self.exporter.force_flush(30.0)
        self.exporter.shutdown()


class _Run:
    """One recorded run while it happens."""

    def __init__(
        self,
        session: TraceSession,
        recorder: Recorder,
        run_id: UUID,
        owner: object,
        kind: CallKind,
    ) -> None:
        self.session = session
        self.recorder = recorder
        self.run_id = run_id
        self.owner = owner
        self.kind = kind
        self.chunks: list[Any] = []

    def chunk(self, ts_ns: int, chunk: Any, kind: CallKind) -> None:
        self.chunks.append(chunk)
        value = chunk.message if isinstance(chunk, ChatGenerationChunk) else chunk
        self.session.feed(RunChunk(str(self.run_id), value, ts_ns))

    def end(self, generations: list[Any], llm_output: dict[str, Any] | None) -> None:
        self.recorder.on_llm_end(
            LLMResult(generations=[generations], llm_output=llm_output), run_id=self.run_id
        )
        self.session.finish()

    def end_stream(self, kind: CallKind) -> None:
        if not self.chunks:
            self.fail(ValueError("No generation chunks were returned"))
            return
        merged = _joined(self.chunks)
        self.end([merged], None)

    def end_output(self, output: Any) -> None:
        if self.kind == "tool":
            self.recorder.on_tool_end(output, run_id=self.run_id)
        else:
            self.recorder.on_retriever_end(output, run_id=self.run_id)
        self.session.finish()

    def fail(self, error: BaseException, *, cancelled: bool = False) -> None:
        if not cancelled:
            if self.kind == "tool":
                self.recorder.on_tool_error(error, run_id=self.run_id)
            elif self.kind == "retriever":
                self.recorder.on_retriever_error(error, run_id=self.run_id)
            else:
                self.recorder.on_llm_error(error, run_id=self.run_id)
        self.session.finish(error, cancelled=cancelled)


def _processed(
    generation: Any, index: int, run_id: UUID, llm_output: dict[str, Any] | None, single: bool
) -> Any:
    """A copy of a provider's generation as LangChain hands it on: response metadata
    merged from generation info (and, for one generation, the call's llm output), the
    run's id given to a message without one (`BaseChatModel._generate_with_cache`)."""
    if isinstance(generation, ChatGeneration):
        metadata = {**(generation.generation_info or {}), **generation.message.response_metadata}
        if single and llm_output is not None:
            metadata = {**llm_output, **metadata}
        update: dict[str, Any] = {"response_metadata": metadata}
        if generation.message.id is None:
            update["id"] = f"{LC_ID_PREFIX}-{run_id}-{index}"
        message = generation.message.model_copy(update=update)
        return ChatGeneration(message=message, generation_info=generation.generation_info)
    return generation


def _end_runs(runs: list[_Run], result: Any, kind: CallKind) -> None:
    if kind == "chat_model" and isinstance(result, ChatResult):
        single = len(result.generations) == 1
        generations = [
            _processed(g, i, runs[0].run_id, result.llm_output, single)
            for i, g in enumerate(result.generations)
        ]
        runs[0].end(generations, result.llm_output)
        return
    if isinstance(result, LLMResult):
        for index, run in enumerate(runs):
            gens = result.generations[index] if index < len(result.generations) else []
            run.end(list(gens), result.llm_output)


async def _record_async_answer(awaitable: Any, runs: list[_Run], kind: CallKind) -> Any:
    try:
        with _cassette_patch.live_call(runs[0].owner):
            result = await awaitable
    except BaseException as exc:
        for run in runs:
            run.fail(exc, cancelled=isinstance(exc, asyncio.CancelledError))
        raise
    _end_runs(runs, result, kind)
    return result


def _record_sync_stream(source: Iterator[Any], run: _Run, kind: CallKind) -> Iterator[Any]:
    """Pass the provider's chunks on; each is recorded when the next is asked for, by
    which time LangChain has given it its final id and metadata."""
    pending: tuple[int, Any] | None = None
    try:
        while True:
            with _cassette_patch.live_call(run.owner):
                chunk = next(source, _END)
            if chunk is _END:
                break
            if pending is not None:
                run.chunk(*pending, kind)
            pending = (now_ns(), chunk)
            yield chunk
    except GeneratorExit as exc:
        if pending is not None:
            run.chunk(*pending, kind)
        run.fail(exc, cancelled=True)
        close = getattr(source, "close", None)
        if close is not None:
            close()
        raise
    except BaseException as exc:
        if pending is not None:
            run.chunk(*pending, kind)
        run.fail(exc)
        raise
    if pending is not None:
        run.chunk(*pending, kind)
    run.end_stream(kind)


async def _record_async_stream(
    source: AsyncIterator[Any], run: _Run, kind: CallKind
) -> AsyncIterator[Any]:
    pending: tuple[int, Any] | None = None
    try:
        while True:
            with _cassette_patch.live_call(run.owner):
                chunk = await anext(source, _END)
            if chunk is _END:
                break
            if pending is not None:
                run.chunk(*pending, kind)
            pending = (now_ns(), chunk)
            yield chunk
    except (GeneratorExit, asyncio.CancelledError) as exc:
        if pending is not None:
            run.chunk(*pending, kind)
        run.fail(exc, cancelled=True)
        aclose = getattr(source, "aclose", None)
        if aclose is not None:
            await aclose()
        raise
    except BaseException as exc:
        if pending is not None:
            run.chunk(*pending, kind)
        run.fail(exc)
        raise
    if pending is not None:
        run.chunk(*pending, kind)
    run.end_stream(kind)
