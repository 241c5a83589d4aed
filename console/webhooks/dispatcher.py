"""Sending the outbox: the dispatcher, a thin I/O loop over the repository's claims.

Theory of operation::

    commit (change + outbox rows) ──> bus: a domain event ──> wake up
                                                                 │
     every `poll` seconds, or woken ──> claim due deliveries (lease) ──> send each
                                                                 │
      2xx ─> delivered     410 ─> failed, endpoint disabled      │
      other, time-out, refused address ─> pending, next attempt from RetrySchedule,
                                          or failed once it would be too late

* At least once: a delivery is marked delivered only after the receiver's 2xx.
  A console killed after the commit finds its rows at the next start; one killed
  while sending finds them leased, and sends them again once the lease ends,
  with the same ``webhook-id`` (receivers dedupe on it).
* Each send resolves the endpoint's host, checks every address with the
  ``AddressGuard`` and connects to the address it checked (the URL's host stays
  in ``Host`` and in TLS's SNI and certificate check). Redirects are not
  followed; the response's body is read up to ``max_response`` bytes and
  dropped; each attempt has a time-out as a whole.
* The clock is injected (``clock``), and ``run_once`` does one round, so
  schedules and outcomes are tested without sleeping.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

import httpx

from deskside.console.db import utcnow
from deskside.console.events import EventBus, Subscription

from . import catalog, signing
from .addresses import AddressGuard, Destination, ForbiddenAddress
from .repository import Claimed, Outcome, WebhookRepository
from .schedule import RetrySchedule
from .schemas import DeliveryStatus

__all__ = ["DispatcherConfig", "WebhookDispatcher"]

logger = logging.getLogger(__name__)

_USER_AGENT: Final = "Deskside-Webhooks/1"


@dataclass(frozen=True)
class DispatcherConfig:
    """How the dispatcher sends."""

    timeout: float = 10.0
    """Seconds one attempt may take, from connecting to the end of the response."""

    connect_timeout: float = 5.0
    """Seconds to open the connection."""

    max_response: int = 64 * 1024
    """Bytes of a response's body read (and dropped); the rest is not read."""

    lease: datetime.timedelta = datetime.timedelta(seconds=60)
    """How long a claimed delivery is held; longer than ``timeout``."""

    batch: int = 64
    """Deliveries claimed at once."""

    concurrency: int = 16
    """Attempts in flight at once."""

    poll: float = 1.0
    """Seconds between looks at the outbox when nothing woke the dispatcher."""

    schedule: RetrySchedule = field(default_factory=RetrySchedule)
    """When failed deliveries are tried again."""

    def __post_init__(self) -> None:
        if self.lease.total_seconds() <= self.timeout:
            raise ValueError("the lease must outlast an attempt's time-out")

    @classmethod
    def for_timeout(cls, timeout: float) -> DispatcherConfig:
        """The settings for attempts of ``timeout`` seconds: a lease of twice that and
        5 s more (time to record the outcome), after which a dead node's deliveries
        are sent again."""
        return cls(
            timeout=timeout,
            connect_timeout=min(timeout, cls.connect_timeout),
            lease=datetime.timedelta(seconds=2 * timeout + 5),
        )


