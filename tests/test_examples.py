"""The examples run end to end as a user would run them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from lcel_trace.replay import read_traces

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_quickstart_streams_prints_the_tree_and_writes_a_readable_trace(tmp_path: Path) -> None:
    out = tmp_path / "trace.jsonl"
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "quickstart.py"), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")},  # offline
    )
    assert result.returncode == 0, result.stderr
    assert "|Why| do| parrots|" in result.stdout
    for name in ("RunnableSequence", "ChatPromptTemplate", "ChatOpenAI", "StrOutputParser"):
        assert name in result.stdout
    assert "ttft" in result.stdout
    assert "read back: identical" in result.stdout
    (written,) = read_traces(out)
    assert written.status == "ok"
    assert written.root.outputs == (
        "Why do parrots make great storytellers? They always repeat the best parts!"
    )
    model = written.span("ChatOpenAI")
    assert model.usage is not None
    assert model.usage.output_tokens == 12
    assert model.model == "fake-gpt"


def test_structlog_example_lines_carry_the_trace_id_of_their_run() -> None:
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "structlog_correlation.py")],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    trace_id = result.stderr.strip().rsplit(" ", 1)[-1]
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    (app_line,) = [line for line in lines if line["event"] == "checking topic"]
    assert app_line["trace_id"] == trace_id
    spans = {line["span_id"]: line for line in lines if line["event"] == "span"}
    assert spans[app_line["span_id"]]["name"] == "check_topic"
    assert {line["trace_id"] for line in lines} == {trace_id}


def test_export_otlp_example_delivers_to_the_endpoint_in_the_environment() -> None:
    from tests.otlp_receiver import otlp_receiver

    with otlp_receiver() as receiver:
        endpoint = receiver.endpoint.removesuffix("/v1/traces")
        result = subprocess.run(
            [sys.executable, str(EXAMPLES / "export_otlp.py")],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            env={**os.environ, "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint},
        )
    assert result.returncode == 0, result.stderr
    assert "Parrots talk back ." in result.stdout
    names = {span.name for span in receiver.spans}
    assert names == {
        "invoke_workflow joke",
        "ChatPromptTemplate",
        "chat",
        "StrOutputParser",
    }
    assert all(s.attributes["openinference.span.kind"] for s in receiver.spans)


def test_replay_example_replays_and_reexports_identically(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "replay_trace.py"), "--dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "spans identical" in result.stdout
    assert (tmp_path / "reexported.jsonl").stat().st_size > 0


def test_custom_exporter_example_counts_spans_and_prints_each_trace_end() -> None:
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "custom_exporter.py")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "41"
    assert lines[1].startswith("trace ")
    assert lines[1].endswith(" ok: 3 spans")
    assert lines[2] == "{'ok': 3}"
