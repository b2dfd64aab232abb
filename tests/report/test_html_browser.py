"""The HTML report in a real browser: the item table fits a 1400 px window with every failed row's reason in view,
and an 800 px window scrolls no page sideways (headless Chromium driven by Playwright).

Playwright cannot download its own browsers here: the test drives the system Chromium (``shutil.which("chromium")``)
and is skipped, saying why, where none is installed.
"""

from __future__ import annotations

import shutil

import pytest

CHROMIUM = shutil.which("chromium")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no system Chromium (`chromium` on PATH); Playwright cannot download one here")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--no-first-run"]

LAYOUT = """() => {
  const page = document.documentElement;
  const tables = Array.from(document.querySelectorAll('table.qc-table')).map(t => ({
    id: t.id, width: t.scrollWidth, room: t.parentElement.clientWidth, right: t.getBoundingClientRect().right}));
  const failed = Array.from(document.querySelectorAll('tr.qc-fail')).map(row => {
    const reason = row.querySelector('.qc-reason');
    const verdict = row.querySelector('td.qc-verdict').getBoundingClientRect();
    return {reason: reason ? reason.textContent.trim() : '', right: Math.max(verdict.right, reason ? reason.getBoundingClientRect().right : 0)};
  });
  return {scroll: page.scrollWidth, client: page.clientWidth, tables: tables, failed: failed};
}"""


def test_the_report_fits_1400_px_with_reasons_in_view_and_800_px_without_sideways_scroll(pytester, suite, fresh_cache):
    sync_api = pytest.importorskip("playwright.sync_api")
    rules = suite("[mmlu]\nfloor_a = 60.0\n")  # model A misses this floor on most subjects: many failed rows
    report = pytester.path / "report.html"
    result = pytester.runpytest_inprocess("--demo", f"--eval-cache-dir={fresh_cache}", "--limit=2", f"--expectations={rules}",
                                          f"--html={report}", "-p", "no:cacheprovider")
    outcomes = result.parseoutcomes()
    assert outcomes.get("failed", 0) >= 10 and report.is_file(), result.stdout.str()[-2000:]

    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            wide = browser.new_page(viewport={"width": 1400, "height": 900})
            wide.goto(report.as_uri())
            layout = wide.evaluate(LAYOUT)
            wide.screenshot(path=str(pytester.path / "report-1400.png"))  # kept with the test's files, to look at
            narrow = browser.new_page(viewport={"width": 800, "height": 900})
            narrow.goto(report.as_uri())
            small = narrow.evaluate(LAYOUT)
            narrow.screenshot(path=str(pytester.path / "report-800.png"))
        finally:
            browser.close()

    assert len(layout["tables"]) == 3
    for table in layout["tables"]:  # no column cut off: the table fits its container and the window
        assert table["width"] <= table["room"] + 1 and table["right"] <= layout["client"] + 1, table
    assert layout["scroll"] <= layout["client"], layout
    assert len(layout["failed"]) == outcomes["failed"]
    for row in layout["failed"]:  # the reason is on the row itself, without expanding it, and inside the window
        assert row["reason"].startswith("A scored ") and "below its floor 60.00" in row["reason"], row
        assert row["right"] <= layout["client"] + 1, row
    assert small["scroll"] <= small["client"], small  # 800 px: columns wrap or fold away, the page does not scroll
    assert all(row["reason"] and row["right"] <= small["client"] + 1 for row in small["failed"]), small["failed"]
