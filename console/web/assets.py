"""The pages' static files: ours (``static/``, in git) and the browser libraries from
the npm registry (``vendor/``: copied from ``node_modules`` by ``scripts/lib.sh``'s
``ensure_browser_libs``, packed into the wheel, never committed), all at ``/static``.

``VENDOR_FILES`` names what the pages load from ``vendor/``; a library added to
``package.json`` is copied by ``ensure_browser_libs`` and named here.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Final

from litestar import Router
from litestar.static_files import create_static_files_router

__all__ = ["STATIC_DIR", "VENDOR_DIR", "VENDOR_FILES", "missing_vendor_files", "static_files"]

logger = logging.getLogger(__name__)

STATIC_DIR: Final = Path(__file__).parent / "static"
VENDOR_DIR: Final = Path(__file__).parent / "vendor"
# What the base layout loads from vendor/ (package.json pins their versions).
VENDOR_FILES: Final = ("htmx.min.js", "sse.min.js")


def missing_vendor_files() -> list[str]:
    """The browser libraries the pages need that are not installed."""
    return [name for name in VENDOR_FILES if not (VENDOR_DIR / name).is_file()]


def static_files() -> Router:
    """``/static``: our CSS and scripts, then the vendored libraries."""
    missing = missing_vendor_files()
    if missing:
        logger.error(
            "the web pages' browser libraries are missing (%s): run scripts/run.sh or "
            "scripts/test.sh, which install them with npm",
            ", ".join(missing),
        )
    return create_static_files_router(
        path="/static",
        directories=[STATIC_DIR, VENDOR_DIR],
        name="static",
        include_in_schema=False,
        cache_control=None,
    )
