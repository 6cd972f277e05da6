"""The data rows of `bench.py --cli --cli-bytes N`: every reading command on one large
generated trace file, its peak RSS and its time per GB, beside DuckDB's own `read_json`
over the same file in the same run (DuckDB uses every core; we use one).

Each command runs in a fresh process started by a small launcher that reads
`getrusage(RUSAGE_CHILDREN)`, so the peak RSS is that process's own.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

GB = 1e9
TRACE_BYTES = 18_870  # what bench.cli_trace_file writes per trace
DUCKDB_COLUMNS = (
    "{'type': 'VARCHAR', 'trace_id': 'VARCHAR', 'name': 'VARCHAR', "
    "'run_type': 'VARCHAR', 'status': 'VARCHAR', 'start_ns': 'BIGINT', 'end_ns': 'BIGINT', "
    "'model': 'VARCHAR'}"
)

_LAUNCHER = """
import resource, subprocess, sys, time
started = time.perf_counter()
code = subprocess.call(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
elapsed = time.perf_counter() - started
print(code, elapsed, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""


def timed(argv: list[str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of one process running `argv`."""
    done = subprocess.run(
        [sys.executable, "-c", _LAUNCHER, *argv], capture_output=True, text=True, check=True
    )
    code, elapsed, max_rss_kib = done.stdout.split()
    if code != "0":
        raise RuntimeError(f"{' '.join(argv)} exited {code}")
    return float(elapsed), int(max_rss_kib) / 1024


def duckdb(query: str) -> list[str]:
    return [sys.executable, "-c", f"import duckdb; duckdb.sql({query!r}).fetchall()"]


def large_file_section(target_bytes: int, generate: Callable[..., int], *, rounds: int = 1) -> str:
    """Generate the file, run each command `rounds` times, and tabulate."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        path = folder / "big.jsonl"
        started = time.perf_counter()
        traces = max(1, target_bytes // TRACE_BYTES)
        size = generate(path, traces, target_bytes)
        generated_s = time.perf_counter() - started
        first_id = path.open("rb").readline().split(b'"trace_id":"')[1][:32].decode()
        read = f"read_json('{path}', format='newline_delimited', columns={DUCKDB_COLUMNS})"
        ours = {
            "validate": ["validate", str(path)],
            "stats": ["stats", str(path)],
            "show": ["show", str(path)],
            "export": ["export", str(path), "-o", str(folder / "spans.parquet")],
            "sql": ["sql", "SELECT name, count(*) FROM spans GROUP BY 1", str(path)],
            "html --trace": ["html", str(path), "--trace", first_id, "-o", str(folder / "p.html")],
        }
        theirs = {
            "validate": duckdb(f"SELECT type, count(*) FROM {read} GROUP BY type"),
            "stats": duckdb(
                "SELECT name, model, count(*), "
                "quantile_disc((end_ns - start_ns) / 1e6, [0.5, 0.95, 0.99]) "
                f"FROM {read} WHERE type = 'span' GROUP BY ALL"
            ),
            "export": duckdb(
                f"COPY (SELECT * FROM {read} WHERE type = 'span') "
                f"TO '{folder / 'duck.parquet'}' (FORMAT parquet)"
            ),
        }
        rows = [
            "| command | s per GB | peak RSS MiB | DuckDB read_json s per GB | DuckDB peak RSS MiB "
            "| ours / DuckDB |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for label, args in ours.items():
            mine = [timed([sys.executable, "-m", "lcel_trace", *args]) for _ in range(rounds)]
            seconds = statistics.median(t for t, _ in mine) / (size / GB)
            rss = max(r for _, r in mine)
            cells = ["–", "–", "–"]
            if label in theirs:
                duck = [timed(theirs[label]) for _ in range(rounds)]
                duck_s = statistics.median(t for t, _ in duck) / (size / GB)
                duck_rss = max(r for _, r in duck)
                cells = [f"{duck_s:.1f}", f"{duck_rss:.0f}", f"{seconds / duck_s:.1f}×"]
            rows.append(
                f"| `lcel-trace {label}` | {seconds:.1f} | {rss:.0f} | " + " | ".join(cells) + " |"
            )
    return (
        f"### Reading a large file ({size / GB:.2f} GB, {traces:,} traces, "
        f"generated in {generated_s:.0f} s; {rounds} run(s) each; DuckDB on all cores)\n\n"
        + "\n".join(rows)
    )
