"""The devices' domain events (topic: the device's id)."""

from __future__ import annotations

from typing import ClassVar

from deskside.console.events import DomainEvent

__all__ = ["DeviceEnrolled", "DeviceOffline", "DeviceOnline", "DeviceRevoked", "SnapshotAdded"]


class _DeviceEvent(DomainEvent, frozen=True, kw_only=True):
    topic_field: ClassVar[str | None] = "device_id"

    device_id: str


class DeviceEnrolled(_DeviceEvent, frozen=True, kw_only=True, tag="device.enrolled"):
    """A new key was enrolled as a device."""

    group: str | None


class DeviceOnline(_DeviceEvent, frozen=True, kw_only=True, tag="device.online"):
    """The device's daemon connected and said who it is."""


class DeviceOffline(_DeviceEvent, frozen=True, kw_only=True, tag="device.offline"):
    """The device's last daemon connection closed."""


class DeviceRevoked(_DeviceEvent, frozen=True, kw_only=True, tag="device.revoked"):
    """The device's key is refused from now on."""


class SnapshotAdded(_DeviceEvent, frozen=True, kw_only=True, tag="device.snapshot_added"):
    """A diagnostics snapshot of the device was kept."""

    snapshot_id: int
