"""Suite-wide checks: a test fails if lcel-trace swallowed an internal error during it.

The library never raises into the user's chain; it logs and counts its own bugs
instead (`lcel_trace._log.report_internal_error`). Here that count must not move.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from lcel_trace._log import internal_error_count


@pytest.fixture(autouse=True)
def no_swallowed_internal_errors(request: pytest.FixtureRequest) -> Iterator[None]:
    before = internal_error_count()
    yield
    if request.node.get_closest_marker("internal_errors_expected"):
        return
    swallowed = internal_error_count() - before
    assert swallowed == 0, f"lcel-trace swallowed {swallowed} internal error(s); see the log"
