"""Trace files are untrusted: the reader raises only its documented error, never hangs,
never builds a class outside its allow-list and never resolves a secret."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from langchain_core.runnables import RunnableLambda

from lcel_trace import trace
from lcel_trace.exporters import JsonlExporter
from lcel_trace.replay import TraceFileError, read_traces

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


@pytest.fixture(scope="module")
def valid_lines(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    path = tmp_path_factory.mktemp("valid") / "runs.jsonl"
    with JsonlExporter(path) as exporter:
        list(
            trace(RunnableLambda(lambda x: x) | RunnableLambda(str), exporters=[exporter]).stream(1)
        )
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def read_only_documented_errors(path: Path) -> None:
    """Anything but usable traces or a `TraceFileError` fails the test (by escaping).
    Usable: every tree builds and renders, replay's strict reading gives the same."""
    outcome: list[object] | str
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            traces = read_traces(path)
            for trace in traces:
                if trace.spans:
                    trace.tree().render()
            outcome = list(traces)
            read_traces(path, strict_ids=True)
        except TraceFileError as exc:
            outcome = str(exc)
    if isinstance(outcome, str):
        assert outcome.startswith(f"{path}:")


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_mutated_valid_files_give_traces_or_file_line_errors(
    data: st.DataObject, valid_lines: list[dict[str, Any]], tmp_path: Path
) -> None:
    lines = [dict(line) for line in valid_lines]
    target = data.draw(st.integers(0, len(lines) - 1))
    key = data.draw(st.sampled_from(sorted(lines[target])))
    lines[target][key] = data.draw(json_values)
    path = tmp_path / "mutated.jsonl"
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n", encoding="utf-8")
    read_only_documented_errors(path)


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    lines=st.lists(
        st.binary(max_size=200) | json_values.map(lambda v: json.dumps(v).encode()), max_size=6
    )
)
def test_random_bytes_and_json_give_traces_or_file_line_errors(
    lines: list[bytes], tmp_path: Path
) -> None:
    path = tmp_path / "random.jsonl"
    path.write_bytes(b"\n".join(line.replace(b"\n", b" ") for line in lines) + b"\n")
    read_only_documented_errors(path)


INJECTIONS = {
    "a prompt template (runs a formatter)": {
        "lc": 1, "type": "constructor",
        "id": ["langchain_core", "prompts", "chat", "ChatPromptTemplate"], "kwargs": {},
    },
    "a model client carrying a key": {
        "lc": 1, "type": "constructor", "id": ["langchain_openai", "chat_models", "ChatOpenAI"],
        "kwargs": {"openai_api_key": {"lc": 1, "type": "secret", "id": ["OPENAI_API_KEY"]}},
    },
    "a secret": {"lc": 1, "type": "secret", "id": ["OPENAI_API_KEY"]},
    "an arbitrary module": {"lc": 1, "type": "constructor", "id": ["os", "system"], "kwargs": {}},
    "a message hiding a secret": {
        "lc": 1, "type": "constructor", "id": ["langchain_core", "messages", "AIMessage"],
        "kwargs": {"content": {"lc": 1, "type": "secret", "id": ["OPENAI_API_KEY"]}},
    },
}  # fmt: skip


