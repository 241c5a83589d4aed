"""Remote commands against local ones, on loopback, in one run.

    .venv/bin/python benchmarks/commands.py [--rounds 200] [--megabytes 50]

A real console (``deskside-console serve``) and a real agent (``deskside-agent run``,
with a policy that runs commands without asking) on this machine. Measured, each
beside its baseline in the same run:

* round trip of ``true``: from the API call to the exit code recorded, against
  spawning ``true`` locally with asyncio. Twice: one POST with ``?wait`` that
  answers with the recorded result, and a POST followed by the command's event
  stream until its ``exit`` event;
* output throughput: a command writing N MB, read through the API's stream,
  against reading the same command's output locally.

Goals (issue 4): round trip within 10 ms of the bare spawn at p50; at least
50 MB/s of output.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.consoleproc import ConsoleProcess
from tests.helpers import script


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def local_spawn(argv: list[str]) -> float:
    started = time.perf_counter()
    process = await asyncio.create_subprocess_exec(*argv)
    await process.wait()
    return time.perf_counter() - started


async def local_throughput(argv: list[str]) -> tuple[int, float]:
    started = time.perf_counter()
    process = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE)
    assert process.stdout is not None
    total = 0
    while chunk := await process.stdout.read(1 << 16):
        total += len(chunk)
    await process.wait()
    return total, time.perf_counter() - started


def remote_waiting(client: httpx.Client, ticket: int, argv: list[str]) -> float:
    """Run argv on the agent in one call that answers with the recorded exit; seconds."""
    started = time.perf_counter()
    response = client.post(
        f"/api/v1/tickets/{ticket}/commands",
        params={"wait": 10},
        json={"argv": argv, "timeout": 10},
    )
    response.raise_for_status()
    seconds = time.perf_counter() - started
    end = response.json()
    assert end["status"] == "finished", end
    assert end["exit_code"] == 0, end
    return seconds


def remote(
    client: httpx.Client, ticket: int, argv: list[str], timeout: float
) -> tuple[int, float, dict[str, object]]:
    """Run argv on the agent; (bytes of output read from the stream, seconds, exit event)."""
    started = time.perf_counter()
    response = client.post(
        f"/api/v1/tickets/{ticket}/commands", json={"argv": argv, "timeout": timeout}
    )
    response.raise_for_status()
    command_id = response.json()["id"]
    total = 0
    event = ""
    end: tuple[float, dict[str, object]] | None = None
    with client.stream("GET", f"/api/v1/commands/{command_id}/stream") as stream:
        for line in stream.iter_lines():
            if line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:") and event in ("output", "exit"):
                data = json.loads(line[5:])
                if event == "output":
                    total += len(base64.b64decode(data["data"]))
                elif event == "exit":
                    end = time.perf_counter() - started, data
        # Read to the stream's end (it ends after the exit), so that the connection
        # goes back to the pool: leaving early would close it, and the next round
        # would pay a new TLS handshake.
    if end is None:
        raise RuntimeError("the stream ended without an exit")
    return total, *end


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=200, help="round trips of `true`")
    parser.add_argument("--megabytes", type=int, default=50, help="output of the throughput test")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="deskside-bench-commands-"))
    console = ConsoleProcess(root / "console")
    console.start()
    agent_args = [
        script("deskside-agent"),
        "--config-dir", str(root / "agent" / "config"),
        "--state-dir", str(root / "agent" / "state"),
    ]  # fmt: skip
    daemon: asyncio.subprocess.Process | None = None
    try:
        enrolled = await asyncio.create_subprocess_exec(
            *agent_args, "enroll", console.enrollment(), stdout=asyncio.subprocess.PIPE
        )
        out, _ = await enrolled.communicate()
        assert enrolled.returncode == 0, out
        device = out.decode().split("Device id:")[-1].strip().split()[0]
        config = root / "agent" / "config" / "agent.toml"
        cap = (args.megabytes + 10) << 20
        # The owner's policy for the benchmark: run without asking, output up to the cap.
        head = config.read_text().split("[commands]")[0].rstrip()
        config.write_text(
            f'{head}\n\n[commands]\nmode = "any"\nconsent = "none"\noutput_cap = {cap}\n'
        )
        with (root / "agent.log").open("wb") as log:
            daemon = await asyncio.create_subprocess_exec(*agent_args, "run", stderr=log)
        token = console.api_token("tickets:read", "tickets:write", "commands:run")
        with console.api(token) as client:
            for _ in range(100):
                if "online" in console.cli("devices").stdout:
                    break
                await asyncio.sleep(0.2)
            ticket = client.post(
                "/api/v1/tickets",
                json={"title": "bench", "description": "bench", "device_id": device},
            ).json()["id"]
            true = ["true"]
            remote(client, ticket, true, 10)  # warm up all three
            remote_waiting(client, ticket, true)
            await local_spawn(true)
            bare: list[float] = []
            round_trips: list[float] = []
            streamed: list[float] = []
            for _ in range(args.rounds):  # alternate, so drift hits all alike
                bare.append(await local_spawn(true))
                round_trips.append(remote_waiting(client, ticket, true))
                _, seconds, end = remote(client, ticket, true, 10)
                assert end["status"] == "finished", end
                streamed.append(seconds)
            size = args.megabytes << 20
            writer = ["head", "-c", str(size), "/dev/zero"]
            local_bytes, local_seconds = await local_throughput(writer)
            remote_bytes, remote_seconds, end = remote(client, ticket, writer, 600)
            assert end["status"] == "finished", end
    finally:
        if daemon is not None and daemon.returncode is None:
            daemon.terminate()
            await daemon.wait()
        console.stop()

    p50 = percentile(bare, 0.5) * 1e3
    rows = [
        ("`true`, p50", percentile(round_trips, 0.5) * 1e3, p50, "ms"),
        ("`true`, p99", percentile(round_trips, 0.99) * 1e3, percentile(bare, 0.99) * 1e3, "ms"),
        ("`true`, mean", statistics.mean(round_trips) * 1e3, statistics.mean(bare) * 1e3, "ms"),
        ("`true` + stream, p50", percentile(streamed, 0.5) * 1e3, p50, "ms"),
        (
            "`true` + stream, p99",
            percentile(streamed, 0.99) * 1e3,
            percentile(bare, 0.99) * 1e3,
            "ms",
        ),
        (
            f"output of {args.megabytes} MB",
            remote_bytes / remote_seconds / 1e6,
            local_bytes / local_seconds / 1e6,
            "MB/s",
        ),
    ]
    print(f"{'measure':28} {'remote':>10} {'local':>10} {'ratio':>7}  unit")
    for name, ours, theirs, unit in rows:
        print(f"{name:28} {ours:10.2f} {theirs:10.2f} {ours / theirs:7.2f}  {unit}")
    throughput = remote_bytes / remote_seconds / 1e6
    print(f"\nremote bytes read: {remote_bytes} of {size}; rounds: {args.rounds}")
    print("`true`: one POST with ?wait=10, answered with the recorded exit;")
    print("`true` + stream: a POST, then its /stream until the exit event")
    for name, samples in (("`true`", round_trips), ("`true` + stream", streamed)):
        overhead = percentile(samples, 0.5) * 1e3 - p50
        print(
            f"goal: round trip within 10 ms of a bare spawn at p50, {name}: "
            f"{'met' if overhead <= 10 else 'NOT met'} (+{overhead:.1f} ms)"
        )
    print(
        f"goal: at least 50 MB/s of output: {'met' if throughput >= 50 else 'NOT met'} "
        f"({throughput:.1f} MB/s)"
    )
    print(f"(console and agent share this machine's {os.cpu_count()} cores with the client)")


if __name__ == "__main__":
    asyncio.run(main())
