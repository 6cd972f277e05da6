"""Replay: files round-trip exactly, replays give back what was recorded."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from langchain_core.language_models import FakeListChatModel, GenericFakeChatModel
from langchain_core.messages import AIMessage, AIMessageChunk
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate

from lcel_trace import trace
from lcel_trace.exporters import JsonlExporter
from lcel_trace.records import encode_line
from lcel_trace.replay import (
    MAX_GAP_S,
    TraceFileError,
    read_traces,
    reexport,
    replay_events,
    replay_runnable,
)
from lcel_trace.span import Span, TraceEvent
from tests.strategies import events, spans, trace_ids


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_random_records_written_then_read_are_equal(data: st.DataObject, tmp_path: Path) -> None:
    trace_id = data.draw(trace_ids)
    written_spans: list[Span] = data.draw(st.lists(spans(trace_id), min_size=1, max_size=4))
    written_events: list[TraceEvent] = data.draw(st.lists(events(trace_id), max_size=4))
    path = tmp_path / "round.jsonl"
    path.write_bytes(b"".join(encode_line(r) for r in [*written_events, *written_spans]))
    (read,) = read_traces(path)
    assert list(read.spans) == written_spans
    assert list(read.trace_events) == written_events


def chain() -> object:
    model = GenericFakeChatModel(messages=iter([AIMessage(content="one two three four")] * 10))
    return ChatPromptTemplate.from_template("{q}") | model | StrOutputParser()


def recorded(tmp_path: Path, root_is_model: bool = False) -> tuple[Path, list[object]]:
    path = tmp_path / "recorded.jsonl"
    runnable = (
        GenericFakeChatModel(messages=iter([AIMessage(content="a b c")]))
        if root_is_model
        else chain()
    )
    with JsonlExporter(path) as exporter:
        chunks = list(
            trace(runnable, exporters=[exporter]).stream({"q": "x"} if not root_is_model else "hi")
        )  # type: ignore[attr-defined]
    return path, chunks


def test_replay_runnable_yields_the_recorded_chunks_and_output(tmp_path: Path) -> None:
    path, chunks = recorded(tmp_path)
    stand_in = replay_runnable(path, speed=0)
    assert list(stand_in.stream("ignored")) == chunks
    assert stand_in.invoke("ignored") == "one two three four"

    async def collect() -> list[object]:
        return [c async for c in stand_in.astream("ignored")]

    assert asyncio.run(collect()) == chunks


def test_replay_runnable_rebuilds_message_chunks(tmp_path: Path) -> None:
    path, chunks = recorded(tmp_path, root_is_model=True)
    replayed = list(replay_runnable(path, speed=0).stream("x"))
    assert all(isinstance(c, AIMessageChunk) for c in replayed)
    assert [c.content for c in replayed] == [c.content for c in chunks]  # type: ignore[attr-defined]


def test_replay_events_are_v2_shaped_in_recorded_order(tmp_path: Path) -> None:
    path, chunks = recorded(tmp_path)

    async def collect() -> list[dict[str, object]]:
        return [e async for e in replay_events(path, speed=0)]

    replayed = asyncio.run(collect())
    assert replayed[0]["event"] == "on_chain_start"
    assert replayed[-1]["event"] == "on_chain_end"
    assert {"event", "run_id", "name", "tags", "metadata", "data", "parent_ids"} <= set(replayed[0])
    streamed = [e["data"]["chunk"] for e in replayed if e["event"] == "on_chain_stream"]  # type: ignore[index]
    assert streamed == chunks


def test_replay_speed_divides_the_recorded_gaps(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "slow.jsonl"
    slow = FakeListChatModel(responses=["abcdef"], sleep=0.01)  # ~10 ms between chunks
    with JsonlExporter(path) as exporter:
        list(trace(slow, exporters=[exporter]).stream("x"))
    requested: list[float] = []

    async def fake_sleep(delay: float) -> None:  # record the pacing, do not wait
        requested.append(delay)

    monkeypatch.setattr("lcel_trace.replay.asyncio.sleep", fake_sleep)

    def longest_wait(speed: float) -> float:
        requested.clear()

        async def drain() -> None:
            async for _ in replay_events(path, speed=speed):
                pass

        asyncio.run(drain())
        return max(requested, default=0.0)

    at_1, at_4, at_0 = longest_wait(1.0), longest_wait(4.0), longest_wait(0)
    assert at_1 > 0.03  # the recorded stream spanned ~50 ms
    assert 3.0 < at_1 / at_4 < 5.0
    assert at_0 == 0.0


def test_reexport_keeps_ids_and_timestamps(tmp_path: Path) -> None:
    path, _ = recorded(tmp_path)
    copy = tmp_path / "copy.jsonl"
    with JsonlExporter(copy) as second:
        assert reexport(path, [second]) == 1
    (original,), (copied,) = read_traces(path), read_traces(copy)
    assert copied.spans == original.spans
    assert copied.trace_events == original.trace_events
    assert json.loads(copy.read_text().splitlines()[0])["type"] == "trace_start"


def test_spans_are_rebuilt_from_events_when_span_lines_are_missing(tmp_path: Path) -> None:
    path, _ = recorded(tmp_path)
    lines = [line for line in path.read_text().splitlines() if json.loads(line)["type"] != "span"]
    stripped = tmp_path / "events-only.jsonl"
    stripped.write_text("\n".join(lines) + "\n")
    (full,), (rebuilt,) = read_traces(path), read_traces(stripped)
    assert {(s.span_id, s.name, s.parent_id, s.status) for s in rebuilt.spans} == {
        (s.span_id, s.name, s.parent_id, s.status) for s in full.spans
    }
    root = next(s for s in rebuilt.spans if s.span_id == full.root.span_id)
    assert root.chunk_count == full.root.chunk_count


def test_public_names_of_replay_are_pinned() -> None:
    import lcel_trace.replay as replay

    assert {"read_traces", "replay_events", "replay_runnable", "reexport"} <= set(replay.__all__)
    assert {"TraceFileError", "TruncatedTraceWarning"} <= set(replay.__all__)
    assert all(hasattr(replay, name) for name in replay.__all__)


def test_a_gap_of_decades_is_replayed_as_at_most_max_gap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path, _ = recorded(tmp_path)
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    events = [line for line in lines if line["type"] == "event"]
    for line in events[len(events) // 2 :]:
        line["ts_ns"] += 10**18  # 31 years later
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    requested: list[float] = []

    async def fake_sleep(delay: float) -> None:
        requested.append(delay)

    monkeypatch.setattr("lcel_trace.replay.asyncio.sleep", fake_sleep)

    async def drain(speed: float) -> None:
        async for _ in replay_events(path, speed=speed):
            pass

    asyncio.run(drain(1.0))
    assert max(requested) <= MAX_GAP_S + 1
    assert max(requested) > MAX_GAP_S / 2  # the long gap is still a pause
    requested.clear()
    asyncio.run(drain(4.0))
    assert max(requested) <= MAX_GAP_S / 4 + 1


@pytest.mark.parametrize(
    ("key", "value", "reason"),
    [
        ("trace_id", "0" * 32, "not 32 lowercase hex"),
        ("trace_id", "AB" * 16, "not 32 lowercase hex"),
        ("trace_id", "t", "not 32 lowercase hex"),
        ("span_id", "s", "'span_id' 's' is not a run id"),
        ("run_id", "r", "'run_id' 'r' is not a run id"),
    ],
)
def test_reexport_and_replay_refuse_ids_not_of_the_format(
    tmp_path: Path, key: str, value: str, reason: str
) -> None:
    path, _ = recorded(tmp_path)
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    number, line = next((n, line) for n, line in enumerate(lines, start=1) if key in line)
    line[key] = value
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    read_traces(path)  # plain reading still works: ids are only checked before replay
    pattern = rf"recorded\.jsonl:{number}: .*{re.escape(reason)}"
    with (
        JsonlExporter(tmp_path / "copy.jsonl") as copy,
        pytest.raises(TraceFileError, match=pattern),
    ):
        reexport(path, [copy])
    with pytest.raises(TraceFileError, match=pattern):
        replay_runnable(path, speed=0)
