"""Progress for long waits, drawn on stderr only when stderr is a terminal.

A person at a terminal should see what a long command is doing and roughly how long it
has to go; a pipe, a file or a CI log gets nothing extra, so captured output stays as it
was. Both helpers draw with rich (transient: the lines are gone when the work ends), imported
only when drawing, and yield callbacks that do nothing when stderr is not a terminal.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.progress import Progress


def stderr_is_terminal() -> bool:
    """Whether a person is likely watching stderr (it is a TTY, not a pipe or file)."""
    try:
        return sys.stderr is not None and sys.stderr.isatty()
    except (AttributeError, ValueError):  # replaced by an object without isatty, or closed
        return False


@contextlib.contextmanager
def status(message: str) -> Iterator[Callable[[str], None]]:
    """A spinner with `message` on a terminal's stderr while the block runs; yields
    `update(message)` to say what it is doing now."""
    if not stderr_is_terminal():
        yield _ignore
        return
    from rich.console import Console
    from rich.live import Live
    from rich.spinner import Spinner
    from rich.text import Text

    spinner = Spinner("dots", Text(message))
    live = Live(spinner, console=Console(stderr=True), transient=True, refresh_per_second=12.5)
    live.start(refresh=True)  # drawn at once, not at the first tick
    try:
        yield lambda text: spinner.update(text=Text(text))
    finally:
        live.stop()


class Steps:
    """What `steps()` yields: `begin(phase)` as a phase starts (its clock starts then),
    `advance(phase)` as each of its steps ends. Does nothing when nobody is watching."""

    def begin(self, phase: str) -> None:
        """Phase `phase` starts now."""

    def advance(self, phase: str) -> None:
        """One step of `phase` is done."""


class _Bars(Steps):
    def __init__(self, progress: Progress, phases: dict[str, int]) -> None:
        self._progress = progress
        self._tasks = {
            name: progress.add_task(name, total=total, start=False)
            for name, total in phases.items()
        }

    def begin(self, phase: str) -> None:
        self._progress.start_task(self._tasks[phase])

    def advance(self, phase: str) -> None:
        self._progress.start_task(self._tasks[phase])  # no-op once started
        self._progress.advance(self._tasks[phase])


@contextlib.contextmanager
def steps(phases: dict[str, int]) -> Iterator[Steps]:
    """A bar per phase (name -> number of steps) on a terminal's stderr, with steps done,
    elapsed time and a rough time remaining (from the pace of the steps so far)."""
    if not stderr_is_terminal():
        yield Steps()
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("left"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=Console(stderr=True), transient=True) as progress:
        yield _Bars(progress, phases)


def _ignore(_: str) -> None:
    """The callback when nobody is watching."""
