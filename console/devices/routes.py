"""The devices API: ``/api/v1/devices`` and their diagnostics snapshots."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, get, post
from litestar.params import Parameter

from deskside.console.agents import Agents
from deskside.console.api import IdParameter, errors
from deskside.console.auth.access import DeviceAccess, DeviceAction
from deskside.console.auth.guards import requires
from deskside.console.auth.identity import ApiIdentity, Scope

from .presence import Presence
from .repository import DeviceRepository
from .schemas import DeviceView, SnapshotInfo, SnapshotView
from .snapshots import SnapshotRepository

__all__ = ["DeviceController"]


class DeviceController(Controller):
    """Devices: list, read, revoke; their snapshots."""

    path = "/api/v1"
    tags = ["devices"]  # noqa: RUF012 - Litestar's API

    @get("/devices", guards=[requires(Scope.DEVICES_READ)], responses=errors())
    async def list_devices(
        self,
        devices: DeviceRepository,
    ) -> list[DeviceView]:
        """Every enrolled device."""
        return await devices.list_devices()

    @get(
        "/devices/{device_id:str}",
        guards=[requires(Scope.DEVICES_READ)],
        responses=errors(400, 404),
    )
    async def get_device(
        self,
        devices: DeviceRepository,
        device_id: Annotated[str, Parameter(max_length=32)],
    ) -> DeviceView:
        """One device."""
        return await devices.get_device(device_id)

    @get(
        "/devices/{device_id:str}/snapshots",
        guards=[requires(Scope.DEVICES_READ)],
        responses=errors(400, 404),
    )
    async def list_snapshots(
        self,
        snapshots: SnapshotRepository,
        device_id: Annotated[str, Parameter(max_length=32)],
    ) -> list[SnapshotInfo]:
        """A device's snapshots, newest first (without their content)."""
        return await snapshots.list_snapshots(device_id)

    @post(
        "/devices/{device_id:str}/snapshots",
        guards=[requires(Scope.DEVICES_WRITE)],
        responses=errors(400, 404, 409, 504),
    )
    async def request_snapshot(
        self,
        identity: ApiIdentity,
        devices: DeviceRepository,
        presence: Presence,
        access: DeviceAccess,
        agents: Agents,
        device_id: Annotated[str, Parameter(max_length=32)],
        timeout: Annotated[float, Parameter(ge=1, le=120)] = 30.0,
    ) -> SnapshotInfo:
        """Ask the online device for a fresh snapshot and keep it (201).

        A technician must have the rights of acting on the device (an admin, the
        assignee of an open ticket of it, or a group with rights on its group).
        """
        await devices.get_device(device_id)
        await access.authorize(
            identity, agents.online, action=DeviceAction.DIAGNOSTICS, device_id=device_id
        )
        return await presence.request_snapshot(device_id, timeout)

    @post(
        "/devices/{device_id:str}/revoke",
        guards=[requires(Scope.DEVICES_WRITE)],
        status_code=200,
        responses=errors(400, 404),
    )
    async def revoke_device(
        self,
        identity: ApiIdentity,
        devices: DeviceRepository,
        agents: Agents,
        device_id: Annotated[str, Parameter(max_length=32)],
    ) -> DeviceView:
        """Revoke a device: its key is refused from now on, and it is disconnected."""
        device = await devices.revoke_device(device_id, actor=identity.actor)
        await agents.disconnect(device_id, "device revoked")
        return device

    @get(
        "/snapshots/{snapshot_id:int}",
        guards=[requires(Scope.DEVICES_READ)],
        responses=errors(400, 404),
    )
    async def get_snapshot(
        self,
        snapshots: SnapshotRepository,
        snapshot_id: IdParameter,
    ) -> SnapshotView:
        """One snapshot with its content."""
        return await snapshots.get_snapshot(snapshot_id)
