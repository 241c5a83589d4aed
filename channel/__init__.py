"""The secure channel on asyncio and WebSockets, shared by agent and console.

``deskside.protocol`` holds the sans-I/O core; this package moves its frames over
real connections. Agent and console both import it, never each other.
"""

from __future__ import annotations

from .channel import Authorizer, Channel, FrameTransport
from .websocket import WebSocketTransport, accept, connect, serve

__all__ = [
    "Authorizer",
    "Channel",
    "FrameTransport",
    "WebSocketTransport",
    "accept",
    "connect",
    "serve",
]
