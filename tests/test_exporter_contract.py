"""The exporter contract: what is accepted when handed in, what is refused and why, what
an exporter declares (read once), `force_flush` with nothing queued, and one name and
meaning for the content limit."""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import structlog
from langchain_core.runnables import Runnable, RunnableLambda
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from lcel_trace import Span, export, exporter_stats, flush_all, trace
from lcel_trace.export import ExporterCapabilities, TraceExporter, processor_for
from lcel_trace.exporters import (
    BaseExporter,
    JsonlExporter,
    OtelExporter,
    SpanExporter,
    StructlogExporter,
    hand_in,
)
from lcel_trace.replay import reexport


def chain() -> Runnable[str, str]:
    return RunnableLambda(lambda text: text.upper(), name="shout") | RunnableLambda(
        lambda text: text + "!", name="bang"
    )


class Collecting:
    """The smallest exporter: the three methods, nothing declared."""

    def __init__(self) -> None:
        self.spans: list[Span] = []

    def export(self, spans: Sequence[Span]) -> None:
        self.spans.extend(spans)

    def force_flush(self, timeout_s: float | None = None) -> bool:
        return processor_for(self).drain(timeout_s)

    def shutdown(self) -> None:
        return None


def test_an_opentelemetry_sdk_span_exporter_handed_to_trace_receives_the_spans() -> None:
    memory = InMemorySpanExporter()
    traced = trace(chain(), exporters=[memory])
    assert traced.invoke("hi") == "HI!"
    assert flush_all(30)
    names = sorted(span.name for span in memory.get_finished_spans())
    assert names == ["bang", "invoke_workflow RunnableSequence", "shout"]
    wrapper = hand_in(memory).exporter
    assert isinstance(wrapper, OtelExporter)
    assert hand_in(memory).exporter is wrapper  # one wrapper per handed-in exporter
    assert exporter_stats(memory).failed_calls == 0  # the stats of the one standing in
    wrapper.shutdown()
    assert hand_in(memory).exporter is not wrapper  # a shut-down one is replaced


def test_an_opentelemetry_sdk_span_exporter_handed_to_reexport_receives_the_file(
    tmp_path: Path,
) -> None:
    path = tmp_path / "runs.jsonl"
    with JsonlExporter(path) as jsonl:
        trace(chain(), exporters=[jsonl]).invoke("hi")
    memory = InMemorySpanExporter()
    assert reexport(path, [memory]) == 1
    assert sorted(s.name for s in memory.get_finished_spans()) == [
        "bang",
        "invoke_workflow RunnableSequence",
        "shout",
    ]
    hand_in(memory).exporter.shutdown()


def test_console_span_exporter_handed_to_trace_prints_the_spans() -> None:
    out = io.StringIO()
    traced = trace(chain(), exporters=[ConsoleSpanExporter(out=out)])
    assert traced.invoke("hi") == "HI!"
    assert flush_all(30)
    printed = out.getvalue()
    assert '"name": "shout"' in printed
    assert '"lcel.run_type": "lambda"' in printed


def test_an_object_shaped_like_an_opentelemetry_exporter_is_refused_with_what_to_pass() -> None:
    class LooksLikeOtel:  # not an SDK subclass: its export returns a SpanExportResult
        def export(self, spans: Any) -> Any:
            return None

        def force_flush(self, timeout_millis: int = 30000) -> bool:
            return True

        def shutdown(self) -> None:
            return None

    with pytest.raises(TypeError, match=r"looks like an OpenTelemetry SpanExporter.*OtelExporter"):
        trace(chain(), exporters=[LooksLikeOtel()])  # type: ignore[list-item]


@pytest.mark.parametrize(
    ("wrong", "hint"),
    [
        (object(), "lacks export, force_flush, shutdown"),
        (TracerProvider(), r"For a TracerProvider, pass OtelExporter\(provider\)"),
        (SimpleSpanProcessor(InMemorySpanExporter()), "For a SpanProcessor"),
    ],
)
def test_a_wrong_object_is_refused_when_handed_in_not_on_a_call(wrong: object, hint: str) -> None:
    with pytest.raises(TypeError, match=hint):
        trace(chain(), exporters=[wrong])  # type: ignore[list-item]


def test_an_undeclared_exporters_per_record_hooks_are_read_once_and_called() -> None:
    class Undeclared(Collecting):
        def __init__(self) -> None:
            super().__init__()
            self.ends: list[str] = []

        def on_trace_end(self, end: Any) -> None:
            self.ends.append(end.status)

    exporter = Undeclared()
    trace(chain(), exporters=[exporter]).invoke("hi")
    assert exporter.force_flush(30)
    assert exporter.ends == ["ok"]
    assert processor_for(exporter).capabilities == ExporterCapabilities(receives="records")


def test_hooks_that_need_a_declaration_are_refused_rather_than_silently_ignored() -> None:
    class Undeclared(Collecting):
        max_queue = 10

        def on_batch(self, records: object) -> None:
            return None

    with pytest.raises(TypeError, match="has on_batch, max_queue but declares no capabilities"):
        trace(chain(), exporters=[Undeclared()])


