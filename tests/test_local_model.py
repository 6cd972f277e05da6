"""A real small model (SmolLM2-135M via llama-cpp-python's OpenAI-compatible server)
streaming through ChatOpenAI, traced. Marked `real_model`: CI builds the server and runs
these once per submission (`pytest -m real_model`, see .ci/run)."""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_openai import ChatOpenAI

from lcel_trace import capture, trace

pytestmark = pytest.mark.real_model


def load_example() -> object:
    path = Path(__file__).resolve().parents[1] / "examples" / "local_model.py"
    spec = importlib.util.spec_from_file_location("local_model_example", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    if "LCEL_TRACE_LLAMA_PYTHON" not in os.environ:
        pytest.fail("set LCEL_TRACE_LLAMA_PYTHON to a python with llama-cpp-python[server]")
    example = load_example()
    with example.llama_server() as url:  # type: ignore[attr-defined]
        yield url


def model(base_url: str) -> ChatOpenAI:
    return ChatOpenAI(
        base_url=base_url,
        api_key="local",  # type: ignore[arg-type]
        model="smollm2",
        max_tokens=16,
        temperature=0,
        stream_usage=True,
    )


def test_streamed_real_model_spans_are_honest_about_missing_usage(base_url: str) -> None:
    chain = ChatPromptTemplate.from_template("Say one sentence about {topic}.") | model(base_url)
    chain = chain | StrOutputParser()
    with capture() as cap:
        chunks = list(trace(chain).stream({"topic": "parrots"}))
    (recorded,) = cap.traces
    chat = recorded.span("ChatOpenAI")
    assert recorded.status == "ok"
    assert "".join(chunks) == recorded.root.outputs
    assert chat.chunk_count >= 3
    assert chat.first_chunk_ns is not None
    # llama-cpp-python's server ignores stream_options.include_usage: nothing to report
    assert chat.usage is None


def test_invoked_real_model_reports_usage_and_keeps_the_message_type(base_url: str) -> None:
    with capture() as cap:
        traced = trace(model(base_url)).invoke("Say hello.")
    plain = model(base_url).invoke("Say hello.")
    # this server samples differently call to call, even at temperature 0: compare shape
    assert type(traced) is type(plain)
    assert traced.content
    assert traced.response_metadata["finish_reason"] in ("stop", "length")
    span = cap.traces[0].root
    assert span.usage is not None
    assert span.usage.output_tokens is not None
    assert span.usage.output_tokens > 0


def test_example_runs_end_to_end() -> None:
    import subprocess

    result = subprocess.run(
        [sys.executable, str(Path(__file__).resolve().parents[1] / "examples" / "local_model.py")],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "streamed usage: None; invoked usage: Usage(" in result.stdout
