"""`lcel-trace replay`: recorded spans re-exported to OpenTelemetry (console or OTLP/HTTP)."""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

from lcel_trace import progress
from lcel_trace.cli.common import FILE_HELP
from lcel_trace.terminal import visible


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    replay_help = "re-export recorded spans to OpenTelemetry, with their original ids and times"
    replay = commands.add_parser("replay", help=replay_help, description=replay_help)
    replay.add_argument("file", type=Path, help=FILE_HELP)
    target = replay.add_mutually_exclusive_group(required=True)
    target.add_argument(
        "--otlp-endpoint",
        metavar="URL",
        nargs="?",
        const="",
        help=(
            "send over OTLP/HTTP (protobuf; needs the otlp extra) to this base URL (/v1/traces "
            "is appended unless present); without URL, OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or "
            "OTEL_EXPORTER_OTLP_ENDPOINT as the SDK reads them; headers from "
            "OTEL_EXPORTER_OTLP_[TRACES_]HEADERS"
        ),
    )
    target.add_argument(
        "--console", action="store_true", help="print the spans to stdout as OpenTelemetry JSON"
    )
    replay.add_argument(
        "--service-name",
        metavar="NAME",
        help="service.name of the resource (default: OTEL_SERVICE_NAME, else lcel-trace)",
    )
    replay.add_argument(
        "--conventions",
        choices=("gen_ai", "openinference", "both"),
        default="gen_ai",
        help="attribute conventions on model and tool spans (default: gen_ai)",
    )
    replay.add_argument(
        "--timeout",
        type=float,
        metavar="S",
        help=(
            "each batch, retries included, gives up after S seconds (default: "
            "OTEL_EXPORTER_OTLP_[TRACES_]TIMEOUT, else 10); a refused (4xx/5xx) or "
            "unreachable collector then exits 1 with one line on stderr"
        ),
    )
    replay.set_defaults(handler=_replay)


def _replay(args: argparse.Namespace) -> int:
    """Spans go out as OpenTelemetry JSON (`--console`, escaped by `json`) or OTLP/HTTP,
    in batches; a batch the collector refused or never received makes the exit code 1."""
    import importlib

    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import (
        BatchSpanProcessor,
        ConsoleSpanExporter,
        SimpleSpanProcessor,
    )

    from lcel_trace.replay import reexport

    # `lcel_trace.exporters` lives in the top-level exporters/ folder of the source tree.
    otel_exporter: Any = importlib.import_module("lcel_trace.exporters").OtelExporter
    conventions = ("gen_ai", "openinference") if args.conventions == "both" else (args.conventions,)
    service = args.service_name or os.environ.get("OTEL_SERVICE_NAME") or "lcel-trace"
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    if args.console:
        provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter()))
        exporter = otel_exporter(provider, conventions=conventions)
        sent = reexport(args.file, [exporter])
        exporter.shutdown()
        provider.shutdown()
        print(f"replayed {sent} traces from {visible(args.file)}", file=sys.stderr)
        return 0

    endpoint, timeout_s = _otlp_target(args)
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    except ImportError:
        raise ValueError(
            "--otlp-endpoint needs the otlp extra: pip install 'lcel-trace[otlp]'"
        ) from None
    # the SDK logs each failed request; the outcome is told here, in one line
    sdk_log = logging.getLogger("opentelemetry.exporter.otlp")
    failures = _FailureLog()
    sdk_log.addHandler(failures)
    propagate, sdk_log.propagate = sdk_log.propagate, False
    # on a terminal, say what the wait is for: a collector that is down costs `timeout_s`
    waiting = progress.status(f"connecting to {visible(endpoint)} (gives up after {timeout_s:g} s)")
    try:
        with waiting as say:
            failures.said = lambda why: say(_waiting_for(endpoint, why, timeout_s))
            checked = _CheckedExporter(OTLPSpanExporter(endpoint=endpoint, timeout=timeout_s))
            export_ms = int(timeout_s * 1000) + 1000
            provider.add_span_processor(
                BatchSpanProcessor(cast("Any", checked), export_timeout_millis=export_ms)
            )
            exporter = otel_exporter(provider, conventions=conventions)
            sent = reexport(args.file, [exporter])
            exporter.shutdown()
            flushed = provider.force_flush(int((timeout_s + 5) * 1000))
            provider.shutdown()
    finally:
        sdk_log.removeHandler(failures)
        sdk_log.propagate = propagate
    if checked.failed or not flushed:
        why = failures.reason() or ("timed out" if not flushed else "export failed")
        print(
            f"lcel-trace: error: {checked.failed or 'some'} span(s) not delivered to "
            f"{visible(endpoint)}: {visible(why)}",
            file=sys.stderr,
        )
        return 1
    print(
        f"replayed {sent} traces ({checked.delivered} spans) from {visible(args.file)} "
        f"to {visible(endpoint)}",
        file=sys.stderr,
    )
    return 0


