"""`lcel-trace export`: spans as Parquet or CSV (the `lcel_trace.table` schema), written
batch by batch so any amount of traces fits in bounded memory."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from lcel_trace.cli.extras import need
from lcel_trace.terminal import visible

FORMATS = ("parquet", "csv")


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    export_help = (
        "write one row per span (schema: lcel_trace.table) as Parquet or CSV, read in "
        "bounded memory; needs the analysis extra"
    )
    export = commands.add_parser("export", help=export_help, description=export_help)
    export.add_argument(
        "files", nargs="+", metavar="FILE", help="trace files, directories, globs, .jsonl.gz"
    )
    export.add_argument(
        "-o", "--output", type=Path, required=True, metavar="OUT", help="the file to write"
    )
    export.add_argument(
        "--format", choices=FORMATS, help="default: from OUT's suffix (.parquet, .csv)"
    )
    export.add_argument(
        "--content", action="store_true", help="add inputs and outputs as JSON text columns"
    )
    export.set_defaults(handler=_export)


def _export(args: argparse.Namespace) -> int:
    output: Path = args.output
    fmt = args.format or output.suffix.lstrip(".").lower()
    if fmt not in FORMATS:
        raise ValueError(f"{output}: say --format parquet or --format csv")
    need("pyarrow", "export")
    from lcel_trace.table import record_batches, schema

    target = schema(content=args.content)
    # Written beside OUT and renamed at the end: a failed export leaves no half file.
    partial = output.with_name(f".{output.name}.partial")
    rows = 0
    try:
        with _writer(fmt, partial, target) as write:
            for batch in record_batches(args.files, content=args.content):
                write(batch)
                rows += batch.num_rows
        os.replace(partial, output)
    finally:
        partial.unlink(missing_ok=True)
    print(f"wrote {visible(output)} ({rows} spans, {fmt})", file=sys.stderr)
    return 0


@contextmanager
def _writer(fmt: str, path: Path, target: Any) -> Iterator[Callable[[Any], None]]:
    """A function taking record batches into a Parquet or CSV file (closed on exit);
    CSV gets the tags as JSON text."""
    if fmt == "parquet":
        import pyarrow.parquet as pq

        parquet = pq.ParquetWriter(path, target, compression="zstd")
        try:
            yield parquet.write_batch
        finally:
            parquet.close()
        return
    import pyarrow.csv as pcsv

    csv = pcsv.CSVWriter(path, _csv_schema(target))
    try:
        yield lambda batch: csv.write_batch(_csv_batch(batch))
    finally:
        csv.close()


def _csv_schema(target: Any) -> Any:
    import pyarrow as pa

    index = target.get_field_index("tags")
    return target.set(index, pa.field("tags", pa.string()))


def _csv_batch(batch: Any) -> Any:
    """CSV has no lists: the tags column becomes JSON text."""
    import pyarrow as pa

    from lcel_trace.json_text import dumps_text

    index = batch.schema.get_field_index("tags")
    tags = pa.array([dumps_text(t) for t in batch.column(index).to_pylist()], pa.string())
    return batch.set_column(index, "tags", tags)
