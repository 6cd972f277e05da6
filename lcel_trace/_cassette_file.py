"""The recorded calls of a trace file, as a cassette replays them.

The file is read by the untrusted-file reader (`lcel_trace.reader`): bounded lines,
validated records, LangChain objects rebuilt only from the allow-list. Each model span
(chat model or completion LLM), tool span and retriever span becomes one `Recording`:
its canonical request (from the run's start event) and its answer (the final message,
the stream chunks when they were kept, the tool's output, the documents, or the error
it ended with), in the order the calls started.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal, cast

from lcel_trace._cassette_keys import (
    chat_request,
    llm_request,
    request_key,
    retriever_request,
    tool_request,
)
from lcel_trace.reader import stream_traces
from lcel_trace.span import Span, SpanError, Trace, TraceEvent

__all__ = ["KINDS", "CallKind", "Recording", "UnusableCassetteError", "read_recordings"]

CallKind = Literal["chat_model", "llm", "tool", "retriever"]
KINDS: tuple[CallKind, ...] = ("chat_model", "llm", "tool", "retriever")


class UnusableCassetteError(ValueError):
    """A trace file that cannot serve as a cassette; the message says how to record one."""


@dataclass(frozen=True, slots=True)
class Recording:
    """One recorded model call: what was asked and what came back."""

    key: str
    kind: CallKind
    request: Mapping[str, Any]
    output: Any
    chunks: tuple[tuple[int, Any], ...]
    chunk_count: int
    start_ns: int
    end_ns: int
    error: SpanError | None
    trace_id: str
    span_id: str
    name: str

    @property
    def label(self) -> str:
        """`ChatOpenAI 'fake-gpt'` (a tool's or retriever's name), for messages."""
        model_name = (self.request.get("model") or {}).get("name")
        return f"{self.name} {model_name!r}" if model_name else self.name


def read_recordings(
    paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    *,
    kinds: Collection[str] = KINDS,
) -> list[Recording]:
    """Every call of `kinds` (model, tool, retriever) recorded in `paths` (files,
    directories, globs, `.jsonl.gz`), in the order the calls started."""
    shown = os.fspath(paths) if isinstance(paths, str | os.PathLike) else "the files"
    found: list[Recording] = []
    for trace in stream_traces(paths):
        found.extend(_recordings(shown, trace, kinds))
    found.sort(key=lambda r: r.start_ns)
    return found


def _recordings(
    path: str | os.PathLike[str], trace: Trace, kinds: Collection[str]
) -> Iterator[Recording]:
    starts: dict[str, TraceEvent] = {}
    chunks: dict[str, list[tuple[int, Any]]] = {}
    for event in trace.trace_events:
        if event.kind == "start" and event.run_type in KINDS:
            starts.setdefault(event.run_id, event)
        elif event.kind == "stream" and event.run_type in ("chat_model", "llm"):
            for ts_ns, chunk in event.data.get("chunks", ()):
                chunks.setdefault(event.run_id, []).append((ts_ns, chunk))
    for span in trace.spans:
        if span.run_type in kinds:
            yield _recording(path, trace, span, starts.get(span.span_id), chunks)


def _recording(
    path: str | os.PathLike[str],
    trace: Trace,
    span: Span,
    start: TraceEvent | None,
    chunks: dict[str, list[tuple[int, Any]]],
) -> Recording:
    data: Mapping[str, Any] = start.data if start is not None else {}
    inputs = data.get("input") if start is not None else span.inputs
    params = data.get("invocation_params") or {}
    metadata = start.metadata if start is not None else span.metadata
    kind = cast("CallKind", span.run_type)
    if inputs is None or (kind != "tool" and not isinstance(inputs, Mapping)):
        raise UnusableCassetteError(
            f"{os.fspath(path)}: {kind.replace('_', ' ')} call {span.name!r} (trace "
            f"{trace.trace_id}) was recorded without its request (capture_content=False): "
            "a cassette needs the requests and answers; record with capture_content=True "
            "(the default)"
        )
    if not isinstance(params, Mapping):
        raise UnusableCassetteError(f"{os.fspath(path)}: 'invocation_params' must be an object")
    if kind == "tool":
        request = tool_request(span.name, inputs)
    elif kind == "retriever":
        request = retriever_request(span.name, cast("Mapping[str, Any]", inputs).get("query"))
    elif kind == "chat_model":
        batches = inputs.get("messages")
        messages = batches[0] if isinstance(batches, list) and batches else []
        request = chat_request(messages, params, metadata, span.name)
    else:
        prompts = inputs.get("prompts")
        prompt = prompts[0] if isinstance(prompts, list) and prompts else ""
        request = llm_request(prompt, params, metadata, span.name)
    return Recording(
        key=request_key(request),
        kind=kind,
        request=request,
        output=span.outputs,
        chunks=tuple(chunks.get(span.span_id, ())),
        chunk_count=span.chunk_count,
        start_ns=span.start_ns,
        end_ns=span.end_ns,
        error=span.error if span.status == "error" else None,
        trace_id=trace.trace_id,
        span_id=span.span_id,
        name=span.name,
    )
