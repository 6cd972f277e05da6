"""The JSONL exporter: the lcel-trace/1 format, written off-path, read back equal."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path

import pytest
from langchain_core.language_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import Runnable, RunnableLambda

from lcel_trace import capture, trace
from lcel_trace.exporters import JsonlExporter
from lcel_trace.replay import TraceFileError, TruncatedTraceWarning, read_traces

JOKE = "Why did the parrot talk ? Because it could ."


def joke_chain() -> Runnable[dict[str, str], str]:
    model = GenericFakeChatModel(messages=iter([AIMessage(content=JOKE)] * 1000))
    prompt = ChatPromptTemplate.from_template("Tell me a joke about {topic}")
    return prompt | model | StrOutputParser()


def lines_of(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_every_line_is_a_whole_json_object_with_type_and_trace_id(tmp_path: Path) -> None:
    path = tmp_path / "runs.jsonl"
    with JsonlExporter(path) as exporter:
        traced = trace(joke_chain(), exporters=[exporter])
        traced.invoke({"topic": "parrots"})
        list(traced.stream({"topic": "owls"}))
    records = lines_of(path)
    assert records, "nothing was written"
    assert all({"type", "trace_id"} <= record.keys() for record in records)
    assert {r["type"] for r in records} == {"trace_start", "event", "span", "trace_end"}
    assert len({r["trace_id"] for r in records}) == 2


def test_lines_of_one_trace_are_in_order_start_events_spans_end(tmp_path: Path) -> None:
    path = tmp_path / "runs.jsonl"
    with JsonlExporter(path) as exporter:
        trace(joke_chain(), exporters=[exporter]).invoke({"topic": "parrots"})
    types = [r["type"] for r in lines_of(path)]
    assert types[0] == "trace_start"
    assert types[-1] == "trace_end"
    starts = [r for r in lines_of(path) if r["type"] == "event" and r["kind"] == "start"]
    assert [s["name"] for s in starts] == [
        "RunnableSequence",
        "ChatPromptTemplate",
        "GenericFakeChatModel",
        "StrOutputParser",
    ]


def test_spans_read_back_equal_the_captured_spans(tmp_path: Path) -> None:
    path = tmp_path / "runs.jsonl"
    with JsonlExporter(path) as exporter, capture() as cap:
        traced = trace(joke_chain(), exporters=[exporter])
        traced.invoke({"topic": "parrots"})
        list(traced.stream({"topic": "owls"}))
    read = read_traces(path)
    assert [t.trace_id for t in read] == [t.trace_id for t in cap.traces]
    for written, captured in zip(read, cap.traces, strict=True):
        assert written.spans == captured.spans
        assert written.trace_events == captured.trace_events
        assert written.status == captured.status == "ok"


def test_langchain_objects_come_back_as_the_same_classes(tmp_path: Path) -> None:
    path = tmp_path / "runs.jsonl"
    with JsonlExporter(path) as exporter:
        trace(joke_chain(), exporters=[exporter]).invoke({"topic": "parrots"})
    model_span = read_traces(path)[0].span("GenericFakeChatModel")
    assert isinstance(model_span.outputs, AIMessage)
    assert model_span.outputs.content == JOKE


def test_root_chunks_are_coalesced_into_stream_events_that_replay_the_output(
    tmp_path: Path,
) -> None:
    path = tmp_path / "runs.jsonl"
    with JsonlExporter(path) as exporter:
        streamed = list(trace(joke_chain(), exporters=[exporter]).stream({"topic": "parrots"}))
    records = lines_of(path)
    root_id = records[0]["root_run_id"]
    stream_lines = [r for r in records if r["type"] == "event" and r["kind"] == "stream"]
    assert stream_lines, "no stream line was written"
    assert {r["run_id"] for r in stream_lines} == {root_id}
    chunks = [chunk for line in stream_lines for _, chunk in line["data"]["chunks"]]  # type: ignore[index]
    assert chunks == streamed
    timestamps = [ts for line in stream_lines for ts, _ in line["data"]["chunks"]]  # type: ignore[index]
    assert timestamps == sorted(timestamps)


def test_record_chunks_all_keeps_every_runs_chunks_and_none_keeps_none(tmp_path: Path) -> None:
    every, nothing = tmp_path / "all.jsonl", tmp_path / "none.jsonl"
    with (
        JsonlExporter(every, record_chunks="all") as all_,
        JsonlExporter(nothing, record_chunks="none") as none_,
    ):
        list(trace(joke_chain(), exporters=[all_, none_]).stream({"topic": "parrots"}))
    streamed_runs = {r["name"] for r in lines_of(every) if r.get("kind") == "stream"}
    assert streamed_runs == {"RunnableSequence", "GenericFakeChatModel", "StrOutputParser"}
    assert not [r for r in lines_of(nothing) if r.get("kind") == "stream"]


def test_concurrent_traces_share_one_file_without_corrupting_lines(tmp_path: Path) -> None:
    path = tmp_path / "shared.jsonl"

    async def run_many() -> None:
        with JsonlExporter(path) as exporter:
            traced = trace(joke_chain(), exporters=[exporter])
            await asyncio.gather(*(traced.ainvoke({"topic": str(i)}) for i in range(40)))

            def in_thread() -> None:
                for _ in range(5):
                    list(traced.stream({"topic": "thread"}))

            threads = [threading.Thread(target=in_thread) for _ in range(4)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()

    asyncio.run(run_many())
    traces = read_traces(path)
    assert len(traces) == 60
    assert all(t.status == "ok" and len(t.spans) == 4 for t in traces)
    for t in traces:
        assert {s.trace_id for s in t.spans} == {t.trace_id}


def test_failed_run_is_written_with_error_status_and_message(tmp_path: Path) -> None:
    def explode(_: object) -> str:
        raise ValueError("no jokes today")

    path = tmp_path / "runs.jsonl"
    chain = joke_chain() | RunnableLambda(explode)
    with JsonlExporter(path) as exporter, pytest.raises(ValueError, match="no jokes today"):
        trace(chain, exporters=[exporter]).invoke({"topic": "parrots"})
    written = read_traces(path)[0]
    assert written.status == "error"
    failing = written.span("explode")
    assert failing.status == "error"
    assert failing.error is not None
    assert failing.error.type == "ValueError"
    assert failing.error.message == "no jokes today"


def test_force_flush_writes_everything_queued_and_shutdown_is_idempotent(tmp_path: Path) -> None:
    path = tmp_path / "runs.jsonl"
    exporter = JsonlExporter(path)
    traced = trace(joke_chain(), exporters=[exporter])
    for _ in range(10):
        traced.invoke({"topic": "parrots"})
    assert exporter.force_flush(timeout_s=10) is True
    assert len(read_traces(path)) == 10
    exporter.shutdown()
    exporter.shutdown()
    traced.invoke({"topic": "after shutdown"})  # refused by the exporter, not by the chain
    assert len(read_traces(path)) == 10
    assert exporter.dropped_records > 0


def test_unwritable_path_is_a_clear_error_at_construction(tmp_path: Path) -> None:
    with pytest.raises(OSError, match="cannot open trace file"):
        JsonlExporter(tmp_path / "missing-dir" / "runs.jsonl")


def test_reader_reports_a_malformed_line_as_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "runs.jsonl"
    with JsonlExporter(path) as exporter:
        trace(joke_chain(), exporters=[exporter]).invoke({"topic": "parrots"})
    lines = path.read_text(encoding="utf-8").splitlines()
    lines.insert(2, '{"type": "span", "trace_id": 3}')
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(TraceFileError, match=r"runs\.jsonl:3: 'trace_id' must be a string"):
        read_traces(path)


def test_reader_skips_a_partial_last_line_with_a_warning(tmp_path: Path) -> None:
    path = tmp_path / "runs.jsonl"
    with JsonlExporter(path) as exporter:
        trace(joke_chain(), exporters=[exporter]).invoke({"topic": "parrots"})
    whole = path.read_bytes()
    path.write_bytes(whole + whole[: len(whole) // 3].split(b"\n")[0][:50])
    with pytest.warns(TruncatedTraceWarning, match="partial last line"):
        traces = read_traces(path)
    assert len(traces) == 1
    assert traces[0].status == "ok"


def test_reader_refuses_a_constructor_outside_the_allow_list(tmp_path: Path) -> None:
    path = tmp_path / "evil.jsonl"
    payload = {
        "lc": 1,
        "type": "constructor",
        "id": ["langchain_core", "prompts", "chat", "ChatPromptTemplate"],
        "kwargs": {},
    }
    line = {
        "type": "event", "trace_id": "0" * 32, "kind": "start", "event": "on_chain_start",
        "run_id": "r", "parent_ids": [], "name": "x", "run_type": "chain", "tags": [],
        "metadata": {}, "data": {"input": payload}, "ts_ns": 1,
    }  # fmt: skip
    path.write_text(json.dumps(line) + "\n", encoding="utf-8")
    with pytest.raises(TraceFileError, match=r"evil\.jsonl:1: cannot rebuild"):
        read_traces(path)


def test_user_data_shaped_like_a_langchain_constructor_stays_plain_data(tmp_path: Path) -> None:
    sneaky = {"lc": 1, "type": "constructor", "id": ["os", "system"], "kwargs": {"cmd": "x"}}
    path = tmp_path / "runs.jsonl"
    with JsonlExporter(path) as exporter:
        trace(RunnableLambda(lambda d: d), exporters=[exporter]).invoke(sneaky)
    root = read_traces(path)[0].root
    assert root.inputs == sneaky
    assert root.outputs == sneaky


def test_trace_end_counts_the_spans_and_event_lines_written(tmp_path: Path) -> None:
    path = tmp_path / "runs.jsonl"
    with JsonlExporter(path) as exporter:
        list(trace(joke_chain(), exporters=[exporter]).stream({"topic": "parrots"}))
    records = lines_of(path)
    (end,) = [r for r in records if r["type"] == "trace_end"]
    assert end["span_count"] == sum(r["type"] == "span" for r in records) == 4
    assert end["event_count"] == sum(r["type"] == "event" for r in records)