def _otlp_target(args: argparse.Namespace) -> tuple[str, float]:
    """The traces URL and per-batch time limit, resolved as the OpenTelemetry SDK does:
    a base endpoint gets /v1/traces appended, a signal-specific one is used as is."""
    env = os.environ
    protocol = (
        env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        or env.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or "http/protobuf"
    ).strip()
    if protocol != "http/protobuf":
        raise ValueError(f"OTLP protocol {protocol!r} is not supported; use http/protobuf")
    if args.otlp_endpoint:
        base = args.otlp_endpoint.rstrip("/")
        endpoint = base if base.endswith("/v1/traces") else base + "/v1/traces"
    elif env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        endpoint = env["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"].strip()
    else:
        base = env.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip() or "http://localhost:4318"
        endpoint = base.rstrip("/") + "/v1/traces"
    if not endpoint.startswith(("http://", "https://")):
        raise ValueError(f"OTLP endpoint {endpoint!r} is not an http:// or https:// URL")
    timeout_s = args.timeout
    if timeout_s is None:
        text = (
            env.get("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT")
            or env.get("OTEL_EXPORTER_OTLP_TIMEOUT")
            or "10"
        )
        try:
            timeout_s = float(text)
        except ValueError:
            raise ValueError(f"OTLP timeout {text!r} is not a number of seconds") from None
    if timeout_s <= 0:
        raise ValueError(f"--timeout must be positive, got {timeout_s}")
    return endpoint, float(timeout_s)


def _waiting_for(endpoint: str, logged: str, timeout_s: float) -> str:
    """What the wait is for now, from what the OTLP exporter logged (a retry, a failure)."""
    retry = re.search(r"retrying in ([0-9.]+)s", logged)
    if retry:
        return (
            f"{visible(endpoint)} did not take the spans; retrying in {float(retry[1]):g} s "
            f"(gives up after {timeout_s:g} s)"
        )
    return f"{visible(endpoint)}: {visible(logged)[:120]}"


class _CheckedExporter:
    """An OTel span exporter that delegates, and counts spans in batches that failed."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.failed = 0
        self.delivered = 0

    def export(self, spans: Any) -> Any:
        from opentelemetry.sdk.trace.export import SpanExportResult

        try:
            result = self.inner.export(spans)
        except Exception:
            result = SpanExportResult.FAILURE
        if result is SpanExportResult.SUCCESS:
            self.delivered += len(spans)
        else:
            self.failed += len(spans)
        return result

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return bool(self.inner.force_flush(timeout_millis))


class _FailureLog(logging.Handler):
    """Keeps the last warning or error the OTLP exporter logged, as the reason."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []
        self.said: Callable[[str], None] = lambda _: None  # each message, as it comes

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
        except Exception:
            message = str(record.msg)
        self.messages.append(" ".join(message.split())[:300])
        self.said(message)

    def reason(self) -> str | None:
        return " | ".join(dict.fromkeys(self.messages)) or None
