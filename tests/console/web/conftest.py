"""Fixtures of the web console's tests: a real console process over TLS, its users,
an HTTP client that signs in as a browser does, and Debian's chromium."""

from __future__ import annotations

import itertools
import re
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pyotp
import pytest
from playwright.async_api import Browser, BrowserContext, Page, async_playwright

from tests.consoleproc import ConsoleProcess

# scripts/test.sh installs chromium (need_debs); Playwright never downloads a browser.
CHROMIUM = "/usr/bin/chromium"
assert shutil.which(CHROMIUM), "run scripts/test.sh: it installs chromium"
# Screenshots of every page the browser tests open (not in git; see the README).
SCREENSHOTS = Path(__file__).parent / "screenshots"
PASSWORD = "correct horse battery staple"
_names = itertools.count(1)


@pytest.fixture(scope="module")
def web_console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleProcess]:
    """A console serving the web pages (one per test module)."""
    console = ConsoleProcess(tmp_path_factory.mktemp("web") / "data")
    with console:
        yield console


def add_user(console: ConsoleProcess, role: str = "technician") -> str:
    """A new account of ``role`` with the password ``PASSWORD``; its name."""
    name = f"{role}{next(_names)}"
    console.cli("user", "add", name, "--role", role, "--password-stdin", stdin=PASSWORD + "\n")
    return name


def audit_log(console: ConsoleProcess, limit: int = 200) -> str:
    """The audit log as ``deskside-console audit`` prints it."""
    return console.cli("audit", "--limit", str(limit)).stdout


class WebClient:
    """A browser's requests, made with httpx: cookies kept, the page's CSRF token read."""

    def __init__(self, console: ConsoleProcess) -> None:
        self.console = console
        self.http = httpx.Client(
            base_url=console.base_url,
            verify=console.ssl_context(),
            headers={"Accept": "text/html", "Origin": console.base_url},
            timeout=30.0,
        )
        # The CSRF token of the last page that had one.
        self.token = ""

    def get(self, path: str) -> httpx.Response:
        response = self.http.get(path)
        found = re.search(r'name="_csrf" value="([^"]*)"', response.text)
        if found:
            self.token = found[1]
        return response

    def post(
        self, path: str, data: dict[str, str] | None = None, *, token: str | None = None
    ) -> httpx.Response:
        """POST a form with the page's CSRF token (or ``token``)."""
        fields = {"_csrf": self.token if token is None else token, **(data or {})}
        response = self.http.post(path, data=fields)
        found = re.search(r'name="_csrf" value="([^"]*)"', response.text)
        if found:
            self.token = found[1]
        return response

    def sign_in(self, name: str, password: str = PASSWORD) -> httpx.Response:
        """Sign in with the password (and open the page it leads to, for its token)."""
        self.get("/signin")
        response = self.post("/signin", {"username": name, "password": password})
        if response.status_code == 303:
            self.get(response.headers["location"])
        return response

    @property
    def cookie(self) -> str | None:
        return self.http.cookies.get("__Host-deskside")

    def close(self) -> None:
        self.http.close()


@pytest.fixture
def client(web_console: ConsoleProcess) -> Iterator[WebClient]:
    web = WebClient(web_console)
    try:
        yield web
    finally:
        web.close()


def enrol_totp(web: WebClient) -> pyotp.TOTP:
    """Enrol TOTP for the signed-in user of ``web`` (confirmed with the next step's code,
    so the current one stays unused); the authenticator."""
    page = web.get("/account/totp")
    secret = re.search(r'data-secret="([A-Z2-7]+)"', page.text)
    assert secret, page.text
    totp = pyotp.TOTP(secret[1])
    confirmed = web.post("/account/totp", {"code": totp.at(_now() - 30)})
    assert confirmed.status_code == 200, confirmed.text
    assert "recovery codes" in confirmed.text
    return totp


def _now() -> float:
    import time

    return time.time()


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        the_browser = await playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=["--no-sandbox", "--disable-background-networking", "--disable-component-update"],
        )
        try:
            yield the_browser
        finally:
            await the_browser.close()


async def new_page(browser: Browser, *, dark: bool = False) -> tuple[BrowserContext, Page]:
    """A fresh browser profile at 1280x800 (the console's certificate is self-signed)."""
    context = await browser.new_context(
        viewport={"width": 1280, "height": 800},
        ignore_https_errors=True,
        color_scheme="dark" if dark else "light",
    )
    return context, await context.new_page()


async def screenshot(page: Page, name: str) -> None:
    """Keep what the page looks like, for reviewers (tests/console/web/screenshots)."""
    SCREENSHOTS.mkdir(exist_ok=True)
    await page.screenshot(path=SCREENSHOTS / f"{name}.png", full_page=True)
