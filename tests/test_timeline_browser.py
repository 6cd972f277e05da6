"""The HTML timeline in a real browser: headless Chromium driven by Playwright.

Marked `browser` (deselected by default). Needs `pip install playwright` (extra
`browser`) and a Chromium binary: `$LCEL_TRACE_CHROMIUM`, else `chromium` on PATH
(Debian's `chromium` package). A missing browser fails these tests; it never skips them.
`python docs/make_waterfall.py` refreshes the README's screenshot from a real run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from langchain_core.language_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnableLambda, RunnableParallel

from lcel_trace import capture, trace
from lcel_trace.records import encode_line
from lcel_trace.replay import read_traces
from lcel_trace.span import Span, Trace, TraceEnd, TraceStart
from lcel_trace.timeline import render_html

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

pytestmark = pytest.mark.browser

MS = 1_000_000
REPO = Path(__file__).resolve().parents[1]


def chromium_path() -> str:
    path = os.environ.get("LCEL_TRACE_CHROMIUM") or shutil.which("chromium")
    if not path:
        pytest.fail("no Chromium: install Debian's chromium or set LCEL_TRACE_CHROMIUM")
    return path


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=chromium_path(), headless=True, chromium_sandbox=False
        )
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1400, "height": 700})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("dialog", lambda dialog: errors.append(f"dialog: {dialog.message}"))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    try:
        yield page
    finally:
        context.close()
    assert errors == []


def open_page(page: Page, tmp_path: Path, traces: list[Trace], name: str = "t.html") -> Path:
    path = tmp_path / name
    path.write_text(render_html(traces), encoding="utf-8")
    page.goto(path.as_uri())
    page.wait_for_selector("body[data-ready='1']", timeout=30_000)
    return path


def span(span_id: str, parent: str | None, start_ms: float, end_ms: float, **kw: Any) -> Span:
    fields: dict[str, Any] = {
        "trace_id": "t1",
        "span_id": span_id,
        "parent_id": parent,
        "name": span_id,
        "run_type": "chain",
        "start_ns": int(start_ms * MS),
        "end_ns": int(end_ms * MS),
        "status": "ok",
    }
    fields.update(kw)
    return Span(**fields)


def make_trace(spans: list[Span], name: str = "demo", trace_id: str = "t1") -> Trace:
    return Trace(
        trace_id=trace_id,
        name=name,
        status="ok",
        start_ns=min(s.start_ns for s in spans),
        end_ns=max(s.end_ns for s in spans),
        spans=tuple(spans),
        root_run_id=spans[0].span_id,
    )


def quickstart_chain() -> Any:
    model = GenericFakeChatModel(
        messages=iter(
            [
                AIMessage(
                    content="Why do parrots make good coders? They repeat until it works.",
                    usage_metadata={"input_tokens": 12, "output_tokens": 11, "total_tokens": 23},
                )
            ]
        )
    )
    return (
        ChatPromptTemplate.from_template("Tell me a joke about {topic}") | model | StrOutputParser()
    )


def box(page: Page, selector: str) -> dict[str, float]:
    found = page.locator(selector).bounding_box()
    assert found is not None, selector
    return found


def row(span_id: str) -> str:
    return f".row[data-span-index='{span_id}']"


# -- the tests -----------------------------------------------------------------------------


def test_one_row_per_span_for_a_traced_chain_with_parallel_branches(
    page: Page, tmp_path: Path
) -> None:
    def slow(seconds: float) -> RunnableLambda[Any, Any]:
        return RunnableLambda(lambda x: time.sleep(seconds) or x)

    chain = quickstart_chain() | RunnableParallel(a=slow(0.05), b=slow(0.08))
    with capture() as cap:
        for _ in trace(chain, name="par").stream({"topic": "parrots"}):
            pass
    (traced,) = cap.traces
    open_page(page, tmp_path, [traced])
    assert page.locator(".row").count() == len(traced.spans)
    branches = page.locator(".row", has=page.locator(".name", has_text="RunnableLambda"))
    assert branches.count() == 2
    first, second = (branches.nth(i).locator(".bar").bounding_box() for i in range(2))
    assert first is not None
    assert second is not None
    assert first["x"] < second["x"] + second["width"]
    assert second["x"] < first["x"] + first["width"]  # the branches overlap in time


def test_bars_are_placed_and_sized_in_proportion_to_recorded_times(
    page: Page, tmp_path: Path
) -> None:
    spans = [
        span("root", None, 0, 1000),
        span("a", "root", 100, 600),
        span("b", "root", 200, 900, first_chunk_ns=500 * MS),
        span("c", "root", 650, 700),
    ]
    open_page(page, tmp_path, [make_trace(spans)])
    lane = box(page, f"{row('0')} .lane")
    px_per_ns = lane["width"] / (1000 * MS)
    for index, s in enumerate(spans):
        bar = box(page, f"{row(str(index))} .bar")
        assert bar["x"] - lane["x"] == pytest.approx(s.start_ns * px_per_ns, abs=1.5)
        assert bar["width"] == pytest.approx(s.duration_ns * px_per_ns, abs=1.5)
    a, b = box(page, f"{row('1')} .bar"), box(page, f"{row('2')} .bar")
    assert b["x"] < a["x"] + a["width"]  # a and b overlap in pixels
    ttft = box(page, f"{row('2')} .ttft")
    assert ttft["x"] - lane["x"] == pytest.approx(0.5 * lane["width"], abs=1.5)


def test_each_status_has_its_own_colour(page: Page, tmp_path: Path) -> None:
    statuses = ("ok", "error", "cancelled", "incomplete")
    spans = [span("root", None, 0, 100)] + [
        span(status, "root", 10, 90, status=status) for status in statuses
    ]
    open_page(page, tmp_path, [make_trace(spans)])
    looks = {
        page.locator(f"{row(str(i + 1))} .bar").evaluate(
            "e => { const s = getComputedStyle(e); return s.backgroundColor + s.backgroundImage }"
        )
        for i in range(len(statuses))
    }
    assert len(looks) == len(statuses)


def test_clicking_a_span_shows_its_inputs_outputs_usage_and_metadata(
    page: Page, tmp_path: Path
) -> None:
    with capture() as cap:
        trace(quickstart_chain(), name="joke").invoke(
            {"topic": "parrots"}, config={"metadata": {"team": "birds"}, "tags": ["demo"]}
        )
    open_page(page, tmp_path, cap.traces)
    assert "Click a span" in (page.text_content("#details") or "")
    page.locator(".row", has=page.locator(".name", has_text="GenericFakeChatModel")).click()
    details = page.text_content("#details") or ""
    assert "GenericFakeChatModel" in details
    assert "Tell me a joke about parrots" in details  # inputs: the prompt's messages
    assert "They repeat until it works." in details  # outputs
    assert '"total_tokens": 23' in details  # usage
    assert '"team": "birds"' in details  # metadata
    assert '"HumanMessage"' in details  # LangChain messages shown as readable JSON
    assert page.locator(".row.selected").count() == 1
    assert "23 tokens" in (page.text_content("#summary") or "")


def test_a_multi_trace_file_lists_traces_and_switches_between_them(
    page: Page, tmp_path: Path
) -> None:
    first = make_trace([span("r1", None, 0, 10)], name="first", trace_id="t1")
    second = make_trace(
        [span("r2", None, 0, 10, trace_id="t2"), span("k", "r2", 1, 5, trace_id="t2")],
        name="second",
        trace_id="t2",
    )
    open_page(page, tmp_path, [first, second])
    assert page.locator(".trace-item").count() == 2
    assert page.locator(".row").count() == 1
    page.locator(".trace-item", has_text="second").click()
    assert page.locator(".row").count() == 2
    assert "second" in (page.text_content("#summary") or "")


def test_a_hostile_file_renders_names_as_text_and_runs_nothing(page: Page, tmp_path: Path) -> None:
    names = [
        '<img src=x onerror="window.__pwned=1">',
        "</script><script>window.__pwned=1</script>",
        "<svg onload=window.__pwned=1>",
    ]
    spans = [span("root", None, 0, 10, name=names[0])] + [
        span(f"c{i}", "root", 1, 9, name=n, inputs={n: n}, metadata={n: n}, tags=(n,))
        for i, n in enumerate(names)
    ]
    hostile = make_trace(spans, name=names[1])
    path = tmp_path / "hostile.jsonl"
    start = TraceStart(hostile.trace_id, hostile.name, 0, "root")
    end = TraceEnd(hostile.trace_id, "ok", 10 * MS, len(spans), 0)
    path.write_bytes(b"".join(encode_line(r) for r in (start, *spans, end)))
    open_page(page, tmp_path, read_traces(path))
    for index in range(len(spans)):
        page.locator(row(str(index))).click()
    assert page.evaluate("window.__pwned") is None
    assert page.locator("img, svg, #spacer script, #details script").count() == 0
    shown = page.locator(".row .name").all_text_contents()
    assert sorted(shown) == sorted([names[0], *names])
    assert names[2] in (page.text_content("#details") or "")


def test_ten_thousand_spans_render_lazily_and_scroll_to_the_last(
    page: Page, tmp_path: Path
) -> None:
    spans = [span("root", None, 0, 10_000)]
    for group in range(100):
        spans.append(span(f"g{group}", "root", group * 100, group * 100 + 100))
        spans += [
            span(f"g{group}.{i}", f"g{group}", group * 100 + i, group * 100 + i + 1)
            for i in range(99)
        ]
    spans = spans[:10_000]
    assert len(spans) == 10_000
    started = time.monotonic()
    open_page(page, tmp_path, [make_trace(spans)])
    elapsed = time.monotonic() - started
    assert elapsed < 30, f"10,000 spans took {elapsed:.1f} s"
    in_dom = page.locator(".row").count()
    assert 0 < in_dom < 200
    page.locator("#viewport").evaluate("v => { v.scrollTop = v.scrollHeight; }")
    page.wait_for_selector(row("9999"), timeout=5_000)
    assert page.locator(row("0")).count() == 0
    assert page.locator(".row").count() < 200
    last = page.locator(row("9999"))
    assert last.locator(".name").text_content() == spans[-1].name
    assert last.is_visible()


def test_collapsing_a_subtree_hides_its_rows(page: Page, tmp_path: Path) -> None:
    spans = [
        span("root", None, 0, 100),
        span("a", "root", 0, 50),
        span("a1", "a", 0, 20),
        span("b", "root", 50, 100),
    ]
    open_page(page, tmp_path, [make_trace(spans)])
    page.locator(f"{row('1')} .tog").click()
    assert page.locator(".row .name").all_text_contents() == ["root", "a", "b"]
    page.locator(f"{row('0')} .tog").click()
    assert page.locator(".row .name").all_text_contents() == ["root"]


def test_docs_make_waterfall_regenerates_the_readme_screenshot_from_a_real_run(
    tmp_path: Path,
) -> None:
    """docs/make_waterfall.py (how docs/waterfall.png is made) runs the quickstart's chain
    through the local OpenAI-compatible server, renders the page and takes the picture."""
    shot = tmp_path / "waterfall.png"
    done = subprocess.run(
        [sys.executable, str(REPO / "docs" / "make_waterfall.py"), "--out", str(shot)],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
        env={**os.environ, "LCEL_TRACE_CHROMIUM": chromium_path()},
    )
    assert done.returncode == 0, done.stderr
    assert shot.read_bytes().startswith(b"\x89PNG")


# -- layout: nothing overlaps, nothing a reader needs is cut off ----------------------------


def intersect(a: dict[str, float], b: dict[str, float]) -> bool:
    return (
        a["x"] < b["x"] + b["width"]
        and b["x"] < a["x"] + a["width"]
        and a["y"] < b["y"] + b["height"]
        and b["y"] < a["y"] + a["height"]
    )


def quickstart_traces(runs: int = 2) -> list[Trace]:
    """The quickstart's chain streamed `runs` times through ChatOpenAI and the local
    OpenAI-compatible server, all under the trace name "joke"."""
    from langchain_openai import ChatOpenAI

    from lcel_trace.testing.openai_server import OpenAIServer

    reply = "Why do parrots make great storytellers? They always repeat the best parts!"
    with OpenAIServer([reply], token_delay_s=0.005) as server, capture() as cap:
        model = ChatOpenAI(
            base_url=server.base_url,
            api_key="test",  # type: ignore[arg-type]
            model="fake-gpt",
            stream_usage=True,
        )
        chain = (
            ChatPromptTemplate.from_template("Tell me a joke about {topic}")
            | model
            | StrOutputParser()
        )
        for _ in range(runs):
            for _ in trace(chain, name="joke").stream({"topic": "parrots"}):
                pass
    return list(cap.traces)


def test_legend_items_do_not_overlap_each_other_or_the_page(page: Page, tmp_path: Path) -> None:
    traced = make_trace(
        [span("root", None, 0, 100), span("m", "root", 5, 90, first_chunk_ns=20 * MS)]
    )
    open_page(page, tmp_path, [traced])
    items = page.locator(".legend span")
    assert items.all_text_contents() == [
        "ok",
        "error",
        "cancelled",
        "incomplete",
        "first chunk",
        "first token",
    ]
    boxes = [items.nth(i).bounding_box() for i in range(items.count())]
    others = [box(page, "header h1"), box(page, "#summary"), box(page, "#axis")]
    for i, item in enumerate(boxes):
        assert item is not None
        assert item["height"] < 20  # a line of text, not an 18 px marker bar
        for j, other in enumerate(boxes[i + 1 :] + others):
            assert other is not None
            assert not intersect(item, other), (i, j, item, other)
    assert page.locator(".legend .first-token").evaluate("e => getComputedStyle(e).position") == (
        "static"
    )


def test_traces_with_the_same_name_are_told_apart_by_start_time_and_id(
    page: Page, tmp_path: Path
) -> None:
    start = 1_796_605_983_349 * MS  # 2026-12-07 01:13:03.349 UTC
    first, second = (
        Trace(
            trace_id=trace_id,
            name="joke",
            status="ok",
            start_ns=start + offset,
            end_ns=start + offset + 10 * MS,
            spans=(span("r", None, 0, 10, trace_id=trace_id),),
            root_run_id="r",
        )
        for trace_id, offset in (("0a1b2c3d" + "0" * 24, 0), ("9f8e7d6c" + "1" * 24, 1500 * MS))
    )
    open_page(page, tmp_path, [first, second])
    assert page.locator(".trace-item .when").all_text_contents() == [
        "01:13:03.349 \u00b7 0a1b2c3d",
        "01:13:04.849 \u00b7 9f8e7d6c",
    ]
    assert "2026-12-07 01:13:03.349 UTC" in (page.text_content("#summary") or "")


def test_model_and_root_rows_show_name_model_and_tokens_uncut_at_1400_px(
    page: Page, tmp_path: Path
) -> None:
    page.set_viewport_size({"width": 1400, "height": 700})
    traces = quickstart_traces()
    open_page(page, tmp_path, traces)
    model_row = page.locator(".row", has=page.locator(".name", has_text="ChatOpenAI"))
    model_row.click()  # the details panel open, as when reading a span
    assert "fake-gpt \u00b7 6 in / 12 out tokens" in (model_row.text_content() or "")
    root_row = page.locator(".row", has=page.locator(".name", has_text="RunnableSequence"))
    assert "6 in / 12 out tokens (whole trace)" in (root_row.text_content() or "")
    lines = page.locator(".row .line")
    assert lines.count() == 2 * len(traces[0].spans)
    for i in range(lines.count()):
        line = lines.nth(i)
        clipped = line.evaluate("e => e.scrollWidth > e.clientWidth")
        assert not clipped, line.text_content()
    label, lane = box(page, f"{row('2')} .label"), box(page, f"{row('2')} .lane")
    assert label["x"] + label["width"] <= lane["x"]
