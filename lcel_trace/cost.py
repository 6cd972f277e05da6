"""What a model call cost, in US dollars, from pydantic's maintained `genai-prices` list.

We keep no price table of our own: prices change, and a stale table is worse than none.
A span's cost is priced at the span's own start time (the list knows when prices
changed) from its token usage, its model and its provider (LangChain's `ls_provider`).
When any of those is missing, or the list does not know the model, the cost is
*unknown* (`None`), never 0: a free-looking call that was not free misleads. Cached
input tokens are not reported by every provider, so input is priced at the full rate.

`genai-prices` is part of the `analysis` extra; without it every cost is unknown and
`available()` says so.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from lcel_trace.span import Span

__all__ = [
    "Cost",
    "available",
    "format_usd",
    "price_source",
    "priceable",
    "span_cost",
    "total_cost",
]

MODEL_RUN_TYPES = frozenset(("chat_model", "llm"))
# LangChain's `ls_provider` names where genai-prices calls the provider otherwise.
_PROVIDER_IDS = {
    "google_genai": "google",
    "google_vertexai": "google",
    "google_anthropic_vertex": "anthropic",
    "bedrock": "aws",
    "amazon_bedrock": "aws",
    "bedrock_converse": "aws",
    "xai": "x-ai",
    "mistralai": "mistral",
    "azure_openai": "azure",
}


@dataclass(frozen=True, slots=True)
class Cost:
    """A model call's price in USD, split as the list prices it, and where it came from."""

    input_usd: float
    output_usd: float
    total_usd: float
    model: str
    """The price list's id of the model that matched."""
    provider: str
    """The price list's id of the provider."""
    source: str
    """The price list and its version, e.g. `genai-prices 0.2.5`."""


def available() -> bool:
    """Whether `genai-prices` is installed (the `analysis` extra)."""
    return _prices() is not None


@functools.cache
def _prices() -> Any:
    try:
        import genai_prices
    except ImportError:
        return None
    return genai_prices


def price_source() -> str | None:
    """The price list's name and version (and update time, when prices were updated
    since the package was built); None when it is not installed."""
    prices = _prices()
    if prices is None:
        return None
    from importlib.metadata import version

    text = f"genai-prices {version('genai-prices')}"
    snapshot = prices.data_snapshot.get_snapshot()
    if snapshot.from_auto_update:
        text += f" (prices updated {snapshot.timestamp:%Y-%m-%d %H:%M})"
    return text


def span_cost(span: Span) -> Cost | None:
    """The cost of a model span; None for other spans and when it is unknown (no usage,
    no model name, a model or provider the price list does not know)."""
    if span.run_type not in MODEL_RUN_TYPES or span.usage is None:
        return None
    input_tokens, output_tokens = span.usage.input_tokens, span.usage.output_tokens
    if input_tokens is None or output_tokens is None:
        return None  # half the usage would price half the call
    model = span.model or _text(span.metadata.get("ls_model_name"))
    if not model:
        return None
    provider = _text(span.attributes.get("provider")) or _text(span.metadata.get("ls_provider"))
    day = datetime.fromtimestamp(span.start_ns / 1e9, tz=UTC).date().isoformat()
    return _priced(model, provider, input_tokens, output_tokens, day)


def priceable(span: Span) -> bool:
    """Whether a price can be looked up for `span`: a model call with its model name and
    both token counts, and the price list installed. A priceable span whose cost is
    None is a model the list does not know: shown as unknown."""
    usage = span.usage
    return (
        span.run_type in MODEL_RUN_TYPES
        and bool(span.model or span.metadata.get("ls_model_name"))
        and usage is not None
        and usage.input_tokens is not None
        and usage.output_tokens is not None
        and available()
    )


def total_cost(spans: Iterable[Span]) -> tuple[float | None, bool]:
    """The summed cost of the model spans among `spans`, and whether it is partial (some
    model spans' cost unknown, so the sum is a lower bound); None when none is known."""
    total: float | None = None
    partial = False
    for span in spans:
        if span.run_type not in MODEL_RUN_TYPES:
            continue
        cost = span_cost(span)
        if cost is None:
            partial = True
        else:
            total = (total or 0.0) + cost.total_usd
    return total, partial and total is not None


@functools.lru_cache(maxsize=4096)
def _priced(
    model: str, provider: str | None, input_tokens: int, output_tokens: int, day: str
) -> Cost | None:
    prices = _prices()
    if prices is None:
        return None
    provider_id = _PROVIDER_IDS.get(provider, provider) if provider else None
    when = datetime.fromisoformat(day).replace(tzinfo=UTC)
    usage = prices.Usage(input_tokens=input_tokens, output_tokens=output_tokens)
    try:
        price = prices.calc_price(
            usage, model, provider_id=provider_id, genai_request_timestamp=when
        )
    except LookupError:
        return None
    return Cost(
        input_usd=float(price.input_price),
        output_usd=float(price.output_price),
        total_usd=float(price.total_price),
        model=str(price.model.id),
        provider=str(price.provider.id),
        source=price_source() or "genai-prices",
    )


def format_usd(usd: float) -> str:
    """Dollars to six decimals, or to three significant digits when smaller (a call
    of a few tokens costs millionths of a dollar): `$0.000210`, `$0.00000390`."""
    if usd <= 0 or usd >= 0.0001:
        return f"${usd:.6f}"
    decimals = 2 - math.floor(math.log10(usd))
    return f"${usd:.{decimals}f}"


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