class WebhookDispatcher:
    """Claims due deliveries and sends them, signed, until stopped."""

    def __init__(
        self,
        repository: WebhookRepository,
        guard: AddressGuard,
        config: DispatcherConfig | None = None,
        *,
        bus: EventBus | None = None,
        clock: Callable[[], datetime.datetime] = utcnow,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._repository = repository
        self.guard = guard
        self.config = config or DispatcherConfig()
        self._bus = bus
        self._clock = clock
        self._client = httpx.AsyncClient(
            transport=transport,
            follow_redirects=False,
            trust_env=False,  # a proxy would connect to the name, not the checked address
            timeout=httpx.Timeout(self.config.timeout, connect=self.config.connect_timeout),
            headers={"User-Agent": _USER_AGENT},
        )
        # The background loop, while started.
        self._task: asyncio.Task[None] | None = None
        # Set by a committed event that may have written outbox rows.
        self._wake = asyncio.Event()
        self._subscription: Subscription | None = None
        self._watcher: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Run in the background until ``stop``."""
        if self._task is not None:
            return
        if self._bus is not None:
            self._subscription = self._bus.subscribe(*catalog.SOURCES, maxsize=1024)
            self._watcher = asyncio.create_task(self._watch(self._subscription))
        self._task = asyncio.create_task(self._run(), name="webhook-dispatcher")

    async def stop(self) -> None:
        """Stop sending; deliveries in flight are sent again after their lease."""
        for task in (self._watcher, self._task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._task = self._watcher = None
        if self._subscription is not None:
            self._subscription.close()
            self._subscription = None
        await self._client.aclose()

    def wake(self) -> None:
        """Look at the outbox now (a test's delivery, a redelivery)."""
        self._wake.set()

    async def _watch(self, subscription: Subscription) -> None:
        while True:
            await subscription.get()
            self._wake.set()

    async def _run(self) -> None:
        while True:
            try:
                sent = await self.run_once()
            except Exception:  # the database may be away for a while: try again later
                logger.exception("webhook dispatch failed; trying again")
                sent = 0
            if sent:
                continue  # more may be due
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.config.poll)
            self._wake.clear()

    async def run_once(self) -> int:
        """Claim the due deliveries and send them; how many were attempted."""
        claimed = await self._repository.claim(
            self._clock(), lease=self.config.lease, limit=self.config.batch
        )
        if not claimed:
            return 0
        gate = asyncio.Semaphore(self.config.concurrency)

        async def one(delivery: Claimed) -> Outcome:
            async with gate:
                return await self.attempt(delivery)

        outcomes = await asyncio.gather(*(one(d) for d in claimed))
        await self._repository.record(outcomes)
        return len(claimed)

    async def attempt(self, delivery: Claimed) -> Outcome:
        """Send one delivery once; how it went (never raises for the receiver's faults)."""
        started = self._clock()
        began = time.monotonic()
        code: int | None = None
        try:
            destination = await self.guard.resolve(delivery.url)
            code = await asyncio.wait_for(
                self._post(delivery, destination, int(started.timestamp())),
                self.config.timeout,
            )
            error = "" if 200 <= code < 300 else f"HTTP {code}"
        except ForbiddenAddress as exc:
            error = str(exc)
        except (httpx.HTTPError, OSError, TimeoutError) as exc:
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        except Exception as exc:  # an endpoint's fault must not stop the others
            logger.exception("webhook delivery %s failed", delivery.id)
            error = type(exc).__name__
        latency = int((time.monotonic() - began) * 1000)
        return self._outcome(delivery, started, code, latency, error)

    def _outcome(
        self,
        delivery: Claimed,
        at: datetime.datetime,
        code: int | None,
        latency: int,
        error: str,
    ) -> Outcome:
        status, after = DeliveryStatus.FAILED, None
        if code is not None and 200 <= code < 300:
            status = DeliveryStatus.DELIVERED
        elif code == 410:
            logger.warning("webhook %s answered 410 Gone: disabled", delivery.endpoint_id)
        else:
            failures = delivery.attempts + 1
            after = self.config.schedule.next_attempt(failures, delivery.tries_since, self._clock())
            if after is None:
                logger.warning("webhook delivery %s given up after %d", delivery.id, failures)
            else:
                status = DeliveryStatus.PENDING
        return Outcome(
            delivery_id=delivery.id,
            endpoint_id=delivery.endpoint_id,
            at=at,
            status=status,
            next_attempt_at=after,
            status_code=code,
            latency_ms=latency,
            error=error,
            gone=code == 410,
        )

    async def _post(self, delivery: Claimed, destination: Destination, timestamp: int) -> int:
        """POST to the checked address; the response's status."""
        url = httpx.URL(delivery.url)
        host = destination.address
        pinned = url.copy_with(host=host)
        headers = {
            "Host": url.netloc.decode("ascii"),
            "Content-Type": "application/json",
            "webhook-id": delivery.message_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": signing.signature_header(
                delivery.secrets, delivery.message_id, timestamp, delivery.body
            ),
        }
        extensions = {"sni_hostname": destination.host} if url.scheme == "https" else {}
        request = self._client.build_request(
            "POST", pinned, content=delivery.body, headers=headers, extensions=extensions
        )
        response = await self._client.send(request, stream=True)
        try:
            read = 0
            async for chunk in response.aiter_raw():
                read += len(chunk)
                if read >= self.config.max_response:
                    break
        finally:
            await response.aclose()
        return response.status_code
