"""The agent's chat: the [chat] policy, what a line may hold, the user's rate, answers
that wait for the console, and the daemon's refusals (chat off, no desktop).

The window itself, on a real X server, is tested end to end in tests/test_chat.py.
"""

from __future__ import annotations

import dataclasses
import json
import os
import stat
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import pytest

from deskside.agent.chat.policy import ChatPolicy
from deskside.agent.chat.service import CHAT_OFF, NO_DESKTOP, TOO_MANY, ChatService
from deskside.agent.chat.window import clean, notify
from deskside.agent.config import AgentConfig, load_config, save_config
from deskside.channel import Channel
from deskside.protocol import messages as m
from deskside.protocol.errors import ConfigError
from tests.agent.conftest import Agent
from tests.agent.fake_console import FakeConsole

BASE = """
[console]
url = "ws://127.0.0.1:1/agent"
public_key = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="

[agent]
device_id = "d0123456789abcdef012"
"""


def test_the_chat_table_is_read_checked_and_written() -> None:
    assert AgentConfig.from_toml(BASE).chat == ChatPolicy()
    config = AgentConfig.from_toml(BASE + "\n[chat]\nenabled = false\nlines_per_minute = 3\n")
    assert config.chat == ChatPolicy(enabled=False, lines_per_minute=3)
    assert AgentConfig.from_toml(config.to_toml()) == config
    for bad in (
        "enabled = 1",
        "enabled = 'no'",
        "lines_per_minute = 0",
        "lines_per_minute = 61",
        "lines_per_minute = 2.5",
        "lines_per_minute = true",
        "window = 'big'",
    ):
        with pytest.raises(ConfigError, match=r"\[chat\]"):
            AgentConfig.from_toml(BASE + f"\n[chat]\n{bad}\n")


def test_a_typed_line_is_plain_text_of_bounded_length() -> None:
    assert clean("  fine\x1b[31m, thanks\x07 ") == "fine[31m, thanks"
    assert clean("two\nlines\tand a tab\r") == "two\nlines\tand a tab"
    assert len(clean("x" * 5000)) == m.CHAT_TEXT_MAX
    assert clean("\x00\x01 ") == ""


