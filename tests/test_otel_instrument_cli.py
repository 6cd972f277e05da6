"""The `opentelemetry-instrument` path, as the README gives it: one trace id per request
(ChatOpenAI's HTTP spans, made by the auto-loaded httpx instrumentation, inside
lcel-trace's tree), the `LCEL_TRACE_*` settings honoured, and `import lcel_trace.auto`
never breaking the application."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lcel_trace.replay import read_traces
from lcel_trace.testing.openai_server import OpenAIServer

APP = textwrap.dedent("""
    import os
    from langchain_core.output_parsers import StrOutputParser
    from langchain_core.prompts import ChatPromptTemplate
    from langchain_openai import ChatOpenAI

    model = ChatOpenAI(base_url=os.environ["MODEL_URL"], api_key="test", model="fake-gpt")
    chain = ChatPromptTemplate.from_template("a joke about {topic}") | model | StrOutputParser()
    for topic in ("parrots", "owls"):
        print(chain.invoke({"topic": topic}), flush=True)
""")


@pytest.fixture(scope="module")
def model_server() -> Iterator[OpenAIServer]:
    with OpenAIServer(["Polly wants a punchline."] * 20) as server:
        yield server


def run_instrumented(tmp_path: Path, server: OpenAIServer, **env: str) -> Any:
    (tmp_path / "app.py").write_text(APP)
    command = shutil.which("opentelemetry-instrument", path=str(Path(sys.executable).parent))
    assert command is not None, "opentelemetry-instrument is not installed (dev extra)"
    return subprocess.run(
        [command, sys.executable, "app.py"],
        cwd=tmp_path,
        env={
            **os.environ,
            "MODEL_URL": server.base_url,
            # the README's settings: spans to stdout as JSON, no metrics or logs exporters
            "OTEL_TRACES_EXPORTER": "console",
            "OTEL_METRICS_EXPORTER": "none",
            "OTEL_LOGS_EXPORTER": "none",
            "OTEL_SERVICE_NAME": "joke-app",
            **env,
        },
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def console_spans(stdout: str) -> list[dict[str, Any]]:
    """The ConsoleSpanExporter's JSON objects (one per span, pretty-printed) in stdout."""
    decoder, spans, at = json.JSONDecoder(), [], 0
    while (start := stdout.find("{", at)) != -1:
        span, at = decoder.raw_decode(stdout, start)
        spans.append(span)
    return spans


def test_opentelemetry_instrument_gives_one_trace_per_request_with_http_under_chat(
    tmp_path: Path, model_server: OpenAIServer
) -> None:
    out = tmp_path / "runs.jsonl"
    done = run_instrumented(tmp_path, model_server, LCEL_TRACE_JSONL=str(out))
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines().count("Polly wants a punchline.") == 2
    spans = console_spans(done.stdout)
    trace_ids = {s["context"]["trace_id"] for s in spans}
    assert len(trace_ids) == 2, [(s["name"], s["context"]["trace_id"]) for s in spans]
    by_id = {s["context"]["span_id"]: s for s in spans}
    posts = [s for s in spans if s["name"].startswith("POST")]
    assert len(posts) == 2
    for post in posts:
        assert by_id[post["parent_id"]]["name"] == "chat fake-gpt"
    # LCEL_TRACE_JSONL is honoured by the instrumentor: the same traces, same ids
    traces = read_traces(out)
    assert {f"0x{t.trace_id}" for t in traces} == trace_ids


def test_the_instrumentor_honours_sample_and_capture_content(
    tmp_path: Path, model_server: OpenAIServer
) -> None:
    out = tmp_path / "runs.jsonl"
    done = run_instrumented(
        tmp_path,
        model_server,
        LCEL_TRACE_JSONL=str(out),
        LCEL_TRACE_CAPTURE_CONTENT="0",
        LCEL_TRACE_SAMPLE="0",
    )
    assert done.returncode == 0, done.stderr
    assert not any(s["name"].startswith("chat") for s in console_spans(done.stdout))
    assert not out.exists() or read_traces(out) == []

    kept = tmp_path / "kept.jsonl"
    done = run_instrumented(
        tmp_path, model_server, LCEL_TRACE_JSONL=str(kept), LCEL_TRACE_CAPTURE_CONTENT="0"
    )
    assert done.returncode == 0, done.stderr
    assert "punchline" not in kept.read_text()
    assert len(read_traces(kept)) == 2


def test_an_unwritable_jsonl_path_is_logged_and_the_app_still_runs(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    code = textwrap.dedent("""
        import logging, sys
        logging.basicConfig(stream=sys.stderr, level=logging.WARNING)
        import lcel_trace.auto
        from langchain_core.runnables import RunnableLambda
        print(RunnableLambda(lambda x: x + 1).invoke(1))
        from lcel_trace.instrumentation import is_instrumented
        print(is_instrumented())
    """)
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env={
            **os.environ,
            "LCEL_TRACE_JSONL": str(blocker / "runs.jsonl"),
            "LCEL_TRACE_SAMPLE": "lots",
            "LCEL_TRACE_OTEL": "1",  # still traced, without the file
        },
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "2\nTrue\n"
    assert "LCEL_TRACE_JSONL" in done.stderr
    assert str(blocker / "runs.jsonl") in done.stderr
    assert "LCEL_TRACE_SAMPLE" in done.stderr
    assert "lots" in done.stderr
