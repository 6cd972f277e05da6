"""The trace-file reader: bounded lines, partial lines anywhere, foreign files, one error type."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import textwrap
import time
import uuid
import warnings
from pathlib import Path

import pytest

from lcel_trace.reader import (
    LineBuffer,
    TraceFileError,
    TraceReader,
    TruncatedTraceWarning,
    iter_traces,
    nesting_depth,
    read_traces,
)
from lcel_trace.records import Record, encode_line
from lcel_trace.span import Span, Trace, TraceEnd, TraceStart

T0 = 1_800_000_000_000_000_000


def trace_lines(trace_id: str, spans: int = 3, name: str = "t") -> list[bytes]:
    """One finished trace, `spans` spans in a chain, as the recorder writes it."""
    ids = [str(uuid.uuid4()) for _ in range(spans)]
    records: list[Record] = [TraceStart(trace_id, name, T0, ids[0])]
    for depth, span_id in enumerate(ids):
        records.append(
            Span(
                trace_id=trace_id,
                span_id=span_id,
                parent_id=ids[depth - 1] if depth else None,
                name=f"s{depth}",
                run_type="chain",
                start_ns=T0 + depth,
                end_ns=T0 + 100,
                status="ok",
                outputs="x" * 200,
            )
        )
    records.append(TraceEnd(trace_id, "ok", T0 + 100, spans, 0))
    return [encode_line(r) for r in records]


def tid(n: int) -> str:
    return f"{n + 1:032x}"


def caught_warnings(path: Path) -> tuple[list[Trace], list[str]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        traces = read_traces(path)
    assert all(issubclass(w.category, TruncatedTraceWarning) for w in caught)
    return traces, [str(w.message) for w in caught]


# -- partial lines -----------------------------------------------------------------------


def test_a_partial_line_in_the_middle_is_skipped_with_a_warning_naming_it(tmp_path: Path) -> None:
    first, second = trace_lines(tid(0)), trace_lines(tid(1))
    cut = second[1][: len(second[1]) // 2]  # a span line, cut, then a newline
    path = tmp_path / "runs.jsonl"
    path.write_bytes(b"".join(first[:2]) + cut + b"\n" + b"".join(first[2:] + second))
    traces, messages = caught_warnings(path)
    assert messages == [f"{path}:3: partial line skipped (not valid JSON)"]
    assert [t.trace_id for t in traces] == [tid(0), tid(1)]
    assert [len(t.spans) for t in traces] == [3, 3]


def test_a_whole_record_glued_after_a_cut_one_is_kept(tmp_path: Path) -> None:
    first, second = trace_lines(tid(0)), trace_lines(tid(1))
    cut = first[2][:77]  # no newline: the next writer's line lands right after it
    path = tmp_path / "runs.jsonl"
    path.write_bytes(b"".join(first[:2]) + cut + b"".join(second) + b"".join(first[3:]))
    traces, messages = caught_warnings(path)
    assert len(messages) == 1
    assert messages[0].startswith(f"{path}:3: partial line skipped: a cut-off record")
    done = {t.trace_id: t for t in traces}
    assert len(done[tid(1)].spans) == 3  # its trace_start was the glued record
    assert done[tid(1)].name == "t"
    assert len(done[tid(0)].spans) == 2  # the cut span is lost, the rest is whole


def test_a_partial_last_line_keeps_its_old_warning(tmp_path: Path) -> None:
    lines = trace_lines(tid(0))
    path = tmp_path / "runs.jsonl"
    path.write_bytes(b"".join(lines) + lines[1][:40])
    traces, messages = caught_warnings(path)
    assert messages == [f"{path}:{len(lines) + 1}: partial last line skipped (not valid JSON)"]
    assert len(traces) == 1


WRITER = textwrap.dedent(
    """
    import os, sys, signal, time
    path, first, count, go, ready = sys.argv[1:]
    first, count = int(first), int(count)
    from tests.test_reader import trace_lines, tid
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    def write_traces(numbers):
        for n in numbers:
            for line in trace_lines(tid(n)):
                os.write(fd, line)  # one write per whole line, as JsonlExporter does
    if go == "-":  # the writer that gets killed mid-write
        write_traces(range(first, first + count))
        os.write(fd, trace_lines(tid(first + count))[0])
        os.write(fd, trace_lines(tid(first + count))[1][:60])
        os.kill(os.getpid(), signal.SIGKILL)
    write_traces(range(first, first + count))
    open(ready, "w").close()
    while not os.path.exists(go):
        time.sleep(0.01)  # polling for the test's go-ahead
    write_traces(range(first + count, first + 2 * count))
    """
)


def test_four_writers_one_killed_mid_write_every_complete_trace_is_read(tmp_path: Path) -> None:
    path, go = tmp_path / "shared.jsonl", tmp_path / "go"
    root = Path(__file__).resolve().parent.parent
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]),
    }

    def writer(first: int, count: int, go_path: str, ready: str) -> subprocess.Popen[bytes]:
        argv = [sys.executable, "-c", WRITER, str(path), str(first), str(count), go_path, ready]
        return subprocess.Popen(argv, env=env, cwd=root)

    survivors = [writer(1000 * i, 40, str(go), str(tmp_path / f"ready{i}")) for i in (1, 2, 3)]
    deadline_s = 120
    give_up = time.monotonic() + deadline_s
    for i in (1, 2, 3):  # wait until every survivor has written its first half
        while not (tmp_path / f"ready{i}").exists():
            assert time.monotonic() < give_up, "a writer never got ready"
            assert survivors[i - 1].poll() is None
            time.sleep(0.01)  # polling for the condition, with a deadline
    killed = writer(0, 5, "-", "-")
    assert killed.wait(timeout=deadline_s) == -9
    go.touch()  # the survivors go on appending after the half line
    for process in survivors:
        assert process.wait(timeout=deadline_s) == 0

    traces, messages = caught_warnings(path)
    assert len(messages) == 1
    assert "partial line skipped" in messages[0]
    by_id = {t.trace_id: t for t in traces}
    survivor_ids = {tid(1000 * i + n) for i in (1, 2, 3) for n in range(80)}
    complete = {t for t, trace in by_id.items() if trace.status == "ok"}
    assert complete == survivor_ids | {tid(n) for n in range(5)}
    assert all(len(by_id[t].spans) == 3 for t in complete)
    assert by_id[tid(5)].status == "incomplete"  # the one cut short: its start was whole


# -- foreign files -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "first_line",
    [
        '{"a":1}',
        '{"resourceSpans":[{"resource":{"attributes":[]},"scopeSpans":[{"scope":{"name":"x"},'
        '"spans":[{"traceId":"5b8efff798038103d269b633813fc60c"}]}]}]}',
        "[1, 2, 3]",
    ],
    ids=["plain json", "otlp json", "a list"],
)
def test_a_foreign_file_says_it_is_not_a_trace_file(tmp_path: Path, first_line: str) -> None:
    path = tmp_path / "other.json"
    path.write_text(first_line + "\n" + first_line + "\n", encoding="utf-8")
    with pytest.raises(TraceFileError) as raised:
        read_traces(path)
    shown = first_line if len(first_line) <= 80 else first_line[:80] + "…"
    assert str(raised.value) == f"{path}:1: not an lcel-trace file (first line: {shown})"


def test_a_text_file_is_not_a_trace_file_but_an_empty_one_holds_no_traces(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("hello\n" + "world\n" * 100_000, encoding="utf-8")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(TraceFileError, match=r"notes\.txt:1: not an lcel-trace file"):
            read_traces(text)
    assert len(caught) <= 1  # refused at its second line, not warned about line by line
    one_line = tmp_path / "one.txt"
    one_line.write_text("hello\n", encoding="utf-8")
    with (
        pytest.warns(TruncatedTraceWarning),
        pytest.raises(TraceFileError, match=r"one\.txt:1: not"),
    ):
        read_traces(one_line)
    empty = tmp_path / "empty.jsonl"
    empty.touch()
    assert read_traces(empty) == []


# -- bounded lines -----------------------------------------------------------------------


def test_line_buffer_skips_an_overlong_line_in_bounded_chunks_and_goes_on() -> None:
    data = b"short\n" + b"x" * 10_000 + b"\nafter\n"
    handle = io.BufferedReader(io.BytesIO(data), buffer_size=64)
    reads: list[int] = []
    original = handle.readline

    def counting_readline(size: int | None = -1) -> bytes:
        assert size is not None
        assert 0 < size <= 1024 * 1024, "every read is bounded"
        chunk = original(size)
        reads.append(len(chunk))
        return chunk

    handle.readline = counting_readline  # type: ignore[method-assign]
    lines = LineBuffer(limit=100)
    assert list(lines.read_from(handle)) == [(1, b"short\n"), (2, None), (3, b"after\n")]
    assert max(reads) <= 1024 * 1024


def test_line_buffer_holds_an_unfinished_line_until_its_newline_arrives() -> None:
    lines = LineBuffer(limit=100)
    stream = io.BytesIO()
    stream.write(b'{"a"')
    stream.seek(0)
    assert list(lines.read_from(stream)) == []
    assert lines.pending == b'{"a"'
    position = stream.tell()
    stream.write(b":1}\n")
    stream.seek(position)
    assert list(lines.read_from(stream)) == [(1, b'{"a":1}\n')]


def test_an_overlong_line_is_a_file_line_error_without_reading_it_all(tmp_path: Path) -> None:
    script = textwrap.dedent(
        """
        import resource, sys
        from lcel_trace.reader import TraceFileError, read_traces
        try:
            read_traces(sys.argv[1])
        except TraceFileError as exc:
            print(exc)
        print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
        """
    )
    sparse = tmp_path / "sparse.jsonl"
    with open(sparse, "wb") as handle:
        handle.truncate(2 * 1024**3)  # 2 GiB of zero bytes, no newline, no disk used
    root = Path(__file__).resolve().parent.parent
    for target in (str(sparse), "/dev/zero"):
        done = subprocess.run(
            [sys.executable, "-c", script, target],
            capture_output=True,
            text=True,
            timeout=300,
            cwd=root,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        message, peak_mib = done.stdout.splitlines()
        assert message == f"{target}:1: line longer than {64 * 1024 * 1024} bytes"
        assert int(peak_mib) < 1024  # one bounded line, not the 2 GiB


def test_nesting_depth_ignores_brackets_in_strings_with_escapes() -> None:
    assert nesting_depth(b'["[[[[", "\\"[[[", {"a": [1]}]' + b" " * 100) <= 3
    deep = b"[" * 70 + b'"\\"]]]]"' + b"]" * 70
    assert nesting_depth(deep) > 64
    assert nesting_depth(b"[" * 65 + b'"' + b'\\"' * 40) == 65


# -- incremental use ---------------------------------------------------------------------


def test_trace_reader_gives_each_trace_when_its_end_arrives(tmp_path: Path) -> None:
    first, second = trace_lines(tid(0)), trace_lines(tid(1))
    reader = TraceReader(tmp_path / "live.jsonl")
    interleaved = [first[0], second[0], *first[1:], *second[1:]]
    finished = [reader.feed(n, raw) for n, raw in enumerate(interleaved, start=1)]
    done = [t.trace_id for t in finished if t is not None]
    assert done == [tid(0), tid(1)]
    assert finished.index(next(t for t in finished if t is not None)) == len(first)
    assert reader.finish() == []


def test_iter_traces_streams_the_same_traces_as_read_traces(tmp_path: Path) -> None:
    path = tmp_path / "runs.jsonl"
    path.write_bytes(b"".join(trace_lines(tid(0)) + trace_lines(tid(1))[:-1]))
    assert list(iter_traces(path)) == read_traces(path)


def test_a_schema_error_is_an_error_not_a_partial_line(tmp_path: Path) -> None:
    lines = trace_lines(tid(0))
    broken = json.loads(lines[1])
    broken["end_ns"] = "soon"
    path = tmp_path / "runs.jsonl"
    path.write_bytes(lines[0] + json.dumps(broken).encode() + b"\n" + b"".join(lines[2:]))
    with pytest.raises(TraceFileError, match=r"runs\.jsonl:2: 'end_ns' must be an integer"):
        read_traces(path)
