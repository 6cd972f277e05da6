"""`lcel-trace sql "SELECT ..." FILES...`: DuckDB over a `spans` view of trace files.

The files are streamed once into a temporary Parquet file (the `lcel_trace.table`
schema), so a query may read `spans` as often as it likes (self-joins, subqueries) and
DuckDB spills to disk rather than holding everything: memory stays bounded.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from lcel_trace.cli.extras import need
from lcel_trace.terminal import one_line, visible

MEMORY_LIMIT = "256MB"
MAX_CELL = 60


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sql_help = (
        "run a DuckDB query over a view `spans` (one row per span, schema: lcel_trace.table) "
        "of the trace files; needs the analysis extra"
    )
    sql = commands.add_parser("sql", help=sql_help, description=sql_help)
    sql.add_argument(
        "query", metavar="QUERY", help='e.g. "SELECT name, count(*) FROM spans GROUP BY 1"'
    )
    sql.add_argument(
        "files", nargs="+", metavar="FILE", help="trace files, directories, globs, .jsonl.gz"
    )
    sql.add_argument(
        "--content", action="store_true", help="add inputs and outputs as JSON text columns"
    )
    output = sql.add_mutually_exclusive_group()
    output.add_argument("--csv", action="store_true", help="print CSV")
    output.add_argument("--json", action="store_true", help="print one JSON object per row")
    sql.set_defaults(handler=_sql)


def _sql(args: argparse.Namespace) -> int:
    duckdb = need("duckdb", "sql")
    need("pyarrow", "sql")
    import pyarrow.parquet as pq

    from lcel_trace.table import record_batches, schema

    with tempfile.TemporaryDirectory(prefix="lcel-trace-sql-") as folder:
        data = Path(folder) / "spans.parquet"
        with pq.ParquetWriter(data, schema(content=args.content)) as writer:
            for batch in record_batches(args.files, content=args.content):
                writer.write_batch(batch)
        connection = duckdb.connect(config={"memory_limit": MEMORY_LIMIT, "temp_directory": folder})
        try:
            connection.execute(f"CREATE VIEW spans AS SELECT * FROM read_parquet('{data}')")
            try:
                result = connection.execute(args.query)
            except duckdb.Error as exc:
                raise ValueError(f"sql: {' '.join(str(exc).split())}") from None
            if result.description is None:
                return 0
            headers = [column[0] for column in result.description]
            _print_rows(headers, _rows(result), args)
        finally:
            connection.close()
    return 0


def _rows(result: Any) -> Any:
    while chunk := result.fetchmany(1024):
        yield from chunk


def _print_rows(headers: list[str], rows: Any, args: argparse.Namespace) -> None:
    if args.json:
        for row in rows:
            record = dict(zip(headers, row, strict=True))
            print(json.dumps(record, default=str, ensure_ascii=True))
        return
    if args.csv:
        writer = csv.writer(sys.stdout)
        writer.writerow([visible(h) for h in headers])
        for row in rows:
            writer.writerow(["" if v is None else visible(v) for v in row])
        return
    # An aligned table needs every width first: it holds the result (use --csv for more).
    table = [[_cell(v) for v in row] for row in rows]
    shown = [one_line(h, MAX_CELL) for h in headers]
    widths = [max(len(c), *(len(r[i]) for r in table)) for i, c in enumerate(shown)]
    print("  ".join(c.ljust(w) for c, w in zip(shown, widths, strict=True)).rstrip())
    for cells in table:
        print("  ".join(v.ljust(w) for v, w in zip(cells, widths, strict=True)).rstrip())


def _cell(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.6g}"
    return one_line(value, MAX_CELL)
