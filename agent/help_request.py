"""``deskside-agent help``: ask the help desk for help from this machine.

The request is written to the spool first, then sent over a short-lived channel
of its own. If the console answers with an ``Ack`` the spool file is deleted and
the user learns the ticket number; if it cannot be reached the request stays in
the spool and the daemon delivers it once the console is back (see
``deskside.agent.spool`` for why that files exactly one ticket).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import getpass
import logging
import time
import uuid
from dataclasses import dataclass

from deskside.channel import Channel
from deskside.protocol.connection import CloseCode
from deskside.protocol.errors import DesksideError
from deskside.protocol.messages import (
    Ack,
    Error,
    ErrorCode,
    HelpRequest,
    Impact,
    RequestId,
    Snapshot,
    Urgency,
)

from .config import AgentConfig, AgentPaths, Identity
from .spool import Spool
from .state import record_ticket
from .system import make_hello
from .uplink import describe_failure, open_configured_uplink

__all__ = [
    "MAX_DESCRIPTION",
    "MAX_REQUESTER",
    "PERMANENT_ERRORS",
    "Delivery",
    "Outcome",
    "ask_for_help",
    "build_help_request",
    "default_requester",
    "deliver",
]

logger = logging.getLogger(__name__)

# Limits of the HelpRequest fields (deskside.protocol.messages: Text and Name).
MAX_DESCRIPTION = 65536
MAX_REQUESTER = 256

# Errors after which sending the same request again cannot succeed.
PERMANENT_ERRORS = frozenset({ErrorCode.BAD_REQUEST, ErrorCode.REFUSED, ErrorCode.UNSUPPORTED})


class Outcome(enum.Enum):
    """What became of a help request sent directly."""

    FILED = "filed"  # the console acknowledged it; the spool file is gone
    SAVED = "saved"  # not delivered now; the daemon sends it later
    REJECTED = "rejected"  # the console refused it for good; set aside in spool/bad


@dataclass(frozen=True)
class Delivery:
    """The result of ``deliver``."""

    outcome: Outcome
    """Filed, saved for later, or rejected."""

    request_id: RequestId
    """The request's id."""

    ticket_id: int | None = None
    """The ticket the console filed, when it says."""

    detail: str = ""
    """Why it was not filed, in one line."""


def default_requester() -> str:
    """The login name of the user running the agent, or "" if unknown."""
    try:
        return getpass.getuser()[:MAX_REQUESTER]
    except (OSError, KeyError, ImportError):
        return ""


def build_help_request(
    description: str,
    *,
    impact: Impact = Impact.LOW,
    urgency: Urgency = Urgency.MEDIUM,
    requester: str = "",
    snapshot: Snapshot | None = None,
) -> HelpRequest:
    """A new ``HelpRequest`` with a fresh request id (uuid4 hex)."""
    return HelpRequest(
        request_id=RequestId(uuid.uuid4().hex),
        description=description,
        created_at=time.time(),
        impact=impact,
        urgency=urgency,
        requester=requester,
        snapshot=snapshot,
    )


async def deliver(
    paths: AgentPaths,
    config: AgentConfig,
    identity: Identity,
    request: HelpRequest,
    *,
    open_timeout: float = 5.0,
    ack_timeout: float = 15.0,
) -> Delivery:
    """Send a spooled request on a channel of its own and wait for the console's Ack.

    Never raises for a console that cannot be reached or does not answer: the
    request stays in the spool and the outcome says ``SAVED``.
    """
    request_id = RequestId(request.request_id)
    spool = Spool(paths.spool_dir)
    try:
        channel = await open_configured_uplink(config, identity, open_timeout=open_timeout)
    except DesksideError as exc:
        return Delivery(Outcome.SAVED, request_id, detail=describe_failure(exc))
    try:
        await channel.send(await make_hello())
        await channel.send(request)
        answer = await asyncio.wait_for(_answer(channel, request_id), ack_timeout)
    except TimeoutError:
        return Delivery(Outcome.SAVED, request_id, detail="the console did not answer in time")
    except DesksideError as exc:
        return Delivery(Outcome.SAVED, request_id, detail=describe_failure(exc))
    finally:
        with contextlib.suppress(DesksideError, TimeoutError):
            await asyncio.wait_for(channel.close(CloseCode.NORMAL, ""), open_timeout)
    if isinstance(answer, Ack):
        await asyncio.to_thread(_filed, paths, spool, request_id, answer.ticket_id)
        return Delivery(Outcome.FILED, request_id, ticket_id=answer.ticket_id)
    detail = f"the console answered: {answer.message} ({answer.code})"
    if answer.code in PERMANENT_ERRORS:
        await asyncio.to_thread(
            spool.set_aside, spool.path_of(request_id).name, f"refused by the console: {detail}"
        )
        return Delivery(Outcome.REJECTED, request_id, detail=detail)
    return Delivery(Outcome.SAVED, request_id, detail=detail)


def _filed(paths: AgentPaths, spool: Spool, request_id: str, ticket_id: int | None) -> None:
    spool.remove(request_id)
    with contextlib.suppress(DesksideError):
        record_ticket(paths.tickets_file, request_id, ticket_id)


async def _answer(channel: Channel, request_id: str) -> Ack | Error:
    """The console's Ack or Error for ``request_id``; other messages are skipped."""
    while True:
        message = await channel.recv()
        if isinstance(message, Ack | Error) and message.request_id == request_id:
            return message
        logger.debug("skipped a %s while waiting for the Ack", type(message).__name__)


async def ask_for_help(
    paths: AgentPaths,
    config: AgentConfig,
    identity: Identity,
    description: str,
    *,
    impact: Impact = Impact.LOW,
    urgency: Urgency = Urgency.MEDIUM,
    requester: str = "",
    open_timeout: float = 5.0,
    ack_timeout: float = 15.0,
) -> Delivery:
    """Take a snapshot, build the request, spool it, then try to deliver it now.

    Raises ``ConfigError`` only if the request cannot be written to the spool.
    """
    snapshot = await _snapshot(config.console_url)
    request = build_help_request(
        description, impact=impact, urgency=urgency, requester=requester, snapshot=snapshot
    )
    await asyncio.to_thread(Spool(paths.spool_dir).add, request)
    return await deliver(
        paths, config, identity, request, open_timeout=open_timeout, ack_timeout=ack_timeout
    )


async def _snapshot(console_url: str) -> Snapshot | None:
    """A fresh snapshot to attach; None if diagnostics fail (the request matters more)."""
    from deskside.agent.diagnostics import collect_snapshot

    try:
        return await collect_snapshot(console_url=console_url)
    except Exception:
        logger.warning("could not take a diagnostics snapshot", exc_info=True)
        return None
