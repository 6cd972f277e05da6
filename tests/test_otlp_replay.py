"""OTLP delivery, checked against a real HTTP receiver: `lcel-trace replay` (endpoint
resolution like the SDK's, one clear line and exit 1 when the collector refuses or is
unreachable), `opentelemetry-instrument` with the LcelTraceInstrumentor entry point,
and the OTLP example's honest exit code."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest
from langchain_core.language_models import FakeListChatModel
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate

from lcel_trace import trace
from lcel_trace.exporters import JsonlExporter
from tests.otlp_receiver import otlp_receiver

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
SPAN_NAMES = {"invoke_workflow RunnableSequence", "ChatPromptTemplate", "chat", "StrOutputParser"}


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("replay") / "runs.jsonl"
    model = FakeListChatModel(responses=["parrots talk back"])
    chain = ChatPromptTemplate.from_template("about {topic}") | model | StrOutputParser()
    with JsonlExporter(path) as exporter:
        traced = trace(chain, exporters=[exporter])
        traced.invoke({"topic": "one"})
        traced.invoke({"topic": "two"})
    return path


@pytest.fixture
def refusing() -> Iterator[str]:
    """A server that answers every POST with 404: a wrong path on a real collector."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture
def dead_endpoint() -> str:
    """A loopback port nothing listens on (bound, then closed)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def _env(**extra: str) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "LCEL_TRACE_"))}
    return {**clean, **extra}


def replay(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "lcel-trace"), "replay", *args],
        env=_env(**env),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize("suffix", ["", "/", "/v1/traces"])
def test_replay_sends_every_span_to_a_base_or_full_endpoint(recorded: Path, suffix: str) -> None:
    with otlp_receiver() as receiver:
        base = receiver.endpoint.removesuffix("/v1/traces")
        done = replay(str(recorded), "--otlp-endpoint", base + suffix)
        assert done.returncode == 0, done.stderr
        assert {s.name for s in receiver.spans} == SPAN_NAMES
        assert len(receiver.spans) == 8
    assert "replayed 2 traces (8 spans)" in done.stderr


def test_replay_reads_the_endpoint_from_the_environment_like_the_sdk(recorded: Path) -> None:
    with otlp_receiver() as receiver:
        base = receiver.endpoint.removesuffix("/v1/traces")
        done = replay(str(recorded), "--otlp-endpoint", OTEL_EXPORTER_OTLP_ENDPOINT=base)
        assert done.returncode == 0, done.stderr
        assert len(receiver.spans) == 8
        signal = replay(
            str(recorded),
            "--otlp-endpoint",
            OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=receiver.endpoint,
            OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9/unused",
        )
        assert signal.returncode == 0, signal.stderr
        assert len(receiver.spans) == 16


def test_replay_to_a_refusing_collector_exits_1_with_one_line(
    recorded: Path, refusing: str
) -> None:
    done = replay(str(recorded), "--otlp-endpoint", refusing, "--timeout", "2")
    assert done.returncode == 1
    (line,) = done.stderr.splitlines()
    assert line.startswith("lcel-trace: error: 8 span(s) not delivered to ")
    assert "404" in line


def test_replay_to_an_unreachable_collector_exits_1_with_one_line(
    recorded: Path, dead_endpoint: str
) -> None:
    done = replay(str(recorded), "--otlp-endpoint", dead_endpoint, "--timeout", "1")
    assert done.returncode == 1
    (line,) = done.stderr.splitlines()
    assert line.startswith(f"lcel-trace: error: 8 span(s) not delivered to {dead_endpoint}")


def test_replay_rejects_other_protocols_as_bad_input(recorded: Path) -> None:
    done = replay(str(recorded), "--otlp-endpoint", OTEL_EXPORTER_OTLP_PROTOCOL="grpc")
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        "lcel-trace: error: OTLP protocol 'grpc' is not supported; use http/protobuf"
    ]


@pytest.mark.parametrize(
    ("args", "env", "service"),
    [
        ((), {}, "lcel-trace"),
        ((), {"OTEL_SERVICE_NAME": "from-env"}, "from-env"),
        (("--service-name", "from-flag"), {"OTEL_SERVICE_NAME": "from-env"}, "from-flag"),
    ],
)
def test_replay_service_name(
    recorded: Path, args: tuple[str, ...], env: dict[str, str], service: str
) -> None:
    done = replay(str(recorded), "--console", *args, **env)
    assert done.returncode == 0, done.stderr
    assert f'"service.name": "{service}"' in done.stdout


def test_replay_conventions_both_adds_openinference(recorded: Path) -> None:
    gen_ai = replay(str(recorded), "--console")
    both = replay(str(recorded), "--console", "--conventions", "both")
    assert "openinference.span.kind" not in gen_ai.stdout
    assert "openinference.span.kind" in both.stdout
    assert "gen_ai.operation.name" in both.stdout


APP = """
from langchain_core.language_models import FakeListChatModel
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate

model = FakeListChatModel(responses=["parrots talk back"])
chain = ChatPromptTemplate.from_template("about {topic}") | model | StrOutputParser()
print(chain.invoke({"topic": "otel"}))
"""


def test_opentelemetry_instrument_exports_the_chain_through_the_entry_point(
    tmp_path: Path,
) -> None:
    app = tmp_path / "app.py"
    app.write_text(APP, encoding="utf-8")
    with otlp_receiver() as receiver:
        done = subprocess.run(
            [
                str(BIN / "opentelemetry-instrument"),
                *("--traces_exporter", "otlp"),
                *(sys.executable, str(app)),
            ],
            env=_env(
                OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint.removesuffix("/v1/traces"),
                OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
                OTEL_METRICS_EXPORTER="none",
                OTEL_LOGS_EXPORTER="none",
                OTEL_SERVICE_NAME="app",
                # only ours: the benchmark extra installs other LangChain instrumentors
                OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=",".join(
                    e.name
                    for e in entry_points(group="opentelemetry_instrumentor")
                    if e.name != "lcel_trace"
                ),
            ),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == "parrots talk back"
        assert {s.name for s in receiver.spans} == SPAN_NAMES
        (root,) = [s for s in receiver.spans if not s.parent_span_id]
        assert root.name == "invoke_workflow RunnableSequence"


def test_instrumentor_instruments_and_uninstruments() -> None:
    from langchain_core.runnables import Runnable
    from opentelemetry.sdk.trace import TracerProvider

    from lcel_trace.instrumentation import LcelTraceInstrumentor, is_instrumented

    original = Runnable.invoke
    instrumentor = LcelTraceInstrumentor()
    assert instrumentor.instrumentation_dependencies() == ("langchain-core >= 1.0",)
    instrumentor.instrument(tracer_provider=TracerProvider())
    try:
        assert is_instrumented()
        assert Runnable.invoke is not original
    finally:
        instrumentor.uninstrument()
    assert not is_instrumented()
    assert Runnable.invoke is original


def test_otlp_example_exits_non_zero_when_export_fails(dead_endpoint: str) -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "export_otlp.py")],
        env=_env(OTEL_EXPORTER_OTLP_ENDPOINT=dead_endpoint, OTEL_EXPORTER_OTLP_TIMEOUT="1"),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1
    assert done.stdout.strip().endswith("FAILED")


def test_otlp_example_exits_zero_when_delivered() -> None:
    with otlp_receiver() as receiver:
        done = subprocess.run(
            [sys.executable, str(ROOT / "examples" / "export_otlp.py")],
            env=_env(OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint.removesuffix("/v1/traces")),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip().endswith("ok")
        assert receiver.spans
