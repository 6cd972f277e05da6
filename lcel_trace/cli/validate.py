"""`lcel-trace validate`: read every line as the reader does, and count.

A check, so its exit code is the verdict: 0 when every line was read, 1 when a damaged
(partial) line had to be skipped, 2 when a file cannot be read at all (a line that
breaks the schema, a file that is not a trace file). `show` and `stats` skip damaged
lines with a warning and go on; this command fails on them.
"""

from __future__ import annotations

import argparse
import sys
import warnings

from lcel_trace.terminal import visible

EXIT_DAMAGED = 1


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    validate_help = (
        "check every line; print a summary per FILE. Exit 0: all read; 1: damaged "
        "lines were skipped; 2: unreadable"
    )
    validate = commands.add_parser("validate", help=validate_help, description=validate_help)
    validate.add_argument(
        "files", nargs="+", metavar="FILE", help="trace files, directories, globs, .jsonl.gz"
    )
    validate.set_defaults(handler=_validate)


def _validate(args: argparse.Namespace) -> int:
    from lcel_trace.reader import TruncatedTraceWarning, stream_traces

    code = 0
    for given in args.files:
        traces = spans = events = damaged = 0
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for trace in stream_traces(given):
                traces += 1
                spans += len(trace.spans)
                events += len(trace.trace_events)
                damaged += _report(caught, TruncatedTraceWarning)
            damaged += _report(caught, TruncatedTraceWarning)
        counts = f"{traces} traces, {spans} spans, {events} events"
        if damaged:
            code = EXIT_DAMAGED
            print(f"{visible(given)}: DAMAGED, {damaged} line(s) skipped; read {counts}")
        else:
            print(f"{visible(given)}: ok, {counts}")
    return code


def _report(caught: list[warnings.WarningMessage], damage: type[Warning]) -> int:
    """Print the warnings caught so far on stderr; how many were damaged lines."""
    count = 0
    for warning in caught:
        count += issubclass(warning.category, damage)
        print(f"lcel-trace: warning: {visible(warning.message)}", file=sys.stderr)
    caught.clear()
    return count
