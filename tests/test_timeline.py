"""The HTML timeline page, checked as text (no browser): self-contained, CSP-pinned, inert."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from langchain_core.language_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate

from lcel_trace import capture, trace
from lcel_trace.exporters import JsonlExporter
from lcel_trace.span import Span, SpanError, Trace, Usage
from lcel_trace.timeline import MAX_VALUE_CHARS, render_html

HOSTILE_NAMES = (
    '<img src=x onerror="window.__pwned=1">',
    "</script><script>window.__pwned=1</script>",
    "a\u2028b\u2029c & <!-- -->",
)


def span(span_id: str, parent: str | None, start: int, end: int, **kw: object) -> Span:
    fields: dict[str, object] = {
        "trace_id": "t1",
        "span_id": span_id,
        "parent_id": parent,
        "name": span_id,
        "run_type": "chain",
        "start_ns": start,
        "end_ns": end,
        "status": "ok",
    }
    fields.update(kw)
    return Span(**fields)  # type: ignore[arg-type]


def make_trace(*spans: Span, name: str = "demo") -> Trace:
    return Trace(
        trace_id=spans[0].trace_id,
        name=name,
        status="ok",
        start_ns=min(s.start_ns for s in spans),
        end_ns=max(s.end_ns for s in spans),
        spans=spans,
        root_run_id=spans[0].span_id,
    )


def hostile_trace() -> Trace:
    spans = [span("root", None, 0, 1000, name=HOSTILE_NAMES[0])]
    spans += [
        span(f"c{i}", "root", 10, 900, name=name, inputs={name: name}, tags=(name,))
        for i, name in enumerate(HOSTILE_NAMES[1:])
    ]
    return make_trace(*spans, name=HOSTILE_NAMES[1])


def page_data(page: str) -> dict[str, object]:
    match = re.search(
        r'<script type="application/json" id="lcel-trace-data">(.*?)</script>', page, re.S
    )
    assert match is not None
    data: dict[str, object] = json.loads(match.group(1))
    return data


def scripts(page: str) -> list[str]:
    return re.findall(r"<script>(.*?)</script>", page, re.S)


def test_page_is_self_contained() -> None:
    page = render_html([hostile_trace()])
    assert not re.search(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", page, re.I)
    assert "<link" not in page
    assert "@import" not in page
    assert "url(" not in page


def test_csp_allows_only_the_page_own_script_and_style_by_hash() -> None:
    page = render_html([hostile_trace()])
    csp = re.search(r'<meta http-equiv="Content-Security-Policy" content="([^"]+)">', page)
    assert csp is not None
    policy = dict(part.strip().split(" ", 1) for part in csp.group(1).split(";"))
    assert policy["default-src"] == "'none'"
    assert "unsafe-inline" not in csp.group(1)
    (script,) = scripts(page)
    (style,) = re.findall(r"<style>(.*?)</style>", page, re.S)
    for directive, text in (("script-src", script), ("style-src", style)):
        digest = base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()
        assert policy[directive] == f"'sha256-{digest}'"


def test_hostile_strings_are_escaped_in_the_embedded_json() -> None:
    page = render_html([hostile_trace()])
    body = page.split('id="lcel-trace-data">', 1)[1].split("</script>", 1)[0]
    for raw in ("<", ">", "&", "\u2028", "\u2029"):
        assert raw not in body
    assert page.count("</script>") == 2  # the data block's and the code's, nothing injected
    assert "<img" not in page
    names = {s["name"] for t in page_data(page)["traces"] for s in t["spans"]}  # type: ignore[attr-defined]
    assert names == set(HOSTILE_NAMES)


def test_title_is_html_escaped() -> None:
    page = render_html([hostile_trace()], title="<b>x</b>")
    assert "<title>&lt;b&gt;x&lt;/b&gt;</title>" in page


def test_lone_surrogates_become_escapes_and_the_page_encodes_as_utf8() -> None:
    page = render_html([make_trace(span("root", None, 0, 10, name="bad \ud800 half"))])
    page.encode("utf-8")
    assert page_data(page)["traces"][0]["spans"][0]["name"] == "bad \ud800 half"  # type: ignore[index]


def test_spans_are_in_tree_order_with_depth_and_subtree_ends() -> None:
    page = render_html(
        [
            make_trace(
                span("root", None, 0, 100),
                span("b", "root", 50, 90),
                span("a", "root", 10, 40),
                span("a1", "a", 20, 30),
            )
        ]
    )
    spans = page_data(page)["traces"][0]["spans"]  # type: ignore[index]
    assert [(s["name"], s["depth"], s["subtree_end"]) for s in spans] == [
        ("root", 0, 4),
        ("a", 1, 3),
        ("a1", 2, 3),
        ("b", 1, 4),
    ]


def test_parent_cycles_in_a_bad_file_lose_no_span() -> None:
    page = render_html([make_trace(span("x", "y", 0, 10), span("y", "x", 2, 8))])
    assert len(page_data(page)["traces"][0]["spans"]) == 2  # type: ignore[index]


def test_times_usage_ttft_and_error_are_carried() -> None:
    root = span(
        "root",
        None,
        1_000,
        9_000,
        status="error",
        error=SpanError("ValueError", "boom"),
        first_chunk_ns=3_000,
        usage=Usage(2, 3, 5),
    )
    data = page_data(render_html([make_trace(root)]))["traces"][0]  # type: ignore[index]
    s = data["spans"][0]
    assert (s["start"], s["end"], s["ttft"]) == (0, 8_000, 2_000)
    assert s["usage"] == {"input_tokens": 2, "output_tokens": 3, "total_tokens": 5}
    assert s["detail"]["error"] == {"type": "ValueError", "message": "boom"}
    assert data["tokens"] == {"input": 2, "output": 3, "total": 5}


def test_langchain_messages_render_as_readable_json_and_long_strings_are_cut() -> None:
    model = GenericFakeChatModel(messages=iter([AIMessage(content="hi there")]))
    chain = ChatPromptTemplate.from_template("{q}") | model | StrOutputParser()
    with capture() as cap:
        trace(chain).invoke({"q": "x" * (MAX_VALUE_CHARS + 50)})
    spans = page_data(render_html(cap.traces))["traces"][0]["spans"]  # type: ignore[index]
    by_name = {s["name"]: s for s in spans}
    output = by_name["GenericFakeChatModel"]["detail"]["outputs"]
    assert "lc" not in json.dumps(output).replace('"lc_', "")
    assert '"_type": "AIMessage"' in json.dumps(output)
    prompt_input = by_name["RunnableSequence"]["detail"]["inputs"]["q"]
    assert prompt_input.endswith("…[truncated 50 chars]")


def test_no_traces_still_makes_a_page() -> None:
    assert page_data(render_html([])) == {"traces": []}


# -- the command ---------------------------------------------------------------------------


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lcel_trace", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def trace_file(tmp_path: Path) -> Path:
    path = tmp_path / "runs.jsonl"
    model = GenericFakeChatModel(messages=iter([AIMessage(content="a b")] * 2))
    chain = ChatPromptTemplate.from_template("{q}") | model | StrOutputParser()
    with JsonlExporter(path) as exporter:
        traced = trace(chain, exporters=[exporter], name="joke")
        traced.invoke({"q": "1"})
        traced.invoke({"q": "2"})
    return path


def test_html_command_writes_the_page_next_to_the_file(trace_file: Path) -> None:
    result = cli("html", str(trace_file))
    assert result.returncode == 0, result.stderr
    page = trace_file.with_suffix(".html").read_text(encoding="utf-8")
    assert len(page_data(page)["traces"]) == 2  # type: ignore[arg-type]


def test_html_command_writes_one_trace_to_the_named_output(
    trace_file: Path, tmp_path: Path
) -> None:
    first = json.loads(trace_file.read_text().splitlines()[0])["trace_id"]
    out = tmp_path / "one.html"
    result = cli("html", str(trace_file), "-o", str(out), "--trace", first[:8])
    assert result.returncode == 0, result.stderr
    (only,) = page_data(out.read_text(encoding="utf-8"))["traces"]  # type: ignore[misc]
    assert only["trace_id"] == first


@pytest.mark.parametrize(
    "content",
    ['{"type": "span"}\n', "not json\n", '{"type":"trace_start","format":"other"}\n'],
)
def test_html_command_exits_2_with_one_line_on_a_bad_file(tmp_path: Path, content: str) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text(content)
    result = cli("html", str(bad))
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert "bad.jsonl:1:" in result.stderr
    assert not bad.with_suffix(".html").exists()


def test_html_command_exits_2_on_a_missing_file_or_unknown_trace(trace_file: Path) -> None:
    assert cli("html", str(trace_file.with_name("missing.jsonl"))).returncode == 2
    result = cli("html", str(trace_file), "--trace", "nope")
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1
