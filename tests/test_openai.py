"""langchain-openai's ChatOpenAI over real HTTP against the bundled OpenAI-compatible
server: output parity, provider facts in spans, and faults made visible but harmless."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest
from langchain_core.messages import AIMessage
from langchain_core.output_parsers import JsonOutputParser, StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_openai import ChatOpenAI, OpenAI

from lcel_trace import capture, trace
from lcel_trace.testing.openai_server import OpenAIServer, Reply, ToolCall

ANSWER = "Parrots talk because they can ."


@pytest.fixture
def server() -> Iterator[OpenAIServer]:
    with OpenAIServer([ANSWER]) as running:
        yield running


def chat(server: OpenAIServer, **kwargs: Any) -> ChatOpenAI:
    return ChatOpenAI(
        base_url=server.base_url,
        api_key="sk-test",
        model="fake-gpt",
        max_retries=0,
        **kwargs,  # type: ignore[arg-type]
    )


def chain(server: OpenAIServer, **kwargs: Any) -> Any:
    prompt = ChatPromptTemplate.from_template("Tell me about {topic}")
    return prompt | chat(server, **kwargs) | StrOutputParser()


def test_every_entry_point_gives_what_the_unwrapped_chain_gives(server: OpenAIServer) -> None:
    value = {"topic": "parrots"}
    plain, traced = chain(server), trace(chain(server))
    with capture() as cap:
        assert traced.invoke(value) == plain.invoke(value) == ANSWER
        assert list(traced.stream(value)) == list(plain.stream(value))
        assert traced.batch([value, value]) == plain.batch([value, value])

        async def both() -> None:
            assert await traced.ainvoke(value) == await plain.ainvoke(value)
            assert [c async for c in traced.astream(value)] == [
                c async for c in plain.astream(value)
            ]

        asyncio.run(both())
    assert [t.status for t in cap.traces] == ["ok"] * 6
    assert all(len(t.spans) == 4 for t in cap.traces)


def test_model_span_carries_usage_model_finish_reason_params_and_response_id(
    server: OpenAIServer,
) -> None:
    with capture() as cap:
        list(
            trace(chain(server, stream_usage=True, temperature=0.2, max_tokens=50)).stream(
                {"topic": "x"}
            )
        )
    model = cap.traces[0].span("ChatOpenAI")
    assert model.run_type == "chat_model"
    assert model.model == "fake-gpt"
    assert model.usage is not None
    assert (model.usage.input_tokens, model.usage.output_tokens) == (4, 6)
    assert model.attributes["finish_reason"] == "stop"
    assert model.attributes["provider"] == "openai"
    assert model.attributes["request_params"]["temperature"] == 0.2
    assert model.attributes["request_params"]["max_tokens"] == 50
    assert model.chunk_count >= 6
    assert model.first_chunk_ns is not None
    # langchain-openai keeps the response id only on non-streamed messages
    assert "response_id" not in model.attributes
    with capture() as cap:
        trace(chain(server)).invoke({"topic": "x"})
    invoked = cap.traces[0].span("ChatOpenAI")
    assert str(invoked.attributes["response_id"]).startswith("chatcmpl-")


def test_with_a_custom_base_url_streamed_usage_needs_stream_usage_true(
    server: OpenAIServer,
) -> None:
    with capture() as cap:
        list(trace(chat(server)).stream("hi"))
        list(trace(chat(server, stream_usage=True)).stream("hi"))
    without, with_usage = (t.root for t in cap.traces)
    assert without.usage is None
    assert with_usage.usage is not None
    assert "stream_options" not in server.requests[0]
    assert server.requests[1]["stream_options"] == {"include_usage": True}


def test_json_parser_streams_partial_json_from_the_server() -> None:
    document = json.dumps(
        {"countries": [{"name": "France", "population": 67}, {"name": "Spain", "population": 47}]}
    )
    with OpenAIServer([document.replace(",", ", ")]) as json_server, capture() as cap:
        parsed = list(
            trace(chat(json_server) | JsonOutputParser()).stream("countries and populations")
        )
    assert parsed[-1] == json.loads(document)
    parser = cap.traces[0].span("JsonOutputParser")
    assert parser.chunk_count == len(parsed) > 2
    assert parser.outputs == parsed[-1]


def test_a_429_retried_by_with_retry_shows_a_failed_and_a_good_model_span(
    server: OpenAIServer,
) -> None:
    server.fail_next("http_429")
    retried = chat(server).with_retry(stop_after_attempt=2, wait_exponential_jitter=False)
    with capture() as cap:
        message = trace(retried).invoke("hi")
    assert isinstance(message, AIMessage)
    assert message.content == ANSWER
    (recorded,) = cap.traces
    attempts = recorded.children(recorded.root)
    assert [(a.name, a.status) for a in attempts] == [("ChatOpenAI", "error"), ("ChatOpenAI", "ok")]
    assert attempts[0].error is not None
    assert "RateLimitError" in attempts[0].error.type


@pytest.mark.parametrize("mode", ["stream", "astream"])
def test_connection_dropped_mid_stream_ends_the_model_span_as_error_with_chunks_counted(
    server: OpenAIServer, mode: str
) -> None:
    def consume(runnable: Any) -> tuple[type[BaseException], list[Any]]:
        seen: list[Any] = []

        async def astream() -> None:
            async for chunk in runnable.astream("hi"):
                seen.append(chunk)

        try:
            if mode == "stream":
                for chunk in runnable.stream("hi"):
                    seen.append(chunk)
            else:
                asyncio.run(astream())
        except Exception as exc:
            return type(exc), seen
        raise AssertionError("the stream did not fail")

    server.fail_next("drop_mid_stream", after_chunks=3)
    plain_error, plain_seen = consume(chat(server))
    server.fail_next("drop_mid_stream", after_chunks=3)
    with capture() as cap:
        traced_error, traced_seen = consume(trace(chat(server)))
    assert traced_error is plain_error
    assert [c.content for c in traced_seen] == [c.content for c in plain_seen]
    model = cap.traces[0].root
    assert model.status == "error"
    assert model.chunk_count == len(traced_seen) == 3


def test_tool_calls_streamed_in_pieces_add_up(server: OpenAIServer) -> None:
    call = ToolCall("lookup", json.dumps({"query": "parrot lifespan", "limit": 3}))
    with OpenAIServer([Reply(tool_calls=(call,))]) as tools, capture() as cap:
        chunks = list(trace(chat(tools)).stream("look it up"))
    total = chunks[0]
    for chunk in chunks[1:]:
        total = total + chunk
    assert total.tool_calls[0]["name"] == "lookup"
    assert total.tool_calls[0]["args"] == {"query": "parrot lifespan", "limit": 3}
    assert cap.traces[0].root.attributes["finish_reason"] == "tool_calls"


def test_legacy_completions_llm_is_an_llm_span(server: OpenAIServer) -> None:
    llm = OpenAI(base_url=server.base_url, api_key="sk-test", model="fake-gpt", max_retries=0)  # type: ignore[call-arg]
    with capture() as cap:
        assert trace(llm).invoke("hi") == llm.invoke("hi") == ANSWER
    assert cap.traces[0].root.run_type == "llm"
    assert cap.traces[0].root.usage is not None


def test_server_serves_models_and_starts_fast() -> None:
    import httpx

    with OpenAIServer() as running:
        listed = httpx.get(f"{running.base_url}/models").json()
    assert listed["data"][0]["id"] == "fake-gpt"


def test_time_to_first_token_skips_the_empty_role_chunk(server: OpenAIServer) -> None:
    with capture() as cap:
        chunks = list(trace(chat(server)).stream("hi"))
    assert chunks[0].content == ""  # the role chunk
    model = cap.traces[0].root
    assert model.first_chunk_ns is not None
    assert model.first_token_ns is not None
    # OpenAI's stream opens with an empty role chunk; the first token comes after it
    assert model.first_token_ns > model.first_chunk_ns
    assert model.time_to_first_token_ns is not None
    assert model.time_to_first_token_ns > 0
