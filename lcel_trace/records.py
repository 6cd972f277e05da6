"""Deprecated name of `lcel_trace.jsonl_codec`, the JSONL line codec (the record types
themselves are in `lcel_trace.span`). Kept so that imports of `lcel_trace.records` work."""

from lcel_trace.jsonl_codec import *  # noqa: F403  # the codec's public names, as they were
from lcel_trace.jsonl_codec import __all__ as __all__
