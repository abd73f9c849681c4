"""The dashboard at /ui, in a real browser: Playwright driving the system's Chromium headless.

Playwright's own browser downloads are not used (the machines reach package registries only),
so the test launches whatever Chromium binary the machine has (.ci/run installs Debian's) and
skips, saying so, only when there is none. Screenshots go to test-artifacts/.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from tests.support import ROOT, Server

pytestmark = pytest.mark.e2e

ARTIFACTS = ROOT / "test-artifacts"
KEY = "k1"
UI_MS = 15_000  # a page update: a poll is every 2 s, and the machine may be busy
RUN_MS = 60_000  # a short run from start to end, queued behind whatever else runs
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome-stable", "google-chrome")
CHROMIUM_PATHS = ("/usr/lib/chromium/chromium", "/usr/lib/chromium-browser/chromium-browser")


def find_chromium() -> str | None:
    for name in CHROMIUM_NAMES:
        if found := shutil.which(name):
            return found
    return next((p for p in CHROMIUM_PATHS if Path(p).is_file()), None)


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    executable = find_chromium()
    if executable is None:
        pytest.skip(
            "no Chromium binary found (looked for "
            f"{', '.join(CHROMIUM_NAMES + CHROMIUM_PATHS)}): install Debian's `chromium`"
        )
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=executable, headless=True)
        yield browser
        await browser.close()


@pytest.fixture
async def page(browser: Browser) -> AsyncIterator[Page]:
    """A fresh context per test (its own localStorage), failing the test on uncaught errors."""
    context = await browser.new_context(viewport={"width": 1400, "height": 1000})
    page = await context.new_page()
    page.set_default_timeout(UI_MS)
    errors: list[str] = []
    page.on("pageerror", lambda err: errors.append(str(err)))
    yield page
    await context.close()
    assert not errors, f"uncaught errors in the page: {errors}"


@pytest.fixture(scope="module")
def keyed() -> Iterator[Server]:
    with Server("dev", env={"RUNYARD_API_KEYS": KEY}) as server:
        yield server


async def start_run(page: Page, graph: str, payload: str) -> None:
    await page.get_by_label("Assistant", exact=True).select_option(label=graph)
    await page.get_by_label("Input (a JSON object)").fill(payload)
    await page.get_by_role("button", name="Start run").click()


async def expect_finished_counter(page: Page, steps: int) -> str:
    """Waits for the run view to show `steps` ticks streamed, success and the final state;
    returns the run's id."""
    view = page.locator("#run-view")
    await expect(view).to_be_visible()
    custom = page.locator("#run-events li").filter(
        has=page.locator(".event-name", has_text=re.compile(r"^custom$"))
    )
    await expect(custom).to_have_count(steps, timeout=RUN_MS)
    await expect(custom.last).to_contain_text(f'"tick": {steps}')
    await expect(page.locator("#run-events")).to_contain_text("metadata")
    await expect(page.locator("#run-status")).to_have_text("success", timeout=RUN_MS)
    await expect(page.locator("#final-state")).to_contain_text(f'"count": {steps}')
    return (await page.locator("#run-id").text_content() or "").strip()


async def test_dashboard_lists_starts_and_streams_a_run(embedded: Server, page: Page) -> None:
    await page.goto(f"{embedded.url}/ui")
    await expect(page).to_have_title("Runyard dashboard")
    counter = page.locator("#assistant-list li[data-graph-id='counter']")
    await expect(counter).to_be_visible()
    await expect(page.locator("#assistant-list li[data-graph-id='sleeper']")).to_be_visible()
    await expect(page.locator("#readiness")).to_have_text("ok")
    await expect(page.locator("#stat-idle")).to_have_text(re.compile(r"^\d+ of \d+$"))

    await counter.get_by_role("button", name="graph").click()
    await expect(page.locator("#graph-drawing svg .node")).to_have_count(3)  # start, tick, end
    await expect(page.locator("#graph-edges")).to_contain_text("tick → end")

    # Invalid JSON is caught in the page, with a message, and starts nothing.
    await start_run(page, "counter", '{"steps": 5,}')
    await expect(page.locator("#run-input-error")).to_contain_text("not valid JSON")
    await expect(page.get_by_label("Input (a JSON object)")).to_have_attribute(
        "aria-invalid", "true"
    )
    await start_run(page, "counter", "[1, 2]")
    await expect(page.locator("#run-input-error")).to_contain_text("must be a JSON object")
    await expect(page.locator("#run-view")).to_be_hidden()

    await start_run(page, "counter", '{"steps": 5, "delay": 0.1}')
    await expect(page.locator("#run-input-error")).to_be_hidden()
    run_id = await expect_finished_counter(page, 5)
    await expect(page.locator("#run-events")).to_contain_text("updates")
    await expect(page.locator("#run-connection")).to_have_text("closed")

    # The live tables catch up on their next poll.
    row = page.locator(f"#runs-body tr[data-run-id='{run_id}']")
    await expect(row).to_contain_text("success")
    thread_id = (await page.locator("#run-thread").text_content() or "").strip()
    await expect(page.locator("#threads-body")).to_contain_text(thread_id[:8])

    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=ARTIFACTS / "dashboard.png", full_page=True)


async def test_dashboard_files_are_open_and_its_data_needs_the_key(keyed: Server) -> None:
    async with httpx.AsyncClient(base_url=keyed.url, timeout=30) as http:
        redirect = await http.get("/ui")
        assert redirect.status_code == 307 and redirect.headers["location"] == "ui/"
        index = await http.get("/ui/")
        assert index.status_code == 200 and "text/html" in index.headers["content-type"]
        script = await http.get("/ui/static/app.js")
        assert script.status_code == 200 and "javascript" in script.headers["content-type"]
        assert (await http.get("/ui/static/missing.js")).status_code == 404
        assert (await http.get("/ui/api/overview")).status_code == 401
        overview = await http.get("/ui/api/overview", headers={"x-api-key": KEY})
        assert overview.status_code == 200
        body = overview.json()
        assert set(body["runs"]) == {"pending", "running"}
        assert body["workers"]["busy"] + body["workers"]["idle"] == body["workers"]["size"]


async def test_dashboard_works_once_the_key_is_entered(keyed: Server, page: Page) -> None:
    await page.goto(f"{keyed.url}/ui")
    await expect(page.locator("#notice")).to_contain_text("needs an API key")
    await expect(page.locator("#assistant-list li[data-graph-id='counter']")).to_have_count(0)

    await page.get_by_label("API key", exact=True).fill(KEY)
    await page.get_by_role("button", name="Use key").click()
    await expect(page.locator("#assistant-list li[data-graph-id='counter']")).to_be_visible()
    await expect(page.locator("#notice")).to_be_hidden()

    # The stream carries the key in its URL (EventSource sends no headers).
    await start_run(page, "counter", '{"steps": 2}')
    run_id = await expect_finished_counter(page, 2)
    await expect(page.locator("#stat-pending")).to_have_text(re.compile(r"^\d+$"))

    # The key is remembered across reloads; a finished run opened again replays its events.
    await page.reload()
    await expect(page.locator("#notice")).to_be_hidden()
    await expect(page.locator("#run-view")).to_be_hidden()
    await page.locator(f"#runs-body tr[data-run-id='{run_id}']").get_by_role("button").click()
    await expect_finished_counter(page, 2)
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=ARTIFACTS / "dashboard-api-key.png", full_page=True)
