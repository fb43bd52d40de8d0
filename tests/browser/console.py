"""The auditor's console in a real browser (run by tests/console.rs).

Debian's Chromium driven by playwright; no browser is downloaded. The
auditor signs in, opens the rolled-back deployment, reads the timeline
(pilot, then the rollback), opens the rollback decision and its control
reference, filters the decision log by `trigger.rollback`, signs out and
is refused. Every console message of level error, every failed request
and every request to another origin fails the test.

Environment: CONSOLE_URL (http://127.0.0.1:PORT), CONSOLE_TOKEN (an
auditor's), CONSOLE_DEPLOYMENT (the rolled-back deployment's id), and
CONSOLE_SCREENSHOTS: a directory to save overview.png, system.png,
deployment.png and decision.png to (empty: no screenshots).
"""

import os
import re
import sys
from urllib.parse import urlsplit

from playwright.sync_api import expect, sync_playwright

BASE = os.environ["CONSOLE_URL"].rstrip("/")
TOKEN = os.environ["CONSOLE_TOKEN"]
DEPLOYMENT = os.environ["CONSOLE_DEPLOYMENT"]
SHOTS = os.environ.get("CONSOLE_SCREENSHOTS", "")
ORIGIN = urlsplit(BASE).netloc

ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

problems = []


def main():
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        page = context.new_page()
        page.on(
            "console",
            lambda m: problems.append(f"console {m.type}: {m.text}")
            if m.type == "error"
            else None,
        )
        page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
        def failed(request):
            # Chromium fetches the icon in the background and cancels that
            # fetch (net::ERR_ABORTED) when the page navigates first: a race
            # in the browser, not an answer from the server. Any other
            # failure, and any failure of another request, is a problem.
            why = request.failure or ""
            if request.url.endswith("/ui/favicon.svg") and "ERR_ABORTED" in why:
                return
            problems.append(f"request failed: {request.url} ({why})")

        page.on("requestfailed", failed)

        def watch(request):
            if urlsplit(request.url).netloc != ORIGIN:
                problems.append(f"request left the origin: {request.url}")

        page.on("request", watch)

        # Not signed in: sent to the sign-in form.
        page.goto(f"{BASE}/ui")
        assert page.url == f"{BASE}/ui/sign-in", page.url
        expect(page.get_by_role("heading", name="Sign in")).to_be_visible()

        # Sign in with the keyboard: type the token, press Enter.
        page.get_by_label("Access token").fill(TOKEN)
        page.get_by_label("Access token").press("Enter")
        expect(page.get_by_role("heading", name="Overview")).to_be_visible()
        expect(page.get_by_text("Signed in as")).to_contain_text("audit")
        expect(page.get_by_role("link", name="credit-scoring", exact=True)).to_be_visible()
        if SHOTS:
            page.screenshot(path=os.path.join(SHOTS, "overview.png"), full_page=True)

        # The system, with its releases and their evidence.
        page.get_by_role("link", name="credit-scoring", exact=True).click()
        expect(page.get_by_role("heading", name="Releases")).to_be_visible()
        expect(page.get_by_role("heading", name="What users are told")).to_be_visible()
        if SHOTS:
            page.screenshot(path=os.path.join(SHOTS, "system.png"), full_page=True)

        # The rolled-back deployment.
        page.goto(f"{BASE}/ui/deployments/{DEPLOYMENT}")
        expect(page.get_by_role("heading", name="Timeline")).to_be_visible()
        stages = page.locator("svg text.stage").all_text_contents()
        assert stages and stages[0] == "pilot 5%", stages
        assert stages[-1] == "rolled back at pilot", stages
        expect(page.get_by_role("heading", name="error_rate")).to_be_visible()
        if SHOTS:
            page.screenshot(path=os.path.join(SHOTS, "deployment.png"), full_page=True)

        # The rollback decision: open its findings (keyboard: focus, Enter).
        row = page.get_by_role("row").filter(has=page.locator("span.badge", has_text="rollback"))
        expect(row).to_have_count(1)
        summary = row.locator("summary")
        summary.focus()
        page.keyboard.press("Enter")
        finding = row.locator("ul.findings li").filter(has_text="trigger.rollback")
        expect(finding).to_be_visible()
        expect(finding.locator("span.control").first).to_contain_text("ISO/IEC 42001:2023 A.6.2")
        row.get_by_role("link", name="Decision").click()
        expect(page.get_by_role("heading", level=1)).to_contain_text("rollback")
        expect(page.get_by_role("row").filter(has_text="trigger.rollback")).to_contain_text(
            "ISO/IEC 42001:2023"
        )
        expect(page.get_by_text("Request hash")).to_be_visible()
        if SHOTS:
            page.screenshot(path=os.path.join(SHOTS, "decision.png"), full_page=True)

        # The decision log, filtered by the finding code.
        page.get_by_role("navigation", name="Console").get_by_role(
            "link", name="Decision log"
        ).click()
        page.get_by_label("Finding code").fill("trigger.rollback")
        page.get_by_role("button", name="Filter").click()
        expect(page).to_have_url(re.compile(r"code=trigger\.rollback"))
        rows = page.locator("main table tbody tr")
        expect(rows).to_have_count(1)
        expect(rows.first).to_contain_text("rollback")
        expect(rows.first).to_contain_text("trigger.rollback")

        # Sign out, then be refused.
        page.get_by_role("button", name="Sign out").click()
        expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
        response = page.goto(f"{BASE}/ui/deployments/{DEPLOYMENT}")
        refused = response.request.redirected_from
        assert refused is not None and refused.url.endswith(DEPLOYMENT), refused
        assert refused.response().status == 303, refused.response().status
        assert page.url == f"{BASE}/ui/sign-in", page.url
        expect(page.get_by_text("Sign in to see the records")).to_be_visible()
        assert page.locator("svg").count() == 0

        browser.close()

    if problems:
        print("\n".join(problems))
        sys.exit(1)
    print("console browser test passed")


if __name__ == "__main__":
    main()
