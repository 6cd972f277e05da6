"""The waterfall marks the first token beside the first chunk when they differ."""

from __future__ import annotations

import json
import re
from typing import Any

from lcel_trace.span import Span, Trace
from lcel_trace.timeline import render_html


def page_spans(page: str) -> list[dict[str, Any]]:
    match = re.search(r'id="lcel-trace-data">(.*?)</script>', page, re.S)
    assert match is not None
    spans: list[dict[str, Any]] = json.loads(match.group(1))["traces"][0]["spans"]
    return spans


def test_first_token_is_carried_relative_to_the_trace_start() -> None:
    model = Span("t1", "m", None, "model", "chat_model", 1_000, 9_000, "ok",
                 first_chunk_ns=2_000, first_token_ns=5_000)  # fmt: skip
    trace = Trace("t1", "demo", "ok", 1_000, 9_000, (model,), root_run_id="m")
    (shown,) = page_spans(render_html([trace]))
    assert (shown["ttft"], shown["first_token"]) == (1_000, 4_000)


def test_a_span_without_content_chunks_has_no_first_token() -> None:
    quiet = Span("t1", "q", None, "quiet", "chain", 0, 10, "ok", first_chunk_ns=5)
    (shown,) = page_spans(render_html([Trace("t1", "d", "ok", 0, 10, (quiet,), root_run_id="q")]))
    assert shown["first_token"] is None


def test_the_script_draws_a_first_token_mark_and_the_legend_names_it() -> None:
    page = render_html([])
    assert '<span class="first-token">first token</span>' in page
    assert 'el("div", "first-token")' in page
    assert '"time to first token"' in page
