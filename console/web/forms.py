"""Reading the pages' forms: every field bounded, a clear 400 otherwise."""

from __future__ import annotations

from typing import Any

from litestar import Request

from deskside.console.errors import InvalidRequest

__all__ = ["form_field", "read_form", "safe_next"]


async def read_form(request: Request[Any, Any, Any]) -> dict[str, str]:
    """The request's form as text fields (files and repeated names refused)."""
    if not request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        raise InvalidRequest("send the page's form")
    form = await request.form()
    fields: dict[str, str] = {}
    for name, value in form.multi_items():
        if not isinstance(value, str) or name in fields:
            raise InvalidRequest(f"unexpected form field {name[:40]!r}")
        fields[name] = value
    return fields


def form_field(form: dict[str, str], name: str, *, max_length: int, required: bool = True) -> str:
    """A field's text; ``InvalidRequest`` if missing (when required) or too long."""
    value = form.get(name, "")
    if required and not value:
        raise InvalidRequest(f"{name.replace('_', ' ')} is missing")
    if len(value) > max_length or "\x00" in value:
        raise InvalidRequest(f"{name.replace('_', ' ')} is too long or not text")
    return value


def safe_next(value: str | None, default: str = "/tickets") -> str:
    """Where to go after sign-in: one of the console's own paths, nothing else."""
    if (
        not value
        or not value.startswith("/")
        or value.startswith(("//", "/\\"))
        or len(value) > 512
        or any(c in value for c in "\r\n\\")
    ):
        return default
    return value