@pytest.mark.parametrize("payload", INJECTIONS.values(), ids=INJECTIONS.keys())
def test_serialisation_injection_is_refused_and_secrets_stay_unresolved(
    payload: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-should-never-be-read-0123456789")
    line = {
        "type": "span", "trace_id": "0" * 32, "span_id": "s", "parent_id": None, "name": "x",
        "run_type": "chain", "start_ns": 1, "end_ns": 2, "status": "ok", "error": None,
        "inputs": payload, "outputs": None, "tags": [], "metadata": {}, "chunk_count": 0,
        "first_chunk_ns": None, "usage": None, "model": None, "events": [], "attributes": {},
    }  # fmt: skip
    path = tmp_path / "evil.jsonl"
    path.write_text(json.dumps(line) + "\n", encoding="utf-8")
    with pytest.raises(TraceFileError, match=r"evil\.jsonl:1: "):
        read_traces(path)
    assert os.environ["OPENAI_API_KEY"] not in path.read_text(encoding="utf-8")


def test_deep_nesting_and_huge_lines_are_file_line_errors(tmp_path: Path) -> None:
    deep = tmp_path / "deep.jsonl"
    deep.write_text("[" * 100_000 + "]" * 100_000 + "\n", encoding="utf-8")
    with pytest.raises(TraceFileError, match=r"deep\.jsonl:1: "):
        read_traces(deep)
    nested = tmp_path / "nested.jsonl"
    value: Any = "x"
    for _ in range(200):
        value = {"a": value}
    nested.write_text(
        json.dumps({"type": "event", "trace_id": "t", "kind": "custom", "event": "e",
                    "run_id": "r", "parent_ids": [], "name": "n", "run_type": "custom",
                    "tags": [], "metadata": {}, "data": value, "ts_ns": 1}) + "\n",
        encoding="utf-8",
    )  # fmt: skip
    with pytest.raises(TraceFileError, match=r"nested\.jsonl:1: nesting deeper than"):
        read_traces(nested)


# -- a seeded mutation fuzzer: a few hundred files by default, any number in CI -------------

FUZZ_N = int(os.environ.get("LCEL_TRACE_FUZZ_N", "0"))
HOSTILE_VALUES: list[Any] = [
    None, True, -1, 2**63, 10**4000, 1.5, "", "x" * 300, [], {}, [[1, 2]], [["a", 1]],
    {"lc": 1, "type": "constructor", "id": ["langchain", "schema", "messages", "AIMessage"],
     "kwargs": {"content": "x", "tool_calls": "oops"}},
    {"lc": 1, "type": "secret", "id": ["OPENAI_API_KEY"]}, "0" * 32, "A" * 32,
]  # fmt: skip


def mutate(lines: list[dict[str, Any]], rng: random.Random) -> bytes:
    """One hostile variant of a valid file: values swapped, keys dropped, ids crossed,
    lines cut, glued, repeated or shuffled."""
    lines = [dict(line) for line in lines]
    line: dict[str, Any]
    for _ in range(rng.randint(1, 3)):
        line = rng.choice(lines)
        key = rng.choice(sorted(line))
        action = rng.randrange(5)
        if action == 0:
            line[key] = rng.choice(HOSTILE_VALUES)
        elif action == 1:
            del line[key]
        elif action == 2:  # cross ids: parents, cycles, self-parents
            other = rng.choice(lines)
            line[rng.choice(["parent_id", "span_id", "run_id", "trace_id", "root_run_id"])] = (
                other.get(rng.choice(["span_id", "run_id", "parent_id", "trace_id"]))
            )
        elif action == 3 and isinstance(line.get("data"), dict):
            line["data"] = {**line["data"], "chunks": rng.choice(HOSTILE_VALUES)}
        else:
            line[key] = {"nested": line.get(key)}
    raw = [json.dumps(line).encode() for line in lines]
    for _ in range(rng.randint(0, 2)):
        i = rng.randrange(len(raw))
        action = rng.randrange(4)
        if action == 0:
            raw[i] = raw[i][: rng.randrange(len(raw[i]) + 1)]  # cut
        elif action == 1 and i + 1 < len(raw):
            raw[i : i + 2] = [raw[i][: rng.randrange(len(raw[i]))] + raw[i + 1]]  # glued
        elif action == 2:
            raw.insert(i, raw[i])
        else:
            rng.shuffle(raw)
    return b"\n".join(raw) + (b"\n" if rng.random() < 0.9 else b"")


def fuzz(valid_lines: list[dict[str, Any]], tmp_path: Path, count: int, seed: int) -> None:
    escaped: list[str] = []
    for n in range(count):
        rng = random.Random(seed + n)
        path = tmp_path / f"fuzz-{n % 4}.jsonl"
        path.write_bytes(mutate(valid_lines, rng))
        try:
            read_only_documented_errors(path)
        except Exception as exc:  # collected, so one run reports every escape
            escaped.append(f"seed {seed + n}: {type(exc).__name__}: {str(exc)[:200]}")
    assert not escaped, f"{len(escaped)} of {count} files escaped:\n" + "\n".join(escaped[:20])


def test_a_few_hundred_mutated_files_give_traces_or_file_line_errors(
    valid_lines: list[dict[str, Any]], tmp_path: Path
) -> None:
    fuzz(valid_lines, tmp_path, count=400, seed=0)


@pytest.mark.slow
@pytest.mark.skipif(FUZZ_N == 0, reason="set LCEL_TRACE_FUZZ_N (CI's long stage: 10000)")
def test_many_mutated_files_give_traces_or_file_line_errors(
    valid_lines: list[dict[str, Any]], tmp_path: Path
) -> None:
    """CI's long stage: `LCEL_TRACE_FUZZ_N=10000 pytest -m slow <this file>` (~30 s)."""
    fuzz(valid_lines, tmp_path, count=FUZZ_N, seed=1_000_000)


# -- hostile lines found by fuzzing --------------------------------------------------------


def span_line(**changes: Any) -> dict[str, Any]:
    line: dict[str, Any] = {
        "type": "span", "trace_id": "ab" * 16, "span_id": str(UUIDS[0]), "parent_id": None,
        "name": "x", "run_type": "chain", "start_ns": 1, "end_ns": 2, "status": "ok",
        "error": None, "inputs": None, "outputs": None, "tags": [], "metadata": {},
        "chunk_count": 0, "first_chunk_ns": None, "usage": None, "model": None, "events": [],
        "attributes": {},
    }  # fmt: skip
    line.update(changes)
    return line


UUIDS = [f"00000000-0000-4000-8000-{n:012x}" for n in range(1, 5)]


def write_lines(path: Path, *lines: dict[str, Any]) -> Path:
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    return path


def test_nesting_is_measured_in_one_pass_over_unterminated_escaped_strings(
    tmp_path: Path,
) -> None:
    """Was quadratic: 55 s at 80 KB. At 800 KB a quadratic scan would take hours, so
    the subprocess's timeout only stops a hang; it does not time the reader."""
    path = tmp_path / "escapes.jsonl"
    path.write_bytes(b"[" * 65 + b'"' + b'\\"' * 400_000 + b"\n")
    script = textwrap.dedent(
        """
        import sys
        from lcel_trace.reader import TraceFileError, read_traces
        try:
            read_traces(sys.argv[1])
        except TraceFileError as exc:
            print(exc)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert done.stdout.strip() == f"{path}:1: nesting deeper than 64", done.stderr


def test_parent_links_that_loop_are_refused(tmp_path: Path) -> None:
    a, b, c = UUIDS[:3]
    path = write_lines(
        tmp_path / "cycle.jsonl",
        span_line(span_id=c),
        span_line(span_id=a, parent_id=b),
        span_line(span_id=b, parent_id=a),
    )
    with pytest.raises(TraceFileError, match=r"cycle\.jsonl:[23]: span .* is its own ancestor"):
        read_traces(path)
    itself = write_lines(tmp_path / "self.jsonl", span_line(span_id=a, parent_id=a))
    with pytest.raises(TraceFileError, match=r"self\.jsonl:1: .* its own ancestor"):
        read_traces(itself)


def test_integers_outside_the_nanosecond_range_are_file_line_errors(tmp_path: Path) -> None:
    huge = write_lines(tmp_path / "huge.jsonl", span_line(end_ns=10**4000))
    with pytest.raises(TraceFileError, match=r"huge\.jsonl:1: 'end_ns' must be in \[0, 2\*\*63\)"):
        read_traces(huge)
    negative = write_lines(tmp_path / "negative.jsonl", span_line(start_ns=-5))
    with pytest.raises(TraceFileError, match=r"negative\.jsonl:1: 'start_ns' must be in"):
        read_traces(negative)
    too_long = tmp_path / "digits.jsonl"
    too_long.write_text(json.dumps(span_line()).replace('"end_ns": 2', '"end_ns": ' + "9" * 5000))
    with pytest.raises(TraceFileError, match=r"digits\.jsonl:1: cannot parse"):
        read_traces(too_long)


def test_hostile_message_content_is_a_file_line_error(tmp_path: Path) -> None:
    message = {
        "lc": 1, "type": "constructor", "id": ["langchain", "schema", "messages", "AIMessage"],
        "kwargs": {"content": "x", "tool_calls": "oops"},
    }  # fmt: skip
    path = write_lines(tmp_path / "oops.jsonl", span_line(outputs=message))
    with pytest.raises(TraceFileError, match=r"oops\.jsonl:1: cannot rebuild 'outputs'"):
        read_traces(path)


def test_stream_chunks_must_be_timestamped_pairs(tmp_path: Path) -> None:
    event = {
        "type": "event", "trace_id": "ab" * 16, "kind": "stream", "event": "on_chain_stream",
        "run_id": UUIDS[0], "parent_ids": [], "name": "n", "run_type": "chain", "tags": [],
        "metadata": {}, "data": {"chunks": [["soon", "a"]]}, "ts_ns": 1,
    }  # fmt: skip
    path = write_lines(tmp_path / "chunks.jsonl", event)
    with pytest.raises(TraceFileError, match=r"chunks\.jsonl:1: 'chunk ts_ns' must be an integer"):
        read_traces(path)
