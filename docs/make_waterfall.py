"""Regenerate docs/waterfall.png, the README's picture of the HTML page, from a real run.

Runs the quickstart's chain (examples/quickstart.py: prompt | ChatOpenAI | parser,
streamed from the local OpenAI-compatible server) twice under the same trace name,
writes the page with `lcel-trace html`, opens it in headless Chromium (Playwright, the
`browser` extra; Debian's `chromium`, or `$LCEL_TRACE_CHROMIUM`), selects the second
trace's model row and takes the screenshot:

    python docs/make_waterfall.py [--out docs/waterfall.png]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[1]
WIDTH, HEIGHT = 1400, 440


def quickstart() -> ModuleType:
    spec = importlib.util.spec_from_file_location("quickstart", REPO / "examples/quickstart.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def record(path: Path, runs: int = 2) -> None:
    """`runs` traces of the quickstart chain named "joke", written by JsonlExporter."""
    from lcel_trace import trace
    from lcel_trace.exporters import JsonlExporter

    example = quickstart()
    os.environ.pop("OPENAI_API_KEY", None)  # the local server, as a fresh clone runs it
    with example.chat_model() as model, JsonlExporter(path) as exporter:
        traced = trace(example.build_chain(model), exporters=[exporter], name="joke")

        async def stream() -> None:
            for _ in range(runs):  # one event loop: the model's HTTP client is bound to it
                async for _ in traced.astream({"topic": "parrots"}):
                    pass

        asyncio.run(stream())


def screenshot(page_path: Path, out: Path) -> None:
    from playwright.sync_api import sync_playwright

    chromium = os.environ.get("LCEL_TRACE_CHROMIUM") or shutil.which("chromium")
    if not chromium:
        sys.exit("no Chromium: apt-get install chromium, or set LCEL_TRACE_CHROMIUM")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, chromium_sandbox=False)
        try:
            page = browser.new_page(viewport={"width": WIDTH, "height": HEIGHT})
            page.goto(page_path.as_uri())
            page.wait_for_selector("body[data-ready='1']", timeout=30_000)
            page.locator(".trace-item").last.click()  # a warm run: the first one connects
            page.locator(".row", has=page.locator(".name", has_text="ChatOpenAI")).click()
            page.screenshot(path=str(out))
        finally:
            browser.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "waterfall.png")
    out = parser.parse_args().out
    with tempfile.TemporaryDirectory() as tmp:
        runs = Path(tmp) / "quickstart-trace.jsonl"
        record(runs)
        cli = [sys.executable, "-m", "lcel_trace", "html", str(runs)]
        subprocess.run(cli, check=True)
        screenshot(runs.with_suffix(".html"), out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
