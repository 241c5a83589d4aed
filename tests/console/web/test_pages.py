"""The web console in a real browser (Debian's chromium, headless) against a real
console process over TLS: sign-in with TOTP, the live queue, roles, keyboard, CSP.

Every page opened is kept as a screenshot in ``tests/console/web/screenshots``.
"""

from __future__ import annotations

import re
import time

import pyotp
from playwright.async_api import Browser, ConsoleMessage, Page, expect

from tests.consoleproc import ConsoleProcess

from .conftest import PASSWORD, WebClient, add_user, new_page, screenshot


def _watch_csp(page: Page) -> list[str]:
    """Messages of the page's console that tell of a refused script or style."""
    refused: list[str] = []

    def seen(message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text or "Refused to" in message.text:
            refused.append(message.text)

    page.on("console", seen)
    return refused


async def _sign_in(page: Page, console: ConsoleProcess, name: str) -> None:
    await page.goto(console.base_url + "/")
    await expect(page).to_have_url(re.compile(r"/signin"))
    await page.get_by_label("User name").fill(name)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()


async def test_sign_in_with_password_and_totp(
    web_console: ConsoleProcess, browser: Browser
) -> None:
    name = add_user(web_console, "admin")
    context, page = await new_page(browser)
    refused = _watch_csp(page)
    await page.goto(web_console.base_url + "/")
    await screenshot(page, "01-signin")
    await _sign_in(page, web_console, name)
    await expect(page).to_have_url(re.compile(r"/tickets$"))
    await page.goto(web_console.base_url + "/account/totp")
    secret = await page.locator("code.secret").get_attribute("data-secret")
    assert secret
    await expect(page.locator(".qr svg")).to_be_visible()
    await screenshot(page, "02-totp-enrolment")
    totp = pyotp.TOTP(secret)
    await page.get_by_label("Code").fill(totp.now())
    await page.get_by_role("button", name="Turn on").click()
    await expect(page.get_by_role("heading", name="Your recovery codes")).to_be_visible()
    await screenshot(page, "03-recovery-codes")
    await page.get_by_role("button", name="Sign out").click()
    await expect(page).to_have_url(re.compile(r"/signin"))

    await _sign_in(page, web_console, name)
    await expect(page).to_have_url(re.compile(r"/signin/code"))
    await screenshot(page, "04-second-factor")
    code = totp.at(time.time() + 30)  # the enrolment spent this step's code
    await page.get_by_label("Code").fill(code)
    await page.get_by_role("button", name="Continue").click()
    await expect(page).to_have_url(re.compile(r"/tickets$"))
    await expect(page.get_by_role("heading", name="Queue")).to_be_visible()
    await expect(page.get_by_role("link", name="Admin", exact=True)).to_be_visible()
    await page.goto(web_console.base_url + "/account/sessions")
    await expect(page.locator("tbody tr")).to_have_count(1)
    await screenshot(page, "05-sessions")
    assert refused == []
    await context.close()


async def test_the_queue_updates_live(web_console: ConsoleProcess, browser: Browser) -> None:
    name = add_user(web_console)
    context, page = await new_page(browser)
    refused = _watch_csp(page)
    await _sign_in(page, web_console, name)
    await expect(page.get_by_role("heading", name="Queue")).to_be_visible()
    token = web_console.api_token("tickets:write")
    with web_console.api(token) as api:
        await _connected(page)
        created = api.post(
            "/api/v1/tickets", json={"title": "Outlook keeps crashing", "description": "since 9"}
        )
        number = created.json()["id"]
        row = page.locator(f"#ticket-{number}")
        await expect(row).to_contain_text("Outlook keeps crashing", timeout=15_000)
        await screenshot(page, "06-queue-live")
        changed = api.patch(f"/api/v1/tickets/{number}", json={"assignee": name})
        assert changed.status_code == 200, changed.text
        await expect(row).to_contain_text(name, timeout=15_000)
    assert refused == []
    await context.close()


async def _connected(page: Page) -> None:
    """Wait until the page's event stream is open (htmx's SSE extension)."""
    await page.wait_for_function(
        "() => { const e = document.querySelector('[sse-connect]');"
        " return e && e['htmx-internal-data'] && e['htmx-internal-data'].sseEventSource"
        " && e['htmx-internal-data'].sseEventSource.readyState === 1; }",
        timeout=15_000,
    )


async def test_technician_takes_a_ticket_and_read_only_sees_no_button(
    web_console: ConsoleProcess, browser: Browser
) -> None:
    token = web_console.api_token("tickets:write")
    with web_console.api(token) as api:
        number = api.post(
            "/api/v1/tickets", json={"title": "Screen flickers", "description": "d"}
        ).json()["id"]
    technician, reader = add_user(web_console), add_user(web_console, "readonly")

    context, page = await new_page(browser)
    await _sign_in(page, web_console, technician)
    row = page.locator(f"#ticket-{number}")
    await row.get_by_role("button", name="Take").click()
    await expect(page.locator(".flash")).to_contain_text(f"#{number} is yours")
    await expect(row).to_contain_text(technician)
    await expect(page.get_by_role("link", name="Admin", exact=True)).to_have_count(0)
    await context.close()

    context, page = await new_page(browser, dark=True)
    await _sign_in(page, web_console, reader)
    await expect(page.locator(f"#ticket-{number}")).to_be_visible()
    await expect(page.get_by_role("button", name="Take")).to_have_count(0)
    await expect(page.locator("form[action$='/take']")).to_have_count(0)
    await screenshot(page, "07-queue-readonly-dark")
    # The same request, forged from the page with its own CSRF token: refused.
    status = await page.evaluate(
        """async (path) => {
            const token = document.querySelector('meta[name="csrf-token"]').content;
            const response = await fetch(path, {
                method: "POST", headers: {"X-CSRF-Token": token}, redirect: "manual"});
            return response.status;
        }""",
        f"/tickets/{number}/take",
    )
    assert status == 403
    await context.close()


async def test_htmx_requests_carry_the_csrf_token(
    web_console: ConsoleProcess, browser: Browser
) -> None:
    token = web_console.api_token("tickets:write")
    with web_console.api(token) as api:
        number = api.post("/api/v1/tickets", json={"title": "Wi-Fi", "description": "d"}).json()[
            "id"
        ]
    name = add_user(web_console)
    context, page = await new_page(browser)
    await _sign_in(page, web_console, name)
    await expect(page.get_by_role("heading", name="Queue")).to_be_visible()
    status = await page.evaluate(
        """(path) => new Promise((resolve) => {
            document.body.addEventListener("htmx:afterRequest",
                (e) => resolve(e.detail.xhr.status), {once: true});
            htmx.ajax("POST", path, {target: "#queue-rows", swap: "none"});
        })""",
        f"/tickets/{number}/take",
    )
    assert status == 200  # the 303 to the queue, followed
    await expect(page.locator(f"#ticket-{number}")).to_contain_text(name, timeout=15_000)
    await context.close()


async def test_keyboard_shortcuts_and_error_pages(
    web_console: ConsoleProcess, browser: Browser
) -> None:
    name = add_user(web_console)
    context, page = await new_page(browser)
    refused = _watch_csp(page)
    await _sign_in(page, web_console, name)
    await expect(page.get_by_role("heading", name="Queue")).to_be_visible()
    await page.keyboard.press("?")
    dialog = page.locator("dialog#shortcuts")
    await expect(dialog).to_be_visible()
    await expect(dialog).to_contain_text("go to Queue")
    await screenshot(page, "08-shortcuts")
    await page.keyboard.press("Escape")
    await expect(dialog).to_be_hidden()
    await page.goto(web_console.base_url + "/no-such-page")
    await expect(page.get_by_role("heading", name=re.compile("404"))).to_be_visible()
    await screenshot(page, "09-not-found")
    await page.goto(web_console.base_url + "/account/sessions")
    await page.keyboard.press("g")
    await page.keyboard.press("q")
    await expect(page).to_have_url(re.compile(r"/tickets$"))
    assert refused == []
    await context.close()


def test_signed_out_browser_is_sent_to_sign_in_and_back(web_console: ConsoleProcess) -> None:
    name = add_user(web_console)
    web = WebClient(web_console)
    try:
        first = web.get("/account/sessions")
        assert first.status_code == 303
        assert first.headers["location"] == "/signin?next=%2Faccount%2Fsessions"
        web.get(first.headers["location"])
        signed = web.post(
            "/signin", {"username": name, "password": PASSWORD, "next": "/account/sessions"}
        )
        assert signed.headers["location"] == "/account/sessions"
    finally:
        web.close()
