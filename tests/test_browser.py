"""The dashboard in a real browser: a Streamlit server on a free port, Debian's Chromium through Playwright.

One test: run the demo from the Overview, watch its loss chart grow, wait for it to finish, then open the
Recommendations page from the sidebar and find the three top-K lists. The demo trains 2 epochs per model
(``tests/_dashboard.py``) in a private run store. Screenshots and the server's log go to ``artifacts/``.

Without /usr/bin/chromium (``apt-get install chromium``) the test is skipped, except where CI=true: there it fails.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
DEMO_EPOCHS = 2
DEMO_TIMEOUT_S = 600  # the whole demo, 2 epochs per model: 1.5 min on 2 cores, 4.5 min when they are shared
LISTS = ("Teacher", "Distilled student", "Plain student")  # the headings of ranked_lists (ROLE_LABELS)

# Points drawn in the Plotly charts inside ``selector``: one number per chart, the sum over its traces
# (px sends arrays base64-encoded, so ``gd.data[i].x`` is not an array: count the decoded ``_fullData``).
POINTS_JS = """sel => Array.from(document.querySelectorAll(sel + ' .js-plotly-plot')).map(
    g => (g._fullData || []).reduce((n, t) => n + (t._length || (t.x && t.x.length) || 0), 0))"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def streamlit_server(home: Path, log: Path, demo_epochs: int = 0, start_timeout_s: float = 60) -> Iterator[str]:
    """``streamlit run app.py`` as scripts/dashboard.sh starts it (``ui.serve``), from the repository root with
    ``RECDISTILL_HOME=home`` and the demo capped at ``demo_epochs`` per model (0: its own settings); yields its
    URL."""
    port = free_port()
    env = {**os.environ, "RECDISTILL_HOME": str(home)}
    cmd = [sys.executable, str(ROOT / "tests" / "_dashboard.py"), str(demo_epochs), "--server.address", "127.0.0.1",
           "--server.headless", "true", "--server.port", str(port), "--server.fileWatcherType", "none",
           "--browser.gatherUsageStats", "false"]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + start_timeout_s
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"streamlit exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                    if r.read().decode().strip() == "ok":
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"streamlit not healthy after {start_timeout_s:.0f} s:\n{log.read_text()[-3000:]}")
            time.sleep(0.3)
        yield url
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=15)


@contextmanager
def chromium_browser() -> Iterator["object"]:
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def require_chromium() -> None:
    if Path(CHROMIUM).exists():
        return
    msg = f"{CHROMIUM} not found (apt-get install chromium)"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{msg}: the browser test must run in CI")
    pytest.skip(msg)


def screenshot(page, path: Path, max_height: int = 6000) -> None:
    """A picture of the whole page. Streamlit scrolls inside its main section, not the document, so
    ``full_page`` alone stops at the viewport: the viewport is made as tall as the page's content first."""
    size = page.viewport_size
    height = page.evaluate("""() => Math.max(document.body.scrollHeight, ...Array.from(
        document.querySelectorAll('[data-testid=stMain], [data-testid=stAppViewContainer], [data-testid=stSidebarContent]'),
        e => e.scrollHeight))""")
    page.set_viewport_size({"width": size["width"], "height": min(max(height, size["height"]), max_height)})
    page.wait_for_timeout(1000)  # charts and grids redraw at the new size
    page.screenshot(path=str(path), full_page=True)
    page.set_viewport_size(size)


def chart_points(page, selector: str) -> list[int]:
    return page.evaluate(POINTS_JS, selector)


@pytest.fixture(scope="module")
def app_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    require_chromium()
    ARTIFACTS.mkdir(exist_ok=True)
    home = tmp_path_factory.mktemp("browser") / "home"
    log = ARTIFACTS / "browser_streamlit.log"  # the server's output, kept for a failed run
    with streamlit_server(home, log, DEMO_EPOCHS) as url:
        yield url


@pytest.fixture(scope="module")
def browser(app_url: str):
    with chromium_browser() as b:
        yield b


