"""Hypothesis strategies for lcel-trace records: random spans, events and traces."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st
from langchain_core.documents import Document
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage

from lcel_trace.span import RUN_TYPES, STATUSES, Span, SpanError, SpanEvent, TraceEvent, Usage

ids = st.uuids().map(str)
trace_ids = st.binary(min_size=16, max_size=16).map(bytes.hex)
names = st.text(min_size=1, max_size=20)
timestamps = st.integers(min_value=1_700_000_000_000_000_000, max_value=1_900_000_000_000_000_000)
plain = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53), max_value=2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=10,
)
langchain_objects = st.one_of(
    st.text(max_size=30).map(lambda t: AIMessage(content=t)),
    st.text(max_size=30).map(lambda t: AIMessageChunk(content=t)),
    st.text(max_size=30).map(lambda t: HumanMessage(content=t)),
    st.text(max_size=30).map(lambda t: Document(page_content=t, metadata={"source": "s"})),
)
content: st.SearchStrategy[Any] = st.one_of(
    plain, langchain_objects, st.lists(langchain_objects, max_size=3)
)


@st.composite
def spans(draw: st.DrawFn, trace_id: str | None = None) -> Span:
    start = draw(timestamps)
    status = draw(st.sampled_from(sorted(STATUSES)))
    return Span(
        trace_id=trace_id or draw(trace_ids),
        span_id=draw(ids),
        parent_id=draw(st.none() | ids),
        name=draw(names),
        run_type=draw(st.sampled_from(sorted(RUN_TYPES))),  # type: ignore[arg-type]
        start_ns=start,
        end_ns=start + draw(st.integers(0, 10**10)),
        status=status,  # type: ignore[arg-type]
        error=SpanError(draw(names), draw(st.text(max_size=30))) if status == "error" else None,
        inputs=draw(content),
        outputs=draw(content),
        tags=tuple(draw(st.lists(names, max_size=3))),
        metadata=draw(
            st.dictionaries(
                st.text(min_size=1, max_size=8).filter(lambda k: k != "lc"), plain, max_size=3
            )
        ),
        chunk_count=draw(st.integers(0, 1000)),
        first_chunk_ns=draw(st.none() | st.just(start + 1)),
        usage=draw(
            st.none()
            | st.builds(Usage, st.integers(0, 10**6), st.integers(0, 10**6), st.integers(0, 10**6))
        ),
        model=draw(st.none() | names),
        events=tuple(draw(st.lists(st.builds(SpanEvent, names, timestamps, plain), max_size=2))),
        attributes=draw(
            st.dictionaries(st.sampled_from(["finish_reason", "provider"]), names, max_size=2)
        ),
    )


@st.composite
def events(draw: st.DrawFn, trace_id: str) -> TraceEvent:
    kind = draw(st.sampled_from(["start", "end", "error", "custom", "stream"]))
    data: dict[str, Any]
    if kind == "stream":
        data = {
            "chunks": [[draw(timestamps), draw(content)] for _ in range(draw(st.integers(1, 3)))]
        }
    else:
        data = {"input": draw(content)} if kind == "start" else {"output": draw(content)}
    return TraceEvent(
        trace_id=trace_id,
        kind=kind,  # type: ignore[arg-type]
        event=f"on_chain_{kind}",
        run_id=draw(ids),
        parent_ids=tuple(draw(st.lists(ids, max_size=2))),
        name=draw(names),
        run_type=draw(st.sampled_from(sorted(RUN_TYPES))),  # type: ignore[arg-type]
        tags=tuple(draw(st.lists(names, max_size=2))),
        metadata=draw(
            st.dictionaries(
                st.text(min_size=1, max_size=8).filter(lambda k: k != "lc"), plain, max_size=2
            )
        ),
        data=data,
        ts_ns=draw(timestamps),
    )


# --- Redaction: benign text, and secrets of every detected format embedded in it ------

_SYLLABLES = ["task", "data", "node", "alpha", "beta", "v2", "run", "map", "core", "cache"]
_WORDS = [
    "the",
    "model",
    "answered",
    "quickly",
    "parrots",
    "can",
    "talk",
    "secretary",
    "recipe",
    "tokens",
    "policy",
    "rotation",
    "is",
    "not",
    "a",
    "skill",
]
_ALNUM = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
_B64 = _ALNUM + "+/"
_B64URL = _ALNUM + "_-"

kebab_ids = st.lists(st.sampled_from(_SYLLABLES), min_size=2, max_size=6).map("-".join)
plain_urls = st.builds(
    "https://{}.example.com/{}?page={}".format,
    st.sampled_from(_SYLLABLES),
    kebab_ids,
    st.integers(0, 99),
)
benign_text = st.lists(
    st.sampled_from(_WORDS) | kebab_ids | st.integers(-(10**9), 10**9).map(str) | plain_urls,
    min_size=1,
    max_size=12,
).map(" ".join)
"""Words, kebab-case ids, numbers and URLs without passwords: redaction leaves them be."""


def _chars(alphabet: str, size: int, max_size: int | None = None) -> st.SearchStrategy[str]:
    """Random characters prefixed with `Q7`, so no benign word can contain the value."""
    body = st.text(alphabet=alphabet, min_size=size, max_size=max_size or size)
    return body.map(lambda text: "Q7" + text[2:] if len(text) > 2 else text)


def _basic(user: str, password: str) -> tuple[str, str]:
    import base64

    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return f"Authorization: Basic {token}", token


secrets_with_value: st.SearchStrategy[tuple[str, str]] = st.one_of(
    _chars(_ALNUM + "-_", 20, 48).map(lambda v: (f"sk-{v}", v)),
    _chars(_ALNUM, 20, 40).map(lambda v: (f"sk-proj-{v}", v)),
    st.tuples(st.sampled_from(["sk_live_", "rk_live_", "sk_test_"]), _chars(_ALNUM, 16, 30)).map(
        lambda p: (p[0] + p[1], p[1])
    ),
    _chars("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", 16).map(lambda v: (f"AKIA{v}", v)),
    _chars(_B64, 40).map(lambda v: (f"aws_secret_access_key = {v}", v)),
    _chars(_B64, 40).map(lambda v: (f'AWS_SECRET="{v}"', v)),
    _chars(_B64URL, 35).map(lambda v: (f"AIza{v}", v)),
    _chars(_ALNUM, 36).map(lambda v: (f"ghp_{v}", v)),
    _chars(_ALNUM, 20, 30).map(lambda v: (f"xoxb-1234-{v}", v)),
    st.tuples(_chars(_B64URL, 10, 30), _chars(_B64URL, 10, 60), _chars(_B64URL, 20, 43)).map(
        lambda p: (f"eyJ{p[0]}.eyJ{p[1]}.{p[2]}", p[1])
    ),
    _chars(_ALNUM + "._~+/-", 16, 40).map(lambda v: (f"Bearer {v}", v)),
    _chars(_ALNUM, 3, 10).map(lambda v: (f"Authorization: Bearer {v}", v)),
    st.tuples(_chars(_ALNUM, 3, 8), _chars(_ALNUM, 6, 16)).map(lambda p: _basic(*p)),
    st.tuples(st.sampled_from(["https", "postgres", "redis"]), _chars(_ALNUM, 6, 20)).map(
        lambda p: (f"{p[0]}://admin:{p[1]}@db.example.com/x", p[1])
    ),
    st.tuples(
        st.sampled_from(["password=", "passwd: ", "pwd=", "dbPassword: "]), _chars(_ALNUM, 4, 16)
    ).map(lambda p: (p[0] + p[1], p[1])),
    _chars(_B64, 64, 200).map(
        lambda v: (f"-----BEGIN RSA PRIVATE KEY-----\n{v}\n-----END RSA PRIVATE KEY-----", v)
    ),
)
"""(text holding one secret, the part of it that must not survive redaction)."""
