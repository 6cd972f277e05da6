"""`lcel-trace cassette`: the calls a trace file can replay, one line each.

For each recorded model, tool or retriever call: its order, what was called, the key a
cassette matches it on, the first words of the request (a model's last message: what
this call added; a tool's input; a retriever's query) and of the answer (or the error
it ended with), and how many chunks were kept for streamed replay.
Everything from the file is printed made visible (`lcel_trace.terminal`).
"""

from __future__ import annotations

import argparse
from collections import Counter
from typing import Any

from lcel_trace.terminal import one_line

_REQUEST_WIDTH = 40
_ANSWER_WIDTH = 40


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    cassette_help = "list the recorded calls (models, tools, retrievers) a cassette replays"
    parser = commands.add_parser("cassette", help=cassette_help, description=cassette_help)
    parser.add_argument(
        "files", nargs="+", metavar="FILE", help="trace files, directories, globs, .jsonl.gz"
    )
    parser.set_defaults(handler=_cassette)


def _cassette(args: argparse.Namespace) -> int:
    from lcel_trace._cassette_file import read_recordings

    recordings = read_recordings(args.files)
    keys = Counter(r.key for r in recordings)
    print(f"{len(recordings)} recorded calls, {len(keys)} distinct requests")
    if not recordings:
        return 0
    print(f"{'#':>3}  {'call':<28} {'key':<16}  {'request':<{_REQUEST_WIDTH}}  answer")
    for number, recording in enumerate(recordings, 1):
        label = one_line(_called(recording), 28)
        repeat = f" x{keys[recording.key]}" if keys[recording.key] > 1 else ""
        request = one_line(_request_words(recording.request), _REQUEST_WIDTH)
        answer = one_line(_answer_words(recording), _ANSWER_WIDTH)
        chunks = f"  [{len(recording.chunks)} chunks]" if recording.chunks else ""
        print(
            f"{number:>3}  {label:<28} {recording.key:<16}  {request:<{_REQUEST_WIDTH}}  "
            f"{answer}{chunks}{repeat}"
        )
    return 0


def _called(recording: Any) -> str:
    request = recording.request
    if recording.kind in ("tool", "retriever"):
        return f"{recording.kind} {recording.name}"
    model = request.get("model") or {}
    return f"{model.get('type')} {model.get('name')}"


def _request_words(request: Any) -> str:
    if "tool" in request:
        return _text(request.get("input"))
    if "retriever" in request:
        return _text(request.get("query"))
    messages = request.get("messages")
    if isinstance(messages, list) and messages:
        last = messages[-1]
        if isinstance(last, dict):
            return f"{last.get('role')}: {_text(last.get('content'))}"
    return _text(request.get("prompt"))


def _answer_words(recording: Any) -> str:
    from langchain_core.messages import AIMessage, BaseMessage

    if recording.error is not None:
        return f"error {recording.error.type}: {recording.error.message}"
    output = recording.output
    if recording.kind == "retriever" and isinstance(output, list):
        first = output[0] if output else None
        text = _text(getattr(first, "page_content", first))
        return f"{len(output)} documents: {text}"
    if output is None and recording.chunks:
        output = recording.chunks[-1][1]
    if isinstance(output, AIMessage) and output.tool_calls:
        calls = ", ".join(f"{c['name']}({_text(c['args'])})" for c in output.tool_calls)
        return f"tool calls: {calls}"
    if isinstance(output, BaseMessage):
        return _text(output.content)
    if isinstance(output, dict):
        generations = output.get("generations") or [[]]
        first = generations[0][0] if generations and generations[0] else {}
        return _text(first.get("text") if isinstance(first, dict) else first)
    return _text(output)


def _text(value: Any) -> str:
    if isinstance(value, str):
        return " ".join(value.split())
    if isinstance(value, list):
        parts = [part.get("text", "") if isinstance(part, dict) else str(part) for part in value]
        return " ".join(" ".join(parts).split())
    return "" if value is None else " ".join(str(value).split())
