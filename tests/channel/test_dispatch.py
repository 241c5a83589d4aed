"""The handler table: exact-type lookup, one owner per message type."""

from __future__ import annotations

import pytest

from deskside.channel.dispatch import HandlerTable
from deskside.protocol import messages as m


async def test_dispatch_calls_the_handler_of_the_exact_type() -> None:
    table: HandlerTable[list[object]] = HandlerTable()
    seen: list[tuple[str, object]] = []

    async def on_ack(context: list[object], message: m.Ack) -> None:
        seen.append(("ack", message))
        context.append(message)

    async def on_error(context: list[object], message: m.Error) -> None:
        seen.append(("error", message))

    table.register(m.Ack, on_ack)
    table.register([m.Error], on_error)
    context: list[object] = []
    ack = m.Ack(request_id="r1")
    assert await table.dispatch(context, ack)
    error = m.Error(code=m.ErrorCode.BUSY, message="busy")
    assert await table.dispatch(context, error)
    assert seen == [("ack", ack), ("error", error)]
    assert context == [ack]
    assert table.types() == {m.Ack, m.Error}
    assert table.handles(m.Ack)
    assert not table.handles(m.Heartbeat)


async def test_a_message_without_a_handler_is_reported_not_raised() -> None:
    table: HandlerTable[None] = HandlerTable()
    assert await table.dispatch(None, m.Heartbeat(sent_at=0.0)) is False


def test_a_type_has_one_handler() -> None:
    table: HandlerTable[None] = HandlerTable()

    async def handler(context: None, message: object) -> None:
        return None

    table.register([m.Ack, m.Error], handler)
    with pytest.raises(ValueError, match="Error has a handler already"):
        table.register(m.Error, handler)


async def test_handler_errors_reach_the_caller() -> None:
    table: HandlerTable[None] = HandlerTable()

    async def broken(context: None, message: m.Ack) -> None:
        raise RuntimeError("boom")

    table.register(m.Ack, broken)
    with pytest.raises(RuntimeError, match="boom"):
        await table.dispatch(None, m.Ack(request_id="x"))
