"""The installed package: public names, the exporters subpackage, typing marker."""

from __future__ import annotations

import importlib
import importlib.util
import os
from pathlib import Path

import lcel_trace
import lcel_trace.exporters


def test_public_names_are_pinned() -> None:
    assert sorted(lcel_trace.__all__) == [
        "Capture",
        "ExporterStats",
        "Record",
        "Span",
        "SpanError",
        "SpanEvent",
        "SpanNode",
        "Trace",
        "TraceEnd",
        "TraceEvent",
        "TraceStart",
        "TracedRunnable",
        "Usage",
        "capture",
        "exporter_stats",
        "flush_all",
        "instrument",
        "trace",
        "uninstrument",
    ]
    assert sorted(lcel_trace.exporters.__all__) == [
        "BaseExporter",
        "ExporterCapabilities",
        "JsonlExporter",
        "OtelExporter",
        "OtlpJsonExporter",
        "SpanExporter",
        "StructlogExporter",
        "TraceExporter",
        "hand_in",
    ]


def test_design_imports_work() -> None:
    from lcel_trace import Span, TraceEvent, capture, trace  # noqa: F401
    from lcel_trace.exporters import JsonlExporter, SpanExporter  # noqa: F401
    from lcel_trace.replay import read_traces  # noqa: F401


def test_exporters_folder_is_only_importable_as_lcel_trace_exporters() -> None:
    assert importlib.util.find_spec("exporters") is None
    package_dir = Path(lcel_trace.exporters.__file__).parent
    assert (package_dir / "jsonl.py").is_file()


def test_package_ships_py_typed() -> None:
    assert (Path(lcel_trace.__file__).parent / "py.typed").is_file()


def test_tests_import_the_installed_package_in_the_expected_mode() -> None:
    """CI runs the suite twice: against the editable install and against the built wheel."""
    files = [Path(m.__file__ or "") for m in (lcel_trace, lcel_trace.exporters)]
    if os.environ.get("LCEL_TRACE_EXPECT_WHEEL"):
        assert all("site-packages" in f.parts for f in files), files
    else:
        repo = Path(__file__).resolve().parents[1]
        assert files[0].resolve().parent == repo / "lcel_trace"
        assert files[1].resolve().parent == repo / "exporters"
    importlib.import_module("lcel_trace.exporters.jsonl")
