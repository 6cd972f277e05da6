"""The process around the exporters: forks under load, interpreter exit with stuck or
slow exporters, and file descriptors and threads given back when nothing is written.

Each check here is a liveness or resource bound with a generous deadline, waiting for an
observable condition, never a timing measurement."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from langchain_core.runnables import RunnableLambda

from lcel_trace import export, trace
from lcel_trace.exporters import JsonlExporter

EXIT_MARGIN_S = 30.0
"""Interpreter exit may wait EXIT_FLUSH_TIMEOUT_S (5 s); anything near this is a hang."""


def wait_for(condition: Callable[[], bool], deadline_s: float, what: str) -> None:
    """Poll `condition` until it holds; fail with `what` after `deadline_s`."""
    deadline = time.monotonic() + deadline_s
    while not condition():
        assert time.monotonic() < deadline, f"still waiting after {deadline_s} s: {what}"
        time.sleep(0.01)


def run_script(script: str, *args: str, timeout_s: float = 120) -> tuple[float, str]:
    """Run `script` in a fresh interpreter; its wall time (around the whole child) and
    stdout. A child still alive after `timeout_s` is killed and the test fails."""
    started = time.monotonic()
    try:
        done = subprocess.run(
            [sys.executable, "-c", textwrap.dedent(script), *args],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"child still running after {timeout_s} s")
    elapsed = time.monotonic() - started
    assert done.returncode == 0, done.stderr[-4000:]
    return elapsed, done.stdout


# ---------------------------------------------------------------------------------------
# os.fork() while exporters are busy

FORK_UNDER_LOAD = """
    import atexit, json, os, sys, threading, time
    from collections.abc import Sequence
    from langchain_core.runnables import RunnableLambda
    from lcel_trace import trace
    from lcel_trace.export import BaseExporter, flush_all
    from lcel_trace.exporters import JsonlExporter

    FORKS, PER_CHILD, ALIVE, DEADLINE_S = int(sys.argv[2]), 3, 8, 60.0

    class Counting(BaseExporter):
        # Slow enough that records are queued, and a worker busy, at every fork.
        def __init__(self) -> None:
            super().__init__()
            self.ends: list[str] = []
        def on_trace_end(self, end) -> None:
            time.sleep(0.005)
            self.ends.append(end.trace_id)

    counting = Counting()
    jsonl = JsonlExporter(sys.argv[1])
    traced = trace(RunnableLambda(lambda x: {"echo": x}), exporters=[jsonl, counting])
    stop = threading.Event()
    parent_calls = 0

    def load() -> None:
        global parent_calls
        while not stop.is_set():
            traced.invoke(f"parent-{parent_calls}")
            parent_calls += 1
            time.sleep(0.001)

    def child(n: int) -> None:
        before = len(counting.ends)
        for k in range(PER_CHILD):
            traced.invoke(f"child-{n}-{k}")
        if n % 2:
            ok = flush_all(30) and len(counting.ends) - before == PER_CHILD
            os._exit(0 if ok else 3)
        # the other half leaves the flush to the exit handlers (without the slow teardown
        # of a whole interpreter, 200 times over)
        atexit._run_exitfuncs()
        os._exit(0)

    loader = threading.Thread(target=load)
    loader.start()
    while parent_calls < 20:
        time.sleep(0.001)
    alive: dict[int, float] = {}
    failures: list[str] = []
    started: dict[int, float] = {}
    took: list[float] = []
    busy_forks = 0

    def reap(block_until: int) -> None:
        while len(alive) > block_until:
            for pid, deadline in list(alive.items()):
                done, status = os.waitpid(pid, os.WNOHANG)
                if done:
                    del alive[pid]
                    took.append(time.monotonic() - started[pid])
                    if os.waitstatus_to_exitcode(status) != 0:
                        failures.append(f"child {pid} exited with {status}")
                elif time.monotonic() > deadline:
                    os.kill(pid, 9)
                    os.waitpid(pid, 0)
                    del alive[pid]
                    failures.append(f"child {pid} still running after {DEADLINE_S} s")
            time.sleep(0.002)

    for n in range(FORKS):
        reap(ALIVE - 1)
        busy_forks += counting.processor.queued > 0
        pid = os.fork()
        if pid == 0:
            child(n)
        alive[pid] = time.monotonic() + DEADLINE_S
        started[pid] = time.monotonic()
    reap(0)
    stop.set()
    loader.join()
    flushed = flush_all(120)
    print(json.dumps({
        "failures": failures, "parent_calls": parent_calls, "parent_ends": len(counting.ends),
        "flushed": flushed, "busy_forks": busy_forks, "slowest_child_s": max(took),
    }))
