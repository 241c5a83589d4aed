"""What machines fetch to install the agent: the install scripts and the agent's wheel.

``GET /install/agent.sh`` and ``/install/agent.ps1`` are the scripts that
``deskside-console token create --install-line`` points at;
``GET /install/deskside-<version>-py3-none-any.whl`` is this console's own code,
packed once per process on first request and kept in ``<data dir>/install/``
(``deskside.installer.package``). No authentication: the wheel and scripts are
public code; what makes them trustworthy is the pinned certificate they are
fetched over, and enrolling still needs a token.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from litestar import Request, Response, get
from litestar.exceptions import NotFoundException

from deskside.installer.package import SCRIPTS, build_wheel, render_script, wheel_name

__all__ = ["install_file"]

# Litestar adds "; charset=utf-8" to text types itself.
_MEDIA = {"agent.sh": "text/x-shellscript", "agent.ps1": "text/plain"}


class _WheelCache:
    """The wheel, built once per process on first request."""

    def __init__(self, directory: Path) -> None:
        # Where the built wheel is written.
        self.directory = directory
        # The built wheel, once there is one.
        self.path: Path | None = None
        self._lock = asyncio.Lock()

    async def get(self) -> Path:
        async with self._lock:
            if self.path is None or not self.path.is_file():
                self.path = await asyncio.to_thread(build_wheel, self.directory)
            return self.path


def wheel_cache(data_dir: Path) -> _WheelCache:
    """The cache to put in ``app.state.wheels``."""
    return _WheelCache(data_dir / "install")


@get("/install/{name:str}", sync_to_thread=False, include_in_schema=False)
async def install_file(request: Request, name: str) -> Response[bytes]:  # type: ignore[type-arg]
    """An install script, or the agent's wheel."""
    if name in SCRIPTS:
        text = await asyncio.to_thread(render_script, name)
        return Response(text.encode("utf-8"), media_type=_MEDIA[name])
    if name != wheel_name():
        raise NotFoundException(f"no {name} here; this console serves {wheel_name()}")
    cache: _WheelCache = request.app.state.wheels
    path = await cache.get()
    data = await asyncio.to_thread(path.read_bytes)
    return Response(
        data,
        media_type="application/octet-stream",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
