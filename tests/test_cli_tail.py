"""`lcel-trace tail`, run as a user runs it: it follows a file like `tail -F`.

No test sleeps and hopes: each waits, with a generous deadline, for something tail
prints (`following FILE` on stderr once it has read to the end, a trace on stdout)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.test_cli import record
from tests.test_reader import tid, trace_lines

DEADLINE_S = 120.0


class Follower:
    """A running `lcel-trace tail`, its stdout and stderr collected line by line."""

    def __init__(self, *args: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "lcel_trace", "tail", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.out: list[str] = []
        self.err: list[str] = []
        self._changed = threading.Condition()
        assert self.process.stdout is not None
        assert self.process.stderr is not None
        self._readers = [
            threading.Thread(target=self._collect, args=(self.process.stdout, self.out)),
            threading.Thread(target=self._collect, args=(self.process.stderr, self.err)),
        ]
        for reader in self._readers:
            reader.start()

    def _collect(self, stream: Iterator[str], into: list[str]) -> None:
        for line in stream:
            with self._changed:
                into.append(line)
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def wait_for(self, text: str, *, stream: str = "err", count: int = 1) -> None:
        lines = self.err if stream == "err" else self.out
        deadline = time.monotonic() + DEADLINE_S
        with self._changed:
            while sum(text in line for line in lines) < count:
                left = deadline - time.monotonic()
                if left <= 0 or (self.process.poll() is not None and not self._alive()):
                    pytest.fail(f"tail never printed {text!r}; stderr: {''.join(self.err)}")
                self._changed.wait(min(left, 0.5))

    def _alive(self) -> bool:
        return any(reader.is_alive() for reader in self._readers)

    def finish(self) -> int:
        code = self.process.wait(timeout=DEADLINE_S)
        for reader in self._readers:
            reader.join(timeout=DEADLINE_S)
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()
        return code

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.finish()


def append(path: Path, *lines: bytes) -> None:
    with open(path, "ab") as handle:
        handle.write(b"".join(lines))


def test_tail_shows_traces_as_they_finish(tmp_path: Path) -> None:
    path = tmp_path / "live.jsonl"
    path.touch()
    follower = Follower(str(path), "--exit-after", "2", "--timeout", "300")
    try:
        follower.wait_for(f"following {path}")
        record(path, runs=2)
        assert follower.finish() == 0, "".join(follower.err)
    finally:
        follower.stop()
    out = "".join(follower.out)
    assert out.count("joke trace") == 2
    assert "GenericFakeChatModel (chat_model," in out


def test_tail_shows_a_trace_that_began_before_it_started_but_not_older_ones(
    tmp_path: Path,
) -> None:
    path = tmp_path / "live.jsonl"
    done, started = trace_lines(tid(0), name="finished"), trace_lines(tid(1), name="ongoing")
    path.write_bytes(b"".join(done + started[:-1]))
    follower = Follower(str(path), "--exit-after", "1", "--timeout", "300")
    try:
        follower.wait_for(f"following {path}")
        append(path, started[-1])
        assert follower.finish() == 0, "".join(follower.err)
    finally:
        follower.stop()
    out = "".join(follower.out)
    assert "ongoing trace" in out
    assert "s2 (chain" in out  # its spans, read before tail started, are all there
    assert "finished trace" not in out


def test_tail_waits_for_the_file_and_follows_rotation_and_truncation(tmp_path: Path) -> None:
    path = tmp_path / "live.jsonl"
    follower = Follower(str(path), "--exit-after", "3", "--timeout", "300")
    try:
        follower.wait_for(f"waiting for {path}")
        path.write_bytes(b"".join(trace_lines(tid(0), name="first")))
        follower.wait_for("first trace", stream="out")
        os.rename(path, tmp_path / "live.jsonl.1")  # rotated: a new file takes its name
        path.write_bytes(b"".join(trace_lines(tid(1), name="second")))
        follower.wait_for("second trace", stream="out")
        with open(path, "r+b") as handle:  # truncated in place, then written again
            handle.truncate(0)
        follower.wait_for(f"{path} was truncated")
        append(path, *trace_lines(tid(2), name="third"))
        assert follower.finish() == 0, "".join(follower.err)
    finally:
        follower.stop()
    assert [line.split(" trace ")[0] for line in follower.out if " trace " in line] == [
        "first",
        "second",
        "third",
    ]


def test_tail_reports_a_partial_line_and_reads_on(tmp_path: Path) -> None:
    path = tmp_path / "live.jsonl"
    path.touch()
    follower = Follower(str(path), "--exit-after", "1", "--timeout", "300")
    try:
        follower.wait_for(f"following {path}")
        cut = trace_lines(tid(0))[1][:50] + b"\n"
        append(path, cut, *trace_lines(tid(1), name="after"))
        assert follower.finish() == 0, "".join(follower.err)
    finally:
        follower.stop()
    assert f"warning: {path}:1: partial line skipped" in "".join(follower.err)
    assert "after trace" in "".join(follower.out)


def test_tail_says_on_stderr_when_its_timeout_ends_it(tmp_path: Path) -> None:
    path = tmp_path / "quiet.jsonl"
    path.touch()
    follower = Follower(str(path), "--timeout", "0.5")
    try:
        assert follower.finish() == 0
    finally:
        follower.stop()
    assert "tail: --timeout 0.5 s reached, 0 traces shown" in "".join(follower.err)
    assert follower.out == []
