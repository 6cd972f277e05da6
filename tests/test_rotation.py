"""JsonlExporter(max_bytes=...) rotates like RotatingFileHandler, also with several
processes appending to one path; the reader reads the set."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path

import pytest
from langchain_core.runnables import RunnableLambda

from lcel_trace import trace
from lcel_trace.exporters import JsonlExporter
from lcel_trace.reader import TruncatedTraceWarning, stream_traces
from lcel_trace.sources import expand


def set_files(path: Path) -> list[Path]:
    (trace_set,) = expand([path])
    return list(trace_set.files)


def file_lines(path: Path) -> list[bytes]:
    data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    assert data.endswith(b"\n")
    return data.splitlines()


def test_rotation_keeps_whole_lines_sizes_and_every_trace(tmp_path: Path) -> None:
    path = tmp_path / "runs.jsonl"
    with JsonlExporter(path, max_bytes=4000, backup_count=100) as exporter:
        traced = trace(RunnableLambda(lambda x: x * 2), exporters=[exporter], name="t")
        for i in range(60):
            traced.invoke(i)
            exporter.force_flush()  # one hand-off per trace: many rotations
    files = set_files(path)
    assert files[-1] == path
    assert files[0].name == f"runs.jsonl.{len(files) - 1}"
    assert len(files) > 5
    for file in files:
        assert file.stat().st_size <= 4000
        for line in file_lines(file):
            json.loads(line)  # whole lines only
    traces = list(stream_traces(path))
    assert [t.root.outputs for t in traces] == [i * 2 for i in range(60)]


def test_old_backups_beyond_backup_count_are_deleted_and_backups_gzipped(
    tmp_path: Path,
) -> None:
    path = tmp_path / "runs.jsonl"
    with JsonlExporter(path, max_bytes=3000, backup_count=2, compress=True) as exporter:
        traced = trace(RunnableLambda(lambda x: x), exporters=[exporter])
        for i in range(40):
            traced.invoke(i)
            exporter.force_flush()
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["runs.jsonl", "runs.jsonl.1.gz", "runs.jsonl.2.gz", "runs.jsonl.lock"]
    outputs = [t.root.outputs for t in stream_traces(path)]
    assert outputs == list(range(40 - len(outputs), 40))  # the newest, in order


def test_a_line_larger_than_max_bytes_goes_alone_into_a_fresh_file(tmp_path: Path) -> None:
    path = tmp_path / "runs.jsonl"
    with JsonlExporter(path, max_bytes=2000, backup_count=10) as exporter:
        traced = trace(RunnableLambda(lambda x: x), exporters=[exporter])
        traced.invoke("x" * 5000)
    for file in set_files(path):
        lines = file_lines(file)
        assert file.stat().st_size <= 2000 or len(lines) == 1
    assert [t.root.outputs for t in stream_traces(path)] == ["x" * 5000]


def test_bad_rotation_settings_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="backup_count must be at least 1"):
        JsonlExporter(tmp_path / "a.jsonl", max_bytes=1000, backup_count=0)
    with pytest.raises(ValueError, match="max_bytes must be positive"):
        JsonlExporter(tmp_path / "a.jsonl", max_bytes=0)


WRITER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from langchain_core.runnables import RunnableLambda
    from lcel_trace import trace
    from lcel_trace.exporters import JsonlExporter

    path, me, count, go = sys.argv[1], sys.argv[2], int(sys.argv[3]), Path(sys.argv[4])
    go.with_name(f"ready-{me}").touch()
    while not go.exists():
        time.sleep(0.01)  # all writers start together
    exporter = JsonlExporter(path, max_bytes=20_000, backup_count=10_000, compress=True)
    for i in range(count):
        trace(RunnableLambda(lambda x: x), exporters=[exporter], name=f"{me}-{i}").invoke(i)
        if i % 3 == 0:
            exporter.force_flush()
    exporter.shutdown()
    """
)


@pytest.mark.slow
def test_several_processes_appending_and_rotating_lose_and_split_nothing(
    tmp_path: Path,
) -> None:
    path = tmp_path / "runs.jsonl"
    go = tmp_path / "go"
    writers, per_writer = 4, 150
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path), f"w{n}", str(per_writer), str(go)],
            stderr=subprocess.PIPE,
        )
        for n in range(writers)
    ]
    deadline = time.monotonic() + 120
    while len(list(tmp_path.glob("ready-*"))) < writers:  # every writer at the gate
        assert time.monotonic() < deadline, "writers did not start"
        time.sleep(0.01)
    go.touch()
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err.decode()
    files = set_files(path)
    assert len(files) > writers  # it did rotate, under contention
    for file in files:
        assert file.stat().st_size <= 20_000 or file.suffix == ".gz"
        size = len(b"".join(line + b"\n" for line in file_lines(file)))
        assert size <= 20_000
    with warnings.catch_warnings():
        warnings.simplefilter("error", TruncatedTraceWarning)  # no partial line anywhere
        traces = list(stream_traces(path))
    names = [t.name for t in traces]
    assert sorted(names) == sorted(f"w{n}-{i}" for n in range(writers) for i in range(per_writer))
    assert {t.status for t in traces} == {"ok"}
    for n in range(writers):  # each writer's traces in its own order
        mine = [int(name.split("-")[1]) for name in names if name.startswith(f"w{n}-")]
        assert mine == list(range(per_writer))