def test_the_servers_first_visit_to_a_pages_url_opens_that_page(app_url: str, browser) -> None:
    """The first session of a fresh server landing on a page's own URL (a bookmark; a tab reconnecting after a
    restart) gets that page and no "Page not found" dialog (ui/serve.py: Streamlit's legacy pages/ mode). Runs
    first in this module: the fixture's server has had no session before."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(60_000)
    try:
        page.goto(app_url + "/data")
        main = page.get_by_test_id("stMain")
        main.get_by_role("heading", name="How it will train").wait_for()  # the Data page ran to its plan
        page.wait_for_timeout(1_000)  # a dialog would have arrived with the first run's messages
        assert page.get_by_text("Page not found").count() == 0
        assert page.url.endswith("/data")
    finally:
        page.close()


def test_demo_then_recommendations(app_url: str, browser) -> None:
    from playwright.sync_api import expect
    ARTIFACTS.mkdir(exist_ok=True)
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(60_000)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        page.goto(app_url)
        main = page.get_by_test_id("stMain")
        main.get_by_role("heading", name="RecDistill").wait_for()
        main.get_by_role("heading", name="Explore").wait_for()  # the Overview's last part: its first run ended

        # Run the demo; its live loss chart appears and gains points while the models train.
        page.get_by_role("button", name="Run the demo").click()
        loss = ".st-key-demo_live_loss"
        page.wait_for_function(f"() => ({POINTS_JS})('{loss}').some(n => n > 0)", timeout=120_000)
        first = max(chart_points(page, loss))
        page.wait_for_function(f"() => Math.max(...({POINTS_JS})('{loss}')) > {first}", timeout=120_000)
        grown = max(chart_points(page, loss))
        assert grown > first > 0, (first, grown)

        # The demo ends with its results table and comparison chart (the live section reruns the page).
        # Wait for the results, or stop early at a failure, a stop or an exception.
        results = main.get_by_text("What the demo reached (test split)")
        results.or_(main.get_by_test_id("stAlertContentError")).or_(main.get_by_test_id("stException")).or_(
            main.get_by_test_id("stAlertContentWarning")).first.wait_for(timeout=DEMO_TIMEOUT_S * 1000)
        problems = main.get_by_test_id("stException").or_(main.get_by_test_id("stAlertContentError")).or_(
            main.get_by_test_id("stAlertContentWarning"))
        assert problems.count() == 0, problems.all_inner_texts()
        assert results.is_visible()
        progress = main.get_by_test_id("stProgress").first.inner_text()
        assert "done in" in progress, progress
        assert max(chart_points(page, loss)) >= grown
        assert max(chart_points(page, ".st-key-demo_live_val")) >= 3 * DEMO_EPOCHS  # val NDCG per epoch, 3 models
        screenshot(page, ARTIFACTS / "browser_demo.png")

        # The Recommendations page, through the sidebar navigation: one user's three top-10 lists.
        page.get_by_test_id("stSidebarNav").get_by_role("link", name="Recommendations").click()
        page.wait_for_url("**/recommendations")
        main.get_by_role("heading", name="Recommendations").wait_for()
        main.get_by_role("heading", name="Top 10").wait_for()
        assert main.get_by_text("There is no distilled student").count() == 0
        boxes = []
        for name in LISTS:
            # The list's column: its bold heading, then a data grid of K = 10 rows (plus the header row).
            column = main.get_by_test_id("stColumn").filter(has=page.get_by_text(name, exact=True))
            expect(column).to_have_count(1)
            grid = column.get_by_test_id("stDataFrame")
            expect(grid).to_be_visible()
            expect(grid.locator("[role=row]")).to_have_count(11)
            ranks = grid.locator("[role=row]").nth(1).locator("[role=gridcell]")
            expect(ranks.first).to_have_text("1")
            assert ranks.nth(1).inner_text().strip(), f"{name}: no title in the first row"
            boxes.append(grid.bounding_box())
        assert all(b["width"] > 100 and b["height"] > 100 for b in boxes), boxes
        assert len({round(b["y"]) for b in boxes}) == 1 and boxes[0]["x"] < boxes[1]["x"] < boxes[2]["x"], boxes
        # The agreement metrics under the lists (mean over test users: computed after the lists are drawn).
        expect(main.get_by_test_id("stMetric")).to_have_count(4, timeout=120_000)
        expect(main.get_by_test_id("stMetric").first).to_contain_text("overlap@10: teacher vs distilled")
        expect(page.get_by_test_id("stSpinner")).to_have_count(0)
        screenshot(page, ARTIFACTS / "browser_recommendations.png")
        assert main.get_by_test_id("stException").count() == 0
        assert not errors, errors
    finally:
        page.close()
