"""Security keys and passkeys in a real browser: Chromium's virtual authenticator
(through CDP) registers a key and signs in with it, against a real console reached
as https://localhost (WebAuthn refuses IP addresses as relying parties)."""

from __future__ import annotations

import re

from playwright.async_api import Browser, expect

from tests.consoleproc import ConsoleProcess

from .conftest import PASSWORD, WebClient, add_user, audit_log, new_page, screenshot


async def test_register_a_key_and_sign_in_with_it(
    web_console: ConsoleProcess, browser: Browser
) -> None:
    name = add_user(web_console)
    base = f"https://localhost:{web_console.port}"
    context, page = await new_page(browser)
    cdp = await context.new_cdp_session(page)
    await cdp.send("WebAuthn.enable")
    await cdp.send(
        "WebAuthn.addVirtualAuthenticator",
        {
            "options": {
                "protocol": "ctap2",
                "transport": "usb",
                "hasResidentKey": True,
                "hasUserVerification": True,
                "isUserVerified": True,
            }
        },
    )

    async def sign_in_with_password() -> None:
        await page.goto(base + "/signin")
        await page.get_by_label("User name").fill(name)
        await page.get_by_label("Password").fill(PASSWORD)
        await page.get_by_role("button", name="Sign in").click()

    await sign_in_with_password()
    await expect(page).to_have_url(re.compile(r"/tickets$"))
    await page.goto(base + "/account/totp")
    await page.get_by_label("Name").fill("Test key")
    await page.get_by_role("button", name="Add a security key").click()
    codes = page.locator("[data-recovery-codes] code")
    await expect(codes).to_have_count(10)
    await screenshot(page, "10-security-key-added")
    await page.get_by_role("link", name="I have saved them").click()
    await expect(page).to_have_url(re.compile(r"/tickets$"))
    await page.get_by_role("button", name="Sign out").click()

    await sign_in_with_password()
    await expect(page).to_have_url(re.compile(r"/signin/code"))
    await screenshot(page, "11-second-factor-with-key")
    await page.get_by_role("button", name="Use a security key").click()
    await expect(page).to_have_url(re.compile(r"/tickets$"))
    await page.goto(base + "/account/totp")
    await expect(page.locator("ul.keys")).to_contain_text("Test key")
    await expect(page.locator("ul.keys")).to_contain_text("last used")
    log = audit_log(web_console)
    assert "webauthn.registered" in log
    assert '"webauthn"' in log
    await context.close()

    # Without the authenticator: a made-up answer is refused, and the failure audited.
    web = WebClient(web_console)
    try:
        assert web.sign_in(name).headers["location"].startswith("/signin/code")
        assert "Use a security key" in web.get("/signin/code").text
        headers = {"X-CSRF-Token": web.token, "Accept": "application/json"}
        options = web.http.post("/signin/key/options", headers=headers)
        assert options.status_code == 200
        assert options.json()["rpId"] == "127.0.0.1"
        assert options.json()["allowCredentials"]
        forged = {"credential": {"id": "AAAA", "rawId": "AAAA", "type": "public-key"}}
        refused = web.http.post("/signin/key", json=forged, headers=headers)
        assert refused.status_code == 401
        assert web.get("/tickets").status_code == 303
        assert '"reason": "webauthn"' in audit_log(web_console)
        garbage = web.http.post("/signin/key", content=b"[", headers=headers)
        assert garbage.status_code == 400
    finally:
        web.close()
