"""A table from message type to handler: how both ends act on what arrives.

Each capability registers the handlers of the messages it owns; the receive
loop (the console's gateway, the agent's daemon) looks the message's type up and
awaits its handler. Adding a message is writing its handler and registering it:
no ``isinstance`` ladder to edit on either side.

Lookup is by exact type (wire messages are final ``msgspec.Struct`` classes), so
it costs one dictionary access. A type registered twice is a programming error
(``ValueError``): two capabilities would both believe they own it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Generic, TypeVar

__all__ = ["Handler", "HandlerTable"]

C = TypeVar("C")
M = TypeVar("M")

# A handler: the receiving end's context (a device's session, the agent's
# channel) and the message.
Handler = Callable[[C, Any], Awaitable[None]]


class HandlerTable(Generic[C]):
    """Message type -> the handler that acts on it, for one receiving end."""

    def __init__(self) -> None:
        # The handlers, by the exact type of message they take.
        self._handlers: dict[type[Any], Callable[[C, Any], Awaitable[None]]] = {}

    def register(
        self, types: type[Any] | Iterable[type[Any]], handler: Callable[[C, M], Awaitable[None]]
    ) -> None:
        """Send messages of ``types`` to ``handler``; ``ValueError`` if one has a handler."""
        for kind in (types,) if isinstance(types, type) else tuple(types):
            if kind in self._handlers:
                raise ValueError(f"{kind.__name__} has a handler already")
            self._handlers[kind] = handler

    def handles(self, kind: type[Any]) -> bool:
        """Whether messages of this type have a handler."""
        return kind in self._handlers

    def types(self) -> frozenset[type[Any]]:
        """Every message type with a handler."""
        return frozenset(self._handlers)

    async def dispatch(self, context: C, message: object) -> bool:
        """Await the handler of ``message``; False if its type has none."""
        handler = self._handlers.get(type(message))
        if handler is None:
            return False
        await handler(context, message)
        return True
