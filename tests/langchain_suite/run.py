"""Run langchain-core's own unit tests twice, plainly and with every outermost runnable
call traced (`trace_everything.py`), and fail on any test that only fails traced.

    .venv/bin/python tests/langchain_suite/run.py [--keep-going] [pytest args...]

Downloads the sdist of the installed langchain-core (cached under
$LCEL_TRACE_CACHE or ~/.cache/lcel-trace), installs the test dependencies those tests
import (versions from the sdist's own `test` dependency group) into this interpreter's
environment, runs the chosen test directories with `--junitxml` and a JSON outcome
report per run, prints the counts and the regressions (passed plainly, not traced),
and exits 1 on a regression that `allowed.txt` does not list, 2 if the suite could not
run at all. Extra arguments go to both pytest runs (e.g. `-k fallbacks`).

Chosen tests (about 2,000; both runs take about 90 s on two cores): every directory
whose tests drive runnables through their entry points: runnables (LCEL, fallbacks,
retry, history, configurable, event streams v1/v2/v3, retrievers, LangSmith interop),
callbacks, tracers, fake models, language_models (chat models, LLMs, caches, rate
limiting), output_parsers, prompts, tools, plus decisions, messages, utils and load,
which call runnables here and there and cost seconds. Retrievers have no test file of
their own (test_retrievers.py is empty); they are exercised in runnables and tools.
Left out: `language_models/test_compat_bridge.py` and the in-memory store, vector store
and indexer suites, which need `langchain-tests` (large, and about stores, not
runnables); the rest of unit_tests makes no runnable calls.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
import tomllib
from importlib.metadata import version
from pathlib import Path

HERE = Path(__file__).resolve().parent
TEST_PATHS = [
    "tests/unit_tests/runnables",
    "tests/unit_tests/callbacks",
    "tests/unit_tests/tracers",
    "tests/unit_tests/fake",
    "tests/unit_tests/language_models",
    "tests/unit_tests/output_parsers",
    "tests/unit_tests/prompts",
    "tests/unit_tests/test_tools.py",
    "tests/unit_tests/test_tools_postponed_annotations.py",
    "tests/unit_tests/decisions",
    "tests/unit_tests/messages",
    "tests/unit_tests/utils",
    "tests/unit_tests/load",
]
IGNORED = ["tests/unit_tests/language_models/test_compat_bridge.py"]
# The test dependencies the chosen tests import (grandalf: graph drawing in runnables).
TEST_DEPS = ["pytest-mock", "syrupy", "freezegun", "blockbuster", "grandalf"]
RUN_TIMEOUT_S = 900
NOT_PASSED = ("failed", "error", "missing")


def log(message: str) -> None:
    print(f"[langchain_suite] {message}", flush=True)


def cache_root() -> Path:
    root = os.environ.get("LCEL_TRACE_CACHE")
    return Path(root) if root else Path.home() / ".cache" / "lcel-trace"


def fetch_tests(lc_version: str) -> Path:
    """The sdist's tests/ and pyproject.toml, unpacked once per version (no package
    source: the tests must import the installed langchain-core, the one we trace)."""
    root = cache_root() / f"langchain-core-{lc_version}"
    tree = root / "tree"
    if (tree / "tests" / "unit_tests").is_dir() and (tree / "pyproject.toml").is_file():
        return tree
    downloads = root / "sdist"
    downloads.mkdir(parents=True, exist_ok=True)
    log(f"downloading the langchain-core {lc_version} sdist from PyPI")
    completed = subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary",
         ":all:", f"langchain-core=={lc_version}", "-d", str(downloads)],
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    _echo_stderr(completed)
    completed.check_returncode()
    archive = next(downloads.glob("langchain_core-*.tar.gz"))
    staging = root / "staging"
    shutil.rmtree(staging, ignore_errors=True)
    with tarfile.open(archive) as tar:
        top = tar.getnames()[0].split("/")[0]
        wanted = [
            m
            for m in tar.getmembers()
            if m.name == f"{top}/pyproject.toml" or m.name.startswith(f"{top}/tests/")
        ]
        if hasattr(tarfile, "data_filter"):  # Python 3.11.4+
            tar.extractall(staging, members=wanted, filter="data")
        else:
            tar.extractall(staging, members=wanted)
    shutil.rmtree(tree, ignore_errors=True)
    (staging / top).rename(tree)
    shutil.rmtree(staging, ignore_errors=True)
    return tree


def _echo_stderr(completed: subprocess.CompletedProcess[str]) -> None:
    """pip's stderr without this machine's noise about optional local indexes."""
    noise = "is ignored: it is neither"
    lines = completed.stderr.splitlines(keepends=True)
    sys.stderr.write("".join(line for line in lines if noise not in line))


def install_test_deps(tree: Path) -> None:
    """Install TEST_DEPS with the version ranges of the sdist's `test` dependency group."""
    group = tomllib.loads((tree / "pyproject.toml").read_text())["dependency-groups"]["test"]
    specs = []
    for name in TEST_DEPS:
        match = [s for s in group if re.match(rf"{re.escape(name)}\b(?!-)", s)]
        specs.append(match[0].split(";")[0].strip() if match else name)
    log(f"installing test dependencies: {' '.join(specs)}")
    completed = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", *specs],
        stderr=subprocess.PIPE,
        text=True,
    )
    _echo_stderr(completed)
    completed.check_returncode()


