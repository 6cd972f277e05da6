"""The per-call path's shortcuts keep their guarantees: queued hand-offs reach an
`on_batch` exporter together, whole and in order, within a bound; a woken worker
gathers what follows, yet a flush or a full queue never waits for it; remembered run
metadata is still scrubbed and still a snapshot of its own."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from lcel_trace import export
from lcel_trace.export import (
    COALESCE_MAX_RECORDS,
    BaseExporter,
    ExporterCapabilities,
    ExportProcessor,
)
from lcel_trace.redact import REDACTED, scrub, scrub_flat_mapping
from lcel_trace.span import Record, TraceEnd, TraceStart


class _Gate(BaseExporter):
    """Blocks in its first `on_batch` until released, then records every call."""

    capabilities = ExporterCapabilities(receives="batches")

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()
        self.entered = threading.Event()
        self.calls: list[list[Record]] = []

    def on_batch(self, records: Sequence[Record]) -> None:
        self.entered.set()
        self.release.wait(5)
        self.calls.append(list(records))

    def export(self, spans: Sequence[Any]) -> None:
        self.on_batch(spans)


def _hand_off(n: int) -> tuple[Record, ...]:
    trace_id = f"{n:032x}"
    return (
        TraceStart(trace_id, "t", 1, "r", None, {}, None),
        TraceEnd(trace_id, "ok", 2, 0, 0, None),
    )


def test_queued_hand_offs_reach_on_batch_together_whole_and_in_order() -> None:
    exporter = _Gate()
    processor = ExportProcessor(exporter)
    hand_offs = [_hand_off(n) for n in range(COALESCE_MAX_RECORDS)]
    processor.submit(hand_offs[0])
    assert exporter.entered.wait(5)
    for batch in hand_offs[1:]:  # queue up behind the busy exporter
        processor.submit(batch)
    exporter.release.set()
    assert processor.drain(5)
    processor.close(5)
    assert [r for call in exporter.calls for r in call] == [r for b in hand_offs for r in b]
    assert len(exporter.calls) == 3  # the first, then two bounded groups
    assert all(len(call) <= COALESCE_MAX_RECORDS for call in exporter.calls)
    assert all(len(call) % 2 == 0 for call in exporter.calls)  # hand-offs never split


class _Calls(BaseExporter):
    """Records every `on_batch` call."""

    capabilities = ExporterCapabilities(receives="batches")

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[list[Record]] = []

    def on_batch(self, records: Sequence[Record]) -> None:
        self.calls.append(list(records))

    def export(self, spans: Sequence[Any]) -> None:
        self.on_batch(spans)


def _until(condition: Callable[[], bool], timeout_s: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.001)
    return True


def test_a_woken_worker_gathers_the_hand_offs_that_follow_into_one_call(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(export, "GATHER_S", 3600.0)  # only a flush ends the wait
    exporter = _Calls()
    processor = ExportProcessor(exporter)
    processor.submit(_hand_off(0))  # starts the worker
    assert processor.drain(30)
    processor.submit(_hand_off(1))  # wakes the idle worker, which starts gathering
    assert _until(lambda: processor._gathering)
    processor.submit(_hand_off(2))
    assert exporter.calls == [list(_hand_off(0))]  # still gathering
    assert processor.drain(30)  # a flush does not wait out the gathering
    processor.close(30)
    assert exporter.calls == [list(_hand_off(0)), [*_hand_off(1), *_hand_off(2)]]


def test_a_full_gathering_is_delivered_without_a_flush(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(export, "GATHER_S", 3600.0)
    exporter = _Calls()
    processor = ExportProcessor(exporter)
    processor.submit(_hand_off(0))
    assert processor.drain(30)
    processor.submit(_hand_off(1))
    assert _until(lambda: processor._gathering)
    n = 2
    while processor.queued < export.GATHER_MAX_RECORDS:
        processor.submit(_hand_off(n))
        n += 1
    assert _until(lambda: len(exporter.calls) >= 2)  # no drain asked for it
    assert processor.drain(30)
    processor.close(30)
    assert [r for call in exporter.calls for r in call] == [
        r for i in range(n) for r in _hand_off(i)
    ]


def test_flat_metadata_is_scrubbed_and_a_fresh_snapshot_each_time() -> None:
    metadata = {"ls_provider": "openai", "api_key": "sk-live-abc123", "n": 1}
    first = scrub_flat_mapping(metadata)
    second = scrub_flat_mapping(metadata)
    assert first == second == scrub(metadata)
    assert first["api_key"] == REDACTED
    assert first is not second
    assert first is not metadata
    first["ls_provider"] = "changed"
    assert scrub_flat_mapping(metadata)["ls_provider"] == "openai"


def test_remembered_metadata_keeps_each_value_s_type() -> None:
    """1, 1.0 and True are equal (and so are 0.0 and -0.0): a remembered result must
    not hand one back for another (it once recorded {"flag": True} as {"flag": 1})."""
    for value in (1, True, 1.0, 0, False, 0.0, -0.0):
        for nested in (False, True):
            metadata = {"inner": {"flag": value}} if nested else {"flag": value}
            cleaned = scrub_flat_mapping(metadata)
            got = cleaned["inner"]["flag"] if nested else cleaned["flag"]
            assert type(got) is type(value), (metadata, cleaned)
            assert repr(got) == repr(value), (metadata, cleaned)


def test_nested_metadata_is_scrubbed_as_before() -> None:
    metadata = {"user": {"password": "hunter2"}, "tags": ["a"]}
    cleaned = scrub_flat_mapping(metadata)
    assert cleaned == scrub(metadata)
    assert cleaned["user"] is not metadata["user"]


def test_metadata_with_one_level_of_flat_dicts_is_remembered_and_fresh() -> None:
    metadata = {
        "ls_provider": "openai",
        "lc_versions": {"langchain-core": "1.0"},
        "user": {"password": "hunter2", "id": 3},
        "credentials": {"a": "b"},
        "empty": {},
    }
    first = scrub_flat_mapping(metadata)
    second = scrub_flat_mapping(metadata)
    assert first == second == scrub(metadata)
    assert first["user"]["password"] == REDACTED
    assert first["credentials"] == scrub(metadata)["credentials"]
    assert first["lc_versions"] is not second["lc_versions"]
    assert first["lc_versions"] is not metadata["lc_versions"]
    first["lc_versions"]["langchain-core"] = "changed"
    assert scrub_flat_mapping(metadata)["lc_versions"] == {"langchain-core": "1.0"}
    deeper = {"a": {"b": {"password": "hunter2"}}}
    assert scrub_flat_mapping(deeper) == scrub(deeper)


def test_records_built_by_quick_init_keep_dataclass_semantics() -> None:
    import dataclasses
    import inspect
    import pickle

    import pytest

    from lcel_trace.assemble import RunIdentity
    from lcel_trace.span import Span, TraceEvent, TraceStart

    event = TraceEvent("t", "start", "on_chain_start", "r", (), "n", "chain", (), {}, {}, 1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.name = "x"  # type: ignore[misc]
    assert dataclasses.replace(event, name="z").name == "z"
    assert pickle.loads(pickle.dumps(event)) == event
    first, second = TraceStart("t", "n", 1, "r"), TraceStart("t", "n", 1, "r")
    assert first == second
    assert first.versions is not second.versions  # fresh default factories
    span = Span("t", "s", None, "n", "chain", 1, 2, "ok")
    assert span.tags == ()
    assert span.metadata == {}
    assert span.attributes is not span.metadata
    assert list(inspect.signature(Span).parameters) == [f.name for f in dataclasses.fields(Span)]
    with pytest.raises(TypeError):
        RunIdentity("r", "chain", "n", "chain", (), {})  # type: ignore[call-arg]


def test_encode_line_is_the_stdlib_encoding_byte_for_byte() -> None:
    import json

    from lcel_trace.records import encode_line, to_line
    from lcel_trace.span import Span, TraceEvent

    data = {"input": {"text": 'héllo \u2028 "q" \\ \x01\t\U0001f99c', "n": [1, 2**62, None, True]}}
    event = TraceEvent(
        "t", "start", "on_chain_start", "r", ("p",), "n", "chain", ("x",), {}, data, 1
    )
    span = Span("t", "s", None, "n", "chain", 1, 2, "ok", inputs=data, outputs="ü")
    for record in (event, span):
        expected = json.dumps(
            to_line(record), ensure_ascii=False, separators=(",", ":"), allow_nan=False
        )
        assert encode_line(record) == expected.encode("utf-8") + b"\n"


def test_json_text_falls_back_to_the_stdlib_for_what_orjson_refuses() -> None:
    import json

    import pytest

    from lcel_trace.json_text import dumps_bytes, dumps_text

    # a lone surrogate, an integer past 64 bits, a non-string key: still one JSON value
    assert dumps_bytes({"s": "a\ud800b"}) == '{"s":"a\ud800b"}'.encode("utf-8", "replace")
    assert dumps_bytes([2**70]) == b"[1180591620717411303424]"
    assert json.loads(dumps_text({1: "x"})) == {"1": "x"}
    assert json.loads(dumps_text({"f": [0.1, 1e16, -2.5e-7]})) == {"f": [0.1, 1e16, -2.5e-7]}
    with pytest.raises(TypeError, match="not JSON serializable"):
        dumps_bytes({"x": object()})


def test_a_run_counter_stamps_only_first_chunk_and_token_and_waits_for_its_run() -> None:
    from langchain_core.messages import AIMessageChunk

    from lcel_trace.assemble import SpanAssembler
    from lcel_trace.span import TraceEvent

    reads: list[int] = []

    def clock() -> int:
        reads.append(len(reads) + 100)
        return reads[-1]

    def event(kind: str, ts: int) -> TraceEvent:
        name = f"on_chat_model_{kind}"
        return TraceEvent("t", kind, name, "r", (), "m", "chat_model", (), {}, {}, ts)  # type: ignore[arg-type]

    assembler = SpanAssembler("t")
    early = assembler.counter("r", clock)  # made before the run starts: looks it up
    assembler.feed(event("start", 1))
    early(AIMessageChunk(content=""))  # a first chunk with no text
    count = assembler.counter("r", clock)
    for text in ("a", "b", "c"):
        count(AIMessageChunk(content=text))
    span = assembler.feed(event("end", 200))
    assert span is not None
    assert span.chunk_count == 4
    assert (span.first_chunk_ns, span.first_token_ns) == (100, 101)
    assert reads == [100, 101]  # the clock is not read once the first token is in


def test_json_text_without_orjson_gives_the_same_json(monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    from lcel_trace import json_text

    value = {"text": 'héllo "q" \\ \x01', "n": [1, 2.5, None, True], "nested": {"k": []}}
    with_orjson = json_text.dumps_bytes(value)
    monkeypatch.setattr(json_text, "orjson", None)  # PyPy, or an environment without it
    assert json_text.dumps_bytes(value) == with_orjson
    assert json.loads(json_text.dumps_text(value)) == value
