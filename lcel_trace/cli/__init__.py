"""The `lcel-trace` command: read, check, draw and re-export JSONL trace files.

One module per command in this package, each with `register(commands)`, which adds its
subparser and sets `handler`. To add a command, write `lcel_trace/cli/NAME.py` with
`register` and list NAME in `COMMANDS`. Modules import LangChain, rich and OpenTelemetry
inside their handlers only: `--help` and `--version` must not wait for them.

Bad input of any kind ends in one line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import warnings
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from lcel_trace.cli.common import EXIT_BAD_INPUT, EXIT_BROKEN_PIPE
from lcel_trace.terminal import visible

COMMANDS = (
    "show",
    "stats",
    "validate",
    "replay",
    "tail",
    "html",
    "export",
    "diff",
    "sql",
    "cassette",
)
"""The command modules, in the order `--help` lists them."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {visible(message)} (see --help)\n")


class _Version(argparse.Action):
    """`--version`: looks the installed version up only when asked."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, help="print the version and exit")

    def __call__(self, parser: argparse.ArgumentParser, *_: Any) -> NoReturn:
        from importlib.metadata import PackageNotFoundError, version

        try:
            number = version("lcel-trace")
        except PackageNotFoundError:
            number = "unknown"
        print(f"lcel-trace {number}")
        parser.exit(0)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            code = handler(args)
        for warning in caught:
            print(f"lcel-trace: warning: {visible(warning.message)}", file=sys.stderr)
        sys.stdout.flush()
        return code
    except BrokenPipeError:
        # The reader went away (`... | head`): stop quietly, and point stdout at devnull
        # so the interpreter's own flush at exit cannot fail again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError):  # stdout is not a file (embedded, captured)
            pass
        finally:
            os.close(devnull)
        return EXIT_BROKEN_PIPE
    except (OSError, LookupError, ValueError) as exc:
        print(f"lcel-trace: error: {visible(exc)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="lcel-trace",
        description="Read lcel-trace JSONL trace files. Bad input: one line on stderr, exit 2.",
    )
    parser.add_argument("--version", action=_Version)
    commands = parser.add_subparsers(
        dest="command", required=True, parser_class=_Parser, metavar="COMMAND"
    )
    for name in COMMANDS:
        importlib.import_module(f"lcel_trace.cli.{name}").register(commands)
    return parser


if __name__ == "__main__":
    sys.exit(main())
