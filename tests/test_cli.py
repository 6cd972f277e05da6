"""The `lcel-trace` command, run as a user runs it: a real subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from langchain_core.language_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnableLambda

from lcel_trace import trace
from lcel_trace.exporters import JsonlExporter
from tests.otlp_receiver import otlp_receiver


def cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lcel_trace", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def record(path: Path, runs: int = 2, fail: bool = False) -> None:
    model = GenericFakeChatModel(
        messages=iter(
            [
                AIMessage(
                    content="a b",
                    usage_metadata={"input_tokens": 2, "output_tokens": 3, "total_tokens": 5},
                )
            ]
            * 10
        )  # type: ignore[arg-type]
    )
    chain = ChatPromptTemplate.from_template("{q}") | model | StrOutputParser()
    with JsonlExporter(path) as exporter:
        traced = trace(chain, exporters=[exporter], name="joke")
        for i in range(runs):
            traced.invoke({"q": str(i)})
        if fail:

            def boom(_: object) -> None:
                raise ValueError("boom")

            with pytest.raises(ValueError, match="boom"):
                trace(RunnableLambda(boom), exporters=[exporter]).invoke("x")


@pytest.fixture
def trace_file(tmp_path: Path) -> Path:
    path = tmp_path / "runs.jsonl"
    record(path, fail=True)
    return path


def test_show_prints_a_plain_tree_per_trace_when_piped(trace_file: Path) -> None:
    result = cli("show", str(trace_file))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "\x1b[" not in out  # no colour codes when stdout is not a terminal
    assert out.count("joke trace") == 2
    assert "GenericFakeChatModel (chat_model," in out
    assert "tokens 2 in / 3 out) ok" in out  # the model span, tokens by direction
    assert "boom (lambda," in out
    assert "ValueError: boom" in out


def test_show_json_is_machine_readable(trace_file: Path) -> None:
    result = cli("show", str(trace_file), "--json")
    traces = json.loads(result.stdout)
    assert [t["status"] for t in traces] == ["ok", "ok", "error"]
    assert [c["name"] for c in traces[0]["root"]["children"]] == [
        "ChatPromptTemplate",
        "GenericFakeChatModel",
        "StrOutputParser",
    ]


def test_stats_per_span_name(trace_file: Path) -> None:
    rows = {row["name"]: row for row in json.loads(cli("stats", str(trace_file), "--json").stdout)}
    assert rows["GenericFakeChatModel"]["count"] == 2
    assert rows["GenericFakeChatModel"]["total_tokens"] == 10
    assert rows["boom"]["error_rate"] == 1.0
    assert rows["RunnableSequence"]["latency_p50_ms"] > 0
    table = cli("stats", str(trace_file)).stdout.splitlines()
    assert table[0].split()[:5] == ["name", "model", "level", "count", "error_rate"]


def test_validate_summarises_a_good_file(trace_file: Path) -> None:
    result = cli("validate", str(trace_file))
    assert result.returncode == 0
    assert result.stdout.strip().endswith("ok, 3 traces, 9 spans, 18 events")


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b'{"type": "span"}\n', "1: 'trace_id' must be a string"),
        (b"\xff\xfe binary\n", "1: not an lcel-trace file"),
        (b'{"type": "trace_start", "trace_id": "t", "format": "other/9"}\n', "unsupported format"),
    ],
)
def test_bad_input_is_one_line_on_stderr_and_exit_2(
    tmp_path: Path, content: bytes, reason: str
) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_bytes(content)
    for command in ("show", "stats", "validate"):
        result = cli(command, str(path))
        assert result.returncode == 2
        assert result.stderr.count("\n") == 1
        assert reason in result.stderr
        assert "Traceback" not in result.stderr
    missing = cli("show", str(tmp_path / "missing.jsonl"))
    assert missing.returncode == 2
    assert "No such file" in missing.stderr
    usage = cli("frobnicate")
    assert usage.returncode == 2
    assert usage.stderr.count("\n") == 1


def test_help_on_every_command() -> None:
    for command in ("show", "stats", "validate", "replay", "tail"):
        result = cli(command, "--help")
        assert result.returncode == 0
        assert "usage: lcel-trace" in result.stdout


def test_replay_to_console_and_to_an_otlp_endpoint(trace_file: Path) -> None:
    console = cli("replay", str(trace_file), "--console")
    assert console.returncode == 0, console.stderr
    assert console.stdout.count('"name": "invoke_workflow joke"') == 2
    with otlp_receiver() as receiver:
        sent = cli("replay", str(trace_file), "--otlp-endpoint", receiver.endpoint)
    assert sent.returncode == 0, sent.stderr
    assert len(receiver.spans) == 9
    assert "replayed 3 traces" in sent.stderr
