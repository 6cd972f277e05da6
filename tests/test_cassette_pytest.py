"""The cassette marker, fixture and `--lcel-record-mode`, used the way a user's test
suite uses them (through pytester, against the real HTTP test server)."""

from __future__ import annotations

from pathlib import Path

import pytest

from lcel_trace import _pytest_cassette, cassette
from lcel_trace.testing.openai_server import OpenAIServer

pytestmark = pytest.mark.slow  # each test runs pytest in subprocesses

USER_TESTS = """
import os
import pytest
from langchain_openai import ChatOpenAI

def model():
    return ChatOpenAI(base_url=os.environ["MODEL_URL"], api_key="sk-test", model="fake-gpt",
                      max_retries=0)

@pytest.mark.lcel_cassette
def test_default_file():
    assert model().invoke("hello").content == "recorded answer"

@pytest.mark.lcel_cassette("cassettes/shared.jsonl")
def test_named_file(lcel_cassette):
    assert model().invoke("named").content == "recorded answer"
    assert lcel_cassette.path.name == "shared.jsonl"

@pytest.mark.lcel_cassette
async def test_async(lcel_cassette):
    assert (await model().ainvoke("async")).content == "recorded answer"
"""

CONFTEST = """
pytest_plugins = ["pytest_asyncio"]
"""


def _run(
    pytester: pytest.Pytester, url: str, *args: str, tests: str = USER_TESTS
) -> pytest.RunResult:
    pytester.makepyfile(test_user=tests)
    pytester.makeconftest(CONFTEST)
    pytester.makeini("[pytest]\nasyncio_mode = auto\n")
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", *args)


def test_marker_records_once_then_replays_and_ci_defaults_to_replay(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    with OpenAIServer(["recorded answer"]) as server:
        monkeypatch.setenv("MODEL_URL", server.base_url)
        monkeypatch.delenv("CI", raising=False)
        _run(pytester, server.base_url).assert_outcomes(passed=3)
        assert len(server.requests) == 3
        files = sorted(
            str(p.relative_to(pytester.path)) for p in Path(pytester.path).rglob("*.jsonl")
        )
        assert files == [
            "cassettes/shared.jsonl",
            "cassettes/test_user/test_async.jsonl",
            "cassettes/test_user/test_default_file.jsonl",
        ]
        monkeypatch.setenv("CI", "true")  # replay: no request, still green
        _run(pytester, server.base_url).assert_outcomes(passed=3)
        assert len(server.requests) == 3


def test_replay_mode_fails_a_test_whose_cassette_is_missing_or_stale(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    with OpenAIServer(["recorded answer"]) as server:
        monkeypatch.setenv("MODEL_URL", server.base_url)
        result = _run(pytester, server.base_url, "--lcel-record-mode=replay")
        result.assert_outcomes(errors=3)
        result.stdout.fnmatch_lines(["*does not exist and mode is 'replay'*"])
        assert server.requests == []
        _run(pytester, server.base_url, "--lcel-record-mode=once").assert_outcomes(passed=3)
        changed = USER_TESTS.replace('"hello"', '"hello again"')
        result = _run(pytester, server.base_url, "--lcel-record-mode=replay", tests=changed)
        result.assert_outcomes(passed=2, failed=1)
        result.stdout.fnmatch_lines(
            ["*messages[[]0[]].content: recorded 'hello' / now 'hello again'*"]
        )


def test_plugin_modes_are_the_cassette_modes() -> None:
    assert _pytest_cassette.MODES == cassette.MODES
