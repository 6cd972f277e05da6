"""Long waits say what they are doing on a terminal's stderr, and nothing in a pipe.

Each case runs the real command twice: once with stderr on a pseudo-terminal (the `pty`
module: what a person at a terminal has), once with stderr on a pipe (CI logs, `2>file`).
"""

from __future__ import annotations

import fcntl
import os
import pty
import re
import socket
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest

from lcel_trace import capture, trace
from lcel_trace.exporters import JsonlExporter

REPO = Path(__file__).resolve().parents[1]


def run_on_terminal(argv: list[str], *, env: dict[str, str], timeout_s: float = 120) -> str:
    """Run `argv` with stdin/stdout/stderr on a new 160x40 pseudo-terminal; all it wrote."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 160, 0, 0))
    process = subprocess.Popen(
        argv, stdin=follower, stdout=follower, stderr=follower, env=env, cwd=REPO
    )
    os.close(follower)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            if time.monotonic() > deadline:
                pytest.fail(f"{argv} still running after {timeout_s} s")
            try:
                data = os.read(leader, 65536)
            except OSError:  # EIO: every writer has closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        process.wait(timeout=timeout_s)
    finally:
        os.close(leader)
        if process.poll() is None:
            process.kill()
            process.wait()
    return b"".join(chunks).decode("utf-8", "replace")


def run_in_pipe(argv: list[str], *, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv,
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=120,
        check=False,
        stdin=subprocess.DEVNULL,
    )


def fake_venv(tmp_path: Path) -> Path:
    """A venv whose python only records what it was asked to do: venv.sh's first-run
    install, without the minute it really takes."""
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    python = venv / "bin" / "python"
    python.write_text(f'#!/bin/sh\necho "$@" >> {venv}/calls\n', encoding="utf-8")
    python.chmod(0o755)
    return venv


def venv_env(venv: Path) -> dict[str, str]:
    return {**os.environ, "LCEL_TRACE_VENV": str(venv), "PYTHON": sys.executable}


SOURCE_VENV = ["bash", "-c", "source .ci/venv.sh examples && echo ready"]


def test_first_run_set_up_says_what_it_installs_on_a_terminal(tmp_path: Path) -> None:
    venv = fake_venv(tmp_path)
    shown = run_on_terminal(SOURCE_VENV, env=venv_env(venv))
    assert "lcel-trace: setting up" in shown
    assert "installing lcel-trace and the examples' extras" in shown
    assert "about a minute" in shown
    assert "lcel-trace: installed in" in shown
    assert shown.rstrip().endswith("ready")
    assert f"-e {REPO}[examples]" in (venv / "calls").read_text(encoding="utf-8")


def test_first_run_set_up_is_quiet_in_a_pipe(tmp_path: Path) -> None:
    venv = fake_venv(tmp_path)
    done = run_in_pipe(SOURCE_VENV, env=venv_env(venv))
    assert done.returncode == 0, done.stderr
    assert (done.stdout, done.stderr) == ("ready\n", "")
    assert f"-e {REPO}[examples]" in (venv / "calls").read_text(encoding="utf-8")


def test_a_set_up_venv_says_nothing_on_a_terminal(tmp_path: Path) -> None:
    venv = fake_venv(tmp_path)
    run_in_pipe(SOURCE_VENV, env=venv_env(venv))
    assert run_on_terminal(SOURCE_VENV, env=venv_env(venv)).strip() == "ready"


@pytest.fixture
def trace_file(tmp_path: Path) -> Path:
    from langchain_core.runnables import RunnableLambda

    path = tmp_path / "runs.jsonl"
    with JsonlExporter(path) as exporter, capture():
        trace(RunnableLambda(lambda x: x + 1), exporters=[exporter], name="add").invoke(1)
    return path


def unreachable_endpoint() -> str:
    """A loopback port nobody listens on: connections are refused, so the exporter retries."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def replay_argv(path: Path, endpoint: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "lcel_trace",
        "replay",
        str(path),
        "--otlp-endpoint",
        endpoint,
        "--timeout",
        "3",
    ]


def test_replay_to_an_unreachable_collector_says_it_is_retrying_on_a_terminal(
    trace_file: Path,
) -> None:
    endpoint = unreachable_endpoint()
    shown = run_on_terminal(replay_argv(trace_file, endpoint), env=dict(os.environ))
    assert f"connecting to {endpoint}/v1/traces (gives up after 3 s)" in shown
    retrying = rf"{re.escape(endpoint)}/v1/traces did not take the spans; retrying in [0-9.]+ s"
    assert re.search(retrying, shown)
    assert "1 span(s) not delivered" in shown


def test_replay_to_an_unreachable_collector_prints_one_line_in_a_pipe(trace_file: Path) -> None:
    endpoint = unreachable_endpoint()
    done = run_in_pipe(replay_argv(trace_file, endpoint), env=dict(os.environ))
    assert done.returncode == 1
    assert done.stdout == ""
    (line,) = done.stderr.splitlines()
    assert line.startswith(f"lcel-trace: error: 1 span(s) not delivered to {endpoint}/v1/traces")


STEPS_SCRIPT = """
from lcel_trace import progress
with progress.steps({"phase one": 2, "phase two": 1}) as shown:
    shown.begin("phase one")
    shown.advance("phase one")
    shown.advance("phase one")
    shown.begin("phase two")
    shown.advance("phase two")
with progress.status("connecting to the collector") as say:
    say("retrying in 1 s")
print("done")
"""


def test_steps_and_status_draw_on_a_terminal() -> None:
    shown = run_on_terminal([sys.executable, "-c", STEPS_SCRIPT], env=dict(os.environ))
    assert "phase one" in shown
    assert "2/2" in shown
    assert "phase two" in shown
    assert "connecting to the collector" in shown or "retrying in 1 s" in shown
    assert shown.rstrip().endswith("done")


def test_steps_and_status_draw_nothing_in_a_pipe() -> None:
    done = run_in_pipe([sys.executable, "-c", STEPS_SCRIPT], env=dict(os.environ))
    assert (done.returncode, done.stdout, done.stderr) == (0, "done\n", "")
