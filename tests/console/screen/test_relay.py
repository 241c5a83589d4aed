"""The console's screen relay: the viewers' binary frames, acknowledgements from
several viewers, slow viewers, and the recording."""

from __future__ import annotations

import datetime
import json
import struct
from dataclasses import dataclass, field
from typing import Any

import msgspec

from deskside.console.screen.relay import ScreenHub, pack_frame
from deskside.console.screen.session import RECORDING_MAGIC, ScreenViewer
from deskside.protocol import messages as m


@dataclass
class Channel:
    """Stands in for the agent's channel: keeps what the console sends it."""

    sent: list[m.Message] = field(default_factory=list)

    async def send(self, message: m.Message) -> None:
        self.sent.append(message)


@dataclass(eq=False)
class Link:
    device_id: str = "d1"
    channel: Channel = field(default_factory=Channel)


@dataclass
class Store:
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    recordings: dict[str, bytes] = field(default_factory=dict)

    async def record_screen_event(
        self, ticket_id: int, kind: str, *, actor: str, data: dict[str, Any]
    ) -> None:
        self.events.append((kind, data))

    async def save_screen_recording(self, session_id: str, *, data: bytes, **fields: Any) -> None:
        self.recordings[session_id] = data


def last(link: Link) -> m.Message:
    """The last message the console sent the agent."""
    return link.channel.sent[-1]


def frame(seq: int, *, final: bool = True, cursor: m.ScreenCursor | None = None) -> m.ScreenFrame:
    return m.ScreenFrame(
        session_id="s1",
        seq=seq,
        width=640,
        height=480,
        captured_at=1000.5,
        rects=[m.ScreenRect(x=64, y=128, width=64, height=64, data=b"jpeg!")],
        cursor=cursor,
        keyframe=seq == 0,
        final=final,
    )


def started() -> m.ScreenStarted:
    return m.ScreenStarted(
        session_id="s1",
        monitors=[m.ScreenMonitor(index=0, left=0, top=0, width=640, height=480)],
        monitor=0,
        consent="user",
    )


def test_pack_frame_layout() -> None:
    cursor = m.ScreenCursor(x=-5, y=7, shape_id=9, hot_x=1, hot_y=2, shape=b"PNG")
    packed = pack_frame(frame(3, cursor=cursor))
    head = struct.unpack_from("<4sIHHBBHdHhhHHII", packed)
    assert head == (b"DSF1", 3, 640, 480, 2 | 4 | 8 | 16, 0, 0, 1000.5, 1, -5, 7, 1, 2, 9, 3)
    assert packed[42:45] == b"PNG"
    assert struct.unpack_from("<HHHHI", packed, 45) == (64, 128, 64, 64, 5)
    assert packed[57:] == b"jpeg!"


async def open_hub(record: bool = False) -> tuple[ScreenHub, Link, Store, ScreenViewer, Any]:
    store = Store()
    hub = ScreenHub(store)
    link = Link()
    viewer = ScreenViewer(actor="user:alice")
    relay = await hub.open(
        link, viewer, session_id="s1", ticket_id=7, requested_by="alice", reason="#7",
        monitor=1, quality=70, max_fps=15, record=record,
    )  # fmt: skip
    return hub, link, store, viewer, relay


async def test_the_slowest_viewer_sets_the_acknowledgements() -> None:
    hub, link, store, first, relay = await open_hub()
    (opened,) = link.channel.sent
    assert isinstance(opened, m.ScreenOpen)
    assert opened.requested_by == "alice"
    await hub.from_agent(link, started())
    second = ScreenViewer(actor="user:alice")
    await hub.join(relay, second)
    assert isinstance(link.channel.sent[-1], m.ScreenKeyframeRequest)
    for seq in range(3):
        await hub.from_agent(link, frame(seq))
    await hub.viewer_ack(relay, first, 2)
    assert not any(isinstance(x, m.ScreenAck) for x in link.channel.sent)
    await hub.viewer_ack(relay, second, 1)
    assert last(link) == m.ScreenAck(session_id="s1", seq=1)
    await hub.viewer_ack(relay, first, 99)  # a frame not sent yet: ignored
    await hub.leave(relay, second)  # the slow one goes: the other one counts
    assert last(link) == m.ScreenAck(session_id="s1", seq=2)
    await hub.leave(relay, first)
    assert last(link) == m.ScreenEnded(
        session_id="s1",
        reason=m.ScreenEndReason.VIEWER_LEFT,
        error="the technician closed the viewer",
    )
    assert [kind for kind, _ in store.events] == ["screen_started", "screen_ended"]
    assert store.events[-1][1]["frames"] == 3
    assert not hub.relays


