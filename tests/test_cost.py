"""Costs come from genai-prices (not a table of ours); unknown is unknown, never 0."""

from __future__ import annotations

import dataclasses
from decimal import Decimal
from importlib.metadata import version

import pytest
from genai_prices import Usage, calc_price

from lcel_trace.cost import span_cost, total_cost
from lcel_trace.span import Span
from tests.trace_data import qa_trace


def model_span(**options: object) -> Span:
    records = qa_trace(**options)  # type: ignore[arg-type]
    return next(r for r in records if isinstance(r, Span) and r.run_type == "chat_model")


@pytest.mark.parametrize(
    ("model", "provider"),
    [("gpt-4o-mini", "openai"), ("claude-3-5-haiku-latest", "anthropic")],
)
def test_a_known_model_costs_what_genai_prices_says(model: str, provider: str) -> None:
    span = model_span(model=model, provider=provider, input_tokens=12_345, output_tokens=678)
    cost = span_cost(span)
    assert cost is not None
    expected = calc_price(
        Usage(input_tokens=12_345, output_tokens=678), model, provider_id=provider
    )
    assert Decimal(str(cost.total_usd)) == pytest.approx(expected.total_price)
    assert Decimal(str(cost.input_usd)) == pytest.approx(expected.input_price)
    assert Decimal(str(cost.output_usd)) == pytest.approx(expected.output_price)
    assert cost.total_usd > 0
    assert cost.provider == provider
    assert cost.source == f"genai-prices {version('genai-prices')}"


def test_an_unknown_model_is_unknown_not_free() -> None:
    assert span_cost(model_span(model="my-private-finetune-v7", provider="openai")) is None
    assert span_cost(model_span(model="llama3", provider="ollama")) is None


def test_missing_usage_or_model_is_unknown() -> None:
    assert span_cost(model_span(input_tokens=None, output_tokens=None)) is None
    assert span_cost(model_span(output_tokens=None)) is None
    assert span_cost(model_span(model=None)) is None


def test_a_model_without_provider_is_looked_up_by_name() -> None:
    cost = span_cost(model_span(model="gpt-4o", provider=None))
    assert cost is not None
    assert cost.provider == "openai"


def test_langchain_provider_names_map_to_the_price_list() -> None:
    cost = span_cost(model_span(model="gemini-2.0-flash", provider="google_genai"))
    assert cost is not None
    assert cost.provider == "google"


def test_only_model_spans_are_priced() -> None:
    root = next(r for r in qa_trace() if isinstance(r, Span) and r.parent_id is None)
    assert span_cost(dataclasses.replace(root, model="gpt-4o-mini")) is None


def test_a_total_with_an_unknown_part_is_a_lower_bound() -> None:
    known = model_span()
    unknown = model_span(model="my-private-finetune-v7")
    total, partial = total_cost([known, known])
    assert total == pytest.approx(2 * span_cost(known).total_usd)  # type: ignore[union-attr]
    assert not partial
    total, partial = total_cost([known, unknown])
    assert partial
    assert total_cost([unknown]) == (None, False)


def test_otel_attributes_carry_the_cost_under_the_openinference_names() -> None:
    from lcel_trace.exporters.otel_attributes import AttributeOptions, span_attributes

    span = model_span(input_tokens=5000, output_tokens=500)
    cost = span_cost(span)
    assert cost is not None
    attrs = span_attributes(span, AttributeOptions(), limit=1000)
    assert attrs["llm.cost.prompt"] == cost.input_usd
    assert attrs["llm.cost.completion"] == cost.output_usd
    assert attrs["llm.cost.total"] == cost.total_usd
    assert attrs["lcel.cost.source"] == cost.source
    unknown = span_attributes(model_span(model="my-private-model"), AttributeOptions(), limit=1000)
    assert not [key for key in unknown if "cost" in key]
