"""The CI bar's own checks (tests/instrumented_suites/): the validating exporter flags
each kind of broken trace and passes a sound one, a trace left open is reported, a
pytest process that finished its tests but does not exit is caught, and the lists of
left-out and allowed tests are well formed.

The stage itself runs other libraries' suites for minutes; these are its parts, fast.
"""

from __future__ import annotations

import importlib.util
import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from langchain_core.runnables import RunnableLambda

from lcel_trace import session as lcel_session
from lcel_trace import trace
from lcel_trace.span import Span, TraceEnd, TraceStart

SUITES_DIR = Path(__file__).parent / "instrumented_suites"


def _load(name: str, filename: str) -> ModuleType:
    """A module of the stage's directory, which is no package (pytest collects no
    test from it), under a name of its own."""
    spec = importlib.util.spec_from_file_location(name, SUITES_DIR / filename)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


plugin: Any = _load("instrumented_suites_plugin", "instrument_everything.py")
runner: Any = _load("instrumented_suites_run", "run.py")


def _span(span_id: str, parent_id: str | None, **fields: object) -> Span:
    values: dict[str, object] = {"start_ns": 10, "end_ns": 20, "status": "ok"}
    values.update(fields)
    return Span("t1", span_id, parent_id, f"step-{span_id}", "chain", **values)  # type: ignore[arg-type]


START = TraceStart(trace_id="t1", name="chain", start_ns=5, root_run_id="root")


def test_a_sound_trace_has_no_problem() -> None:
    spans = [_span("root", None), _span("child", "root")]
    end = TraceEnd(trace_id="t1", status="ok", end_ns=30, span_count=2, event_count=4)
    assert plugin.check_records(START, spans, end) == []


@pytest.mark.parametrize(
    ("spans", "end", "expected"),
    [
        ([_span("root", None)], TraceEnd("t1", "weird", 30, 1, 0), "status 'weird'"),  # type: ignore[arg-type]
        ([_span("root", None)], TraceEnd("t1", "ok", 1, 1, 0), "ends before it starts"),
        ([_span("root", None)], TraceEnd("t1", "ok", 30, 2, 0), "says 2 spans, 1 arrived"),
        ([_span("root", None)] * 2, TraceEnd("t1", "ok", 30, 2, 0), "duplicate span ids"),
        ([_span("other", None)], TraceEnd("t1", "ok", 30, 1, 0), "no span for the root run"),
        (
            [_span("root", None), _span("child", "elsewhere")],
            TraceEnd("t1", "ok", 30, 2, 0),
            "parent 'elsewhere' not in the trace",
        ),
        ([_span("root", "not-otel")], TraceEnd("t1", "ok", 30, 1, 0), "is not an OTel span"),
        ([_span("root", None, end_ns=1)], TraceEnd("t1", "ok", 30, 1, 0), "end_ns 1 < start_ns"),
        ([_span("root", None, status="odd")], TraceEnd("t1", "ok", 30, 1, 0), "status 'odd'"),
    ],
)
def test_each_inconsistency_is_named(spans: list[Span], end: TraceEnd, expected: str) -> None:
    problems = plugin.check_records(START, spans, end)
    assert any(expected in p for p in problems), problems


@pytest.fixture
def tracked(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The plugin's exporter and session tracking, undone after the test."""
    monkeypatch.setattr(lcel_session.TraceSession, "__init__", lcel_session.TraceSession.__init__)
    exporter = plugin.ValidatingExporter()
    monkeypatch.setattr(plugin, "EXPORTER", exporter)
    plugin._track_sessions()
    plugin._sessions.clear()
    logging.getLogger("lcel_trace").addHandler(plugin.ERROR_LOG)
    yield exporter
    logging.getLogger("lcel_trace").removeHandler(plugin.ERROR_LOG)
    plugin.ERROR_LOG.errors.clear()
    plugin._sessions.clear()
    exporter.shutdown()


def _words(text: str) -> Iterator[str]:
    yield from text.split()


def test_a_real_traced_call_and_stream_pass(tracked: Any) -> None:
    chain = trace(RunnableLambda(str.upper) | RunnableLambda(_words), exporters=[tracked])
    assert chain.invoke("a b") == "AB"  # a generator step's chunks, added up
    assert list(chain.stream("c d")) == ["C", "D"]
    assert plugin.check_test() == []
    assert tracked.traces_checked == 2


def test_a_trace_left_open_is_reported(tracked: Any) -> None:
    chain = trace(RunnableLambda(str.upper) | RunnableLambda(_words), exporters=[tracked])
    stream = chain.stream("e f")
    assert next(stream) == "E"  # held open: its trace cannot have ended
    problems = plugin.check_test()
    assert len(problems) == 1
    assert "never ended" in problems[0]
    stream.close()
    assert plugin.check_test() == []


def test_an_error_lcel_trace_logs_is_reported_once(tracked: Any) -> None:
    logging.getLogger("lcel_trace").error("exit_flush_incomplete")
    logging.getLogger("lcel_trace").warning("stream_close_failed")  # counted, not failed
    assert plugin.check_test() == ["lcel-trace logged an error: exit_flush_incomplete"]
    assert plugin.check_test() == []
    assert plugin.ERROR_LOG.warnings["stream_close_failed"] >= 1


def _run_one_test(tmp_path: Path, body: str, monkeypatch: pytest.MonkeyPatch) -> str | None:
    tree = tmp_path / "tree"
    (tree / "tests").mkdir(parents=True)
    (tree / "tests" / "test_one.py").write_text(body)
    monkeypatch.setattr(runner, "EXIT_GRACE_S", 3.0)
    suite = runner.Suite("demo", "", (), ("tests",), (), ("plain",))
    outcomes, problem = runner.run_pytest(sys.executable, suite, tree, "plain", tmp_path, [])
    assert outcomes == {"tests/test_one.py::test_one": {"outcome": "passed", "message": ""}}
    return problem


def test_a_process_that_does_not_exit_is_a_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = (
        "import threading\n"
        "def test_one():\n"
        "    threading.Thread(target=threading.Event().wait).start()  # never ends\n"
    )
    problem = _run_one_test(tmp_path, body, monkeypatch)
    assert problem is not None
    assert "did not exit" in problem


def test_a_process_that_exits_is_fine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert _run_one_test(tmp_path, "def test_one():\n    assert True\n", monkeypatch) is None


def _entries(name: str) -> dict[str, str]:
    entries: dict[str, str] = runner.common.read_allowed(SUITES_DIR / name)
    return entries


@pytest.mark.parametrize("name", ["left_out.txt", "allowed.txt"])
def test_every_listed_test_names_its_suite_and_reason(name: str) -> None:
    for key, reason in _entries(name).items():
        words = key.split()
        assert words[0] in runner.SUITES, key
        if name == "allowed.txt":
            assert words[1] in runner.SUITES[words[0]].modes[1:], key
        assert "::" in words[-1], key
        assert reason, f"{key} has no reason"
