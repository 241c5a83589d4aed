"""Signing in to a real console over TLS, as a browser's requests: second factors,
rate limits, sign-out, CSRF and roles."""

from __future__ import annotations

import re
import time

import pyotp

from tests.consoleproc import ConsoleProcess

from .conftest import PASSWORD, WebClient, add_user, audit_log, enrol_totp


def test_password_sign_in_sets_a_host_cookie_and_rotates_it(
    web_console: ConsoleProcess, client: WebClient
) -> None:
    name = add_user(web_console)
    client.get("/signin")
    client.http.cookies.set("__Host-deskside", "planted-before-sign-in", domain="127.0.0.1")
    response = client.post("/signin", {"username": name, "password": PASSWORD}, token="")
    assert response.status_code == 303
    assert response.headers["location"] == "/tickets"
    cookie = response.headers["set-cookie"]
    assert cookie.startswith("__Host-deskside=")
    for attribute in ("Secure", "HttpOnly", "SameSite=Lax", "Path=/"):
        assert attribute.lower() in cookie.lower()
    assert "domain=" not in cookie.lower()
    assert client.cookie not in (None, "planted-before-sign-in")
    assert client.get("/tickets").status_code == 200


def test_wrong_password_is_refused_and_audited(
    web_console: ConsoleProcess, client: WebClient
) -> None:
    name = add_user(web_console)
    response = client.sign_in(name, "not the password at all")
    assert response.status_code == 401
    assert "Wrong user name or password" in response.text
    assert client.get("/tickets").status_code in (303, 307)
    log = audit_log(web_console)
    assert f'"user": "{name}"' in log
    assert "signin.failed" in log
    assert "not the password" not in log


def test_totp_code_is_accepted_once_even_on_another_session(web_console: ConsoleProcess) -> None:
    name = add_user(web_console)
    first, second = WebClient(web_console), WebClient(web_console)
    try:
        first.sign_in(name)
        totp = enrol_totp(first)
        first.post("/signout")
        assert first.sign_in(name).headers["location"].startswith("/signin/code")
        assert second.sign_in(name).headers["location"].startswith("/signin/code")
        first.get("/signin/code")
        second.get("/signin/code")
        code = totp.now()
        accepted = first.post("/signin/code", {"code": code, "next": "/tickets"})
        assert accepted.status_code == 303, accepted.text
        assert first.get("/tickets").status_code == 200
        again = second.post("/signin/code", {"code": code, "next": "/tickets"})
        assert again.status_code == 401
        assert "used already" in again.text
        assert second.get("/tickets").status_code == 303
        assert "totp" in audit_log(web_console)
    finally:
        first.close()
        second.close()


def test_recovery_code_works_once(web_console: ConsoleProcess, client: WebClient) -> None:
    name = add_user(web_console)
    client.sign_in(name)
    page = client.get("/account/totp")
    secret = re.search(r'data-secret="([A-Z2-7]+)"', page.text)
    assert secret
    shown = client.post("/account/totp", {"code": pyotp.TOTP(secret[1]).now()})
    codes = re.findall(r"<code>((?:[a-z2-9]{4}-){3}[a-z2-9]{4})</code>", shown.text)
    assert len(codes) == 10
    assert client.get("/account/totp").text.count("<code>") == 0  # shown once
    client.post("/signout")
    client.sign_in(name)
    client.get("/signin/code")
    used = client.post("/signin/code", {"code": codes[3].upper(), "next": "/tickets"})
    assert used.status_code == 303
    assert "9 unused recovery codes" in client.get("/account/totp").text
    client.post("/signout")
    client.sign_in(name)
    client.get("/signin/code")
    assert client.post("/signin/code", {"code": codes[3]}).status_code == 401
    assert "recovery_code.used" in audit_log(web_console)


def test_failed_sign_ins_are_rate_limited_per_account(
    web_console: ConsoleProcess, client: WebClient
) -> None:
    name = add_user(web_console)
    for _ in range(10):
        assert client.sign_in(name, "wrong password!!").status_code == 401
    limited = client.sign_in(name, PASSWORD)  # even the right one, until the window moves
    assert limited.status_code == 429
    assert 0 < int(limited.headers["retry-after"]) <= 15 * 60
    assert "Too many failed attempts" in limited.text
    assert '"reason": "rate_limited"' in audit_log(web_console)
    other = add_user(web_console)  # another account from the same address still may
    assert client.sign_in(other).status_code == 303


def test_cookie_copied_before_sign_out_is_refused_after_it(
    web_console: ConsoleProcess, client: WebClient
) -> None:
    name = add_user(web_console)
    client.sign_in(name)
    stolen = client.cookie
    assert stolen
    assert client.post("/signout").status_code == 303
    thief = WebClient(web_console)
    try:
        thief.http.cookies.set("__Host-deskside", stolen, domain="127.0.0.1")
        response = thief.get("/tickets")
        assert response.status_code == 303
        assert response.headers["location"].startswith("/signin")
    finally:
        thief.close()


