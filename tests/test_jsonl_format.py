"""The `lcel-trace/2` line format writes each value once (a run's inputs on its start
line, its outputs on its end line, neither again on its span line) and reads back the
same spans; `lcel-trace/1` files, written by the previous writer, still read."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from langchain_core.language_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.prompts.chat import ChatPromptValue
from langchain_core.runnables import Runnable, RunnableGenerator, RunnableLambda

from lcel_trace import Span, capture, trace
from lcel_trace.exporters import JsonlExporter
from lcel_trace.jsonl_codec import FORMAT, encode_line, from_line
from lcel_trace.reader import read_traces

V1_FILE = Path(__file__).parent / "data" / "format_v1.jsonl"
"""Written by the `lcel-trace/1` writer (this repository before the format changed):
`joke` invoked with parrots and streamed with owls, then a lambda raising `boom`."""


def chain() -> Runnable[dict[str, str], str]:
    model = GenericFakeChatModel(messages=iter([AIMessage(content="Parrots talk back.")] * 10))
    return ChatPromptTemplate.from_template("Tell me about {topic}") | model | StrOutputParser()


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def by_id(spans: tuple[Span, ...]) -> dict[str, Span]:
    return {span.span_id: span for span in spans}


def test_v2_span_lines_leave_inputs_and_outputs_to_the_event_lines(tmp_path: Path) -> None:
    path = tmp_path / "runs.jsonl"
    with JsonlExporter(path) as exporter, capture() as cap:
        traced = trace(chain(), exporters=[exporter])
        traced.invoke({"topic": "parrots"})
        list(traced.stream({"topic": "owls"}))
    written = lines(path)
    assert {line["format"] for line in written if line["type"] == "trace_start"} == {FORMAT}
    spans = [line for line in written if line["type"] == "span"]
    assert len(spans) == 8
    assert all("inputs" not in line and "outputs" not in line for line in spans)
    text = path.read_text(encoding="utf-8")
    assert text.count('"Tell me about parrots"') == 2  # the prompt's output, the model's input
    assert text.count('"owls"') == 2  # the root's and the prompt's start input
    for read, recorded in zip(read_traces(path), cap.traces, strict=True):
        got, want = by_id(read.spans), by_id(recorded.spans)
        assert got.keys() == want.keys()
        for span_id, span in want.items():
            assert got[span_id].inputs == span.inputs, span.name
            assert got[span_id].outputs == span.outputs, span.name
            if not isinstance(span.outputs, str):  # LangChain's str subclasses read as str
                assert type(got[span_id].outputs) is type(span.outputs), span.name


def test_a_value_the_events_do_not_hold_stays_on_the_span_line(tmp_path: Path) -> None:
    def words(chunks: Any) -> Any:
        for chunk in chunks:
            yield from chunk.split()
        raise RuntimeError("stream broke")

    failing = RunnableLambda(lambda x: f"{x} and more", name="say") | RunnableGenerator(words)
    path = tmp_path / "runs.jsonl"
    with JsonlExporter(path) as exporter, capture() as cap:
        traced = trace(failing, exporters=[exporter])
        with pytest.raises(RuntimeError, match="stream broke"):
            list(traced.stream("hello"))
    (recorded,) = cap.traces
    root = recorded.root
    assert root.status == "error"
    assert root.outputs == "helloandmore"  # folded from the streamed chunks, on no event
    (root_line,) = [line for line in lines(path) if line.get("span_id") == root.span_id]
    assert root_line["type"] == "span"
    assert root_line["outputs"] == "helloandmore"
    assert "inputs" not in root_line  # the start line holds it
    (read,) = read_traces(path)
    assert by_id(read.spans)[root.span_id].outputs == "helloandmore"
    assert by_id(read.spans)[root.span_id].inputs == "hello"


def test_a_span_line_written_on_its_own_carries_its_values(tmp_path: Path) -> None:
    with capture() as cap:
        trace(chain()).invoke({"topic": "parrots"})
    (recorded,) = cap.traces
    line = json.loads(encode_line(recorded.root))
    assert line["inputs"] == {"topic": "parrots"}
    assert line["outputs"] == "Parrots talk back."


def test_v1_files_from_the_previous_writer_still_read() -> None:
    assert {line["format"] for line in lines(V1_FILE) if line["type"] == "trace_start"} == {
        "lcel-trace/1"
    }
    assert all("inputs" in line for line in lines(V1_FILE) if line["type"] == "span")
    joke_invoke, joke_stream, boom = read_traces(V1_FILE)
    assert (joke_invoke.name, joke_stream.name, boom.name) == ("joke", "joke", "boom")
    assert joke_invoke.root.inputs == {"topic": "parrots"}
    assert joke_invoke.root.outputs == "Parrots talk back."
    prompt = joke_stream.span("ChatPromptTemplate")
    assert isinstance(prompt.outputs, ChatPromptValue)
    assert prompt.outputs.to_string() == "Human: Tell me about owls"
    assert boom.root.status == "error"
    assert boom.root.inputs == 1
    assert boom.root.outputs is None


def test_a_reader_is_told_which_formats_it_reads() -> None:
    start = {
        "type": "trace_start",
        "trace_id": "0" * 31 + "1",
        "format": "lcel-trace/3",
        "name": "n",
        "start_ns": 1,
        "root_run_id": "r",
    }
    with pytest.raises(
        ValueError, match=r"'lcel-trace/3' \(expected 'lcel-trace/1' or 'lcel-trace/2'\)"
    ):
        from_line(start)
