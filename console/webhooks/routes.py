"""The webhooks API: ``/api/v1/webhooks``, for admins (scope ``webhooks:manage``).

Every change is written to the audit log by the repository, in its transaction.
"""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, delete, get, post
from litestar.params import Parameter

from deskside.console.api import MAX_ID, errors
from deskside.console.auth.guards import requires
from deskside.console.auth.identity import ApiIdentity, Scope

from .addresses import AddressGuard
from .repository import WebhookRepository
from .schemas import (
    DeliveryStatus,
    DeliveryView,
    EndpointCreated,
    EndpointView,
    NewEndpoint,
    SecretRotated,
)

__all__ = ["WebhookController"]

EndpointId = Annotated[int, Parameter(ge=1, le=2**31 - 1)]
DeliveryId = Annotated[int, Parameter(ge=1, le=MAX_ID)]
Limit = Annotated[int, Parameter(ge=1, le=500, description="At most this many results")]

_MANAGE = [requires(Scope.WEBHOOKS_MANAGE)]


class WebhookController(Controller):
    """Webhook endpoints, their secrets and their delivery log."""

    path = "/api/v1"
    tags = ["webhooks"]  # noqa: RUF012 - Litestar's API

    @get("/webhooks", guards=_MANAGE, responses=errors())
    async def list_webhooks(self, webhooks: WebhookRepository) -> list[EndpointView]:
        """Every endpoint (without its secret)."""
        return await webhooks.endpoints()

    @post("/webhooks", guards=_MANAGE, responses=errors(400))
    async def add_webhook(
        self,
        identity: ApiIdentity,
        webhooks: WebhookRepository,
        webhook_guard: AddressGuard,
        data: NewEndpoint,
    ) -> EndpointCreated:
        """Add an endpoint (201); its ``whsec_`` secret is in this answer only. A URL
        whose host is, or resolves to, a loopback, private, link-local or the
        console's own address is refused (400) unless ``console.toml`` allows it."""
        await webhook_guard.resolve(data.url)
        return await webhooks.add_endpoint(data, actor=identity.actor)

    @get("/webhooks/{endpoint_id:int}", guards=_MANAGE, responses=errors(400, 404))
    async def get_webhook(
        self, webhooks: WebhookRepository, endpoint_id: EndpointId
    ) -> EndpointView:
        """One endpoint."""
        return await webhooks.endpoint(endpoint_id)

    @delete("/webhooks/{endpoint_id:int}", guards=_MANAGE, responses=errors(400, 404))
    async def remove_webhook(
        self, identity: ApiIdentity, webhooks: WebhookRepository, endpoint_id: EndpointId
    ) -> None:
        """Remove an endpoint and its delivery log (204)."""
        await webhooks.remove_endpoint(endpoint_id, actor=identity.actor)

    @post(
        "/webhooks/{endpoint_id:int}/rotate-secret",
        guards=_MANAGE,
        status_code=200,
        responses=errors(400, 404),
    )
    async def rotate_secret(
        self, identity: ApiIdentity, webhooks: WebhookRepository, endpoint_id: EndpointId
    ) -> SecretRotated:
        """A new secret; messages are signed with the old one too for a day."""
        return await webhooks.rotate_secret(endpoint_id, actor=identity.actor)

    @post(
        "/webhooks/{endpoint_id:int}/test",
        guards=_MANAGE,
        status_code=202,
        responses=errors(400, 404),
    )
    async def test_webhook(
        self, identity: ApiIdentity, webhooks: WebhookRepository, endpoint_id: EndpointId
    ) -> DeliveryView:
        """Queue a ``webhook.test`` message to the endpoint (202); follow it in its
        deliveries."""
        return await webhooks.send_test(endpoint_id, actor=identity.actor)

    @get(
        "/webhooks/{endpoint_id:int}/deliveries",
        guards=_MANAGE,
        responses=errors(400, 404),
    )
    async def list_deliveries(
        self,
        webhooks: WebhookRepository,
        endpoint_id: EndpointId,
        status: DeliveryStatus | None = None,
        limit: Limit = 50,
        before: Annotated[int | None, Parameter(ge=1, le=MAX_ID)] = None,
    ) -> list[DeliveryView]:
        """The endpoint's deliveries, newest first: status, attempts, last response
        code, latency and error."""
        await webhooks.endpoint(endpoint_id)
        return await webhooks.deliveries(
            endpoint_id=endpoint_id, status=status, limit=limit, before=before
        )

    @post(
        "/webhooks/deliveries/{delivery_id:int}/redeliver",
        guards=_MANAGE,
        status_code=202,
        responses=errors(400, 404),
    )
    async def redeliver(
        self, identity: ApiIdentity, webhooks: WebhookRepository, delivery_id: DeliveryId
    ) -> DeliveryView:
        """Send a delivery again, with the same ``webhook-id`` (202)."""
        return await webhooks.redeliver(delivery_id, actor=identity.actor)