"""


@pytest.mark.slow
def test_forks_under_load_export_their_own_traces_once_and_never_hang(tmp_path: Path) -> None:
    path = tmp_path / "forks.jsonl"
    forks = 200
    _, out = run_script(FORK_UNDER_LOAD, str(path), str(forks), timeout_s=600)
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["failures"] == []
    assert summary["flushed"] is True
    assert summary["parent_ends"] == summary["parent_calls"]
    assert summary["busy_forks"] > 0, "no fork happened while records were queued"

    starts: dict[str, int] = {}
    roots: list[str] = []
    given: dict[str, str] = {}  # run id -> input, from start event lines (lcel-trace/2)
    for line in path.read_text().splitlines():
        record = json.loads(line)
        if record["type"] == "trace_start":
            starts[record["trace_id"]] = starts.get(record["trace_id"], 0) + 1
        elif record["type"] == "event" and record["kind"] == "start":
            given[record["run_id"]] = record["data"]["input"]
        elif record["type"] == "span" and record["parent_id"] is None:
            roots.append(record["span_id"])
    inputs = [given[span_id] for span_id in roots]
    assert all(n == 1 for n in starts.values()), "a trace was written twice"
    assert len(inputs) == len(set(inputs)), "a root span was written twice"
    children = [i for i in inputs if i.startswith("child-")]
    parents = [i for i in inputs if i.startswith("parent-")]
    assert sorted(children) == sorted(f"child-{n}-{k}" for n in range(forks) for k in range(3))
    assert len(parents) == summary["parent_calls"]


# ---------------------------------------------------------------------------------------
# Interpreter exit

STUCK_AT_EXIT = """
    import sys, threading, time
    from collections.abc import Sequence
    from langchain_core.runnables import RunnableLambda
    from lcel_trace import trace
    from lcel_trace.export import BaseExporter, ExporterCapabilities

    class NeverFlushes(BaseExporter):
        def force_flush(self, timeout_s=None) -> bool:
            threading.Event().wait()
            return True

    class NeverExports(BaseExporter):
        def export(self, spans) -> None:
            threading.Event().wait()

    class Slow(BaseExporter):
        capabilities = ExporterCapabilities(receives="records", max_queue=50)
        def export(self, spans) -> None:
            time.sleep(1.0)

    exporter = {"never_flushes": NeverFlushes, "never_exports": NeverExports,
                "slow_full_queue": Slow}[sys.argv[1]]()
    traced = trace(RunnableLambda(lambda x: x), exporters=[exporter])
    for i in range(int(sys.argv[2])):
        traced.invoke(i)
    print("done", flush=True)
"""


@pytest.mark.slow
@pytest.mark.parametrize(
    ("exporter", "calls"),
    [("never_flushes", 5), ("never_exports", 50), ("slow_full_queue", 500)],
)
def test_interpreter_exit_is_bounded_by_the_exit_flush_timeout(exporter: str, calls: int) -> None:
    elapsed, out = run_script(STUCK_AT_EXIT, exporter, str(calls))
    assert out.strip() == "done"
    assert elapsed < export.EXIT_FLUSH_TIMEOUT_S + EXIT_MARGIN_S


# ---------------------------------------------------------------------------------------
# File descriptors and threads


def fds_on(path: Path) -> int:
    """How many of this process's file descriptors are open on `path`."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}") == str(path):
                count += 1
        except OSError:
            continue  # closed while listing (the listing's own descriptor)
    return count


def fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")
def test_unused_jsonl_exporters_hold_no_file_descriptor(tmp_path: Path) -> None:
    before = fd_count()
    exporters = [JsonlExporter(tmp_path / f"t{i % 10}.jsonl") for i in range(5000)]
    assert fd_count() <= before
    assert not any(p.exists() for p in tmp_path.iterdir() if p.suffix == ".jsonl")
    del exporters


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")
def test_idle_exporter_gives_back_its_thread_and_file_and_writes_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(export, "WORKER_IDLE_S", 0.2)
    path = tmp_path / "idle.jsonl"
    threads_before = set(threading.enumerate())
    exporter = JsonlExporter(path)  # never shut down
    traced = trace(RunnableLambda(lambda x: x), exporters=[exporter])

    for round_ in (1, 2):
        assert traced.invoke(round_) == round_
        wait_for(
            lambda due=4 * round_: exporter.lines_written >= due, 30, "the trace to be written"
        )
        wait_for(
            lambda: set(threading.enumerate()) <= threads_before,
            30,
            "the idle worker thread to exit",
        )
        wait_for(lambda: fds_on(path) == 0, 30, "the idle exporter to close its file")
        lines = [json.loads(line) for line in path.read_text().splitlines()]
        assert [r["type"] for r in lines].count("trace_end") == round_
