"""The examples run end to end as a user would run them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from lcel_trace.replay import read_traces

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_quickstart_streams_prints_the_tree_and_writes_a_readable_trace(tmp_path: Path) -> None:
    out = tmp_path / "trace.jsonl"
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "quickstart.py"), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "为|什|么" in result.stdout
    for name in ("RunnableSequence", "ChatPromptTemplate", "FakeListChatModel", "StrOutputParser"):
        assert name in result.stdout
    assert "ttft" in result.stdout
    assert "read back: identical" in result.stdout
    (written,) = read_traces(out)
    assert written.status == "ok"
    assert written.root.outputs == "为什么鹦鹉会说话？因为它们不想被当成哑巴鸟！"
