"""The data commands as a user runs them (a real subprocess): export, validate, sql."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from lcel_trace.table import SCHEMA, spans
from tests.trace_data import qa_trace, write


def cli(*args: str | Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lcel_trace", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture
def runs(tmp_path: Path) -> Path:
    folder = tmp_path / "runs"
    folder.mkdir()
    write(folder / "a.jsonl", [qa_trace(name="a") for _ in range(3)])
    write(folder / "b.jsonl.gz", [qa_trace(name="b", error=True)], compress=True)
    return folder


def test_export_parquet_holds_the_table_of_every_file(runs: Path, tmp_path: Path) -> None:
    out = tmp_path / "spans.parquet"
    result = cli("export", runs, "-o", out)
    assert result.returncode == 0, result.stderr
    assert "(8 spans, parquet)" in result.stderr
    table = pq.read_table(out)
    assert table.schema.remove_metadata() == SCHEMA.remove_metadata()
    assert table.equals(spans(runs))
    assert sorted(set(table.column("trace_name").to_pylist())) == ["a", "b"]


def test_export_csv_has_a_header_and_tags_as_json(runs: Path, tmp_path: Path) -> None:
    out = tmp_path / "spans.csv"
    result = cli("export", runs / "a.jsonl", "--format", "csv", "-o", out, "--content")
    assert result.returncode == 0, result.stderr
    with open(out, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 6
    assert list(rows[0]) == [*SCHEMA.names, "inputs", "outputs"]
    root = rows[1]
    assert json.loads(root["tags"]) == ["demo"]
    assert json.loads(root["inputs"]) == {"question": "q"}


def test_export_of_a_bad_file_leaves_no_output(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"type": "span", "trace_id": "x"}\n')
    out = tmp_path / "spans.parquet"
    result = cli("export", bad, "-o", out)
    assert result.returncode == 2
    assert result.stderr.startswith(f"lcel-trace: error: {bad}:1: ")
    assert list(tmp_path.iterdir()) == [bad]


def test_export_needs_a_known_format(runs: Path, tmp_path: Path) -> None:
    result = cli("export", runs, "-o", tmp_path / "spans.xlsx")
    assert result.returncode == 2
    assert "--format parquet or --format csv" in result.stderr


def test_validate_passes_whole_files_and_fails_a_damaged_line(runs: Path, tmp_path: Path) -> None:
    good = cli("validate", runs)
    assert good.returncode == 0, good.stderr
    assert good.stdout == f"{runs}: ok, 4 traces, 8 spans, 0 events\n"
    damaged = tmp_path / "damaged.jsonl"
    text = (runs / "a.jsonl").read_bytes().split(b"\n")
    text[1] = text[1][:40]  # a writer killed mid-line
    damaged.write_bytes(b"\n".join(text))
    result = cli("validate", runs / "a.jsonl", damaged)
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        f"{runs / 'a.jsonl'}: ok, 3 traces, 6 spans, 0 events",
        f"{damaged}: DAMAGED, 1 line(s) skipped; read 3 traces, 5 spans, 0 events",
    ]
    assert f"{damaged}:2: partial line skipped" in result.stderr
    # show goes on with a warning
    show = cli("show", damaged)
    assert show.returncode == 0
    assert "partial line skipped" in show.stderr


def test_validate_an_unreadable_file_is_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"type": "span", "trace_id": "x"}\n')
    result = cli("validate", bad)
    assert result.returncode == 2
    assert result.stderr.startswith(f"lcel-trace: error: {bad}:1: ")


def test_sql_runs_duckdb_over_a_spans_view_of_every_file(runs: Path) -> None:
    query = (
        "SELECT trace_name, count(*) AS spans, count(cost_usd) AS priced "
        "FROM spans GROUP BY trace_name ORDER BY trace_name"
    )
    result = cli("sql", query, runs, "--json")
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert rows == [
        {"trace_name": "a", "spans": 6, "priced": 3},
        {"trace_name": "b", "spans": 2, "priced": 1},
    ]


def test_sql_can_read_the_view_twice_and_prints_a_table(runs: Path) -> None:
    query = (
        "SELECT child.name AS child, parent.name AS parent FROM spans child "
        "JOIN spans parent ON child.parent_id = parent.span_id GROUP BY ALL"
    )
    result = cli("sql", query, runs / "a.jsonl")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["child       parent", "ChatOpenAI  RunnableSequence"]


def test_sql_text_from_a_file_is_printed_visibly(tmp_path: Path) -> None:
    path = write(tmp_path / "evil.jsonl", [qa_trace(name="x\x1b[31mred\u202e")])
    result = cli("sql", "SELECT DISTINCT trace_name FROM spans", path, "--csv")
    assert result.returncode == 0, result.stderr
    assert "\x1b" not in result.stdout
    assert "\u202e" not in result.stdout


def test_a_bad_query_is_one_line_and_exit_2(runs: Path) -> None:
    result = cli("sql", "SELEC 1", runs)
    assert result.returncode == 2
    assert result.stderr.startswith("lcel-trace: error: sql: Parser Error")
    assert len(result.stderr.splitlines()) == 1
