"""pytest plugin (registered by entry point): the `lcel_traces` fixture, and cassettes
(the `lcel_cassette` marker and fixture, `--lcel-record-mode`; see `_pytest_cassette`).

def test_my_chain(lcel_traces):
    my_traced_chain.invoke({"topic": "parrots"})
    lcel_traces.assert_tree({"RunnableSequence": ["ChatPromptTemplate", "ChatOpenAI"]})
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from lcel_trace._capture import Capture
from lcel_trace._pytest_cassette import (
    _lcel_cassette_marker,
    lcel_cassette,
    pytest_addoption,
    pytest_configure,
)
from lcel_trace.span import Status, Trace
from lcel_trace.testing import TreeSpec, assert_attributes, assert_status, assert_tree


class TraceCollector(Capture):
    """A `capture()` that lives for one test, with assertions on its traces."""

    def only(self) -> Trace:
        """The one trace the test produced (fails, listing them, if there are more)."""
        traces = self.traces
        if len(traces) != 1:
            names = [t.name for t in traces]
            raise AssertionError(f"expected exactly one trace, got {len(traces)}: {names}")
        return traces[0]

    def assert_tree(self, expected: TreeSpec | str, trace: Trace | None = None) -> None:
        assert_tree(trace or self.only(), expected)

    def assert_status(self, name: str, status: Status, trace: Trace | None = None) -> None:
        assert_status(trace or self.only(), name, status)

    def assert_attributes(self, name: str, trace: Trace | None = None, **expected: Any) -> None:
        assert_attributes(trace or self.only(), name, **expected)


@pytest.fixture
def lcel_traces() -> Iterator[TraceCollector]:
    """Every trace started during the test, finished ones first to last."""
    with TraceCollector() as collector:
        yield collector


__all__ = [
    "TraceCollector",
    "_lcel_cassette_marker",
    "lcel_cassette",
    "lcel_traces",
    "pytest_addoption",
    "pytest_configure",
]
