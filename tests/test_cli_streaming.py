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


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run(
        lcel_trace(*args), capture_output=True, text=True, timeout=120, check=False, env=env
    )


def test_show_and_stats_read_directories_gzip_and_rotated_sets(tmp_path: Path) -> None:
    from tests.trace_data import write

    write(tmp_path / "runs.jsonl.1.gz", [qa_trace(name="old")], compress=True)
    write(tmp_path / "runs.jsonl", [qa_trace(name="new")])
    write(tmp_path / "other.jsonl", [qa_trace(name="other", model="my-private-model")])
    show = run("show", tmp_path)
    assert show.returncode == 0, show.stderr
    headers = [line for line in show.stdout.splitlines() if " trace " in line]
    assert [h.split()[0] for h in headers] == ["other", "old", "new"]
    assert headers[0].endswith("tokens 1000 in / 100 out, cost unknown")
    assert headers[1].endswith("tokens 1000 in / 100 out, cost $0.000210")
    assert "gpt-4o-mini, cost $0.000210) ok" in show.stdout
    stats = run("stats", tmp_path / "runs.jsonl", tmp_path / "other.jsonl", "--json")
    assert stats.returncode == 0, stats.stderr
    import json

    rows = {(r["name"], r["model"], r["level"]): r for r in json.loads(stats.stdout)}
    root = rows["RunnableSequence", None, "root"]
    assert root["count"] == 3
    assert root["cost_usd"] == pytest.approx(2 * 0.00021)
    assert root["cost_partial"] is True  # one of the three traces' calls is unpriced
    assert root["cost_per_trace_usd"] == pytest.approx(2 * 0.00021 / 3)
    assert rows["ChatOpenAI", "my-private-model", "nested"]["cost_usd"] is None
    table = run("stats", tmp_path)
    root_line = next(line for line in table.stdout.splitlines() if " root " in line)
    assert "≥$0.000420" in root_line


def test_html_trace_picks_one_trace_from_many_files_and_shows_its_cost(tmp_path: Path) -> None:
    from tests.trace_data import write

    wanted = qa_trace(name="wanted", input_tokens=4000, output_tokens=400)
    write(tmp_path / "a.jsonl", [qa_trace(name="a"), wanted])
    write(tmp_path / "b.jsonl.gz", [qa_trace(name="b")], compress=True)
    out = tmp_path / "page.html"
    done = run("html", tmp_path, "--trace", wanted[0].trace_id[:12], "-o", out)
    assert done.returncode == 0, done.stderr
    assert "(1 traces)" in done.stderr
    page = out.read_text(encoding="utf-8")
    assert '"name":"wanted"' in page
    assert '"name":"a"' not in page
    assert '"cost":"$0.000840"' in page  # 4000 in, 400 out at gpt-4o-mini's price
    assert '"source":"genai-prices ' in page
    ambiguous = run("html", tmp_path, "--trace", "", "-o", out)
    assert ambiguous.returncode == 2
    assert "more than one trace" in ambiguous.stderr


