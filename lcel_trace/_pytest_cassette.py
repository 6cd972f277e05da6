"""pytest support for cassettes: the `lcel_cassette` marker and fixture, and the
`--lcel-record-mode` option (imported by `lcel_trace.pytest_plugin`).

    @pytest.mark.lcel_cassette                      # cassettes/test_agent/test_answer.jsonl
    def test_answer():
        assert agent.invoke(...) == ...

    @pytest.mark.lcel_cassette("cassettes/shared.jsonl", speed=1.0)
    def test_other(lcel_cassette):                  # the active Cassette, if you need it
        ...

Paths are relative to the test file's folder. The mode is `--lcel-record-mode`
(once, replay, record, new); without it, "replay" when the `CI` environment variable is
set (a cassette missing in CI is an error, never a silent call to a real model), else
"once".
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import pytest

if TYPE_CHECKING:  # imported when a test uses a cassette: pytest starts without LangChain
    from lcel_trace.cassette import Cassette, Mode

__all__ = ["MODES", "lcel_cassette", "pytest_addoption", "pytest_configure"]

MODES = ("once", "replay", "record", "new")
"""`lcel_trace.cassette.MODES` (a test keeps the two equal)."""

_UNSAFE = re.compile(r"[^\w.-]+")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("lcel-trace")
    group.addoption(
        "--lcel-record-mode",
        choices=MODES,
        default=None,
        help="how lcel_cassette tests use their cassettes: once (record if missing, else "
        "replay), replay (never call a model), record (always call, append), new "
        "(replay hits, record misses). Default: replay when $CI is set, else once.",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "lcel_cassette(path=None, *, speed=0, replay=('models',), redact=None): model calls "
        "in the test answer from a recorded trace file (default "
        "cassettes/<module>/<test>.jsonl beside the test file); see lcel_trace.cassette",
    )


def record_mode(config: pytest.Config) -> Mode:
    """The mode from the command line, else "replay" in CI, else "once"."""
    chosen = config.getoption("lcel_record_mode", default=None)
    if chosen:
        return cast("Mode", chosen)
    return (
        "replay" if os.environ.get("CI", "").strip().lower() not in ("", "0", "false") else "once"
    )


def _cassette_for(request: pytest.FixtureRequest, marker: pytest.Mark | None) -> Cassette:
    folder = Path(str(request.node.path)).parent
    args: tuple[Any, ...] = marker.args if marker is not None else ()
    kwargs: dict[str, Any] = dict(marker.kwargs) if marker is not None else {}
    given = args[0] if args else kwargs.pop("path", None)
    if given is None:
        module = Path(str(request.node.path)).stem
        path = folder / "cassettes" / module / f"{_UNSAFE.sub('_', request.node.name)}.jsonl"
    else:
        path = folder / Path(given)
    if "mode" in kwargs:
        raise pytest.UsageError(
            "lcel_cassette takes no mode: the mode is --lcel-record-mode, for the whole run"
        )
    from lcel_trace.cassette import Cassette

    return Cassette(path, mode=record_mode(request.config), **kwargs)


@pytest.fixture(autouse=True)
def _lcel_cassette_marker(request: pytest.FixtureRequest) -> Iterator[None]:
    """Runs a test marked `lcel_cassette` inside its cassette."""
    marker = request.node.get_closest_marker("lcel_cassette")
    if marker is None or "lcel_cassette" in request.fixturenames:
        yield
        return
    with _cassette_for(request, marker):
        yield


@pytest.fixture
def lcel_cassette(request: pytest.FixtureRequest) -> Iterator[Cassette]:
    """The test's cassette, active for the whole test (marker options apply)."""
    with _cassette_for(request, request.node.get_closest_marker("lcel_cassette")) as active:
        yield active