def test_a_declaration_is_checked_against_the_hooks_it_needs() -> None:
    class Claims(Collecting):
        capabilities = ExporterCapabilities(receives="batches")

    class NotADataclass(Collecting):
        capabilities = ("records",)

    with pytest.raises(TypeError, match="declares receives='batches' but lacks on_batch, on_idle"):
        trace(chain(), exporters=[Claims()])
    with pytest.raises(TypeError, match="capabilities must be an ExporterCapabilities, got tuple"):
        trace(chain(), exporters=[NotADataclass()])
    with pytest.raises(ValueError, match="chunks must be 'none', 'root' or 'all'"):
        ExporterCapabilities(chunks="some")  # type: ignore[arg-type]


def test_legacy_class_attributes_on_a_base_exporter_subclass_fail_at_definition() -> None:
    with pytest.raises(TypeError, match="max_queue are declared in capabilities now"):

        class Old(BaseExporter):
            max_queue = 10


def test_capabilities_are_read_once_when_handed_in() -> None:
    class Counted(Collecting):
        reads = 0

        @property
        def capabilities(self) -> ExporterCapabilities:
            type(self).reads += 1
            return ExporterCapabilities(max_queue=50)

    exporter = Counted()
    traced = trace(chain(), exporters=[exporter])
    assert Counted.reads == 1
    for _ in range(5):
        traced.invoke("hi")
    assert exporter.force_flush(30)
    assert len(exporter.spans) == 15
    assert Counted.reads == 1


def test_an_undeclared_exporter_with_on_event_receives_events_as_the_design_says() -> None:
    class WithEvents(Collecting):
        def __init__(self) -> None:
            super().__init__()
            self.kinds: list[str] = []

        def on_event(self, event: Any) -> None:
            self.kinds.append(event.kind)

    exporter = WithEvents()
    trace(chain(), exporters=[exporter]).invoke("hi")
    assert exporter.force_flush(30)
    assert exporter.kinds.count("start") == 3
    assert exporter.kinds.count("end") == 3
    assert len(exporter.spans) == 3


@pytest.mark.parametrize("kind", ["jsonl", "otel", "structlog", "sdk"])
def test_force_flush_with_nothing_queued_returns_true_even_with_no_time_to_wait(
    kind: str, tmp_path: Path
) -> None:
    exporters: dict[str, Any] = {
        "jsonl": lambda: JsonlExporter(tmp_path / "runs.jsonl"),
        "otel": lambda: OtelExporter(TracerProvider()),
        "structlog": lambda: StructlogExporter(structlog.get_logger("quiet")),
        "sdk": lambda: hand_in(InMemorySpanExporter()).exporter,
    }
    exporter = exporters[kind]()
    assert exporter.force_flush(timeout_s=0) is True  # never touched
    if kind != "structlog":  # it would log to stdout
        trace(chain(), exporters=[exporter]).invoke("hi")
        assert exporter.force_flush(timeout_s=30) is True
    assert exporter.force_flush(timeout_s=0) is True  # drained: nothing left to wait for
    exporter.shutdown()


def test_a_flush_with_nothing_queued_leaves_the_worker_running(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(export, "WORKER_IDLE_S", 3600.0)  # only a wake-up would end it
    exporter = JsonlExporter(tmp_path / "runs.jsonl")
    trace(chain(), exporters=[exporter]).invoke("hi")
    assert exporter.force_flush(30)
    worker = exporter.processor._thread
    assert worker is not None
    assert exporter.force_flush(0)
    assert exporter.processor._thread is worker  # not woken, so not sent idle
    exporter.shutdown()


def test_span_exporter_is_the_deprecated_name_of_trace_exporter() -> None:
    assert SpanExporter is TraceExporter
    assert isinstance(Collecting(), TraceExporter)


def test_jsonl_takes_max_attr_chars_and_the_old_max_value_chars_with_a_warning(
    tmp_path: Path,
) -> None:
    with JsonlExporter(tmp_path / "new.jsonl", max_attr_chars=5) as new:
        trace(chain(), exporters=[new]).invoke("abcdefghij")
    with pytest.warns(DeprecationWarning, match="now max_attr_chars"):
        old = JsonlExporter(tmp_path / "old.jsonl", max_value_chars=5)
    assert old.max_attr_chars == 5
    old.shutdown()
    lines = [json.loads(line) for line in (tmp_path / "new.jsonl").read_text().splitlines()]
    starts = [line for line in lines if line.get("kind") == "start"]
    assert [line["data"]["input"] for line in starts] == [
        "abcde…[truncated 5 chars]",  # the sequence
        "abcde…[truncated 5 chars]",  # shout
        "ABCDE…[truncated 5 chars]",  # bang
    ]


def test_structlog_cuts_content_at_the_traced_runnables_lower_limit() -> None:
    entries: list[dict[str, Any]] = []

    class Sink:
        def info(self, event: str, **fields: Any) -> None:
            entries.append({"event": event, **fields})

    exporter = StructlogExporter(Sink())
    assert exporter.max_attr_chars == 4096  # as OtelExporter's and trace()'s default
    trace(chain(), exporters=[exporter], max_attr_chars=10).invoke("x" * 50)
    assert exporter.force_flush(30)
    spans = [e for e in entries if e["event"] == "span"]
    assert spans
    assert all(e["inputs"].startswith('"xxxxxxxxx…[truncated') for e in spans[:1])
    exporter.shutdown()
