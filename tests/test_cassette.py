"""Cassettes: model calls answer from a trace file, faithfully, and only when asked the
same thing; everything else is a clear error. Real parts throughout: the bundled
OpenAI-compatible HTTP server, `ChatOpenAI` / `OpenAI`, real trace files."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import openai
import pytest
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnableParallel
from langchain_openai import ChatOpenAI, OpenAI

from lcel_trace import capture, trace
from lcel_trace.cassette import CassetteMiss, UnusableCassetteError, cassette
from lcel_trace.exporters import JsonlExporter
from lcel_trace.reader import TraceFileError
from lcel_trace.replay import RecordedError
from lcel_trace.testing.openai_server import OpenAIServer

SECRET = "sk-proj-Zx9Qw8Er7Ty6Ui5Op4As3Df2Gh1Jk0LzXcVbNm"


def chat(server: OpenAIServer, **kwargs: Any) -> ChatOpenAI:
    return ChatOpenAI(
        base_url=server.base_url, api_key="sk-test", model="fake-gpt", max_retries=0, **kwargs
    )


def review_chain(server: OpenAIServer) -> Any:
    prompt = ChatPromptTemplate.from_messages(
        [("system", "You review support cases."), ("human", "Review case {case}")]
    )
    return prompt | chat(server) | StrOutputParser()


# -- keys and order ---------------------------------------------------------------------


def test_repeated_identical_requests_replay_in_recorded_order(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    with OpenAIServer(["first", "second", "third"]) as server:
        model = chat(server)
        with cassette(path):
            live = [model.invoke("again?").content for _ in range(3)]
        with cassette(path, "replay"):
            replayed = [model.invoke("again?").content for _ in range(3)]
        assert len(server.requests) == 3
    assert live == replayed == ["first", "second", "third"]


def test_concurrent_identical_requests_in_a_parallel_chain_each_get_one_recording(
    tmp_path: Path,
) -> None:
    path = tmp_path / "parallel.jsonl"
    with OpenAIServer(["alpha", "beta", "gamma"]) as server:
        branch = review_chain(server)
        parallel = RunnableParallel(a=branch, b=branch, c=branch)
        with cassette(path):
            live = parallel.invoke({"case": 7})
        with cassette(path, "replay") as tape:
            replayed = parallel.invoke({"case": 7})
        assert len(server.requests) == 3
    assert tape.replayed == 3
    assert sorted(replayed.values()) == sorted(live.values()) == ["alpha", "beta", "gamma"]


def test_parallel_chain_replays_under_astream(tmp_path: Path) -> None:
    path = tmp_path / "parallel-astream.jsonl"

    async def run(parallel: Any) -> dict[str, str]:
        merged: dict[str, str] = {}
        async for part in parallel.astream({"case": 3}):
            for key, text in part.items():
                merged[key] = merged.get(key, "") + text
        return merged

    with OpenAIServer(["one two three", "four five six"]) as server:
        branch = review_chain(server)
        parallel = RunnableParallel(a=branch, b=branch)
        with cassette(path):
            live = asyncio.run(run(parallel))
        with cassette(path, "replay"):
            replayed = asyncio.run(run(parallel))
        assert len(server.requests) == 2
    assert sorted(replayed.values()) == sorted(live.values())
    assert sorted(live.values()) == ["four five six", "one two three"]


def test_changed_prompt_miss_names_nearest_recording_and_first_difference(tmp_path: Path) -> None:
    path = tmp_path / "review.jsonl"
    with OpenAIServer(["Looks fine."]) as server:
        chain = review_chain(server)
        with cassette(path):
            chain.invoke({"case": 1})
        with cassette(path, "replay"), pytest.raises(CassetteMiss) as missed:
            chain.invoke({"case": 2})
        assert len(server.requests) == 1
    text = str(missed.value)
    assert "messages[1].content: recorded 'Review case 1' / now 'Review case 2'" in text
    assert "nearest recorded: key " in text
    assert "--lcel-record-mode=new" in text
    assert missed.value.differences == [("messages[1].content", "Review case 1", "Review case 2")]


def test_parameters_that_change_the_answer_are_keyed_transport_ones_are_not(
    tmp_path: Path,
) -> None:
    path = tmp_path / "params.jsonl"
    with OpenAIServer(["warm"]) as server:
        with cassette(path):
            chat(server, temperature=0.5).invoke("hi")
        with cassette(path, "replay"):  # another timeout and retries: the same request
            reply = ChatOpenAI(
                base_url=server.base_url,
                api_key="sk-other",
                model="fake-gpt",
                temperature=0.5,
                timeout=3,
                max_retries=5,
            ).invoke("hi")
        assert reply.content == "warm"
        with cassette(path, "replay"), pytest.raises(CassetteMiss) as missed:
            chat(server, temperature=0.9).invoke("hi")
    assert "params.temperature: recorded 0.5 / now 0.9" in str(missed.value)


def test_asked_more_often_than_recorded_is_a_miss_saying_so(tmp_path: Path) -> None:
    path = tmp_path / "once.jsonl"
    with OpenAIServer(["only once"]) as server:
        model = chat(server)
        with cassette(path):
            model.invoke("ping")
        with cassette(path, "replay"):
            model.invoke("ping")
            with pytest.raises(CassetteMiss, match="already replayed"):
                model.invoke("ping")


# -- faithful answers ---------------------------------------------------------------------


def test_invoke_returns_the_recorded_message_with_tool_calls_usage_metadata_and_id(
    tmp_path: Path,
) -> None:
    from lcel_trace.testing.openai_server import Reply, ToolCall

    path = tmp_path / "tools.jsonl"

    def lookup(city: str) -> str:
        """Look a city up."""
        return city

    with OpenAIServer([Reply(tool_calls=(ToolCall("lookup", '{"city": "Oslo"}'),))]) as server:
        model = chat(server).bind_tools([lookup])
        with cassette(path):
            live = model.invoke("Where?")
        with cassette(path, "replay"):
            replayed = model.invoke("Where?")
    assert isinstance(replayed, AIMessage)
    assert replayed == live
    assert replayed.tool_calls[0]["args"] == {"city": "Oslo"}
    assert replayed.usage_metadata == live.usage_metadata
    assert replayed.response_metadata == live.response_metadata
    assert replayed.id == live.id


def test_stream_yields_the_recorded_chunk_sequence_usage_chunk_included(tmp_path: Path) -> None:
    path = tmp_path / "stream.jsonl"
    with OpenAIServer(["Streaming is fun to watch"]) as server:
        model = chat(server, stream_usage=True)
        with cassette(path):
            live = list(model.stream("go"))
        with capture() as cap, cassette(path, "replay"):
            replayed = list(trace(model).stream("go"))
        assert len(server.requests) == 1
    assert replayed == live
    assert any(c.usage_metadata for c in replayed)
    (span,) = cap.spans
    assert span.usage is not None
    assert span.usage.output_tokens == 5
    assert span.chunk_count == len(live)


def test_speed_scales_the_recorded_chunk_timing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lcel_trace._cassette_file import read_recordings

    path = tmp_path / "paced.jsonl"
    with OpenAIServer(["one two three four five six"], token_delay_s=0.05) as server:
        model = chat(server)
        with cassette(path):
            live = list(model.stream("count"))
    (recording,) = read_recordings(path)
    recorded_s = (recording.chunks[-1][0] - recording.chunks[0][0]) / 1e9
    assert recorded_s > 0.2

    asked: list[float] = []  # the waits the replay asks for, not waited out here
    clock = type("Clock", (), {"sleep": staticmethod(asked.append)})
    clock.perf_counter_ns = staticmethod(time.perf_counter_ns)  # type: ignore[attr-defined]
    monkeypatch.setattr("lcel_trace.replay.time", clock)
    with cassette(path, "replay", speed=2.0):
        assert list(model.stream("count")) == live
    assert recorded_s / 2 * 0.8 <= max(asked) <= recorded_s / 2 + 0.05
    asked.clear()
    with cassette(path, "replay"):  # speed 0, the default: no waiting at all
        assert list(model.stream("count")) == live
    assert asked == []


def test_recorded_http_error_is_raised_again_as_the_same_type(tmp_path: Path) -> None:
    path = tmp_path / "error.jsonl"
    with OpenAIServer(["never"]) as server:
        server.fail_next("http_500")
        model = chat(server)
        with cassette(path), pytest.raises(openai.InternalServerError) as live:
            model.invoke("fail please")
        with cassette(path, "replay"), pytest.raises(openai.InternalServerError) as replayed:
            model.invoke("fail please")
    assert str(replayed.value) == str(live.value)


def test_an_error_type_not_imported_is_not_imported_but_named(tmp_path: Path) -> None:
    path = tmp_path / "unknown-error.jsonl"
    with OpenAIServer(["x"]) as server:
        model = chat(server)
        with cassette(path):
            model.invoke("hello")
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    for line in lines:
        if line["type"] == "span":
            line["status"] = "error"
            line["error"] = {"type": "lcel_no_such_module.Boom", "message": "kaboom"}
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    with cassette(path, "replay"), pytest.raises(RecordedError, match="Boom: kaboom"):
        model.invoke("hello")
    assert "lcel_no_such_module" not in sys.modules


def test_completion_llm_invoke_and_stream_replay(tmp_path: Path) -> None:
    path = tmp_path / "llm.jsonl"
    with OpenAIServer(["Once upon a time", "there was a parrot"]) as server:
        llm = OpenAI(base_url=server.base_url, api_key="sk-test", model="fake-instruct")
        with cassette(path):
            live = [llm.invoke("Tell a story"), list(llm.stream("Go on"))]
        with cassette(path, "replay"):
            replayed = [llm.invoke("Tell a story"), list(llm.stream("Go on"))]
        assert len(server.requests) == 2
    assert replayed == live
    assert live[0] == "Once upon a time"


def test_completion_llm_batch_replays_per_prompt_and_new_runs_a_changed_batch_live(
    tmp_path: Path,
) -> None:
    path = tmp_path / "llm-batch.jsonl"
    with OpenAIServer(["A", "B", "C", "D"]) as server:
        llm = OpenAI(  # one prompt per HTTP request (the test server answers one prompt)
            base_url=server.base_url, api_key="sk-test", model="fake-instruct", batch_size=1
        )
        with cassette(path) as tape:
            live = llm.batch(["one", "two"])
        requests = len(server.requests)
        with cassette(path, "replay"):
            assert llm.batch(["one", "two"]) == live
        assert len(server.requests) == requests
        with cassette(path, "new") as tape:
            changed = llm.batch(["one", "three"])  # one prompt changed: the batch runs live
            assert llm.invoke("one") == live[0]  # the recording it did not use is still there
        assert changed == ["C", "D"]
    assert (tape.replayed, tape.recorded) == (1, 2)
    assert live == ["A", "B"]


# -- any trace file ---------------------------------------------------------------------------


def test_a_production_trace_written_with_default_options_replays(tmp_path: Path) -> None:
    path = tmp_path / "production.jsonl"
    exporter = JsonlExporter(path)
    with OpenAIServer(["Case 4 is a duplicate."]) as server:
        chain = review_chain(server)
        live = trace(chain, exporters=[exporter]).invoke({"case": 4})
        exporter.force_flush(10)
        with cassette(path, "replay") as tape:
            replayed = chain.invoke({"case": 4})
        assert len(server.requests) == 1
    exporter.shutdown()
    assert tape.replayed == 1
    assert replayed == live


def test_a_streamed_call_whose_chunks_were_not_kept_is_refused_naming_record_chunks(
    tmp_path: Path,
) -> None:
    path = tmp_path / "root-chunks.jsonl"
    exporter = JsonlExporter(path)  # record_chunks="root": the chain's chunks, not the model's
    with OpenAIServer(["a streamed answer"]) as server:
        chain = review_chain(server)
        "".join(trace(chain, exporters=[exporter]).stream({"case": 5}))
        exporter.force_flush(10)
        with cassette(path, "replay"):
            assert chain.invoke({"case": 5}) == "a streamed answer"  # invoke replays
        with (
            cassette(path, "replay"),
            pytest.raises(UnusableCassetteError, match=r"record_chunks='all'"),
        ):
            list(chain.stream({"case": 5}))
    exporter.shutdown()


def test_a_trace_recorded_without_content_is_refused_naming_capture_content(
    tmp_path: Path,
) -> None:
    path = tmp_path / "no-content.jsonl"
    exporter = JsonlExporter(path)
    with OpenAIServer(["hidden"]) as server:
        trace(chat(server), exporters=[exporter], capture_content=False).invoke("secret stuff")
        exporter.force_flush(10)
    exporter.shutdown()
    with (
        pytest.raises(UnusableCassetteError, match="capture_content=True"),
        cassette(path, "replay"),
    ):
        pass


def test_a_redacted_recording_matches_and_the_secret_never_reaches_the_file(
    tmp_path: Path,
) -> None:
    path = tmp_path / "secret.jsonl"
    question = f"My key is {SECRET}, is it valid?"
    with OpenAIServer(["Never share keys."]) as server:
        model = chat(server)
        with cassette(path):
            model.invoke(question)
        with cassette(path, "replay"):
            reply = model.invoke(question)
    assert reply.content == "Never share keys."
    text = path.read_text()
    assert SECRET not in text
    assert "[REDACTED]" in text


def test_a_request_longer_than_the_file_keeps_still_matches(tmp_path: Path) -> None:
    from lcel_trace import _cassette_keys
    from lcel_trace.exporters.jsonl import DEFAULT_MAX_VALUE_CHARS

    assert _cassette_keys.RECORDED_MAX_CHARS == DEFAULT_MAX_VALUE_CHARS
    path = tmp_path / "long.jsonl"
    long_prompt = "parrot " * 200_000  # 1.4 million characters, cut in the file
    with OpenAIServer(["That is a lot of parrots."]) as server:
        model = chat(server)
        with cassette(path):
            model.invoke(long_prompt)
        assert "truncated" in path.read_text()
        with cassette(path, "replay"):
            assert model.invoke(long_prompt).content == "That is a lot of parrots."


def test_a_hostile_cassette_is_read_by_the_untrusted_file_rules(tmp_path: Path) -> None:
    path = tmp_path / "hostile.jsonl"
    with OpenAIServer(["x"]) as server, cassette(path):
        chat(server).invoke("hello")
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    hostile = {  # a model answer that would build a client holding an environment secret
        "lc": 1,
        "type": "constructor",
        "id": ["langchain", "chat_models", "openai", "ChatOpenAI"],
        "kwargs": {"openai_api_key": {"lc": 1, "type": "secret", "id": ["OPENAI_API_KEY"]}},
    }
    for line in lines:
        if line["type"] == "event" and line["kind"] == "end":
            line["data"]["output"] = hostile
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    with pytest.raises(TraceFileError, match=r"hostile\.jsonl:\d+: "), cassette(path, "replay"):
        pass


# -- modes and forms ---------------------------------------------------------------------------


def test_replay_mode_without_a_file_says_how_to_record(tmp_path: Path) -> None:
    with (
        pytest.raises(FileNotFoundError, match="mode='once'"),
        cassette(tmp_path / "missing.jsonl", "replay"),
    ):
        pass


def test_once_records_then_replays_and_new_records_only_the_misses(tmp_path: Path) -> None:
    path = tmp_path / "modes.jsonl"
    with OpenAIServer(["r1", "r2", "r3"]) as server:
        model = chat(server)
        with cassette(path, "once") as first:
            model.invoke("q1")
        with cassette(path, "once") as second:
            assert model.invoke("q1").content == "r1"
            with pytest.raises(CassetteMiss):
                model.invoke("q2")
        with cassette(path, "new") as third:
            assert model.invoke("q1").content == "r1"
            assert model.invoke("q2").content == "r2"
        with cassette(path, "record") as fourth:
            assert model.invoke("q1").content == "r3"
        assert len(server.requests) == 3
    assert (first.recorded, second.replayed, third.replayed, third.recorded) == (1, 1, 1, 1)
    assert fourth.recorded == 1
    with cassette(path, "replay") as fifth:
        assert model.invoke("q2").content == "r2"
    assert [r.request["messages"][0]["content"] for r in fifth.unplayed] == ["q1", "q1"]


def test_async_context_manager_and_decorator(tmp_path: Path) -> None:
    path = tmp_path / "async.jsonl"
    with OpenAIServer(["async answer"]) as server:
        model = chat(server)

        async def record() -> str:
            async with cassette(path):
                return str((await model.ainvoke("hi")).content)

        @cassette(path, "replay")
        async def replay() -> str:
            return str((await model.ainvoke("hi")).content)

        @cassette(path, "replay")
        def replay_sync() -> str:
            return str(model.invoke("hi").content)

        assert asyncio.run(record()) == "async answer"
        assert asyncio.run(replay()) == "async answer"
        assert replay_sync() == "async answer"
        assert len(server.requests) == 1


def test_outside_a_cassette_models_are_untouched(tmp_path: Path) -> None:
    path = tmp_path / "scope.jsonl"
    with OpenAIServer(["live one", "live two"]) as server:
        model = chat(server)
        with cassette(path):
            model.invoke("inside")
        assert model.invoke("outside").content == "live two"
        assert len(server.requests) == 2
    assert ChatOpenAI._generate.__name__ == "_generate"
    assert not hasattr(ChatOpenAI.__dict__.get("_generate"), "__lcel_cassette_original__")


def test_a_call_from_a_thread_without_the_context_warns_that_it_ran_live(
    tmp_path: Path,
) -> None:
    import threading

    from lcel_trace._cassette_patch import StrayCallWarning

    path = tmp_path / "thread.jsonl"
    with OpenAIServer(["from the thread"]) as server:
        model = chat(server)
        caught: list[warnings.WarningMessage] = []

        def in_thread() -> None:
            with warnings.catch_warnings(record=True) as seen:
                warnings.simplefilter("always")
                model.invoke("hello")
            caught.extend(seen)

        with cassette(path, "record"):
            worker = threading.Thread(target=in_thread)  # does not copy the context
            worker.start()
            worker.join(30)
        assert len(server.requests) == 1
    assert [w.category for w in caught] == [StrayCallWarning]
    assert "ran live while a cassette is active" in str(caught[0].message)


def test_a_message_list_with_tool_results_is_keyed_on_call_ids(tmp_path: Path) -> None:
    from langchain_core.messages import ToolMessage

    path = tmp_path / "tool-results.jsonl"
    history = [
        HumanMessage("weather?"),
        AIMessage("", tool_calls=[{"name": "w", "args": {"c": "Oslo"}, "id": "call_1"}]),
        ToolMessage("rain", tool_call_id="call_1"),
    ]
    with OpenAIServer(["It rains."]) as server:
        model = chat(server)
        with cassette(path):
            model.invoke(history)
        changed = [*history[:2], ToolMessage("rain", tool_call_id="call_2")]
        with cassette(path, "replay"), pytest.raises(CassetteMiss) as missed:
            model.invoke(changed)
    assert "messages[2].tool_call_id: recorded 'call_1' / now 'call_2'" in str(missed.value)


# -- the command ---------------------------------------------------------------------------


def test_cli_lists_the_recorded_calls_with_keys_and_first_words(tmp_path: Path) -> None:
    from lcel_trace.testing.openai_server import Reply, ToolCall

    path = tmp_path / "listed.jsonl"
    script = [
        Reply(tool_calls=(ToolCall("lookup", '{"city": "Oslo"}'),)),
        "It rains in Oslo \x1b[2J today.",
    ]
    with OpenAIServer(script) as server:
        model = chat(server)
        with cassette(path):
            model.invoke("Weather in Oslo?")
            list(model.stream("Weather in Oslo?"))
    result = subprocess.run(
        [sys.executable, "-m", "lcel_trace", "cassette", str(path)],
        capture_output=True,
        text=True,
        check=True,
    )
    lines = result.stdout.splitlines()
    assert lines[0] == "2 recorded calls, 1 distinct requests"
    assert "human: Weather in Oslo?" in lines[2]
    assert "tool calls: lookup({'city': 'Oslo'})" in lines[2]
    assert lines[2].endswith("x2")
    assert "It rains in Oslo \\x1b[2J today." in lines[3]  # escapes shown, not acted on
    assert "\x1b" not in result.stdout
    keys = {line.split()[3] for line in lines[2:]}
    assert len(keys) == 1


def test_cli_on_a_file_that_is_not_a_trace_is_one_line_exit_2(tmp_path: Path) -> None:
    path = tmp_path / "notes.jsonl"
    path.write_text("just some notes\nmore notes\n")
    result = subprocess.run(
        [sys.executable, "-m", "lcel_trace", "cassette", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert "not an lcel-trace file" in result.stderr


def test_readme_cassette_samples_are_what_the_example_and_command_print(tmp_path: Path) -> None:
    from tests.test_readme import EXAMPLES, masked, run, sample

    (example,) = [e for e in EXAMPLES if e.name == "cassettes"]
    (tmp_path / "example.py").write_text(example.code, encoding="utf-8")
    done = run([sys.executable, "example.py"], tmp_path)
    assert done.returncode == 0, done.stderr
    assert masked(done.stdout) == masked(sample("Polly wants a cracker."))
    listed = run(
        [sys.executable, "-m", "lcel_trace", "cassette", "cassettes/birds.jsonl"], tmp_path
    )
    assert listed.returncode == 0, listed.stderr
    assert masked(listed.stdout) == masked(sample("2 recorded calls"))


# -- interception ---------------------------------------------------------------------------


def _echo_model_class() -> type[Any]:
    """A chat model whose async path falls back to LangChain's (its sync `_generate` in a
    thread), counting the times its own code runs."""
    from langchain_core.language_models import BaseChatModel
    from langchain_core.outputs import ChatGeneration, ChatResult

    class EchoModel(BaseChatModel):
        runs: list[str] = []  # noqa: RUF012 - a shared counter, on purpose

        @property
        def _llm_type(self) -> str:
            return "echo"

        def _generate(
            self, messages: Any, stop: Any = None, run_manager: Any = None, **kw: Any
        ) -> Any:
            self.runs.append(str(messages[-1].content))
            message = AIMessage(f"echo: {messages[-1].content}")
            return ChatResult(generations=[ChatGeneration(message=message)])

        async def _agenerate(
            self, messages: Any, stop: Any = None, run_manager: Any = None, **kw: Any
        ) -> Any:
            return await super()._agenerate(messages, stop, run_manager, **kw)

    return EchoModel


def test_a_model_class_defined_inside_the_cassette_is_answered_and_recorded_once(
    tmp_path: Path,
) -> None:
    path = tmp_path / "echo.jsonl"
    with cassette(path) as tape:
        model = _echo_model_class()()  # a class the cassette has not seen before
        assert asyncio.run(model.ainvoke("hi")).content == "echo: hi"
    assert tape.recorded == 1
    assert model.runs == ["hi"]
    fresh = _echo_model_class()()
    with cassette(path, "replay"):
        assert asyncio.run(fresh.ainvoke("hi")).content == "echo: hi"
    with cassette(path, "replay"):
        assert fresh.invoke("hi").content == "echo: hi"  # the same request, sync
    assert fresh.runs == []
    assert path.read_text().count('"type": "span"') + path.read_text().count('"type":"span"') == 1


def test_cli_reads_directories_and_gzip_like_every_command(tmp_path: Path) -> None:
    import gzip

    folder = tmp_path / "cassettes"
    with OpenAIServer(["one", "two"]) as server:
        model = chat(server)
        with cassette(folder / "a.jsonl"):
            model.invoke("first")
        with cassette(folder / "b.jsonl"):
            model.invoke("second")
    packed = folder / "b.jsonl.gz"
    packed.write_bytes(gzip.compress((folder / "b.jsonl").read_bytes()))
    (folder / "b.jsonl").unlink()
    result = subprocess.run(
        [sys.executable, "-m", "lcel_trace", "cassette", str(folder)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.splitlines()[0] == "2 recorded calls, 2 distinct requests"
    with cassette(packed, "replay"):
        assert model.invoke("second").content == "two"
    with (
        pytest.raises(ValueError, match=r"a \.gz cassette can be replayed, not recorded"),
        cassette(packed, "new"),
    ):
        pass