def test_tail_follows_several_files_and_a_rotating_one_without_losing_a_trace(
    tmp_path: Path,
) -> None:
    """Written in step with what tail shows (a trace, then its tree on tail's stdout),
    so every rotation happens while tail follows the file; the catch-up after several
    rotations between two polls is the next test's."""
    from langchain_core.runnables import RunnableLambda

    from lcel_trace import trace
    from lcel_trace.exporters import JsonlExporter

    rotating, plain = tmp_path / "runs.jsonl", tmp_path / "other.jsonl"
    tail = subprocess.Popen(
        lcel_trace("tail", rotating, plain, "--exit-after", "31", "--timeout", "120"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    shown: list[str] = []

    def wait_for(count: int) -> None:
        assert tail.stdout is not None
        while len(shown) < count:
            line = tail.stdout.readline()
            assert line, "tail ended early"
            if " trace " in line:
                shown.append(line.split()[0])

    try:
        assert tail.stderr is not None
        while "waiting for" not in tail.stderr.readline():  # tail runs before the writer
            assert tail.poll() is None
        with JsonlExporter(rotating, max_bytes=3000, backup_count=50, compress=True) as rot:
            traced = trace(RunnableLambda(lambda x: x), exporters=[rot], name="rotated")
            for i in range(30):
                traced.invoke(i)
                rot.force_flush()
                wait_for(i + 1)
        with open(plain, "wb") as handle:
            handle.writelines(lines(qa_trace(name="plain")))
        wait_for(31)
        tail.communicate(timeout=120)
    finally:
        tail.kill()
        tail.wait()
    assert tail.returncode == 0
    assert len(list(tmp_path.glob("runs.jsonl.*.gz"))) > 3  # it rotated while followed
    assert shown == ["rotated"] * 30 + ["plain"]


def test_tail_catches_up_on_backups_rotated_before_it_read_them(tmp_path: Path) -> None:
    """The follower is driven by hand: a whole rotated set appears, then rotates three
    times between two polls; every trace is shown once, in order."""
    from langchain_core.runnables import RunnableLambda

    from lcel_trace import trace
    from lcel_trace.cli.tail import _Follower
    from lcel_trace.exporters import JsonlExporter

    path = tmp_path / "runs.jsonl"
    shown: list[object] = []
    follower = _Follower(path, False, lambda t: shown.append(t.root.outputs) or True)
    assert follower.poll() is False  # waiting for the file
    with JsonlExporter(path, max_bytes=3000, backup_count=50, compress=True) as exporter:
        traced = trace(RunnableLambda(lambda x: x), exporters=[exporter])
        for i in range(10):  # rotates before the follower first opens the file
            traced.invoke(i)
            exporter.force_flush()
        while follower.poll():
            pass
        assert shown == list(range(10))
        for i in range(10, 20):  # several rotations between two polls
            traced.invoke(i)
            exporter.force_flush()
    while follower.poll():
        pass
    follower.close()
    assert len(list(tmp_path.glob("runs.jsonl.*.gz"))) > 5
    assert shown == list(range(20))


def test_without_genai_prices_show_and_stats_leave_cost_out(tmp_path: Path) -> None:
    from tests.trace_data import write

    path = write(tmp_path / "runs.jsonl", [qa_trace()])
    code = (
        "import sys; sys.modules['genai_prices'] = None\n"
        "from lcel_trace.cli import main\n"
        f"sys.exit(main(['stats', {str(path)!r}]) or main(['show', {str(path)!r}]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "cost" not in done.stdout
    assert "tokens 1000 in / 100 out" in done.stdout


ROTATING_WRITER = """
import sys
from langchain_core.runnables import RunnableLambda
from lcel_trace import trace
from lcel_trace.exporters import JsonlExporter

with JsonlExporter(sys.argv[1], max_bytes=3000, backup_count=500, compress=True) as exporter:
    traced = trace(RunnableLambda(lambda x: x), exporters=[exporter], name="rotated")
    for i in range(60):
        traced.invoke(i)
        exporter.force_flush()  # a rotation every two or three traces, as fast as it goes
"""


def test_tail_loses_nothing_to_a_writer_rotating_faster_than_it_polls(tmp_path: Path) -> None:
    path = tmp_path / "runs.jsonl"
    tail = subprocess.Popen(
        lcel_trace("tail", path, "--exit-after", "60", "--timeout", "120"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert tail.stderr is not None
        while "waiting for" not in tail.stderr.readline():  # tail runs before the writer
            assert tail.poll() is None
        subprocess.run([sys.executable, "-c", ROTATING_WRITER, str(path)], check=True, timeout=120)
        out, _ = tail.communicate(timeout=150)
    finally:
        tail.kill()
        tail.wait()
    assert tail.returncode == 0
    assert len(list(tmp_path.glob("runs.jsonl.*.gz"))) > 20
    assert [line.split()[0] for line in out.splitlines() if " trace " in line] == ["rotated"] * 60
