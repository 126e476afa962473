"""End to end: start the demo as Spaces does (``python app.py``) on localhost and use it in headless Chromium.

Needs Debian's ``chromium`` (``apt-get install -y chromium``, at /usr/bin/chromium) and Playwright's Python
package; Playwright's own browser download is never used. Without the browser the test is skipped, except in CI
(``CI`` set), where a missing browser is a failure. ``QUALS_UPDATE_SCREENSHOT=1`` also writes docs/demo.png.
"""

import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest


ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
SOURCE = "alice visited paris on monday . the weather was warm . local media covered the event ."
SUMMARIES = ["alice visited paris on monday .", "bob visited paris on monday ."]

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def require_browser():
    if not Path(CHROMIUM).is_file():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing in CI: install it with `apt-get install -y chromium`")
        pytest.skip(f"{CHROMIUM} not installed (apt-get install -y chromium); the browser test needs it")
    return pytest.importorskip("playwright.sync_api", reason="pip install playwright (the Python package)")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def demo_url(tmp_path_factory):
    """The demo, run as a script with the tiny offline QAGen (via $QUALS_MODEL), on a free localhost port."""
    require_browser()
    from quals.testing import tiny_qagen

    port, log = free_port(), tmp_path_factory.mktemp("demo") / "server.log"
    env = {**os.environ, "QUALS_MODEL": str(tiny_qagen()), "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False",
           "OMP_NUM_THREADS": "1"}
    with log.open("w") as out:
        server = subprocess.Popen([sys.executable, str(ROOT / "metrics" / "quals" / "app.py"), "--host", "127.0.0.1",
                                   "--port", str(port)], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 120
        while True:
            if server.poll() is not None:
                pytest.fail(f"the demo exited with code {server.returncode}:\n{log.read_text()}")
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"the demo did not answer at {url} within 120 s:\n{log.read_text()}")
            time.sleep(0.5)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()


@pytest.fixture()
def page(demo_url):
    """A Chromium page on the demo; any request that leaves localhost is blocked and recorded."""
    playwright_api = require_browser()
    outside = []

    def local_only(route):
        if route.request.url.startswith(("http://127.0.0.1", "ws://127.0.0.1", "data:", "blob:")):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        page.route("**/*", local_only)
        page.goto(demo_url)
        yield page
        browser.close()
    assert outside == [], f"the demo tried to reach the network: {outside}"


def cell(page, table: str, row: int, column: int) -> str:
    return page.locator(f"#{table} [data-testid='cell-{row}-{column}']").inner_text().strip()


def wait_for_chart_of(page, question: str, timeout: float = 30.0) -> list[str]:
    """Wait until the chart shows ``question``'s tokens on its x axis ("1 who", "2 visited", ...), probabilities
    (0.0 to 1.0) on its y axis, and two coloured lines (given the source, given the summary); return the x labels."""
    deadline = time.monotonic() + timeout
    while True:
        texts = page.locator("#token-chart svg .role-axis-label text").all_text_contents()
        labels = [t for t in texts if re.match(r"\d+ ", t)]  # the x axis
        y_labels = [t for t in texts if t not in labels]
        shown = "".join(label.split(" ", 1)[1] for label in labels)  # the tokens, spaces aside
        lines = page.locator("#token-chart svg .mark-line path").all()
        strokes = sorted(line.get_attribute("stroke") or "none" for line in lines)
        if (shown.startswith("".join(question.split())) and y_labels == ["0.0", "0.2", "0.4", "0.6", "0.8", "1.0"]
                and len(strokes) == 2 and "none" not in strokes and strokes[0] != strokes[1]):
            return labels
        if time.monotonic() > deadline:
            pytest.fail(f"the chart reads x={labels}, y={y_labels}, line colours {strokes}; expected the tokens of "
                        f"{question!r}, 0.0 to 1.0 and two coloured lines")
        time.sleep(0.2)


def test_score_a_faithful_and_a_hallucinated_summary(page, tmp_path):
    page.locator("#score-button").click()  # nothing entered yet
    page.wait_for_selector("#status:has-text('Paste a source document first')", timeout=30_000)
    assert "Traceback" not in page.locator("#status").inner_text()

    page.locator("#source textarea").fill(SOURCE)
    page.locator("#summaries textarea").fill("\n".join(SUMMARIES))
    page.locator("#score-button").click()
    page.wait_for_selector("#status:has-text('summary 2:')", timeout=60_000)
    page.wait_for_selector("#pairs-table [data-testid='cell-0-5']", timeout=30_000)

    status = page.locator("#status").inner_text()
    assert "⚠️" not in status and "summary 1:" in status
    assert [cell(page, "summary-table", i, 1) for i in range(2)] == SUMMARIES
    faithful, hallucinated = (float(cell(page, "summary-table", i, 2)) for i in range(2))
    assert faithful > hallucinated  # "bob" is not the person the source names
    assert f"{hallucinated:.3f}" in status

    rows = page.locator("#pairs-table [role='row'].virtual-row").count()
    assert rows >= 2
    differences = [float(cell(page, "pairs-table", i, 5)) for i in range(rows)]
    assert differences == sorted(differences)  # least supported first
    for i in range(rows):  # difference = LL_source - LL_summary, as rendered (3 decimals)
        ll_source, ll_summary = float(cell(page, "pairs-table", i, 3)), float(cell(page, "pairs-table", i, 4))
        assert differences[i] == pytest.approx(ll_source - ll_summary, abs=2e-3)
    first = cell(page, "pairs-table", 0, 1) + " " + cell(page, "pairs-table", 0, 2)
    assert cell(page, "pairs-table", 0, 0) == "2" and "bob" in first  # the swapped person is the weakest fact

    marks = page.locator("#highlights p[data-summary='2'] mark")  # the summary text, its spans highlighted
    assert marks.count() >= 1
    texts = [marks.nth(i).inner_text() for i in range(marks.count())]
    weakest = min(range(len(texts)), key=lambda i: float(marks.nth(i).get_attribute("data-quals")))
    assert "bob" in texts[weakest]  # the reddest span is the swapped person
    assert page.locator("#highlights p[data-summary='2']").inner_text().startswith("2. bob visited paris")

    labels = wait_for_chart_of(page, cell(page, "pairs-table", 0, 1))  # the least supported pair comes first
    assert any(label.endswith(" bob") for label in labels)

    page.locator("#pairs-table [data-testid='cell-1-1']").click()  # plot another pair
    second = cell(page, "pairs-table", 1, 1)
    wait_for_chart_of(page, second)
    assert second in page.locator("#pair-choice input").input_value()

    page.locator("#pairs-table [data-testid='cell-0-1']").click()  # back to the least supported pair
    wait_for_chart_of(page, cell(page, "pairs-table", 0, 1))
    page.keyboard.press("Escape")  # leave the table cell so the screenshot shows no edit frame
    page.locator("h1").first.click()
    page.wait_for_timeout(500)  # let the chart finish drawing
    shot = tmp_path / "demo.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    if os.environ.get("QUALS_UPDATE_SCREENSHOT"):
        shutil.copy(shot, ROOT / "docs" / "demo.png")