def test_sessions_are_listed_and_revoked(web_console: ConsoleProcess) -> None:
    name = add_user(web_console)
    laptop, phone = WebClient(web_console), WebClient(web_console)
    try:
        laptop.http.headers["User-Agent"] = "Laptop browser 1.0"
        phone.http.headers["User-Agent"] = "Phone browser 2.0"
        laptop.sign_in(name)
        phone.sign_in(name)
        page = laptop.get("/account/sessions")
        assert "Laptop browser 1.0" in page.text
        assert "Phone browser 2.0" in page.text
        assert "127.0.0.1" in page.text
        ids = re.findall(r'id="session-(\d+)"', page.text)
        assert len(ids) == 2
        phone_id = next(
            i for i in ids if "Phone" in page.text.split(f'id="session-{i}"')[1].split("</tr>")[0]
        )
        revoked = laptop.post(f"/account/sessions/{phone_id}/revoke")
        assert revoked.status_code == 303
        assert phone.get("/tickets").status_code == 303
        assert laptop.get("/tickets").status_code == 200
        other = add_user(web_console)  # nobody revokes another user's session
        intruder = WebClient(web_console)
        try:
            intruder.sign_in(other)
            intruder.get("/tickets")
            mine = re.findall(r'id="session-(\d+)"', laptop.get("/account/sessions").text)
            assert intruder.post(f"/account/sessions/{mine[0]}/revoke").status_code == 404
            assert laptop.get("/tickets").status_code == 200
        finally:
            intruder.close()
    finally:
        laptop.close()
        phone.close()


def test_csrf_forgeries_are_refused(web_console: ConsoleProcess, client: WebClient) -> None:
    token = web_console.api_token("tickets:write")
    with web_console.api(token) as api:
        ticket = api.post("/api/v1/tickets", json={"title": "Printer", "description": "jams"})
        number = ticket.json()["id"]
    name = add_user(web_console)
    client.sign_in(name)
    client.get("/tickets")
    path = f"/tickets/{number}/take"
    assert client.post(path, token="").status_code == 403
    assert client.post(path, token="0" * 64).status_code == 403
    foreign = client.http.post(
        path, data={"_csrf": client.token}, headers={"Origin": "https://evil.example"}
    )
    assert foreign.status_code == 403
    cross = client.http.post(
        path, data={"_csrf": client.token}, headers={"Sec-Fetch-Site": "cross-site"}
    )
    assert cross.status_code == 403
    null = client.http.post(path, data={"_csrf": client.token}, headers={"Origin": "null"})
    assert null.status_code == 403  # a sandboxed frame's, or a page's with no say
    header = client.http.post(path, headers={"X-CSRF-Token": "wrong"})
    assert header.status_code == 403
    assert "403" in header.text  # a page in the layout, for a browser
    assert client.post(path).status_code == 303
    assert f"#{number}" in client.get("/tickets").text


def test_a_read_only_users_forged_post_is_refused_and_audited(
    web_console: ConsoleProcess, client: WebClient
) -> None:
    token = web_console.api_token("tickets:write")
    with web_console.api(token) as api:
        number = api.post("/api/v1/tickets", json={"title": "VPN", "description": "x"}).json()["id"]
    name = add_user(web_console, "readonly")
    client.sign_in(name)
    page = client.get("/tickets")
    assert page.status_code == 200
    assert "VPN" in page.text
    assert "/take" not in page.text
    forged = client.post(f"/tickets/{number}/take")
    assert forged.status_code == 403
    log = audit_log(web_console)
    assert "web.refused" in log
    assert f"user:{name}" in log


def test_a_read_only_users_api_token_only_reads(web_console: ConsoleProcess) -> None:
    name = add_user(web_console, "readonly")
    args = ["apitoken", "create", f"ro-{time.monotonic_ns()}", "--user", name]
    token = web_console.cli(*args, "--scope", "tickets:read", "--scope", "tickets:write").stdout
    with web_console.api(token.strip()) as api:
        assert api.get("/api/v1/tickets").status_code == 200
        refused = api.post("/api/v1/tickets", json={"title": "t", "description": "d"})
        assert refused.status_code == 403
        assert "readonly" in refused.json()["detail"]


def test_errors_are_pages_for_browsers_and_json_for_the_api(client: WebClient) -> None:
    page = client.get("/no-such-page")
    assert page.status_code == 404
    assert page.headers["content-type"].startswith("text/html")
    assert "404" in page.text
    assert "<header" in page.text
    api = client.http.get("/api/v1/no-such", headers={"Accept": "application/json"})
    assert api.status_code == 404
    assert api.json()["status_code"] == 404
    api_from_browser = client.http.get("/api/v1/tickets")
    assert api_from_browser.status_code == 401
    assert api_from_browser.json()["status_code"] == 401


def test_next_goes_only_to_the_consoles_own_pages(
    web_console: ConsoleProcess, client: WebClient
) -> None:
    name = add_user(web_console)
    client.get("/signin?next=//evil.example/x")
    response = client.post(
        "/signin", {"username": name, "password": PASSWORD, "next": "https://evil.example/"}
    )
    assert response.headers["location"] == "/tickets"


def test_malformed_forms_are_a_400(client: WebClient) -> None:
    client.get("/signin")
    assert client.post("/signin", {"username": "x" * 65, "password": "p"}).status_code == 400
    assert client.post("/signin", {"username": "", "password": "p"}).status_code == 400
    raw = client.http.post("/signin", content=b"{}", headers={"Content-Type": "application/json"})
    assert raw.status_code == 400
