"""Diagnostics of this machine: the answers to a technician's first questions.

::

    snapshot = await collect_snapshot(console_url=url)   # a typed, bounded Snapshot
    print(render_text(snapshot))                         # a report for a terminal
    data = snapshot_json(snapshot)                       # indented JSON
    metrics = collect_metrics()                          # light, for heartbeats

Modules, each with what it reads in its docstring:

* ``snapshot``: runs every collector at once, each in a thread with its time bound.
* ``collectors``: OS, uptime, CPU, memory, disks, interfaces, processes, users,
  battery (psutil and the standard library).
* ``network``: default gateway, DNS servers, reachability checks.
* ``platforms``: what differs per OS (its name, CPU model, gateway, DNS servers,
  ping), one module per OS behind small interfaces, this OS's imported on first use.
* ``systemd``: failed units and recent journal errors (Linux).
* ``metrics``: the light metrics of heartbeats.
* ``render``: the text report and the JSON.
* ``limits``, ``commands``: the bounds every collector keeps, and how tools are run.

The Linux backend is tested on real machines; the macOS and Windows ones by
contract only, against tool outputs in their formats (``tests/agent/diagnostics``).
"""

from __future__ import annotations

from .metrics import collect_metrics
from .render import render_text, snapshot_json
from .snapshot import collect_snapshot

__all__ = ["collect_metrics", "collect_snapshot", "render_text", "snapshot_json"]
