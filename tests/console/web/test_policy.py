"""The admin's settings in console.toml's [web] table, on a real console."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pyotp
import pytest

from tests.consoleproc import ConsoleProcess

from .conftest import WebClient, add_user


@pytest.fixture(scope="module")
def strict_console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleProcess]:
    """A console that requires a second factor of everyone."""
    console = ConsoleProcess(tmp_path_factory.mktemp("strict") / "data")
    config: Path = console.data_dir / "console.toml"
    config.write_text(config.read_text() + '\n[web]\nrequire_second_factor = true\nidle = "30m"\n')
    with console:
        yield console


def test_users_without_a_second_factor_enrol_right_after_the_password(
    strict_console: ConsoleProcess,
) -> None:
    name = add_user(strict_console)
    web = WebClient(strict_console)
    try:
        response = web.sign_in(name)
        assert response.headers["location"] == "/account/totp"
        # Nothing else until enrolled: the queue sends them to sign in.
        assert web.get("/tickets").status_code == 303
        page = web.get("/account/totp")
        assert "requires a second factor" in page.text
        secret = re.search(r'data-secret="([A-Z2-7]+)"', page.text)
        assert secret
        before = web.cookie
        done = web.post("/account/totp", {"code": pyotp.TOTP(secret[1]).now()})
        assert done.status_code == 200
        assert "recovery codes" in done.text
        assert web.cookie != before  # a new id once signed in
        assert web.get("/tickets").status_code == 200
    finally:
        web.close()


def test_a_broken_web_setting_stops_the_console_with_a_clear_error(tmp_path: Path) -> None:
    console = ConsoleProcess(tmp_path / "data")
    config = console.data_dir / "console.toml"
    config.write_text(config.read_text() + '\n[web]\nidle = "forever"\n')
    result = console.cli("serve", check=False)
    assert result.returncode != 0
    assert "web.idle" in result.stderr
    assert "Traceback" not in result.stderr
