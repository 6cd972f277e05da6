"""Run LangGraph's and langchain-openai's own unit tests plainly, with `instrument()` on
for the whole session, and with every outermost call routed through `trace()`; fail on
any test that passes plainly and fails in another mode.

    .venv/bin/python tests/instrumented_suites/run.py [--venv DIR] [--lcel-trace WHEEL]
        [--suite NAME]... [--keep-going] [-- pytest args...]

For each suite: downloads the sdist of the installed version (cached under
$LCEL_TRACE_CACHE or ~/.cache/lcel-trace), keeps its tests (never its package source:
the tests import the installed library, the one we trace), installs the test-only
dependencies those tests import, runs each mode in a pytest subprocess with a JSON
outcome report, and compares them test id by test id. All of it happens in a
virtualenv of its own, built afresh (`--venv DIR`, default `<cache>/suites-venv/venv`:
this project, editable, plus the suites and their test dependencies, every version
pinned to what this interpreter has), never in the caller's environment: the test
dependencies bring pytest plugins, and `langchain`, which adds itself to every run's
metadata. CI installs the wheel it built there (`--lcel-trace dist/....whl`), so
nothing writes into the source tree while other stages use it.

A run whose tests all finished but whose process does not exit within `EXIT_GRACE_S`
(a hang at interpreter exit) fails the stage, as does a run that cannot complete.
Exit status: 0 clean, 1 a regression not in `allowed.txt` or a hang, 2 a suite could
not run at all.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from types import ModuleType

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
LANGCHAIN_SUITE = HERE.parent / "langchain_suite"  # outcomes.py, trace_everything.py
RUN_TIMEOUT_S = 1500
EXIT_GRACE_S = 60.0
"""How long a pytest process may take to exit once its outcome report is written
(lcel-trace's own exit flush waits at most 5 s)."""
NOT_PASSED = ("failed", "error", "missing")
tally = {"passed": 0, "failed": 0}
"""Tests that passed plainly and in every other mode; regressions not allowed."""


@dataclass(frozen=True)
class Suite:
    name: str  # the distribution, as pip knows it
    sdist_glob: str
    keep: tuple[str, ...]  # what to unpack from the sdist besides tests/ and pyproject.toml
    test_paths: tuple[str, ...]
    test_deps: tuple[str, ...]
    modes: tuple[str, ...]
    pytest_args: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    keyword: str = ""  # a `-k` expression for what needs a service, if ids say so


SUITES = {
    suite.name: suite
    for suite in (
        Suite(
            name="langgraph",
            sdist_glob="langgraph-*.tar.gz",
            keep=(),
            test_paths=("tests",),
            # What tests/conftest.py and the test modules import (checkpointer and store
            # fixtures import the Postgres and Redis clients even when those are unused).
            test_deps=(
                "pytest-mock",
                "syrupy",
                "langgraph-checkpoint-sqlite",
                "langgraph-checkpoint-postgres",
                "psycopg[binary]",
                "psycopg-pool",
                "redis",
                "pycryptodome",
            ),
            modes=("plain", "instrumented", "traced"),
            # Not NO_DOCKER=true, LangGraph's own switch: it would also drop the
            # service-free `memory_migrate_sends` checkpointer and skip the whole of
            # test_remote_graph.py, whose tests mock the server but for three
            # (left_out.txt). What needs Postgres or Redis is deselected by name instead:
            # the fixtures' postgres*/redis parametrisations and test_prune_postgres.py.
            env=(("NO_DOCKER", "false"),),
            keyword="not postgres and not redis",
        ),
        Suite(
            name="langchain-openai",
            sdist_glob="langchain_openai-*.tar.gz",
            keep=("scripts",),  # test_check_version.py loads scripts/check_version.py
            test_paths=("tests/unit_tests",),
            test_deps=(
                "pytest-mock",
                "syrupy",
                "freezegun",
                "pytest-socket",
                "vcrpy",
                "langchain-tests",
                "langchain",
                "numpy",
            ),
            modes=("plain", "instrumented", "traced"),
            # as its own Makefile runs them: no network
            pytest_args=("--disable-socket", "--allow-unix-socket"),
        ),
    )
}
PLUGINS = {"plain": (), "instrumented": ("instrument_everything",), "traced": ("trace_everything",)}


def _load_langchain_suite_runner() -> ModuleType:
    """tests/langchain_suite/run.py, for what both stages do alike (allow-lists, counts,
    pip's stderr)."""
    spec = importlib.util.spec_from_file_location("langchain_suite_run", LANGCHAIN_SUITE / "run.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


common = _load_langchain_suite_runner()


def log(message: str) -> None:
    print(f"[instrumented_suites] {message}", flush=True)


def pip(python: str, *args: str) -> None:
    completed = subprocess.run(
        [python, "-m", "pip", *args], stderr=subprocess.PIPE, text=True, check=False
    )
    common._echo_stderr(completed)
    completed.check_returncode()


def frozen_constraints(out: Path) -> Path:
    """Every distribution this interpreter has from an index, pinned (this project's
    own excepted)."""
    frozen = subprocess.run(
        [sys.executable, "-m", "pip", "freeze", "--exclude-editable"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    lines = [  # pins only: no direct references (a local file may be gone)
        line
        for line in frozen.splitlines()
        if "==" in line and " @ " not in line and not line.lower().startswith("lcel-trace")
    ]
    path = out / "constraints.txt"
    path.write_text("\n".join(lines) + "\n")
    return path


def make_venv(where: Path, suites: list[Suite], constraints: Path, lcel_trace: str) -> str:
    """A virtualenv with lcel-trace (`lcel_trace`: a wheel, or this tree editable) and
    the suites' libraries at the versions this interpreter has; returns its python."""
    log(f"building the suites' virtualenv in {where}")
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(where)], check=True)
    python = str(where / "bin" / "python")
    libraries = [f"{s.name}=={version(s.name)}" for s in suites]
    own = ["-e", str(REPO)] if lcel_trace == "editable" else [lcel_trace]
    pip(python, "install", "--quiet", "-c", str(constraints), *own, *libraries)
    return python


def fetch_tests(python: str, suite: Suite, lib_version: str) -> Path:
    """The sdist's tests/ (and `suite.keep`) and pyproject.toml, unpacked once per version."""
    root = common.cache_root() / f"{suite.name}-{lib_version}"
    tree = root / "tree"
    wanted_dirs = ("tests", *suite.keep)
    if all((tree / d).is_dir() for d in wanted_dirs) and (tree / "pyproject.toml").is_file():
        return tree
    downloads = root / "sdist"
    downloads.mkdir(parents=True, exist_ok=True)
    log(f"downloading the {suite.name} {lib_version} sdist from PyPI")
    pip(python, "download", "--quiet", "--no-deps", "--no-binary", ":all:",
        f"{suite.name}=={lib_version}", "-d", str(downloads))  # fmt: skip
    archive = next(downloads.glob(suite.sdist_glob))
    staging = root / "staging"
    shutil.rmtree(staging, ignore_errors=True)
    with tarfile.open(archive) as tar:
        top = tar.getnames()[0].split("/")[0]
        members = [
            m
            for m in tar.getmembers()
            if m.name == f"{top}/pyproject.toml"
            or any(m.name.startswith(f"{top}/{d}/") for d in wanted_dirs)
        ]
        tar.extractall(staging, members=members, filter="data")
    shutil.rmtree(tree, ignore_errors=True)
    (staging / top).rename(tree)
    shutil.rmtree(staging, ignore_errors=True)
    return tree


def install_test_deps(python: str, suite: Suite, constraints: Path) -> None:
    log(f"installing {suite.name}'s test dependencies: {' '.join(suite.test_deps)}")
    pip(python, "install", "--quiet", "-c", str(constraints), *suite.test_deps)


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def run_pytest(
    python: str, suite: Suite, tree: Path, mode: str, out: Path, extra: list[str]
) -> tuple[dict, str | None]:
    """One mode's outcomes, and what went wrong with the process itself (a hang at exit,
    no report), if anything."""
    label = f"{suite.name}-{mode}"
    report = out / f"{label}.json"
    report.unlink(missing_ok=True)
    stats_path = out / f"{label}-trace-stats.json"
    stats_path.unlink(missing_ok=True)
    args = [python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "addopts="]
    args += ["-p", "outcomes"] + [a for p in PLUGINS[mode] for a in ("-p", p)]
    args += [f"--junitxml={out / f'{label}.xml'}", "--durations=5", *suite.pytest_args]
    args += [*suite.test_paths, *left_out_args(suite), *with_keyword(suite.keyword, extra)]
    env = dict(os.environ, LCEL_SUITE_OUTCOMES=str(report), PYTHONDONTWRITEBYTECODE="1")
    env.update(suite.env)
    env["LCEL_SUITE_TRACE_STATS"] = str(stats_path)
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), str(LANGCHAIN_SUITE)])
    env.pop("LANGSMITH_TRACING", None)
    log(f"{label}: pytest {' '.join(args[3:])}")
    started = time.monotonic()
    problem = None
    with open(out / f"{label}.log", "w", encoding="utf-8") as output:
        process = subprocess.Popen(
            args, cwd=tree, env=env, stdout=output, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        finished_at = None
        while process.poll() is None:
            now = time.monotonic()
            if finished_at is None and report.is_file():
                finished_at = now  # the outcome report is written at session finish
            if finished_at is not None and now - finished_at > EXIT_GRACE_S:
                problem = f"finished its tests but did not exit within {EXIT_GRACE_S:.0f} s"
            elif now - started > RUN_TIMEOUT_S:
                problem = f"did not finish within {RUN_TIMEOUT_S} s"
            if problem:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
                break
            time.sleep(0.5)
    code = process.returncode
    log(f"{label}: exit {code} in {time.monotonic() - started:.0f} s, log {out / label}.log")
    result = _read_json(report)
    if result is None:
        tail = (out / f"{label}.log").read_text(errors="replace").splitlines()[-20:]
        return {}, (problem or f"wrote no outcome report (exit {code})") + ":\n" + "\n".join(tail)
    if problem is None and code not in (0, 1):
        problem = f"exited {code}"
    if mode != "plain" and problem is None:
        problem = check_tracing_happened(stats_path, mode, len(result["tests"]))
    return result["tests"], problem


def check_tracing_happened(path: Path, mode: str, tests: int) -> str | None:
    """A plugin that silently stopped patching would make every mode look alike."""
    stats = _read_json(path)
    if stats is None:
        return f"the {mode} run did not load its plugin (no {path.name})"
    log(f"{mode} run: {json.dumps(stats)}")
    if tests >= 500 and stats.get("traces_checked", 0) < 100:
        return f"the {mode} run traced almost nothing: its plugin is not patching"
    return None


def with_keyword(keyword: str, extra: list[str]) -> list[str]:
    """`extra` with the suite's `-k` expression and-ed into any `-k` it has."""
    if not keyword:
        return extra
    args, wanted = [], f"({keyword})"
    items = iter(extra)
    for arg in items:
        if arg == "-k":
            wanted += f" and ({next(items, '')})"
        elif arg.startswith("-k"):
            wanted += f" and ({arg[2:]})"
        else:
            args.append(arg)
    return [*args, "-k", wanted]


def left_out_args(suite: Suite) -> list[str]:
    """`--deselect` for each entry of left_out.txt naming this suite."""
    return [f"--deselect={test_id}" for test_id in left_out(suite)]


def left_out(suite: Suite) -> dict[str, str]:
    entries = {}
    for key, reason in common.read_allowed(HERE / "left_out.txt").items():
        name, _, test_id = key.partition(" ")
        if name == suite.name:
            entries[test_id.strip()] = reason
    return entries


def allowed_for(suite: Suite, mode: str) -> dict[str, str]:
    """allowed.txt lines are `<suite> <mode> <test id>  # reason`."""
    entries = {}
    for key, reason in common.read_allowed(HERE / "allowed.txt").items():
        name, entry_mode, test_id = [*key.split(None, 2), "", ""][:3]
        if name == suite.name and entry_mode == mode:
            entries[test_id] = reason
    return entries


def compare(suite: Suite, mode: str, plain: dict, other: dict, extra: list[str]) -> int:
    """Print the regressions of one mode against the plain run; count the unexpected."""
    allowed = allowed_for(suite, mode)
    regressions = {
        test_id: other.get(test_id, {"outcome": "missing", "message": f"not run {mode}"})
        for test_id, entry in plain.items()
        if entry["outcome"] == "passed"
        and other.get(test_id, {"outcome": "missing"})["outcome"] in NOT_PASSED
    }
    unexpected = sorted(set(regressions) - set(allowed))
    tally["failed"] += len(unexpected)
    print(f"{mode}: {common.counts(other)}")
    print(f"  {len(regressions)} regressions (pass plainly, fail {mode}), "
          f"{len(regressions) - len(unexpected)} of them allowed")  # fmt: skip
    for test_id in sorted(regressions):
        mark = "allowed" if test_id in allowed else "REGRESSION"
        print(f"  {mark} {test_id}\n      {regressions[test_id]['message']}")
    for test_id in sorted(t for t in allowed if other.get(t, {}).get("outcome") == "passed"):
        print(f"  allow-listed but passed {mode} this time: {test_id} # {allowed[test_id]}")
    if not extra:
        for test_id in sorted(t for t in allowed if t not in other):
            print(f"  allow-list entry names no test that ran (stale?): {test_id}")
    return len(unexpected)


def run_suite(python: str, suite: Suite, constraints: Path, extra: list[str]) -> int:
    """0 clean, 1 regressions or a process problem, 2 the suite cannot run here."""
    started = time.monotonic()
    lib_version = _installed_version(python, suite.name)
    tree = fetch_tests(python, suite, lib_version)
    install_test_deps(python, suite, constraints)
    out = common.cache_root() / "reports"
    out.mkdir(parents=True, exist_ok=True)
    plain, problem = run_pytest(python, suite, tree, "plain", out, extra)
    if problem:
        log(f"{suite.name} plain run: {problem}")
        return 2
    if sum(e["outcome"] == "passed" for e in plain.values()) < len(plain) // 2:
        log(f"most {suite.name} tests fail plainly ({common.counts(plain)}): cannot run them here")
        return 2
    results = {mode: run_pytest(python, suite, tree, mode, out, extra) for mode in suite.modes[1:]}

    print(f"\n{suite.name} {lib_version}, tests: {' '.join(suite.test_paths)}")
    if suite.keyword:
        print(f"  left out by name (Postgres, Redis): -k {suite.keyword!r}")
    for test_id, reason in sorted(left_out(suite).items()):
        print(f"  left out: {test_id}  # {reason}")
    print(f"plain: {common.counts(plain)}")
    for test_id, entry in sorted(plain.items()):
        if entry["outcome"] in ("failed", "error"):
            print(f"  (fails plainly too) {test_id}: {entry['message']}")
    failures = 0
    tally["passed"] += sum(
        entry["outcome"] == "passed"
        and all(o.get(t, {}).get("outcome") == "passed" for o, _ in results.values())
        for t, entry in plain.items()
    )
    for mode, (outcomes, problem) in results.items():
        failures += compare(suite, mode, plain, outcomes, extra)
        if problem:
            print(f"{mode} run PROBLEM: {problem}")
            failures += 1
    print(f"{suite.name} finished in {time.monotonic() - started:.0f} s")
    return 1 if failures else 0


def _installed_version(python: str, name: str) -> str:
    return subprocess.run(
        [python, "-c", f"from importlib.metadata import version; print(version({name!r}))"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--suite", action="append", choices=sorted(SUITES))
    parser.add_argument(
        "--venv",
        type=Path,
        default=common.cache_root() / "suites-venv" / "venv",
        help="where to build the suites' own virtualenv (default: under the cache)",
    )
    parser.add_argument(
        "--lcel-trace",
        default="editable",
        help="the lcel-trace wheel to install there (default: this tree, editable)",
    )
    parser.add_argument("--keep-going", action="store_true", help="exit 0 on regressions")
    parser.add_argument("pytest_args", nargs="*", help="after --: passed to every pytest run")
    options = parser.parse_args()
    started = time.monotonic()
    # In SUITES' order, whatever the command line's: langchain-openai's test dependencies
    # bring `langchain`, which adds itself to every run's `lc_versions` metadata, and
    # LangGraph's tests compare metadata exactly, so LangGraph runs before it is there.
    suites = [suite for name, suite in SUITES.items() if name in (options.suite or SUITES)]
    options.venv.parent.mkdir(parents=True, exist_ok=True)
    constraints = frozen_constraints(options.venv.parent)
    python = make_venv(options.venv, suites, constraints, options.lcel_trace)
    codes = [run_suite(python, suite, constraints, options.pytest_args) for suite in suites]
    print(f"\ninstrumented_suites finished in {time.monotonic() - started:.0f} s")
    # the plain closing line CI reads: passed in every mode; regressions not allowed
    print(f"instrumented_suites: {tally['passed']} passed, {tally['failed']} failed")
    if 2 in codes:
        return 2
    if 1 in codes:
        print("FAILED: a test passes plainly and fails instrumented or traced, or a run hung")
        return 0 if options.keep_going else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
