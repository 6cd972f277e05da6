"""README.md's code runs as written and its sample outputs match real runs.

Every ```python block runs in a fresh interpreter in a temporary directory, offline.
Blocks preceded by `<!-- example: NAME -->` are parts of one example: they run one
after the other in one interpreter, in README order. A block that defines `test_`
functions runs under pytest. Sample outputs are compared with a real run with numbers
and ids masked (timings differ from run to run; the shape, names and facts may not).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
MARKER = re.compile(r"<!-- example: ([\w-]+) -->")


@dataclass
class Block:
    lang: str
    line: int
    code: str


@dataclass
class Example:
    name: str
    blocks: list[Block] = field(default_factory=list)

    @property
    def code(self) -> str:
        return "\n\n".join(b.code for b in self.blocks)


def blocks(text: str) -> list[tuple[Block, str | None]]:
    """Every fenced block with the example name its marker gives, if any."""
    found: list[tuple[Block, str | None]] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        if lines[i].startswith("```"):
            lang, start = lines[i][3:].strip(), i
            end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
            before = next((lines[j] for j in range(start - 1, -1, -1) if lines[j].strip()), "")
            marker = MARKER.fullmatch(before.strip())
            code = "\n".join(lines[start + 1 : end]) + "\n"
            found.append((Block(lang, start + 1, code), marker.group(1) if marker else None))
            i = end
        i += 1
    return found


def examples() -> list[Example]:
    named: dict[str, Example] = {}
    result: list[Example] = []
    for block, name in blocks(README.read_text(encoding="utf-8")):
        if block.lang != "python":
            continue
        if name is None:
            result.append(Example(f"line-{block.line}", [block]))
        else:
            if name not in named:
                named[name] = Example(name)
                result.append(named[name])
            named[name].blocks.append(block)
    return result


def sample(first_line_start: str) -> str:
    """The README's plain sample-output block that starts with this text."""
    (text,) = [
        b.code for b, _ in blocks(README.read_text(encoding="utf-8"))
        if b.lang == "" and b.code.startswith(first_line_start)
    ]  # fmt: skip
    return text


def masked(text: str) -> list[list[str]]:
    """Lines as words, with ids and numbers masked and trailing space ignored."""
    text = re.sub(r"\b[0-9a-f]{32}\b", "<id>", text)
    text = re.sub(r"\d+(\.\d+)?", "<n>", text)
    return [line.split() for line in text.splitlines() if line.strip()]


def offline_env() -> dict[str, str]:
    """A developer's machine, offline: no keys, no lcel-trace settings, and not CI (the
    README's cassette example records on its first run, as it would on a laptop; CI's
    own replay-only default is tested in tests/test_cassette_pytest.py)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("OPENAI_", "LCEL_TRACE_")) and k != "CI"
    }
    env["PYTHONIOENCODING"] = "utf-8"
    return env


def run(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args,
        cwd=cwd,
        env={**offline_env(), **env},
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


EXAMPLES = examples()


def test_every_python_block_belongs_to_an_example() -> None:
    python_blocks = [b for b, _ in blocks(README.read_text(encoding="utf-8")) if b.lang == "python"]
    assert len(python_blocks) >= 5
    assert sum(len(e.blocks) for e in EXAMPLES) == len(python_blocks)


@pytest.mark.parametrize("example", EXAMPLES, ids=[e.name for e in EXAMPLES])
def test_readme_example_runs(example: Example, tmp_path: Path) -> None:
    if re.search(r"^def test_", example.code, re.M):
        (tmp_path / "test_readme_example.py").write_text(example.code, encoding="utf-8")
        done = run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"], tmp_path)
    else:
        (tmp_path / "example.py").write_text(example.code, encoding="utf-8")
        done = run([sys.executable, "example.py"], tmp_path)
    assert done.returncode == 0, f"{example.name}:\n{done.stdout}\n{done.stderr}"


def test_the_tree_sample_is_what_the_quickstart_example_prints(tmp_path: Path) -> None:
    (quickstart,) = [e for e in EXAMPLES if e.name == "quickstart"]
    (tmp_path / "example.py").write_text(quickstart.blocks[0].code, encoding="utf-8")
    done = run([sys.executable, "example.py"], tmp_path)
    assert done.returncode == 0, done.stderr
    expected = masked(sample("RunnableSequence ["))
    printed = masked(done.stdout)
    assert printed[-len(expected) :] == expected


@pytest.fixture(scope="module")
def quickstart_trace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The trace file `bash examples/quickstart.sh` writes, written by its Python part."""
    where = tmp_path_factory.mktemp("quickstart")
    out = where / "quickstart-trace.jsonl"
    done = run([sys.executable, str(REPO / "examples" / "quickstart.py"), "--out", str(out)], where)
    assert done.returncode == 0, done.stderr
    return out


def test_the_show_sample_is_the_quickstart_trace(quickstart_trace: Path) -> None:
    done = run(
        [sys.executable, "-m", "lcel_trace", "show", str(quickstart_trace)],
        quickstart_trace.parent,
        COLUMNS="130",
    )
    assert done.returncode == 0, done.stderr
    assert masked(done.stdout) == masked(sample("joke trace "))


def test_the_stats_sample_is_the_quickstart_trace(quickstart_trace: Path) -> None:
    done = run(
        [sys.executable, "-m", "lcel_trace", "stats", str(quickstart_trace)],
        quickstart_trace.parent,
        COLUMNS="200",
    )
    assert done.returncode == 0, done.stderr
    assert masked(done.stdout) == masked(sample("name "))


def test_the_quickstart_sample_is_what_the_quickstart_prints(tmp_path: Path) -> None:
    done = run([sys.executable, str(REPO / "examples" / "quickstart.py")], tmp_path)
    assert done.returncode == 0, done.stderr
    assert masked(done.stdout) == masked(sample("|Why| do| parrots|"))


def test_the_two_main_commands_exist() -> None:
    text = README.read_text(encoding="utf-8")
    for script in ("examples/quickstart.sh", "tests/run.sh"):
        assert f"bash {script}" in text
        assert (REPO / script).is_file()
