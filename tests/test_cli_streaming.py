"""Commands over many files and pipes: tail on a FIFO, show/stats/html over sets."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.trace_data import lines, qa_trace

pytestmark = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="POSIX FIFOs")


def lcel_trace(*args: str | Path) -> list[str]:
    return [sys.executable, "-m", "lcel_trace", *map(str, args)]


def test_tail_timeout_ends_on_a_fifo_nobody_writes_to(tmp_path: Path) -> None:
    fifo = tmp_path / "live.jsonl"
    os.mkfifo(fifo)
    result = subprocess.run(
        lcel_trace("tail", fifo, "--timeout", "1"),
        capture_output=True,
        text=True,
        timeout=60,  # a hang fails here, long after the 1 s asked for
        check=False,
    )
    assert result.returncode == 0
    assert "--timeout 1 s reached, 0 traces shown" in result.stderr


def test_tail_shows_traces_written_into_a_fifo_by_an_idle_writer(tmp_path: Path) -> None:
    fifo = tmp_path / "live.jsonl"
    os.mkfifo(fifo)
    tail = subprocess.Popen(
        lcel_trace("tail", fifo, "--exit-after", "1", "--timeout", "30"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        with open(fifo, "wb") as writer:  # waits for tail to open its end
            writer.writelines(lines(qa_trace(name="through-a-pipe")))
            writer.flush()
            out, err = tail.communicate(timeout=120)  # the writer stays open, idle
    finally:
        tail.kill()
        tail.wait()
    assert tail.returncode == 0, err
    assert "through-a-pipe trace" in out
