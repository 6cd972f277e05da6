"""`lcel-trace validate`: read every line as the reader does, and count."""

from __future__ import annotations

import argparse
from pathlib import Path

from lcel_trace.cli.common import FILE_HELP
from lcel_trace.terminal import visible


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    validate_help = "check every line; print a summary"
    validate = commands.add_parser("validate", help=validate_help, description=validate_help)
    validate.add_argument("file", type=Path, help=FILE_HELP)
    validate.set_defaults(handler=_validate)


def _validate(args: argparse.Namespace) -> int:
    from lcel_trace.reader import read_traces

    traces = read_traces(args.file)
    spans = sum(len(t.spans) for t in traces)
    events = sum(len(t.trace_events) for t in traces)
    print(f"{visible(args.file)}: ok, {len(traces)} traces, {spans} spans, {events} events")
    return 0