def test_the_notification_shows_markup_as_text(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # neither notify-send nor gdbus
    assert notify("Message", "hi", environ={}) is None
    record = tmp_path / "argv"
    program = tmp_path / "notify-send"
    program.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > {record}\n')
    program.chmod(0o755)
    assert notify("Message", "<b>bold</b> & <a href='x'>link</a>", environ={}) == "notify-send"
    deadline = time.monotonic() + 10
    while not record.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    shown = record.read_text().splitlines()
    assert shown[-1] == "&lt;b&gt;bold&lt;/b&gt; &amp; &lt;a href='x'&gt;link&lt;/a&gt;"


@dataclass
class Recorder:
    """Stands in for the channel: keeps what the service sends."""

    sent: list[m.Message] = field(default_factory=list)

    async def send(self, message: m.Message) -> None:
        self.sent.append(message)


async def test_answers_are_held_to_the_rate_and_wait_for_their_acknowledgement(
    tmp_path: Path,
) -> None:
    state = tmp_path / "chat.json"
    policy = ChatPolicy(lines_per_minute=2)
    service = ChatService(state, lambda: policy)
    channel = Recorder()
    await service.attach(cast(Channel, channel))
    for text in ("one", "two", "three"):
        await service._answer({"ticket": 4, "text": text})
    replies = [cast(m.ChatReply, r) for r in channel.sent]
    assert [r.text for r in replies] == ["one", "two"]
    assert stat.S_IMODE(os.stat(state).st_mode) == 0o600
    await service._acknowledged(cast(Channel, channel), m.ChatAck(reply_id=replies[0].reply_id))

    # The second was never acknowledged: a new daemon sends it again on its channel.
    again = ChatService(state, lambda: policy)
    assert [r.text for r in again.state.pending] == ["two"]
    later = Recorder()
    await again.attach(cast(Channel, later))
    (resent,) = [cast(m.ChatReply, r) for r in later.sent]
    assert (resent.text, resent.reply_id) == ("two", replies[1].reply_id)


def line(seq: int, text: str = "hello") -> m.ChatMessage:
    return m.ChatMessage(seq=seq, ticket_id=1, sender="user:alice", text=text, sent_at=1.0)


async def delivered(console: FakeConsole, device: m.DeviceId, count: int) -> list[Any]:
    await console.wait_for(lambda: len(console.received(device, m.ChatDelivered)) >= count)
    return console.received(device, m.ChatDelivered)


async def test_the_daemon_refuses_lines_it_cannot_show_and_says_why(
    console: FakeConsole, agent: Agent
) -> None:
    device = await agent.enroll(console)
    await agent.start_daemon()  # no DISPLAY: nobody to show a line to
    await console.wait_for(lambda: console.connected(device))
    await console.send(device, line(1))
    (answer,) = await delivered(console, device, 1)
    assert (answer.seq, answer.refused, answer.error) == (1, True, NO_DESKTOP)

    hellos = len(console.received(device, m.Hello))
    await agent.stop_all()
    config = load_config(agent.paths)
    assert config is not None
    save_config(agent.paths, dataclasses.replace(config, chat=ChatPolicy(enabled=False)))
    await agent.start_daemon(DISPLAY=":99999")  # a desktop or not: the policy decides
    await console.wait_for(
        lambda: len(console.received(device, m.Hello)) > hellos and console.connected(device)
    )
    await console.send(device, line(2))
    answer = (await delivered(console, device, 2))[-1]
    assert (answer.seq, answer.refused, answer.error) == (2, True, CHAT_OFF)
    assert not agent.paths.chat_file.exists()  # nothing was shown, nothing kept


async def test_a_busy_console_gets_an_answer_again_one_refused_is_dropped(
    tmp_path: Path,
) -> None:
    service = ChatService(tmp_path / "chat.json", ChatPolicy)
    channel = Recorder()
    await service.attach(cast(Channel, channel))
    await service._answer({"ticket": 4, "text": "busy"})
    await service._answer({"ticket": 99, "text": "wrong ticket"})
    busy, wrong = (cast(m.ChatReply, r) for r in channel.sent)
    error = m.Error(code=m.ErrorCode.BUSY, message="slow down", request_id=busy.reply_id)
    assert await service.refused(error)
    error = m.Error(code=m.ErrorCode.NOT_FOUND, message="no ticket", request_id=wrong.reply_id)
    assert await service.refused(error)
    assert not await service.refused(error)  # handled once
    other = m.Error(code=m.ErrorCode.NOT_FOUND, message="x", request_id="help-request-1")
    assert not await service.refused(other)  # not ours: the daemon's own
    assert [r.text for r in service.state.pending] == ["busy"]
    later = Recorder()
    service.detach(cast(Channel, channel))
    await service.attach(cast(Channel, later))
    assert [cast(m.ChatReply, r).text for r in later.sent] == ["busy"]


async def test_lines_are_shown_once_in_order_and_at_most_sixty_a_minute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DISPLAY", ":0")
    shown = tmp_path / "shown"
    # Stands in for the Tk window (tests/test_chat.py has the real one): says it is
    # ready, then keeps every line it is given.
    window = (
        "import sys; print('{\"ready\": true}', flush=True)\n"
        f"with open({str(shown)!r}, 'w') as out:\n"
        "    for line in sys.stdin: out.write(line); out.flush()\n"
    )
    service = ChatService(
        tmp_path / "chat.json", ChatPolicy, window_argv=[sys.executable, "-c", window]
    )
    channel = Recorder()
    try:
        for seq in (1, 2, 2, 1, *range(3, 62)):
            await service._line(cast(Channel, channel), line(seq, f"line {seq}"))
        answers = [cast(m.ChatDelivered, a) for a in channel.sent]
        assert [a.seq for a in answers] == [1, 2, 2, 1, *range(3, 62)]
        assert [a.seq for a in answers if a.refused] == [61]
        assert answers[-1].error == TOO_MANY
        assert service.state.last_seq == 60
    finally:
        await service.shutdown()
    texts = [json.loads(raw)["line"]["text"] for raw in shown.read_text().splitlines()]
    assert texts == [f"line {seq}" for seq in range(1, 61)]
