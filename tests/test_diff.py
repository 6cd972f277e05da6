"""`lcel-trace diff`: the U test, its verdicts on generated samples, thresholds, exit codes."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

from lcel_trace.diff import MIN_SAMPLES, compare, mann_whitney_u, parse_fail_on
from tests.trace_data import qa_trace, write


def cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lcel_trace", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_u_test_matches_scipy_on_tied_samples() -> None:
    """Reference: scipy.stats.mannwhitneyu(b, a, method="asymptotic") on the same data
    (computed once with SciPy 1.x; SciPy is not a dependency)."""
    a = [12.0, 15.5, 11.2, 19.0, 15.5, 13.3, 14.1, 16.8, 12.9, 15.5]
    b = [15.5, 18.2, 21.0, 17.7, 16.1, 22.4, 15.5, 19.9, 20.3, 18.8, 17.0]
    test = mann_whitney_u(a, b)
    assert test.u == 97.0
    assert test.p_value == pytest.approx(0.003266214821645881, rel=1e-9)
    assert test.verdict == "slower"
    assert mann_whitney_u(b, a).verdict == "faster"


def lognormal(seed: int, n: int, scale: float = 1.0) -> list[float]:
    rng = random.Random(seed)
    return [rng.lognormvariate(4, 0.4) * scale for _ in range(n)]


def test_a_real_shift_is_found_and_noise_is_not() -> None:
    shifted = mann_whitney_u(lognormal(1, 200), lognormal(2, 200, scale=1.3))
    assert shifted.verdict == "slower"
    assert shifted.p_value is not None
    assert shifted.p_value < 1e-6
    # same distribution, 200 seeds: about ALPHA of them may look significant by chance
    false_alarms = sum(
        mann_whitney_u(lognormal(s, 50), lognormal(s + 1000, 50)).verdict != "no significant change"
        for s in range(200)
    )
    assert false_alarms <= 20


def test_too_few_calls_is_no_evidence() -> None:
    test = mann_whitney_u([1.0] * (MIN_SAMPLES - 1), [100.0] * 50)
    assert test.verdict.startswith("no evidence")
    assert test.p_value is None


@pytest.fixture
def sides(tmp_path: Path) -> tuple[Path, Path]:
    rng = random.Random(7)
    a = [
        qa_trace(question=f"q{i % 5}", answer="same", latency_ms=rng.lognormvariate(4, 0.2))
        for i in range(40)
    ]
    b = [
        qa_trace(
            question=f"q{i % 5}",
            answer="changed" if i % 5 == 0 else "same",
            latency_ms=rng.lognormvariate(4, 0.2) * 1.5,
            model="gpt-4o" if i % 2 else "gpt-4o-mini",
            error=i == 3,
            extra_step="rerank",
        )
        for i in range(40)
    ]
    return write(tmp_path / "a.jsonl", a), write(tmp_path / "b.jsonl", b)


def test_compare_reports_steps_one_sided_steps_and_changed_outputs(
    sides: tuple[Path, Path],
) -> None:
    report = compare(*sides)
    root = next(s for s in report.steps if s.level == "root")
    assert root.latency is not None
    assert root.latency.verdict == "slower"
    assert root.a is not None
    assert root.b is not None
    assert (root.a.count, root.b.count, root.b.errors) == (40, 40, 1)
    only_b = {(s.name, s.model) for s in report.steps if s.only_in == "b"}
    assert only_b == {("rerank", None), ("ChatOpenAI", "gpt-4o")}
    assert report.equal_inputs == 5
    assert report.changed_outputs == 1
    (change,) = report.output_examples
    assert (change.inputs, change.a_output, change.b_output) == (
        '{"question": "q0"}',
        '"same"',
        '"changed"',
    )
    assert report.a.cost_per_trace_usd is not None
    assert report.b.cost_per_trace_usd is not None
    assert report.b.cost_per_trace_usd > report.a.cost_per_trace_usd


def test_fail_on_exits_1_when_crossed_and_0_otherwise(sides: tuple[Path, Path]) -> None:
    a, b = sides
    crossed = cli("diff", a, b, "--fail-on", "p95>+20%,cost>+10%,errors>0")
    assert crossed.returncode == 1, crossed.stderr
    assert "- p95>+20%: RunnableSequence (root)" in crossed.stdout
    assert "- cost>+10%: cost per trace" in crossed.stdout
    assert "- errors>+0: RunnableSequence (root) error rate 0.0% -> 2.5%" in crossed.stdout
    same = cli("diff", a, a, "--fail-on", "p95>+20%,cost>+10%,errors>0")
    assert same.returncode == 0, same.stdout
    assert "Thresholds crossed" not in same.stdout
    lenient = cli("diff", a, b, "--fail-on", "p95>+200%")
    assert lenient.returncode == 0


def test_latency_thresholds_need_evidence(tmp_path: Path) -> None:
    a = write(tmp_path / "a.jsonl", [qa_trace(latency_ms=10) for _ in range(3)])
    b = write(tmp_path / "b.jsonl", [qa_trace(latency_ms=50) for _ in range(3)])
    result = cli("diff", a, b, "--fail-on", "p95>+20%")
    assert result.returncode == 0
    assert "no evidence (3 vs 3 calls, need 8)" in result.stdout


def test_json_and_markdown_outputs(sides: tuple[Path, Path]) -> None:
    a, b = sides
    data = json.loads(cli("diff", a, b, "--json").stdout)
    assert data["a"]["traces"] == 40
    assert {s["only_in"] for s in data["steps"]} == {None, "b"}
    assert data["changed_outputs"] == 1
    markdown = cli("diff", a, b, "--markdown").stdout
    assert "| step | model | level |" in markdown
    assert "### Only in B" in markdown


def test_a_malformed_rule_is_refused_with_exit_2(sides: tuple[Path, Path]) -> None:
    with pytest.raises(ValueError, match="METRIC one of p50, p95, errors, cost, tokens"):
        parse_fail_on("latency>5")
    result = cli("diff", *sides, "--fail-on", "p95>>20")
    assert result.returncode == 2
    assert "--fail-on: cannot read 'p95>>20'" in result.stderr
