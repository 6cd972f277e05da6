"""Where trace lines come from: directories, globs, gzip and rotated sets, read as streams."""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import pytest

from lcel_trace.reader import TraceFileError, read_traces, stream_traces
from lcel_trace.sources import expand, open_trace_file
from tests.trace_data import lines, qa_trace, write


def names(paths: object) -> list[str]:
    return [t.name for t in stream_traces(paths)]  # type: ignore[arg-type]


def test_directories_globs_and_gzip_are_read_alike(tmp_path: Path) -> None:
    write(tmp_path / "a.jsonl", [qa_trace(name="a")])
    (tmp_path / "day2").mkdir()
    write(tmp_path / "day2" / "b.jsonl.gz", [qa_trace(name="b")], compress=True)
    (tmp_path / "notes.txt").write_text("not a trace file")
    assert names([tmp_path]) == ["a", "b"]
    assert names([str(tmp_path / "**" / "*.jsonl*")]) == ["a", "b"]
    assert names([tmp_path / "day2" / "b.jsonl.gz"]) == ["b"]


def test_a_file_named_twice_is_read_once(tmp_path: Path) -> None:
    path = write(tmp_path / "a.jsonl", [qa_trace(name="a")])
    assert names([path, tmp_path, str(tmp_path / "*.jsonl")]) == ["a"]


def test_a_rotated_set_is_read_oldest_first_and_a_trace_cut_by_rotation_is_whole(
    tmp_path: Path,
) -> None:
    first, second, third = qa_trace(name="1"), qa_trace(name="2"), qa_trace(name="3")
    base = tmp_path / "runs.jsonl"
    write(tmp_path / "runs.jsonl.2.gz", [first], compress=True)
    # the second trace's lines straddle the rotation from .1 to the live file
    (tmp_path / "runs.jsonl.1").write_bytes(b"".join(lines(second[:2])))
    base.write_bytes(b"".join(lines(second[2:] + third)))
    assert [s.files for s in expand([base])] == [
        (tmp_path / "runs.jsonl.2.gz", tmp_path / "runs.jsonl.1", base)
    ]
    traces = list(stream_traces(base))
    assert [t.name for t in traces] == ["1", "2", "3"]
    assert [t.status for t in traces] == ["ok", "ok", "ok"]
    assert len(traces[1].spans) == 2
    # any member of the set, or the folder, brings the set
    assert names([tmp_path / "runs.jsonl.1"]) == ["1", "2", "3"]
    assert names([tmp_path]) == ["1", "2", "3"]


def test_an_error_names_the_file_of_the_set_and_its_line(tmp_path: Path) -> None:
    write(tmp_path / "runs.jsonl.1", [qa_trace()])
    (tmp_path / "runs.jsonl").write_bytes(
        b"".join(lines(qa_trace())) + b'{"type": "span", "trace_id": "x"}\n'
    )
    with pytest.raises(TraceFileError) as caught:
        list(stream_traces(tmp_path / "runs.jsonl"))
    assert caught.value.path == str(tmp_path / "runs.jsonl")
    assert caught.value.line == 5
    assert str(caught.value).startswith(f"{tmp_path / 'runs.jsonl'}:5: ")


def test_a_gzip_file_is_recognised_by_its_content_not_its_name(tmp_path: Path) -> None:
    path = tmp_path / "runs.jsonl"
    path.write_bytes(gzip.compress(b"".join(lines(qa_trace(name="zipped")))))
    assert names([path]) == ["zipped"]


def test_a_cut_off_gzip_file_is_one_clear_error(tmp_path: Path) -> None:
    data = gzip.compress(b"".join(lines(qa_trace())) * 50)
    path = tmp_path / "cut.jsonl.gz"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(TraceFileError, match=r"cut\.jsonl\.gz:\d+: damaged gzip file"):
        list(stream_traces(path))


def test_names_that_match_nothing_are_refused(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="No such file or directory"):
        expand([tmp_path / "missing.jsonl"])
    with pytest.raises(FileNotFoundError, match="no file matches"):
        expand([str(tmp_path / "*.jsonl")])
    with pytest.raises(FileNotFoundError, match="no trace files"):
        expand([tmp_path])


def test_lines_are_read_in_bounded_pieces_from_gzip(tmp_path: Path) -> None:
    path = tmp_path / "big.jsonl.gz"
    path.write_bytes(gzip.compress(b"x" * 100_000 + b"\n"))
    with open_trace_file(path) as handle:
        assert len(handle.readline(1000)) == 1000


def test_read_traces_and_replay_read_a_gzipped_file(tmp_path: Path) -> None:
    from lcel_trace.reader import read_traces

    path = write(tmp_path / "runs.jsonl.gz", [qa_trace(name="zipped")], compress=True)
    assert [t.name for t in read_traces(path)] == ["zipped"]


@pytest.mark.parametrize("content", [b"\x1f\x8b", b"\x1f\x8b\n\x00\x00\x00\x00\x00\x00\n"])
def test_a_file_that_only_looks_gzipped_is_a_file_line_error(
    tmp_path: Path, content: bytes
) -> None:
    """Found by the reader fuzz test: gzip's magic bytes and nothing a gzip reader can use
    must end as `file:line: reason`, like any damaged line, not as another error."""
    path = tmp_path / "random.jsonl"
    path.write_bytes(content)
    with pytest.raises(TraceFileError, match=rf"^{re.escape(str(path))}:1: damaged gzip"):
        read_traces(path)