async def test_a_viewer_that_falls_behind_is_dropped() -> None:
    hub, link, _, viewer, relay = await open_hub()
    await hub.from_agent(link, started())
    for seq in range(600):
        await hub.from_agent(link, frame(seq))
    assert viewer not in relay.viewers
    assert relay.state == "ended"  # it was the only one
    items = []
    while not viewer.queue.empty():
        items.append(viewer.queue.get_nowait())
    assert items == [None]  # told to go; the frames it did not read are dropped


async def test_a_viewer_is_dropped_when_its_frames_take_too_much_memory() -> None:
    hub, link, _, viewer, relay = await open_hub()
    await hub.from_agent(link, started())
    big = m.ScreenRect(x=0, y=0, width=64, height=64, data=bytes(1 << 20))
    for seq in range(70):
        await hub.from_agent(link, msgspec.structs.replace(frame(seq), rects=[big]))
    assert viewer not in relay.viewers


async def test_frames_from_another_agent_are_ignored() -> None:
    hub, link, _, viewer, _ = await open_hub()
    await hub.from_agent(link, started())
    await hub.from_agent(Link(device_id="d2"), frame(0))
    kinds = []
    while not viewer.queue.empty():
        item = viewer.queue.get_nowait()
        kinds.append(item["type"] if isinstance(item, dict) else "frame")
    assert kinds == ["asking", "started"]


async def test_the_recording_holds_the_header_and_each_frame() -> None:
    hub, link, store, _, _ = await open_hub(record=True)
    assert isinstance(link.channel.sent[0], m.ScreenOpen)
    assert link.channel.sent[0].recorded
    await hub.from_agent(link, started())
    await hub.from_agent(link, frame(0, final=False))
    await hub.from_agent(link, frame(0))
    await hub.from_agent(
        link, m.ScreenEnded(session_id="s1", reason=m.ScreenEndReason.USER_STOPPED)
    )
    data = store.recordings["s1"]
    assert data[:4] == RECORDING_MAGIC
    (length,) = struct.unpack_from("<I", data, 4)
    header = json.loads(data[8 : 8 + length])
    assert header["ticket"] == 7
    assert header["monitors"][0]["width"] == 640
    datetime.datetime.fromisoformat(header["started_at"])
    offset, records = 8 + length, []
    while offset < len(data):
        size, at = struct.unpack_from("<Id", data, offset)
        offset += 12
        records.append(data[offset : offset + size])
        assert at >= 0
        offset += size
    assert records == [pack_frame(frame(0, final=False)), pack_frame(frame(0))]
    kind, ended = store.events[-1]
    assert kind == "screen_ended"
    assert ended["reason"] == "user_stopped"
    assert ended["recording_bytes"] == len(data)


async def test_keyframe_requests_and_settings_are_limited() -> None:
    hub, link, _, _, relay = await open_hub()
    await hub.from_agent(link, started())
    for _ in range(100):
        await hub.keyframe(relay)
        await hub.settings(relay, quality=50, max_fps=None, monitor=None)
    forwarded = [
        x for x in link.channel.sent if isinstance(x, m.ScreenKeyframeRequest | m.ScreenSettings)
    ]
    assert 8 <= len(forwarded) < 20  # the burst, and what the rate refilled meanwhile
