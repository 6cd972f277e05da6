"""The pytest plugin, used the way a user's test suite uses it (through pytester)."""

from __future__ import annotations

import pytest

USER_TESTS = """
from langchain_core.language_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from lcel_trace import trace

def chain():
    model = GenericFakeChatModel(messages=iter([AIMessage(content="hi there")]))
    return trace(ChatPromptTemplate.from_template("{q}") | model | StrOutputParser())

def test_shape_passes(lcel_traces):
    assert chain().invoke({"q": "x"}) == "hi there"
    lcel_traces.assert_tree(
        {"RunnableSequence": ["ChatPromptTemplate", "GenericFakeChatModel", "StrOutputParser"]}
    )
    lcel_traces.assert_status("GenericFakeChatModel", "ok")
    lcel_traces.assert_attributes("RunnableSequence", run_type="chain", outputs="hi there")

def test_shape_fails_with_the_tree_printed(lcel_traces):
    chain().invoke({"q": "x"})
    lcel_traces.assert_tree({"RunnableSequence": ["ChatOpenAI"]})
"""


def test_plugin_fixture_asserts_trees_and_prints_the_tree_on_failure(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_user=USER_TESTS)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*trace * has another shape.*",
            "*RunnableSequence [[]chain, ok*",
            "*GenericFakeChatModel [[]chat_model, ok*",
        ]
    )
