"""A trace file as one self-contained HTML page: a waterfall per trace, details on click.

`render_html(traces)` returns a single HTML document with inline CSS and JS and no
network access, so it opens from `file://` and can be mailed around. The traces go
into the page as JSON in a `<script type="application/json">` block (with `<`, `>`,
`&`, U+2028/U+2029 and lone surrogates escaped), and the script builds the DOM with
`textContent` only. A Content-Security-Policy meta tag allows nothing but the page's
own script and style, pinned by their SHA-256 hashes.

Large traces: the waterfall is a virtualised list. Every row has the same height, a
spacer gives the scroll area its full height, and only the rows in view (plus a small
margin) are in the DOM, re-rendered on scroll; subtrees can also be collapsed. A
10,000-span trace therefore keeps about fifty row elements alive at any time.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from lcel_trace.cost import MODEL_RUN_TYPES, format_usd, priceable, span_cost, total_cost
from lcel_trace.records import to_line
from lcel_trace.span import Span, Trace

MAX_VALUE_CHARS = 10_000
"""Content strings longer than this are cut in the page (with a visible marker)."""

_ESCAPED_KEY = "__lcel_escaped__"
# Characters that must not appear raw inside a <script> block or a JS string literal.
_UNSAFE = re.compile("[<>&\u2028\u2029\ud800-\udfff]")

_CSS = """
:root{--ok:#2e9d4f;--error:#d6333b;--cancelled:#e08a00;--incomplete:#8a5cc2;
--bg:#fff;--fg:#1d232b;--muted:#6b7480;--line:#e3e6ea;--sel:#e8f0fe;--row:34px}
*{box-sizing:border-box}
html,body{margin:0;height:100%}
body{font:13px/1.4 system-ui,-apple-system,"Segoe UI",sans-serif;color:var(--fg);
background:var(--bg);display:flex;flex-direction:column}
header{padding:8px 12px;border-bottom:1px solid var(--line);display:flex;gap:16px;
align-items:baseline;flex-wrap:wrap}
header h1{font-size:15px;margin:0}
.legend{display:flex;gap:10px;color:var(--muted);font-size:12px}
.legend span::before{content:"";display:inline-block;width:10px;height:10px;
margin-right:4px;border-radius:2px;background:var(--c);vertical-align:-1px}
.legend .first-chunk{--c:#111}.legend .first-chunk::before{width:2px;border-radius:1px}
.legend .first-token{--c:#1a73e8}.legend .first-token::before{width:2px;border-radius:1px}
.st-ok{--c:var(--ok)}.st-error{--c:var(--error)}
.st-cancelled{--c:var(--cancelled)}.st-incomplete{--c:var(--incomplete)}
#app{flex:1;display:flex;min-height:0}
#traces{width:230px;border-right:1px solid var(--line);overflow:auto;flex:none}
#traces.hidden{display:none}
.trace-item{padding:6px 10px;border-bottom:1px solid var(--line);cursor:pointer}
.trace-item.selected{background:var(--sel)}
.trace-item .meta{color:var(--muted);font-size:11px;white-space:nowrap;overflow:hidden;
text-overflow:ellipsis}
.trace-item .when{font-variant-numeric:tabular-nums}
#main{flex:1;display:flex;flex-direction:column;min-width:0}
#summary{padding:6px 12px;border-bottom:1px solid var(--line);color:var(--muted)}
#summary b{color:var(--fg)}
#axis{display:flex;height:20px;border-bottom:1px solid var(--line);flex:none}
#axis .label-col{flex:none}
#axis .lane{position:relative;flex:1;margin-right:12px}
.tick{position:absolute;top:2px;font-size:10px;color:var(--muted);white-space:nowrap;
border-left:1px solid var(--line);padding-left:2px;height:16px}
#viewport{flex:1;overflow:auto;position:relative;min-height:0}
#spacer{position:relative;width:100%}
.row{position:absolute;left:0;right:0;height:var(--row);display:flex;cursor:pointer;
border-bottom:1px solid #f3f4f6}
.row:hover{background:#f7f9fb}
.row.selected{background:var(--sel)}
.label-col{width:46%;max-width:600px;min-width:260px}
.row .label{flex:none;overflow:hidden;white-space:nowrap;text-overflow:ellipsis;
padding:2px 8px 0 0;line-height:15px;display:flex;flex-direction:column}
.row .line{overflow:hidden;text-overflow:ellipsis}
.row .facts{display:block;margin-left:14px}
.tog{display:inline-block;width:14px;color:var(--muted);text-align:center}
.name{font-weight:500}
.facts,.model{color:var(--muted);font-size:11px}
.model{margin-left:6px}
.row .lane{position:relative;flex:1;margin-right:12px}
.bar{position:absolute;top:11px;height:12px;min-width:2px;border-radius:2px;
background:var(--c)}
.bar.st-incomplete{background:repeating-linear-gradient(45deg,var(--incomplete) 0 4px,
#c7b0e6 4px 8px)}
.lane .ttft,.lane .first-token{position:absolute;top:8px;width:2px;height:18px;
background:#111;border-radius:1px}
.lane .first-token{background:#1a73e8}
#details{width:26%;max-width:460px;border-left:1px solid var(--line);overflow:auto;
padding:8px 12px;flex:none}
#details h2{font-size:14px;margin:4px 0 8px;word-break:break-all}
#details h3{font-size:12px;margin:12px 0 4px;color:var(--muted);text-transform:uppercase}
#details pre{margin:0;padding:6px;background:#f6f8fa;border-radius:4px;white-space:pre-wrap;
word-break:break-word;font:12px/1.4 ui-monospace,Menlo,Consolas,monospace}
#details .empty{color:var(--muted)}
table.kv{border-collapse:collapse}
table.kv td{padding:1px 8px 1px 0;vertical-align:top}
table.kv td:first-child{color:var(--muted)}
"""

_JS = r"""
(function () {
  "use strict";
  var DATA = JSON.parse(document.getElementById("lcel-trace-data").textContent);
  var ROW = 34, OVERSCAN = 15;
  var traces = DATA.traces;
  var current = null, visible = [], collapsed = null, selected = -1, pending = false;
  var viewport = document.getElementById("viewport");
  var spacer = document.getElementById("spacer");

  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }
  function ms(ns) {
    var v = ns / 1e6;
    if (v >= 1000) return (v / 1000).toFixed(2) + " s";
    if (v >= 10) return v.toFixed(1) + " ms";
    return v.toFixed(2) + " ms";
  }
  function known(n) { return n !== null && n !== undefined; }
  function tokens(u) {
    if (!u) return null;
    if (known(u.input_tokens) || known(u.output_tokens)) {
      return (known(u.input_tokens) ? u.input_tokens : "?") + " in / " +
        (known(u.output_tokens) ? u.output_tokens : "?") + " out tokens";
    }
    return known(u.total_tokens) ? u.total_tokens + " tokens" : null;
  }
  function pct(ns) { return (100 * ns / current.span_ns) + "%"; }

  function buildTraceList() {
    var list = document.getElementById("traces");
    if (traces.length < 2) list.className = "hidden";
    traces.forEach(function (t, i) {
      var item = el("div", "trace-item");
      item.dataset.traceIndex = String(i);
      item.appendChild(el("div", "name", t.name || "(unnamed)"));
      var when = el("div", "meta when", t.started_time + " \u00b7 " + t.trace_id.slice(0, 8));
      when.title = t.started + " \u00b7 trace " + t.trace_id;
      item.appendChild(when);
      var meta = el("div", "meta", t.status + " \u00b7 " + ms(t.duration_ns) + " \u00b7 " +
        t.spans.length + " spans");
      meta.classList.add("st-" + t.status);
      item.appendChild(meta);
      item.addEventListener("click", function () { showTrace(i); });
      list.appendChild(item);
    });
  }

  function showTrace(i) {
    current = traces[i];
    collapsed = new Uint8Array(current.spans.length);
    selected = -1;
    document.querySelectorAll(".trace-item").forEach(function (n) {
      n.classList.toggle("selected", n.dataset.traceIndex === String(i));
    });
    var summary = document.getElementById("summary");
    summary.replaceChildren();
    summary.appendChild(el("b", null, current.name || "(unnamed)"));
    var tok = current.tokens;
    summary.appendChild(document.createTextNode(
      " \u00b7 trace " + current.trace_id + " \u00b7 " + current.started + " \u00b7 " +
      current.status + " \u00b7 " +
      ms(current.duration_ns) + " \u00b7 " + current.spans.length + " spans" +
      (tok.total ? " \u00b7 " + tok.total + " tokens (" + tok.input + " in, " +
        tok.output + " out)" : "") +
      (current.cost ? " \u00b7 cost " + current.cost : "")));
    buildAxis();
    computeVisible();
    viewport.scrollTop = 0;
    render();
    showDetails(-1);
  }

  function buildAxis() {
    var lane = document.querySelector("#axis .lane");
    lane.replaceChildren();
    var steps = 5;
    for (var k = 0; k < steps; k++) {
      var tick = el("div", "tick", ms(current.span_ns * k / steps));
      tick.style.left = (100 * k / steps) + "%";
      lane.appendChild(tick);
    }
  }

  function computeVisible() {
    var spans = current.spans, out = [], i = 0;
    while (i < spans.length) {
      out.push(i);
      i = collapsed[i] ? spans[i].subtree_end : i + 1;
    }
    visible = out;
    spacer.style.height = (visible.length * ROW) + "px";
  }

  function render() {
    pending = false;
    if (!current) return;
    var first = Math.max(0, Math.floor(viewport.scrollTop / ROW) - OVERSCAN);
    var last = Math.min(visible.length,
      Math.ceil((viewport.scrollTop + viewport.clientHeight) / ROW) + OVERSCAN);
    var rows = [];
    for (var v = first; v < last; v++) rows.push(makeRow(visible[v], v));
    spacer.replaceChildren.apply(spacer, rows);
  }

  function makeRow(i, position) {
    var s = current.spans[i];
    var row = el("div", "row" + (i === selected ? " selected" : ""));
    row.dataset.spanIndex = String(i);
    row.style.top = (position * ROW) + "px";
    var label = el("div", "label label-col");
    label.style.paddingLeft = (4 + Math.min(s.depth, 40) * 14) + "px";
    var tog = el("span", "tog", s.subtree_end > i + 1 ? (collapsed[i] ? "\u25b8" : "\u25be") : "");
    if (s.subtree_end > i + 1) {
      tog.addEventListener("click", function (e) {
        e.stopPropagation();
        collapsed[i] = collapsed[i] ? 0 : 1;
        computeVisible();
        render();
      });
    }
    var head = el("span", "line");
    head.appendChild(tog);
    head.appendChild(el("span", "name", s.name));
    var model = s.detail.model ? [s.detail.model] : [];
    var tk = tokens(s.usage);
    if (tk !== null) model.push(s.usage_is_trace_total ? tk + " (whole trace)" : tk);
    if (s.detail.cost && s.detail.cost.usd !== undefined) {
      model.push("$" + s.detail.cost.usd.toFixed(6));
    }
    if (model.length) head.appendChild(el("span", "model", model.join(" \u00b7 ")));
    label.appendChild(head);
    var facts = [s.run_type, ms(s.end - s.start)];
    if (s.first_token !== null) facts.push("first token " + ms(s.first_token - s.start));
    else if (s.ttft !== null) facts.push("first chunk " + ms(s.ttft - s.start));
    if (s.status !== "ok") facts.push(s.status);
    label.appendChild(el("span", "facts line", facts.join(" \u00b7 ")));
    label.title = s.name + (s.detail.model ? " (" + s.detail.model + ")" : "");
    row.appendChild(label);
    var lane = el("div", "lane");
    var bar = el("div", "bar st-" + s.status);
    bar.style.left = pct(s.start);
    bar.style.width = pct(s.end - s.start);
    lane.appendChild(bar);
    if (s.ttft !== null) {
      var mark = el("div", "ttft");
      mark.style.left = pct(s.ttft);
      mark.title = "first chunk";
      lane.appendChild(mark);
    }
    if (s.first_token !== null && s.first_token !== s.ttft) {
      var tok = el("div", "first-token");
      tok.style.left = pct(s.first_token);
      tok.title = "first token";
      lane.appendChild(tok);
    }
    row.appendChild(lane);
    row.addEventListener("click", function () { showDetails(i); });
    return row;
  }

  function section(parent, title, value) {
    parent.appendChild(el("h3", null, title));
    var empty = value === null || value === undefined ||
      (typeof value === "object" && Object.keys(value).length === 0);
    if (empty) { parent.appendChild(el("div", "empty", "\u2014")); return; }
    parent.appendChild(el("pre", null,
      typeof value === "string" ? value : JSON.stringify(value, null, 2)));
  }

  function showDetails(i) {
    selected = i;
    spacer.querySelectorAll(".row").forEach(function (r) {
      r.classList.toggle("selected", r.dataset.spanIndex === String(i));
    });
    var box = document.getElementById("details");
    box.replaceChildren();
    if (i < 0) { box.appendChild(el("div", "empty", "Click a span to see its details.")); return; }
    var s = current.spans[i], d = s.detail;
    box.appendChild(el("h2", null, s.name));
    var table = el("table", "kv");
    var facts = [["status", s.status], ["run type", s.run_type], ["span id", d.span_id],
      ["parent id", d.parent_id], ["start", "+" + ms(s.start)], ["duration", ms(s.end - s.start)],
      ["time to first chunk", s.ttft === null ? null : ms(s.ttft - s.start)],
      ["time to first token", s.first_token === null ? null : ms(s.first_token - s.start)],
      ["chunks", d.chunk_count], ["model", d.model]];
    facts.forEach(function (f) {
      if (f[1] === null || f[1] === undefined) return;
      var tr = el("tr");
      tr.appendChild(el("td", null, f[0]));
      tr.appendChild(el("td", null, f[1]));
      table.appendChild(tr);
    });
    box.appendChild(table);
    if (d.error) section(box, "error", d.error.type + ": " + d.error.message);
    section(box, s.usage_is_trace_total ? "usage (the whole trace)" : "usage", s.usage);
    if (d.cost) section(box, "cost (USD)", d.cost);
    section(box, "inputs", d.inputs);
    section(box, "outputs", d.outputs);
    section(box, "attributes", d.attributes);
    section(box, "tags", d.tags);
    section(box, "metadata", d.metadata);
    if (d.events && d.events.length) section(box, "events", d.events);
  }

  viewport.addEventListener("scroll", function () {
    if (!pending) { pending = true; requestAnimationFrame(render); }
  });
  window.addEventListener("resize", function () { if (current) render(); });
  buildTraceList();
  if (traces.length) showTrace(0);
  else document.getElementById("summary").textContent = "No traces in this file.";
  document.body.dataset.ready = "1";
})();
"""


def render_html(traces: Sequence[Trace], *, title: str | None = None) -> str:
    """One self-contained HTML page showing `traces` as waterfalls (see the module doc)."""
    payload = {"traces": [_trace_data(trace) for trace in traces]}
    data = _script_json(payload)
    page_title = title if title is not None else _default_title(traces)
    csp = "; ".join(
        (
            "default-src 'none'",
            f"script-src '{_sha256(_JS)}'",
            f"style-src '{_sha256(_CSS)}'",
            "img-src 'none'",
            "base-uri 'none'",
            "form-action 'none'",
        )
    )
    legend = "".join(
        f'<span class="st-{status}">{status}</span>'
        for status in ("ok", "error", "cancelled", "incomplete")
    )
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{csp}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{html.escape(page_title)}</title>\n"
        f"<style>{_CSS}</style>\n</head>\n<body>\n"
        f"<header><h1>{html.escape(page_title)}</h1>"
        f'<div class="legend">{legend}<span class="first-chunk">first chunk</span>'
        '<span class="first-token">first token</span></div>'
        "</header>\n"
        '<div id="app"><nav id="traces"></nav><main id="main"><div id="summary"></div>'
        '<div id="axis"><div class="label-col"></div><div class="lane"></div></div>'
        '<div id="viewport"><div id="spacer"></div></div></main>'
        '<aside id="details"></aside></div>\n'
        f'<script type="application/json" id="lcel-trace-data">{data}</script>\n'
        f"<script>{_JS}</script>\n</body>\n</html>\n"
    )


def script_hashes() -> tuple[str, str]:
    """The CSP source expressions (`sha256-...`) of the page's inline script and style."""
    return _sha256(_JS), _sha256(_CSS)


def _sha256(text: str) -> str:
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return "sha256-" + base64.b64encode(digest).decode("ascii")


def _default_title(traces: Sequence[Trace]) -> str:
    if len(traces) == 1:
        return f"{traces[0].name or 'trace'} - lcel-trace"
    return f"{len(traces)} traces - lcel-trace"


def _script_json(value: Any) -> str:
    """JSON that is inert inside `<script>`: no `<`, `>`, `&`, line separators or lone
    surrogates survive raw (each becomes a `\\uXXXX` escape, which JSON.parse undoes)."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return _UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def _trace_data(trace: Trace) -> dict[str, Any]:
    ordered = _tree_order(trace)
    t0 = min([trace.start_ns, *(span.start_ns for span, _ in ordered)])
    t1 = max([trace.end_ns, *(span.end_ns for span, _ in ordered)])
    spans: list[dict[str, Any]] = []
    subtree_end: list[int] = [0] * len(ordered)
    open_stack: list[tuple[int, int]] = []  # (index, depth) of spans whose subtree is open
    totals = {"input": 0, "output": 0, "total": 0}
    for index, (span, depth) in enumerate(ordered):
        while open_stack and open_stack[-1][1] >= depth:
            subtree_end[open_stack.pop()[0]] = index
        open_stack.append((index, depth))
        spans.append(_span_data(span, depth, t0))
        if span.usage is not None:
            totals["input"] += span.usage.input_tokens or 0
            totals["output"] += span.usage.output_tokens or 0
            totals["total"] += span.usage.total_tokens or (
                (span.usage.input_tokens or 0) + (span.usage.output_tokens or 0)
            )
    for index, _ in open_stack:
        subtree_end[index] = len(ordered)
    for index, data in enumerate(spans):
        data["subtree_end"] = subtree_end[index]
    if spans and spans[0]["usage"] is None and totals["total"]:
        # a trace's root carries the trace's token totals (the model calls under it)
        spans[0]["usage"] = {
            "input_tokens": totals["input"],
            "output_tokens": totals["output"],
            "total_tokens": totals["total"],
        }
        spans[0]["usage_is_trace_total"] = True
    started = datetime.fromtimestamp(trace.start_ns / 1e9, tz=UTC)
    models = [span for span, _ in ordered if span.run_type in MODEL_RUN_TYPES]
    cost = None
    if any(priceable(span) for span in models):
        usd, partial = total_cost(models)
        cost = "unknown" if usd is None else f"{'≥' if partial else ''}{format_usd(usd)}"
    return {
        "cost": cost,
        "trace_id": trace.trace_id,
        "name": trace.name,
        "started": started.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + " UTC",
        "started_time": started.strftime("%H:%M:%S.%f")[:-3],
        "status": trace.status,
        "duration_ns": trace.end_ns - trace.start_ns,
        "span_ns": max(t1 - t0, 1),
        "tokens": totals,
        "spans": spans,
    }


def _tree_order(trace: Trace) -> list[tuple[Span, int]]:
    """Spans depth first with their depth, as `Trace.tree()` shapes them."""
    if not trace.spans:
        return []
    return [(node.span, depth) for node, depth in trace.tree().walk_with_depth()]


def _span_data(span: Span, depth: int, t0: int) -> dict[str, Any]:
    line = to_line(span, MAX_VALUE_CHARS)
    return {
        "name": span.name,
        "run_type": span.run_type,
        "status": span.status,
        "depth": depth,
        "start": span.start_ns - t0,
        "end": span.end_ns - t0,
        "ttft": None if span.first_chunk_ns is None else span.first_chunk_ns - t0,
        "first_token": None if span.first_token_ns is None else span.first_token_ns - t0,
        "usage": line["usage"],
        "detail": {
            "span_id": span.span_id,
            "parent_id": span.parent_id,
            "model": span.model,
            "cost": _cost(span),
            "chunk_count": span.chunk_count,
            "error": line["error"],
            "inputs": _readable(line["inputs"]),
            "outputs": _readable(line["outputs"]),
            "attributes": _readable(line["attributes"]),
            "tags": line["tags"],
            "metadata": _readable(line["metadata"]),
            "events": _readable(line["events"]),
        },
    }


def _cost(span: Span) -> dict[str, Any] | str | None:
    """A model call's price for the details pane; "unknown" when the list lacks it."""
    if not priceable(span):
        return None
    cost = span_cost(span)
    if cost is None:
        return "unknown"
    return {
        "usd": cost.total_usd,
        "input_usd": cost.input_usd,
        "output_usd": cost.output_usd,
        "source": cost.source,
    }


def _readable(value: Any, depth: int = 0) -> Any:
    """LangChain's serialised form shown as `{"_type": "AIMessage", ...fields}`, and the
    writer's escape wrapper removed: the page is for reading, not for loading back."""
    if depth > 80:
        return value
    if isinstance(value, list):
        return [_readable(v, depth + 1) for v in value]
    if not isinstance(value, dict):
        return value
    if len(value) == 1 and isinstance(value.get(_ESCAPED_KEY), dict):
        return {k: _readable(v, depth + 1) for k, v in value[_ESCAPED_KEY].items()}
    ident = value.get("id")
    if (
        value.get("lc") == 1
        and value.get("type") == "constructor"
        and isinstance(ident, list)
        and ident
        and isinstance(value.get("kwargs"), dict)
    ):
        fields = {k: _readable(v, depth + 1) for k, v in value["kwargs"].items()}
        return {"_type": str(ident[-1]), **fields}
    return {k: _readable(v, depth + 1) for k, v in value.items()}