def run_pytest(tree: Path, label: str, out: Path, extra: list[str], traced: bool) -> dict:
    report = out / f"{label}.json"
    report.unlink(missing_ok=True)
    args = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "outcomes"]
    if traced:
        args += ["-p", "trace_everything"]
    args += [f"--junitxml={out / f'{label}.xml'}", "--durations=0", "--durations-min=5"]
    args += [*TEST_PATHS, *(f"--ignore={p}" for p in IGNORED), *extra]
    env = dict(os.environ, LCEL_SUITE_OUTCOMES=str(report), PYTHONDONTWRITEBYTECODE="1")
    env["LCEL_SUITE_TRACE_STATS"] = str(out / f"{label}-trace-stats.json")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE), env.get("PYTHONPATH")]))
    env.pop("LANGSMITH_TRACING", None)
    log(f"{label} run: pytest {' '.join(args[3:])}")
    started = time.monotonic()
    with open(out / f"{label}.log", "w", encoding="utf-8") as output:
        try:
            code = subprocess.run(
                args, cwd=tree, env=env, stdout=output, stderr=subprocess.STDOUT,
                timeout=RUN_TIMEOUT_S,
            ).returncode  # fmt: skip
        except subprocess.TimeoutExpired:
            code = -1
    log(f"{label} run: exit {code} in {time.monotonic() - started:.0f} s, log {out / label}.log")
    if not report.is_file():
        sys.exit(f"{label} run wrote no outcome report (exit {code}); see {out / label}.log")
    result: dict = json.loads(report.read_text())
    if code not in (0, 1):
        tail = (out / f"{label}.log").read_text(errors="replace").splitlines()[-20:]
        sys.exit(f"{label} run did not complete (exit {code}):\n" + "\n".join(tail))
    if traced:
        check_tracing_happened(out / f"{label}-trace-stats.json", len(result["tests"]))
    return result["tests"]


def check_tracing_happened(path: Path, tests: int) -> None:
    """Guard against a plugin that silently stopped patching: the traced run must have
    traced and checked calls in proportion to the tests it ran."""
    if not path.is_file():
        sys.exit(f"the traced run did not load trace_everything (no {path})")
    stats = json.loads(path.read_text())
    log(
        f"traced run: {stats['traced_calls']} outermost calls traced, "
        f"{stats['traces_checked']} traces checked, {stats['classes_seen']} runnable classes seen"
    )
    if tests >= 500 and (stats["traced_calls"] < tests // 2 or stats["traces_checked"] == 0):
        sys.exit("the traced run traced almost nothing: trace_everything is not patching")


def read_allowed(path: Path) -> dict[str, str]:
    allowed = {}
    for raw in path.read_text().splitlines():
        test_id, _, reason = raw.partition("#")
        if test_id.strip():
            allowed[test_id.strip()] = reason.strip()
    return allowed


def counts(tests: dict) -> str:
    tally: dict[str, int] = {}
    for entry in tests.values():
        tally[entry["outcome"]] = tally.get(entry["outcome"], 0) + 1
    order = ["passed", "failed", "error", "skipped", "xfailed", "xpassed"]
    return ", ".join(f"{tally.get(k, 0)} {k}" for k in order)


def main() -> int:
    started = time.monotonic()
    keep_going = "--keep-going" in sys.argv[1:]
    extra = [a for a in sys.argv[1:] if a != "--keep-going"]
    lc_version = version("langchain-core")
    tree = fetch_tests(lc_version)
    install_test_deps(tree)
    out = cache_root() / "reports"
    out.mkdir(parents=True, exist_ok=True)
    plain = run_pytest(tree, "plain", out, extra, traced=False)
    if sum(e["outcome"] == "passed" for e in plain.values()) < len(plain) // 2:
        log(f"most tests fail without tracing ({counts(plain)}): this environment cannot run them")
        return 2
    traced = run_pytest(tree, "traced", out, extra, traced=True)

    print(f"\nlangchain-core {lc_version}, tests: {' '.join(TEST_PATHS)}")
    print(f"plain:  {counts(plain)}")
    print(f"traced: {counts(traced)}")
    for test_id, entry in sorted(plain.items()):
        if entry["outcome"] in ("failed", "error"):
            print(f"  (fails without tracing too) {test_id}: {entry['message']}")

    allowed = read_allowed(HERE / "allowed.txt")
    regressions = {
        test_id: traced.get(test_id, {"outcome": "missing", "message": "not run traced"})
        for test_id, entry in plain.items()
        if entry["outcome"] == "passed"
        and traced.get(test_id, {"outcome": "missing"})["outcome"] in NOT_PASSED
    }
    unexpected = sorted(set(regressions) - set(allowed))
    print(f"\n{len(regressions)} regressions (pass plainly, fail traced), "
          f"{len(regressions) - len(unexpected)} of them allowed:")  # fmt: skip
    for test_id in sorted(regressions):
        mark = "allowed" if test_id in allowed else "REGRESSION"
        print(f"  {mark} {test_id}\n      {regressions[test_id]['message']}")
    passing = sorted(t for t in allowed if t in traced and traced[t]["outcome"] == "passed")
    for test_id in passing:
        print(f"  allow-listed but passed traced this time: {test_id} # {allowed[test_id]}")
    missing = sorted(t for t in allowed if t not in traced and not extra)
    for test_id in missing:
        print(f"  allow-list entry names no test that ran (stale?): {test_id}")
    print(f"\nlangchain_suite finished in {time.monotonic() - started:.0f} s")
    if unexpected:
        print(f"FAILED: {len(unexpected)} tests fail only when traced (not in allowed.txt)")
        return 0 if keep_going else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
