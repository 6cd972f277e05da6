"""Your own log lines, tied to the trace and span they were written in.

Offline: a fake chat model; a lambda logs through structlog while the chain runs, and a
StructlogExporter logs one line per finished span. Every line carries the trace id.
Run: `.venv/bin/python examples/structlog_correlation.py` (after `bash examples/quickstart.sh`).
"""

from __future__ import annotations

import sys

import structlog
from langchain_core.language_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnableLambda

from lcel_trace import capture, trace
from lcel_trace.exporters import StructlogExporter
from lcel_trace.structlog import add_trace_context

structlog.configure(  # the application's logging setup, not the library's
    processors=[
        add_trace_context,
        structlog.processors.add_log_level,
        structlog.processors.JSONRenderer(),
    ],
    logger_factory=structlog.PrintLoggerFactory(sys.stdout),
)
log = structlog.get_logger()


def check_topic(inputs: dict[str, str]) -> dict[str, str]:
    log.info("checking topic", topic=inputs["topic"])
    return inputs


def main() -> None:
    model = GenericFakeChatModel(messages=iter([AIMessage(content="Parrots repeat jokes.")]))
    chain = (
        RunnableLambda(check_topic)
        | ChatPromptTemplate.from_template("Tell me about {topic}")
        | model
        | StrOutputParser()
    )
    with StructlogExporter() as exporter, capture() as cap:
        trace(chain, exporters=[exporter]).invoke({"topic": "parrots"})
        exporter.force_flush(5)
    print(f"# trace id of the run: {cap.traces[0].trace_id}", file=sys.stderr)


if __name__ == "__main__":
    main()
